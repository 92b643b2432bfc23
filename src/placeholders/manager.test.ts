import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SimulatedAgent } from "../../sim/azure-devops/agent.ts";
import { useEmulator } from "../../test/support/emulator.ts";
import { patCredential } from "../azure-devops/auth.ts";
import { AzureDevOpsClient } from "../azure-devops/client.ts";
import { placeholderAgentName, podNamePrefix } from "../scaling/naming.ts";
import { PlaceholderManager, PlaceholderReason } from "./manager.ts";
import {
  type GarbageDecision,
  type PlaceholderSource,
  placeholderCapabilities,
  placeholderRegistration,
  wantedPlaceholders,
} from "./plan.ts";

const managePat = "managepat0123456789abcdefghijklmnopqrstuvwxyz012";
const readPat = "readpat0123456789abcdefghijklmnopqrstuvwxyz01234";
const HOUR = 3_600_000;

const emu = useEmulator({
  pools: ["sim-pool"],
  pats: [
    { token: managePat, scope: "manage", identity: "alice" },
    { token: readPat, scope: "read", identity: "bob" },
  ],
  messagePollTimeoutMs: 200,
});

function client(pat = managePat): AzureDevOpsClient {
  return new AzureDevOpsClient({
    organizationUrl: emu.organizationUrl,
    credential: patCredential(pat),
    timeoutMs: 5_000,
    retry: { initialDelayMs: 10, maxDelayMs: 50 },
  });
}

const poolId = () => emu.control.poolId({ pool: "sim-pool" });
const posts = () => emu.control.requests({ path: "/agents" }).filter((r) => r.method === "POST");
const deletes = () => emu.control.requests({ path: "/agents/" }).filter((r) => r.method === "DELETE");
const agentNames = () =>
  emu.control
    .listAgents({ pool: "sim-pool" })
    .map((a) => a.name)
    .sort();

const resource: PlaceholderSource = {
  key: "ns/build",
  podsWithCapabilities: [{ capabilities: { buildkit: "1" } }, { capabilities: { java: "17", "Agent.OS": "Linux" } }],
};

