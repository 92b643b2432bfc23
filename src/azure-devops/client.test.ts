import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SimulatedAgent } from "../../sim/azure-devops/agent.ts";
import { useEmulator } from "../../test/support/emulator.ts";
import type { JobRequest } from "../scaling/types.ts";
import { type Credential, patCredential, type TokenCredential } from "./auth.ts";
import {
  AzureDevOpsClient,
  type AzureDevOpsClientOptions,
  compactJobRequest,
  decideNextPage,
  decideRetry,
  defaultRetryPolicy,
  type NextPageDecision,
  normalizeOrganizationUrl,
} from "./client.ts";
import {
  AgentBusyError,
  AgentExistsError,
  AmbiguousPoolError,
  AzureDevOpsError,
  type AzureDevOpsErrorKind,
  PoolNotFoundError,
} from "./errors.ts";
import { jobRequestState, type TaskAgentJobRequest } from "./types.ts";

// The client's job requests feed the scaling core unchanged.
const _assignable: (j: TaskAgentJobRequest) => JobRequest = (j) => j;

// ---------------------------------------------------------------------------------------------------------------
// Unit: retry decisions

describe("decideRetry", () => {
  const err = (kind: AzureDevOpsErrorKind, retryAfterMs?: number) =>
    new AzureDevOpsError(kind, "x", retryAfterMs === undefined ? {} : { retryAfterMs });
  const policy = { ...defaultRetryPolicy, maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 };
  const cases: Array<{
    name: string;
    method: string;
    error: AzureDevOpsError;
    attempt: number;
    expect: [boolean, number];
  }> = [
    { name: "GET network", method: "GET", error: err("network"), attempt: 0, expect: [true, 100] },
    { name: "GET timeout, 2nd retry", method: "GET", error: err("timeout"), attempt: 1, expect: [true, 200] },
    { name: "GET 5xx, 3rd retry", method: "GET", error: err("server"), attempt: 2, expect: [true, 400] },
    { name: "GET attempts used up", method: "GET", error: err("server"), attempt: 3, expect: [false, 0] },
    { name: "DELETE 5xx", method: "DELETE", error: err("server"), attempt: 0, expect: [true, 100] },
    {
      name: "GET 429 with Retry-After",
      method: "GET",
      error: err("rate-limited", 2000),
      attempt: 0,
      expect: [true, 2000],
    },
    { name: "GET 429 without Retry-After", method: "GET", error: err("rate-limited"), attempt: 1, expect: [true, 200] },
    {
      name: "GET 429 with a Retry-After beyond what a call waits",
      method: "GET",
      error: err("rate-limited", 31_000),
      attempt: 0,
      expect: [false, 0],
    },
    { name: "POST never", method: "POST", error: err("network"), attempt: 0, expect: [false, 0] },
    { name: "POST 429 never", method: "POST", error: err("rate-limited", 1000), attempt: 0, expect: [false, 0] },
    { name: "PATCH never", method: "PATCH", error: err("server"), attempt: 0, expect: [false, 0] },
    { name: "GET auth never", method: "GET", error: err("auth"), attempt: 0, expect: [false, 0] },
    { name: "GET forbidden never", method: "GET", error: err("forbidden"), attempt: 0, expect: [false, 0] },
    { name: "GET not-found never", method: "GET", error: err("not-found"), attempt: 0, expect: [false, 0] },
    { name: "GET bad answer never", method: "GET", error: err("invalid-response"), attempt: 0, expect: [false, 0] },
    { name: "DELETE refused never", method: "DELETE", error: err("bad-request"), attempt: 0, expect: [false, 0] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const d = decideRetry({ method: c.method, error: c.error, attempt: c.attempt }, policy, () => 0);
      assert.deepEqual([d.retry, d.delayMs], c.expect);
    });
  }

  test("backoff grows to the cap, with jitter shortening it", () => {
    const delays = [0, 1, 2, 3, 4, 5].map(
      (attempt) =>
        decideRetry({ method: "GET", error: err("server"), attempt }, { ...policy, maxAttempts: 10 }, () => 0).delayMs,
    );
    assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
    const jittered = decideRetry({ method: "GET", error: err("server"), attempt: 2 }, policy, () => 1).delayMs;
    assert.equal(jittered, 200);
  });
});

