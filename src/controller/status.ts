/**
 * The resource's status from what a reconcile found (pure): conditions (see conditions.ts), the pool id, the
 * cache-volume holders, and the counts of the plan. Written only when something other than a transition time
 * changed, so an idle resource causes no writes, and only the fields the reconciler owns are sent (other loops,
 * such as image pre-pull, write their own).
 */
import type { AutoScaledAgent, AutoScaledAgentStatus } from "../api/v1/index.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Logger } from "../runtime/logger.ts";
import { keptIn } from "../runtime/memo.ts";
import type { ScalePlan } from "../scaling/types.ts";
import { deriveConditions, type Findings, setConditions } from "./conditions.ts";
import type { KubeWriter } from "./ports.ts";

export interface StatusInput {
  previous: AutoScaledAgentStatus | undefined;
  generation: number | undefined;
  findings: Findings;
  poolId?: number | undefined;
  /** The plan, when it was made from a fresh snapshot (otherwise the counts of the previous status stay). */
  plan?: ScalePlan | undefined;
  now: number;
}

export type PodStateName = "starting" | "idle" | "busy" | "finishing" | "terminating" | "finished";
export const POD_STATES: readonly PodStateName[] = ["starting", "idle", "busy", "finishing", "terminating", "finished"];

/** Sum of a count over the plan's templates. */
export function planTotal(plan: ScalePlan, f: (t: ScalePlan["templates"][number]) => number): number {
  return plan.templates.reduce((n, t) => n + f(t), 0);
}

/** The status fields the reconciler writes (a merge patch leaves the others alone). */
const OWNED = [
  "conditions",
  "observedGeneration",
  "poolId",
  "cacheVolumes",
  "pendingJobs",
  "pods",
  "templates",
] as const;

function owned(status: AutoScaledAgentStatus | undefined): AutoScaledAgentStatus {
  const out: Record<string, unknown> = {};
  for (const k of OWNED) if (status?.[k] !== undefined) out[k] = status[k];
  return out as AutoScaledAgentStatus;
}

export function buildStatus(input: StatusInput): AutoScaledAgentStatus {
  const { generation, findings, plan } = input;
  const previous = owned(input.previous);
  const status: AutoScaledAgentStatus = {
    ...previous,
    conditions: setConditions(
      previous?.conditions,
      deriveConditions(findings),
      new Date(input.now).toISOString().replace(/\.\d+Z$/, "Z"),
      generation,
    ),
  };
  if (generation !== undefined) status.observedGeneration = generation;
  if (input.poolId !== undefined) status.poolId = input.poolId;
  if (findings.cacheVolumes) status.cacheVolumes = findings.cacheVolumes;
  if (plan) {
    const sum = (f: (t: ScalePlan["templates"][number]) => number) => planTotal(plan, f);
    status.pendingJobs = sum((t) => t.pendingJobs);
    status.pods = {
      starting: sum((t) => t.starting),
      idle: sum((t) => t.idle),
      busy: sum((t) => t.busy),
      finished: sum((t) => t.finished),
    };
    status.templates = plan.templates.map((t) => {
      const standby = findings.standby?.[t.templateIndex];
      return {
        index: t.templateIndex,
        pendingJobs: t.pendingJobs,
        pods: { starting: t.starting, idle: t.idle, busy: t.busy, finished: t.finished },
        ...(standby ? { standby } : {}),
      };
    });
  }
  return status;
}

/**
 * The form statuses are compared in, kept by status object: the previous status of a reconcile is the one the last
 * built or the cache's, and status objects are never edited.
 */
const comparedForm = new WeakMap<AutoScaledAgentStatus, string>();
const compared = (status: AutoScaledAgentStatus | undefined): string =>
  status === undefined
    ? canonical(stripTimes(owned(undefined)))
    : keptIn(comparedForm, status, () => canonical(stripTimes(owned(status))));

/** Whether the new status differs from the previous one in anything but condition transition times. */
export function statusChanged(previous: AutoScaledAgentStatus | undefined, next: AutoScaledAgentStatus): boolean {
  return compared(next) !== compared(previous);
}

/**
 * JSON with object keys sorted and undefined fields dropped: the status read back from the API server need not keep
 * the key order it was written in, and must still compare equal (otherwise every reconcile writes).
 */
export function canonical(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v === null || typeof v !== "object") return v;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sort(x);
    }
    return out;
  };
  return JSON.stringify(sort(value));
}

/**
 * Status writes, outside the reconcile (a status PATCH waits as long as a pod POST on a busy API server).
 *
 * Rules:
 * 1. One write per resource at a time. A status submitted while one is being written waits; a newer one replaces it
 *    (the newest wins, the replaced one is never written).
 * 2. While its write waits or runs, and then until the cached resource changes, the status last submitted is what the
 *    next status is built on and compared with (`previous`): otherwise a reconcile right after a write, before the
 *    watch shows it, would find it changed again (and move its condition transition times). After a failed write,
 *    or once the cache has a newer object, the cache's status is used.
 * 3. `idle()` resolves when nothing waits or is being written (shutdown waits for it before the lease goes).
 */
