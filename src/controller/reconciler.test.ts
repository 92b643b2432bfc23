/**
 * The whole reconcile pipeline with in-memory fakes of every port (no API server, no Azure DevOps): each case
 * gives the observed world and checks the calls made to the outside, in order.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type AutoScaledAgent, podAnnotations as annotations, labels } from "../api/v1/index.ts";
import { patCredential } from "../azure-devops/auth.ts";
import { createMetrics } from "../observability/metrics.ts";
import { silentLogger } from "../runtime/logger.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import type { JobRequest } from "../scaling/types.ts";
import { CacheVolumes } from "./cache-volumes.ts";
import { POD_WRITES_IN_FLIGHT } from "./executor.ts";
import { Lanes } from "./lanes.ts";
import { PlaceholderWork } from "./placeholders.ts";
import { createPodFactory } from "./pod-factory.ts";
import type {
  AgentDeletion,
  AzureDevOpsPort,
  Caches,
  EventsPort,
  KubeWriter,
  PodObject,
  PoolAgent,
  PoolSnapshot,
  PvcObject,
} from "./ports.ts";
import { Reconciler } from "./reconciler.ts";
import { StandbyWork } from "./standby.ts";
import { standbyClock } from "./standby-store.ts";

const NOW = Date.parse("2026-12-01T12:00:00Z");
const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();
const UID = "uid-1";
const TEMPLATE_KEY = capabilitySetKey({ buildkit: "1" });

/** The resource; `cache: true` gives it a reusable cache volume its agent container mounts. */
function resource(spec: Record<string, unknown> = {}, options: { cache?: boolean } = {}): AutoScaledAgent {
  const mounts = options.cache ? [{ name: "cache", mountPath: "/cache" }] : [];
  return {
    apiVersion: "azurepipelines.k8s.scaler.io/v1",
    kind: "AutoScaledAgent",
    metadata: { name: "agents", namespace: "ci", uid: UID, generation: 1 },
    spec: {
      poolName: "pool",
      organizationUrl: "https://dev.azure.com/org",
      personalAccessTokenSecretName: "pat",
      maxTerminatedPodsToKeep: 1,
      agentMinIdlePeriod: "1m",
      podsWithCapabilities: [
        {
          capabilities: { buildkit: "1" },
          minCount: 0,
          maxCount: 3,
          podTemplateSpec: {
            spec: {
              containers: [
                { name: "agent", image: "agent:1", volumeMounts: mounts },
                { name: "buildkit", image: "buildkit:1" },
              ],
            },
          },
        },
      ],
      ...(options.cache ? { reusableCacheVolumes: [{ name: "cache", requestedStorage: "1Gi" }] } : {}),
      ...spec,
    },
  } as AutoScaledAgent;
}

type PodState = "pending" | "running" | "agent-done" | "succeeded";

function pod(
  name: string,
  state: PodState,
  extra: { createdMsAgo?: number; idleMarkMsAgo?: number; createdFor?: number; exitCode?: number } = {},
): PodObject {
  const running = { running: { startedAt: iso(60_000) } };
  const terminated = { terminated: { exitCode: 0 } };
  const agentEnded = { terminated: { exitCode: extra.exitCode ?? 0 } };
  const agent = state === "pending" ? {} : state === "running" ? running : agentEnded;
  const sidecar = state === "succeeded" ? terminated : state === "pending" ? {} : running;
  return {
    metadata: {
      name,
      namespace: "ci",
      resourceVersion: `rv-${name}`,
      creationTimestamp: iso(extra.createdMsAgo ?? 120_000),
      labels: { [labels.template]: TEMPLATE_KEY },
      annotations: {
        ...(extra.idleMarkMsAgo === undefined ? {} : { [annotations.idleSince]: String(NOW - extra.idleMarkMsAgo) }),
        ...(extra.createdFor === undefined ? {} : { [annotations.createdFor]: String(extra.createdFor) }),
      },
      ownerReferences: [{ kind: "AutoScaledAgent", name: "agents", uid: UID, controller: true }],
    },
    spec: {
      nodeName: state === "pending" ? "" : "node-1",
      containers: [{ name: "agent" }, { name: "buildkit" }],
    },
    status: {
      phase: state === "succeeded" ? "Succeeded" : state === "pending" ? "Pending" : "Running",
      startTime: iso(60_000),
      containerStatuses: [
        { name: "agent", state: agent },
        { name: "buildkit", state: sidecar },
      ],
    },
  };
}

