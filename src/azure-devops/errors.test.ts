import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { identityKey, patCredential, redact } from "./auth.ts";
import {
  AzureDevOpsError,
  type AzureDevOpsErrorKind,
  asAzureDevOpsError,
  classifyFetchFailure,
  classifyResponse,
  kindForStatus,
  type RequestFacts,
} from "./errors.ts";

const pat = "secretpat0123456789abcdefghijklmnopqrstuvwxyz0123";
const basic = Buffer.from(`:${pat}`).toString("base64");

const facts: RequestFacts = {
  method: "GET",
  url: "https://dev.azure.com/org/_apis/distributedtask/pools?poolName=x",
  organizationUrl: "https://dev.azure.com/org",
  operation: "find the agent pool named 'x'",
  credential: "the personal access token",
  secrets: [pat, basic],
};

const json = "application/json; charset=utf-8";
const html = "text/html; charset=utf-8";
const errorBody = (message: string, typeKey: string) => JSON.stringify({ $id: "1", message, typeKey, errorCode: 0 });

describe("classifyResponse", () => {
  const cases: Array<{
    name: string;
    status: number;
    contentType?: string | null;
    body?: string;
    retryAfterMs?: number;
    kind: AzureDevOpsErrorKind | "ok";
    typeKey?: string;
    message?: RegExp;
  }> = [
    { name: "200 JSON", status: 200, contentType: json, body: '{"count":0,"value":[]}', kind: "ok" },
    { name: "204 empty", status: 204, contentType: null, body: "", kind: "ok" },
    {
      name: "203 sign-in page",
      status: 203,
      contentType: html,
      body: "<!DOCTYPE html><html>Sign in</html>",
      kind: "auth",
      message: /sign-in page \(HTTP 203\)/,
    },
    {
      name: "200 HTML without content type",
      status: 200,
      contentType: null,
      body: "  <html>sign in</html>",
      kind: "auth",
    },
    { name: "200 HTML content type", status: 200, contentType: html, body: "<p>x</p>", kind: "auth" },
    {
      name: "200 unreadable JSON",
      status: 200,
      contentType: json,
      body: "{not json",
      kind: "invalid-response",
      message: /not JSON/,
    },
    {
      name: "401 HTML",
      status: 401,
      contentType: html,
      body: "<html>Access Denied</html>",
      kind: "auth",
      message: /did not accept the personal access token \(HTTP 401\)/,
    },
    {
      name: "403 with service message",
      status: 403,
      contentType: json,
      body: errorBody("Access denied. bob needs Manage permissions", "AccessCheckException"),
      kind: "forbidden",
      typeKey: "AccessCheckException",
      message: /Read & manage.*bob needs Manage permissions/,
    },
    {
      name: "404 pool",
      status: 404,
      contentType: json,
      body: errorBody("Agent pool 9 could not be found.", "TaskAgentPoolNotFoundException"),
      kind: "not-found",
      typeKey: "TaskAgentPoolNotFoundException",
      message: /could not find the agent pool named 'x' \(HTTP 404\): Agent pool 9 could not be found\.$/,
    },
    {
      name: "404 route (wrong organization)",
      status: 404,
      contentType: json,
      body: errorBody("The resource /x could not be found.", "VssResourceNotFoundException"),
      kind: "not-found",
      message: /check the organization URL/,
    },
    {
      name: "404 HTML",
      status: 404,
      contentType: html,
      body: "<html/>",
      kind: "not-found",
      message: /organization URL/,
    },
    {
      name: "405",
      status: 405,
      contentType: json,
      body: errorBody("no", "VssMethodNotAllowedException"),
      kind: "bad-request",
    },
    {
      name: "400 agent busy",
      status: 400,
      contentType: json,
      body: errorBody("The agent cannot be deleted", "TaskAgentJobStillRunningException"),
      kind: "bad-request",
      typeKey: "TaskAgentJobStillRunningException",
    },
    {
      name: "409",
      status: 409,
      contentType: json,
      body: errorBody("exists", "TaskAgentExistsException"),
      kind: "conflict",
    },
    { name: "408", status: 408, body: "", kind: "timeout" },
    {
      name: "429 with Retry-After",
      status: 429,
      contentType: json,
      body: errorBody("TF400733: Request was blocked", "RequestBlockedException"),
      retryAfterMs: 7000,
      kind: "rate-limited",
      message: /HTTP 429\); retry after 7 s: TF400733/,
    },
    { name: "500", status: 500, contentType: json, body: errorBody("TF400898", "VssServiceException"), kind: "server" },
    { name: "503 empty", status: 503, body: "", kind: "server" },
    {
      name: "service message echoing the token is redacted",
      status: 400,
      contentType: json,
      body: errorBody(`bad token ${pat}`, "X"),
      kind: "bad-request",
      message: /bad token \*\*\*/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = classifyResponse(facts, {
        status: c.status,
        contentType: c.contentType ?? null,
        bodyText: c.body ?? "",
        retryAfterMs: c.retryAfterMs,
      });
      if (c.kind === "ok") {
        assert.equal(r.ok, true);
        return;
      }
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.ok(r.error instanceof AzureDevOpsError);
      assert.equal(r.error.kind, c.kind);
      assert.equal(r.error.status, c.status);
      assert.equal(r.error.url, facts.url);
      if (c.typeKey) assert.equal(r.error.typeKey, c.typeKey);
      if (c.retryAfterMs) assert.equal(r.error.retryAfterMs, c.retryAfterMs);
      if (c.message) assert.match(r.error.message, c.message);
      assert.ok(!r.error.message.includes(pat), "the PAT must not appear");
      assert.ok(!r.error.message.includes(basic), "the Basic header must not appear");
      assert.ok(!(r.error.serviceMessage ?? "").includes(pat));
    });
  }

  test("service message and typeKey are kept", () => {
    const r = classifyResponse(facts, {
      status: 409,
      contentType: json,
      bodyText: errorBody("An agent named a already exists in pool p.", "TaskAgentExistsException"),
    });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.error.serviceMessage, "An agent named a already exists in pool p.");
    assert.equal(r.error.typeKey, "TaskAgentExistsException");
  });
});