export class StatusWrites {
  readonly #write: (namespace: string, name: string, status: AutoScaledAgentStatus) => Promise<unknown>;
  readonly #logger: Logger;
  /** Rule 2: by `namespace/name`, with the object (uid, resourceVersion) it was built from. */
  readonly #submitted = new Map<
    string,
    { status: AutoScaledAgentStatus; uid: string | undefined; builtOn: string | undefined }
  >();
  readonly #waiting = new Map<string, AutoScaledAgentStatus>();
  readonly #running = new Map<string, Promise<void>>();

  constructor(kube: Pick<KubeWriter, "patchStatus">, logger: Logger) {
    this.#write = (ns, name, status) => kube.patchStatus(ns, name, status);
    this.#logger = logger;
  }

  /** The status to build on and compare with (rule 2). */
  previous(raw: AutoScaledAgent): AutoScaledAgentStatus | undefined {
    const key = keyOf(raw);
    const s = this.#submitted.get(key);
    if (s === undefined) return raw.status;
    const same = s.uid === raw.metadata?.uid;
    if (same && (this.#running.has(key) || s.builtOn === raw.metadata?.resourceVersion)) return s.status;
    this.#submitted.delete(key);
    return raw.status;
  }

  submit(raw: AutoScaledAgent, status: AutoScaledAgentStatus): void {
    const key = keyOf(raw);
    this.#submitted.set(key, { status, uid: raw.metadata?.uid, builtOn: raw.metadata?.resourceVersion });
    this.#waiting.set(key, status);
    if (this.#running.has(key)) return; // rule 1: the running write takes it next
    const ns = raw.metadata?.namespace ?? "";
    const name = raw.metadata?.name ?? "";
    const run = (async () => {
      for (let next = this.#waiting.get(key); next !== undefined; next = this.#waiting.get(key)) {
        this.#waiting.delete(key);
        try {
          await this.#write(ns, name, next);
        } catch (err) {
          if (this.#submitted.get(key)?.status === next) this.#submitted.delete(key);
          this.#logger.warn("status update failed", { resource: key, error: err });
        }
      }
    })().finally(() => this.#running.delete(key));
    this.#running.set(key, run);
  }

  /** The resource (`namespace/name`) is gone: forget what was submitted for it. */
  forget(key: string): void {
    this.#submitted.delete(key);
  }

  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running.values()]);
  }
}

const keyOf = (raw: AutoScaledAgent) => `${raw.metadata?.namespace ?? ""}/${raw.metadata?.name ?? ""}`;

/** Sets the resource's gauges, builds its status and submits it when it changed. */
export function writeStatus(
  raw: AutoScaledAgent,
  found: { findings: Findings; poolId?: number | undefined; plan?: ScalePlan | undefined },
  ports: { metrics: Metrics; statusWrites: StatusWrites; now(): number },
): void {
  const ns = raw.metadata?.namespace ?? "";
  const name = raw.metadata?.name ?? "";
  const { plan } = found;
  if (plan) {
    ports.metrics.pendingJobs.set(
      { namespace: ns, name },
      planTotal(plan, (t) => t.pendingJobs),
    );
    for (const state of POD_STATES) {
      ports.metrics.agentPods.set(
        { namespace: ns, name, state },
        planTotal(plan, (t) => t[state]),
      );
    }
  }
  const previous = ports.statusWrites.previous(raw);
  const status = buildStatus({
    previous,
    generation: raw.metadata?.generation,
    findings: found.findings,
    poolId: found.poolId,
    plan,
    now: ports.now(),
  });
  if (!statusChanged(previous, status)) return;
  ports.statusWrites.submit(raw, status);
}

function stripTimes(status: AutoScaledAgentStatus): unknown {
  return { ...status, conditions: status.conditions?.map(({ lastTransitionTime: _t, ...c }) => c) };
}

/** Condition reasons for Azure DevOps failure kinds. */
export function azureDevOpsReason(kind: string): string {
  const map: Record<string, string> = {
    auth: "AzureDevOpsUnauthorized",
    forbidden: "AzureDevOpsForbidden",
    "not-found": "PoolNotFound",
    "pool-not-found": "PoolNotFound",
    "rate-limited": "AzureDevOpsRateLimited",
    server: "AzureDevOpsServerError",
    network: "AzureDevOpsUnreachable",
    timeout: "AzureDevOpsTimeout",
    "invalid-response": "AzureDevOpsInvalidResponse",
    configuration: "AzureDevOpsMisconfigured",
    "bad-request": "AzureDevOpsBadRequest",
    conflict: "AzureDevOpsConflict",
  };
  return map[kind] ?? "AzureDevOpsError";
}
