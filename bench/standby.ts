/**
 * Benchmark: a job that finds a standby agent, and how fast the standby is back.
 *
 * The world of the end-to-end tests with the operator as its own process (control plane, Azure DevOps emulator in
 * this process, one virtual node in its own process). Two AutoScaledAgents on one pool, each with minCount 1:
 * - `plain`: no standby block, the original meaning (pods, busy ones included);
 * - `standby`: `standby: {}`, minCount counts idle agents beside the busy ones.
 * For each operator configuration (its defaults, then 1 s polls) and each resource: from a steady state (one idle
 * agent online, nothing else), at a random moment of the idle poll cycle, one job of `jobDurationMs` is queued;
 * then, from the moment the service assigned it to the standby agent:
 * - job start: `receiveTime - queueTime`;
 * - seen: the operator's first job-request list after the assignment (the emulator's request log);
 * - pod created: the replacement pod first seen by a watch;
 * - standby back: the replacement agent online (emulator);
 * and, from the queue time, the same for a burst of `burst` jobs (the first takes the standby agent, the others
 * wait for pods). Jobs run longer than the idle poll interval, so that the operator's next poll falls within the job
 * and shows whether the standby comes back while the job runs (with `standby: {}`) or only after it (without). `npx node bench/standby.ts [--quick]` (or through `bench/run.ts standby`).
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startAzureDevOpsEmulator } from "../sim/azure-devops/index.ts";
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
import { mulberry32 } from "./chaos/prng.ts";
import { type BenchContext, type Benchmark, quickFromArgv, runBenchmarks } from "./support/bench.ts";
import { benchLabels } from "./support/cluster.ts";
import { startNodeProcess } from "./support/node.ts";
import { startOperatorProcess } from "./support/operator.ts";
import {
  type BenchResult,
  gitRevision,
  machineInfo,
  rounded,
  type Summary,
  secs,
  summarize,
  type Table,
} from "./support/stats.ts";
import { PodTracker } from "./support/watchers.ts";

interface Config {
  name: string;
  args: string[];
  idlePollIntervalMs: number;
}

const defaultIdleMs = parseDuration(flags["idle-poll-interval"]?.default ?? "15s");
const defaultPollMs = parseDuration(flags["poll-interval"]?.default ?? "5s");

export interface StandbyBenchOptions {
  configs: Config[];
  reps: number;
  jobDurationMs: number;
  burst: number;
  burstReps: number;
  seed: number;
  timeoutMs: number;
}

export const defaultStandbyBenchOptions: StandbyBenchOptions = {
  configs: [
    {
      name: `default (${secs(defaultPollMs, 0)} s / ${secs(defaultIdleMs, 0)} s)`,
      args: [],
      idlePollIntervalMs: defaultIdleMs,
    },
    {
      name: "short (1 s / 1 s)",
      args: ["--poll-interval", "1s", "--idle-poll-interval", "1s"],
      idlePollIntervalMs: 1000,
    },
  ],
  reps: 4,
  jobDurationMs: 20_000,
  burst: 3,
  burstReps: 2,
  seed: 7,
  timeoutMs: 120_000,
};

const quickOptions: Partial<StandbyBenchOptions> = {
  configs: defaultStandbyBenchOptions.configs.slice(1),
  reps: 2,
  burstReps: 1,
  jobDurationMs: 4000,
};

/** The same seeded PRNG as the chaos run (mulberry32): the same moments in every run. */
const seeded = mulberry32;

const RESOURCES = [
  { name: "plain", standby: undefined, label: "minCount 1 (no standby block)" },
  { name: "standby", standby: {}, label: "minCount 1, standby: {}" },
] as const;

interface Sample {
  config: string;
  resource: string;
  kind: "single" | "burst";
  /** receiveTime - queueTime, per job (ms). */
  jobStartMs: number[];
  /** From the assignment of the job that took the standby agent (ms). */
  seenMs: number;
  podCreatedMs: number;
  standbyBackMs: number;
  /** Whether the standby was back before that job finished. */
  backBeforeJobEnd: boolean;
}