function pvc(name: string, claimedBy: string | undefined, resourceVersion = "10"): PvcObject {
  return {
    metadata: {
      name,
      namespace: "ci",
      resourceVersion,
      creationTimestamp: iso(600_000),
      labels: { [labels.cacheVolume]: "cache" },
      annotations: claimedBy ? { "azurepipelines.k8s.scaler.io/claimed-by": claimedBy } : {},
    },
  };
}

const queued = (requestId: number, demands: string[] = ["buildkit"]): JobRequest => ({
  requestId,
  queueTime: iso(5_000),
  demands,
});

const agent = (id: number, name: string, extra: Partial<PoolAgent> = {}): PoolAgent => ({
  id,
  name,
  status: "online",
  statusChangedOn: iso(600_000),
  ...extra,
});

type PoolState = { jobRequests?: JobRequest[]; agents?: PoolAgent[]; fetchedMsAgo?: number } | { error: string };

interface World {
  resource: AutoScaledAgent;
  pods?: PodObject[];
  pvcs?: PvcObject[];
  /** The pool's snapshot (fetched `fetchedMsAgo` before NOW); an error string makes the poll fail instead. */
  pool: PoolState;
  /** What changes before the second reconcile. */
  afterwards?: { pool?: PoolState };
  agentDeletion?: AgentDeletion | "hang";
  /** The API server no longer has the resource (the cache is behind). */
  resourceGone?: boolean;
  /** The outcome of pod POSTs (default created). */
  createOutcome?: "created" | "unknown" | "refused";
  /** Pod POSTs take this long (default: answered at once). */
  createDelayMs?: number;
  /** Answers of PVC claim patches, in order (then "done"). */
  pvcPatches?: ("done" | "conflict")[];
  /** Pod DELETEs take this long (default: answered at once). */
  deleteDelayMs?: number;
  /** The answer to conditional pod deletes (default done). */
  conditionalDelete?: "done" | "changed";
  /** Standby agents decided as the operator does (src/controller/standby.ts); default: none. */
  standby?: boolean;
}