describe("decideNextPage", () => {
  const cases: Array<{
    name: string;
    token: string | null | undefined;
    followed?: string[];
    pagesRead: number;
    maxPages?: number;
    want: NextPageDecision["kind"];
  }> = [
    { name: "no header: complete", token: null, pagesRead: 1, want: "done" },
    { name: "empty header: complete", token: " ", pagesRead: 1, want: "done" },
    { name: "a token: next page", token: "5200", pagesRead: 1, want: "next" },
    { name: "a token on the last allowed page: too big", token: "5200", pagesRead: 3, maxPages: 3, want: "error" },
    { name: "a token followed before: a loop", token: "5200", followed: ["5200"], pagesRead: 2, want: "error" },
    { name: "complete on the last allowed page", token: undefined, pagesRead: 3, maxPages: 3, want: "done" },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const d = decideNextPage({
        token: c.token,
        followed: new Set(c.followed ?? []),
        pagesRead: c.pagesRead,
        maxPages: c.maxPages ?? 50,
      });
      assert.equal(d.kind, c.want);
      if (d.kind === "next") assert.equal(d.token, c.token?.trim());
    });
  }
});

describe("normalizeOrganizationUrl", () => {
  test("trailing slashes go, the rest stays", () => {
    assert.equal(normalizeOrganizationUrl("https://dev.azure.com/org/"), "https://dev.azure.com/org");
    assert.equal(normalizeOrganizationUrl(" https://host/tfs/Coll "), "https://host/tfs/Coll");
  });
  const bad: Array<[string, RegExp]> = [
    ["dev.azure.com/org", /is not a URL/],
    ["ftp://host/org", /must use https/],
    ["https://user:secret@dev.azure.com/org", /must not hold credentials/],
    ["https://dev.azure.com/org?x=1", /query/],
  ];
  for (const [url, message] of bad) {
    test(url.replace("secret", "…"), () => {
      assert.throws(
        () => normalizeOrganizationUrl(url),
        (e: unknown) => e instanceof AzureDevOpsError && e.kind === "configuration" && message.test(e.message),
      );
      try {
        normalizeOrganizationUrl(url);
      } catch (e) {
        assert.ok(!(e as Error).message.includes("secret"));
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Integration: against the in-process Azure DevOps emulator

const managePat = "managepat0123456789abcdefghijklmnopqrstuvwxyz012";
const readPat = "readpat0123456789abcdefghijklmnopqrstuvwxyz01234";
const wrongPat = "wrongpat0123456789abcdefghijklmnopqrstuvwxyz0123";

const emu = useEmulator({
  pools: ["sim-pool", "Pool With Spaces", "build-a", "build-b"],
  pats: [
    { token: managePat, scope: "manage", identity: "alice" },
    { token: readPat, scope: "read", identity: "bob" },
  ],
  messagePollTimeoutMs: 200,
});

function client(options: Partial<AzureDevOpsClientOptions> = {}): AzureDevOpsClient {
  return new AzureDevOpsClient({
    organizationUrl: emu.organizationUrl,
    credential: patCredential(managePat),
    timeoutMs: 5_000,
    retry: { initialDelayMs: 10, maxDelayMs: 50 },
    ...options,
  });
}

async function rejects(promise: Promise<unknown>): Promise<AzureDevOpsError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof AzureDevOpsError, `expected an AzureDevOpsError, got ${err}`);
    return err;
  }
  assert.fail("expected a rejection");
}

function assertNoSecret(error: Error): void {
  const text = `${error.message} ${JSON.stringify(error)} ${String((error as AzureDevOpsError).serviceMessage)}`;
  for (const secret of [managePat, readPat, wrongPat]) {
    assert.ok(!text.includes(secret), "a token appears in the error");
    assert.ok(!text.includes(Buffer.from(`:${secret}`).toString("base64")), "a Basic header appears in the error");
  }
}

const apiRequests = (path: string) => emu.control.requests({ path });

describe("pools", () => {
  test("find by name, names with spaces, any case", async () => {
    const c = client();
    const pool = await c.findPoolByName("sim-pool");
    assert.equal(pool.name, "sim-pool");
    const spaced = await c.findPoolByName("Pool With Spaces");
    assert.equal(spaced.name, "Pool With Spaces");
    assert.notEqual(spaced.id, pool.id);
    const log = apiRequests("/_apis/distributedtask/pools").at(-1);
    assert.match(log?.url ?? "", /poolName=Pool%20With%20Spaces/);
    assert.equal((await c.findPoolByName("pool with spaces")).id, spaced.id);
    assert.deepEqual(await c.getPool(spaced.id), { ...(await c.getPool(spaced.id)), id: spaced.id, name: spaced.name });
  });

  test("no pool of that name is a clear configuration error", async () => {
    const e = await rejects(client().findPoolByName("no such pool"));
    assert.ok(e instanceof PoolNotFoundError);
    assert.equal(e.kind, "not-found");
    assert.equal(e.poolName, "no such pool");
    assert.match(e.message, /no agent pool named 'no such pool' exists in http:\/\/127\.0\.0\.1:\d+\/sim-org/);
  });

  test("a name that matches several pools is ambiguous", async () => {
    const e = await rejects(client().findPoolByName("build-*"));
    assert.ok(e instanceof AmbiguousPoolError);
    assert.equal(e.kind, "configuration");
    assert.deepEqual([...e.matches].sort(), ["build-a", "build-b"]);
    assert.match(e.message, /'build-\*' matches 2 pools in http:.*'build-a', 'build-b'/);
  });

  test("an unknown pool id is not-found", async () => {
    const e = await rejects(client().getPool(9999));
    assert.equal(e.kind, "not-found");
    assert.equal(e.status, 404);
    assert.equal(e.typeKey, "TaskAgentPoolNotFoundException");
    assert.match(e.message, /could not read agent pool 9999 \(HTTP 404\): Agent pool 9999 could not be found/);
  });

  test("a wrong organization URL says so", async () => {
    const c = client({ organizationUrl: `${emu.url}/other-org` });
    const e = await rejects(c.findPoolByName("sim-pool"));
    assert.equal(e.kind, "not-found");
    assert.match(e.message, /check the organization URL/);
  });
});

describe("agents", () => {
  test("register, list, get, update, 409 on a taken name, delete", async () => {
    const c = client();
    const { id: poolId } = await c.findPoolByName("sim-pool");
    const agent = await c.registerAgent(poolId, {
      name: "placeholder-1",
      version: "4.258.1",
      provisioningState: "Provisioned",
      maxParallelism: 1,
      systemCapabilities: { "Agent.OS": "Linux", java: "17" },
    });
    assert.equal(agent.name, "placeholder-1");
    assert.equal(agent.status, "offline");
    assert.equal(typeof agent.id, "number");

    const listed = await c.listAgents(poolId, { agentName: "placeholder-1", includeCapabilities: true });
    assert.equal(listed.length, 1);
    assert.equal(listed[0]?.systemCapabilities?.java, "17");
    const plain = await c.listAgents(poolId);
    assert.equal(plain[0]?.systemCapabilities, undefined);

    const conflict = await rejects(c.registerAgent(poolId, { name: "placeholder-1" }));
    assert.ok(conflict instanceof AgentExistsError);
    assert.equal(conflict.kind, "conflict");
    assert.equal(conflict.status, 409);
    assert.equal(conflict.agentName, "placeholder-1");
    assert.match(conflict.message, /an agent named 'placeholder-1' already exists in pool \d+/);
    assert.equal(apiRequests(`/pools/${poolId}/agents`).filter((r) => r.method === "POST").length, 2, "no retry");

    const updated = await c.updateAgent(poolId, agent.id, { enabled: false });
    assert.equal(updated.enabled, false);
    assert.equal((await c.getAgent(poolId, agent.id)).enabled, false);

    assert.equal(await c.deleteAgent(poolId, agent.id), "deleted");
    assert.equal(await c.deleteAgent(poolId, agent.id), "not-found");
    assert.equal((await rejects(c.getAgent(poolId, agent.id))).kind, "not-found");
    assert.deepEqual(await c.listAgents(poolId), []);
  });

  test("delete is refused while the agent runs a job, and works once it is done", async () => {
    const c = client();
    const { id: poolId } = await c.findPoolByName("sim-pool");
    const sim = new SimulatedAgent({
      url: emu.organizationUrl,
      pool: "sim-pool",
      name: "busy-agent",
      token: managePat,
      deregister: false,
      retryDelayMs: 20,
    });
    const online = new Promise((resolve) => sim.once("online", resolve));
    const run = sim.run();
    try {
      await online;
      const job = emu.control.queueJob({ pool: "sim-pool", durationMs: 60_000 });
      await emu.control.waitForJob(job.requestId, (j) => j.state === "running", { timeoutMs: 20_000 });
      const [agent] = await c.listAgents(poolId, { agentName: "busy-agent", includeAssignedRequest: true });
      assert.ok(agent);
      assert.equal(agent.status, "online");
      assert.equal(agent.assignedRequest?.requestId, job.requestId);

      const e = await rejects(c.deleteAgent(poolId, agent.id));
      assert.ok(e instanceof AgentBusyError);
      assert.equal(e.kind, "conflict");
      assert.equal(e.status, 400);
      assert.equal(e.agentId, agent.id);
      assert.match(e.message, /refused to delete agent \d+ of pool \d+ for now \(HTTP 400\).*retry later/);
      assert.equal(
        apiRequests(`/agents/${agent.id}`).filter((r) => r.method === "DELETE").length,
        1,
        "a refusal is not retried",
      );

      emu.control.cancelJob(job.requestId);
      await emu.control.waitForJob(job.requestId, (j) => j.state === "finished", { timeoutMs: 20_000 });
      await run;
      assert.equal(await c.deleteAgent(poolId, agent.id), "deleted");
    } finally {
      await sim.stop();
    }
  });
});

describe("job requests", () => {
  test("queued, running and finished, as the poll sees them", async () => {
    const c = client();
    const { id: poolId } = await c.findPoolByName("Pool With Spaces");
    // With no matching agent registered the service fails a job at once: register an offline placeholder first.
    await c.registerAgent(poolId, {
      name: "placeholder",
      version: "4.258.1",
      systemCapabilities: { java: "17", "Agent.OS": "Linux", "Agent.Version": "4.258.1" },
    });
    const job = emu.control.queueJob({
      pool: "Pool With Spaces",
      demands: ["java", "Agent.OS -equals Linux"],
      durationMs: 300,
      startDelayMs: 300,
    });

    const [queued, ...others] = await c.listJobRequests(poolId, { completedRequestCount: 0 });
    assert.equal(others.length, 0);
    assert.ok(queued);
    assert.equal(queued.requestId, job.requestId);
    assert.equal(jobRequestState(queued), "queued");
    assert.equal(queued.assignTime, undefined);
    assert.ok(queued.demands?.includes("java"));
    assert.ok(queued.demands?.some((d) => /^Agent\.Version -gtVersion /.test(d)));
    assert.match(apiRequests("/jobrequests").at(-1)?.url ?? "", /\?completedRequestCount=0$/);
    // The matching agents, cut to what the operator reads while the answer was read (compact.ts).
    assert.deepEqual(
      queued.matchedAgents?.map((a) => Object.keys(a).sort()),
      [["enabled", "id", "name", "provisioningState", "status", "version"]],
    );
    assert.equal(queued.matchedAgents?.[0]?.name, "placeholder");

    const sim = new SimulatedAgent({
      url: emu.organizationUrl,
      pool: "Pool With Spaces",
      name: "worker-1",
      token: managePat,
      capabilities: { java: "17" },
      retryDelayMs: 20,
    });
    const run = sim.run();
    try {
      await emu.control.waitForJob(job.requestId, (j) => j.state === "assigned", { timeoutMs: 20_000 });
      const [assigned] = await c.listJobRequests(poolId, { completedRequestCount: 0 });
      assert.ok(assigned);
      // The agent may already have received it; either way it is taken.
      assert.ok(["assigned", "running"].includes(jobRequestState(assigned)));
      assert.equal(assigned.reservedAgent?.name, "worker-1");

      await emu.control.waitForJob(job.requestId, (j) => j.state === "finished", { timeoutMs: 20_000 });
      assert.deepEqual(await c.listJobRequests(poolId, { completedRequestCount: 0 }), []);
      const all = await c.listJobRequests(poolId);
      const finished = all.find((j) => j.requestId === job.requestId);
      assert.equal(finished?.result, "succeeded");
      assert.equal(finished && jobRequestState(finished), "finished");
      await run;
    } finally {
      await sim.stop();
    }
  });

  test("matchedAgentsNamed: only the references with that name prefix are kept; the body may come in any pieces", async () => {
    /** The emulator's answers, sent on in pieces of 3 bytes (cutting characters of several bytes). */
    const smallPieces: typeof fetch = async (input, init) => {
      const answer = await fetch(input, init);
      const bytes = new Uint8Array(await answer.arrayBuffer());
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 3) controller.enqueue(bytes.slice(i, i + 3));
          controller.close();
        },
      });
      return new Response(body, { status: answer.status, headers: answer.headers });
    };
    const c = client({ fetch: smallPieces });
    const { id: poolId } = await c.findPoolByName("sim-pool");
    const capabilities = { java: "17", "Agent.Version": "4.258.1" };
    for (const name of ["dummy-agent", "worker-é日本", "dummy-agent-abc", "dummy-agen", "Dummy-agent-x"]) {
      await c.registerAgent(poolId, { name, version: "4.258.1", systemCapabilities: capabilities });
    }
    const job = emu.control.queueJob({ pool: "sim-pool", demands: ["java"] });

    const names = (jobs: TaskAgentJobRequest[]) =>
      jobs
        .find((j) => j.requestId === job.requestId)
        ?.matchedAgents?.map((a) => a.name)
        .sort();
    assert.deepEqual(names(await c.listJobRequests(poolId, { completedRequestCount: 0 })), [
      "Dummy-agent-x",
      "dummy-agen",
      "dummy-agent",
      "dummy-agent-abc",
      "worker-é日本",
    ]);
    const [placeholdersOnly] = await c.listJobRequests(poolId, {
      completedRequestCount: 0,
      matchedAgentsNamed: "dummy-agent",
    });
    assert.deepEqual(names(placeholdersOnly ? [placeholdersOnly] : []), ["dummy-agent", "dummy-agent-abc"]);
    assert.deepEqual(
      placeholdersOnly?.matchedAgents?.map((a) => Object.keys(a).sort()),
      [
        ["enabled", "id", "name", "provisioningState", "status", "version"],
        ["enabled", "id", "name", "provisioningState", "status", "version"],
      ],
    );
    assert.deepEqual(names(await c.listJobRequests(poolId, { matchedAgentsNamed: "worker-é" })), ["worker-é日本"]);
    assert.deepEqual(names(await c.listJobRequests(poolId, { matchedAgentsNamed: "none" })), []);
  });
});

