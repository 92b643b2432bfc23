/**
 * The operator process: informers on AutoScaledAgents and on the pods and PVCs it manages, a work queue of resource
 * keys, leader election (only the leader reconciles; a replica that loses the lease exits so it restarts clean), the
 * reconciler with its ports, and the metrics/health server.
 *
 * Shutdown order matters: the workers stop (in-flight reconciles are aborted between actions and awaited) before the
 * lease is released, so the next leader never acts while this one still does.
 */
import { randomBytes } from "node:crypto";
import {
  API_VERSION,
  type AutoScaledAgent,
  KIND,
  labels,
  MANAGED_BY_VALUE,
  PLURAL,
  REPORTING_CONTROLLER,
} from "../api/v1/index.ts";
import { type CredentialSource, HOOK_OUTCOMES, type OrganizationPolls, startHookServer } from "../hooks/server.ts";
import type { KubeClient } from "../kube/client.ts";
import { EventRecorder } from "../kube/events.ts";
import { controllerOwnerKeys, enqueueHandler, Informer, withoutManagedFields } from "../kube/informer.ts";
import { LeaderElector, leaderIdentity } from "../kube/leaderelection.ts";
import { listWatchFor } from "../kube/listwatch.ts";
import { mergePatch } from "../kube/patch.ts";
import { resourcePath } from "../kube/resource.ts";
import type { KubeObject } from "../kube/types.ts";
import { WorkQueue } from "../kube/workqueue.ts";
import type { StructuredLogger } from "../observability/logger.ts";
import { createMetrics, type Metrics } from "../observability/metrics.ts";
import { type HealthCheck, startObservabilityServer } from "../observability/server.ts";
import { DEFAULT_PREPULL_IMAGES } from "../prepull/plan.ts";
import { sameItems } from "../runtime/compare.ts";
import { podNameSuffix } from "../scaling/naming.ts";
import { CacheVolumes } from "./cache-volumes.ts";
import { CredentialResolver } from "./credentials.ts";
import { POD_WRITES_IN_FLIGHT } from "./executor.ts";
import { kubeWriter } from "./kube-writer.ts";
import { Lanes } from "./lanes.ts";
import { LeaderPodLabel } from "./leader-label.ts";
import { PlaceholderWork } from "./placeholders.ts";
import { agentPodView } from "./pod-view.ts";
import type { CredentialPolicy } from "./policy.ts";
import type { AzureDevOpsPort, Caches, PodFactory, PodObject, PvcObject } from "./ports.ts";
import { PrePullController, type PrePullSettings } from "./prepull.ts";
import { Reconciler } from "./reconciler.ts";
import { recordTokenRequest } from "./request-metrics.ts";
import { StandbyWork } from "./standby.ts";
import { configMapHistoryStore, standbyClock } from "./standby-store.ts";

/** What the operator process is told (the CLI's configuration carries these and more). */
/** How long pod (and PVC) events of a resource are gathered before its reconcile. */
export const POD_EVENT_BATCH_MS = 250;

