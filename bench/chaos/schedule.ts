/**
 * The chaos run's schedule, generated from a seed: the world (resources, templates, pools), the jobs (demands,
 * durations, ExtraAgentContainers values, cancellations) and the disturbances (operator replicas killed or rolled,
 * Azure DevOps faults, an API-server restart, a silently stalled watch, resources edited, deleted and recreated).
 * Pure: the same seed and options give the same schedule.
 */
import type { FaultRule } from "../../sim/azure-devops/faults.ts";
import { type Rng, rng } from "./prng.ts";

export type NamespaceRef = "a" | "b";

export interface TemplateDef {
  /** Stable id within the resource, e.g. "default". */
  id: string;
  capabilities: Record<string, string>;
  minCount: number;
  maxCount: number;
  /** A reusableCacheVolumes entry the agent container mounts. */
  cacheVolume?: string;
  /** A sidecar next to the agent: a classic container, or a native sidecar (init container, restartPolicy Always). */
  sidecar?: "classic" | "native";
  /** Jobs for this template may ask for ExtraAgentContainers. */
  extraAgentContainers?: boolean;
  /** Job weight while the template is available. */
  weight: number;
}

export interface ResourceDef {
  name: string;
  namespace: NamespaceRef;
  pool: string;
  /** The templates at the start (and at the end: every edit is undone before the schedule ends). */
  templates: TemplateDef[];
  /** Templates that exist only for a while (added and removed by the schedule). */
  extraTemplates: TemplateDef[];
  cacheVolumes: string[];
}

export const pools = ["chaos-pool-1", "chaos-pool-2"] as const;

/** Two namespaces, two pools, three resources; pool 2 is shared by two resources with different templates. */
export const chaosWorld: readonly ResourceDef[] = [
  {
    name: "alpha",
    namespace: "a",
    pool: pools[0],
    cacheVolumes: ["build-cache"],
    templates: [
      {
        id: "default",
        capabilities: { alpha: "1" },
        minCount: 1,
        maxCount: 5,
        cacheVolume: "build-cache",
        extraAgentContainers: true,
        weight: 35,
      },
      { id: "big", capabilities: { alpha: "1", big: "1" }, minCount: 0, maxCount: 3, sidecar: "classic", weight: 10 },
    ],
    extraTemplates: [],
  },
  {
    name: "beta",
    namespace: "a",
    pool: pools[1],
    cacheVolumes: [],
    templates: [
      { id: "default", capabilities: { beta: "1" }, minCount: 0, maxCount: 4, sidecar: "classic", weight: 20 },
    ],
    extraTemplates: [{ id: "extra", capabilities: { beta: "1", extra: "1" }, minCount: 0, maxCount: 2, weight: 6 }],
  },
  {
    name: "gamma",
    namespace: "b",
    pool: pools[1],
    cacheVolumes: ["gamma-cache"],
    templates: [
      {
        id: "default",
        capabilities: { gamma: "1" },
        minCount: 1,
        maxCount: 4,
        cacheVolume: "gamma-cache",
        sidecar: "native",
        weight: 20,
      },
      { id: "arm", capabilities: { gamma: "1", arm: "1" }, minCount: 0, maxCount: 2, weight: 10 },
    ],
    extraTemplates: [],
  },
];

/** Two ExtraAgentContainers values: the named form and the original README's positional form. */
export const extraAgentContainerValues = [
  "name=tools,image=docker.io/library/busybox:1.36,cpu=100m,memory=32Mi",
  "helper,docker.io/library/alpine:3.20,100m,32Mi",
] as const;

export type CancelStage = "queued" | "assigned" | "running";

export interface JobPlan {
  id: number;
  /** ms from the start of the schedule. */
  at: number;
  resource: string;
  template: string;
  demands: string[];
  durationMs: number;
  startDelayMs: number;
  finishDelayMs: number;
  extraAgentContainers?: string;
  /** The harness cancels the job once it reaches `stage` (or at once if it is past it), after `afterMs`. */
  cancel?: { stage: CancelStage; afterMs: number };
}

export type AdoFault = "errors" | "drops" | "slow" | "throttle";

