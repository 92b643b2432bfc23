/**
 * The simulated world's long-running services in one process: the Azure DevOps emulator and the virtual node(s).
 * `sim:up` starts it in the background; it writes `services.json` (URLs, pool, PATs, node names) once ready and
 * runs until SIGTERM.
 *
 *   node sim/services.ts --kubeconfig FILE --ready-file FILE [--port N] [--nodes 1] [--log-dir DIR]
 *                        [--image-pull-ms MS|IMAGE=MS]... [--image-check-ms MS]
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { KubeClient } from "../src/kube/client.ts";
import { loadKubeconfigFile } from "../src/kube/kubeconfig.ts";
import type { Logger } from "../src/runtime/logger.ts";
import { startAzureDevOpsEmulator } from "./azure-devops/index.ts";
import { agentProgram } from "./node/agent-program.ts";
import { parseImagePullFlags } from "./node/images.ts";
import { VirtualNode } from "./node/index.ts";

export interface ServicesInfo {
  organizationUrl: string;
  controlUrl: string;
  pool: string;
  pat: string;
  readPat: string;
  nodes: string[];
  pid: number;
}

const { values } = parseArgs({
  options: {
    kubeconfig: { type: "string" },
    "ready-file": { type: "string" },
    port: { type: "string", default: "0" },
    nodes: { type: "string", default: "1" },
    "log-dir": { type: "string" },
    pool: { type: "string", default: "sim-pool" },
    "image-pull-ms": { type: "string", multiple: true },
    "image-check-ms": { type: "string" },
  },
});
if (!values.kubeconfig || !values["ready-file"]) {
  process.stderr.write("usage: node sim/services.ts --kubeconfig FILE --ready-file FILE [--port N] [--nodes N]\n");
  process.exit(2);
}

const line = (level: string) => (message: string, fields?: Record<string, unknown>) =>
  process.stderr.write(
    `${new Date().toISOString()} ${level} ${message}${fields ? ` ${JSON.stringify(fields)}` : ""}\n`,
  );
const logger: Logger = { debug: () => {}, info: line("info"), warn: line("warn"), error: line("error") };

const images = parseImagePullFlags(values["image-pull-ms"] ?? [], values["image-check-ms"]);

const pat = `sim-manage-${randomBytes(12).toString("hex")}`;
const readPat = `sim-read-${randomBytes(12).toString("hex")}`;
const emulator = await startAzureDevOpsEmulator({
  port: Number(values.port),
  pools: [values.pool],
  pats: [
    { token: pat, scope: "manage", name: "sim-admin" },
    { token: readPat, scope: "read", name: "sim-reader" },
  ],
  log: line("emulator"),
});
const client = new KubeClient(loadKubeconfigFile(values.kubeconfig));
const nodes: VirtualNode[] = [];
for (let i = 1; i <= Number(values.nodes); i++) {
  const node = new VirtualNode({
    client,
    name: `sim-node-${i}`,
    podSubnet: i,
    agentProgram: agentProgram(),
    images,
    logger,
    ...(values["log-dir"] ? { logDir: values["log-dir"] } : {}),
  });
  await node.start();
  nodes.push(node);
}
const info: ServicesInfo = {
  organizationUrl: emulator.organizationUrl,
  controlUrl: emulator.controlUrl,
  pool: values.pool,
  pat,
  readPat,
  nodes: nodes.map((n) => n.name),
  pid: process.pid,
};
writeFileSync(values["ready-file"], `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
logger.info("simulated services ready", { organizationUrl: info.organizationUrl, nodes: info.nodes });

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  logger.info("stopping simulated services");
  for (const node of nodes) await node.stop({ deleteNode: false }).catch(() => {});
  await emulator.close().catch(() => {});
  client.close();
  process.exit(0);
};
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
