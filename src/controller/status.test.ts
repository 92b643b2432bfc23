import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AutoScaledAgent, AutoScaledAgentStatus } from "../api/v1/index.ts";
import { silentLogger } from "../runtime/logger.ts";
import { canonical, StatusWrites, statusChanged } from "./status.ts";

const condition = { type: "Ready", status: "True" as const, reason: "Scaling", message: "m", lastTransitionTime: "t1" };

describe("statusChanged", () => {
  const cases: [string, AutoScaledAgentStatus | undefined, AutoScaledAgentStatus, boolean][] = [
    ["nothing before", undefined, { poolId: 1 }, true],
    ["the same", { poolId: 1, conditions: [condition] }, { poolId: 1, conditions: [condition] }, false],
    [
      "keys in another order (as read back from the API server)",
      { pods: { starting: 0, idle: 1, busy: 0, finished: 0 }, poolId: 1 },
      { poolId: 1, pods: { busy: 0, finished: 0, idle: 1, starting: 0 } },
      false,
    ],
    [
      "only a transition time differs",
      { conditions: [condition] },
      { conditions: [{ ...condition, lastTransitionTime: "t2" }] },
      false,
    ],
    ["a count differs", { pendingJobs: 1 }, { pendingJobs: 2 }, true],
    [
      "a field another loop owns (image pre-pull) is not compared",
      { poolId: 1, imagePrePull: { desiredNodes: 1 } } as AutoScaledAgentStatus,
      { poolId: 1 },
      false,
    ],
  ];
  for (const [name, previous, next, changed] of cases) {
    test(name, () => assert.equal(statusChanged(previous, next), changed));
  }
  test("canonical drops undefined fields and sorts keys at every depth", () => {
    assert.equal(canonical({ b: [{ d: 1, c: undefined, a: 2 }], a: 1 }), '{"a":1,"b":[{"a":2,"d":1}]}');
  });
});

describe("StatusWrites", () => {
  const object = (resourceVersion: string, status?: AutoScaledAgentStatus, uid = "u-1") =>
    ({
      metadata: { namespace: "ns", name: "r", uid, resourceVersion },
      ...(status ? { status } : {}),
    }) as AutoScaledAgent;
  function setup() {
    const written: number[] = [];
    const gates: (() => void)[] = [];
    let fail = false;
    const writes = new StatusWrites(
      {
        patchStatus: async (_ns, _name, status) => {
          await new Promise<void>((release) => gates.push(release));
          if (fail) throw new Error("HTTP 500");
          written.push((status as AutoScaledAgentStatus).pendingJobs ?? -1);
          return "done";
        },
      },
      silentLogger(),
    );
    const releaseAll = async () => {
      while (gates.length > 0) {
        gates.shift()?.();
        await new Promise((r) => setImmediate(r));
      }
    };
    return { writes, written, gates, releaseAll, failNext: () => (fail = true) };
  }

  test("rule 1: one write at a time; the newest waiting status replaces the older one", async () => {
    const { writes, written, releaseAll } = setup();
    const r = object("1");
    writes.submit(r, { pendingJobs: 1 });
    writes.submit(r, { pendingJobs: 2 });
    writes.submit(r, { pendingJobs: 3 });
    await releaseAll();
    await writes.idle();
    assert.deepEqual(written, [1, 3], "2 was replaced while 1 was being written");
  });

  test("rule 2: the submitted status is the previous one until the cache has a newer object", async () => {
    const { writes, releaseAll } = setup();
    const before = object("1", { pendingJobs: 0 });
    writes.submit(before, { pendingJobs: 1 });
    assert.deepEqual(writes.previous(before), { pendingJobs: 1 }, "being written");
    await releaseAll();
    await writes.idle();
    assert.deepEqual(writes.previous(before), { pendingJobs: 1 }, "written, the cache has not caught up");
    assert.deepEqual(writes.previous(object("2", { pendingJobs: 1 })), { pendingJobs: 1 }, "the cache caught up");
    assert.deepEqual(writes.previous(object("1", { pendingJobs: 0 })), { pendingJobs: 0 }, "then the cache rules");
  });

  test("rule 2: after a failed write, or for another resource of the same name, the cache's status is used", async () => {
    const { writes, releaseAll, failNext } = setup();
    const r = object("1", { pendingJobs: 0 });
    writes.submit(r, { pendingJobs: 1 });
    assert.deepEqual(writes.previous(object("1", { pendingJobs: 0 }, "u-2")), { pendingJobs: 0 }, "a new uid");
    failNext();
    await releaseAll();
    await writes.idle();
    assert.deepEqual(writes.previous(r), { pendingJobs: 0 });
  });

  test("forget drops what was submitted", async () => {
    const { writes, releaseAll } = setup();
    const r = object("1", { pendingJobs: 0 });
    writes.submit(r, { pendingJobs: 1 });
    await releaseAll();
    await writes.idle();
    writes.forget("ns/r");
    assert.deepEqual(writes.previous(r), { pendingJobs: 0 });
  });
});
