/**
 * What the demo shows, as pure functions of its state: the live dashboard (`renderDashboard`), the line-by-line
 * account for a pipe or `--plain` (`plainLines`), and the summary printed at the end (`summarize`,
 * `formatSummary`). No I/O and no clock: the caller passes `now`.
 */
import {
  type ConditionInfo,
  type EventInfo,
  JOB_BUCKETS,
  type JobBucket,
  type JobInfo,
  POD_BUCKETS,
  type PodBucket,
  type PodInfo,
  type World,
} from "./model.ts";

/** What is running, for the header. */
export interface DemoInfo {
  apiServer: string;
  organizationUrl: string;
  controlUrl: string;
  pool: string;
  namespace: string;
  resource: string;
  /** The env file to source for kubectl, as the user should type it. */
  envFile: string;
  /** Where the operator's log goes. */
  operatorLog: string;
}

/** A warning or error line of the operator's log. */
export interface Notice {
  seq: number;
  time: number;
  level: "warn" | "error";
  text: string;
}

export interface DashboardState {
  info: DemoInfo;
  startedAt: number;
  world: World;
  /** Pods made since the demo started (names seen). */
  podsCreated: number;
  /** What the demo itself is doing, e.g. waiting for the placeholder or queueing jobs. */
  activity: string;
  /** When the job feed queues its next job, if it runs. */
  nextJobAt?: number;
  /** The operator's warnings and errors, oldest first. */
  notices: Notice[];
  /** The last failed read, if the latest round had one. */
  readError?: string;
}

export interface RenderOptions {
  width: number;
  height: number;
  now: number;
  /** ANSI colours (default false). */
  color?: boolean;
}

// ---- text helpers

const ESC_CHAR = String.fromCharCode(27);
const ESC = `${ESC_CHAR}[`;
const SGR_SOURCE = `${ESC_CHAR}\\[[0-9;?]*[A-Za-z]`;
const ANSI = new RegExp(SGR_SOURCE, "g");
/** One escape sequence exactly at `lastIndex`. */
const ANSI_AT = new RegExp(SGR_SOURCE, "y");

type Style = "bold" | "dim" | "green" | "red" | "yellow" | "cyan" | "magenta";
const CODES: Record<Style, string> = {
  bold: "1",
  dim: "2",
  green: "32",
  red: "31",
  yellow: "33",
  cyan: "36",
  magenta: "35",
};

function paint(on: boolean, style: Style, text: string): string {
  return on && text !== "" ? `${ESC}${CODES[style]}m${text}${ESC}0m` : text;
}

/** The text without ANSI escapes. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/** Cuts a line to `width` visible characters (an ellipsis marks the cut), keeping escapes whole; no newlines. */
export function fit(line: string, width: number): string {
  const flat = line.replace(/[\r\n\t]/g, " ");
  if (width <= 0) return "";
  if (stripAnsi(flat).length <= width) return flat;
  let out = "";
  let visible = 0;
  let styled = false;
  for (let i = 0; i < flat.length; ) {
    ANSI_AT.lastIndex = i;
    const m = ANSI_AT.exec(flat);
    if (m) {
      out += m[0];
      styled = true;
      i += m[0].length;
      continue;
    }
    if (visible === width - 1) break;
    out += flat[i];
    visible++;
    i++;
  }
  return `${out}…${styled ? `${ESC}0m` : ""}`;
}

