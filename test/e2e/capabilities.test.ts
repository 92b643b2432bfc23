/**
 * End to end, demands on what every agent reports by itself: `Agent.OS`, `Agent.OSArchitecture`, `Agent.Name`.
 * One resource with an amd64 and an arm64 entry (a second virtual node labelled `kubernetes.io/arch=arm64`, whose
 * agents report `ARM64` like the real agent on such a node). The operator's placeholders carry what the entries'
 * agents will report, so these jobs queue; each runs on a pod of the entry whose agents report what it demands; a
 * job for Windows, or for one particular agent, is refused with an event naming the reason.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { agentProgram } from "../../sim/node/agent-program.ts";
import { VirtualNode } from "../../sim/node/index.ts";
import { placeholderCapabilities } from "../../src/placeholders/plan.ts";
import { placeholderAgentName } from "../../src/scaling/naming.ts";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, uniqueName, type World } from "../support/world.ts";

describe("operator: demands on the capabilities every agent reports", () => {
  let world: World;
  let operator: OperatorProcess;
  let armNode: VirtualNode;
  const armNodeName = uniqueName("e2e-arm");

  // Two entries that differ in architecture. Entries need different capability sets: the arm64 one declares the
  // architecture its agents report anyway.
  const entries = (): { capabilities: Record<string, string>; maxCount: number; podTemplateSpec: unknown }[] => {
    const amd = world.template();
    const arm = world.template();
    (amd.spec as { nodeSelector: Record<string, string> }).nodeSelector["kubernetes.io/arch"] = "amd64";
    (arm.spec as { nodeSelector: Record<string, string> }).nodeSelector = {
      "azp.test/node": armNodeName,
      "kubernetes.io/arch": "arm64",
    };
    return [
      { capabilities: {}, maxCount: 2, podTemplateSpec: amd },
      { capabilities: { "Agent.OSArchitecture": "ARM64" }, maxCount: 2, podTemplateSpec: arm },
    ];
  };

  before(async () => {
    ({ world, operator } = await startWorldAndOperator());
    armNode = new VirtualNode({
      client: world.cluster.client,
      name: armNodeName,
      labels: { "azp.test/node": armNodeName, "kubernetes.io/arch": "arm64" },
      retryMs: 200,
      podSubnet: 1,
      agentProgram: agentProgram({ retryDelayMs: 100, renewIntervalMs: 1000 }),
    });
    await armNode.start();
    await world.createResource("caps", { maxTerminatedPodsToKeep: 10, podsWithCapabilities: entries() });
    // The operator's placeholders, one per entry, carrying what the entries' agents will report.
    for (const e of entries()) {
      const name = placeholderAgentName(placeholderCapabilities(e.capabilities, e.podTemplateSpec));
      await eventually(`placeholder ${name}`, () =>
        world.ado.control.listAgents({ pool: world.pool }).find((a) => a.name === name),
      );
    }
  });
  after(async () => {
    await armNode?.stop();
    await stopWorldAndOperator(world, operator);
  });

  const podOf = async (agentName: string | undefined) =>
    (await world.pods("caps")).find((p) => p.metadata.name === agentName);

  const eventFor = (requestId: number) =>
    eventually(`event for job request ${requestId}`, async () => {
      const list = await world.cluster.client.request<{
        items: { reason: string; note?: string; regarding?: { name?: string } }[];
      }>({ path: `/apis/events.k8s.io/v1/namespaces/${world.ns}/events` });
      return list.items.find((e) => e.regarding?.name === "caps" && e.note?.includes(`job request ${requestId}:`));
    });

  test("the placeholders carry Agent.OS and Agent.OSArchitecture", () => {
    const archs = world.ado.control
      .listAgents({ pool: world.pool })
      .filter((a) => a.name.startsWith("dummy-agent-"))
      .map((a) => [a.capabilities["Agent.OS"], a.capabilities["Agent.OSArchitecture"]])
      .sort();
    assert.deepEqual(archs, [
      ["Linux", "ARM64"],
      ["Linux", "X64"],
    ]);
  });

  test("Agent.OS -equals Linux: queued, then run on a pod of the best-fitting entry", async () => {
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["Agent.OS -equals Linux"], durationMs: 300 });
    assert.equal(world.ado.control.getJob(job.requestId)?.state, "queued", "a placeholder keeps it queued");
    const f = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", { timeoutMs: 90_000 });
    assert.equal(f.result, "succeeded");
    const pod = await podOf(f.reservedAgent?.name);
    assert.ok(pod, "it ran on a pod of the resource");
    assert.equal(pod.metadata.annotations?.["azurepipelines.k8s.scaler.io/template-index"], "0");
    assert.equal(pod.spec.nodeName, world.nodeName);
  });

  test("Agent.OSArchitecture -equals ARM64: run on a pod of the arm64 entry, on the arm64 node", async () => {
    const job = world.ado.control.queueJob({
      pool: world.pool,
      demands: ["Agent.OSArchitecture -equals ARM64", "Agent.OS -equals Linux"],
      durationMs: 300,
    });
    const f = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", { timeoutMs: 90_000 });
    assert.equal(f.result, "succeeded");
    const pod = await podOf(f.reservedAgent?.name);
    assert.ok(pod, "it ran on a pod of the resource");
    assert.equal(pod.metadata.annotations?.["azurepipelines.k8s.scaler.io/template-index"], "1");
    assert.equal(pod.spec.nodeName, armNodeName);
  });

  test("Agent.OS -equals Windows: no placeholder carries it, so the service fails it; queued anyway, it is refused", async () => {
    const early = world.ado.control.queueJob({ pool: world.pool, demands: ["Agent.OS -equals Windows"] });
    const failed = world.ado.control.getJob(early.requestId);
    assert.equal(failed?.result, "failed");
    assert.match(
      failed?.statusMessage ?? "",
      /No agent found in pool .* satisfies the specified demands: Agent\.OS -equals Windows/,
    );

    // Another agent of the pool (offline) says Windows: the job waits, and the operator says why it makes no pod.
    await world.placeholder({ "Agent.OS": "Windows" });
    const before = (await world.pods("caps")).length;
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["Agent.OS -equals Windows"] });
    assert.equal(world.ado.control.getJob(job.requestId)?.state, "queued");
    const event = await eventFor(job.requestId);
    assert.equal(event.reason, "JobNotServed");
    assert.match(event.note ?? "", /no pod template has capabilities satisfying "Agent\.OS -equals Windows"/);
    assert.match(event.note ?? "", /report Agent\.OS "Linux"/);
    assert.match(event.note ?? "", /Windows_NT/);
    assert.equal((await world.pods("caps")).length, before, "no pod for it");
    world.ado.control.cancelJob(job.requestId);
  });

  test("Agent.Name -equals: one particular agent, which no new pod can be", async () => {
    const [amd] = entries();
    const placeholder = placeholderAgentName(placeholderCapabilities(amd?.capabilities ?? {}, amd?.podTemplateSpec));
    const job = world.ado.control.queueJob({ pool: world.pool, demands: [`Agent.Name -equals ${placeholder}`] });
    assert.equal(world.ado.control.getJob(job.requestId)?.state, "queued", "the placeholder has that name");
    const event = await eventFor(job.requestId);
    assert.equal(event.reason, "JobNotServed");
    assert.match(event.note ?? "", /asks for one particular agent/);
    world.ado.control.cancelJob(job.requestId);
  });
});
