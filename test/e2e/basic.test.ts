/**
 * End to end, the operator running as its own process against the real control plane, the Azure DevOps emulator
 * and the virtual node: the original project's core scenarios (one job, several jobs over two templates, exceeding
 * maxCount, minCount with a job, minCount reduction after the idle period, finish delay).
 * Each test uses capabilities of its own, so the jobs of one test never match another test's resource.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

describe("operator: scaling to queued jobs", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator());
  });
  after(() => stopWorldAndOperator(world, operator));

  const live = (pods: Awaited<ReturnType<World["pods"]>>) =>
    pods.filter((p) => !p.metadata.deletionTimestamp && !["Succeeded", "Failed"].includes(p.status?.phase ?? ""));

  test("one job: one pod, its agent runs the job; the finished pod is kept (maxTerminatedPodsToKeep 1)", async () => {
    await world.placeholder({ one: "1" });
    await world.createResource("one", {
      maxTerminatedPodsToKeep: 1,
      podsWithCapabilities: [
        { capabilities: { one: "1" }, minCount: 0, maxCount: 3, podTemplateSpec: world.template() },
      ],
    });
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["one"], durationMs: 500 });
    const finished = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 90_000,
    });
    assert.equal(finished.result, "succeeded");
    const pods = await world.pods("one");
    assert.equal(pods.length, 1, "exactly one pod for one job");
    assert.equal(finished.reservedAgent?.name, pods[0]?.metadata.name, "the agent is named after its pod");
    await eventually("pod Succeeded", async () =>
      (await world.pods("one"))[0]?.status?.phase === "Succeeded" ? true : undefined,
    );
    const asa = await eventually("status Ready", async () => {
      const r = await world.getResource("one");
      return r.status?.conditions?.find((c) => c.type === "Ready")?.status === "True" ? r : undefined;
    });
    assert.equal(asa.status?.observedGeneration, asa.metadata.generation);
    // Nothing else gets created afterwards: no warm pods with minCount 0.
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal((await world.pods("one")).length, 1);
  });

  test("several jobs over two templates: each job runs on a pod of its best-fitting template", async () => {
    await world.placeholder({ two: "1" });
    await world.placeholder({ two: "1", docker: "1" });
    await world.createResource("two", {
      maxTerminatedPodsToKeep: 10,
      podsWithCapabilities: [
        { capabilities: { two: "1" }, minCount: 0, maxCount: 5, podTemplateSpec: world.template() },
        { capabilities: { two: "1", docker: "1" }, minCount: 0, maxCount: 5, podTemplateSpec: world.template() },
      ],
    });
    const plain = [1, 2].map(() => world.ado.control.queueJob({ pool: world.pool, demands: ["two"], durationMs: 300 }));
    const docker = [1, 2].map(() =>
      world.ado.control.queueJob({ pool: world.pool, demands: ["two", "docker -equals 1"], durationMs: 300 }),
    );
    const done = await Promise.all(
      [...plain, ...docker].map((j) =>
        world.ado.control.waitForJob(j.requestId, (x) => x.state === "finished", { timeoutMs: 120_000 }),
      ),
    );
    assert.ok(done.every((j) => j.result === "succeeded"));
    const pods = await world.pods("two");
    const capsOf = (agent: string | undefined) =>
      JSON.parse(
        pods.find((p) => p.metadata.name === agent)?.metadata.annotations?.[
          "azurepipelines.k8s.scaler.io/capabilities"
        ] ?? "{}",
      );
    // Azure DevOps may hand a plain job to a docker agent (it satisfies that demand too), never the reverse.
    for (const j of done.slice(2)) {
      assert.equal(
        capsOf(j.reservedAgent?.name).docker,
        "1",
        `docker job ${j.requestId} ran on ${j.reservedAgent?.name}`,
      );
    }
    // When a plain job takes a docker pod, the docker job gets another pod: at least one pod per job.
    assert.ok(pods.length >= 4, `at least one pod per job (${pods.length})`);
    assert.ok(pods.filter((p) => capsOf(p.metadata.name).docker === "1").length >= 2, "docker pods for docker jobs");
    assert.equal(new Set(done.map((j) => j.reservedAgent?.name)).size, 4, "one agent per job");
  });

  test("exceeding maxCount: never more than maxCount pods at once, and every job still runs", async () => {
    await world.placeholder({ capped: "1" });
    await world.createResource("capped", {
      maxTerminatedPodsToKeep: 0,
      podsWithCapabilities: [
        { capabilities: { capped: "1" }, minCount: 0, maxCount: 2, podTemplateSpec: world.template() },
      ],
    });
    const jobs = [1, 2, 3, 4, 5].map(() =>
      world.ado.control.queueJob({ pool: world.pool, demands: ["capped"], durationMs: 700 }),
    );
    let maxSeen = 0;
    const watcher = (async () => {
      for (;;) {
        const n = live(await world.pods("capped")).length;
        maxSeen = Math.max(maxSeen, n);
        if (jobs.every((j) => world.ado.control.getJob(j.requestId)?.state === "finished")) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await Promise.all(
      jobs.map((j) => world.ado.control.waitForJob(j.requestId, (x) => x.state === "finished", { timeoutMs: 180_000 })),
    );
    await watcher;
    assert.ok(maxSeen <= 2, `at most maxCount live pods (saw ${maxSeen})`);
    assert.ok(jobs.every((j) => world.ado.control.getJob(j.requestId)?.result === "succeeded"));
    await eventually("finished pods deleted (keep 0)", async () =>
      (await world.pods("capped")).length === 0 ? true : undefined,
    );
  });

  test("minCount: a warm agent waits; a job uses it and a new warm agent replaces it", async () => {
    await world.createResource("warm", {
      maxTerminatedPodsToKeep: 5,
      podsWithCapabilities: [
        { capabilities: { warm: "1" }, minCount: 1, maxCount: 3, podTemplateSpec: world.template() },
      ],
    });
    const first = await eventually("a warm agent online", async () => {
      const agents = world.ado.control.listAgents({ pool: world.pool }).filter((a) => a.name.startsWith("warm-"));
      return agents.find((a) => a.status === "online")?.name;
    });
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["warm"], durationMs: 300 });
    const finished = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 60_000,
    });
    assert.equal(finished.reservedAgent?.name, first, "the warm agent took the job");
    await eventually(
      "another warm agent online",
      async () =>
        world.ado.control
          .listAgents({ pool: world.pool })
          .some((a) => a.name.startsWith("warm-") && a.name !== first && a.status === "online") || undefined,
    );
    await eventually("exactly minCount live pods again once the used one has finished", async () =>
      live(await world.pods("warm")).length === 1 ? true : undefined,
    );
  });

  test("minCount reduction: idle agents go only after agentMinIdlePeriod", async () => {
    await world.createResource("shrink", {
      agentMinIdlePeriod: "3s",
      podsWithCapabilities: [
        { capabilities: { shrink: "1" }, minCount: 2, maxCount: 3, podTemplateSpec: world.template() },
      ],
    });
    await eventually(
      "two idle agents",
      async () =>
        world.ado.control
          .listAgents({ pool: world.pool })
          .filter((a) => a.name.startsWith("shrink-") && a.status === "online").length === 2 || undefined,
    );
    const asa = await world.getResource("shrink");
    await world.cluster.client.request({
      method: "PATCH",
      path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${world.ns}/autoscaledagents/shrink`,
      contentType: "application/json-patch+json",
      body: [{ op: "replace", path: "/spec/podsWithCapabilities/0/minCount", value: 0 }],
    });
    const changedAt = Date.now();
    void asa;
    // Not removed at once: the idle period is honoured.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(live(await world.pods("shrink")).length, 2, "still there within the idle period");
    await eventually(
      "both removed after the idle period",
      async () => (live(await world.pods("shrink")).length === 0 ? true : undefined),
      60_000,
    );
    assert.ok(Date.now() - changedAt >= 3000, "not before agentMinIdlePeriod");
    assert.equal(
      world.ado.control.listAgents({ pool: world.pool }).filter((a) => a.name.startsWith("shrink-")).length,
      0,
      "their registrations were removed first",
    );
  });

  test("finish delay: a pod whose agent takes a while to exit is not replaced or counted as free", async () => {
    await world.placeholder({ slowexit: "1" });
    await world.createResource("slowexit", {
      maxTerminatedPodsToKeep: 5,
      podsWithCapabilities: [
        { capabilities: { slowexit: "1" }, minCount: 0, maxCount: 2, podTemplateSpec: world.template() },
      ],
    });
    const job = world.ado.control.queueJob({
      pool: world.pool,
      demands: ["slowexit"],
      durationMs: 300,
      finishDelayMs: 3000,
    });
    await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await world.pods("slowexit")).length, 1, "no second pod while the first one finishes");
    await eventually("pod Succeeded after the delay", async () =>
      (await world.pods("slowexit"))[0]?.status?.phase === "Succeeded" ? true : undefined,
    );
  });
});