async function runConfig(ctx: BenchContext, o: StandbyBenchOptions, config: Config, random: () => number) {
  const { client } = ctx.cluster;
  const log = (line: string) => ctx.log(`${config.name}: ${line}`);
  const ns = await createNamespace(client, "bench-standby", { labels: benchLabels });
  const removeNamespace = ctx.cleanups.add(`namespace ${ns}`, () => deleteNamespace(client, ns));
  const pool = "bench pool";
  const pats = { operator: uniqueName("pat-op"), agents: uniqueName("pat-ag"), bench: uniqueName("pat-b") };
  const ado = await startAzureDevOpsEmulator({
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
  const closeAdo = ctx.cleanups.add("Azure DevOps emulator", () => ado.close());
  const online = new Map<string, number>();
  ado.control.on("agent", (a) => {
    if (a.status === "online" && !online.has(a.name)) online.set(a.name, Date.now());
  });
  const nodeName = uniqueName("bench-standby-node");
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
    join(ctx.workDir, `standby-${nodeName}.log`),
  );
  const stopNode = ctx.cleanups.add(`virtual node ${nodeName}`, async () => {
    await deleteNamespace(client, ns, { wait: true }).catch(() => {});
    await node.stop();
    await deleteNodeLease(client, nodeName);
  });
  await client.request({
    method: "POST",
    path: `/api/v1/namespaces/${ns}/secrets`,
    body: { metadata: { name: "azure-pat" }, stringData: { pat: pats.operator } },
  });
  for (const r of RESOURCES) {
    await registerPlaceholder(ado, { pat: pats.bench, name: `placeholder-${r.name}`, capabilities: { [r.name]: "1" } });
    await client.request({
      method: "POST",
      path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents`,
      body: {
        apiVersion: "azurepipelines.k8s.scaler.io/v1",
        kind: "AutoScaledAgent",
        metadata: { name: r.name },
        spec: {
          poolName: pool,
          organizationUrl: ado.organizationUrl,
          personalAccessTokenSecretName: "azure-pat",
          maxTerminatedPodsToKeep: 0,
          agentMinIdlePeriod: "2s",
          podsWithCapabilities: [
            {
              capabilities: { [r.name]: "1" },
              minCount: 1,
              maxCount: 10,
              ...(r.standby ? { standby: r.standby } : {}),
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
  const stopTracker = ctx.cleanups.add("pod watcher", () => tracker.stop());
  const operator = startOperatorProcess({
    kubeconfig: ctx.cluster.kubeconfig,
    namespaces: [ns],
    logFile: join(ctx.workDir, `standby-${config.name.split(" ")[0]}-operator.log`),
    args: config.args,
  });
  const stopOperator = ctx.cleanups.add("operator", () => operator.stop());
  await operator.waitForLog(/caches synced/);
  const jobLists = () =>
    ado.control
      .requests()
      .filter((e) => e.identity === "operator" && e.method === "GET" && e.path.toLowerCase().endsWith("/jobrequests"))
      .map((e) => Date.parse(e.time));
  const onlineOf = (prefix: string) =>
    ado.control.listAgents({ pool }).filter((a) => a.name.startsWith(`${prefix}-`) && a.status === "online");
  const livePods = (prefix: string) =>
    tracker.live().filter((n) => n.startsWith(`${prefix}-`) && tracker.times.get(n)?.finished === undefined);
  /** One idle agent online and no other live pod: the steady state a job should find. */
  const steady = (prefix: string) =>
    eventually(
      `${prefix}: one idle standby agent`,
      () => (onlineOf(prefix).length === 1 && livePods(prefix).length === 1 ? onlineOf(prefix)[0]?.name : undefined),
      o.timeoutMs,
      100,
    );

  const samples: Sample[] = [];
  for (const r of RESOURCES) {
    for (const kind of ["single", "burst"] as const) {
      const reps = kind === "single" ? o.reps : o.burstReps;
      for (let rep = 1; rep <= reps; rep++) {
        const warm = await steady(r.name);
        await sleep(1000 + Math.round(random() * config.idlePollIntervalMs));
        const jobs = Array.from({ length: kind === "single" ? 1 : o.burst }, () =>
          ado.control.queueJob({ pool, demands: [r.name], durationMs: o.jobDurationMs }),
        );
        const done = await Promise.all(
          jobs.map((j) =>
            ado.control.waitForJob(j.requestId, (v) => v.state === "finished", { timeoutMs: o.timeoutMs }),
          ),
        );
        const onWarm = done.find((j) => j.reservedAgent?.name === warm) ?? done[0];
        const assigned = Date.parse(onWarm?.assignTime ?? onWarm?.queueTime ?? "");
        const jobNames = new Set(done.map((j) => j.reservedAgent?.name));
        // The replacement standby: the first agent of the resource online after the assignment that ran no job.
        const replacement = await eventually(
          `${r.name}: the standby back`,
          () =>
            [...online.entries()]
              .filter(([name, t]) => name.startsWith(`${r.name}-`) && t >= assigned && !jobNames.has(name))
              .sort((a, b) => a[1] - b[1])[0],
          o.timeoutMs,
          100,
        );
        const seen = jobLists().find((t) => t >= assigned) ?? Number.NaN;
        const sample: Sample = {
          config: config.name,
          resource: r.name,
          kind,
          jobStartMs: done.map((j) => Date.parse(j.receiveTime ?? "") - Date.parse(j.queueTime)),
          seenMs: seen - assigned,
          podCreatedMs: (tracker.times.get(replacement[0])?.added ?? Number.NaN) - assigned,
          standbyBackMs: replacement[1] - assigned,
          backBeforeJobEnd: replacement[1] < Date.parse(onWarm?.finishTime ?? ""),
        };
        samples.push(sample);
        log(
          `${r.name} ${kind} #${rep}: job start ${sample.jobStartMs.map((v) => secs(v)).join(", ")} s, standby back after ${secs(sample.standbyBackMs)} s`,
        );
      }
    }
  }
  await stopOperator();
  await stopTracker();
  await stopNode();
  await removeNamespace();
  await closeAdo();
  return samples;
}