function harness(world: World) {
  const calls: string[] = [];
  /** The capability sets of each placeholder registration run. */
  const ensured: string[][] = [];
  const events: string[] = [];
  const statuses: { conditions?: { type: string; status: string; reason: string; message: string }[] }[] = [];
  const enqueued: (number | undefined)[] = [];
  const pvcPatches = [...(world.pvcPatches ?? [])];
  const snapshot = (): PoolSnapshot | undefined =>
    "error" in world.pool
      ? undefined
      : {
          poolId: 1,
          jobRequests: world.pool.jobRequests ?? [],
          agents: world.pool.agents ?? [],
          fetchedAt: NOW - (world.pool.fetchedMsAgo ?? 0),
        };
  const caches: Caches = {
    resource: (key) => (key === "ci/agents" ? world.resource : undefined),
    allResources: () => [world.resource],
    podsOf: () => world.pods ?? [],
    pvcsOf: () => world.pvcs ?? [],
    liveAgentPodNames: () => new Set((world.pods ?? []).map((p) => p.metadata.name)),
    podsListedAt: () => NOW - 3_600_000,
  };
  const creates = { inFlight: 0, maxInFlight: 0 };
  const deletes = { inFlight: 0, maxInFlight: 0 };
  const kube: KubeWriter = {
    async createPod(_ns, p) {
      creates.inFlight++;
      creates.maxInFlight = Math.max(creates.maxInFlight, creates.inFlight);
      if (world.createDelayMs) await sleep(world.createDelayMs);
      creates.inFlight--;
      const spec = (p as { spec: { volumes?: { persistentVolumeClaim?: { claimName: string } }[] } }).spec;
      const claims = (spec.volumes ?? []).flatMap((v) => v.persistentVolumeClaim?.claimName ?? []);
      calls.push(`createPod${claims.length ? ` with ${claims.join(",")}` : ""}`);
      if (world.createOutcome === "refused") return { outcome: "refused", message: "pods is forbidden: quota" };
      return world.createOutcome === "unknown"
        ? { outcome: "unknown", message: "timeout" }
        : { outcome: "created", resourceVersion: "rv-created" };
    },
    async deletePod(_ns, name, resourceVersion) {
      deletes.inFlight++;
      deletes.maxInFlight = Math.max(deletes.maxInFlight, deletes.inFlight);
      if (world.deleteDelayMs) await sleep(world.deleteDelayMs);
      deletes.inFlight--;
      if (resourceVersion === undefined) {
        calls.push(`deletePod ${name}`);
        return "done";
      }
      const answer = world.conditionalDelete ?? "done";
      calls.push(`deletePod ${name} if rv=${resourceVersion}: ${answer}`);
      return answer;
    },
    async patchPod(_ns, name, patch) {
      const body = patch.body as { metadata?: { annotations?: Record<string, unknown> }; spec?: unknown };
      const what = body.spec ? "stop" : `idle=${body.metadata?.annotations?.[annotations.idleSince]}`;
      calls.push(`patchPod ${name} ${patch.type} ${what}`);
      return "done";
    },
    async createPvc(_ns, p) {
      calls.push(`createPvc ${p.metadata.labels?.[labels.cacheVolume]}`);
    },
    async patchPvcAnnotations(_ns, name, _a, rv) {
      const answer = pvcPatches.shift() ?? "done";
      calls.push(`claim ${name}${rv ? ` if rv=${rv}` : ""}: ${answer}`);
      return answer;
    },
    async releasePvcClaim(_ns, name, holder) {
      calls.push(`release ${name} if held by ${holder}`);
      return "done";
    },
    async patchStatus(_ns, _name, status) {
      statuses.push(status as { conditions?: { type: string; status: string; reason: string; message: string }[] });
      return "done";
    },
    async setFinalizers() {
      return "done";
    },
    async liveResource() {
      return world.resourceGone ? undefined : { uid: UID, deleting: false };
    },
  };
  const azureDevOps: AzureDevOpsPort = {
    subscribe: () => ({
      latest: snapshot,
      lastError: () => ("error" in world.pool ? { kind: "server", message: world.pool.error } : undefined),
      pollNow: () => {},
      release: () => {},
    }),
    async deleteAgent(_t, _pool, agentId) {
      calls.push(`deleteAgent ${agentId}: ${world.agentDeletion ?? "deleted"}`);
      if (world.agentDeletion === "hang") return new Promise<AgentDeletion>(() => {});
      return world.agentDeletion ?? "deleted";
    },
    placeholders: () => ({
      ensure: async (_poolId, wanted) => {
        ensured.push(wanted.map((w) => Object.keys(w.capabilities).sort().join("+")));
        return { status: "ok", registered: [] };
      },
      collectGarbage: async () => ({ deleted: [] }),
      removeAgents: async () => ({ deleted: [] }),
    }),
    organizationKey: (url) => url,
    credentialKey: () => "pat:test",
  };
  const eventsPort: EventsPort = {
    normal: (_r, reason) => events.push(reason),
    warning: (_r, reason) => events.push(reason),
  };
  let n = 0;
  const now = () => NOW;
  const lanes = new Lanes({ concurrency: 2 });
  const podLanes = new Lanes({ concurrency: POD_WRITES_IN_FLIGHT });
  const metrics = createMetrics({ defaultMetrics: false });
  const reconciler = new Reconciler({
    caches,
    kube,
    azureDevOps,
    credentials: {
      resolve: async () => ({ ok: true, credential: patCredential("secret") }),
      forget: () => {},
      refused: () => {},
    },
    pods: createPodFactory({ terminatorImage: "busybox:stable" }),
    events: eventsPort,
    metrics,
    logger: silentLogger(),
    cacheVolumes: new CacheVolumes(kube, now, () => `v${++n}`),
    placeholders: new PlaceholderWork({ azureDevOps, events: eventsPort, now }),
    lanes,
    podLanes,
    ...(world.standby
      ? {
          standby: new StandbyWork({
            store: {
              read: async () => {
                throw new Error("no history: no template is predictive");
              },
              write: async () => {
                throw new Error("no history: no template is predictive");
              },
            },
            events: eventsPort,
            clock: standbyClock(now),
            realNow: now,
            writeIntervalMs: 60_000,
          }),
        }
      : {}),
    enqueue: (_key, afterMs) => enqueued.push(afterMs),
    now,
    suffix: () => `p${++n}`.padEnd(5, "x"),
    resyncIntervalMs: 30_000,
  });
  const next = () => {
    if (world.afterwards?.pool) world.pool = world.afterwards.pool;
  };
  const reconcile = async () => {
    await reconciler.reconcile("ci/agents");
    await Promise.all([lanes.idle(), podLanes.idle(), reconciler.writesDone()]);
  };
  return {
    calls,
    creates,
    deletes,
    ensured,
    events,
    metrics,
    next,
    reconcile,
    reconcileOnly: () => reconciler.reconcile("ci/agents"),
    lanes,
    podLanes,
    statuses,
    enqueued,
  };
}

