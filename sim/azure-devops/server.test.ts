import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { useEmulator } from "../../test/support/emulator.ts";
import { type BearerTokenInfo, type BearerTokenStore, startAzureDevOpsEmulator } from "./index.ts";

const managePat = "manage-pat-0123456789";
const readPat = "read-pat-0123456789";
const key = { publicKey: { exponent: "AQAB", modulus: "bW9kdWx1cw==" } };

/** A JSON answer, read field by field in assertions. */
// biome-ignore lint/suspicious/noExplicitAny: test assertions walk the service's JSON freely
type Json = any;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: Json;
}

const emu = useEmulator({
  pools: ["sim-pool", "Pool With Spaces"],
  pats: [
    { token: managePat, scope: "manage", identity: "alice" },
    { token: readPat, scope: "read", identity: "bob" },
  ],
  messagePollTimeoutMs: 100,
});

async function call(
  method: string,
  path: string,
  options: {
    token?: string | null;
    bearer?: string;
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.bearer !== undefined) headers.Authorization = `Bearer ${options.bearer}`;
  else if (options.token !== null) {
    headers.Authorization = `Basic ${Buffer.from(`:${options.token ?? managePat}`).toString("base64")}`;
  }
  let body: string | undefined = options.raw;
  if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = path.startsWith("/") ? `${emu.url}${path}` : `${emu.organizationUrl}/${path}`;
  const response = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  let json: unknown;
  if ((response.headers.get("content-type") ?? "").includes("json") && text !== "") json = JSON.parse(text);
  return { status: response.status, headers: response.headers, text, json };
}

const api = "_apis/distributedtask";
const w = "api-version=7.1";

async function poolId(name = "sim-pool"): Promise<number> {
  const answer = await call("GET", `${api}/pools?poolName=${encodeURIComponent(name)}`);
  return answer.json.value[0].id;
}

async function registerAgent(pool: number, body: Record<string, unknown>): Promise<Json> {
  const answer = await call("POST", `${api}/pools/${pool}/agents?${w}`, { body });
  assert.equal(answer.status, 200, answer.text);
  return answer.json;
}

function assertServiceError(answer: Answer, status: number, typeKey: string) {
  assert.equal(answer.status, status, answer.text);
  assert.deepEqual(Object.keys(answer.json).sort(), [
    "$id",
    "errorCode",
    "eventId",
    "innerException",
    "message",
    "typeKey",
    "typeName",
  ]);
  assert.equal(answer.json.$id, "1");
  assert.equal(answer.json.innerException, null);
  assert.equal(answer.json.errorCode, 0);
  assert.equal(answer.json.eventId, 3000);
  assert.equal(answer.json.typeKey, typeKey);
  assert.equal(typeof answer.json.message, "string");
  assert.match(answer.json.typeName, new RegExp(`${typeKey}, `));
}

describe("pools", () => {
  test("list by name (URL-encoded, spaces, any case), by ids, and get", async () => {
    for (const query of ["Pool%20With%20Spaces", "Pool+With+Spaces", "pool%20with%20spaces"]) {
      const answer = await call("GET", `${api}/pools?poolName=${query}`, { token: readPat });
      assert.equal(answer.status, 200);
      assert.equal(answer.json.count, 1, query);
      assert.equal(answer.json.value[0].name, "Pool With Spaces");
    }
    const none = await call("GET", `${api}/pools?poolName=nope`, { token: readPat });
    assert.deepEqual(none.json, { count: 0, value: [] });
    const all = await call("GET", `${api}/pools`, { token: readPat });
    assert.equal(all.json.count, 2);
    const id = all.json.value[1].id;
    const byIds = await call("GET", `${api}/pools?poolIds=${id},99999`, { token: readPat });
    assert.deepEqual(
      byIds.json.value.map((p: { id: number }) => p.id),
      [id],
    );
    const manageable = await call("GET", `${api}/pools?actionFilter=manage`, { token: readPat });
    assert.equal(manageable.json.count, 0);
    assert.equal((await call("GET", `${api}/pools?actionFilter=manage`)).json.count, 2);
    const one = await call("GET", `${api}/pools/${id}`, { token: readPat });
    assert.equal(one.status, 200);
    assert.equal(one.json.name, "Pool With Spaces");
    assert.equal(one.json.poolType, "automation");
    assert.equal(one.json.isHosted, false);
    assert.match(one.headers.get("content-type") ?? "", /^application\/json/);
  });

  test("an unknown pool is the service's 404", async () => {
    assertServiceError(await call("GET", `${api}/pools/424242`), 404, "TaskAgentPoolNotFoundException");
    assertServiceError(await call("GET", `${api}/pools/424242/agents`), 404, "TaskAgentPoolNotFoundException");
    assertServiceError(await call("GET", `${api}/pools/424242/jobrequests`), 404, "TaskAgentPoolNotFoundException");
  });
});

