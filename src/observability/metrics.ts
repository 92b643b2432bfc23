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
  const poolLabels = ["organization", "pool"] as const;
  /** Job waits: from seconds (a warm agent) to an hour (a pool at maxCount). */
  const waitBuckets = [1, 2, 5, 10, 15, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600];
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
      // Finer around 100 ms, the p99 the operator is built to (docs/benchmarks.md#scale).
      buckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    reconcileStageDuration: new Histogram({
      name: "azp_scaler_reconcile_stage_duration_seconds",
      help:
        "Time each stage of a reconcile takes: credentials, observe (pods, expectations, standby), plan, execute " +
        "(queueing writes; cache-volume claims), status (building the status; it is written afterwards).",
      labelNames: ["stage"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    planDuration: new Histogram({
      name: "azp_scaler_plan_duration_seconds",
      help: "Time the scale plan of a reconcile takes (sharing the pool's jobs out, then planScaling; CPU only).",
      // Finer around 10 ms, what a plan at 1,000 pods is built to take (docs/benchmarks.md#scale).
      buckets: [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
      ],
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
    jobWaitPodCreated: new Histogram({
      name: "azp_scaler_job_wait_until_pod_created_seconds",
      help: "Time from a job's queueTime until the operator created a pod for it, by resource and template index.",
      labelNames: [...resourceLabels, "template"],
      buckets: waitBuckets,
      registers,
    }),
    jobWaitAssigned: new Histogram({
      name: "azp_scaler_job_wait_until_assigned_seconds",
      help: "Time from a job's queueTime until Azure DevOps assigned it to an agent of the resource (assignTime), by template index.",
      labelNames: [...resourceLabels, "template"],
      buckets: waitBuckets,
      registers,
    }),
    queuedJobs: new Gauge({
      name: "azp_scaler_queued_jobs",
      help: "Job requests of the pool waiting for an agent (queued, none assigned yet), whatever serves them.",
      labelNames: poolLabels,
      registers,
    }),
    unservedJobs: new Gauge({
      name: "azp_scaler_unserved_jobs",
      help: "Queued jobs of the pool that no resource is starting a pod for, by reason (no-matching-template, max-count, extra-agent-containers-refused...).",
      labelNames: [...poolLabels, "reason"],
      registers,
    }),
    placeholderAgents: new Gauge({
      name: "azp_scaler_placeholder_agents",
      help: "Placeholder agents of the pool the resources want (state=wanted) and those of them registered (state=registered).",
      labelNames: [...poolLabels, "state"],
      registers,
    }),
    azureDevOpsRequests: new Counter({
      name: "azp_scaler_azure_devops_requests_total",
      help: "HTTP requests to Azure DevOps (and Entra ID tokens), by operation and status class (2xx, 3xx, 4xx, 5xx, network, other).",
      labelNames: ["operation", "status_class"],
      registers,
    }),
    azureDevOpsRequestDuration: new Histogram({
      name: "azp_scaler_azure_devops_request_duration_seconds",
      help: "Duration of HTTP requests to Azure DevOps (one attempt, answer read) and of Entra ID token requests, by operation.",
      labelNames: ["operation"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    rateLimitRemaining: new Gauge({
      name: "azp_scaler_azure_devops_rate_limit_remaining_ratio",
      help: "Share of the identity's Azure DevOps rate-limit budget left (X-RateLimit-Remaining / X-RateLimit-Limit); 1 while the service sends no budget headers.",
      labelNames: ["identity"],
      registers,
    }),
    rateLimitDelay: new Histogram({
      name: "azp_scaler_azure_devops_rate_limit_delay_seconds",
      help: "Delays Azure DevOps imposed on the identity, by header: x-ratelimit-delay (the service held the request) or retry-after (wait before the next one).",
      labelNames: ["identity", "header"],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    informerRestarts: new Gauge({
      name: "azp_scaler_informer_restarts",
      help: "List/watch restarts of each informer since start.",
      labelNames: ["informer"],
      registers,
    }),
    // Service hooks (src/hooks): every delivery to the endpoint, by what became of it.
    serviceHookDeliveries: new Counter({
      name: "azp_scaler_service_hook_deliveries_total",
      help: "Service hook deliveries, by outcome (triggered, coalesced, ignored, no-poller, unauthorized, bad-request, too-large, not-found, unavailable).",
      labelNames: ["outcome"],
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
