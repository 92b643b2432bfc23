import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { capabilitiesFromEnv } from "./agent-program.ts";
import { defaultIsAgentContainer, defaultIsPullable } from "./programs.ts";
import { type ContainerRecord, computePhase, containerStatus, mergeConditions, podConditions } from "./status.ts";

const rec = (name: string, kind: ContainerRecord["kind"], state: ContainerRecord["state"]): ContainerRecord => ({
  name,
  kind,
  image: "x",
  state,
  lastState: {},
  restartCount: 0,
  started: Boolean(state.running),
});
const running = { running: { startedAt: "t" } };
const waiting = { waiting: { reason: "ContainerCreating" } };
const done = (exitCode: number) => ({
  terminated: { exitCode, reason: exitCode ? "Error" : "Completed", finishedAt: "t" },
});

describe("computePhase", () => {
  const cases: [string, ContainerRecord[], "Always" | "OnFailure" | "Never", string, string?][] = [
    ["nothing started", [rec("a", "main", waiting)], "Never", "Pending"],
    ["init running", [rec("i", "init", running), rec("a", "main", waiting)], "Never", "Pending"],
    ["init failed, Never", [rec("i", "init", done(1)), rec("a", "main", waiting)], "Never", "Failed"],
    ["main running", [rec("i", "init", done(0)), rec("a", "main", running)], "Never", "Running"],
    ["all main exit 0", [rec("a", "main", done(0)), rec("b", "main", done(0))], "Never", "Succeeded"],
    ["one main failed", [rec("a", "main", done(0)), rec("b", "main", done(2))], "Never", "Failed"],
    ["classic sidecar still running", [rec("a", "main", done(0)), rec("s", "main", running)], "Never", "Running"],
    [
      "native sidecar still running: not terminal until the kubelet has stopped it",
      [rec("s", "sidecar", running), rec("a", "main", done(0))],
      "Never",
      "Running",
    ],
    [
      "native sidecar stopped: terminal",
      [rec("s", "sidecar", done(143)), rec("a", "main", done(0))],
      "Never",
      "Succeeded",
    ],
    ["OnFailure, failed: restarting", [rec("a", "main", done(1))], "OnFailure", "Running"],
    ["Always never completes", [rec("a", "main", done(0))], "Always", "Running"],
    ["terminal phase is sticky", [rec("a", "main", running)], "Never", "Succeeded", "Succeeded"],
  ];
  for (const [name, records, policy, expected, previous] of cases) {
    test(name, () => assert.equal(computePhase(records, policy, previous as never), expected));
  }
});

describe("podConditions and mergeConditions", () => {
  test("ready only when every non-init container runs; PodCompleted when terminal", () => {
    const notReady = podConditions([rec("a", "main", running), rec("s", "sidecar", waiting)], "Running", true);
    const ready = notReady.find((c) => c.type === "Ready");
    assert.equal(ready?.status, "False");
    assert.equal(ready?.message, "containers with unready status: [s]");
    const finished = podConditions([rec("a", "main", done(0))], "Succeeded", true);
    assert.equal(finished.find((c) => c.type === "Ready")?.reason, "PodCompleted");
  });
  test("lastTransitionTime moves only when the status changes", () => {
    const first = mergeConditions(undefined, [{ type: "Ready", status: "False" }], "t1");
    const same = mergeConditions(first, [{ type: "Ready", status: "False" }], "t2");
    const flipped = mergeConditions(same, [{ type: "Ready", status: "True" }], "t3");
    assert.deepEqual(
      [first[0]?.lastTransitionTime, same[0]?.lastTransitionTime, flipped[0]?.lastTransitionTime],
      ["t1", "t1", "t3"],
    );
  });
});

describe("containerStatus", () => {
  test("imageID: empty until a container of the image was created, then the image's digest reference", () => {
    const waitingRecord = { ...rec("a", "main", waiting), image: "busybox:1.36" };
    assert.equal(containerStatus(waitingRecord).imageID, "");
    const created = { ...rec("a", "main", running), image: "busybox:1.36", containerID: "sim://x" };
    assert.match(containerStatus(created).imageID, /^docker\.io\/library\/busybox@sha256:[0-9a-f]{64}$/);
  });
});

describe("agent and image rules", () => {
  test("capabilities from the environment drop credentials, ignored names and long values", () => {
    const caps = capabilitiesFromEnv({
      AZP_URL: "u",
      AZP_TOKEN: "secret",
      VSO_AGENT_IGNORE: "MY_SECRET, other",
      MY_SECRET: "x",
      OTHER: "y",
      buildkit: "1",
      LONG: "z".repeat(1024),
    });
    assert.deepEqual(caps, { AZP_URL: "u", buildkit: "1" });
  });
  test("pullable and agent images", () => {
    assert.equal(defaultIsPullable("registry/does-not-exist:1"), false);
    assert.equal(defaultIsPullable("busybox:unpullable"), false);
    assert.equal(defaultIsPullable("busybox"), true);
    assert.equal(defaultIsAgentContainer("example.com/azure-pipelines-agent:1", {}), true);
    assert.equal(defaultIsAgentContainer("custom:1", { AZP_URL: "u", AZP_POOL: "p" }), true);
    assert.equal(defaultIsAgentContainer("busybox", { AZP_URL: "u" }), false);
  });
});