describe("authentication and scopes", () => {
  test("an unknown PAT is a 401 with WWW-Authenticate: Basic", async () => {
    const answer = await call("GET", `${api}/pools`, { token: "not-a-pat" });
    assert.equal(answer.status, 401);
    assert.match(answer.headers.get("www-authenticate") ?? "", /Basic realm="/);
    const write = await call("POST", `${api}/pools/1/agents?${w}`, { token: "not-a-pat", body: {} });
    assert.equal(write.status, 401);
  });

  test("a read PAT reads and gets a 403 on writes", async () => {
    const pool = await poolId();
    assert.equal((await call("GET", `${api}/pools/${pool}/agents`, { token: readPat })).status, 200);
    assert.equal((await call("GET", `${api}/pools/${pool}/jobrequests`, { token: readPat })).status, 200);
    assertServiceError(
      await call("POST", `${api}/pools/${pool}/agents?${w}`, { token: readPat, body: { name: "x" } }),
      403,
      "AccessCheckException",
    );
    const agent = await registerAgent(pool, { name: "a" });
    assertServiceError(
      await call("DELETE", `${api}/pools/${pool}/agents/${agent.id}?${w}`, { token: readPat }),
      403,
      "AccessCheckException",
    );
    assert.equal((await call("GET", `${api}/pools/${pool}/agents/${agent.id}`, { token: readPat })).status, 200);
  });

  test("bearer tokens: accepted when registered, 203 sign-in page on GET when not, 401 on writes", async () => {
    emu.registerBearerToken("good-token", { identity: "spn-1", scope: "manage" });
    emu.control.addBearerToken("expired-token", { identity: "spn-2", scope: "manage", expiresOn: Date.now() - 1000 });
    emu.control.addBearerToken("reader-token", { identity: "spn-3", scope: "read" });
    const ok = await call("GET", `${api}/pools`, { bearer: "good-token" });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.count, 2);
    for (const bearer of ["unknown-token", "expired-token"]) {
      const answer = await call("GET", `${api}/pools`, { bearer });
      assert.equal(answer.status, 203, bearer);
      assert.match(answer.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(answer.text, /<html/i);
      assert.throws(() => JSON.parse(answer.text));
      const write = await call("POST", `${api}/pools/1/agents?${w}`, { bearer, body: { name: "x" } });
      assert.equal(write.status, 401, bearer);
    }
    const pool = await poolId();
    assert.equal(
      (await call("POST", `${api}/pools/${pool}/agents?${w}`, { bearer: "reader-token", body: { name: "x" } })).status,
      403,
    );
    assert.equal(
      (await call("POST", `${api}/pools/${pool}/agents?${w}`, { bearer: "good-token", body: { name: "x" } })).status,
      200,
    );
    // No credentials at all: the same sign-in page on GET, 401 on writes.
    assert.equal((await call("GET", `${api}/pools`, { token: null })).status, 203);
    assert.equal((await call("DELETE", `${api}/pools/${pool}/agents/1?${w}`, { token: null })).status, 401);
  });

  test("reset forgets bearer tokens and PATs added later, keeps the configured ones", async () => {
    emu.control.addPat({ token: "later", scope: "manage" });
    emu.registerBearerToken("later-token", { identity: "x", scope: "read" });
    assert.equal((await call("GET", `${api}/pools`, { token: "later" })).status, 200);
    emu.control.reset();
    assert.equal((await call("GET", `${api}/pools`, { token: "later" })).status, 401);
    assert.equal((await call("GET", `${api}/pools`, { bearer: "later-token" })).status, 203);
    assert.equal((await call("GET", `${api}/pools`, { token: readPat })).status, 200);
  });
});

describe("agents", () => {
  test("register, 409 on a duplicate name, list with filters and includes, get, replace, update", async () => {
    const pool = await poolId();
    const agent = await registerAgent(pool, {
      name: "agent-1",
      version: "4.258.1",
      osDescription: "Linux",
      provisioningState: "Provisioned",
      maxParallelism: 1,
      authorization: key,
      systemCapabilities: { kubectl: "1", "Agent.OS": "Linux" },
      status: "offline",
      createdOn: null,
    });
    assert.equal(agent.name, "agent-1");
    assert.equal(agent.status, "offline");
    assert.equal(agent.enabled, true);
    assert.equal(typeof agent.id, "number");
    assert.equal(typeof agent.authorization.clientId, "string");
    assert.deepEqual(agent.authorization.publicKey, key.publicKey);
    assertServiceError(
      await call("POST", `${api}/pools/${pool}/agents?${w}`, { body: { name: "AGENT-1" } }),
      409,
      "TaskAgentExistsException",
    );
    await registerAgent(pool, { name: "placeholder", systemCapabilities: { docker: "1" } });

    const byName = await call("GET", `${api}/pools/${pool}/agents?agentName=agent-1`);
    assert.equal(byName.json.count, 1);
    assert.equal(byName.json.value[0].systemCapabilities, undefined);
    const withCaps = await call("GET", `${api}/pools/${pool}/agents?agentName=agent-1&includeCapabilities=true`);
    assert.deepEqual(withCaps.json.value[0].systemCapabilities, { kubectl: "1", "Agent.OS": "Linux" });
    assert.deepEqual(withCaps.json.value[0].userCapabilities, {});
    const byDemands = await call("GET", `${api}/pools/${pool}/agents?demands=docker`);
    assert.deepEqual(
      byDemands.json.value.map((a: { name: string }) => a.name),
      ["placeholder"],
    );

    const replaced = await call("PUT", `${api}/pools/${pool}/agents/${agent.id}?${w}`, {
      body: {
        id: agent.id,
        name: "agent-1",
        version: "4.260.0",
        authorization: key,
        systemCapabilities: { helm: "3" },
      },
    });
    assert.equal(replaced.status, 200);
    assert.equal(replaced.json.id, agent.id);
    assert.deepEqual(replaced.json.systemCapabilities, { helm: "3" });
    const patched = await call("PATCH", `${api}/pools/${pool}/agents/${agent.id}?${w}`, { body: { enabled: false } });
    assert.equal(patched.json.enabled, false);
    assert.equal(patched.json.version, "4.260.0");
    const caps = await call("PUT", `${api}/pools/${pool}/agents/${agent.id}/usercapabilities?${w}`, {
      body: { mine: "x" },
    });
    assert.deepEqual(caps.json.userCapabilities, { mine: "x" });
    const got = await call("GET", `${api}/pools/${pool}/agents/${agent.id}?includeCapabilities=true`);
    assert.deepEqual(got.json.userCapabilities, { mine: "x" });
    assertServiceError(await call("GET", `${api}/pools/${pool}/agents/999999`), 404, "TaskAgentNotFoundException");
  });

  test("assignedRequest and lastCompletedRequest appear when asked for; delete is refused while busy", async () => {
    const pool = await poolId();
    const agent = await registerAgent(pool, { name: "worker", version: "4.258.1", authorization: key });
    const session = await call("POST", `${api}/pools/${pool}/sessions?${w}`, {
      body: { agent: { id: agent.id }, ownerName: "host" },
    });
    assert.equal(session.status, 200, session.text);
    const sessionId = session.json.sessionId;
    const job = emu.control.queueJob({ pool: "sim-pool" });
    assert.equal(job.state, "assigned");

    const listed = await call(
      "GET",
      `${api}/pools/${pool}/agents?includeAssignedRequest=true&includeLastCompletedRequest=true`,
    );
    const view = listed.json.value[0];
    assert.equal(view.status, "online");
    assert.equal(view.assignedRequest.requestId, job.requestId);
    assert.equal(view.lastCompletedRequest, undefined);
    const plain = await call("GET", `${api}/pools/${pool}/agents`);
    assert.equal(plain.json.value[0].assignedRequest, undefined);

    const refused = await call("DELETE", `${api}/pools/${pool}/agents/${agent.id}?${w}`);
    assert.ok(refused.status >= 400 && refused.status < 500, refused.text);
    assertServiceError(refused, 400, "TaskAgentJobStillRunningException");

    // The agent takes the job, renews (running), finishes.
    const message = await call("GET", `${api}/pools/${pool}/messages?sessionId=${sessionId}`);
    assert.equal(message.status, 200);
    assert.equal(message.json.messageType, "PipelineAgentJobRequest");
    assert.equal(JSON.parse(message.json.body).requestId, job.requestId);
    const lock = "00000000-0000-0000-0000-000000000000";
    const renew = await call("PATCH", `${api}/pools/${pool}/jobrequests/${job.requestId}?lockToken=${lock}&${w}`, {
      body: { requestId: job.requestId },
    });
    assert.equal(renew.status, 200, renew.text);
    assert.ok(renew.json.receiveTime);
    assert.ok(renew.json.lockedUntil);
    const finish = await call("PATCH", `${api}/pools/${pool}/jobrequests/${job.requestId}?lockToken=${lock}&${w}`, {
      body: { requestId: job.requestId, result: "succeeded", finishTime: new Date().toISOString() },
    });
    assert.equal(finish.json.result, "succeeded");

    const afterJob = await call(
      "GET",
      `${api}/pools/${pool}/agents/${agent.id}?includeAssignedRequest=true&includeLastCompletedRequest=true`,
    );
    assert.equal(afterJob.json.assignedRequest, undefined);
    assert.equal(afterJob.json.lastCompletedRequest.requestId, job.requestId);
    assert.equal(
      (await call("DELETE", `${api}/pools/${pool}/messages/${message.json.messageId}?sessionId=${sessionId}&${w}`))
        .status,
      204,
    );
    const nothing = await call(
      "GET",
      `${api}/pools/${pool}/messages?sessionId=${sessionId}&lastMessageId=${message.json.messageId}`,
    );
    assert.equal(nothing.status, 202);
    assert.equal(nothing.text, "");
    assert.equal((await call("DELETE", `${api}/pools/${pool}/sessions/${sessionId}?${w}`)).status, 204);
    const deleted = await call("DELETE", `${api}/pools/${pool}/agents/${agent.id}?${w}`);
    assert.equal(deleted.status, 204);
    assert.equal(deleted.text, "");
    assertServiceError(
      await call("GET", `${api}/pools/${pool}/messages?sessionId=${sessionId}`),
      404,
      "TaskAgentSessionExpiredException",
    );
  });
});

describe("job requests", () => {
  test("states as a client reads them: null fields are left out", async () => {
    const pool = await poolId();
    await registerAgent(pool, { name: "placeholder", version: "4.258.1", systemCapabilities: { kubectl: "1" } });
    const queued = emu.control.queueJob({ pool: "sim-pool", demands: ["kubectl"] });
    const failed = emu.control.queueJob({ pool: "sim-pool", demands: ["docker"] });
    const answer = await call("GET", `${api}/pools/${pool}/jobrequests`, { token: readPat });
    assert.equal(answer.json.count, 2);
    const [q, f] = answer.json.value;
    assert.equal(q.requestId, queued.requestId);
    for (const field of ["assignTime", "receiveTime", "finishTime", "result", "reservedAgent", "lockedUntil"]) {
      assert.equal(field in q, false, field);
    }
    assert.deepEqual(q.demands, ["kubectl", "Agent.Version -gtVersion 2.182.1"]);
    assert.deepEqual(
      q.matchedAgents.map((a: { name: string }) => a.name),
      ["placeholder"],
    );
    assert.equal(q.matchedAgents[0].status, "offline");
    assert.equal(q.poolId, pool);
    assert.equal(f.requestId, failed.requestId);
    assert.equal(f.result, "failed");
    assert.ok(f.finishTime);
    assert.match(f.statusMessage, /^No agent found in pool sim-pool which satisfies the specified demands: docker/);
  });

  test("completedRequestCount=0 lists only unfinished requests", async () => {
    const pool = await poolId();
    await registerAgent(pool, { name: "placeholder", version: "4.258.1" });
    const queued = emu.control.queueJob({ pool: "sim-pool" });
    const cancelled = emu.control.queueJob({ pool: "sim-pool" });
    emu.control.cancelJob(cancelled.requestId);
    const all = await call("GET", `${api}/pools/${pool}/jobrequests`);
    assert.deepEqual(
      all.json.value.map((j: { requestId: number }) => j.requestId),
      [queued.requestId, cancelled.requestId],
    );
    const unfinished = await call("GET", `${api}/pools/${pool}/jobrequests?completedRequestCount=0`);
    assert.deepEqual(
      unfinished.json.value.map((j: { requestId: number }) => j.requestId),
      [queued.requestId],
    );
    assert.equal(unfinished.json.count, 1);
  });

  test("$top pages with X-MS-ContinuationToken, the token goes back as continuationToken", async () => {
    const pool = await poolId();
    await registerAgent(pool, { name: "placeholder", version: "4.258.1" });
    const ids = Array.from({ length: 7 }, () => emu.control.queueJob({ pool: "sim-pool" }).requestId);
    const seen: number[] = [];
    let token: string | null = null;
    let pages = 0;
    do {
      const answer = await call(
        "GET",
        `${api}/pools/${pool}/jobrequests?$top=3${token ? `&continuationToken=${encodeURIComponent(token)}` : ""}`,
      );
      assert.equal(answer.status, 200, answer.text);
      assert.ok(answer.json.count <= 3);
      for (const j of answer.json.value) {
        assert.equal(j.matchedAgents, undefined); // $top drops matchedAgents
        seen.push(j.requestId);
      }
      token = answer.headers.get("x-ms-continuationtoken");
      pages++;
    } while (token && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen, ids);
    const bad = await call("GET", `${api}/pools/${pool}/jobrequests?$top=3&continuationToken=garbage`);
    assertServiceError(bad, 400, "ArgumentException");
  });

  test("the agentId filter with completedRequestCount", async () => {
    const pool = await poolId();
    const a = await registerAgent(pool, { name: "a", version: "4.258.1", authorization: key });
    await registerAgent(pool, { name: "placeholder", version: "4.258.1" });
    await call("POST", `${api}/pools/${pool}/sessions?${w}`, { body: { agent: { id: a.id } } });
    const assigned = emu.control.queueJob({ pool: "sim-pool" });
    emu.control.queueJob({ pool: "sim-pool" });
    const answer = await call("GET", `${api}/pools/${pool}/jobrequests?agentId=${a.id}&completedRequestCount=0`);
    assert.deepEqual(
      answer.json.value.map((j: { requestId: number }) => j.requestId),
      [assigned.requestId],
    );
    assert.equal(answer.json.value[0].reservedAgent.name, "a");
    assert.equal(answer.json.value[0].reservedAgent.status, "online");
    assert.ok(answer.json.value[0].assignTime);
  });
});

describe("bad requests get the service's kind of error, never a crash", () => {
  test("bodies: malformed JSON, empty, wrong types", async () => {
    const pool = await poolId();
    const cases: Array<[string, { raw?: string; body?: unknown }]> = [
      ["malformed JSON", { raw: "{ not json" }],
      ["empty body", { raw: "" }],
      ["null", { raw: "null" }],
      ["an array", { body: [1, 2] }],
      ["name is a number", { body: { name: 12 } }],
      ["maxParallelism is a string", { body: { name: "x", maxParallelism: "one" } }],
      ["capability value is a number", { body: { name: "x", systemCapabilities: { a: 1 } } }],
      ["enabled is a string", { body: { name: "x", enabled: "yes" } }],
      ["publicKey without modulus", { body: { name: "x", authorization: { publicKey: { exponent: "AQAB" } } } }],
    ];
    for (const [name, options] of cases) {
      const answer = await call("POST", `${api}/pools/${pool}/agents?${w}`, options);
      assertServiceError(answer, 400, "ArgumentNullException");
      assert.match(answer.json.message, /^Value cannot be null\.\r\nParameter name: agent$/, name);
    }
    assertServiceError(
      await call("POST", `${api}/pools/${pool}/agents?${w}`, { body: {} }),
      400,
      "ArgumentNullException",
    );
    assertServiceError(
      await call("POST", `${api}/pools/${pool}/sessions?${w}`, { body: { agent: { id: "seven" } } }),
      400,
      "ArgumentNullException",
    );
    const log = emu.control.requests({ path: "/agents" });
    assert.ok(log.some((e) => e.status === 400 && /malformed JSON/.test(e.detail ?? "")));
  });

  test("paths and parameters", async () => {
    const pool = await poolId();
    assertServiceError(await call("GET", `${api}/pools/abc`), 400, "ArgumentException");
    assertServiceError(await call("GET", `${api}/pools/${pool}/agents/abc`), 400, "ArgumentException");
    assertServiceError(
      await call("GET", `${api}/pools/${pool}/agents?includeCapabilities=maybe`),
      400,
      "ArgumentException",
    );
    assertServiceError(await call("GET", `${api}/pools/${pool}/jobrequests?$top=0`), 400, "ArgumentException");
    assertServiceError(
      await call("GET", `${api}/pools/${pool}/jobrequests?completedRequestCount=-1`),
      400,
      "ArgumentException",
    );
    assertServiceError(await call("GET", `${api}/pools?poolIds=1,x`), 400, "ArgumentException");
    assertServiceError(
      await call("GET", `${api}/pools/${pool}/agents?demands=a%20-like%20b`),
      400,
      "ArgumentException",
    );
    assertServiceError(
      await call("POST", `${api}/pools/${pool}/agents`, { body: { name: "x" } }),
      400,
      "VssVersionNotSpecifiedException",
    );
    assertServiceError(
      await call("POST", `${api}/pools/${pool}/agents?api-version=banana`, { body: { name: "x" } }),
      400,
      "VssInvalidApiVersionException",
    );
    const viaAccept = await call("POST", `${api}/pools/${pool}/agents`, {
      body: { name: "via-accept" },
      headers: { Accept: "application/json; api-version=7.2-preview.1" },
    });
    assert.equal(viaAccept.status, 200, viaAccept.text);
    assertServiceError(await call("GET", `${api}/nothing-here`), 404, "VssResourceNotFoundException");
    assertServiceError(await call("POST", `${api}/pools?${w}`, { body: {} }), 405, "VssMethodNotAllowedException");
    assertServiceError(await call("GET", `/other-org/${api}/pools`), 404, "VssResourceNotFoundException");
    assertServiceError(
      await call("PATCH", `${api}/pools/${pool}/jobrequests/1?${w}`, { body: {} }),
      400,
      "ArgumentNullException",
    );
    // Still serving.
    assert.equal((await call("GET", `${api}/pools`)).status, 200);
  });

  test("paths are case-insensitive like the service's", async () => {
    const pool = await poolId();
    const answer = await call("GET", `_APIs/DistributedTask/Pools/${pool}/Agents`);
    assert.equal(answer.status, 200);
    const org = await call("GET", `/SIM-ORG/${api}/pools`);
    assert.equal(org.status, 200);
  });
});

describe("rate limiting", () => {
  test("off by default: no X-RateLimit headers", async () => {
    for (let i = 0; i < 5; i++) {
      const answer = await call("GET", `${api}/pools`);
      assert.equal(answer.headers.get("x-ratelimit-limit"), null);
    }
  });

  test("headers near the limit, delayed (still 200), then 429 with TF400733; per identity", async () => {
    const set = await call("PUT", "/_sim/rate-limit", {
      token: null,
      body: { enabled: true, budget: 6, windowMs: 60_000, headersThreshold: 0.5, delayThreshold: 0.8, delayMs: 10 },
    });
    assert.equal(set.status, 200, set.text);
    assert.equal(set.json.enabled, true);
    const answers: Answer[] = [];
    for (let i = 0; i < 8; i++) answers.push(await call("GET", `${api}/pools`));
    const statuses = answers.map((a) => a.status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    assert.equal(answers[0]?.headers.get("x-ratelimit-remaining"), null);
    const third = answers[2] as Answer;
    assert.equal(third.headers.get("x-ratelimit-limit"), "6");
    assert.equal(third.headers.get("x-ratelimit-remaining"), "3");
    assert.equal(third.headers.get("x-ratelimit-resource"), "Core");
    assert.match(third.headers.get("x-ratelimit-reset") ?? "", /^\d{10}$/);
    assert.equal(third.headers.get("x-ratelimit-delay"), null);
    const delayed = answers[5] as Answer;
    assert.equal(delayed.headers.get("x-ratelimit-delay"), "0.010");
    assert.ok(delayed.headers.get("retry-after"));
    assert.equal(delayed.json.count, 2); // a delayed answer is a normal answer
    const blocked = answers[6] as Answer;
    assertServiceError(blocked, 429, "RequestBlockedException");
    assert.match(blocked.json.message, /^TF400733: Request was blocked due to exceeding usage of resource /);
    assert.ok(Number(blocked.headers.get("retry-after")) >= 1);
    assert.equal(blocked.headers.get("x-ratelimit-remaining"), "0");
    // Another identity has its own budget.
    assert.equal((await call("GET", `${api}/pools`, { token: readPat })).status, 200);
    const log = emu.control.requests();
    assert.equal(log.filter((e) => e.rateLimit === "blocked").length, 2);
    assert.equal(log.filter((e) => e.rateLimit === "delayed").length, 2);
    // Switching it off again.
    await call("PUT", "/_sim/rate-limit", { token: null, body: { enabled: false } });
    assert.equal((await call("GET", `${api}/pools`)).status, 200);
  });
});

describe("fault injection and the request log", () => {
  test("error rate and status, dropped connections, latency and forced rate limiting per path pattern", async () => {
    const pool = await poolId();
    const set = await call("PUT", "/_sim/faults", {
      token: null,
      body: {
        rules: [
          { path: "**/jobrequests", errorRate: 1, status: 503 },
          { path: `/sim-org/${api}/pools/*/agents`, method: "GET", dropRate: 1 },
          { path: "**/pools", latencyMs: 5 },
          { path: `**/pools/${pool}`, rateLimit: "block" },
        ],
      },
    });
    assert.equal(set.status, 200, set.text);
    assert.equal(set.json.rules.length, 4);
    assert.equal((await call("GET", `${api}/pools/${pool}/jobrequests`)).status, 503);
    await assert.rejects(call("GET", `${api}/pools/${pool}/agents`));
    assert.equal((await call("POST", `${api}/pools/${pool}/agents?${w}`, { body: { name: "n" } })).status, 200);
    assert.equal((await call("GET", `${api}/pools`)).status, 200);
    assert.equal((await call("GET", `${api}/pools/${pool}`)).status, 429);
    const log = emu.control.requests();
    assert.deepEqual(
      log.map((e) => [e.method, e.status, e.fault ?? "-", e.rateLimit ?? "-"]),
      [
        ["GET", 200, "-", "-"], // poolId(), before the rules
        ["GET", 503, "error", "-"],
        ["GET", 0, "dropped", "-"],
        ["POST", 200, "-", "-"],
        ["GET", 200, "latency", "-"],
        ["GET", 429, "-", "blocked"],
      ],
    );
    await call("DELETE", "/_sim/faults", { token: null });
    assert.equal((await call("GET", `${api}/pools/${pool}/jobrequests`)).status, 200);
    const bad = await call("PUT", "/_sim/faults", { token: null, body: [{ path: "**", errorRate: 2 }] });
    assert.equal(bad.status, 400);
  });

  test("every service request is logged with method, path, identity and status; control calls are not", async () => {
    await call("GET", `${api}/pools?poolName=sim-pool`, { token: readPat });
    await call("GET", `${api}/pools`, { token: "wrong" });
    await call("GET", "/_sim/jobs", { token: null });
    const answer = await call("GET", "/_sim/requests", { token: null });
    assert.equal(answer.status, 200);
    const entries = answer.json.value;
    assert.equal(entries.length, 2);
    assert.equal(entries[0].method, "GET");
    assert.equal(entries[0].path, `/sim-org/${api}/pools`);
    assert.equal(entries[0].url, `/sim-org/${api}/pools?poolName=sim-pool`);
    assert.equal(entries[0].identity, "bob");
    assert.equal(entries[0].scheme, "basic");
    assert.equal(entries[0].status, 200);
    assert.equal(entries[1].identity, undefined);
    assert.equal(entries[1].status, 401);
    const since = await call("GET", `/_sim/requests?since=${entries[0].seq}`, { token: null });
    assert.equal(since.json.count, 1);
    await call("DELETE", "/_sim/requests", { token: null });
    assert.equal((await call("GET", "/_sim/requests", { token: null })).json.count, 0);
  });
});

describe("control API", () => {
  test("pools, PATs, tokens, jobs, cancel, agents, state and reset", async () => {
    const pool = await call("POST", "/_sim/pools", { token: null, body: { name: "extra pool" } });
    assert.equal(pool.status, 201);
    const pat = await call("POST", "/_sim/pats", { token: null, body: { scope: "read", name: "generated" } });
    assert.equal(pat.status, 201);
    assert.equal(pat.json.token.length, 52);
    assert.equal((await call("GET", `${api}/pools?poolName=extra%20pool`, { token: pat.json.token })).json.count, 1);
    const token = await call("POST", "/_sim/tokens", {
      token: null,
      body: { identity: "spn", scope: "manage", expiresInMs: 60_000 },
    });
    assert.equal(token.status, 201);
    assert.equal((await call("GET", `${api}/pools`, { bearer: token.json.token })).status, 200);

    const placeholder = await registerAgent(pool.json.id, {
      name: "p",
      version: "4.258.1",
      systemCapabilities: { kubectl: "1" },
    });
    assert.ok(placeholder.id);
    const queued = await call("POST", "/_sim/jobs", {
      token: null,
      body: { pool: "extra pool", demands: ["kubectl"], durationMs: 10, count: 3, agentVersionDemand: null },
    });
    assert.equal(queued.status, 201, queued.text);
    assert.equal(queued.json.count, 3);
    assert.deepEqual(queued.json.value[0].demands, ["kubectl"]);
    const one = queued.json.value[0];
    const cancelled = await call("POST", `/_sim/jobs/${one.requestId}/cancel`, { token: null });
    assert.equal(cancelled.json.state, "finished");
    assert.equal(cancelled.json.result, "canceled");
    const queuedOnly = await call("GET", "/_sim/jobs?state=queued&pool=extra%20pool", { token: null });
    assert.equal(queuedOnly.json.count, 2);
    const got = await call("GET", `/_sim/jobs/${one.requestId}`, { token: null });
    assert.ok(got.json.finishTime);
    assert.equal((await call("GET", "/_sim/jobs/999999", { token: null })).status, 404);
    const badJob = await call("POST", "/_sim/jobs", { token: null, body: { pool: "extra pool", durationMs: "long" } });
    assert.equal(badJob.status, 400);
    const noPool = await call("POST", "/_sim/jobs", { token: null, body: { pool: "missing" } });
    assert.equal(noPool.status, 404);
    const agents = await call("GET", "/_sim/agents?pool=extra%20pool", { token: null });
    assert.equal(agents.json.value[0].name, "p");
    assert.equal(agents.json.value[0].status, "offline");
    const state = await call("GET", "/_sim/state", { token: null });
    assert.equal(state.json.organization, "sim-org");
    assert.equal(state.json.jobs.queued, 2);
    assert.equal((await call("GET", "/_sim/nope", { token: null })).status, 404);

    assert.equal((await call("POST", "/_sim/reset", { token: null })).status, 200);
    const pools = await call("GET", "/_sim/pools", { token: null });
    assert.deepEqual(
      pools.json.value.map((p: { name: string }) => p.name),
      ["sim-pool", "Pool With Spaces"],
    );
    assert.equal((await call("GET", "/_sim/jobs", { token: null })).json.count, 0);
  });
});

test("the bearer-token store is pluggable", async () => {
  const seen: string[] = [];
  const store: BearerTokenStore = {
    validate(token: string, _now: number): BearerTokenInfo | undefined {
      seen.push(token);
      return token.startsWith("issued-") ? { identity: `spn:${token}`, scope: "read" } : undefined;
    },
    add: () => undefined,
    remove: () => false,
    clear: () => undefined,
    list: () => [],
  };
  const own = await startAzureDevOpsEmulator({ pools: ["p"], bearerTokenStore: store, log: () => undefined });
  try {
    const ok = await fetch(`${own.organizationUrl}/${api}/pools`, { headers: { Authorization: "Bearer issued-1" } });
    assert.equal(ok.status, 200);
    const refused = await fetch(`${own.organizationUrl}/${api}/pools`, { headers: { Authorization: "Bearer other" } });
    assert.equal(refused.status, 203);
    assert.deepEqual(seen, ["issued-1", "other"]);
    assert.equal(own.control.requests()[0]?.identity, "spn:issued-1");
  } finally {
    await own.close();
  }
});
