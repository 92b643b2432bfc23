/**
 * Pending jobs and best-fit matching of jobs to pod templates.
 */

import {
  AGENT_NAME_CAPABILITY,
  AGENT_OS_ARCHITECTURE_CAPABILITY,
  AGENT_OS_CAPABILITY,
  AGENT_VERSION_CAPABILITY,
  type Demand,
  demandSatisfied,
  extraAgentContainersDemand,
  isAgentVersionDemand,
  isExtraAgentContainersDemand,
  parseDemands,
  sameCapabilityName,
  satisfies,
} from "../azure-devops/demands.ts";
import { sameItems } from "../runtime/compare.ts";
import { keptIn } from "../runtime/memo.ts";
import { matchableCapabilities } from "./capabilities.ts";
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
export function selectPendingJobs(requests: readonly JobRequest[]): readonly PendingJob[] {
  return keptIn(pendingOf, requests, () => selectPending(requests));
}

/**
 * The selection by request list: the sharing of a pool selects from the same poll's list for every resource on
 * it (lists are never edited in place; the selection is shared, never edited either).
 */
const pendingOf = new WeakMap<readonly JobRequest[], readonly PendingJob[]>();

function selectPending(requests: readonly JobRequest[]): PendingJob[] {
  const seen = new Set<number>();
  const out: PendingJob[] = [];
  for (const r of requests) {
    if (seen.has(r.requestId)) continue;
    seen.add(r.requestId);
    if (!isPending(r)) continue;
    out.push(pendingJob(r));
  }
  return out.sort(compareQueueOrder);
}

/**
 * Parsed pending jobs by request object: a poll's requests are read by every reconcile of the resources on its pool
 * (their plans and the sharing of the pool), each parsing the same demands. Requests are never edited in place.
 */
const parsed = new WeakMap<JobRequest, PendingJob>();

/**
 * Parsed pending jobs by request id, across polls: every poll parses new request objects, but a waiting job's
 * demands and queue time stay, so the next poll's request gets the same parsed job (and the matches kept for it,
 * `matchJobCached`) when both are as they were. The least recently seen go past `PARSED_BY_ID_MAX`.
 */
const parsedById = new Map<number, { queueTime: string | undefined; job: PendingJob }>();
const PARSED_BY_ID_MAX = 20_000;

function pendingJob(r: JobRequest): PendingJob {
  let job = parsed.get(r);
  if (job !== undefined) return job;
  const rawDemands = r.demands ?? [];
  const prior = parsedById.get(r.requestId);
  parsedById.delete(r.requestId);
  if (prior !== undefined && prior.queueTime === r.queueTime && sameItems(prior.job.rawDemands, rawDemands)) {
    job = prior.job;
  } else {
    const { demands, errors } = parseDemands(rawDemands);
    job = { requestId: r.requestId, queueTimeMs: parseTime(r.queueTime), rawDemands, demands, demandErrors: errors };
  }
  parsedById.set(r.requestId, { queueTime: r.queueTime, job });
  if (parsedById.size > PARSED_BY_ID_MAX) parsedById.delete(parsedById.keys().next().value as number);
  parsed.set(r, job);
  return job;
}

/**
 * Number of declared template capabilities the job did not ask for (names compared case-insensitively). The
 * capabilities every agent reports by itself (`Agent.OS`, environment variables, ...) are not counted: a template
 * must not win a job merely for reporting fewer of them.
 */
export function unrequestedCapabilityCount(capabilities: Readonly<Record<string, string>>, job: PendingJob): number {
  const asked = lowerNames(job.demands, () => job.demands.map((d) => d.name));
  let n = 0;
  for (const name of lowerNames(capabilities, () => Object.keys(capabilities))) if (!asked.has(name)) n++;
  return n;
}

/** Lower-case names, kept per object (demand lists and capability sets are never changed once made). */
const namesOf = new WeakMap<object, ReadonlySet<string>>();

function lowerNames(of: object, names: () => readonly string[]): ReadonlySet<string> {
  let set = namesOf.get(of);
  if (set === undefined) {
    set = new Set(names().map((n) => n.toLowerCase()));
    namesOf.set(of, set);
  }
  return set;
}

export type JobMatch = ({ readonly kind: "matched" } & MatchedJob) | ({ readonly kind: "unmatched" } & UnmatchedJob);

function unmatched(job: PendingJob, reason: UnmatchedJob["reason"], message: string): JobMatch {
  return { kind: "unmatched", requestId: job.requestId, demands: job.rawDemands, reason, message };
}

const AGENT_OWN = [AGENT_OS_CAPABILITY, AGENT_OS_ARCHITECTURE_CAPABILITY, AGENT_VERSION_CAPABILITY];

/**
 * Why no template meets a demand on one of the agent's own capabilities, for the unmatched message: what the
 * templates' agents report for that name, and what would change it. Undefined for other demands.
 */
