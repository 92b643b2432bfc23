/**
 * Benchmark: how fast the operator starts queued jobs, what it costs in Azure DevOps requests, and how it reads a
 * huge pool.
 *
 * The world of the end-to-end tests, with the operator as its own process: the control plane, the Azure DevOps
 * emulator (in this process), one virtual node (its own process) and AutoScaledAgents on one pool (one gets the
 * jobs; the others only share the pool, and so the poller). For each operator configuration (its defaults first,
 * then a few other settings for "choosing intervals"):
 * - idle requests: the operator's Azure DevOps requests over a quiet minute, with one AutoScaledAgent on the pool
 *   and then with three (one shared poll loop: the count must not grow);
 * - single jobs: one job at a time, always from an idle operator (its poll loop back at the quiet pace), queued at a
 *   random moment of the poll cycle; queue -> running (`receiveTime - queueTime`), p50 and p90 over the samples;
 * - bursts: N jobs queued at once from idle; the time until every one runs.
 * Per job, also the operator's first job-request list after the queue time (the emulator's request log), the pod
 * created (watch) and poll -> start (what the poll interval does not explain).
 *
 * Huge pool (no operator): a pool holding 10,000 job requests (mostly finished, some queued); one poll's job-request
 * list with the operator's query (`completedRequestCount=0`) against the service's default query and against all of
 * them read in continuation pages: duration and answer size.
 *
 * `npx node bench/scale-up.ts [--quick] [--config NAME ...]` (or through `bench/run.ts`).
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { RequestLogEntry } from "../sim/azure-devops/control.ts";
import { type AzureDevOpsEmulator, startAzureDevOpsEmulator } from "../sim/azure-devops/index.ts";
import { parseDuration } from "../src/api/v1/duration.ts";
import { patCredential } from "../src/azure-devops/auth.ts";
import { AzureDevOpsClient } from "../src/azure-devops/client.ts";
import { budgetShare } from "../src/azure-devops/governor.ts";
import { budgetIntervalMs, defaultPollerOptions } from "../src/azure-devops/poller.ts";
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
import { mulberry32 } from "./chaos/prng.ts";
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
  /** Operator flags (none: its defaults). */
  args: string[];
  /** Single jobs queued one at a time from idle. */
  singles: number;
  /** Batches queued at once from idle. */
  bursts: { jobs: number; reps: number }[];
  /** Idle windows measured, by the number of AutoScaledAgents on the pool (in this order; the last one stays). */
  idleWith: number[];
}

/** A flag's value in `args`, else its default. */
function flagValue(args: readonly string[], name: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? (args[i + 1] ?? "") : (flags[name]?.default ?? "");
}

/** The quiet poll interval of a configuration with one pool on its identity, as the poller computes it. */
export function expectedIdleMs(args: readonly string[]): number {
  const idle = parseDuration(flagValue(args, "idle-poll-interval"));
  const share = budgetShare(Number(flagValue(args, "poll-budget")), 1, Number(flagValue(args, "pool-poll-budget")));
  return Math.max(idle, budgetIntervalMs({ requestsPerMinute: share, live: false }, defaultPollerOptions));
}

export const operatorConfigs: OperatorConfigUnderTest[] = [
  {
    name: "default",
    args: [],
    singles: 20,
    bursts: [
      { jobs: 20, reps: 6 },
      { jobs: 50, reps: 3 },
    ],
    idleWith: [1, 3],
  },
  { name: "budget 10", args: ["--poll-budget", "10"], singles: 8, bursts: [], idleWith: [3] },
  {
    name: "budget 40",
    args: ["--idle-poll-interval", "1500ms", "--poll-budget", "40", "--pool-poll-budget", "40"],
    singles: 8,
    bursts: [],
    idleWith: [3],
  },
  {
    name: "previous defaults",
    args: ["--poll-interval", "5s", "--idle-poll-interval", "15s"],
    singles: 5,
    bursts: [],
    idleWith: [3],
  },
];

