/**
 * The plan stage alone, in this process: no control plane, no other process on the cores. The `scale` benchmark
 * measures the plan inside the operator while the API server, etcd, the virtual nodes and the emulator share the
 * machine's two cores, so its tail mixes the plan's own cost with waiting for a core. This one runs the operator's
 * own code for that stage (`planOnPool`: the sharing of the pool, then the scale plan) on the same shape of world,
 * with the same kind of churn, and reports what the code costs by itself, and how much of it is garbage collection.
 *
 * The world is one pool of the `scale` benchmark (10 resources, each with 20 warm agents and a burst template),
 * beside 40 resources on other pools (a plan looks at every resource to find those on its pool):
 * - idle: 200 warm pods on the pool, no jobs;
 * - burst: 200 jobs demanding `burst`, which every resource's burst template meets; at each moment some are
 *   queued, some have a pod on the way, some run on a burst pod, as in the middle of a burst.
 * Each plan is one resource's reconcile, the resources in turn. Between plans a few pod objects are replaced (as
 * watch events replace them in the cache), and every 10th plan sees a new poll (new job and agent objects, as each
 * poll is parsed afresh), so the per-object caches work as they do in the operator, no better.
 *
 *   node bench/plan.ts [--quick]    (or: node bench/run.ts plan)
 */
import { type PerformanceEntry, PerformanceObserver } from "node:perf_hooks";
import { type AutoScaledAgent, podAnnotations as annotations, labels } from "../src/api/v1/index.ts";
import { observePod, validateCached } from "../src/controller/observe.ts";
import { createPodFactory } from "../src/controller/pod-factory.ts";
import type { Caches, PodObject, PoolAgent, Resource } from "../src/controller/ports.ts";
import { PoolSharing, planOnPool } from "../src/controller/sharing.ts";
import { capabilitySetKey } from "../src/scaling/naming.ts";
import type { JobRequest } from "../src/scaling/types.ts";
import { mulberry32 } from "./chaos/prng.ts";
import { type Benchmark, quickFromArgv, runBenchmarks } from "./support/bench.ts";
import { type BenchResult, fixed, gitRevision, machineInfo, percentile } from "./support/stats.ts";

const ORG = "https://dev.azure.com/bench";
const NOW = Date.parse("2026-12-01T12:00:00Z");
const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();

export interface PlanBenchOptions {
  pools: number;
  resourcesPerPool: number;
  warmPerResource: number;
  burstJobs: number;
  /** Plans measured per scenario (after as many again to warm up). */
  plans: number;
  /** Pod objects replaced between two plans. */
  podChurn: number;
  /** A new poll every this many plans. */
  planPerPoll: number;
  seed: number;
}

const full: PlanBenchOptions = {
  pools: 5,
  resourcesPerPool: 10,
  warmPerResource: 20,
  burstJobs: 200,
  plans: 4000,
  podChurn: 4,
  planPerPoll: 10,
  seed: 5150,
};
const quick: PlanBenchOptions = { ...full, plans: 400 };

/** A resource as the `scale` benchmark declares it. */
function resourceObject(pool: number, index: number, o: PlanBenchOptions): AutoScaledAgent {
  const name = `r${pool}-${index}`;
  const template = (kind: string) => ({
    metadata: { labels: { "azp.bench/kind": kind } },
    spec: {
      containers: [
        { name: "agent", image: "agent:1" },
        { name: "sidecar", image: "sidecar:1" },
      ],
    },
  });
  return {
    apiVersion: "azurepipelines.k8s.scaler.io/v1",
    kind: "AutoScaledAgent",
    metadata: {
      name,
      namespace: `bench-${pool}`,
      uid: `uid-${name}`,
      generation: 1,
      resourceVersion: "1",
    },
    spec: {
      poolName: `pool-${pool}`,
      organizationUrl: ORG,
      personalAccessTokenSecretName: "azure-pat",
      maxTerminatedPodsToKeep: 0,
      agentMinIdlePeriod: "20s",
      podsWithCapabilities: [
        {
          capabilities: { warm: "1", [`warm-${name}`]: "1" },
          minCount: o.warmPerResource,
          maxCount: o.warmPerResource,
          podTemplateSpec: template("warm"),
        },
        {
          capabilities: { burst: "1", [`burst-${name}`]: "1" },
          minCount: 0,
          maxCount: o.burstJobs,
          podTemplateSpec: template("burst"),
        },
      ],
    },
  } as AutoScaledAgent;
}

