import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { KubeApiError, type KubeClient } from "../kube/client.ts";
import { silentLogger } from "../runtime/logger.ts";
import { CredentialResolver, decideSecretRead } from "./credentials.ts";
import { DEFAULT_CREDENTIAL_POLICY } from "./policy.ts";
import type { Resource } from "./ports.ts";

/** A Kubernetes client that serves one Secret and records every request. */
function fakeClient(data: Record<string, string> = { pat: "the-pat", clientSecret: "the-secret" }) {
  const requests: string[] = [];
  const client = {
    async request(options: { path: string; method?: string }) {
      requests.push(`${options.method ?? "GET"} ${options.path}`);
      return {
        data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
      };
    },
  } as unknown as KubeClient;
  return { client, requests };
}

function resource(spec: Record<string, unknown>, namespace = "team-a"): Resource {
  return {
    apiVersion: "azurepipelines.k8s.scaler.io/v1",
    kind: "AutoScaledAgent",
    metadata: { name: "agents", namespace, uid: "uid-1" },
    spec: { poolName: "pool", organizationUrl: "https://dev.azure.com/contoso", podsWithCapabilities: [], ...spec },
  } as unknown as Resource;
}

const tenantId = "contoso.onmicrosoft.com";
const clientId = "00000000-0000-0000-0000-000000000001";

describe("CredentialResolver and the credential policy", () => {
  const refusals: [string, Record<string, unknown>, string][] = [
    [
      "a PAT for another host",
      { organizationUrl: "https://attacker.example/x", personalAccessTokenSecretName: "azure-pat" },
      "OrganizationUrlNotAllowed",
    ],
    [
      "a PAT over http",
      { organizationUrl: "http://dev.azure.com/x", personalAccessTokenSecretName: "azure-pat" },
      "InsecureOrganizationUrl",
    ],
    [
      "the operator's identity",
      { entraIdAuthentication: { tenantId, clientId, workloadIdentity: {} } },
      "OperatorIdentityNotAllowed",
    ],
    [
      "a client secret for another authority",
      {
        entraIdAuthentication: {
          tenantId,
          clientId,
          clientSecretRef: { name: "sp" },
          authorityHost: "https://attacker.example",
        },
      },
      "AuthorityHostNotAllowed",
    ],
  ];
  for (const [name, spec, reason] of refusals) {
    test(`${name}: ${reason}, and nothing is read`, async () => {
      const { client, requests } = fakeClient();
      const resolver = new CredentialResolver({ client, logger: silentLogger() });
      const r = await resolver.resolve("team-a/agents", resource(spec));
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.reason, reason);
      assert.deepEqual(requests, [], "no Secret read");
    });
  }

  test("an allowed PAT is read from its Secret", async () => {
    const { client, requests } = fakeClient();
    const resolver = new CredentialResolver({ client, logger: silentLogger() });
    const r = await resolver.resolve("team-a/agents", resource({ personalAccessTokenSecretName: "azure-pat" }));
    assert.ok(r.ok);
    assert.equal(r.credential.kind, "pat");
    assert.deepEqual(requests, ["GET /api/v1/namespaces/team-a/secrets/azure-pat"]);
  });

  test("the operator's identity in a namespace the installer listed", async () => {
    const { client } = fakeClient();
    const policy = { ...DEFAULT_CREDENTIAL_POLICY, operatorIdentityNamespaces: ["platform"] };
    const resolver = new CredentialResolver({ client, logger: silentLogger(), policy });
    const spec = { entraIdAuthentication: { tenantId, clientId, workloadIdentity: {} } };
    const elsewhere = await resolver.resolve("team-a/agents", resource(spec, "team-a"));
    assert.equal(elsewhere.ok ? "ok" : elsewhere.reason, "OperatorIdentityNotAllowed");
    // Without a federated token file the credential cannot be built, but the policy let it through.
    const saved = process.env.AZURE_FEDERATED_TOKEN_FILE;
    process.env.AZURE_FEDERATED_TOKEN_FILE = "/nonexistent/token";
    try {
      const here = await resolver.resolve("platform/agents", resource(spec, "platform"));
      assert.ok(here.ok, here.ok ? "" : here.message);
      assert.equal(here.credential.kind === "token" ? here.credential.identity : "", `entra:${tenantId}/${clientId}`);
    } finally {
      if (saved === undefined) delete process.env.AZURE_FEDERATED_TOKEN_FILE;
      else process.env.AZURE_FEDERATED_TOKEN_FILE = saved;
    }
  });

  test("a resource changed to a refused target is refused at once, even with a credential cached", async () => {
    const { client } = fakeClient();
    const resolver = new CredentialResolver({ client, logger: silentLogger() });
    const entra = { tenantId, clientId, clientSecretRef: { name: "sp" } };
    const first = await resolver.resolve("team-a/agents", resource({ entraIdAuthentication: entra }));
    assert.ok(first.ok);
    const moved = await resolver.resolve(
      "team-a/agents",
      resource({ entraIdAuthentication: { ...entra, authorityHost: "https://attacker.example" } }),
    );
    assert.equal(moved.ok ? "ok" : moved.reason, "AuthorityHostNotAllowed");
  });
});

