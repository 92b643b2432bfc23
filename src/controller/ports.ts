/**
 * What the reconciler needs from the outside world, as small interfaces: the Azure DevOps side (a shared poll of
 * the pool, agent deletion) and the pod factory. The operator wires the real implementations; nothing here does I/O.
 */
import type { DefaultedAutoScaledAgent } from "../api/v1/index.ts";
import type { Credential } from "../azure-devops/auth.ts";
import type { KubeObject } from "../kube/types.ts";
import type { PlaceholderManager } from "../placeholders/manager.ts";
import type { JobRequest, PodCreate } from "../scaling/types.ts";

/** An agent of the pool, as listed by Azure DevOps (the fields the controller reads). */
export interface PoolAgent {
  id: number;
  name: string;
  status?: string;
  enabled?: boolean;
  createdOn?: string;
  statusChangedOn?: string;
  assignedRequest?: { requestId: number } | null;
  lastCompletedRequest?: { requestId?: number; finishTime?: string } | null;
}

export interface PoolSnapshot {
  poolId: number;
  jobRequests: readonly JobRequest[];
  agents: readonly PoolAgent[];
  /** Epoch ms of the poll. */
  fetchedAt: number;
}

/** A failure talking to Azure DevOps, classified (auth, forbidden, not-found, rate-limited, server, network...). */
export interface AzureDevOpsProblem {
  kind: string;
  message: string;
}

export interface PoolTarget {
  organizationUrl: string;
  poolName: string;
  /** A PAT or an Entra ID token provider (never logged). */
  credential: Credential;
}

export interface PoolSubscription {
  latest(): PoolSnapshot | undefined;
  /** The last failure, cleared by the next successful poll. */
  lastError(): AzureDevOpsProblem | undefined;
  pollNow(): void;
  release(): void;
}

export type AgentDeletion = "deleted" | "refused" | "gone";

export interface AzureDevOpsPort {
  /** Registers and garbage-collects placeholder agents with the target's credential. */
  placeholders(target: PoolTarget): PlaceholderManager;
  /**
   * Shares one poll per (organization, pool, credential); `onChange` is called after a poll that brought news (the
   * job requests changed or the agents were read again) and after each failure. `hints.hasLivePods` (optional)
   * tells whether the subscriber has live agent pods on the pool: their agents are then read every 30 s, else
   * every 5 minutes (the poller judges from what it sees when no subscriber can tell).
   */
  subscribe(
    target: PoolTarget,
    onChange: () => void,
    hints?: { hasLivePods?: () => boolean | undefined },
  ): PoolSubscription;
  /** Deletes an agent registration; "refused" while it holds a job (any 4xx), "gone" when it does not exist. */
  deleteAgent(target: PoolTarget, poolId: number, agentId: number): Promise<AgentDeletion>;
}

export interface PodBuildInput {
  resource: DefaultedAutoScaledAgent & { metadata: { name: string; namespace: string; uid: string } };
  create: PodCreate;
  podName: string;
  /** Cache volume name -> the PVC claimed for this pod. */
  cacheVolumes?: Record<string, string>;
}

export interface PodFactory {
  /** Builds the pod, or explains why it cannot be built (e.g. a refused ExtraAgentContainers value). */
  build(
    input: PodBuildInput,
  ): { ok: true; pod: KubeObject; warnings: string[] } | { ok: false; reason: string; message: string };
  /** The strategic-merge patch that makes the given classic sidecars exit. */
  stopSidecarsPatch(containers: readonly string[]): unknown;
}
