import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Lanes, tasksToStart } from "./lanes.ts";

describe("tasksToStart", () => {
  const cases: [string[], number, number, string[]][] = [
    [["a", "b", "c"], 0, 2, ["a", "b"]],
    [["a", "b", "c"], 1, 2, ["a"]],
    [["a"], 2, 2, []],
    [["a"], 5, 2, []],
    [[], 0, 2, []],
  ];
  for (const [queued, running, concurrency, want] of cases) {
    test(`${queued.join(",") || "none"} queued, ${running} running, ${concurrency} at once`, () =>
      assert.deepEqual(tasksToStart(queued, running, concurrency), want));
  }
});

/** A task that runs until released. */
function held(log: string[], name: string) {
  let release = () => {};
  const done = new Promise<void>((r) => {
    release = r;
  });
  return {
    release,
    task: {
      key: name,
      run: async () => {
        log.push(`start ${name}`);
        await done;
        log.push(`end ${name}`);
      },
    },
  };
}

describe("Lanes", () => {
  test("bounded per organization; another organization is not held up", async () => {
    const lanes = new Lanes({ concurrency: 1 });
    const log: string[] = [];
    const a1 = held(log, "a1");
    const a2 = held(log, "a2");
    const b1 = held(log, "b1");
    lanes.submit("slow.example", a1.task);
    lanes.submit("slow.example", a2.task);
    lanes.submit("fast.example", b1.task);
    await Promise.resolve();
    assert.deepEqual(log, ["start a1", "start b1"]);
    b1.release();
    a1.release();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(log.slice(2).sort(), ["end a1", "end b1", "start a2"]);
    a2.release();
    await lanes.idle();
    assert.equal(lanes.has("a2"), false);
  });

  test("a key queued or running is not added twice; a failing task does not stop the lane", async () => {
    const lanes = new Lanes({ concurrency: 1 });
    const log: string[] = [];
    const x = held(log, "x");
    assert.equal(lanes.submit("o", x.task), true);
    assert.equal(lanes.submit("o", x.task), false);
    assert.equal(
      lanes.submit("o", {
        key: "boom",
        run: async () => {
          throw new Error("boom");
        },
      }),
      true,
    );
    const after = held(log, "after");
    lanes.submit("o", after.task);
    x.release();
    after.release();
    await lanes.idle();
    assert.deepEqual(log, ["start x", "end x", "start after", "end after"]);
  });

  test("close drops queued tasks, waits for running ones, and takes no new ones", async () => {
    const lanes = new Lanes({ concurrency: 1 });
    const log: string[] = [];
    const r = held(log, "running");
    const q = held(log, "queued");
    lanes.submit("o", r.task);
    lanes.submit("o", q.task);
    const closed = lanes.close();
    assert.equal(lanes.submit("o", held(log, "late").task), false);
    r.release();
    await closed;
    assert.deepEqual(log, ["start running", "end running"]);
  });
});
