/**
 * End to end, security and multi-tenancy. Each attack is shown working when the installer allows everything, then
 * refused by the operator's safe configuration: `Ready=False` with a specific reason, a Warning event, and nothing
 * sent (the emulators' request logs say so).
 *
 * - The operator's own Entra identity (`workloadIdentity: {}`) used from a namespace the installer did not list;
 *   its Azure DevOps token sent to another host (`organizationUrl`); its federated token, or a team's client
 *   secret, sent to another Entra authority (`authorityHost`); a PAT sent to another host, or over plain http.
 *   The "other host" is a second emulator on loopback that shares the bearer-token store, so its request log
 *   names the identity whose token reached it.
 * - Pipeline-chosen containers: any image without limits, as the original; with the operator's default policy,
 *   refused; the containers served run under the agent container's security context.
 * - Secrets never leak: a PAT, a client secret, a wrong secret and a failing Azure DevOps, then every log, event,
 *   status, pod spec and request log searched for them.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  type AzureDevOpsEmulator,
  InMemoryBearerTokenStore,
  startAzureDevOpsEmulator,
} from "../../sim/azure-devops/index.ts";
import { emulatorAccess, type OperatorProcess, startOperatorProcess } from "../support/operator.ts";
import { eventually, startWorld, type World } from "../support/world.ts";

const GROUP_PATH = "/apis/azurepipelines.k8s.scaler.io/v1";

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface KubeEventItem {
  type?: string;
  reason?: string;
  note?: string;
  regarding?: { name?: string };
  series?: { count?: number };
}

/** Helpers on one world: resources, conditions, events. */
function helpers(world: World) {
  const create = (name: string, spec: Record<string, unknown>) =>
    world.cluster.client.request({
      method: "POST",
      path: `${GROUP_PATH}/namespaces/${world.ns}/autoscaledagents`,
      body: {
        apiVersion: "azurepipelines.k8s.scaler.io/v1",
        kind: "AutoScaledAgent",
        metadata: { name },
        spec: {
          poolName: world.pool,
          podsWithCapabilities: [{ capabilities: { [name]: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
          ...spec,
        },
      },
    });
  const remove = (name: string) =>
    world.cluster.client.request({
      method: "DELETE",
      path: `${GROUP_PATH}/namespaces/${world.ns}/autoscaledagents/${name}`,
    });
  const condition = async (name: string, type: string) =>
    ((await world.getResource(name)).status?.conditions ?? []).find((c) => c.type === type) as Condition | undefined;
  const events = async () =>
    (
      await world.cluster.client.request<{ items: KubeEventItem[] }>({
        path: `/apis/events.k8s.io/v1/namespaces/${world.ns}/events`,
      })
    ).items;
  /** Waits for `type` to have `status` (and `reason` when given). */
  const waitFor = (name: string, type: string, status: string, reason?: string, timeoutMs = 60_000) =>
    eventually(
      `${name}: ${type}=${status}${reason ? ` (${reason})` : ""}`,
      async () => {
        const c = await condition(name, type);
        return c?.status === status && (reason === undefined || c.reason === reason) ? c : undefined;
      },
      timeoutMs,
    );
  /**
   * Waits until the refusal was made at least twice (a Warning event with that reason, repeated by a later
   * reconcile), so "nothing was sent" is checked after more than one attempt.
   */
  const refusedTwice = (name: string, reason: string) =>
    eventually(`${name}: the ${reason} event, repeated`, async () => {
      const e = (await events()).find((x) => x.regarding?.name === name && x.reason === reason);
      return e && e.type === "Warning" && (e.series?.count ?? 1) >= 2 ? e : undefined;
    });
  const exists = async (name: string) =>
    (
      await world.cluster.client.request<{ items: { metadata: { name: string } }[] }>({
        path: `${GROUP_PATH}/namespaces/${world.ns}/autoscaledagents`,
      })
    ).items.some((o) => o.metadata.name === name);
  return { create, remove, exists, condition, events, waitFor, refusedTwice };
}

/** A JWT in the shape of a projected service account token (the emulator checks claims, not this signature). */
function federatedToken(issuer: string, subject: string): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  return [
    part({ alg: "RS256", typ: "JWT" }),
    part({ iss: issuer, sub: subject, aud: ["api://AzureADTokenExchange"], iat: now, nbf: now, exp: now + 86_400 }),
    "c2lnbmF0dXJl",
  ].join(".");
}

// ---------------------------------------------------------------------------------------------------------------

describe("security: whose identity, and where credentials go", () => {
  const opTenant = "00000000-0000-0000-0000-0000000000a1";
  const opClient = "0a0a0a0a-0000-0000-0000-000000000001";
  const opIdentity = `entra:${opTenant}/${opClient}`;
  const spTenant = "00000000-0000-0000-0000-0000000000b2";
  const spClient = "0b0b0b0b-0000-0000-0000-000000000002";
  const spIdentity = `entra:${spTenant}/${spClient}`;
  const issuer = "https://oidc.cluster.test/issuer";
  const operatorSubject = "system:serviceaccount:azp-system:azp-operator";
  const principals = [
    {
      tenantId: opTenant,
      clientId: opClient,
      scope: "manage" as const,
      federatedCredentials: [{ issuer, subject: operatorSubject }],
    },
    { tenantId: spTenant, clientId: spClient, scope: "manage" as const, clientSecret: "team-sp-secret" },
  ];

  let world: World;
  /** Another host: a second emulator sharing the bearer-token store, so its log names whose token reached it. */
  let other: AzureDevOpsEmulator;
  let env: NodeJS.ProcessEnv;
  let operator: OperatorProcess | undefined;
  let h: ReturnType<typeof helpers>;

  before(async () => {
    const store = new InMemoryBearerTokenStore();
    world = await startWorld({
      emulator: { https: true, bearerTokenStore: store, entraId: { servicePrincipals: principals } },
    });
    other = await startAzureDevOpsEmulator({
      pools: [world.pool],
      https: true,
      bearerTokenStore: store,
      pats: [{ token: world.pat, scope: "manage", identity: "the-team-pat" }],
      entraId: { servicePrincipals: principals },
      log: () => {},
    });
    const dir = mkdtempSync(join(tmpdir(), "azp-security-"));
    writeFileSync(join(dir, "ca.pem"), `${world.ado.caCertificate ?? ""}\n${other.caCertificate ?? ""}\n`);
    writeFileSync(join(dir, "token"), federatedToken(issuer, operatorSubject));
    env = { NODE_EXTRA_CA_CERTS: join(dir, "ca.pem"), AZURE_FEDERATED_TOKEN_FILE: join(dir, "token") };
    await world.cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${world.ns}/secrets`,
      body: { metadata: { name: "team-sp" }, stringData: { clientSecret: "team-sp-secret" } },
    });
    h = helpers(world);
  });
  after(async () => {
    await operator?.stop();
    await other?.close();
    await world?.close();
  });

  const worldOrg = () => `${world.ado.httpsUrl}/${world.ado.organization}`;
  const otherOrg = () => `${other.httpsUrl}/${other.organization}`;
  const own = (authorityHost: string) => ({
    tenantId: opTenant,
    clientId: opClient,
    workloadIdentity: {},
    authorityHost,
  });
  const teamSecret = (authorityHost: string) => ({
    tenantId: spTenant,
    clientId: spClient,
    clientSecretRef: { name: "team-sp" },
    authorityHost,
  });
  const startOperator = async (access: string[]) => {
    await operator?.stop();
    operator = startOperatorProcess({ kubeconfig: world.cluster.kubeconfig, namespaces: [world.ns], env, access });
    await operator.waitForLog(/caches synced/);
  };

  test("allowed by the installer (the old behaviour): the operator's identity is borrowed, credentials go anywhere", async () => {
    await startOperator([
      "--azure-devops-hosts",
      "127.0.0.1",
      "--azure-devops-allow-http",
      "true",
      "--entra-authority-hosts",
      `${world.ado.httpsUrl},${other.httpsUrl}`,
      "--operator-identity-namespaces",
      world.ns,
    ]);
    const names = ["borrow", "token-out", "assertion-out", "secret-out", "pat-out"];
    // A team names the operator's identity: the operator polls the pool as itself for them.
    await h.create("borrow", { organizationUrl: worldOrg(), entraIdAuthentication: own(world.ado.httpsUrl ?? "") });
    await h.waitFor("borrow", "Ready", "True");
    assert.ok(world.ado.control.requests({ path: "jobrequests" }).some((r) => r.identity === opIdentity));
    // Its Azure DevOps token, sent to another host.
    await h.create("token-out", { organizationUrl: otherOrg(), entraIdAuthentication: own(world.ado.httpsUrl ?? "") });
    await eventually("the operator's token at the other host", () =>
      other.control.requests().find((r) => r.identity === opIdentity && r.scheme === "bearer"),
    );
    // Its federated token, sent to another authority as the client assertion. (Polls are shared per organization,
    // pool and identity: "borrow" would poll on behalf of this one, so it goes first.)
    await h.remove("borrow");
    await eventually("borrow gone", async () => ((await h.exists("borrow")) ? undefined : true));
    await h.create("assertion-out", { organizationUrl: worldOrg(), entraIdAuthentication: own(other.httpsUrl ?? "") });
    await eventually("the operator's federated token at the other authority", () =>
      other.control.requests().find((r) => r.method === "POST" && r.path === `/${opTenant}/oauth2/v2.0/token`),
    );
    // A team's client secret, sent to another authority.
    await h.create("secret-out", {
      organizationUrl: worldOrg(),
      entraIdAuthentication: teamSecret(other.httpsUrl ?? ""),
    });
    await eventually("the client secret at the other authority", () =>
      other.control.requests().find((r) => r.method === "POST" && r.path === `/${spTenant}/oauth2/v2.0/token`),
    );
    // A PAT, sent to another host over plain http.
    await h.create("pat-out", { organizationUrl: other.organizationUrl, personalAccessTokenSecretName: "azure-pat" });
    await eventually("the PAT at the other host", () =>
      other.control.requests().find((r) => r.identity === "the-team-pat"),
    );
    for (const name of names.slice(1)) await h.remove(name);
    await operator?.stop();
    operator = undefined;
  });

  test("the safe configuration refuses each, with a reason and an event, and sends nothing", async () => {
    await startOperator([
      // Only the emulator's https listener; no http; only its authority; the operator's identity for another namespace.
      "--azure-devops-hosts",
      `127.0.0.1:${world.ado.httpsPort}`,
      "--entra-authority-hosts",
      world.ado.httpsUrl ?? "",
      "--operator-identity-namespaces",
      "platform-only",
    ]);
    other.control.clearRequests();
    const since = world.ado.control.requests().at(-1)?.seq ?? 0;
    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      [
        "borrow2",
        { organizationUrl: worldOrg(), entraIdAuthentication: own(world.ado.httpsUrl ?? "") },
        "OperatorIdentityNotAllowed",
        new RegExp(`operator's own identity, which resources in namespace ${world.ns} may not use`),
      ],
      [
        "token-out2",
        { organizationUrl: otherOrg(), entraIdAuthentication: own(world.ado.httpsUrl ?? "") },
        "OrganizationUrlNotAllowed",
        new RegExp(`host 127\\.0\\.0\\.1:${other.httpsPort} is not one the operator may send credentials to`),
      ],
      [
        "secret-out2",
        { organizationUrl: worldOrg(), entraIdAuthentication: teamSecret(other.httpsUrl ?? "") },
        "AuthorityHostNotAllowed",
        /authority host https:\/\/127\.0\.0\.1:\d+ is not one the operator may send a client secret or federated token to/,
      ],
      [
        "pat-out2",
        { organizationUrl: `${other.httpsUrl}/${other.organization}`, personalAccessTokenSecretName: "azure-pat" },
        "OrganizationUrlNotAllowed",
        /is not one the operator may send credentials to/,
      ],
      [
        "plain-http",
        { organizationUrl: world.ado.organizationUrl, personalAccessTokenSecretName: "azure-pat" },
        "InsecureOrganizationUrl",
        /uses plain http/,
      ],
    ];
    for (const [name, spec] of cases) await h.create(name, spec);
    // An allowed resource keeps working beside them.
    await h.create("team-ok", {
      organizationUrl: worldOrg(),
      entraIdAuthentication: teamSecret(world.ado.httpsUrl ?? ""),
    });
    await h.waitFor("team-ok", "Ready", "True");
    for (const [name, , reason, message] of cases) {
      const ready = await h.waitFor(name, "Ready", "False", reason);
      assert.match(ready.message, message, name);
      assert.equal((await h.condition(name, "AzureDevOpsReachable"))?.reason, "NotChecked", name);
      const event = await h.refusedTwice(name, reason);
      assert.match(event.note ?? "", message);
    }
    // Nothing reached the other host, and the operator's identity asked for no token anywhere.
    assert.deepEqual(other.control.requests(), [], "no request at the other host");
    const sent = world.ado.control.requests({ since });
    assert.deepEqual(
      sent.filter((r) => r.identity === opIdentity || r.path.includes(opTenant)),
      [],
      "no token asked for, no call made, with the operator's identity",
    );
    assert.deepEqual(
      sent.filter((r) => r.identity === "admin"),
      [],
      "the PAT was not sent over http",
    );
    assert.ok(
      sent.some((r) => r.identity === spIdentity),
      "the allowed resource polls",
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("security: containers a pipeline chooses", () => {
  let world: World;
  let operator: OperatorProcess | undefined;
  let h: ReturnType<typeof helpers>;
  before(async () => {
    world = await startWorld();
    h = helpers(world);
  });
  after(async () => {
    await operator?.stop();
    await world?.close();
  });

  const hardened = {
    runAsNonRoot: true,
    runAsUser: 1000,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
  const template = () => {
    const t = world.template() as { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } };
    Object.assign(t.spec.containers[0] as Record<string, unknown>, {
      securityContext: hardened,
      volumeMounts: [{ name: "workspace", mountPath: "/azp/_work" }],
    });
    t.spec.volumes = [{ name: "workspace", emptyDir: {} }];
    return t;
  };
  const startOperator = async (args: string[] = []) => {
    await operator?.stop();
    operator = startOperatorProcess({
      kubeconfig: world.cluster.kubeconfig,
      namespaces: [world.ns],
      args: ["--leader-elect", "false", ...args],
    });
    await operator.waitForLog(/caches synced/);
  };
  const unbounded = "name=tool,image=docker.io/library/anything:latest";
  const approved = "name=db,image=example.com/approved/db:1,cpu=250m,memory=64Mi";
  /** Queues a job demanding `value` and waits for it to finish; returns the extra container of its pod. */
  const runJob = async (value: string, container: string) => {
    const job = world.ado.control.queueJob({
      pool: world.pool,
      demands: ["xsec", `ExtraAgentContainers -equals ${value}`],
      durationMs: 300,
    });
    const done = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 90_000,
    });
    assert.equal(done.result, "succeeded");
    const pod = (await world.pods("xsec")).find((p) => p.metadata.name === done.reservedAgent?.name);
    const spec = pod?.spec.containers.find((c) => c.name === container) as
      | { image?: string; securityContext?: unknown; resources?: { limits?: Record<string, string> } }
      | undefined;
    assert.ok(spec, `the pod has the container ${container}`);
    return spec;
  };

  test("no policy anywhere: any image without limits, as in the original; it runs as constrained as the agent", async () => {
    await startOperator();
    await world.placeholder({ xsec: "1", ExtraAgentContainers: unbounded });
    await world.placeholder({ xsec: "1", ExtraAgentContainers: approved });
    await h.create("xsec", {
      organizationUrl: world.ado.organizationUrl,
      personalAccessTokenSecretName: "azure-pat",
      maxTerminatedPodsToKeep: 5,
      podsWithCapabilities: [{ capabilities: { xsec: "1" }, maxCount: 2, podTemplateSpec: template() }],
    });
    const tool = await runJob(unbounded, "tool");
    assert.equal(tool.image, "docker.io/library/anything:latest");
    assert.equal(tool.resources?.limits, undefined, "no limits were asked for, none are set");
    assert.deepEqual(tool.securityContext, hardened, "the agent container's security context, not the image's root");
  });

  test("the operator's default policy refuses what it does not allow, and serves what it allows", async () => {
    await startOperator([
      "--extra-agent-containers-policy",
      JSON.stringify({
        allowedImages: ["example.com/approved/*"],
        maxCpuPerContainer: "500m",
        maxMemoryPerContainer: "256Mi",
      }),
    ]);
    const refused = world.ado.control.queueJob({
      pool: world.pool,
      demands: ["xsec", `ExtraAgentContainers -equals ${unbounded}`],
      durationMs: 300,
    });
    const event = await eventually("JobNotServed for the refused job", async () =>
      (await h.events()).find(
        (e) => e.regarding?.name === "xsec" && e.reason === "JobNotServed" && e.note?.includes(`${refused.requestId}`),
      ),
    );
    assert.match(event.note ?? "", /is refused by the operator's default policy/);
    assert.match(event.note ?? "", /image "docker\.io\/library\/anything:latest" matches none of allowedImages/);
    assert.match(
      event.note ?? "",
      /gives no cpu, but maxCpuPerContainer of the operator's --extra-agent-containers-policy/,
    );
    const db = await runJob(approved, "db");
    assert.deepEqual(db.securityContext, hardened);
    assert.deepEqual(db.resources?.limits, { cpu: "250m", memory: "64Mi" });
    assert.equal(world.ado.control.getJob(refused.requestId)?.state, "queued", "no pod for the refused job");
    world.ado.control.cancelJob(refused.requestId);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("security: secrets never leak", () => {
  const canary = (what: string) => `canary-${what}-${randomBytes(12).toString("hex")}`;
  const pat = canary("pat");
  const wrongPat = canary("wrong-pat");
  const clientSecret = canary("client-secret");
  const wrongSecret = canary("wrong-secret");
  const tenantId = "00000000-0000-0000-0000-0000000000c3";
  const clientId = "0c0c0c0c-0000-0000-0000-000000000003";
  const otherClientId = "0c0c0c0c-0000-0000-0000-000000000004";

  let world: World;
  let operator: OperatorProcess;
  let h: ReturnType<typeof helpers>;
  before(async () => {
    world = await startWorld({
      emulator: {
        https: true,
        entraId: {
          servicePrincipals: [
            { tenantId, clientId, clientSecret, scope: "manage" },
            { tenantId, clientId: otherClientId, clientSecret: "the-right-one", scope: "manage" },
          ],
        },
      },
    });
    world.ado.control.addPat({ token: pat, scope: "manage", name: "canary" });
    for (const [name, data] of [
      ["canary-pat", { pat }],
      ["canary-wrong-pat", { pat: wrongPat }],
      ["canary-sp", { clientSecret }],
      ["canary-wrong-sp", { clientSecret: wrongSecret }],
    ] as const) {
      await world.cluster.client.request({
        method: "POST",
        path: `/api/v1/namespaces/${world.ns}/secrets`,
        body: { metadata: { name }, stringData: data },
      });
    }
    const caFile = join(mkdtempSync(join(tmpdir(), "azp-ca-")), "ca.pem");
    writeFileSync(caFile, world.ado.caCertificate ?? "");
    // Debug logs: the most the operator ever says.
    operator = startOperatorProcess({
      kubeconfig: world.cluster.kubeconfig,
      namespaces: [world.ns],
      env: { NODE_EXTRA_CA_CERTS: caFile },
      access: emulatorAccess(world.ado),
    });
    await operator.waitForLog(/caches synced/);
    h = helpers(world);
  });
  after(async () => {
    await operator?.stop();
    await world?.close();
  });

  test("a PAT with a job, a client secret, wrong ones and a failing Azure DevOps: no trace of any secret", async () => {
    const httpsOrg = `${world.ado.httpsUrl}/${world.ado.organization}`;
    const entra = (client: string, secret: string) => ({
      organizationUrl: httpsOrg,
      entraIdAuthentication: {
        tenantId,
        clientId: client,
        authorityHost: world.ado.httpsUrl,
        clientSecretRef: { name: secret },
      },
    });
    await world.placeholder({ "leak-pat": "1" });
    await h.create("leak-pat", {
      organizationUrl: world.ado.organizationUrl,
      personalAccessTokenSecretName: "canary-pat",
    });
    await h.create("leak-bad-pat", {
      organizationUrl: world.ado.organizationUrl,
      personalAccessTokenSecretName: "canary-wrong-pat",
    });
    await h.create("leak-sp", entra(clientId, "canary-sp"));
    await h.create("leak-wrong-sp", entra(otherClientId, "canary-wrong-sp"));

    // A job runs with the PAT's pod.
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["leak-pat"], durationMs: 300 });
    const done = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 90_000,
    });
    assert.equal(done.result, "succeeded");
    await h.waitFor("leak-sp", "Ready", "True");
    await h.waitFor("leak-bad-pat", "Ready", "False", "AzureDevOpsUnauthorized");
    await h.waitFor("leak-wrong-sp", "AzureDevOpsReachable", "False");
    // Azure DevOps fails for a while, then recovers.
    world.ado.control.setFaults([{ path: "**/jobrequests", errorRate: 1, status: 500 }]);
    await h.waitFor("leak-pat", "Ready", "False", "AzureDevOpsServerError");
    world.ado.control.clearFaults();
    await h.waitFor("leak-pat", "Ready", "True");

    // Everything the operator wrote or said, and everything the service was sent (as logged).
    const list = async (path: string) => JSON.stringify(await world.cluster.client.request({ path }));
    const places: Record<string, string> = {
      "operator log (debug)": operator.log(),
      events: await list(`/apis/events.k8s.io/v1/namespaces/${world.ns}/events`),
      "core events": await list(`/api/v1/namespaces/${world.ns}/events`),
      "resources and their status": await list(`${GROUP_PATH}/namespaces/${world.ns}/autoscaledagents`),
      "pod specs": await list(`/api/v1/namespaces/${world.ns}/pods`),
      "emulator request log": JSON.stringify(world.ado.control.requests()),
    };
    assert.match(places["operator log (debug)"] ?? "", / DEBUG +azure devops: answer/, "debug lines were written");
    assert.ok(places["pod specs"]?.includes("canary-pat"), "the pod refers to the Secret by name");
    const forms = (secret: string) => [
      secret,
      Buffer.from(secret).toString("base64"),
      Buffer.from(`:${secret}`).toString("base64"),
      Buffer.from(secret).toString("base64url"),
      encodeURIComponent(secret),
    ];
    const hits: string[] = [];
    for (const secret of [pat, wrongPat, clientSecret, wrongSecret]) {
      for (const form of forms(secret)) {
        for (const [place, text] of Object.entries(places)) {
          if (text.includes(form)) hits.push(`${place} holds ${secret === form ? secret : `an encoding of ${secret}`}`);
        }
      }
    }
    assert.deepEqual(hits, []);
  });
});
