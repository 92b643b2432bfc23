import assert from "node:assert/strict";
import { test } from "node:test";
import { ManualClock } from "./clock.ts";
import { type AgentInput, AzureDevOpsEngine, cancelMessageType, jobMessageType, jobState } from "./engine.ts";
import { ServiceError } from "./errors.ts";

const key = { publicKey: { exponent: "AQAB", modulus: "bW9kdWx1cw==" } };

function setup(options: Partial<ConstructorParameters<typeof AzureDevOpsEngine>[0]> = {}) {
  const clock = new ManualClock();
  const engine = new AzureDevOpsEngine({ clock, agentVersionDemand: null, ...options });
  const pool = engine.createPool({ name: "pool one" });
  const register = (name: string, caps: Record<string, string> = {}, extra: AgentInput = {}) =>
    engine.registerAgent(pool.id, { name, version: "4.258.1", systemCapabilities: caps, authorization: key, ...extra });
  const online = (agent: { id: number }) => engine.createSession(pool.id, { agentId: agent.id });
  const queue = (demands: string[] = [], extra = {}) => engine.queueJob({ poolId: pool.id, demands, ...extra });
  return { clock, engine, pool, register, online, queue };
}

function assertServiceError(fn: () => unknown, status: number, typeKey: string) {
  assert.throws(fn, (e: unknown) => e instanceof ServiceError && e.status === status && e.typeKey === typeKey);
}

test("a job no registered enabled agent satisfies fails at once with the service's message", () => {
  const cases: Array<{
    name: string;
    agents: Array<[string, Record<string, string>, AgentInput?]>;
    demands: string[];
    fails: boolean;
  }> = [
    { name: "empty pool", agents: [], demands: [], fails: true },
    { name: "empty pool, with demands", agents: [], demands: ["kubectl"], fails: true },
    {
      name: "offline placeholder that matches",
      agents: [["placeholder", { kubectl: "1" }, { authorization: undefined }]],
      demands: ["kubectl"],
      fails: false,
    },
    {
      name: "offline placeholder that does not match",
      agents: [["placeholder", { docker: "1" }]],
      demands: ["kubectl"],
      fails: true,
    },
    {
      name: "only matching agent is disabled",
      agents: [["a", { kubectl: "1" }, { enabled: false }]],
      demands: ["kubectl"],
      fails: true,
    },
    {
      name: "disabled matching agent and enabled other agent",
      agents: [
        ["a", { kubectl: "1" }, { enabled: false }],
        ["b", { docker: "1" }],
      ],
      demands: ["kubectl"],
      fails: true,
    },
    {
      name: "equals mismatch",
      agents: [["a", { "Agent.OS": "Linux" }]],
      demands: ["Agent.OS -equals Windows_NT"],
      fails: true,
    },
    {
      name: "equals match, other case",
      agents: [["a", { "Agent.OS": "Linux" }]],
      demands: ["Agent.OS -equals LINUX"],
      fails: false,
    },
    { name: "no demands, any agent", agents: [["a", {}]], demands: [], fails: false },
  ];
  for (const c of cases) {
    const { engine, register, queue } = setup();
    for (const [name, caps, extra] of c.agents) register(name, caps, extra);
    const job = queue(c.demands);
    if (c.fails) {
      assert.equal(jobState(job), "finished", c.name);
      assert.equal(job.result, "failed", c.name);
      assert.equal(
        job.statusMessage,
        `No agent found in pool pool one which satisfies the specified demands: ${c.demands.join(", ")}`,
        c.name,
      );
      assert.ok(job.finishTime !== undefined, c.name);
      assert.equal(job.assignTime, undefined, c.name);
    } else {
      assert.equal(jobState(job), "queued", c.name);
      assert.equal(job.result, undefined, c.name);
    }
    engine.close();
  }
});

