/**
 * Benchmark: how fast the operator reacts to queued jobs, and what it costs in Azure DevOps requests.
 *
 * The world of the end-to-end tests, with the operator as its own process: the control plane, the Azure DevOps
 * emulator (in this process), one virtual node (its own process) and three AutoScaledAgents on one pool (one gets
 * the jobs; the other two only share the pool, and so the poller). For each operator configuration (its defaults,
 * then short poll intervals) batches of N jobs are queued at once, always from an idle operator, at a random
 * moment of its idle poll cycle, and for every job the milestones are measured from its queue time:
 * - first poll: the operator's first job-request list after the queue time (the emulator's request log);
 * - pod created: the pod whose agent ran the job first seen by a watch;
 * - agent online: that agent's session opened (emulator);
 * - job start: `receiveTime - queueTime` (emulator); job done: `finishTime - queueTime` minus the job's duration.
 * Requests of the operator (it has a PAT of its own; agents use another) are counted while idle and while busy.
 *
 * `npx node bench/scale-up.ts [--quick]` (or through `bench/run.ts`).
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { RequestLogEntry } from "../sim/azure-devops/control.ts";
import { type AzureDevOpsEmulator, startAzureDevOpsEmulator } from "../sim/azure-devops/index.ts";
import { parseDuration } from "../src/api/v1/duration.ts";
import { flags } from "../src/cli/config.ts";
import {
  createNamespace,
  deleteNamespace,
  deleteNodeLease,
  ensureCrd,
  eventually,
  uniqueName,
} from "../test/support/cluster.ts";
import { registerPlaceholder } from "../test/support/emulator.ts";
import { type BenchContext, type Benchmark, quickFromArgv, runBenchmarks } from "./support/bench.ts";
import { benchLabels } from "./support/cluster.ts";
import { startNodeProcess } from "./support/node.ts";
import { startOperatorProcess } from "./support/operator.ts";
import { processRssMiB } from "./support/process.ts";
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

export interface OperatorConfigUnderTest {
  name: string;
  /** Operator flags. */
  args: string[];
  pollIntervalMs: number;
  idlePollIntervalMs: number;
}

const defaultPollMs = parseDuration(flags["poll-interval"]?.default ?? "5s");
const defaultIdleMs = parseDuration(flags["idle-poll-interval"]?.default ?? "15s");

export const operatorConfigs: OperatorConfigUnderTest[] = [
  { name: "default", args: [], pollIntervalMs: defaultPollMs, idlePollIntervalMs: defaultIdleMs },
  {
    name: "short",
    args: ["--poll-interval", "1s", "--idle-poll-interval", "1s"],
    pollIntervalMs: 1000,
    idlePollIntervalMs: 1000,
  },
];

export interface ScaleBenchOptions {
  configs: OperatorConfigUnderTest[];
  /** Batches, in order: N jobs queued at once, repeated `reps` times. */
  batches: { jobs: number; reps: number }[];
  jobDurationMs: number;
  /** maxCount of the resource that gets the jobs (above the largest batch). */
  maxCount: number;
  /** Resources sharing the pool (one gets the jobs). */
  resources: number;
  /** The idle window after start-up, in idle poll intervals (at least 20 s). */
  idleIntervals: number;
  jobTimeoutMs: number;
  seed: number;
}

export const defaultScaleBenchOptions: ScaleBenchOptions = {
  configs: operatorConfigs,
  batches: [
    { jobs: 1, reps: 5 },
    { jobs: 10, reps: 1 },
    { jobs: 50, reps: 1 },
  ],
  jobDurationMs: 2000,
  maxCount: 60,
  resources: 3,
  idleIntervals: 4,
  jobTimeoutMs: 180_000,
  seed: 4242,
};

const quickOptions: Partial<ScaleBenchOptions> = {
  batches: [
    { jobs: 1, reps: 1 },
    { jobs: 5, reps: 1 },
  ],
  idleIntervals: 2,
};

