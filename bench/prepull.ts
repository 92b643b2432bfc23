/**
 * Benchmark: what image pre-pull (spec.imagePrePull) does to the wait of a job on a node that has never pulled the
 * agent image, on a virtual node where that pull takes `agentPullMs` (5 s by default; other images are instant).
 *
 * The operator runs as its own process with --image-prepull and 1 s poll intervals. For every repetition and
 * scenario, each variant (pre-pull off, then on) gets a fresh virtual node (in this process) and an AutoScaledAgent
 * whose pods land only on it (minCount 0, so no warm agent):
 * - `node up a while`: the node joins, then the job is queued `agentPullMs + settleMs` later (with pre-pull, once
 *   the status also says the images are on the node): a node that was added some time before the job came;
 * - `job with the node`: the job is queued as the node joins (a node added for this very job).
 * Per job: the wait from its queue time to its start (`receiveTime - queueTime` in the emulator), and what the node
 * did for the agent container's image (its pull record: `pull`, or `present` when it was on the node already).
 * With pre-pull, also the time from the node's start until the status said ready on it.
 *
 * `npx node bench/prepull.ts [--quick]` (or through `bench/run.ts`).
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type AzureDevOpsEmulator, startAzureDevOpsEmulator } from "../sim/azure-devops/index.ts";
import { agentProgram } from "../sim/node/agent-program.ts";
import { VirtualNode } from "../sim/node/index.ts";
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
import { startOperatorProcess } from "./support/operator.ts";
import {
  type BenchResult,
  fixed,
  gitRevision,
  machineInfo,
  rounded,
  type Summary,
  secs,
  summarize,
  type Table,
} from "./support/stats.ts";

export interface PrePullBenchOptions {
  /** Pull time of the agent image on the virtual node (ms). */
  agentPullMs: number;
  /** `node up a while`: the job is queued this long after the agent image's pull time has passed since the node joined. */
  settleMs: number;
  reps: number;
  jobDurationMs: number;
  jobTimeoutMs: number;
}

export const defaultPrePullBenchOptions: PrePullBenchOptions = {
  agentPullMs: 5000,
  settleMs: 3000,
  reps: 3,
  jobDurationMs: 500,
  jobTimeoutMs: 120_000,
};

const quickOptions: Partial<PrePullBenchOptions> = { reps: 1 };

const AGENT_IMAGE = "example.com/bench/azure-pipelines-agent:4.260.0";
const AGENT_CONTAINER = "azure-pipelines-agent";
const scenarios = ["node up a while", "job with the node"] as const;
type Scenario = (typeof scenarios)[number];
const variants = ["off", "on"] as const;
type Variant = (typeof variants)[number];

interface Run {
  scenario: Scenario;
  prePull: Variant;
  rep: number;
  jobWaitMs: number;
  /** What the node did for the agent container's image. */
  agentImage: string;
  /** The configured time that decision kept the agent container waiting (ms). */
  agentImageWaitMs: number;
  /** With pre-pull: node start until the status said ready on the node. */
  prePullReadyMs?: number;
  result: string;
}

