/**
 * The reconciler of one AutoScaledAgent: observe (informer caches, the shared pool poll) -> plan (the pure core in
 * src/scaling) -> act (Kubernetes and Azure DevOps calls) -> status. Level-triggered: every decision is recomputed
 * from what is observed; the only memory is a short-lived list of pods created but not yet seen in the cache (so a
 * lagging cache never causes a second create) and which problems were already reported.
 */
import { randomBytes } from "node:crypto";
import {
  type AutoScaledAgent,
  type AutoScaledAgentStatus,
  podAnnotations as annotations,
  CLIENT_SECRET_KEY,
  type DefaultedAutoScaledAgent,
  PAT_SECRET_KEY,
  parseDuration,
  resourcePath,
  validateAutoScaledAgent,
} from "../api/v1/index.ts";
import { type Credential, identityKey, patCredential } from "../azure-devops/auth.ts";
import { normalizeOrganizationUrl } from "../azure-devops/client.ts";
import { entraIdCredential, entraIdOptionsFromSpec } from "../azure-devops/entra-id.ts";
import { isConflict, isNotFound, type KubeClient } from "../kube/client.ts";
import type { EventRecorder } from "../kube/events.ts";
import type { Metrics } from "../observability/metrics.ts";
import {
  type LastEnsure,
  placeholderSchedule,
  placeholderSetKey,
  placeholderSettings,
  wantedPlaceholders,
} from "../placeholders/plan.ts";
import { extraAgentContainersChecker } from "../pods/extra-containers.ts";
import { errorMessage, type Logger } from "../runtime/logger.ts";
import { jobsServedElsewhere } from "../scaling/arbitration.ts";
import { podName, podNamePrefix, podNameSuffix } from "../scaling/naming.ts";
import { planScaling } from "../scaling/plan.ts";
import type { ObservedPod, ScalePlan } from "../scaling/types.ts";
import { CacheVolumes, cacheState, type PvcObject, withClaims } from "./cache-volumes.ts";
import { deriveConditions, type Findings, setConditions } from "./conditions.ts";
import { observeAgent, observePod, type PodObject } from "./observe.ts";
import type { AzureDevOpsPort, PodFactory, PoolSnapshot, PoolSubscription, PoolTarget } from "./ports.ts";

export interface ReconcilerOptions {
  client: KubeClient;
  /** The cached resource, by key `namespace/name`. */
  getResource(key: string): AutoScaledAgent | undefined;
  /** The cached pods owned by the resource with this uid. */
  podsOf(namespace: string, uid: string): PodObject[];
  /** Every cached AutoScaledAgent (placeholders wanted by any resource on a pool are kept). */
  allResources(): AutoScaledAgent[];
  /** Names of every live agent pod in the cache, or undefined before the pod cache has synced. */
  liveAgentPodNames(): ReadonlySet<string> | undefined;
  /** How long an agent of a resource must have been offline before garbage collection may delete it. */
  offlineAgentGraceMs?: number;
  /** The cached PersistentVolumeClaims owned by the resource with this uid. */
  pvcsOf(namespace: string, uid: string): PvcObject[];
  azureDevOps: AzureDevOpsPort;
  pods: PodFactory;
  events: EventRecorder;
  metrics: Metrics;
  logger: Logger;
  /** Requeue a resource (when its pool poll changes). */
  enqueue(key: string): void;
  now(): number;
  random?: (bytes: number) => Uint8Array;
  /** Reconcile at least this often. */
  resyncIntervalMs: number;
  /** How long a created pod may be missing from the cache before it is forgotten. */
  expectationTtlMs?: number;
}

type Resource = DefaultedAutoScaledAgent & {
  metadata: { name: string; namespace: string; uid: string; generation?: number };
};

interface Attached {
  fingerprint: string;
  target: PoolTarget;
  subscription: PoolSubscription;
}

export type ReconcileResult = { requeueAfterMs: number } | undefined;

