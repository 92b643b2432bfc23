import assert from "node:assert/strict";
import { after, beforeEach, describe, test } from "node:test";
import { SimulatedAgent } from "../../sim/azure-devops/agent.ts";
import { useEmulator } from "../../test/support/emulator.ts";
import { ManualClock } from "../runtime/clock.ts";
import { patCredential } from "./auth.ts";
import { AzureDevOpsError, PoolNotFoundError } from "./errors.ts";
import { RateLimitGovernor } from "./governor.ts";
import {
  budgetIntervalMs,
  correctAgentsByJobs,
  decideAgentRefresh,
  decidePollInterval,
  defaultPollerOptions,
  JobRequestPoller,
  jobRequestsFingerprint,
  type PollerOptions,
  PollerRegistry,
  type PollSubscriber,
  type PoolReader,
  type PoolSnapshot,
  pollerKey,
  poolLooksLive,
  reconcileWithAgents,
  refillFastTokens,
} from "./poller.ts";
import type { TaskAgent, TaskAgentJobRequest, TaskAgentPool } from "./types.ts";

const queued: TaskAgentJobRequest = { requestId: 1, queueTime: "2025-01-01T00:00:00Z", demands: ["java"] };
const assigned: TaskAgentJobRequest = {
  ...queued,
  requestId: 2,
  assignTime: "2025-01-01T00:00:01Z",
  reservedAgent: { id: 7, name: "a" },
};
const running: TaskAgentJobRequest = { ...assigned, requestId: 3, receiveTime: "2025-01-01T00:00:02Z" };

// ---------------------------------------------------------------------------------------------------------------
// Pure decisions

describe("poolLooksLive", () => {
  const online: TaskAgent = { id: 7, name: "a", status: "online" };
  const offline: TaskAgent = { id: 8, name: "placeholder", status: "offline" };
  const options = { liveMemoryMs: 60_000 };
  type Input = Parameters<typeof poolLooksLive>[0];
  const quiet: Input = { hints: [], agents: [offline], jobRequests: [], sinceActivityMs: Number.POSITIVE_INFINITY };
  const table: Array<[string, Partial<Input>, boolean]> = [
    ["1. a subscriber has live pods", { hints: [false, true] }, true],
    ["1. a subscriber has live pods, whatever the data says", { hints: [true], agents: [] }, true],
    ["2. every subscriber says none, though an agent is online", { hints: [false, false], agents: [online] }, false],
    ["3. no hints, nothing seen", {}, false],
    ["3. no hints: an online agent", { agents: [offline, online] }, true],
    ["3. some cannot tell: an online agent", { hints: [false, undefined], agents: [online] }, true],
    ["3. no agent list yet", { agents: undefined }, false],
    ["3. a job held by an agent (assigned)", { jobRequests: [assigned] }, true],
    ["3. a job held by an agent (running)", { jobRequests: [running] }, true],
    ["3. only a queued job", { jobRequests: [queued] }, false],
    ["3. activity within the memory", { sinceActivityMs: 59_999 }, true],
    ["3. activity longer ago", { sinceActivityMs: 60_000 }, false],
  ];
  for (const [name, input, live] of table) {
    test(name, () => assert.equal(poolLooksLive({ ...quiet, ...input }, options), live));
  }
});

describe("decideAgentRefresh", () => {
  const options = { agentsMinAgeMs: 5_000, agentsMaxAgeMs: 30_000, agentsIdleMaxAgeMs: 300_000 };
  type Input = Parameters<typeof decideAgentRefresh>[0];
  const base: Input = { hasList: true, pending: false, live: false, ageMs: 1_000 };
  const table: Array<[string, Partial<Input>, ReturnType<typeof decideAgentRefresh>]> = [
    ["1. no list yet", { hasList: false }, "initial"],
    ["1. no list yet, even just after another", { hasList: false, ageMs: 0 }, "initial"],
    ["quiet, fresh list: reused", {}, undefined],
    ["2. a change, list old enough", { pending: true, ageMs: 5_000 }, "changed"],
    ["2. a change, list too young: later", { pending: true, ageMs: 4_999 }, undefined],
    ["2. a change without live pods still reads them", { pending: true, live: false, ageMs: 6_000 }, "changed"],
    ["3. live pods, list 30 s old", { live: true, ageMs: 30_000 }, "live"],
    ["3. live pods, list younger", { live: true, ageMs: 29_999 }, undefined],
    ["4. no live pods, list 30 s old: reused", { ageMs: 30_000 }, undefined],
    ["4. no live pods, list 5 min old", { ageMs: 300_000 }, "idle"],
    ["4. live pods, list 5 min old", { live: true, ageMs: 300_000 }, "live"],
  ];
  for (const [name, input, reason] of table) {
    test(name, () => assert.equal(decideAgentRefresh({ ...base, ...input }, options), reason));
  }
});

describe("budgetIntervalMs", () => {
  const options: PollerOptions = { ...defaultPollerOptions, agentsMaxAgeMs: 30_000, agentsIdleMaxAgeMs: 300_000 };
  const table: Array<[string, number, boolean, number]> = [
    ["20 a minute, no live pods: 19.8 job lists", 20, false, Math.round(60_000 / 19.8)],
    ["20 a minute, live pods: 18 job lists", 20, true, Math.round(60_000 / 18)],
    ["a share of 5: 4.8 job lists", 5, false, Math.round(60_000 / 4.8)],
    ["a share of 2, live pods: job lists keep half", 2, true, 60_000],
    ["no budget", Number.POSITIVE_INFINITY, false, 0],
    ["a budget of 0 is none", 0, true, 0],
  ];
  for (const [name, requestsPerMinute, live, ms] of table) {
    test(name, () => assert.equal(budgetIntervalMs({ requestsPerMinute, live }, options), ms));
  }
});

