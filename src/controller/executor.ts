/**
 * Carries out the actions of one reconcile through the ports, in order, and reports what happened. A failed action
 * becomes a problem (and usually an event); it never stops the ones after it.
 *
 * Rules:
 * 1. Create: name the pod, get its cache-volume PVCs (claims are conditional writes), expect it, then build and
 *    POST it in the namespace's lane, outside the reconcile (up to `POD_WRITES_IN_FLIGHT` writes of a namespace at
 *    once, in the plan's order). The pod is expected from before its POST (`pending`), so the reconciles that run while
 *    the POSTs wait count it. The answer goes to `createDone`: a created pod is expected until the cache shows it;
 *    one that may exist (POST timed out, server error) is expected like a created one and keeps its claims; only a
 *    refused POST ends the expectation and releases its claims.
 * 2. Remove: delete the agent registration first; Azure DevOps refuses while the agent holds a job, and then the pod
 *    stays (`ScaleDownDeferred`). The pod is deleted only after the agent is gone. Both run in the organization's
 *    lane, outside the reconcile (a slow organization holds no worker); a pod without an agent is deleted (rule 6)
 *    only if it has not changed since it was observed (a precondition on its resourceVersion).
 * 3. Finished pods are deleted, then their agent registration, in the lane (best effort; garbage collection catches
 *    the rest).
 * 4. A claim is released only if it still names the pod it is released for, so a claim made since is never wiped.
 * 5. Before the first POST of a run, in the lane, the resource is read from the API server: if it is gone, being
 *    deleted or another instance (a stale cache after a stalled watch), none of the run's pods is created (garbage collection would kill the pods,
 *    and the jobs their agents took).
 * 6. The other writes to one pod (removal without an agent, idle mark, sidecar stop, finished-pod delete) run in
 *    order as one task of the namespace's lane, after the creates queued before them; a pod with a task queued or
 *    running gets no second one (the watch event of that write brings the next reconcile, which decides again).
 *    Their problems come back to later reconciles while the pod exists.
 */
import { type AutoScaledAgent, podAnnotations, resourceRef } from "../api/v1/index.ts";
import type { Metrics } from "../observability/metrics.ts";
import { errorMessage } from "../runtime/logger.ts";
import { type CacheVolumeState, withClaims } from "../scaling/cache-volumes.ts";
import { podName } from "../scaling/naming.ts";
import { type Action, expectedPod, type Problem } from "./actions.ts";
import type { CacheVolumes } from "./cache-volumes.ts";
import type { Lanes } from "./lanes.ts";
import type { Expectation } from "./observe.ts";
import type { AzureDevOpsPort, EventsPort, KubeWriter, PodFactory, PoolTarget, PvcObject, Resource } from "./ports.ts";

/** Pod writes of one namespace in flight at once: creates (a burst of 200 jobs is 200), deletes, patches. */
export const POD_WRITES_IN_FLIGHT = 8;

/** Lane task keys of pod removals: `remove:<namespace>/<pod>`. */
const REMOVE_TASK = "remove:";
/** Lane task keys of the other writes to one pod: `pod:<namespace>/<pod>`. */
const POD_TASK = "pod:";

/**
 * Problems of lane tasks (agent deletions) by task key, as kept between reconciles: a removal's problems stay while
 * its pod exists or the task still runs; the others until the task succeeds. Prunes `background` and returns what
 * is left.
 */
export function laneProblems(
  background: Map<string, Problem[]>,
  podNames: ReadonlySet<string>,
  running: (taskKey: string) => boolean,
): Problem[] {
  for (const taskKey of background.keys()) {
    const ofPod = taskKey.startsWith(REMOVE_TASK) || taskKey.startsWith(POD_TASK);
    const pod = ofPod ? taskKey.slice(taskKey.lastIndexOf("/") + 1) : undefined;
    if (pod !== undefined && !podNames.has(pod) && !running(taskKey)) background.delete(taskKey);
  }
  return [...background.values()].flat();
}

export interface ExecutorPorts {
  kube: KubeWriter;
  azureDevOps: AzureDevOpsPort;
  pods: PodFactory;
  events: EventsPort;
  metrics: Metrics;
  cacheVolumes: CacheVolumes;
  lanes: Lanes;
  /** Pod creates, one lane per namespace (rule 1). */
  podLanes: Lanes;
  now(): number;
  /** A new random pod-name suffix. */
  suffix(): string;
}

