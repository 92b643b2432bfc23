import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock } from "../runtime/clock.ts";
import {
  applyObservation,
  budgetShare,
  decidePollDelay,
  defaultGovernorPolicy,
  GovernorRegistry,
  initialRateLimitState,
  parseRetryAfter,
  RateLimitGovernor,
  type RateLimitObservation,
  type RateLimitState,
  readRateLimitHeaders,
  requestWaitMs,
} from "./governor.ts";

const now = 1_700_000_000_000;

describe("parseRetryAfter", () => {
  const table: Array<[string | null, number | undefined]> = [
    [null, undefined],
    ["", undefined],
    ["0", undefined],
    ["1", 1000],
    ["30", 30_000],
    ["1.5", 1500],
    ["-3", undefined],
    ["soon", undefined],
    [new Date(now + 10_000).toUTCString(), 10_000],
    [new Date(now - 10_000).toUTCString(), undefined],
  ];
  for (const [value, expected] of table) {
    test(JSON.stringify(value), () => assert.equal(parseRetryAfter(value, now), expected));
  }
});

describe("readRateLimitHeaders", () => {
  test("reads every header", () => {
    const headers = new Headers({
      "Retry-After": "2",
      "X-RateLimit-Limit": "200",
      "X-RateLimit-Remaining": "37",
      "X-RateLimit-Reset": String(now / 1000 + 120),
      "X-RateLimit-Delay": "0.250",
      "X-RateLimit-Resource": "Core",
    });
    assert.deepEqual(
      readRateLimitHeaders(200, (n) => headers.get(n), now),
      {
        status: 200,
        retryAfterMs: 2000,
        limit: 200,
        remaining: 37,
        resetAt: now + 120_000,
        delayMs: 250,
      } satisfies RateLimitObservation,
    );
  });

  test("absent and garbage headers are undefined", () => {
    const headers = new Headers({ "X-RateLimit-Limit": "lots" });
    const o = readRateLimitHeaders(200, (n) => headers.get(n), now);
    assert.equal(o.limit, undefined);
    assert.equal(o.remaining, undefined);
    assert.equal(o.retryAfterMs, undefined);
  });
});

describe("applyObservation", () => {
  const budget = { limit: 200, remaining: 40, resetAt: now + 60_000 };
  const cases: Array<{
    name: string;
    state?: RateLimitState;
    obs: RateLimitObservation;
    expect: Partial<RateLimitState>;
  }> = [
    { name: "plain 200 changes nothing", obs: { status: 200 }, expect: { blockedUntil: 0, consecutiveBlocks: 0 } },
    {
      name: "Retry-After on 200 blocks",
      obs: { status: 200, retryAfterMs: 3000 },
      expect: { blockedUntil: now + 3000 },
    },
    {
      name: "a shorter Retry-After does not shorten a block",
      state: { ...initialRateLimitState, blockedUntil: now + 10_000 },
      obs: { status: 200, retryAfterMs: 1000 },
      expect: { blockedUntil: now + 10_000 },
    },
    {
      name: "429 with Retry-After",
      obs: { status: 429, retryAfterMs: 5000 },
      expect: { blockedUntil: now + 5000, consecutiveBlocks: 1 },
    },
    {
      name: "first bare 429 backs off the initial delay",
      obs: { status: 429 },
      expect: { blockedUntil: now + defaultGovernorPolicy.blockBackoff.initialMs, consecutiveBlocks: 1 },
    },
    {
      name: "third bare 429 in a row backs off 4x",
      state: { ...initialRateLimitState, consecutiveBlocks: 2 },
      obs: { status: 429 },
      expect: { blockedUntil: now + 4 * defaultGovernorPolicy.blockBackoff.initialMs, consecutiveBlocks: 3 },
    },
    {
      name: "a success resets the 429 count",
      state: { ...initialRateLimitState, consecutiveBlocks: 4 },
      obs: { status: 200 },
      expect: { consecutiveBlocks: 0 },
    },
    {
      name: "budget headers are kept",
      obs: { status: 200, ...budget },
      expect: { ...budget, observedAt: now },
    },
    {
      name: "an answer without budget headers clears the budget",
      state: { ...initialRateLimitState, ...budget, observedAt: now - 1000 },
      obs: { status: 200 },
      expect: { limit: undefined, remaining: undefined, resetAt: undefined },
    },
    {
      name: "a bare 429 keeps the limit and sets remaining to 0",
      state: { ...initialRateLimitState, ...budget, observedAt: now - 1000 },
      obs: { status: 429 },
      expect: { limit: 200, remaining: 0, resetAt: budget.resetAt },
    },
    {
      name: "X-RateLimit-Delay is remembered",
      obs: { status: 200, delayMs: 200 },
      expect: { delayedAt: now },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const next = applyObservation(c.state ?? initialRateLimitState, c.obs, now, defaultGovernorPolicy, () => 0);
      for (const [k, v] of Object.entries(c.expect)) {
        assert.equal(next[k as keyof RateLimitState], v, k);
      }
    });
  }

  test("a bare 429's backoff has jitter", () => {
    const early = applyObservation(initialRateLimitState, { status: 429 }, now, defaultGovernorPolicy, () => 0.99);
    assert.ok(early.blockedUntil < now + defaultGovernorPolicy.blockBackoff.initialMs);
    assert.ok(early.blockedUntil > now);
  });
});

