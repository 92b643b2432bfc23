/**
 * Deleting an AutoScaledAgent: its finalizer keeps it until what it registered in Azure DevOps is gone, so a
 * leftover placeholder never keeps matching jobs that should fail at once. Kubernetes garbage collection then takes
 * its pods and PVCs (owner references). The finalizer never makes a resource undeletable: the cleanup gives up after
 * a bounded time with a Warning event.
 *
 * Rules (`decideCleanup`, pure):
 * 1. Without the operator's finalizer there is nothing to do.
 * 2. Past the timeout since the deletion began: give up (a warning says what may be left), drop the finalizer.
 * 3. No credential (its Secret may have gone with the namespace): nothing can be unregistered; give up at once.
 * 4. Azure DevOps not answering: wait for it, up to the timeout.
 * 5. Live pods whose agent holds no job are deleted first (their agents unregister as they stop); wait while any is
 *    still there. Pods whose agent holds a job are left to finish it (they go with the resource).
 * 6. Then unregister the placeholders no other resource on the pool wants (all of them when it was the last one)
 *    and the offline agents of this resource
 *    (`agentsToRemoveOnDelete`), outside the reconcile; when that succeeded, drop the finalizer. A failure is retried
 *    until the timeout.
 */
import { type AutoScaledAgent, FINALIZER, resourceRef } from "../api/v1/index.ts";
import { agentsToRemoveOnDelete, wantedPlaceholders } from "../placeholders/plan.ts";
import { podNamePrefix } from "../scaling/naming.ts";
import { agentHoldsJob, reservations } from "../scaling/plan.ts";
import type { Lanes } from "./lanes.ts";
import { observeAgent, resourcesOnPool } from "./observe.ts";
import type { AzureDevOpsPort, Caches, EventsPort, KubeWriter, PoolSnapshot, PoolTarget, Resource } from "./ports.ts";

export interface CleanupPod {
  readonly name: string;
  /** Not finished; a pod being deleted is still there until it is gone. */
  readonly live: boolean;
  readonly deleting: boolean;
  /** Its agent holds a job (Azure DevOps says so). */
  readonly busy: boolean;
}

export interface CleanupInput {
  readonly hasFinalizer: boolean;
  readonly deletionStartedAt: number;
  readonly now: number;
  readonly timeoutMs: number;
  readonly credential: "ok" | "missing";
  /** A fresh pool snapshot is in hand. */
  readonly azureDevOpsReachable: boolean;
  readonly pods: readonly CleanupPod[];
  /** The outcome of the unregistration, once it has run for this deletion. */
  readonly unregistered?: "ok" | "failed";
}

export type CleanupStep =
  | { readonly step: "nothing" }
  | { readonly step: "give-up"; readonly message: string }
  | { readonly step: "wait"; readonly why: string }
  | { readonly step: "delete-pods"; readonly pods: readonly string[] }
  | { readonly step: "unregister" }
  | { readonly step: "done" };

export function decideCleanup(input: CleanupInput): CleanupStep {
  // Rule 1.
  if (!input.hasFinalizer) return { step: "nothing" };
  // Rule 2.
  const waited = input.now - input.deletionStartedAt;
  if (waited >= input.timeoutMs) {
    return {
      step: "give-up",
      message: `cleanup did not finish within ${Math.round(input.timeoutMs / 1000)}s; placeholder agents or offline agents of this resource may be left in the pool (the operator's garbage collection of other resources, or an administrator, removes them)`,
    };
  }
  // Rule 3.
  if (input.credential === "missing") {
    return {
      step: "give-up",
      message:
        "the resource's credential is gone, so its placeholder agents and offline agents cannot be unregistered; remove them from the pool by hand if they stay",
    };
  }
  // Rule 4.
  if (!input.azureDevOpsReachable) return { step: "wait", why: "Azure DevOps does not answer" };
  // Rule 5.
  const idle = input.pods.filter((p) => p.live && !p.busy && !p.deleting).map((p) => p.name);
  if (idle.length > 0) return { step: "delete-pods", pods: idle };
  if (input.pods.some((p) => p.live && !p.busy)) return { step: "wait", why: "pods are stopping" };
  // Rule 6.
  if (input.unregistered === "ok") return { step: "done" };
  return { step: "unregister" };
}

// ---------------------------------------------------------------------------------------------------------------
// The I/O around it

export interface DeletionPorts {
  caches: Caches;
  kube: KubeWriter;
  azureDevOps: AzureDevOpsPort;
  events: EventsPort;
  lanes: Lanes;
  enqueue(key: string): void;
  now(): number;
  /** How long a deletion may wait for the cleanup. */
  cleanupTimeoutMs: number;
}

