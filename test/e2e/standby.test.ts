/**
 * End to end, standby agents: a schedule's window opens and standby agents appear, it closes and idle ones go;
 * a job that takes a standby agent has it replaced while the job runs; predictive standby learns a burst, keeps its
 * history across an operator restart, and has agents waiting before the burst comes back a week later.
 *
 * Schedules and histories are read in the operator's standby clock, which the test-only flags
 * `--standby-clock-start` and `--standby-clock-rate` set (src/controller/standby-store.ts): Monday morning in January,
 * at 10x for the schedule, at 1x (another start per process) for the prediction. Everything else runs on real time.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { decodeHistory } from "../../src/controller/standby-history.ts";
import { historyConfigMapName } from "../../src/controller/standby-store.ts";
import { type OperatorProcess, startOperatorProcess } from "../support/operator.ts";
import { eventually, startWorld, type World } from "../support/world.ts";

type Pods = Awaited<ReturnType<World["pods"]>>;
const live = (pods: Pods) =>
  pods.filter((p) => !p.metadata.deletionTimestamp && !["Succeeded", "Failed"].includes(p.status?.phase ?? ""));

interface StandbyStatus {
  minCount: number;
  reason: string;
  schedule?: number;
  predicted?: number;
  message: string;
}

async function standbyStatus(world: World, name: string): Promise<StandbyStatus | undefined> {
  const r = await world.getResource(name);
  const templates = r.status?.templates as { standby?: StandbyStatus }[] | undefined;
  return templates?.[0]?.standby;
}

async function standbyEvents(world: World, name: string): Promise<string[]> {
  const list = await world.cluster.client.request<{
    items: { reason: string; note?: string; regarding?: { name?: string }; metadata: { creationTimestamp: string } }[];
  }>({ path: `/apis/events.k8s.io/v1/namespaces/${world.ns}/events` });
  return list.items
    .filter((e) => e.reason === "StandbyChanged" && e.regarding?.name === name)
    .sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp))
    .map((e) => e.note ?? "");
}

const onlineAgents = (world: World, prefix: string) =>
  world.ado.control.listAgents({ pool: world.pool }).filter((a) => a.name.startsWith(prefix) && a.status === "online");

function operator(world: World, clockStart: string, rate: number): OperatorProcess {
  return startOperatorProcess({
    kubeconfig: world.cluster.kubeconfig,
    namespaces: [world.ns],
    args: [
      "--leader-elect",
      "false",
      "--standby-clock-start",
      clockStart,
      "--standby-clock-rate",
      String(rate),
      "--standby-history-write-interval",
      "1s",
    ],
  });
}

describe("standby schedules (standby clock: Monday 2026-01-05 07:58 UTC, 10x)", () => {
  let world: World;
  let op: OperatorProcess;
  const clockStart = Date.parse("2026-01-05T07:58:00Z");
  const rate = 10;
  let spawnedAt = 0;
  before(async () => {
    world = await startWorld();
    spawnedAt = Date.now();
    op = operator(world, new Date(clockStart).toISOString(), rate);
    await op.waitForLog(/caches synced/);
  });
  after(async () => {
    await op?.stop();
    await world?.close();
  });

  /** The latest the operator's standby clock can show now (it started after the process was spawned). */
  const latestStandbyNow = () => clockStart + (Date.now() - spawnedAt) * rate;
  const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

  test("a window opens: standby agents appear; it closes: idle ones go after agentMinIdlePeriod, busy ones finish", async () => {
    // A window of 2 standby minutes (12 s), opening at the first full minute at least two minutes from now.
    const opens = Math.ceil((latestStandbyNow() + 120_000) / 60_000) * 60_000;
    await world.createResource("sched", {
      agentMinIdlePeriod: "2s",
      podsWithCapabilities: [
        {
          capabilities: { sched: "1" },
          minCount: 0,
          maxCount: 4,
          standby: { schedules: [{ days: ["Mon"], from: hhmm(opens), to: hhmm(opens + 120_000), minCount: 2 }] },
          podTemplateSpec: world.template(),
        },
      ],
    });
    const first = await eventually("the standby status", () => standbyStatus(world, "sched"));
    assert.equal(first.reason, "Baseline", "not open yet");
    assert.equal(live(await world.pods("sched")).length, 0, "no agents before the window");

    const open = await eventually("the window open", async () => {
      const s = await standbyStatus(world, "sched");
      return s?.reason === "Schedule" ? s : undefined;
    });
    assert.deepEqual({ minCount: open.minCount, schedule: open.schedule }, { minCount: 2, schedule: 0 });
    assert.match(open.message, /schedule 0 \(Mon \d\d:\d\d-\d\d:\d\d UTC\) is open: 2/);
    const agents = await eventually("two standby agents online", () => {
      const online = onlineAgents(world, "sched-");
      return online.length === 2 ? online.map((a) => a.name) : undefined;
    });
    // A job in the window takes a standby agent; it runs past the window's end.
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["sched"], durationMs: 15_000 });
    const taken = await world.ado.control.waitForJob(job.requestId, (j) => j.state !== "queued", { timeoutMs: 60_000 });
    assert.ok(agents.includes(taken.reservedAgent?.name ?? ""), "a standby agent took the job at once");

    const closed = await eventually("the window closed", async () => {
      const s = await standbyStatus(world, "sched");
      return s?.reason === "Baseline" ? s : undefined;
    });
    assert.equal(closed.minCount, 0);
    // Idle agents go after agentMinIdlePeriod; the busy one is left to finish its job.
    const busy = taken.reservedAgent?.name;
    await eventually("the idle standby agents removed", async () =>
      live(await world.pods("sched")).every((p) => p.metadata.name === busy) ? true : undefined,
    );
    const done = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 60_000,
    });
    assert.equal(done.result, "succeeded", "the busy agent was left to finish");
    await eventually("the busy agent's pod Succeeded (ran to the end, not deleted)", async () =>
      (await world.pods("sched")).find((p) => p.metadata.name === busy)?.status?.phase === "Succeeded"
        ? true
        : undefined,
    );
    await eventually("no live pods", async () => (live(await world.pods("sched")).length === 0 ? true : undefined));
    assert.deepEqual(
      onlineAgents(world, "sched-").map((a) => a.name),
      [],
      "the idle agents' registrations went first",
    );
    const notes = await standbyEvents(world, "sched");
    assert.equal(notes.length, 2, notes.join("\n"));
    assert.match(notes[0] as string, /^podsWithCapabilities\[0\]: 0 -> 2 standby agent\(s\): schedule 0/);
    assert.match(
      notes[1] as string,
      /^podsWithCapabilities\[0\]: 2 -> 0 standby agent\(s\): no standby schedule is open/,
    );
  });

  test("a job takes a standby agent: its replacement comes while the job runs, not when it ends", async () => {
    await world.placeholder({ during: "1" });
    await world.createResource("during", {
      agentMinIdlePeriod: "1s",
      podsWithCapabilities: [
        {
          capabilities: { during: "1" },
          minCount: 0,
          maxCount: 3,
          standby: { schedules: [{ from: "00:00", to: "24:00", minCount: 1 }] },
          podTemplateSpec: world.template(),
        },
      ],
    });
    const warm = await eventually("a standby agent online", () => onlineAgents(world, "during-")[0]?.name);
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["during"], durationMs: 4000 });
    const started = await world.ado.control.waitForJob(job.requestId, (j) => j.state !== "queued", {
      timeoutMs: 60_000,
    });
    assert.equal(started.reservedAgent?.name, warm, "the standby agent took the job");
    // Standby semantics: the standby agent is replaced while the job still runs.
    const replacement = await eventually(
      "a replacement standby agent online",
      () => onlineAgents(world, "during-").find((a) => a.name !== warm)?.name,
    );
    const running = world.ado.control.getJob(job.requestId);
    assert.notEqual(running?.state, "finished", `${replacement} came while the job ran`);
    const done = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 60_000,
    });
    assert.equal(done.result, "succeeded");
    await eventually("one standby agent again", async () =>
      live(await world.pods("during")).length === 1 ? true : undefined,
    );
  });
});