export class Reconciler {
  readonly #o: ReconcilerOptions;
  readonly #attached = new Map<string, Attached>();
  /** Pods created by this process, by resource key, until the cache shows them. */
  readonly #expected = new Map<string, Map<string, { at: number; pod: ObservedPod }>>();
  /** Job request ids already reported as unmatched, by resource key. */
  readonly #reported = new Map<string, Set<number>>();
  readonly #cache: CacheVolumes;
  /** When placeholders were last ensured and offline agents last collected, by resource key. */
  readonly #placeholderRuns = new Map<string, { lastEnsure?: LastEnsure; lastCollectAt?: number }>();
  /** Entra ID credentials by resource key (they cache and refresh their tokens). */
  readonly #entra = new Map<string, { fingerprint: string; credential: Credential }>();

  constructor(options: ReconcilerOptions) {
    this.#o = options;
    const random = options.random ?? ((n: number) => randomBytes(n));
    this.#cache = new CacheVolumes(options.client, options.now, () => podNameSuffix(random(16)));
  }

  /** Releases every pool subscription (shutdown, or leadership lost). */
  close(): void {
    for (const a of this.#attached.values()) a.subscription.release();
    this.#attached.clear();
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const raw = this.#o.getResource(key);
    if (!raw) {
      this.#detach(key);
      this.#expected.delete(key);
      this.#reported.delete(key);
      this.#entra.delete(key);
      this.#placeholderRuns.delete(key);
      return undefined;
    }
    if (raw.metadata?.deletionTimestamp) {
      this.#detach(key);
      return undefined;
    }
    const log = this.#o.logger;
    const findings: Findings = { problems: [] };
    const validation = validateAutoScaledAgent(raw);
    if (!validation.ok) {
      const message = validation.errors.join("; ");
      this.#o.events.warning(raw, "InvalidSpec", message, "Validate");
      this.#o.metrics.reconciles.inc({ result: "invalid" });
      findings.invalidSpec = message;
      this.#detach(key);
      await this.#writeStatus(raw, findings, undefined, undefined);
      return undefined;
    }
    const resource = validation.value as Resource;
    const credential = await this.#credential(key, resource, findings);
    if (credential === undefined) {
      this.#detach(key);
      await this.#writeStatus(raw, findings, undefined, undefined);
      return { requeueAfterMs: Math.min(this.#o.resyncIntervalMs, 30_000) };
    }
    const subscription = this.#attach(key, {
      organizationUrl: resource.spec.organizationUrl,
      poolName: resource.spec.poolName,
      credential,
    });
    const snapshot = subscription.latest();
    const problem = subscription.lastError();
    if (problem) {
      this.#o.metrics.azureDevOpsErrors.inc({ kind: problem.kind });
      const reason = azureDevOpsReason(problem.kind);
      findings.azureDevOps = { ok: false, reason, message: problem.message };
      this.#o.events.warning(raw, reason, problem.message, "PollAzureDevOps");
    }
    if (!snapshot) {
      await this.#writeStatus(raw, findings, undefined, undefined);
      return { requeueAfterMs: this.#o.resyncIntervalMs };
    }
    if (!problem) findings.azureDevOps = { ok: true, poolId: snapshot.poolId };

    const plan = this.#plan(key, resource, snapshot);
    await this.#act(key, resource, snapshot, plan, findings, subscription);
    const nextPlaceholderRun = await this.#placeholders(key, resource, snapshot, findings);
    await this.#writeStatus(raw, findings, snapshot, plan);
    this.#o.metrics.reconciles.inc({ result: "ok" });
    log.debug("reconciled", { resource: key, creates: plan.creates.length, removals: plan.removals.length });
    const untilPlaceholders = Math.max(1000, nextPlaceholderRun - this.#o.now());
    return { requeueAfterMs: Math.min(this.#o.resyncIntervalMs, untilPlaceholders) };
  }

  async #readSecretKey(
    ns: string,
    name: string,
    key: string,
    what: string,
    findings: Findings,
  ): Promise<string | undefined> {
    try {
      const secret = await this.#o.client.request<{ data?: Record<string, string> }>({
        path: `/api/v1/namespaces/${ns}/secrets/${encodeURIComponent(name)}`,
      });
      const value = secret.data?.[key];
      const text = value === undefined ? "" : Buffer.from(value, "base64").toString("utf8").trim();
      if (text) return text;
      findings.credentials = {
        reason: "SecretKeyMissing",
        message: `Secret ${ns}/${name} has no non-empty key "${key}" (${what})`,
      };
    } catch (err) {
      findings.credentials = isNotFound(err)
        ? { reason: "SecretNotFound", message: `Secret ${ns}/${name} (${what}) not found` }
        : { reason: "SecretUnreadable", message: `Secret ${ns}/${name} could not be read: ${errorMessage(err)}` };
    }
    return undefined;
  }

  /** The credential for Azure DevOps: the PAT of the Secret, or an Entra ID token provider (cached per resource). */
  async #credential(key: string, resource: Resource, findings: Findings): Promise<Credential | undefined> {
    const ns = resource.metadata.namespace;
    const patSecret = resource.spec.personalAccessTokenSecretName;
    const entra = resource.spec.entraIdAuthentication;
    let credential: Credential | undefined;
    if (patSecret) {
      const pat = await this.#readSecretKey(
        ns,
        patSecret,
        PAT_SECRET_KEY,
        "spec.personalAccessTokenSecretName: the Azure DevOps personal access token",
        findings,
      );
      if (pat !== undefined) credential = patCredential(pat);
    } else if (entra) {
      credential = await this.#entraCredential(key, resource, entra, findings);
    } else {
      findings.credentials = {
        reason: "NoCredentials",
        message: "set spec.personalAccessTokenSecretName or spec.entraIdAuthentication",
      };
    }
    const c = findings.credentials;
    if (c) this.#o.events.warning(this.#ref(resource), c.reason, c.message, "ReadCredentials");
    return credential;
  }

