/**
 * The demo's picture of the world, derived (purely) from what it reads: the AutoScaledAgent, its pods and the
 * namespace's events from Kubernetes, jobs and agents from the Azure DevOps emulator's control API.
 *
 * Pod states use the operator's own reading (`observePod` + `classifyPod`), fed with the emulator's view of the
 * agents and jobs, so the demo shows what the operator sees.
 */

import type { SimAgentView, SimJobView } from "../../sim/azure-devops/views.ts";
import { type AutoScaledAgentStatus, labels, REPORTING_CONTROLLER } from "../../src/api/v1/index.ts";
import { observePod } from "../../src/controller/observe.ts";
import type { PodObject } from "../../src/controller/ports.ts";
import { capabilitySetKey, isPlaceholderAgentName } from "../../src/scaling/naming.ts";
import { classifyPod, reservations } from "../../src/scaling/plan.ts";
import type { JobRequest, ObservedAgent } from "../../src/scaling/types.ts";

export type JobBucket = "queued" | "running" | "succeeded" | "failed" | "canceled";
export const JOB_BUCKETS: readonly JobBucket[] = ["queued", "running", "succeeded", "failed", "canceled"];

export interface JobInfo {
  id: number;
  bucket: JobBucket;
  /** Epoch ms. */
  queuedAt: number;
  /** When the agent started it (`receiveTime`, else `assignTime`). */
  startedAt?: number;
  finishedAt?: number;
  /** The agent that holds or held it. */
  agent?: string;
  /** The service's status message (why a job failed at once, ...). */
  message?: string;
}

export type PodBucket = "starting" | "idle" | "busy" | "finishing" | "finished" | "lost";
export const POD_BUCKETS: readonly PodBucket[] = ["starting", "idle", "busy", "finishing", "finished"];

export interface PodInfo {
  name: string;
  /** Index in spec.podsWithCapabilities, or null when no current template matches. */
  template: number | null;
  state: PodBucket;
  createdAt: number;
}

export interface TemplateInfo {
  index: number;
  /** `name=value` pairs, e.g. `buildkit=1`. */
  capabilities: string;
  minCount: number;
  maxCount: number;
  /** From the resource's status, when the operator has written it. */
  pendingJobs?: number;
}

export interface PlaceholderInfo {
  name: string;
  status: "online" | "offline";
  capabilities: string;
}

export interface EventInfo {
  key: string;
  time: number;
  type: string;
  reason: string;
  /** `pod/name`, `autoscaledagent/name`, ... */
  object: string;
  note: string;
  count: number;
  /** Recorded by the operator (not the scheduler, the kubelet, ...). */
  byOperator: boolean;
}

export interface ConditionInfo {
  type: string;
  status: string;
  reason: string;
  message: string;
}

/** Everything the demo's reads returned (one round); any part may be missing when its read failed. */
export interface RawWorld {
  resource?: RawResource | undefined;
  pods?: PodObject[] | undefined;
  events?: RawEvent[] | undefined;
  jobs?: SimJobView[] | undefined;
  agents?: SimAgentView[] | undefined;
}

export interface RawResource {
  spec?: { podsWithCapabilities?: { capabilities?: Record<string, string>; minCount?: number; maxCount?: number }[] };
  status?: AutoScaledAgentStatus;
}

/** An event as listed from events.k8s.io/v1 (the fields the demo reads). */
export interface RawEvent {
  metadata?: { uid?: string; name?: string; creationTimestamp?: string };
  eventTime?: string | null;
  deprecatedLastTimestamp?: string | null;
  deprecatedFirstTimestamp?: string | null;
  deprecatedCount?: number | null;
  series?: { count?: number; lastObservedTime?: string } | null;
  type?: string;
  reason?: string;
  note?: string;
  regarding?: { kind?: string; name?: string };
  reportingController?: string;
  deprecatedSource?: { component?: string };
}

/** The derived picture (what the view renders). */
export interface World {
  jobs: JobInfo[];
  pods: PodInfo[];
  templates: TemplateInfo[];
  placeholders: PlaceholderInfo[];
  events: EventInfo[];
  conditions: ConditionInfo[];
}

/** Control characters (escapes included) never reach the terminal from data read elsewhere. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]+/g;

/** External text as one clean line. */
export function oneLine(text: string): string {
  return text.replace(CONTROL, " ").replace(/\s+/g, " ").trim();
}

const ms = (iso: string | null | undefined): number | undefined => {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
};

