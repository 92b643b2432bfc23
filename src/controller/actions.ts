/**
 * From the scale plan to a list of typed actions (pure). This is where "why was this pod created / deleted / patched"
 * is answered: the executor only carries the list out.
 *
 * Rules:
 * 1. Jobs no template can serve are problems of every reconcile, and an event once per job request (`reported`
 *    remembers which; ids of jobs no longer pending are forgotten).
 * 2. Without a fresh pool snapshot (the last poll failed, or none yet) only Kubernetes-side housekeeping runs:
 *    stopping classic sidecars, deleting finished pods beyond the kept number (their agents are left to garbage
 *    collection), releasing cache-volume claims, reporting stuck pods. Creating, removing and idle marks wait for
 *    Azure DevOps, since they depend on the jobs and agents it reports.
 * 3. Creates come first, in plan order; then scale-down removals (agent first, pod only if Azure DevOps accepted);
 *    then idle marks, sidecar stops, finished pods, claim releases.
 * 4. Stopping sidecars writes the terminator-image patch together with the names already stopped plus the new ones,
 *    so a container is asked to stop once.
 * 5. A pod that waits for a reason it will not get over by itself (image pull failure, config error, crash loop)
 *    is a `PodStuck` problem and a warning: it holds a maxCount slot.
 * 6. The first job blocked by maxCount gets a `MaxCountReached` event.
 * 7. A template whose agents keep exiting with an error before running a job is held back (see
 *    `src/scaling/failures.ts`): its creates wait, with an `AgentsFailing` problem and a warning.
 * 8. An entry's problem (a declared capability its agents replace with their own value) is a problem of every
 *    reconcile, listed first (it is often why jobs go unserved), and a warning each time (the event recorder folds
 *    the repeats into one event's series).
 * 9. A pod removed without an agent to unregister first (never scheduled, as far as the cache knows) is deleted only
 *    if it is still the version the plan saw (a DELETE precondition on its resourceVersion): a cache that lags may
 *    not show yet that the pod was scheduled and its agent took a job. A pod the cache does not hold yet is deleted
 *    only if unchanged since this process created it (the version its POST answered); without one, not now.
 */
import { podAnnotations } from "../api/v1/index.ts";
import type { HeldTemplate } from "../scaling/failures.ts";
import type { ObservedPod, PodCreate, RemoveReason, ScalePlan } from "../scaling/types.ts";
import type { PodObject } from "./ports.ts";

export type Action =
  | { readonly kind: "create-pod"; readonly create: PodCreate }
  | {
      readonly kind: "remove-pod";
      readonly podName: string;
      /** Delete this agent registration first; keep the pod when Azure DevOps refuses. */
      readonly agentId: number | null;
      /** Without an agent: the pod's resourceVersion as observed, the DELETE's precondition (rule 9). */
      readonly resourceVersion?: string;
      readonly reason: RemoveReason;
      readonly message: string;
    }
  | { readonly kind: "mark-idle"; readonly podName: string; readonly sinceMs: number | null }
  | {
      readonly kind: "stop-sidecars";
      readonly podName: string;
      readonly containers: readonly string[];
      /** The new value of the sidecars-stopped annotation (earlier stops included). */
      readonly stoppedAnnotation: string;
    }
  | { readonly kind: "delete-finished"; readonly podName: string; readonly agentId: number | null }
  | { readonly kind: "release-claims"; readonly claims: readonly { name: string; holder: string }[] }
  | {
      readonly kind: "event";
      readonly type: "Normal" | "Warning";
      readonly reason: string;
      readonly message: string;
      readonly action: string;
    };

export interface Problem {
  readonly reason: string;
  readonly message: string;
}

export interface ActionInput {
  readonly plan: ScalePlan;
  /** Whether the plan was made from a fresh pool snapshot (rule 2). */
  readonly azureDevOpsFresh: boolean;
  /** The resource's pods as the cache shows them. */
  readonly podObjects: readonly PodObject[];
  /** Versions of pods created here that the cache does not show yet, as their POSTs answered (rule 9). */
  readonly createdVersions?: ReadonlyMap<string, string>;
  /** Ids of the job requests still pending (to forget reported ones). */
  readonly pendingRequestIds: ReadonlySet<number>;
  /** Job request ids already reported as unmatched. */
  readonly reported: ReadonlySet<number>;
  /** Templates whose creates wait because their agents keep failing (by template index). */
  readonly held?: ReadonlyMap<number, HeldTemplate>;
  /** PVC claims to release, with the pod each still names (from the pure cache-volume core). */
  readonly claimsToRelease: readonly { name: string; holder: string }[];
}

export interface ActionList {
  readonly actions: readonly Action[];
  /** Problems for status (Degraded). */
  readonly problems: readonly Problem[];
  /** The reported set to keep for the next reconcile. */
  readonly reported: ReadonlySet<number>;
}

