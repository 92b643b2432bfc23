/**
 * The operator's configuration: command-line flags, each with an environment variable fallback (for the Helm
 * chart and Kustomize manifests), validated into one typed object. `--help` prints this table.
 */
import { delimiter } from "node:path";
import { parseArgs } from "node:util";
import { parseDuration } from "../api/v1/duration.ts";
import type { ExtraAgentContainersPolicy } from "../api/v1/index.ts";
import {
  DEFAULT_AZURE_DEVOPS_HOSTS,
  normalizeAuthority,
  PUBLIC_CLOUD_AUTHORITY,
  parseHostPattern,
} from "../azure-devops/endpoints.ts";
import type { OperatorSettings } from "../controller/operator.ts";
import { ALL_NAMESPACES, type CredentialPolicy } from "../controller/policy.ts";
import type { CredentialLocations } from "../hooks/credentials.ts";
import { isImageReference, parseExtraAgentContainersPolicy } from "../pods/extra-containers.ts";
import { DEFAULT_TERMINATOR_IMAGE, resolveTerminatorImage } from "../pods/stop.ts";
import { DEFAULT_PREPULL_IMAGES } from "../prepull/plan.ts";

/** The operator's settings plus what the entry point itself uses (connection, Azure DevOps, logs, images). */
export interface OperatorConfig extends OperatorSettings {
  /** kubeconfig files, merged as kubectl merges a KUBECONFIG list; empty: in-cluster, else ~/.kube/config. */
  kubeconfig: string[];
  /** The kubeconfig context to use; undefined: the current context. */
  context: string | undefined;
  /** Job-request poll interval while work is moving (after a change, from an allowance of fast polls). */
  pollIntervalMs: number;
  /** Job-request poll interval of a quiet pool, when the identity's poll budget pays for it. */
  idlePollIntervalMs: number;
  /** Azure DevOps requests a minute one identity spends polling quiet pools, shared by its pools; 0: no limit. */
  pollBudgetPerMinute: number;
  poolPollBudgetPerMinute: number;
  azureDevOpsTimeoutMs: number;
  /** Image a classic sidecar is switched to so that it exits once the agent has finished. */
  terminatorImage: string;
  logLevel: "debug" | "info" | "warn" | "error";
  logFormat: "json" | "text";
  /** Where credentials may be sent and who may use the operator's own identity (src/controller/policy.ts). */
  credentialPolicy: CredentialPolicy;
  /** The ExtraAgentContainers policy of resources that set none; undefined: none (any value that parses). */
  extraAgentContainersPolicy: ExtraAgentContainersPolicy | undefined;
  /** The service hook endpoint, and where its credentials are read (never the values); omitted: off. */
  serviceHooks?: { port: number; debounceMs: number; credentials: CredentialLocations };
}

/** `--leader-pod-label`: the pod to label, from the downward API variables the Deployment sets. */
function ownPod(env: NodeJS.ProcessEnv): { name: string; namespace: string } {
  const name = env.POD_NAME ?? "";
  const namespace = env.POD_NAMESPACE ?? "";
  if (!name || !namespace) {
    throw new ConfigError(
      "--leader-pod-label needs POD_NAME and POD_NAMESPACE (the pod's metadata.name and metadata.namespace, from the downward API)",
    );
  }
  return { name, namespace };
}

/** Environment variables holding the service hook credentials themselves, when no file is named. */
export const SERVICE_HOOK_USERNAME_ENV = "SERVICE_HOOK_USERNAME";
export const SERVICE_HOOK_PASSWORD_ENV = "SERVICE_HOOK_PASSWORD";

interface FlagSpec {
  env: string;
  help: string;
  default: string;
  kind: "string" | "boolean" | "duration" | "int" | "list";
}