export type ChaosEvent =
  | { kind: "leader-kill"; at: number }
  | { kind: "leader-rolling-update"; at: number }
  | { kind: "ado-fault"; at: number; durationMs: number; fault: AdoFault }
  | { kind: "apiserver-restart"; at: number; kill: boolean; downMs: number }
  | { kind: "watch-stall"; at: number; durationMs: number }
  | { kind: "set-max-count"; at: number; resource: string; template: string; maxCount: number }
  | { kind: "remove-template"; at: number; resource: string; template: string }
  | { kind: "add-template"; at: number; resource: string; template: string }
  | { kind: "delete-resource"; at: number; resource: string }
  | { kind: "create-resource"; at: number; resource: string };

export interface ScheduleOptions {
  seed: number;
  jobs: number;
  /** Length of the schedule (ms): jobs and disturbances happen in [0, lengthMs]. */
  lengthMs: number;
  quick: boolean;
  /** A template must have existed this long before jobs for it are queued (its placeholder must be registered). */
  settleMs: number;
  /** No jobs for a template this long before it is removed for good. */
  drainBeforeRemovalMs: number;
}

export interface Schedule {
  options: ScheduleOptions;
  world: readonly ResourceDef[];
  jobs: JobPlan[];
  events: ChaosEvent[];
}

export function scheduleOptions(seed: number, quick: boolean, jobs?: number): ScheduleOptions {
  return {
    seed,
    quick,
    jobs: jobs ?? (quick ? 80 : 520),
    lengthMs: quick ? 150_000 : 600_000,
    settleMs: 20_000,
    drainBeforeRemovalMs: 45_000,
  };
}

/** Counts of the disturbances by kind (quick: one of each). */
function disturbanceCounts(quick: boolean) {
  return quick
    ? { kill: 1, rolling: 1, apiserver: 1, stall: 1, errors: 1, throttle: 1, drops: 1, slow: 1, maxCountCycles: 1 }
    : { kill: 2, rolling: 2, apiserver: 2, stall: 1, errors: 2, throttle: 2, drops: 1, slow: 2, maxCountCycles: 2 };
}

const round = (ms: number) => Math.round(ms);

function templateOf(world: readonly ResourceDef[], resource: string, template: string): TemplateDef | undefined {
  const r = world.find((x) => x.name === resource);
  return [...(r?.templates ?? []), ...(r?.extraTemplates ?? [])].find((t) => t.id === template);
}

/** When each template exists: intervals [from, to) in ms of the schedule; base templates from -Infinity. */
export interface Presence {
  resource: string;
  template: string;
  from: number;
  to: number;
}

/**
 * The intervals in which each template exists, from the world and the structural events (template added or
 * removed, resource deleted or created). Base templates exist from before the start; the end is open (Infinity).
 */
export function presenceOf(world: readonly ResourceDef[], events: readonly ChaosEvent[]): Presence[] {
  const out: Presence[] = [];
  for (const r of world) {
    const present = new Map<string, number>();
    const resourceEvents = events
      .filter(
        (e) =>
          (e.kind === "add-template" ||
            e.kind === "remove-template" ||
            e.kind === "delete-resource" ||
            e.kind === "create-resource") &&
          e.resource === r.name,
      )
      .sort((a, b) => a.at - b.at);
    for (const t of r.templates) present.set(t.id, Number.NEGATIVE_INFINITY);
    // Templates the resource holds while it is deleted (restored when it is created again).
    let held: Set<string> | undefined;
    for (const e of resourceEvents) {
      if (e.kind === "add-template") {
        if (held) held.add(e.template);
        else if (!present.has(e.template)) present.set(e.template, e.at);
      } else if (e.kind === "remove-template") {
        if (held) held.delete(e.template);
        const from = present.get(e.template);
        if (from !== undefined) {
          out.push({ resource: r.name, template: e.template, from, to: e.at });
          present.delete(e.template);
        }
      } else if (e.kind === "delete-resource" && !held) {
        held = new Set(present.keys());
        for (const [id, from] of present) out.push({ resource: r.name, template: id, from, to: e.at });
        present.clear();
      } else if (e.kind === "create-resource" && held) {
        for (const id of held) present.set(id, e.at);
        held = undefined;
      }
    }
    for (const [id, from] of present) out.push({ resource: r.name, template: id, from, to: Number.POSITIVE_INFINITY });
  }
  return out;
}