type PodState = "pending" | "running";

function podObject(
  resource: AutoScaledAgent,
  name: string,
  templateIndex: number,
  state: PodState,
  version: number,
  createdFor?: number,
): PodObject {
  const t = (resource.spec.podsWithCapabilities as { capabilities: Record<string, string> }[])[templateIndex];
  const running = { running: { startedAt: iso(60_000) } };
  return {
    metadata: {
      name,
      namespace: resource.metadata?.namespace as string,
      resourceVersion: String(version),
      creationTimestamp: iso(120_000),
      labels: { [labels.template]: capabilitySetKey(t?.capabilities ?? {}), "azp.bench/kind": "agent" },
      annotations: createdFor === undefined ? {} : { [annotations.createdFor]: String(createdFor) },
      ownerReferences: [
        { kind: "AutoScaledAgent", name: resource.metadata?.name as string, uid: resource.metadata?.uid as string },
      ],
    },
    spec: {
      nodeName: state === "pending" ? "" : "node-1",
      containers: [{ name: "agent" }, { name: "sidecar" }],
    },
    status: {
      phase: state === "pending" ? "Pending" : "Running",
      startTime: iso(60_000),
      containerStatuses:
        state === "pending"
          ? []
          : [
              { name: "agent", state: running },
              { name: "sidecar", state: running },
            ],
    },
  } as PodObject;
}

interface World {
  resources: AutoScaledAgent[];
  /** Pods by resource uid (the cache's owner index). */
  pods: Map<string, PodObject[]>;
  jobRequests: JobRequest[];
  agents: PoolAgent[];
  /** The pool measured: its resources' keys and uids. */
  measured: { key: string; uid: string }[];
}

/**
 * The world at one moment. `phase` in [0, 1) moves the burst along: jobs up to it run on their pod, the next third
 * have a pending pod created for them, the rest are queued with no pod yet. Jobs are handed to resources in turn.
 */
function world(o: PlanBenchOptions, scenario: "idle" | "burst", phase: number): World {
  const resources: AutoScaledAgent[] = [];
  for (let p = 0; p < o.pools; p++)
    for (let i = 0; i < o.resourcesPerPool; i++) resources.push(resourceObject(p, i, o));
  const pods = new Map<string, PodObject[]>();
  const agents: PoolAgent[] = [];
  const jobRequests: JobRequest[] = [];
  let agentId = 1;
  for (const r of resources) {
    const list: PodObject[] = [];
    for (let w = 0; w < o.warmPerResource; w++) list.push(podObject(r, `${r.metadata?.name}-w${w}`, 0, "running", 1));
    pods.set(r.metadata?.uid as string, list);
  }
  const onPool = resources.slice(0, o.resourcesPerPool);
  for (const r of onPool)
    for (const p of pods.get(r.metadata?.uid as string) ?? [])
      agents.push({ id: agentId++, name: p.metadata.name, status: "online", statusChangedOn: iso(600_000) });
  if (scenario === "burst") {
    const runningUpTo = Math.floor(o.burstJobs * phase);
    const podUpTo = Math.min(o.burstJobs, runningUpTo + Math.floor(o.burstJobs / 3));
    for (let j = 0; j < o.burstJobs; j++) {
      const requestId = 15_000 + j;
      const r = onPool[j % onPool.length] as AutoScaledAgent;
      const podName = `${r.metadata?.name}-b${requestId}`;
      const running = j < runningUpTo;
      if (j < podUpTo) {
        pods
          .get(r.metadata?.uid as string)
          ?.push(podObject(r, podName, 1, running ? "running" : "pending", 1, requestId));
        agents.push({
          id: agentId++,
          name: podName,
          status: running ? "online" : "offline",
          statusChangedOn: iso(5_000),
          ...(running ? { assignedRequest: { requestId } } : {}),
        });
      }
      jobRequests.push({
        requestId,
        queueTime: iso(8_000),
        demands: ["burst", "Agent.Version -gtVersion 2.0"],
        ...(running ? { assignTime: iso(2_000), reservedAgent: { id: agentId - 1, name: podName } } : {}),
      });
    }
  }
  return {
    resources,
    pods,
    jobRequests,
    agents,
    measured: onPool.map((r) => ({
      key: `${r.metadata?.namespace}/${r.metadata?.name}`,
      uid: r.metadata?.uid as string,
    })),
  };
}

