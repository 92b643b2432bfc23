/**
 * `npm run demo`: the whole thing on this machine, no cluster or Azure DevOps organization needed.
 * Starts the simulation (control plane, Azure DevOps emulator, virtual node) if it is not running, installs the
 * CRD, applies the project's sample AutoScaledAgent (the original project's sample, pointed at the emulator),
 * runs the operator, queues a job every few seconds and shows what happens: a live dashboard in a terminal, one
 * line per change when stdout is not a terminal or with `--plain`. q or Ctrl-C stops the operator and the job
 * feed and prints a summary; `npm run sim:down` removes the simulation.
 *
 * What it shows is read every second: the resource, its pods and the namespace's events through the project's
 * Kubernetes client, jobs and agents through the emulator's control API. `scripts/demo/model.ts` turns the reads
 * into a picture, `scripts/demo/view.ts` draws it (pure); this file and `scripts/demo/screen.ts` do the I/O.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { parse } from "yaml";
import type { SimAgentView, SimJobView } from "../sim/azure-devops/views.ts";
import { up } from "../sim/cli.ts";
import type { ServicesInfo } from "../sim/services.ts";
import { simDir } from "../sim/state.ts";
import { labels, MANAGED_BY_VALUE } from "../src/api/v1/index.ts";
import type { PodObject } from "../src/controller/ports.ts";
import { KubeClient } from "../src/kube/client.ts";
import { loadKubeconfigFile } from "../src/kube/kubeconfig.ts";
import { labelValue } from "../src/pods/build.ts";
import { deriveWorld, oneLine, type RawEvent, type RawResource, type RawWorld, type World } from "./demo/model.ts";
import { Screen } from "./demo/screen.ts";
import {
  type DashboardState,
  formatSummary,
  type Notice,
  plainLines,
  renderDashboard,
  summarize,
} from "./demo/view.ts";

const { values: flags } = parseArgs({ options: { plain: { type: "boolean", default: false } } });
const plain = flags.plain || !process.stdout.isTTY;

const READ_INTERVAL_MS = 1000;
const JOB_EVERY_MS = 8000;
const JOB_DEMAND = "buildkit";
const JOB_DURATION_MS = 5000;
/** Every so often several jobs at once, more than the warm pod can take: the operator scales up, jobs wait. */
const BURST_EVERY = 4;
const BURST_SIZE = 3;

const root = join(import.meta.dirname, "..");
const dir = simDir();
const startedAt = Date.now();
const note = (line: string) => process.stderr.write(`${line}\n`);
const shown = (path: string) => {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") ? path : rel;
};

// ---- set up: the simulation, the CRD, the namespace, the PAT secret and the sample resource

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
const resources = `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents`;
for (;;) {
  // The CRD needs a moment to be served.
  try {
    await client.request({ path: resources });
    break;
  } catch {
    await sleep(200);
  }
}
const sample = parse(readFileSync(join(root, "config/samples/v1_autoscaledagent.yaml"), "utf8"));
sample.spec.organizationUrl = services.organizationUrl;
sample.spec.poolName = services.pool;
const name: string = sample.metadata.name;
await apply(`${resources}/${name}`, sample);
note(`applied config/samples/v1_autoscaledagent.yaml to namespace ${ns} (organizationUrl and poolName: the emulator)`);

// ---- the operator, its log in a file; its warnings and errors also go to the view

mkdirSync(join(dir, "logs"), { recursive: true });
const operatorLog = join(dir, "logs", "demo-operator.log");
const notices: Notice[] = [];
let noticeSeq = 0;
let activity = "operator started; waiting for its placeholder agent before queueing jobs";
const operator: ChildProcess = spawn(
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
    // The emulator serves Azure DevOps over plain http on loopback: allowed here only, never by default.
    "--azure-devops-hosts",
    "127.0.0.1",
    "--azure-devops-allow-http",
    "true",
  ],
  { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, KUBECONFIG: join(dir, "kubeconfig") } },
);
const logFile = createWriteStream(operatorLog, { flags: "w" });
operator.stderr?.pipe(logFile);
if (operator.stderr) {
  createInterface({ input: operator.stderr }).on("line", (line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (entry.level !== "warn" && entry.level !== "error") return;
    const { time: _time, level, msg, ...fields } = entry;
    const rest = Object.entries(fields)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    notices.push({
      seq: noticeSeq++,
      time: Date.now(),
      level: level === "error" ? "error" : "warn",
      text: oneLine(`${String(msg)} ${rest}`),
    });
    if (notices.length > 20) notices.shift();
  });
}
// Whatever way this process ends, the operator does not outlive it.
process.on("exit", () => operator.kill("SIGTERM"));
let stopping = false;
operator.on("exit", (code, signal) => {
  if (stopping) return;
  activity = `the operator exited (${signal ?? `code ${code}`}); see its log`;
  notices.push({ seq: noticeSeq++, time: Date.now(), level: "error", text: `operator exited (${signal ?? code})` });
});

// ---- reading the world

