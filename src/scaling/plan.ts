/**
 * The scale plan: from templates, job requests, the resource's pods, their agents and `now`,
 * decide which pods to create, which to remove, which sidecars to stop, which finished pods to delete, and the
 * counts for status. Pure: the controller carries the plan out.
 */

import { EXTRA_AGENT_CONTAINERS_CAPABILITY, sameCapabilityName } from "../azure-devops/demands.ts";
import { byKey, compareStrings } from "../runtime/compare.ts";
import { keptIn } from "../runtime/memo.ts";
import { compareQueueOrder, isFinished, matchJobs, selectPendingJobs } from "./jobs.ts";
import type {
  BlockedJob,
  FinishedPodDeletion,
  IdleMarkChange,
  JobRequest,
  MatchedJob,
  ObservedAgent,
  ObservedPod,
  PlanInput,
  PodCounts,
  PodCreate,
  PodRemoval,
  PodState,
  ScalePlan,
  SidecarStop,
  TemplateProblem,
  TemplateSpec,
  TemplateStatus,
} from "./types.ts";

/** Names and ids of agents that unfinished job requests have reserved. */
export interface Reservations {
  readonly names: ReadonlySet<string>;
  readonly ids: ReadonlySet<number>;
}

/**
 * By request list: every resource on a pool plans from the same poll's list, and so do its deletions and standby
 * work (lists are never edited in place; the sets are shared, never edited either).
 */
const reservationsOf = new WeakMap<readonly JobRequest[], Reservations>();

export function reservations(requests: readonly JobRequest[]): Reservations {
  return keptIn(reservationsOf, requests, () => reservationsIn(requests));
}

function reservationsIn(requests: readonly JobRequest[]): Reservations {
  const names = new Set<string>();
  const ids = new Set<number>();
  for (const r of requests) {
    if (isFinished(r) || r.reservedAgent === undefined) continue;
    names.add(r.reservedAgent.name);
    ids.add(r.reservedAgent.id);
  }
  return { names, ids };
}

/** Whether Azure DevOps says the pod's agent holds a job (its own flag, or a job request reserving it). */
export function agentHoldsJob(podName: string, agent: ObservedAgent | undefined, reserved: Reservations): boolean {
  if (reserved.names.has(podName)) return true;
  if (agent === undefined) return false;
  return agent.busy || reserved.ids.has(agent.id);
}

/**
 * How the core sees a pod. Order matters: a final phase or a deletion wins; then a terminated agent container;
 * then "holds a job" (so a busy pod is never taken for idle); then scheduling and registration.
 */
export function classifyPod(
  pod: ObservedPod,
  agent: ObservedAgent | undefined,
  reserved: Reservations,
  agentsRunOnce = true,
): PodState {
  if (pod.phase === "Succeeded" || pod.phase === "Failed") return "finished";
  if (pod.deleting) return "terminating";
  if (pod.phase === "Unknown") return "lost";
  if (pod.agentContainer === "terminated") return "finishing";
  if (agentHoldsJob(pod.name, agent, reserved)) return "busy";
  if (agentsRunOnce && agent?.lastCompletedRequestFinishMs != null) return "finishing";
  if (!pod.scheduled) return "unscheduled";
  if (agent !== undefined && agent.status === "online") return "idle";
  return "starting";
}

/** Keeps the newest `keep` finished pods (by start time, else creation time) and returns the others. */
export function finishedPodsToDelete(finished: readonly ObservedPod[], keep: number): ObservedPod[] {
  const newestFirst = [...finished].sort((a, b) => {
    const ta = a.startedAtMs ?? a.createdAtMs;
    const tb = b.startedAtMs ?? b.createdAtMs;
    if (ta !== tb) return tb - ta;
    return compareStrings(a.name, b.name);
  });
  return newestFirst.slice(Math.max(0, Math.floor(keep)));
}

