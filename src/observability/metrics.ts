/**
 * The operator's Prometheus metrics, on a registry of its own (no global state). Names are prefixed
 * `azp_scaler_`; see docs/metrics.md.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "azp_scaler_process_" });
  const registers = [registry];
  const resourceLabels = ["namespace", "name"] as const;
  return {
    registry,
    reconciles: new Counter({
      name: "azp_scaler_reconcile_total",
      help: "Reconciles of AutoScaledAgent resources, by result (ok, error, invalid).",
      labelNames: ["result"],
      registers,
    }),
    reconcileDuration: new Histogram({
      name: "azp_scaler_reconcile_duration_seconds",
      help: "Time a reconcile takes (observe, plan, act, status).",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    planDuration: new Histogram({
      name: "azp_scaler_plan_duration_seconds",
      help: "Time the scale plan of a reconcile takes (sharing the pool's jobs out, then planScaling; CPU only).",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    }),
    podsCreated: new Counter({
      name: "azp_scaler_pods_created_total",
      help: "Agent pods created, by reason (pending-job, min-count).",
      labelNames: [...resourceLabels, "reason"],
      registers,
    }),
    podsDeleted: new Counter({
      name: "azp_scaler_pods_deleted_total",
      help: "Agent pods deleted, by reason (idle, unscheduled, finished).",
      labelNames: [...resourceLabels, "reason"],
      registers,
    }),
    pendingJobs: new Gauge({
      name: "azp_scaler_pending_jobs",
      help: "Queued job requests matched to a template of the resource.",
      labelNames: resourceLabels,
      registers,
    }),
    agentPods: new Gauge({
      name: "azp_scaler_agent_pods",
      help: "Agent pods of the resource by state (starting, idle, busy, finishing, terminating, finished).",
      labelNames: [...resourceLabels, "state"],
      registers,
    }),
    azureDevOpsErrors: new Counter({
      name: "azp_scaler_azure_devops_errors_total",
      help: "Reconciles that found the pool's Azure DevOps poll failing, by kind (auth, forbidden, rate-limited, server, network...).",
      labelNames: ["kind"],
      registers,
    }),
    leader: new Gauge({
      name: "azp_scaler_leader",
      help: "1 while this replica holds the leader lease.",
      registers,
    }),
    workQueueDepth: new Gauge({
      name: "azp_scaler_workqueue_depth",
      help: "Keys waiting in the reconcile queue.",
      registers,
    }),
    informerRestarts: new Gauge({
      name: "azp_scaler_informer_restarts",
      help: "List/watch restarts of each informer since start.",
      labelNames: ["informer"],
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
