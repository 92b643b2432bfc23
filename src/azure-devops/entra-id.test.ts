/**
 * The whole Entra ID flow on this machine: the Azure DevOps emulator plays the Entra token endpoint over HTTPS (a
 * throw-away CA), `entraIdCredential` gets tokens from it through `@azure/identity`, and the emulator's Azure
 * DevOps API accepts them. Every connection this file makes is checked to stay on loopback.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { subscribe } from "node:diagnostics_channel";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ManualClock, startAzureDevOpsEmulator, WORKLOAD_IDENTITY_AUDIENCE } from "../../sim/azure-devops/index.ts";
import { useEmulator } from "../../test/support/emulator.ts";
import type { EntraIdAuthentication } from "../api/v1/index.ts";
import type { Logger } from "../runtime/logger.ts";
import { authorizationHeader } from "./auth.ts";
import {
  AZURE_DEVOPS_SCOPE,
  type EntraIdCredentialOptions,
  EntraIdError,
  entraIdCredential,
  entraIdOptionsFromSpec,
} from "./entra-id.ts";

// ---- no traffic outside loopback: every TCP connection attempt and name lookup of this process is recorded

const destinations = new Set<string>();
subscribe("net.client.socket", (message) => {
  const socket = (message as { socket: Socket }).socket;
  socket.on("connectionAttempt", (ip: string) => destinations.add(ip));
  socket.on("lookup", (_err: Error | null, address: string, _family: unknown, host: string) => {
    destinations.add(host);
    destinations.add(address);
  });
});

const tenantId = "3c1d9a5e-0000-4000-8000-00000000000a";
const manageClient = "11111111-0000-4000-8000-000000000001";
const readClient = "11111111-0000-4000-8000-000000000002";
const shortClient = "11111111-0000-4000-8000-000000000003";
const workloadClient = "11111111-0000-4000-8000-000000000004";
const manageSecret = "Mg8Q~manage-secret-value-0123456789abcdef";
const readSecret = "Rd8Q~read-secret-value-0123456789abcdefgh";
const clusterIssuer = "https://oidc.sim.invalid/cluster-1";
const operatorAccount = "system:serviceaccount:azp:azp-operator";

const clusterKeys = generateKeyPairSync("rsa", { modulusLength: 2048 });

function serviceAccountToken(subject = operatorAccount): string {
  const nowSec = Math.floor(Date.now() / 1000);
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const header = part({ alg: "RS256", kid: "cluster-1", typ: "JWT" });
  const payload = part({
    iss: clusterIssuer,
    sub: subject,
    aud: [WORKLOAD_IDENTITY_AUDIENCE],
    iat: nowSec,
    nbf: nowSec,
    exp: nowSec + 3600,
  });
  const signature = sign("sha256", Buffer.from(`${header}.${payload}`), clusterKeys.privateKey);
  return `${header}.${payload}.${signature.toString("base64url")}`;
}

let dir: string;

const emu = useEmulator({
  pools: ["sim-pool"],
  https: true,
  entraId: {
    servicePrincipals: [
      { tenantId, clientId: manageClient, clientSecret: manageSecret, scope: "manage", displayName: "azp-operator" },
      { tenantId, clientId: readClient, clientSecret: readSecret, scope: "read" },
      { tenantId, clientId: shortClient, clientSecret: manageSecret, scope: "manage", tokenLifetimeSeconds: 240 },
      {
        tenantId,
        clientId: workloadClient,
        scope: "manage",
        federatedCredentials: [{ issuer: clusterIssuer, subject: operatorAccount }],
      },
    ],
    issuers: [
      { issuer: clusterIssuer, keys: [{ ...clusterKeys.publicKey.export({ format: "jwk" }), kid: "cluster-1" }] },
    ],
  },
});

before(() => {
  dir = mkdtempSync(join(tmpdir(), "entra-id-test-"));
});

// After the emulator has closed: no connection of the whole file left loopback.
after(() => {
  rmSync(dir, { recursive: true, force: true });
  const outside = [...destinations].filter((d) => !["127.0.0.1", "::1", "localhost"].includes(d));
  assert.deepEqual(outside, [], "connections outside loopback");
});

/** Options for the emulator's authority; `maxRetries: 0` keeps failure tests fast. */
function base(extra: EntraIdCredentialOptions = {}): EntraIdCredentialOptions {
  return {
    tenantId,
    clientId: manageClient,
    authorityHost: emu.httpsUrl as string,
    caCertificates: emu.caCertificate as string,
    maxRetries: 0,
    env: {},
    ...extra,
  };
}