/** Azure DevOps' budget per identity: 200 TSTUs per sliding 5 minutes (the emulator charges 1 per request). */
const budgetPer5Min = 200;

/** A small seeded PRNG (mulberry32), so that the random queue moments are the same from run to run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Category = "jobRequests" | "agents" | "pools" | "agentDeletes" | "other";
const categories: readonly Category[] = ["jobRequests", "agents", "pools", "agentDeletes", "other"];

function categorize(e: RequestLogEntry): Category {
  const path = e.path.toLowerCase();
  if (e.method === "GET" && path.endsWith("/jobrequests")) return "jobRequests";
  if (e.method === "GET" && path.endsWith("/agents")) return "agents";
  if (e.method === "GET" && path.endsWith("/pools")) return "pools";
  if (e.method === "DELETE" && /\/agents\/\d+$/.test(path)) return "agentDeletes";
  return "other";
}

interface RequestCount {
  windowS: number;
  total: number;
  perMin: number;
  byCategory: Record<Category, number>;
  /** Projected use of the 5-minute budget at this rate (1 = all of it). */
  budgetShare: number;
}

/** The requests that started in [from, to). */
function countRequests(entries: readonly RequestLogEntry[], from: number, to: number): RequestCount {
  const byCategory = Object.fromEntries(categories.map((c) => [c, 0])) as Record<Category, number>;
  let total = 0;
  const ms = to - from;
  for (const e of entries) {
    const t = Date.parse(e.time);
    if (t >= from && t < to) {
      byCategory[categorize(e)]++;
      total++;
    }
  }
  const perMin = ms > 0 ? (total / ms) * 60_000 : Number.NaN;
  return { windowS: ms / 1000, total, perMin, byCategory, budgetShare: (perMin * 5) / budgetPer5Min };
}

interface BatchResult {
  config: string;
  jobs: number;
  rep: number;
  /** Per job, from its queue time (ms). */
  firstPollMs: Summary;
  podCreatedMs: Summary;
  agentOnlineMs: Summary;
  jobStartMs: Summary;
  /** finishTime - queueTime - duration. */
  doneOverheadMs: Summary;
  /** receiveTime minus the first poll after the queue time: the part the poll interval does not explain. */
  pollToStartMs: Summary;
  /** From the queue time: the last job started, the last job finished (s). */
  allStartedS: number;
  allFinishedS: number;
  /** The operator's last job-request list before the queue time to its first after (ms): its poll cycle then. */
  pollGapMs: number;
  podsCreated: number;
  failedJobs: number;
  busy: RequestCount;
}

interface ConfigResult {
  config: OperatorConfigUnderTest;
  /** Requests over whole idle poll cycles: from the first job-request list of the idle window to its last. */
  idle: RequestCount;
  /** Median time between two job-request lists while idle (ms). */
  idlePollIntervalMs: number;
  /** Job-request lists per configured idle interval while idle (1: one shared poll loop for every resource). */
  jobRequestListsPerIdleInterval: number;
  batches: BatchResult[];
  /** Raw per-job samples by batch size (ms), pooled over repetitions. */
  samples: Map<number, Record<JobMilestone, number[]>>;
  operatorRssPeakMiB: number;
}

const milestones = {
  firstPoll: "first poll",
  podCreated: "pod created",
  agentOnline: "agent online",
  jobStart: "job start",
  doneOverhead: "done − duration",
  /** Job start minus first poll: everything after the poll (operator, API server, node, agent start). */
  pollToStart: "poll → start",
} as const;
type JobMilestone = keyof typeof milestones;