/** `0.4s`, `2.1s`, `12s`, `1m05s`, `1h02m`. */
export function formatDuration(ms: number): string {
  const v = Math.max(0, ms);
  if (v < 10_000) return `${(v / 1000).toFixed(1)}s`;
  const s = Math.floor(v / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** `mm:ss` (or `h:mm:ss`) since the start, the prefix of plain lines. */
export function formatClock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** Percentile `p` (0..100) of the values, linear between closest ranks (the median of 1,2,3,4 is 2.5). */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (Math.min(100, Math.max(0, p)) / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (rank - lo);
}

// ---- summary

export interface Summary {
  /** Jobs queued since the start. */
  queued: number;
  /** Jobs an agent started. */
  run: number;
  byBucket: Record<JobBucket, number>;
  /** Queue to start of the jobs that started, ms. */
  medianWaitMs?: number;
  p90WaitMs?: number;
  podsCreated: number;
  runTimeMs: number;
}

/** The numbers of a demo run. `jobs`: those queued during it; `podsCreated`: names of the pods it saw made. */
export function summarize(
  jobs: readonly JobInfo[],
  podsCreated: Iterable<string>,
  times: { startedAt: number; now: number },
): Summary {
  const byBucket = Object.fromEntries(JOB_BUCKETS.map((b) => [b, 0])) as Record<JobBucket, number>;
  for (const j of jobs) byBucket[j.bucket]++;
  const waits = jobs.flatMap((j) => (j.startedAt === undefined ? [] : [j.startedAt - j.queuedAt]));
  const summary: Summary = {
    queued: jobs.length,
    run: waits.length,
    byBucket,
    podsCreated: new Set(podsCreated).size,
    runTimeMs: Math.max(0, times.now - times.startedAt),
  };
  const median = percentile(waits, 50);
  const p90 = percentile(waits, 90);
  if (median !== undefined) summary.medianWaitMs = median;
  if (p90 !== undefined) summary.p90WaitMs = p90;
  return summary;
}

export function formatSummary(s: Summary): string[] {
  const b = s.byBucket;
  const unfinished = [b.running ? `${b.running} still running` : "", b.queued ? `${b.queued} still queued` : ""]
    .filter(Boolean)
    .join(", ");
  return [
    "Demo summary",
    `  run time        ${formatDuration(s.runTimeMs)}`,
    `  jobs queued     ${s.queued}${unfinished ? ` (${unfinished})` : ""}`,
    `  jobs run        ${s.run} (succeeded ${b.succeeded}, failed ${b.failed}, canceled ${b.canceled})`,
    `  wait to start   ${
      s.medianWaitMs === undefined
        ? "no job started"
        : `median ${formatDuration(s.medianWaitMs)}, p90 ${formatDuration(s.p90WaitMs ?? s.medianWaitMs)} (queued to started)`
    }`,
    `  pods created    ${s.podsCreated}`,
  ];
}

// ---- dashboard

const JOB_STYLE: Record<JobBucket, Style> = {
  queued: "yellow",
  running: "cyan",
  succeeded: "green",
  failed: "red",
  canceled: "magenta",
};
const POD_STYLE: Record<PodBucket, Style> = {
  starting: "yellow",
  idle: "green",
  busy: "cyan",
  finishing: "magenta",
  finished: "dim",
  lost: "red",
};

/** Whether a condition says something is wrong. */
export function conditionBad(c: Pick<ConditionInfo, "type" | "status">): boolean {
  return c.type === "Degraded" ? c.status !== "False" : c.status !== "True";
}

/** How long an operator warning stays on the dashboard. */
export const NOTICE_SHOWN_MS = 2 * 60_000;

const CONDITION_ORDER = ["Ready", "AzureDevOpsReachable", "Degraded"];

function countBy<T, K extends string>(items: readonly T[], key: (t: T) => K): Map<K, number> {
  const m = new Map<K, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return m;
}

interface Block {
  /** Lines always shown (while the height allows). */
  head: string[];
  /** Rows that may be dropped from the end when the screen is short. */
  rows: string[];
  /** Continues the block before it (no blank line between). */
  joined?: boolean;
}

/**
 * The dashboard as lines, each at most `width` visible characters, at most `height` lines (the footer stays
 * last). When the screen is short, list rows go first (events, then jobs, then pods), then whole lines from the
 * bottom of the body.
 */
export function renderDashboard(state: DashboardState, options: RenderOptions): string[] {
  const { now } = options;
  const width = Math.max(1, Math.floor(options.width));
  const height = Math.max(1, Math.floor(options.height));
  const c = options.color === true;
  const h = (text: string) => paint(c, "bold", text);
  const dim = (text: string) => paint(c, "dim", text);
  const { info, world } = state;

  const title = `${h("Azure Pipelines agents on Kubernetes")} ${dim("· demo")}`;
  const clock = `up ${formatDuration(now - state.startedAt)}`;
  const gap = width - stripAnsi(title).length - clock.length;
  const header: Block = {
    head: [
      gap >= 1 ? `${title}${" ".repeat(gap)}${clock}` : title,
      `${dim("Kubernetes   ")}${info.apiServer} · namespace ${info.namespace} · autoscaledagent/${info.resource}`,
      `${dim("Azure DevOps ")}${info.organizationUrl} · pool ${info.pool} · control API ${info.controlUrl}`,
      `${dim("Look inside  ")}source ${info.envFile} && kubectl get asa,pods,events -n ${info.namespace}`,
      `${dim("Stop         ")}q or Ctrl-C; then npm run sim:down removes the simulation`,
    ],
    rows: [],
  };

  // Conditions
  const rank = (type: string) => {
    const i = CONDITION_ORDER.indexOf(type);
    return i < 0 ? CONDITION_ORDER.length : i;
  };
  const conds = [...world.conditions].sort((a, b) => rank(a.type) - rank(b.type) || (a.type < b.type ? -1 : 1));
  const typeWidth = Math.max(0, ...conds.map((x) => x.type.length));
  const conditions: Block = {
    head: [
      h("Resource conditions"),
      ...(conds.length === 0
        ? [`  ${dim("none yet (the operator writes them on its first reconcile)")}`]
        : conds.map((x) => {
            const bad = conditionBad(x);
            const status = paint(c, bad ? "red" : "green", x.status.padEnd(7));
            return `  ${x.type.padEnd(typeWidth)}  ${status} ${x.reason}${bad && x.message ? `: ${x.message}` : ""}`;
          })),
    ],
    rows: [],
  };

  // Jobs
  const jobs = world.jobs;
  const jobCounts = countBy(jobs, (j) => j.bucket);
  const queued = jobs.filter((j) => j.bucket === "queued");
  const oldest = queued.length === 0 ? undefined : Math.min(...queued.map((j) => j.queuedAt));
  const waits = jobs.flatMap((j) => (j.startedAt === undefined ? [] : [j.startedAt - j.queuedAt]));
  const median = percentile(waits, 50);
  const p90 = percentile(waits, 90);
  const jobLine = JOB_BUCKETS.map((b) => {
    const n = jobCounts.get(b) ?? 0;
    return `${b} ${n > 0 ? paint(c, JOB_STYLE[b], String(n)) : dim("0")}`;
  }).join("  ");
  const active = jobs.filter((j) => j.bucket === "queued" || j.bucket === "running");
  const done = jobs.filter((j) => j.bucket !== "queued" && j.bucket !== "running").reverse();
  const jobRow = (j: JobInfo) => {
    const state = paint(c, JOB_STYLE[j.bucket], j.bucket.padEnd(9));
    let what: string;
    if (j.bucket === "queued") what = `waiting ${formatDuration(now - j.queuedAt)}`;
    else if (j.bucket === "running")
      what = `${j.startedAt === undefined ? "assigned" : `for ${formatDuration(now - j.startedAt)}`}${j.agent ? ` on ${j.agent}` : ""}`;
    else
      what = [
        j.startedAt === undefined ? "never started" : `waited ${formatDuration(j.startedAt - j.queuedAt)}`,
        j.startedAt !== undefined && j.finishedAt !== undefined
          ? `ran ${formatDuration(j.finishedAt - j.startedAt)}`
          : "",
        j.finishedAt === undefined ? "" : `${formatDuration(now - j.finishedAt)} ago`,
        j.agent ? `on ${j.agent}` : "",
        j.message && j.bucket !== "succeeded" ? j.message : "",
      ]
        .filter(Boolean)
        .join(", ");
    return `  #${String(j.id).padEnd(5)} ${state} ${what}`;
  };
  const jobsBlock: Block = {
    head: [
      `${h("Jobs")}  ${jobLine}`,
      `  ${
        oldest === undefined
          ? dim("nothing queued")
          : `oldest queued ${paint(c, "yellow", formatDuration(now - oldest))}`
      } · wait to start: ${
        median === undefined
          ? dim("no job started yet")
          : `median ${formatDuration(median)}, p90 ${formatDuration(p90 ?? median)} (${waits.length} started)`
      }`,
    ],
    rows: [...active, ...done].slice(0, 6).map(jobRow),
  };

  // Pods, per template
  const podRow = (p: PodInfo) =>
    `    ${p.name}  ${paint(c, POD_STYLE[p.state], p.state.padEnd(9))} ${dim(`made ${formatDuration(now - p.createdAt)} ago`)}`;
  const podCounts = (pods: readonly PodInfo[]) => {
    const counts = countBy(pods, (p) => p.state);
    const shown: PodBucket[] = [...POD_BUCKETS, ...((counts.get("lost") ?? 0) > 0 ? (["lost"] as const) : [])];
    return shown
      .map((b) => {
        const n = counts.get(b) ?? 0;
        return `${b} ${n > 0 ? paint(c, POD_STYLE[b], String(n)) : dim("0")}`;
      })
      .join("  ");
  };
  const podBlocks: Block[] = [{ head: [h(`Agent pods (${state.podsCreated} made since the start)`)], rows: [] }];
  const groups: { label: string; pods: PodInfo[] }[] = world.templates.map((t) => ({
    label: `template ${t.index} ${t.capabilities} (min ${t.minCount}, max ${t.maxCount})${
      t.pendingJobs === undefined ? "" : ` · pending jobs ${t.pendingJobs}`
    }`,
    pods: world.pods.filter((p) => p.template === t.index),
  }));
  const orphans = world.pods.filter((p) => p.template === null || p.template >= world.templates.length);
  if (orphans.length > 0) groups.push({ label: "no current template", pods: orphans });
  if (groups.length === 0) podBlocks[0]?.head.push(`  ${dim("no templates yet")}`);
  for (const g of groups) {
    // Newest first: the ones that move.
    podBlocks.push({
      head: [`  ${g.label}`, `    ${podCounts(g.pods)}`],
      rows: [...g.pods].reverse().slice(0, 8).map(podRow),
      joined: true,
    });
  }

  // Placeholders
  const placeholders: Block = {
    head: [
      `${h("Placeholder agents")} ${dim("(offline on purpose: queued jobs wait instead of failing)")}`,
      ...(world.placeholders.length === 0
        ? [`  ${dim("none yet (the operator registers one per template)")}`]
        : world.placeholders.map((p) => `  ${p.name}  ${p.status}  ${p.capabilities}`)),
    ],
    rows: [],
  };

  // Events
  // The resource's own events need no name: it is in the header.
  const ownEvents = `autoscaledagent/${info.resource}`;
  const eventRow = (e: EventInfo) => {
    const object = e.object === ownEvents ? "" : ` ${e.object}`;
    const count = e.count > 1 ? ` (x${e.count})` : "";
    const type = paint(c, e.type === "Warning" ? "red" : "dim", e.type.padEnd(7));
    return `  ${formatDuration(now - e.time).padStart(6)} ago  ${type} ${e.reason}${object}${count}: ${e.note}`;
  };
  const events: Block = {
    head: [h(`Events in namespace ${info.namespace}`), ...(world.events.length === 0 ? [`  ${dim("none yet")}`] : [])],
    rows: world.events.slice(0, 6).map(eventRow),
  };

  // Operator warnings (only when there are some) and read errors
  // Warnings fade after a while: the conditions say whether trouble goes on.
  const recent = state.notices
    .filter((n) => now - n.time < NOTICE_SHOWN_MS)
    .slice(-3)
    .reverse();
  const notices: Block = {
    head:
      recent.length === 0 && state.readError === undefined
        ? []
        : [
            `${h("Operator warnings")} ${dim(`(full log: ${info.operatorLog})`)}`,
            ...recent.map(
              (n) =>
                `  ${formatDuration(now - n.time).padStart(6)} ago  ${paint(c, n.level === "error" ? "red" : "yellow", n.level.toUpperCase().padEnd(5))} ${n.text}`,
            ),
            ...(state.readError === undefined ? [] : [`  ${paint(c, "red", "demo read failed:")} ${state.readError}`]),
          ],
    rows: [],
  };

  const next = state.nextJobAt === undefined ? "" : ` · next in ${formatDuration(Math.max(0, state.nextJobAt - now))}`;
  const footer = dim(`q or Ctrl-C: stop · ${state.activity}${next}`);

  const blocks = [header, conditions, jobsBlock, ...podBlocks, placeholders, notices, events].filter(
    (b) => b.head.length + b.rows.length > 0,
  );
  return layout(blocks, footer, width, height);
}

/**
 * Fits the blocks into `height` lines, footer last: blank lines between blocks while every list keeps at least two
 * rows, then list rows are dropped from the longest list first, then whole lines from the bottom of the body.
 */
function layout(blocks: Block[], footer: string, width: number, height: number): string[] {
  const heads = blocks.reduce((n, b) => n + b.head.length, 0);
  const rows = blocks.reduce((n, b) => n + b.rows.length, 0);
  const wanted = blocks.reduce((n, b) => n + Math.min(2, b.rows.length), 0);
  const separators = blocks.filter((b, i) => i > 0 && !b.joined).length;
  const spaced = heads + separators + 2 + wanted <= height || heads + separators + 2 + rows <= height;
  let room = height - heads - 2 - (spaced ? separators : 0);
  const kept = blocks.map((b) => ({ head: b.head, rows: [...b.rows] }));
  let total = rows;
  while (total > Math.max(0, room)) {
    let longest = kept[0];
    for (const b of kept) if (longest === undefined || b.rows.length > longest.rows.length) longest = b;
    if (longest === undefined || longest.rows.length === 0) break;
    longest.rows.pop();
    total--;
  }
  room = height - 1;
  const body: string[] = [];
  kept.forEach((b, i) => {
    if (i > 0 && spaced && !blocks[i]?.joined) body.push("");
    body.push(...b.head, ...b.rows);
  });
  body.push("");
  const shown = body.length > room ? body.slice(0, Math.max(0, room)) : body;
  return [...shown, footer].slice(-height).map((l) => fit(l, width));
}

// ---- plain lines

const podVerb: Record<PodBucket, string> = {
  starting: "starting",
  idle: "idle (agent online, waiting for a job)",
  busy: "busy (running a job)",
  finishing: "finishing (agent done)",
  finished: "finished",
  lost: "lost (node unreachable)",
};

/**
 * The changes of interest from one state to the next, one line each, prefixed with the time since the start.
 * With no previous state, only the demo's first lines (what is running) come out.
 */
export function plainLines(prev: DashboardState | undefined, next: DashboardState, now: number): string[] {
  const at = `[${formatClock(now - next.startedAt)}]`;
  const out: string[] = [];
  const say = (text: string) => out.push(`${at} ${text}`);
  const { info } = next;
  if (prev === undefined) {
    say(`Kubernetes ${info.apiServer}, namespace ${info.namespace}, autoscaledagent/${info.resource}`);
    say(`Azure DevOps emulator ${info.organizationUrl}, pool ${info.pool}`);
    say(
      `operator log: ${info.operatorLog}; look inside: source ${info.envFile} && kubectl get asa,pods -n ${info.namespace}`,
    );
  }
  if (prev?.activity !== next.activity) say(next.activity);

  const before = prev?.world;
  const w = next.world;

  const prevConds = new Map((before?.conditions ?? []).map((x) => [x.type, x]));
  for (const x of w.conditions) {
    const p = prevConds.get(x.type);
    if (p && p.status === x.status && p.reason === x.reason) continue;
    say(`condition ${x.type} ${x.status} (${x.reason})${conditionBad(x) && x.message ? `: ${x.message}` : ""}`);
  }

  const prevPlaceholders = new Set((before?.placeholders ?? []).map((p) => p.name));
  for (const p of w.placeholders)
    if (!prevPlaceholders.has(p.name)) say(`placeholder agent ${p.name} (${p.capabilities}) is ${p.status}`);
  const nowPlaceholders = new Set(w.placeholders.map((p) => p.name));
  for (const name of prevPlaceholders) if (!nowPlaceholders.has(name)) say(`placeholder agent ${name} removed`);

  const prevJobs = new Map((before?.jobs ?? []).map((j) => [j.id, j]));
  for (const j of w.jobs) {
    const p = prevJobs.get(j.id);
    if (p?.bucket === j.bucket) continue;
    if (p === undefined) say(`job #${j.id} queued`);
    if (j.bucket === "queued") {
      if (p !== undefined) say(`job #${j.id} back in the queue`);
      continue;
    }
    if ((p === undefined || p.bucket === "queued") && j.startedAt !== undefined)
      say(
        `job #${j.id} started${j.agent ? ` on ${j.agent}` : ""} after waiting ${formatDuration(j.startedAt - j.queuedAt)}`,
      );
    if (j.bucket === "running") continue;
    const ran = j.startedAt !== undefined && j.finishedAt !== undefined;
    say(
      `job #${j.id} ${j.bucket}${ran ? ` (ran ${formatDuration((j.finishedAt as number) - (j.startedAt as number))})` : ""}${j.message && j.bucket !== "succeeded" ? `: ${j.message}` : ""}`,
    );
  }

  const prevPods = new Map((before?.pods ?? []).map((p) => [p.name, p]));
  for (const p of w.pods) {
    const q = prevPods.get(p.name);
    if (q?.state === p.state) continue;
    say(`pod ${p.name} ${podVerb[p.state]}`);
  }
  const nowPods = new Set(w.pods.map((p) => p.name));
  for (const name of prevPods.keys()) if (!nowPods.has(name)) say(`pod ${name} deleted`);

  // The operator's events say why it acts; other components' normal events repeat the pod lines above.
  const seen = new Set((before?.events ?? []).map((e) => e.key));
  const own = `autoscaledagent/${info.resource}`;
  for (const e of [...w.events].reverse()) {
    if (seen.has(e.key) || (!e.byOperator && e.type !== "Warning")) continue;
    const object = e.object === own ? "" : ` ${e.object}`;
    say(`${e.type === "Warning" ? "warning" : "event"} ${e.reason}${object}: ${e.note}`);
  }

  const lastSeq = prev?.notices.at(-1)?.seq ?? -1;
  for (const n of next.notices) if (n.seq > lastSeq) say(`operator ${n.level.toUpperCase()} ${n.text}`);
  if (next.readError !== undefined && next.readError !== prev?.readError) say(`read failed: ${next.readError}`);
  return out;
}
