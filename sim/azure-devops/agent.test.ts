import assert from "node:assert/strict";
import { once } from "node:events";
import { afterEach, describe, test } from "node:test";
import { useEmulator } from "../../test/support/emulator.ts";
import { parseJobMessage, SimulatedAgent, SimulatedAgentError, type SimulatedAgentOptions } from "./agent.ts";
import { ManualClock } from "./clock.ts";

const managePat = "agent-test-manage-pat";
const readPat = "agent-test-read-pat";
const emu = useEmulator({
  organization: "agent-org",
  pools: ["sim-pool"],
  pats: [
    { token: managePat, scope: "manage" },
    { token: readPat, scope: "read" },
  ],
  messagePollTimeoutMs: 100,
});

// Agents a failed test left running are stopped, so one failure does not hang the file.
const runningAgents: SimulatedAgent[] = [];
afterEach(async () => {
  await Promise.all(runningAgents.splice(0).map((a) => a.stop()));
});

function newAgent(name: string, options: Partial<SimulatedAgentOptions> = {}) {
  const clock = new ManualClock(Date.now());
  const agent = new SimulatedAgent({
    url: emu.organizationUrl,
    pool: "sim-pool",
    name,
    token: managePat,
    clock,
    retryDelayMs: 10,
    ...options,
  });
  runningAgents.push(agent);
  return { agent, clock };
}

// biome-ignore lint/suspicious/noExplicitAny: test assertions walk the service's JSON freely
type Json = any;

/** What a client of the service reads for a job request. */
async function readJob(requestId: number): Promise<Record<string, Json>> {
  const pool = emu.control.poolId({ pool: "sim-pool" });
  const response = await fetch(`${emu.organizationUrl}/_apis/distributedtask/pools/${pool}/jobrequests/${requestId}`, {
    headers: { Authorization: `Basic ${Buffer.from(`:${readPat}`).toString("base64")}` },
  });
  assert.equal(response.status, 200);
  return (await response.json()) as Record<string, Json>;
}

/** Waits (event loop turns, not wall-clock time) until something sleeps on the manual clock. */
async function timerPending(clock: ManualClock): Promise<void> {
  for (let i = 0; i < 10_000 && clock.pendingTimers === 0; i++) await new Promise((r) => setImmediate(r));
  assert.ok(clock.pendingTimers > 0, "nothing is waiting on the clock");
}

/** A placeholder that satisfies the demands, so jobs queue instead of failing. */
function placeholder(capabilities: Record<string, string> = {}) {
  emu.control.engine.registerAgent(emu.control.poolId({ pool: "sim-pool" }), {
    name: `placeholder-${Object.keys(capabilities).join("-")}`,
    version: "4.258.1",
    systemCapabilities: capabilities,
  });
}