interface Case {
  name: string;
  world: World;
  /** Calls to the outside of each reconcile, in order. */
  calls: string[][];
  events?: string[];
}

const cases: Case[] = [
  {
    name: "job -> create",
    world: { resource: resource(), pool: { jobRequests: [queued(1)] } },
    calls: [["createPod"]],
    events: ["PodCreated"],
  },
  {
    name: "job demanding what every agent reports (Agent.OS Linux) -> create",
    world: { resource: resource(), pool: { jobRequests: [queued(1, ["buildkit", "Agent.OS -equals Linux"])] } },
    calls: [["createPod"]],
    events: ["PodCreated"],
  },
  {
    name: "job demanding Agent.OS Windows of Linux templates -> not served, reported",
    world: { resource: resource(), pool: { jobRequests: [queued(1, ["Agent.OS -equals Windows"])] } },
    calls: [[]],
    events: ["JobNotServed"],
  },
  {
    name: "declared Agent.OS the agent replaces -> reported every reconcile, scaling goes on",
    world: {
      resource: resource({
        podsWithCapabilities: [
          {
            capabilities: { buildkit: "1", "Agent.OS": "Windows" },
            minCount: 0,
            maxCount: 3,
            podTemplateSpec: { spec: { containers: [{ name: "agent", image: "agent:1" }] } },
          },
        ],
      }),
      pool: { jobRequests: [queued(1)] },
    },
    // The second reconcile knows the pod it created for the job.
    calls: [["createPod"], []],
    events: ["CapabilityOverridden", "PodCreated", "CapabilityOverridden"],
  },
  {
    name: "job, but the API server no longer has the cached resource -> nothing created",
    world: { resource: resource(), pool: { jobRequests: [queued(1)] }, resourceGone: true },
    calls: [[]],
  },
  {
    name: "job -> create, claiming the free cache PVC",
    world: {
      resource: resource({}, { cache: true }),
      pvcs: [pvc("agents-cache-a", undefined)],
      pool: { jobRequests: [queued(1)] },
    },
    calls: [["claim agents-cache-a if rv=10: done", "createPod with agents-cache-a"]],
  },
  {
    name: "a create that may have succeeded keeps its claim and is expected: no second pod",
    world: {
      resource: resource({}, { cache: true }),
      pvcs: [pvc("agents-cache-a", undefined)],
      pool: { jobRequests: [queued(1)] },
      createOutcome: "unknown",
    },
    calls: [["claim agents-cache-a if rv=10: done", "createPod with agents-cache-a"], []],
    events: ["PodCreateFailed"],
  },
  {
    name: "idle past period -> delete agent then pod",
    world: {
      resource: resource(),
      pods: [pod("agents-idle1", "running", { idleMarkMsAgo: 120_000 })],
      pool: { agents: [agent(7, "agents-idle1")] },
    },
    calls: [["deleteAgent 7: deleted", "deletePod agents-idle1"]],
    events: ["PodDeleted"],
  },
  {
    name: "idle but not for long enough -> marked, kept",
    world: {
      resource: resource(),
      pods: [pod("agents-idle1", "running")],
      pool: { agents: [agent(7, "agents-idle1", { statusChangedOn: iso(1_000) })] },
    },
    calls: [[`patchPod agents-idle1 merge idle=${NOW}`]],
  },
  {
    name: "a pod never scheduled and not needed -> deleted if it is still the version seen",
    world: { resource: resource(), pods: [pod("agents-p1", "pending")], pool: {} },
    calls: [["deletePod agents-p1 if rv=rv-agents-p1: done"]],
    events: ["PodDeleted"],
  },
  {
    name: "a pod created here, not cached yet, then not needed -> deleted if unchanged since its POST",
    world: {
      resource: resource(),
      pool: { jobRequests: [queued(1)] },
      // The job is cancelled before the cache shows the pod.
      afterwards: { pool: { jobRequests: [] } },
    },
    calls: [["createPod"], ["deletePod agents-p1xxx if rv=rv-created: done"]],
    events: ["PodCreated", "PodDeleted"],
  },
  {
    name: "... and if it changed since (scheduled, its agent may hold a job) -> kept",
    world: { resource: resource(), pods: [pod("agents-p1", "pending")], pool: {}, conditionalDelete: "changed" },
    calls: [["deletePod agents-p1 if rv=rv-agents-p1: changed"]],
  },
  {
    name: "agent deletion refused -> pod kept",
    world: {
      resource: resource(),
      pods: [pod("agents-idle1", "running", { idleMarkMsAgo: 120_000 })],
      pool: { agents: [agent(7, "agents-idle1")] },
      agentDeletion: "refused",
    },
    calls: [["deleteAgent 7: refused"]],
    events: ["ScaleDownDeferred"],
  },
  {
    name: "finished pods beyond keep -> deleted with their agents",
    world: {
      resource: resource({ maxTerminatedPodsToKeep: 1 }),
      pods: [
        pod("agents-old", "succeeded", { createdMsAgo: 600_000 }),
        pod("agents-new", "succeeded", { createdMsAgo: 60_000 }),
      ],
      pool: { agents: [agent(8, "agents-old", { status: "offline" })] },
    },
    calls: [["deletePod agents-old", "deleteAgent 8: deleted"]],
  },
  {
    name: "sidecar stop",
    world: { resource: resource(), pods: [pod("agents-done", "agent-done")], pool: {} },
    calls: [["patchPod agents-done strategic stop"]],
    events: ["SidecarsStopped"],
  },
  {
    name: "claim conflict -> retried next reconcile",
    world: {
      resource: resource({}, { cache: true }),
      pvcs: [pvc("agents-cache-a", undefined)],
      pool: { jobRequests: [queued(1)] },
      pvcPatches: ["conflict", "done"],
    },
    calls: [
      ["claim agents-cache-a if rv=10: conflict"],
      ["claim agents-cache-a if rv=10: done", "createPod with agents-cache-a"],
    ],
    events: ["CacheVolumeClaimConflict", "PodCreated"],
  },
  {
    name: "released claim of a finished pod is conditional",
    world: {
      resource: resource({ maxTerminatedPodsToKeep: 5 }, { cache: true }),
      pods: [pod("agents-done", "succeeded")],
      pvcs: [pvc("agents-cache-a", "agents-done", "42")],
      pool: {},
    },
    calls: [["release agents-cache-a if held by agents-done"]],
  },
  {
    name: "stale job list: the job of a pod whose agent already ended gets no second pod",
    world: {
      resource: resource({ maxTerminatedPodsToKeep: 5 }),
      pods: [pod("agents-ran1", "succeeded", { createdFor: 1 })],
      // The poll predates the pod's end: it still shows job 1 queued.
      pool: { jobRequests: [queued(1)], fetchedMsAgo: 1_000 },
    },
    calls: [[]],
  },
  {
    name: "a job still queued in a poll newer than its pod's end gets a new pod",
    world: {
      resource: resource({ maxTerminatedPodsToKeep: 5 }),
      pods: [pod("agents-ran1", "succeeded", { createdFor: 1 })],
      pool: { jobRequests: [queued(1)], fetchedMsAgo: 1_000 },
      afterwards: { pool: { jobRequests: [queued(1)], fetchedMsAgo: -1_000 } },
    },
    calls: [[], ["createPod"]],
  },
  {
    name: "an agent that exited with an error holds the template back instead of churning pods",
    world: {
      resource: resource({ maxTerminatedPodsToKeep: 5 }),
      pods: [pod("agents-bad1", "succeeded", { exitCode: 1 })],
      pool: { jobRequests: [queued(1)] },
    },
    calls: [[], []],
    events: ["AgentsFailing", "AgentsFailing"],
  },
  {
    name: "poll failed -> housekeeping only",
    world: {
      resource: resource({ maxTerminatedPodsToKeep: 0 }, { cache: true }),
      pods: [
        pod("agents-done", "agent-done"),
        pod("agents-fin", "succeeded"),
        pod("agents-idle1", "running", { idleMarkMsAgo: 600_000 }),
      ],
      pvcs: [pvc("agents-cache-a", "agents-fin", "42")],
      pool: { error: "HTTP 503" },
    },
    // No create for the queued job, no scale-down, no agent deletion: only what Kubernetes alone decides.
    calls: [
      // The claim release ends in the reconcile; the pod writes run in the namespace's lane.
      ["release agents-cache-a if held by agents-fin", "patchPod agents-done strategic stop", "deletePod agents-fin"],
    ],
    events: ["AzureDevOpsServerError", "SidecarsStopped"],
  },
];