export const flags: Record<string, FlagSpec> = {
  kubeconfig: {
    env: "KUBECONFIG",
    help: "kubeconfig file, or a ':'-separated list merged as kubectl does; default: in-cluster, else ~/.kube/config",
    default: "",
    kind: "string",
  },
  context: {
    env: "KUBE_CONTEXT",
    help: "kubeconfig context to use; default: the current context",
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
  "leader-pod-label": {
    env: "LEADER_POD_LABEL",
    help: "label this replica's pod azurepipelines.k8s.scaler.io/leader=true while it leads, false otherwise, so that a Service can select the leader (the chart's service hooks Service with several replicas); needs POD_NAME, POD_NAMESPACE and patch on pods there",
    default: "false",
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
    help: "Azure DevOps requests per minute one identity spends polling quiet pools (job-request and agent lists), shared evenly by its pools, at most --pool-poll-budget each; 0: no limit of our own",
    default: "40",
    kind: "int",
  },
  "pool-poll-budget": {
    env: "POOL_POLL_BUDGET",
    help: "the most one pool spends of --poll-budget (requests per minute); 0: no cap",
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
  "agent-failure-backoff": {
    env: "AGENT_FAILURE_BACKOFF",
    help: "first wait before a template's next pod when its agent exited with an error without running a job (doubles up to 5m)",
    default: "10s",
    kind: "duration",
  },
  "cleanup-timeout": {
    env: "CLEANUP_TIMEOUT",
    help: "how long a deleted resource is kept while its placeholder and offline agents are unregistered",
    default: "2m",
    kind: "duration",
  },
  "azure-devops-concurrency": {
    env: "AZURE_DEVOPS_CONCURRENCY",
    help: "Azure DevOps writes (agent deletions, placeholder work) running at once per organization",
    default: "4",
    kind: "int",
  },
  "terminator-image": {
    env: "TERMINATOR_IMAGE",
    help: "image that classic sidecars are switched to so they exit",
    default: DEFAULT_TERMINATOR_IMAGE,
    kind: "string",
  },
  // Image pre-pull (src/controller/prepull.ts): needs RBAC on daemonsets (Helm value imagePrePull.enabled).
  "image-prepull": {
    env: "IMAGE_PREPULL",
    help: "manage pre-pull DaemonSets for AutoScaledAgents with spec.imagePrePull.enabled (needs RBAC on daemonsets)",
    default: "false",
    kind: "boolean",
  },
  "image-prepull-pause-image": {
    env: "IMAGE_PREPULL_PAUSE_IMAGE",
    help: "image that keeps a pre-pull pod running once its images are pulled",
    default: DEFAULT_PREPULL_IMAGES.pauseImage,
    kind: "string",
  },
  "image-prepull-helper-image": {
    env: "IMAGE_PREPULL_HELPER_IMAGE",
    help: "image whose statically linked /bin/true pre-pull pods run in every pulled image",
    default: DEFAULT_PREPULL_IMAGES.helperImage,
    kind: "string",
  },
  "standby-history-write-interval": {
    env: "STANDBY_HISTORY_WRITE_INTERVAL",
    help: "predictive standby: the job history ConfigMap of a resource is written at most this often",
    default: "1m",
    kind: "duration",
  },
  "standby-clock-start": {
    env: "STANDBY_CLOCK_START",
    help: "for tests only: standby schedules and histories read a clock that starts at this RFC 3339 time",
    default: "",
    kind: "string",
  },
  "standby-clock-rate": {
    env: "STANDBY_CLOCK_RATE",
    help: "for tests only: how many seconds that clock moves per real second (with --standby-clock-start)",
    default: "1",
    kind: "string",
  },
  // Service hooks (src/hooks): an endpoint Azure DevOps POSTs job state changes to, each a poll-now trigger.
  "service-hooks": {
    env: "SERVICE_HOOKS",
    help: "serve an endpoint for Azure DevOps service hook deliveries (Run job state changed) that trigger an immediate poll of the organization; needs basic-auth credentials",
    default: "false",
    kind: "boolean",
  },
  "service-hook-port": {
    env: "SERVICE_HOOK_PORT",
    help: "port of the service hook endpoint (on --bind-address; 0: any free port)",
    default: "8081",
    kind: "int",
  },
  "service-hook-username-file": {
    env: "SERVICE_HOOK_USERNAME_FILE",
    help: `file holding the user name deliveries authenticate with (read on every delivery); default: env ${SERVICE_HOOK_USERNAME_ENV}`,
    default: "",
    kind: "string",
  },
  "service-hook-password-file": {
    env: "SERVICE_HOOK_PASSWORD_FILE",
    help: `file holding the password deliveries authenticate with (read on every delivery); default: env ${SERVICE_HOOK_PASSWORD_ENV}`,
    default: "",
    kind: "string",
  },
  "service-hook-debounce": {
    env: "SERVICE_HOOK_DEBOUNCE",
    help: "at most one hook-triggered poll per organization in this window (the first delivery polls at once)",
    default: "500ms",
    kind: "duration",
  },
  "log-level": { env: "LOG_LEVEL", help: "debug, info, warn or error", default: "info", kind: "string" },
  "log-format": { env: "LOG_FORMAT", help: "json or text", default: "json", kind: "string" },
  "azure-devops-hosts": {
    env: "AZURE_DEVOPS_HOSTS",
    help: "comma-separated hosts an organizationUrl may name, so credentials go nowhere else: host, host:port, *.domain (one label); add Azure DevOps Server hosts here",
    default: DEFAULT_AZURE_DEVOPS_HOSTS.join(","),
    kind: "list",
  },
  "azure-devops-allow-http": {
    env: "AZURE_DEVOPS_ALLOW_HTTP",
    help: "allow http organization URLs (credentials then travel unencrypted; for emulators and labs only)",
    default: "false",
    kind: "boolean",
  },
  "entra-authority-hosts": {
    env: "ENTRA_AUTHORITY_HOSTS",
    help: `comma-separated https Entra authorities a resource's authorityHost may name (client secrets and federated tokens go nowhere else); the first is used when a resource names none; default: AZURE_AUTHORITY_HOST, else ${PUBLIC_CLOUD_AUTHORITY}`,
    default: "",
    kind: "list",
  },
  "operator-identity-namespaces": {
    env: "OPERATOR_IDENTITY_NAMESPACES",
    help: "comma-separated namespaces whose resources may use the operator's own Entra identity (workloadIdentity: {}); * for all; default none",
    default: "",
    kind: "list",
  },
  "extra-agent-containers-policy": {
    env: "EXTRA_AGENT_CONTAINERS_POLICY",
    help: 'ExtraAgentContainers policy (JSON, as spec.extraAgentContainers) for resources that set none, e.g. {"allowedImages":["docker.io/library/*"],"maxCpuPerContainer":"1","maxMemoryPerContainer":"2Gi"}; default none',
    default: "",
    kind: "string",
  },
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

/** The test-only standby clock flags: none when no start is given. */
function standbyClockSettings(start: string, rate: string): Pick<OperatorConfig, "standbyClock"> {
  if (start === "") {
    if (rate !== "1") throw new ConfigError("--standby-clock-rate: only with --standby-clock-start (for tests only)");
    return {};
  }
  const startMs = /^\d{4}-\d{2}-\d{2}T/.test(start) ? Date.parse(start) : Number.NaN;
  if (Number.isNaN(startMs)) {
    throw new ConfigError(
      `--standby-clock-start: ${JSON.stringify(start)} is not an RFC 3339 time such as 2026-01-05T07:59:50Z`,
    );
  }
  const r = Number(rate);
  if (!/^\d+(\.\d+)?$/.test(rate) || !(r > 0)) {
    throw new ConfigError(`--standby-clock-rate: ${JSON.stringify(rate)} must be a positive number`);
  }
  return { standbyClock: { startMs, rate: r } };
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
  const list = (name: string) =>
    raw(name)
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const image = (name: string) => {
    const text = raw(name).trim();
    if (!isImageReference(text))
      throw new ConfigError(`--${name}: ${JSON.stringify(raw(name))} is not an image reference`);
    return text;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[]): T => {
    const text = raw(name) as T;
    if (!allowed.includes(text))
      throw new ConfigError(`--${name}: ${JSON.stringify(text)} must be one of ${allowed.join(", ")}`);
    return text;
  };
  const config: OperatorConfig = {
    // A list, as KUBECONFIG is for kubectl: the files are merged (src/kube/kubeconfig.ts).
    kubeconfig: raw("kubeconfig")
      .split(delimiter)
      .filter((p) => p !== ""),
    context: raw("context") || undefined,
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
    ...(bool("leader-pod-label") ? { ownPod: ownPod(env) } : {}),
    bindAddress: raw("bind-address"),
    port: int("port", 0),
    workers: int("workers", 1),
    pollIntervalMs: duration("poll-interval"),
    idlePollIntervalMs: duration("idle-poll-interval"),
    pollBudgetPerMinute: int("poll-budget", 0),
    poolPollBudgetPerMinute: int("pool-poll-budget", 0),
    azureDevOpsTimeoutMs: duration("azure-devops-timeout"),
    resyncIntervalMs: duration("resync-interval"),
    offlineAgentGraceMs: duration("offline-agent-grace"),
    azureDevOpsConcurrency: int("azure-devops-concurrency", 1),
    agentFailureBackoffMs: duration("agent-failure-backoff"),
    cleanupTimeoutMs: duration("cleanup-timeout"),
    standbyHistoryWriteIntervalMs: duration("standby-history-write-interval"),
    ...standbyClockSettings(raw("standby-clock-start"), raw("standby-clock-rate")),
    terminatorImage: (() => {
      try {
        return resolveTerminatorImage(raw("terminator-image"));
      } catch (err) {
        throw new ConfigError(`--terminator-image: ${(err as Error).message}`);
      }
    })(),
    imagePrePull: {
      enabled: bool("image-prepull"),
      pauseImage: image("image-prepull-pause-image"),
      helperImage: image("image-prepull-helper-image"),
    },
    logLevel: oneOf("log-level", ["debug", "info", "warn", "error"] as const),
    logFormat: oneOf("log-format", ["json", "text"] as const),
    credentialPolicy: credentialPolicy(list, bool, env),
    extraAgentContainersPolicy: (() => {
      const text = raw("extra-agent-containers-policy").trim();
      if (text === "") return undefined;
      const parsed = parseExtraAgentContainersPolicy(text);
      if (!parsed.ok) throw new ConfigError(`--extra-agent-containers-policy: ${parsed.errors.join("; ")}`);
      return parsed.value;
    })(),
    ...serviceHookSettings(raw, bool, int, duration, env),
  };
  if (config.serviceHooks && config.serviceHooks.port !== 0 && config.serviceHooks.port === config.port) {
    throw new ConfigError("--service-hook-port must differ from --port (metrics are never exposed with the hooks)");
  }
  if (config.renewDeadlineMs >= config.leaseDurationMs) {
    throw new ConfigError("--renew-deadline must be shorter than --lease-duration");
  }
  if (config.retryPeriodMs * 1.2 >= config.renewDeadlineMs) {
    throw new ConfigError("--renew-deadline must be more than 1.2 times --retry-period");
  }
  return config;
}

/**
 * The service hook flags: none when `--service-hooks` is off. On, the endpoint needs a user name and a password:
 * each from its file flag, else from its environment variable (checked to be non-empty now; files are read on
 * every delivery, and once at start by the entry point).
 */
function serviceHookSettings(
  raw: (name: string) => string,
  bool: (name: string) => boolean,
  int: (name: string, min: number) => number,
  duration: (name: string) => number,
  env: NodeJS.ProcessEnv,
): Pick<OperatorConfig, "serviceHooks"> {
  if (!bool("service-hooks")) return {};
  const port = int("service-hook-port", 0);
  if (port > 65535) throw new ConfigError(`--service-hook-port: ${port} is not a port`);
  const location = (what: string, flag: string, variable: string) => {
    const file = raw(flag).trim();
    if (file !== "") return { file };
    if ((env[variable] ?? "") !== "") return { env: variable };
    throw new ConfigError(`--service-hooks needs a ${what}: --${flag} (or ${variable})`);
  };
  return {
    serviceHooks: {
      port,
      debounceMs: duration("service-hook-debounce"),
      credentials: {
        username: location("user name", "service-hook-username-file", SERVICE_HOOK_USERNAME_ENV),
        password: location("password", "service-hook-password-file", SERVICE_HOOK_PASSWORD_ENV),
      },
    },
  };
}

/** The credential policy from its four flags (rules in src/controller/policy.ts and src/azure-devops/endpoints.ts). */
function credentialPolicy(
  list: (name: string) => string[],
  bool: (name: string) => boolean,
  env: NodeJS.ProcessEnv,
): CredentialPolicy {
  const azureDevOpsHosts = list("azure-devops-hosts").map((text) => {
    const p = parseHostPattern(text);
    if (!p.ok) throw new ConfigError(`--azure-devops-hosts: ${p.message}`);
    return p.value;
  });
  if (azureDevOpsHosts.length === 0) {
    throw new ConfigError("--azure-devops-hosts: name at least one host (no organization URL could be used)");
  }
  const given = list("entra-authority-hosts");
  const authorities = given.length > 0 ? given : [env.AZURE_AUTHORITY_HOST?.trim() || PUBLIC_CLOUD_AUTHORITY];
  const authorityHosts = authorities.map((text) => {
    const a = normalizeAuthority(text);
    if (!a.ok) {
      const from = given.length > 0 ? "--entra-authority-hosts" : "AZURE_AUTHORITY_HOST";
      throw new ConfigError(`${from}: ${a.message}`);
    }
    return a.value;
  });
  const operatorIdentityNamespaces = list("operator-identity-namespaces");
  for (const ns of operatorIdentityNamespaces) {
    if (ns !== ALL_NAMESPACES && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) {
      throw new ConfigError(`--operator-identity-namespaces: ${JSON.stringify(ns)} is not a namespace name (or *)`);
    }
  }
  return {
    azureDevOpsHosts,
    allowHttp: bool("azure-devops-allow-http"),
    authorityHosts: [...new Set(authorityHosts)],
    operatorIdentityNamespaces,
  };
}
