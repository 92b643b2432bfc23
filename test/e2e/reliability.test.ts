/**
 * Defects a long-running operator must not have: pod churn when agents exit before taking a job, and two leaders
 * acting at once during a graceful shutdown.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startOperator } from "../../src/controller/operator.ts";
import { createPodFactory } from "../../src/controller/pod-factory.ts";
import type { AzureDevOpsPort } from "../../src/controller/ports.ts";
import { createLogger } from "../../src/observability/logger.ts";
import {
  createNamespace,
  deleteNamespace,
  eventually,
  type TestCluster,
  testCluster,
  uniqueName,
} from "../support/cluster.ts";
import type { OperatorProcess } from "../support/operator.ts";
import { startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

describe("operator: agents that exit before running a job", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator({}, { args: ["--agent-failure-backoff", "3s"] }));
  });
  after(() => stopWorldAndOperator(world, operator));

  test("the template backs off with an event instead of a new pod every reconcile", async () => {
    // The agent in the pod gets a read-only PAT: it cannot register and exits 1; the operator can still read.
    await world.cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${world.ns}/secrets`,
      body: { metadata: { name: "read-pat" }, stringData: { pat: world.readPat } },
    });
    await world.placeholder({ failing: "1" });
    await world.createResource("failing", {
      personalAccessTokenSecretName: "read-pat",
      maxTerminatedPodsToKeep: 10,
      podsWithCapabilities: [{ capabilities: { failing: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
    });
    world.ado.control.queueJob({ pool: world.pool, demands: ["failing"], durationMs: 200 });

    const degraded = await eventually("Degraded: AgentsFailing", async () => {
      const c = (await world.getResource("failing")).status?.conditions?.find((x) => x.type === "Degraded");
      return c?.reason === "AgentsFailing" ? c : undefined;
    });
    assert.match(degraded.message, /exited with an error without running a job/);

    const created = await eventually(
      "three failed pods",
      async () => {
        const pods = await world.pods("failing");
        return pods.length >= 3 ? pods : undefined;
      },
      120_000,
    );
    const times = created
      .map((p) => Date.parse(p.metadata.creationTimestamp ?? ""))
      .sort((a, b) => a - b)
      .slice(0, 3);
    // Waits of 3 s, then 6 s, counted from when the failure was seen (creation times have one-second precision).
    assert.ok((times[1] ?? 0) - (times[0] ?? 0) >= 2_000, `second pod waited: ${times.join(", ")}`);
    assert.ok((times[2] ?? 0) - (times[1] ?? 0) >= 5_000, `third pod waited longer: ${times.join(", ")}`);
  });
});

describe("operator: graceful shutdown of the leader", () => {
  let cluster: TestCluster;
  let ns: string;
  before(async () => {
    cluster = await testCluster();
    ns = await createNamespace(cluster.client, "shutdown");
  });
  after(async () => {
    await deleteNamespace(cluster.client, ns);
    await cluster.close();
  });

  test("the lease is released only after the workers and Azure DevOps writes have stopped", async () => {
    let entered = () => {};
    const ensureEntered = new Promise<void>((r) => {
      entered = r;
    });
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const azureDevOps: AzureDevOpsPort = {
      subscribe: () => ({
        latest: () => ({ poolId: 1, jobRequests: [], agents: [], fetchedAt: Date.now() }),
        lastError: () => undefined,
        pollNow: () => {},
        release: () => {},
      }),
      deleteAgent: async () => "deleted",
      placeholders: () => ({
        ensure: async () => {
          entered();
          await held;
          return { status: "ok", registered: [] };
        },
        collectGarbage: async () => ({ deleted: [] }),
        removeAgents: async () => ({ deleted: [] }),
      }),
      organizationKey: (url) => url,
      credentialKey: () => "pat:test",
    };
    await cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/secrets`,
      body: { metadata: { name: "azure-pat" }, stringData: { pat: "not-used" } },
    });
    await cluster.client.request({
      method: "POST",
      path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents`,
      body: {
        apiVersion: "azurepipelines.k8s.scaler.io/v1",
        kind: "AutoScaledAgent",
        metadata: { name: "held" },
        spec: {
          poolName: "pool",
          organizationUrl: "https://dev.azure.com/org",
          personalAccessTokenSecretName: "azure-pat",
          podsWithCapabilities: [
            {
              capabilities: { held: "1" },
              maxCount: 1,
              podTemplateSpec: { spec: { containers: [{ name: "agent", image: "example.com/agent:1" }] } },
            },
          ],
        },
      },
    });
    const leaseName = uniqueName("lease");
    const operator = await startOperator({
      config: {
        namespaces: [ns],
        leaderElect: true,
        leaderElectionNamespace: ns,
        leaderElectionName: leaseName,
        leaseDurationMs: 15_000,
        renewDeadlineMs: 10_000,
        retryPeriodMs: 500,
        identity: "replica-a",
        bindAddress: "127.0.0.1",
        port: 0,
        workers: 2,
        resyncIntervalMs: 30_000,
        offlineAgentGraceMs: 300_000,
        azureDevOpsConcurrency: 2,
        agentFailureBackoffMs: 10_000,
        cleanupTimeoutMs: 120_000,
      },
      client: cluster.client,
      logger: createLogger({ level: "error" }),
      azureDevOps,
      pods: createPodFactory({ terminatorImage: "busybox:stable" }),
      onLeadershipLost: () => {},
    });
    const holder = async () =>
      (
        await cluster.client.request<{ spec?: { holderIdentity?: string } }>({
          path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${leaseName}`,
        })
      ).spec?.holderIdentity ?? "";
    await ensureEntered;
    const leader = await holder();
    assert.notEqual(leader, "");

    // A placeholder registration is under way: stopping must wait for it before handing the lease over.
    const stopped = operator.stop();
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(await holder(), leader, "the lease stays ours while Azure DevOps work is under way");
    }
    release();
    await stopped;
    assert.equal(await holder(), "", "released once the work stopped");
  });
});