describe("Reconciler (all ports faked)", () => {
  for (const c of cases) {
    test(c.name, async () => {
      const h = harness(c.world);
      const seen: string[][] = [];
      for (let i = 0; i < c.calls.length; i++) {
        if (i > 0) h.next();
        h.calls.length = 0;
        await h.reconcile();
        seen.push([...h.calls]);
      }
      assert.deepEqual(seen, c.calls);
      if (c.events) assert.deepEqual(h.events, c.events);
    });
  }
});

test("a hanging agent deletion holds no reconcile: the next job of the resource still gets its pod", async () => {
  const world: World = {
    resource: resource(),
    pods: [pod("agents-idle1", "running", { idleMarkMsAgo: 120_000 })],
    pool: { agents: [agent(7, "agents-idle1")] },
    agentDeletion: "hang",
  };
  const h = harness(world);
  await h.reconcileOnly();
  assert.deepEqual(h.calls, ["deleteAgent 7: hang"]);
  world.pool = { agents: [agent(7, "agents-idle1")], jobRequests: [queued(2), queued(3)] };
  h.calls.length = 0;
  await h.reconcileOnly();
  // The idle pod covers one job (its idle mark goes), a new pod the other; the deletion is not asked for again.
  await h.podLanes.idle();
  assert.deepEqual(h.calls.sort(), ["createPod", "patchPod agents-idle1 merge idle=null"]);
});

