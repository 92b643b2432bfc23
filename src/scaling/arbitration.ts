/**
 * Several AutoScaledAgents may serve one pool. Each pending job is served by exactly one of them, the best that can
 * serve it now. Without this, two resources whose templates both satisfy a job would each start a pod for it, a
 * resource would report every job of the others as one it cannot serve, and a broken or full resource would keep
 * jobs a healthy one could run.
 *
 * Rules:
 * 1. Pending jobs are handed out in queue order. A job that a resource's live pod was created for stays with that
 *    resource (its pod is on the way; another resource taking it would start a second pod).
 * 2. A resource can take a job when one of its templates matches it the way Azure DevOps judges, its
 *    ExtraAgentContainers policy allows the job's value, and it is available (its credential works and its pool
 *    poll is healthy; a resource not judged yet counts as available).
 * 3. Among those, the best fit wins (its best template has the fewest capabilities the job did not ask for); equal
 *    fits are ordered by a hash of job and resource, so ties spread over the resources instead of always going to
 *    the same namespace.
 * 4. The winner is the first in that order whose matching template still has capacity (jobs it can take: maxCount
 *    minus pods that cannot take one); each job handed out uses one. If none has capacity left, the best one gets it
 *    (it waits there, and that resource reports maxCount).
 * 5. A job only unavailable resources can take goes to the best of them (it is theirs, not unmatched); a job nobody
 *    can take is nobody's, and every resource reports it.
 */
import { fingerprintNumber } from "../runtime/compare.ts";
import { matchJob, selectPendingJobs, unrequestedCapabilityCount } from "./jobs.ts";
import type { JobRequest, PendingJob, TemplateSpec } from "./types.ts";

export interface ResourceTemplates {
  /** A stable key, e.g. `namespace/name`. */
  readonly key: string;
  readonly templates: readonly TemplateSpec[];
  /** Its credential works and its pool poll is healthy (default true: not judged yet). */
  readonly available?: boolean;
  /** Jobs each template can still take, by template index (default: no limit known). */
  readonly capacity?: readonly number[];
  /** Jobs its live pods were created for. */
  readonly covers?: ReadonlySet<number>;
  /** Its ExtraAgentContainers policy (a message when a value is refused). */
  readonly checkExtraAgentContainers?: (value: string) => string | undefined;
}

interface Candidate {
  readonly resource: ResourceTemplates;
  readonly templateIndex: number;
  readonly score: number;
  readonly tie: number;
}

function candidate(job: PendingJob, r: ResourceTemplates): Candidate | undefined {
  const m = matchJob(job, r.templates, r.checkExtraAgentContainers);
  if (m.kind !== "matched") return undefined;
  const t = r.templates[m.templateIndex];
  if (!t) return undefined;
  return {
    resource: r,
    templateIndex: m.templateIndex,
    score: unrequestedCapabilityCount(t.capabilities, job),
    tie: fingerprintNumber(`${job.requestId}/${r.key}`),
  };
}

const byFit = (a: Candidate, b: Candidate) =>
  a.score - b.score || a.tie - b.tie || (a.resource.key < b.resource.key ? -1 : 1);

/** Which resource serves each pending job (request id -> resource key); jobs nobody can take are absent. */
export function assignJobs(
  jobRequests: readonly JobRequest[],
  resources: readonly ResourceTemplates[],
): Map<number, string> {
  const left = new Map(resources.map((r) => [r.key, [...(r.capacity ?? [])]]));
  const out = new Map<number, string>();
  for (const job of selectPendingJobs(jobRequests)) {
    const holder = resources.find((r) => r.covers?.has(job.requestId));
    if (holder) {
      out.set(job.requestId, holder.key);
      continue;
    }
    const all = resources.flatMap((r) => candidate(job, r) ?? []).sort(byFit);
    if (all.length === 0) continue;
    const ready = all.filter((c) => c.resource.available !== false);
    if (ready.length === 0) {
      out.set(job.requestId, (all[0] as Candidate).resource.key);
      continue;
    }
    const hasRoom = (c: Candidate) => {
      const cap = left.get(c.resource.key);
      return c.resource.capacity === undefined || (cap?.[c.templateIndex] ?? 0) > 0;
    };
    const winner = ready.find(hasRoom) ?? (ready[0] as Candidate);
    const cap = left.get(winner.resource.key);
    if (winner.resource.capacity !== undefined && cap && (cap[winner.templateIndex] ?? 0) > 0) {
      cap[winner.templateIndex] = (cap[winner.templateIndex] ?? 0) - 1;
    }
    out.set(job.requestId, winner.resource.key);
  }
  return out;
}

/** Request ids of pending jobs that another resource (of `others`, on the same pool) serves instead of `self`. */
export function jobsServedElsewhere(
  jobRequests: readonly JobRequest[],
  self: ResourceTemplates,
  others: readonly ResourceTemplates[],
): Set<number> {
  const rivals = others.filter((o) => o.key !== self.key);
  if (rivals.length === 0) return new Set();
  const elsewhere = new Set<number>();
  for (const [id, key] of assignJobs(jobRequests, [self, ...rivals])) if (key !== self.key) elsewhere.add(id);
  return elsewhere;
}