describe("minCount without a standby block: warm agents beside busy ones", () => {
  let world: World;
  let op: OperatorProcess;
  before(async () => {
    world = await startWorld();
    op = startOperatorProcess({ kubeconfig: world.cluster.kubeconfig, namespaces: [world.ns] });
    await op.waitForLog(/caches synced/);
  });
  after(async () => {
    await op?.stop();
    await world?.close();
  });

  test("the warm agent is replaced while its job runs", async () => {
    await world.createResource("plain", {
      podsWithCapabilities: [
        { capabilities: { plain: "1" }, minCount: 1, maxCount: 3, podTemplateSpec: world.template() },
      ],
    });
    const warm = await eventually("a warm agent online", () => onlineAgents(world, "plain-")[0]?.name);
    // A long job: the replacement must come while it runs (one poll after the job took the warm agent).
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["plain"], durationMs: 60_000 });
    await world.ado.control.waitForJob(job.requestId, (j) => j.state !== "queued", { timeoutMs: 60_000 });
    await eventually("a new warm agent while the job runs", () =>
      onlineAgents(world, "plain-").find((a) => a.name !== warm) ? true : undefined,
    );
    assert.notEqual(world.ado.control.getJob(job.requestId)?.state, "finished", "the job still runs");
    assert.equal(live(await world.pods("plain")).length, 2, "the busy pod and one warm pod");
    world.ado.control.cancelJob(job.requestId);
  });
});

