/**
 * The Azure DevOps distributedtask shapes the client reads and writes (API 7.1). Null fields are omitted by the
 * service, so everything not always present is optional. Only the fields the operator uses are typed; agents keep
 * whatever else the service sent, job requests only these fields (`compactJobRequest` in client.ts).
 */

export interface AgentReference {
  readonly id: number;
  readonly name: string;
  readonly version?: string;
  readonly status?: string;
  readonly enabled?: boolean;
  readonly provisioningState?: string;
}

/** TaskAgentJobRequest. Structurally a superset of the scaling core's `JobRequest`. */
export interface TaskAgentJobRequest {
  readonly requestId: number;
  readonly queueTime?: string;
  readonly assignTime?: string;
  readonly receiveTime?: string;
  readonly finishTime?: string;
  readonly lockedUntil?: string;
  readonly result?: string;
  readonly demands?: readonly string[];
  readonly reservedAgent?: AgentReference;
  /**
   * The agents that match the request, each cut to the `AgentReference` fields. With `listJobRequests`'
   * `matchedAgentsNamed`, only those whose name starts with it (plus any without a name), except in an answer the
   * compactor left as sent (compact.ts rule 3), which lists them all: a reader filters by name itself.
   */
  readonly matchedAgents?: readonly AgentReference[];
  readonly matchesAllAgentsInPool?: boolean;
  readonly poolId?: number;
  readonly planType?: string;
  readonly planId?: string;
  readonly jobId?: string;
  readonly jobName?: string;
  readonly definition?: { readonly id?: number; readonly name?: string };
  readonly owner?: { readonly id?: number; readonly name?: string };
  readonly statusMessage?: string;
  readonly priority?: number;
}

export interface TaskAgentPublicKey {
  readonly exponent: string;
  readonly modulus: string;
}

export interface TaskAgentAuthorization {
  readonly authorizationUrl?: string;
  readonly clientId?: string;
  readonly publicKey?: TaskAgentPublicKey;
}

/** TaskAgent as the service returns it. */
export interface TaskAgent extends AgentReference {
  readonly osDescription?: string;
  readonly maxParallelism?: number;
  readonly createdOn?: string;
  readonly statusChangedOn?: string;
  readonly systemCapabilities?: Readonly<Record<string, string>>;
  readonly userCapabilities?: Readonly<Record<string, string>>;
  /** Only with `includeAssignedRequest`: the job the agent holds. */
  readonly assignedRequest?: TaskAgentJobRequest;
  /** Only with `includeLastCompletedRequest`. */
  readonly lastCompletedRequest?: TaskAgentJobRequest;
  readonly authorization?: TaskAgentAuthorization;
  readonly accessPoint?: string;
}

/** What `registerAgent` / `updateAgent` send: a (partial) TaskAgent. */
export interface TaskAgentInput {
  readonly name?: string;
  readonly version?: string;
  readonly osDescription?: string;
  readonly enabled?: boolean;
  readonly provisioningState?: string;
  readonly maxParallelism?: number;
  readonly systemCapabilities?: Readonly<Record<string, string>>;
  readonly userCapabilities?: Readonly<Record<string, string>>;
  readonly authorization?: TaskAgentAuthorization;
}

/** TaskAgentPool. */
export interface TaskAgentPool {
  readonly id: number;
  readonly name: string;
  readonly size?: number;
  readonly isHosted?: boolean;
  readonly poolType?: string;
  readonly scope?: string;
}

/** The state of a job request as a client reads it from the fields that are set. */
export type JobRequestState = "queued" | "assigned" | "running" | "finished";

export function jobRequestState(job: TaskAgentJobRequest): JobRequestState {
  if (job.result !== undefined || job.finishTime !== undefined) return "finished";
  if (job.receiveTime !== undefined) return "running";
  if (job.assignTime !== undefined || job.reservedAgent !== undefined) return "assigned";
  return "queued";
}