export function formatCapabilities(capabilities: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(capabilities ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length === 0 ? "(no capabilities)" : entries.map(([k, v]) => `${k}=${v}`).join(",");
}

export function jobBucket(job: Pick<SimJobView, "state" | "result">): JobBucket {
  if (job.state === "queued") return "queued";
  if (job.state === "assigned" || job.state === "running") return "running";
  if (job.result === "succeeded" || job.result === "succeededWithIssues") return "succeeded";
  if (job.result === "canceled") return "canceled";
  return "failed";
}

export function jobInfo(job: SimJobView): JobInfo {
  const info: JobInfo = { id: job.requestId, bucket: jobBucket(job), queuedAt: ms(job.queueTime) ?? 0 };
  const started = ms(job.receiveTime) ?? ms(job.assignTime);
  // A job that was assigned and went back to the queue has not started.
  if (started !== undefined && info.bucket !== "queued") info.startedAt = started;
  const finished = ms(job.finishTime);
  if (finished !== undefined) info.finishedAt = finished;
  if (job.reservedAgent) info.agent = job.reservedAgent.name;
  if (job.statusMessage) info.message = oneLine(job.statusMessage);
  return info;
}

function jobRequest(job: SimJobView): JobRequest {
  return {
    requestId: job.requestId,
    queueTime: job.queueTime,
    ...(job.assignTime ? { assignTime: job.assignTime } : {}),
    ...(job.receiveTime ? { receiveTime: job.receiveTime } : {}),
    ...(job.finishTime ? { finishTime: job.finishTime } : {}),
    ...(job.result ? { result: job.result } : {}),
    ...(job.reservedAgent ? { reservedAgent: job.reservedAgent } : {}),
  };
}

function observedAgent(agent: SimAgentView, finishTimes: ReadonlyMap<number, number>): ObservedAgent {
  const last = agent.lastCompletedRequestId;
  return {
    id: agent.id,
    name: agent.name,
    status: agent.status,
    busy: agent.assignedRequestId !== undefined,
    idleSinceMs: ms(agent.statusChangedOn) ?? null,
    // Only whether it is set matters to classifyPod; the job may have left the emulator's list.
    lastCompletedRequestFinishMs: last === undefined ? null : (finishTimes.get(last) ?? 0),
  };
}

function podBucket(state: ReturnType<typeof classifyPod>): PodBucket {
  switch (state) {
    case "unscheduled":
    case "starting":
      return "starting";
    case "terminating":
      return "finishing";
    default:
      return state;
  }
}

function eventInfo(e: RawEvent): EventInfo {
  const time =
    ms(e.series?.lastObservedTime) ??
    ms(e.eventTime) ??
    ms(e.deprecatedLastTimestamp) ??
    ms(e.deprecatedFirstTimestamp) ??
    ms(e.metadata?.creationTimestamp) ??
    0;
  const kind = (e.regarding?.kind ?? "").toLowerCase();
  return {
    key: e.metadata?.uid ?? e.metadata?.name ?? `${time}/${e.reason}`,
    time,
    type: e.type ?? "Normal",
    reason: e.reason ?? "",
    object: kind ? `${kind}/${e.regarding?.name ?? ""}` : (e.regarding?.name ?? ""),
    note: oneLine(e.note ?? ""),
    count: e.series?.count ?? e.deprecatedCount ?? 1,
    byOperator: (e.reportingController ?? e.deprecatedSource?.component) === REPORTING_CONTROLLER,
  };
}

/**
 * The picture of one round of reads. Jobs queued and events recorded before `since` (an earlier demo on the same
 * simulation) are left out; pods are shown whenever they were made, since they are there now.
 */
export function deriveWorld(raw: RawWorld, options: { since: number }): World {
  const specTemplates = raw.resource?.spec?.podsWithCapabilities ?? [];
  const statusTemplates = raw.resource?.status?.templates ?? [];
  const templates: TemplateInfo[] = specTemplates.map((t, index) => {
    const info: TemplateInfo = {
      index,
      capabilities: formatCapabilities(t.capabilities),
      minCount: t.minCount ?? 0,
      maxCount: t.maxCount ?? 0,
    };
    const s = statusTemplates.find((x) => x.index === index);
    if (s) info.pendingJobs = s.pendingJobs;
    return info;
  });
  const keys = specTemplates.map((t) => capabilitySetKey(t.capabilities ?? {}));

  const allJobs = raw.jobs ?? [];
  const agents = raw.agents ?? [];
  const finishTimes = new Map<number, number>();
  for (const j of allJobs) {
    const f = ms(j.finishTime);
    if (f !== undefined) finishTimes.set(j.requestId, f);
  }
  const agentsByName = new Map(agents.map((a) => [a.name, observedAgent(a, finishTimes)]));
  const reserved = reservations(allJobs.map(jobRequest));
  const pods: PodInfo[] = (raw.pods ?? [])
    .map((p) => {
      const observed = observePod(p, []);
      const key = p.metadata.labels?.[labels.template];
      const i = key === undefined ? -1 : keys.indexOf(key);
      return {
        name: p.metadata.name,
        template: i >= 0 ? i : null,
        state: podBucket(classifyPod(observed, agentsByName.get(p.metadata.name), reserved)),
        createdAt: observed.createdAtMs,
      };
    })
    .sort((a, b) => a.createdAt - b.createdAt || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const placeholders: PlaceholderInfo[] = agents
    .filter((a) => isPlaceholderAgentName(a.name))
    .map((a) => {
      const { "Agent.Version": _version, ...capabilities } = a.capabilities;
      return { name: a.name, status: a.status, capabilities: formatCapabilities(capabilities) };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const events = (raw.events ?? [])
    .map(eventInfo)
    .filter((e) => e.time >= options.since)
    .sort((a, b) => b.time - a.time || (a.key < b.key ? -1 : 1));

  const conditions: ConditionInfo[] = (raw.resource?.status?.conditions ?? []).map((c) => ({
    type: c.type,
    status: c.status,
    reason: c.reason,
    message: oneLine(c.message),
  }));

  return {
    jobs: allJobs
      .map(jobInfo)
      .filter((j) => j.queuedAt >= options.since)
      .sort((a, b) => a.id - b.id),
    pods,
    templates,
    placeholders,
    events,
    conditions,
  };
}