describe("end to end through HTTP", { timeout: 60_000 }, () => {
  test("queue a job; an agent registers, goes online, takes it, runs it and finishes it", async () => {
    placeholder({ kubectl: "1" });
    const queued = emu.control.queueJob({
      pool: "sim-pool",
      demands: ["kubectl"],
      durationMs: 5_000,
      startDelayMs: 2_000,
    });
    const before = await readJob(queued.requestId);
    assert.equal(before.assignTime, undefined);
    assert.equal(before.result, undefined);

    const { agent, clock } = newAgent("agent-e2e", { capabilities: { kubectl: "1.31" } });
    const events: string[] = [];
    for (const e of [
      "registered",
      "online",
      "jobReceived",
      "jobStarted",
      "jobFinished",
      "offline",
      "deregistered",
    ] as const) {
      agent.on(e, () => events.push(e));
    }
    const received = once(agent, "jobReceived");
    const run = agent.run();

    const [job] = await received;
    assert.equal(job.requestId, queued.requestId);
    assert.equal(job.durationMs, 5_000);
    assert.equal(job.startDelayMs, 2_000);
    const assigned = await readJob(queued.requestId);
    assert.ok(assigned.assignTime);
    assert.equal(assigned.receiveTime, undefined);
    assert.equal(assigned.result, undefined);
    assert.equal(assigned.reservedAgent.name, "agent-e2e");
    assert.equal(assigned.reservedAgent.status, "online");

    const started = once(agent, "jobStarted");
    clock.advance(2_000);
    await started;
    const running = await readJob(queued.requestId);
    assert.ok(running.receiveTime);
    assert.equal(running.result, undefined);
    assert.ok(running.lockedUntil);

    const finished = once(agent, "jobFinished");
    clock.advance(5_000);
    const [done] = await finished;
    assert.equal(done.result, "succeeded");
    const result = await run;
    assert.equal(result.stopped, false);
    assert.deepEqual(
      result.jobs.map((j) => [j.requestId, j.result]),
      [[queued.requestId, "succeeded"]],
    );

    const final = await readJob(queued.requestId);
    assert.equal(final.result, "succeeded");
    const times = ["queueTime", "assignTime", "receiveTime", "finishTime"].map((k) => Date.parse(final[k]));
    assert.ok(
      times.every((t) => Number.isFinite(t)),
      JSON.stringify(final),
    );
    assert.deepEqual(
      [...times].sort((a, b) => a - b),
      times,
    );
    assert.equal(final.reservedAgent.name, "agent-e2e");
    assert.deepEqual(events, [
      "registered",
      "online",
      "jobReceived",
      "jobStarted",
      "jobFinished",
      "offline",
      "deregistered",
    ]);
    assert.deepEqual(
      emu.control.listAgents().map((a) => a.name),
      ["placeholder-kubectl"],
    );
    // The agent's own calls (the reads above used the read PAT) all succeeded; an aborted long poll logs 0.
    const agentCalls = emu.control.requests().filter((e) => e.url.includes("api-version"));
    assert.ok(agentCalls.length >= 8);
    assert.ok(
      agentCalls.every((e) => e.status < 400),
      JSON.stringify(agentCalls.map((e) => [e.method, e.path, e.status])),
    );
  });

  test("cancelling a running job: the agent is told and finishes it canceled", async () => {
    placeholder();
    const queued = emu.control.queueJob({ pool: "sim-pool", durationMs: 3_600_000 });
    const { agent } = newAgent("agent-cancel");
    const started = once(agent, "jobStarted");
    const run = agent.run();
    await started;
    assert.equal(emu.control.cancelJob(queued.requestId).state, "running");
    const result = await run;
    assert.deepEqual(
      result.jobs.map((j) => j.result),
      ["canceled"],
    );
    const final = await readJob(queued.requestId);
    assert.equal(final.result, "canceled");
    assert.ok(final.finishTime);
  });

  test("cancelling during the start delay: canceled, never received", async () => {
    placeholder();
    const queued = emu.control.queueJob({ pool: "sim-pool", startDelayMs: 60_000 });
    const { agent } = newAgent("agent-cancel-early");
    const received = once(agent, "jobReceived");
    const run = agent.run();
    await received;
    emu.control.cancelJob(queued.requestId);
    const result = await run;
    assert.equal(result.jobs[0]?.result, "canceled");
    const final = await readJob(queued.requestId);
    assert.equal(final.result, "canceled");
    assert.equal(final.receiveTime, undefined);
  });

  test("lock renewals while a job runs", async () => {
    placeholder();
    const queued = emu.control.queueJob({ pool: "sim-pool", durationMs: 3_500 });
    const { agent, clock } = newAgent("agent-renew", { renewIntervalMs: 1_000 });
    const started = once(agent, "jobStarted");
    const run = agent.run();
    await started;
    clock.advance(3_500);
    await run;
    const patches = emu.control
      .requests({ path: `/jobrequests/${queued.requestId}` })
      .filter((e) => e.method === "PATCH");
    assert.equal(patches.length, 5); // first renewal (received), 3 renewals, finish
  });

  test("--once: one job only; a job assigned in the moment before the agent leaves goes back to the queue", async () => {
    placeholder();
    const first = emu.control.queueJob({ pool: "sim-pool", durationMs: 10 });
    const second = emu.control.queueJob({ pool: "sim-pool", durationMs: 10 });
    const { agent, clock } = newAgent("agent-once");
    const started = once(agent, "jobStarted");
    const run = agent.run();
    await started;
    clock.advance(10);
    const result = await run;
    assert.deepEqual(
      result.jobs.map((j) => j.requestId),
      [first.requestId],
    );
    const again = emu.control.getJob(second.requestId);
    assert.equal(again?.state, "queued");
    assert.equal(again?.reservedAgent, undefined);
  });

  test("finish delay: offline but still registered until it has passed", async () => {
    placeholder();
    emu.control.queueJob({ pool: "sim-pool", durationMs: 0, finishDelayMs: 30_000 });
    const { agent, clock } = newAgent("agent-linger");
    const offline = once(agent, "offline");
    const run = agent.run();
    await offline;
    const listed = emu.control.listAgents().find((a) => a.name === "agent-linger");
    assert.equal(listed?.status, "offline");
    await timerPending(clock);
    const deregistered = once(agent, "deregistered");
    clock.advance(30_000);
    await deregistered;
    await run;
    assert.equal(
      emu.control.listAgents().some((a) => a.name === "agent-linger"),
      false,
    );
  });

  test("stop while idle: session deleted, registration removed", async () => {
    const { agent } = newAgent("agent-idle");
    const online = once(agent, "online");
    const run = agent.run();
    await online;
    assert.equal((await emu.control.waitForAgent("agent-idle", (a) => a.status === "online")).status, "online");
    const result = await agent.stop();
    assert.equal(result?.stopped, true);
    assert.deepEqual(result?.jobs, []);
    assert.equal((await run).stopped, true);
    assert.equal(emu.control.listAgents().length, 0);
  });

  test("stop while running: the job finishes canceled, then the agent leaves", async () => {
    placeholder();
    const queued = emu.control.queueJob({ pool: "sim-pool", durationMs: 3_600_000 });
    const { agent } = newAgent("agent-stopped");
    const started = once(agent, "jobStarted");
    const controller = new AbortController();
    const run = agent.run(controller.signal);
    await started;
    controller.abort();
    const result = await run;
    assert.equal(result.stopped, true);
    assert.equal(result.jobs[0]?.result, "canceled");
    assert.equal(emu.control.getJob(queued.requestId)?.result, "canceled");
    assert.equal(
      emu.control.listAgents().some((a) => a.name === "agent-stopped"),
      false,
    );
  });
});

