/**
 * The metrics of a pool and of its jobs' waits, from what each reconcile planned: queued jobs per pool, the jobs no
 * resource is starting a pod for and why, placeholder agents wanted and registered, and how long jobs waited for an
 * agent of a resource.
 *
 * Several resources may serve one pool. Their plans do not overlap (arbitration, src/scaling/arbitration.ts, hands
 * each job to one resource; a job nobody can take appears in every plan), so per-pool numbers are the union of what
 * each resource last planned, by job id: each job counts once whatever the number of resources. The pure rules are
 * the exported functions; `PoolMetrics` keeps the last record of each resource and sets the gauges.
 *
 * Rules:
 * 1. Unserved: a queued job in a plan's `unmatchedJobs` (its reason) or `blockedJobs` (`max-count`). Over a pool,
 *    only jobs still queued in the latest poll count; a job two resources report for different reasons takes the
 *    first of `UNSERVED_REASONS` (the most specific).
 * 2. Assigned wait: once per job, when a poll first shows it assigned (assignTime) to an agent whose name is one of
 *    the resource's pods: assignTime - queueTime, labelled with the pod's template. Jobs already assigned when the
 *    process first plans for the resource are not observed (they were, or could not be, before a restart).
 * 3. Placeholders: the names of the placeholders the pool's resources want (one per capability set), and of those
 *    the ones the pool's agent list holds (names compared ignoring case).
 */
import type { Metrics } from "../observability/metrics.ts";
import { wantedPlaceholders } from "../placeholders/plan.ts";
import { compareStrings, sameEntries } from "../runtime/compare.ts";
import { keptIn } from "../runtime/memo.ts";
import { isPending } from "../scaling/jobs.ts";
import type { BlockedReason, JobRequest, ObservedPod, ScalePlan, UnmatchedReason } from "../scaling/types.ts";
import type { PoolAgent, PoolSnapshot, Resource } from "./ports.ts";

export type UnservedReason = UnmatchedReason | BlockedReason;

/** Every reason, most specific first (rule 1 keeps the first when resources disagree). */
export const UNSERVED_REASONS: readonly UnservedReason[] = [
  "max-count",
  "extra-agent-containers-refused",
  "invalid-extra-agent-containers",
  "names-an-agent",
  "unsupported-operator",
  "malformed-demand",
  "no-matching-template",
];

/** Rule 1, for one plan: the queued jobs it starts no pod for, and why. */
export function unservedJobs(plan: Pick<ScalePlan, "unmatchedJobs" | "blockedJobs">): Map<number, UnservedReason> {
  const out = new Map<number, UnservedReason>();
  for (const j of plan.unmatchedJobs) out.set(j.requestId, j.reason);
  for (const j of plan.blockedJobs) out.set(j.requestId, j.reason);
  return out;
}

/** Rule 1, over a pool: unserved jobs still queued, counted once each, per reason (every reason present). */
export function countUnserved(
  records: Iterable<ReadonlyMap<number, UnservedReason>>,
  queued: ReadonlySet<number>,
): Record<UnservedReason, number> {
  const rank = (r: UnservedReason) => UNSERVED_REASONS.indexOf(r);
  const byJob = new Map<number, UnservedReason>();
  for (const record of records) {
    for (const [id, reason] of record) {
      if (!queued.has(id)) continue;
      const known = byJob.get(id);
      if (known === undefined || rank(reason) < rank(known)) byJob.set(id, reason);
    }
  }
  const counts = Object.fromEntries(UNSERVED_REASONS.map((r) => [r, 0])) as Record<UnservedReason, number>;
  for (const reason of byJob.values()) counts[reason]++;
  return counts;
}

/** A lookup of the jobs' queueTimes (epoch ms), built on first use. */
export function queueTimeLookup(jobRequests: readonly JobRequest[]): (requestId: number) => number | undefined {
  let times: Map<number, number> | undefined;
  return (requestId) => {
    times ??= new Map(
      jobRequests.flatMap((j) => {
        const t = Date.parse(j.queueTime ?? "");
        return Number.isNaN(t) ? [] : [[j.requestId, t] as const];
      }),
    );
    return times.get(requestId);
  };
}

/** Request ids of the jobs waiting for an agent (queued, none assigned). */
export function queuedRequestIds(jobRequests: readonly JobRequest[]): Set<number> {
  return new Set(jobRequests.filter(isPending).map((j) => j.requestId));
}

export interface AssignedWait {
  readonly requestId: number;
  /** The template of the pod whose agent got the job; null when the pod's entry is no longer in the spec. */
  readonly templateIndex: number | null;
  readonly seconds: number;
}

