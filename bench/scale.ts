/**
 * Benchmark: the operator at scale.
 *
 * 50 AutoScaledAgents on 5 pools (10 per pool, each pool's resources in a namespace of their own) keep 1,000 warm
 * agent pods (`minCount` 20 each) on 4 virtual nodes, each node in a process of its own. The first pool holds
 * 10,000 job requests (created through the emulator's control API: almost all finished, a few queued for agents
 * outside the cluster). The operator runs as its own process with its default intervals, under a ServiceAccount
 * of its own, so that the API server counts its requests (bench/support/apiserver-requests.ts). Phases:
 *
 * 1. ramp: the operator starts and creates the 1,000 warm pods, until all are Running and their agents online;
 * 2. idle: a steady minute with 1,000 pods;
 * 3. node pace: plain pods (no operator) created directly, through the scheduler and with `spec.nodeName`: how fast
 *    the virtual nodes start pods on their own;
 * 4. bursts: 200 jobs at once on the first pool (a demand only the resources' burst templates meet, so the warm
 *    agents cannot take them and any of the pool's 10 resources can), at a random moment of the idle poll cycle;
 *    until every job ran and every burst pod is gone.
 *
 * Measured per phase: the operator's CPU and RSS (/proc, every second), reconcile and plan duration (its /metrics
 * histograms `azp_scaler_reconcile_duration_seconds` and `azp_scaler_plan_duration_seconds`, quantiles estimated
 * from the buckets), its API-server requests per minute (the API server's /metrics, by FlowSchema), its Azure DevOps
 * requests per minute (the emulator's request log), and per burst the time until all 200 jobs run.
 *
 * `npx node bench/scale.ts [--quick]` (or through `bench/run.ts`).
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { RequestLogEntry } from "../sim/azure-devops/control.ts";
import { type AzureDevOpsEmulator, startAzureDevOpsEmulator } from "../sim/azure-devops/index.ts";
import type { SimJobView } from "../sim/azure-devops/views.ts";
import { parseDuration } from "../src/api/v1/duration.ts";
import { flags } from "../src/cli/config.ts";
import { isNotFound, type KubeClient } from "../src/kube/client.ts";
import { Informer } from "../src/kube/informer.ts";
import { listWatchFor } from "../src/kube/listwatch.ts";
import type { KubeObject } from "../src/kube/types.ts";
import {
  createNamespace,
  deleteNamespace,
  deleteNodeLease,
  ensureCrd,
  eventually,
  uniqueName,
} from "../test/support/cluster.ts";
import { registerPlaceholder } from "../test/support/emulator.ts";
import { mulberry32 } from "./chaos/prng.ts";
import {
  type CountedIdentity,
  countedIdentity,
  countsDelta,
  type RequestCounts,
  requestKindNames,
  requestKinds,
} from "./support/apiserver-requests.ts";
import { type BenchContext, type Benchmark, quickFromArgv, runBenchmarks } from "./support/bench.ts";
import { benchLabels } from "./support/cluster.ts";
import { forEachLimited } from "./support/concurrency.ts";
import { placeOperator, setThreadsNice } from "./support/cpu-placement.ts";
import { type NodeProcess, startNodeProcess } from "./support/node.ts";
import type { PhaseStats } from "./support/node-process.ts";
import { startOperatorProcess } from "./support/operator.ts";
import { ProcSampler, type ProcWindow, processPeakRssMiB, threadKinds } from "./support/proc-sampler.ts";
import {
  type Histogram,
  histogramBound,
  histogramDelta,
  histogramOf,
  histogramQuantile,
  maxOf,
  parseSamples,
  type Sample,
  sumOf,
} from "./support/prometheus.ts";
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
import { PodTracker } from "./support/watchers.ts";

export interface FleetOptions {
  pools: number;
  resourcesPerPool: number;
  /** Warm agents per resource (`minCount` of its first template). */
  warmPerResource: number;
  /** Virtual nodes, each in its own process. */
  nodes: number;
  /** Job requests the first pool holds before the operator starts (all but `foreignQueued` finished). */
  historyRequests: number;
  /** Of those, queued for agents outside the cluster (no resource serves them; they stay queued). */
  foreignQueued: number;
  burstJobs: number;
  bursts: number;
  jobDurationMs: number;
  /** The steady window with every warm pod up. */
  idleWindowMs: number;
  /** Plain pods per node-pace measurement. */
  nodePacePods: number;
  /** Create and delete calls in flight when the benchmark makes plain pods. */
  concurrency: number;
  /** The resources' `agentMinIdlePeriod`: how long a burst pod that got no job stays (default 5m). */
  agentMinIdlePeriod: string;
  /** Agents' message long poll (the service's is about 50 s). */
  messagePollTimeoutMs: number;
  rampTimeoutMs: number;
  burstTimeoutMs: number;
  seed: number;
  /**
   * The nice value of the operator's threads (0: as the rest of the machine). A negative one gives the operator a
   * core before the API server, etcd, the virtual nodes and the emulator, nearer to a cluster, where they run on other
   * machines (its own V8 threads still share its cores). `AZP_BENCH_OPERATOR_NICE`; the result is saved as
   * `scale-nice.json` instead of `scale.json`.
   */
  operatorNice: number;
  /**
   * CPUs of the operator's own (e.g. "1"), the benchmark and everything it started on the others: the operator never
   * waits for the simulated world, which has fewer cores. `AZP_BENCH_OPERATOR_CPUS`; the result is saved as
   * `scale-own-core.json`. Empty: all share every core.
   */
  operatorCpus: string;
  /**
   * Node flags for the operator in place of the image's (`AZP_BENCH_OPERATOR_FLAGS`, read by
   * bench/support/operator.ts); the result is then saved as `scale-flags.json`. Empty: the image's.
   */
  operatorFlags: string;
}

export const defaultFleetOptions: FleetOptions = {
  pools: 5,
  resourcesPerPool: 10,
  warmPerResource: 20,
  nodes: 4,
  historyRequests: 10_000,
  foreignQueued: 10,
  burstJobs: 200,
  bursts: 6,
  jobDurationMs: 30_000,
  idleWindowMs: 60_000,
  nodePacePods: 200,
  concurrency: 16,
  agentMinIdlePeriod: "20s",
  messagePollTimeoutMs: 30_000,
  rampTimeoutMs: 300_000,
  burstTimeoutMs: 240_000,
  seed: 5150,
  operatorNice: Number(process.env.AZP_BENCH_OPERATOR_NICE ?? 0) || 0,
  operatorCpus: process.env.AZP_BENCH_OPERATOR_CPUS ?? "",
  operatorFlags: process.env.AZP_BENCH_OPERATOR_FLAGS ?? "",
};

const quickOptions: Partial<FleetOptions> = {
  pools: 2,
  resourcesPerPool: 5,
  nodes: 2,
  historyRequests: 1_000,
  burstJobs: 50,
  bursts: 3,
  jobDurationMs: 20_000,
  idleWindowMs: 30_000,
  nodePacePods: 50,
};

/** The issue's targets (on this 2-core machine). */
export const targets = {
  rssMiB: 200,
  planP99Ms: 10,
  reconcileP99Ms: 100,
  burstAllRunningS: 20,
};

const idlePollMs = parseDuration(flags["idle-poll-interval"]?.default ?? "15s");

/** The same seeded PRNG as the chaos run (mulberry32): the same moments in every run. */
const seeded = mulberry32;

type AdoKind = "jobRequests" | "agents" | "agentDeletes" | "other";