export interface DeletionState {
  /** The outcome of the unregistration of this deletion, once it ran. */
  unregistered?: "ok" | "failed";
}

/** Whether the resource carries the operator's finalizer. */
export function hasFinalizer(raw: AutoScaledAgent): boolean {
  return (raw.metadata?.finalizers ?? []).includes(FINALIZER);
}

/** Adds or removes the operator's finalizer; false on a conflict (the next reconcile tries again). */
export async function setFinalizer(kube: KubeWriter, raw: AutoScaledAgent, present: boolean): Promise<boolean> {
  const others = (raw.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER);
  const r = await kube.setFinalizers(
    raw.metadata?.namespace ?? "",
    raw.metadata?.name ?? "",
    present ? [...others, FINALIZER] : others,
    raw.metadata?.resourceVersion,
  );
  return r !== "conflict";
}

/**
 * One step of the cleanup of a deleted resource. `resource` is undefined when its spec no longer validates;
 * `pool` is the target and fresh snapshot when Azure DevOps answers. Returns when to look again (undefined: done).
 */
export async function cleanUpDeleted(
  key: string,
  raw: AutoScaledAgent,
  context: {
    resource: Resource | undefined;
    credential: "ok" | "missing";
    pool: { target: PoolTarget; snapshot: PoolSnapshot } | undefined;
    state: DeletionState;
  },
  ports: DeletionPorts,
): Promise<{ requeueAfterMs: number } | undefined> {
  const { resource, pool, state } = context;
  const ref = resourceRef(raw);
  const pods = resource ? ports.caches.podsOf(resource.metadata.uid) : [];
  const reserved = reservations(pool?.snapshot.jobRequests ?? []);
  const agents = new Map((pool?.snapshot.agents ?? []).map((a) => [a.name, observeAgent(a)]));
  const step = decideCleanup({
    hasFinalizer: hasFinalizer(raw),
    deletionStartedAt: Date.parse(raw.metadata?.deletionTimestamp ?? "") || ports.now(),
    now: ports.now(),
    timeoutMs: ports.cleanupTimeoutMs,
    credential: resource ? context.credential : "missing",
    azureDevOpsReachable: pool !== undefined,
    pods: pods.map((p) => ({
      name: p.metadata.name,
      live: p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed",
      deleting: Boolean(p.metadata.deletionTimestamp),
      busy: agentHoldsJob(p.metadata.name, agents.get(p.metadata.name), reserved),
    })),
    ...(state.unregistered ? { unregistered: state.unregistered } : {}),
  });
  switch (step.step) {
    case "nothing":
      return undefined;
    case "give-up":
      ports.events.warning(ref, "CleanupAbandoned", step.message, "Delete");
      await setFinalizer(ports.kube, raw, false);
      return undefined;
    case "done":
      ports.events.normal(ref, "CleanedUp", "its placeholder and offline agents are unregistered", "Delete");
      await setFinalizer(ports.kube, raw, false);
      return undefined;
    case "wait":
      return { requeueAfterMs: 2_000 };
    case "delete-pods":
      for (const name of step.pods) await ports.kube.deletePod(raw.metadata?.namespace ?? "", name).catch(() => {});
      return { requeueAfterMs: 1_000 };
    case "unregister": {
      if (!resource || !pool) return { requeueAfterMs: 2_000 };
      const others = resourcesOnPool(ports.caches.allResources(), resource, ports.azureDevOps.organizationKey);
      const choose = (list: Parameters<typeof agentsToRemoveOnDelete>[0]["agents"]) =>
        agentsToRemoveOnDelete({
          agents: list,
          wantedByThis: wantedPlaceholders([{ key, ...resource.spec }]).map((w) => w.name),
          wantedByOthers: wantedPlaceholders(others.filter((o) => o.key !== key)).map((w) => w.name),
          podNamePrefix: podNamePrefix(resource.metadata.name),
          lastOnPool: others.every((o) => o.key === key),
        });
      ports.lanes.submit(ports.azureDevOps.organizationKey(pool.target.organizationUrl), {
        key: `cleanup:${key}`,
        run: async () => {
          const r = await ports.azureDevOps
            .placeholders(pool.target)
            .removeAgents(pool.snapshot.poolId, choose)
            .catch((err: unknown) => ({ deleted: [], problem: { reason: "CleanupFailed", message: String(err) } }));
          if (r.deleted.length > 0) {
            ports.events.normal(ref, "OfflineAgentsDeleted", `deleted agents: ${r.deleted.join(", ")}`, "Delete");
          }
          if (r.problem) ports.events.warning(ref, r.problem.reason, r.problem.message, "Delete");
          state.unregistered = r.problem ? "failed" : "ok";
          ports.enqueue(key);
        },
      });
      return { requeueAfterMs: 5_000 };
    }
  }
}