describe("compactJobRequest", () => {
  const link = { _links: { self: { href: "https://dev.azure.com/org/_apis/x" } } };
  const ref = (id: number) => ({
    ...link,
    id,
    name: `a${id}`,
    version: "4.258.1",
    status: "online",
    osDescription: "x",
  });
  const cases: [string, Record<string, unknown>, unknown][] = [
    [
      "the typed fields stay; links, agent details and unknown fields go",
      {
        requestId: 7,
        queueTime: "2026-12-07T10:00:00Z",
        demands: ["java"],
        reservedAgent: ref(1),
        matchedAgents: [ref(1), ref(2)],
        matchesAllAgentsInPool: true,
        definition: { ...link, id: 3, name: "ci" },
        owner: { ...link, id: 4, name: "run" },
        planId: "p",
        hostId: "h",
        data: { ParallelismTag: "Private" },
      },
      {
        requestId: 7,
        queueTime: "2026-12-07T10:00:00Z",
        demands: ["java"],
        reservedAgent: { id: 1, name: "a1", version: "4.258.1", status: "online" },
        matchedAgents: [
          { id: 1, name: "a1", version: "4.258.1", status: "online" },
          { id: 2, name: "a2", version: "4.258.1", status: "online" },
        ],
        matchesAllAgentsInPool: true,
        definition: { id: 3, name: "ci" },
        owner: { id: 4, name: "run" },
        planId: "p",
      },
    ],
    ["null fields are left out", { requestId: 8, assignTime: null, reservedAgent: null }, { requestId: 8 }],
  ];
  for (const [name, input, expected] of cases) test(name, () => assert.deepEqual(compactJobRequest(input), expected));
});