describe("ensure", () => {
  test("registers each wanted placeholder once, offline, with its capabilities; again is a harmless 409", async () => {
    const manager = new PlaceholderManager({ client: client() });
    const wanted = wantedPlaceholders([resource]);
    const first = await manager.ensure(poolId(), wanted);
    assert.equal(first.status, "ok");
    assert.equal(first.problem, undefined);
    assert.deepEqual(
      first.outcomes.map((o) => o.status),
      ["registered", "registered"],
    );
    assert.deepEqual([...first.registered].sort(), wanted.map((w) => w.name).sort());
    const agents = emu.control.listAgents({ pool: "sim-pool" });
    assert.deepEqual(agents.map((a) => a.name).sort(), wanted.map((w) => w.name).sort());
    for (const a of agents) {
      assert.equal(a.status, "offline");
      assert.equal(a.enabled, true);
      assert.equal(a.hasPublicKey, false, "a placeholder can never open a session");
      assert.equal(a.capabilities["Agent.Version"], "99.999.9");
    }
    const java = agents.find(
      (a) => a.name === placeholderAgentName({ java: "17", "Agent.OS": "Linux", "Agent.OSArchitecture": "" }),
    );
    assert.equal(java?.capabilities.java, "17");
    assert.equal(java?.capabilities["Agent.OS"], "Linux");
    assert.equal(java?.capabilities["Agent.Name"], java?.name);
    assert.equal(posts().length, 2);

    const again = await manager.ensure(poolId(), wanted);
    assert.equal(again.status, "ok");
    assert.deepEqual(
      again.outcomes.map((o) => o.status),
      ["exists", "exists"],
    );
    assert.deepEqual(again.registered, []);
    assert.equal(posts().length, 4, "without an agent list every placeholder is POSTed; 409 is success");
    assert.equal(emu.control.listAgents({ pool: "sim-pool" }).length, 2);

    const known = await manager.ensure(poolId(), wanted, { existingAgentNames: agentNames() });
    assert.equal(known.status, "ok");
    assert.equal(posts().length, 4, "names the caller's agent list has are not POSTed");
  });

  test("a placeholder someone else registered already (409) is fine; the others are registered", async () => {
    const wanted = wantedPlaceholders([resource]);
    const taken = wanted[1]?.name as string;
    await client().registerAgent(poolId(), placeholderRegistration(taken, {}));
    const result = await new PlaceholderManager({ client: client() }).ensure(poolId(), wanted);
    assert.equal(result.status, "ok");
    const byName = new Map(result.outcomes.map((o) => [o.name, o.status]));
    assert.equal(byName.get(taken), "exists");
    assert.equal(byName.get(wanted[0]?.name as string), "registered");
  });

  test("a changed capability set registers the new placeholder; the old one is left for collection", async () => {
    const manager = new PlaceholderManager({ client: client() });
    await manager.ensure(poolId(), wantedPlaceholders([{ podsWithCapabilities: [{ capabilities: { a: "1" } }] }]));
    const changed = wantedPlaceholders([{ podsWithCapabilities: [{ capabilities: { a: "2" } }] }]);
    const result = await manager.ensure(poolId(), changed, { existingAgentNames: agentNames() });
    const nameOf = (caps: Record<string, string>) => placeholderAgentName(placeholderCapabilities(caps, undefined));
    assert.deepEqual(result.registered, [nameOf({ a: "2" })]);
    assert.deepEqual(agentNames(), [nameOf({ a: "1" }), nameOf({ a: "2" })].sort());
  });

  test("a read-only PAT: forbidden, a clear message, one request only", async () => {
    const manager = new PlaceholderManager({ client: client(readPat) });
    const wanted = wantedPlaceholders([resource]);
    const result = await manager.ensure(poolId(), wanted);
    assert.equal(result.status, "forbidden");
    assert.deepEqual(
      result.outcomes.map((o) => o.status),
      ["forbidden", "skipped"],
    );
    assert.equal(result.problem?.reason, PlaceholderReason.RegistrationForbidden);
    assert.match(
      result.problem?.message ?? "",
      /^cannot register placeholders: the PAT needs Agent Pools \(Read & manage\)/,
    );
    assert.match(result.problem?.message ?? "", /scaling continues/);
    assert.ok(!(result.problem?.message ?? "").includes(readPat));
    assert.equal(posts().length, 1, "the second would be refused the same way");
    assert.deepEqual(agentNames(), []);
  });

  test("a server error: failed (transient), retried later by the schedule", async () => {
    emu.control.setFaults([{ path: "**/agents", method: "POST", errorRate: 1, status: 503 }]);
    const result = await new PlaceholderManager({ client: client() }).ensure(poolId(), wantedPlaceholders([resource]));
    assert.equal(result.status, "failed");
    assert.equal(result.problem?.reason, PlaceholderReason.RegistrationFailed);
    assert.match(result.problem?.message ?? "", /2 of 2 placeholder agents could not be registered/);
    const first = result.outcomes[0];
    assert.ok(first?.status === "failed" && first.kind === "server" && first.transient);
  });

  test("a job whose demands only a placeholder satisfies stays queued; without it, it fails at once", async () => {
    const failing = emu.control.queueJob({ pool: "sim-pool", demands: ["buildkit"] });
    assert.equal(emu.control.getJob(failing.requestId)?.result, "failed");
    await new PlaceholderManager({ client: client() }).ensure(poolId(), wantedPlaceholders([resource]));
    const waiting = emu.control.queueJob({ pool: "sim-pool", demands: ["buildkit"] });
    assert.equal(emu.control.getJob(waiting.requestId)?.state, "queued");
    const equals = emu.control.queueJob({ pool: "sim-pool", demands: ["java -equals 17", "Agent.OS -equals linux"] });
    assert.equal(emu.control.getJob(equals.requestId)?.state, "queued");
    const implicit = emu.control.queueJob({ pool: "sim-pool", demands: ["buildkit", "Agent.OS -equals Linux"] });
    assert.equal(emu.control.getJob(implicit.requestId)?.state, "queued", "every placeholder carries Agent.OS");
    const windows = emu.control.queueJob({ pool: "sim-pool", demands: ["buildkit", "Agent.OS -equals Windows_NT"] });
    assert.equal(emu.control.getJob(windows.requestId)?.result, "failed");
  });
});