const control = async <T>(path: string, body?: unknown): Promise<T> => {
  const res = await fetch(`${services.controlUrl}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json() as Promise<T>;
};
const items = <T>(list: { value?: T[] } | T[]): T[] => (Array.isArray(list) ? list : (list.value ?? []));
const pool = encodeURIComponent(services.pool);
const podSelector = `${labels.managedBy}=${MANAGED_BY_VALUE},${labels.resource}=${labelValue(name)}`;

async function read(): Promise<{ raw: RawWorld; error?: string }> {
  const errors: string[] = [];
  const attempt = async <T>(what: string, f: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await f();
    } catch (err) {
      errors.push(`${what}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const [resource, pods, events, jobs, agents] = await Promise.all([
    attempt("resource", () => client.request<RawResource>({ path: `${resources}/${name}`, timeoutMs: 5000 })),
    attempt("pods", () =>
      client
        .request<{ items: PodObject[] }>({
          path: `/api/v1/namespaces/${ns}/pods`,
          query: { labelSelector: podSelector },
          timeoutMs: 5000,
        })
        .then((l) => l.items),
    ),
    attempt("events", () =>
      client
        .request<{ items: RawEvent[] }>({ path: `/apis/events.k8s.io/v1/namespaces/${ns}/events`, timeoutMs: 5000 })
        .then((l) => l.items),
    ),
    attempt("jobs", () => control<{ value?: SimJobView[] }>(`/jobs?pool=${pool}`).then(items)),
    attempt("agents", () => control<{ value?: SimAgentView[] }>(`/agents?pool=${pool}`).then(items)),
  ]);
  const raw: RawWorld = { resource, pods, events, jobs, agents };
  return errors.length === 0 ? { raw } : { raw, error: errors.join("; ") };
}

// ---- state, updated by each read

const podsMade = new Set<string>();
let world: World = { jobs: [], pods: [], templates: [], placeholders: [], events: [], conditions: [] };
let readError: string | undefined;
let feedError: string | undefined;
let nextJobAt: number | undefined;
const info = {
  apiServer: client.connection.server,
  organizationUrl: services.organizationUrl,
  controlUrl: services.controlUrl,
  pool: services.pool,
  namespace: ns,
  resource: name,
  envFile: shown(join(dir, "env")),
  operatorLog: shown(operatorLog),
};
const snapshot = (): DashboardState => ({
  info,
  startedAt,
  world,
  podsCreated: podsMade.size,
  activity,
  ...(nextJobAt === undefined ? {} : { nextJobAt }),
  notices: [...notices],
  ...(readError === undefined ? {} : { readError }),
});

async function refresh(): Promise<void> {
  const { raw, error } = await read();
  readError = [error, feedError].filter(Boolean).join("; ") || undefined;
  feedError = undefined;
  // A failed part keeps what the previous read showed.
  const fresh = deriveWorld(raw, { since: startedAt });
  world = {
    jobs: raw.jobs ? fresh.jobs : world.jobs,
    pods: raw.pods ? fresh.pods : world.pods,
    templates: raw.resource ? fresh.templates : world.templates,
    placeholders: raw.agents ? fresh.placeholders : world.placeholders,
    events: raw.events ? fresh.events : world.events,
    conditions: raw.resource ? fresh.conditions : world.conditions,
  };
  for (const p of world.pods) if (p.createdAt >= startedAt) podsMade.add(p.name);
}

// ---- output: a dashboard on a terminal, lines otherwise

let resolveStop: () => void = () => {};
const stopped = new Promise<void>((resolve) => {
  resolveStop = resolve;
});
// Ctrl-C without raw mode reaches the operator too: its exit is then no surprise.
const stopRequested = () => {
  stopping = true;
  resolveStop();
};
const screen = plain
  ? undefined
  : new Screen({
      render: ({ width, height }) => renderDashboard(snapshot(), { width, height, now: Date.now(), color: true }),
      onStop: () => stopRequested(),
    });
let previous: DashboardState | undefined;
const show = () => {
  if (screen) {
    screen.update();
    return;
  }
  const next = snapshot();
  for (const line of plainLines(previous, next, Date.now())) process.stdout.write(`${line}\n`);
  previous = next;
};
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => stopRequested());
process.stdout.on("error", () => stopRequested());

// ---- the loops: reads, the clock on the screen, the job feed

const loops = new AbortController();
let feed: NodeJS.Timeout | undefined;
let round = 0;
const queueJob = () => {
  nextJobAt = Date.now() + JOB_EVERY_MS;
  const count = round++ % BURST_EVERY === BURST_EVERY - 1 ? BURST_SIZE : 1;
  const job = { pool: services.pool, demands: [JOB_DEMAND], durationMs: JOB_DURATION_MS, count };
  control("/jobs", job).catch((err) => {
    feedError = `queueing a job: ${(err as Error).message}`;
  });
};
const readLoop = (async () => {
  while (!loops.signal.aborted) {
    await refresh();
    if (feed === undefined && !stopping && world.placeholders.length > 0) {
      const every = JOB_EVERY_MS / 1000;
      activity = `jobs demanding ${JOB_DEMAND}: 1 every ${every}s, ${BURST_SIZE} at once every ${every * BURST_EVERY}s`;
      queueJob();
      feed = setInterval(queueJob, JOB_EVERY_MS);
    }
    show();
    await sleep(READ_INTERVAL_MS, undefined, { signal: loops.signal }).catch(() => {});
  }
})();
const ticker = screen ? setInterval(() => screen.update(), 1000) : undefined;

screen?.open();
show();
await stopped;

// ---- stop: the feed, the operator; a last read for the summary

if (feed) clearInterval(feed);
if (ticker) clearInterval(ticker);
loops.abort();
screen?.close();
await readLoop;
note("stopping the operator…");
const exited = new Promise<void>((resolve) => {
  if (operator.exitCode !== null || operator.signalCode !== null) resolve();
  else operator.once("exit", () => resolve());
});
operator.kill("SIGTERM");
const timedOut = await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)]);
if (timedOut) operator.kill("SIGKILL");
await new Promise<void>((resolve) => logFile.end(resolve));
await refresh();
if (!screen) show();
client.close();
const summary = summarize(world.jobs, podsMade, { startedAt, now: Date.now() });
process.stdout.write(`${formatSummary(summary).join("\n")}\n`);
note(`operator log: ${info.operatorLog}; the simulation keeps running (npm run sim:down removes it)`);
process.exit(0);
