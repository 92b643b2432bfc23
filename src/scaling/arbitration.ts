/**
 * Several AutoScaledAgents may serve one pool. Each pending job is served by exactly one of them: the resource
 * whose best template fits it best (fewest capabilities the job did not ask for), ties broken by resource key.
 * Without this, two resources whose templates both satisfy a job would each start a pod for it, and a resource
 * would report every job of the others as one it cannot serve.
 */
import { matchJob, selectPendingJobs, unrequestedCapabilityCount } from "./jobs.ts";
import type { JobRequest, TemplateSpec } from "./types.ts";

export interface ResourceTemplates {
  /** A stable key, e.g. `namespace/name`. */
  readonly key: string;
  readonly templates: readonly TemplateSpec[];
}

function bestScore(job: Parameters<typeof matchJob>[0], templates: readonly TemplateSpec[]): number | undefined {
  const m = matchJob(job, templates);
  if (m.kind !== "matched") return undefined;
  const t = templates[m.templateIndex];
  return t ? unrequestedCapabilityCount(t.capabilities, job) : undefined;
}

/** Request ids of pending jobs that another resource (of `others`, on the same pool) serves instead of `self`. */
export function jobsServedElsewhere(
  jobRequests: readonly JobRequest[],
  self: ResourceTemplates,
  others: readonly ResourceTemplates[],
): Set<number> {
  const elsewhere = new Set<number>();
  const rivals = others.filter((o) => o.key !== self.key);
  if (rivals.length === 0) return elsewhere;
  for (const job of selectPendingJobs(jobRequests)) {
    const mine = bestScore(job, self.templates);
    for (const other of rivals) {
      const theirs = bestScore(job, other.templates);
      if (theirs === undefined) continue;
      const better = mine === undefined || theirs < mine || (theirs === mine && other.key < self.key);
      if (better) {
        elsewhere.add(job.requestId);
        break;
      }
    }
  }
  return elsewhere;
}