describe("job-request paging", () => {
  /**
   * The emulator cuts a job-request list only when asked with `$top`; this fetch adds `$top` to every job-request
   * list, as a service cutting big answers by itself would, so the client meets real continuation tokens.
   */
  function cuttingFetch(pageSize: number, seen: string[]): typeof fetch {
    return (input, init) => {
      const url = new URL(String(input));
      if (url.pathname.endsWith("/jobrequests")) {
        url.searchParams.set("$top", String(pageSize));
        seen.push(url.search);
      }
      return fetch(url, init);
    };
  }

  async function poolWithJobs(queued: number, finished: number): Promise<{ poolId: number; ids: number[] }> {
    const c = client();
    const { id: poolId } = await c.findPoolByName("sim-pool");
    await c.registerAgent(poolId, { name: "placeholder", version: "4.258.1", systemCapabilities: { java: "17" } });
    const ids: number[] = [];
    for (let i = 0; i < queued + finished; i++) {
      // Every third job nobody can serve fails at once: finished requests between the unfinished ones.
      const serveable = i % 3 !== 2 ? ids.length < queued : finished === 0;
      const job = emu.control.queueJob({ pool: "sim-pool", demands: [serveable ? "java" : "cobol"] });
      if (serveable) ids.push(job.requestId);
    }
    return { poolId, ids };
  }

  test("a cut answer is read page by page with continuationToken; only unfinished requests are asked for", async () => {
    const { poolId, ids } = await poolWithJobs(7, 4);
    const seen: string[] = [];
    const c = client({ fetch: cuttingFetch(3, seen) });
    const jobs = await c.listJobRequests(poolId, { completedRequestCount: 0 });
    assert.deepEqual(
      jobs.map((j) => j.requestId),
      ids,
    );
    assert.equal(seen.length, 3, "7 requests in pages of 3");
    assert.ok(seen.every((q) => q.includes("completedRequestCount=0")));
    assert.ok(!seen[0]?.includes("continuationToken"));
    assert.match(seen[1] ?? "", /continuationToken=\d+/);
    assert.match(seen[2] ?? "", /continuationToken=\d+/);
  });

  test("an answer that does not end within maxPages is a clear error", async () => {
    const { poolId } = await poolWithJobs(5, 0);
    const seen: string[] = [];
    const err = await rejects(
      client({ fetch: cuttingFetch(1, seen) }).listJobRequests(poolId, { completedRequestCount: 0, maxPages: 3 }),
    );
    assert.equal(err.kind, "invalid-response");
    assert.match(err.message, /did not end after 3 pages/);
    assert.match(err.message, /3 job requests read so far/);
    assert.equal(seen.length, 3);
  });

  test("a continuation token that comes back again is an error, not a loop", async () => {
    const { poolId } = await poolWithJobs(2, 0);
    let calls = 0;
    const looping: typeof fetch = async (input, init) => {
      const answer = await fetch(input, init);
      if (!String(input).includes("/jobrequests")) return answer;
      calls++;
      const headers = new Headers(answer.headers);
      headers.set("X-MS-ContinuationToken", "1");
      return new Response(await answer.text(), { status: answer.status, headers });
    };
    const err = await rejects(client({ fetch: looping }).listJobRequests(poolId, { completedRequestCount: 0 }));
    assert.equal(err.kind, "invalid-response");
    assert.match(err.message, /repeats an earlier continuation token/);
    assert.equal(calls, 2);
  });
});

