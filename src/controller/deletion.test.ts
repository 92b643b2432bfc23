import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { agentsToRemoveOnDelete } from "../placeholders/plan.ts";
import { type CleanupInput, decideCleanup } from "./deletion.ts";

const base: CleanupInput = {
  hasFinalizer: true,
  deletionStartedAt: 0,
  now: 10_000,
  timeoutMs: 120_000,
  credential: "ok",
  azureDevOpsReachable: true,
  pods: [],
};
const pod = (name: string, o: { busy?: boolean; deleting?: boolean; live?: boolean } = {}) => ({
  name,
  live: o.live ?? true,
  busy: o.busy ?? false,
  deleting: o.deleting ?? false,
});

describe("decideCleanup", () => {
  const cases: [string, Partial<CleanupInput>, string][] = [
    ["no finalizer: nothing", { hasFinalizer: false }, "nothing"],
    ["past the timeout: give up", { now: 120_000 }, "give-up"],
    ["no credential: give up at once", { credential: "missing" }, "give-up"],
    ["Azure DevOps not answering: wait", { azureDevOpsReachable: false }, "wait"],
    [
      "idle and finished pods: the idle ones are deleted",
      { pods: [pod("a"), pod("b", { live: false })] },
      "delete-pods",
    ],
    ["a pod still stopping: wait", { pods: [pod("a", { deleting: true })] }, "wait"],
    ["only busy pods: unregister (they finish their jobs)", { pods: [pod("a", { busy: true })] }, "unregister"],
    ["no pods: unregister", {}, "unregister"],
    ["unregistration failed: again", { unregistered: "failed" }, "unregister"],
    ["unregistered: done", { unregistered: "ok" }, "done"],
  ];
  for (const [name, input, step] of cases) {
    test(name, () => assert.equal(decideCleanup({ ...base, ...input }).step, step));
  }
  test("the idle pods are named", () => {
    const s = decideCleanup({ ...base, pods: [pod("a"), pod("b", { busy: true }), pod("c", { deleting: true })] });
    assert.deepEqual(s, { step: "delete-pods", pods: ["a"] });
  });
});

describe("agentsToRemoveOnDelete", () => {
  const agent = (id: number, name: string, o: { online?: boolean; busy?: boolean } = {}) => ({
    id,
    name,
    status: o.online ? "online" : "offline",
    ...(o.busy ? { assignedRequest: { requestId: 1 } } : {}),
  });
  test("the last resource on the pool takes every offline placeholder with it, the pipelines' own too", () => {
    const d = agentsToRemoveOnDelete({
      agents: [agent(1, "dummy-agent-0123456789abcdef"), agent(2, "dummy-agent-pipeline-x"), agent(3, "static")],
      wantedByThis: [],
      wantedByOthers: [],
      podNamePrefix: "agents-",
      lastOnPool: true,
    });
    assert.deepEqual(
      d.delete.map((x) => x.name),
      ["dummy-agent-0123456789abcdef", "dummy-agent-pipeline-x"],
    );
  });

  test("placeholders nobody else wants and offline agents of its pods go; online, busy and others' stay", () => {
    const d = agentsToRemoveOnDelete({
      agents: [
        agent(1, "dummy-mine"),
        agent(2, "dummy-shared"),
        agent(3, "agents-abcde"),
        agent(4, "agents-fghij", { online: true }),
        agent(5, "agents-klmno", { busy: true }),
        agent(6, "other-abcde"),
        agent(7, "static-agent"),
      ],
      wantedByThis: ["dummy-mine", "dummy-shared"],
      wantedByOthers: ["DUMMY-SHARED"],
      podNamePrefix: "agents-",
    });
    assert.deepEqual(
      d.delete.map((x) => x.name),
      ["dummy-mine", "agents-abcde"],
    );
    assert.deepEqual(
      d.kept.map((k) => [k.name, k.reason]),
      [
        ["agents-fghij", "online"],
        ["agents-klmno", "busy"],
      ],
    );
  });
});
