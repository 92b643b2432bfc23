/**
 * The client's request observer (what the operator's Azure DevOps request metrics are made of): the operation of
 * each path, and one observation per HTTP attempt against the in-process emulator, with its status, its identity
 * key (never the PAT) and what the answer said about the rate limit.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { useEmulator } from "../../test/support/emulator.ts";
import { identityKey, patCredential } from "./auth.ts";
import { AzureDevOpsClient, type RequestObservation, requestOperation } from "./client.ts";

describe("requestOperation", () => {
  const cases: [string, string, string][] = [
    ["GET", "_apis/distributedtask/pools", "find-pool"],
    ["GET", "_apis/distributedtask/pools/7", "get-pool"],
    ["GET", "_apis/distributedtask/pools/7/agents", "list-agents"],
    ["POST", "_apis/distributedtask/pools/7/agents", "register-agent"],
    ["GET", "_apis/distributedtask/pools/7/agents/12", "get-agent"],
    ["PATCH", "_apis/distributedtask/pools/7/agents/12", "update-agent"],
    ["DELETE", "_apis/distributedtask/pools/7/agents/12", "delete-agent"],
    ["GET", "_apis/distributedtask/pools/7/jobrequests", "list-job-requests"],
    ["GET", "/_apis/distributedtask/pools/7/jobrequests?completedRequestCount=0", "list-job-requests"],
    ["delete", "_apis/DistributedTask/Pools/7/Agents/12", "delete-agent"],
    ["POST", "_apis/distributedtask/pools", "other"],
    ["PUT", "_apis/distributedtask/pools/7/agents", "other"],
    ["GET", "_apis/projects", "other"],
    ["GET", "_apis/distributedtask/pools/x/agents", "other"],
  ];
  for (const [method, path, expected] of cases) {
    test(`${method} ${path} -> ${expected}`, () => assert.equal(requestOperation(method, path), expected));
  }
});

const pat = "observerpat0123456789abcdefghijklmnopqrstuvwxyz";
const emu = useEmulator({ pools: ["sim-pool"], pats: [{ token: pat, scope: "manage", identity: "alice" }] });

function observed(): { client: AzureDevOpsClient; seen: RequestObservation[] } {
  const seen: RequestObservation[] = [];
  const client = new AzureDevOpsClient({
    organizationUrl: emu.organizationUrl,
    credential: patCredential(pat),
    timeoutMs: 5_000,
    retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 10 },
    onRequest: (o) => seen.push(o),
  });
  return { client, seen };
}

describe("onRequest", () => {
  test("one observation per attempt: operation, method, status, identity key; no rate-limit pressure", async () => {
    const { client, seen } = observed();
    const pool = await client.findPoolByName("sim-pool");
    await client.listJobRequests(pool.id, { completedRequestCount: 0 });
    const agent = await client.registerAgent(pool.id, { name: "observed", version: "4.258.1" });
    await client.deleteAgent(pool.id, agent.id);
    assert.deepEqual(
      seen.map((o) => [o.operation, o.method, o.status]),
      [
        ["find-pool", "GET", 200],
        ["list-job-requests", "GET", 200],
        ["register-agent", "POST", 200],
        ["delete-agent", "DELETE", 204],
      ],
    );
    for (const o of seen) {
      assert.equal(o.identity, identityKey(patCredential(pat)));
      assert.ok(!JSON.stringify(o).includes(pat), "the PAT is not in an observation");
      assert.ok(o.durationMs >= 0);
      assert.equal(o.rateLimit?.status, o.status);
      assert.equal(o.remainingRatio, undefined, "no budget headers: nothing known");
    }
  });

  test("a retried 5xx is two observations; a dropped connection has no status", async () => {
    const { client, seen } = observed();
    emu.control.addFault({ path: "**/distributedtask/pools", errorRate: 1, status: 503 });
    await assert.rejects(client.findPoolByName("sim-pool"));
    assert.deepEqual(
      seen.map((o) => [o.operation, o.status]),
      [
        ["find-pool", 503],
        ["find-pool", 503],
      ],
    );
    emu.control.clearFaults();
    seen.length = 0;
    emu.control.addFault({ path: "**/distributedtask/pools", dropRate: 1 });
    await assert.rejects(client.findPoolByName("sim-pool"));
    assert.deepEqual(
      seen.map((o) => [o.operation, o.status, o.rateLimit]),
      [
        ["find-pool", undefined, undefined],
        ["find-pool", undefined, undefined],
      ],
    );
  });

  test("a delayed answer carries X-RateLimit-Delay, Retry-After and the budget left", async () => {
    const { client, seen } = observed();
    emu.control.addFault({ path: "**/distributedtask/pools", rateLimit: "delay" });
    await client.findPoolByName("sim-pool");
    const [o] = seen;
    assert.equal(o?.status, 200);
    assert.ok((o?.rateLimit?.delayMs ?? 0) > 0, `delay ${o?.rateLimit?.delayMs}`);
    assert.ok((o?.rateLimit?.retryAfterMs ?? 0) > 0, `retry-after ${o?.rateLimit?.retryAfterMs}`);
    assert.ok(o?.rateLimit?.limit !== undefined && o.rateLimit.remaining !== undefined);
    const ratio = (o?.rateLimit?.remaining ?? 0) / (o?.rateLimit?.limit ?? 1);
    assert.equal(o?.remainingRatio, Math.min(1, ratio));
  });

  test("an observer that throws does not fail the call", async () => {
    const client = new AzureDevOpsClient({
      organizationUrl: emu.organizationUrl,
      credential: patCredential(pat),
      onRequest: () => {
        throw new Error("observer broken");
      },
    });
    assert.equal((await client.findPoolByName("sim-pool")).name, "sim-pool");
  });
});
