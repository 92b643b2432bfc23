/**
 * End to end: the operator authenticates to Azure DevOps with a Microsoft Entra ID service principal (client
 * secret in a Secret), the emulator playing the Entra token endpoint over HTTPS; a wrong secret is reported clearly.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { emulatorAccess, type OperatorProcess, startOperatorProcess } from "../support/operator.ts";
import { eventually, startWorld, type World } from "../support/world.ts";

const tenantId = "00000000-0000-0000-0000-0000000000aa";
const clientId = "11111111-2222-3333-4444-555555555555";
/** A second principal: pollers are shared per identity, so the wrong-secret case needs an identity of its own. */
const otherClientId = "11111111-2222-3333-4444-666666666666";
/** A principal whose secret is rotated; its tokens live 4 s, so a credential stuck on the old secret soon fails. */
const rotatedClientId = "11111111-2222-3333-4444-777777777777";

describe("operator: Entra ID authentication", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    world = await startWorld({
      emulator: {
        https: true,
        entraId: {
          servicePrincipals: [
            { tenantId, clientId, clientSecret: "s3cret-value", scope: "manage" },
            { tenantId, clientId: otherClientId, clientSecret: "other-value", scope: "manage" },
            {
              tenantId,
              clientId: rotatedClientId,
              clientSecret: "first-secret",
              scope: "manage",
              tokenLifetimeSeconds: 4,
            },
          ],
        },
      },
    });
    const caFile = join(mkdtempSync(join(tmpdir(), "azp-ca-")), "ca.pem");
    writeFileSync(caFile, world.ado.caCertificate ?? "");
    operator = startOperatorProcess({
      kubeconfig: world.cluster.kubeconfig,
      namespaces: [world.ns],
      env: { NODE_EXTRA_CA_CERTS: caFile },
      access: emulatorAccess(world.ado),
    });
    await operator.waitForLog(/caches synced/);
    for (const [name, value] of [
      ["sp-secret", "s3cret-value"],
      ["sp-wrong", "not-the-secret"],
      ["sp-rotate", "first-secret"],
    ]) {
      await world.cluster.client.request({
        method: "POST",
        path: `/api/v1/namespaces/${world.ns}/secrets`,
        body: { metadata: { name }, stringData: { clientSecret: value } },
      });
    }
  });
  after(async () => {
    await operator?.stop();
    await world?.close();
  });

  const resource = (name: string, secret: string, client = clientId) =>
    world.cluster.client.request({
      method: "POST",
      path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${world.ns}/autoscaledagents`,
      body: {
        apiVersion: "azurepipelines.k8s.scaler.io/v1",
        kind: "AutoScaledAgent",
        metadata: { name },
        spec: {
          poolName: world.pool,
          organizationUrl: `${world.ado.httpsUrl}/${world.ado.organization}`,
          entraIdAuthentication: {
            tenantId,
            clientId: client,
            authorityHost: world.ado.httpsUrl,
            clientSecretRef: { name: secret },
          },
          podsWithCapabilities: [{ capabilities: { [name]: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
        },
      },
    });
  const placeholderFor = (capability: string) => world.placeholder({ [capability]: "1" });
  const condition = (name: string, type: string) =>
    world.getResource(name).then((r) => r.status?.conditions?.find((c) => c.type === type));

  test("a service principal with a client secret: the pool is polled with Entra tokens", async () => {
    await resource("entra", "sp-secret");
    const c = await eventually("AzureDevOpsReachable", async () => {
      const x = await condition("entra", "AzureDevOpsReachable");
      return x?.status === "True" ? x : undefined;
    });
    assert.match(c.message, /pool id/);
    const polls = world.ado.control.requests({ path: "jobrequests" });
    assert.ok(polls.length > 0, "the pool was polled");
    assert.ok(
      polls.every((r) => (r.identity ?? "").startsWith("entra:")),
      `polled as the service principal: ${polls[0]?.identity}`,
    );
  });

  test("a wrong client secret is reported, without the secret", async () => {
    await resource("entrabad", "sp-wrong", otherClientId);
    const c = await eventually("AzureDevOpsReachable False", async () => {
      const x = await condition("entrabad", "AzureDevOpsReachable");
      return x?.status === "False" ? x : undefined;
    });
    assert.match(c.message, /secret|AADSTS|credential/i);
    assert.doesNotMatch(JSON.stringify(await world.getResource("entrabad")), /not-the-secret/);
  });

  test("a rotated client secret is used at once: after the old one is revoked, polling and scaling go on", async () => {
    await placeholderFor("rotate");
    await resource("rotate", "sp-rotate", rotatedClientId);
    await eventually("AzureDevOpsReachable", async () => {
      const x = await condition("rotate", "AzureDevOpsReachable");
      return x?.status === "True" ? x : undefined;
    });
    // Rotate: the application gets a new secret (the old one is revoked), the Kubernetes Secret follows.
    world.ado.control.entra.addServicePrincipal({
      tenantId,
      clientId: rotatedClientId,
      clientSecret: "second-secret",
      scope: "manage",
      tokenLifetimeSeconds: 4,
    });
    await world.cluster.client.request({
      method: "PATCH",
      path: `/api/v1/namespaces/${world.ns}/secrets/sp-rotate`,
      contentType: "application/merge-patch+json",
      body: { stringData: { clientSecret: "second-secret" } },
    });
    // Longer than the old tokens live: a poll still holding the old secret would now fail.
    const rotatedAt = Date.now();
    await new Promise((r) => setTimeout(r, 8_000));
    const identity = `entra:${tenantId}/${rotatedClientId}`.toLowerCase();
    const polls = world.ado.control
      .requests({ path: "jobrequests" })
      .filter((r) => (r.identity ?? "").toLowerCase() === identity && Date.parse(r.time) > rotatedAt + 5_000);
    assert.ok(polls.length > 0, "the pool is still polled as the principal");
    assert.ok(
      polls.every((r) => r.status === 200),
      `every poll after the old tokens expired succeeded: ${polls.map((r) => r.status)}`,
    );
    const reachable = await condition("rotate", "AzureDevOpsReachable");
    assert.equal(reachable?.status, "True", reachable?.message);
    // And scaling goes on: a job gets its pod (the simulated agent itself logs in with a PAT only).
    world.ado.control.queueJob({ pool: world.pool, demands: ["rotate"], durationMs: 200 });
    await eventually("a pod for the job", async () => {
      const pods = await world.pods("rotate");
      return pods.length > 0 ? pods : undefined;
    });
  });
});
