/**
 * Observed state the scaling core decides from, and the decisions it returns.
 *
 * These are deliberately small, plain-data shapes owned by the core: the controller maps the AutoScaledAgent,
 * the Kubernetes objects and the Azure DevOps answers onto them. Times are epoch milliseconds, except in
 * `JobRequest`, which mirrors the Azure DevOps JSON (ISO strings; absent when null).
 */

import type { CapabilitySet, Demand, DemandParseError } from "../azure-devops/demands.ts";

// ---------------------------------------------------------------------------------------------------------------
// Inputs

/** One entry of `podsWithCapabilities`, in resource order (its index identifies it in plans). */
export interface TemplateSpec {
  /** The declared capabilities (`capabilities` of the entry): best fit counts these, and pods advertise them. */
  readonly capabilities: Readonly<Record<string, string>>;
  /**
   * Every capability the entry's agent will report, as far as known before its pod runs (`reportedCapabilities` in
   * capabilities.ts: the declared ones, the agent's own `Agent.OS`, `Agent.OSArchitecture`, ..., literal environment
   * variables); null values are reported but not known in advance. Jobs are matched against these. Default: the
   * declared capabilities.
   */
  readonly reportedCapabilities?: CapabilitySet;
  /** Messages about declared capabilities the agent replaces with its own value (reported as template problems). */
  readonly overriddenCapabilities?: readonly string[];
  readonly minCount: number;
  readonly maxCount: number;
  /**
   * Standby agents in force, kept free beside the busy pods (src/controller/standby.ts): when set, the template's
   * minCount is its busy pods, as this plan classifies them, plus these (at most maxCount).
   */
  readonly standby?: number;
}

/** An agent reference as it appears in a job request (`reservedAgent`, `matchedAgents`). */
export interface AgentReference {
  readonly id: number;
  readonly name: string;
}

/** The fields of an Azure DevOps TaskAgentJobRequest the core reads. Extra fields are ignored. */
export interface JobRequest {
  readonly requestId: number;
  readonly queueTime?: string;
  readonly assignTime?: string;
  readonly receiveTime?: string;
  readonly finishTime?: string;
  readonly result?: string;
  readonly demands?: readonly string[];
  readonly reservedAgent?: AgentReference;
  readonly matchedAgents?: readonly AgentReference[];
}

export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";

/** State of one container as the kubelet reports it ("unknown": no status yet). */
export type ContainerRunState = "waiting" | "running" | "terminated" | "unknown";

export interface ObservedContainer {
  readonly name: string;
  readonly state: ContainerRunState;
  /** An init container with `restartPolicy: Always`: the kubelet stops it by itself once the agent exits. */
  readonly nativeSidecar: boolean;
  /** The controller already asked this container to stop (e.g. image swap applied); do not ask again. */
  readonly stopRequested?: boolean;
}

/** One agent pod of the resource, as the informer cache shows it. */
export interface ObservedPod {
  readonly name: string;
  /** Index of the template the pod was made from, or null when no current template matches (resource edited). */
  readonly templateIndex: number | null;
  /** The raw ExtraAgentContainers value the pod was made for; null for a plain pod. */
  readonly extraAgentContainers: string | null;
  readonly createdAtMs: number;
  /** `status.startTime`, when the kubelet has started the pod. */
  readonly startedAtMs?: number | null;
  readonly phase: PodPhase;
  /** Bound to a node (`spec.nodeName` set or the PodScheduled condition true). */
  readonly scheduled: boolean;
  /** `metadata.deletionTimestamp` is set. */
  readonly deleting: boolean;
  /** The agent container (the first container of the template). */
  readonly agentContainer: ContainerRunState;
  /** The agent container's exit code once it has terminated. */
  readonly agentExitCode?: number | null;
  /** Every other container, including native sidecars. */
  readonly otherContainers: readonly ObservedContainer[];
  /** Job request ids the pod was created for (from its annotation); empty for warm (minCount) pods. */
  readonly createdForRequestIds: readonly number[];
  /** When the core first asked to mark this pod as an idle scale-down candidate (from its annotation). */
  readonly idleMarkedAtMs?: number | null;
}

/** An agent registration whose name is one of the resource's pod names (agent name = pod name). */
export interface ObservedAgent {
  readonly id: number;
  readonly name: string;
  readonly status: "online" | "offline";
  /** The service says it holds a job (`assignedRequest` present). Job requests' `reservedAgent` also counts. */
  readonly busy: boolean;
  /** When the agent last became idle as far as the service tells (e.g. `statusChangedOn` when it came online). */
  readonly idleSinceMs?: number | null;
  /** `lastCompletedRequest.finishTime`: set once the agent has finished a job. */
  readonly lastCompletedRequestFinishMs?: number | null;
}