describe("decidePollInterval", () => {
  const options: PollerOptions = {
    ...defaultPollerOptions,
    fastIntervalMs: 1_000,
    idleIntervalMs: 3_000,
    fastWindowMs: 10_000,
    errorBackoff: { initialMs: 2_000, maxMs: 60_000, jitter: 0.3 },
  };
  type Input = Parameters<typeof decidePollInterval>[0];
  const quiet: Input = {
    outcome: "snapshot",
    consecutiveErrors: 0,
    sinceActivityMs: Number.POSITIVE_INFINITY,
    fastTokens: 10,
    budgetMs: 3_000,
  };
  const table: Array<[string, Partial<Input>, number, string, boolean]> = [
    ["1. first error", { outcome: "error", consecutiveErrors: 1 }, 2_000, "error-backoff", false],
    ["1. third error", { outcome: "error", consecutiveErrors: 3 }, 8_000, "error-backoff", false],
    [
      "1. many errors, work moving: capped backoff",
      { outcome: "error", consecutiveErrors: 30, sinceActivityMs: 0 },
      60_000,
      "error-backoff",
      false,
    ],
    ["3. a change just now: fast", { sinceActivityMs: 0 }, 1_000, "fast", true],
    ["3. a change 9.9 s ago: fast", { sinceActivityMs: 9_999 }, 1_000, "fast", true],
    ["3. a change 10 s ago: quiet", { sinceActivityMs: 10_000 }, 3_000, "idle", false],
    ["3. moving, allowance spent: idle pace", { sinceActivityMs: 0, fastTokens: 0.99 }, 3_000, "idle", false],
    [
      "3. moving, no budget: no allowance either",
      { sinceActivityMs: 0, fastTokens: 0, budgetMs: 0 },
      1_000,
      "fast",
      true,
    ],
    ["4. quiet", {}, 3_000, "idle", false],
    ["4. quiet, budget pays for more than the interval", { budgetMs: 1_000 }, 3_000, "idle", false],
    ["2. quiet, budget shared by 4 pools", { budgetMs: 12_000 }, 12_000, "budget", false],
    [
      "2. moving, budget shared by 4 pools: fast stretched too",
      { sinceActivityMs: 0, budgetMs: 12_000 },
      4_000,
      "fast",
      true,
    ],
    ["no budget", { budgetMs: 0 }, 3_000, "idle", false],
  ];
  for (const [name, input, baseMs, reason, fast] of table) {
    test(name, () =>
      assert.deepEqual(
        decidePollInterval({ ...quiet, ...input }, options, () => 0),
        { baseMs, reason, fast },
      ),
    );
  }
  test("3. a fast interval longer than the idle one is the idle one", () => {
    const slowFast = { ...options, fastIntervalMs: 5_000, idleIntervalMs: 2_000 };
    assert.deepEqual(decidePollInterval({ ...quiet, sinceActivityMs: 0, budgetMs: 0 }, slowFast), {
      baseMs: 2_000,
      reason: "fast",
      fast: true,
    });
  });
  test("error backoff has jitter", () => {
    const d = decidePollInterval({ ...quiet, outcome: "error", consecutiveErrors: 2 }, options, () => 1);
    assert.equal(d.baseMs, Math.round(4_000 * 0.7));
  });
});

describe("refillFastTokens", () => {
  const table: Array<[string, number, number, number, number]> = [
    ["full stays full", 10, 60_000, 10, 10],
    ["one back every 6 s at 10 a minute", 3, 6_000, 10, 4],
    ["from below zero", -2, 30_000, 10, 3],
    ["no time, no tokens", 3, 0, 10, 3],
    ["clock going back adds nothing", 3, -5_000, 10, 3],
    ["no allowance", 5, 60_000, 0, 0],
  ];
  for (const [name, tokens, elapsed, perMinute, want] of table) {
    test(name, () => assert.equal(refillFastTokens(tokens, elapsed, perMinute), want));
  }
});

describe("jobRequestsFingerprint and reconcileWithAgents", () => {
  test("order does not matter; assignment does", () => {
    assert.equal(jobRequestsFingerprint([queued, running]), jobRequestsFingerprint([running, queued]));
    assert.notEqual(
      jobRequestsFingerprint([queued]),
      jobRequestsFingerprint([{ ...queued, assignTime: "x", reservedAgent: { id: 1, name: "a" } }]),
    );
    assert.notEqual(jobRequestsFingerprint([]), jobRequestsFingerprint([queued]));
  });

  test("a job listed as queued that an agent read later holds takes the agent's view", () => {
    const taken = {
      ...queued,
      assignTime: "2025-01-01T00:00:05Z",
      reservedAgent: { id: 9, name: "b" },
      demands: undefined,
    };
    const agents: TaskAgent[] = [
      { id: 9, name: "b", status: "online", assignedRequest: taken },
      { id: 7, name: "a", status: "online", assignedRequest: { ...running, receiveTime: "later" } },
    ];
    const out = reconcileWithAgents([queued, running], agents);
    assert.equal(out[0]?.assignTime, "2025-01-01T00:00:05Z");
    assert.equal(out[0]?.reservedAgent?.id, 9);
    assert.deepEqual(out[0]?.demands, ["java"], "demands kept from the list");
    assert.equal(out[1], running, "jobs already past queued are left alone");
  });
});