async function runConfig(
  ctx: BenchContext,
  o: ScaleBenchOptions,
  config: OperatorConfigUnderTest,
  random: () => number,
): Promise<ConfigResult> {
  const { client } = ctx.cluster;
  const log = (line: string) => ctx.log(`${config.name}: ${line}`);
  const cleanups = ctx.cleanups;
  const ns = await createNamespace(client, "bench-scale", { labels: benchLabels });
  const removeNamespace = cleanups.add(`namespace ${ns}`, () => deleteNamespace(client, ns));
  const pool = "bench pool";
  const pats = {
    operator: uniqueName("pat-operator"),
    agents: uniqueName("pat-agents"),
    bench: uniqueName("pat-bench"),
  };
  const ado: AzureDevOpsEmulator = await startAzureDevOpsEmulator({
    pools: [pool],
    pats: [
      { token: pats.operator, scope: "manage", identity: "operator" },
      { token: pats.agents, scope: "manage", identity: "agents" },
      { token: pats.bench, scope: "manage", identity: "bench" },
    ],
    messagePollTimeoutMs: 10_000,
    requestLogLimit: 1_000_000,
    log: () => {},
  });
  const closeAdo = cleanups.add("Azure DevOps emulator", () => ado.close());
  const online = new Map<string, number>();
  ado.control.on("agent", (a) => {
    if (a.status === "online" && !online.has(a.name)) online.set(a.name, Date.now());
  });

  const nodeName = uniqueName("bench-scale-node");
  const nodeLabel = { "azp.bench/node": nodeName };
  const node = await startNodeProcess(
    {
      kubeconfig: ctx.cluster.kubeconfig,
      name: nodeName,
      labels: nodeLabel,
      heartbeatMs: 10_000,
      retryMs: 500,
      agentToken: pats.agents,
    },
    join(ctx.workDir, `${config.name}-${nodeName}.log`),
  );
  const stopNode = cleanups.add(`virtual node ${nodeName}`, async () => {
    await deleteNamespace(client, ns, { wait: true }).catch(() => {});
    await node.stop();
    await deleteNodeLease(client, nodeName);
  });

  await client.request({
    method: "POST",
    path: `/api/v1/namespaces/${ns}/secrets`,
    body: { metadata: { name: "azure-pat" }, stringData: { pat: pats.operator } },
  });
  // Offline placeholder agents, so that Azure DevOps queues the jobs instead of failing them.
  const names = Array.from({ length: o.resources }, (_, i) => `bench-${String.fromCharCode(97 + i)}`);
  for (const name of names) {
    await registerPlaceholder(ado, { pat: pats.bench, name: `placeholder-${name}`, capabilities: { [name]: "1" } });
  }
  for (const [i, name] of names.entries()) {
    await client.request({
      method: "POST",
      path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents`,
      body: {
        apiVersion: "azurepipelines.k8s.scaler.io/v1",
        kind: "AutoScaledAgent",
        metadata: { name },
        spec: {
          poolName: pool,
          organizationUrl: ado.organizationUrl,
          personalAccessTokenSecretName: "azure-pat",
          maxTerminatedPodsToKeep: 0,
          podsWithCapabilities: [
            {
              capabilities: { [name]: "1" },
              minCount: 0,
              maxCount: i === 0 ? o.maxCount : 5,
              podTemplateSpec: {
                spec: {
                  nodeSelector: nodeLabel,
                  containers: [
                    {
                      name: "azure-pipelines-agent",
                      image: "example.com/azure-pipelines-agent:bench",
                      args: ["--once"],
                    },
                  ],
                },
              },
            },
          ],
        },
      },
    });
  }
  const tracker = new PodTracker(client, ns);
  await tracker.start();
  const stopTracker = cleanups.add("pod watcher", () => tracker.stop());

  const operator = startOperatorProcess({
    kubeconfig: ctx.cluster.kubeconfig,
    namespaces: [ns],
    logFile: join(ctx.workDir, `${config.name}-operator.log`),
    args: config.args,
  });
  const stopOperator = cleanups.add("operator", () => operator.stop());
  let rssPeak = 0;
  const rssSampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, processRssMiB(operator.child.pid ?? 0) ?? 0);
  }, 500);
  const stopSampler = cleanups.add("operator memory sampler", () => clearInterval(rssSampler));
  await operator.waitForLog(/caches synced/);
  const operatorRequests = () => ado.control.requests().filter((e) => e.identity === "operator");
  const jobListTimes = () =>
    operatorRequests()
      .filter((e) => categorize(e) === "jobRequests")
      .map((e) => Date.parse(e.time));
  await eventually(
    "the operator's first job-request poll",
    () => (jobListTimes().length > 0 ? true : undefined),
    60_000,
    100,
  );
  log("operator up and polling");

  // Idle: the poll loop goes idle once a poll sees nothing move; from then on, whole poll cycles are counted.
  const settleMs = config.pollIntervalMs + 2000;
  await sleep(settleMs);
  const idleFrom = Date.now();
  await sleep(Math.max(20_000, o.idleIntervals * config.idlePollIntervalMs) + 500);
  const idleLists = jobListTimes().filter((t) => t >= idleFrom);
  const firstList = idleLists[0] ?? idleFrom;
  const lastList = idleLists.at(-1) ?? Date.now();
  const idle = countRequests(operatorRequests(), firstList, lastList);
  const idleGaps = idleLists.slice(1).map((t, i) => t - (idleLists[i] as number));
  log(`idle: ${idle.total} requests over ${fixed(idle.windowS, 0)} s (${idleGaps.length} poll cycles)`);

  const batches: BatchResult[] = [];
  const samples = new Map<number, Record<JobMilestone, number[]>>();
  for (const batch of o.batches) {
    for (let rep = 1; rep <= batch.reps; rep++) {
      // A random moment of the idle poll cycle (seeded: the same moments on every run).
      await sleep(Math.round(random() * config.idlePollIntervalMs));
      const queuedAt = Date.now();
      const before = jobListTimes().filter((t) => t < queuedAt);
      const jobs = Array.from({ length: batch.jobs }, () =>
        ado.control.queueJob({ pool, demands: [names[0] as string], durationMs: o.jobDurationMs }),
      );
      const done = await Promise.all(
        jobs.map((j) =>
          ado.control.waitForJob(j.requestId, (v) => v.state === "finished", { timeoutMs: o.jobTimeoutMs }),
        ),
      );
      await tracker.waitFor("every agent pod gone", () => tracker.live().length === 0, o.jobTimeoutMs);
      const goneAt = Date.now();

      const after = jobListTimes().filter((t) => t >= queuedAt);
      const q = (j: (typeof done)[number]) => Date.parse(j.queueTime);
      const ms = (at: number | undefined, j: (typeof done)[number]) => (at === undefined ? Number.NaN : at - q(j));
      const firstPollAfter = (t: number) => jobListTimes().find((x) => x >= t);
      const agentOf = (j: (typeof done)[number]) => j.reservedAgent?.name ?? "";
      const newPods = [...tracker.times.entries()].filter(([, t]) => (t.added ?? 0) >= queuedAt);
      const raw: Record<JobMilestone, number[]> = {
        firstPoll: done.map((j) => ms(firstPollAfter(q(j)), j)),
        podCreated: done.map((j) => ms(tracker.times.get(agentOf(j))?.added, j)),
        agentOnline: done.map((j) => ms(online.get(agentOf(j)), j)),
        jobStart: done.map((j) => ms(j.receiveTime ? Date.parse(j.receiveTime) : undefined, j)),
        doneOverhead: done.map((j) => ms(j.finishTime ? Date.parse(j.finishTime) : undefined, j) - o.jobDurationMs),
        pollToStart: [],
      };
      raw.pollToStart = raw.jobStart.map((v, i) => v - (raw.firstPoll[i] ?? Number.NaN));
      const pooled = samples.get(batch.jobs);
      samples.set(
        batch.jobs,
        Object.fromEntries(
          (Object.keys(milestones) as JobMilestone[]).map((k) => [k, [...(pooled?.[k] ?? []), ...raw[k]]]),
        ) as Record<JobMilestone, number[]>,
      );
      const result: BatchResult = {
        config: config.name,
        jobs: batch.jobs,
        rep,
        firstPollMs: summarize(raw.firstPoll),
        podCreatedMs: summarize(raw.podCreated),
        agentOnlineMs: summarize(raw.agentOnline),
        jobStartMs: summarize(raw.jobStart),
        doneOverheadMs: summarize(raw.doneOverhead),
        pollToStartMs: summarize(raw.pollToStart),
        allStartedS:
          Math.max(...done.map((j) => (j.receiveTime ? Date.parse(j.receiveTime) : Number.NaN))) / 1000 -
          queuedAt / 1000,
        allFinishedS:
          Math.max(...done.map((j) => (j.finishTime ? Date.parse(j.finishTime) : Number.NaN))) / 1000 - queuedAt / 1000,
        pollGapMs: (after[0] ?? Number.NaN) - (before.at(-1) ?? Number.NaN),
        podsCreated: newPods.length,
        failedJobs: done.filter((j) => j.result !== "succeeded").length,
        busy: countRequests(operatorRequests(), queuedAt, goneAt),
      };
      batches.push(result);
      log(
        `${batch.jobs} job(s) #${rep}: first poll ${secs(result.firstPollMs.median)} s, pod ${secs(result.podCreatedMs.median)} s, ` +
          `start ${secs(result.jobStartMs.median)} s (median), all done ${fixed(result.allFinishedS)} s, ` +
          `${result.podsCreated} pods, ${result.busy.total} operator requests`,
      );
      // Back to idle: the poll after the last change sees nothing move, then the idle interval applies.
      await sleep(settleMs);
    }
  }

  await stopOperator();
  await stopSampler();
  await stopTracker();
  await stopNode();
  await removeNamespace();
  await closeAdo();
  return {
    config,
    idle,
    idlePollIntervalMs: median(idleGaps),
    jobRequestListsPerIdleInterval: idle.byCategory.jobRequests / ((idle.windowS * 1000) / config.idlePollIntervalMs),
    batches,
    samples,
    operatorRssPeakMiB: rssPeak,
  };
}

