import assert from "node:assert/strict";
import { after, beforeEach, describe, test } from "node:test";
import { SimulatedAgent } from "../../sim/azure-devops/agent.ts";
import { useEmulator } from "../../test/support/emulator.ts";
import { ManualClock } from "../runtime/clock.ts";
import { patCredential } from "./auth.ts";
import { AzureDevOpsError, PoolNotFoundError } from "./errors.ts";
import { RateLimitGovernor } from "./governor.ts";
import {
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
  reconcileWithAgents,
  workIsMoving,
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

describe("workIsMoving", () => {
  const table: Array<[string, TaskAgentJobRequest[], boolean, boolean]> = [
    ["nothing", [], false, false],
    ["a change", [], true, true],
    ["a queued job", [queued], false, true],
    ["an assigned job not yet received", [assigned], false, true],
    ["only running jobs", [running], false, false],
  ];
  for (const [name, jobs, changed, moving] of table) {
    test(name, () => assert.equal(workIsMoving(jobs, changed), moving));
  }
});

describe("decidePollInterval", () => {
  const options: PollerOptions = {
    ...defaultPollerOptions,
    fastIntervalMs: 5_000,
    idleIntervalMs: 30_000,
    errorBackoff: { initialMs: 2_000, maxMs: 60_000, jitter: 0.3 },
  };
  const table: Array<[string, Parameters<typeof decidePollInterval>[0], number, string]> = [
    ["moving: fast", { outcome: "snapshot", moving: true, consecutiveErrors: 0 }, 5_000, "fast"],
    ["idle", { outcome: "snapshot", moving: false, consecutiveErrors: 0 }, 30_000, "idle"],
    ["first error", { outcome: "error", moving: false, consecutiveErrors: 1 }, 2_000, "error-backoff"],
    ["third error", { outcome: "error", moving: false, consecutiveErrors: 3 }, 8_000, "error-backoff"],
    ["many errors: capped", { outcome: "error", moving: true, consecutiveErrors: 30 }, 60_000, "error-backoff"],
  ];
  for (const [name, input, baseMs, reason] of table) {
    test(name, () =>
      assert.deepEqual(
        decidePollInterval(input, options, () => 0),
        { baseMs, reason },
      ),
    );
  }
  test("error backoff has jitter", () => {
    const d = decidePollInterval({ outcome: "error", moving: false, consecutiveErrors: 2 }, options, () => 1);
    assert.equal(d.baseMs, Math.round(4_000 * 0.7));
  });
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
  failure: AzureDevOpsError | undefined;

  constructor(clock: ManualClock) {
    this.governor = new RateLimitGovernor("test", { clock, random: () => 0 });
  }

  async findPoolByName(name: string): Promise<TaskAgentPool> {
    this.calls.push("pool");
    return { id: 1, name };
  }

  async listJobRequests(): Promise<TaskAgentJobRequest[]> {
    this.calls.push("jobs");
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
    minIntervalMs: 100,
    agentsMaxAgeMs: 5_000,
    errorBackoff: { initialMs: 500, maxMs: 4_000, jitter: 0 },
  };

  function setup() {
    const clock = new ManualClock(1_000_000);
    const reader = new MemoryReader(clock);
    const poller = new JobRequestPoller({
      organizationUrl: "https://dev.azure.com/org",
      poolName: "pool",
      reader,
      options,
      clock,
      random: () => 0,
    });
    const recorder = new Recorder();
    poller.subscribe(recorder);
    return { clock, reader, poller, recorder, t0: clock.now() };
  }

  test("fast while moving, idle when quiet; agents when changed, forced or old", async () => {
    const { clock, reader, poller, recorder, t0 } = setup();
    poller.start();
    await clock.tick(0);
    assert.deepEqual(reader.take(), ["pool", "jobs", "agents"]);
    assert.equal(recorder.snapshots.length, 1);
    assert.equal(recorder.snapshots[0]?.changed, true);
    assert.equal(poller.status().nextPollAt, t0 + 1_000, "the first snapshot is a change: fast");

    await clock.tick(1_000);
    assert.deepEqual(reader.take(), ["jobs"], "unchanged and agents still fresh");
    assert.equal(recorder.snapshots[1]?.changed, false);
    assert.equal(recorder.snapshots[1]?.agentsFetchedAt, t0);
    assert.equal(poller.status().nextPollAt, t0 + 1_000 + 10_000, "quiet: idle interval");
    assert.equal(poller.status().lastDelayReason, "idle");

    await clock.tick(9_999);
    assert.deepEqual(reader.take(), []);
    reader.jobs = [queued];
    poller.pollNow();
    assert.equal(poller.status().nextPollAt, clock.now(), "pollNow: at once (min interval long passed)");
    await clock.tick(0);
    assert.deepEqual(reader.take(), ["jobs", "agents"]);
    assert.equal(recorder.snapshots.at(-1)?.jobRequests.length, 1);
    assert.equal(poller.status().lastDelayReason, "fast");

    await clock.tick(1_000);
    assert.deepEqual(reader.take(), ["jobs"], "queued job: still fast, agents fresh");
    await clock.tick(1_000);
    await clock.tick(1_000);
    await clock.tick(1_000);
    await clock.tick(1_000);
    assert.deepEqual(reader.take(), ["jobs", "jobs", "jobs", "jobs", "agents"], "agents re-read when 5 s old");
    await poller.stop();
  });

  test("pollNow keeps the minimum interval and coalesces", async () => {
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
    assert.deepEqual(reader.take(), ["jobs", "agents"], "one forced poll, agents refreshed");
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
    await clock.tick(1_000);
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
  minIntervalMs: 20,
  agentsMaxAgeMs: 1_000,
  errorBackoff: { initialMs: 50, maxMs: 200, jitter: 0.2 },
};

function newRegistry(poller: Partial<PollerOptions> = fast): PollerRegistry {
  registry = new PollerRegistry({
    poller,
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
