/**
 * The reconciler of one AutoScaledAgent, as a pipeline read top to bottom:
 *
 *   validate -> credential -> pool subscription -> observe (pure) -> plan (pure core) -> actions (pure)
 *     -> execute (ports) -> placeholders (scheduled) -> status (pure, written when changed)
 *
 * Level-triggered: every decision is recomputed from what is observed. The only memory is per resource key: the
 * pool subscription, pods created but not yet seen in the cache (so a lagging cache never causes a second create),
 * which unmatched jobs were already reported, and (in the placeholder work and the credential port) when things ran.
 * Everything outside comes through ports (ports.ts), so the whole pipeline runs in a test with fakes.
 */
import { type AutoScaledAgent, parseDuration, resourceRef, validateAutoScaledAgent } from "../api/v1/index.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Logger } from "../runtime/logger.ts";
import { jobsServedElsewhere } from "../scaling/arbitration.ts";
import { planScaling } from "../scaling/plan.ts";
import type { ObservedPod, ScalePlan } from "../scaling/types.ts";
import { decideActions } from "./actions.ts";
import { type CacheVolumes, cacheState, cacheVolumeStatus, releasableClaims } from "./cache-volumes.ts";
import type { Findings } from "./conditions.ts";
import { execute } from "./executor.ts";
import {
  type Expectation,
  observeAgent,
  observePod,
  resourcesOnPool,
  templateSpecs,
  withExpectedPods,
} from "./observe.ts";
import type { PlaceholderWork } from "./placeholders.ts";
import type {
  AzureDevOpsPort,
  Caches,
  CredentialsPort,
  EventsPort,
  KubeWriter,
  PodFactory,
  PoolSnapshot,
  PoolSubscription,
  PoolTarget,
  Resource,
} from "./ports.ts";
import type { StandbyWork } from "./standby.ts";
import { azureDevOpsReason, buildStatus, POD_STATES, planTotal, statusChanged } from "./status.ts";

export interface ReconcilerOptions {
  caches: Caches;
  kube: KubeWriter;
  azureDevOps: AzureDevOpsPort;
  credentials: CredentialsPort;
  pods: PodFactory;
  events: EventsPort;
  metrics: Metrics;
  logger: Logger;
  cacheVolumes: CacheVolumes;
  placeholders: PlaceholderWork;
  /** Standby agents (schedules, predictive standby); without it every template keeps its minCount. */
  standby?: StandbyWork;
  /** Requeue a resource (when its pool poll changes). */
  enqueue(key: string): void;
  now(): number;
  /** A new random pod-name suffix. */
  suffix(): string;
  /** Reconcile at least this often. */
  resyncIntervalMs: number;
  /** How long a created pod may be missing from the cache before it is forgotten. */
  expectationTtlMs?: number;
}

export type ReconcileResult = { requeueAfterMs: number } | undefined;

interface Memory {
  attached?: { fingerprint: string; target: PoolTarget; subscription: PoolSubscription };
  expected: Map<string, Expectation>;
  reported: ReadonlySet<number>;
}

export class Reconciler {
  readonly #o: ReconcilerOptions;
  readonly #memory = new Map<string, Memory>();

  constructor(options: ReconcilerOptions) {
    this.#o = options;
  }

