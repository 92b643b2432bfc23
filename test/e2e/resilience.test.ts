/**
 * End to end: the operator survives being killed mid-job (no duplicate pods, no killed job), two resources share
 * one pool, maxCount edited down never kills a busy agent, and of two operator replicas only the leader acts.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventually } from "../support/cluster.ts";
import { type OperatorProcess, startOperatorProcess } from "../support/operator.ts";
import { startWorld, type World } from "../support/world.ts";

describe("operator: resilience", () => {
  let world: World;
  let operator: OperatorProcess;
  const start = (identity = "op-a", extra: string[] = ["--leader-elect", "false"], env: NodeJS.ProcessEnv = {}) =>
    startOperatorProcess({ kubeconfig: world.cluster.kubeconfig, namespaces: [world.ns], identity, args: extra, env });
  before(async () => {
    world = await startWorld();
  });
  after(async () => {
    await operator?.stop();
    await world?.close();
  });

  /** Leader election on a short Lease in the test's namespace (a name of its own, or the default). */
  const leaseFlags = (name?: string) => [
    "--leader-elect",
    "true",
    "--leader-election-namespace",
    world.ns,
    ...(name ? ["--leader-election-name", name] : []),
    "--lease-duration",
    "4s",
    "--renew-deadline",
    "3s",
    "--retry-period",
    "500ms",
  ];

  const live = (pods: Awaited<ReturnType<World["pods"]>>) =>
    pods.filter((p) => !p.metadata.deletionTimestamp && !["Succeeded", "Failed"].includes(p.status?.phase ?? ""));

  test("killed with SIGKILL mid-job and restarted: no duplicate pod, the job is not killed", async () => {
    operator = start();
    await operator.waitForLog(/caches synced/);
    await world.placeholder({ crash: "1" });
    await world.createResource("crash", {
      podsWithCapabilities: [{ capabilities: { crash: "1" }, maxCount: 3, podTemplateSpec: world.template() }],
    });
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["crash"], durationMs: 4000 });
    await world.ado.control.waitForJob(job.requestId, (j) => j.state === "running", { timeoutMs: 90_000 });
    await operator.kill();
    operator = start();
    await operator.waitForLog(/caches synced/);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await world.pods("crash")).length, 1, "the restarted operator created no second pod");
    const f = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", { timeoutMs: 60_000 });
    assert.equal(f.result, "succeeded", "the running job was not killed");
    assert.equal((await world.pods("crash")).length, 1);
  });

  test("maxCount edited down while jobs run: no busy pod dies", async () => {
    await world.placeholder({ shrinkbusy: "1" });
    await world.createResource("shrinkbusy", {
      agentMinIdlePeriod: "1s",
      podsWithCapabilities: [{ capabilities: { shrinkbusy: "1" }, maxCount: 3, podTemplateSpec: world.template() }],
    });
    const jobs = [1, 2, 3].map(() =>
      world.ado.control.queueJob({ pool: world.pool, demands: ["shrinkbusy"], durationMs: 3000 }),
    );
    await Promise.all(
      jobs.map((j) => world.ado.control.waitForJob(j.requestId, (x) => x.state === "running", { timeoutMs: 90_000 })),
    );
    await world.cluster.client.request({
      method: "PATCH",
      path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${world.ns}/autoscaledagents/shrinkbusy`,
      contentType: "application/json-patch+json",
      body: [{ op: "replace", path: "/spec/podsWithCapabilities/0/maxCount", value: 1 }],
    });
    const done = await Promise.all(
      jobs.map((j) => world.ado.control.waitForJob(j.requestId, (x) => x.state === "finished", { timeoutMs: 90_000 })),
    );
    assert.deepEqual(
      done.map((j) => j.result),
      ["succeeded", "succeeded", "succeeded"],
      "every running job finished normally",
    );
  });

  test("two resources on one pool: each serves the jobs of its own templates, no job gets two pods", async () => {
    await world.placeholder({ teamA: "1" });
    await world.placeholder({ teamB: "1" });
    for (const team of ["teamA", "teamB"]) {
      await world.createResource(team.toLowerCase(), {
        maxTerminatedPodsToKeep: 10,
        podsWithCapabilities: [{ capabilities: { [team]: "1" }, maxCount: 2, podTemplateSpec: world.template() }],
      });
    }
    const a = world.ado.control.queueJob({ pool: world.pool, demands: ["teamA"], durationMs: 300 });
    const b = world.ado.control.queueJob({ pool: world.pool, demands: ["teamB"], durationMs: 300 });
    const [fa, fb] = await Promise.all(
      [a, b].map((j) =>
        world.ado.control.waitForJob(j.requestId, (x) => x.state === "finished", { timeoutMs: 90_000 }),
      ),
    );
    assert.match(fa?.reservedAgent?.name ?? "", /^teama-/);
    assert.match(fb?.reservedAgent?.name ?? "", /^teamb-/);
    assert.equal((await world.pods("teama")).length, 1);
    assert.equal((await world.pods("teamb")).length, 1);
  });

  test("two resources whose templates both satisfy a job: only the better fit starts a pod", async () => {
    await world.placeholder({ ov: "1" });
    await world.createResource("ovwide", {
      podsWithCapabilities: [{ capabilities: { ov: "1", extra: "1" }, maxCount: 2, podTemplateSpec: world.template() }],
    });
    await world.createResource("ovexact", {
      podsWithCapabilities: [{ capabilities: { ov: "1" }, maxCount: 2, podTemplateSpec: world.template() }],
    });
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["ov"], durationMs: 500 });
    const f = await world.ado.control.waitForJob(job.requestId, (x) => x.state === "finished", { timeoutMs: 90_000 });
    assert.match(f.reservedAgent?.name ?? "", /^ovexact-/);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await world.pods("ovwide")).length, 0, "the wider template started no pod for it");
    assert.equal((await world.pods("ovexact")).length, 1);
    const events = await world.cluster.client.request<{ items: { reason: string; regarding?: { name?: string } }[] }>({
      path: `/apis/events.k8s.io/v1/namespaces/${world.ns}/events`,
    });
    assert.ok(
      !events.items.some((e) => e.reason === "JobNotServed" && e.regarding?.name?.startsWith("team")),
      "resources do not report the other resources' jobs as unservable",
    );
  });

  test("two replicas with leader election: one leads; when it is killed the other takes over", async () => {
    await operator.stop();
    const lease = leaseFlags();
    const first = start("replica-1", lease);
    await first.waitForLog(/reconciling/);
    const second = start("replica-2", lease);
    await second.waitForLog(/caches synced/);
    await new Promise((r) => setTimeout(r, 1500));
    assert.doesNotMatch(second.log(), /reconciling/, "the standby does not reconcile");
    await first.kill();
    await second.waitForLog(/reconciling/, 60_000);
    operator = second;
    await world.placeholder({ failover: "1" });
    await world.createResource("failover", {
      podsWithCapabilities: [{ capabilities: { failover: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
    });
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["failover"], durationMs: 300 });
    const f = await world.ado.control.waitForJob(job.requestId, (x) => x.state === "finished", { timeoutMs: 90_000 });
    assert.equal(f.result, "succeeded");
    assert.equal(live(await world.pods("failover")).length <= 1, true);
  });

  test("--leader-pod-label: the leader's pod is labelled true, the standby's false; a new leader takes the label", async () => {
    await operator.stop();
    const client = world.cluster.client;
    const key = "azurepipelines.k8s.scaler.io/leader";
    // The replicas' own pods, as the Deployment would make them (bound to no node: nothing runs them).
    for (const name of ["replica-a", "replica-b"]) {
      await client.request({
        method: "POST",
        path: `/api/v1/namespaces/${world.ns}/pods`,
        body: {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name, labels: { app: "operator" } },
          spec: { nodeName: "no-such-node", containers: [{ name: "manager", image: "operator:test" }] },
        },
      });
    }
    const labelOf = async (name: string) =>
      (
        await client.request<{ metadata: { labels?: Record<string, string> } }>({
          path: `/api/v1/namespaces/${world.ns}/pods/${name}`,
        })
      ).metadata.labels?.[key];
    const labelled = (name: string, value: string) =>
      eventually(`${name} labelled ${key}=${value}`, async () => ((await labelOf(name)) === value ? true : undefined));
    const lease = [...leaseFlags("labelled"), "--leader-pod-label", "true"];
    const first = start("replica-a", lease, { POD_NAME: "replica-a", POD_NAMESPACE: world.ns });
    await first.waitForLog(/reconciling/);
    await labelled("replica-a", "true");
    const second = start("replica-b", lease, { POD_NAME: "replica-b", POD_NAMESPACE: world.ns });
    operator = second;
    await second.waitForLog(/caches synced/);
    await labelled("replica-b", "false");
    assert.equal(await labelOf("replica-a"), "true", "the leader keeps its label");
    // A graceful stop gives the lease up and takes the label off; the standby leads and takes it.
    await first.stop();
    await labelled("replica-a", "false");
    await second.waitForLog(/reconciling/, 60_000);
    await labelled("replica-b", "true");
    assert.doesNotMatch(first.log() + second.log(), /cannot label/);
  });
});
