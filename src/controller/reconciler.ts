/**
 * The reconciler of one AutoScaledAgent, as a pipeline read top to bottom:
 *
 *   validate -> credential -> pool subscription -> observe (pure) -> plan (pure core) -> actions (pure)
 *     -> execute (ports) -> placeholders (scheduled) -> status (pure, written when changed)
 *
 * Level-triggered: every decision is recomputed from what is observed. The only memory is per resource key
 * (memory.ts: the pool subscription, pods created but not yet seen in the cache, jobs of ended pods, reported jobs,
 * agent failures) and, in the placeholder work and the credential port, when things ran.
 * Everything outside comes through ports (ports.ts), so the whole pipeline runs in a test with fakes.
 */
import { type AutoScaledAgent, resourceRef, validateAutoScaledAgent } from "../api/v1/index.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Logger } from "../runtime/logger.ts";
import { agentFailures } from "../scaling/failures.ts";
import type { ObservedPod, ScalePlan } from "../scaling/types.ts";
import { decideActions, type Problem } from "./actions.ts";
import { type CacheVolumes, cacheState, cacheVolumeStatus, releasableClaims } from "./cache-volumes.ts";
import type { Findings } from "./conditions.ts";
import { cleanUpDeleted, hasFinalizer, setFinalizer } from "./deletion.ts";
import { type CreateDone, execute, laneProblems } from "./executor.ts";
import type { Lanes } from "./lanes.ts";
import { type Memory, newMemory } from "./memory.ts";
import { jobsOfEndedPods, observedPods, resourcesOnPool, validateCached, withExpectedPods } from "./observe.ts";
import type { PlaceholderWork } from "./placeholders.ts";
import { PoolMetrics, queueTimeLookup } from "./pool-metrics.ts";
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
import { PoolSharing, planOnPool, podHasEnded } from "./sharing.ts";
import type { StandbyWork } from "./standby.ts";
import { azureDevOpsReason, StatusWrites, writeStatus } from "./status.ts";

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
  /** Azure DevOps writes, one lane per organization, outside the reconcile. */
  lanes: Lanes;
  /** Pod writes, one lane per namespace, outside the reconcile (executor.ts, rules 1 and 6). */
  podLanes: Lanes;
  /** Standby agents (schedules, predictive standby); without it every template keeps its minCount. */
  standby?: StandbyWork;
  /** Requeue a resource (when its pool poll changes), at once or after `afterMs`. */
  enqueue(key: string, afterMs?: number): void;
  now(): number;
  /** A new random pod-name suffix. */
  suffix(): string;
  /** Reconcile at least this often. */
  resyncIntervalMs: number;
  /** How long the cleanup of a deleted resource may hold its deletion (default 2 min). */
  cleanupTimeoutMs?: number;
  /** First wait after an agent exits with an error before running a job (doubles per failure, up to 5 min). */
  agentFailureBackoffMs?: number;
  /** How long a pod whose create had an unknown outcome is expected without being seen (default 60 s). */
  expectationTtlMs?: number;
}

/** How soon a reconcile follows a failed pod create (reports it, and tries again). */
const CREATE_RETRY_MS = 2_000;

export type ReconcileResult = { requeueAfterMs: number } | undefined;

/** No pods expected (most resources, most of the time): one array for all. */
const NONE_EXPECTED: readonly ObservedPod[] = [];

export class Reconciler {
  readonly #o: ReconcilerOptions;
  readonly #memory = new Map<string, Memory>();
  /** How the resources on a pool share its jobs. */
  readonly #sharing: PoolSharing;
  /** Per-pool gauges and job-wait histograms (pool-metrics.ts). */
  readonly #poolMetrics: PoolMetrics;
  /** Status writes, outside the reconcile. */
  readonly #statusWrites: StatusWrites;