describe("kindForStatus", () => {
  const table: Array<[number, AzureDevOpsErrorKind]> = [
    [400, "bad-request"],
    [401, "auth"],
    [403, "forbidden"],
    [404, "not-found"],
    [408, "timeout"],
    [409, "conflict"],
    [410, "bad-request"],
    [429, "rate-limited"],
    [500, "server"],
    [502, "server"],
    [503, "server"],
    [504, "server"],
    [302, "invalid-response"],
  ];
  for (const [status, kind] of table) test(`${status} -> ${kind}`, () => assert.equal(kindForStatus(status), kind));
});

describe("transient kinds", () => {
  const table: Array<[AzureDevOpsErrorKind, boolean]> = [
    ["network", true],
    ["timeout", true],
    ["server", true],
    ["rate-limited", true],
    ["auth", false],
    ["forbidden", false],
    ["not-found", false],
    ["conflict", false],
    ["bad-request", false],
    ["invalid-response", false],
    ["configuration", false],
    ["unexpected", false],
  ];
  for (const [kind, transient] of table) {
    test(kind, () => assert.equal(new AzureDevOpsError(kind, "x").transient, transient));
  }
});

describe("classifyFetchFailure", () => {
  test("timeout", () => {
    const e = classifyFetchFailure(facts, new DOMException("timed out", "TimeoutError"), { timeoutMs: 1500 });
    assert.equal(e.kind, "timeout");
    assert.match(e.message, /did not answer .* within 1500 ms/);
  });

  test("network error names the socket error from the cause chain", () => {
    const cause = Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" });
    const e = classifyFetchFailure(facts, new TypeError("fetch failed", { cause }), undefined);
    assert.equal(e.kind, "network");
    assert.match(e.message, /could not reach Azure DevOps \(https:\/\/dev\.azure\.com\/org\)/);
    assert.match(e.message, /fetch failed <- UND_ERR_SOCKET: other side closed/);
    assert.equal(e.cause instanceof TypeError, true);
  });

  test("secrets in a cause are redacted", () => {
    const e = classifyFetchFailure(facts, new Error(`bad header Basic ${basic}`), undefined);
    assert.ok(!e.message.includes(basic));
  });
});

describe("credentials", () => {
  test("identity key is stable, short and not the PAT", () => {
    const a = identityKey(patCredential(pat));
    assert.equal(a, identityKey(patCredential(`${pat}\n`)));
    assert.match(a, /^pat:[0-9a-f]{16}$/);
    assert.ok(!a.includes(pat.slice(0, 8)));
    assert.notEqual(a, identityKey(patCredential(`${pat}x`)));
    assert.equal(identityKey({ kind: "token", identity: "entra:t/c", getToken: async () => "tok" }), "token:entra:t/c");
  });

  test("an empty PAT is refused", () => {
    assert.throws(() => patCredential("  \n"), /empty/);
  });

  test("redact", () => {
    assert.equal(redact("a secret1 b secret1", ["secret1"]), "a *** b ***");
    assert.equal(redact("abc", ["ab"]), "abc", "too short to redact safely");
  });

  test("unknown failures become `unexpected`", () => {
    const e = asAzureDevOpsError(new RangeError("boom"), "polling failed");
    assert.equal(e.kind, "unexpected");
    assert.equal(e.message, "polling failed: boom");
    const typed = new AzureDevOpsError("server", "x");
    assert.equal(asAzureDevOpsError(typed, "y"), typed);
  });
});