  /** Releases every pool subscription (shutdown, or leadership lost). */
  close(): void {
    for (const m of this.#memory.values()) m.attached?.subscription.release();
    this.#memory.clear();
  }

  /** One reconcile; an aborted `signal` (shutdown) stops it between actions. */
  async reconcile(key: string, signal?: AbortSignal): Promise<ReconcileResult> {
    const o = this.#o;
    const raw = o.caches.resource(key);
    if (!raw) {
      this.#forget(key);
      return undefined;
    }
    const memory = this.#memoryOf(key);
    if (raw.metadata?.deletionTimestamp) {
      this.#detach(memory);
      return undefined;
    }
    const findings: Findings = { problems: [] };

    // 1. Validate.
    const validation = validateAutoScaledAgent(raw);
    if (!validation.ok) {
      const message = validation.errors.join("; ");
      o.events.warning(resourceRef(raw), "InvalidSpec", message, "Validate");
      o.metrics.reconciles.inc({ result: "invalid" });
      findings.invalidSpec = message;
      this.#detach(memory);
      o.credentials.forget(key);
      await this.#writeStatus(raw, findings, undefined, undefined);
      return undefined;
    }
    const resource = validation.value as Resource;

    // 2. Credential.
    const credential = await o.credentials.resolve(key, resource);
    if (!credential.ok) {
      findings.credentials = { reason: credential.reason, message: credential.message };
      o.events.warning(resourceRef(raw), credential.reason, credential.message, "ReadCredentials");
      this.#detach(memory);
      await this.#writeStatus(raw, findings, undefined, undefined);
      return { requeueAfterMs: Math.min(o.resyncIntervalMs, 30_000) };
    }

    // 3. The shared poll of the pool.
    const target = {
      organizationUrl: resource.spec.organizationUrl,
      poolName: resource.spec.poolName,
      credential: credential.credential,
    };
    const subscription = this.#attach(key, memory, target);
    const problem = subscription.lastError();
    const snapshot = problem ? undefined : subscription.latest();
    if (problem) {
      o.metrics.azureDevOpsErrors.inc({ kind: problem.kind });
      const reason = azureDevOpsReason(problem.kind);
      findings.azureDevOps = { ok: false, reason, message: problem.message };
      o.events.warning(resourceRef(raw), reason, problem.message, "PollAzureDevOps");
    } else if (snapshot) {
      findings.azureDevOps = { ok: true, poolId: snapshot.poolId };
    }

    // 4. Observe and plan. Without a fresh snapshot the plan only drives Kubernetes-side housekeeping.
    const podObjects = o.caches.podsOf(resource.metadata.uid);
    const pvcObjects = o.caches.pvcsOf(resource.metadata.uid);
    const { pods, open } = withExpectedPods(
      podObjects.map((p) => observePod(p, resource.spec.podsWithCapabilities)),
      memory.expected,
      o.now(),
      o.expectationTtlMs ?? 60_000,
    );
    memory.expected = open;
    // Standby agents in force per template (schedules, predictive standby): the plan's minCounts.
    const standby = await o.standby?.decide({ key, resource, previous: raw.status, snapshot, pods });
    if (standby) {
      findings.problems.push(...standby.problems);
      findings.standby = standby.status;
    }
    const plan = this.#plan(key, resource, snapshot, pods, standby?.minCounts);
    const hasCache = (resource.spec.reusableCacheVolumes ?? []).length > 0;
    const expectedMounts = [...open.entries()].map(([name, e]) => ({
      name,
      phase: "Pending" as const,
      mountedPvcNames: e.pvcNames,
    }));
    const cache = hasCache ? cacheState(resource, pvcObjects, podObjects, o.now(), expectedMounts) : undefined;

    // 5. Actions (pure), then carry them out.
    const decided = decideActions({
      plan,
      azureDevOpsFresh: snapshot !== undefined,
      podObjects,
      pendingRequestIds: new Set((snapshot?.jobRequests ?? []).map((j) => j.requestId)),
      reported: snapshot ? memory.reported : new Set(),
      claimsToRelease: cache ? releasableClaims(cache) : [],
    });
    if (snapshot) memory.reported = decided.reported;
    const executed = await execute(
      decided.actions,
      {
        resource,
        ...(snapshot ? { pool: { target, poolId: snapshot.poolId } } : {}),
        ...(cache ? { cache } : {}),
        pvcs: new Map(pvcObjects.map((p) => [p.metadata.name, p])),
        ...(signal ? { signal } : {}),
      },
      o,
    );
    for (const [name, e] of executed.expected) memory.expected.set(name, e);
    findings.problems.push(...decided.problems, ...executed.problems);
    if (cache) findings.cacheVolumes = cacheVolumeStatus(cache, executed.released);
    if (executed.changed) subscription.pollNow();
    if (signal?.aborted) return undefined;

    // 6. Placeholders, when due (they need the pool's agent list).
    let nextPlaceholderRun = o.now() + o.resyncIntervalMs;
    if (snapshot) {
      const r = await o.placeholders.run({
        key,
        resource,
        target,
        snapshot,
        samePool: resourcesOnPool(o.caches.allResources(), resource, o.azureDevOps.sameOrganization),
        liveAgentPodNames: o.caches.liveAgentPodNames(),
      });
      findings.problems.push(...r.problems);
      nextPlaceholderRun = r.nextDueAt;
    }

    // 7. Status.
    await this.#writeStatus(raw, findings, snapshot, snapshot ? plan : undefined);
    o.metrics.reconciles.inc({ result: "ok" });
    o.logger.debug("reconciled", { resource: key, actions: decided.actions.length, fresh: Boolean(snapshot) });
    const standbyDue = standby?.requeueAfterMs ?? Number.POSITIVE_INFINITY;
    if (!snapshot) return { requeueAfterMs: Math.min(o.resyncIntervalMs, standbyDue) };
    return {
      requeueAfterMs: Math.min(o.resyncIntervalMs, standbyDue, Math.max(1000, nextPlaceholderRun - o.now())),
    };
  }

  /** The scale plan: jobs another resource on the pool serves better are left to it. */
  #plan(
    key: string,
    resource: Resource,
    snapshot: PoolSnapshot | undefined,
    pods: readonly ObservedPod[],
    minCounts?: readonly number[],
  ): ScalePlan {
    const specs = templateSpecs(resource.spec, minCounts);
    let jobRequests = snapshot?.jobRequests ?? [];
    if (snapshot) {
      const others = resourcesOnPool(this.#o.caches.allResources(), resource, this.#o.azureDevOps.sameOrganization).map(
        (r) => ({ key: r.key, templates: templateSpecs(r) }),
      );
      const elsewhere = jobsServedElsewhere(jobRequests, { key, templates: specs }, others);
      if (elsewhere.size > 0) jobRequests = jobRequests.filter((j) => !elsewhere.has(j.requestId));
    }
    const names = new Set(pods.map((p) => p.name));
    return planScaling({
      templates: specs,
      jobRequests,
      pods,
      agents: (snapshot?.agents ?? []).filter((a) => names.has(a.name)).map(observeAgent),
      now: this.#o.now(),
      agentMinIdlePeriodMs: parseDuration(resource.spec.agentMinIdlePeriod),
      maxTerminatedPodsToKeep: resource.spec.maxTerminatedPodsToKeep,
      checkExtraAgentContainers: this.#o.pods.extraAgentContainersChecker(resource.spec),
    });
  }