test("the automatic Agent.Version demand needs agents recent enough", () => {
  const { engine, pool, register } = setup({ agentVersionDemand: "2.182.1" });
  register("old", { kubectl: "1" }, { version: "2.100.0" });
  const failed = engine.queueJob({ poolId: pool.id, demands: ["kubectl"] });
  assert.deepEqual(failed.demands, ["kubectl", "Agent.Version -gtVersion 2.182.1"]);
  assert.equal(failed.result, "failed");
  register("new", { kubectl: "1" }, { version: "3.0.0" });
  const queued = engine.queueJob({ poolId: pool.id, demands: ["kubectl"] });
  assert.equal(jobState(queued), "queued");
  // The job's own version demand is kept, not doubled.
  const own = engine.queueJob({ poolId: pool.id, demands: ["Agent.Version -gtVersion 2.0"] });
  assert.deepEqual(own.demands, ["Agent.Version -gtVersion 2.0"]);
  const none = engine.queueJob({ poolId: pool.id, agentVersionDemand: null });
  assert.deepEqual(none.demands, []);
});

test("queued jobs wait for an online idle matching agent and go oldest first", () => {
  const { clock, engine, register, online, queue } = setup();
  const a = register("a", { kubectl: "1" });
  const j1 = queue(["kubectl"]);
  clock.advance(1000);
  const j2 = queue(["kubectl"]);
  assert.equal(jobState(j1), "queued");
  assert.equal(jobState(j2), "queued");
  online(a);
  assert.equal(jobState(j1), "assigned");
  assert.equal(j1.reservedAgentId, a.id);
  assert.equal(j1.assignTime, clock.now());
  assert.equal(jobState(j2), "queued");
  const b = register("b", { kubectl: "1" });
  online(b);
  assert.equal(jobState(j2), "assigned");
  assert.equal(j2.reservedAgentId, b.id);
  engine.close();
});

test("a job at the head that no idle agent can serve does not block the next one", () => {
  const { clock, engine, register, online, queue } = setup();
  register("docker-placeholder", { docker: "1" }, { authorization: undefined });
  const k = register("k", { kubectl: "1" });
  const dockerJob = queue(["docker"]);
  clock.advance(10);
  const kubectlJob = queue(["kubectl"]);
  online(k);
  assert.equal(jobState(dockerJob), "queued");
  assert.equal(jobState(kubectlJob), "assigned");
  engine.close();
});

test("the agent idle longest gets the next job", () => {
  const { clock, engine, register, online, queue } = setup();
  const a = register("a");
  const b = register("b");
  online(b);
  clock.advance(10);
  online(a);
  const job = queue();
  assert.equal(job.reservedAgentId, b.id);
  engine.close();
});

test("matchedAgents lists every registered agent that satisfies the demands, offline and disabled included", () => {
  const { engine, register, online, queue } = setup();
  const a = register("a", { kubectl: "1" });
  const b = register("b", { kubectl: "2" }, { enabled: false });
  register("c", { docker: "1" });
  const p = register("p", { kubectl: "3" }, { authorization: undefined });
  online(a);
  const busy = queue(["kubectl"]); // takes a
  const job = queue(["kubectl"]);
  assert.deepEqual(
    engine.matchedAgents(job).map((x) => x.name),
    [a.name, b.name, p.name],
  );
  assert.equal(busy.reservedAgentId, a.id);
  engine.close();
});

test("the job message carries the request and what the simulated job does", () => {
  const { engine, pool, register, online, queue } = setup();
  const a = register("a");
  const session = online(a);
  const job = queue([], { durationMs: 1234, startDelayMs: 5, finishDelayMs: 6, result: "failed" });
  const message = engine.takeMessage(pool.id, session.sessionId);
  assert.ok(message);
  assert.equal(message.messageType, jobMessageType);
  const body = JSON.parse(message.body);
  assert.equal(body.requestId, job.requestId);
  assert.equal(body.jobId, job.jobId);
  assert.equal(body.variables["sim.durationMs"].value, "1234");
  assert.equal(body.variables["sim.startDelayMs"].value, "5");
  assert.equal(body.variables["sim.finishDelayMs"].value, "6");
  assert.equal(body.variables["sim.result"].value, "failed");
  assert.equal(job.delivered, true);
  engine.close();
});

