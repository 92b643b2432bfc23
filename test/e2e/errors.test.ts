/**
 * End to end: bad input and a failing Azure DevOps give a clear, specific message in the resource's status and in
 * an Event, nothing else breaks, and everything recovers once the cause is fixed.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

describe("operator: bad input and Azure DevOps failures", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator());
  });
  after(() => stopWorldAndOperator(world, operator));

  const condition = async (name: string, type: string, predicate: (c: Condition) => boolean) =>
    eventually(`${name}: ${type} condition`, async () => {
      const r = await world.getResource(name);
      const c = r.status?.conditions?.find((x) => x.type === type);
      return c && predicate(c) ? c : undefined;
    });
  const eventFor = (name: string, reason: string) =>
    eventually(`${name}: event ${reason}`, async () => {
      const list = await world.cluster.client.request<{
        items: { reason: string; note?: string; regarding?: { name?: string } }[];
      }>({
        path: `/apis/events.k8s.io/v1/namespaces/${world.ns}/events`,
      });
      return list.items.find((e) => e.reason === reason && e.regarding?.name === name);
    });
  const spec = (cap: string, extra: Record<string, unknown> = {}) => ({
    podsWithCapabilities: [{ capabilities: { [cap]: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
    ...extra,
  });
  const secrets = `/api/v1/namespaces/${"NS"}/secrets`;

  test("a missing Secret, then a Secret without `pat`: status and events say which; fixing it recovers", async () => {
    await world.createResource("nosecret", spec("nosecret", { personalAccessTokenSecretName: "later" }));
    const c1 = await condition("nosecret", "Ready", (c) => c.reason === "SecretNotFound");
    assert.equal(c1.status, "False");
    assert.match(c1.message, /Secret .*\/later .*not found/);
    await eventFor("nosecret", "SecretNotFound");
    const path = secrets.replace("NS", world.ns);
    await world.cluster.client.request({
      method: "POST",
      path,
      body: { metadata: { name: "later" }, stringData: { token: "x" } },
    });
    const c2 = await condition("nosecret", "Ready", (c) => c.reason === "SecretKeyMissing");
    assert.match(c2.message, /no non-empty key "pat"/);
    await world.cluster.client.request({
      method: "PATCH",
      path: `${path}/later`,
      contentType: "application/merge-patch+json",
      body: { stringData: { pat: world.pat } },
    });
    await condition("nosecret", "Ready", (c) => c.status === "True");
    assert.doesNotMatch(
      JSON.stringify(await world.getResource("nosecret")),
      new RegExp(world.pat),
      "the PAT is never in status",
    );
  });

  test("a wrong pool name and an unreachable organization URL are reported specifically", async () => {
    await world.createResource("nopool", spec("nopool", { poolName: "no such pool" }));
    const c = await condition("nopool", "AzureDevOpsReachable", (x) => x.status === "False");
    assert.equal(c.reason, "PoolNotFound");
    assert.match(c.message, /no such pool/);
    await eventFor("nopool", "PoolNotFound");

    await world.createResource("noorg", spec("noorg", { organizationUrl: "http://127.0.0.1:9/nowhere" }));
    const d = await condition("noorg", "AzureDevOpsReachable", (x) => x.status === "False");
    assert.match(d.reason, /AzureDevOps(Unreachable|Timeout)/);
  });

  test("a pod that cannot start (image not found) is reported in status and an event", async () => {
    await world.placeholder({ badimage: "1" });
    const template = world.template();
    ((template.spec as { containers: { image: string }[] }).containers[0] as { image: string }).image =
      "registry.example/does-not-exist/azure-pipelines-agent:1";
    await world.createResource("badimage", {
      podsWithCapabilities: [{ capabilities: { badimage: "1" }, maxCount: 1, podTemplateSpec: template }],
    });
    world.ado.control.queueJob({ pool: world.pool, demands: ["badimage"], durationMs: 300 });
    const c = await condition("badimage", "Degraded", (x) => x.reason === "PodStuck");
    assert.match(c.message, /cannot start: container azure-pipelines-agent: (ErrImagePull|ImagePullBackOff)/);
    await eventFor("badimage", "PodStuck");
  });

  test("an invalid spec is refused by the API server or reported in status", async () => {
    await assert.rejects(
      world.createResource("badcounts", {
        podsWithCapabilities: [
          { capabilities: { x: "1" }, minCount: 3, maxCount: 1, podTemplateSpec: world.template() },
        ],
      }),
      /minCount/,
    );
  });

  test("Azure DevOps answering 500, then 429: reported, nothing lost, recovery when it heals", async () => {
    await world.placeholder({ flaky: "1" });
    await world.createResource("flaky", spec("flaky"));
    await condition("flaky", "Ready", (c) => c.status === "True");
    world.ado.control.setFaults([{ path: "**/jobrequests*", status: 500, errorRate: 1 }]);
    const down = await condition("flaky", "AzureDevOpsReachable", (c) => c.status === "False");
    assert.equal(down.reason, "AzureDevOpsServerError");
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["flaky"], durationMs: 300 });
    world.ado.control.setFaults([{ path: "**/jobrequests*", rateLimit: "block" }]);
    await condition("flaky", "AzureDevOpsReachable", (c) => c.reason === "AzureDevOpsRateLimited");
    world.ado.control.clearFaults();
    await condition("flaky", "AzureDevOpsReachable", (c) => c.status === "True");
    const f = await world.ado.control.waitForJob(job.requestId, (x) => x.state === "finished", { timeoutMs: 90_000 });
    assert.equal(f.result, "succeeded", "the job queued during the outage still ran");
  });
});