describe("authentication and permissions", () => {
  test("a wrong PAT is a clear 401 without the token", async () => {
    const c = client({ credential: patCredential(wrongPat) });
    const e = await rejects(c.findPoolByName("sim-pool"));
    assert.equal(e.kind, "auth");
    assert.equal(e.status, 401);
    assert.match(e.message, /did not accept the personal access token \(HTTP 401\).*wrong, expired or revoked/);
    assertNoSecret(e);
    assert.equal(apiRequests("/pools").length, 1, "auth failures are not retried");
  });

  test("a read-only PAT may read but not register (403)", async () => {
    const c = client({ credential: patCredential(readPat) });
    const { id: poolId } = await c.findPoolByName("sim-pool");
    const e = await rejects(c.registerAgent(poolId, { name: "x" }));
    assert.equal(e.kind, "forbidden");
    assert.equal(e.status, 403);
    assert.match(e.message, /refused to register agent 'x' in pool \d+ \(HTTP 403\).*Read & manage/);
    assertNoSecret(e);
  });

  test("an unknown bearer token gets the 203 sign-in page on GET, 401 on writes", async () => {
    const credential: Credential = { kind: "token", identity: "entra:test/app", getToken: async () => "expired-token" };
    const c = client({ credential });
    const e = await rejects(c.findPoolByName("sim-pool"));
    assert.equal(e.kind, "auth");
    assert.equal(e.status, 203);
    assert.match(e.message, /sign-in page \(HTTP 203\).*access token of entra:test\/app was not accepted/);
    assert.ok(!e.message.includes("expired-token"));
    const w = await rejects(c.registerAgent(1, { name: "x" }));
    assert.equal(w.kind, "auth");
    assert.equal(w.status, 401);
  });

  test("a valid bearer token works; a refused one is invalidated and fetched again once", async () => {
    emu.control.addBearerToken("fresh-token", { identity: "app", scope: "manage" });
    let invalidated = 0;
    let token = "stale-token";
    const credential: TokenCredential = {
      kind: "token",
      identity: "entra:test/app",
      getToken: async () => token,
      invalidate: () => {
        invalidated++;
        token = "fresh-token";
      },
    };
    const pool = await client({ credential }).findPoolByName("sim-pool");
    assert.equal(pool.name, "sim-pool");
    assert.equal(invalidated, 1);
    const statuses = apiRequests("/pools").map((r) => r.status);
    assert.deepEqual(statuses, [203, 200]);
  });

  test("a failing token provider is an auth error", async () => {
    const credential: Credential = {
      kind: "token",
      identity: "entra:test/app",
      getToken: async () => {
        throw new Error("AADSTS7000215: invalid client secret");
      },
    };
    const e = await rejects(client({ credential }).findPoolByName("sim-pool"));
    assert.equal(e.kind, "auth");
    assert.match(e.message, /could not get a token for the access token of entra:test\/app.*AADSTS7000215/);
    assert.equal(apiRequests("/pools").length, 0);
  });
});