/** Whether jobs for a template may be queued at `t`: it exists, has settled, and will not go away soon for good. */
export function availableAt(
  presence: readonly Presence[],
  resource: string,
  template: string,
  t: number,
  o: Pick<ScheduleOptions, "settleMs" | "drainBeforeRemovalMs">,
  base: boolean,
): boolean {
  return presence.some((p) => {
    if (p.resource !== resource || p.template !== template) return false;
    const settledFrom = p.from === Number.NEGATIVE_INFINITY ? p.from : p.from + o.settleMs;
    if (t < settledFrom || t >= p.to) return false;
    // A template that is removed and never comes back gets no jobs shortly before its removal.
    const comesBack =
      base || presence.some((q) => q.resource === resource && q.template === template && q.from >= p.to);
    return p.to === Number.POSITIVE_INFINITY || comesBack || t < p.to - o.drainBeforeRemovalMs;
  });
}

/** Places `count` moments in [from, to] at least `gap` apart from each other and from `taken` (best effort). */
function spread(r: Rng, count: number, from: number, to: number, gap: number, taken: number[]): number[] {
  const placed: number[] = [];
  for (let i = 0; i < count; i++) {
    let at = r.real(from, to);
    for (let attempt = 0; attempt < 200; attempt++) {
      if ([...taken, ...placed].every((x) => Math.abs(x - at) >= gap)) break;
      at = r.real(from, to);
    }
    placed.push(round(at));
  }
  taken.push(...placed);
  return placed;
}

function structuralEvents(r: Rng, o: ScheduleOptions): ChaosEvent[] {
  const T = o.lengthMs;
  const counts = disturbanceCounts(o.quick);
  const events: ChaosEvent[] = [];
  // maxCount down and back up (alpha's default template, then gamma's).
  const cycles: { resource: string; template: string; base: number; low: number }[] = [
    { resource: "alpha", template: "default", base: 5, low: r.int(1, 2) },
    { resource: "gamma", template: "default", base: 4, low: 1 },
  ];
  for (const [i, c] of cycles.slice(0, counts.maxCountCycles).entries()) {
    const window = counts.maxCountCycles === 1 ? [0.2, 0.45] : i === 0 ? [0.12, 0.3] : [0.5, 0.65];
    const down = round(r.real((window[0] as number) * T, (window[1] as number) * T));
    const up = round(down + r.real(0.12 * T, 0.2 * T));
    events.push({ kind: "set-max-count", at: down, resource: c.resource, template: c.template, maxCount: c.low });
    events.push({ kind: "set-max-count", at: up, resource: c.resource, template: c.template, maxCount: c.base });
  }
  // A temporary template on beta (added, later removed for good).
  const addExtra = round(r.real(0.04 * T, 0.12 * T));
  const removeExtra = round(r.real(0.4 * T, 0.48 * T));
  events.push({ kind: "add-template", at: addExtra, resource: "beta", template: "extra" });
  events.push({ kind: "remove-template", at: removeExtra, resource: "beta", template: "extra" });
  // gamma's arm template removed for a while, then back.
  const removeArm = round(r.real(0.3 * T, 0.5 * T));
  const addArm = round(removeArm + r.real(0.12 * T, 0.2 * T));
  events.push({ kind: "remove-template", at: removeArm, resource: "gamma", template: "arm" });
  events.push({ kind: "add-template", at: addArm, resource: "gamma", template: "arm" });
  // beta deleted while busy, created again.
  const deleteBeta = round(r.real(0.55 * T, 0.68 * T));
  const createBeta = round(deleteBeta + (o.quick ? r.real(15_000, 25_000) : r.real(20_000, 40_000)));
  events.push({ kind: "delete-resource", at: deleteBeta, resource: "beta" });
  events.push({ kind: "create-resource", at: createBeta, resource: "beta" });
  return events;
}

