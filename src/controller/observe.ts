/**
 * Pure mapping from what the caches and Azure DevOps show to the scaling core's observed state: pods and agents,
 * pods created but not yet cached, the templates as the core sees them, and the resources sharing a pool.
 */
import type { AutoScaledAgent, DefaultedAutoScaledAgent, DefaultedPodsWithCapabilities } from "../api/v1/index.ts";
import { podAnnotations as annotations, labels, validateAutoScaledAgent } from "../api/v1/index.ts";
import { keptIn } from "../runtime/memo.ts";
import { reportedCapabilities } from "../scaling/capabilities.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import type {
  ContainerRunState,
  ObservedAgent,
  ObservedContainer,
  ObservedPod,
  PodPhase,
  TemplateSpec,
} from "../scaling/types.ts";
import type { PodObject, PoolAgent, Resource } from "./ports.ts";

const ms = (iso: string | undefined): number | null => {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
};

function runState(
  status: { state?: { waiting?: unknown; running?: unknown; terminated?: unknown } } | undefined,
): ContainerRunState {
  if (!status?.state) return "unknown";
  if (status.state.terminated) return "terminated";
  if (status.state.running) return "running";
  if (status.state.waiting) return "waiting";
  return "unknown";
}

function exitCode(status: { state?: { terminated?: unknown } } | undefined): number | null {
  const code = (status?.state?.terminated as { exitCode?: unknown } | undefined)?.exitCode;
  return typeof code === "number" ? code : null;
}

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Template indexes by capability-set key, per templates list (a resource's lists are replaced, never edited). */
const templateKeys = new WeakMap<readonly DefaultedPodsWithCapabilities[], Map<string, number>>();

/** Index of the template with this key in the resource, or null (template removed or changed). */
export function templateIndexOf(
  templates: readonly DefaultedPodsWithCapabilities[],
  key: string | undefined,
): number | null {
  if (key === undefined) return null;
  let byKey = templateKeys.get(templates);
  if (byKey === undefined) {
    byKey = new Map();
    for (const [i, t] of templates.entries()) {
      const k = capabilitySetKey(t.capabilities as Record<string, string>);
      // The first of equal capability sets wins, as a search from the start would find it.
      if (!byKey.has(k)) byKey.set(k, i);
    }
    templateKeys.set(templates, byKey);
  }
  return byKey.get(key) ?? null;
}

export function observePod(pod: PodObject, templates: readonly DefaultedPodsWithCapabilities[]): ObservedPod {
  const a = pod.metadata.annotations ?? {};
  const statuses = pod.status?.containerStatuses ?? [];
  const initStatuses = pod.status?.initContainerStatuses ?? [];
  const [agent, ...others] = pod.spec.containers;
  const stopped = new Set(list(a[annotations.sidecarsStopped]));
  const otherContainers: ObservedContainer[] = [
    ...others.map((c) => ({
      name: c.name,
      state: runState(statuses.find((s) => s.name === c.name)),
      nativeSidecar: false,
      stopRequested: stopped.has(c.name),
    })),
    ...(pod.spec.initContainers ?? [])
      .filter((c) => c.restartPolicy === "Always")
      .map((c) => ({
        name: c.name,
        state: runState(initStatuses.find((s) => s.name === c.name)),
        nativeSidecar: true,
      })),
  ];
  const phase = (pod.status?.phase ?? "Pending") as PodPhase;
  const idle = a[annotations.idleSince];
  return {
    name: pod.metadata.name,
    templateIndex: templateIndexOf(templates, pod.metadata.labels?.[labels.template]),
    extraAgentContainers: a[annotations.extraAgentContainers] ?? null,
    createdAtMs: ms(pod.metadata.creationTimestamp) ?? 0,
    startedAtMs: ms(pod.status?.startTime),
    phase: ["Pending", "Running", "Succeeded", "Failed", "Unknown"].includes(phase) ? phase : "Unknown",
    scheduled: Boolean(pod.spec.nodeName),
    deleting: Boolean(pod.metadata.deletionTimestamp),
    agentContainer: runState(statuses.find((s) => s.name === agent?.name)),
    agentExitCode: exitCode(statuses.find((s) => s.name === agent?.name)),
    otherContainers,
    createdForRequestIds: list(a[annotations.createdFor])
      .map(Number)
      .filter((n) => Number.isSafeInteger(n)),
    idleMarkedAtMs: idle !== undefined && /^\d+$/.test(idle) ? Number(idle) : null,
  };
}

/**
 * Pods as the scaling core sees them, kept by pod object while the templates list stays: the caches replace a pod's
 * object when it changes and never edit one, and a resource's templates list stays the same array while its
 * generation stays (`validateCached`). So a reconcile maps only the pods that changed since the last, and so do the
 * plans of the other resources on the pool, which look at this resource's pods too (sharing.ts). Shared: never edit.
 */
const observed = new WeakMap<PodObject, { templates: readonly DefaultedPodsWithCapabilities[]; pod: ObservedPod }>();

export function observedPod(pod: PodObject, templates: readonly DefaultedPodsWithCapabilities[]): ObservedPod {
  const kept = observed.get(pod);
  if (kept?.templates === templates) return kept.pod;
  const mapped = observePod(pod, templates);
  observed.set(pod, { templates, pod: mapped });
  return mapped;
}

/** The mapped list, by list (the caches answer with the same list until one of its pods changes) and templates. */
const observedLists = new WeakMap<
  readonly PodObject[],
  { templates: readonly DefaultedPodsWithCapabilities[]; pods: readonly ObservedPod[] }
>();

export function observedPods(
  pods: readonly PodObject[],
  templates: readonly DefaultedPodsWithCapabilities[],
): readonly ObservedPod[] {
  const kept = observedLists.get(pods);
  if (kept?.templates === templates) return kept.pods;
  const mapped = pods.map((p) => observedPod(p, templates));
  observedLists.set(pods, { templates, pods: mapped });
  return mapped;
}

export function observeAgent(agent: PoolAgent): ObservedAgent {
  return {
    id: agent.id,
    name: agent.name,
    status: agent.status === "online" ? "online" : "offline",
    busy: Boolean(agent.assignedRequest),
    idleSinceMs: ms(agent.statusChangedOn),
    lastCompletedRequestFinishMs: ms(agent.lastCompletedRequest?.finishTime ?? undefined),
  };
}

/** A pod this process created (or may have: its POST's outcome was unknown), until the cache shows it. */
export interface Expectation {
  readonly at: number;
  readonly pod: ObservedPod;
  /** The cache-volume PVCs it mounts. */
  readonly pvcNames: readonly string[];
  /** The API server confirmed the create (false: the POST timed out or failed in an unknown way). */
  readonly confirmed: boolean;
  /** The created pod's resourceVersion, as the POST answered it (a removal's precondition until it is cached). */
  readonly resourceVersion?: string;
  /** The POST is queued or under way (executor.ts, rule 1): `at` is when it was asked for. */
  readonly pending?: boolean;
}

export interface ExpectationClock {
  readonly now: number;
  /** When the pod cache last finished a full list (undefined: never yet). */
  readonly listedAt: number | undefined;
  /** How long an unconfirmed create is expected without being seen. */
  readonly unconfirmedTtlMs: number;
}

/**
 * The pods the plan sees: the cached ones, plus pods this process created that the cache does not show yet (so a
 * lagging or silently stalled watch never causes a second create, nor lets the unseen pod escape maxCount).
 * 1. An expectation ends when the cache shows the pod (the reconciler also drops it when a watch event names it).
 * 2. It ends when the pod cache was listed after the create: a list is authoritative, so a pod it lacks is gone.
 * 3. An unconfirmed create also ends after `unconfirmedTtlMs`: the pod probably does not exist.
 * 4. A create whose POST has not answered yet ends only by rule 1: the pod may be created at any moment, after a
 *    list or however long the POST waits in its lane (the answer makes it confirmed or unconfirmed, or ends it).
 * Otherwise it stays, however long the watch is silent: the watchdog restarts it, and the resumed watch or relist
 * decides. Returns the expectations still open.
 */
export function withExpectedPods(
  cached: readonly ObservedPod[],
  expected: ReadonlyMap<string, Expectation>,
  clock: ExpectationClock,
): { pods: readonly ObservedPod[]; open: Map<string, Expectation> } {
  const open = new Map<string, Expectation>();
  if (expected.size === 0) return { pods: cached, open };
  const names = new Set(cached.map((p) => p.name));
  const pods = [...cached];
  for (const [name, e] of expected) {
    if (names.has(name)) continue;
    if (e.pending) {
      open.set(name, e);
      pods.push(e.pod);
      continue;
    }
    if (clock.listedAt !== undefined && clock.listedAt > e.at) continue;
    if (!e.confirmed && clock.now - e.at > clock.unconfirmedTtlMs) continue;
    open.set(name, e);
    pods.push(e.pod);
  }
  // The cached list itself when no expectation adds a pod: what is kept by list downstream is found again.
  return { pods: pods.length === cached.length ? cached : pods, open };
}

/**
 * Template specs by templates' array (replaced, never edited, with the resource's generation: `validateCached`)
 * and standby counts in force: the same array while they stay, so job matches can be kept by it (jobs.ts). Shared:
 * never edit them.
 */
const specsOf = new WeakMap<readonly DefaultedPodsWithCapabilities[], Map<string, readonly TemplateSpec[]>>();

/**
 * The scaling core's view of a spec's templates: the declared capabilities, and what the pods' agents will report
 * (the declared ones plus the agent's own, from the pod template). `standby` (by index) is the standby in force
 * (src/controller/standby.ts): the plan then keeps that many pods free beside the busy ones instead of the minCount.
 */
export function templateSpecs(
  spec: DefaultedAutoScaledAgent["spec"],
  standby?: readonly number[],
): readonly TemplateSpec[] {
  const byStandby = keptIn(specsOf, spec.podsWithCapabilities, () => new Map<string, readonly TemplateSpec[]>());
  const key = standby === undefined ? "" : standby.join(",");
  let specs = byStandby.get(key);
  if (specs === undefined) {
    specs = spec.podsWithCapabilities.map((t, i) => {
      const declared = t.capabilities as Record<string, string>;
      const reported = reportedCapabilities(declared, t.podTemplateSpec);
      return {
        capabilities: declared,
        reportedCapabilities: reported.capabilities,
        overriddenCapabilities: reported.overridden.map((o) => o.message),
        minCount: t.minCount,
        maxCount: t.maxCount,
        ...(standby?.[i] === undefined ? {} : { standby: standby[i] }),
      };
    });
    // Standby counts change with schedules and history: a handful per resource.
    if (byStandby.size >= 8) byStandby.delete(byStandby.keys().next().value as string);
    byStandby.set(key, specs);
  }
  return specs;
}

/**
 * Validation results by resource object, and by uid while the generation stays. The informers' caches replace an
 * object when it changes and never edit one in place, so a result stays true for as long as its object lives; and
 * since the API server raises `metadata.generation` on every change of the spec (the status and metadata do not
 * count, and validation reads neither), a status write (every reconcile's own, during a burst) keeps the result too,
 * with the new object's metadata and status (objects that do not come from an API server, without a resourceVersion,
 * are kept by identity only). Without this, every plan validated every resource of its pool (most of
 * the operator's CPU with 50 resources). The result is shared: never edit it.
 */
const validated = new WeakMap<AutoScaledAgent, ReturnType<typeof validateAutoScaledAgent>>();
const byGeneration = new Map<string, { generation: number; result: ReturnType<typeof validateAutoScaledAgent> }>();
/** Uids remembered by generation at most (resources of the cluster; past this, the oldest go). */
const BY_GENERATION_MAX = 10_000;

export function validateCached(r: AutoScaledAgent): ReturnType<typeof validateAutoScaledAgent> {
  let v = validated.get(r);
  if (v !== undefined) return v;
  // Only objects from an API server (they have a resourceVersion) are known to raise their generation.
  const uid = r.metadata?.resourceVersion === undefined ? undefined : r.metadata?.uid;
  const generation = r.metadata?.generation;
  const prior = uid === undefined ? undefined : byGeneration.get(uid);
  if (prior !== undefined && generation !== undefined && prior.generation === generation) {
    if (prior.result.ok) {
      const { status: _, ...same } = prior.result.value;
      v = { ok: true, value: { ...same, metadata: r.metadata, ...(r.status ? { status: r.status } : {}) } };
    } else v = prior.result;
  } else {
    v = validateAutoScaledAgent(r);
    if (uid !== undefined && generation !== undefined) {
      byGeneration.delete(uid);
      byGeneration.set(uid, { generation, result: v });
      if (byGeneration.size > BY_GENERATION_MAX) byGeneration.delete(byGeneration.keys().next().value as string);
    }
  }
  validated.set(r, v);
  return v;
}

/** Every valid, live resource (this one included) on the same organization and pool, with its key. */
export function resourcesOnPool(
  all: readonly AutoScaledAgent[],
  resource: Resource,
  organizationKey: (url: string) => string,
): (DefaultedAutoScaledAgent["spec"] & { key: string })[] {
  return poolMembers(all, resource, organizationKey).map((m) => ({ key: m.key, ...m.spec }));
}

/**
 * `resourcesOnPool` with each resource's spec as validated (the same object while its generation stays, so what
 * is kept by spec, such as its ExtraAgentContainers checker and its job matches, stays found).
 */
export function poolMembers(
  all: readonly AutoScaledAgent[],
  resource: Resource,
  organizationKey: (url: string) => string,
): PoolMember[] {
  const organization = organizationKey(resource.spec.organizationUrl);
  const pool = resource.spec.poolName.toLowerCase();
  return all.flatMap((r) => {
    const v = validateCached(r);
    if (!v.ok || r.metadata?.deletionTimestamp) return [];
    const spec = v.value.spec;
    const same = spec.poolName.toLowerCase() === pool && organizationKey(spec.organizationUrl) === organization;
    return same ? [{ key: `${r.metadata?.namespace}/${r.metadata?.name}`, uid: r.metadata?.uid, spec }] : [];
  });
}

export interface PoolMember {
  /** `namespace/name`. */
  readonly key: string;
  readonly uid: string | undefined;
  readonly spec: DefaultedAutoScaledAgent["spec"];
}

/**
 * Job requests whose pod has ended its run, remembered (request id -> when first seen ended) until a pool snapshot
 * fetched after that moment. Until then the job list may predate the job's assignment and still show it queued;
 * planning from it would create a second pod for a job that already ran.
 * 1. A pod whose agent container terminated, that finished, or that is being deleted has ended its run: the jobs it
 *    was created for are remembered from now (an earlier sighting is kept).
 * 2. A memory older than the snapshot's fetch time is dropped: that poll shows the job's true state.
 */
export function jobsOfEndedPods(
  memory: ReadonlyMap<number, number>,
  pods: readonly ObservedPod[],
  snapshotFetchedAt: number | undefined,
  now: number,
): Map<number, number> {
  const out = new Map<number, number>();
  for (const [id, at] of memory) out.set(id, at);
  for (const p of pods) {
    const ended = p.agentContainer === "terminated" || p.deleting || p.phase === "Succeeded" || p.phase === "Failed";
    if (!ended) continue;
    for (const id of p.createdForRequestIds) if (!out.has(id)) out.set(id, now);
  }
  if (snapshotFetchedAt !== undefined) {
    for (const [id, at] of out) if (at < snapshotFetchedAt) out.delete(id);
  }
  return out;
}
