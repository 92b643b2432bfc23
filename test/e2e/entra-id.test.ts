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
});