test("a burst: pod POSTs run in the namespace's lane (POD_WRITES_IN_FLIGHT at once), after the reconcile; the next one counts them", async () => {
  const world: World = {
    resource: resource({
      podsWithCapabilities: [
        {
          ...(resource().spec.podsWithCapabilities[0] as object),
          maxCount: 40,
        },
      ],
    }),
    // Two finished pods, one more than maxTerminatedPodsToKeep: one is deleted, after the creates (in the same lane).
    pods: [pod("agents-done1", "succeeded"), pod("agents-done2", "succeeded")],
    pool: { jobRequests: Array.from({ length: 21 }, (_, i) => queued(100 + i)) },
    createDelayMs: 20,
  };
  const h = harness(world);
  await h.reconcileOnly();
  // A moment later (the lane's checks and builds done), as many POSTs as the lane allows are in flight (20 ms each).
  await sleep(5);
  assert.equal(h.creates.inFlight, POD_WRITES_IN_FLIGHT, "the POSTs run after the reconcile");
  // A reconcile while the POSTs wait: the pods are expected, none is created twice.
  await h.reconcileOnly();
  await h.podLanes.idle();
  assert.equal(h.creates.maxInFlight, POD_WRITES_IN_FLIGHT);
  assert.equal(h.calls.filter((c) => c === "createPod").length, 21, h.calls.join("; "));
  // The finished pod's delete was queued behind the creates: it started when the last of them had.
  const deletion = h.calls.indexOf("deletePod agents-done2");
  assert.ok(deletion >= 21 - POD_WRITES_IN_FLIGHT, h.calls.join("; "));
  await h.reconcile();
  assert.equal(h.calls.filter((c) => c === "createPod").length, 21, "answered creates are still expected");
});

