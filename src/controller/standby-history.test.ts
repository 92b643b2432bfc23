import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BUCKET_MS, WEEK_MS } from "../scaling/standby.ts";
import {
  boundHistory,
  decodeHistory,
  emptyStoredHistory,
  encodeHistory,
  MAX_SEEN,
  type StoredHistory,
} from "./standby-history.ts";

const since = Date.parse("2026-01-05T08:00:00Z");
const b0 = Math.floor(since / BUCKET_MS);

function stored(templates: Record<string, [number, number][]>, seen: number[] = []): StoredHistory {
  return {
    templates: new Map(Object.entries(templates).map(([k, entries]) => [k, { since, buckets: new Map(entries) }])),
    seen: new Set(seen),
  };
}

describe("encodeHistory / decodeHistory", () => {
  test("round trip, compact: differences, counts only when not 1", () => {
    const h = stored(
      {
        b: [
          [b0, 3],
          [b0 + 2, 1],
          [b0 + 3, 4],
        ],
        a: [[b0 + 1, 1]],
      },
      [4713, 4711, 4714],
    );
    const text = encodeHistory(h);
    assert.equal(
      text,
      `{"version":1,"templates":{"a":{"since":"2026-01-05T08:00:00.000Z","buckets":"${b0 + 1}"},"b":{"since":"2026-01-05T08:00:00.000Z","buckets":"${b0}:3,2,1:4"}},"seen":"4711,2,1"}`,
    );
    assert.deepEqual(decodeHistory(text), h);
  });

  test("an empty history", () => {
    assert.deepEqual(decodeHistory(encodeHistory(emptyStoredHistory())), emptyStoredHistory());
  });

  test("a dense week of one template stays small", () => {
    const entries = Array.from({ length: WEEK_MS / BUCKET_MS }, (_, i) => [b0 + i, 1 + (i % 3)] as [number, number]);
    const text = encodeHistory(stored({ k: entries }));
    assert.ok(text.length < 12_000, `${text.length} characters`);
  });

  const bad: [string, string, RegExp][] = [
    ["not JSON", "{", /not JSON/],
    ["another version", '{"version":2,"templates":{},"seen":""}', /version 2 \(expected 1\)/],
    ["templates missing", '{"version":1,"seen":""}', /templates: not an object/],
    [
      "a bad since",
      '{"version":1,"templates":{"k":{"since":"yesterday","buckets":""}},"seen":""}',
      /templates\.k\.since: not a time/,
    ],
    [
      "a bad bucket entry",
      '{"version":1,"templates":{"k":{"since":"2026-01-05T08:00:00Z","buckets":"12,x"}},"seen":""}',
      /templates\.k\.buckets: entry 2 \("x"\) is not a number\[:count\]/,
    ],
    [
      "a zero difference",
      '{"version":1,"templates":{"k":{"since":"2026-01-05T08:00:00Z","buckets":"12,0"}},"seen":""}',
      /entry 2 is out of order/,
    ],
    [
      "a zero count",
      '{"version":1,"templates":{"k":{"since":"2026-01-05T08:00:00Z","buckets":"12:0"}},"seen":""}',
      /entry 1 is out of order or out of range/,
    ],
    ["seen missing", '{"version":1,"templates":{}}', /seen: not a string/],
  ];
  for (const [name, text, want] of bad) test(`refuses ${name}`, () => assert.throws(() => decodeHistory(text), want));
});

describe("boundHistory", () => {
  test("drops templates no longer wanted and seen ids no longer listed", () => {
    const h = stored({ a: [[b0, 1]], gone: [[b0, 1]] }, [1, 2, 3]);
    const b = boundHistory(h, new Set(["a"]), new Set([2, 3, 4]));
    assert.deepEqual([...b.templates.keys()], ["a"]);
    assert.deepEqual([...b.seen], [2, 3]);
  });

  test("keeps seen as it is without a listing", () => {
    const b = boundHistory(stored({}, [1, 2]), new Set(), undefined);
    assert.deepEqual([...b.seen], [1, 2]);
  });

  test("over the bucket bound, the oldest buckets of all templates go first, and since moves past them", () => {
    const h = stored({
      a: [
        [b0, 1],
        [b0 + 10, 1],
      ],
      b: [
        [b0 + 5, 1],
        [b0 + 20, 1],
      ],
    });
    const b = boundHistory(h, new Set(["a", "b"]), undefined, 2);
    assert.deepEqual([...(b.templates.get("a")?.buckets.keys() ?? [])], [b0 + 10]);
    assert.deepEqual([...(b.templates.get("b")?.buckets.keys() ?? [])], [b0 + 20]);
    assert.equal(b.templates.get("a")?.since, (b0 + 1) * BUCKET_MS);
    assert.equal(b.templates.get("b")?.since, (b0 + 6) * BUCKET_MS);
  });

  test("seen keeps the newest ids over its bound", () => {
    const ids = Array.from({ length: MAX_SEEN + 5 }, (_, i) => i + 1);
    const b = boundHistory(stored({}, ids), new Set(), undefined);
    assert.equal(b.seen.size, MAX_SEEN);
    assert.ok(b.seen.has(MAX_SEEN + 5) && !b.seen.has(5));
  });
});
