/**
 * The operator's entry point: `node src/cli/operator.ts [flags]` (`npm start` runs it against the current
 * kubeconfig context). Flags and environment variables are listed by `--help`.
 */
import { hostname } from "node:os";
import { createAzureDevOpsPort } from "../controller/azure-devops-port.ts";
import { startOperator } from "../controller/operator.ts";
import { createPodFactory } from "../controller/pod-factory.ts";
import { credentialSource } from "../hooks/credentials.ts";
import { describeAuth } from "../kube/auth.ts";
import { KubeClient } from "../kube/client.ts";
import { type ClusterConnection, loadConnection } from "../kube/kubeconfig.ts";
import { createLogger } from "../observability/logger.ts";
import { createMetrics } from "../observability/metrics.ts";
import { ConfigError, helpText, parseConfig } from "./config.ts";

let config: ReturnType<typeof parseConfig>;
try {
  config = parseConfig(process.argv.slice(2), process.env, hostname());
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`error: ${err.message}\n\n${helpText()}`);
    process.exit(2);
  }
  throw err;
}
if (config === "help") {
  process.stdout.write(helpText());
  process.exit(0);
}
const cfg = config;
const logger = createLogger({ level: cfg.logLevel, format: cfg.logFormat });
let connection: ClusterConnection;
try {
  connection = loadConnection({ paths: cfg.kubeconfig, ...(cfg.context ? { context: cfg.context } : {}) });
} catch (err) {
  logger.error("cannot connect to Kubernetes", { error: err });
  process.exit(1);
}
logger.info("kubernetes connection", {
  server: connection.server,
  from: connection.origin,
  auth: describeAuth(connection),
  ...(connection.proxyUrl ? { proxy: connection.proxyUrl.replace(/\/\/[^@/]*@/, "//***@") } : {}),
});
const client = new KubeClient(connection, { userAgent: "azure-pipelines-k8s-agent-scaler" });
const metrics = createMetrics();
const azureDevOps = createAzureDevOpsPort({
  metrics,
  logger: logger.child({ component: "azure-devops" }),
  timeoutMs: cfg.azureDevOpsTimeoutMs,
  pollIntervalMs: cfg.pollIntervalMs,
  idlePollIntervalMs: cfg.idlePollIntervalMs,
  pollBudgetPerMinute: cfg.pollBudgetPerMinute,
  poolPollBudgetPerMinute: cfg.poolPollBudgetPerMinute,
});
// Service hooks: the credentials are read on every delivery; once now, so that a missing file stops the start.
const hookCredentials = cfg.serviceHooks ? credentialSource(cfg.serviceHooks.credentials) : undefined;
if (hookCredentials) {
  try {
    await hookCredentials();
  } catch (err) {
    logger.error("service hook credentials cannot be read", { error: err });
    process.exit(2);
  }
}
const operator = await startOperator({
  metrics,
  config: cfg,
  client,
  logger,
  azureDevOps,
  pods: createPodFactory({
    terminatorImage: cfg.terminatorImage,
    defaultExtraAgentContainersPolicy: cfg.extraAgentContainersPolicy,
  }),
  ...(hookCredentials ? { serviceHooks: { credentials: hookCredentials, target: azureDevOps } } : {}),
});
logger.info("operator started", { port: operator.port, identity: cfg.identity });

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info("shutting down", { signal });
  const force = setTimeout(() => process.exit(1), 20_000);
  force.unref();
  await operator.stop().catch((err: unknown) => logger.error("shutdown failed", { error: err }));
  azureDevOps.close();
  client.close();
  process.exit(0);
};
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