export function explainAgentDemand(demand: Demand, templates: readonly TemplateSpec[]): string | undefined {
  const name = AGENT_OWN.find((n) => sameCapabilityName(n, demand.name));
  if (name === undefined) return undefined;
  const values = new Set<string>();
  let unknown = false;
  for (const t of templates) {
    for (const [k, v] of Object.entries(matchableCapabilities(t))) {
      if (!sameCapabilityName(k, name)) continue;
      if (v === null) unknown = true;
      else values.add(v);
    }
  }
  const shown = [...values].sort().map((v) => JSON.stringify(v));
  if (unknown) shown.push("a value known only once the pod runs");
  const parts = [`the templates' agents report ${name} ${shown.length > 0 ? shown.join(" or ") : "nothing"}`];
  if (name === AGENT_OS_CAPABILITY && demand.kind === "equals" && /^windows$/i.test(demand.value.trim())) {
    parts.push('agents on Windows report "Windows_NT"');
  }
  if (name === AGENT_OS_CAPABILITY) {
    parts.push("it comes from the pod template's spec.os.name or kubernetes.io/os node selection (default Linux)");
  }
  if (name === AGENT_OS_ARCHITECTURE_CAPABILITY) {
    parts.push(
      "it is known for a template that selects one kubernetes.io/arch in its nodeSelector or required node affinity (amd64: X64, arm64: ARM64), or that declares it",
    );
  }
  if (name === AGENT_VERSION_CAPABILITY) {
    parts.push("the agent image decides it; a template can declare Agent.Version to be matched on it");
  }
  return `${demand.raw.trim()}: ${parts.join("; ")}`;
}

/**
 * Finds the template that serves a job:
 * 1. a malformed demand, an unsupported operator, or an invalid or refused ExtraAgentContainers demand: unmatched;
 * 2. a demand on `Agent.Name` other than "exists" asks for one particular agent; a new pod's agent is named after
 *    its pod, so no pod can serve it: unmatched;
 * 3. the candidates are the templates whose reported capabilities (declared, plus what the agent reports by itself:
 *    see capabilities.ts) satisfy every demand, ignoring `Agent.Version -gtVersion` and ExtraAgentContainers;
 * 4. the best fit has the fewest declared capabilities the job did not ask for; ties go to resource order;
 * 5. no candidate: unmatched, the message naming the demands and explaining those on the agent's own capabilities.
 */
export function matchJob(
  job: PendingJob,
  templates: readonly TemplateSpec[],
  checkExtraAgentContainers?: (value: string) => string | undefined,
): JobMatch {
  // Rule 1.
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
  // Rule 2.
  const named = job.demands.find((d) => d.kind !== "exists" && sameCapabilityName(d.name, AGENT_NAME_CAPABILITY));
  if (named !== undefined) {
    return unmatched(
      job,
      "names-an-agent",
      `job ${job.requestId}: demand ${JSON.stringify(named.raw)} asks for one particular agent; the operator's agents are named after their new pods, so no pod can be made for it`,
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

  // Rules 3 and 4.
  let best = -1;
  let bestScore = Number.POSITIVE_INFINITY;
  templates.forEach((t, i) => {
    const capabilities = matchableCapabilities(t);
    if (!satisfies(capabilities, job.demands, { ignoreAgentVersion: true, ignoreExtraAgentContainers: true })) {
      return;
    }
    const score = unrequestedCapabilityCount(t.capabilities, job);
    if (score < bestScore) {
      best = i;
      bestScore = score;
    }
  });
  // Rule 5.
  if (best < 0) {
    const relevant = job.demands.filter((d) => !isAgentVersionDemand(d) && !isExtraAgentContainersDemand(d));
    const shown = relevant.map((d) => JSON.stringify(d.raw)).join(", ");
    const explained = relevant
      .filter((d) => !templates.some((t) => demandSatisfied(matchableCapabilities(t), d)))
      .map((d) => explainAgentDemand(d, templates))
      .filter((x): x is string => x !== undefined);
    return unmatched(
      job,
      "no-matching-template",
      `job ${job.requestId}: no pod template has capabilities satisfying ${shown === "" ? "its demands" : shown}${
        explained.length > 0 ? ` (${explained.join(". ")})` : ""
      }`,
    );
  }
  return { kind: "matched", job, templateIndex: best, extraAgentContainers: extraValue };
}

/**
 * Matches by job, templates and policy: the jobs of a poll are matched by the plan of every resource on the pool
 * and by the sharing of the pool against the same templates (their arrays are kept while the resource's generation
 * and standby stay, observe.ts; checkers while its spec does), and a waiting job keeps its parsed object from poll
 * to poll (`pendingJob`).
 */
const matches = new WeakMap<PendingJob, WeakMap<readonly TemplateSpec[], Map<unknown, JobMatch>>>();

/** `matchJob`, kept by job, templates' array and checker (see `matches`). */
export function matchJobCached(
  job: PendingJob,
  templates: readonly TemplateSpec[],
  checkExtraAgentContainers?: (value: string) => string | undefined,
): JobMatch {
  const byTemplates = keptIn(matches, job, () => new WeakMap());
  const byChecker = keptIn(byTemplates, templates, () => new Map());
  return keptIn(byChecker, checkExtraAgentContainers, () => matchJob(job, templates, checkExtraAgentContainers));
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
    const m = matchJobCached(job, templates, checkExtraAgentContainers);
    if (m.kind === "matched") {
      matched.push({ job: m.job, templateIndex: m.templateIndex, extraAgentContainers: m.extraAgentContainers });
    } else {
      unmatchedJobs.push({ requestId: m.requestId, demands: m.demands, reason: m.reason, message: m.message });
    }
  }
  return { matched, unmatched: unmatchedJobs };
}