/**
 * Rule 2: the jobs first seen assigned to an agent of the resource (`podTemplates`: pod name -> template index), with
 * their wait, and the jobs to remember as seen (those assigned to its agents in this list: the memory stays as
 * small as the list). Jobs without a readable queueTime or assignTime are remembered but not observed.
 */
export function newlyAssigned(input: {
  jobRequests: readonly JobRequest[];
  podTemplates: ReadonlyMap<string, number | null>;
  seen: ReadonlySet<number>;
}): { waits: AssignedWait[]; seen: Set<number> } {
  const waits: AssignedWait[] = [];
  const seen = new Set<number>();
  for (const job of input.jobRequests) {
    const agent = job.reservedAgent?.name;
    if (job.assignTime === undefined || agent === undefined || !input.podTemplates.has(agent)) continue;
    seen.add(job.requestId);
    if (input.seen.has(job.requestId)) continue;
    const queued = Date.parse(job.queueTime ?? "");
    const assigned = Date.parse(job.assignTime);
    if (Number.isNaN(queued) || Number.isNaN(assigned)) continue;
    waits.push({
      requestId: job.requestId,
      templateIndex: input.podTemplates.get(agent) ?? null,
      seconds: Math.max(0, assigned - queued) / 1000,
    });
  }
  return { waits, seen };
}

/** Rule 3, for one resource: its wanted placeholder names and those the pool's agent list holds (lower case). */
export function placeholderNames(
  wanted: readonly string[],
  agentNames: Iterable<string>,
): { wanted: Set<string>; registered: Set<string> } {
  const agents = new Set<string>();
  for (const name of agentNames) agents.add(name.toLowerCase());
  const names = new Set(wanted.map((w) => w.toLowerCase()));
  return { wanted: names, registered: new Set([...names].filter((n) => agents.has(n))) };
}

// Kept by list: every resource on a pool plans from the same poll's lists, its own pods' list stays while they do.
const queuedOf = new WeakMap<readonly JobRequest[], Set<number>>();
const podTemplatesOf = new WeakMap<readonly ObservedPod[], Map<string, number | null>>();

/** The label of a template index (`none`: the pod's entry is gone). */
export function templateLabel(index: number | null): string {
  return index === null ? "none" : String(index);
}

// ---------------------------------------------------------------------------------------------------------------
// The shell: per-resource records, gauges per pool

export interface PlannedPool {
  /** `namespace/name` */
  key: string;
  resource: Resource;
  /** The organization as pollers share it (normalized URL, lower case). */
  organization: string;
  snapshot: PoolSnapshot;
  plan: ScalePlan;
  pods: readonly ObservedPod[];
}

interface PoolRecord {
  pool: string;
  labels: { organization: string; pool: string };
  /** The resource generation `placeholders.wanted` was computed for. */
  generation: number | undefined;
  /** The agent list `placeholders.registered` was computed from. */
  agents: readonly PoolAgent[];
  unserved: Map<number, UnservedReason>;
  placeholders: { wanted: Set<string>; registered: Set<string> };
}

export class PoolMetrics {
  readonly #metrics: Metrics;
  readonly #records = new Map<string, PoolRecord>();
  /** Keys of the resources recorded on each pool. */
  readonly #onPool = new Map<string, Set<string>>();
  /** Jobs queued in the latest poll seen of each pool. */
  readonly #queued = new Map<string, Set<number>>();
  /** The labels each pool's series were last written with. */
  readonly #published = new Map<string, { organization: string; pool: string }>();
  /** Rule 2's memory, per resource, with the job list and pods it was computed from. */
  readonly #assigned = new Map<
    string,
    { ids: Set<number>; jobRequests: readonly JobRequest[]; pods: readonly ObservedPod[] }
  >();

  constructor(metrics: Metrics) {
    this.#metrics = metrics;
  }

  /**
   * A reconcile planned from a fresh poll: observe its jobs' waits and update its pool's gauges. What depends only
   * on the poll's lists, on the resource's pods or on its spec is kept while they stay the same objects (the poll
   * answers with new lists only when it polled, the caches with the same pod list until a pod changes), and the
   * gauges are written only when the pool's numbers change: with many resources on a pool, most reconciles change
   * nothing here.
   */
  planned(p: PlannedPool): void {
    const { namespace, name } = p.resource.metadata;
    const { jobRequests, agents } = p.snapshot;
    const seen = this.#assigned.get(p.key);
    // Rule 2 finds nothing new in the list it last looked at with the same pods.
    if (seen === undefined || seen.jobRequests !== jobRequests || seen.pods !== p.pods) {
      const podTemplates = keptIn(
        podTemplatesOf,
        p.pods,
        () => new Map(p.pods.map((pod) => [pod.name, pod.templateIndex])),
      );
      const assigned = newlyAssigned({ jobRequests, podTemplates, seen: seen?.ids ?? new Set() });
      this.#assigned.set(p.key, { ids: assigned.seen, jobRequests, pods: p.pods });
      if (seen !== undefined) {
        for (const w of assigned.waits) {
          this.#metrics.jobWaitAssigned.observe(
            { namespace, name, template: templateLabel(w.templateIndex) },
            w.seconds,
          );
        }
      }
    }