test("a job goes assigned -> running (first renewal) -> finished with the agent's result", () => {
  const { clock, engine, pool, register, online, queue } = setup();
  const a = register("a");
  const session = online(a);
  const job = queue();
  engine.takeMessage(pool.id, session.sessionId);
  assert.equal(jobState(job), "assigned");
  clock.advance(500);
  engine.updateJobRequest(pool.id, job.requestId, {});
  assert.equal(jobState(job), "running");
  assert.equal(job.receiveTime, clock.now());
  clock.advance(1000);
  engine.updateJobRequest(pool.id, job.requestId, { result: "succeeded" });
  assert.equal(jobState(job), "finished");
  assert.equal(job.result, "succeeded");
  assert.equal(job.finishTime, clock.now());
  assert.equal(engine.lastCompletedRequest(a)?.requestId, job.requestId);
  assert.equal(engine.assignedRequest(a), undefined);
  // Finishing again changes nothing; renewing a finished job is refused.
  engine.updateJobRequest(pool.id, job.requestId, { result: "failed" });
  assert.equal(job.result, "succeeded");
  assertServiceError(
    () => engine.updateJobRequest(pool.id, job.requestId, {}),
    400,
    "TaskAgentJobTokenExpiredException",
  );
  engine.close();
});

test("cancelling in each state", async (t) => {
  await t.test("queued: finished canceled at once", () => {
    const { engine, register, queue } = setup();
    register("placeholder", {}, { authorization: undefined });
    const job = queue();
    engine.cancelJob(job.requestId);
    assert.equal(job.result, "canceled");
    assert.equal(job.assignTime, undefined);
    engine.close();
  });

  await t.test("assigned, message not fetched: finished canceled at once, the agent is free again", () => {
    const { engine, pool, register, online, queue } = setup();
    const a = register("a");
    const session = online(a);
    const job = queue();
    engine.cancelJob(job.requestId);
    assert.equal(job.result, "canceled");
    assert.equal(engine.takeMessage(pool.id, session.sessionId), undefined);
    const next = queue();
    assert.equal(next.reservedAgentId, a.id);
    engine.close();
  });

  await t.test("assigned and fetched, or running: the agent is told and finishes it canceled", () => {
    for (const running of [false, true]) {
      const { engine, pool, register, online, queue } = setup();
      const a = register("a");
      const session = online(a);
      const job = queue();
      const first = engine.takeMessage(pool.id, session.sessionId);
      if (running) engine.updateJobRequest(pool.id, job.requestId, {});
      engine.cancelJob(job.requestId);
      assert.equal(job.result, undefined);
      assert.equal(job.cancelRequested, true);
      const cancel = engine.takeMessage(pool.id, session.sessionId, first?.messageId);
      assert.equal(cancel?.messageType, cancelMessageType);
      assert.equal(JSON.parse(cancel?.body ?? "{}").jobId, job.jobId);
      // Cancelling twice sends one cancellation.
      engine.cancelJob(job.requestId);
      engine.deleteMessage(pool.id, session.sessionId, cancel?.messageId ?? -1);
      assert.equal(engine.takeMessage(pool.id, session.sessionId), undefined);
      // Even if the agent reports success, the job was cancelled.
      engine.updateJobRequest(pool.id, job.requestId, { result: "succeeded" });
      assert.equal(job.result, "canceled");
      assert.equal(job.receiveTime !== undefined, running);
      engine.close();
    }
  });

  await t.test("running, the agent never answers: canceled after the cancel timeout", () => {
    const { clock, engine, pool, register, online, queue } = setup({ cancelTimeoutMs: 5000 });
    const a = register("a");
    const session = online(a);
    const job = queue();
    engine.takeMessage(pool.id, session.sessionId);
    engine.updateJobRequest(pool.id, job.requestId, {});
    engine.cancelJob(job.requestId);
    clock.advance(4999);
    assert.equal(job.result, undefined);
    clock.advance(1);
    assert.equal(job.result, "canceled");
    engine.close();
  });

  await t.test("finished: nothing changes", () => {
    const { engine, queue } = setup();
    const job = queue(); // empty pool: failed at once
    engine.cancelJob(job.requestId);
    assert.equal(job.result, "failed");
    engine.close();
  });
});