export interface OperatorSettings {
  /** Namespaces to watch; empty: all namespaces. */
  namespaces: string[];
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Identity of this replica (pod name). */
  identity: string;
  bindAddress: string;
  /** Port of /metrics, /healthz, /readyz; 0 picks a free one. */
  port: number;
  workers: number;
  /** Periodic reconcile of every resource even without changes. */
  resyncIntervalMs: number;
  /** How long an agent of a resource must have been offline before garbage collection may delete it. */
  offlineAgentGraceMs: number;
  /** Azure DevOps writes (agent deletions, placeholder work) running at once per organization. */
  azureDevOpsConcurrency: number;
  /** First wait before a template's next pod after its agent exited with an error without a job (doubles). */
  agentFailureBackoffMs: number;
  /** How long the cleanup of a deleted resource may hold its deletion. */
  cleanupTimeoutMs: number;
  /** Where credentials may be sent, who may use the operator's identity (policy.ts); default: the safe defaults. */
  credentialPolicy?: CredentialPolicy;
  /** Image pre-pull DaemonSets (`--image-prepull`, src/controller/prepull.ts); omitted: off. */
  imagePrePull?: PrePullSettings;
  /** Predictive standby: a resource's history ConfigMap is written at most this often (default 1 min). */
  standbyHistoryWriteIntervalMs?: number;
  /** For tests only: the clock standby schedules and histories are read in starts here and runs at this rate. */
  standbyClock?: { startMs: number; rate: number };
  /** The service hook endpoint (src/hooks) on `bindAddress`; omitted: off. */
  serviceHooks?: { port: number; debounceMs: number };
  /** The pod this replica runs in (`POD_NAME`, `POD_NAMESPACE`): it carries the leader label (leader-label.ts). */
  ownPod?: { name: string; namespace: string };
}

export interface OperatorDeps {
  config: OperatorSettings;
  client: KubeClient;
  logger: StructuredLogger;
  azureDevOps: AzureDevOpsPort;
  pods: PodFactory;
  /** The metrics registry (the Azure DevOps port's request observer writes to it too); default: a new one. */
  metrics?: Metrics;
  now?: () => number;
  /** Called when leadership is lost (default: exit the process so it restarts clean). */
  onLeadershipLost?: () => void;
  /** What the service hook endpoint needs, when `config.serviceHooks` is set: its credentials and the pollers. */
  serviceHooks?: { credentials: CredentialSource; target: OrganizationPolls };
}

export interface RunningOperator {
  port: number;
  /** Port of the service hook endpoint, when it is on. */
  serviceHookPort?: number;
  stop(): Promise<void>;
}

const ownerIndex = "owner";
const ownerUids = (o: KubeObject) =>
  (o.metadata?.ownerReferences ?? []).filter((r) => r.kind === KIND).map((r) => r.uid);