export interface PlanInput {
  readonly templates: readonly TemplateSpec[];
  /** Every job request of the pool the poller returned (pending, running and recently finished). */
  readonly jobRequests: readonly JobRequest[];
  /** Every pod owned by the resource. */
  readonly pods: readonly ObservedPod[];
  /** Agents of the pool whose names are pod names of this resource (others may be included; they are ignored). */
  readonly agents: readonly ObservedAgent[];
  readonly now: number;
  readonly agentMinIdlePeriodMs: number;
  readonly maxTerminatedPodsToKeep: number;
  /**
   * Agents run with `--once` (the default and the design): an agent that has completed a job will not take
   * another, so its pod is finishing, not idle capacity.
   */
  readonly agentsRunOnce?: boolean;
  /**
   * Judges an ExtraAgentContainers value (parsing, policy). Returns a message when it is refused; the job then gets
   * no pod and is reported. Must be pure. Without it every value is accepted.
   */
  readonly checkExtraAgentContainers?: (value: string) => string | undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Derived

/** An unfinished, unassigned job request with its demands read. */
export interface PendingJob {
  readonly requestId: number;
  /** Parsed `queueTime`; null when absent or unreadable (such jobs sort after the others). */
  readonly queueTimeMs: number | null;
  readonly rawDemands: readonly string[];
  readonly demands: readonly Demand[];
  readonly demandErrors: readonly DemandParseError[];
}

export type UnmatchedReason =
  | "malformed-demand"
  | "unsupported-operator"
  /** A demand on `Agent.Name` other than "exists": it asks for one particular agent, which no new pod can be. */
  | "names-an-agent"
  | "invalid-extra-agent-containers"
  | "extra-agent-containers-refused"
  | "no-matching-template";

export interface MatchedJob {
  readonly job: PendingJob;
  readonly templateIndex: number;
  /** Raw ExtraAgentContainers value; null when the job asks for none. */
  readonly extraAgentContainers: string | null;
}

export interface UnmatchedJob {
  readonly requestId: number;
  readonly demands: readonly string[];
  readonly reason: UnmatchedReason;
  readonly message: string;
}

/** How the core sees a pod. */
export type PodState =
  /** Phase Succeeded or Failed. */
  | "finished"
  /** Deletion under way. */
  | "terminating"
  /** Phase Unknown (node lost): neither capacity nor removable here. */
  | "lost"
  /** The agent container terminated (or, with run-once agents, its agent completed a job). */
  | "finishing"
  /** The agent holds a job. */
  | "busy"
  /** Not bound to a node yet. */
  | "unscheduled"
  /** Scheduled; the agent is not registered or not online yet. */
  | "starting"
  /** Agent online and holding no job. */
  | "idle";

// ---------------------------------------------------------------------------------------------------------------
// Outputs

export type CreateReason = "pending-job" | "min-count";

export interface PodCreate {
  readonly templateIndex: number;
  readonly extraAgentContainers: string | null;
  /** Capabilities the agent must advertise: the template's, plus ExtraAgentContainers when set. */
  readonly agentCapabilities: Readonly<Record<string, string>>;
  /** Job requests this pod is for (annotate the pod with them); empty for a warm pod. */
  readonly forRequestIds: readonly number[];
  readonly reason: CreateReason;
  readonly message: string;
}

export type RemoveReason = "unscheduled" | "idle";

/**
 * Scale-down of a live pod. When `agentId` is set: delete that agent registration first, and delete the pod only
 * when the service accepted (it refuses while a job runs); otherwise delete the pod.
 */
export interface PodRemoval {
  readonly podName: string;
  readonly templateIndex: number | null;
  readonly agentId: number | null;
  readonly reason: RemoveReason;
  readonly message: string;
}

/** Set or clear the pod's idle-candidate mark (an annotation holding `atMs`). */
export interface IdleMarkChange {
  readonly podName: string;
  readonly action: "set" | "clear";
  readonly atMs: number | null;
}

/** Stop these classic sidecar containers: the agent container has terminated. */
export interface SidecarStop {
  readonly podName: string;
  readonly containers: readonly string[];
}

/** A finished pod beyond the retention count. Delete the agent registration too when `agentId` is set. */
export interface FinishedPodDeletion {
  readonly podName: string;
  readonly agentId: number | null;
}

export type BlockedReason = "max-count";

/** A matched job that gets no pod now. */
export interface BlockedJob {
  readonly requestId: number;
  readonly templateIndex: number;
  readonly extraAgentContainers: string | null;
  readonly reason: BlockedReason;
  readonly message: string;
}

export interface PodCounts {
  readonly starting: number;
  /** Of `starting`, those not yet scheduled. */
  readonly unscheduled: number;
  readonly idle: number;
  readonly busy: number;
  readonly finishing: number;
  readonly terminating: number;
  readonly lost: number;
  readonly finished: number;
}

export interface TemplateStatus extends PodCounts {
  readonly templateIndex: number;
  readonly pendingJobs: number;
  /** min(maxCount, max(minCount, pending jobs + busy agents)). */
  readonly desired: number;
}

/** Something wrong with an entry that does not stop the resource (e.g. a declared capability the agent replaces). */
export interface TemplateProblem {
  readonly templateIndex: number;
  readonly reason: "CapabilityOverridden";
  /** Starts with `podsWithCapabilities[i].capabilities: `. */
  readonly message: string;
}

export interface ScalePlan {
  readonly creates: readonly PodCreate[];
  readonly removals: readonly PodRemoval[];
  readonly idleMarks: readonly IdleMarkChange[];
  readonly stopSidecars: readonly SidecarStop[];
  readonly deleteFinished: readonly FinishedPodDeletion[];
  readonly unmatchedJobs: readonly UnmatchedJob[];
  readonly blockedJobs: readonly BlockedJob[];
  /** Problems of entries, in resource order. */
  readonly templateProblems: readonly TemplateProblem[];
  readonly templates: readonly TemplateStatus[];
  /** Pods whose template no longer exists in the resource. */
  readonly orphaned: PodCounts;
  /** The state the core gave each pod, by name (for logs, events and tests). */
  readonly podStates: ReadonlyMap<string, PodState>;
}
