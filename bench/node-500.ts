/**
 * Benchmark: one virtual node carrying 500 pods.
 *
 * A virtual node (sim/node) runs in a process of its own; this process creates 500 pods bound to it by
 * nodeSelector (the real scheduler binds them), watches them, and deletes them again:
 * - phase `sleeper`: pods whose container runs until stopped; measured: create → scheduled → Running per pod,
 *   throughput, time until all are Running, then deletion of all (delete → gone);
 * - phase `direct`: the same pods with `spec.nodeName` set at creation: no scheduler, the node's own pace;
 * - phase `exit`: pods of `sim-exit:0-<ms>ms` (Running, then Succeeded after <ms>): create → Succeeded;
 * - during every phase: the node's heartbeats (Ready `lastHeartbeatTime`, Lease `renewTime`: largest gap), the
 *   node process's event-loop delay and memory (RSS).
 * Each phase runs several times; tables give each repetition and all of them pooled.
 *
 * `npx node bench/node-500.ts [--quick]` (or through `bench/run.ts`).
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isNotFound } from "../src/kube/client.ts";
import { createNamespace, deleteNamespace, deleteNodeLease, uniqueName } from "../test/support/cluster.ts";
import { type BenchContext, type Benchmark, quickFromArgv, runBenchmarks } from "./support/bench.ts";
import { benchLabels } from "./support/cluster.ts";
import { forEachLimited } from "./support/concurrency.ts";
import { startNodeProcess } from "./support/node.ts";
import type { PhaseStats } from "./support/node-process.ts";
import {
  type BenchResult,
  fixed,
  gitRevision,
  machineInfo,
  median,
  rounded,
  type Summary,
  secs,
  summarize,
  type Table,
} from "./support/stats.ts";
import { HeartbeatWatcher, maxBeatGap, PodTracker } from "./support/watchers.ts";

export interface NodeBenchOptions {
  pods: number;
  /** Repetitions of each phase. */
  sleeperReps: number;
  directReps: number;
  exitReps: number;
  /** How long the `sim-exit` containers run. */
  exitAfterMs: number;
  /** Create and delete calls in flight at once. */
  concurrency: number;
  /** The node's heartbeat interval (the kubelet's default is 10 s; shorter gives a finer lag measurement). */
  heartbeatMs: number;
  /** Bound of one phase's waits. */
  phaseTimeoutMs: number;
}

export const defaultNodeBenchOptions: NodeBenchOptions = {
  pods: 500,
  sleeperReps: 3,
  directReps: 2,
  exitReps: 2,
  exitAfterMs: 3000,
  concurrency: 16,
  heartbeatMs: 2000,
  phaseTimeoutMs: 180_000,
};

const quickOptions: Partial<NodeBenchOptions> = {
  pods: 60,
  sleeperReps: 1,
  directReps: 1,
  exitReps: 1,
  exitAfterMs: 1000,
};

/** sleeper: bound by the scheduler (nodeSelector); direct: `spec.nodeName` set at creation (no scheduler); exit. */
type Kind = "sleeper" | "direct" | "exit";
const kinds: readonly Kind[] = ["sleeper", "direct", "exit"];

/** Per-pod latencies (ms). */
const latencies = {
  createToScheduled: "create → scheduled",
  scheduledToRunning: "scheduled → Running",
  createToRunning: "create → Running",
  /** exit phase: create → Succeeded minus the time the container runs (the whole short life's overhead). */
  createToSucceededMinusRun: "create → Succeeded − run",
  deleteToGone: "delete → gone",
} as const;
type Latency = keyof typeof latencies;