describe("registration", { timeout: 60_000 }, () => {
  test("an agent whose registration is deleted while it waits stops with agent-removed", async () => {
    const { agent } = newAgent("agent-doomed");
    const online = once(agent, "online");
    const run = agent.run();
    await online;
    const pool = emu.control.poolId({ pool: "sim-pool" });
    emu.control.engine.deleteAgent(pool, agent.agentId as number);
    await assert.rejects(run, (e: unknown) => e instanceof SimulatedAgentError && e.kind === "agent-removed");
    assert.equal(emu.control.listAgents().length, 0);
  });

  test("replaces a same-named registration when asked, refuses otherwise", async () => {
    const pool = emu.control.poolId({ pool: "sim-pool" });
    const stale = emu.control.engine.registerAgent(pool, { name: "agent-r", version: "4.0.0" });
    const { agent } = newAgent("agent-r");
    const info = await agent.register();
    assert.equal(info.replaced, true);
    assert.equal(info.agentId, stale.id);
    assert.equal(emu.control.listAgents()[0]?.hasPublicKey, true);
    assert.equal(emu.control.listAgents()[0]?.version, "4.258.1");

    const { agent: strict } = newAgent("agent-r", { replace: false });
    await assert.rejects(
      strict.register(),
      (e: unknown) => e instanceof SimulatedAgentError && e.kind === "agent-exists",
    );
  });

  test("system capabilities: the environment's, then the agent's own, which win (any case)", async () => {
    const { agent } = newAgent("agent-caps", {
      capabilities: { kubectl: "1.31", "agent.os": "Plan9", "Agent.Version": "0.1" },
      os: "Linux",
      osArchitecture: "ARM64",
      computerName: "agent-caps",
    });
    await agent.register();
    const [view] = emu.control.listAgents();
    assert.deepEqual(view?.capabilities, {
      kubectl: "1.31",
      "Agent.Name": "agent-caps",
      "Agent.OS": "Linux",
      "Agent.OSArchitecture": "ARM64",
      "Agent.Version": "4.258.1",
      "Agent.ComputerName": "agent-caps",
    });
  });

  test("a bad token or an unknown pool fails with a clear error", async () => {
    const cases: Array<[Partial<SimulatedAgentOptions>, string, RegExp]> = [
      [{ token: "wrong" }, "auth", /authentication failed.*401/],
      [{ token: "wrong", auth: "bearer" }, "auth", /authentication failed.*sign-in page.*203/],
      [{ pool: "no such pool" }, "pool-not-found", /agent pool 'no such pool' does not exist/],
      [{ token: readPat }, "forbidden", /HTTP 403/],
    ];
    for (const [options, kind, message] of cases) {
      const { agent } = newAgent("agent-bad", options);
      await assert.rejects(
        agent.run(),
        (e: unknown) => e instanceof SimulatedAgentError && e.kind === kind && message.test(e.message),
        kind,
      );
    }
    assert.equal(emu.control.listAgents().length, 0);
  });

  test("an unreachable service is a network error", async () => {
    const { agent } = newAgent("agent-nowhere", { url: "http://127.0.0.1:1/agent-org" });
    await assert.rejects(agent.register(), (e: unknown) => e instanceof SimulatedAgentError && e.kind === "network");
  });
});

test("parseJobMessage reads the simulated job from a job message body", () => {
  const job = parseJobMessage(
    JSON.stringify({
      requestId: 7,
      jobId: "j",
      jobName: "build",
      variables: {
        "Sim.DurationMs": { value: "250" },
        "sim.result": { value: "failed" },
        "sim.startDelayMs": { value: "x" },
      },
    }),
  );
  assert.deepEqual(job, {
    requestId: 7,
    jobId: "j",
    jobName: "build",
    jobDisplayName: "build",
    durationMs: 250,
    startDelayMs: 0,
    finishDelayMs: 0,
    plannedResult: "failed",
  });
});
