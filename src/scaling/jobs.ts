/**
 * Pending jobs and best-fit matching of jobs to pod templates.
 */

import {
  extraAgentContainersDemand,
  isAgentVersionDemand,
  isExtraAgentContainersDemand,
  parseDemands,
  satisfies,
} from "../azure-devops/demands.ts";
import type { JobRequest, MatchedJob, PendingJob, TemplateSpec, UnmatchedJob } from "./types.ts";

/** A job request is finished once it has a result or a finish time. */
export function isFinished(request: JobRequest): boolean {
  return request.result !== undefined || request.finishTime !== undefined;
}

/**
 * Whether a request still waits for an agent: unfinished, and neither assigned nor received. A reserved agent
 * without an assign time is read as assigned too (an agent holds it).
 */
export function isPending(request: JobRequest): boolean {
  return (
    !isFinished(request) &&
    request.assignTime === undefined &&
    request.receiveTime === undefined &&
    request.reservedAgent === undefined
  );
}

function parseTime(text: string | undefined): number | null {
  if (text === undefined) return null;
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}

/** Queue order: oldest queue time first, unknown times last, then by request id. */
export function compareQueueOrder(a: PendingJob, b: PendingJob): number {
  if (a.queueTimeMs !== b.queueTimeMs) {
    if (a.queueTimeMs === null) return 1;
    if (b.queueTimeMs === null) return -1;
    return a.queueTimeMs - b.queueTimeMs;
  }
  return a.requestId - b.requestId;
}

/**
 * The pending jobs among the requests, in queue order, with their demands parsed. A request id seen twice
 * (pages overlapping) counts once.
 */
export function selectPendingJobs(requests: readonly JobRequest[]): PendingJob[] {
  const seen = new Set<number>();
  const out: PendingJob[] = [];
  for (const r of requests) {
    if (seen.has(r.requestId)) continue;
    seen.add(r.requestId);
    if (!isPending(r)) continue;
    const rawDemands = r.demands ?? [];
    const { demands, errors } = parseDemands(rawDemands);
    out.push({
      requestId: r.requestId,
      queueTimeMs: parseTime(r.queueTime),
      rawDemands,
      demands,
      demandErrors: errors,
    });
  }
  return out.sort(compareQueueOrder);
}

/** Number of template capabilities the job did not ask for (names compared case-insensitively). */
export function unrequestedCapabilityCount(capabilities: Readonly<Record<string, string>>, job: PendingJob): number {
  const asked = new Set(job.demands.map((d) => d.name.toLowerCase()));
  const names = new Set(Object.keys(capabilities).map((k) => k.toLowerCase()));
  let n = 0;
  for (const name of names) if (!asked.has(name)) n++;
  return n;
}

export type JobMatch = ({ readonly kind: "matched" } & MatchedJob) | ({ readonly kind: "unmatched" } & UnmatchedJob);

function unmatched(job: PendingJob, reason: UnmatchedJob["reason"], message: string): JobMatch {
  return { kind: "unmatched", requestId: job.requestId, demands: job.rawDemands, reason, message };
}

/**
 * Finds the template that serves a job: among the templates whose capabilities satisfy every demand (ignoring
 * `Agent.Version -gtVersion` and ExtraAgentContainers), the one with the fewest capabilities the job did not ask
 * for; ties go to the first in resource order. Jobs with unreadable or unsupported demands are never matched.
 */
export function matchJob(
  job: PendingJob,
  templates: readonly TemplateSpec[],
  checkExtraAgentContainers?: (value: string) => string | undefined,
): JobMatch {
  const firstError = job.demandErrors[0];
  if (firstError !== undefined) {
    return unmatched(job, "malformed-demand", `job ${job.requestId}: ${firstError.message}`);
  }
  const unknown = job.demands.find((d) => d.kind === "unknown");
  if (unknown !== undefined && unknown.kind === "unknown") {
    return unmatched(
      job,
      "unsupported-operator",
      `job ${job.requestId}: demand ${JSON.stringify(unknown.raw)} uses operator -${unknown.operator}, which this operator does not judge`,
    );
  }
  const extra = extraAgentContainersDemand(job.demands);
  if (extra.kind === "invalid") {
    return unmatched(job, "invalid-extra-agent-containers", `job ${job.requestId}: ${extra.message}`);
  }
  const extraValue = extra.kind === "value" ? extra.value : null;
  if (extraValue !== null && checkExtraAgentContainers !== undefined) {
    const refusal = checkExtraAgentContainers(extraValue);
    if (refusal !== undefined) {
      return unmatched(
        job,
        "extra-agent-containers-refused",
        `job ${job.requestId}: ExtraAgentContainers refused: ${refusal}`,
      );
    }
  }

  let best = -1;
  let bestScore = Number.POSITIVE_INFINITY;
  templates.forEach((t, i) => {
    if (!satisfies(t.capabilities, job.demands, { ignoreAgentVersion: true, ignoreExtraAgentContainers: true })) {
      return;
    }
    const score = unrequestedCapabilityCount(t.capabilities, job);
    if (score < bestScore) {
      best = i;
      bestScore = score;
    }
  });
  if (best < 0) {
    const relevant = job.demands.filter((d) => !isAgentVersionDemand(d) && !isExtraAgentContainersDemand(d));
    const shown = relevant.map((d) => JSON.stringify(d.raw)).join(", ");
    return unmatched(
      job,
      "no-matching-template",
      `job ${job.requestId}: no pod template has capabilities satisfying ${shown === "" ? "its demands" : shown}`,
    );
  }
  return { kind: "matched", job, templateIndex: best, extraAgentContainers: extraValue };
}

/** Matches every pending job; the result keeps queue order. */
export function matchJobs(
  jobs: readonly PendingJob[],
  templates: readonly TemplateSpec[],
  checkExtraAgentContainers?: (value: string) => string | undefined,
): { matched: MatchedJob[]; unmatched: UnmatchedJob[] } {
  const matched: MatchedJob[] = [];
  const unmatchedJobs: UnmatchedJob[] = [];
  for (const job of jobs) {
    const m = matchJob(job, templates, checkExtraAgentContainers);
    if (m.kind === "matched") {
      matched.push({ job: m.job, templateIndex: m.templateIndex, extraAgentContainers: m.extraAgentContainers });
    } else {
      unmatchedJobs.push({ requestId: m.requestId, demands: m.demands, reason: m.reason, message: m.message });
    }
  }
  return { matched, unmatched: unmatchedJobs };
}
