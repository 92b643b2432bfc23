/**
 * The operator's configuration: command-line flags, each with an environment variable fallback (for the Helm
 * chart and Kustomize manifests), validated into one typed object. `--help` prints this table.
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../api/v1/duration.ts";
import { DEFAULT_TERMINATOR_IMAGE, resolveTerminatorImage } from "../pods/stop.ts";

export interface OperatorConfig {
  kubeconfig: string | undefined;
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
  /** Job-request poll interval while work is moving (after a change, from an allowance of fast polls). */
  pollIntervalMs: number;
  /** Job-request poll interval of a quiet pool, when the identity's poll budget pays for it. */
  idlePollIntervalMs: number;
  /** Azure DevOps requests a minute one identity spends polling quiet pools, shared by its pools; 0: no limit. */
  pollBudgetPerMinute: number;
  azureDevOpsTimeoutMs: number;
  /** Periodic reconcile of every resource even without changes. */
  resyncIntervalMs: number;
  /** How long an agent of a resource must have been offline before garbage collection may delete it. */
  offlineAgentGraceMs: number;
  /** Image a classic sidecar is switched to so that it exits once the agent has finished. */
  terminatorImage: string;
  logLevel: "debug" | "info" | "warn" | "error";
  logFormat: "json" | "text";
}

interface FlagSpec {
  env: string;
  help: string;
  default: string;
  kind: "string" | "boolean" | "duration" | "int" | "list";
}

export const flags: Record<string, FlagSpec> = {
  kubeconfig: {
    env: "KUBECONFIG",
    help: "kubeconfig file; default: in-cluster, else ~/.kube/config",
    default: "",
    kind: "string",
  },
  namespaces: {
    env: "WATCH_NAMESPACES",
    help: "comma-separated namespaces to watch; empty: all",
    default: "",
    kind: "list",
  },
  "leader-elect": {
    env: "LEADER_ELECT",
    help: "elect a leader through a Lease (needed with several replicas)",
    default: "true",
    kind: "boolean",
  },
  "leader-election-namespace": {
    env: "LEADER_ELECTION_NAMESPACE",
    help: "namespace of the Lease; default: the pod's (POD_NAMESPACE), else default",
    default: "",
    kind: "string",
  },
  "leader-election-name": {
    env: "LEADER_ELECTION_NAME",
    help: "name of the Lease",
    default: "azure-pipelines-k8s-agent-scaler",
    kind: "string",
  },
  "lease-duration": {
    env: "LEASE_DURATION",
    help: "how long a lease is valid without renewal",
    default: "15s",
    kind: "duration",
  },
  "renew-deadline": {
    env: "RENEW_DEADLINE",
    help: "a leader that cannot renew for this long steps down",
    default: "10s",
    kind: "duration",
  },
  "retry-period": {
    env: "RETRY_PERIOD",
    help: "interval between lease acquire/renew attempts",
    default: "2s",
    kind: "duration",
  },
  identity: { env: "POD_NAME", help: "identity of this replica; default: the host name", default: "", kind: "string" },
  "bind-address": {
    env: "BIND_ADDRESS",
    help: "address of the metrics and health server",
    default: "0.0.0.0",
    kind: "string",
  },
  port: {
    env: "METRICS_PORT",
    help: "port of /metrics, /healthz and /readyz (0: any free port)",
    default: "8080",
    kind: "int",
  },
  workers: { env: "WORKERS", help: "resources reconciled in parallel", default: "4", kind: "int" },
  "poll-interval": {
    env: "POLL_INTERVAL",
    help: "job-request poll interval while jobs are moving (10 s after a change; at most 10 such polls a minute)",
    default: "1s",
    kind: "duration",
  },
  "idle-poll-interval": {
    env: "IDLE_POLL_INTERVAL",
    help: "job-request poll interval of a quiet pool (longer when --poll-budget cannot pay for it)",
    default: "3s",
    kind: "duration",
  },
  "poll-budget": {
    env: "POLL_BUDGET",
    help: "Azure DevOps requests per minute one identity spends polling quiet pools (job-request and agent lists), shared evenly by its pools; 0: no limit of our own",
    default: "20",
    kind: "int",
  },
  "azure-devops-timeout": {
    env: "AZURE_DEVOPS_TIMEOUT",
    help: "timeout of one Azure DevOps request",
    default: "30s",
    kind: "duration",
  },
  "resync-interval": {
    env: "RESYNC_INTERVAL",
    help: "reconcile every resource at least this often",
    default: "30s",
    kind: "duration",
  },
  "offline-agent-grace": {
    env: "OFFLINE_AGENT_GRACE",
    help: "an agent of a pod must have been offline this long before it is garbage-collected",
    default: "5m",
    kind: "duration",
  },
  "terminator-image": {
    env: "TERMINATOR_IMAGE",
    help: "image that classic sidecars are switched to so they exit",
    default: DEFAULT_TERMINATOR_IMAGE,
    kind: "string",
  },
  "log-level": { env: "LOG_LEVEL", help: "debug, info, warn or error", default: "info", kind: "string" },
  "log-format": { env: "LOG_FORMAT", help: "json or text", default: "json", kind: "string" },
};