describe("failures and retries", () => {
  test("5xx: GET is retried up to the attempt limit, then a server error", async () => {
    const c = client({ retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 20 } });
    emu.control.addFault({ path: "**/distributedtask/pools", errorRate: 1, status: 503 });
    const e = await rejects(c.findPoolByName("sim-pool"));
    assert.equal(e.kind, "server");
    assert.equal(e.status, 503);
    assert.ok(e.transient);
    assert.match(e.message, /failed to find the agent pool named 'sim-pool' \(HTTP 503\): TF400898/);
    assert.deepEqual(
      apiRequests("/pools").map((r) => r.status),
      [503, 503, 503],
    );
  });

  test("5xx then healed: the retry succeeds", async () => {
    const c = client();
    emu.control.addFault({ path: "**/distributedtask/pools", errorRate: 1, status: 500 });
    const heal = () => emu.control.clearFaults();
    emu.control.once("request", heal);
    const pool = await c.findPoolByName("sim-pool");
    assert.equal(pool.name, "sim-pool");
    assert.deepEqual(
      apiRequests("/pools").map((r) => r.status),
      [500, 200],
    );
  });

  test("5xx on POST is not retried", async () => {
    const c = client();
    const { id: poolId } = await c.findPoolByName("sim-pool");
    emu.control.addFault({ path: "**/agents", method: "POST", errorRate: 1, status: 500 });
    const e = await rejects(c.registerAgent(poolId, { name: "x" }));
    assert.equal(e.kind, "server");
    assert.equal(apiRequests("/agents").length, 1);
  });

  test("dropped connections are network errors; GET retries, POST does not", async () => {
    const c = client({ retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 20 } });
    const { id: poolId } = await c.findPoolByName("sim-pool");
    emu.control.addFault({ path: "**/agents", dropRate: 1 });
    const e = await rejects(c.listAgents(poolId));
    assert.equal(e.kind, "network");
    assert.match(e.message, /could not reach Azure DevOps \(http:\/\/127\.0\.0\.1:\d+\/sim-org\) to list the agents/);
    assert.deepEqual(
      apiRequests("/agents").map((r) => r.status),
      [0, 0, 0],
    );
    emu.control.clearRequests();
    const p = await rejects(c.registerAgent(poolId, { name: "x" }));
    assert.equal(p.kind, "network");
    assert.equal(apiRequests("/agents").length, 1);
    emu.control.clearFaults();
    assert.deepEqual(await c.listAgents(poolId), []);
  });

  test("dropped once, then answered: the retry succeeds", async () => {
    const c = client();
    const { id: poolId } = await c.findPoolByName("sim-pool");
    emu.control.addFault({ path: "**/jobrequests", dropRate: 1 });
    emu.control.once("request", () => emu.control.clearFaults());
    assert.deepEqual(await c.listJobRequests(poolId, { completedRequestCount: 0 }), []);
    assert.deepEqual(
      apiRequests("/jobrequests").map((r) => r.status),
      [0, 200],
    );
  });

  test("no answer within the timeout is a timeout error", async () => {
    const c = client({ timeoutMs: 100, retry: { maxAttempts: 2, initialDelayMs: 5 } });
    emu.control.addFault({ path: "**/distributedtask/pools", latencyMs: 1_000 });
    const e = await rejects(c.findPoolByName("sim-pool"));
    assert.equal(e.kind, "timeout");
    assert.match(e.message, /did not answer the request to find the agent pool named 'sim-pool' within 100 ms/);
  });

  test("the caller's abort rejects with its reason, not a typed error", async () => {
    const c = client();
    emu.control.addFault({ path: "**/distributedtask/pools", latencyMs: 1_000 });
    const controller = new AbortController();
    const reason = new Error("reconcile cancelled");
    setTimeout(() => controller.abort(reason), 20);
    await assert.rejects(c.findPoolByName("sim-pool", { signal: controller.signal }), (e) => e === reason);
  });
});

