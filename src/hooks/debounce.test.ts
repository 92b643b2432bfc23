import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock } from "../runtime/clock.ts";
import { type DebounceState, decideDebounce, OrganizationDebouncer } from "./debounce.ts";

describe("decideDebounce (window 500 ms, now 10 000)", () => {
  const table: [string, DebounceState, ReturnType<typeof decideDebounce>][] = [
    ["never fired: fire", { lastFiredAt: undefined, scheduledAt: undefined }, { kind: "fire" }],
    ["fired a window ago: fire", { lastFiredAt: 9_500, scheduledAt: undefined }, { kind: "fire" }],
    ["fired long ago: fire", { lastFiredAt: 1_000, scheduledAt: undefined }, { kind: "fire" }],
    [
      "fired within the window: schedule at its end",
      { lastFiredAt: 9_800, scheduledAt: undefined },
      {
        kind: "schedule",
        at: 10_300,
      },
    ],
    [
      "fired just now: schedule a window later",
      { lastFiredAt: 10_000, scheduledAt: undefined },
      {
        kind: "schedule",
        at: 10_500,
      },
    ],
    ["scheduled: coalesce", { lastFiredAt: 9_800, scheduledAt: 10_300 }, { kind: "coalesce" }],
    ["scheduled, even after a long time: coalesce", { lastFiredAt: 1_000, scheduledAt: 10_300 }, { kind: "coalesce" }],
  ];
  for (const [name, state, decision] of table) {
    test(name, () => assert.deepEqual(decideDebounce(state, 10_000, 500), decision));
  }
});

describe("OrganizationDebouncer on a manual clock", () => {
  const setup = () => {
    const clock = new ManualClock(0);
    const fired: [string, number][] = [];
    const debouncer = new OrganizationDebouncer({
      windowMs: 500,
      clock,
      fire: (url) => fired.push([url, clock.now()]),
    });
    return { clock, fired, debouncer };
  };

  test("a burst polls at once, then once more at the window's end, whatever its size", () => {
    const { clock, fired, debouncer } = setup();
    assert.equal(debouncer.trigger("https://dev.azure.com/a"), "fired");
    for (let i = 0; i < 50; i++) {
      clock.advance(5);
      assert.equal(debouncer.trigger("https://dev.azure.com/a"), "coalesced");
    }
    assert.deepEqual(fired, [["https://dev.azure.com/a", 0]]);
    clock.advance(500);
    assert.deepEqual(fired, [
      ["https://dev.azure.com/a", 0],
      ["https://dev.azure.com/a", 500],
    ]);
    assert.equal(clock.pendingTimers, 0);
    // The trailing poll opened a new window.
    clock.advance(100);
    assert.equal(debouncer.trigger("https://dev.azure.com/a"), "coalesced");
    clock.advance(400);
    assert.equal(fired.at(-1)?.[1], 1000);
  });

  test("organizations are independent, and keyed in any case", () => {
    const { clock, fired, debouncer } = setup();
    assert.equal(debouncer.trigger("https://dev.azure.com/a"), "fired");
    assert.equal(debouncer.trigger("https://dev.azure.com/b"), "fired");
    assert.equal(debouncer.trigger("https://dev.azure.com/A"), "coalesced");
    clock.advance(1000);
    assert.deepEqual(
      fired.map(([url]) => url),
      ["https://dev.azure.com/a", "https://dev.azure.com/b", "https://dev.azure.com/A"],
    );
  });

  test("quiet deliveries each poll at once; idle organizations are forgotten", () => {
    const { clock, fired, debouncer } = setup();
    for (let i = 0; i < 3; i++) {
      assert.equal(debouncer.trigger("https://dev.azure.com/a"), "fired");
      clock.advance(600);
    }
    assert.equal(fired.length, 3);
    assert.equal(debouncer.trigger("https://dev.azure.com/b"), "fired");
    assert.equal(debouncer.size, 1, "a's window has passed: its state is dropped");
  });

  test("close cancels a scheduled poll", () => {
    const { clock, fired, debouncer } = setup();
    debouncer.trigger("https://dev.azure.com/a");
    debouncer.trigger("https://dev.azure.com/a");
    debouncer.close();
    clock.advance(1000);
    assert.equal(fired.length, 1);
    assert.equal(clock.pendingTimers, 0);
    assert.equal(debouncer.trigger("https://dev.azure.com/a"), "coalesced");
    assert.equal(fired.length, 1);
  });
});