test("deleting an agent is refused while it holds a job, allowed once the job is done", () => {
  const { engine, pool, register, online, queue } = setup();
  const a = register("a");
  const session = online(a);
  const job = queue();
  assertServiceError(() => engine.deleteAgent(pool.id, a.id), 400, "TaskAgentJobStillRunningException");
  engine.takeMessage(pool.id, session.sessionId);
  engine.updateJobRequest(pool.id, job.requestId, {});
  assertServiceError(() => engine.deleteAgent(pool.id, a.id), 400, "TaskAgentJobStillRunningException");
  engine.updateJobRequest(pool.id, job.requestId, { result: "succeeded" });
  engine.deleteAgent(pool.id, a.id);
  assert.equal(engine.listAgents(pool.id).length, 0);
  // The finished job still names the agent that ran it.
  assert.equal(engine.reservedAgent(job)?.name, "a");
  engine.close();
});

test("registering a duplicate name is a 409; replace and update keep the id", () => {
  const { engine, pool, register } = setup();
  const a = register("a", { kubectl: "1" });
  assertServiceError(() => register("A"), 409, "TaskAgentExistsException");
  const replaced = engine.replaceAgent(pool.id, a.id, {
    name: "a",
    version: "5.0.0",
    systemCapabilities: { docker: "1" },
  });
  assert.equal(replaced.id, a.id);
  assert.deepEqual(replaced.systemCapabilities, { docker: "1" });
  const updated = engine.updateAgent(pool.id, a.id, { enabled: false });
  assert.equal(updated.enabled, false);
  assert.deepEqual(updated.systemCapabilities, { docker: "1" });
  register("b");
  assertServiceError(() => engine.updateAgent(pool.id, a.id, { name: "b" }), 409, "TaskAgentExistsException");
  engine.close();
});

test("sessions: online while held, conflicts, agents without a key cannot connect", () => {
  const { engine, pool, register, online } = setup();
  const a = register("a");
  assert.equal(engine.isOnline(a), false);
  const session = online(a);
  assert.equal(engine.isOnline(a), true);
  assertServiceError(() => online(a), 409, "TaskAgentSessionConflictException");
  engine.deleteSession(pool.id, session.sessionId);
  assert.equal(engine.isOnline(a), false);
  assertServiceError(() => engine.takeMessage(pool.id, session.sessionId), 404, "TaskAgentSessionExpiredException");
  const placeholder = register("placeholder", {}, { authorization: undefined });
  assertServiceError(() => online(placeholder), 400, "TaskAgentAccessTokenExpiredException");
  engine.close();
});

test("a session nobody polls expires; a job the agent had not started goes back to the queue", () => {
  const { clock, engine, register, online, queue } = setup({ sessionTimeoutMs: 60_000 });
  const a = register("a");
  const b = register("b");
  online(a);
  const job = queue();
  assert.equal(job.reservedAgentId, a.id);
  clock.advance(59_999);
  assert.equal(engine.isOnline(a), true);
  clock.advance(1);
  assert.equal(engine.isOnline(a), false);
  assert.equal(jobState(job), "queued");
  assert.equal(job.assignTime, undefined);
  online(b);
  assert.equal(job.reservedAgentId, b.id);
  engine.close();
});

test("an open long poll keeps the session; the poll returns the job when it is assigned", async () => {
  const { clock, engine, pool, register, online, queue } = setup({ sessionTimeoutMs: 1000 });
  const a = register("a");
  const session = online(a);
  const poll = engine.pollMessage(pool.id, session.sessionId, { timeoutMs: 50_000 });
  clock.advance(5000);
  assert.equal(engine.isOnline(a), true);
  const job = queue();
  const message = await poll;
  assert.equal(message?.messageType, jobMessageType);
  assert.equal(job.delivered, true);
  // A poll that times out answers nothing.
  const empty = engine.pollMessage(pool.id, session.sessionId, { lastMessageId: message?.messageId, timeoutMs: 100 });
  clock.advance(100);
  assert.equal(await empty, undefined);
  engine.close();
});