test("the end of a burst: a job list that lags the agent list creates no warm pod for minCount 0", async () => {
  // Pod a1 was created for job 1 but its agent ran job 2; pod a2, created for job 2, ran job 1 and has just
  // completed it (the agent list says so); a1 has ended. The job list, older, still shows job 1 reserved by a2.
  // Job 1 counts as a job of an ended pod (a1 was created for it), so the plan leaves it out and sees a2 finishing;
  // the standby work, reading the whole list, saw a2 busy: a minCount of 1 made a warm pod nobody asked for.
  const world: World = {
    resource: resource(),
    standby: true,
    pods: [pod("agents-a1", "agent-done", { createdFor: 1 }), pod("agents-a2", "running", { createdFor: 2 })],
    pool: {
      fetchedMsAgo: 2_000,
      jobRequests: [{ ...queued(1), assignTime: iso(60_000), reservedAgent: { id: 12, name: "agents-a2" } }],
      agents: [
        agent(11, "agents-a1", { lastCompletedRequest: { requestId: 2, finishTime: iso(3_000) } }),
        agent(12, "agents-a2", { lastCompletedRequest: { requestId: 1, finishTime: iso(1_000) } }),
      ],
    },
  };
  const h = harness(world);
  await h.reconcile();
  assert.deepEqual(
    h.calls.filter((c) => c.startsWith("createPod")),
    [],
    h.calls.join("; "),
  );
});

test("a refused create: a problem of the next reconcile (2 s later) while the template needs pods, then cleared", async () => {
  const world: World = {
    resource: resource(),
    pool: { jobRequests: [queued(1)] },
    createOutcome: "refused",
  };
  const h = harness(world);
  await h.reconcile();
  assert.deepEqual(h.calls, ["createPod"]);
  assert.deepEqual(h.events, ["PodCreateFailed"]);
  assert.deepEqual(
    h.enqueued.filter((ms) => ms !== undefined),
    [2_000],
    "a reconcile 2 s later reports it and tries again",
  );
  const degraded = (i: number) => h.statuses[i]?.conditions?.find((c) => c.type === "Degraded");
  assert.equal(degraded(0)?.status, "False", "the reconcile that asked did not know yet");
  await h.reconcile();
  assert.deepEqual(h.calls, ["createPod", "createPod"], "the refused pod is not expected: created again");
  assert.equal(degraded(1)?.reason, "PodCreateFailed");
  assert.match(degraded(1)?.message ?? "", /creating pod agents-p\w+ failed: pods is forbidden: quota/);
  // The job is gone: no pod is wanted, the problem goes with it.
  world.pool = { jobRequests: [] };
  await h.reconcile();
  assert.equal(degraded(2)?.status, "False", JSON.stringify(h.statuses[2]));
  // A create that succeeds clears it too.
  world.pool = { jobRequests: [queued(2)] };
  await h.reconcile();
  world.createOutcome = "created";
  await h.reconcile();
  const latest = () => h.statuses.at(-1)?.conditions?.find((c) => c.type === "Degraded");
  assert.equal(latest()?.reason, "PodCreateFailed", "still failing until a create succeeds");
  await h.reconcile();
  assert.equal(latest()?.status, "False", JSON.stringify(h.statuses.at(-1)));
});