export async function startOperator(deps: OperatorDeps): Promise<RunningOperator> {
  const { config, client, logger } = deps;
  const now = deps.now ?? Date.now;
  const metrics = deps.metrics ?? createMetrics();
  const namespaces = config.namespaces.length > 0 ? config.namespaces : [""];
  const managed = `${labels.managedBy}=${MANAGED_BY_VALUE}`;
  const informersOf = <T extends KubeObject>(
    resource: string,
    apiVersion: string,
    labelSelector?: string,
    transform: (obj: T) => T = withoutManagedFields,
  ) =>
    namespaces.map(
      (ns) =>
        new Informer<T>({
          name: `${resource}${ns ? `-${ns}` : ""}`,
          listWatch: listWatchFor(client, {
            resource: { apiVersion, resource },
            namespace: ns,
            ...(labelSelector ? { labelSelector } : {}),
          }),
          logger: logger.child({ informer: resource }),
          transform,
          ...(labelSelector ? { indexers: { [ownerIndex]: ownerUids } } : {}),
        }),
    );
  const asaInformers = informersOf<AutoScaledAgent & KubeObject>(PLURAL, API_VERSION);
  // Agent pods are cached as the reconciler reads them (pod-view.ts): a fraction of their size.
  const podInformers = informersOf<PodObject & KubeObject>("pods", "v1", managed, agentPodView);
  const pvcInformers = informersOf<PvcObject & KubeObject>("persistentvolumeclaims", "v1", managed);

  const joinResources = keptJoin<AutoScaledAgent>();
  const caches: Caches = {
    resource: (key) => asaInformers.map((inf) => inf.store.get(key)).find((o) => o !== undefined),
    allResources: () => joinResources(asaInformers.map((inf) => inf.store.all())),
    podsOf: (uid) => joined(podInformers, (inf) => inf.store.byIndex(ownerIndex, uid)),
    pvcsOf: (uid) => joined(pvcInformers, (inf) => inf.store.byIndex(ownerIndex, uid)),
    podsListedAt: () => {
      const times = podInformers.map((inf) => inf.health().lastListStartTime);
      return times.every((t) => t !== undefined) ? Math.min(...(times as number[])) : undefined;
    },
    liveAgentPodNames: () => {
      if (!podInformers.every((inf) => inf.hasSynced())) return undefined;
      const live = podInformers
        .flatMap((inf) => inf.store.list())
        .filter((p) => !["Succeeded", "Failed"].includes(p.status?.phase ?? ""));
      return new Set(live.map((p) => p.metadata.name));
    },
  };

  const queue = new WorkQueue({ name: "autoscaledagents", logger: logger.child({ component: "workqueue" }) });
  const events = new EventRecorder({
    client,
    reportingController: REPORTING_CONTROLLER,
    reportingInstance: config.identity.slice(0, 128),
    logger: logger.child({ component: "events" }),
  });
  const kube = kubeWriter(client);
  const suffix = () => podNameSuffix(randomBytes(16));
  const lanes = new Lanes({ concurrency: config.azureDevOpsConcurrency });
  const podLanes = new Lanes({ concurrency: POD_WRITES_IN_FLIGHT });
  const reconciler = new Reconciler({
    caches,
    kube,
    azureDevOps: deps.azureDevOps,
    credentials: new CredentialResolver({
      client,
      logger: logger.child({ component: "credentials" }),
      ...(config.credentialPolicy ? { policy: config.credentialPolicy } : {}),
      onTokenRequest: (observation) => recordTokenRequest(metrics, observation),
    }),
    pods: deps.pods,
    events,
    metrics,
    logger: logger.child({ component: "reconciler" }),
    cacheVolumes: new CacheVolumes(kube, now, suffix),
    placeholders: new PlaceholderWork({
      azureDevOps: deps.azureDevOps,
      events,
      now,
      offlineAgentGraceMs: config.offlineAgentGraceMs,
    }),
    lanes,
    podLanes,
    standby: new StandbyWork({
      store: configMapHistoryStore(client),
      events,
      clock: standbyClock(now, config.standbyClock),
      realNow: now,
      writeIntervalMs: config.standbyHistoryWriteIntervalMs ?? 60_000,
      logger: logger.child({ component: "standby" }),
    }),
    enqueue: (key, afterMs) => (afterMs ? queue.addAfter(key, afterMs) : queue.add(key)),
    now,
    suffix,
    resyncIntervalMs: config.resyncIntervalMs,
    agentFailureBackoffMs: config.agentFailureBackoffMs,
    cleanupTimeoutMs: config.cleanupTimeoutMs,
  });

  // Triggers: a resource added or deleted, or its generation or deletion changed; any change to one of its pods;
  // an update to one of its PVCs. Pool polls enqueue through the reconciler's subscriptions.
  const resourceHandler = enqueueHandler<AutoScaledAgent & KubeObject>(queue);
  for (const inf of asaInformers) {
    inf.addHandler({
      ...resourceHandler,
      onUpdate: (old, o) => {
        const changed =
          old.metadata?.generation !== o.metadata?.generation ||
          old.metadata?.deletionTimestamp !== o.metadata?.deletionTimestamp;
        if (changed) resourceHandler.onUpdate?.(old, o);
      },
    });
  }
  const ownerKeys = controllerOwnerKeys(KIND);
  // Pod events are batched: the first event of a resource's pods asks for a reconcile POD_EVENT_BATCH_MS later, and
  // the events until then join it. A burst's 200 pods change about 1,000 times in 10 s; one reconcile per change
  // would plan the pool 4,000 times a minute (pod writes run outside the reconcile, so nothing else batches them).
  const batched = { add: (key: string) => queue.addAfter(key, POD_EVENT_BATCH_MS) };
  const podEvents = enqueueHandler<PodObject & KubeObject>(batched, (p) => {
    const keys = ownerKeys(p);
    for (const key of keys) reconciler.podObserved(key, p.metadata.name);
    return keys;
  });
  for (const inf of podInformers) inf.addHandler(podEvents);
  for (const inf of pvcInformers) inf.addHandler({ onUpdate: enqueueHandler(batched, ownerKeys).onUpdate });

  // Image pre-pull: a loop of its own, on the same resources (and DaemonSet and pod informers when enabled).
  const prePull = new PrePullController({
    client,
    logger: logger.child({ component: "image-prepull" }),
    events,
    settings: config.imagePrePull ?? { enabled: false, ...DEFAULT_PREPULL_IMAGES },
    namespaces,
    resourceInformers: asaInformers,
    resyncIntervalMs: config.resyncIntervalMs,
  });

  const informers = [...asaInformers, ...podInformers, ...pvcInformers];
  // The pre-pull informers are optional: scaling and readiness never wait for them (e.g. RBAC on DaemonSets missing).
  const liveness: HealthCheck[] = [...informers, ...prePull.informers].map((inf) => ({
    name: `informer ${inf.name}`,
    check: () => {
      const h = inf.health();
      metrics.informerRestarts.set({ informer: inf.name }, h.restarts);
      return h.running ? undefined : "stopped";
    },
  }));
  const readiness: HealthCheck[] = informers.map((inf) => ({
    name: `informer ${inf.name}`,
    check: () => (inf.hasSynced() ? undefined : "not synced yet"),
  }));
  const server = await startObservabilityServer({
    host: config.bindAddress,
    port: config.port,
    registry: metrics.registry,
    liveness,
    readiness,
  });
  // Service hooks: a port of its own, so that only it is exposed to Azure DevOps (never /metrics).
  let hookServer: Awaited<ReturnType<typeof startHookServer>> | undefined;
  if (config.serviceHooks) {
    if (!deps.serviceHooks) throw new Error("the service hook endpoint needs its credentials and pollers");
    for (const outcome of HOOK_OUTCOMES) metrics.serviceHookDeliveries.inc({ outcome }, 0);
    hookServer = await startHookServer({
      host: config.bindAddress,
      port: config.serviceHooks.port,
      debounceMs: config.serviceHooks.debounceMs,
      credentials: deps.serviceHooks.credentials,
      target: deps.serviceHooks.target,
      onOutcome: (outcome) => metrics.serviceHookDeliveries.inc({ outcome }),
      logger: logger.child({ component: "service-hooks" }),
    });
    logger.info("service hook endpoint listening", {
      port: hookServer.port,
      path: "/hooks/azure-devops/<organization>",
    });
  }
  const queueGauge = setInterval(() => metrics.workQueueDepth.set(queue.length), 5000);
  queueGauge.unref();

  for (const inf of [...informers, ...prePull.informers]) inf.start();
  await Promise.all(informers.map((inf) => inf.waitForSync()));
  logger.info("caches synced", { namespaces: config.namespaces.length ? config.namespaces : "all" });

  let running: Promise<void> | undefined;
  /**
   * A new leader acts only on caches it knows are current: their watches may have stalled silently while this
   * replica stood by (the watchdog notices only after minutes), so every informer lists again first (bounded: a
   * list that cannot finish in 30 s is waited for no longer; the watchdog and expectations still apply).
   */
  const startReconciling = async () => {
    metrics.leader.set(1);
    const fresh = await Promise.race([
      Promise.all(informers.map((inf) => inf.relist())).then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 30_000).unref()),
    ]);
    if (stopping) return;
    logger.info("reconciling", { workers: config.workers, cachesRelisted: fresh });
    running = queue.run(
      async (key, signal) => {
        const started = performance.now();
        try {
          return await reconciler.reconcile(key, signal);
        } catch (err) {
          metrics.reconciles.inc({ result: "error" });
          logger.error("reconcile failed", { resource: key, error: err });
          throw err;
        } finally {
          metrics.reconcileDuration.observe((performance.now() - started) / 1000);
        }
      },
      { workers: config.workers },
    );
    for (const inf of asaInformers)
      for (const o of inf.store.list()) queue.add(`${o.metadata?.namespace}/${o.metadata?.name}`);
    prePull.start();
  };

  // Rule 1 of leader-label.ts: "false" at start, "true" while leading, "false" after the lease is given up.
  const ownPod = config.ownPod;
  const leaderLabel = ownPod
    ? new LeaderPodLabel({
        logger: logger.child({ component: "leader-label" }),
        write: (patch) => mergePatch(client, resourcePath({ apiVersion: "v1", resource: "pods" }, ownPod), patch),
      })
    : undefined;
  let stopping = false;
  let leading = !config.leaderElect;
  leaderLabel?.set(leading);
  let elector: LeaderElector | undefined;
  if (config.leaderElect) {
    elector = new LeaderElector({
      client,
      namespace: config.leaderElectionNamespace,
      name: config.leaderElectionName,
      identity: leaderIdentity(config.identity),
      leaseDurationMs: config.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs,
      logger: logger.child({ component: "leader-election" }),
      onStartedLeading: () => {
        leading = true;
        leaderLabel?.set(true);
        void startReconciling();
      },
      onStoppedLeading: () => {
        metrics.leader.set(0);
        if (stopping || !leading) return;
        leading = false;
        logger.error("leader lease lost: stopping so that this replica restarts clean");
        (deps.onLeadershipLost ?? (() => process.exit(1)))();
      },
      onNewLeader: (id) => logger.info("leader", { identity: id }),
    });
    elector.start();
  } else {
    void startReconciling();
  }

  return {
    port: server.port,
    ...(hookServer ? { serviceHookPort: hookServer.port } : {}),
    async stop() {
      stopping = true;
      clearInterval(queueGauge);
      await hookServer?.close();
      // Workers first: abort in-flight reconciles and wait for them and their writes, then give the lease up.
      await queue.shutdown({ drain: false });
      await running;
      await Promise.all([lanes.close(), podLanes.close(), reconciler.writesDone()]);
      await prePull.stop();
      reconciler.close();
      await elector?.stop();
      leaderLabel?.set(false);
      await leaderLabel?.idle();
      leaderLabel?.close();
      await Promise.all([...informers, ...prePull.informers].map((inf) => inf.stop()));
      await server.close();
    },
  };
}

