import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock, settle } from "../runtime/clock.ts";
import { ExponentialRateLimiter, WorkQueue } from "./workqueue.ts";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("WorkQueue basics", () => {
  test("a key queued twice is handed out once, in order of first add", async () => {
    const q = new WorkQueue({ clock: new ManualClock() });
    q.add("a");
    q.add("b");
    q.add("a");
    assert.equal(q.length, 2);
    assert.equal(await q.get(), "a");
    assert.equal(await q.get(), "b");
    assert.equal(q.length, 0);
  });

  test("a key added while processing is not handed to a second worker, and comes back after done", async () => {
    const q = new WorkQueue({ clock: new ManualClock() });
    q.add("a");
    const key = await q.get();
    assert.equal(key, "a");
    q.add("a");
    q.add("a");
    assert.equal(q.length, 0, "not queued while processing");
    let second: string | undefined;
    void q.get().then((k) => {
      second = k;
    });
    await settle();
    assert.equal(second, undefined, "a waiting worker does not get the busy key");
    q.done("a");
    await settle();
    assert.equal(second, "a", "re-queued once after done");
    q.done("a");
    assert.equal(q.length, 0);
  });

  test("get waits for an add", async () => {
    const q = new WorkQueue({ clock: new ManualClock() });
    const p = q.get();
    q.add("x");
    assert.equal(await p, "x");
  });
});

describe("ExponentialRateLimiter", () => {
  const table: { base: number; max: number; expected: number[] }[] = [
    { base: 10, max: 100, expected: [10, 20, 40, 80, 100, 100, 100] },
    { base: 5, max: 5, expected: [5, 5, 5] },
    { base: 200, max: 300_000, expected: [200, 400, 800, 1600, 3200] },
  ];
  for (const { base, max, expected } of table) {
    test(`base ${base} max ${max}: ${expected.join(", ")}`, () => {
      const rl = new ExponentialRateLimiter({ baseMs: base, maxMs: max });
      assert.deepEqual(
        expected.map(() => rl.when("k")),
        expected,
      );
      assert.equal(rl.retries("k"), expected.length);
    });
  }

  test("the cap holds after very many failures", () => {
    const rl = new ExponentialRateLimiter({ baseMs: 1, maxMs: 1000 });
    let d = 0;
    for (let i = 0; i < 5000; i++) d = rl.when("k");
    assert.equal(d, 1000);
  });

  test("keys are independent and forget starts over", () => {
    const rl = new ExponentialRateLimiter({ baseMs: 10, maxMs: 1000 });
    rl.when("a");
    rl.when("a");
    assert.equal(rl.when("b"), 10);
    assert.equal(rl.when("a"), 40);
    rl.forget("a");
    assert.equal(rl.retries("a"), 0);
    assert.equal(rl.when("a"), 10);
  });

  test("rejects nonsense options", () => {
    assert.throws(() => new ExponentialRateLimiter({ baseMs: 0 }));
    assert.throws(() => new ExponentialRateLimiter({ baseMs: 10, maxMs: 5 }));
  });
});

describe("WorkQueue delays", () => {
  test("addRateLimited delays grow per key until forget", async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock, rateLimiter: { baseMs: 100, maxMs: 1000 } });
    const readyAfter = async (): Promise<number> => {
      const start = clock.now();
      q.addRateLimited("k");
      for (;;) {
        if (q.length > 0) break;
        const due = clock.nextDue();
        assert.ok(due !== undefined, "a timer is pending");
        await clock.tick(due - clock.now());
      }
      const k = await q.get();
      q.done(k as string);
      return clock.now() - start;
    };
    assert.equal(await readyAfter(), 100);
    assert.equal(await readyAfter(), 200);
    assert.equal(await readyAfter(), 400);
    assert.equal(await readyAfter(), 800);
    assert.equal(await readyAfter(), 1000);
    assert.equal(await readyAfter(), 1000);
    assert.equal(q.retries("k"), 6);
    q.forget("k");
    assert.equal(await readyAfter(), 100);
  });

  test("addAfter hands keys out in due order, not call order", async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    q.addAfter("c", 300);
    q.addAfter("a", 100);
    q.addAfter("b", 200);
    q.addAfter("now", 0);
    assert.equal(q.length, 1);
    await clock.tick(99);
    assert.equal(q.length, 1);
    await clock.tick(1000);
    const got: (string | undefined)[] = [];
    while (q.length > 0) got.push(await q.get());
    assert.deepEqual(got, ["now", "a", "b", "c"]);
  });

  test("of two schedules for one key the earlier wins, and the key comes once", async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    q.addAfter("x", 500);
    q.addAfter("x", 100);
    q.addAfter("x", 300);
    assert.equal(q.stats().waiting, 1);
    await clock.tick(100);
    assert.equal(q.length, 1);
    await clock.tick(1000);
    assert.equal(q.length, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  test("an immediate add does not cancel a scheduled one", async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    q.addAfter("x", 100);
    q.add("x");
    const k = await q.get();
    q.done(k as string);
    assert.equal(q.length, 0);
    await clock.tick(100);
    assert.equal(q.length, 1);
  });
});

