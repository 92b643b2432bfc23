/**
 * Placeholder ("dummy") agents and offline-agent garbage collection: the pure decisions.
 *
 * Azure DevOps fails a job at once when no registered agent of the pool (online or offline) satisfies its demands.
 * The operator therefore registers one offline placeholder agent per capability set of its pod templates, and
 * garbage-collects placeholders nobody wants any more and the registrations that agents of dead pods left behind.
 * Everything here is a function of data and `now`: no I/O, no clock reads. `manager.ts` carries the decisions out.
 */
import { parseDuration } from "../api/v1/duration.ts";
import { AGENT_NAME_CAPABILITY, AGENT_VERSION_CAPABILITY, sameCapabilityName } from "../azure-devops/demands.ts";
import type { TaskAgentInput } from "../azure-devops/types.ts";
import { compareStrings } from "../runtime/compare.ts";
import { reportedCapabilities } from "../scaling/capabilities.ts";
import {
  capabilitySetKey,
  isPlaceholderAgentName,
  POD_NAME_SUFFIX_LENGTH,
  placeholderAgentName,
} from "../scaling/naming.ts";

// ---------------------------------------------------------------------------------------------------------------
// What a placeholder looks like

/**
 * The agent version a placeholder registers with. The service adds `Agent.Version -gtVersion X` to practically every
 * job; a placeholder must satisfy it whatever X is. The original operator and its registrator CLI used this value.
 */
export const PLACEHOLDER_AGENT_VERSION = "99.999.9";

/** Shown in the pool's agent list of the Azure DevOps web UI. */
export const PLACEHOLDER_OS_DESCRIPTION =
  "placeholder agent of azure-pipelines-k8s-agent-scaler: never runs jobs; keeps jobs with these capabilities queued";

const has = (capabilities: Readonly<Record<string, unknown>>, name: string) =>
  Object.keys(capabilities).some((k) => sameCapabilityName(k, name));

/**
 * The registration body of a placeholder: enabled, provisioned, offline forever (no `authorization`, so it can never
 * open a session), the capability set as system capabilities, plus what every agent reports of itself when the set
 * does not say: `Agent.Version` (so that the automatic `Agent.Version -gtVersion` demand is met) and `Agent.Name`
 * (its name). The name is not derived from the added capabilities.
 */
export function placeholderRegistration(name: string, capabilities: Readonly<Record<string, string>>): TaskAgentInput {
  return {
    name,
    version: PLACEHOLDER_AGENT_VERSION,
    osDescription: PLACEHOLDER_OS_DESCRIPTION,
    enabled: true,
    provisioningState: "Provisioned",
    maxParallelism: 1,
    systemCapabilities: {
      ...(has(capabilities, AGENT_NAME_CAPABILITY) ? {} : { [AGENT_NAME_CAPABILITY]: name }),
      ...(has(capabilities, AGENT_VERSION_CAPABILITY) ? {} : { [AGENT_VERSION_CAPABILITY]: PLACEHOLDER_AGENT_VERSION }),
      ...capabilities,
    },
  };
}

/**
 * The capability set a placeholder stands for: what the entry's agents will report (`reportedCapabilities`: the
 * declared capabilities, `Agent.OS`, `Agent.OSArchitecture`, literal environment variables of the agent container).
 * A capability whose value is known only once the pod runs is carried with an empty value, so that a demand for its
 * mere presence queues; `Agent.Name` and an undeclared `Agent.Version` are left to the registration body.
 */
export function placeholderCapabilities(
  declared: Readonly<Record<string, string>>,
  podTemplate: unknown,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(reportedCapabilities(declared, podTemplate).capabilities)) {
    if (
      v === null &&
      (sameCapabilityName(k, AGENT_NAME_CAPABILITY) || sameCapabilityName(k, AGENT_VERSION_CAPABILITY))
    ) {
      continue;
    }
    out[k] = v ?? "";
  }
  return out;
}