/** Classic sidecars still running or waiting in a pod whose agent container has terminated. */
export function sidecarsToStop(pod: ObservedPod): string[] {
  if (pod.agentContainer !== "terminated") return [];
  if (pod.deleting || pod.phase === "Succeeded" || pod.phase === "Failed") return [];
  return pod.otherContainers
    .filter((c) => !c.nativeSidecar && !c.stopRequested && (c.state === "running" || c.state === "waiting"))
    .map((c) => c.name);
}

/** The capabilities a new pod's agent advertises. */
export function agentCapabilities(template: TemplateSpec, extraAgentContainers: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(template.capabilities)) {
    if (extraAgentContainers !== null && sameCapabilityName(k, EXTRA_AGENT_CONTAINERS_CAPABILITY)) continue;
    out[k] = v;
  }
  if (extraAgentContainers !== null) out[EXTRA_AGENT_CONTAINERS_CAPABILITY] = extraAgentContainers;
  return out;
}

const byName = byKey((p: ObservedPod) => p.name);
const byCreation = (a: ObservedPod, b: ObservedPod) => a.createdAtMs - b.createdAtMs || byName(a, b);

function emptyCounts(): { -readonly [K in keyof PodCounts]: number } {
  return { starting: 0, unscheduled: 0, idle: 0, busy: 0, finishing: 0, terminating: 0, lost: 0, finished: 0 };
}

function countPods(pods: readonly ObservedPod[], states: ReadonlyMap<string, PodState>): PodCounts {
  const c = emptyCounts();
  for (const p of pods) {
    const s = states.get(p.name);
    switch (s) {
      case "unscheduled":
        c.unscheduled++;
        c.starting++;
        break;
      case "starting":
      case "idle":
      case "busy":
      case "finishing":
      case "terminating":
      case "lost":
      case "finished":
        c[s]++;
        break;
      default:
        break;
    }
  }
  return c;
}

interface Coverage {
  /** podName -> requestId it is expected to run. */
  readonly podToJob: Map<string, number>;
  /** Jobs no pod covers, in queue order. */
  readonly uncovered: MatchedJob[];
}

/**
 * Pairs pending jobs of one (template, ExtraAgentContainers) group with the group's pods that can still take a job
 * (idle, starting, unscheduled). Every such pod counts once, so nothing is created twice across reconciles:
 * 1. idle agents take the oldest jobs (the service hands a queued job to an idle matching agent first);
 * 2. a starting or unscheduled pod keeps the job it was created for, while that job is still uncovered;
 * 3. the remaining starting pods, then unscheduled ones, take the remaining jobs in queue order.
 * Pods left without a job are spare.
 */
function coverJobs(
  jobs: readonly MatchedJob[],
  capacity: readonly ObservedPod[],
  states: ReadonlyMap<string, PodState>,
): Coverage {
  const podToJob = new Map<string, number>();
  const covered = new Set<number>();
  const cover = (pod: ObservedPod, requestId: number) => {
    podToJob.set(pod.name, requestId);
    covered.add(requestId);
  };
  // Jobs before `next` are all covered (covering only ever adds), so each search goes on from where the last ended.
  let next = 0;
  const nextUncovered = () => {
    while (next < jobs.length && covered.has((jobs[next] as MatchedJob).job.requestId)) next++;
    return jobs[next];
  };

  const idle = capacity.filter((p) => states.get(p.name) === "idle").sort(byCreation);
  for (const pod of idle) {
    const j = nextUncovered();
    if (j === undefined) break;
    cover(pod, j.job.requestId);
  }
  const rank = (p: ObservedPod) => (states.get(p.name) === "starting" ? 0 : 1);
  const notIdle = capacity
    .filter((p) => states.get(p.name) !== "idle")
    .sort((a, b) => rank(a) - rank(b) || byCreation(a, b));
  const pendingIds = new Set(jobs.map((j) => j.job.requestId));
  for (const pod of notIdle) {
    const id = pod.createdForRequestIds.find((r) => pendingIds.has(r) && !covered.has(r));
    if (id !== undefined) cover(pod, id);
  }
  for (const pod of notIdle) {
    if (podToJob.has(pod.name)) continue;
    const j = nextUncovered();
    if (j === undefined) break;
    cover(pod, j.job.requestId);
  }
  return { podToJob, uncovered: jobs.filter((j) => !covered.has(j.job.requestId)) };
}