/** A logger that keeps every line, to check that no secret or token is ever logged. */
function spyLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  };
  return { lines, debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

const tokenRequests = () => emu.control.requests({ path: "/oauth2/v2.0/token" });

async function api(method: string, path: string, bearer: string, body?: unknown) {
  const response = await fetch(`${emu.organizationUrl}/_apis/distributedtask/${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${bearer}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, text, json: text.startsWith("{") ? JSON.parse(text) : undefined };
}

async function poolId(bearer: string): Promise<number> {
  const pools = await api("GET", "pools?poolName=sim-pool", bearer);
  assert.equal(pools.status, 200, pools.text);
  return pools.json.value[0].id;
}

const registerAgent = async (bearer: string, name: string) =>
  api("POST", `pools/${await poolId(bearer)}/agents?api-version=7.1`, bearer, { name, version: "4.258.1" });

async function entraError(promise: Promise<unknown>): Promise<EntraIdError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof EntraIdError, `expected an EntraIdError, got ${err}`);
    return err;
  }
  assert.fail("expected an error");
}

describe("a service principal with a client secret", () => {
  test("gets a token from the HTTPS token endpoint that the Azure DevOps API accepts; registers an agent", async () => {
    const logger = spyLogger();
    const credential = entraIdCredential(base({ clientSecret: manageSecret, logger }));
    assert.equal(credential.kind, "token");
    assert.equal(credential.identity, `entra:${tenantId}/${manageClient}`);
    const token = await credential.getToken();
    assert.equal((await authorizationHeader(credential)).value, `Bearer ${token}`);
    const registered = await registerAgent(token, "entra-agent-1");
    assert.equal(registered.status, 200, registered.text);
    assert.equal(registered.json.name, "entra-agent-1");
    // Discovery once, one token request; the API calls ran as the principal.
    const entra = emu.control.requests().filter((e) => !e.path.startsWith(`/${emu.organization}/`));
    assert.deepEqual(
      entra.map((e) => `${e.method} ${e.path} ${e.status}`),
      [`GET /${tenantId}/v2.0/.well-known/openid-configuration 200`, `POST /${tenantId}/oauth2/v2.0/token 200`],
    );
    const calls = emu.control.requests({ path: "/_apis/" });
    assert.ok(calls.length >= 2);
    for (const call of calls) assert.equal(call.identity, `entra:${tenantId}/${manageClient}`);
    // Cached: no second token request.
    assert.equal(await credential.getToken(), token);
    assert.equal(tokenRequests().length, 1);
    assert.doesNotMatch(logger.lines.join("\n"), new RegExp(`${token}|Mg8Q`));
  });

  test("a read-only principal lists pools but gets 403 registering an agent", async () => {
    const credential = entraIdCredential(base({ clientId: readClient, clientSecret: readSecret }));
    const token = await credential.getToken();
    const refused = await registerAgent(token, "entra-agent-2");
    assert.equal(refused.status, 403);
    assert.equal(refused.json.typeKey, "AccessCheckException");
  });

  test("concurrent callers share one token request", async () => {
    const credential = entraIdCredential(base({ clientSecret: manageSecret }));
    const tokens = await Promise.all(Array.from({ length: 5 }, () => credential.getToken()));
    assert.equal(new Set(tokens).size, 1);
    assert.equal(tokenRequests().length, 1);
  });

  test("invalidate() while a token request is under way: later callers get a token of their own", async () => {
    const credential = entraIdCredential(base({ clientSecret: manageSecret }));
    const first = credential.getToken();
    credential.invalidate?.();
    const second = credential.getToken();
    const [a, b] = await Promise.all([first, second]);
    assert.notEqual(a, b);
    assert.equal(await credential.getToken(), b, "the token fetched after invalidate() is the one kept");
    assert.equal(tokenRequests().length, 2);
  });
});

describe("refresh", () => {
  test("at half-life for a short token, before expiry; a failed early refresh keeps the current token", async () => {
    // The identity library computes expiry on the real clock; the injected clock moves within that lifetime
    // (240 s, a token shorter than the library's own 5-minute margin, so it never answers from its cache).
    const start = Date.now();
    let t = start;
    const logger = spyLogger();
    const credential = entraIdCredential(
      base({ clientId: shortClient, clientSecret: manageSecret, now: () => t, logger }),
    );
    const a = await credential.getToken();
    t = start + 119_000;
    assert.equal(await credential.getToken(), a, "before half-life: the cached token");
    assert.equal(tokenRequests().length, 1);
    t = start + 121_000;
    const b = await credential.getToken();
    assert.notEqual(b, a, "past half-life: a new token");
    assert.equal(tokenRequests().length, 2);
    assert.equal((await api("GET", "pools", a)).status, 200, "the old token is still valid: refreshed before expiry");
    assert.equal((await api("GET", "pools", b)).status, 200);

    // b lives until about start + 240 s; its own half-life is near start + 180 s. The token endpoint now drops
    // connections (a 5xx would make the identity library refuse to ask again for 60 s: MSAL's throttling).
    emu.control.setFaults([{ path: "/*/oauth2/v2.0/token", dropRate: 1 }]);
    t = start + 185_000;
    assert.equal(await credential.getToken(), b, "the early refresh failed: the current token is kept");
    assert.equal(tokenRequests().length, 3);
    assert.match(logger.lines.join("\n"), /warn entra id: early token refresh failed; keeping the current token/);
    t = start + 200_000;
    assert.equal(await credential.getToken(), b, "no new attempt within refreshRetryMs");
    assert.equal(tokenRequests().length, 3);
    emu.control.clearFaults();
    t = start + 216_000;
    const c = await credential.getToken();
    assert.notEqual(c, b);
    assert.equal(tokenRequests().length, 4);
    assert.doesNotMatch(logger.lines.join("\n"), new RegExp(`${a}|${b}|${c}|Mg8Q`));
  });

  test("an expired token is refused by the service (203, 401); the next getToken is fresh; invalidate skips every cache", async () => {
    const clock = new ManualClock(Date.now());
    const world = await startAzureDevOpsEmulator({
      clock,
      pools: ["sim-pool"],
      https: true,
      log: () => undefined,
      entraId: {
        tokenLifetimeSeconds: 60,
        servicePrincipals: [{ tenantId, clientId: manageClient, clientSecret: manageSecret, scope: "manage" }],
      },
    });
    try {
      const credential = entraIdCredential({
        ...base({ clientSecret: manageSecret, now: () => clock.now() }),
        authorityHost: world.httpsUrl as string,
        caCertificates: world.caCertificate as string,
      });
      const list = (bearer: string) =>
        fetch(`${world.organizationUrl}/_apis/distributedtask/pools`, {
          headers: { Authorization: `Bearer ${bearer}` },
        });
      const a = await credential.getToken();
      assert.equal((await list(a)).status, 200);
      clock.advance(61_000);
      const expired = await list(a);
      assert.equal(expired.status, 203);
      assert.match(await expired.text(), /Sign in/);
      const write = await fetch(`${world.organizationUrl}/_apis/distributedtask/pools/10/agents?api-version=7.1`, {
        method: "POST",
        headers: { Authorization: `Bearer ${a}`, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "late" }),
      });
      assert.equal(write.status, 401);
      const b = await credential.getToken();
      assert.notEqual(b, a);
      assert.equal((await list(b)).status, 200);

      // A long-lived token the service stops accepting (say the principal lost its membership and got it back):
      // invalidate() must get a new one even though the identity library would still answer from its cache.
      world.control.entra.configure({ tokenLifetimeSeconds: 3600 });
      const long = entraIdCredential({
        ...base({ clientSecret: manageSecret, now: () => clock.now() }),
        authorityHost: world.httpsUrl as string,
        caCertificates: world.caCertificate as string,
      });
      const d = await long.getToken();
      assert.equal(await long.getToken(), d);
      long.invalidate?.();
      const e = await long.getToken();
      assert.notEqual(e, d);
      assert.equal((await list(e)).status, 200);
    } finally {
      await world.close();
    }
  });
});

describe("clear errors", () => {
  test("a wrong secret", async () => {
    const logger = spyLogger();
    const err = await entraError(
      entraIdCredential(base({ clientSecret: "Wr0ng~secret-value-0123456789", logger })).getToken(),
    );
    assert.equal(err.kind, "bad-secret");
    assert.equal(err.aadsts, "7000215");
    assert.equal(err.identity, `entra:${tenantId}/${manageClient}`);
    assert.match(
      err.message,
      /^Entra ID refused the client secret of entra:3c1d9a5e-[^ ]+ \(AADSTS7000215: Invalid client secret provided\.\): the Secret must hold the secret's value, not its ID$/,
    );
    assert.doesNotMatch(`${err.message} ${logger.lines.join(" ")}`, /Wr0ng/);
  });

  test("an unknown tenant, an unknown application", async () => {
    const tenant = await entraError(
      entraIdCredential(base({ tenantId: "contoso.example", clientSecret: manageSecret })).getToken(),
    );
    assert.equal(tenant.kind, "unknown-tenant");
    assert.match(tenant.message, /^tenant contoso\.example is not known at https:\/\/127\.0\.0\.1:\d+ \(AADSTS90002\)/);
    const app = await entraError(
      entraIdCredential(
        base({ clientId: "22222222-0000-4000-8000-000000000009", clientSecret: manageSecret }),
      ).getToken(),
    );
    assert.equal(app.kind, "unknown-client");
    assert.match(app.message, /^application 22222222-0000-4000-8000-000000000009 is not known in tenant 3c1d9a5e-/);
    assert.match(app.message, /AADSTS700016/);
  });

  test("an authority whose certificate is not trusted, and one that does not answer", async () => {
    const untrusted = await entraError(
      entraIdCredential({ ...base({ clientSecret: manageSecret }), caCertificates: undefined }).getToken(),
    );
    assert.equal(untrusted.kind, "untrusted-certificate");
    assert.match(untrusted.message, /TLS certificate of the Entra authority https:\/\/127\.0\.0\.1:\d+ is not trusted/);
    assert.match(untrusted.message, /caCertificates|NODE_EXTRA_CA_CERTS/);

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const unreachable = await entraError(
      entraIdCredential(base({ clientSecret: manageSecret, authorityHost: `https://127.0.0.1:${port}` })).getToken(),
    );
    assert.equal(unreachable.kind, "unreachable");
    assert.equal(unreachable.transient, true);
    assert.match(
      unreachable.message,
      new RegExp(`^cannot reach the Entra authority https://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`),
    );
  });

  test("a busy authority (5xx) and a lost connection are transient", async () => {
    emu.control.setFaults([{ path: "/*/oauth2/v2.0/token", errorRate: 1, status: 503 }]);
    const busy = await entraError(entraIdCredential(base({ clientSecret: manageSecret })).getToken());
    assert.equal(busy.kind, "unavailable");
    assert.equal(busy.transient, true);
    assert.match(busy.message, /could not issue a token for .* now \(AADSTS90033: A transient error has occurred\.\)/);
    emu.control.setFaults([{ path: "/*/oauth2/v2.0/token", dropRate: 1 }]);
    const lost = await entraError(entraIdCredential(base({ clientSecret: manageSecret })).getToken());
    assert.equal(lost.kind, "unreachable");
    assert.match(lost.message, /connection to the Entra authority .* failed while getting a token/);
  });

  test("options that cannot work fail at once", () => {
    const cases: Array<[EntraIdCredentialOptions, RegExp]> = [
      [{ ...base({ clientSecret: "x" }), authorityHost: "http://127.0.0.1:1" }, /must use https/],
      [{ ...base(), tenantId: "" }, /needs a tenant ID/],
      [{ ...base(), clientId: "" }, /needs a client ID/],
      [base(), /no credential for entra:/],
      [base({ clientSecret: "x", workloadIdentity: true }), /give one credential/],
      [base({ workloadIdentity: true }), /needs the federated token file/],
      [base({ clientSecret: "  " }), /client secret of .* is empty/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => entraIdCredential(options),
        (err: unknown) => err instanceof EntraIdError && err.kind === "configuration" && message.test(err.message),
        String(message),
      );
    }
  });
});

