/**
 * Resources in two namespaces on one pool: a job goes to the best resource that can serve it now. The better fit
 * ("a", exact capabilities) cannot, for four reasons in turn (its Secret is missing, its poll fails, it is at
 * maxCount, its ExtraAgentContainers policy refuses the job); then the other resource ("b") must serve it.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createNamespace, deleteNamespace } from "../support/cluster.ts";
import type { OperatorProcess } from "../support/operator.ts";
import { emulatorAccess, startOperatorProcess } from "../support/operator.ts";
import { eventually, startWorld, uniqueName, type World } from "../support/world.ts";

describe("operator: jobs shared between resources in two namespaces", () => {
  let world: World;
  let other: string;
  let operator: OperatorProcess;
  before(async () => {
    world = await startWorld();
    other = await createNamespace(world.cluster.client, "e2e-b");
    await secret(other, "azure-pat", world.pat);
    operator = startOperatorProcess({
      kubeconfig: world.cluster.kubeconfig,
      namespaces: [world.ns, other],
      access: emulatorAccess(world.ado),
    });
    await operator.waitForLog(/caches synced/);
  });
  after(async () => {
    await operator?.stop();
    await deleteNamespace(world.cluster.client, other);
    await world?.close();
  });

  const secret = (ns: string, name: string, pat: string) =>
    world.cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/secrets`,
      body: { metadata: { name }, stringData: { pat } },
    });

  const create = (ns: string, name: string, spec: Record<string, unknown>) =>
    world.cluster.client.request({
      method: "POST",
      path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents`,
      body: {
        apiVersion: "azurepipelines.k8s.scaler.io/v1",
        kind: "AutoScaledAgent",
        metadata: { name },
        spec: {
          poolName: world.pool,
          organizationUrl: world.ado.organizationUrl,
          personalAccessTokenSecretName: "azure-pat",
          maxTerminatedPodsToKeep: 10,
          ...spec,
        },
      },
    });

  /** "a" fits exactly (in the world's namespace), "b" has one capability more (in the other namespace). */
  async function pair(capability: string, a: Record<string, unknown>, b: Record<string, unknown> = {}) {
    const names = { a: uniqueName("a"), b: uniqueName("b") };
    await world.placeholder({ [capability]: "1" });
    await create(world.ns, names.a, {
      podsWithCapabilities: [{ capabilities: { [capability]: "1" }, maxCount: 2, podTemplateSpec: world.template() }],
      ...a,
    });
    await create(other, names.b, {
      podsWithCapabilities: [
        { capabilities: { [capability]: "1", spare: "1" }, maxCount: 3, podTemplateSpec: world.template() },
      ],
      ...b,
    });
    return names;
  }

  /** Runs a job and returns the name of the agent (= pod) that ran it. */
  async function runJob(demands: string[], durationMs = 300): Promise<string> {
    const job = world.ado.control.queueJob({ pool: world.pool, demands, durationMs });
    const done = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 120_000,
    });
    assert.equal(done.result, "succeeded", JSON.stringify(done));
    return done.reservedAgent?.name ?? "";
  }

  test("the better fit's Secret is missing: the other resource serves", async () => {
    const names = await pair("nosecret", { personalAccessTokenSecretName: "does-not-exist" });
    assert.ok((await runJob(["nosecret"])).startsWith(`${names.b}-`));
  });

  test("the better fit's poll fails: the other resource serves", async () => {
    await secret(world.ns, "revoked-pat", "not-a-known-token");
    const names = await pair("badpoll", { personalAccessTokenSecretName: "revoked-pat" });
    await eventually("a's poll fails", async () => {
      const r = await world.cluster.client.request<{ status?: { conditions?: { type: string; status: string }[] } }>({
        path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${world.ns}/autoscaledagents/${names.a}`,
      });
      return r.status?.conditions?.find((c) => c.type === "AzureDevOpsReachable" && c.status === "False");
    });
    assert.ok((await runJob(["badpoll"])).startsWith(`${names.b}-`));
  });

  test("the better fit is at maxCount: the other resource serves the job it cannot", async () => {
    const names = await pair("full", {
      podsWithCapabilities: [{ capabilities: { full: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
    });
    const first = world.ado.control.queueJob({ pool: world.pool, demands: ["full"], durationMs: 20_000 });
    const running = await world.ado.control.waitForJob(first.requestId, (j) => j.state === "running", {
      timeoutMs: 120_000,
    });
    assert.ok(running.reservedAgent?.name.startsWith(`${names.a}-`), "the first job on the better fit");
    assert.ok((await runJob(["full"])).startsWith(`${names.b}-`), "the second job on the other resource");
  });

  test("the better fit's policy refuses the job's ExtraAgentContainers: the other resource serves", async () => {
    const names = await pair("policy", { extraAgentContainers: { allowedImages: ["registry.example/allowed/*"] } });
    // The pipeline's own placeholder (as the registrator CLI registers it) keeps the job queued.
    await world.placeholder({ policy: "1", ExtraAgentContainers: "name=helper,image=busybox:1" });
    const agent = await runJob(["policy", "ExtraAgentContainers -equals name=helper,image=busybox:1"]);
    assert.ok(agent.startsWith(`${names.b}-`), agent);
  });
});
