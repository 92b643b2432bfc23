/**
 * Several AutoScaledAgents may serve one pool. Each pending job is served by exactly one of them, the best that can
 * serve it now. Without this, two resources whose templates both satisfy a job would each start a pod for it, a
 * resource would report every job of the others as one it cannot serve, and a broken or full resource would keep
 * jobs a healthy one could run.
 *
 * Rules:
 * 1. Pending jobs are handed out in queue order. A job that a resource's live pod was created for stays with that
 *    resource (its pod is on the way; another resource taking it would start a second pod), and uses one job of
 *    that pod's template's capacity (the pod holds the slot). When pods of two resources hold one job, the first
 *    listed keeps it (the controller lists a pool's resources by key, the same order in every plan); the other's
 *    pod is then like a pod whose job another agent took.
 * 2. A resource can take a job when one of its templates matches it the way Azure DevOps judges, its
 *    ExtraAgentContainers policy allows the job's value, and it is available (its credential works and its pool
 *    poll is healthy; a resource not judged yet counts as available).
 * 3. A resource with a spare pod for the job (one that can take a job and holds none, see `podStanding`) goes first:
 *    the service hands a queued job to any idle matching agent, whatever it was created for, so a new pod elsewhere
 *    would be one too many.
 * 4. Among those, the best fit wins (its best template has the fewest capabilities the job did not ask for); equal
 *    fits are ordered by a hash of job and resource, so ties spread over the resources instead of always going to
 *    the same namespace.
 * 5. The winner is the first in that order whose matching template still has capacity (jobs it can take: maxCount
 *    minus pods that cannot take one); each job handed out uses one. If none has capacity left, the best one gets it
 *    (it waits there, and that resource reports maxCount).
 * 6. A job only unavailable resources can take goes to the best of them (it is theirs, not unmatched); a job nobody
 *    can take is nobody's, and every resource reports it.
 */
import { fingerprintNumber, sameItems } from "../runtime/compare.ts";
import { isPending, matchJobCached, selectPendingJobs, unrequestedCapabilityCount } from "./jobs.ts";
import type { JobRequest, PendingJob, TemplateSpec } from "./types.ts";

export interface ResourceTemplates {
  /** A stable key, e.g. `namespace/name`. */
  readonly key: string;
  readonly templates: readonly TemplateSpec[];
  /** Its credential works and its pool poll is healthy (default true: not judged yet). */
  readonly available?: boolean;
  /** Jobs each template can still take, by template index (default: no limit known). */
  readonly capacity?: readonly number[];
  /** Jobs its live pods (and pods created but not yet seen) were created for, with the pod's template index. */
  readonly covers?: ReadonlyMap<number, number>;
  /** Spare pods per template index: pods that can take a job and hold none (see `podStanding`). */
  readonly spare?: readonly number[];
  /** Its ExtraAgentContainers policy (a message when a value is refused). */
  readonly checkExtraAgentContainers?: (value: string) => string | undefined;
}

/** A live pod of a resource, as the arbitration sees it. */
export interface PodForSharing {
  readonly name: string;
  readonly templateIndex: number | null;
  readonly createdForRequestIds: readonly number[];
}

/**
 * What a resource's live pods mean for sharing the pool: the pending jobs they hold (`covers`) and how many of them
 * per template are spare. A pod whose agent runs or ran a job (a request names it as reserved agent; agents run once)
 * holds nothing and is not spare: it may have taken another job than the one it was created for (the service gives a queued job to
 * any idle matching agent), and that job is then free again. A pod is spare when it is not busy and none of the
 * jobs it was created for is still pending (a warm agent, or one whose job another agent took).
 */
export function podStanding(
  pods: readonly PodForSharing[],
  jobRequests: readonly JobRequest[],
  templateCount: number,
): { covers: Map<number, number>; spare: number[] } {
  const { busy, pending } = requestSets(jobRequests);
  const covers = new Map<number, number>();
  const spare = Array.from({ length: templateCount }, () => 0);
  for (const p of pods) {
    if (p.templateIndex === null || busy.has(p.name)) continue;
    let holds = false;
    for (const id of p.createdForRequestIds) {
      if (!pending.has(id)) continue;
      covers.set(id, p.templateIndex);
      holds = true;
    }
    if (!holds && p.templateIndex < templateCount) spare[p.templateIndex] = (spare[p.templateIndex] ?? 0) + 1;
  }
  return { covers, spare };
}

/**
 * The agents busy with a job and the pending request ids, by request list: the sharing of a pool asks for every
 * resource on it with the same list.
 */
const requestSetsOf = new WeakMap<readonly JobRequest[], { busy: Set<string>; pending: Set<number> }>();

function requestSets(jobRequests: readonly JobRequest[]): { busy: Set<string>; pending: Set<number> } {
  let sets = requestSetsOf.get(jobRequests);
  if (sets === undefined) {
    // Agents run one job (`--once`): one that ran a job, finished or not, takes no other.
    const busy = new Set(jobRequests.flatMap((r) => (r.reservedAgent !== undefined ? [r.reservedAgent.name] : [])));
    const pending = new Set(jobRequests.filter(isPending).map((r) => r.requestId));
    sets = { busy, pending };
    requestSetsOf.set(jobRequests, sets);
  }
  return sets;
}

/** A resource that can take a job, with its best template and rule 4's order (by fit, then tie). */
interface Candidate {
  readonly key: string;
  readonly templateIndex: number;
  readonly score: number;
  readonly tie: number;
}

/** Hashes of resource keys (a handful of strings, hashed once). */
const keyHashes = new Map<string, number>();

