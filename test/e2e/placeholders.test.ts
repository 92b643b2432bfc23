/**
 * End to end, placeholder agents: the operator registers one offline placeholder per capability set so a job
 * queues instead of failing, and then runs on a new pod; stale placeholders and agents whose pods are gone are
 * garbage-collected; a read-only PAT is reported while scaling continues.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { placeholderCapabilities } from "../../src/placeholders/plan.ts";
import { placeholderAgentName } from "../../src/scaling/naming.ts";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

describe("operator: placeholder agents and garbage collection", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator(
      {},
      { args: ["--leader-elect", "false", "--offline-agent-grace", "1s"] },
    ));
  });
  after(() => stopWorldAndOperator(world, operator));

  const agentNamed = (name: string) => world.ado.control.listAgents({ pool: world.pool }).find((a) => a.name === name);
  /** The operator's placeholder of an entry: named after what its agents report (the declared set, Agent.OS, ...). */
  const placeholderOf = (capabilities: Record<string, string>) =>
    placeholderAgentName(placeholderCapabilities(capabilities, world.template()));

  test("without a placeholder a job fails at once; with the operator's placeholder it waits and runs on a new pod", async () => {
    const early = world.ado.control.queueJob({ pool: world.pool, demands: ["ph"], durationMs: 300 });
    assert.equal(world.ado.control.getJob(early.requestId)?.result, "failed", "an empty pool fails the job at once");

    await world.createResource("ph", {
      podsWithCapabilities: [{ capabilities: { ph: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
    });
    const name = placeholderOf({ ph: "1" });
    const placeholder = await eventually("placeholder registered", async () => agentNamed(name));
    assert.equal(placeholder.status, "offline");
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["ph"], durationMs: 300 });
    assert.equal(world.ado.control.getJob(job.requestId)?.state, "queued", "the job waits");
    const f = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", { timeoutMs: 90_000 });
    assert.equal(f.result, "succeeded");
    assert.match(f.reservedAgent?.name ?? "", /^ph-[a-z0-9]{5}$/, "it ran on a pod of the resource");
    assert.ok(agentNamed(name), "the placeholder stays");
  });

  test("unwanted placeholders and offline agents whose pods are gone are deleted; wanted ones stay", async () => {
    await world.placeholder({ stale: "1" });
    const stale = world.ado.control.listAgents({ pool: world.pool }).find((a) => a.name.startsWith("dummy-agent-test"));
    assert.ok(stale, "an unwanted placeholder exists");
    // An agent named like a pod of resource "gc" whose pod does not exist (it died without unregistering).
    const poolId = world.ado.control.listPools()[0]?.id;
    const res = await fetch(
      `${world.ado.organizationUrl}/_apis/distributedtask/pools/${poolId}/agents?api-version=7.1`,
      {
        method: "POST",
        headers: {
          Authorization: `Basic ${Buffer.from(`:${world.pat}`).toString("base64")}`,
          "Content-Type": "application/json",
        },
        body: JSON.stringify({ name: "gc-zzzzz", version: "4.258.1", systemCapabilities: { gc: "1" } }),
      },
    );
    assert.equal(res.status, 200);
    await world.createResource("gc", {
      dummyAgentGarbageCollectionInterval: "1s",
      dummyAgentDeletionMinAge: "1s",
      normalOfflineAgentDeletionMinAge: "5h",
      podsWithCapabilities: [{ capabilities: { gc: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
    });
    await eventually("stale agents collected", async () =>
      !agentNamed(stale.name) && !agentNamed("gc-zzzzz") ? true : undefined,
    );
    assert.ok(agentNamed(placeholderOf({ gc: "1" })), "the resource's own placeholder is kept");
    assert.ok(agentNamed(placeholderOf({ ph: "1" })), "another resource's placeholder on the pool is kept");
  });

  test("a read-only PAT: status and an event say placeholders cannot be registered", async () => {
    await world.cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${world.ns}/secrets`,
      body: { metadata: { name: "read-pat" }, stringData: { pat: world.readPat } },
    });
    await world.createResource("readonly", {
      personalAccessTokenSecretName: "read-pat",
      podsWithCapabilities: [{ capabilities: { readonly: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
    });
    const degraded = await eventually("Degraded: PlaceholderRegistrationForbidden", async () => {
      const r = await world.getResource("readonly");
      const c = r.status?.conditions?.find((x) => x.type === "Degraded");
      return c?.reason === "PlaceholderRegistrationForbidden" ? c : undefined;
    });
    assert.match(degraded.message, /Read & manage/);
    const ready = (await world.getResource("readonly")).status?.conditions?.find((x) => x.type === "Ready");
    assert.equal(ready?.status, "True", "scaling continues");
  });
});