    const pool = JSON.stringify([p.organization, p.resource.spec.poolName.toLowerCase()]);
    const previous = this.#records.get(p.key);
    const generation = p.resource.metadata.generation;
    // The wanted names change only with the spec, the registered ones also with the agent list.
    const sameSpec = previous !== undefined && previous.generation !== undefined && previous.generation === generation;
    const placeholders =
      sameSpec && previous.agents === agents
        ? previous.placeholders
        : placeholderNames(
            sameSpec
              ? [...previous.placeholders.wanted]
              : wantedPlaceholders([{ key: p.key, ...p.resource.spec }]).map((w) => w.name),
            agents.map((a) => a.name),
          );
    if (previous && previous.pool !== pool) this.#unrecord(p.key, previous.pool);
    const unserved = unservedJobs(p.plan);
    const queued = keptIn(queuedOf, jobRequests, () => queuedRequestIds(jobRequests));
    const unchanged =
      previous !== undefined &&
      previous.pool === pool &&
      previous.labels.pool === p.resource.spec.poolName &&
      previous.labels.organization === p.organization &&
      previous.placeholders === placeholders &&
      this.#queued.get(pool) === queued &&
      sameEntries(previous.unserved, unserved);
    this.#records.set(p.key, {
      pool,
      labels: unchanged ? previous.labels : { organization: p.organization, pool: p.resource.spec.poolName },
      generation,
      agents,
      unserved: unchanged ? previous.unserved : unserved,
      placeholders,
    });
    if (unchanged) return;
    let keys = this.#onPool.get(pool);
    if (!keys) {
      keys = new Set();
      this.#onPool.set(pool, keys);
    }
    keys.add(p.key);
    this.#queued.set(pool, queued);
    this.#publish(pool);
    if (previous && previous.pool !== pool) this.#publish(previous.pool);
  }

  /** The resource cannot plan (invalid, no credential, being deleted): its jobs and placeholders no longer count. */
  unavailable(key: string): void {
    const record = this.#records.get(key);
    if (!record) return;
    this.#records.delete(key);
    this.#unrecord(key, record.pool);
    this.#publish(record.pool);
  }

  #unrecord(key: string, pool: string): void {
    const keys = this.#onPool.get(pool);
    keys?.delete(key);
    if (keys?.size === 0) this.#onPool.delete(pool);
  }

  /** The resource is gone. */
  forget(key: string): void {
    this.unavailable(key);
    this.#assigned.delete(key);
  }

  #publish(pool: string): void {
    const records = [...(this.#onPool.get(pool) ?? [])]
      .sort(compareStrings)
      .flatMap((key) => this.#records.get(key) ?? []);
    const old = this.#published.get(pool);
    const labels = records[0]?.labels;
    if (old && (!labels || old.pool !== labels.pool || old.organization !== labels.organization)) {
      this.#remove(old);
      this.#published.delete(pool);
    }
    if (!labels) {
      this.#queued.delete(pool);
      return;
    }
    this.#published.set(pool, labels);
    const m = this.#metrics;
    const queued = this.#queued.get(pool) ?? new Set<number>();
    m.queuedJobs.set(labels, queued.size);
    const counts = countUnserved(
      records.map((r) => r.unserved),
      queued,
    );
    for (const reason of UNSERVED_REASONS) m.unservedJobs.set({ ...labels, reason }, counts[reason]);
    const wanted = new Set(records.flatMap((r) => [...r.placeholders.wanted]));
    const registered = new Set(records.flatMap((r) => [...r.placeholders.registered]));
    m.placeholderAgents.set({ ...labels, state: "wanted" }, wanted.size);
    m.placeholderAgents.set({ ...labels, state: "registered" }, registered.size);
  }

  #remove(labels: { organization: string; pool: string }): void {
    const m = this.#metrics;
    m.queuedJobs.remove(labels);
    for (const reason of UNSERVED_REASONS) m.unservedJobs.remove({ ...labels, reason });
    for (const state of ["wanted", "registered"]) m.placeholderAgents.remove({ ...labels, state });
  }
}