export interface ScaleBenchOptions {
  configs: OperatorConfigUnderTest[];
  /** Duration of a single job and of burst jobs. */
  singleJobMs: number;
  burstJobMs: number;
  /** maxCount of the resource that gets the jobs (above the largest burst). */
  maxCount: number;
  /** The quiet window over which idle requests are counted. */
  idleWindowMs: number;
  jobTimeoutMs: number;
  seed: number;
  /** Job requests of the huge pool, and how many of them stay queued. */
  hugePool: { requests: number; queued: number; samples: number; pageSize: number } | undefined;
}

export const defaultScaleBenchOptions: ScaleBenchOptions = {
  configs: operatorConfigs,
  singleJobMs: 1000,
  burstJobMs: 2000,
  maxCount: 60,
  idleWindowMs: 60_000,
  jobTimeoutMs: 180_000,
  seed: 4242,
  hugePool: { requests: 10_000, queued: 50, samples: 15, pageSize: 200 },
};

const quickOptions: Partial<ScaleBenchOptions> = {
  configs: [{ name: "default", args: [], singles: 4, bursts: [{ jobs: 20, reps: 1 }], idleWith: [1, 3] }],
  idleWindowMs: 20_000,
  hugePool: { requests: 2_000, queued: 20, samples: 5, pageSize: 200 },
};

/** Azure DevOps' budget per identity: 200 TSTUs per sliding 5 minutes (the emulator charges 1 per request). */
const budgetPer5Min = 200;

/** The same seeded PRNG as the chaos run (mulberry32): the same moments in every run. */
const seeded = mulberry32;

/** 0..n-1 in a random order (Fisher-Yates). */
function shuffled(n: number, random: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j] as number, a[i] as number];
  }
  return a;
}

type Category = "jobRequests" | "agents" | "pools" | "other";
const categories: readonly Category[] = ["jobRequests", "agents", "pools", "other"];

function categorize(e: RequestLogEntry): Category {
  const path = e.path.toLowerCase();
  if (e.method === "GET" && path.endsWith("/jobrequests")) return "jobRequests";
  if (e.method === "GET" && path.endsWith("/agents")) return "agents";
  if (e.method === "GET" && path.endsWith("/pools")) return "pools";
  return "other";
}

interface RequestCount {
  windowS: number;
  total: number;
  perMin: number;
  byCategory: Record<Category, number>;
  /** Job-request and agent lists per minute: the target's measure. */
  listsPerMin: number;
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
  const listsPerMin = ms > 0 ? ((byCategory.jobRequests + byCategory.agents) / ms) * 60_000 : Number.NaN;
  return { windowS: ms / 1000, total, perMin, byCategory, listsPerMin, budgetShare: (perMin * 5) / budgetPer5Min };
}

interface JobSample {
  /** The operator's job-request lists before and after the queue time: its poll cycle then (ms). */
  pollGapMs: number;
  /** From the queue time (ms). */
  firstPollMs: number;
  podCreatedMs: number;
  jobStartMs: number;
  pollToStartMs: number;
}

interface BurstResult {
  jobs: number;
  rep: number;
  /** From the queue time until the last job runs (ms). */
  allRunningMs: number;
  firstPollMs: number;
  jobStart: Summary;
  podsCreated: number;
  failedJobs: number;
  requests: RequestCount;
}

interface IdleResult {
  resources: number;
  requests: RequestCount;
  /** Median time between two job-request lists (ms). */
  pollEveryMs: number;
}

interface ConfigResult {
  config: OperatorConfigUnderTest;
  expectedIdleMs: number;
  idle: IdleResult[];
  singles: JobSample[];
  bursts: BurstResult[];
  /** Operator requests per single job: from its queue time until 37 s after its pod was gone. */
  requestsPerSingleJob: number;
  /** The same minus what the quiet pace would have spent over that window: what a job costs. */
  extraRequestsPerSingleJob: number;
  operatorRssPeakMiB: number;
}