/** A copy of every job and agent (a poll parses new objects). */
const polled = (w: World) => ({
  jobRequests: w.jobRequests.map((j) => structuredClone(j)),
  agents: w.agents.map((a) => structuredClone(a)),
});

interface Measured {
  scenario: string;
  plans: number;
  /** Per plan (ms). */
  samples: number[];
  /** Garbage collection while measuring (ms, all kinds). */
  gcMs: number;
  totalMs: number;
}

async function measure(o: PlanBenchOptions, scenario: "idle" | "burst"): Promise<Measured> {
  const random = mulberry32(o.seed);
  const factory = createPodFactory({ terminatorImage: "busybox:1" });
  let w = world(o, scenario, 0.3);
  let poll = polled(w);
  const byUid = new Map(w.pods);
  const caches: Caches = {
    resource: (key) => w.resources.find((r) => `${r.metadata?.namespace}/${r.metadata?.name}` === key),
    allResources: () => w.resources,
    podsOf: (uid) => byUid.get(uid) ?? [],
    pvcsOf: () => [],
    liveAgentPodNames: () => undefined,
    podsListedAt: () => NOW,
  };
  const sharing = new PoolSharing({ caches, pods: factory, organizationKey: (url) => url.toLowerCase() });
  let version = 2;
  /** Replaces `podChurn` pod objects of the pool with copies of a newer version (a watch event each). */
  const churn = () => {
    for (let c = 0; c < o.podChurn; c++) {
      const m = w.measured[Math.floor(random() * w.measured.length)] as World["measured"][number];
      const list = byUid.get(m.uid) ?? [];
      const i = Math.floor(random() * list.length);
      const old = list[i];
      if (!old) continue;
      const next = structuredClone(old);
      next.metadata.resourceVersion = String(version++);
      byUid.set(
        m.uid,
        list.map((p, k) => (k === i ? next : p)),
      );
    }
  };
  const samples: number[] = [];
  // GC entries arrive after the (synchronous) loop: they are picked by their time.
  const gcEntries: PerformanceEntry[] = [];
  const gc = new PerformanceObserver((list) => gcEntries.push(...list.getEntries()));
  gc.observe({ entryTypes: ["gc"] });
  let measuring = false;
  const total = o.plans * 2;
  let measuredStart = 0;
  for (let n = 0; n < total; n++) {
    if (n === o.plans) {
      measuring = true;
      measuredStart = performance.now();
    }
    if (n % o.planPerPoll === 0) {
      // The burst moves on; the pods follow its new moment, as the caches would.
      if (scenario === "burst") {
        w = world(o, scenario, 0.1 + 0.6 * ((n / o.planPerPoll) % 20) * 0.05);
        for (const [uid, list] of w.pods) byUid.set(uid, list);
      }
      poll = polled(w);
    }
    churn();
    const m = w.measured[n % w.measured.length] as World["measured"][number];
    const raw = w.resources.find((r) => r.metadata?.uid === m.uid) as AutoScaledAgent;
    const v = validateCached(raw);
    if (!v.ok) throw new Error(`resource ${m.key} is invalid: ${v.errors.join("; ")}`);
    const resource = v.value as Resource;
    const pods = (byUid.get(m.uid) ?? []).map((p) => observePod(p, resource.spec.podsWithCapabilities));
    const started = performance.now();
    planOnPool(sharing, {
      key: m.key,
      resource,
      snapshot: poll,
      pods,
      endedJobs: new Map(),
      // As the operator's standby work answers for templates without standby settings: each one's minCount.
      standbyCounts: resource.spec.podsWithCapabilities.map((t) => t.minCount),
      now: NOW,
      checkExtraAgentContainers: factory.extraAgentContainersChecker(resource.spec),
    });
    if (measuring) samples.push(performance.now() - started);
  }
  const measuredEnd = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 50));
  gc.disconnect();
  const gcMs = gcEntries
    .filter((e) => e.startTime >= measuredStart && e.startTime < measuredEnd)
    .reduce((sum, e) => sum + e.duration, 0);
  return { scenario, plans: o.plans, samples, gcMs, totalMs: measuredEnd - measuredStart };
}

