import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type AutoScaledAgentStatus, validateAutoScaledAgent } from "../api/v1/index.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import { BUCKET_MS, WEEK_MS } from "../scaling/standby.ts";
import type { JobRequest, ObservedPod } from "../scaling/types.ts";
import type { PoolSnapshot, Resource } from "./ports.ts";
import { StandbyWork } from "./standby.ts";
import { decodeHistory, encodeHistory } from "./standby-history.ts";
import { type HistoryStore, type HistoryWrite, historyConfigMapName, standbyClock } from "./standby-store.ts";

const MONDAY_0855 = Date.parse("2026-02-02T08:55:00Z");
const KEY = capabilitySetKey({ linux: "1" });

// biome-ignore lint/suspicious/noExplicitAny: fixtures are free-form JSON
function resource(standby: any, extra: Record<string, unknown> = {}): Resource {
  const v = validateAutoScaledAgent({
    metadata: { name: "agents", namespace: "ci", uid: "uid-1", generation: 1 },
    spec: {
      poolName: "pool",
      organizationUrl: "https://dev.azure.com/org",
      personalAccessTokenSecretName: "pat",
      podsWithCapabilities: [
        {
          capabilities: { linux: "1" },
          minCount: 1,
          maxCount: 10,
          podTemplateSpec: { spec: { containers: [{ name: "agent", image: "a" }] } },
          ...(standby === undefined ? {} : { standby }),
          ...extra,
        },
      ],
    },
  });
  assert.ok(v.ok, v.ok ? "" : v.errors.join("; "));
  return v.value as Resource;
}

function pod(name: string, o: Partial<ObservedPod> = {}): ObservedPod {
  return {
    name,
    templateIndex: 0,
    extraAgentContainers: null,
    createdAtMs: 0,
    phase: "Running",
    scheduled: true,
    deleting: false,
    agentContainer: "running",
    otherContainers: [],
    createdForRequestIds: [],
    ...o,
  };
}

function snapshot(jobRequests: JobRequest[], busyAgents: string[] = []): PoolSnapshot {
  return {
    poolId: 1,
    jobRequests,
    agents: busyAgents.map((name, i) => ({
      id: i + 1,
      name,
      status: "online",
      assignedRequest: { requestId: 1000 + i },
    })),
    fetchedAt: 0,
  };
}

/** An in-memory ConfigMap store that can fail or conflict on demand. */
class FakeStore implements HistoryStore {
  docs = new Map<string, { rv: number; text: string | undefined }>();
  reads = 0;
  writes = 0;
  failReads = false;
  /** Writes that are refused as conflicts, after someone else's write of this text. */
  conflictWith: string | undefined;
  async read(ns: string, name: string) {
    this.reads++;
    if (this.failReads) throw new Error("connection refused");
    const d = this.docs.get(`${ns}/${name}`);
    return d === undefined ? undefined : { resourceVersion: String(d.rv), text: d.text };
  }
  async write(
    ns: string,
    name: string,
    text: string,
    options: { resourceVersion?: string | undefined },
  ): Promise<HistoryWrite> {
    this.writes++;
    const k = `${ns}/${name}`;
    const d = this.docs.get(k);
    if (this.conflictWith !== undefined) {
      this.docs.set(k, { rv: (d?.rv ?? 0) + 1, text: this.conflictWith });
      this.conflictWith = undefined;
      return { outcome: "conflict" };
    }
    if (options.resourceVersion === undefined ? d !== undefined : String(d?.rv) !== options.resourceVersion) {
      return { outcome: "conflict" };
    }
    const rv = (d?.rv ?? 0) + 1;
    this.docs.set(k, { rv, text });
    return { outcome: "written", resourceVersion: String(rv) };
  }
  stored(): ReturnType<typeof decodeHistory> {
    const d = this.docs.get(`ci/${historyConfigMapName("agents")}`);
    assert.ok(d?.text, "a stored history");
    return decodeHistory(d.text);
  }
}

function world(start = MONDAY_0855, writeIntervalMs = 60_000) {
  let real = start;
  const store = new FakeStore();
  const events: { type: string; reason: string; note: string }[] = [];
  const make = () =>
    new StandbyWork({
      store,
      events: {
        normal: (_r, reason, note) => events.push({ type: "Normal", reason, note }),
        warning: (_r, reason, note) => events.push({ type: "Warning", reason, note }),
      },
      clock: standbyClock(() => real),
      realNow: () => real,
      writeIntervalMs,
    });
  return {
    store,
    events,
    work: make(),
    make,
    advance: (ms: number) => {
      real += ms;
    },
    now: () => real,
  };
}

