/**
 * Benchmark: a job queued on an idle pool, with the service hook endpoint on and off, at the operator's default
 * poll intervals (5 s while work moves, 15 s idle). Target with hooks: the job runs after at most 1 s (median).
 *
 * The world of `scale-up` (control plane, the Azure DevOps emulator in this process, the virtual node in its own
 * process, the operator as its own process with a PAT of its own) and one AutoScaledAgent (`minCount` 0). With
 * hooks, the emulator holds a Web Hooks subscription for "Run job state changed" pointing at the operator's
 * endpoint with basic auth (delivered after `hookDelayMs`). Jobs are queued from an idle operator at a random
 * moment of its idle poll cycle (seeded). Per job, from its queue time: the `waiting` delivery answered (emulator),
 * the operator's first job-request list, the pod created (watch), the job started (`receiveTime`). Per batch: the
 * operator's Azure DevOps requests and the deliveries by the endpoint's answer.
 *
 * `npx node bench/service-hooks.ts [--quick]` (or `bench/run.ts service-hooks`).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { RequestLogEntry } from "../sim/azure-devops/control.ts";
import { type AzureDevOpsEmulator, startAzureDevOpsEmulator } from "../sim/azure-devops/index.ts";
import { parseDuration } from "../src/api/v1/duration.ts";
import { flags } from "../src/cli/config.ts";
import { basicAuthHeader } from "../src/hooks/auth.ts";
import { JOB_STATE_CHANGED_EVENT } from "../src/hooks/payload.ts";
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

const defaultPollMs = parseDuration(flags["poll-interval"]?.default ?? "5s");
const defaultIdleMs = parseDuration(flags["idle-poll-interval"]?.default ?? "15s");

export interface HookBenchConfig {
  name: string;
  hooks: boolean;
  /** Batches, in order: N jobs queued at once, `reps` times. */
  batches: { jobs: number; reps: number }[];
}

export interface HookBenchOptions {
  configs: HookBenchConfig[];
  /** The emulator's wait between a job's change and the POST (the service's own latency is not modelled). */
  hookDelayMs: number;
  jobDurationMs: number;
  maxCount: number;
  jobTimeoutMs: number;
  seed: number;
}

export const defaultHookBenchOptions: HookBenchOptions = {
  configs: [
    {
      name: "hooks",
      hooks: true,
      batches: [
        { jobs: 1, reps: 8 },
        { jobs: 10, reps: 1 },
      ],
    },
    { name: "polling only", hooks: false, batches: [{ jobs: 1, reps: 4 }] },
  ],
  hookDelayMs: 0,
  jobDurationMs: 2000,
  maxCount: 20,
  jobTimeoutMs: 120_000,
  seed: 7,
};

const quickOptions: Partial<HookBenchOptions> = {
  configs: [
    { name: "hooks", hooks: true, batches: [{ jobs: 1, reps: 2 }] },
    { name: "polling only", hooks: false, batches: [{ jobs: 1, reps: 1 }] },
  ],
};

/** The same seeded PRNG as the chaos run (mulberry32): the same moments in every run. */
const seeded = mulberry32;

const isJobList = (e: RequestLogEntry) => e.method === "GET" && e.path.toLowerCase().endsWith("/jobrequests");

interface BatchResult {
  config: string;
  jobs: number;
  rep: number;
  /** Per job, from its queue time (ms). */
  deliveryMs: number[];
  firstPollMs: number[];
  podCreatedMs: number[];
  jobStartMs: number[];
  /** The operator's requests from the queue time until every pod is gone, and of them job-request lists. */
  requests: number;
  jobLists: number;
  /** Deliveries to the endpoint by its answer (status), during the batch. */
  deliveries: Record<string, number>;
  podsCreated: number;
  failedJobs: number;
}

