/**
 * The operator process: informers on AutoScaledAgents and on the pods it manages, a work queue of resource keys,
 * leader election (only the leader reconciles; a replica that loses the lease exits so it restarts clean), the
 * reconciler, and the metrics/health server.
 */
import {
  API_VERSION,
  type AutoScaledAgent,
  labels,
  MANAGED_BY_VALUE as managedByValue,
  PLURAL,
  REPORTING_CONTROLLER,
} from "../api/v1/index.ts";
import type { OperatorConfig } from "../cli/config.ts";
import type { KubeClient } from "../kube/client.ts";
import { EventRecorder } from "../kube/events.ts";
import { Informer } from "../kube/informer.ts";
import { LeaderElector, leaderIdentity } from "../kube/leaderelection.ts";
import { listWatchFor } from "../kube/listwatch.ts";
import type { KubeObject } from "../kube/types.ts";
import { WorkQueue } from "../kube/workqueue.ts";
import type { StructuredLogger } from "../observability/logger.ts";
import { createMetrics } from "../observability/metrics.ts";
import { type HealthCheck, startObservabilityServer } from "../observability/server.ts";
import type { PvcObject } from "./cache-volumes.ts";
import type { PodObject } from "./observe.ts";
import type { AzureDevOpsPort, PodFactory } from "./ports.ts";
import { Reconciler } from "./reconciler.ts";

export interface OperatorDeps {
  config: OperatorConfig;
  client: KubeClient;
  logger: StructuredLogger;
  azureDevOps: AzureDevOpsPort;
  pods: PodFactory;
  now?: () => number;
  /** Called when leadership is lost (default: exit the process so it restarts clean). */
  onLeadershipLost?: () => void;
}

export interface RunningOperator {
  port: number;
  stop(): Promise<void>;
}

const ownerIndex = "owner";

function ownerKey(obj: KubeObject): string | undefined {
  const owner = obj.metadata?.ownerReferences?.find((o) => o.kind === "AutoScaledAgent" && o.controller);
  return owner ? `${obj.metadata?.namespace}/${owner.name}` : undefined;
}