export interface ExecutionContext {
  resource: Resource;
  /** The pool to unregister agents from; undefined when Azure DevOps is not reachable now. */
  pool?: { target: PoolTarget; poolId: number; organization: string };
  /** A lane task ended: its problems (empty when it went well) replace those it reported before. */
  backgroundDone(taskKey: string, problems: Problem[]): void;
  /** A pod was deleted (in a lane): poll the pool again soon. */
  podsChanged(): void;
  /** A pod's writes (rule 6) ended: their problems (empty when all went well) replace those reported before. */
  podWritesDone(taskKey: string, problems: Problem[]): void;
  /** The cache-volume state as observed (claims made here are added as it goes). */
  cache?: CacheVolumeState;
  pvcs: ReadonlyMap<string, PvcObject>;
  /** Aborted on shutdown: no further action starts. */
  signal?: AbortSignal;
  /** A pending job's queueTime (epoch ms), for the wait metrics; undefined when unknown. */
  queueTimeOf?(requestId: number): number | undefined;
  /** A pod is expected from now on (its POST is about to be queued). */
  expect(podName: string, expectation: Expectation): void;
  /** A pod's POST answered (rule 1). */
  createDone(podName: string, done: CreateDone): void;
}

export interface CreateDone {
  readonly outcome: "created" | "unknown" | "refused";
  /** The created pod's resourceVersion, as the POST answered it. */
  readonly resourceVersion?: string;
  readonly templateIndex: number;
  /** Why it failed or may have failed (also a warning event). */
  readonly problem?: Problem;
}

export interface ExecutionReport {
  problems: Problem[];
  /** PVC claims released by this run. */
  released: Set<string>;
}

/**
 * Carries the actions out: writes are queued in lanes and run after the reconcile. Only cache-volume claims are
 * made here, awaited; without them the report comes at once (no promise: the reconcile does not yield).
 */