interface RepResult {
  kind: Kind;
  rep: number;
  pods: number;
  /** First create call sent → last create answered (s). */
  createCallsS: number;
  latencyMs: Partial<Record<Latency, Summary>>;
  /** First create sent → last pod Running (s). */
  allRunningS: number;
  /** Pods per second reaching Running, over `allRunningS`. */
  runningPerS: number;
  /** exit phase: first create → last pod Succeeded (s). */
  allFinishedS?: number;
  /** First delete sent → last pod gone (s). */
  allGoneS: number;
  gonePerS: number;
  /** Largest gap between heartbeats over the phase (ms): Ready condition, Lease (written time and arrival). */
  heartbeatGapMs: { ready: number; lease: number; leaseArrival: number };
  node: PhaseStats;
  /** Pods that never reached a state (should be 0). */
  missing: { running: number; finished: number; gone: number };
}

function podBody(
  name: string,
  image: string,
  bind: { nodeSelector: Record<string, string> } | { nodeName: string },
  run: string,
) {
  return {
    metadata: { name, labels: { "azp.bench/run": run } },
    spec: {
      ...bind,
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 5,
      containers: [{ name: "main", image }],
    },
  };
}

export async function runNodeBench(ctx: BenchContext, overrides: Partial<NodeBenchOptions> = {}): Promise<BenchResult> {
  const o: NodeBenchOptions = { ...defaultNodeBenchOptions, ...(ctx.quick ? quickOptions : {}), ...overrides };
  const { client } = ctx.cluster;
  const started = new Date();
  const machine = machineInfo({ kubernetes: ctx.cluster.kubernetes });
  const ns = await createNamespace(client, "bench-node", { labels: benchLabels });
  ctx.cleanups.add(`namespace ${ns}`, () => deleteNamespace(client, ns));
  const nodeName = uniqueName("bench-node");
  const nodeLabel = { "azp.bench/node": nodeName };
  ctx.log(`virtual node ${nodeName} (own process), namespace ${ns}, ${o.pods} pods per phase`);
  const node = await startNodeProcess(
    { kubeconfig: ctx.cluster.kubeconfig, name: nodeName, labels: nodeLabel, heartbeatMs: o.heartbeatMs, retryMs: 500 },
    join(ctx.workDir, `${nodeName}.log`),
  );
  // Registered after the namespace: runs before it, so the node is there to finish the namespace's pods.
  ctx.cleanups.add(`virtual node ${nodeName}`, async () => {
    await deleteNamespace(client, ns, { wait: true }).catch(() => {});
    await node.stop();
    await deleteNodeLease(client, nodeName);
  });
  const beats = new HeartbeatWatcher(client, nodeName);
  await beats.start();
  ctx.cleanups.add("heartbeat watcher", () => beats.stop());
  const tracker = new PodTracker(client, ns);
  await tracker.start();
  ctx.cleanups.add("pod watcher", () => tracker.stop());

  // The idle node first: its baseline memory and event-loop delay.
  node.phaseStart();
  await sleep(3000);
  const idle = await node.phaseEnd();

  const reps: RepResult[] = [];
  /** Raw per-pod samples by phase, pooled over its repetitions. */
  const samples = new Map<Kind, Partial<Record<Latency, number[]>>>();
  const repsOf: Record<Kind, number> = { sleeper: o.sleeperReps, direct: o.directReps, exit: o.exitReps };
  const phases = kinds.flatMap((kind) => Array.from({ length: repsOf[kind] }, (_, i) => ({ kind, rep: i + 1 })));
  for (const { kind, rep } of phases) {
    const run = `${kind}-${rep}`;
    const image = kind === "exit" ? `example.com/bench/sim-exit:0-${o.exitAfterMs}ms` : "example.com/bench/sleeper:1";
    const bind = kind === "direct" ? { nodeName } : { nodeSelector: nodeLabel };
    const names = Array.from({ length: o.pods }, (_, i) => `${kind.slice(0, 1)}${rep}-${i}`);
    const sent = new Map<string, number>();
    const deleteSent = new Map<string, number>();
    const t = (name: string) => tracker.times.get(name) ?? {};
    ctx.log(`${run}: creating ${o.pods} pods`);
    node.phaseStart();
    const phaseStart = Date.now();
    await forEachLimited(names, o.concurrency, async (name) => {
      sent.set(name, Date.now());
      await client.request({
        method: "POST",
        path: `/api/v1/namespaces/${ns}/pods`,
        body: podBody(name, image, bind, run),
      });
    });
    const createdAll = Date.now();
    const reached = (what: "running" | "finished") => names.every((n) => t(n)[what] !== undefined);
    if (kind === "exit") {
      await tracker.waitFor(`${run}: all pods Succeeded`, () => reached("finished"), o.phaseTimeoutMs);
    } else {
      await tracker.waitFor(`${run}: all pods Running`, () => reached("running"), o.phaseTimeoutMs);
    }
    ctx.log(`${run}: deleting ${o.pods} pods`);
    const deleteStart = Date.now();
    await forEachLimited(names, o.concurrency, async (name) => {
      deleteSent.set(name, Date.now());
      await client.request({ method: "DELETE", path: `/api/v1/namespaces/${ns}/pods/${name}` }).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
    });
    await tracker.waitFor(`${run}: all pods gone`, () => names.every((n) => t(n).gone !== undefined), o.phaseTimeoutMs);
    const phaseEnd = Date.now();
    const nodeStats = await node.phaseEnd();

    const diff = (a: number | undefined, b: number | undefined) =>
      a === undefined || b === undefined ? Number.NaN : b - a;
    const lastOf = (values: (number | undefined)[]) => Math.max(...values.map((v) => v ?? Number.NaN));
    const raw: Partial<Record<Latency, number[]>> = {
      createToScheduled: names.map((n) => diff(sent.get(n), t(n).scheduled)),
      scheduledToRunning: names.map((n) => diff(t(n).scheduled, t(n).running)),
      createToRunning: names.map((n) => diff(sent.get(n), t(n).running)),
      ...(kind === "exit"
        ? { createToSucceededMinusRun: names.map((n) => diff(sent.get(n), t(n).finished) - o.exitAfterMs) }
        : {}),
      deleteToGone: names.map((n) => diff(deleteSent.get(n), t(n).gone)),
    };
    const pool = samples.get(kind) ?? {};
    samples.set(kind, pool);
    for (const [k, v] of Object.entries(raw) as [Latency, number[]][]) pool[k] = [...(pool[k] ?? []), ...v];
    const allRunning = lastOf(names.map((n) => t(n).running));
    const allGone = lastOf(names.map((n) => t(n).gone));
    const result: RepResult = {
      kind,
      rep,
      pods: o.pods,
      createCallsS: (createdAll - phaseStart) / 1000,
      latencyMs: Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, summarize(v)])),
      allRunningS: (allRunning - phaseStart) / 1000,
      runningPerS: names.filter((n) => t(n).running !== undefined).length / ((allRunning - phaseStart) / 1000),
      ...(kind === "exit" ? { allFinishedS: (lastOf(names.map((n) => t(n).finished)) - phaseStart) / 1000 } : {}),
      allGoneS: (allGone - deleteStart) / 1000,
      gonePerS: o.pods / ((allGone - deleteStart) / 1000),
      heartbeatGapMs: {
        ready: maxBeatGap(beats.readyBeats, phaseStart, phaseEnd, "value"),
        lease: maxBeatGap(beats.leaseBeats, phaseStart, phaseEnd, "value"),
        leaseArrival: maxBeatGap(beats.leaseBeats, phaseStart, phaseEnd, "seenAt"),
      },
      node: nodeStats,
      missing: {
        running: names.filter((n) => t(n).running === undefined).length,
        finished: kind === "exit" ? names.filter((n) => t(n).finished === undefined).length : 0,
        gone: names.filter((n) => t(n).gone === undefined).length,
      },
    };
    ctx.log(
      `${run}: all Running after ${result.allRunningS.toFixed(1)} s (${result.runningPerS.toFixed(1)} pods/s), ` +
        `all gone ${result.allGoneS.toFixed(1)} s after the deletes began; lease gap ${secs(result.heartbeatGapMs.lease)} s`,
    );
    reps.push(result);
    // Let the API server and the node settle between repetitions.
    await sleep(2000);
  }
  const loadEnd = machineInfo().loadAverage1m;

  // Per phase: per-pod latencies pooled over its repetitions; medians of the per-repetition totals; worst gaps.
  const phaseSummary = (kind: Kind) => {
    const rs = reps.filter((r) => r.kind === kind);
    const per = (pick: (r: RepResult) => number) => median(rs.map(pick));
    const pooledLatency = Object.fromEntries(
      Object.entries(samples.get(kind) ?? {}).map(([k, v]) => [k, summarize(v)]),
    ) as Partial<Record<Latency, Summary>>;
    return {
      reps: rs.length,
      podsPerRep: o.pods,
      latencyMs: pooledLatency,
      allRunningS: per((r) => r.allRunningS),
      runningPerS: per((r) => r.runningPerS),
      allGoneS: per((r) => r.allGoneS),
      gonePerS: per((r) => r.gonePerS),
      maxHeartbeatGapMs: {
        ready: Math.max(...rs.map((r) => r.heartbeatGapMs.ready)),
        lease: Math.max(...rs.map((r) => r.heartbeatGapMs.lease)),
        leaseArrival: Math.max(...rs.map((r) => r.heartbeatGapMs.leaseArrival)),
      },
      maxEventLoopDelayMs: Math.max(...rs.map((r) => r.node.eventLoopDelay.max)),
      peakRssMiB: Math.max(...rs.map((r) => r.node.rssMiB.peak)),
      heapAfterGcMiB: median(rs.map((r) => r.node.heapUsedMiB.afterGc)),
      missing: rs.reduce((a, r) => a + r.missing.running + r.missing.finished + r.missing.gone, 0),
    };
  };
  const ran = kinds.filter((k) => repsOf[k] > 0);
  const summary = Object.fromEntries(ran.map((k) => [k, phaseSummary(k)])) as Record<
    Kind,
    ReturnType<typeof phaseSummary>
  >;

  const repLabel = (r: RepResult) => `${r.kind} #${r.rep}`;
  const range = (values: number[]) =>
    `${secs(Math.min(...values))}–${secs(Math.max(...values))}`.replace(/^(.+)–\1$/, "$1");
  const tables: Table[] = [
    {
      title: `Per pod (s), pooled over the repetitions of each phase (${o.pods} pods each, one virtual node)`,
      columns: ["latency", "phase", "median", "p90", "max", "rep medians", "pods"],
      rows: (Object.keys(latencies) as Latency[]).flatMap((k) =>
        ran
          .filter((kind) => summary[kind].latencyMs[k])
          .map((kind) => {
            const s = summary[kind].latencyMs[k] as Summary;
            const repMedians = reps.filter((r) => r.kind === kind).map((r) => r.latencyMs[k]?.median ?? Number.NaN);
            return [latencies[k], kind, secs(s.median), secs(s.p90), secs(s.max), range(repMedians), String(s.n)];
          }),
      ),
      notes: [
        "sleeper, exit: bound by kube-scheduler (nodeSelector); direct: spec.nodeName set at creation, no scheduler",
        "scheduled → Running is the virtual node's own share; create → scheduled is the API server and kube-scheduler",
        `create → Succeeded − run: a short-lived pod's whole life minus the ${o.exitAfterMs} ms its container runs`,
        `${o.concurrency} create (and delete) calls in flight; times are when this process saw the change (watch)`,
      ],
    },
    {
      title: "Per repetition",
      columns: [
        "repetition",
        "creates (s)",
        "all Running (s)",
        "Running/s",
        "all gone (s)",
        "gone/s",
        "Ready gap (s)",
        "Lease gap (s)",
        "loop max (ms)",
        "RSS peak (MiB)",
        "RSS / heap after GC (MiB)",
      ],
      rows: reps.map((r) => [
        repLabel(r),
        fixed(r.createCallsS),
        fixed(r.allRunningS),
        fixed(r.runningPerS),
        fixed(r.allGoneS),
        fixed(r.gonePerS),
        secs(r.heartbeatGapMs.ready, 1),
        secs(r.heartbeatGapMs.lease, 1),
        fixed(r.node.eventLoopDelay.max, 0),
        fixed(r.node.rssMiB.peak, 0),
        `${fixed(r.node.rssMiB.afterGc, 0)} / ${fixed(r.node.heapUsedMiB.afterGc, 0)}`,
      ]),
      notes: [
        `creates: the ${o.pods} create calls; all Running: from the first create; all gone: from the first delete`,
        `heartbeat interval ${secs(o.heartbeatMs, 1)} s; gap: the longest time between two heartbeats in the repetition (Ready's lastHeartbeatTime has whole seconds)`,
        "loop max: the node process's largest event-loop delay; after GC: at the end of the repetition, all pods gone",
        `virtual node process when idle: RSS ${fixed(idle.rssMiB.afterGc, 0)} MiB, heap ${fixed(idle.heapUsedMiB.afterGc, 0)} MiB, event-loop delay max ${fixed(idle.eventLoopDelay.max, 0)} ms`,
      ],
    },
    {
      title: "Summary per phase (median over repetitions; the worst for gaps, delays and memory)",
      columns: [
        "phase",
        "reps",
        "all Running (s)",
        "Running/s",
        "create→Running p50 / p90 / max (s)",
        "all gone (s)",
        "Lease gap max (s)",
        "loop max (ms)",
        "RSS peak (MiB)",
      ],
      rows: ran.map((k) => {
        const s = summary[k];
        const c = s.latencyMs.createToRunning as Summary;
        return [
          k,
          String(s.reps),
          fixed(s.allRunningS),
          fixed(s.runningPerS),
          `${secs(c.median)} / ${secs(c.p90)} / ${secs(c.max)}`,
          fixed(s.allGoneS),
          secs(s.maxHeartbeatGapMs.lease, 1),
          fixed(s.maxEventLoopDelayMs, 0),
          fixed(s.peakRssMiB, 0),
        ];
      }),
      notes: [`load average (1 min) ${machine.loadAverage1m} at the start, ${loadEnd} at the end`],
    },
  ];

  const roundRep = (r: RepResult) => ({
    ...r,
    latencyMs: Object.fromEntries(Object.entries(r.latencyMs).map(([k, v]) => [k, rounded(v)])),
    createCallsS: Math.round(r.createCallsS * 100) / 100,
    allRunningS: Math.round(r.allRunningS * 100) / 100,
    runningPerS: Math.round(r.runningPerS * 10) / 10,
    allGoneS: Math.round(r.allGoneS * 100) / 100,
    gonePerS: Math.round(r.gonePerS * 10) / 10,
    ...(r.allFinishedS !== undefined ? { allFinishedS: Math.round(r.allFinishedS * 100) / 100 } : {}),
    heartbeatGapMs: roundDeep(r.heartbeatGapMs),
    node: roundDeep(r.node),
  });
  return {
    name: "node-500",
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    machine: { ...machine, loadAverage1mEnd: loadEnd },
    ...(gitRevision() ? { revision: gitRevision() } : {}),
    parameters: { ...o, quick: ctx.quick },
    results: {
      idleNode: roundDeep(idle),
      summary: Object.fromEntries(
        ran.map((k) => [
          k,
          {
            ...roundDeep(summary[k]),
            latencyMs: Object.fromEntries(Object.entries(summary[k].latencyMs).map(([l, v]) => [l, rounded(v)])),
          },
        ]),
      ),
      repetitions: reps.map(roundRep),
    },
    tables,
  };
}

/** Rounds every number in a plain object to one decimal. */
function roundDeep<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === "number" ? Math.round(v * 10) / 10 : v))) as T;
}

export const node500: Benchmark = {
  name: "node-500",
  description: "one virtual node carrying 500 pods: start, exit and deletion latency, heartbeats, memory",
  expectedS: 200,
  run: (ctx) => runNodeBench(ctx),
};

if (import.meta.main) {
  await runBenchmarks([node500], { quick: quickFromArgv() });
}
