import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { agentFailures, type FailureMemory, noFailures } from "./failures.ts";
import type { ObservedPod } from "./types.ts";

const pod = (name: string, exit: number | null, templateIndex: number | null = 0): ObservedPod => ({
  name,
  templateIndex,
  extraAgentContainers: null,
  createdAtMs: 0,
  phase: exit === null ? "Running" : "Succeeded",
  scheduled: true,
  deleting: false,
  agentContainer: exit === null ? "running" : "terminated",
  agentExitCode: exit,
  otherContainers: [],
  createdForRequestIds: [],
});

const backoff = { initialMs: 10_000, maxMs: 60_000 };
const streak = (failures: number, lastAt: number, lastPod = "p"): FailureMemory => ({
  streaks: new Map([[0, { failures, lastAt, lastPod }]]),
  counted: new Set([lastPod]),
});

describe("agentFailures", () => {
  const cases: [string, FailureMemory, ObservedPod[], number, [number, number, number][]][] = [
    ["no failures: nothing held", noFailures, [pod("a", null), pod("b", 0)], 0, []],
    ["a first failure holds its template for the initial wait", noFailures, [pod("a", 1)], 100, [[0, 10_100, 1]]],
    ["a failure counts once", streak(1, 100, "a"), [pod("a", 1)], 200, [[0, 10_100, 1]]],
    ["a second failure doubles the wait", streak(1, 100, "a"), [pod("a", 1), pod("b", 137)], 200, [[0, 20_200, 2]]],
    ["the wait is capped", streak(9, 0, "a"), [pod("z", 1)], 0, [[0, 60_000, 10]]],
    ["after the wait, creating goes on", streak(1, 0, "a"), [], 10_000, []],
    ["an agent that ran a job (exit 0) ends the streak", streak(3, 0, "a"), [pod("ok", 0)], 1, []],
    ["pods of removed templates do not count", noFailures, [pod("x", 1, null)], 0, []],
    // Rule 5: the operator unregistered these agents itself (scale-down); they exit with an error.
    ["an idle pod being scaled down does not count", noFailures, [{ ...pod("idle", 1), idleMarkedAtMs: 5 }], 0, []],
    ["a pod being deleted does not count", noFailures, [{ ...pod("gone", 1), deleting: true }], 0, []],
    ["... nor ends a streak", streak(1, 100, "a"), [{ ...pod("idle", 0), idleMarkedAtMs: 5 }], 200, [[0, 10_100, 1]]],
  ];
  for (const [name, memory, pods, now, want] of cases) {
    test(name, () => {
      const r = agentFailures(memory, pods, now, backoff);
      assert.deepEqual(
        [...r.held].map(([i, h]) => [i, h.until, h.failures]),
        want,
      );
    });
  }
  test("pods no longer seen are forgotten, their failures stay in the streak", () => {
    const r = agentFailures(streak(2, 0, "gone"), [], 1, backoff);
    assert.deepEqual([...r.memory.counted], []);
    assert.equal(r.memory.streaks.get(0)?.failures, 2);
  });
});