/**
 * The lists of several informers as one: the one non-empty list itself when there is one (an owner's objects are
 * in one namespace), so that what is kept by list (the stores keep an answer until it changes) stays found.
 */
function joined<S, T>(sources: readonly S[], listOf: (source: S) => readonly T[]): readonly T[] {
  // Every plan asks for the pods of each resource on its pool: no array is made unless two lists have objects.
  let one: readonly T[] | undefined;
  let many: T[] | undefined;
  for (const source of sources) {
    const list = listOf(source);
    if (list.length === 0) continue;
    if (one === undefined) one = list;
    else {
      many ??= [...one];
      for (const o of list) many.push(o);
    }
  }
  return many ?? one ?? NO_OBJECTS;
}

const NO_OBJECTS: readonly never[] = Object.freeze([]);

/**
 * `joined`, answering with the same array while every list is the same: the resources of several namespaces, which
 * every plan reads (sharing.ts keeps its pool members by this array).
 */
function keptJoin<T>(): (lists: readonly (readonly T[])[]) => readonly T[] {
  let last: { lists: readonly (readonly T[])[]; out: readonly T[] } | undefined;
  return (lists) => {
    if (last !== undefined && sameItems(last.lists, lists)) return last.out;
    const out = joined(lists, (l) => l);
    last = { lists, out };
    return out;
  };
}