export function decideActions(input: ActionInput): ActionList {
  const { plan, azureDevOpsFresh: fresh } = input;
  const actions: Action[] = [];
  const problems: Problem[] = [];
  const event = (type: "Normal" | "Warning", reason: string, message: string, action: string) =>
    actions.push({ kind: "event", type, reason, message, action });

  // Rule 8.
  for (const p of plan.templateProblems) {
    problems.push({ reason: p.reason, message: p.message });
    event("Warning", p.reason, p.message, "Match");
  }

  // Rule 1.
  const reported = new Set([...input.reported].filter((id) => input.pendingRequestIds.has(id)));
  if (fresh) {
    for (const job of plan.unmatchedJobs) {
      const message = `job request ${job.requestId}: ${job.message}`;
      problems.push({ reason: "JobNotServed", message });
      if (reported.has(job.requestId)) continue;
      reported.add(job.requestId);
      event("Warning", "JobNotServed", message, "Match");
    }
  }

  // Rules 2 and 3.
  if (fresh) {
    const heldNow = new Set<number>();
    for (const create of plan.creates) {
      const held = input.held?.get(create.templateIndex);
      if (!held) {
        actions.push({ kind: "create-pod", create });
        continue;
      }
      // Rule 7.
      if (heldNow.has(create.templateIndex)) continue;
      heldNow.add(create.templateIndex);
      problems.push({ reason: "AgentsFailing", message: held.message });
      event("Warning", "AgentsFailing", held.message, "CreatePod");
    }
    const versions = new Map(input.createdVersions);
    for (const p of input.podObjects) {
      if (p.metadata.resourceVersion) versions.set(p.metadata.name, p.metadata.resourceVersion);
    }
    for (const r of plan.removals) {
      // Rule 9.
      const resourceVersion = r.agentId === null ? versions.get(r.podName) : undefined;
      if (r.agentId === null && resourceVersion === undefined) continue;
      actions.push({
        kind: "remove-pod",
        podName: r.podName,
        agentId: r.agentId,
        ...(resourceVersion === undefined ? {} : { resourceVersion }),
        reason: r.reason,
        message: r.message,
      });
    }
    for (const m of plan.idleMarks) {
      actions.push({ kind: "mark-idle", podName: m.podName, sinceMs: m.action === "set" ? m.atMs : null });
    }
  }

  // Rule 4.
  const byName = new Map(input.podObjects.map((p) => [p.metadata.name, p]));
  for (const stop of plan.stopSidecars) {
    const already = splitList(byName.get(stop.podName)?.metadata.annotations?.[podAnnotations.sidecarsStopped]);
    actions.push({
      kind: "stop-sidecars",
      podName: stop.podName,
      containers: stop.containers,
      stoppedAnnotation: [...new Set([...already, ...stop.containers])].join(","),
    });
  }

  for (const done of plan.deleteFinished) {
    actions.push({ kind: "delete-finished", podName: done.podName, agentId: fresh ? done.agentId : null });
  }
  if (input.claimsToRelease.length > 0) actions.push({ kind: "release-claims", claims: input.claimsToRelease });

  // Rule 5.
  for (const pod of input.podObjects) {
    const stuck = stuckContainer(pod);
    if (!stuck) continue;
    const detail = stuck.message ? ` (${stuck.message})` : "";
    const message = `pod ${pod.metadata.name} cannot start: container ${stuck.name}: ${stuck.reason}${detail}`;
    problems.push({ reason: "PodStuck", message });
    event("Warning", "PodStuck", message, "WatchPod");
  }

  // Rule 6.
  const blocked = fresh ? plan.blockedJobs[0] : undefined;
  if (blocked) event("Normal", "MaxCountReached", blocked.message, "CreatePod");

  return { actions, problems, reported };
}

const stuckReasons = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CreateContainerConfigError",
  "CreateContainerError",
  "CrashLoopBackOff",
]);

/** The first container of a pod that waits for a reason it will not get over by itself. */
export function stuckContainer(pod: PodObject): { name: string; reason: string; message?: string } | undefined {
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const s of statuses) {
    const waiting = s.state?.waiting;
    if (waiting?.reason && stuckReasons.has(waiting.reason)) {
      return { name: s.name, reason: waiting.reason, ...(waiting.message ? { message: waiting.message } : {}) };
    }
  }
  return undefined;
}

/** The core's view of a pod this process just created, until the cache shows it. */
export function expectedPod(name: string, create: PodCreate, now: number): ObservedPod {
  return {
    name,
    templateIndex: create.templateIndex,
    extraAgentContainers: create.extraAgentContainers,
    createdAtMs: now,
    phase: "Pending",
    scheduled: false,
    deleting: false,
    agentContainer: "unknown",
    otherContainers: [],
    createdForRequestIds: create.forRequestIds,
  };
}

function splitList(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}