async function runConfig(
  ctx: BenchContext,
  o: HookBenchOptions,
  config: HookBenchConfig,
  random: () => number,
): Promise<BatchResult[]> {
  const { client } = ctx.cluster;
  const log = (line: string) => ctx.log(`${config.name}: ${line}`);
  const cleanups = ctx.cleanups;
  const ns = await createNamespace(client, "bench-hooks", { labels: benchLabels });
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
    serviceHooks: { delayMs: o.hookDelayMs },
    log: () => {},
  });
  const closeAdo = cleanups.add("Azure DevOps emulator", () => ado.close());

  const nodeName = uniqueName("bench-hooks-node");
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
    join(ctx.workDir, `hooks-${config.hooks ? "on" : "off"}-${nodeName}.log`),
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
  await registerPlaceholder(ado, { pat: pats.bench, name: "placeholder-hooks", capabilities: { hooks: "1" } });
  await client.request({
    method: "POST",
    path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents`,
    body: {
      apiVersion: "azurepipelines.k8s.scaler.io/v1",
      kind: "AutoScaledAgent",
      metadata: { name: "hooks" },
      spec: {
        poolName: pool,
        organizationUrl: ado.organizationUrl,
        personalAccessTokenSecretName: "azure-pat",
        maxTerminatedPodsToKeep: 0,
        podsWithCapabilities: [
          {
            capabilities: { hooks: "1" },
            minCount: 0,
            maxCount: o.maxCount,
            podTemplateSpec: {
              spec: {
                nodeSelector: nodeLabel,
                containers: [
                  { name: "azure-pipelines-agent", image: "example.com/azure-pipelines-agent:bench", args: ["--once"] },
                ],
              },
            },
          },
        ],
      },
    },
  });
  const tracker = new PodTracker(client, ns);
  await tracker.start();
  const stopTracker = cleanups.add("pod watcher", () => tracker.stop());

  // The endpoint's credentials as the chart gives them: files.
  const credentials = { username: "azure-devops", password: uniqueName("hook-password") };
  const usernameFile = join(ctx.workDir, `${ns}-hook-username`);
  const passwordFile = join(ctx.workDir, `${ns}-hook-password`);
  writeFileSync(usernameFile, `${credentials.username}\n`);
  writeFileSync(passwordFile, `${credentials.password}\n`);
  const operator = startOperatorProcess({
    kubeconfig: ctx.cluster.kubeconfig,
    namespaces: [ns],
    logFile: join(ctx.workDir, `hooks-${config.hooks ? "on" : "off"}-operator.log`),
    args: config.hooks
      ? [
          "--service-hooks",
          "true",
          "--service-hook-port",
          "0",
          "--service-hook-username-file",
          usernameFile,
          "--service-hook-password-file",
          passwordFile,
        ]
      : [],
  });
  const stopOperator = cleanups.add("operator", () => operator.stop());
  await operator.waitForLog(/caches synced/);
  if (config.hooks) {
    const line = await operator.waitForLog(/service hook endpoint listening/);
    const port = (JSON.parse(line) as { port: number }).port;
    const organization = new URL(ado.organizationUrl).pathname.split("/").pop();
    const res = await fetch(`${ado.organizationUrl}/_apis/hooks/subscriptions?api-version=7.1`, {
      method: "POST",
      headers: {
        Authorization: basicAuthHeader({ username: "", password: pats.bench }),
        "Content-Type": "application/json",
      },
      body: JSON.stringify({
        publisherId: "pipelines",
        eventType: JOB_STATE_CHANGED_EVENT,
        consumerId: "webHooks",
        consumerActionId: "httpRequest",
        consumerInputs: {
          url: `http://127.0.0.1:${port}/hooks/azure-devops/${organization}`,
          basicAuthUsername: credentials.username,
          basicAuthPassword: credentials.password,
        },
      }),
    });
    if (res.status !== 200) throw new Error(`subscription not created: ${res.status} ${await res.text()}`);
  }
  const operatorRequests = () => ado.control.requests().filter((e) => e.identity === "operator");
  const jobListTimes = () =>
    operatorRequests()
      .filter(isJobList)
      .map((e) => Date.parse(e.time));
  await eventually(
    "the operator's first job-request poll",
    () => (jobListTimes().length > 0 ? true : undefined),
    60_000,
  );
  // Idle: a poll that sees nothing move sets the idle interval.
  const settleMs = defaultPollMs + 2000;
  await sleep(settleMs);
  log("operator up, idle");

  const batches: BatchResult[] = [];
  for (const batch of config.batches) {
    for (let rep = 1; rep <= batch.reps; rep++) {
      await sleep(Math.round(random() * defaultIdleMs));
      const queuedAt = Date.now();
      const deliveriesBefore = ado.control.hooks.deliveries().at(-1)?.seq ?? 0;
      const jobs = Array.from({ length: batch.jobs }, () =>
        ado.control.queueJob({ pool, demands: ["hooks"], durationMs: o.jobDurationMs }),
      );
      const done = await Promise.all(
        jobs.map((j) =>
          ado.control.waitForJob(j.requestId, (v) => v.state === "finished", { timeoutMs: o.jobTimeoutMs }),
        ),
      );
      await tracker.waitFor("every agent pod gone", () => tracker.live().length === 0, o.jobTimeoutMs);
      const goneAt = Date.now();
      const attempts = ado.control.hooks.deliveries({ since: deliveriesBefore });
      const q = (j: (typeof done)[number]) => Date.parse(j.queueTime);
      const firstListAfter = (t: number) => jobListTimes().find((x) => x >= t);
      const waitingDelivery = (j: (typeof done)[number]) =>
        attempts.find((a) => a.requestId === j.requestId && a.state === "waiting" && a.status === 202);
      const deliveredAt = (j: (typeof done)[number]) => {
        const a = waitingDelivery(j);
        return a ? Date.parse(a.time) + a.durationMs : undefined;
      };
      const ms = (at: number | undefined, j: (typeof done)[number]) => (at === undefined ? Number.NaN : at - q(j));
      const busy = operatorRequests().filter((e) => {
        const t = Date.parse(e.time);
        return t >= queuedAt && t < goneAt;
      });
      const deliveries: Record<string, number> = {};
      for (const a of attempts) deliveries[String(a.status)] = (deliveries[String(a.status)] ?? 0) + 1;
      const result: BatchResult = {
        config: config.name,
        jobs: batch.jobs,
        rep,
        deliveryMs: config.hooks ? done.map((j) => ms(deliveredAt(j), j)) : [],
        firstPollMs: done.map((j) => ms(firstListAfter(q(j)), j)),
        podCreatedMs: done.map((j) => ms(tracker.times.get(j.reservedAgent?.name ?? "")?.added, j)),
        jobStartMs: done.map((j) => ms(j.receiveTime ? Date.parse(j.receiveTime) : undefined, j)),
        requests: busy.length,
        jobLists: busy.filter(isJobList).length,
        deliveries,
        podsCreated: [...tracker.times.values()].filter((t) => (t.added ?? 0) >= queuedAt).length,
        failedJobs: done.filter((j) => j.result !== "succeeded").length,
      };
      batches.push(result);
      log(
        `${batch.jobs} job(s) #${rep}: first poll ${secs(median(result.firstPollMs))} s, start ${secs(median(result.jobStartMs))} s (median), ` +
          `${result.requests} operator requests (${result.jobLists} job lists), deliveries ${JSON.stringify(deliveries)}`,
      );
      await sleep(settleMs);
    }
  }
  await stopOperator();
  await stopTracker();
  await stopNode();
  await removeNamespace();
  await closeAdo();
  return batches;
}