describe("requestWaitMs", () => {
  test("until the block ends, then 0", () => {
    const s = { ...initialRateLimitState, blockedUntil: now + 1500 };
    assert.equal(requestWaitMs(s, now), 1500);
    assert.equal(requestWaitMs(s, now + 1500), 0);
    assert.equal(requestWaitMs(s, now + 5000), 0);
  });
});

describe("decidePollDelay", () => {
  const base = 5000;
  const withBudget = (remaining: number, resetIn = 60_000, limit = 200): RateLimitState => ({
    ...initialRateLimitState,
    limit,
    remaining,
    resetAt: now + resetIn,
    observedAt: now,
  });
  const cases: Array<{
    name: string;
    state: RateLimitState;
    at?: number;
    callsPerPoll?: number;
    consumers?: number;
    delayMs: number;
    reason: string;
  }> = [
    { name: "no information: base", state: initialRateLimitState, delayMs: base, reason: "base" },
    { name: "plenty left (60%)", state: withBudget(120), delayMs: base, reason: "base" },
    { name: "half used: 2x", state: withBudget(99), delayMs: 2 * base, reason: "low-budget" },
    {
      name: "under 25%: 4x or spread, whichever is longer",
      state: withBudget(40, 60_000),
      // spread: 60 s / 40 = 1.5 s < 4 x 5 s
      delayMs: 4 * base,
      reason: "low-budget",
    },
    {
      name: "under 25% with a long reset: spread the rest",
      state: withBudget(40, 240_000),
      // 240 s * 2 calls * 1 poller / 40 = 12 s < 20 s, so 4x
      callsPerPoll: 2,
      delayMs: 20_000,
      reason: "low-budget",
    },
    {
      name: "under 10%: spread over pollers and calls",
      state: withBudget(10, 240_000),
      // 240 s * 2 calls * 3 pollers / 10 = 144 s > 8 x 5 s
      callsPerPoll: 2,
      consumers: 3,
      delayMs: 144_000,
      reason: "low-budget",
    },
    {
      name: "spreading is capped",
      state: withBudget(1, 3_600_000),
      delayMs: defaultGovernorPolicy.maxPollDelayMs,
      reason: "low-budget",
    },
    {
      name: "budget past its reset is ignored",
      state: withBudget(1, 60_000),
      at: now + 61_000,
      delayMs: base,
      reason: "base",
    },
    {
      name: "budget without reset expires after the window",
      state: { ...initialRateLimitState, limit: 200, remaining: 1, observedAt: now },
      at: now + defaultGovernorPolicy.budgetMemoryMs,
      delayMs: base,
      reason: "base",
    },
    {
      name: "the service delayed a request recently: 2x",
      state: { ...initialRateLimitState, delayedAt: now - 10_000 },
      delayMs: 2 * base,
      reason: "delayed",
    },
    {
      name: "a delay long ago is forgotten",
      state: { ...initialRateLimitState, delayedAt: now - defaultGovernorPolicy.delayMemoryMs },
      delayMs: base,
      reason: "base",
    },
    {
      name: "Retry-After longer than the pacing wins",
      state: { ...initialRateLimitState, blockedUntil: now + 42_000 },
      delayMs: 42_000,
      reason: "blocked",
    },
    {
      name: "Retry-After shorter than the base: base",
      state: { ...initialRateLimitState, blockedUntil: now + 1000 },
      delayMs: base,
      reason: "base",
    },
    {
      name: "Retry-After beyond the pacing cap is still honoured",
      state: { ...initialRateLimitState, blockedUntil: now + 3_600_000 },
      delayMs: 3_600_000,
      reason: "blocked",
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const d = decidePollDelay(c.state, {
        baseMs: base,
        now: c.at ?? now,
        callsPerPoll: c.callsPerPoll ?? 1,
        consumers: c.consumers ?? 1,
      });
      assert.deepEqual(d, { delayMs: c.delayMs, reason: c.reason });
    });
  }

  test("the delay never goes below the base, whatever the budget", () => {
    for (let remaining = 0; remaining <= 200; remaining += 7) {
      for (const resetIn of [0, 1000, 60_000, 300_000]) {
        const d = decidePollDelay(withBudget(remaining, resetIn), { baseMs: base, now });
        assert.ok(d.delayMs >= base, `remaining ${remaining} reset ${resetIn}: ${d.delayMs}`);
      }
    }
  });

  test("less budget never means faster polling", () => {
    let previous = 0;
    for (let remaining = 200; remaining >= 0; remaining--) {
      const d = decidePollDelay(withBudget(remaining, 120_000), { baseMs: base, now, callsPerPoll: 2 });
      assert.ok(d.delayMs >= previous, `remaining ${remaining}: ${d.delayMs} < ${previous}`);
      previous = d.delayMs;
    }
  });
});