export function helpText(): string {
  const rows = Object.entries(flags).map(
    ([name, f]) =>
      `  --${name.padEnd(27)} ${f.help}\n  ${"".padEnd(29)} env ${f.env}; default ${f.default === "" ? "(none)" : f.default}`,
  );
  return [
    "azure-pipelines-k8s-agent-scaler: runs Azure DevOps Pipelines agents as ephemeral Kubernetes pods",
    "",
    "usage: operator [flags]   (every flag can also be set through its environment variable)",
    "",
    ...rows,
    "  --help                      print this help",
    "",
  ].join("\n");
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Flags win over environment variables, which win over defaults. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv, hostname: string): OperatorConfig | "help" {
  const options = Object.fromEntries(Object.keys(flags).map((name) => [name, { type: "string" as const }]));
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options: { ...options, help: { type: "boolean" } }, strict: true }).values;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (values.help) return "help";
  const raw = (name: string): string => {
    const spec = flags[name] as FlagSpec;
    const v = values[name];
    return typeof v === "string" ? v : (env[spec.env] ?? spec.default);
  };
  const duration = (name: string) => {
    try {
      const ms = parseDuration(raw(name));
      if (ms <= 0) throw new Error("must be positive");
      return ms;
    } catch (err) {
      throw new ConfigError(
        `--${name}: ${JSON.stringify(raw(name))} is not a valid duration (${(err as Error).message}); use e.g. 5s, 1m30s`,
      );
    }
  };
  const int = (name: string, min: number) => {
    const text = raw(name);
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min)
      throw new ConfigError(`--${name}: ${JSON.stringify(text)} must be an integer >= ${min}`);
    return n;
  };
  const bool = (name: string) => {
    const text = raw(name).toLowerCase();
    if (["true", "1", "yes"].includes(text)) return true;
    if (["false", "0", "no"].includes(text)) return false;
    throw new ConfigError(`--${name}: ${JSON.stringify(raw(name))} must be true or false`);
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[]): T => {
    const text = raw(name) as T;
    if (!allowed.includes(text))
      throw new ConfigError(`--${name}: ${JSON.stringify(text)} must be one of ${allowed.join(", ")}`);
    return text;
  };
  const config: OperatorConfig = {
    // KUBECONFIG may be a colon-separated list, as for kubectl: the first file is used.
    kubeconfig:
      raw("kubeconfig")
        .split(":")
        .find((p) => p !== "") || undefined,
    namespaces: raw("namespaces")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    leaderElect: bool("leader-elect"),
    leaderElectionNamespace: raw("leader-election-namespace") || env.POD_NAMESPACE || "default",
    leaderElectionName: raw("leader-election-name"),
    leaseDurationMs: duration("lease-duration"),
    renewDeadlineMs: duration("renew-deadline"),
    retryPeriodMs: duration("retry-period"),
    identity: raw("identity") || hostname,
    bindAddress: raw("bind-address"),
    port: int("port", 0),
    workers: int("workers", 1),
    pollIntervalMs: duration("poll-interval"),
    idlePollIntervalMs: duration("idle-poll-interval"),
    pollBudgetPerMinute: int("poll-budget", 0),
    azureDevOpsTimeoutMs: duration("azure-devops-timeout"),
    resyncIntervalMs: duration("resync-interval"),
    offlineAgentGraceMs: duration("offline-agent-grace"),
    terminatorImage: (() => {
      try {
        return resolveTerminatorImage(raw("terminator-image"));
      } catch (err) {
        throw new ConfigError(`--terminator-image: ${(err as Error).message}`);
      }
    })(),
    logLevel: oneOf("log-level", ["debug", "info", "warn", "error"] as const),
    logFormat: oneOf("log-format", ["json", "text"] as const),
  };
  if (config.renewDeadlineMs >= config.leaseDurationMs) {
    throw new ConfigError("--renew-deadline must be shorter than --lease-duration");
  }
  if (config.retryPeriodMs * 1.2 >= config.renewDeadlineMs) {
    throw new ConfigError("--renew-deadline must be more than 1.2 times --retry-period");
  }
  return config;
}