const office = { days: ["Mon"], from: "08:00", to: "18:00", minCount: 3 };
const predictive = { predictive: { percentile: 75, lookaheadMinutes: 10, historyWeeks: 4 } };

describe("StandbyWork: schedules", () => {
  test("1. a template without a standby block keeps its minCount and gets no status or history", async () => {
    const w = world();
    const r = await w.work.decide({
      key: "ci/agents",
      resource: resource(undefined),
      previous: undefined,
      snapshot: snapshot([]),
      pods: [],
    });
    assert.deepEqual(r.minCounts, [1]);
    assert.deepEqual(r.status, [undefined]);
    assert.equal(r.requeueAfterMs, undefined);
    assert.equal(w.store.reads + w.store.writes, 0);
    assert.deepEqual(w.events, []);
  });

  test("2. an open window: the schedule's count on top of the busy agents, its status, one event", async () => {
    const w = world();
    const input = {
      key: "ci/agents",
      resource: resource({ schedules: [office] }),
      previous: undefined,
      snapshot: snapshot([], ["agents-busy1"]),
      pods: [pod("agents-busy1"), pod("agents-idle1")],
    };
    const r = await w.work.decide(input);
    assert.deepEqual(r.minCounts, [4], "1 busy + 3 standby");
    assert.deepEqual(r.status, [
      { minCount: 3, reason: "Schedule", schedule: 0, message: "schedule 0 (Mon 08:00-18:00 UTC) is open: 3" },
    ]);
    assert.equal(r.requeueAfterMs, Date.parse("2026-02-02T18:00:00Z") - MONDAY_0855, "back when the window closes");
    assert.deepEqual(w.events, [
      {
        type: "Normal",
        reason: "StandbyChanged",
        note: "podsWithCapabilities[0]: 1 -> 3 standby agent(s): schedule 0 (Mon 08:00-18:00 UTC) is open: 3",
      },
    ]);
    await w.work.decide(input);
    assert.equal(w.events.length, 1, "announced once");
    assert.equal(w.store.reads + w.store.writes, 0, "schedules need no history");
  });

  test("3. after a restart the status says what was announced: no second event", async () => {
    const w = world();
    const previous: AutoScaledAgentStatus = {
      templates: [
        {
          index: 0,
          pendingJobs: 0,
          pods: { starting: 0, idle: 3, busy: 0, finished: 0 },
          standby: { minCount: 3, reason: "Schedule", schedule: 0, message: "m" },
        },
      ],
    };
    await w.work.decide({
      key: "ci/agents",
      resource: resource({ schedules: [office] }),
      previous,
      snapshot: undefined,
      pods: [],
    });
    assert.deepEqual(w.events, []);
  });

  test("4. the window closes: back to the baseline, announced", async () => {
    const w = world(Date.parse("2026-02-02T17:59:00Z"));
    const input = {
      key: "ci/agents",
      resource: resource({ schedules: [office] }),
      previous: undefined,
      snapshot: undefined,
      pods: [],
    };
    await w.work.decide(input);
    w.advance(60_000);
    const r = await w.work.decide(input);
    assert.deepEqual(r.minCounts, [1]);
    assert.equal(r.status[0]?.reason, "Baseline");
    assert.deepEqual(
      w.events.map((e) => e.note),
      [
        "podsWithCapabilities[0]: 1 -> 3 standby agent(s): schedule 0 (Mon 08:00-18:00 UTC) is open: 3",
        "podsWithCapabilities[0]: 3 -> 1 standby agent(s): no standby schedule is open: minCount 1",
      ],
    );
  });

  test("5. an empty standby block: minCount counts standby agents beside busy ones", async () => {
    const w = world();
    const r = await w.work.decide({
      key: "ci/agents",
      resource: resource({}),
      previous: undefined,
      snapshot: snapshot([{ requestId: 5, reservedAgent: { id: 9, name: "agents-a" } }]),
      pods: [pod("agents-a")],
    });
    assert.deepEqual(r.minCounts, [2]);
    assert.equal(r.status[0]?.reason, "Baseline");
    assert.deepEqual(w.events, [], "the baseline is no change");
  });
});

