import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AutoScaledAgentStatus } from "../api/v1/index.ts";
import { canonical, statusChanged } from "./status.ts";

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