  async #entraCredential(
    key: string,
    resource: Resource,
    entra: NonNullable<Resource["spec"]["entraIdAuthentication"]>,
    findings: Findings,
  ): Promise<Credential | undefined> {
    const ns = resource.metadata.namespace;
    let secret: string | undefined;
    let fingerprint: string;
    const resolved: { clientSecret?: string; clientAssertion?: () => Promise<string> } = {};
    if (entra.clientSecretRef) {
      const ref = entra.clientSecretRef;
      secret = await this.#readSecretKey(
        ns,
        ref.name,
        ref.key ?? CLIENT_SECRET_KEY,
        "spec.entraIdAuthentication.clientSecretRef",
        findings,
      );
      if (secret === undefined) return undefined;
      resolved.clientSecret = secret;
      fingerprint = JSON.stringify([entra, identityKey(patCredential(secret))]);
    } else if (entra.workloadIdentity?.serviceAccountName) {
      const sa = entra.workloadIdentity.serviceAccountName;
      // The service account's token, audience api://AzureADTokenExchange, is the federated assertion.
      resolved.clientAssertion = async () => {
        const answer = await this.#o.client.request<{ status: { token: string } }>({
          method: "POST",
          path: `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`,
          body: {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenRequest",
            spec: { audiences: ["api://AzureADTokenExchange"], expirationSeconds: 3600 },
          },
        });
        return answer.status.token;
      };
      fingerprint = JSON.stringify([entra]);
    } else {
      fingerprint = JSON.stringify([entra]);
    }
    const cached = this.#entra.get(key);
    if (cached?.fingerprint === fingerprint) return cached.credential;
    try {
      const credential = entraIdCredential(entraIdOptionsFromSpec(entra, resolved, { logger: this.#o.logger }));
      this.#entra.set(key, { fingerprint, credential });
      return credential;
    } catch (err) {
      findings.credentials = { reason: "EntraIdMisconfigured", message: errorMessage(err) };
      return undefined;
    }
  }

  #attach(key: string, target: PoolTarget): PoolSubscription {
    const fingerprint = JSON.stringify([target.organizationUrl, target.poolName, identityKey(target.credential)]);
    const existing = this.#attached.get(key);
    if (existing?.fingerprint === fingerprint) return existing.subscription;
    existing?.subscription.release();
    const subscription = this.#o.azureDevOps.subscribe(target, () => this.#o.enqueue(key));
    this.#attached.set(key, { fingerprint, target, subscription });
    return subscription;
  }

  #detach(key: string): void {
    this.#attached.get(key)?.subscription.release();
    this.#attached.delete(key);
  }

  #ref(resource: Resource | AutoScaledAgent) {
    return {
      apiVersion: "azurepipelines.k8s.scaler.io/v1",
      kind: "AutoScaledAgent",
      namespace: resource.metadata?.namespace,
      name: resource.metadata?.name,
      uid: resource.metadata?.uid,
    };
  }

  #plan(key: string, resource: Resource, snapshot: PoolSnapshot): ScalePlan {
    const templates = resource.spec.podsWithCapabilities;
    const cached = this.#o.podsOf(resource.metadata.namespace, resource.metadata.uid);
    const observed = cached.map((p) => observePod(p, templates));
    // Pods created but not yet in the cache count as unscheduled pods, so they are never created twice.
    const expected = this.#expected.get(key);
    if (expected) {
      const now = this.#o.now();
      const ttl = this.#o.expectationTtlMs ?? 60_000;
      for (const [name, e] of expected) {
        if (observed.some((p) => p.name === name) || now - e.at > ttl) expected.delete(name);
        else observed.push(e.pod);
      }
    }
    const names = new Set(observed.map((p) => p.name));
    // Pending jobs another resource on the same pool serves better are left to it.
    const specs = templateSpecs(resource.spec);
    const others = this.#samePool(resource).map((r) => ({ key: r.key, templates: templateSpecs(r) }));
    const elsewhere = jobsServedElsewhere(snapshot.jobRequests, { key, templates: specs }, others);
    return planScaling({
      templates: specs,
      jobRequests:
        elsewhere.size > 0 ? snapshot.jobRequests.filter((j) => !elsewhere.has(j.requestId)) : snapshot.jobRequests,
      pods: observed,
      agents: snapshot.agents.filter((a) => names.has(a.name)).map(observeAgent),
      now: this.#o.now(),
      agentMinIdlePeriodMs: parseDuration(resource.spec.agentMinIdlePeriod),
      maxTerminatedPodsToKeep: resource.spec.maxTerminatedPodsToKeep,
      checkExtraAgentContainers: extraAgentContainersChecker(resource.spec.extraAgentContainers),
    });
  }

  async #act(
    key: string,
    resource: Resource,
    snapshot: PoolSnapshot,
    plan: ScalePlan,
    findings: Findings,
    subscription: PoolSubscription,
  ): Promise<void> {
    const ns = resource.metadata.namespace;
    const podsPath = `/api/v1/namespaces/${ns}/pods`;
    const metricLabels = { namespace: ns, name: resource.metadata.name };
    const ref = this.#ref(resource);
    const target = this.#attached.get(key)?.target;
    let changed = false;

    // Jobs no template can serve: reported once per job request.
    const reported = this.#reported.get(key) ?? new Set<number>();
    this.#reported.set(key, reported);
    for (const job of plan.unmatchedJobs) {
      findings.problems.push({ reason: "JobNotServed", message: `job request ${job.requestId}: ${job.message}` });
      if (reported.has(job.requestId)) continue;
      reported.add(job.requestId);
      this.#o.events.warning(ref, "JobNotServed", `job request ${job.requestId}: ${job.message}`, "Match");
    }
    const pending = new Set(snapshot.jobRequests.map((j) => j.requestId));
    for (const id of reported) if (!pending.has(id)) reported.delete(id);

    const pvcObjects = this.#o.pvcsOf(ns, resource.metadata.uid);
    const cachedPods = this.#o.podsOf(ns, resource.metadata.uid);
    let volumes = cacheState(resource, pvcObjects, cachedPods, this.#o.now());
    const pvcByName = new Map(pvcObjects.map((p) => [p.metadata.name, p]));
    for (const create of plan.creates) {
      const random = this.#o.random ?? ((n: number) => randomBytes(n));
      const name = podName(resource.metadata.name, podNameSuffix(random(16)));
      let cache: Awaited<ReturnType<CacheVolumes["prepare"]>>;
      try {
        cache = await this.#cache.prepare(resource, volumes, name, create.templateIndex, pvcByName);
      } catch (err) {
        cache = {
          ok: false,
          reason: "CacheVolumeFailed",
          message: `cache volume for pod ${name}: ${errorMessage(err)}`,
        };
      }
      if (!cache.ok) {
        const jobs = create.forRequestIds.length ? ` (job request ${create.forRequestIds.join(", ")} waits)` : "";
        findings.problems.push({ reason: cache.reason, message: `${cache.message}${jobs}` });
        this.#o.events.warning(ref, cache.reason, `${cache.message}${jobs}`, "CreatePod");
        continue;
      }
      volumes = withClaims(volumes, name, cache.mapping, this.#o.now());
      const built = this.#o.pods.build({ resource, create, podName: name, cacheVolumes: cache.mapping });
      if (!built.ok) {
        await this.#cache.release(ns, cache.claimed).catch(() => {});
        findings.problems.push({ reason: built.reason, message: built.message });
        this.#o.events.warning(ref, built.reason, built.message, "CreatePod");
        continue;
      }
      for (const w of built.warnings) this.#o.events.warning(ref, "PodTemplateAdjusted", w, "CreatePod");
      try {
        await this.#o.client.request({ method: "POST", path: podsPath, body: built.pod });
        changed = true;
        const expected = this.#expected.get(key) ?? new Map();
        this.#expected.set(key, expected);
        expected.set(name, {
          at: this.#o.now(),
          pod: {
            name,
            templateIndex: create.templateIndex,
            extraAgentContainers: create.extraAgentContainers,
            createdAtMs: this.#o.now(),
            phase: "Pending",
            scheduled: false,
            deleting: false,
            agentContainer: "unknown",
            otherContainers: [],
            createdForRequestIds: create.forRequestIds,
          },
        });
        this.#o.metrics.podsCreated.inc({ ...metricLabels, reason: create.reason });
        this.#o.events.normal(ref, "PodCreated", `created pod ${name}: ${create.message}`, "CreatePod");
      } catch (err) {
        await this.#cache.release(ns, cache.claimed).catch(() => {});
        const message = `creating pod ${name} failed: ${errorMessage(err)}`;
        findings.problems.push({ reason: "PodCreateFailed", message });
        this.#o.events.warning(ref, "PodCreateFailed", message, "CreatePod");
      }
    }

    for (const removal of plan.removals) {
      if (removal.agentId !== null && target) {
        const result = await this.#deleteAgent(target, snapshot.poolId, removal.agentId, findings);
        if (result === "refused") {
          this.#o.events.normal(
            ref,
            "ScaleDownDeferred",
            `agent ${removal.podName} could not be unregistered (it just took a job?); keeping its pod`,
            "DeletePod",
          );
          continue;
        }
        if (result === undefined) continue;
      }
      if (await this.#deletePod(ns, removal.podName, findings)) {
        changed = true;
        this.#o.metrics.podsDeleted.inc({ ...metricLabels, reason: removal.reason });
        this.#o.events.normal(ref, "PodDeleted", `deleted pod ${removal.podName}: ${removal.message}`, "DeletePod");
      }
    }

    for (const mark of plan.idleMarks) {
      await this.#patchPod(
        ns,
        mark.podName,
        {
          metadata: { annotations: { [annotations.idleSince]: mark.action === "set" ? String(mark.atMs) : null } },
        },
        findings,
      );
    }

    for (const stop of plan.stopSidecars) {
      const pod = this.#o.podsOf(ns, resource.metadata.uid).find((p) => p.metadata.name === stop.podName);
      const already = (pod?.metadata.annotations?.[annotations.sidecarsStopped] ?? "").split(",").filter(Boolean);
      const patch = this.#o.pods.stopSidecarsPatch(stop.containers) as { metadata?: Record<string, unknown> };
      const body = {
        ...patch,
        metadata: {
          ...patch.metadata,
          annotations: { [annotations.sidecarsStopped]: [...new Set([...already, ...stop.containers])].join(",") },
        },
      };
      if (await this.#patchPod(ns, stop.podName, body, findings, "application/strategic-merge-patch+json")) {
        this.#o.events.normal(
          ref,
          "SidecarsStopped",
          `agent of pod ${stop.podName} finished; stopping ${stop.containers.join(", ")}`,
          "StopSidecars",
        );
      }
    }

    for (const done of plan.deleteFinished) {
      if (await this.#deletePod(ns, done.podName, findings)) {
        changed = true;
        this.#o.metrics.podsDeleted.inc({ ...metricLabels, reason: "finished" });
      }
      if (done.agentId !== null && target) await this.#deleteAgent(target, snapshot.poolId, done.agentId, findings);
    }

    // Pods that cannot start (bad image, missing Secret...) are reported: they hold a maxCount slot.
    for (const pod of this.#o.podsOf(ns, resource.metadata.uid)) {
      const stuck = stuckContainer(pod);
      if (!stuck) continue;
      const message = `pod ${pod.metadata.name} cannot start: container ${stuck.name}: ${stuck.reason}${stuck.message ? ` (${stuck.message})` : ""}`;
      findings.problems.push({ reason: "PodStuck", message });
      this.#o.events.warning(ref, "PodStuck", message, "WatchPod");
    }

    if ((resource.spec.reusableCacheVolumes ?? []).length > 0) {
      try {
        findings.cacheVolumes = await this.#cache.sweep(
          ns,
          cacheState(
            resource,
            this.#o.pvcsOf(ns, resource.metadata.uid),
            this.#o.podsOf(ns, resource.metadata.uid),
            this.#o.now(),
          ),
        );
      } catch (err) {
        findings.problems.push({ reason: "CacheVolumeReleaseFailed", message: errorMessage(err) });
      }
    }

    for (const blocked of plan.blockedJobs.slice(0, 1)) {
      this.#o.events.normal(ref, "MaxCountReached", blocked.message, "CreatePod");
    }
    if (changed) subscription.pollNow();
  }

  /**
   * Contract point 8: one offline placeholder agent per capability set of the templates, so that jobs queue instead
   * of failing, and garbage collection of offline placeholders nobody wants and of agents this resource's pods left
   * behind. Returns when it is next due.
   */
  async #placeholders(key: string, resource: Resource, snapshot: PoolSnapshot, findings: Findings): Promise<number> {
    const target = this.#attached.get(key)?.target;
    if (!target) return this.#o.now() + this.#o.resyncIntervalMs;
    const now = this.#o.now();
    const settings = placeholderSettings(resource.spec);
    const runs = this.#placeholderRuns.get(key) ?? {};
    this.#placeholderRuns.set(key, runs);
    const wanted = wantedPlaceholders([{ key, ...resource.spec }]);
    const wantedKey = placeholderSetKey(wanted);
    const due = placeholderSchedule({
      now,
      wantedKey,
      lastEnsure: runs.lastEnsure,
      lastCollectAt: runs.lastCollectAt,
      collectIntervalMs: settings.collectIntervalMs,
    });
    const manager = this.#o.azureDevOps.placeholders(target);
    const ref = this.#ref(resource);
    if (due.ensure) {
      const r = await manager.ensure(snapshot.poolId, wanted, {
        existingAgentNames: snapshot.agents.map((a) => a.name),
      });
      runs.lastEnsure = {
        at: now,
        wantedKey,
        status: r.status,
        ...(r.retryAfterMs ? { retryAfterMs: r.retryAfterMs } : {}),
      };
      for (const name of r.registered)
        this.#o.events.normal(
          ref,
          "PlaceholderRegistered",
          `registered offline placeholder agent ${name}`,
          "RegisterPlaceholder",
        );
      if (r.problem) this.#o.events.warning(ref, r.problem.reason, r.problem.message, "RegisterPlaceholder");
    }
    const ensureProblem = runs.lastEnsure?.status === "ok" ? undefined : runs.lastEnsure?.status;
    if (ensureProblem === "forbidden") {
      findings.problems.push({
        reason: "PlaceholderRegistrationForbidden",
        message:
          "cannot register placeholder agents: the credential needs Agent Pools (Read & manage); scaling continues",
      });
    }
    if (due.collect) {
      // Placeholders wanted by any resource on the same pool are kept.
      const samePool = this.#samePool(resource);
      const r = await manager.collectGarbage(snapshot.poolId, {
        wantedNames: wantedPlaceholders(samePool).map((w) => w.name),
        podNames: this.#o.liveAgentPodNames(),
        resourcePodNamePrefixes: [podNamePrefix(resource.metadata.name)],
        jobRequests: snapshot.jobRequests,
        now,
        dummyAgentDeletionMinAgeMs: settings.dummyAgentDeletionMinAgeMs,
        normalOfflineAgentDeletionMinAgeMs: settings.normalOfflineAgentDeletionMinAgeMs,
        ...(this.#o.offlineAgentGraceMs !== undefined ? { offlineGraceMs: this.#o.offlineAgentGraceMs } : {}),
      });
      runs.lastCollectAt = now;
      if (r.deleted.length > 0) {
        this.#o.events.normal(
          ref,
          "OfflineAgentsDeleted",
          `deleted offline agents: ${r.deleted.join(", ")}`,
          "CollectAgents",
        );
      }
      if (r.problem) {
        findings.problems.push(r.problem);
        this.#o.events.warning(ref, r.problem.reason, r.problem.message, "CollectAgents");
      }
    }
    return placeholderSchedule({
      now: this.#o.now(),
      wantedKey,
      lastEnsure: runs.lastEnsure,
      lastCollectAt: runs.lastCollectAt,
      collectIntervalMs: settings.collectIntervalMs,
    }).nextDueAt;
  }

  /** Every valid resource (this one included) on the same organization and pool, with its key. */
  #samePool(resource: Resource): (DefaultedAutoScaledAgent["spec"] & { key: string })[] {
    return this.#o.allResources().flatMap((r) => {
      const v = validateAutoScaledAgent(r);
      if (!v.ok || r.metadata?.deletionTimestamp) return [];
      const spec = v.value.spec;
      const same =
        sameOrganization(spec.organizationUrl, resource.spec.organizationUrl) &&
        spec.poolName.toLowerCase() === resource.spec.poolName.toLowerCase();
      return same ? [{ key: `${r.metadata?.namespace}/${r.metadata?.name}`, ...spec }] : [];
    });
  }

  async #deleteAgent(target: PoolTarget, poolId: number, agentId: number, findings: Findings) {
    try {
      return await this.#o.azureDevOps.deleteAgent(target, poolId, agentId);
    } catch (err) {
      findings.problems.push({
        reason: "AgentDeleteFailed",
        message: `deleting agent ${agentId} failed: ${errorMessage(err)}`,
      });
      return undefined;
    }
  }

  async #deletePod(ns: string, name: string, findings: Findings): Promise<boolean> {
    try {
      await this.#o.client.request({ method: "DELETE", path: `/api/v1/namespaces/${ns}/pods/${name}` });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      findings.problems.push({
        reason: "PodDeleteFailed",
        message: `deleting pod ${name} failed: ${errorMessage(err)}`,
      });
      return false;
    }
  }

  async #patchPod(
    ns: string,
    name: string,
    body: unknown,
    findings: Findings,
    contentType = "application/merge-patch+json",
  ): Promise<boolean> {
    try {
      await this.#o.client.request({
        method: "PATCH",
        path: `/api/v1/namespaces/${ns}/pods/${name}`,
        contentType,
        body,
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      findings.problems.push({
        reason: "PodUpdateFailed",
        message: `updating pod ${name} failed: ${errorMessage(err)}`,
      });
      return false;
    }
  }

  async #writeStatus(
    raw: AutoScaledAgent,
    findings: Findings,
    snapshot: PoolSnapshot | undefined,
    plan: ScalePlan | undefined,
  ): Promise<void> {
    const ns = raw.metadata?.namespace ?? "";
    const name = raw.metadata?.name ?? "";
    const previous = raw.status;
    const generation = raw.metadata?.generation;
    const status: AutoScaledAgentStatus = {
      ...previous,
      conditions: setConditions(
        previous?.conditions,
        deriveConditions(findings),
        new Date(this.#o.now()).toISOString().replace(/\.\d+Z$/, "Z"),
        generation,
      ),
    };
    if (generation !== undefined) status.observedGeneration = generation;
    if (snapshot) status.poolId = snapshot.poolId;
    if (findings.cacheVolumes) status.cacheVolumes = findings.cacheVolumes;
    if (plan) {
      const sum = (f: (t: ScalePlan["templates"][number]) => number) => plan.templates.reduce((n, t) => n + f(t), 0);
      status.pendingJobs = sum((t) => t.pendingJobs);
      status.pods = {
        starting: sum((t) => t.starting),
        idle: sum((t) => t.idle),
        busy: sum((t) => t.busy),
        finished: sum((t) => t.finished),
      };
      status.templates = plan.templates.map((t) => ({
        index: t.templateIndex,
        pendingJobs: t.pendingJobs,
        pods: { starting: t.starting, idle: t.idle, busy: t.busy, finished: t.finished },
      }));
      this.#o.metrics.pendingJobs.set({ namespace: ns, name }, status.pendingJobs);
      for (const state of ["starting", "idle", "busy", "finishing", "terminating", "finished"] as const) {
        this.#o.metrics.agentPods.set(
          { namespace: ns, name, state },
          sum((t) => t[state]),
        );
      }
    }
    if (JSON.stringify(stripTimes(status)) === JSON.stringify(stripTimes(previous ?? {}))) return;
    try {
      await this.#o.client.request({
        method: "PATCH",
        path: `${resourcePath(ns, name)}/status`,
        contentType: "application/merge-patch+json",
        body: { status },
      });
    } catch (err) {
      if (isNotFound(err)) return;
      if (isConflict(err)) return;
      this.#o.logger.warn("status update failed", { resource: `${ns}/${name}`, error: errorMessage(err) });
    }
  }
}

const stuckReasons = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
  "CrashLoopBackOff",
]);

/** The first container of a pod that waits for a reason it will not get over by itself. */
export function stuckContainer(pod: PodObject): { name: string; reason: string; message?: string } | undefined {
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const s of statuses) {
    const waiting = s.state?.waiting as { reason?: string; message?: string } | undefined;
    if (waiting?.reason && stuckReasons.has(waiting.reason)) {
      return { name: s.name, reason: waiting.reason, ...(waiting.message ? { message: waiting.message } : {}) };
    }
  }
  return undefined;
}

/** The scaling core's view of a spec's templates. */
function templateSpecs(spec: DefaultedAutoScaledAgent["spec"]) {
  return spec.podsWithCapabilities.map((t) => ({
    capabilities: t.capabilities as Record<string, string>,
    minCount: t.minCount,
    maxCount: t.maxCount,
  }));
}

/** Organization URLs compared as the pollers share them (normalised, case-insensitive). */
function sameOrganization(a: string, b: string): boolean {
  try {
    return normalizeOrganizationUrl(a).toLowerCase() === normalizeOrganizationUrl(b).toLowerCase();
  } catch {
    return a === b;
  }
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