describe("correctAgentsByJobs", () => {
  const seenAt = Date.parse("2025-01-01T00:01:00Z");
  const agent = (id: number, assigned?: TaskAgentJobRequest, last?: TaskAgentJobRequest): TaskAgent => ({
    id,
    name: `agent-${id}`,
    status: "online",
    ...(assigned ? { assignedRequest: assigned } : {}),
    ...(last ? { lastCompletedRequest: last } : {}),
  });
  const earlier: TaskAgentJobRequest = { requestId: 9, finishTime: "2024-12-31T23:00:00Z", result: "succeeded" };
  const cases: Array<[string, TaskAgent, TaskAgentJobRequest[], TaskAgent]> = [
    ["an idle agent stays as it is", agent(7, undefined, earlier), [queued], agent(7, undefined, earlier)],
    [
      "1. its job is gone: finished, seen now",
      agent(7, assigned, earlier),
      [queued],
      agent(7, undefined, { ...assigned, finishTime: "2025-01-01T00:01:00.000Z" }),
    ],
    [
      "1. its job is gone, with a finish time already: kept",
      agent(7, { ...running, finishTime: "2025-01-01T00:00:30Z" }),
      [],
      agent(7, undefined, { ...running, finishTime: "2025-01-01T00:00:30Z" }),
    ],
    [
      "2. its job now reserved by another agent: holds nothing",
      agent(7, assigned, earlier),
      [{ ...assigned, reservedAgent: { id: 8, name: "b" } }],
      agent(7, undefined, earlier),
    ],
    [
      "3. its job still its own: the newer view",
      agent(7, assigned),
      [running.requestId === assigned.requestId ? running : { ...assigned, receiveTime: "2025-01-01T00:00:02Z" }],
      agent(7, { ...assigned, receiveTime: "2025-01-01T00:00:02Z" }),
    ],
  ];
  for (const [name, input, jobs, want] of cases) {
    test(name, () => assert.deepEqual(correctAgentsByJobs([input], jobs, seenAt), [want]));
  }
});

