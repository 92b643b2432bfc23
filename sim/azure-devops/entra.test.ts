import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { request as httpsRequest } from "node:https";
import { describe, test } from "node:test";
import { useEmulator } from "../../test/support/emulator.ts";
import {
  AZURE_DEVOPS_RESOURCE_ID,
  JWT_BEARER_ASSERTION_TYPE,
  ManualClock,
  startAzureDevOpsEmulator,
  WORKLOAD_IDENTITY_AUDIENCE,
} from "./index.ts";

// biome-ignore lint/suspicious/noExplicitAny: test assertions walk JSON freely
type Json = any;

const tenantId = "72f988bf-0000-4000-8000-000000000001";
const manageClient = "00000000-0000-0000-0000-0000000000a1";
const readClient = "00000000-0000-0000-0000-0000000000b2";
const outsider = "00000000-0000-0000-0000-0000000000c3";
const federatedClient = "00000000-0000-0000-0000-0000000000d4";
const secret = "manage-secret-0123456789";
const scope = `${AZURE_DEVOPS_RESOURCE_ID}/.default`;
const clusterIssuer = "https://oidc.sim.invalid/cluster-1";
const serviceAccount = "system:serviceaccount:azp:azp-operator";

const signingKeys = generateKeyPairSync("rsa", { modulusLength: 2048 });
const otherKeys = generateKeyPairSync("rsa", { modulusLength: 2048 });

/** A service account token the way Kubernetes makes one (RS256). */
function serviceAccountToken(
  claims: Record<string, unknown> = {},
  key: KeyObject = signingKeys.privateKey,
  nowSec = Math.floor(Date.now() / 1000),
): string {
  const header = Buffer.from(JSON.stringify({ alg: "RS256", kid: "k1", typ: "JWT" })).toString("base64url");
  const payload = Buffer.from(
    JSON.stringify({
      iss: clusterIssuer,
      sub: serviceAccount,
      aud: [WORKLOAD_IDENTITY_AUDIENCE],
      iat: nowSec,
      nbf: nowSec,
      exp: nowSec + 3600,
      ...claims,
    }),
  ).toString("base64url");
  const signature = sign("sha256", Buffer.from(`${header}.${payload}`), key).toString("base64url");
  return `${header}.${payload}.${signature}`;
}

const emu = useEmulator({
  pools: ["sim-pool"],
  https: true,
  entraId: {
    tenants: [{ tenantId, domains: ["contoso.onmicrosoft.com"] }],
    servicePrincipals: [
      { tenantId, clientId: manageClient, clientSecret: secret, scope: "manage", displayName: "azp-operator" },
      { tenantId, clientId: readClient, clientSecret: "read-secret-0123456789", scope: "read" },
      { tenantId, clientId: outsider, clientSecret: "outsider-secret-0123" },
      {
        tenantId,
        clientId: federatedClient,
        scope: "manage",
        federatedCredentials: [{ issuer: clusterIssuer, subject: serviceAccount }],
      },
    ],
  },
});

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: Json;
}

async function http(method: string, url: string, init: { headers?: Record<string, string>; body?: string } = {}) {
  const response = await fetch(url, { method, ...init });
  const text = await response.text();
  let json: Json;
  if ((response.headers.get("content-type") ?? "").includes("json") && text !== "") json = JSON.parse(text);
  return { status: response.status, headers: response.headers, text, json } satisfies Answer;
}