export async function runStandbyBench(ctx: BenchContext, overrides: Partial<StandbyBenchOptions> = {}) {
  const o: StandbyBenchOptions = { ...defaultStandbyBenchOptions, ...(ctx.quick ? quickOptions : {}), ...overrides };
  const started = new Date();
  const machine = machineInfo({ kubernetes: ctx.cluster.kubernetes });
  await ensureCrd(ctx.cluster.client, "azp-bench");
  const random = seeded(o.seed);
  const samples: Sample[] = [];
  for (const config of o.configs) samples.push(...(await runConfig(ctx, o, config, random)));
  const loadEnd = machineInfo().loadAverage1m;

  const groups = o.configs.flatMap((c) =>
    RESOURCES.flatMap((r) =>
      (["single", "burst"] as const).map((kind) => {
        const s = samples.filter((x) => x.config === c.name && x.resource === r.name && x.kind === kind);
        return {
          config: c.name,
          resource: r.label,
          kind,
          reps: s.length,
          firstJobStartMs: summarize(s.map((x) => Math.min(...x.jobStartMs))),
          jobStartMs: summarize(s.flatMap((x) => x.jobStartMs)),
          seenMs: summarize(s.map((x) => x.seenMs)),
          podCreatedMs: summarize(s.map((x) => x.podCreatedMs)),
          standbyBackMs: summarize(s.map((x) => x.standbyBackMs)),
          backBeforeJobEnd: s.filter((x) => x.backBeforeJobEnd).length,
        };
      }),
    ),
  );
  const cell = (v: Summary) => `${secs(v.median, 1)} / ${secs(v.max, 1)}`;
  const tables: Table[] = [
    {
      title: `A job finds a standby agent; the standby comes back (s, median / max; jobs run ${secs(o.jobDurationMs, 0)} s)`,
      columns: [
        "config",
        "resource",
        "jobs",
        "reps",
        "first job start",
        "all job starts",
        "seen by the operator",
        "pod created",
        "standby back",
        "back before job end",
      ],
      rows: groups.map((g) => [
        g.config,
        g.resource,
        g.kind === "single" ? "1" : String(o.burst),
        String(g.reps),
        cell(g.firstJobStartMs),
        cell(g.jobStartMs),
        cell(g.seenMs),
        cell(g.podCreatedMs),
        cell(g.standbyBackMs),
        `${g.backBeforeJobEnd} of ${g.reps}`,
      ]),
      notes: [
        "job start: receiveTime - queueTime; the other columns from the moment the service assigned a job to the standby agent",
        "seen by the operator: its first job-request list after that moment (one poll)",
        "standby back: the replacement agent online",
      ],
    },
  ];
  const result: BenchResult = {
    name: "standby",
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    machine: { ...machine, loadAverage1mEnd: loadEnd },
    ...(gitRevision() ? { revision: gitRevision() } : {}),
    parameters: { ...o, quick: ctx.quick },
    results: {
      summary: groups.map((g) => ({
        ...g,
        firstJobStartMs: rounded(g.firstJobStartMs),
        jobStartMs: rounded(g.jobStartMs),
        seenMs: rounded(g.seenMs),
        podCreatedMs: rounded(g.podCreatedMs),
        standbyBackMs: rounded(g.standbyBackMs),
      })),
      samples: samples.map((s) => ({
        ...s,
        jobStartMs: s.jobStartMs.map(Math.round),
        seenMs: Math.round(s.seenMs),
        podCreatedMs: Math.round(s.podCreatedMs),
        standbyBackMs: Math.round(s.standbyBackMs),
      })),
    },
    tables,
  };
  return result;
}

export const standby: Benchmark = {
  name: "standby",
  description: "job start with a standby agent, and time until the standby is back (minCount with and without standby)",
  expectedS: 600,
  run: (ctx) => runStandbyBench(ctx),
};

if (import.meta.main) {
  await runBenchmarks([standby], { quick: quickFromArgv() });
}