describe("pollerKey", () => {
  const pat = "keypat0123456789abcdefghijklmnopqrstuvwxyz0123456";
  test("case-insensitive organization and pool, identity by hash", () => {
    const a = pollerKey({
      organizationUrl: "https://dev.azure.com/Org/",
      poolName: "My Pool",
      credential: patCredential(pat),
    });
    const b = pollerKey({
      organizationUrl: "https://DEV.azure.com/org",
      poolName: "my pool",
      credential: patCredential(pat),
    });
    assert.equal(a, b);
    assert.ok(!a.includes(pat));
    assert.notEqual(
      a,
      pollerKey({
        organizationUrl: "https://dev.azure.com/org",
        poolName: "my pool",
        credential: patCredential(`${pat}x`),
      }),
    );
    assert.notEqual(
      a,
      pollerKey({ organizationUrl: "https://dev.azure.com/org", poolName: "other", credential: patCredential(pat) }),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The loop on a manual clock, with an in-memory reader

class MemoryReader implements PoolReader {
  readonly governor: RateLimitGovernor;
  jobs: TaskAgentJobRequest[] = [];
  agents: TaskAgent[] = [];
  calls: string[] = [];
  /** The options of each job-request list, without the signal. */
  asked: object[] = [];
  failure: AzureDevOpsError | undefined;

  constructor(clock: ManualClock) {
    this.governor = new RateLimitGovernor("test", { clock, random: () => 0 });
  }

  async findPoolByName(name: string): Promise<TaskAgentPool> {
    this.calls.push("pool");
    return { id: 1, name };
  }

  async listJobRequests(
    _poolId: number,
    options: Parameters<PoolReader["listJobRequests"]>[1],
  ): Promise<TaskAgentJobRequest[]> {
    this.calls.push("jobs");
    const { signal: _, ...asked } = options;
    this.asked.push(asked);
    if (this.failure) throw this.failure;
    return this.jobs;
  }

  async listAgents(): Promise<TaskAgent[]> {
    this.calls.push("agents");
    return this.agents;
  }

  take(): string[] {
    const calls = this.calls;
    this.calls = [];
    return calls;
  }
}

class Recorder implements PollSubscriber {
  snapshots: PoolSnapshot[] = [];
  errors: AzureDevOpsError[] = [];
  #waiters: Array<() => void> = [];

  onSnapshot(snapshot: PoolSnapshot): void {
    this.snapshots.push(snapshot);
    this.#notify();
  }

  onError(error: AzureDevOpsError): void {
    this.errors.push(error);
    this.#notify();
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once `predicate` holds (checked now and after every event); rejects after `timeoutMs`. */
  async until<T>(predicate: () => T | undefined | false, what: string, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = predicate();
      if (value) return value;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${what}; ${this.snapshots.length} snapshots, errors: ${this.errors.map((e) => e.message).join(" | ")}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

describe("JobRequestPoller on a manual clock", () => {
  const options: Partial<PollerOptions> = {
    fastIntervalMs: 1_000,
    idleIntervalMs: 10_000,
    fastWindowMs: 5_000,
    fastPollsPerMinute: 3,
    minIntervalMs: 100,
    agentsMinAgeMs: 2_000,
    agentsMaxAgeMs: 5_000,
    agentsIdleMaxAgeMs: 60_000,
    liveMemoryMs: 20_000,
    errorBackoff: { initialMs: 500, maxMs: 4_000, jitter: 0 },
  };

  function setup(extra: Partial<PollerOptions> = {}) {
    const clock = new ManualClock(1_000_000);
    const reader = new MemoryReader(clock);
    const poller = new JobRequestPoller({
      organizationUrl: "https://dev.azure.com/org",
      poolName: "pool",
      reader,
      options: { ...options, ...extra },
      clock,
      random: () => 0,
    });
    const recorder = new Recorder();
    poller.subscribe(recorder);
    return { clock, reader, poller, recorder, t0: clock.now() };
  }

  test("matchedAgentsNamed: passed on to every job-request list; absent by default", async () => {
    const named = setup({ matchedAgentsNamed: "dummy-agent" });
    named.poller.start();
    await named.clock.tick(0);
    await named.clock.tick(10_000);
    assert.deepEqual(named.reader.asked, [
      { completedRequestCount: 0, matchedAgentsNamed: "dummy-agent" },
      { completedRequestCount: 0, matchedAgentsNamed: "dummy-agent" },
    ]);
    await named.poller.stop();

    const plain = setup();
    plain.poller.start();
    await plain.clock.tick(0);
    assert.deepEqual(plain.reader.asked, [{ completedRequestCount: 0 }]);
    await plain.poller.stop();
  });

  test("a quiet pool: job requests every idle interval, agents only when their list is old", async () => {
    const { clock, reader, poller, recorder, t0 } = setup();
    reader.agents = [{ id: 5, name: "placeholder", status: "offline" }];
    poller.start();
    await clock.tick(0);
    assert.deepEqual(reader.take(), ["pool", "jobs", "agents"]);
    assert.equal(recorder.snapshots[0]?.changed, true);
    assert.equal(poller.status().lastAgentRefresh, "initial");
    assert.equal(poller.status().nextPollAt, t0 + 10_000, "the first snapshot is no activity: idle");
    assert.equal(poller.status().lastDelayReason, "idle");
    assert.equal(poller.status().live, false);

    for (let i = 1; i <= 5; i++) await clock.tick(10_000);
    assert.deepEqual(reader.take(), ["jobs", "jobs", "jobs", "jobs", "jobs"], "no live pods: the agents wait");
    await clock.tick(10_000);
    assert.deepEqual(reader.take(), ["jobs", "agents"], "60 s old: read again");
    assert.equal(poller.status().lastAgentRefresh, "idle");
    assert.equal(recorder.snapshots.length, 7);
    await poller.stop();
  });

  test("a change: fast polls for the window, from the allowance; one agent list for the burst", async () => {
    const { clock, reader, poller, recorder } = setup();
    poller.start();
    await clock.tick(0);
    await clock.tick(10_000);
    reader.take();
    reader.jobs = [queued];
    await clock.tick(10_000);
    assert.deepEqual(reader.take(), ["jobs", "agents"], "a change: the agents too");
    assert.equal(poller.status().lastAgentRefresh, "changed");
    assert.equal(poller.status().lastDelayReason, "fast");
    assert.equal(poller.status().lastDelayMs, 1_000);

    reader.jobs = [{ ...queued, assignTime: "2025-01-01T00:00:01Z", reservedAgent: { id: 7, name: "a" } }];
    await clock.tick(1_000);
    assert.deepEqual(reader.take(), ["jobs"], "another change, agents read 1 s ago: later");
    await clock.tick(1_000);
    assert.deepEqual(reader.take(), ["jobs", "agents"], "the pending change, now that the list is 2 s old");
    assert.equal(poller.status().lastDelayReason, "fast", "the third fast poll");
    await clock.tick(1_000);
    assert.deepEqual(reader.take(), ["jobs"]);
    assert.ok(poller.status().fastTokens < 1, "three fast polls: the allowance is spent");
    assert.equal(poller.status().lastDelayReason, "idle", "still moving, but no fast poll left");
    assert.equal(poller.status().live, true, "a job held by an agent");
    await clock.tick(9_999);
    assert.deepEqual(reader.take(), []);
    await clock.tick(1);
    assert.deepEqual(reader.take(), ["jobs", "agents"], "live pods: agents every 5 s at the latest");
    assert.equal(poller.status().lastAgentRefresh, "live");
    assert.equal(recorder.snapshots.at(-1)?.jobRequests[0]?.reservedAgent?.id, 7);
    await poller.stop();
  });

  test("a reused agent list never shows an agent holding a job that is gone", async () => {
    const { clock, reader, poller, recorder } = setup();
    reader.jobs = [assigned];
    reader.agents = [{ id: 7, name: "a", status: "online", assignedRequest: assigned }];
    poller.start();
    await clock.tick(0);
    reader.take();
    reader.jobs = [];
    poller.pollNow();
    await clock.tick(100);
    assert.deepEqual(reader.take(), ["jobs"], "the agents were read 100 ms ago: reused");
    const agent = recorder.snapshots.at(-1)?.agents[0];
    assert.equal(agent?.assignedRequest, undefined);
    assert.equal(agent?.lastCompletedRequest?.requestId, assigned.requestId);
    assert.equal(agent?.lastCompletedRequest?.finishTime, new Date(clock.now()).toISOString());
    await poller.stop();
  });

  test("whether the pool has live pods: the subscribers' word, else the data", async () => {
    const clock = new ManualClock(1_000_000);
    const reader = new MemoryReader(clock);
    reader.agents = [{ id: 9, name: "static", status: "online" }];
    const poller = new JobRequestPoller({
      organizationUrl: "https://dev.azure.com/org",
      poolName: "pool",
      reader,
      options,
      clock,
      random: () => 0,
    });
    const quiet = { onSnapshot: () => undefined, onError: () => undefined };
    let a: boolean | undefined = false;
    poller.subscribe({ ...quiet, hasLivePods: () => a });
    poller.subscribe({ ...quiet, hasLivePods: () => false });
    poller.start();
    await clock.tick(0);
    await clock.tick(10_000);
    assert.equal(poller.status().live, false, "both say no, though an agent is online");
    assert.deepEqual(reader.take(), ["pool", "jobs", "agents", "jobs"], "the 10 s old list is kept");
    a = undefined;
    await clock.tick(10_000);
    assert.equal(poller.status().live, true, "one cannot tell: the online agent decides");
    assert.deepEqual(reader.take(), ["jobs", "agents"]);
    a = true;
    reader.agents = [];
    await clock.tick(10_000);
    assert.equal(poller.status().live, true, "one says yes");
    await poller.stop();
  });

  test("pollNow polls at once from the allowance, keeps the minimum interval and coalesces", async () => {
    const { clock, reader, poller } = setup();
    poller.start();
    await clock.tick(0);
    reader.take();
    poller.pollNow();
    poller.pollNow();
    assert.equal(poller.status().nextPollAt, clock.now() + 100);
    await clock.tick(99);
    assert.deepEqual(reader.take(), []);
    await clock.tick(1);
    assert.deepEqual(reader.take(), ["jobs"], "one forced poll; the agents were read 100 ms ago");
    assert.equal(poller.status().lastDelayReason, "fast", "pollNow opens the fast window");
    await clock.tick(1_000);
    await clock.tick(1_000);
    assert.deepEqual(reader.take(), ["jobs", "jobs", "agents"], "the agents once their list is 2 s old");
    await poller.stop();
  });

  test("an urgent pollNow (a service hook) waits only urgentMinIntervalMs after the last poll", async () => {
    const { clock, reader, poller } = setup({ minIntervalMs: 1_000, urgentMinIntervalMs: 250 });
    poller.start();
    await clock.tick(0);
    reader.take();
    poller.pollNow();
    assert.equal(poller.status().nextPollAt, clock.now() + 1_000, "an ordinary one: the minimum interval");
    poller.pollNow({ urgent: true });
    assert.equal(poller.status().nextPollAt, clock.now() + 250, "an urgent one: sooner");
    await clock.tick(250);
    assert.deepEqual(reader.take(), ["jobs"]);
    poller.pollNow();
    assert.equal(poller.status().nextPollAt, clock.now() + 1_000, "urgency ends with the poll it asked for");
    await poller.stop();
  });

  test("pollNow with the allowance spent still polls; the fast window then keeps the quiet pace", async () => {
    const { clock, reader, poller } = setup({ fastPollsPerMinute: 1 });
    poller.start();
    await clock.tick(0);
    reader.take();
    poller.pollNow();
    await clock.tick(100);
    assert.deepEqual(reader.take(), ["jobs"]);
    assert.ok(poller.status().fastTokens < 1);
    assert.equal(poller.status().lastDelayReason, "idle", "moving, but the one fast poll is spent");
    poller.pollNow();
    assert.equal(poller.status().nextPollAt, clock.now() + 100, "the operator's own actions still poll at once");
    await poller.stop();
  });

  test("errors are reported and backed off; the poller recovers", async () => {
    const { clock, reader, poller, recorder } = setup();
    reader.failure = new AzureDevOpsError("server", "HTTP 500", { status: 500 });
    poller.start();
    await clock.tick(0);
    assert.equal(recorder.errors.length, 1);
    assert.equal(recorder.errors[0]?.kind, "server");
    assert.equal(poller.status().lastDelayMs, 500);
    await clock.tick(500);
    assert.equal(recorder.errors.length, 2);
    assert.equal(poller.status().lastDelayMs, 1_000);
    assert.equal(poller.status().consecutiveErrors, 2);
    poller.pollNow();
    assert.equal(poller.status().nextPollAt, clock.now() + 1_000, "pollNow does not cut an error backoff");
    reader.failure = undefined;
    await clock.tick(1_000);
    assert.equal(recorder.snapshots.length, 1);
    assert.equal(poller.status().consecutiveErrors, 0);
    assert.ok(reader.take().includes("agents"), "the pending pollNow still refreshes the agents");
    await poller.stop();
  });

  test("never polls before a Retry-After, even on pollNow", async () => {
    const { clock, reader, poller } = setup();
    poller.start();
    await clock.tick(0);
    reader.take();
    reader.governor.record({ status: 200, retryAfterMs: 30_000 });
    poller.pollNow();
    await clock.tick(29_999);
    assert.deepEqual(reader.take(), [], "nothing before the Retry-After");
    await clock.tick(1);
    assert.deepEqual(reader.take(), ["jobs", "agents"]);
    await poller.stop();
  });

  test("stop ends the loop and leaves no timer", async () => {
    const { clock, reader, poller } = setup();
    poller.start();
    await clock.tick(0);
    await poller.stop();
    reader.take();
    assert.equal(clock.pendingTimers, 0);
    await clock.tick(60_000);
    assert.deepEqual(reader.take(), []);
    assert.equal(reader.governor.consumers, 0);
  });

  test("a throwing subscriber does not stop the others", async () => {
    const { clock, poller, recorder } = setup();
    poller.subscribe({
      onSnapshot: () => {
        throw new Error("bad subscriber");
      },
      onError: () => undefined,
    });
    poller.start();
    await clock.tick(0);
    await clock.tick(10_000);
    assert.equal(recorder.snapshots.length, 2);
    await poller.stop();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Integration: the registry against the in-process Azure DevOps emulator

const managePat = "pollmanagepat0123456789abcdefghijklmnopqrstuvwxy";
const readPat = "pollreadpat0123456789abcdefghijklmnopqrstuvwxyz01";

let registry: PollerRegistry | undefined;

// Before the emulator's hooks: a registry still polling is stopped before the emulator resets or closes.
after(async () => {
  await registry?.close();
});

beforeEach(async () => {
  await registry?.close();
  registry = undefined;
});

const emu = useEmulator({
  pools: ["sim-pool", "Pool With Spaces"],
  pats: [
    { token: managePat, scope: "manage", identity: "alice" },
    { token: readPat, scope: "read", identity: "bob" },
  ],
  messagePollTimeoutMs: 200,
});

const fast: Partial<PollerOptions> = {
  fastIntervalMs: 100,
  idleIntervalMs: 300,
  fastWindowMs: 1_000,
  fastPollsPerMinute: 1_000,
  minIntervalMs: 20,
  agentsMinAgeMs: 50,
  agentsMaxAgeMs: 1_000,
  agentsIdleMaxAgeMs: 5_000,
  errorBackoff: { initialMs: 50, maxMs: 200, jitter: 0.2 },
};

function newRegistry(
  poller: Partial<PollerOptions> = fast,
  budgetPerMinute = 0,
  poolBudgetPerMinute = 0,
): PollerRegistry {
  registry = new PollerRegistry({
    poller,
    budgetPerMinute,
    poolBudgetPerMinute,
    client: { timeoutMs: 5_000, retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 20 } },
  });
  return registry;
}

const target = (poolName = "sim-pool", pat = managePat) => ({
  organizationUrl: emu.organizationUrl,
  poolName,
  credential: patCredential(pat),
});

const jobPolls = () => emu.control.requests({ path: "/jobrequests" });

async function registerPlaceholder(poolName: string): Promise<void> {
  const poolId = emu.control.poolId({ pool: poolName });
  emu.control.engine.registerAgent(poolId, {
    name: `placeholder-${poolName.replace(/\W/g, "")}`,
    version: "4.258.1",
    systemCapabilities: { "Agent.Version": "4.258.1", java: "17" },
  });
}

describe("PollerRegistry with the emulator", () => {
  test("two subscribers share one poll stream; release stops it", async () => {
    const reg = newRegistry();
    const a = new Recorder();
    const b = new Recorder();
    const ha = reg.acquire(target(), a);
    const hb = reg.acquire({ ...target(), poolName: "SIM-POOL", credential: patCredential(`${managePat}\n`) }, b);
    assert.equal(ha.key, hb.key);
    assert.equal(reg.size, 1);
    await b.until(() => b.snapshots.length >= 5, "5 snapshots");
    await a.until(() => a.snapshots.length >= 5, "5 snapshots");

    // One stream: both subscribers got the very same snapshots, one per job-request call.
    const n = Math.min(a.snapshots.length, b.snapshots.length);
    for (let i = 0; i < n; i++) assert.equal(a.snapshots[i], b.snapshots[i]);
    const polls = jobPolls();
    const started = ha.status().polls;
    assert.ok(polls.length === started || polls.length === started - 1, `${polls.length} calls for ${started} polls`);
    assert.ok(
      polls.every((r) => r.url.endsWith("?completedRequestCount=0")),
      "unfinished only, no $top",
    );
    assert.ok(polls.every((r) => r.identity === "alice"));
    const lookups = emu.control
      .requests({ path: "/_apis/distributedtask/pools" })
      .filter((r) => r.path.endsWith("/pools"));
    assert.equal(lookups.length, 1, "the pool name is resolved once");

    // A different identity on the same pool is another poller.
    const c = new Recorder();
    const hc = reg.acquire(target("sim-pool", readPat), c);
    assert.equal(reg.size, 2);
    await c.until(() => c.snapshots.length >= 1, "bob's snapshot");
    assert.ok(jobPolls().some((r) => r.identity === "bob"));
    await hc.release();
    assert.equal(reg.size, 1);

    await ha.release();
    await ha.release();
    assert.equal(reg.size, 1, "b still holds it");
    const before = b.snapshots.length;
    await b.until(() => b.snapshots.length > before, "polling goes on for b");

    await hb.release();
    assert.equal(reg.size, 0);
    const last = emu.control.requests().at(-1)?.seq ?? 0;
    const snapshots = b.snapshots.length;
    await new Promise((resolve) => setTimeout(resolve, 3 * (fast.idleIntervalMs ?? 300)));
    assert.deepEqual(emu.control.requests({ since: last }), [], "no request after the last release");
    assert.equal(b.snapshots.length, snapshots);
  });

  test("one identity's budget is shared evenly by its pools; another identity has its own", async () => {
    // 300 requests a minute: one pool could poll every 208 ms (its agent lists, every 5 s, take 12), so the
    // 300 ms interval applies; two pools get 150 each, which pays for one poll every 435 ms.
    const reg = newRegistry(fast, 300);
    const a = new Recorder();
    const ha = reg.acquire(target("sim-pool"), a);
    await a.until(() => ha.status().polls >= 2 && ha.status().lastDelayReason === "idle", "idle pace");
    assert.equal(ha.status().lastDelayMs, 300);
    const b = new Recorder();
    const hb = reg.acquire(target("Pool With Spaces"), b);
    await b.until(() => hb.status().polls >= 2, "two polls of the second pool");
    await a.until(() => ha.status().lastDelayReason === "budget", "the first pool slowed");
    assert.equal(ha.status().lastDelayMs, Math.round(60_000 / (150 - 12)));
    assert.equal(hb.status().lastDelayReason, "budget");
    assert.equal(hb.status().lastDelayMs, ha.status().lastDelayMs, "evenly");
    const c = new Recorder();
    const hc = reg.acquire(target("sim-pool", readPat), c);
    await c.until(() => hc.status().polls >= 2, "two polls with the other identity");
    assert.equal(hc.status().lastDelayReason, "idle", "its own budget");
    await hb.release();
    await a.until(() => ha.status().lastDelayReason === "idle", "the first pool back to its interval");
    await ha.release();
    await hc.release();
  });

  test("a pool alone spends no more than the per-pool cap of its identity's budget", async () => {
    // 300 requests a minute for the identity, at most 120 a pool: one pool alone polls every 60 s / (120 - 12).
    const reg = newRegistry(fast, 300, 120);
    const a = new Recorder();
    const ha = reg.acquire(target("sim-pool"), a);
    await a.until(() => ha.status().polls >= 2 && ha.status().lastDelayReason === "budget", "capped pace");
    assert.equal(ha.status().lastDelayMs, Math.round(60_000 / (120 - 12)));
    await ha.release();
  });

  test("a late subscriber gets the latest snapshot at once", async () => {
    const reg = newRegistry({ ...fast, idleIntervalMs: 60_000, fastIntervalMs: 60_000 });
    const a = new Recorder();
    const ha = reg.acquire(target(), a);
    await a.until(() => a.snapshots.length >= 1, "first snapshot");
    const b = new Recorder();
    const hb = reg.acquire(target(), b);
    await b.until(() => b.snapshots.length >= 1, "cached snapshot");
    assert.equal(b.snapshots[0], a.snapshots[0]);
    assert.equal(jobPolls().length, 1);
    assert.equal(hb.latest(), a.snapshots[0]);
    await Promise.all([ha.release(), hb.release()]);
  });

  test("job requests from queued to running to gone; agents show who is busy", async () => {
    await registerPlaceholder("Pool With Spaces");
    const reg = newRegistry();
    const rec = new Recorder();
    const handle = reg.acquire(target("Pool With Spaces"), rec);
    await rec.until(() => rec.snapshots.length >= 1, "first snapshot");
    assert.deepEqual(rec.snapshots[0]?.jobRequests, []);
    assert.equal(rec.snapshots[0]?.agents.length, 1);

    const job = emu.control.queueJob({ pool: "Pool With Spaces", demands: ["java"], durationMs: 400 });
    handle.pollNow();
    const pending = await rec.until(
      () => rec.snapshots.find((s) => s.jobRequests.some((j) => j.requestId === job.requestId && !j.assignTime)),
      "the job pending",
    );
    assert.equal(pending.changed, true);
    assert.ok(pending.jobRequests[0]?.demands?.includes("java"));

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
      const busy = await rec.until(
        () =>
          rec.snapshots.find((s) =>
            s.agents.some((a) => a.name === "worker-1" && a.assignedRequest?.requestId === job.requestId),
          ),
        "the agent busy with the job",
      );
      const held = busy.jobRequests.find((j) => j.requestId === job.requestId);
      assert.equal(held?.reservedAgent?.name, "worker-1", "the job list agrees with the agent list");
      await rec.until(
        () =>
          rec.snapshots.at(-1)?.jobRequests.length === 0 &&
          rec.snapshots.at(-1)?.agents.every((a) => a.assignedRequest === undefined),
        "the job gone",
      );
      await run;
    } finally {
      await sim.stop();
      await handle.release();
    }
  });

  test("500s are reported, then the poller recovers", async () => {
    const reg = newRegistry();
    emu.control.addFault({ path: "**/jobrequests", errorRate: 1, status: 500 });
    const rec = new Recorder();
    const handle = reg.acquire(target(), rec);
    await rec.until(() => rec.errors.length >= 2, "two errors");
    assert.equal(rec.errors[0]?.kind, "server");
    assert.equal(rec.errors[0]?.status, 500);
    assert.equal(rec.snapshots.length, 0);
    assert.ok(handle.status().consecutiveErrors >= 2);
    assert.equal(handle.status().lastDelayReason, "error-backoff");
    emu.control.clearFaults();
    await rec.until(() => rec.snapshots.length >= 1, "a snapshot after healing");
    assert.equal(handle.status().consecutiveErrors, 0);
    await handle.release();
  });

  test("dropped connections are reported as network errors, then the poller recovers", async () => {
    const reg = newRegistry();
    emu.control.addFault({ path: "**/jobrequests", dropRate: 1 });
    const rec = new Recorder();
    const handle = reg.acquire(target(), rec);
    await rec.until(() => rec.errors.length >= 1, "an error");
    assert.equal(rec.errors[0]?.kind, "network");
    emu.control.clearFaults();
    await rec.until(() => rec.snapshots.length >= 1, "a snapshot after healing");
    await handle.release();
  });

  test("429 with Retry-After: the poller waits it out and loses nothing", async () => {
    await registerPlaceholder("sim-pool");
    const reg = newRegistry();
    const rec = new Recorder();
    const handle = reg.acquire(target(), rec);
    await rec.until(() => rec.snapshots.length >= 1, "first snapshot");
    emu.control.addFault({ path: "**/jobrequests", rateLimit: "block" });
    const job = emu.control.queueJob({ pool: "sim-pool", demands: ["java"] });
    const blocked = await rec.until(() => rec.errors.find((e) => e.kind === "rate-limited"), "a rate-limited error");
    assert.equal(blocked.retryAfterMs, 1000);
    emu.control.clearFaults();
    await rec.until(
      () => rec.snapshots.at(-1)?.jobRequests.some((j) => j.requestId === job.requestId),
      "the job queued during the block",
    );
    const polls = jobPolls();
    const first429 = polls.findIndex((r) => r.status === 429);
    const next = polls[first429 + 1];
    assert.ok(next, "polled again");
    // Not a speed check: the poller must not come back before the Retry-After (1 s).
    const gap = Date.parse(next.time) - Date.parse(polls[first429]?.time ?? "");
    assert.ok(gap >= 990, `polled again ${gap} ms after a 429 with Retry-After: 1`);
    await handle.release();
  });

  test("the poller slows down as the rate-limit budget runs low", async () => {
    emu.control.setRateLimit({
      enabled: true,
      budget: 40,
      windowMs: 60_000,
      delayThreshold: 10,
      headersThreshold: 0.5,
    });
    const reg = newRegistry({ ...fast, fastIntervalMs: 30, idleIntervalMs: 30 });
    const rec = new Recorder();
    const handle = reg.acquire(target(), rec);
    await rec.until(() => handle.status().lastDelayReason === "low-budget", "pacing by the budget");
    assert.ok((handle.status().lastDelayMs ?? 0) >= 60, `delay ${handle.status().lastDelayMs}`);
    assert.equal(rec.errors.length, 0, "slowed down before being blocked");
    await handle.release();
  });

  test("an unknown pool is reported; the poller finds it once it exists", async () => {
    const reg = newRegistry();
    const rec = new Recorder();
    const handle = reg.acquire(target("later-pool"), rec);
    const error = await rec.until(() => rec.errors[0], "pool not found");
    assert.ok(error instanceof PoolNotFoundError);
    assert.match(error.message, /no agent pool named 'later-pool'/);
    const created = emu.control.createPool("later-pool");
    const snapshot = await rec.until(() => rec.snapshots[0], "a snapshot of the new pool");
    assert.equal(snapshot.poolId, created.id);
    await handle.release();
  });

  test("a pool that disappears is resolved again by name", async () => {
    emu.control.createPool("dyn-pool");
    const reg = newRegistry();
    const rec = new Recorder();
    const handle = reg.acquire(target("dyn-pool"), rec);
    const first = await rec.until(() => rec.snapshots[0], "first snapshot");
    emu.control.reset(); // the configured pools only: dyn-pool is gone
    await rec.until(() => rec.errors.find((e) => e instanceof PoolNotFoundError), "pool not found after it went");
    emu.control.createPool("filler");
    const recreated = emu.control.createPool("dyn-pool");
    assert.notEqual(recreated.id, first.poolId);
    const again = await rec.until(() => rec.snapshots.find((s) => s.poolId === recreated.id), "the new pool id");
    assert.equal(again.poolName, "dyn-pool");
    await handle.release();
  });

  test("pollNow polls at once instead of waiting for the idle interval", async () => {
    const reg = newRegistry({ ...fast, fastIntervalMs: 60_000, idleIntervalMs: 60_000 });
    const rec = new Recorder();
    const handle = reg.acquire(target(), rec);
    await rec.until(() => rec.snapshots.length >= 1, "first snapshot");
    handle.pollNow();
    await rec.until(() => rec.snapshots.length >= 2, "a second snapshot long before a minute", 30_000);
    assert.equal(jobPolls().length, 2);
    await handle.release();
  });

  test("pollOrganization asks every loop of that organization, whatever its pool or identity, and no other", async () => {
    const reg = newRegistry({ ...fast, fastIntervalMs: 60_000, idleIntervalMs: 60_000 });
    const recorders = [new Recorder(), new Recorder(), new Recorder()];
    const handles = [
      reg.acquire(target(), recorders[0] as Recorder),
      reg.acquire(target("Pool With Spaces"), recorders[1] as Recorder),
      reg.acquire(target("sim-pool", readPat), recorders[2] as Recorder),
    ];
    for (const rec of recorders) await rec.until(() => rec.snapshots.length >= 1, "first snapshot");
    assert.deepEqual(reg.organizationUrls(), [emu.organizationUrl]);
    assert.equal(reg.pollOrganization("https://dev.azure.com/another-org", "test"), 0);
    assert.equal(reg.pollOrganization("not a url", "test"), 0);
    assert.equal(reg.pollOrganization(`${emu.organizationUrl.toUpperCase()}/`, "test"), 3);
    for (const rec of recorders) await rec.until(() => rec.snapshots.length >= 2, "a second snapshot", 30_000);
    for (const handle of handles) await handle.release();
    assert.deepEqual(reg.organizationUrls(), []);
  });

  test("a wrong PAT is reported as an auth error without the token", async () => {
    const reg = newRegistry();
    const rec = new Recorder();
    const wrong = "wrongpollpat0123456789abcdefghijklmnopqrstuvwxyz0";
    const handle = reg.acquire(target("sim-pool", wrong), rec);
    const error = await rec.until(() => rec.errors[0], "an auth error");
    assert.equal(error.kind, "auth");
    assert.ok(!error.message.includes(wrong));
    assert.ok(!handle.key.includes(wrong));
    await handle.release();
  });
});