test("a running job whose lock is not renewed is abandoned; renewals keep it", () => {
  const { clock, engine, pool, register, online, queue } = setup({ lockDurationMs: 10_000 });
  const a = register("a");
  const session = online(a);
  const job = queue();
  engine.takeMessage(pool.id, session.sessionId);
  engine.updateJobRequest(pool.id, job.requestId, {});
  clock.advance(9_000);
  engine.updateJobRequest(pool.id, job.requestId, {});
  clock.advance(9_000);
  assert.equal(job.result, undefined);
  assert.equal(job.lockedUntil, clock.now() + 1_000);
  clock.advance(1_000);
  assert.equal(job.result, "abandoned");
  assert.equal(engine.assignedRequest(a), undefined);
  engine.close();
});

test("job request lists: unfinished plus recent finished, completedRequestCount, agent filter", () => {
  const { clock, engine, pool, register, online, queue } = setup({ defaultCompletedRequestCount: 2 });
  const a = register("a");
  const b = register("b");
  const session = online(a);
  const done: number[] = [];
  for (let i = 0; i < 3; i++) {
    const j = queue();
    engine.takeMessage(pool.id, session.sessionId);
    engine.updateJobRequest(pool.id, j.requestId, { result: "succeeded" });
    done.push(j.requestId);
    clock.advance(10);
  }
  const running = queue(); // a is free again: takes it
  online(b);
  const second = queue(); // b takes it
  engine.deleteSession(pool.id, engine.getAgent(pool.id, b.id).sessionId ?? "");
  const waiting = queue();
  const ids = (filter = {}) => engine.listJobRequests(pool.id, filter).map((j) => j.requestId);
  assert.equal(running.reservedAgentId, a.id);
  assert.deepEqual(ids(), [done[1], done[2], running.requestId, second.requestId, waiting.requestId].sort());
  assert.deepEqual(ids({ completedRequestCount: 0 }), [running.requestId, second.requestId, waiting.requestId].sort());
  assert.deepEqual(
    ids({ completedRequestCount: 10 }),
    [...done, running.requestId, second.requestId, waiting.requestId].sort(),
  );
  assert.deepEqual(ids({ completedRequestCount: 0, agentIds: [a.id] }), [running.requestId]);
  assert.deepEqual(ids({ completedRequestCount: 1, agentIds: [a.id] }), [done[2], running.requestId]);
  engine.close();
});

test("optionally, queued jobs fail when their last matching agent goes away", () => {
  const { engine, pool, register, queue } = setup({ failUnmatchableQueuedJobs: true });
  const p = register("placeholder", { kubectl: "1" }, { authorization: undefined });
  const job = queue(["kubectl"]);
  assert.equal(jobState(job), "queued");
  engine.deleteAgent(pool.id, p.id);
  assert.equal(job.result, "failed");
  assert.match(job.statusMessage ?? "", /^No agent found in pool pool one/);
  engine.close();
});

test("bad input is refused with the service's errors", () => {
  const { engine, pool } = setup();
  assertServiceError(() => engine.getPool(999), 404, "TaskAgentPoolNotFoundException");
  assertServiceError(() => engine.getAgent(pool.id, 999), 404, "TaskAgentNotFoundException");
  assertServiceError(() => engine.getJobRequest(pool.id, 999), 404, "TaskAgentJobNotFoundException");
  assertServiceError(() => engine.registerAgent(pool.id, { name: " " }), 400, "ArgumentNullException");
  assertServiceError(() => engine.queueJob({ poolId: pool.id, demands: ["a -like b"] }), 400, "ArgumentException");
  assertServiceError(() => engine.queueJob({ poolId: pool.id, durationMs: -1 }), 400, "ArgumentException");
  assertServiceError(() => engine.createPool({ name: "POOL ONE" }), 400, "ArgumentException");
  engine.close();
});