/**
 * The name the registrator CLI gives a placeholder: `<prefix>-<16 hex of the capability set's hash>`. With the
 * default prefix `dummy-agent` this is exactly {@link placeholderAgentName} of the same set (registering it twice is
 * a harmless 409). The operator names its own placeholders after `placeholderCapabilities`, which adds what the
 * agents report by themselves.
 */
export function prefixedPlaceholderName(prefix: string, capabilities: Readonly<Record<string, string>>): string {
  return `${prefix}-${capabilitySetKey(capabilities)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Wanted placeholders

/** The part of an AutoScaledAgent (spec) that decides its placeholders. A spec object fits as it is. */
export interface PlaceholderSource {
  /** Who wants it, for messages (e.g. `namespace/name`). */
  readonly key?: string;
  readonly podsWithCapabilities: ReadonlyArray<{
    readonly capabilities?: Readonly<Record<string, string>>;
    /** The entry's pod template: what the agent reports by itself comes from it (absent: a default Linux pod). */
    readonly podTemplateSpec?: unknown;
  }>;
}

export interface WantedPlaceholder {
  /** `dummy-agent-<16 hex>` of the capability set. */
  readonly name: string;
  /** What the entry's agents report (`placeholderCapabilities`): what the name is derived from. */
  readonly capabilities: Readonly<Record<string, string>>;
  /** What to POST to register it. */
  readonly registration: TaskAgentInput;
  /** Keys of the resources whose templates have this set, in input order, without repeats. */
  readonly wantedBy: readonly string[];
}

/**
 * One placeholder per distinct set of capabilities the resources' agents report (`placeholderCapabilities` of each
 * entry: its declared `capabilities`, empty when absent, plus what its agent reports by itself), sorted by name.
 * Sets that several templates or resources share give one placeholder.
 *
 * Only template sets are wanted. Placeholders for `ExtraAgentContainers` values are not derived from anything here:
 * those values come with jobs at run time, and a pipeline registers them with the registrator CLI before the job
 * that demands them is queued. Such placeholders are therefore never "wanted" and are collected once older than
 * `dummyAgentDeletionMinAge` (see {@link garbageToCollect}).
 */
export function wantedPlaceholders(resources: readonly PlaceholderSource[]): WantedPlaceholder[] {
  const byName = new Map<string, { capabilities: Record<string, string>; wantedBy: string[] }>();
  for (const resource of resources) {
    for (const template of resource.podsWithCapabilities) {
      const capabilities = placeholderCapabilities(template.capabilities ?? {}, template.podTemplateSpec);
      const name = placeholderAgentName(capabilities);
      let entry = byName.get(name);
      if (!entry) {
        entry = { capabilities, wantedBy: [] };
        byName.set(name, entry);
      }
      if (resource.key !== undefined && !entry.wantedBy.includes(resource.key)) entry.wantedBy.push(resource.key);
    }
  }
  return [...byName.entries()]
    .sort(([a], [b]) => compareStrings(a, b))
    .map(([name, e]) => ({
      name,
      capabilities: e.capabilities,
      registration: placeholderRegistration(name, e.capabilities),
      wantedBy: e.wantedBy,
    }));
}

/** A stable key of a wanted set (its names, sorted): when it changes, the placeholders must be ensured again. */
export function placeholderSetKey(wanted: ReadonlyArray<{ readonly name: string }>): string {
  return wanted
    .map((w) => w.name)
    .sort()
    .join(",");
}

/**
 * The wanted placeholders whose names are not among the agents the caller already knows (compared ignoring case,
 * as the service compares agent names). Registering only these saves requests; a stale list is harmless, since a
 * registration of an existing name is a 409, which counts as success.
 */
export function missingPlaceholders(
  wanted: readonly WantedPlaceholder[],
  existingAgentNames: Iterable<string>,
): WantedPlaceholder[] {
  const existing = new Set<string>();
  for (const name of existingAgentNames) existing.add(name.toLowerCase());
  return wanted.filter((w) => !existing.has(w.name.toLowerCase()));
}

// ---------------------------------------------------------------------------------------------------------------
// Garbage collection

/** The fields of a pool agent the collection reads (a TaskAgent, or the controller's PoolAgent). */
export interface CollectableAgent {
  readonly id: number;
  readonly name: string;
  readonly status?: string;
  readonly createdOn?: string;
  readonly statusChangedOn?: string;
  /** Present (with `includeAssignedRequest`) while the agent holds a job. */
  readonly assignedRequest?: { readonly requestId: number } | null;
}

/** The fields of a job request the collection reads. */
export interface CollectableJobRequest {
  readonly requestId: number;
  readonly assignTime?: string;
  readonly receiveTime?: string;
  readonly finishTime?: string;
  readonly result?: string;
  readonly reservedAgent?: { readonly id?: number; readonly name?: string } | null;
  readonly matchedAgents?: ReadonlyArray<{ readonly id?: number; readonly name?: string }> | null;
}

/** Default of {@link GarbageInput.offlineGraceMs}. */
export const DEFAULT_OFFLINE_GRACE_MS = 5 * 60_000;

export interface GarbageInput {
  /** The pool's agents, with `assignedRequest` (list them with `includeAssignedRequest`). */
  readonly agents: readonly CollectableAgent[];
  /**
   * Placeholder names wanted by ANY resource on this pool (the union over every AutoScaledAgent using the same
   * organization and pool, not just the one reconciled): a placeholder in this set is never collected.
   */
  readonly wantedNames: Iterable<string>;
  /**
   * Names of live agent pods (not Succeeded or Failed: a finished pod's agent can never come back). Include every
   * agent pod the operator sees, of every resource: a name in the set only protects its agent. `undefined` when
   * the pod cache has not synced yet: then the pod-gone rule is not applied at all.
   */
  readonly podNames: ReadonlySet<string> | undefined;
  /**
   * `podNamePrefix(resourceName)` (`<resource>-`) of each resource whose stale agents to collect. An agent is this
   * resource's when its name is exactly the prefix followed by the 5-character pod-name suffix (`[a-z0-9]{5}`), so
   * resource `build` never claims the agents of resource `build-arm`.
   */
  readonly resourcePodNamePrefixes: readonly string[];
  /** Unfinished job requests of the pool, when known: their agents (reserved, or matched while queued) are kept. */
  readonly jobRequests?: readonly CollectableJobRequest[];
  readonly now: number;
  /** `dummyAgentDeletionMinAge`: an unwanted offline placeholder is deleted once `createdOn` is at least this old. */
  readonly dummyAgentDeletionMinAgeMs: number;
  /** `normalOfflineAgentDeletionMinAge`: an offline agent of the resource is deleted once at least this old. */
  readonly normalOfflineAgentDeletionMinAgeMs: number;
  /**
   * How long an agent of the resource must have been offline (since `statusChangedOn`, and since `createdOn`) before
   * either rule for resource agents deletes it. Default 5 minutes. Covers the pod that the cache does not show yet
   * while its agent registers, and the agent that drops its session for a moment.
   */
  readonly offlineGraceMs?: number;
  /** The most deletions to return (oldest first); the rest wait for the next run. Default 50. */
  readonly limit?: number;
}

export type GarbageReason =
  /** A placeholder no resource on the pool wants, at least `dummyAgentDeletionMinAge` old. */
  | "unwanted-placeholder"
  /** An agent of the resource whose pod no longer exists: it can never come back. */
  | "pod-gone"
  /** An agent of the resource, at least `normalOfflineAgentDeletionMinAge` old, offline. */
  | "offline-too-long"
  /** The resource is being deleted: its placeholders nobody else wants, its offline agents. */
  | "resource-deleted";

export type KeepReason =
  | "wanted"
  | "online"
  | "busy"
  | "matched-by-queued-job"
  | "too-young"
  | "in-grace"
  | "age-unknown"
  | "pods-unknown"
  | "over-limit";

export interface GarbageItem {
  readonly id: number;
  readonly name: string;
  readonly reason: GarbageReason;
  /** One line for logs and events. */
  readonly message: string;
}

export interface KeptAgent {
  readonly id: number;
  readonly name: string;
  readonly kind: "placeholder" | "resource-agent";
  readonly reason: KeepReason;
}

export interface GarbageDecision {
  /** Agents to delete, oldest first. */
  readonly delete: readonly GarbageItem[];
  /** Placeholders and resource agents that stay, and why (agents of neither kind are not listed). */
  readonly kept: readonly KeptAgent[];
}

const DEFAULT_LIMIT = 50;

function timeOf(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const t = Date.parse(value);
  return Number.isFinite(t) ? t : undefined;
}

const podSuffixPattern = new RegExp(`^[a-z0-9]{${POD_NAME_SUFFIX_LENGTH}}$`);

function isResourceAgent(name: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => name.startsWith(p) && podSuffixPattern.test(name.slice(p.length)));
}

function formatAge(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  return `${hours}h${minutes % 60}m`;
}

function isUnfinished(job: CollectableJobRequest): boolean {
  return job.result === undefined && job.finishTime === undefined;
}

function isQueued(job: CollectableJobRequest): boolean {
  return (
    isUnfinished(job) &&
    job.assignTime === undefined &&
    job.receiveTime === undefined &&
    (job.reservedAgent === undefined || job.reservedAgent === null)
  );
}

/**
 * Which offline agents to delete. Rules, in order, for each agent of the pool:
 *
 * 1. A name in `wantedNames` (ignoring case) is kept.
 * 2. The agent is a *resource agent* when its name is one of `resourcePodNamePrefixes` followed by a 5-character
 *    pod suffix, else a *placeholder* when its name is `dummy-agent` or starts with `dummy-agent-` (the operator's,
 *    the original operator's, and the registrator CLI's with its default prefix, or any prefix that starts with
 *    `dummy-agent-`); any other agent is not looked at.
 * 3. Never an agent whose status is not `offline` (online, or unknown), never one holding a job (`assignedRequest`,
 *    or the `reservedAgent` of an unfinished job request).
 * 4. A placeholder that a queued job lists in `matchedAgents` is kept (it may be what keeps that job queued).
 *    Otherwise it is deleted once `createdOn` is at least `dummyAgentDeletionMinAge` ago.
 * 5. A resource agent must have been offline for `offlineGraceMs` (both `createdOn` and `statusChangedOn` that long
 *    ago). Then it is deleted when its pod is not in `podNames` (pod-gone; skipped while `podNames` is undefined),
 *    or when `createdOn` is at least `normalOfflineAgentDeletionMinAge` ago.
 *
 * An agent without a readable `createdOn` is kept. Ages at exactly the minimum count as old enough ("at least this
 * age", as the original's CRD put it).
 *
 * The race with new pods: the operator creates a pod, its agent registers (offline until its session opens) and
 * the pod cache may still lag behind. Such an agent is young and offline only for seconds, so the grace period keeps
 * it; a real pod-gone agent is collected one grace period after it went offline. Deleting a registration while the
 * agent has a job is refused by the service, which is the last line of defence (the manager then skips it).
 */
export function garbageToCollect(input: GarbageInput): GarbageDecision {
  const wanted = new Set<string>();
  for (const name of input.wantedNames) wanted.add(name.toLowerCase());
  const grace = Math.max(0, input.offlineGraceMs ?? DEFAULT_OFFLINE_GRACE_MS);
  const limit = Math.max(0, input.limit ?? DEFAULT_LIMIT);
  const busyIds = new Set<number>();
  const busyNames = new Set<string>();
  const matchedIds = new Set<number>();
  const matchedNames = new Set<string>();
  for (const job of input.jobRequests ?? []) {
    if (!isUnfinished(job)) continue;
    const reserved = job.reservedAgent;
    if (reserved) {
      if (reserved.id !== undefined) busyIds.add(reserved.id);
      if (reserved.name !== undefined) busyNames.add(reserved.name.toLowerCase());
    }
    if (isQueued(job)) {
      for (const m of job.matchedAgents ?? []) {
        if (m.id !== undefined) matchedIds.add(m.id);
        if (m.name !== undefined) matchedNames.add(m.name.toLowerCase());
      }
    }
  }

  const candidates: Array<GarbageItem & { createdAt: number }> = [];
  const kept: KeptAgent[] = [];
  for (const agent of input.agents) {
    const lower = agent.name.toLowerCase();
    const resourceAgent = isResourceAgent(agent.name, input.resourcePodNamePrefixes);
    const placeholder = !resourceAgent && isPlaceholderAgentName(agent.name);
    if (!resourceAgent && !placeholder) continue;
    const kind = resourceAgent ? "resource-agent" : "placeholder";
    const keep = (reason: KeepReason) => kept.push({ id: agent.id, name: agent.name, kind, reason });
    if (wanted.has(lower)) {
      keep("wanted");
      continue;
    }
    if (agent.status !== "offline") {
      keep("online");
      continue;
    }
    if (
      (agent.assignedRequest !== undefined && agent.assignedRequest !== null) ||
      busyIds.has(agent.id) ||
      busyNames.has(lower)
    ) {
      keep("busy");
      continue;
    }
    const createdAt = timeOf(agent.createdOn);
    if (createdAt === undefined) {
      keep("age-unknown");
      continue;
    }
    const age = input.now - createdAt;
    if (placeholder) {
      if (matchedIds.has(agent.id) || matchedNames.has(lower)) {
        keep("matched-by-queued-job");
      } else if (age >= input.dummyAgentDeletionMinAgeMs) {
        candidates.push({
          id: agent.id,
          name: agent.name,
          reason: "unwanted-placeholder",
          message: `placeholder agent '${agent.name}' is wanted by no resource of the pool and is ${formatAge(age)} old`,
          createdAt,
        });
      } else {
        keep("too-young");
      }
      continue;
    }
    const offlineSince = Math.max(createdAt, timeOf(agent.statusChangedOn) ?? createdAt);
    const offlineFor = input.now - offlineSince;
    const podGone = input.podNames !== undefined && !input.podNames.has(agent.name);
    if (offlineFor < grace) {
      keep(podGone || age >= input.normalOfflineAgentDeletionMinAgeMs ? "in-grace" : "too-young");
      continue;
    }
    if (podGone) {
      candidates.push({
        id: agent.id,
        name: agent.name,
        reason: "pod-gone",
        message: `agent '${agent.name}' is offline and its pod no longer exists, so it can never come back`,
        createdAt,
      });
    } else if (age >= input.normalOfflineAgentDeletionMinAgeMs) {
      candidates.push({
        id: agent.id,
        name: agent.name,
        reason: "offline-too-long",
        message: `agent '${agent.name}' is offline for ${formatAge(offlineFor)} and ${formatAge(age)} old`,
        createdAt,
      });
    } else {
      keep(input.podNames === undefined ? "pods-unknown" : "too-young");
    }
  }
  candidates.sort((a, b) => a.createdAt - b.createdAt || a.id - b.id);
  const chosen = candidates.slice(0, limit);
  for (const c of candidates.slice(limit)) {
    kept.push({
      id: c.id,
      name: c.name,
      kind: c.reason === "unwanted-placeholder" ? "placeholder" : "resource-agent",
      reason: "over-limit",
    });
  }
  return { delete: chosen.map(({ createdAt: _, ...item }) => item), kept };
}

// ---------------------------------------------------------------------------------------------------------------
// Settings from the resource

/** The CRD's defaults of the three fields (kept equal to `DEFAULTS` in src/api/v1/schema.ts; a test checks). */
export const PLACEHOLDER_SETTING_DEFAULTS = {
  dummyAgentGarbageCollectionInterval: "30m",
  dummyAgentDeletionMinAge: "2h",
  normalOfflineAgentDeletionMinAge: "5h",
} as const;

export interface PlaceholderSettings {
  /** `dummyAgentGarbageCollectionInterval`. */
  readonly collectIntervalMs: number;
  readonly dummyAgentDeletionMinAgeMs: number;
  readonly normalOfflineAgentDeletionMinAgeMs: number;
}

/**
 * The resource's Go durations in milliseconds (absent fields take the CRD defaults). Throws a `DurationError` for a
 * malformed value; the API validation refuses those before a reconcile gets here.
 */
export function placeholderSettings(spec: {
  readonly dummyAgentGarbageCollectionInterval?: string | undefined;
  readonly dummyAgentDeletionMinAge?: string | undefined;
  readonly normalOfflineAgentDeletionMinAge?: string | undefined;
}): PlaceholderSettings {
  const d = PLACEHOLDER_SETTING_DEFAULTS;
  return {
    collectIntervalMs: parseDuration(spec.dummyAgentGarbageCollectionInterval ?? d.dummyAgentGarbageCollectionInterval),
    dummyAgentDeletionMinAgeMs: parseDuration(spec.dummyAgentDeletionMinAge ?? d.dummyAgentDeletionMinAge),
    normalOfflineAgentDeletionMinAgeMs: parseDuration(
      spec.normalOfflineAgentDeletionMinAge ?? d.normalOfflineAgentDeletionMinAge,
    ),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Scheduling: what is due now

/** Default: ensure the wanted placeholders again every 10 minutes (someone may have deleted one by hand). */
export const DEFAULT_ENSURE_INTERVAL_MS = 10 * 60_000;
/** Default: after a failed ensure (server error, network, rate limit), try again after 1 minute. */
export const DEFAULT_ENSURE_RETRY_MS = 60_000;
/** Default floor of the collection interval: `dummyAgentGarbageCollectionInterval: 0s` must not mean every reconcile. */
export const DEFAULT_MIN_COLLECT_INTERVAL_MS = 10_000;

export type EnsureStatus = "ok" | "forbidden" | "failed";

export interface LastEnsure {
  /** When it ran (epoch ms). */
  readonly at: number;
  /** {@link placeholderSetKey} of what it ensured. */
  readonly wantedKey: string;
  readonly status: EnsureStatus;
  /** The service asked to wait this long (rate limit). */
  readonly retryAfterMs?: number;
}

export interface ScheduleInput {
  readonly now: number;
  /** {@link placeholderSetKey} of the placeholders wanted now. */
  readonly wantedKey: string;
  readonly lastEnsure?: LastEnsure | undefined;
  /** When the last collection ran (epoch ms). */
  readonly lastCollectAt?: number | undefined;
  /** `dummyAgentGarbageCollectionInterval` in ms. */
  readonly collectIntervalMs: number;
  readonly ensureIntervalMs?: number;
  readonly ensureRetryMs?: number;
  readonly minCollectIntervalMs?: number;
}

export type EnsureDue = "first" | "changed" | "periodic" | "retry";

export interface Schedule {
  /** Why an ensure is due now, or undefined when it is not. */
  readonly ensure: EnsureDue | undefined;
  readonly collect: boolean;
  /**
   * When the next of the two falls due (epoch ms); not after `now` when something is due now. After running what
   * was due, call again with the new last-run times to learn when to requeue.
   */
  readonly nextDueAt: number;
}

/**
 * What is due now. Ensure: never ran; the wanted set changed (a resource was edited: new names); the last run
 * failed and `ensureRetryMs` (or the service's Retry-After, when longer) has passed; or `ensureIntervalMs` has
 * passed since the last run (also after `forbidden`: a PAT does not change by the minute, and the next change of the
 * wanted set tries at once anyway). Collect: never ran, or the interval (at least `minCollectIntervalMs`) passed.
 * A clock that went backwards (last run in the future) counts as due.
 */
export function placeholderSchedule(input: ScheduleInput): Schedule {
  const ensureInterval = input.ensureIntervalMs ?? DEFAULT_ENSURE_INTERVAL_MS;
  const collectInterval = Math.max(
    input.collectIntervalMs,
    input.minCollectIntervalMs ?? DEFAULT_MIN_COLLECT_INTERVAL_MS,
  );
  const last = input.lastEnsure;
  let ensure: EnsureDue | undefined;
  let ensureAt: number;
  if (!last) {
    ensure = "first";
    ensureAt = input.now;
  } else if (last.wantedKey !== input.wantedKey) {
    ensure = "changed";
    ensureAt = input.now;
  } else {
    const wait =
      last.status === "failed"
        ? Math.max(input.ensureRetryMs ?? DEFAULT_ENSURE_RETRY_MS, last.retryAfterMs ?? 0)
        : Math.max(ensureInterval, last.retryAfterMs ?? 0);
    ensureAt = last.at > input.now ? input.now : last.at + wait;
    if (ensureAt <= input.now) ensure = last.status === "failed" ? "retry" : "periodic";
  }
  const lastCollect = input.lastCollectAt;
  const collectAt = lastCollect === undefined || lastCollect > input.now ? input.now : lastCollect + collectInterval;
  const collect = collectAt <= input.now;
  return { ensure, collect, nextDueAt: Math.min(ensureAt, collectAt) };
}

// ---------------------------------------------------------------------------------------------------------------
// When a resource is deleted

export interface DeletionCleanupInput {
  readonly agents: readonly CollectableAgent[];
  /** Placeholder names the deleted resource wanted. */
  readonly wantedByThis: readonly string[];
  /** Placeholder names the other resources on the pool want. */
  readonly wantedByOthers: readonly string[];
  /** The pod name prefix of the deleted resource (its agents are named after its pods). */
  readonly podNamePrefix: string;
  /** No other resource serves the pool: every placeholder there only waited for this one's pods. */
  readonly lastOnPool?: boolean;
}

/**
 * What to unregister when a resource is deleted (its finalizer), whatever the ages:
 * 1. a placeholder it wanted that no other resource on the pool wants;
 * 2. an offline agent named after one of its pods (its pod is gone or going with it);
 * 3. when it was the last resource on the pool, every placeholder there (the pipelines' own, registered with the
 *    registrator, too): without a resource, a job they keep queued would wait for a pod that never comes, where
 *    Azure DevOps should fail it at once;
 * 4. never an agent that is online or holds a job: its pod stops with the resource and the agent unregisters itself
 *    on the way out (a busy one after its job).
 */
export function agentsToRemoveOnDelete(input: DeletionCleanupInput): GarbageDecision {
  const others = new Set(input.wantedByOthers.map((n) => n.toLowerCase()));
  const mine = new Set(input.wantedByThis.map((n) => n.toLowerCase()).filter((n) => !others.has(n)));
  const remove: GarbageItem[] = [];
  const kept: KeptAgent[] = [];
  for (const a of input.agents) {
    const placeholder = mine.has(a.name.toLowerCase()) || (input.lastOnPool === true && isPlaceholderAgentName(a.name));
    const ours = isResourceAgent(a.name, [input.podNamePrefix]);
    if (!placeholder && !ours) continue;
    const kind = placeholder ? "placeholder" : "resource-agent";
    if (a.assignedRequest) {
      kept.push({ id: a.id, name: a.name, kind, reason: "busy" });
      continue;
    }
    if (a.status === "online") {
      kept.push({ id: a.id, name: a.name, kind, reason: "online" });
      continue;
    }
    const what = placeholder ? "placeholder agent" : "agent";
    remove.push({
      id: a.id,
      name: a.name,
      reason: "resource-deleted",
      message: `${what} ${a.name}: its AutoScaledAgent is being deleted`,
    });
  }
  return { delete: remove, kept };
}