async function runOnce(
  ctx: BenchContext,
  o: PrePullBenchOptions,
  env: { ns: string; ado: AzureDevOpsEmulator; pool: string; pats: { operator: string; bench: string } },
  scenario: Scenario,
  prePull: Variant,
  rep: number,
): Promise<Run> {
  const { client } = ctx.cluster;
  const id = `${prePull}-${scenarios.indexOf(scenario)}-${rep}`;
  const capability = `prepull-${id}`;
  const name = `pp-${id}`;
  const nodeName = uniqueName("bench-prepull-node");
  await registerPlaceholder(env.ado, {
    pat: env.pats.bench,
    name: `placeholder-${capability}`,
    capabilities: { [capability]: "1" },
  });
  const asaPath = `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${env.ns}/autoscaledagents`;
  await client.request({
    method: "POST",
    path: asaPath,
    body: {
      apiVersion: "azurepipelines.k8s.scaler.io/v1",
      kind: "AutoScaledAgent",
      metadata: { name },
      spec: {
        poolName: env.pool,
        organizationUrl: env.ado.organizationUrl,
        personalAccessTokenSecretName: "azure-pat",
        maxTerminatedPodsToKeep: 1,
        imagePrePull: { enabled: prePull === "on" },
        podsWithCapabilities: [
          {
            capabilities: { [capability]: "1" },
            minCount: 0,
            maxCount: 1,
            podTemplateSpec: {
              spec: {
                nodeSelector: { "azp.bench/node": nodeName },
                containers: [{ name: AGENT_CONTAINER, image: AGENT_IMAGE, args: ["--once"] }],
              },
            },
          },
        ],
      },
    },
  });
  // The resource is in place (and, with pre-pull, its DaemonSet waits for a node) before the node joins.
  if (prePull === "on") {
    await eventually(`${name}: pre-pull DaemonSet`, async () => {
      const list = await client.request<{ items: unknown[] }>({
        path: `/apis/apps/v1/namespaces/${env.ns}/daemonsets`,
        query: { labelSelector: `azurepipelines.k8s.scaler.io/autoscaledagent=${name}` },
      });
      return list.items.length > 0 ? true : undefined;
    });
  }
  const node = new VirtualNode({
    client,
    name: nodeName,
    labels: { "azp.bench/node": nodeName },
    retryMs: 500,
    storageClasses: [],
    images: { pullMs: { [AGENT_IMAGE]: o.agentPullMs } },
    agentProgram: agentProgram({ retryDelayMs: 200 }),
  });
  const stopNode = ctx.cleanups.add(`virtual node ${nodeName}`, async () => {
    await node.stop();
    await deleteNodeLease(client, nodeName);
  });
  try {
    const nodeStart = Date.now();
    await node.start();
    let prePullReadyMs: number | undefined;
    if (scenario === "node up a while") {
      if (prePull === "on") {
        await eventually(
          `${name}: pre-pull ready`,
          async () => {
            const r = await client.request<{ status?: { imagePrePull?: { readyNodes?: number } } }>({
              path: `${asaPath}/${name}`,
            });
            return r.status?.imagePrePull?.readyNodes === 1 ? true : undefined;
          },
          o.jobTimeoutMs,
          100,
        );
        prePullReadyMs = Date.now() - nodeStart;
      }
      await sleep(Math.max(0, nodeStart + o.agentPullMs + o.settleMs - Date.now()));
    }
    const job = env.ado.control.queueJob({ pool: env.pool, demands: [capability], durationMs: o.jobDurationMs });
    const done = await env.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: o.jobTimeoutMs,
    });
    const jobWaitMs = Date.parse(done.receiveTime ?? "") - Date.parse(done.queueTime ?? "");
    const record = node
      .pulls()
      .find((r) => r.pod === done.reservedAgent?.name && r.container === AGENT_CONTAINER && r.image === AGENT_IMAGE);
    ctx.log(
      `${scenario}, pre-pull ${prePull}, rep ${rep}: job wait ${secs(jobWaitMs)} s, agent image ${record?.action ?? "?"}` +
        (prePullReadyMs !== undefined ? `, pre-pull ready after ${secs(prePullReadyMs)} s` : ""),
    );
    // Tidy up while the node still runs: the resource goes (its DaemonSet and pods with it), then the node.
    await client.request({ method: "DELETE", path: `${asaPath}/${name}` });
    await eventually(
      `${name}: pods on ${nodeName} gone`,
      async () => {
        const pods = await client.request<{ items: unknown[] }>({
          path: `/api/v1/namespaces/${env.ns}/pods`,
          query: { fieldSelector: `spec.nodeName=${nodeName}` },
        });
        return pods.items.length === 0 ? true : undefined;
      },
      90_000,
      250,
    );
    return {
      scenario,
      prePull,
      rep,
      jobWaitMs,
      agentImage: record?.action ?? "unknown",
      agentImageWaitMs: record?.durationMs ?? Number.NaN,
      ...(prePullReadyMs !== undefined ? { prePullReadyMs } : {}),
      result: done.result ?? "unknown",
    };
  } finally {
    await stopNode();
  }
}