describe("StandbyWork: predictive standby and its history", () => {
  const job = (id: number, agent?: string, queued = MONDAY_0855 - 30_000): JobRequest => ({
    requestId: id,
    queueTime: new Date(queued).toISOString(),
    ...(agent ? { reservedAgent: { id: id, name: agent } } : {}),
  });

  test("6. no ConfigMap yet: an empty history; jobs a pod took are recorded once and written", async () => {
    const w = world();
    const input = {
      key: "ci/agents",
      resource: resource(predictive),
      previous: undefined,
      snapshot: snapshot([job(1, "agents-a"), job(2), job(3)]),
      pods: [pod("agents-a"), pod("agents-b", { createdForRequestIds: [2] })],
    };
    const r = await w.work.decide(input);
    assert.equal(r.status[0]?.predicted, 0);
    assert.match(r.status[0]?.message ?? "", /no full week of history yet/);
    assert.equal(w.store.writes, 1);
    const h = w.store.stored();
    assert.deepEqual([...h.seen], [1, 2], "job 3 has no pod yet");
    assert.deepEqual([...(h.templates.get(KEY)?.buckets ?? [])], [[Math.floor((MONDAY_0855 - 30_000) / BUCKET_MS), 2]]);
    // The same poll again: nothing new, nothing written.
    w.advance(120_000);
    await w.work.decide(input);
    assert.equal(w.store.writes, 1);
  });

  test("7. written at most every writeIntervalMs; the reconcile comes back when the write is due", async () => {
    const w = world(MONDAY_0855, 60_000);
    const base = {
      key: "ci/agents",
      resource: resource(predictive),
      previous: undefined,
      pods: [pod("agents-a"), pod("agents-b")],
    };
    const first = w.work.decide({ ...base, snapshot: snapshot([job(1, "agents-a")]) });
    assert.ok(first instanceof Promise, "the history is read first: the reconcile waits for it");
    await first;
    assert.equal(w.store.writes, 1);
    w.advance(10_000);
    const deciding = w.work.decide({ ...base, snapshot: snapshot([job(1, "agents-a"), job(2, "agents-b")]) });
    assert.ok(!(deciding instanceof Promise), "read, and no write due: the answer comes at once");
    const r = await deciding;
    assert.equal(w.store.writes, 1, "not yet");
    assert.ok((r.requeueAfterMs ?? 0) <= 50_000, `requeue after ${r.requeueAfterMs}`);
    w.advance(50_000);
    const writing = w.work.decide({ ...base, snapshot: snapshot([job(1, "agents-a"), job(2, "agents-b")]) });
    assert.ok(writing instanceof Promise, "a write is due: the reconcile waits for it");
    await writing;
    assert.equal(w.store.writes, 2);
    assert.deepEqual([...w.store.stored().seen], [1, 2]);
  });

  test("8. after a restart the stored history predicts: standby before last weeks' burst", async () => {
    const w = world();
    const bucket = Math.floor(Date.parse("2026-02-02T09:00:00Z") / BUCKET_MS);
    const weeks = WEEK_MS / BUCKET_MS;
    const templates = new Map([
      [
        KEY,
        {
          since: Date.parse("2026-01-01T00:00:00Z"),
          buckets: new Map([1, 2, 3, 4].map((k) => [bucket - k * weeks, 5] as [number, number])),
        },
      ],
    ]);
    w.store.docs.set(`ci/${historyConfigMapName("agents")}`, {
      rv: 7,
      text: encodeHistory({ templates, seen: new Set() }),
    });
    const r = await w.make().decide({
      key: "ci/agents",
      resource: resource(predictive),
      previous: undefined,
      snapshot: snapshot([]),
      pods: [],
    });
    assert.deepEqual(r.minCounts, [5]);
    assert.equal(r.status[0]?.reason, "Prediction");
    assert.equal(r.status[0]?.predicted, 5);
    assert.equal(r.requeueAfterMs, 5 * 60_000, "the next 5-minute bucket");
    assert.equal(w.events[0]?.reason, "StandbyChanged");
    assert.match(w.events[0]?.note ?? "", /1 -> 5 standby agent\(s\): the past 4 week\(s\) had at most \[5, 5, 5, 5\]/);
  });

  test("9. a history that cannot be read: no prediction, nothing recorded or written, a problem", async () => {
    const w = world();
    w.store.failReads = true;
    const r = await w.work.decide({
      key: "ci/agents",
      resource: resource(predictive),
      previous: undefined,
      snapshot: snapshot([job(1, "agents-a")]),
      pods: [pod("agents-a")],
    });
    assert.deepEqual(
      r.problems.map((p) => p.reason),
      ["StandbyHistoryUnavailable"],
    );
    assert.match(r.status[0]?.message ?? "", /waits for its history to be read/);
    assert.equal(r.status[0]?.predicted, undefined);
    assert.equal(w.store.writes, 0);
    w.store.failReads = false;
    await w.work.decide({
      key: "ci/agents",
      resource: resource(predictive),
      previous: undefined,
      snapshot: snapshot([job(1, "agents-a")]),
      pods: [pod("agents-a")],
    });
    assert.deepEqual([...w.store.stored().seen], [1], "read, recorded and written once it can be read");
  });

  test("10. a stored history that is not one: a Warning event, replaced by a new one", async () => {
    const w = world();
    w.store.docs.set(`ci/${historyConfigMapName("agents")}`, { rv: 3, text: "hello" });
    const r = await w.work.decide({
      key: "ci/agents",
      resource: resource(predictive),
      previous: undefined,
      snapshot: snapshot([]),
      pods: [],
    });
    assert.deepEqual(
      r.problems.map((p) => p.reason),
      ["StandbyHistoryInvalid"],
    );
    assert.deepEqual(
      w.events.map((e) => [e.type, e.reason]),
      [["Warning", "StandbyHistoryInvalid"]],
    );
    assert.match(
      w.events[0]?.note ?? "",
      /ConfigMap agents-standby-history \(key history\) is not readable \(not JSON/,
    );
    assert.equal(w.store.stored().templates.size, 1);
  });

  test("11. a write conflict merges what another writer stored (the larger count per bucket) and writes again", async () => {
    const w = world();
    const mine = Math.floor((MONDAY_0855 - 30_000) / BUCKET_MS);
    const theirs = {
      templates: new Map([[KEY, { since: Date.parse("2026-01-01T00:00:00Z"), buckets: new Map([[mine - 100, 2]]) }]]),
      seen: new Set([77]),
    };
    w.store.conflictWith = encodeHistory(theirs);
    await w.work.decide({
      key: "ci/agents",
      resource: resource(predictive),
      previous: undefined,
      snapshot: snapshot([job(1, "agents-a")]),
      pods: [pod("agents-a")],
    });
    const h = w.store.stored();
    assert.deepEqual([...(h.templates.get(KEY)?.buckets ?? [])].sort(), [
      [mine - 100, 2],
      [mine, 1],
    ]);
    assert.equal(h.templates.get(KEY)?.since, Date.parse("2026-01-01T00:00:00Z"));
    assert.equal(w.store.writes, 2);
  });

  test("12. a resource without predictive templates never reads or writes a history, nor waits", async () => {
    const w = world();
    const deciding = w.work.decide({
      key: "ci/agents",
      resource: resource({ schedules: [office] }),
      previous: undefined,
      snapshot: snapshot([job(1, "agents-a")]),
      pods: [pod("agents-a")],
    });
    assert.ok(!(deciding instanceof Promise));
    assert.equal(w.store.reads + w.store.writes, 0);
  });
});

describe("standbyClock (tests only)", () => {
  test("the real clock by default", () => {
    const c = standbyClock(() => 1234);
    assert.deepEqual([c.now(), c.fromReal(99), c.realDelay(60_000)], [1234, 99, 60_000]);
  });
  test("started elsewhere and run faster", () => {
    let real = 1_000_000;
    const c = standbyClock(() => real, { startMs: MONDAY_0855, rate: 60 });
    assert.equal(c.now(), MONDAY_0855);
    real += 1000;
    assert.equal(c.now(), MONDAY_0855 + 60_000, "a real second is a minute");
    assert.equal(c.fromReal(1_000_500), MONDAY_0855 + 30_000);
    assert.equal(c.realDelay(60_000), 1000);
  });
});

test("historyConfigMapName stays a valid object name", () => {
  assert.equal(historyConfigMapName("agents"), "agents-standby-history");
  const long = historyConfigMapName("a".repeat(250));
  assert.ok(long.length <= 253 && long.endsWith("-standby-history"), long);
});