export async function startOperator(deps: OperatorDeps): Promise<RunningOperator> {
  const { config, client, logger } = deps;
  const now = deps.now ?? Date.now;
  const metrics = createMetrics();
  const namespaces = config.namespaces.length > 0 ? config.namespaces : [""];
  const asaInformers = namespaces.map(
    (ns) =>
      new Informer<AutoScaledAgent & KubeObject>({
        name: `autoscaledagents${ns ? `-${ns}` : ""}`,
        listWatch: listWatchFor(client, { resource: { apiVersion: API_VERSION, resource: PLURAL }, namespace: ns }),
        logger: logger.child({ informer: "autoscaledagents" }),
      }),
  );
  const podInformers = namespaces.map(
    (ns) =>
      new Informer<PodObject & KubeObject>({
        name: `pods${ns ? `-${ns}` : ""}`,
        listWatch: listWatchFor(client, {
          resource: { apiVersion: "v1", resource: "pods" },
          namespace: ns,
          labelSelector: `${labels.managedBy}=${managedByValue}`,
        }),
        logger: logger.child({ informer: "pods" }),
        indexers: {
          [ownerIndex]: (p) =>
            (p.metadata?.ownerReferences ?? []).filter((o) => o.kind === "AutoScaledAgent").map((o) => o.uid),
        },
      }),
  );
  const pvcInformers = namespaces.map(
    (ns) =>
      new Informer<PvcObject>({
        name: `persistentvolumeclaims${ns ? `-${ns}` : ""}`,
        listWatch: listWatchFor(client, {
          resource: { apiVersion: "v1", resource: "persistentvolumeclaims" },
          namespace: ns,
          labelSelector: `${labels.managedBy}=${managedByValue}`,
        }),
        logger: logger.child({ informer: "persistentvolumeclaims" }),
        indexers: {
          [ownerIndex]: (p) =>
            (p.metadata?.ownerReferences ?? []).filter((o) => o.kind === "AutoScaledAgent").map((o) => o.uid),
        },
      }),
  );
  const queue = new WorkQueue({ name: "autoscaledagents", logger: logger.child({ component: "workqueue" }) });
  const events = new EventRecorder({
    client,
    reportingController: REPORTING_CONTROLLER,
    reportingInstance: config.identity.slice(0, 128),
    logger: logger.child({ component: "events" }),
  });
  const reconciler = new Reconciler({
    client,
    getResource: (key) => {
      for (const inf of asaInformers) {
        const obj = inf.store.get(key);
        if (obj) return obj;
      }
      return undefined;
    },
    podsOf: (_ns, uid) => podInformers.flatMap((inf) => inf.store.byIndex(ownerIndex, uid)),
    pvcsOf: (_ns, uid) => pvcInformers.flatMap((inf) => inf.store.byIndex(ownerIndex, uid)),
    allResources: () => asaInformers.flatMap((inf) => inf.store.list()),
    liveAgentPodNames: () => {
      if (!podInformers.every((inf) => inf.hasSynced())) return undefined;
      const live = podInformers
        .flatMap((inf) => inf.store.list())
        .filter((p) => !["Succeeded", "Failed"].includes(p.status?.phase ?? ""));
      return new Set(live.map((p) => p.metadata.name));
    },
    offlineAgentGraceMs: config.offlineAgentGraceMs,
    azureDevOps: deps.azureDevOps,
    pods: deps.pods,
    events,
    metrics,
    logger: logger.child({ component: "reconciler" }),
    enqueue: (key) => queue.add(key),
    now,
    resyncIntervalMs: config.resyncIntervalMs,
  });

  const keyOf = (o: KubeObject) => `${o.metadata?.namespace}/${o.metadata?.name}`;
  for (const inf of asaInformers) {
    inf.addHandler({
      onAdd: (o) => queue.add(keyOf(o)),
      onUpdate: (old, o) => {
        const changed =
          old.metadata?.generation !== o.metadata?.generation ||
          old.metadata?.deletionTimestamp !== o.metadata?.deletionTimestamp;
        if (changed) queue.add(keyOf(o));
      },
      onDelete: (o) => queue.add(keyOf(o)),
    });
  }
  for (const inf of podInformers) {
    const enqueueOwner = (p: KubeObject) => {
      const key = ownerKey(p);
      if (key) queue.add(key);
    };
    inf.addHandler({ onAdd: enqueueOwner, onUpdate: (_o, p) => enqueueOwner(p), onDelete: enqueueOwner });
  }

  let leading = !config.leaderElect;
  for (const inf of pvcInformers) {
    inf.addHandler({
      onUpdate: (_o, p) => {
        const key = ownerKey(p);
        if (key) queue.add(key);
      },
    });
  }
  const informers = [...asaInformers, ...podInformers, ...pvcInformers];
  const liveness: HealthCheck[] = informers.map((inf) => ({
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
  const queueGauge = setInterval(() => metrics.workQueueDepth.set(queue.length), 5000);
  queueGauge.unref();

  for (const inf of informers) inf.start();
  await Promise.all(informers.map((inf) => inf.waitForSync()));
  logger.info("caches synced", { namespaces: config.namespaces.length ? config.namespaces : "all" });

  let running: Promise<void> | undefined;
  const startReconciling = () => {
    metrics.leader.set(1);
    logger.info("reconciling", { workers: config.workers });
    running = queue.run(
      async (key) => {
        const started = performance.now();
        try {
          const result = await reconciler.reconcile(key);
          return result;
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
    for (const inf of asaInformers) for (const o of inf.store.list()) queue.add(keyOf(o));
  };

  let stopping = false;
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
        startReconciling();
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
    startReconciling();
  }

  return {
    port: server.port,
    async stop() {
      stopping = true;
      clearInterval(queueGauge);
      await elector?.stop();
      await queue.shutdown({ drain: false });
      await running;
      reconciler.close();
      await Promise.all(informers.map((inf) => inf.stop()));
      await server.close();
      void leading;
    },
  };
}
