import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { cpuList, treeOf } from "./cpu-placement.ts";

describe("cpuList", () => {
  const cases: [string, number[] | RegExp][] = [
    ["1", [1]],
    ["0-1", [0, 1]],
    ["0,2-3", [0, 2, 3]],
    [" 3 , 1 ", [3, 1]],
    ["", /not a CPU list/],
    ["a", /not a CPU list/],
    ["1-", /not a CPU list/],
  ];
  for (const [list, want] of cases) {
    test(JSON.stringify(list), () => {
      if (want instanceof RegExp) assert.throws(() => cpuList(list), want);
      else assert.deepEqual(cpuList(list), want);
    });
  }
});

describe("treeOf", () => {
  // 1 ── 10 (bench) ┬─ 11 (API server)
  //                 ├─ 12 (operator) ── 13 (its child)
  //                 └─ 14 (node) ── 15
  // 2 ── 20 (someone else's)
  const parents = new Map([
    [10, 1],
    [11, 10],
    [12, 10],
    [13, 12],
    [14, 10],
    [15, 14],
    [20, 2],
  ]);
  const cases: { name: string; root: number; except: number; want: number[] }[] = [
    { name: "everything below the root but the excepted branch", root: 10, except: 12, want: [10, 11, 14, 15] },
    { name: "nothing outside the root's tree", root: 14, except: 12, want: [14, 15] },
    { name: "the root excepted: nothing", root: 10, except: 10, want: [] },
    { name: "a root without children: itself", root: 99, except: 12, want: [99] },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(treeOf(parents, c.root, c.except).sort(), c.want));
  }
  test("a cycle (a pid reused while read) does not loop", () => {
    assert.deepEqual(
      treeOf(
        new Map([
          [5, 6],
          [6, 5],
        ]),
        5,
        0,
      ).sort(),
      [5, 6],
    );
  });
});
