import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backoffDelay } from "./backoff.ts";
import { delay, formatMicroTime, ManualClock } from "./clock.ts";
import { keptIn } from "./memo.ts";

describe("backoffDelay", () => {
  const opts = { initialMs: 100, maxMs: 1000 };
  const table: [number, number][] = [
    [0, 100],
    [1, 200],
    [3, 800],
    [4, 1000],
    [50, 1000],
    [1e9, 1000],
  ];
  for (const [attempt, expected] of table) {
    test(`attempt ${attempt}: ${expected} ms`, () => assert.equal(backoffDelay(attempt, opts), expected));
  }
  test("jitter only shortens, never exceeds the cap", () => {
    assert.equal(
      backoffDelay(10, { ...opts, jitter: 0.5 }, () => 0.999999),
      500,
    );
    assert.equal(
      backoffDelay(10, { ...opts, jitter: 0.5 }, () => 0),
      1000,
    );
    assert.equal(
      backoffDelay(0, { ...opts, factor: 3, jitter: 0.2 }, () => 0.5),
      90,
    );
  });
});

describe("clock", () => {
  test("formatMicroTime has six fractional digits", () => {
    assert.equal(formatMicroTime(Date.UTC(2024, 0, 2, 3, 4, 5, 678)), "2024-01-02T03:04:05.678000Z");
  });
  test("delay resolves true on time, false on abort, and clears its timer", async () => {
    const clock = new ManualClock();
    const p = delay(clock, 100);
    await clock.tick(100);
    assert.equal(await p, true);
    const ac = new AbortController();
    const q = delay(clock, 100, ac.signal);
    ac.abort();
    assert.equal(await q, false);
    assert.equal(clock.pendingTimers, 0);
  });
});

describe("keptIn", () => {
  test("makes a value once per key, in a Map or a WeakMap", () => {
    let made = 0;
    const make = () => ++made;
    const byValue = new Map<string, number>();
    assert.equal(keptIn(byValue, "a", make), 1);
    assert.equal(keptIn(byValue, "a", make), 1);
    assert.equal(keptIn(byValue, "b", make), 2);
    const key = {};
    const byObject = new WeakMap<object, number>();
    assert.equal(keptIn(byObject, key, make), 3);
    assert.equal(keptIn(byObject, key, make), 3);
    assert.equal(made, 3);
  });
});
