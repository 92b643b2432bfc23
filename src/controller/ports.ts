/**
 * Everything the reconciler needs from the outside world, as small interfaces ("ports"). The operator wires the real
 * implementations (informer caches, the Kubernetes writer, the shared Azure DevOps pollers, the credential resolver,
 * the pod builder, the event recorder); the reconciler's table test wires in-memory fakes. Nothing here does I/O, and
 * the reconciler imports nothing else from outside the pure core.
 */
import type { AutoScaledAgent, DefaultedAutoScaledAgent, ResourceRef } from "../api/v1/index.ts";
import type { Credential } from "../azure-devops/auth.ts";
import type { CollectableAgent, GarbageDecision, GarbageInput, WantedPlaceholder } from "../placeholders/plan.ts";
import type { JobRequest, PodCreate } from "../scaling/types.ts";

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes objects as the controller reads them

/** The metadata the controller reads of the objects it owns. */
export interface ObjectMetadata {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[];
}

export interface PodObject {
  metadata: ObjectMetadata;
  spec: {
    nodeName?: string;
    containers: { name: string; image?: string }[];
    initContainers?: { name: string; image?: string; restartPolicy?: string }[];
    volumes?: { name: string; persistentVolumeClaim?: { claimName: string } }[];
  };
  status?: {
    phase?: string;
    startTime?: string;
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
  };
}

export interface ContainerStatus {
  name: string;
  state?: { waiting?: { reason?: string; message?: string }; running?: unknown; terminated?: unknown };
}

export interface PvcObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMetadata;
  spec?: { storageClassName?: string; resources?: { requests?: { storage?: string } } };
  status?: { phase?: string };
}

/** A valid resource with the metadata the controller relies on. */
export type Resource = DefaultedAutoScaledAgent & {
  metadata: { name: string; namespace: string; uid: string; generation?: number };
};

// ---------------------------------------------------------------------------------------------------------------
// Reading: the informer caches