  constructor(options: ReconcilerOptions) {
    this.#o = options;
    this.#poolMetrics = new PoolMetrics(options.metrics);
    this.#statusWrites = new StatusWrites(options.kube, options.logger);
    this.#sharing = new PoolSharing({
      caches: options.caches,
      pods: options.pods,
      organizationKey: options.azureDevOps.organizationKey,
      expected: (key) => {
        const expected = this.#memory.get(key)?.expected;
        return expected === undefined || expected.size === 0 ? NONE_EXPECTED : [...expected.values()].map((e) => e.pod);
      },
    });
  }

  /** A watch event named this pod of the resource: it is no longer only expected. */
  podObserved(key: string, podName: string): void {
    this.#memory.get(key)?.expected.delete(podName);
  }

  /** Resolves when no status write waits or runs (shutdown: before the lease goes). */
  writesDone(): Promise<void> {
    return this.#statusWrites.idle();
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
    if (raw.metadata?.deletionTimestamp) return this.#deleted(key, raw, memory);
    const findings: Findings = { problems: [] };
    let stageStart = performance.now();
    /** Ends a stage (reconcile_stage_duration_seconds) and starts the next. */
    const stage = (name: "credentials" | "observe" | "plan" | "execute" | "status") => {
      const t = performance.now();
      o.metrics.reconcileStageDuration.observe({ stage: name }, (t - stageStart) / 1000);
      stageStart = t;
    };

    // 1. Validate.
    const validation = validateCached(raw);
    if (!validation.ok) {
      const message = validation.errors.join("; ");
      o.events.warning(resourceRef(raw), "InvalidSpec", message, "Validate");
      o.metrics.reconciles.inc({ result: "invalid" });
      findings.invalidSpec = message;
      this.#detach(memory);
      this.#sharing.unavailable(key);
      this.#poolMetrics.unavailable(key);
      o.credentials.forget(key);
      this.#writeStatus(raw, findings, undefined, undefined);
      return undefined;
    }
    const resource = validation.value as Resource;
    // Deleting it must unregister its agents first (deletion.ts).
    if (!hasFinalizer(raw) && !(await setFinalizer(o.kube, raw, true))) return { requeueAfterMs: 1_000 };

    // 2. Credential.
    stageStart = performance.now();
    // Awaited only when it is a promise: a reconcile that needs no read runs to its end without yielding.
    const resolving = o.credentials.resolve(key, resource);
    const credential = resolving instanceof Promise ? await resolving : resolving;
    stage("credentials");
    if (!credential.ok) {
      findings.credentials = { reason: credential.reason, message: credential.message };
      o.events.warning(resourceRef(raw), credential.reason, credential.message, "ReadCredentials");
      this.#detach(memory);
      this.#sharing.unavailable(key);
      this.#poolMetrics.unavailable(key);
      this.#writeStatus(raw, findings, undefined, undefined);
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
      // A refused credential may have been rotated: read its Secret again next time (credentials.ts, rule 1).
      if (problem.kind === "auth" || problem.kind === "forbidden") o.credentials.refused(key);
      o.metrics.azureDevOpsErrors.inc({ kind: problem.kind });
      const reason = azureDevOpsReason(problem.kind);
      findings.azureDevOps = { ok: false, reason, message: problem.message };
      o.events.warning(resourceRef(raw), reason, problem.message, "PollAzureDevOps");
      this.#sharing.unavailable(key);
    } else if (snapshot) {
      findings.azureDevOps = { ok: true, poolId: snapshot.poolId };
    }

    // 4. Observe and plan. Without a fresh snapshot the plan only drives Kubernetes-side housekeeping.
    const podObjects = o.caches.podsOf(resource.metadata.uid);
    const pvcObjects = o.caches.pvcsOf(resource.metadata.uid);
    const { pods, open } = withExpectedPods(
      observedPods(podObjects, resource.spec.podsWithCapabilities),
      memory.expected,
      { now: o.now(), listedAt: o.caches.podsListedAt(), unconfirmedTtlMs: o.expectationTtlMs ?? 60_000 },
    );
    memory.expected = open;
    memory.endedJobs = jobsOfEndedPods(memory.endedJobs, pods, snapshot?.fetchedAt, o.now());
    const failing = agentFailures(memory.failures, pods, o.now(), {
      initialMs: o.agentFailureBackoffMs ?? 10_000,
      maxMs: 5 * 60_000,
    });
    memory.failures = failing.memory;
    // Standby agents in force per template (schedules, predictive standby), kept free beside the busy pods.
    const deciding = o.standby?.decide({ key, resource, previous: raw.status, snapshot, pods });
    const standby = deciding instanceof Promise ? await deciding : deciding;
    if (standby) {
      findings.problems.push(...standby.problems);
      findings.standby = standby.status;
    }
    stage("observe");
    const plan = this.#plan(key, resource, snapshot, pods, memory.endedJobs, standby?.standby);
    if (snapshot) {
      this.#sharing.planned(key, resource, plan);
      const organization = o.azureDevOps.organizationKey(resource.spec.organizationUrl);
      this.#poolMetrics.planned({ key, resource, organization, snapshot, plan, pods });
    }
    const cache = cacheState(resource, pvcObjects, podObjects, o.now(), open);

    // 5. Actions (pure), then carry them out.
    const decided = decideActions({
      plan,
      azureDevOpsFresh: snapshot !== undefined,
      podObjects,
      createdVersions: new Map(
        [...open].flatMap(([name, e]) => (e.resourceVersion ? [[name, e.resourceVersion] as const] : [])),
      ),
      pendingRequestIds: new Set((snapshot?.jobRequests ?? []).map((j) => j.requestId)),
      reported: snapshot ? memory.reported : new Set(),
      held: failing.held,
      claimsToRelease: cache ? releasableClaims(cache) : [],
    });
    if (snapshot) memory.reported = decided.reported;
    // A failed create is a problem while its template still needs pods (memory.ts).
    const creating = new Set(decided.actions.flatMap((a) => (a.kind === "create-pod" ? [a.create.templateIndex] : [])));
    for (const t of memory.createProblems.keys()) if (!creating.has(t)) memory.createProblems.delete(t);
    findings.problems.push(...memory.createProblems.values(), ...decided.problems);
    stage("plan");
    const organization = o.azureDevOps.organizationKey(target.organizationUrl);
    /** A lane task's problems replace those it reported before; true when it reports or reported some. */
    const recordProblems = (taskKey: string, problems: Problem[]) => {
      const had = memory.background.delete(taskKey);
      if (problems.length > 0) memory.background.set(taskKey, problems);
      return had || problems.length > 0;
    };
    const backgroundDone = (taskKey: string, problems: Problem[]) => {
      recordProblems(taskKey, problems);
      o.enqueue(key);
    };
    const executing = execute(
      decided.actions,
      {
        resource,
        backgroundDone,
        ...(snapshot ? { pool: { target, poolId: snapshot.poolId, organization } } : {}),
        ...(cache ? { cache } : {}),
        pvcs: new Map(pvcObjects.map((p) => [p.metadata.name, p])),
        ...(signal ? { signal } : {}),
        ...(snapshot ? { queueTimeOf: queueTimeLookup(snapshot.jobRequests) } : {}),
        expect: (name, e) => memory.expected.set(name, e),
        podsChanged: () => subscription.pollNow(),
        // Their watch events bring the next reconcile; only a change of problems asks for one.
        podWritesDone: (taskKey, problems) => {
          if (recordProblems(taskKey, problems)) o.enqueue(key);
        },
        createDone: (name, done) => this.#createDone(key, memory, name, done),
      },
      o,
    );
    const executed = executing instanceof Promise ? await executing : executing;
    findings.problems.push(...executed.problems);
    const podNames = new Set(podObjects.map((p) => p.metadata.name));
    findings.problems.push(...laneProblems(memory.background, podNames, (k) => o.lanes.has(k) || o.podLanes.has(k)));
    if (cache) findings.cacheVolumes = cacheVolumeStatus(cache, executed.released);
    stage("execute");
    if (signal?.aborted) return undefined;

    // 6. Placeholders, when due, in the organization's lane (placeholders.ts).
    if (snapshot) memory.poolId = snapshot.poolId;
    let nextPlaceholderRun: number | undefined = o.now() + o.resyncIntervalMs;
    if (memory.poolId !== undefined) {
      const step = o.placeholders.step({
        key,
        resource,
        target,
        poolId: memory.poolId,
        snapshot,
        organization,
        lanes: o.lanes,
        samePool: () => resourcesOnPool(o.caches.allResources(), resource, o.azureDevOps.organizationKey),
        liveAgentPodNames: () => o.caches.liveAgentPodNames(),
        done: () => o.enqueue(key),
      });
      findings.problems.push(...step.problems);
      nextPlaceholderRun = step.nextDueAt;
    }

    // 7. Status.
    stageStart = performance.now();
    this.#writeStatus(raw, findings, snapshot, snapshot ? plan : undefined);
    stage("status");
    o.metrics.reconciles.inc({ result: "ok" });
    o.logger.debug("reconciled", { resource: key, actions: decided.actions.length, fresh: Boolean(snapshot) });
    const standbyDue = standby?.requeueAfterMs ?? Number.POSITIVE_INFINITY;
    if (!snapshot) return { requeueAfterMs: Math.min(o.resyncIntervalMs, standbyDue) };
    const placeholdersDue = nextPlaceholderRun === undefined ? Number.POSITIVE_INFINITY : nextPlaceholderRun;
    return { requeueAfterMs: Math.min(o.resyncIntervalMs, standbyDue, Math.max(1000, placeholdersDue - o.now())) };
  }

  /** The scale plan (sharing.ts, `planOnPool`), timed. */
  #plan(
    key: string,
    resource: Resource,
    snapshot: PoolSnapshot | undefined,
    pods: readonly ObservedPod[],
    endedJobs: ReadonlyMap<number, number>,
    standbyCounts?: readonly number[],
  ): ScalePlan {
    const started = performance.now();
    const plan = planOnPool(this.#sharing, {
      key,
      resource,
      snapshot,
      pods,
      endedJobs,
      standbyCounts,
      now: this.#o.now(),
      checkExtraAgentContainers: this.#o.pods.extraAgentContainersChecker(resource.spec),
    });
    this.#o.metrics.planDuration.observe((performance.now() - started) / 1000);
    return plan;
  }

  /**
   * A pod's POST answered (executor.ts, rule 1). Its expectation, if still open, becomes confirmed or unconfirmed
   * (the `listedAt` rule counts from now), or ends when refused. A failure is the template's create problem and is
   * reported by a reconcile 2 s later (which tries again: at most one failing POST per template every 2 s, not one
   * per answer); a success clears it and polls the pool soon, as the pod's agent will come online.
   */
  #createDone(key: string, memory: Memory, name: string, done: CreateDone): void {
    const o = this.#o;
    const e = memory.expected.get(name);
    if (e?.pending) {
      if (done.outcome === "refused") memory.expected.delete(name);
      else {
        const { pending: _, ...rest } = e;
        memory.expected.set(name, {
          ...rest,
          at: o.now(),
          confirmed: done.outcome === "created",
          ...(done.resourceVersion ? { resourceVersion: done.resourceVersion } : {}),
        });
      }
    }
    if (done.problem) {
      memory.createProblems.set(done.templateIndex, done.problem);
      o.enqueue(key, CREATE_RETRY_MS);
    } else {
      memory.createProblems.delete(done.templateIndex);
      memory.attached?.subscription.pollNow();
    }
  }

  /** Submits the status (written outside the reconcile: status.ts). */
  #writeStatus(raw: AutoScaledAgent, findings: Findings, snapshot?: PoolSnapshot, plan?: ScalePlan): void {
    writeStatus(raw, { findings, poolId: snapshot?.poolId, plan }, { ...this.#o, statusWrites: this.#statusWrites });
  }

  /** A resource being deleted: its cleanup (deletion.ts), one step per reconcile. */
  async #deleted(key: string, raw: AutoScaledAgent, memory: Memory): Promise<ReconcileResult> {
    const o = this.#o;
    this.#sharing.unavailable(key);
    this.#poolMetrics.unavailable(key);
    // Creates still waiting in their lane finish first: the cleanup then sees their pods.
    if ([...memory.expected.values()].some((e) => e.pending)) return { requeueAfterMs: 500 };
    if (!hasFinalizer(raw)) {
      this.#detach(memory);
      return undefined;
    }
    const v = validateAutoScaledAgent(raw);
    const resource = v.ok ? (v.value as Resource) : undefined;
    let target = memory.attached?.target;
    if (!target && resource) {
      const c = await o.credentials.resolve(key, resource);
      if (c.ok) {
        const { organizationUrl, poolName } = resource.spec;
        target = { organizationUrl, poolName, credential: c.credential };
      }
    }
    let pool: { target: PoolTarget; snapshot: PoolSnapshot } | undefined;
    if (target) {
      const subscription = this.#attach(key, memory, target);
      const snapshot = subscription.lastError() ? undefined : subscription.latest();
      if (snapshot) pool = { target, snapshot };
    }
    const next = await cleanUpDeleted(
      key,
      raw,
      { resource, credential: target ? "ok" : "missing", pool, state: memory.deletion },
      { ...o, cleanupTimeoutMs: o.cleanupTimeoutMs ?? 120_000 },
    );
    if (!next) this.#detach(memory);
    return next;
  }

  #memoryOf(key: string): Memory {
    let m = this.#memory.get(key);
    if (!m) {
      m = newMemory();
      this.#memory.set(key, m);
    }
    return m;
  }

  #attach(key: string, memory: Memory, target: PoolTarget): PoolSubscription {
    const fingerprint = JSON.stringify([
      target.organizationUrl,
      target.poolName,
      this.#o.azureDevOps.credentialKey(target.credential),
    ]);
    if (memory.attached?.fingerprint === fingerprint) return memory.attached.subscription;
    memory.attached?.subscription.release();
    // The poller reads the pool's agents every 30 s while some resource has live pods there, else rarely.
    const hasLivePods = () => {
      const uid = this.#o.caches.resource(key)?.metadata?.uid;
      return uid === undefined ? undefined : this.#o.caches.podsOf(uid).some((p) => !podHasEnded(p));
    };
    const subscription = this.#o.azureDevOps.subscribe(target, () => this.#o.enqueue(key), { hasLivePods });
    memory.attached = { fingerprint, target, subscription };
    return subscription;
  }

  #detach(memory: Memory): void {
    memory.attached?.subscription.release();
    delete memory.attached;
  }

  #forget(key: string): void {
    this.#sharing.forget(key);
    this.#poolMetrics.forget(key);
    const m = this.#memory.get(key);
    if (m) this.#detach(m);
    this.#memory.delete(key);
    this.#o.credentials.forget(key);
    this.#o.placeholders.forget(key);
    this.#o.standby?.forget(key);
    this.#statusWrites.forget(key);
  }
}