export function execute(
  actions: readonly Action[],
  ctx: ExecutionContext,
  ports: ExecutorPorts,
): ExecutionReport | Promise<ExecutionReport> {
  const report: ExecutionReport = { problems: [], released: new Set() };
  const { resource } = ctx;
  const ns = resource.metadata.namespace;
  const ref = resourceRef(resource as AutoScaledAgent);
  const labels = { namespace: ns, name: resource.metadata.name };
  const problem = (reason: string, message: string, warn = false) => {
    report.problems.push({ reason, message });
    if (warn) ports.events.warning(ref, reason, message, "CreatePod");
  };
  let cache = ctx.cache;

  const deletePod = async (name: string, problems: Problem[] = report.problems, resourceVersion?: string) => {
    try {
      // "changed": the pod is not the version the decision saw (rule 9 of actions.ts); the next reconcile decides.
      return (await ports.kube.deletePod(ns, name, resourceVersion)) === "done";
    } catch (err) {
      problems.push({ reason: "PodDeleteFailed", message: `deleting pod ${name} failed: ${errorMessage(err)}` });
      return false;
    }
  };
  /** Runs `work` in the organization's lane; its problems reach the reconciler when it ends. */
  const inLane = (
    key: string,
    work: (problems: Problem[], pool: NonNullable<ExecutionContext["pool"]>) => Promise<void>,
  ) => {
    const pool = ctx.pool;
    if (!pool) return;
    ports.lanes.submit(pool.organization, {
      key,
      run: async () => {
        const problems: Problem[] = [];
        try {
          await work(problems, pool);
        } finally {
          ctx.backgroundDone(key, problems);
        }
      },
    });
  };
  const deleteAgent = async (pool: NonNullable<ExecutionContext["pool"]>, agentId: number, problems: Problem[]) => {
    try {
      return await ports.azureDevOps.deleteAgent(pool.target, pool.poolId, agentId);
    } catch (err) {
      problems.push({ reason: "AgentDeleteFailed", message: `deleting agent ${agentId} failed: ${errorMessage(err)}` });
      return "failed" as const;
    }
  };
  const patchPod = async (name: string, patch: { type: "merge" | "strategic"; body: unknown }, problems: Problem[]) => {
    try {
      return (await ports.kube.patchPod(ns, name, patch)) === "done";
    } catch (err) {
      problems.push({ reason: "PodUpdateFailed", message: `updating pod ${name} failed: ${errorMessage(err)}` });
      return false;
    }
  };

  /** Rule 5, once for the creates of this run, in their lane: undefined when current, else why not. */
  let current: Promise<Problem | undefined> | undefined;
  const resourceIsCurrent = () => {
    current ??= ports.kube.liveResource(ns, resource.metadata.name).then(
      (live) =>
        live !== undefined && !live.deleting && live.uid === resource.metadata.uid
          ? undefined
          : {
              reason: "ResourceChanged",
              message:
                "the cached resource is not the one the API server has (deleted or replaced): no pod is created until the cache catches up",
            },
      (err: unknown) => ({
        reason: "ResourceUnreadable",
        message: `reading the resource before creating pods failed: ${errorMessage(err)}`,
      }),
    );
    return current;
  };

  /** Builds and POSTs a pod in the namespace's lane and reports the answer (rule 1). */
  const post = async (
    name: string,
    create: Extract<Action, { kind: "create-pod" }>["create"],
    claims: { mapping: Record<string, string>; claimed: string[] },
  ): Promise<void> => {
    const { templateIndex } = create;
    const failed = (outcome: "unknown" | "refused", message: string, reason = "PodCreateFailed") => {
      ports.events.warning(ref, reason, message, "CreatePod");
      ctx.createDone(name, { outcome, templateIndex, problem: { reason, message } });
    };
    const release = () =>
      ports.cacheVolumes
        .release(
          ns,
          claims.claimed.map((c) => ({ name: c, holder: name })),
        )
        .catch(() => []);
    const stale = await resourceIsCurrent();
    if (stale) {
      await release();
      ctx.createDone(name, { outcome: "refused", templateIndex, problem: stale });
      return;
    }
    // Built here, not in the reconcile: the builds of a burst's 200 pods would hold the event loop at once.
    const built = ports.pods.build({ resource, create, podName: name, cacheVolumes: claims.mapping });
    if (!built.ok) {
      await release();
      failed("refused", built.message, built.reason);
      return;
    }
    for (const w of built.warnings) ports.events.warning(ref, "PodTemplateAdjusted", w, "CreatePod");
    const created = await ports.kube
      .createPod(ns, built.pod)
      .catch((err: unknown) => ({ outcome: "unknown" as const, message: errorMessage(err) }));
    if (created.outcome === "refused") {
      await release();
      failed("refused", `creating pod ${name} failed: ${created.message}`);
      return;
    }
    if (created.outcome !== "created") {
      failed("unknown", `creating pod ${name} may have failed: ${created.message}`);
      return;
    }
    ctx.createDone(name, {
      outcome: "created",
      templateIndex,
      ...(created.resourceVersion ? { resourceVersion: created.resourceVersion } : {}),
    });
    ports.metrics.podsCreated.inc({ ...labels, reason: create.reason });
    for (const id of create.forRequestIds) {
      const queued = ctx.queueTimeOf?.(id);
      if (queued === undefined) continue;
      const waited = Math.max(0, ports.now() - queued) / 1000;
      ports.metrics.jobWaitPodCreated.observe({ ...labels, template: String(create.templateIndex) }, waited);
    }
    ports.events.normal(ref, "PodCreated", `created pod ${name}: ${create.message}`, "CreatePod");
  };
  /** The writes of each pod, in order (rule 6). */
  const podWrites = new Map<string, ((problems: Problem[]) => Promise<void>)[]>();
  const podWrite = (pod: string, write: (problems: Problem[]) => Promise<void>) => {
    const writes = podWrites.get(pod) ?? [];
    writes.push(write);
    podWrites.set(pod, writes);
  };

  /** One action; a promise when it has to wait (cache-volume claims). */
  const step = (action: Action): Promise<void> | undefined => {
    switch (action.kind) {
      case "create-pod": {
        // Rule 1 (and rule 5, in the lane).
        const { create } = action;
        const name = podName(resource.metadata.name, ports.suffix());
        const queue = (claims: { mapping: Record<string, string>; claimed: string[] }) => {
          const now = ports.now();
          ctx.expect(name, {
            at: now,
            pod: expectedPod(name, create, now),
            pvcNames: Object.values(claims.mapping),
            confirmed: false,
            pending: true,
          });
          ports.podLanes.submit(ns, { key: `create:${ns}/${name}`, run: () => post(name, create, claims) });
        };
        if (!cache) {
          queue({ mapping: {}, claimed: [] });
          return undefined;
        }
        const state = cache;
        return ports.cacheVolumes
          .prepare(resource, state, name, create.templateIndex, ctx.pvcs)
          .catch((err: unknown) => ({
            ok: false as const,
            reason: "CacheVolumeFailed",
            message: `cache volume for pod ${name}: ${errorMessage(err)}`,
          }))
          .then((prepared) => {
            if (!prepared.ok) {
              const jobs = create.forRequestIds.length ? ` (job request ${create.forRequestIds.join(", ")} waits)` : "";
              problem(prepared.reason, `${prepared.message}${jobs}`, true);
              return;
            }
            cache = withClaims(state, name, prepared.mapping, ports.now());
            queue(prepared);
          });
      }
      case "remove-pod": {
        // Rule 2.
        const removed = (reason: string) => {
          ctx.podsChanged();
          ports.metrics.podsDeleted.inc({ ...labels, reason });
          ports.events.normal(ref, "PodDeleted", `deleted pod ${action.podName}: ${action.message}`, "DeletePod");
        };
        if (action.agentId === null) {
          podWrite(action.podName, async (problems) => {
            if (await deletePod(action.podName, problems, action.resourceVersion)) removed(action.reason);
          });
          break;
        }
        const agentId = action.agentId;
        inLane(`${REMOVE_TASK}${ns}/${action.podName}`, async (problems, pool) => {
          const result = await deleteAgent(pool, agentId, problems);
          if (result === "refused") {
            ports.events.normal(
              ref,
              "ScaleDownDeferred",
              `agent ${action.podName} could not be unregistered (it just took a job?); keeping its pod`,
              "DeletePod",
            );
            return;
          }
          if (result !== "failed" && (await deletePod(action.podName, problems))) removed(action.reason);
        });
        break;
      }
      case "mark-idle":
        podWrite(action.podName, async (problems) => {
          const idleSince = action.sinceMs === null ? null : String(action.sinceMs);
          const body = { metadata: { annotations: { [podAnnotations.idleSince]: idleSince } } };
          await patchPod(action.podName, { type: "merge", body }, problems);
        });
        break;
      case "stop-sidecars": {
        const body = {
          ...ports.pods.stopSidecarsPatch(action.containers),
          metadata: { annotations: { [podAnnotations.sidecarsStopped]: action.stoppedAnnotation } },
        };
        podWrite(action.podName, async (problems) => {
          if (await patchPod(action.podName, { type: "strategic", body }, problems)) {
            ports.events.normal(
              ref,
              "SidecarsStopped",
              `agent of pod ${action.podName} finished; stopping ${action.containers.join(", ")}`,
              "StopSidecars",
            );
          }
        });
        break;
      }
      case "delete-finished":
        // Rule 3.
        podWrite(action.podName, async (problems) => {
          if (await deletePod(action.podName, problems)) {
            ctx.podsChanged();
            ports.metrics.podsDeleted.inc({ ...labels, reason: "finished" });
          }
          if (action.agentId !== null) {
            const agentId = action.agentId;
            inLane(`agent:${ns}/${agentId}`, async (problems, pool) => {
              await deleteAgent(pool, agentId, problems);
            });
          }
        });
        break;
      case "release-claims":
        // Rule 4.
        return ports.cacheVolumes.release(ns, action.claims).then(
          (names) => {
            for (const name of names) report.released.add(name);
          },
          (err: unknown) => problem("CacheVolumeReleaseFailed", errorMessage(err)),
        );
      case "event":
        if (action.type === "Warning") ports.events.warning(ref, action.reason, action.message, action.action);
        else ports.events.normal(ref, action.reason, action.message, action.action);
        break;
    }
    return undefined;
  };

  /**
   * Rule 6: each pod's writes as one task of the namespace's lane, queued once every action was looked at; a pod
   * that has one queued or running is left to the next reconcile (the watch event of that write asks for it).
   */
  const finish = (): ExecutionReport => {
    for (const [pod, writes] of podWrites) {
      const key = `${POD_TASK}${ns}/${pod}`;
      ports.podLanes.submit(ns, {
        key,
        run: async () => {
          const problems: Problem[] = [];
          try {
            for (const write of writes) await write(problems);
          } finally {
            ctx.podWritesDone(key, problems);
          }
        },
      });
    }
    return report;
  };

  // The actions in order; from the first that has to wait on, the rest follow it (awaited).
  for (let i = 0; i < actions.length; i++) {
    if (ctx.signal?.aborted) break;
    const waiting = step(actions[i] as Action);
    if (waiting === undefined) continue;
    return (async () => {
      await waiting;
      for (const action of actions.slice(i + 1)) {
        if (ctx.signal?.aborted) break;
        await step(action);
      }
      return finish();
    })();
  }
  return finish();
}