function disturbances(r: Rng, o: ScheduleOptions): ChaosEvent[] {
  const T = o.lengthMs;
  const c = disturbanceCounts(o.quick);
  const scale = o.quick ? 0.6 : 1;
  const gap = o.quick ? 15_000 : 40_000;
  const taken: number[] = [];
  const events: ChaosEvent[] = [];
  // The stall first: it is the longest, and it should start early enough to end within the schedule.
  const stallMs = o.quick ? 70_000 : 120_000;
  for (const at of spread(r, c.stall, 0.1 * T, Math.max(0.1 * T, 0.85 * T - stallMs), gap, taken)) {
    events.push({ kind: "watch-stall", at, durationMs: stallMs });
  }
  for (const at of spread(r, c.kill, 0.08 * T, 0.85 * T, gap, taken)) events.push({ kind: "leader-kill", at });
  for (const at of spread(r, c.rolling, 0.08 * T, 0.85 * T, gap, taken)) {
    events.push({ kind: "leader-rolling-update", at });
  }
  for (const [i, at] of spread(r, c.apiserver, 0.1 * T, 0.85 * T, gap, taken).entries()) {
    const kill = i % 2 === 1;
    events.push({ kind: "apiserver-restart", at, kill, downMs: kill ? r.int(2000, 6000) : 0 });
  }
  const ado: [AdoFault, number, [number, number]][] = [
    ["errors", c.errors, [15_000, 30_000]],
    ["throttle", c.throttle, [20_000, 40_000]],
    ["drops", c.drops, [15_000, 25_000]],
    ["slow", c.slow, [20_000, 40_000]],
  ];
  for (const [fault, count, [lo, hi]] of ado) {
    for (let i = 0; i < count; i++) {
      events.push({
        kind: "ado-fault",
        at: round(r.real(0.05 * T, 0.85 * T)),
        durationMs: round(r.real(lo * scale, hi * scale)),
        fault,
      });
    }
  }
  return events;
}

function arrivals(r: Rng, o: ScheduleOptions): number[] {
  const T = o.lengthMs;
  const bursts = o.quick ? 2 : 4;
  const inBursts = Math.round(o.jobs * 0.3);
  const times: number[] = [];
  const burstAt = Array.from({ length: bursts }, () => r.real(0.05 * T, 0.85 * T));
  for (let i = 0; i < inBursts; i++) times.push(round((burstAt[i % bursts] as number) + r.real(0, 2000)));
  for (let i = inBursts; i < o.jobs; i++) times.push(round(r.real(0, 0.9 * T)));
  return times.sort((a, b) => a - b);
}

function demandsFor(r: Rng, caps: Record<string, string>): string[] {
  return Object.entries(caps).map(([k, v]) => (r.chance(0.5) ? k : `${k} -equals ${v}`));
}

function planJob(
  r: Rng,
  id: number,
  at: number,
  world: readonly ResourceDef[],
  presence: readonly Presence[],
  o: ScheduleOptions,
): JobPlan {
  const candidates = world.flatMap((res) =>
    [...res.templates, ...res.extraTemplates].flatMap((t) =>
      availableAt(presence, res.name, t.id, at, o, res.templates.includes(t))
        ? [{ item: { resource: res.name, template: t }, weight: t.weight }]
        : [],
    ),
  );
  const chosen = r.weighted(candidates) ?? {
    resource: "alpha",
    template: world[0]?.templates[0] as TemplateDef,
  };
  const t = chosen.template;
  const demands = demandsFor(r, t.capabilities);
  const job: JobPlan = {
    id,
    at,
    resource: chosen.resource,
    template: t.id,
    demands,
    durationMs: r.chance(0.12) ? r.int(15_000, 30_000) : r.int(1000, 8000),
    startDelayMs: r.chance(0.1) ? r.int(500, 3000) : 0,
    finishDelayMs: r.chance(0.1) ? r.int(1000, 4000) : 0,
  };
  if (t.extraAgentContainers && r.chance(0.2)) {
    const value = r.pick(extraAgentContainerValues);
    job.extraAgentContainers = value;
    job.demands.push(`ExtraAgentContainers -equals ${value}`);
  }
  if (r.chance(0.1)) {
    const stage = r.weighted<CancelStage>([
      { item: "queued", weight: 4 },
      { item: "assigned", weight: 3 },
      { item: "running", weight: 3 },
    ]) as CancelStage;
    const afterMs =
      stage === "queued"
        ? r.int(0, 3000)
        : stage === "assigned"
          ? r.int(0, 500)
          : r.int(500, Math.max(500, Math.min(5000, job.durationMs - 500)));
    job.cancel = { stage, afterMs };
  }
  return job;
}

