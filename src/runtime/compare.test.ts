import assert from "node:assert/strict";
import { test } from "node:test";
import { sameEntries, sameItems } from "./compare.ts";

test("sameItems: the same items in the same order, by identity", () => {
  const o = {};
  const cases: [string, unknown[], unknown[], boolean][] = [
    ["both empty", [], [], true],
    ["equal numbers", [1, 2, 3], [1, 2, 3], true],
    ["another order", [1, 2, 3], [1, 3, 2], false],
    ["one longer", [1, 2], [1, 2, 3], false],
    ["one object in both", [o], [o], true],
    ["equal but distinct objects", [{}], [{}], false],
    ["undefined against a missing item", [undefined], [], false],
  ];
  for (const [name, a, b, want] of cases) {
    assert.equal(sameItems(a, b), want, name);
    assert.equal(sameItems(b, a), want, `${name} (swapped)`);
  }
});

test("sameEntries: the same keys with the same values, by identity", () => {
  const cases: [string, [number, unknown][], [number, unknown][], boolean][] = [
    ["both empty", [], [], true],
    [
      "equal entries, another insertion order",
      [
        [1, 0],
        [2, 1],
      ],
      [
        [2, 1],
        [1, 0],
      ],
      true,
    ],
    ["a value differs", [[1, 0]], [[1, 1]], false],
    ["a key differs", [[1, 0]], [[2, 0]], false],
    ["undefined against a missing key", [[1, undefined]], [[2, undefined]], false],
    [
      "one has more",
      [[1, 0]],
      [
        [1, 0],
        [2, 0],
      ],
      false,
    ],
  ];
  for (const [name, a, b, want] of cases) {
    assert.equal(sameEntries(new Map(a), new Map(b)), want, name);
    assert.equal(sameEntries(new Map(b), new Map(a)), want, `${name} (swapped)`);
  }
});