interface GroupPlanInput {
  readonly templateIndex: number | null;
  readonly template: TemplateSpec;
  readonly pods: readonly ObservedPod[];
  readonly jobs: readonly MatchedJob[];
}

interface GroupPlan {
  readonly creates: PodCreate[];
  readonly removals: PodRemoval[];
  readonly marks: IdleMarkChange[];
  /** Pods whose idle mark must stay (or was just set). */
  readonly keepMarked: Set<string>;
  readonly blocked: BlockedJob[];
  readonly desired: number;
}

interface Context {
  readonly now: number;
  readonly minIdleMs: number;
  readonly states: ReadonlyMap<string, PodState>;
  readonly agentOf: (podName: string) => ObservedAgent | undefined;
}

function idleStart(pod: ObservedPod, agent: ObservedAgent | undefined, now: number): number {
  return Math.max(
    pod.idleMarkedAtMs ?? now,
    agent?.idleSinceMs ?? Number.NEGATIVE_INFINITY,
    agent?.lastCompletedRequestFinishMs ?? Number.NEGATIVE_INFINITY,
  );
}

function planTemplate(input: GroupPlanInput, ctx: Context): GroupPlan {
  const { template, templateIndex } = input;
  const state = (p: ObservedPod) => ctx.states.get(p.name);
  const live = input.pods.filter((p) => {
    const s = state(p);
    return s === "unscheduled" || s === "starting" || s === "idle" || s === "busy";
  });
  const occupiedExtra = input.pods.filter((p) => {
    const s = state(p);
    return s === "terminating" || s === "lost";
  }).length;
  const busy = live.filter((p) => state(p) === "busy").length;
  const current = live.length;
  const occupied = current + occupiedExtra;
  const maxCount = Math.max(0, Math.floor(template.maxCount));
  // Standby agents beside the busy pods counted here: busy from another view of the pods (the standby work's
  // reservations) could exceed the live pods of this one and create warm pods that no standby asked for.
  const minCount =
    template.standby === undefined
      ? Math.max(0, Math.floor(template.minCount))
      : Math.min(maxCount, busy + Math.max(0, Math.floor(template.standby)));
  const desired = Math.min(maxCount, Math.max(minCount, input.jobs.length + busy));

  // Coverage per ExtraAgentContainers group: a pod only serves jobs asking for exactly its extra containers.
  const groups = new Map<string | null, { jobs: MatchedJob[]; capacity: ObservedPod[] }>();
  const group = (key: string | null) => {
    let g = groups.get(key);
    if (g === undefined) {
      g = { jobs: [], capacity: [] };
      groups.set(key, g);
    }
    return g;
  };
  for (const j of input.jobs) group(j.extraAgentContainers).jobs.push(j);
  for (const p of live) if (state(p) !== "busy") group(p.extraAgentContainers).capacity.push(p);
  const podToJob = new Map<string, number>();
  let uncovered: MatchedJob[] = [];
  for (const g of groups.values()) {
    const c = coverJobs(g.jobs, g.capacity, ctx.states);
    for (const [k, v] of c.podToJob) podToJob.set(k, v);
    uncovered.push(...c.uncovered);
  }
  uncovered = uncovered.sort((a, b) => compareQueueOrder(a.job, b.job));

  // Creates: one pod per uncovered job, then warm pods up to minCount, never above maxCount.
  const creates: PodCreate[] = [];
  const blocked: BlockedJob[] = [];
  let slots = Math.max(0, maxCount - occupied);
  if (templateIndex !== null) {
    for (const j of uncovered) {
      if (slots > 0) {
        slots--;
        creates.push({
          templateIndex,
          extraAgentContainers: j.extraAgentContainers,
          agentCapabilities: agentCapabilities(template, j.extraAgentContainers),
          forRequestIds: [j.job.requestId],
          reason: "pending-job",
          message: `job ${j.job.requestId} is pending and no pod of template ${templateIndex}${
            j.extraAgentContainers === null ? "" : " with its ExtraAgentContainers"
          } is free for it`,
        });
      } else {
        blocked.push({
          requestId: j.job.requestId,
          templateIndex,
          extraAgentContainers: j.extraAgentContainers,
          reason: "max-count",
          message: `job ${j.job.requestId} waits: template ${templateIndex} already has ${occupied + creates.length} of maxCount ${maxCount} pods`,
        });
      }
    }
    const warm = Math.min(slots, Math.max(0, minCount - (current + creates.length)));
    for (let i = 0; i < warm; i++) {
      creates.push({
        templateIndex,
        extraAgentContainers: null,
        agentCapabilities: agentCapabilities(template, null),
        forRequestIds: [],
        reason: "min-count",
        message: `template ${templateIndex} has ${current + creates.length} of minCount ${minCount} pods`,
      });
    }
  }

  // Removals: only unscheduled pods (at once) and idle agents (after the idle period), never busy ones.
  // Spare pods (covering no pending job) go first; pods covering a job only when above maxCount.
  const surplus = Math.max(0, current - desired);
  const candidates = live.filter((p) => state(p) === "unscheduled" || state(p) === "idle");
  const spare = candidates.filter((p) => !podToJob.has(p.name));
  const covering = candidates.filter((p) => podToJob.has(p.name));
  const wantSpare = Math.min(spare.length, Math.max(surplus, blocked.length));
  const wantCovering = Math.min(covering.length, Math.max(0, surplus - spare.length));

  const removals: PodRemoval[] = [];
  const marks: IdleMarkChange[] = [];
  const keepMarked = new Set<string>();
  const take = (pods: readonly ObservedPod[], want: number, why: string) => {
    let remaining = want;
    for (const p of pods.filter((x) => state(x) === "unscheduled").sort(byCreation)) {
      if (remaining <= 0) break;
      remaining--;
      removals.push({
        podName: p.name,
        templateIndex,
        agentId: ctx.agentOf(p.name)?.id ?? null,
        reason: "unscheduled",
        message: `pod ${p.name} was never scheduled and is not needed (${why})`,
      });
    }
    if (remaining <= 0) return;
    const idle = pods
      .filter((x) => state(x) === "idle")
      .map((p) => ({ p, start: idleStart(p, ctx.agentOf(p.name), ctx.now) }))
      .sort((a, b) => a.start - b.start || byName(a.p, b.p));
    for (const { p, start } of idle) {
      const agent = ctx.agentOf(p.name);
      const idleFor = ctx.now - start;
      if (remaining > 0 && idleFor >= ctx.minIdleMs) {
        remaining--;
        removals.push({
          podName: p.name,
          templateIndex,
          agentId: agent?.id ?? null,
          reason: "idle",
          message: `agent ${p.name} has been idle for ${Math.round(idleFor / 1000)}s and is not needed (${why})`,
        });
        continue;
      }
      keepMarked.add(p.name);
      if (p.idleMarkedAtMs == null) marks.push({ podName: p.name, action: "set", atMs: ctx.now });
    }
  };
  const why =
    templateIndex === null
      ? "its template is no longer in the resource"
      : surplus > 0
        ? `template ${templateIndex} wants ${desired} pods and has ${current}`
        : `making room under maxCount ${maxCount} for ${blocked.length} waiting job(s)`;
  if (wantSpare > 0) take(spare, wantSpare, why);
  if (wantCovering > 0) take(covering, wantCovering, `template ${templateIndex} is above maxCount ${maxCount}`);

  return { creates, removals, marks, keepMarked, blocked, desired };
}