const stageMetric = "azp_scaler_reconcile_stage_duration_seconds";
const reconcileStages = ["credentials", "observe", "plan", "execute", "status"] as const;
const adoKinds: readonly AdoKind[] = ["jobRequests", "agents", "agentDeletes", "other"];
const adoLabels: Record<AdoKind, string> = {
  jobRequests: "job-request lists",
  agents: "agent lists",
  agentDeletes: "agent deletes",
  other: "other",
};

function adoKind(e: RequestLogEntry): AdoKind {
  const path = e.path.toLowerCase();
  if (e.method === "GET" && path.endsWith("/jobrequests")) return "jobRequests";
  if (e.method === "GET" && path.endsWith("/agents")) return "agents";
  if (e.method === "DELETE" && /\/agents\/\d+$/.test(path)) return "agentDeletes";
  return "other";
}

const createdForAnnotation = "azurepipelines.k8s.scaler.io/created-for-requests";

/** Every burst pod ever seen: when it was created and the job requests the operator created it for. */
class PodOrigins {
  readonly created = new Map<string, { at: number; forRequests: number[] }>();
  readonly #informer: Informer<KubeObject>;

  constructor(client: KubeClient, namespace: string, labelSelector: string) {
    this.#informer = new Informer<KubeObject>({
      name: `bench-origins-${namespace}`,
      listWatch: listWatchFor<KubeObject>(client, {
        resource: { apiVersion: "v1", resource: "pods" },
        namespace,
        labelSelector,
      }),
    });
    const see = (p: KubeObject) => {
      const name = p.metadata?.name;
      if (!name || this.created.has(name)) return;
      const ids = (p.metadata?.annotations?.[createdForAnnotation] ?? "")
        .split(",")
        .map((v) => Number(v.trim()))
        .filter((v) => Number.isInteger(v) && v > 0);
      this.created.set(name, { at: Date.parse(p.metadata?.creationTimestamp ?? "") || Date.now(), forRequests: ids });
    };
    this.#informer.addHandler({ onAdd: see, onUpdate: (_o, p) => see(p) });
  }

  async start(): Promise<void> {
    this.#informer.start();
    await this.#informer.waitForSync();
  }

  stop(): Promise<void> {
    return this.#informer.stop();
  }
}

/**
 * Burst pods beyond one per job: pods whose agent ran no job of the burst, requests with more than one pod
 * created for them, and pods created for a request that had already started (creation timestamps: whole seconds).
 */
interface ExtraPods {
  idle: number;
  duplicateRequests: number;
  forStartedRequests: number;
  examples: string[];
}

/** Removes the finalizers of a namespace's AutoScaledAgents (the operator, stopped, would never remove its own). */
async function dropFinalizers(client: KubeClient, namespace: string): Promise<void> {
  const path = `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${namespace}/autoscaledagents`;
  const list = await client.request<{ items: KubeObject[] }>({ path });
  for (const r of list.items) {
    if (!r.metadata?.finalizers?.length) continue;
    await client
      .request({
        method: "PATCH",
        path: `${path}/${r.metadata.name}`,
        contentType: "application/merge-patch+json",
        body: { metadata: { finalizers: null } },
      })
      .catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
  }
}

/** What is read at the start and end of a window. */
interface Mark {
  t: number;
  operator: Sample[];
  api: RequestCounts;
}

interface WindowStats {
  name: string;
  seconds: number;
  /** Agent pods that existed at the end of the window. */
  pods: number;
  proc: ProcWindow;
  reconciles: number;
  reconcilesPerMin: number;
  reconcileMs: { p50: number; p99: number; p99Bound: number; mean: number; max: string };
  plans: number;
  planMs: { p50: number; p99: number; p99Bound: number; mean: number };
  /** Plans that took longer than the target (from the histogram's bucket at the target). */
  plansOverTarget: number;
  /** Garbage-collection pauses of the operator (`nodejs_gc_duration_seconds` by kind), ms per second of the phase. */
  gcMsPerS: Record<(typeof gcKinds)[number], number>;
  /** Where reconciles spend their time (`azp_scaler_reconcile_stage_duration_seconds`), by stage. */
  stageMs: Record<string, { p99: number; mean: number }>;
  apiPerMin: Record<string, number>;
  /** The API server's mean time per pod creation (ms; every client's, in practice the operator's). */
  podCreateMs: number;
  adoPerMin: Record<string, number>;
  adoTotal: number;
  workQueueMax: number;
  loopLagP99MaxMs: number;
  /** V8 heap in use, the largest of the 5-s scrapes (MiB); the heap V8 holds, and external memory (Buffers). */
  heapUsedMaxMiB: number;
  heapTotalMaxMiB: number;
  externalMaxMiB: number;
  nodes: { loopDelayMaxMs: number; rssPeakMiB: number };
}

/** The kinds of `nodejs_gc_duration_seconds` reported (weak callbacks take no time worth a column). */
const gcKinds = ["minor", "major", "incremental"] as const;

interface NodePace {
  kind: "scheduled" | "direct";
  pods: number;
  createCallsS: number;
  allRunningS: number;
  runningPerS: number;
  createToRunningMs: Summary;
  allGoneS: number;
}

/**
 * shared: one demand every resource of the pool meets (the operator shares the jobs out); targeted: each job
 * demands one resource's template, evenly over the pool's resources; single: every job demands the first
 * resource's template.
 */
type BurstKind = "shared" | "targeted" | "single";
const burstKinds: readonly BurstKind[] = ["shared", "targeted", "single"];

interface BurstResult {
  rep: number;
  kind: BurstKind;
  /** Where in the idle poll cycle the burst was queued (ms after the operator's last job-request list). */
  sinceLastPollMs: number;
  firstPollS: number;
  firstPodS: number;
  allPodsCreatedS: number;
  allPodsRunningS: number;
  allAgentsOnlineS: number;
  allStartedS: number;
  /** All started minus the first poll: what the poll interval does not explain. */
  pollToAllStartedS: number;
  jobStartMs: Summary;
  allFinishedS: number;
  podsCreated: number;
  extraPods: ExtraPods;
  /** The operator's own counters over the burst (its first pool's resources): pods created and deleted by reason. */
  operatorPods: { created: Record<string, number>; deleted: Record<string, number> };
  failedJobs: number;
  jobsPerResource: { min: number; max: number; resources: number };
  reaction: WindowStats;
  whole: WindowStats;
}

/** How the run placed the operator on the cores, for the targets' title. */
function placement(o: FleetOptions): string {
  const parts = [
    ...(o.operatorCpus === "" ? [] : [`the operator alone on CPU ${o.operatorCpus}, the rest on the others`]),
    ...(o.operatorNice === 0 ? [] : [`the operator's threads at nice ${o.operatorNice}`]),
    ...(o.operatorFlags === "" ? [] : [`the operator run with \`node ${o.operatorFlags}\``]),
  ];
  return parts.map((p) => `; ${p}`).join("");
}

