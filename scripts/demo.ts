/**
 * `npm run demo`: the whole thing on this machine, no cluster or Azure DevOps organization needed.
 * Starts the simulation (control plane, Azure DevOps emulator, virtual node) if it is not running, installs the
 * CRD, applies the project's sample AutoScaledAgent (the original project's sample, pointed at the emulator),
 * runs the operator, queues a job every few seconds and prints what happens. Ctrl-C stops the operator and the
 * job feed; `npm run sim:down` removes the simulation.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parse } from "yaml";
import { up } from "../sim/cli.ts";
import type { ServicesInfo } from "../sim/services.ts";
import { simDir } from "../sim/state.ts";
import { KubeClient } from "../src/kube/client.ts";
import { loadKubeconfigFile } from "../src/kube/kubeconfig.ts";

const root = join(import.meta.dirname, "..");
const dir = simDir();
const say = (line: string) => process.stdout.write(`${line}\n`);

await up(dir);
const services = JSON.parse(readFileSync(join(dir, "services.json"), "utf8")) as ServicesInfo;
const client = new KubeClient(loadKubeconfigFile(join(dir, "kubeconfig")));
const ns = "demo";
const apply = (path: string, body: unknown) =>
  client.request({
    method: "PATCH",
    path,
    contentType: "application/apply-patch+yaml",
    query: { fieldManager: "azp-demo", force: "true" },
    body,
  });

const crd = parse(readFileSync(join(root, "config/crd/azurepipelines.k8s.scaler.io_autoscaledagents.yaml"), "utf8"));
await apply(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`, crd);
await apply(`/api/v1/namespaces/${ns}`, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
await apply(`/api/v1/namespaces/${ns}/secrets/azure-pat`, {
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name: "azure-pat" },
  stringData: { pat: services.pat },
});
for (;;) {
  // The CRD needs a moment to be served.
  try {
    await client.request({ path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents` });
    break;
  } catch {
    await sleep(200);
  }
}
const sample = parse(readFileSync(join(root, "config/samples/v1_autoscaledagent.yaml"), "utf8"));
sample.spec.organizationUrl = services.organizationUrl;
sample.spec.poolName = services.pool;
await apply(`/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents/${sample.metadata.name}`, sample);
say(
  `applied config/samples/v1_autoscaledagent.yaml to namespace ${ns} (organizationUrl and poolName pointed at the emulator)`,
);

const operator = spawn(
  process.execPath,
  [
    join(root, "src/cli/operator.ts"),
    "--leader-elect",
    "false",
    "--port",
    "0",
    "--poll-interval",
    "2s",
    "--idle-poll-interval",
    "2s",
    "--log-format",
    "text",
  ],
  { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, KUBECONFIG: join(dir, "kubeconfig") } },
);
operator.stderr.on("data", (chunk: Buffer) => {
  for (const line of chunk.toString().split("\n"))
    if (/WARN|ERROR|PodCreated|PodDeleted|started/.test(line)) say(`  operator: ${line}`);
});
say("operator started; waiting for its placeholder agent (so that queued jobs wait instead of failing)");

const control = async (path: string, body?: unknown) => {
  const res = await fetch(`${services.controlUrl}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.json() as Promise<unknown>;
};
let stop = false;
process.on("SIGINT", () => {
  stop = true;
});
while (!stop) {
  const agents = (await control("/agents")) as { name: string }[] | { value?: { name: string }[] };
  const list = Array.isArray(agents) ? agents : (agents.value ?? []);
  if (list.some((a) => a.name.startsWith("dummy-agent-"))) break;
  await sleep(500);
}
say("placeholder registered; queueing a job that demands `buildkit` every 8 seconds (Ctrl-C to stop)");
let tick = 0;
while (!stop) {
  if (tick % 4 === 0) await control("/jobs", { pool: services.pool, demands: ["buildkit"], durationMs: 5000 });
  const asa = await client.request<{ status?: { pendingJobs?: number; pods?: Record<string, number> } }>({
    path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents/${sample.metadata.name}`,
  });
  const jobs = (await control(`/jobs?pool=${encodeURIComponent(services.pool)}`)) as
    | { state: string }[]
    | { value?: { state: string }[] };
  const list = Array.isArray(jobs) ? jobs : (jobs.value ?? []);
  const count = (s: string) => list.filter((j) => j.state === s).length;
  const pods = asa.status?.pods ?? {};
  say(
    `jobs queued=${count("queued")} running=${count("running") + count("assigned")} finished=${count("finished")} | ` +
      `pods starting=${pods.starting ?? 0} idle=${pods.idle ?? 0} busy=${pods.busy ?? 0} finished=${pods.finished ?? 0}`,
  );
  tick++;
  await sleep(2000);
}
operator.kill("SIGTERM");
client.close();
say("stopped the operator; the simulation keeps running (npm run sim:down removes it)");