test("after a burst: finished-pod deletes run in the namespace's lane (POD_WRITES_IN_FLIGHT at once), after the reconcile", async () => {
  const finished = Array.from({ length: 20 }, (_, i) => pod(`agents-done${i}`, "succeeded"));
  const h = harness({
    resource: resource({ maxTerminatedPodsToKeep: 0 }),
    pods: finished,
    pool: {},
    deleteDelayMs: 20,
  });
  await h.reconcileOnly();
  assert.equal(h.deletes.inFlight, POD_WRITES_IN_FLIGHT, "the reconcile ended with DELETEs in flight");
  // A reconcile meanwhile asks for none of them again: each pod has its task.
  await h.reconcileOnly();
  await h.podLanes.idle();
  assert.equal(h.calls.filter((c) => c.startsWith("deletePod")).length, 20, h.calls.join("; "));
  assert.equal(h.deletes.maxInFlight, POD_WRITES_IN_FLIGHT);
});

test("metrics: the wait until a job's pod was created; the pool's queued and unserved jobs", async () => {
  const h = harness({
    resource: resource(),
    pool: { jobRequests: [queued(1), queued(2, ["Agent.OS -equals Windows"])] },
  });
  await h.reconcile();
  const text = await h.metrics.registry.metrics();
  const resourceLabels = 'namespace="ci",name="agents",template="0"';
  assert.match(text, new RegExp(`azp_scaler_job_wait_until_pod_created_seconds_sum\\{${resourceLabels}\\} 5\n`));
  assert.match(text, new RegExp(`azp_scaler_job_wait_until_pod_created_seconds_count\\{${resourceLabels}\\} 1\n`));
  const pool = 'organization="https://dev.azure.com/org",pool="pool"';
  assert.match(text, new RegExp(`azp_scaler_queued_jobs\\{${pool}\\} 2\n`));
  assert.match(text, new RegExp(`azp_scaler_unserved_jobs\\{${pool},reason="no-matching-template"\\} 1\n`));
  assert.match(text, new RegExp(`azp_scaler_unserved_jobs\\{${pool},reason="max-count"\\} 0\n`));
});

test("a template added while polls fail still gets its placeholder (jobs for it queue instead of failing)", async () => {
  const world: World = { resource: resource(), pool: {} };
  const h = harness(world);
  await h.reconcile();
  assert.equal(h.ensured.length, 1, "the first placeholder registration");
  const spec = world.resource.spec as { podsWithCapabilities: Record<string, unknown>[] };
  world.resource = {
    ...world.resource,
    metadata: { ...world.resource.metadata, generation: 2 },
    spec: {
      ...world.resource.spec,
      podsWithCapabilities: [
        ...spec.podsWithCapabilities,
        { ...(spec.podsWithCapabilities[0] as object), capabilities: { buildkit: "1", gpu: "1" } },
      ],
    },
  } as AutoScaledAgent;
  world.pool = { error: "HTTP 429" };
  await h.reconcile();
  assert.equal(h.ensured.length, 2, "registered again for the new set, without a fresh poll");
  assert.ok(
    (h.ensured[1] ?? []).some((set) => set.includes("gpu")),
    JSON.stringify(h.ensured[1]),
  );
});