export async function runPrePullBench(
  ctx: BenchContext,
  overrides: Partial<PrePullBenchOptions> = {},
): Promise<BenchResult> {
  const o: PrePullBenchOptions = { ...defaultPrePullBenchOptions, ...(ctx.quick ? quickOptions : {}), ...overrides };
  const started = new Date();
  const machine = machineInfo({ kubernetes: ctx.cluster.kubernetes });
  const { client } = ctx.cluster;
  await ensureCrd(client, "azp-bench");
  const ns = await createNamespace(client, "bench-prepull", { labels: benchLabels });
  const removeNamespace = ctx.cleanups.add(`namespace ${ns}`, () => deleteNamespace(client, ns));
  const pool = "bench pool";
  const pats = { operator: uniqueName("pat-operator"), bench: uniqueName("pat-bench") };
  const ado = await startAzureDevOpsEmulator({
    pools: [pool],
    pats: [
      { token: pats.operator, scope: "manage", identity: "operator" },
      { token: pats.bench, scope: "manage", identity: "bench" },
    ],
    messagePollTimeoutMs: 5000,
    log: () => {},
  });
  const closeAdo = ctx.cleanups.add("Azure DevOps emulator", () => ado.close());
  await client.request({
    method: "POST",
    path: `/api/v1/namespaces/${ns}/secrets`,
    body: { metadata: { name: "azure-pat" }, stringData: { pat: pats.operator } },
  });
  const operator = startOperatorProcess({
    kubeconfig: ctx.cluster.kubeconfig,
    namespaces: [ns],
    logFile: join(ctx.workDir, "prepull-operator.log"),
    args: ["--image-prepull", "true", "--poll-interval", "1s", "--idle-poll-interval", "1s"],
  });
  const stopOperator = ctx.cleanups.add("operator", () => operator.stop());
  await operator.waitForLog(/caches synced/);

  const runs: Run[] = [];
  for (let rep = 1; rep <= o.reps; rep++)
    for (const scenario of scenarios)
      for (const prePull of variants) runs.push(await runOnce(ctx, o, { ns, ado, pool, pats }, scenario, prePull, rep));
  const loadEnd = machineInfo().loadAverage1m;
  await stopOperator();
  await closeAdo();
  await removeNamespace();

  const groups = scenarios.flatMap((scenario) =>
    variants.map((prePull) => {
      const rs = runs.filter((r) => r.scenario === scenario && r.prePull === prePull);
      const actions = new Map<string, number>();
      for (const r of rs) actions.set(r.agentImage, (actions.get(r.agentImage) ?? 0) + 1);
      const ready = rs.flatMap((r) => (r.prePullReadyMs === undefined ? [] : [r.prePullReadyMs]));
      return {
        scenario,
        prePull,
        reps: rs.length,
        jobWaitMs: summarize(rs.map((r) => r.jobWaitMs)),
        agentImage: [...actions].map(([a, n]) => `${a} ×${n}`).join(", "),
        agentImageWaitMs: summarize(rs.map((r) => r.agentImageWaitMs)),
        prePullReadyMs: ready.length > 0 ? summarize(ready) : undefined,
        failed: rs.filter((r) => r.result !== "succeeded").length,
      };
    }),
  );
  const cell = (s: Summary) => `${secs(s.median, 1)} / ${secs(s.p90, 1)} / ${secs(s.max, 1)}`;
  const ratio = (scenario: Scenario) => {
    const off = groups.find((g) => g.scenario === scenario && g.prePull === "off");
    const on = groups.find((g) => g.scenario === scenario && g.prePull === "on");
    return off && on ? on.jobWaitMs.median / off.jobWaitMs.median : Number.NaN;
  };
  const tables: Table[] = [
    {
      title: `Job wait on a node that never pulled the agent image (agent image pull ${secs(o.agentPullMs, 0)} s; s, median / p90 / max)`,
      columns: [
        "scenario",
        "pre-pull",
        "reps",
        "job wait",
        "agent image",
        "its wait (s)",
        "pre-pull ready (s)",
        "failed",
      ],
      rows: groups.map((g) => [
        g.scenario,
        g.prePull,
        String(g.reps),
        cell(g.jobWaitMs),
        g.agentImage,
        secs(g.agentImageWaitMs.median, 1),
        g.prePullReadyMs ? secs(g.prePullReadyMs.median, 1) : "–",
        String(g.failed),
      ]),
      notes: [
        "job wait: receiveTime − queueTime (emulator); the operator polls every 1 s",
        `node up a while: the job is queued ${secs(o.agentPullMs + o.settleMs, 0)} s after the node joined (with pre-pull, and once the status says ready)`,
        "job with the node: the job is queued as the node joins; with pre-pull the DaemonSet's pod starts the pull and the agent pod shares it",
        "agent image: the node's decision for the agent container (pull, or present on the node already); its wait: the configured time",
        "pre-pull ready: from the node's start until status.imagePrePull said ready on it",
      ],
    },
    {
      title: "Job wait with pre-pull / without (ratio of medians, same run)",
      columns: ["scenario", "on / off"],
      rows: scenarios.map((s) => [s, fixed(ratio(s), 2)]),
    },
  ];
  return {
    name: "prepull",
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    machine: { ...machine, loadAverage1mEnd: loadEnd },
    ...(gitRevision() ? { revision: gitRevision() } : {}),
    parameters: { ...o, quick: ctx.quick, agentImage: AGENT_IMAGE, pollInterval: "1s" },
    results: {
      summary: groups.map((g) => ({
        ...g,
        jobWaitMs: rounded(g.jobWaitMs),
        agentImageWaitMs: rounded(g.agentImageWaitMs),
        ...(g.prePullReadyMs ? { prePullReadyMs: rounded(g.prePullReadyMs) } : {}),
      })),
      ratiosOnOverOff: Object.fromEntries(scenarios.map((s) => [s, Math.round(ratio(s) * 100) / 100])),
      runs: runs.map((r) => ({
        ...r,
        jobWaitMs: Math.round(r.jobWaitMs),
        ...(r.prePullReadyMs !== undefined ? { prePullReadyMs: Math.round(r.prePullReadyMs) } : {}),
      })),
    },
    tables,
  };
}

export const prePull: Benchmark = {
  name: "prepull",
  description: "job wait on a cold node, with and without image pre-pull (agent image pull 5 s)",
  expectedS: 150,
  run: (ctx) => runPrePullBench(ctx),
};

if (import.meta.main) {
  await runBenchmarks([prePull], { quick: quickFromArgv() });
}