export async function runScaleBench(
  ctx: BenchContext,
  overrides: Partial<ScaleBenchOptions> = {},
): Promise<BenchResult> {
  const o: ScaleBenchOptions = { ...defaultScaleBenchOptions, ...(ctx.quick ? quickOptions : {}), ...overrides };
  const started = new Date();
  const machine = machineInfo({ kubernetes: ctx.cluster.kubernetes });
  await ensureCrd(ctx.cluster.client, "azp-bench");
  const random = seeded(o.seed);
  const results: ConfigResult[] = [];
  for (const config of o.configs) results.push(await runConfig(ctx, o, config, random));
  const loadEnd = machineInfo().loadAverage1m;

  const label = (c: OperatorConfigUnderTest) =>
    `${c.name} (${secs(c.pollIntervalMs, 0)} s / ${secs(c.idlePollIntervalMs, 0)} s)`;
  const sizes = [...new Set(o.batches.map((b) => b.jobs))];
  // Per config and batch size: every job of every repetition pooled.
  const pooled = results.flatMap((r) =>
    sizes.map((jobs) => {
      const bs = r.batches.filter((b) => b.jobs === jobs);
      const raw = r.samples.get(jobs);
      const of = (k: JobMilestone) => summarize(raw?.[k] ?? []);
      return {
        config: r.config.name,
        label: label(r.config),
        jobs,
        reps: bs.length,
        firstPollMs: of("firstPoll"),
        podCreatedMs: of("podCreated"),
        agentOnlineMs: of("agentOnline"),
        jobStartMs: of("jobStart"),
        doneOverheadMs: of("doneOverhead"),
        pollToStartMs: of("pollToStart"),
        allStartedS: median(bs.map((b) => b.allStartedS)),
        allFinishedS: median(bs.map((b) => b.allFinishedS)),
        pollGapMs: median(bs.map((b) => b.pollGapMs)),
        podsCreated: bs.map((b) => b.podsCreated),
        failedJobs: bs.reduce((a, b) => a + b.failedJobs, 0),
        busyPerMin: median(bs.map((b) => b.busy.perMin)),
        busyRequests: median(bs.map((b) => b.busy.total)),
      };
    }),
  );
  const cell = (s: Summary) => `${secs(s.median, 1)} / ${secs(s.p90, 1)} / ${secs(s.max, 1)}`;
  const ratios = sizes.map((jobs) => {
    const of = (name: string) => pooled.find((p) => p.config === name && p.jobs === jobs);
    const d = of("default");
    const s = of("short");
    return {
      jobs,
      jobStart: d && s ? d.jobStartMs.median / s.jobStartMs.median : Number.NaN,
      podCreated: d && s ? d.podCreatedMs.median / s.podCreatedMs.median : Number.NaN,
      allFinished: d && s ? d.allFinishedS / s.allFinishedS : Number.NaN,
      pollToStart: d && s ? d.pollToStartMs.median / s.pollToStartMs.median : Number.NaN,
    };
  });
  const idleRatio = (() => {
    const d = results.find((r) => r.config.name === "default");
    const s = results.find((r) => r.config.name === "short");
    return d && s ? s.idle.perMin / d.idle.perMin : Number.NaN;
  })();

  const tables: Table[] = [
    {
      title: `Reaction per job, from its queue time (s, median / p90 / max; config: poll / idle poll interval; job runs ${secs(o.jobDurationMs, 0)} s)`,
      columns: [
        "config",
        "jobs",
        "reps",
        "first poll",
        "pod created",
        "agent online",
        "job start",
        "done − duration",
        "poll → start",
      ],
      rows: pooled.map((p) => [
        p.label,
        String(p.jobs),
        String(p.reps),
        cell(p.firstPollMs),
        cell(p.podCreatedMs),
        cell(p.agentOnlineMs),
        cell(p.jobStartMs),
        cell(p.doneOverheadMs),
        cell(p.pollToStartMs),
      ]),
      notes: [
        "every batch is queued at once, from an idle operator, at a random moment of its idle poll cycle",
        "over every job of every repetition of the batch size",
        "poll → start: job start minus first poll, what the poll interval does not explain (operator, pods, agents)",
      ],
    },
    {
      title: "Per batch (median over repetitions)",
      columns: [
        "config",
        "jobs",
        "all started (s)",
        "all done (s)",
        "pods created",
        "poll gap (s)",
        "failed",
        "requests",
        "req/min",
      ],
      rows: pooled.map((p) => [
        p.label,
        String(p.jobs),
        fixed(p.allStartedS),
        fixed(p.allFinishedS),
        p.podsCreated.join(", "),
        secs(p.pollGapMs, 1),
        String(p.failedJobs),
        fixed(p.busyRequests, 0),
        fixed(p.busyPerMin, 0),
      ]),
      notes: [
        "poll gap: the operator's job-request lists before and after the queue time (≈ the idle interval when idle)",
        "requests, req/min: the operator's Azure DevOps requests from the queue time until every pod is gone",
      ],
    },
    {
      title: `Operator's Azure DevOps requests while idle (${o.resources} AutoScaledAgents on one pool, one identity)`,
      columns: [
        "config",
        "observed (s)",
        "poll every (s)",
        "req/min",
        "job lists",
        "agent lists",
        "pool lookups",
        "agent deletes",
        "lists per idle interval",
        "of the 5-min budget",
        "RSS peak (MiB)",
      ],
      rows: results.map((r) => [
        label(r.config),
        fixed(r.idle.windowS, 0),
        secs(r.idlePollIntervalMs, 1),
        fixed(r.idle.perMin),
        String(r.idle.byCategory.jobRequests),
        String(r.idle.byCategory.agents),
        String(r.idle.byCategory.pools),
        String(r.idle.byCategory.agentDeletes),
        fixed(r.jobRequestListsPerIdleInterval, 2),
        `${fixed(r.idle.budgetShare * 100, 0)} %`,
        fixed(r.operatorRssPeakMiB, 0),
      ]),
      notes: [
        "observed: whole idle poll cycles after start-up, from the first job-request list of the window to the last",
        `lists per idle interval ≈ 1: the ${o.resources} resources share one poll loop (one loop each would give ${o.resources})`,
        `of the 5-min budget: req/min × 5 against Azure DevOps' ${budgetPer5Min} TSTUs per identity (1 per request in the emulator)`,
        "RSS peak: the operator process over the whole configuration",
      ],
    },
    {
      title: "Ratios of medians, default / short (same run)",
      columns: ["jobs", "job start", "pod created", "all done", "poll → start"],
      rows: ratios.map((r) => [
        String(r.jobs),
        fixed(r.jobStart, 2),
        fixed(r.podCreated, 2),
        fixed(r.allFinished, 2),
        fixed(r.pollToStart, 2),
      ]),
      notes: [
        "poll → start ≈ 1: past the first poll both configurations are equally fast; the difference is the polling",
        `idle request rate, short / default: ${fixed(idleRatio, 1)}`,
      ],
    },
  ];

  const roundBatch = (b: BatchResult) => ({
    ...b,
    firstPollMs: rounded(b.firstPollMs),
    podCreatedMs: rounded(b.podCreatedMs),
    agentOnlineMs: rounded(b.agentOnlineMs),
    jobStartMs: rounded(b.jobStartMs),
    doneOverheadMs: rounded(b.doneOverheadMs),
    pollToStartMs: rounded(b.pollToStartMs),
    allStartedS: Math.round(b.allStartedS * 100) / 100,
    allFinishedS: Math.round(b.allFinishedS * 100) / 100,
    pollGapMs: Math.round(b.pollGapMs),
    busy: roundCount(b.busy),
  });
  return {
    name: "scale-up",
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    machine: { ...machine, loadAverage1mEnd: loadEnd },
    ...(gitRevision() ? { revision: gitRevision() } : {}),
    parameters: { ...o, quick: ctx.quick },
    results: {
      summary: pooled.map((p) => ({
        ...p,
        firstPollMs: rounded(p.firstPollMs),
        podCreatedMs: rounded(p.podCreatedMs),
        agentOnlineMs: rounded(p.agentOnlineMs),
        jobStartMs: rounded(p.jobStartMs),
        doneOverheadMs: rounded(p.doneOverheadMs),
        pollToStartMs: rounded(p.pollToStartMs),
        allStartedS: Math.round(p.allStartedS * 100) / 100,
        allFinishedS: Math.round(p.allFinishedS * 100) / 100,
        pollGapMs: Math.round(p.pollGapMs),
        busyPerMin: Math.round(p.busyPerMin * 10) / 10,
      })),
      ratiosDefaultOverShort: ratios.map((r) => ({
        jobs: r.jobs,
        jobStart: Math.round(r.jobStart * 100) / 100,
        podCreated: Math.round(r.podCreated * 100) / 100,
        allFinished: Math.round(r.allFinished * 100) / 100,
        pollToStart: Math.round(r.pollToStart * 100) / 100,
      })),
      idleRequestRateShortOverDefault: Math.round(idleRatio * 10) / 10,
      configs: results.map((r) => ({
        config: r.config,
        idle: roundCount(r.idle),
        idlePollIntervalMs: Math.round(r.idlePollIntervalMs),
        jobRequestListsPerIdleInterval: Math.round(r.jobRequestListsPerIdleInterval * 100) / 100,
        operatorRssPeakMiB: Math.round(r.operatorRssPeakMiB),
        batches: r.batches.map(roundBatch),
      })),
    },
    tables,
  };
}

function roundCount(c: RequestCount): RequestCount {
  return {
    ...c,
    windowS: Math.round(c.windowS * 10) / 10,
    perMin: Math.round(c.perMin * 10) / 10,
    budgetShare: Math.round(c.budgetShare * 100) / 100,
  };
}

export const scaleUp: Benchmark = {
  name: "scale-up",
  description: "operator reaction to 1, 10 and 50 queued jobs, default and short poll intervals; request rates",
  expectedS: 300,
  run: (ctx) => runScaleBench(ctx),
};

if (import.meta.main) {
  await runBenchmarks([scaleUp], { quick: quickFromArgv() });
}