describe("RateLimitGovernor", () => {
  test("observes headers on the injected clock and paces pollers", () => {
    const clock = new ManualClock(now);
    const governor = new RateLimitGovernor("pat:x", { clock, random: () => 0 });
    governor.observe(200, (n) => new Headers({ "Retry-After": "3" }).get(n));
    assert.equal(governor.requestWaitMs(), 3000);
    assert.deepEqual(governor.pollDelay(1000), { delayMs: 3000, reason: "blocked" });
    clock.advance(3000);
    assert.equal(governor.requestWaitMs(), 0);
    assert.deepEqual(governor.pollDelay(1000), { delayMs: 1000, reason: "base" });
  });

  test("attach counts pollers; detaching twice counts once", () => {
    const governor = new RateLimitGovernor("pat:x");
    const a = governor.attach();
    const b = governor.attach();
    assert.equal(governor.consumers, 2);
    a();
    a();
    assert.equal(governor.consumers, 1);
    b();
    assert.equal(governor.consumers, 0);
  });

  test("the identity's polling budget is shared evenly by its pollers", () => {
    const governor = new RateLimitGovernor("pat:x", {
      policy: { pollBudgetPerMinute: 30, poolPollBudgetPerMinute: Number.POSITIVE_INFINITY },
    });
    assert.equal(governor.budgetShare(), 30, "no poller yet: the whole budget");
    const a = governor.attach();
    const b = governor.attach();
    const c = governor.attach();
    assert.equal(governor.budgetShare(), 10);
    c();
    assert.equal(governor.budgetShare(), 15);
    a();
    b();
  });

  test("budgetShare: a budget of 0 (or none) is no budget of our own; a pool gets at most its cap", () => {
    const none = Number.POSITIVE_INFINITY;
    for (const [budget, pollers, perPool, share] of [
      [20, 1, none, 20],
      [20, 4, none, 5],
      [20, 0, none, 20],
      [0, 3, none, none],
      [none, 3, none, none],
      // The defaults: 40 an identity, 20 a pool.
      [40, 1, 20, 20],
      [40, 2, 20, 20],
      [40, 5, 20, 8],
      [40, 10, 20, 4],
      // A cap of 0 is no cap; no budget is no cap either.
      [40, 1, 0, 40],
      [0, 1, 20, none],
    ] as const) {
      assert.equal(budgetShare(budget, pollers, perPool), share, `${budget} over ${pollers}, cap ${perPool}`);
    }
  });

  test("the registry shares one governor per identity", () => {
    const registry = new GovernorRegistry();
    assert.equal(registry.get("pat:a"), registry.get("pat:a"));
    assert.notEqual(registry.get("pat:a"), registry.get("pat:b"));
    assert.equal(registry.size, 2);
  });
});