export async function runFleetBench(ctx: BenchContext, overrides: Partial<FleetOptions> = {}): Promise<BenchResult> {
  const o: FleetOptions = { ...defaultFleetOptions, ...(ctx.quick ? quickOptions : {}), ...overrides };
  const { client } = ctx.cluster;
  const log = ctx.log;
  const started = new Date();
  const machine = machineInfo({ kubernetes: ctx.cluster.kubernetes });
  const random = seeded(o.seed);
  const resources = o.pools * o.resourcesPerPool;
  const warmTotal = resources * o.warmPerResource;
  await ensureCrd(client, "azp-bench");

  // ---- the world
  const runId = uniqueName("fleet");
  const namespaces: string[] = [];
  for (let p = 0; p < o.pools; p++) {
    const ns = await createNamespace(client, "bench-fleet", { labels: benchLabels });
    ctx.cleanups.add(`namespace ${ns}`, () => deleteNamespace(client, ns));
    namespaces.push(ns);
  }
  const plainNs = await createNamespace(client, "bench-fleet-plain", { labels: benchLabels });
  ctx.cleanups.add(`namespace ${plainNs}`, () => deleteNamespace(client, plainNs));
  const identity: CountedIdentity = await countedIdentity(client, {
    namespace: namespaces[0] as string,
    name: "azp-operator",
    prefix: runId,
    kubeconfigFile: join(ctx.workDir, `${runId}-operator.kubeconfig`),
  });
  ctx.cleanups.add("operator identity (FlowSchemas, binding)", () => identity.remove());

  const poolNames = Array.from({ length: o.pools }, (_, p) => `fleet pool ${p}`);
  const bigPool = poolNames[0] as string;
  const pats = { operator: uniqueName("pat-op"), agents: uniqueName("pat-agents"), bench: uniqueName("pat-bench") };
  const ado: AzureDevOpsEmulator = await startAzureDevOpsEmulator({
    pools: poolNames,
    pats: [
      { token: pats.operator, scope: "manage", identity: "operator" },
      { token: pats.agents, scope: "manage", identity: "agents" },
      { token: pats.bench, scope: "manage", identity: "bench" },
    ],
    messagePollTimeoutMs: o.messagePollTimeoutMs,
    finishedRetention: o.historyRequests + o.bursts * o.burstJobs + 1000,
    requestLogLimit: 2_000_000,
    log: () => {},
  });
  ctx.cleanups.add("Azure DevOps emulator", () => ado.close());
  const bigPoolId = ado.control.poolId({ pool: bigPool });
  const online = new Map<string, number>();
  ado.control.on("agent", (a) => {
    if (a.status === "online" && !online.has(a.name)) online.set(a.name, Date.now());
  });

  // The pool's history, through the control API (HTTP): jobs nobody can run finish at once (failed); a few wait
  // for an agent outside the cluster (its offline registration keeps them queued).
  const control = async (path: string, body: unknown) => {
    const res = await fetch(`${ado.controlUrl}${path}`, { method: "POST", body: JSON.stringify(body) });
    const text = await res.text();
    if (res.status !== 201 && res.status !== 200) throw new Error(`control API ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as { count?: number; value?: SimJobView[] } & SimJobView;
  };
  await registerPlaceholder(ado, {
    pat: pats.bench,
    name: "self-hosted-1",
    pool: bigPool,
    capabilities: { "self-hosted": "1" },
  });
  const historyStart = Date.now();
  for (let left = o.historyRequests - o.foreignQueued; left > 0; left -= 1000) {
    await control("/jobs", { pool: bigPool, demands: ["retired-agent"], count: Math.min(1000, left) });
  }
  if (o.foreignQueued > 0) await control("/jobs", { pool: bigPool, demands: ["self-hosted"], count: o.foreignQueued });
  log(`${bigPool}: ${o.historyRequests} job requests created in ${secs(Date.now() - historyStart, 1)} s`);
  // Burst jobs queue (rather than fail) before the operator has registered its own placeholders.
  await registerPlaceholder(ado, {
    pat: pats.bench,
    name: "burst-placeholder",
    pool: bigPool,
    capabilities: { burst: "1" },
  });

  for (let i = 0; i < o.resourcesPerPool; i++) {
    await registerPlaceholder(ado, {
      pat: pats.bench,
      name: `burst-placeholder-${i}`,
      pool: bigPool,
      capabilities: { [`burst-r0-${i}`]: "1" },
    });
  }
  const fleetLabel = { "azp.bench/fleet": runId };
  const nodes: NodeProcess[] = [];
  const nodeNames = Array.from({ length: o.nodes }, (_, i) => `${runId}-node-${i}`);
  // Registered after the namespaces: runs before them, so the nodes are there to finish the pods.
  ctx.cleanups.add("virtual nodes", async () => {
    // The operator (stopped before this runs) leaves its finalizer on the resources: without it they can go.
    for (const ns of namespaces) await dropFinalizers(client, ns).catch(() => {});
    await Promise.all(
      [...namespaces, plainNs].map((ns) => deleteNamespace(client, ns, { wait: true }).catch(() => {})),
    );
    await Promise.all(nodes.map((n) => n.stop()));
    for (const name of nodeNames) await deleteNodeLease(client, name);
  });
  for (const name of nodeNames) {
    nodes.push(
      await startNodeProcess(
        {
          kubeconfig: ctx.cluster.kubeconfig,
          name,
          labels: fleetLabel,
          heartbeatMs: 10_000,
          retryMs: 500,
          agentToken: pats.agents,
        },
        join(ctx.workDir, `${name}.log`),
      ),
    );
  }
  log(`${o.nodes} virtual nodes up (own processes)`);

  for (const ns of namespaces) {
    await client.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/secrets`,
      body: { metadata: { name: "azure-pat" }, stringData: { pat: pats.operator } },
    });
  }

  const resourceNames: string[][] = Array.from({ length: o.pools }, (_, p) =>
    Array.from({ length: o.resourcesPerPool }, (_, i) => `r${p}-${i}`),
  );
  const template = (kind: "warm" | "burst", resource: string) => ({
    metadata: { labels: { "azp.bench/kind": kind, "azp.bench/resource": resource } },
    spec: {
      nodeSelector: fleetLabel,
      containers: [
        { name: "azure-pipelines-agent", image: "example.com/azure-pipelines-agent:bench", args: ["--once"] },
      ],
    },
  });
  const createResources = async () => {
    for (let p = 0; p < o.pools; p++) {
      for (const name of resourceNames[p] ?? []) {
        await client.request({
          method: "POST",
          path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${namespaces[p]}/autoscaledagents`,
          body: {
            apiVersion: "azurepipelines.k8s.scaler.io/v1",
            kind: "AutoScaledAgent",
            metadata: { name },
            spec: {
              poolName: poolNames[p],
              organizationUrl: ado.organizationUrl,
              personalAccessTokenSecretName: "azure-pat",
              maxTerminatedPodsToKeep: 0,
              agentMinIdlePeriod: o.agentMinIdlePeriod,
              podsWithCapabilities: [
                {
                  capabilities: { warm: "1", [`warm-${name}`]: "1" },
                  minCount: o.warmPerResource,
                  maxCount: o.warmPerResource,
                  podTemplateSpec: template("warm", name),
                },
                {
                  capabilities: { burst: "1", [`burst-${name}`]: "1" },
                  minCount: 0,
                  maxCount: o.burstJobs,
                  podTemplateSpec: template("burst", name),
                },
              ],
            },
          },
        });
      }
    }
  };

  const warmTrackers = namespaces.map((ns) => new PodTracker(client, ns, "azp.bench/kind=warm"));
  const burstTracker = new PodTracker(client, namespaces[0] as string, "azp.bench/kind=burst");
  const plainTracker = new PodTracker(client, plainNs);
  const origins = new PodOrigins(client, namespaces[0] as string, "azp.bench/kind=burst");
  for (const t of [...warmTrackers, burstTracker, plainTracker, origins]) {
    await t.start();
    ctx.cleanups.add("pod watcher", () => t.stop());
  }
  const warmRunning = () =>
    warmTrackers.reduce((n, t) => n + t.live().filter((name) => t.times.get(name)?.phase === "Running").length, 0);
  const warmOnline = () => warmTrackers.reduce((n, t) => n + t.live().filter((name) => online.has(name)).length, 0);
  const agentPods = () => warmTrackers.reduce((n, t) => n + t.live().length, 0) + burstTracker.live().length;

  // ---- the operator
  const operator = startOperatorProcess({
    kubeconfig: identity.kubeconfig,
    namespaces,
    logFile: join(ctx.workDir, `${runId}-operator.log`),
  });
  const stopOperator = ctx.cleanups.add("operator", () => operator.stop());
  const pid = operator.child.pid ?? 0;
  const sampler = new ProcSampler(pid, 1000);
  // Threads started later (the thread pool's) get the nice value from the next pass.
  const renice = () => {
    if (o.operatorNice !== 0) setThreadsNice(pid, o.operatorNice);
  };
  if (o.operatorNice !== 0 && setThreadsNice(pid, o.operatorNice) === 0)
    throw new Error(`could not set the operator's nice value to ${o.operatorNice} (a negative one needs CAP_SYS_NICE)`);
  if (o.operatorCpus !== "") {
    const placed = placeOperator(pid, o.operatorCpus);
    log(`operator on CPUs ${placed.operatorCpus.join(",")}, the rest on ${placed.otherCpus.join(",")}`);
  }
  const stopSampler = ctx.cleanups.add("operator sampler", () => sampler.stop());
  for (const n of nodes) n.phaseStart();
  const startedLine = await operator.waitForLog(/operator started/);
  const port = Number(/"port":\s*(\d+)/.exec(startedLine)?.[1]);
  if (!Number.isFinite(port) || port <= 0) throw new Error(`no metrics port in: ${startedLine}`);
  const scrape = async (): Promise<Sample[]> => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    return parseSamples(await res.text());
  };
  // The work queue and the event-loop lag, every 5 s (peaks per window).
  const gauges: {
    t: number;
    queue: number;
    lagP99: number;
    heapMiB: number;
    heapTotalMiB: number;
    externalMiB: number;
  }[] = [];
  const gaugeTimer = setInterval(() => {
    renice();
    scrape()
      .then((s) =>
        gauges.push({
          t: Date.now(),
          queue: sumOf(s, "azp_scaler_workqueue_depth"),
          lagP99: maxOf(s, "azp_scaler_process_nodejs_eventloop_lag_p99_seconds"),
          heapMiB: sumOf(s, "azp_scaler_process_nodejs_heap_size_used_bytes") / 2 ** 20,
          heapTotalMiB: sumOf(s, "azp_scaler_process_nodejs_heap_size_total_bytes") / 2 ** 20,
          externalMiB: sumOf(s, "azp_scaler_process_nodejs_external_memory_bytes") / 2 ** 20,
        }),
      )
      .catch(() => {});
  }, 5000);
  const stopGauges = ctx.cleanups.add("operator gauges", () => clearInterval(gaugeTimer));
  await operator.waitForLog(/caches synced/);

  const operatorRequests = () => ado.control.requests().filter((e) => e.identity === "operator");
  const mark = async (): Promise<Mark> => ({ t: Date.now(), operator: await scrape(), api: await identity.counts() });
  const nodePhase = async (): Promise<PhaseStats[]> => {
    const stats = await Promise.all(nodes.map((n) => n.phaseEnd()));
    for (const n of nodes) n.phaseStart();
    return stats;
  };
  const histo = (s: Sample[], name: string): Histogram => histogramOf(s, name);
  const windowStats = (name: string, a: Mark, b: Mark, nodeStats: PhaseStats[]): WindowStats => {
    const minutes = (b.t - a.t) / 60_000;
    const rec = histogramDelta(
      histo(a.operator, "azp_scaler_reconcile_duration_seconds"),
      histo(b.operator, "azp_scaler_reconcile_duration_seconds"),
    );
    const plan = histogramDelta(
      histo(a.operator, "azp_scaler_plan_duration_seconds"),
      histo(b.operator, "azp_scaler_plan_duration_seconds"),
    );
    const api = countsDelta(a.api, b.api);
    const apiPerMin: Record<string, number> = { total: api.total / minutes };
    for (const k of requestKindNames) apiPerMin[k] = api[k] / minutes;
    const ado = operatorRequests().filter((e) => {
      const t = Date.parse(e.time);
      return t >= a.t && t < b.t;
    });
    const adoPerMin: Record<string, number> = { total: ado.length / minutes };
    for (const k of adoKinds) adoPerMin[k] = ado.filter((e) => adoKind(e) === k).length / minutes;
    const inWindow = gauges.filter((g) => g.t >= a.t && g.t <= b.t);
    // The largest reconcile: the bucket of the last observation.
    const lastBucket = rec.buckets.find((x) => x.count >= rec.count);
    return {
      name,
      seconds: (b.t - a.t) / 1000,
      pods: agentPods(),
      proc: sampler.window(a.t, b.t),
      reconciles: rec.count,
      reconcilesPerMin: rec.count / minutes,
      reconcileMs: {
        p50: histogramQuantile(rec, 0.5) * 1000,
        p99: histogramQuantile(rec, 0.99) * 1000,
        p99Bound: histogramBound(rec, 0.99) * 1000,
        mean: rec.count > 0 ? (rec.sum / rec.count) * 1000 : Number.NaN,
        max: rec.count === 0 || !lastBucket ? "-" : `≤ ${Number.isFinite(lastBucket.le) ? lastBucket.le * 1000 : "∞"}`,
      },
      plans: plan.count,
      planMs: {
        p50: histogramQuantile(plan, 0.5) * 1000,
        p99: histogramQuantile(plan, 0.99) * 1000,
        p99Bound: histogramBound(plan, 0.99) * 1000,
        mean: plan.count > 0 ? (plan.sum / plan.count) * 1000 : Number.NaN,
      },
      plansOverTarget: plan.count - (plan.buckets.find((x) => x.le >= targets.planP99Ms / 1000)?.count ?? plan.count),
      gcMsPerS: Object.fromEntries(
        gcKinds.map((kind) => {
          const name = "azp_scaler_process_nodejs_gc_duration_seconds";
          const h = histogramDelta(histogramOf(a.operator, name, { kind }), histogramOf(b.operator, name, { kind }));
          return [kind, (h.sum * 1000) / ((b.t - a.t) / 1000)];
        }),
      ) as WindowStats["gcMsPerS"],
      stageMs: Object.fromEntries(
        reconcileStages.map((stage) => {
          const h = histogramDelta(
            histogramOf(a.operator, stageMetric, { stage }),
            histogramOf(b.operator, stageMetric, { stage }),
          );
          return [
            stage,
            {
              p99: histogramQuantile(h, 0.99) * 1000,
              mean: h.count > 0 ? (h.sum / h.count) * 1000 : Number.NaN,
            },
          ];
        }),
      ),
      apiPerMin,
      podCreateMs: api.podCreates.count > 0 ? (api.podCreates.seconds / api.podCreates.count) * 1000 : Number.NaN,
      adoPerMin,
      adoTotal: ado.length,
      workQueueMax: Math.max(0, ...inWindow.map((g) => g.queue)),
      heapUsedMaxMiB: Math.max(0, ...inWindow.map((g) => g.heapMiB)),
      heapTotalMaxMiB: Math.max(0, ...inWindow.map((g) => g.heapTotalMiB)),
      externalMaxMiB: Math.max(0, ...inWindow.map((g) => g.externalMiB)),
      loopLagP99MaxMs: Math.max(0, ...inWindow.map((g) => g.lagP99 * 1000).filter((v) => Number.isFinite(v))),
      nodes: {
        loopDelayMaxMs: Math.max(0, ...nodeStats.map((s) => s.eventLoopDelay.max)),
        rssPeakMiB: Math.max(0, ...nodeStats.map((s) => s.rssMiB.peak)),
      },
    };
  };
  const windows: WindowStats[] = [];

  // ---- 1. ramp: the warm pods
  log(`operator up (pid ${pid}, metrics on port ${port})`);
  // The operator with nothing to do yet: its baseline.
  const bareStart = await mark();
  await sleep(10_000);
  const bareEnd = await mark();
  windows.push(windowStats("operator, no resources yet", bareStart, bareEnd, await nodePhase()));
  const rampStart = await mark();
  await createResources();
  log(`${resources} AutoScaledAgents on ${o.pools} pools`);
  let lastProgress = 0;
  await eventually(
    `${warmTotal} warm pods Running with their agents online`,
    () => {
      const running = warmRunning();
      const on = warmOnline();
      if (Date.now() - lastProgress > 15_000) {
        lastProgress = Date.now();
        log(`ramp: ${agentPods()} pods, ${running} Running, ${on} agents online`);
      }
      return running >= warmTotal && on >= warmTotal ? true : undefined;
    },
    o.rampTimeoutMs,
    250,
  );
  const rampEnd = await mark();
  const warmTimes = warmTrackers.flatMap((t) => t.live().map((n) => ({ name: n, times: t.times.get(n) ?? {} })));
  const lastOf = (values: (number | undefined)[]) => Math.max(...values.map((v) => v ?? Number.NaN));
  const ramp = {
    pods: warmTimes.length,
    allCreatedS: (lastOf(warmTimes.map((w) => w.times.added)) - rampStart.t) / 1000,
    allRunningS: (lastOf(warmTimes.map((w) => w.times.running)) - rampStart.t) / 1000,
    allOnlineS: (lastOf(warmTimes.map((w) => online.get(w.name))) - rampStart.t) / 1000,
  };
  windows.push(windowStats("ramp to warm pods", rampStart, rampEnd, await nodePhase()));
  log(
    `ramp: ${ramp.pods} pods created after ${fixed(ramp.allCreatedS)} s, Running ${fixed(ramp.allRunningS)} s, ` +
      `agents online ${fixed(ramp.allOnlineS)} s`,
  );

  // ---- 2. idle with every warm pod
  await sleep(Math.min(20_000, o.idleWindowMs / 2));
  await nodePhase();
  const idleStart = await mark();
  await sleep(o.idleWindowMs);
  const idleEnd = await mark();
  const idle = windowStats(`idle, ${agentPods()} pods`, idleStart, idleEnd, await nodePhase());
  windows.push(idle);
  log(
    `idle: CPU ${fixed(idle.proc.cpuCores * 100, 0)} %, RSS ${fixed(idle.proc.rssMiB.peak, 0)} MiB, ` +
      `${fixed(idle.adoPerMin.total)} Azure DevOps and ${fixed(idle.apiPerMin.total)} API requests/min`,
  );

  // ---- 3. the virtual nodes' own pace: plain pods, no operator
  const paces: NodePace[] = [];
  const paceStart = await mark();
  for (const kind of ["scheduled", "direct"] as const) {
    const names = Array.from({ length: o.nodePacePods }, (_, i) => `${kind}-${i}`);
    const sent = new Map<string, number>();
    const begin = Date.now();
    await forEachLimited(names, o.concurrency, async (name, i) => {
      sent.set(name, Date.now());
      await client.request({
        method: "POST",
        path: `/api/v1/namespaces/${plainNs}/pods`,
        body: {
          metadata: { name, labels: { "azp.bench/plain": kind } },
          spec: {
            ...(kind === "direct" ? { nodeName: nodeNames[i % nodeNames.length] } : { nodeSelector: fleetLabel }),
            restartPolicy: "Never",
            terminationGracePeriodSeconds: 5,
            containers: [{ name: "main", image: "example.com/bench/sleeper:1" }],
          },
        },
      });
    });
    const createdAll = Date.now();
    const t = (n: string) => plainTracker.times.get(n) ?? {};
    await plainTracker.waitFor(`${kind} plain pods Running`, () => names.every((n) => t(n).running), 120_000);
    const allRunning = lastOf(names.map((n) => t(n).running));
    const deleteStart = Date.now();
    await forEachLimited(names, o.concurrency, async (name) => {
      await client.request({ method: "DELETE", path: `/api/v1/namespaces/${plainNs}/pods/${name}` }).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
    });
    await plainTracker.waitFor(`${kind} plain pods gone`, () => names.every((n) => t(n).gone), 120_000);
    paces.push({
      kind,
      pods: names.length,
      createCallsS: (createdAll - begin) / 1000,
      allRunningS: (allRunning - begin) / 1000,
      runningPerS: names.length / ((allRunning - begin) / 1000),
      createToRunningMs: summarize(names.map((n) => (t(n).running ?? Number.NaN) - (sent.get(n) ?? Number.NaN))),
      allGoneS: (lastOf(names.map((n) => t(n).gone)) - deleteStart) / 1000,
    });
    log(`node pace, ${kind}: ${o.nodePacePods} plain pods Running after ${fixed((allRunning - begin) / 1000)} s`);
    await sleep(2000);
  }
  windows.push(windowStats("node pace (operator idle)", paceStart, await mark(), await nodePhase()));

  // ---- 4. bursts
  const bursts: BurstResult[] = [];
  const jobListTimes = () =>
    operatorRequests()
      .filter((e) => adoKind(e) === "jobRequests" && e.path.includes(`/pools/${bigPoolId}/`))
      .map((e) => Date.parse(e.time));
  for (let rep = 1; rep <= o.bursts; rep++) {
    const kind = burstKinds[(rep - 1) % burstKinds.length] as BurstKind;
    await sleep(5000 + Math.round(random() * idlePollMs));
    await nodePhase();
    const before = await mark();
    const queuedAt = Date.now();
    const lastPoll = jobListTimes()
      .filter((t) => t < queuedAt)
      .at(-1);
    // shared: any of the pool's resources can take any job; targeted: each job names one resource's template.
    const bigPoolResources = resourceNames[0] as string[];
    const batches =
      kind === "shared"
        ? [{ demands: ["burst"], count: o.burstJobs }]
        : kind === "single"
          ? [{ demands: [`burst-${bigPoolResources[0]}`], count: o.burstJobs }]
          : bigPoolResources.map((name, i) => ({
              demands: [`burst-${name}`],
              count:
                Math.floor(o.burstJobs / bigPoolResources.length) + (i < o.burstJobs % bigPoolResources.length ? 1 : 0),
            }));
    const ids: number[] = [];
    for (const b of batches.filter((x) => x.count > 0)) {
      const queued = await control("/jobs", { pool: bigPool, durationMs: o.jobDurationMs, ...b });
      ids.push(...(queued.value ?? [queued]).map((j) => j.requestId));
    }
    const allQueuedAt = Date.now();
    log(`burst ${rep} (${kind}): ${ids.length} jobs queued`);
    const startedJobs = await Promise.all(
      ids.map((id) =>
        ado.control.waitForJob(id, (j) => j.receiveTime !== undefined || j.state === "finished", {
          timeoutMs: o.burstTimeoutMs,
        }),
      ),
    );
    const reactionEnd = await mark();
    const reactionNodes = await nodePhase();
    const done = await Promise.all(
      ids.map((id) => ado.control.waitForJob(id, (j) => j.state === "finished", { timeoutMs: o.burstTimeoutMs })),
    );
    const burstPods = () =>
      [...burstTracker.times.entries()].filter(([, t]) => (t.added ?? 0) >= queuedAt).map(([n]) => n);
    await burstTracker
      .waitFor(
        "every burst pod gone",
        () => burstTracker.live().length === 0 && agentPods() === warmTotal,
        o.burstTimeoutMs,
      )
      .catch((err: Error) => {
        const left = burstTracker.live().map((n) => `${n} ${burstTracker.times.get(n)?.phase ?? "?"}`);
        throw new Error(
          `${err.message}: burst pods left ${left.length} [${left.slice(0, 10).join(", ")}], agent pods ${agentPods()}`,
        );
      });
    const end = await mark();
    const pods = burstPods();
    const bt = (n: string) => burstTracker.times.get(n) ?? {};
    const q = (j: SimJobView) => Date.parse(j.queueTime);
    // The first job-request list that began once every job was queued.
    const firstPoll = jobListTimes().find((t) => t >= allQueuedAt) ?? Number.NaN;
    const perResource = new Map<string, number>();
    for (const n of pods) {
      const r = n.slice(0, n.lastIndexOf("-"));
      perResource.set(r, (perResource.get(r) ?? 0) + 1);
    }
    const allStarted = lastOf(startedJobs.map((j) => (j.receiveTime ? Date.parse(j.receiveTime) : undefined)));
    const ranJob = new Set(done.map((j) => j.reservedAgent?.name ?? ""));
    const jobById = new Map(done.map((j) => [j.requestId, j]));
    const podsFor = new Map<number, string[]>();
    const forStarted: string[] = [];
    for (const n of pods) {
      const origin = origins.created.get(n);
      for (const id of origin?.forRequests ?? []) {
        podsFor.set(id, [...(podsFor.get(id) ?? []), n]);
        const j = jobById.get(id);
        const startedAt = j?.receiveTime ? Date.parse(j.receiveTime) : undefined;
        // creationTimestamp has whole seconds: only a start a full second before counts.
        if (origin && startedAt !== undefined && origin.at >= startedAt + 1000) forStarted.push(`${n} for ${id}`);
      }
    }
    const duplicates = [...podsFor.entries()].filter(([, ns]) => ns.length > 1);
    const idlePods = pods.filter((n) => !ranJob.has(n));
    const extraPods: ExtraPods = {
      idle: idlePods.length,
      duplicateRequests: duplicates.length,
      forStartedRequests: forStarted.length,
      examples: [
        ...idlePods
          .slice(0, 3)
          .map(
            (n) =>
              `${n} (created ${secs((origins.created.get(n)?.at ?? Number.NaN) - queuedAt, 0)} s after queueing for ${origins.created.get(n)?.forRequests.join(",") || "-"}) ran no job`,
          ),
        ...duplicates.slice(0, 3).map(([id, ns]) => `request ${id}: pods ${ns.join(", ")}`),
        ...forStarted.slice(0, 3).map((v) => `${v}, already started`),
      ],
    };
    const counterDelta = (name: string, label: string) => {
      const out: Record<string, number> = {};
      for (const smp of end.operator) {
        if (smp.name !== name || smp.labels.namespace !== namespaces[0]) continue;
        const k = smp.labels[label] ?? "";
        const prior = sumOf(before.operator, name, { ...smp.labels });
        out[k] = (out[k] ?? 0) + smp.value - prior;
      }
      return out;
    };
    const operatorPods = {
      created: counterDelta("azp_scaler_pods_created_total", "reason"),
      deleted: counterDelta("azp_scaler_pods_deleted_total", "reason"),
    };
    const result: BurstResult = {
      rep,
      kind,
      sinceLastPollMs: lastPoll === undefined ? Number.NaN : queuedAt - lastPoll,
      firstPollS: (firstPoll - queuedAt) / 1000,
      firstPodS: (Math.min(...pods.map((n) => bt(n).added ?? Number.NaN)) - queuedAt) / 1000,
      allPodsCreatedS: (lastOf(pods.map((n) => bt(n).added)) - queuedAt) / 1000,
      allPodsRunningS: (lastOf(pods.map((n) => bt(n).running)) - queuedAt) / 1000,
      allAgentsOnlineS: (lastOf(pods.map((n) => online.get(n))) - queuedAt) / 1000,
      allStartedS: (allStarted - queuedAt) / 1000,
      pollToAllStartedS: (allStarted - firstPoll) / 1000,
      jobStartMs: summarize(startedJobs.map((j) => (j.receiveTime ? Date.parse(j.receiveTime) - q(j) : Number.NaN))),
      allFinishedS: (lastOf(done.map((j) => (j.finishTime ? Date.parse(j.finishTime) : undefined))) - queuedAt) / 1000,
      podsCreated: pods.length,
      extraPods,
      operatorPods,
      failedJobs: done.filter((j) => j.result !== "succeeded").length,
      jobsPerResource: {
        min: perResource.size < o.resourcesPerPool ? 0 : Math.min(...perResource.values()),
        max: Math.max(0, ...perResource.values()),
        resources: perResource.size,
      },
      reaction: windowStats(`burst ${rep} ${kind}: until all run`, before, reactionEnd, reactionNodes),
      whole: windowStats(`burst ${rep} ${kind}: until pods gone`, before, end, [
        ...reactionNodes,
        ...(await nodePhase()),
      ]),
    };
    bursts.push(result);
    log(
      `burst ${rep} (${kind}): first poll ${fixed(result.firstPollS)} s, all ${o.burstJobs} running ${fixed(result.allStartedS)} s ` +
        `(${fixed(result.pollToAllStartedS)} s after the poll), ${result.podsCreated} pods (${extraPods.idle} ran no job), ` +
        `${result.failedJobs} failed`,
    );
  }

  // ---- the end
  const endMark = await mark();
  const peakRss = Math.max(processPeakRssMiB(pid) ?? 0, ...sampler.samples.map((s) => s.rssMiB));
  const logText = operator.log();
  const logLevels = {
    warn: (logText.match(/"level":"warn"/g) ?? []).length,
    error: (logText.match(/"level":"error"/g) ?? []).length,
  };
  await stopGauges();
  await stopSampler();
  await stopOperator();
  const loadEnd = machineInfo().loadAverage1m;

  // At 1,000 pods: idle and every burst (reaction windows) together.
  const atScale = (name: string) => {
    const a = idleStart.operator;
    const b = endMark.operator;
    return histogramDelta(histo(a, name), histo(b, name));
  };
  const recAtScale = atScale("azp_scaler_reconcile_duration_seconds");
  const planAtScale = atScale("azp_scaler_plan_duration_seconds");
  const burstAllStarted = median(bursts.map((b) => b.allStartedS));
  const kindsRun = burstKinds.filter((k) => bursts.some((b) => b.kind === k));
  const byKind = (k: BurstKind) => bursts.filter((b) => b.kind === k);
  const ms = (v: number, d = 1) => fixed(v, d);
  const verdict = (ok: boolean) => (ok ? "pass" : "FAIL");
  const recP99 = histogramQuantile(recAtScale, 0.99) * 1000;
  const planP99 = histogramQuantile(planAtScale, 0.99) * 1000;
  const targetRows = [
    {
      measure: "operator RSS, peak over the run (MiB)",
      value: fixed(peakRss, 0),
      target: `≤ ${targets.rssMiB}`,
      ok: peakRss <= targets.rssMiB,
    },
    {
      measure: `plan duration p99 at ${warmTotal}+ pods (ms; idle minute alone)`,
      value: `${ms(planP99, 2)} (≤ ${ms(histogramBound(planAtScale, 0.99) * 1000, 2)}; ${ms(idle.planMs.p99, 2)})`,
      target: `≤ ${targets.planP99Ms}`,
      ok: planP99 <= targets.planP99Ms,
    },
    {
      measure: `reconcile duration p99 at ${warmTotal}+ pods (ms; idle minute alone)`,
      value: `${ms(recP99)} (≤ ${ms(histogramBound(recAtScale, 0.99) * 1000, 0)}; ${ms(idle.reconcileMs.p99)})`,
      target: `≤ ${targets.reconcileP99Ms}`,
      ok: recP99 <= targets.reconcileP99Ms,
    },
    ...kindsRun.map((k) => {
      const v = median(byKind(k).map((b) => b.allStartedS));
      return {
        measure: `burst of ${o.burstJobs} jobs (${k}) all running, from queueing (s, median of ${byKind(k).length})`,
        value: fixed(v),
        target: `≤ ${targets.burstAllRunningS}`,
        ok: v <= targets.burstAllRunningS,
      };
    }),
  ];

  const phaseRow = (w: WindowStats) => [
    w.name,
    fixed(w.seconds, 0),
    String(w.pods),
    `${fixed(w.proc.cpuCores * 100, 0)} / ${fixed(w.proc.cpuCoresPeak * 100, 0)}`,
    `${fixed(w.proc.rssMiB.median, 0)} / ${fixed(w.proc.rssMiB.peak, 0)} / ${fixed(w.heapUsedMaxMiB, 0)}`,
    fixed(w.reconcilesPerMin, 0),
    `${ms(w.reconcileMs.p50)} / ${ms(w.reconcileMs.p99)}`,
    `${ms(w.planMs.p50, 2)} / ${ms(w.planMs.p99, 2)}`,
    fixed(w.apiPerMin.total, 0),
    fixed(w.podCreateMs, 0),
    fixed(w.adoPerMin.total, 1),
    String(w.workQueueMax),
    fixed(w.loopLagP99MaxMs, 0),
  ];
  const burstWindows = bursts.flatMap((b) => [b.reaction, b.whole]);
  const tables: Table[] = [
    {
      title: `Targets (${resources} AutoScaledAgents on ${o.pools} pools, ${warmTotal} warm agent pods on ${o.nodes} virtual nodes, ${o.historyRequests} job requests in one pool${placement(o)})`,
      columns: ["measure", "measured", "target", "verdict"],
      rows: targetRows.map((r) => [r.measure, r.value, r.target, verdict(r.ok)]),
      notes: [
        "quantiles estimated from the histogram buckets (linear within a bucket); in parentheses the bucket bound they lie under",
        `at ${warmTotal}+ pods: every reconcile from the start of the idle window to the end of the last burst`,
        `burst: queued at a random moment of the operator's ${secs(idlePollMs, 0)} s idle poll cycle; the poll wait is part of it`,
      ],
    },
    {
      title: "Per phase: the operator process",
      columns: [
        "phase",
        "s",
        "pods",
        "CPU % mean / peak 5 s",
        "RSS median / peak, heap max (MiB)",
        "reconciles/min",
        "reconcile p50 / p99 (ms)",
        "plan p50 / p99 (ms)",
        "API req/min",
        "pod create (ms)",
        "ADO req/min",
        "queue max",
        "loop lag p99 max (ms)",
      ],
      rows: [...windows, ...burstWindows].map(phaseRow),
      notes: [
        "CPU: /proc/<pid>/stat user + system over the phase (100 % = one core) and over its busiest 5 s; RSS: /proc/<pid>/status every second",
        "reconcile and plan: the operator's histograms, the difference between the phase's start and end (quantiles estimated from buckets)",
        "API req/min: the API server's count of the operator's ServiceAccount (APF FlowSchemas); pod create: the API server's mean time per pod POST; ADO req/min: the emulator's request log, the operator's PAT",
        "queue max: azp_scaler_workqueue_depth, loop lag: azp_scaler_process_nodejs_eventloop_lag_p99_seconds, both scraped every 5 s",
      ],
    },
    {
      title: "The operator's requests per minute, by kind",
      columns: [
        "phase",
        ...requestKindNames.map((k) => requestKinds[k].label),
        ...adoKinds.map((k) => `ADO ${adoLabels[k]}`),
      ],
      rows: [...windows, ...burstWindows].map((w) => [
        w.name,
        ...requestKindNames.map((k) => fixed(w.apiPerMin[k], 1)),
        ...adoKinds.map((k) => fixed(w.adoPerMin[k], 1)),
      ]),
      notes: [
        `Azure DevOps: ${o.pools} pools, one identity; the agents in the pods use another PAT and are not counted`,
      ],
    },
    {
      title: "Where reconciles spend their time: p99 / mean by stage (ms)",
      columns: ["phase", ...reconcileStages],
      rows: [...windows, ...burstWindows].map((w) => [
        w.name,
        ...reconcileStages.map((s) => {
          const v = w.stageMs[s];
          return v === undefined || !Number.isFinite(v.mean) ? "-" : `${fixed(v.p99, 1)} / ${fixed(v.mean, 1)}`;
        }),
      ]),
      notes: [
        "the operator's azp_scaler_reconcile_stage_duration_seconds: credentials, observe (pods, expectations, standby), plan (sharing, plan, actions), execute (queueing the writes, which run in lanes; cache-volume claims), status (building it; the write runs afterwards)",
      ],
    },
    {
      title: "Where a plan's time goes beyond its own work: the operator's main thread, per phase",
      columns: [
        "phase",
        "plans",
        `over ${targets.planP99Ms} ms`,
        "plan p50 / p99 (ms)",
        "main thread runs (ms/s)",
        "waits for a core (ms/s)",
        "waits, of its ready time",
        "its other threads run: V8 / libuv / other (ms/s)",
        "GC pauses minor / major / incremental (ms/s)",
      ],
      rows: [...windows, ...burstWindows].map((w) => {
        const { runMsPerS, waitMsPerS } = w.proc.mainThread;
        return [
          w.name,
          String(w.plans),
          String(w.plansOverTarget),
          `${ms(w.planMs.p50, 2)} / ${ms(w.planMs.p99, 2)}`,
          fixed(runMsPerS, 0),
          fixed(waitMsPerS, 0),
          Number.isFinite(runMsPerS + waitMsPerS) && runMsPerS + waitMsPerS > 0
            ? `${fixed((100 * waitMsPerS) / (runMsPerS + waitMsPerS), 0)} %`
            : "-",
          threadKinds.map((k) => fixed(w.proc.otherThreadsMsPerS[k], 0)).join(" / "),
          gcKinds.map((k) => fixed(w.gcMsPerS[k], 1)).join(" / "),
        ];
      }),
      notes: [
        "a plan is synchronous JavaScript: its duration is its own work, plus the time the main thread waited for a core (the API server, etcd, the virtual nodes, the emulator and the benchmark share the machine's cores) and garbage-collection pauses that fell within it",
        "main thread: /proc/<pid>/task/<pid>/schedstat (time running, time ready but waiting for a core), sampled every second; other threads: the same by thread name (V8: its workers for concurrent GC and compilation, libuv: the thread pool); GC pauses: the operator's azp_scaler_process_nodejs_gc_duration_seconds",
        `the plan alone, without the cluster, on a pool of the same world: npm run bench -- plan (docs/benchmarks.md#plan)`,
      ],
    },
    {
      title: `Bursts of ${o.burstJobs} jobs on ${bigPool} (${o.resourcesPerPool} resources), from queueing (s)`,
      columns: [
        "burst",
        "since last poll",
        "first poll",
        "first pod",
        "all pods created",
        "all pods Running",
        "all agents online",
        "all jobs running",
        "poll → all running",
        "job start p50 / p90",
        "pods",
        "ran no job",
        "dup. / started",
        "deleted idle",
        "failed",
        "jobs per resource",
      ],
      rows: bursts.map((b) => [
        `${b.rep} ${b.kind}`,
        secs(b.sinceLastPollMs, 1),
        fixed(b.firstPollS),
        fixed(b.firstPodS),
        fixed(b.allPodsCreatedS),
        fixed(b.allPodsRunningS),
        fixed(b.allAgentsOnlineS),
        fixed(b.allStartedS),
        fixed(b.pollToAllStartedS),
        `${secs(b.jobStartMs.median, 1)} / ${secs(b.jobStartMs.p90, 1)}`,
        String(b.podsCreated),
        String(b.extraPods.idle),
        `${b.extraPods.duplicateRequests} / ${b.extraPods.forStartedRequests}`,
        String(b.operatorPods.deleted.idle ?? 0),
        String(b.failedJobs),
        `${b.jobsPerResource.min}–${b.jobsPerResource.max} over ${b.jobsPerResource.resources}`,
      ]),
      notes: [
        `the virtual nodes' own pace beside it: ${paces
          .map(
            (p) =>
              `${p.pods} plain pods ${p.kind === "scheduled" ? "through the scheduler" : "with nodeName"} all Running after ${fixed(p.allRunningS)} s (${fixed(p.runningPerS, 0)} pods/s)`,
          )
          .join("; ")}`,
        `shared: every job demands \`burst\`, which each of the ${o.resourcesPerPool} resources' burst template meets (the operator shares them out); targeted: each job demands one resource's template (${Math.floor(o.burstJobs / o.resourcesPerPool)} per resource); single: every job demands ${resourceNames[0]?.[0]}'s template`,
        "since last poll: the burst's moment in the idle poll cycle; poll → all running: all running minus first poll",
        `jobs run ${secs(o.jobDurationMs, 0)} s; pods: burst pods created (one per job expected); ran no job: their agent got no job of the burst (removed after agentMinIdlePeriod ${o.agentMinIdlePeriod})`,
        "dup. / started: requests with more than one pod created for them / pods created for a request that had started a second before",
        ...bursts.flatMap((b) => b.extraPods.examples.map((e) => `burst ${b.rep}: ${e}`)),
      ],
    },
    {
      title: `Ramp and node pace (${o.nodes} virtual nodes, own processes)`,
      columns: [
        "what",
        "pods",
        "all created (s)",
        "all Running (s)",
        "agents online (s)",
        "pods/s",
        "create→Running p50 / p90 (s)",
      ],
      rows: [
        [
          "resources created → warm pods",
          String(ramp.pods),
          fixed(ramp.allCreatedS),
          fixed(ramp.allRunningS),
          fixed(ramp.allOnlineS),
          fixed(ramp.pods / ramp.allRunningS, 0),
          "-",
        ],
        ...paces.map((p) => [
          `plain pods, ${p.kind === "scheduled" ? "scheduler" : "nodeName"}`,
          String(p.pods),
          fixed(p.createCallsS),
          fixed(p.allRunningS),
          "-",
          fixed(p.runningPerS, 0),
          `${secs(p.createToRunningMs.median)} / ${secs(p.createToRunningMs.p90)}`,
        ]),
      ],
      notes: [
        `plain pods: created by the benchmark (${o.concurrency} calls in flight) with ${warmTotal} agent pods on the nodes, the operator idle`,
        `virtual node processes: event-loop delay max ${fixed(Math.max(...windows.map((w) => w.nodes.loopDelayMaxMs), ...burstWindows.map((w) => w.nodes.loopDelayMaxMs)), 0)} ms, RSS peak ${fixed(Math.max(...windows.map((w) => w.nodes.rssPeakMiB), ...burstWindows.map((w) => w.nodes.rssPeakMiB)), 0)} MiB (any node, any phase)`,
        `operator log: ${logLevels.warn} warn and ${logLevels.error} error lines; load average ${machine.loadAverage1m} at the start, ${loadEnd} at the end`,
      ],
    },
  ];

  const r1 = (v: number) => (Number.isFinite(v) ? Math.round(v * 10) / 10 : v);
  const r2 = (v: number) => (Number.isFinite(v) ? Math.round(v * 100) / 100 : v);
  const roundWindow = <T>(w: T): T => JSON.parse(JSON.stringify(w, (_k, v) => (typeof v === "number" ? r2(v) : v)));
  return {
    name:
      o.operatorCpus !== ""
        ? "scale-own-core"
        : o.operatorNice !== 0
          ? "scale-nice"
          : o.operatorFlags !== ""
            ? "scale-flags"
            : "scale",
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    machine: { ...machine, loadAverage1mEnd: loadEnd },
    ...(gitRevision() ? { revision: gitRevision() } : {}),
    parameters: { ...o, quick: ctx.quick, idlePollMs, targets },
    results: {
      targets: targetRows.map((r) => ({ measure: r.measure, value: r.value, target: r.target, pass: r.ok })),
      operatorPeakRssMiB: r1(peakRss),
      atScale: {
        reconcile: {
          count: recAtScale.count,
          p50Ms: r2(histogramQuantile(recAtScale, 0.5) * 1000),
          p99Ms: r2(recP99),
          meanMs: r2((recAtScale.sum / recAtScale.count) * 1000),
          buckets: recAtScale.buckets,
        },
        plan: {
          count: planAtScale.count,
          p50Ms: r2(histogramQuantile(planAtScale, 0.5) * 1000),
          p99Ms: r2(planP99),
          meanMs: r2((planAtScale.sum / planAtScale.count) * 1000),
          buckets: planAtScale.buckets,
        },
      },
      ramp: {
        ...ramp,
        allCreatedS: r2(ramp.allCreatedS),
        allRunningS: r2(ramp.allRunningS),
        allOnlineS: r2(ramp.allOnlineS),
      },
      nodePace: paces.map((p) => ({
        ...p,
        createToRunningMs: rounded(p.createToRunningMs),
        runningPerS: r1(p.runningPerS),
      })),
      burstAllRunningMedianS: r2(burstAllStarted),
      burstsByKind: kindsRun.map((kind) => {
        const bs = byKind(kind);
        return {
          kind,
          bursts: bs.length,
          allRunningMedianS: r2(median(bs.map((b) => b.allStartedS))),
          pollToAllRunningMedianS: r2(median(bs.map((b) => b.pollToAllStartedS))),
          podsCreatedMedian: median(bs.map((b) => b.podsCreated)),
          ranNoJobMedian: median(bs.map((b) => b.extraPods.idle)),
        };
      }),
      bursts: bursts.map((b) => ({
        ...roundWindow({ ...b, reaction: undefined, whole: undefined }),
        jobStartMs: rounded(b.jobStartMs),
        reaction: roundWindow(b.reaction),
        whole: roundWindow(b.whole),
      })),
      phases: windows.map(roundWindow),
      operatorLog: logLevels,
    },
    tables,
  };
}

export const scale: Benchmark = {
  name: "scale",
  description: "50 resources on 5 pools, 1,000 agent pods, a pool of 10,000 job requests, bursts of 200 jobs",
  expectedS: 660,
  run: (ctx) => runFleetBench(ctx),
};

if (import.meta.main) {
  await runBenchmarks([scale], { quick: quickFromArgv() });
}