export async function runHookBench(ctx: BenchContext, overrides: Partial<HookBenchOptions> = {}): Promise<BenchResult> {
  const o: HookBenchOptions = { ...defaultHookBenchOptions, ...(ctx.quick ? quickOptions : {}), ...overrides };
  const started = new Date();
  const machine = machineInfo({ kubernetes: ctx.cluster.kubernetes });
  await ensureCrd(ctx.cluster.client, "azp-bench");
  const random = seeded(o.seed);
  const all: BatchResult[] = [];
  for (const config of o.configs) all.push(...(await runConfig(ctx, o, config, random)));
  const loadEnd = machineInfo().loadAverage1m;

  const pooled = o.configs.flatMap((config) =>
    [...new Set(config.batches.map((b) => b.jobs))].map((jobs) => {
      const bs = all.filter((b) => b.config === config.name && b.jobs === jobs);
      const of = (k: "deliveryMs" | "firstPollMs" | "podCreatedMs" | "jobStartMs") =>
        summarize(bs.flatMap((b) => b[k]));
      const deliveries: Record<string, number> = {};
      for (const b of bs)
        for (const [status, n] of Object.entries(b.deliveries)) deliveries[status] = (deliveries[status] ?? 0) + n;
      return {
        config: config.name,
        hooks: config.hooks,
        jobs,
        reps: bs.length,
        deliveryMs: of("deliveryMs"),
        firstPollMs: of("firstPollMs"),
        podCreatedMs: of("podCreatedMs"),
        jobStartMs: of("jobStartMs"),
        requestsPerRep: median(bs.map((b) => b.requests)),
        jobListsPerRep: median(bs.map((b) => b.jobLists)),
        deliveries,
        podsCreated: bs.map((b) => b.podsCreated),
        failedJobs: bs.reduce((a, b) => a + b.failedJobs, 0),
      };
    }),
  );
  const cell = (s: Summary) => `${secs(s.median, 2)} / ${secs(s.p90, 2)} / ${secs(s.max, 2)}`;
  const single = (hooks: boolean) => pooled.find((p) => p.hooks === hooks && p.jobs === 1);
  const on = single(true);
  const off = single(false);
  const ratio = on && off ? off.jobStartMs.median / on.jobStartMs.median : Number.NaN;
  const targetMet = on !== undefined && on.jobStartMs.median <= 1000;
  const tables: Table[] = [
    {
      title: `A job from an idle pool, from its queue time (s, median / p90 / max; default polling ${secs(defaultPollMs, 0)} s / ${secs(defaultIdleMs, 0)} s idle; delivery delay ${secs(o.hookDelayMs, 1)} s)`,
      columns: ["config", "jobs", "reps", "delivered", "first poll", "pod created", "job start", "pods", "failed"],
      rows: pooled.map((p) => [
        p.config,
        String(p.jobs),
        String(p.reps),
        p.hooks ? cell(p.deliveryMs) : "-",
        cell(p.firstPollMs),
        cell(p.podCreatedMs),
        cell(p.jobStartMs),
        p.podsCreated.join(", "),
        String(p.failedJobs),
      ]),
      notes: [
        "queued at a random moment of the idle poll cycle; delivered: the endpoint answered the job's waiting event",
        `target with hooks, job start median <= 1 s: ${targetMet ? "met" : "NOT met"}; polling only / hooks (job start medians): ${fixed(ratio, 1)}`,
      ],
    },
    {
      title:
        "The operator's Azure DevOps requests and the deliveries, per repetition (from the queue time until every pod is gone)",
      columns: ["config", "jobs", "requests", "job-request lists", "deliveries by answer (all repetitions)"],
      rows: pooled.map((p) => [
        p.config,
        String(p.jobs),
        fixed(p.requestsPerRep, 0),
        fixed(p.jobListsPerRep, 0),
        p.hooks
          ? Object.entries(p.deliveries)
              .map(([status, n]) => `${n} × ${status}`)
              .join(", ")
          : "-",
      ]),
      notes: [
        "each job sends three events (waiting, inProgress, completed); the endpoint debounces per organization (500 ms)",
        "and the poller keeps a minimum interval between polls, so a burst costs a few polls, not one per event",
      ],
    },
  ];
  const round = (s: Summary) => rounded(s);
  return {
    name: "service-hooks",
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    machine: { ...machine, loadAverage1mEnd: loadEnd },
    ...(gitRevision() ? { revision: gitRevision() } : {}),
    parameters: { ...o, quick: ctx.quick, pollIntervalMs: defaultPollMs, idlePollIntervalMs: defaultIdleMs },
    results: {
      targetJobStartMedianMs: 1000,
      targetMet,
      jobStartRatioPollingOverHooks: Math.round(ratio * 10) / 10,
      summary: pooled.map((p) => ({
        ...p,
        deliveryMs: round(p.deliveryMs),
        firstPollMs: round(p.firstPollMs),
        podCreatedMs: round(p.podCreatedMs),
        jobStartMs: round(p.jobStartMs),
      })),
      batches: all.map((b) => ({
        ...b,
        deliveryMs: b.deliveryMs.map(Math.round),
        firstPollMs: b.firstPollMs.map(Math.round),
        podCreatedMs: b.podCreatedMs.map(Math.round),
        jobStartMs: b.jobStartMs.map(Math.round),
      })),
    },
    tables,
  };
}

export const serviceHooks: Benchmark = {
  name: "service-hooks",
  description: "a job from an idle pool with the service hook endpoint on and off, default poll intervals",
  expectedS: 360,
  run: (ctx) => runHookBench(ctx),
};

if (import.meta.main) {
  await runBenchmarks([serviceHooks], { quick: quickFromArgv() });
}