/** The whole plan for one resource. See README.md in this folder. */
export function planScaling(input: PlanInput): ScalePlan {
  const agentsRunOnce = input.agentsRunOnce ?? true;
  const reserved = reservations(input.jobRequests);

  const agentsByName = new Map<string, ObservedAgent>();
  for (const a of input.agents) {
    const known = agentsByName.get(a.name);
    // Two registrations with one name should not happen; if they do, the busy one decides.
    if (known === undefined || (!known.busy && a.busy)) agentsByName.set(a.name, a);
  }
  const agentOf = (podName: string) => agentsByName.get(podName);

  const states = new Map<string, PodState>();
  for (const p of input.pods) states.set(p.name, classifyPod(p, agentOf(p.name), reserved, agentsRunOnce));

  const pending = selectPendingJobs(input.jobRequests);
  const { matched, unmatched } = matchJobs(pending, input.templates, input.checkExtraAgentContainers);

  const templateOf = (p: ObservedPod) =>
    p.templateIndex !== null && Number.isInteger(p.templateIndex) && p.templateIndex >= 0
      ? p.templateIndex < input.templates.length
        ? p.templateIndex
        : null
      : null;

  const ctx: Context = { now: input.now, minIdleMs: Math.max(0, input.agentMinIdlePeriodMs), states, agentOf };
  const creates: PodCreate[] = [];
  const removals: PodRemoval[] = [];
  const idleMarks: IdleMarkChange[] = [];
  const keepMarked = new Set<string>();
  const blockedJobs: BlockedJob[] = [];
  const templates: TemplateStatus[] = [];

  input.templates.forEach((template, i) => {
    const pods = input.pods.filter((p) => templateOf(p) === i);
    const jobs = matched.filter((m) => m.templateIndex === i);
    const g = planTemplate({ templateIndex: i, template, pods, jobs }, ctx);
    creates.push(...g.creates);
    removals.push(...g.removals);
    idleMarks.push(...g.marks);
    for (const n of g.keepMarked) keepMarked.add(n);
    blockedJobs.push(...g.blocked);
    templates.push({ templateIndex: i, pendingJobs: jobs.length, desired: g.desired, ...countPods(pods, states) });
  });

  const orphans = input.pods.filter((p) => templateOf(p) === null);
  const o = planTemplate(
    { templateIndex: null, template: { capabilities: {}, minCount: 0, maxCount: 0 }, pods: orphans, jobs: [] },
    ctx,
  );
  removals.push(...o.removals);
  idleMarks.push(...o.marks);
  for (const n of o.keepMarked) keepMarked.add(n);

  // Marks of pods that are no longer idle candidates are cleared (the idle period restarts next time).
  const removed = new Set(removals.map((r) => r.podName));
  for (const p of input.pods) {
    if (p.idleMarkedAtMs == null || keepMarked.has(p.name) || removed.has(p.name)) continue;
    const s = states.get(p.name);
    if (s === "idle" || s === "busy" || s === "starting" || s === "unscheduled") {
      idleMarks.push({ podName: p.name, action: "clear", atMs: null });
    }
  }

  const stopSidecars: SidecarStop[] = [];
  for (const p of input.pods) {
    const containers = sidecarsToStop(p);
    if (containers.length > 0) stopSidecars.push({ podName: p.name, containers });
  }

  const finished = input.pods.filter((p) => states.get(p.name) === "finished");
  const deleteFinished: FinishedPodDeletion[] = finishedPodsToDelete(finished, input.maxTerminatedPodsToKeep).map(
    (p) => {
      const agent = agentOf(p.name);
      const agentId = agent !== undefined && !agentHoldsJob(p.name, agent, reserved) ? agent.id : null;
      return { podName: p.name, agentId };
    },
  );

  // Declared capabilities the agent replaces: the entry says something its agents do not report.
  const templateProblems: TemplateProblem[] = input.templates.flatMap((t, i) =>
    (t.overriddenCapabilities ?? []).map((message) => ({
      templateIndex: i,
      reason: "CapabilityOverridden" as const,
      message: `podsWithCapabilities[${i}].capabilities: ${message}`,
    })),
  );

  return {
    creates,
    removals,
    idleMarks,
    stopSidecars,
    deleteFinished,
    unmatchedJobs: unmatched,
    blockedJobs,
    templateProblems,
    templates,
    orphaned: countPods(orphans, states),
    podStates: states,
  };
}