export function generateSchedule(o: ScheduleOptions, world: readonly ResourceDef[] = chaosWorld): Schedule {
  // Separate streams, so that changing the number of jobs does not move the disturbances.
  const structure = structuralEvents(rng(o.seed * 3 + 1), o);
  const chaos = disturbances(rng(o.seed * 3 + 2), o);
  const events = [...structure, ...chaos].sort((a, b) => a.at - b.at);
  const presence = presenceOf(world, events);
  const r = rng(o.seed * 3 + 3);
  const jobs = arrivals(r, o).map((at, i) => planJob(r, i + 1, at, world, presence, o));
  return { options: o, world, jobs, events };
}

/** What the schedule holds, counted (for the report). */
export function summarizeSchedule(s: Schedule) {
  const byTemplate: Record<string, number> = {};
  const cancels: Record<CancelStage, number> = { queued: 0, assigned: 0, running: 0 };
  let extra = 0;
  let cache = 0;
  let long = 0;
  for (const j of s.jobs) {
    const key = `${j.resource}/${j.template}`;
    byTemplate[key] = (byTemplate[key] ?? 0) + 1;
    if (j.cancel) cancels[j.cancel.stage]++;
    if (j.extraAgentContainers) extra++;
    if (templateOf(s.world, j.resource, j.template)?.cacheVolume) cache++;
    if (j.durationMs >= 15_000) long++;
  }
  const events: Record<string, number> = {};
  for (const e of s.events) {
    const key = e.kind === "ado-fault" ? `ado-fault:${e.fault}` : e.kind;
    events[key] = (events[key] ?? 0) + 1;
  }
  return {
    jobs: s.jobs.length,
    lengthS: s.options.lengthMs / 1000,
    jobsByTemplate: byTemplate,
    cancellations: cancels,
    extraAgentContainerJobs: extra,
    cacheVolumeJobs: cache,
    longJobs: long,
    events,
  };
}

export { templateOf };

/**
 * Whether a template's capabilities satisfy a job's demands as Azure DevOps judges them (`NAME` exists, `NAME
 * -equals VALUE` case-insensitively), leaving out what a template does not have to satisfy: the ExtraAgentContainers
 * demand (the operator adds containers for it) and `Agent.Version` demands.
 */
export function templateFits(capabilities: Record<string, string>, demands: readonly string[]): boolean {
  const caps = new Map(Object.entries(capabilities).map(([k, v]) => [k.toLowerCase(), v.toLowerCase()]));
  return demands.every((d) => {
    const m = /^(\S+)(?:\s+(-\w+)\s+(.*))?$/.exec(d.trim());
    if (!m) return false;
    const name = (m[1] as string).toLowerCase();
    if (name === "extraagentcontainers" || name === "agent.version") return true;
    const have = caps.get(name);
    if (have === undefined) return false;
    if (m[2] === undefined) return true;
    return m[2].toLowerCase() === "-equals" && have === (m[3] ?? "").trim().toLowerCase();
  });
}

/** The fault rules of an Azure DevOps disturbance: only requests whose failure cannot break a running job. */
export function adoFaultRules(fault: AdoFault): FaultRule[] {
  const lists = [
    { path: "**/jobrequests", method: "GET" },
    { path: "**/agents", method: "GET" },
  ];
  switch (fault) {
    case "errors":
      return lists.map((l, i) => ({ ...l, errorRate: 0.8, status: i === 0 ? 500 : 503 }));
    case "drops":
      return lists.map((l) => ({ ...l, dropRate: 0.6 }));
    case "slow":
      return [
        ...lists.map((l) => ({ ...l, latencyMs: 4000 })),
        { path: "**/agents/*", method: "DELETE", latencyMs: 3000 },
      ];
    case "throttle":
      return lists.map((l) => ({ ...l, rateLimit: "block" as const }));
  }
}