function keyHash(key: string): number {
  let h = keyHashes.get(key);
  if (h === undefined) {
    h = fingerprintNumber(key);
    if (keyHashes.size >= 10_000) keyHashes.clear();
    keyHashes.set(key, h);
  }
  return h;
}

/** Rule 4's tie order: a 32-bit mix of the request id and the resource key's hash (no string per pair). */
export function tieOrder(requestId: number, key: string): number {
  let h = (keyHash(key) ^ Math.imul(requestId | 0, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function candidate(job: PendingJob, r: ResourceTemplates): Candidate | undefined {
  const m = matchJobCached(job, r.templates, r.checkExtraAgentContainers);
  if (m.kind !== "matched") return undefined;
  const t = r.templates[m.templateIndex];
  if (!t) return undefined;
  return {
    key: r.key,
    templateIndex: m.templateIndex,
    score: unrequestedCapabilityCount(t.capabilities, job),
    tie: tieOrder(job.requestId, r.key),
  };
}

const byFit = (a: Candidate, b: Candidate) => a.score - b.score || a.tie - b.tie || (a.key < b.key ? -1 : 1);

/**
 * What rules 2 (matching) and 4 (order) depend on: each resource's key, templates and policy, whatever their order.
 * The same object while they stay, so a job's ranking is kept with it (`rankings`); a few are remembered, as the
 * resources of several pools take turns.
 */
interface Field {
  readonly parts: readonly unknown[];
}
const recentFields: Field[] = [];
const RECENT_FIELDS = 16;

function fieldOf(resources: readonly ResourceTemplates[]): Field {
  const parts = [...resources]
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .flatMap((r) => [r.key, r.templates, r.checkExtraAgentContainers]);
  const same = recentFields.find((f) => sameItems(f.parts, parts));
  if (same !== undefined) return same;
  const field = { parts };
  recentFields.unshift(field);
  if (recentFields.length > RECENT_FIELDS) recentFields.pop();
  return field;
}

/** Each job's candidates in rule 4's order, kept with the field they were ranked in. */
const rankings = new WeakMap<PendingJob, { field: Field; ranked: readonly Candidate[] }>();

function ranked(job: PendingJob, resources: readonly ResourceTemplates[], field: Field): readonly Candidate[] {
  const kept = rankings.get(job);
  if (kept?.field === field) return kept.ranked;
  const list = resources.flatMap((r) => candidate(job, r) ?? []).sort(byFit);
  rankings.set(job, { field, ranked: list });
  return list;
}

/** Which resource serves each pending job (request id -> resource key); jobs nobody can take are absent. */
export function assignJobs(
  jobRequests: readonly JobRequest[],
  resources: readonly ResourceTemplates[],
): Map<number, string> {
  const byKey = new Map(resources.map((r) => [r.key, r]));
  const field = fieldOf(resources);
  const left = new Map(resources.map((r) => [r.key, [...(r.capacity ?? [])]]));
  const spare = new Map(resources.map((r) => [r.key, [...(r.spare ?? [])]]));
  const take = (counts: Map<string, number[]>, key: string, t: number) => {
    const c = counts.get(key);
    if (c && (c[t] ?? 0) > 0) c[t] = (c[t] ?? 0) - 1;
  };
  const available = (c: Candidate) => byKey.get(c.key)?.available !== false;
  const hasRoom = (c: Candidate) =>
    byKey.get(c.key)?.capacity === undefined || (left.get(c.key)?.[c.templateIndex] ?? 0) > 0;
  const hasSpare = (c: Candidate) => (spare.get(c.key)?.[c.templateIndex] ?? 0) > 0;
  /** Rule 1: the resource whose pod holds the job (the first listed), with the pod's template. */
  const holders = new Map<number, { key: string; templateIndex: number }>();
  for (const r of resources) {
    for (const [id, templateIndex] of r.covers ?? [])
      if (!holders.has(id)) holders.set(id, { key: r.key, templateIndex });
  }
  const out = new Map<number, string>();
  for (const job of selectPendingJobs(jobRequests)) {
    const holder = holders.get(job.requestId);
    if (holder) {
      take(left, holder.key, holder.templateIndex);
      out.set(job.requestId, holder.key);
      continue;
    }
    const all = ranked(job, resources, field);
    const first = all[0];
    if (first === undefined) continue;
    // Rules 3 and 5 among the available ones, in rule 4's order; rule 6 when none is.
    let winner: Candidate | undefined;
    let roomy: Candidate | undefined;
    let best: Candidate | undefined;
    for (const c of all) {
      if (!available(c)) continue;
      best ??= c;
      if (hasSpare(c)) {
        winner = c;
        break;
      }
      if (roomy === undefined && hasRoom(c)) roomy = c;
    }
    winner ??= roomy ?? best;
    if (winner === undefined) {
      out.set(job.requestId, first.key);
      continue;
    }
    take(spare, winner.key, winner.templateIndex);
    take(left, winner.key, winner.templateIndex);
    out.set(job.requestId, winner.key);
  }
  return out;
}

/**
 * The requests a resource's plan sees once the pool's jobs are handed out (`owners`, from `assignJobs`): all but the
 * pending jobs another resource serves. The list itself when nothing is left out.
 */
export function jobsLeftTo(
  jobRequests: readonly JobRequest[],
  owners: ReadonlyMap<number, string>,
  key: string,
): readonly JobRequest[] {
  const left = jobRequests.filter((j) => {
    const owner = owners.get(j.requestId);
    return owner === undefined || owner === key;
  });
  return left.length === jobRequests.length ? jobRequests : left;
}