/** The token endpoint over the plain listener (same directory as the HTTPS one). */
function token(form: Record<string, string>, tenant = tenantId, headers: Record<string, string> = {}) {
  return http("POST", `${emu.url}/${tenant}/oauth2/v2.0/token`, {
    headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

const secretGrant = (clientId = manageClient, clientSecret = secret) => ({
  grant_type: "client_credentials",
  client_id: clientId,
  client_secret: clientSecret,
  scope,
});

const assertionGrant = (assertion: string, clientId = federatedClient) => ({
  grant_type: "client_credentials",
  client_id: clientId,
  client_assertion: assertion,
  client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
  scope,
});

function assertEntraError(answer: Answer, status: number, error: string, code: number) {
  assert.equal(answer.status, status, answer.text);
  assert.equal(answer.json.error, error, answer.text);
  assert.deepEqual(answer.json.error_codes, [code]);
  assert.match(
    answer.json.error_description,
    new RegExp(`^AADSTS${code}: .+ Trace ID: .+ Correlation ID: .+ Timestamp: `),
  );
  for (const key of ["timestamp", "trace_id", "correlation_id", "error_uri"])
    assert.equal(typeof answer.json[key], "string");
}

const pools = (bearer: string) =>
  http("GET", `${emu.organizationUrl}/_apis/distributedtask/pools`, { headers: { Authorization: `Bearer ${bearer}` } });

async function registerAgent(bearer: string, name: string) {
  const list = await pools(bearer);
  assert.equal(list.status, 200, list.text);
  return http(
    "POST",
    `${emu.organizationUrl}/_apis/distributedtask/pools/${list.json.value[0].id}/agents?api-version=7.1`,
    {
      headers: { Authorization: `Bearer ${bearer}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name, version: "4.258.1" }),
    },
  );
}

/** GET over the HTTPS listener, trusting only the emulator's CA. */
function httpsGet(path: string, ca: string | undefined = emu.caCertificate): Promise<{ status: number; json: Json }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${emu.httpsUrl}${path}`, { ca: ca ?? [] }, (res) => {
      let body = "";
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, json: body ? JSON.parse(body) : undefined }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the HTTPS listener", () => {
  test("serves discovery and the service API with a certificate the given CA signed, and nothing without it", async () => {
    assert.match(emu.httpsUrl ?? "", /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(emu.httpsPort, emu.port);
    assert.match(emu.caCertificate ?? "", /^-----BEGIN CERTIFICATE-----/);
    const doc = await httpsGet(`/${tenantId}/v2.0/.well-known/openid-configuration`);
    assert.equal(doc.status, 200);
    // MSAL accepts the issuer only when scheme, host and port are the authority's.
    assert.equal(doc.json.issuer, `${emu.httpsUrl}/${tenantId}/v2.0`);
    assert.equal(doc.json.token_endpoint, `${emu.httpsUrl}/${tenantId}/oauth2/v2.0/token`);
    for (const key of ["authorization_endpoint", "jwks_uri", "end_session_endpoint"]) {
      assert.ok(doc.json[key].startsWith(`${emu.httpsUrl}/${tenantId}/`), key);
    }
    const state = await httpsGet(`/_sim/state`);
    assert.equal(state.json.httpsUrl, emu.httpsUrl);
    await assert.rejects(httpsGet("/_sim/state", ""), (err: NodeJS.ErrnoException) => {
      assert.match(err.code ?? "", /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
      return true;
    });
  });

  test("an emulator without https has no HTTPS URL and no CA", async () => {
    const plain = await startAzureDevOpsEmulator({ log: () => undefined });
    try {
      assert.equal(plain.httpsUrl, undefined);
      assert.equal(plain.caCertificate, undefined);
    } finally {
      await plain.close();
    }
  });
});

describe("discovery", () => {
  test("by tenant ID or domain (any case); the endpoints name the tenant ID", async () => {
    for (const t of [tenantId, tenantId.toUpperCase(), "Contoso.onmicrosoft.com"]) {
      const doc = await http("GET", `${emu.url}/${t}/v2.0/.well-known/openid-configuration`);
      assert.equal(doc.status, 200, t);
      assert.equal(doc.json.token_endpoint, `${emu.url}/${tenantId}/oauth2/v2.0/token`);
    }
    const keys = await http("GET", `${emu.url}/${tenantId}/discovery/v2.0/keys`);
    assert.deepEqual(keys.json, { keys: [] });
  });

  test("an unknown tenant is AADSTS90002 invalid_tenant", async () => {
    const answer = await http("GET", `${emu.url}/nope/v2.0/.well-known/openid-configuration`);
    assertEntraError(answer, 400, "invalid_tenant", 90002);
    assert.match(answer.json.error_description, /Tenant 'nope' not found/);
  });
});

describe("the token endpoint", () => {
  test("client credentials with a secret: an opaque token the service API accepts, with the principal's identity", async () => {
    const answer = await token(secretGrant(), tenantId, { "client-request-id": "corr-1" });
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(Object.keys(answer.json).sort(), ["access_token", "expires_in", "ext_expires_in", "token_type"]);
    assert.equal(answer.json.token_type, "Bearer");
    assert.equal(answer.json.expires_in, 3599);
    assert.equal(answer.headers.get("client-request-id"), "corr-1");
    assert.equal(answer.headers.get("cache-control"), "no-store, no-cache");
    const bearer = answer.json.access_token as string;
    assert.match(bearer, /^[A-Za-z0-9_-]{64}$/);
    assert.equal((await pools(bearer)).status, 200);
    const who = await http("GET", `${emu.organizationUrl}/_apis/connectionData`, {
      headers: { Authorization: `Bearer ${bearer}` },
    });
    assert.equal(who.json.authenticatedUser.providerDisplayName, "azp-operator");
    const stored = emu.control.bearerTokens.list().find((t) => t.token === bearer);
    assert.equal(stored?.identity, `entra:${tenantId}/${manageClient}`);
    assert.equal(stored?.scope, "manage");
    const log = emu.control.requests({ path: "/oauth2/" });
    assert.equal(log.length, 1);
    assert.equal(log[0]?.identity, `entra:${tenantId}/${manageClient}`);
    assert.equal(log[0]?.status, 200);
  });

  test("the secret may come as HTTP Basic (client_secret_basic), the scope by the resource URI", async () => {
    const answer = await token(
      { grant_type: "client_credentials", scope: "https://app.vssps.visualstudio.com/.default" },
      "contoso.onmicrosoft.com",
      { Authorization: `Basic ${Buffer.from(`${manageClient}:${secret}`).toString("base64")}` },
    );
    assert.equal(answer.status, 200, answer.text);
  });

  test("manage may register an agent; read may list but gets 403 on a write; a non-member's token is refused", async () => {
    const manage = (await token(secretGrant())).json.access_token;
    assert.equal((await registerAgent(manage, "agent-1")).status, 200);
    const read = (await token(secretGrant(readClient, "read-secret-0123456789"))).json.access_token;
    const refused = await registerAgent(read, "agent-2");
    assert.equal(refused.status, 403);
    assert.equal(refused.json.typeKey, "AccessCheckException");
    const issued = await token(secretGrant(outsider, "outsider-secret-0123"));
    assert.equal(issued.status, 200, "Entra issues tokens to principals outside the organization");
    const stranger = await pools(issued.json.access_token);
    assert.equal(stranger.status, 203, "the service answers a GET with its sign-in page");
    assert.match(stranger.text, /Sign in/);
  });

  test("an expired token gets the service's treatment: 203 sign-in page on GET, 401 on a write", async () => {
    const clock = new ManualClock(Date.now());
    const timed = await startAzureDevOpsEmulator({
      clock,
      pools: ["sim-pool"],
      log: () => undefined,
      entraId: {
        tokenLifetimeSeconds: 60,
        servicePrincipals: [{ tenantId, clientId: manageClient, clientSecret: secret, scope: "manage" }],
      },
    });
    try {
      const answer = await http("POST", `${timed.url}/${tenantId}/oauth2/v2.0/token`, {
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(secretGrant()).toString(),
      });
      assert.equal(answer.json.expires_in, 60);
      const auth = { Authorization: `Bearer ${answer.json.access_token}` };
      const list = () => http("GET", `${timed.organizationUrl}/_apis/distributedtask/pools`, { headers: auth });
      assert.equal((await list()).status, 200);
      clock.advance(59_000);
      assert.equal((await list()).status, 200);
      clock.advance(1_000);
      const expired = await list();
      assert.equal(expired.status, 203);
      assert.match(expired.headers.get("content-type") ?? "", /text\/html/);
      const write = await http(
        "POST",
        `${timed.organizationUrl}/_apis/distributedtask/pools/10/agents?api-version=7.1`,
        {
          headers: { ...auth, "Content-Type": "application/json" },
          body: JSON.stringify({ name: "late" }),
        },
      );
      assert.equal(write.status, 401);
    } finally {
      await timed.close();
    }
  });

  test("the service's errors: tenant, grant, client, scope, resource, secret, missing credential", async () => {
    assertEntraError(await token(secretGrant(), "nope"), 400, "invalid_request", 90002);
    const { grant_type: _, ...noGrant } = secretGrant();
    assertEntraError(await token(noGrant), 400, "invalid_request", 900144);
    assertEntraError(await token({ ...secretGrant(), grant_type: "password" }), 400, "unsupported_grant_type", 70003);
    const { client_id: __, ...noClient } = secretGrant();
    assertEntraError(await token(noClient), 400, "invalid_request", 900144);
    const unknownApp = await token(secretGrant("11111111-1111-1111-1111-111111111111"));
    assertEntraError(unknownApp, 400, "unauthorized_client", 700016);
    const { scope: ___, ...noScope } = secretGrant();
    assertEntraError(await token(noScope), 400, "invalid_request", 900144);
    assertEntraError(await token({ ...secretGrant(), scope: AZURE_DEVOPS_RESOURCE_ID }), 400, "invalid_scope", 1002012);
    assertEntraError(
      await token({ ...secretGrant(), scope: "https://management.azure.com/.default" }),
      400,
      "invalid_resource",
      500011,
    );
    const wrong = await token(secretGrant(manageClient, "wrong-secret-value"));
    assertEntraError(wrong, 401, "invalid_client", 7000215);
    const { client_secret: ____, ...noSecret } = secretGrant();
    assertEntraError(await token(noSecret), 401, "invalid_client", 7000218);
    assertEntraError(await http("GET", `${emu.url}/${tenantId}/oauth2/v2.0/token`), 405, "invalid_request", 900561);
    // The request log names the client and the error, and never holds a secret.
    const log = emu.control.requests({ path: "/oauth2/" });
    const refused = log.find((e) => e.status === 401);
    assert.equal(refused?.identity, `entra:${tenantId}/${manageClient}`);
    assert.equal(refused?.error, "invalid_client");
    assert.match(refused?.detail ?? "", /^AADSTS7000215/);
    assert.doesNotMatch(JSON.stringify(log), /wrong-secret-value|manage-secret/);
  });

  test("a principal's tokens follow its membership: scope changes at once, removal revokes", async () => {
    const bearer = (await token(secretGrant())).json.access_token;
    assert.equal((await registerAgent(bearer, "agent-a")).status, 200);
    emu.control.entra.addServicePrincipal({ tenantId, clientId: manageClient, clientSecret: secret, scope: "read" });
    assert.equal((await registerAgent(bearer, "agent-b")).status, 403);
    emu.control.entra.addServicePrincipal({ tenantId, clientId: manageClient, clientSecret: secret });
    assert.equal((await pools(bearer)).status, 203);
    emu.control.entra.addServicePrincipal({ tenantId, clientId: manageClient, clientSecret: secret, scope: "manage" });
    assert.equal((await pools(bearer)).status, 200);
    assert.equal(emu.control.entra.removeServicePrincipal(tenantId, manageClient), true);
    assert.equal((await pools(bearer)).status, 203);
    assertEntraError(await token(secretGrant()), 400, "unauthorized_client", 700016);
  });

  test("reset forgets issued tokens and principals added since, and restores the configured ones", async () => {
    const bearer = (await token(secretGrant())).json.access_token;
    emu.control.entra.addServicePrincipal({ tenantId: "other-tenant", clientId: "x", clientSecret: "x-secret" });
    emu.control.entra.removeServicePrincipal(tenantId, readClient);
    emu.control.reset();
    assert.equal((await pools(bearer)).status, 203);
    assert.equal(emu.control.entra.resolveTenant("other-tenant"), undefined);
    assert.ok(emu.control.entra.getServicePrincipal(tenantId, readClient));
  });

  test("faults apply to the token endpoint too (the Entra error body)", async () => {
    emu.control.setFaults([{ path: "/*/oauth2/v2.0/token", errorRate: 1, status: 503 }]);
    const answer = await token(secretGrant());
    assertEntraError(answer, 503, "temporarily_unavailable", 90033);
    assert.equal(emu.control.requests({ path: "/oauth2/" })[0]?.fault, "error");
  });
});

describe("workload identity (client assertion)", () => {
  test("a federated token matching issuer, subject and audience gets an access token", async () => {
    const answer = await token(assertionGrant(serviceAccountToken()));
    assert.equal(answer.status, 200, answer.text);
    assert.equal((await registerAgent(answer.json.access_token, "wl-agent")).status, 200);
  });

  test("no matching federated credential is AADSTS70021 naming issuer, subject and audience", async () => {
    const answer = await token(assertionGrant(serviceAccountToken({ sub: "system:serviceaccount:azp:other" })));
    assertEntraError(answer, 400, "invalid_request", 70021);
    assert.match(
      answer.json.error_description,
      /Assertion Issuer: 'https:\/\/oidc\.sim\.invalid\/cluster-1'\. Assertion Subject: 'system:serviceaccount:azp:other'\. Assertion Audience: 'api:\/\/AzureADTokenExchange'/,
    );
    assertEntraError(
      await token(assertionGrant(serviceAccountToken({ aud: "api://other" }))),
      400,
      "invalid_request",
      70021,
    );
    assertEntraError(await token(assertionGrant(serviceAccountToken(), manageClient)), 400, "invalid_request", 70021);
  });

  test("expired, malformed, wrongly typed assertions are refused", async () => {
    const old = serviceAccountToken({}, signingKeys.privateKey, Math.floor(Date.now() / 1000) - 7200);
    assertEntraError(await token(assertionGrant(old)), 401, "invalid_client", 700024);
    assertEntraError(await token(assertionGrant("not-a-jwt")), 400, "invalid_request", 50027);
    assertEntraError(
      await token({ ...assertionGrant(serviceAccountToken()), client_assertion_type: "urn:other" }),
      400,
      "invalid_request",
      700010,
    );
  });

  test("with the issuer's keys registered, the signature is checked", async () => {
    // Unregistered issuer: any signature passes (documented).
    assert.equal((await token(assertionGrant(serviceAccountToken({}, otherKeys.privateKey)))).status, 200);
    emu.control.entra.addIssuer({
      issuer: clusterIssuer,
      keys: [{ ...signingKeys.publicKey.export({ format: "jwk" }), kid: "k1" }],
    });
    assert.equal((await token(assertionGrant(serviceAccountToken()))).status, 200);
    const forged = await token(assertionGrant(serviceAccountToken({}, otherKeys.privateKey)));
    assertEntraError(forged, 401, "invalid_client", 700027);
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    emu.control.entra.addIssuer({ issuer: clusterIssuer, keys: [ec.publicKey.export({ format: "jwk" })] });
    const header = Buffer.from(JSON.stringify({ alg: "ES256" })).toString("base64url");
    const nowSec = Math.floor(Date.now() / 1000);
    const payload = Buffer.from(
      JSON.stringify({ iss: clusterIssuer, sub: serviceAccount, aud: WORKLOAD_IDENTITY_AUDIENCE, exp: nowSec + 600 }),
    ).toString("base64url");
    const sig = sign("sha256", Buffer.from(`${header}.${payload}`), { key: ec.privateKey, dsaEncoding: "ieee-p1363" });
    assert.equal((await token(assertionGrant(`${header}.${payload}.${sig.toString("base64url")}`))).status, 200);
  });
});

describe("the control API", () => {
  test("principals: made-up client ID and secret returned once, never listed; tenants, issuers, settings", async () => {
    const created = await http("POST", `${emu.controlUrl}/entra/principals`, {
      body: JSON.stringify({ tenantId: "fabrikam", scope: "read", tokenLifetimeSeconds: 120 }),
    });
    assert.equal(created.status, 201, created.text);
    assert.match(created.json.clientId, /^[0-9a-f-]{36}$/);
    assert.equal(created.json.clientSecret.length, 40);
    assert.equal(created.json.identity, `entra:fabrikam/${created.json.clientId}`);
    const issued = await token(secretGrant(created.json.clientId, created.json.clientSecret), "fabrikam");
    assert.equal(issued.json.expires_in, 120);
    const listed = await http("GET", `${emu.controlUrl}/entra/principals`);
    assert.doesNotMatch(listed.text, new RegExp(created.json.clientSecret.replace(/[.~-]/g, "\\$&")));
    assert.doesNotMatch(listed.text, /manage-secret/);
    const one = await http("GET", `${emu.controlUrl}/entra/principals/${created.json.clientId}`);
    assert.equal(one.json.hasSecret, true);
    assert.equal(one.json.activeTokens, 1);

    const fed = await http("POST", `${emu.controlUrl}/entra/principals`, {
      body: JSON.stringify({
        tenantId: "fabrikam",
        clientId: "wl-app",
        scope: "manage",
        federatedCredentials: [{ issuer: clusterIssuer, subject: serviceAccount }],
      }),
    });
    assert.equal(fed.json.clientSecret, undefined, "a federated principal gets no made-up secret");
    assert.deepEqual(fed.json.federatedCredentials[0].audiences, [WORKLOAD_IDENTITY_AUDIENCE]);

    const tenant = await http("POST", `${emu.controlUrl}/entra/tenants`, {
      body: JSON.stringify({ tenantId: "fabrikam", domains: ["fabrikam.example"] }),
    });
    assert.deepEqual(tenant.json, { tenantId: "fabrikam", domains: ["fabrikam.example"] });
    const settings = await http("PUT", `${emu.controlUrl}/entra/settings`, {
      body: JSON.stringify({ tokenLifetimeSeconds: 30 }),
    });
    assert.deepEqual(settings.json, { tokenLifetimeSeconds: 30 });
    assert.equal((await token(secretGrant())).json.expires_in, 30);
    const issuer = await http("POST", `${emu.controlUrl}/entra/issuers`, {
      body: JSON.stringify({ issuer: clusterIssuer, keys: [signingKeys.publicKey.export({ format: "jwk" })] }),
    });
    assert.deepEqual(issuer.json, { issuer: clusterIssuer, keys: 1 });
    const overview = await http("GET", `${emu.controlUrl}/entra`);
    assert.equal(overview.json.authorityHost, emu.httpsUrl);
    assert.equal(overview.json.issuers.length, 1);
    const removed = await http("DELETE", `${emu.controlUrl}/entra/principals/wl-app?tenantId=fabrikam.example`);
    assert.deepEqual(removed.json, { removed: true });
    const gone = await http("DELETE", `${emu.controlUrl}/entra/issuers?issuer=${encodeURIComponent(clusterIssuer)}`);
    assert.deepEqual(gone.json, { removed: true });
  });

  test("bad input is a 400 with the reason", async () => {
    for (const body of [
      { tenantId: "bad tenant!" },
      { tenantId: "t", scope: "admin" },
      { tenantId: "t", federatedCredentials: [{ issuer: "", subject: "s" }] },
      { tenantId: "t", tokenLifetimeSeconds: 0 },
    ]) {
      const answer = await http("POST", `${emu.controlUrl}/entra/principals`, { body: JSON.stringify(body) });
      assert.equal(answer.status, 400, JSON.stringify(body));
    }
    const badKey = await http("POST", `${emu.controlUrl}/entra/issuers`, {
      body: JSON.stringify({ issuer: "x", keys: [{ kty: "RSA" }] }),
    });
    assert.equal(badKey.status, 400);
    assert.match(badKey.json.message, /not a usable public JWK/);
    assert.equal((await http("GET", `${emu.controlUrl}/entra/bogus`)).status, 404);
  });
});