  async #writeStatus(
    raw: AutoScaledAgent,
    findings: Findings,
    snapshot: PoolSnapshot | undefined,
    plan: ScalePlan | undefined,
  ): Promise<void> {
    const ns = raw.metadata?.namespace ?? "";
    const name = raw.metadata?.name ?? "";
    if (plan) {
      const m = this.#o.metrics;
      m.pendingJobs.set(
        { namespace: ns, name },
        planTotal(plan, (t) => t.pendingJobs),
      );
      for (const state of POD_STATES)
        m.agentPods.set(
          { namespace: ns, name, state },
          planTotal(plan, (t) => t[state]),
        );
    }
    const status = buildStatus({
      previous: raw.status,
      generation: raw.metadata?.generation,
      findings,
      poolId: snapshot?.poolId,
      plan,
      now: this.#o.now(),
    });
    if (!statusChanged(raw.status, status)) return;
    try {
      await this.#o.kube.patchStatus(ns, name, status);
    } catch (err) {
      this.#o.logger.warn("status update failed", { resource: `${ns}/${name}`, error: err });
    }
  }

  #memoryOf(key: string): Memory {
    let m = this.#memory.get(key);
    if (!m) {
      m = { expected: new Map(), reported: new Set() };
      this.#memory.set(key, m);
    }
    return m;
  }

  #attach(key: string, memory: Memory, target: PoolTarget): PoolSubscription {
    const fingerprint = JSON.stringify([
      target.organizationUrl,
      target.poolName,
      this.#o.azureDevOps.identityKey(target.credential),
    ]);
    if (memory.attached?.fingerprint === fingerprint) return memory.attached.subscription;
    memory.attached?.subscription.release();
    const subscription = this.#o.azureDevOps.subscribe(target, () => this.#o.enqueue(key));
    memory.attached = { fingerprint, target, subscription };
    return subscription;
  }

  #detach(memory: Memory): void {
    memory.attached?.subscription.release();
    delete memory.attached;
  }

  #forget(key: string): void {
    const m = this.#memory.get(key);
    if (m) this.#detach(m);
    this.#memory.delete(key);
    this.#o.credentials.forget(key);
    this.#o.placeholders.forget(key);
    this.#o.standby?.forget(key);
  }
}