describe("predictive standby: a burst one Monday at 09:00, standby agents waiting for it a week later", () => {
  let world: World;
  let op: OperatorProcess | undefined;
  before(async () => {
    world = await startWorld();
  });
  after(async () => {
    await op?.stop();
    await world?.close();
  });

  const spec = (world: World) => ({
    podsWithCapabilities: [
      {
        capabilities: { burst: "1" },
        minCount: 0,
        maxCount: 5,
        standby: { predictive: { percentile: 75, lookaheadMinutes: 10, historyWeeks: 4, max: 3 } },
        podTemplateSpec: world.template(),
      },
    ],
  });
  const history = async () => {
    const cm = await world.cluster.client.request<{ data?: Record<string, string> }>({
      path: `/api/v1/namespaces/${world.ns}/configmaps/${historyConfigMapName("burst")}`,
    });
    return decodeHistory(cm.data?.history ?? "");
  };

  test("the history is recorded, survives a restart, and standby agents are ready before the burst", async () => {
    // Monday 2026-01-05 09:00: the burst.
    op = operator(world, "2026-01-05T09:00:00Z", 1);
    await op.waitForLog(/caches synced/);
    await world.placeholder({ burst: "1" });
    await world.createResource("burst", spec(world));
    const quiet = await eventually("the standby status", () => standbyStatus(world, "burst"));
    assert.equal(quiet.reason, "Baseline");
    assert.equal(quiet.predicted, 0);
    const jobs = [1, 2, 3].map(() =>
      world.ado.control.queueJob({ pool: world.pool, demands: ["burst"], durationMs: 500 }),
    );
    await Promise.all(
      jobs.map((j) => world.ado.control.waitForJob(j.requestId, (x) => x.state === "finished", { timeoutMs: 90_000 })),
    );
    // Counted once each: `seen` keeps a job's id only while polls still list it (finished jobs leave the list), so
    // the written history shows the burst by its bucket counts.
    const recorded = await eventually("the burst in the history ConfigMap", async () => {
      const h = await history();
      const total = [...h.templates.values()].reduce(
        (n, t) => n + [...t.buckets.values()].reduce((a, b) => a + b, 0),
        0,
      );
      return total >= jobs.length ? h : undefined;
    });
    const [counts] = [...recorded.templates.values()].map((t) => [...t.buckets.values()]);
    assert.deepEqual(counts, [3], "three jobs in one 5-minute bucket");
    await op.stop();

    // A week later, 08:55: the operator (restarted) reads the history and keeps 3 standby agents, with no job queued.
    op = operator(world, "2026-01-12T08:55:00Z", 1);
    await op.waitForLog(/caches synced/);
    const predicted = await eventually("the prediction in force", async () => {
      const s = await standbyStatus(world, "burst");
      return s?.reason === "Prediction" ? s : undefined;
    });
    assert.equal(predicted.minCount, 3);
    assert.equal(predicted.predicted, 3);
    assert.match(
      predicted.message,
      /the past 1 week\(s\) had at most \[3\] jobs per 5 minutes in the coming 10 minutes/,
    );
    await eventually("three standby agents online", () =>
      onlineAgents(world, "burst-").length === 3 ? true : undefined,
    );
    const waiting = new Set(onlineAgents(world, "burst-").map((a) => a.name));
    assert.ok((await standbyEvents(world, "burst")).some((n) => n.startsWith("podsWithCapabilities[0]: 0 -> 3")));

    // The burst comes back: every job goes to an agent that was already waiting.
    const again = [1, 2, 3].map(() =>
      world.ado.control.queueJob({ pool: world.pool, demands: ["burst"], durationMs: 500 }),
    );
    const done = await Promise.all(
      again.map((j) => world.ado.control.waitForJob(j.requestId, (x) => x.state === "finished", { timeoutMs: 90_000 })),
    );
    for (const j of done) assert.ok(waiting.has(j.reservedAgent?.name ?? ""), `${j.reservedAgent?.name} was waiting`);
  });
});