export const plan: Benchmark = {
  name: "plan",
  description: "the plan stage alone in this process (sharing + scale plan), one pool of the scale benchmark",
  expectedS: 30,
  cluster: false,
  async run(ctx) {
    const o = ctx.quick ? quick : full;
    const started = Date.now();
    const date = new Date(started).toISOString();
    const runs: Measured[] = [];
    for (const s of ["idle", "burst"] as const) {
      ctx.log(`plan: ${s}, ${o.plans} plans after ${o.plans} to warm up`);
      runs.push(await measure(o, s));
    }
    const rows = runs.map((r) => {
      const sorted = [...r.samples].sort((a, b) => a - b);
      const mean = r.samples.reduce((a, b) => a + b, 0) / r.samples.length;
      return {
        scenario: r.scenario,
        plans: r.plans,
        p50: percentile(sorted, 50),
        p90: percentile(sorted, 90),
        p99: percentile(sorted, 99),
        max: sorted.at(-1) ?? 0,
        mean,
        gcShare: r.gcMs / r.totalMs,
      };
    });
    const pods = o.resourcesPerPool * o.warmPerResource;
    const result: BenchResult = {
      name: "plan",
      date,
      durationS: (Date.now() - started) / 1000,
      machine: machineInfo(),
      ...(gitRevision() ? { revision: gitRevision() } : {}),
      parameters: { ...o, quick: ctx.quick },
      results: { rows },
      tables: [
        {
          title: `The plan stage in this process (${o.resourcesPerPool} resources on the pool, ${pods} warm pods; ${o.pools * o.resourcesPerPool} resources in all)`,
          columns: [
            "scenario",
            "plans",
            "p50 (ms)",
            "p90 (ms)",
            "p99 (ms)",
            "max (ms)",
            "mean (ms)",
            "GC share of the loop",
          ],
          rows: rows.map((r) => [
            r.scenario,
            String(r.plans),
            fixed(r.p50, 2),
            fixed(r.p90, 2),
            fixed(r.p99, 2),
            fixed(r.max, 1),
            fixed(r.mean, 2),
            `${fixed(100 * r.gcShare, 0)} %`,
          ]),
          notes: [
            `burst: ${o.burstJobs} jobs every resource of the pool can take, some queued, some with a pod on the way, some running`,
            `between plans ${o.podChurn} pod objects are replaced; every ${o.planPerPoll}th plan sees a new poll (new job and agent objects)`,
            "GC share: garbage collection time over the measured loop's time (the loop also builds the world)",
          ],
        },
      ],
    };
    return result;
  },
};

if (import.meta.main) await runBenchmarks([plan], { quick: quickFromArgv() });