describe("workload identity", () => {
  test("the federated token file from the standard environment variables", async () => {
    const file = join(dir, "azure-identity-token");
    writeFileSync(file, `${serviceAccountToken()}\n`);
    const credential = entraIdCredential({
      caCertificates: emu.caCertificate as string,
      maxRetries: 0,
      env: {
        AZURE_TENANT_ID: tenantId,
        AZURE_CLIENT_ID: workloadClient,
        AZURE_FEDERATED_TOKEN_FILE: file,
        AZURE_AUTHORITY_HOST: `${emu.httpsUrl}/`,
      },
    });
    assert.equal(credential.identity, `entra:${tenantId}/${workloadClient}`);
    const registered = await registerAgent(await credential.getToken(), "wl-agent");
    assert.equal(registered.status, 200, registered.text);
  });

  test("explicit options; a token of another service account is refused with issuer and subject named", async () => {
    const file = join(dir, "other-token");
    writeFileSync(file, serviceAccountToken("system:serviceaccount:azp:someone-else"));
    const err = await entraError(
      entraIdCredential(base({ clientId: workloadClient, workloadIdentity: { tokenFilePath: file } })).getToken(),
    );
    assert.equal(err.kind, "federation");
    assert.equal(err.aadsts, "70021");
    assert.match(err.message, /No matching federated identity record found for presented assertion\./);
    assert.match(err.message, /Assertion Subject: 'system:serviceaccount:azp:someone-else'/);
    assert.match(err.message, /check the federated credential's issuer, subject and audience/);

    const missing = await entraError(
      entraIdCredential(
        base({ clientId: workloadClient, workloadIdentity: { tokenFilePath: join(dir, "nope") } }),
      ).getToken(),
    );
    assert.equal(missing.kind, "federation");
    assert.match(missing.message, /cannot read the federated token file .*nope .*\(ENOENT/);
  });

  test("a client assertion from a callback (a token of another service account, from the TokenRequest API)", async () => {
    let calls = 0;
    const credential = entraIdCredential(
      base({
        clientId: workloadClient,
        clientAssertion: async () => {
          calls++;
          return serviceAccountToken();
        },
      }),
    );
    assert.equal((await api("GET", "pools", await credential.getToken())).status, 200);
    assert.ok(calls > 0);
  });

  test("another process trusts the emulator through NODE_EXTRA_CA_CERTS and reads AZURE_* like an AKS pod", async () => {
    const caFile = join(dir, "emulator-ca.pem");
    writeFileSync(caFile, emu.caCertificate as string);
    const tokenFile = join(dir, "pod-token");
    writeFileSync(tokenFile, serviceAccountToken());
    const script = [
      `import { entraIdCredential } from ${JSON.stringify(new URL("./entra-id.ts", import.meta.url).href)};`,
      "const credential = entraIdCredential({ maxRetries: 0 });",
      "let out;",
      "try {",
      "  const token = await credential.getToken();",
      '  const r = await fetch(process.env.AZP_URL + "/_apis/distributedtask/pools", { headers: { Authorization: "Bearer " + token } });',
      "  out = { identity: credential.identity, status: r.status };",
      "} catch (err) { out = { kind: err.kind, message: err.message }; }",
      "console.log(JSON.stringify(out));",
    ].join("\n");
    const run = async (extraCa: string | undefined) => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        env: {
          PATH: process.env.PATH,
          ...(extraCa === undefined ? {} : { NODE_EXTRA_CA_CERTS: extraCa }),
          AZURE_TENANT_ID: tenantId,
          AZURE_CLIENT_ID: workloadClient,
          AZURE_FEDERATED_TOKEN_FILE: tokenFile,
          AZURE_AUTHORITY_HOST: emu.httpsUrl,
          AZP_URL: emu.organizationUrl,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      assert.equal(code, 0, stderr);
      return JSON.parse(stdout.trim());
    };
    assert.deepEqual(await run(caFile), { identity: `entra:${tenantId}/${workloadClient}`, status: 200 });
    const refused = await run(undefined);
    assert.equal(refused.kind, "untrusted-certificate");
  });
});

test("entraIdOptionsFromSpec maps the AutoScaledAgent block", () => {
  const secretSpec: EntraIdAuthentication = {
    tenantId,
    clientId: manageClient,
    clientSecretRef: { name: "azp-sp", key: "clientSecret" },
    authorityHost: "https://login.microsoftonline.us",
  };
  assert.deepEqual(entraIdOptionsFromSpec(secretSpec, { clientSecret: "s" }, { maxRetries: 1 }), {
    maxRetries: 1,
    tenantId,
    clientId: manageClient,
    authorityHost: "https://login.microsoftonline.us",
    clientSecret: "s",
  });
  assert.throws(() => entraIdOptionsFromSpec(secretSpec, {}), /client secret of .* \(Secret azp-sp\) was not provided/);
  const own: EntraIdAuthentication = { tenantId, clientId: workloadClient, workloadIdentity: {} };
  assert.deepEqual(entraIdOptionsFromSpec(own, {}), { tenantId, clientId: workloadClient, workloadIdentity: true });
  const other: EntraIdAuthentication = { ...own, workloadIdentity: { serviceAccountName: "azp-agents" } };
  const assertion = async () => "jwt";
  assert.equal(entraIdOptionsFromSpec(other, { clientAssertion: assertion }).clientAssertion, assertion);
  assert.throws(() => entraIdOptionsFromSpec(other, {}), /no token source for service account azp-agents/);
  assert.equal(AZURE_DEVOPS_SCOPE, "499b84ac-1321-427f-aa17-267ca6975798/.default");
});

test("onTokenRequest hears every token request (cached tokens are none) and how it failed, never a secret", async () => {
  const seen: unknown[] = [];
  const credential = entraIdCredential(base({ clientSecret: manageSecret, onTokenRequest: (o) => seen.push(o) }));
  await credential.getToken();
  await credential.getToken();
  const wrong = entraIdCredential(
    base({ clientSecret: "Wr0ng~secret-value-0123456789", onTokenRequest: (o) => seen.push(o) }),
  );
  await entraError(wrong.getToken());
  const identity = `entra:${tenantId}/${manageClient}`;
  assert.deepEqual(
    seen.map((o) => ({ ...(o as object), durationMs: typeof (o as { durationMs: unknown }).durationMs })),
    [
      { identity, durationMs: "number" },
      { identity, durationMs: "number", error: "bad-secret" },
    ],
  );
  assert.doesNotMatch(JSON.stringify(seen), /Mg8Q|Wr0ng/);
});
