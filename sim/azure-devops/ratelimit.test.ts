import assert from "node:assert/strict";
import { test } from "node:test";
import { RateLimiter } from "./ratelimit.ts";

const t0 = Date.UTC(2025, 0, 1, 12, 0, 0);

test("rate limiting is off by default: no headers, never blocked", () => {
  const limiter = new RateLimiter({ budget: 1 });
  for (let i = 0; i < 10; i++) {
    const d = limiter.evaluate("u", t0 + i);
    assert.equal(d.action, "allow");
    assert.deepEqual(d.headers, {});
  }
});

test("usage walks from allowed (quiet), to allowed with headers, to delayed, to blocked", () => {
  const limiter = new RateLimiter({
    enabled: true,
    budget: 10,
    windowMs: 60_000,
    headersThreshold: 0.5,
    delayThreshold: 0.8,
    delayMs: 250,
  });
  const actions = Array.from({ length: 12 }, (_, i) => limiter.evaluate("u", t0 + i * 1000));
  const table = actions.map((d) => [d.action, d.headers["X-RateLimit-Remaining"] ?? "-"]);
  assert.deepEqual(table, [
    ["allow", "-"], // usage 1
    ["allow", "-"],
    ["allow", "-"],
    ["allow", "-"],
    ["allow", "5"], // usage 5: half the budget, headers from here on
    ["allow", "4"],
    ["allow", "3"],
    ["allow", "2"], // usage 8 = 0.8 of the budget: not above it
    ["delay", "1"], // usage 9
    ["delay", "0"], // usage 10: the last one that fits
    ["block", "0"], // would be 11
    ["block", "0"],
  ]);
  const delayed = actions[8];
  assert.equal(delayed?.delayMs, 250);
  assert.equal(delayed?.headers["X-RateLimit-Delay"], "0.250");
  assert.equal(delayed?.headers["Retry-After"], "1");
  assert.equal(delayed?.headers["X-RateLimit-Resource"], "Core");
  assert.equal(delayed?.headers["X-RateLimit-Limit"], "10");
  const blocked = actions[10];
  assert.equal(blocked?.headers["X-RateLimit-Delay"], undefined);
  // The oldest charge (t0) leaves the window at t0 + 60 s; the request came at t0 + 10 s.
  assert.equal(blocked?.headers["Retry-After"], "50");
  // Usage would be back to 0 one window after the last charge (t0 + 9 s).
  assert.equal(blocked?.headers["X-RateLimit-Reset"], String(Math.ceil((t0 + 9_000 + 60_000) / 1000)));
  // Blocked requests cost nothing.
  assert.equal(limiter.usage("u", t0 + 11_000), 10);
});

test("the window slides: old charges stop counting", () => {
  const limiter = new RateLimiter({ enabled: true, budget: 3, windowMs: 10_000, delayThreshold: 1 });
  assert.equal(limiter.evaluate("u", t0).action, "allow");
  assert.equal(limiter.evaluate("u", t0 + 4_000).action, "allow");
  assert.equal(limiter.evaluate("u", t0 + 5_000).action, "allow");
  assert.equal(limiter.evaluate("u", t0 + 6_000).action, "block");
  assert.equal(limiter.evaluate("u", t0 + 9_999).action, "block"); // the first charge is still in the window
  assert.equal(limiter.evaluate("u", t0 + 10_000).action, "allow"); // a window old: out
  assert.equal(limiter.usage("u", t0 + 10_000), 3);
  assert.equal(limiter.usage("u", t0 + 30_000), 0);
});

test("budgets are per identity, costs are configurable", () => {
  const limiter = new RateLimiter({ enabled: true, budget: 10, costPerRequest: 5, delayThreshold: 1 });
  assert.equal(limiter.evaluate("a", t0).action, "allow");
  assert.equal(limiter.evaluate("a", t0).action, "allow");
  assert.equal(limiter.evaluate("a", t0).action, "block");
  assert.equal(limiter.evaluate("b", t0).action, "allow");
  assert.equal(limiter.evaluate("b", t0, { cost: 6 }).action, "block");
  assert.equal(limiter.evaluate("b", t0, { cost: 5 }).action, "allow");
});

test("forced decisions (fault injection) apply even when rate limiting is off", () => {
  const limiter = new RateLimiter();
  const blocked = limiter.evaluate("u", t0, { force: "block" });
  assert.equal(blocked.action, "block");
  assert.ok(Number(blocked.headers["Retry-After"]) >= 1);
  const delayed = limiter.evaluate("u", t0, { force: "delay" });
  assert.equal(delayed.action, "delay");
  assert.ok(delayed.headers["X-RateLimit-Delay"]);
});

test("configure changes settings and keeps usage; reset forgets usage", () => {
  const limiter = new RateLimiter({ enabled: true, budget: 2, delayThreshold: 1 });
  limiter.evaluate("u", t0);
  limiter.evaluate("u", t0);
  assert.equal(limiter.evaluate("u", t0).action, "block");
  limiter.configure({ budget: 3 });
  assert.equal(limiter.evaluate("u", t0).action, "allow");
  limiter.reset();
  assert.equal(limiter.usage("u", t0), 0);
  limiter.configure({ enabled: false });
  assert.equal(limiter.evaluate("u", t0).action, "allow");
});