async function runConfig(
  ctx: BenchContext,
  o: ScaleBenchOptions,
  config: OperatorConfigUnderTest,
  random: () => number,
): Promise<ConfigResult> {
  const { client } = ctx.cluster;
  const log = (line: string) => ctx.log(`${config.name}: ${line}`);
  const cleanups = ctx.cleanups;
  const idleMs = expectedIdleMs(config.args);
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
    join(ctx.workDir, `${config.name.replace(/\W+/g, "-")}-${nodeName}.log`),
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
  const resources = Math.max(...config.idleWith, 1);
  const names = Array.from({ length: resources }, (_, i) => `bench-${String.fromCharCode(97 + i)}`);
  // Offline placeholder agents, so that Azure DevOps queues the jobs instead of failing them.
  for (const name of names) {
    await registerPlaceholder(ado, { pat: pats.bench, name: `placeholder-${name}`, capabilities: { [name]: "1" } });
  }
  let created = 0;
  const createResources = async (count: number) => {
    for (; created < count; created++) {
      const name = names[created] as string;
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
                maxCount: created === 0 ? o.maxCount : 5,
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
  };
  await createResources(config.idleWith[0] ?? 1);
  const tracker = new PodTracker(client, ns);
  await tracker.start();
  const stopTracker = cleanups.add("pod watcher", () => tracker.stop());

  const operator = startOperatorProcess({
    kubeconfig: ctx.cluster.kubeconfig,
    namespaces: [ns],
    logFile: join(ctx.workDir, `${config.name.replace(/\W+/g, "-")}-operator.log`),
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
  );
  log(`operator up and polling (quiet interval ${secs(idleMs, 2)} s expected)`);

  /**
   * Until the poll loop is back at its quiet pace (the last two gaps between job-request lists are quiet ones),
   * returning just after a poll (within 20 ms of this process seeing its request).
   */
  const quiet = async () => {
    const enteredAt = Date.now();
    await eventually(
      "the poll loop back at its quiet pace",
      () => {
        const t = jobListTimes();
        if (t.length < 3) return undefined;
        const [a, b, c] = t.slice(-3) as [number, number, number];
        const q = 0.8 * idleMs;
        return b - a >= q && c - b >= q && c > enteredAt && Date.now() - c < 200 ? true : undefined;
      },
      180_000,
      20,
    );
  };

  const idle: IdleResult[] = [];
  for (const count of config.idleWith) {
    await createResources(count);
    await sleep(2_000);
    await quiet();
    const from = Date.now();
    await sleep(o.idleWindowMs);
    const lists = jobListTimes().filter((t) => t >= from);
    const first = lists[0] ?? from;
    const last = lists.at(-1) ?? Date.now();
    const requests = countRequests(operatorRequests(), first, last);
    const gaps = lists.slice(1).map((t, i) => t - (lists[i] as number));
    idle.push({ resources: count, requests, pollEveryMs: median(gaps) });
    log(
      `idle with ${count} resource(s): ${fixed(requests.perMin)} requests/min (${requests.byCategory.jobRequests} job lists, ` +
        `${requests.byCategory.agents} agent lists over ${fixed(requests.windowS, 0)} s), a poll every ${secs(median(gaps))} s`,
    );
  }

  /**
   * The last moment something happened on the pool. For 10 s after it the poller polls fast; for 35 s it takes the
   * pool for one with live pods (no subscriber says otherwise yet) and keeps budget for agent lists (a job-request
   * list every 3.33 s instead of 3.03 s). Idle is after both.
   */
  let lastActivity = Date.now();
  const settleMs = Math.max(defaultPollerOptions.fastWindowMs, defaultPollerOptions.liveMemoryMs) + 2_000;
  /**
   * Queues `count` jobs at a random moment of a quiet poll cycle (the fast window over, the loop back at its quiet
   * pace), waits until they are done and their pods gone. `stratum` (k of n) spreads the moments of a series evenly
   * over the cycle: the k-th sample falls at a random point of the k-th n-th of it (stratified sampling: the same
   * distribution as plain random moments, without a series that happens to land in one part of the cycle).
   */
  const batch = async (count: number, durationMs: number, stratum: { k: number; n: number }) => {
    await sleep(Math.max(0, lastActivity + settleMs - Date.now()));
    await quiet();
    // quiet() returns just after a poll: the delay is the moment in the cycle.
    await sleep(Math.round(((stratum.k + random()) / stratum.n) * idleMs));
    const queuedAt = Date.now();
    const jobs = Array.from({ length: count }, () =>
      ado.control.queueJob({ pool, demands: [names[0] as string], durationMs }),
    );
    const done = await Promise.all(
      jobs.map((j) =>
        ado.control.waitForJob(j.requestId, (v) => v.state === "finished", { timeoutMs: o.jobTimeoutMs }),
      ),
    );
    await tracker.waitFor("every agent pod gone", () => tracker.live().length === 0, o.jobTimeoutMs);
    lastActivity = Date.now();
    const lists = jobListTimes();
    const firstPoll = lists.find((t) => t >= queuedAt) ?? Number.NaN;
    const samples: JobSample[] = done.map((j) => {
      const q = Date.parse(j.queueTime);
      const start = j.receiveTime ? Date.parse(j.receiveTime) - q : Number.NaN;
      const poll = (lists.find((t) => t >= q) ?? Number.NaN) - q;
      const before = lists.filter((t) => t < q).at(-1) ?? Number.NaN;
      return {
        pollGapMs: poll + q - before,
        firstPollMs: poll,
        podCreatedMs: (tracker.times.get(j.reservedAgent?.name ?? "")?.added ?? Number.NaN) - q,
        jobStartMs: start,
        pollToStartMs: start - poll,
      };
    });
    return { queuedAt, done, samples, firstPollMs: firstPoll - queuedAt };
  };

  const singles: JobSample[] = [];
  const singleRequests: { total: number; windowMs: number }[] = [];
  const order = shuffled(config.singles, random);
  for (let i = 1; i <= config.singles; i++) {
    const r = await batch(1, o.singleJobMs, { k: order[i - 1] as number, n: config.singles });
    const s = r.samples[0] as JobSample;
    singles.push(s);
    await sleep(Math.max(0, lastActivity + settleMs - Date.now()));
    const until = Date.now();
    singleRequests.push({
      total: countRequests(operatorRequests(), r.queuedAt, until).total,
      windowMs: until - r.queuedAt,
    });
    log(
      `single job ${i}/${config.singles}: first poll ${secs(s.firstPollMs)} s, pod ${secs(s.podCreatedMs)} s, ` +
        `running ${secs(s.jobStartMs)} s after queueing`,
    );
  }

  const bursts: BurstResult[] = [];
  for (const b of config.bursts) {
    const strata = shuffled(b.reps, random);
    for (let rep = 1; rep <= b.reps; rep++) {
      const r = await batch(b.jobs, o.burstJobMs, { k: strata[rep - 1] as number, n: b.reps });
      const goneAt = Date.now();
      const starts = r.done.map((j) => (j.receiveTime ? Date.parse(j.receiveTime) : Number.NaN));
      const result: BurstResult = {
        jobs: b.jobs,
        rep,
        allRunningMs: Math.max(...starts) - r.queuedAt,
        firstPollMs: r.firstPollMs,
        jobStart: summarize(r.samples.map((s) => s.jobStartMs)),
        podsCreated: [...tracker.times.values()].filter((t) => (t.added ?? 0) >= r.queuedAt).length,
        failedJobs: r.done.filter((j) => j.result !== "succeeded").length,
        requests: countRequests(operatorRequests(), r.queuedAt, goneAt),
      };
      bursts.push(result);
      log(
        `${b.jobs} jobs #${rep}: first poll ${secs(result.firstPollMs)} s, all running ${secs(result.allRunningMs)} s, ` +
          `${result.podsCreated} pods, ${result.requests.total} operator requests until every pod was gone`,
      );
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
    expectedIdleMs: idleMs,
    idle,
    singles,
    bursts,
    requestsPerSingleJob: median(singleRequests.map((x) => x.total)),
    extraRequestsPerSingleJob: median(
      singleRequests.map((x) => x.total - ((idle.at(-1)?.requests.perMin ?? 0) * x.windowMs) / 60_000),
    ),
    operatorRssPeakMiB: rssPeak,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Huge pool

interface HugeQueryResult {
  query: string;
  what: string;
  pages: number;
  requests: number;
  bytes: number;
  durationMs: Summary;
}

async function runHugePool(
  ctx: BenchContext,
  h: NonNullable<ScaleBenchOptions["hugePool"]>,
): Promise<{ requests: number; queued: number; createS: number; queries: HugeQueryResult[] }> {
  const pat = uniqueName("pat-huge").padEnd(40, "0");
  const ado = await startAzureDevOpsEmulator({
    pools: ["huge pool"],
    pats: [{ token: pat, scope: "manage", identity: "operator" }],
    finishedRetention: h.requests,
    log: () => {},
  });
  const close = ctx.cleanups.add("huge-pool emulator", () => ado.close());
  const started = Date.now();
  const poolId = ado.control.listPools()[0]?.id as number;
  const client0 = new AzureDevOpsClient({ organizationUrl: ado.organizationUrl, credential: patCredential(pat) });
  await client0.registerAgent(poolId, { name: "placeholder", version: "4.258.1", systemCapabilities: { huge: "1" } });
  // Jobs nobody can serve fail at once (finished); jobs for the offline placeholder stay queued. Spread evenly.
  const every = Math.floor(h.requests / h.queued);
  for (let i = 0; i < h.requests; i++) {
    const queued = i % every === every - 1 && i < every * h.queued;
    ado.control.queueJob({ pool: "huge pool", demands: [queued ? "huge" : "nobody-has-this"] });
  }
  const createS = (Date.now() - started) / 1000;
  ctx.log(`huge pool: ${h.requests} job requests (${h.queued} queued) created in ${fixed(createS)} s`);

  const measure = async (
    what: string,
    query: string,
    call: (c: AzureDevOpsClient) => Promise<unknown[]>,
    pageSize?: number,
  ) => {
    let bytes = 0;
    let pages = 0;
    const counting: typeof fetch = async (input, init) => {
      const url = new URL(String(input));
      if (pageSize !== undefined && url.pathname.endsWith("/jobrequests"))
        url.searchParams.set("$top", String(pageSize));
      const answer = await fetch(url, init);
      const text = await answer.text();
      if (url.pathname.endsWith("/jobrequests")) {
        bytes += Buffer.byteLength(text);
        pages++;
      }
      return new Response(text, { status: answer.status, headers: answer.headers });
    };
    const client = new AzureDevOpsClient({
      organizationUrl: ado.organizationUrl,
      credential: patCredential(pat),
      fetch: counting,
      timeoutMs: 120_000,
    });
    const durations: number[] = [];
    let requests = 0;
    for (let i = 0; i < h.samples; i++) {
      bytes = 0;
      pages = 0;
      const t = performance.now();
      requests = (await call(client)).length;
      durations.push(performance.now() - t);
    }
    const r = { query, what, pages, requests, bytes, durationMs: summarize(durations) };
    ctx.log(
      `huge pool, ${what}: ${requests} requests in ${pages} page(s), ${fixed(bytes / 1024, 0)} KiB, ` +
        `${fixed(r.durationMs.median, 1)} ms (median)`,
    );
    return r;
  };
  const queries: HugeQueryResult[] = [];
  queries.push(
    await measure("the operator's poll", "completedRequestCount=0", (c) =>
      c.listJobRequests(poolId, { completedRequestCount: 0 }),
    ),
  );
  queries.push(await measure("the service's default mix", "(no parameter)", (c) => c.listJobRequests(poolId)));
  queries.push(
    await measure(
      `all of them, in pages of ${h.pageSize}`,
      `completedRequestCount=${h.requests}, cut by $top=${h.pageSize}`,
      (c) => c.listJobRequests(poolId, { completedRequestCount: h.requests }),
      h.pageSize,
    ),
  );
  await close();
  return { requests: h.requests, queued: h.queued, createS, queries };
}

// ---------------------------------------------------------------------------------------------------------------
// The benchmark

export async function runScaleBench(
  ctx: BenchContext,
  overrides: Partial<ScaleBenchOptions> = {},
): Promise<BenchResult> {
  const o: ScaleBenchOptions = { ...defaultScaleBenchOptions, ...(ctx.quick ? quickOptions : {}), ...overrides };
  const started = new Date();
  const machine = machineInfo({ kubernetes: ctx.cluster.kubernetes });
  const huge = o.hugePool ? await runHugePool(ctx, o.hugePool) : undefined;
  await ensureCrd(ctx.cluster.client, "azp-bench");
  const random = seeded(o.seed);
  const results: ConfigResult[] = [];
  for (const config of o.configs) results.push(await runConfig(ctx, o, config, random));
  const loadEnd = machineInfo().loadAverage1m;

  const flagsOf = (c: OperatorConfigUnderTest) => (c.args.length === 0 ? "(defaults)" : c.args.join(" "));
  const single = results.map((r) => ({
    config: r.config.name,
    flags: flagsOf(r.config),
    quietPollMs: r.expectedIdleMs,
    samples: r.singles.length,
    jobStartMs: summarize(r.singles.map((s) => s.jobStartMs)),
    firstPollMs: summarize(r.singles.map((s) => s.firstPollMs)),
    podCreatedMs: summarize(r.singles.map((s) => s.podCreatedMs)),
    pollToStartMs: summarize(r.singles.map((s) => s.pollToStartMs)),
    idle3PerMin: r.idle.find((i) => i.resources === 3)?.requests.listsPerMin ?? Number.NaN,
    requestsPerSingleJob: r.requestsPerSingleJob,
    extraRequestsPerSingleJob: r.extraRequestsPerSingleJob,
  }));
  const sizes = [...new Set(results.flatMap((r) => r.bursts.map((b) => b.jobs)))];
  const burst = results.flatMap((r) =>
    sizes
      .map((jobs) => {
        const bs = r.bursts.filter((b) => b.jobs === jobs);
        return {
          config: r.config.name,
          jobs,
          reps: bs.length,
          allRunningMs: bs.map((b) => b.allRunningMs),
          allRunningMedianMs: median(bs.map((b) => b.allRunningMs)),
          afterPollMedianMs: median(bs.map((b) => b.allRunningMs - b.firstPollMs)),
          firstPollMs: bs.map((b) => b.firstPollMs),
          podsCreated: bs.map((b) => b.podsCreated),
          failedJobs: bs.reduce((a, b) => a + b.failedJobs, 0),
          requests: bs.map((b) => b.requests.total),
          requestsPerMin: median(bs.map((b) => b.requests.perMin)),
        };
      })
      .filter((b) => b.reps > 0),
  );
  const cell = (s: Summary) => `${secs(s.median, 2)} / ${secs(s.p90, 2)} / ${secs(s.max, 2)}`;

  const tables: Table[] = [
    {
      title: "Single job from an idle operator: queue -> running (s, median / p90 / max)",
      columns: ["config", "flags", "quiet poll (s)", "jobs", "running", "first poll", "pod created", "poll -> start"],
      rows: single.map((s) => [
        s.config,
        s.flags,
        secs(s.quietPollMs, 2),
        String(s.samples),
        cell(s.jobStartMs),
        cell(s.firstPollMs),
        cell(s.podCreatedMs),
        cell(s.pollToStartMs),
      ]),
      notes: [
        "one job at a time, queued at a random moment of the quiet poll cycle once the poll loop was back at its quiet pace",
        "first poll: the operator's first job-request list after the queue time; poll -> start: running minus first poll",
        "quiet poll: the interval of a quiet pool alone on its identity (max of --idle-poll-interval and what --poll-budget pays for)",
      ],
    },
    {
      title: "Bursts from an idle operator: N jobs queued at once",
      columns: [
        "config",
        "jobs",
        "reps",
        "all running (s)",
        "first poll (s)",
        "first poll -> all running (s)",
        "pods created",
        "failed",
        "requests",
        "req/min",
      ],
      rows: burst.map((b) => [
        b.config,
        String(b.jobs),
        String(b.reps),
        `${secs(b.allRunningMedianMs)} (${b.allRunningMs.map((v) => secs(v)).join(", ")})`,
        b.firstPollMs.map((v) => secs(v)).join(", "),
        secs(b.afterPollMedianMs),
        b.podsCreated.join(", "),
        String(b.failedJobs),
        b.requests.join(", "),
        fixed(b.requestsPerMin, 0),
      ]),
      notes: [
        "all running: from the queue time until the last job's receiveTime; median (each repetition)",
        "first poll -> all running: median over the repetitions; what the random moment of the poll cycle does not explain",
        "requests, req/min: the operator's Azure DevOps requests from the queue time until every pod was gone",
      ],
    },
    {
      title: "Operator's Azure DevOps requests while idle, per pool (one identity)",
      columns: [
        "config",
        "resources",
        "observed (s)",
        "poll every (s)",
        "job lists/min",
        "agent lists/min",
        "lists/min",
        "all req/min",
        "of the 5-min budget",
      ],
      rows: results.flatMap((r) =>
        r.idle.map((i) => [
          r.config.name,
          String(i.resources),
          fixed(i.requests.windowS, 0),
          secs(i.pollEveryMs, 2),
          fixed((i.requests.byCategory.jobRequests / i.requests.windowS) * 60, 1),
          fixed((i.requests.byCategory.agents / i.requests.windowS) * 60, 1),
          fixed(i.requests.listsPerMin, 1),
          fixed(i.requests.perMin, 1),
          `${fixed(i.requests.budgetShare * 100, 0)} %`,
        ]),
      ),
      notes: [
        "observed: from the first to the last job-request list of a quiet window",
        "resources: AutoScaledAgents on the pool, sharing one poll loop",
        `of the 5-min budget: req/min x 5 against Azure DevOps' ${budgetPer5Min} TSTUs per identity (1 per request in the emulator)`,
      ],
    },
    {
      title: "Choosing intervals: latency against request cost (one pool alone on its identity)",
      columns: [
        "config",
        "flags",
        "job running p50 / p90 (s)",
        "idle lists/min",
        "requests per single job",
        "of which above idle",
        "RSS peak (MiB)",
      ],
      rows: single.map((s, i) => [
        s.config,
        s.flags,
        `${secs(s.jobStartMs.median)} / ${secs(s.jobStartMs.p90)}`,
        fixed(s.idle3PerMin, 1),
        fixed(s.requestsPerSingleJob, 0),
        fixed(s.extraRequestsPerSingleJob, 1),
        fixed(results[i]?.operatorRssPeakMiB, 0),
      ]),
      notes: [
        "requests per single job: the operator's requests from the job's queue time until 37 s after its pod was gone (idle again)",
        "of which above idle: minus what the quiet pace (idle req/min above) spends over the same window: what one job costs",
      ],
    },
  ];
  if (huge) {
    tables.push({
      title: `Huge pool: ${huge.requests} job requests, ${huge.queued} of them queued; one job-request list`,
      columns: ["query", "what", "requests", "pages", "answer (KiB)", "duration (ms, median / p90 / max)"],
      rows: huge.queries.map((q) => [
        q.query,
        q.what,
        String(q.requests),
        String(q.pages),
        fixed(q.bytes / 1024, 0),
        `${fixed(q.durationMs.median, 1)} / ${fixed(q.durationMs.p90, 1)} / ${fixed(q.durationMs.max, 1)}`,
      ]),
      notes: [
        `${o.hugePool?.samples} calls each, through the operator's client (parse and shape checks included), emulator in this process`,
        "the emulator cuts an answer only when asked with $top; the paged row adds it to show the client following X-MS-ContinuationToken",
      ],
    });
  }

  return {
    name: "scale-up",
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    machine: { ...machine, loadAverage1mEnd: loadEnd },
    ...(gitRevision() ? { revision: gitRevision() } : {}),
    parameters: { ...o, quick: ctx.quick },
    results: {
      single: single.map((s) => ({
        ...s,
        jobStartMs: rounded(s.jobStartMs),
        firstPollMs: rounded(s.firstPollMs),
        podCreatedMs: rounded(s.podCreatedMs),
        pollToStartMs: rounded(s.pollToStartMs),
        idle3PerMin: Math.round(s.idle3PerMin * 10) / 10,
      })),
      bursts: burst.map((b) => ({
        ...b,
        allRunningMs: b.allRunningMs.map(Math.round),
        allRunningMedianMs: Math.round(b.allRunningMedianMs),
        afterPollMedianMs: Math.round(b.afterPollMedianMs),
        firstPollMs: b.firstPollMs.map(Math.round),
        requestsPerMin: Math.round(b.requestsPerMin),
      })),
      configs: results.map((r) => ({
        config: r.config,
        expectedIdleMs: r.expectedIdleMs,
        idle: r.idle.map((i) => ({ ...i, requests: roundCount(i.requests), pollEveryMs: Math.round(i.pollEveryMs) })),
        singles: r.singles.map((s) => ({
          pollGapMs: Math.round(s.pollGapMs),
          firstPollMs: Math.round(s.firstPollMs),
          podCreatedMs: Math.round(s.podCreatedMs),
          jobStartMs: Math.round(s.jobStartMs),
          pollToStartMs: Math.round(s.pollToStartMs),
        })),
        bursts: r.bursts.map((b) => ({
          ...b,
          allRunningMs: Math.round(b.allRunningMs),
          firstPollMs: Math.round(b.firstPollMs),
          jobStart: rounded(b.jobStart),
          requests: roundCount(b.requests),
        })),
        requestsPerSingleJob: r.requestsPerSingleJob,
        extraRequestsPerSingleJob: Math.round(r.extraRequestsPerSingleJob * 10) / 10,
        operatorRssPeakMiB: Math.round(r.operatorRssPeakMiB),
      })),
      ...(huge
        ? {
            hugePool: {
              ...huge,
              createS: Math.round(huge.createS * 10) / 10,
              queries: huge.queries.map((q) => ({ ...q, durationMs: rounded(q.durationMs, 1) })),
            },
          }
        : {}),
    },
    tables,
  };
}

function roundCount(c: RequestCount): RequestCount {
  return {
    ...c,
    windowS: Math.round(c.windowS * 10) / 10,
    perMin: Math.round(c.perMin * 10) / 10,
    listsPerMin: Math.round(c.listsPerMin * 10) / 10,
    budgetShare: Math.round(c.budgetShare * 100) / 100,
  };
}

export const scaleUp: Benchmark = {
  name: "scale-up",
  description:
    "single jobs and bursts of 20 and 50 from idle, idle requests per pool, a few interval settings; a 10,000-request pool",
  expectedS: 2700,
  run: (ctx) => runScaleBench(ctx),
};

if (import.meta.main) {
  const args = process.argv.slice(2);
  const only = args.flatMap((a, i) => (a === "--config" && args[i + 1] ? [args[i + 1] as string] : []));
  const configs = only.length > 0 ? operatorConfigs.filter((c) => only.includes(c.name)) : undefined;
  await runBenchmarks([configs ? { ...scaleUp, run: (ctx) => runScaleBench(ctx, { configs }) } : scaleUp], {
    quick: quickFromArgv(),
  });
}