describe("collect", () => {
  const prefix = podNamePrefix("build");

  async function register(name: string): Promise<number> {
    return (await client().registerAgent(poolId(), placeholderRegistration(name, { x: "1" }))).id;
  }

  test("deletes unwanted placeholders and agents whose pod is gone; keeps the rest", async () => {
    const wanted = wantedPlaceholders([resource]);
    await new PlaceholderManager({ client: client() }).ensure(poolId(), wanted);
    const unwanted = placeholderAgentName({ old: "capabilities" });
    const cliMade = placeholderAgentName({ buildkit: "1", ExtraAgentContainers: "name=c,image=i" });
    for (const name of [unwanted, cliMade, `${prefix}gone1`, `${prefix}alive`, "someone-elses-agent"]) {
      await register(name);
    }
    const online = new SimulatedAgent({
      url: emu.organizationUrl,
      pool: "sim-pool",
      name: `${prefix}onlin`,
      token: managePat,
      capabilities: { buildkit: "1" },
      deregister: false,
      retryDelayMs: 20,
    });
    const isOnline = new Promise((resolve) => online.once("online", resolve));
    const run = online.run();
    try {
      await isOnline;
      const manager = new PlaceholderManager({ client: client() });
      const since = emu.control.requests().at(-1)?.seq ?? 0;
      const result = await manager.collectGarbage(poolId(), {
        wantedNames: wanted.map((w) => w.name),
        podNames: new Set([`${prefix}alive`, `${prefix}onlin`]),
        resourcePodNamePrefixes: [prefix],
        now: Date.now() + 3 * HOUR,
        dummyAgentDeletionMinAgeMs: 2 * HOUR,
        normalOfflineAgentDeletionMinAgeMs: 5 * HOUR,
      });
      assert.equal(result.problem, undefined);
      assert.deepEqual([...result.deleted].sort(), [unwanted, cliMade, `${prefix}gone1`].sort());
      assert.deepEqual(
        result.outcomes.map((o) => o.result),
        ["deleted", "deleted", "deleted"],
      );
      assert.deepEqual(
        agentNames(),
        [...wanted.map((w) => w.name), `${prefix}alive`, `${prefix}onlin`, "someone-elses-agent"].sort(),
      );
      const kept = new Map(result.decision?.kept.map((k) => [k.name, k.reason]));
      assert.equal(kept.get(`${prefix}onlin`), "online");
      assert.equal(kept.get(`${prefix}alive`), "too-young");
      assert.equal(kept.get(wanted[0]?.name as string), "wanted");
      assert.equal(
        emu.control.requests({ since, path: "/agents" }).filter((r) => r.method === "GET").length,
        1,
        "one agent list per run",
      );
    } finally {
      await online.stop();
      await run;
    }
  });

  test("an agent the service refuses to delete (it runs a job) is skipped; the others go; gone ones count", async () => {
    const busy = new SimulatedAgent({
      url: emu.organizationUrl,
      pool: "sim-pool",
      name: `${prefix}busy1`,
      token: managePat,
      deregister: false,
      retryDelayMs: 20,
    });
    const isOnline = new Promise((resolve) => busy.once("online", resolve));
    const run = busy.run();
    try {
      await isOnline;
      const job = emu.control.queueJob({ pool: "sim-pool", durationMs: 60_000 });
      await emu.control.waitForJob(job.requestId, (j) => j.state === "running", { timeoutMs: 20_000 });
      const busyId = emu.control.listAgents().find((a) => a.name === `${prefix}busy1`)?.id as number;
      const staleId = await register(`${prefix}stale`);
      const goneId = await register(`${prefix}gone2`);
      await client().deleteAgent(poolId(), goneId);
      // A decision made from an agent list that was stale: the busy agent looked offline.
      const decision: GarbageDecision = {
        delete: [
          { id: busyId, name: `${prefix}busy1`, reason: "pod-gone", message: "" },
          { id: goneId, name: `${prefix}gone2`, reason: "pod-gone", message: "" },
          { id: staleId, name: `${prefix}stale`, reason: "pod-gone", message: "" },
        ],
        kept: [],
      };
      const result = await new PlaceholderManager({ client: client() }).collect(poolId(), decision);
      assert.deepEqual(
        result.outcomes.map((o) => [o.name, o.result]),
        [
          [`${prefix}busy1`, "busy"],
          [`${prefix}gone2`, "gone"],
          [`${prefix}stale`, "deleted"],
        ],
      );
      assert.equal(result.problem, undefined, "a refusal is not a problem: it is retried on the next run");
      assert.deepEqual(agentNames(), [`${prefix}busy1`]);
      emu.control.cancelJob(job.requestId);
    } finally {
      await busy.stop();
      await run;
    }
  });

  test("a read-only PAT cannot delete: a clear problem, the rest not tried", async () => {
    const a = await register(placeholderAgentName({ a: "1" }));
    const b = await register(placeholderAgentName({ b: "1" }));
    const result = await new PlaceholderManager({ client: client(readPat) }).collect(poolId(), {
      delete: [
        { id: a, name: "a", reason: "unwanted-placeholder", message: "" },
        { id: b, name: "b", reason: "unwanted-placeholder", message: "" },
      ],
      kept: [],
    });
    assert.deepEqual(
      result.outcomes.map((o) => o.result),
      ["failed", "skipped"],
    );
    assert.equal(result.problem?.reason, PlaceholderReason.CollectionForbidden);
    assert.match(result.problem?.message ?? "", /cannot delete stale agents of pool \d+: the PAT needs Agent Pools/);
    assert.equal(deletes().length, 1);
    assert.equal(agentNames().length, 2);
  });

  test("a failed agent list: nothing deleted, the problem reported", async () => {
    emu.control.setFaults([{ path: "**/agents", method: "GET", errorRate: 1, status: 500 }]);
    const result = await new PlaceholderManager({ client: client() }).collectGarbage(poolId(), {
      wantedNames: [],
      podNames: new Set(),
      resourcePodNamePrefixes: [prefix],
      now: Date.now(),
      dummyAgentDeletionMinAgeMs: 0,
      normalOfflineAgentDeletionMinAgeMs: 0,
    });
    assert.equal(result.decision, undefined);
    assert.equal(result.problem?.reason, PlaceholderReason.CollectionFailed);
    assert.match(result.problem?.message ?? "", /HTTP 500/);
    assert.equal(deletes().length, 0);
  });
});