describe("rate limiting", () => {
  test("429 with Retry-After: the client waits it out and succeeds", async () => {
    emu.control.setRateLimit({ enabled: true, budget: 3, windowMs: 1_500, delayThreshold: 10 });
    const c = client();
    for (let i = 0; i < 3; i++) await c.findPoolByName("sim-pool");
    const pool = await c.findPoolByName("sim-pool");
    assert.equal(pool.name, "sim-pool");
    const log = apiRequests("/pools");
    const blocked = log.findIndex((r) => r.status === 429);
    assert.ok(blocked >= 0, `expected a 429 in ${JSON.stringify(log.map((r) => r.status))}`);
    const retry = log[blocked + 1];
    assert.equal(retry?.status, 200);
    // Not a speed check: the client must not come back before the Retry-After (whole seconds, at least 1).
    const gap = Date.parse(retry?.time ?? "") - Date.parse(log[blocked]?.time ?? "");
    assert.ok(gap >= 990, `came back after ${gap} ms, before the Retry-After`);
  });

  test("a Retry-After longer than a call waits: rate-limited error, and no request until it has passed", async () => {
    const c = client({ retry: { maxRetryAfterMs: 500 } });
    emu.control.addFault({ path: "**/distributedtask/pools", rateLimit: "block" });
    const e = await rejects(c.findPoolByName("sim-pool"));
    assert.equal(e.kind, "rate-limited");
    assert.equal(e.status, 429);
    assert.equal(e.retryAfterMs, 1000);
    assert.match(e.message, /rate-limited the request .* \(HTTP 429\); retry after 1 s: TF400733/);
    emu.control.clearFaults();
    const again = await rejects(c.findPoolByName("sim-pool"));
    assert.equal(again.kind, "rate-limited");
    assert.equal(again.status, undefined, "refused by the client, not sent");
    assert.ok((again.retryAfterMs ?? 0) > 0);
    assert.equal(apiRequests("/pools").length, 1);
    assert.ok(c.governor.requestWaitMs() > 0);
  });

  test("Retry-After on a delayed 200 is honoured by the next call", async () => {
    const c = client();
    emu.control.addFault({ path: "**/distributedtask/pools", rateLimit: "delay" });
    await c.findPoolByName("sim-pool");
    assert.ok(c.governor.state.delayedAt !== undefined);
    const waitMs = c.governor.requestWaitMs();
    assert.ok(waitMs > 0 && waitMs <= 1000, `wait ${waitMs}`);
    emu.control.clearFaults();
    await c.findPoolByName("sim-pool");
    const [first, second] = apiRequests("/pools");
    const gap = Date.parse(second?.time ?? "") - Date.parse(first?.time ?? "");
    assert.ok(gap >= 990, `second call ${gap} ms after a Retry-After of 1 s`);
  });
});
