/**
 * End to end, the operator running as its own process: queued jobs get pods, each agent runs exactly one job,
 * finished pods are cleaned up keeping the newest, sidecars are stopped, maxCount holds.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type OperatorProcess, startOperatorProcess } from "../support/operator.ts";
import { eventually, startWorld, type World } from "../support/world.ts";

describe("operator: scaling to queued jobs", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    world = await startWorld();
    await world.placeholder({ buildkit: "1" });
    await world.placeholder({ kubectl: "1" });
    operator = startOperatorProcess({ kubeconfig: world.cluster.kubeconfig, namespaces: [world.ns] });
    await operator.waitForLog(/caches synced/);
  });
  after(async () => {
    await operator?.stop();
    await world?.close();
  });

  test("one job: a pod is created, its agent runs the job, and the finished pod is kept (maxTerminatedPodsToKeep)", async () => {
    await world.createResource("one", {
      maxTerminatedPodsToKeep: 1,
      podsWithCapabilities: [{ capabilities: { buildkit: "1" }, minCount: 0, maxCount: 3, podTemplateSpec: world.template() }],
    });
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["buildkit"], durationMs: 500 });
    const finished = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", { timeoutMs: 90_000 });
    assert.equal(finished.result, "succeeded");
    const pods = await world.pods("one");
    assert.equal(pods.length, 1, "exactly one pod for one job");
    assert.equal(finished.reservedAgent?.name, pods[0]?.metadata.name, "the agent is named after its pod");
    await eventually("pod Succeeded", async () => ((await world.pods("one"))[0]?.status?.phase === "Succeeded" ? true : undefined));
    const asa = await world.getResource("one");
    const ready = asa.status?.conditions?.find((c) => c.type === "Ready");
    assert.equal(ready?.status, "True", JSON.stringify(asa.status));
  });
});