describe("CredentialResolver: Secret reads (rule 1)", () => {
  /** A client whose Secret can change, go missing or be read slowly; counts GETs. */
  function world() {
    const state = { data: { pat: "pat-1" } as Record<string, string> | "missing", gets: 0 };
    let release: (() => void) | undefined;
    const gate = { hold: false };
    const client = {
      async request() {
        state.gets++;
        if (gate.hold) await new Promise<void>((r) => (release = r));
        if (state.data === "missing") throw new KubeApiError(404, "NotFound", 'secrets "azure-pat" not found');
        const data = state.data;
        return {
          data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
        };
      },
    } as unknown as KubeClient;
    let now = 0;
    const resolver = new CredentialResolver({ client, logger: silentLogger(), secretTtlMs: 5_000, now: () => now });
    /** Whether the last resolve answered with a promise (it had to read). */
    const last = { waited: false };
    const pat = async (key = "team-a/agents") => {
      const resolving = resolver.resolve(key, resource({ personalAccessTokenSecretName: "azure-pat" }));
      last.waited = resolving instanceof Promise;
      const r = await resolving;
      return r.ok ? (r.credential.kind === "pat" ? r.credential.pat : "?") : r.reason;
    };
    return {
      state,
      resolver,
      pat,
      last,
      advance: (ms: number) => {
        now += ms;
      },
      gate,
      release: () => release?.(),
    };
  }

  type Step =
    /** `waits`: the resolve answers with a promise (it reads); otherwise at once, from what was read. */
    | { do: "resolve"; expect: string; gets: number; key?: string; waits?: boolean }
    | { do: "advance"; ms: number }
    | { do: "set"; data: Record<string, string> | "missing" }
    | { do: "refused" };
  const cases: { name: string; steps: Step[] }[] = [
    {
      name: "a read is used for 5 s; then it still serves while it is read again; the next resolve gets the new value",
      steps: [
        { do: "resolve", expect: "pat-1", gets: 1, waits: true },
        { do: "set", data: { pat: "pat-2" } },
        { do: "advance", ms: 4_999 },
        { do: "resolve", expect: "pat-1", gets: 1, waits: false },
        { do: "advance", ms: 1 },
        { do: "resolve", expect: "pat-1", gets: 2, waits: false },
        { do: "resolve", expect: "pat-2", gets: 2, waits: false },
      ],
    },
    {
      name: "a Secret deleted since: the background read fails, the next resolve reads and reports it",
      steps: [
        { do: "resolve", expect: "pat-1", gets: 1 },
        { do: "set", data: "missing" },
        { do: "advance", ms: 5_000 },
        { do: "resolve", expect: "pat-1", gets: 2, waits: false },
        { do: "resolve", expect: "SecretNotFound", gets: 3, waits: true },
      ],
    },
    {
      name: "resources naming the same Secret share the read",
      steps: [
        { do: "resolve", expect: "pat-1", gets: 1 },
        { do: "resolve", expect: "pat-1", gets: 1, key: "team-a/other" },
      ],
    },
    {
      name: "a refused credential: its Secret is read again at once",
      steps: [
        { do: "resolve", expect: "pat-1", gets: 1 },
        { do: "set", data: { pat: "pat-2" } },
        { do: "refused" },
        { do: "resolve", expect: "pat-2", gets: 2, waits: true },
      ],
    },
    {
      name: "a missing Secret is not kept: created, it is used at the next resolve",
      steps: [
        { do: "set", data: "missing" },
        { do: "resolve", expect: "SecretNotFound", gets: 1 },
        { do: "set", data: { pat: "pat-1" } },
        { do: "resolve", expect: "pat-1", gets: 2 },
      ],
    },
    {
      name: "a Secret without the key is not kept either",
      steps: [
        { do: "set", data: { token: "x" } },
        { do: "resolve", expect: "SecretKeyMissing", gets: 1 },
        { do: "set", data: { pat: "pat-1" } },
        { do: "resolve", expect: "pat-1", gets: 2, waits: true },
        { do: "resolve", expect: "pat-1", gets: 2, waits: false },
      ],
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const w = world();
      for (const [i, step] of c.steps.entries()) {
        if (step.do === "resolve") {
          assert.equal(await w.pat(step.key), step.expect, `step ${i}`);
          assert.equal(w.state.gets, step.gets, `step ${i}: GETs`);
          if (step.waits !== undefined) assert.equal(w.last.waited, step.waits, `step ${i}: answered with a promise`);
        } else if (step.do === "advance") w.advance(step.ms);
        else if (step.do === "set") w.state.data = step.data;
        else w.resolver.refused("team-a/agents");
      }
    });
  }

  test("concurrent resolves share one GET in flight", async () => {
    const w = world();
    w.gate.hold = true;
    const both = Promise.all([w.pat(), w.pat("team-a/other")]);
    await new Promise((r) => setImmediate(r));
    w.release();
    assert.deepEqual(await both, ["pat-1", "pat-1"]);
    assert.equal(w.state.gets, 1);
  });
});

describe("decideSecretRead", () => {
  const kept = (at: number, settled = true, refreshing = false) => ({ at, settled, refreshing });
  const cases: [string, ReturnType<typeof kept> | undefined, number, "read" | "use" | "refresh"][] = [
    ["nothing kept: read", undefined, 0, "read"],
    ["fresh: use", kept(0), 4_999, "use"],
    ["in flight, however old: use", kept(0, false), 60_000, "use"],
    ["stale: use and refresh", kept(0), 5_000, "refresh"],
    ["stale with a refresh under way: use", kept(0, true, true), 9_000, "use"],
  ];
  for (const [name, entry, now, want] of cases) {
    test(name, () => assert.equal(decideSecretRead(entry, now, 5_000), want));
  }
});