describe("WorkQueue.run", () => {
  test("N workers run different keys in parallel, one key never twice at once", async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    const running = new Map<string, number>();
    let maxParallel = 0;
    let maxSameKey = 0;
    const calls: string[] = [];
    const gates = new Map<string, ReturnType<typeof deferred>>();
    const workers = q.run(
      async (key) => {
        calls.push(key);
        running.set(key, (running.get(key) ?? 0) + 1);
        maxSameKey = Math.max(maxSameKey, running.get(key) ?? 0);
        maxParallel = Math.max(
          maxParallel,
          [...running.values()].reduce((a, b) => a + b, 0),
        );
        const gate = deferred();
        gates.set(key, gate);
        await gate.promise;
        running.set(key, (running.get(key) ?? 1) - 1);
      },
      { workers: 3 },
    );
    q.add("a");
    q.add("b");
    q.add("c");
    await settle();
    assert.equal(maxParallel, 3);
    q.add("a"); // while a is running
    q.add("a");
    await settle();
    assert.deepEqual(calls, ["a", "b", "c"]);
    gates.get("b")?.resolve();
    await settle();
    assert.deepEqual(calls, ["a", "b", "c"], "a free worker does not take the busy key");
    gates.get("a")?.resolve();
    await settle();
    assert.deepEqual(calls, ["a", "b", "c", "a"], "a runs again once, after the first run");
    gates.get("a")?.resolve();
    gates.get("c")?.resolve();
    await settle();
    assert.equal(maxSameKey, 1);
    await q.shutdown();
    await workers;
  });

  test("a throw requeues with backoff, success forgets, requeueAfterMs schedules", async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock, rateLimiter: { baseMs: 50, maxMs: 1000 } });
    const seen: { key: string; at: number }[] = [];
    let failuresLeft = 2;
    const start = clock.now();
    const workers = q.run(async (key) => {
      seen.push({ key, at: clock.now() - start });
      if (key === "flaky" && failuresLeft-- > 0) throw new Error("boom");
      if (key === "periodic" && seen.filter((s) => s.key === "periodic").length < 2) return { requeueAfterMs: 500 };
      return undefined;
    });
    q.add("flaky");
    q.add("periodic");
    await clock.tick(0);
    await clock.tick(2000);
    assert.deepEqual(seen, [
      { key: "flaky", at: 0 },
      { key: "periodic", at: 0 },
      { key: "flaky", at: 50 },
      { key: "flaky", at: 150 },
      { key: "periodic", at: 500 },
    ]);
    assert.equal(q.retries("flaky"), 0, "forgotten after success");
    await q.shutdown();
    await workers;
  });
});

describe("WorkQueue shutdown", () => {
  test("drain: queued keys are still processed, new adds ignored, resolves when idle", async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    const done: string[] = [];
    const gate = deferred();
    q.add("a");
    q.add("b");
    q.addAfter("later", 100);
    const workers = q.run(async (key) => {
      await gate.promise;
      done.push(key);
    });
    await settle();
    let finished = false;
    const shut = q.shutdown({ drain: true }).then(() => {
      finished = true;
    });
    q.add("c");
    await settle();
    assert.equal(finished, false);
    gate.resolve();
    await shut;
    await workers;
    assert.deepEqual(done, ["a", "b"]);
    assert.equal(clock.pendingTimers, 0, "scheduled keys cancelled");
    assert.equal(await q.get(), undefined);
  });

  test("no drain: queued keys dropped, running handlers see their signal abort", async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    const done: string[] = [];
    let sawAbort = false;
    q.add("a");
    q.add("b");
    q.add("c");
    const workers = q.run(async (key, signal) => {
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      sawAbort = signal.aborted;
      done.push(key);
    });
    await settle();
    await q.shutdown({ drain: false });
    await workers;
    assert.equal(sawAbort, true);
    assert.deepEqual(done, ["a"]);
    assert.equal(q.length, 0);
  });

  test("get after shutdown returns undefined at once; waiting gets are released", async () => {
    const q = new WorkQueue({ clock: new ManualClock() });
    const waiting = q.get();
    await q.shutdown();
    assert.equal(await waiting, undefined);
    assert.equal(await q.get(), undefined);
  });
});