export interface Caches {
  /** The cached resource, by key `namespace/name`. */
  resource(key: string): AutoScaledAgent | undefined;
  /** Every cached AutoScaledAgent (jobs and placeholders are shared between resources on a pool). */
  allResources(): readonly AutoScaledAgent[];
  /** The cached pods owned by the resource with this uid. */
  podsOf(uid: string): readonly PodObject[];
  /** The cached PersistentVolumeClaims owned by the resource with this uid. */
  pvcsOf(uid: string): readonly PvcObject[];
  /** Names of every live agent pod in the cache, or undefined before the pod cache has synced. */
  liveAgentPodNames(): ReadonlySet<string> | undefined;
  /** When the pod cache's last full list was asked for (the oldest of its informers), or undefined. */
  podsListedAt(): number | undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing to Kubernetes

/** The result of a write whose object may be gone already (404 is "gone", not an error). */
export type WriteResult = "done" | "gone";

/**
 * A pod POST: created; refused (the API server answered no: the pod does not exist); or unknown (timeout, lost
 * connection, server error: it may exist).
 */
export type PodCreateResult =
  | { outcome: "created" /** The created pod's version. */; resourceVersion?: string }
  | { outcome: "refused" | "unknown"; message: string };

export interface KubeWriter {
  /** Never throws: the outcome says whether the pod may exist. */
  createPod(namespace: string, pod: unknown): Promise<PodCreateResult>;
  /**
   * With `resourceVersion`, the delete is conditional (a DeleteOptions precondition): a pod changed since answers
   * `changed` and stays.
   */
  deletePod(namespace: string, name: string, resourceVersion?: string): Promise<WriteResult | "changed">;
  /** `strategic` for container lists (sidecar images), `merge` for metadata. */
  patchPod(
    namespace: string,
    name: string,
    patch: { type: "merge" | "strategic"; body: unknown },
  ): Promise<WriteResult>;
  createPvc(namespace: string, pvc: PvcObject): Promise<void>;
  /**
   * Merge-patches a PVC's annotations (a claim); with `resourceVersion` the write is conditional and a concurrent
   * change makes it fail with "conflict" instead of overwriting it.
   */
  patchPvcAnnotations(
    namespace: string,
    name: string,
    annotations: Record<string, string | null>,
    resourceVersion?: string,
  ): Promise<WriteResult | "conflict">;
  /**
   * Drops a PVC's claim only if it still names `holder` (a compare-and-swap on the claim annotation itself, so a
   * claim made for another pod since the cache was read is never wiped), and sets `annotations`.
   */
  releasePvcClaim(
    namespace: string,
    name: string,
    holder: string,
    annotations: Record<string, string>,
  ): Promise<WriteResult | "conflict">;
  /**
   * The resource as the API server has it now (the one read outside the caches): its uid and whether it is being
   * deleted; undefined when it is gone.
   */
  liveResource(namespace: string, name: string): Promise<{ uid: string; deleting: boolean } | undefined>;
  /** Sets the resource's finalizers, conditional on its resourceVersion. */
  setFinalizers(
    namespace: string,
    name: string,
    finalizers: readonly string[],
    resourceVersion: string | undefined,
  ): Promise<WriteResult | "conflict">;
  /** Merge-patches the resource's status subresource. */
  patchStatus(namespace: string, name: string, status: unknown): Promise<WriteResult | "conflict">;
}

/** Kubernetes Events about a resource (the recorder aggregates repeats). */
export interface EventsPort {
  normal(regarding: ResourceRef, reason: string, note: string, action?: string): void;
  warning(regarding: ResourceRef, reason: string, note: string, action?: string): void;
}

// ---------------------------------------------------------------------------------------------------------------
// Credentials

export type CredentialResult =
  | { ok: true; credential: Credential }
  | { ok: false; reason: string; message: string; retryable?: boolean };

export interface CredentialsPort {
  /**
   * The Azure DevOps credential a resource names (PAT Secret or Entra ID), read now or from a cache: without a
   * promise when it needs no read (the reconcile then does not yield to other work).
   */
  resolve(key: string, resource: Resource): CredentialResult | Promise<CredentialResult>;
  /** Drops what is cached for the resource (deleted or invalid). */
  forget(key: string): void;
  /**
   * The resource's credential was refused (Azure DevOps or Entra ID answered 401 or 403): the Secrets it names are
   * read again at its next resolve, so that a rotated secret is used at once.
   */
  refused(key: string): void;
}

// ---------------------------------------------------------------------------------------------------------------
// Azure DevOps

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

/** What the placeholder work needs (the PlaceholderManager of src/placeholders fits). */
export interface PlaceholderPort {
  ensure(
    poolId: number,
    wanted: readonly WantedPlaceholder[],
    options: { existingAgentNames?: Iterable<string> },
  ): Promise<{
    status: "ok" | "forbidden" | "failed";
    registered: readonly string[];
    problem?: { reason: string; message: string };
    retryAfterMs?: number;
  }>;
  collectGarbage(
    poolId: number,
    input: Omit<GarbageInput, "agents">,
  ): Promise<{ deleted: readonly string[]; problem?: { reason: string; message: string } }>;
  /** Unregisters what `choose` picks from a fresh agent list. */
  removeAgents(
    poolId: number,
    choose: (agents: readonly CollectableAgent[]) => GarbageDecision,
  ): Promise<{ deleted: readonly string[]; problem?: { reason: string; message: string } }>;
}

export interface AzureDevOpsPort {
  /** Registers and garbage-collects placeholder agents with the target's credential. */
  placeholders(target: PoolTarget): PlaceholderPort;
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
  /** A key naming the organization of a URL (URLs with the same key are one organization, as the pollers see it). */
  organizationKey(url: string): string;
  /** A stable, non-secret key of a credential and its material (pollers and clients are shared per key). */
  credentialKey(credential: Credential): string;
}

// ---------------------------------------------------------------------------------------------------------------
// Pods

export interface PodBuildInput {
  resource: Resource;
  create: PodCreate;
  podName: string;
  /** Cache volume name -> the PVC claimed for this pod. */
  cacheVolumes?: Record<string, string>;
}

export interface PodFactory {
  /** Builds the pod, or explains why it cannot be built (e.g. a refused ExtraAgentContainers value). */
  build(
    input: PodBuildInput,
  ): { ok: true; pod: unknown; warnings: string[] } | { ok: false; reason: string; message: string };
  /** The strategic-merge patch that makes the given classic sidecars exit. */
  stopSidecarsPatch(containers: readonly string[]): { spec: unknown };
  /** Judges an ExtraAgentContainers value under the resource's policy: a message when refused (pure). */
  extraAgentContainersChecker(spec: Resource["spec"]): (value: string) => string | undefined;
}
