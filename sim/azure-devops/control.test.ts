import assert from "node:assert/strict";
import { test } from "node:test";
import { InMemoryBearerTokenStore } from "./auth.ts";
import { ManualClock } from "./clock.ts";
import { EmulatorControl } from "./control.ts";

function setup() {
  const clock = new ManualClock();
  const control = new EmulatorControl(
    {
      organization: "org",
      pools: ["sim-pool"],
      pats: [{ token: "p", scope: "manage" }],
      bearerTokens: [],
      engine: { agentVersionDemand: null },
      rateLimit: {},
      requestLogLimit: 3,
    },
    clock,
    new InMemoryBearerTokenStore(),
    () => "http://127.0.0.1:1/org",
  );
  const poolId = control.poolId({ pool: "sim-pool" });
  const key = { publicKey: { exponent: "AQAB", modulus: "bQ==" } };
  return { clock, control, poolId, key };
}

test("waitForJob and waitForAgent resolve on the change they wait for, event-driven", async () => {
  const { control, poolId, key } = setup();
  const agent = control.engine.registerAgent(poolId, { name: "a", authorization: key });
  const job = control.queueJob({ pool: "sim-pool" });
  const assigned = control.waitForJob(job.requestId, (j) => j.state === "assigned");
  const busy = control.waitForAgent("a", (a) => a.assignedRequestId === job.requestId);
  control.engine.createSession(poolId, { agentId: agent.id });
  assert.equal((await assigned).reservedAgent?.name, "a");
  assert.equal((await busy).status, "online");
  // Already true: resolves at once.
  assert.equal((await control.waitForJob(job.requestId, (j) => j.state === "assigned")).requestId, job.requestId);
  control.cancelJob(job.requestId);
});

test("waits reject on timeout and on abort", async () => {
  const { control } = setup();
  const job = control.queueJob({ pool: "sim-pool" }); // empty pool: failed at once
  await assert.rejects(
    control.waitForJob(job.requestId, (j) => j.state === "running", { timeoutMs: 20 }),
    /timed out/,
  );
  const abort = new AbortController();
  const waiting = control.waitForAgent("nobody", () => true, { signal: abort.signal });
  abort.abort(new Error("enough"));
  await assert.rejects(waiting, /enough/);
});

test("reset starts over from the configured world", () => {
  const { control, poolId } = setup();
  control.createPool("extra");
  control.addPat({ token: "later", scope: "read" });
  control.engine.registerAgent(poolId, { name: "a" });
  control.setFaults([{ path: "**", errorRate: 1 }]);
  control.setRateLimit({ enabled: true });
  let resets = 0;
  control.on("reset", () => resets++);
  control.reset();
  assert.equal(resets, 1);
  assert.deepEqual(
    control.listPools().map((p) => [p.id, p.name]),
    [[poolId, "sim-pool"]],
  );
  assert.deepEqual(
    control.pats.list().map((p) => p.token),
    ["p"],
  );
  assert.equal(control.listAgents().length, 0);
  assert.deepEqual(control.faults(), []);
  assert.equal(control.rateLimit().enabled, false);
});

test("the request log keeps the newest entries up to its limit; settings are validated", () => {
  const { control } = setup();
  for (let i = 0; i < 5; i++) {
    control.recordRequest({ time: "t", method: "GET", path: `/p${i}`, url: `/p${i}`, status: 200, durationMs: 0 });
  }
  assert.deepEqual(
    control.requests().map((e) => e.path),
    ["/p2", "/p3", "/p4"],
  );
  assert.deepEqual(
    control.requests({ since: 4 }).map((e) => e.seq),
    [5],
  );
  assert.throws(() => control.setFaults([{ path: "**", dropRate: 3 }]), /dropRate/);
  assert.throws(() => control.setRateLimit({ budget: -1 }), /budget/);
  assert.throws(() => control.setRateLimit({ nonsense: 1 } as never), /unknown rate-limit setting/);
  assert.throws(() => control.queueJob({ pool: "missing" }), /could not be found/);
});
