/**
 * Benchmark (a simulation): a synthetic week of jobs replayed against the operator's own decisions, for standby
 * strategies side by side: none, fixed minCounts, a schedule, predictive standby.
 *
 * Not a real-time week: the scale plan (`planScaling`) and the standby decision (`decideStandby`, with a history
 * of four earlier synthetic weeks) are the operator's pure functions; around them a small event-driven model:
 * - jobs: a daily rhythm in Europe/Berlin (office hours busy, lunch dip, a burst at 09:00 and 13:00 on weekdays,
 *   nightly builds at 02:00, a trickle at weekends), Poisson arrivals and burst sizes with noise, log-normal
 *   durations (median 4 min);
 * - the service: a queued job goes at once to an idle agent (oldest job first); agents run one job (`--once`);
 * - the operator: polls every 5 s while jobs move and every 15 s when idle (the defaults), then plans with the pods
 *   and agents it sees, creates pods, removes idle ones after agentMinIdlePeriod (5 min);
 * - pods: an agent is online a log-normal start time (median 30 s) after its pod is created.
 * Per strategy: job wait (queue to start) median, p90, p99, max; jobs that waited more than 10 s; agent-minutes
 * spent idle (online, no job) during the week. Every strategy sees the same jobs.
 *
 * `npx node bench/standby-week.ts` runs it on its own (no control plane needed); `bench/run.ts standby-week` too.
 */
import { planScaling } from "../src/scaling/plan.ts";
import {
  addJobs,
  decideStandby,
  emptyHistory,
  type JobHistory,
  planMinCount,
  type StandbyDecision,
  type StandbyTemplate,
  timeZone,
  WEEK_MS,
  type Zone,
} from "../src/scaling/standby.ts";
import type { IdleMarkChange, JobRequest, ObservedAgent, ObservedPod, PodCreate } from "../src/scaling/types.ts";
import { mulberry32 } from "./chaos/prng.ts";
import type { BenchContext, Benchmark } from "./support/bench.ts";
import {
  type BenchResult,
  fixed,
  gitRevision,
  machineInfo,
  percentile,
  printResult,
  saveResult,
  type Table,
} from "./support/stats.ts";

const MIN = 60_000;
const HOUR = 60 * MIN;

export interface WeekOptions {
  seed: number;
  timeZone: string;
  /** Monday 00:00 local of the week measured (ISO, local wall time). */
  weekStart: string;
  trainingWeeks: number;
  maxCount: number;
  pollMs: number;
  idlePollMs: number;
  agentMinIdlePeriodMs: number;
  podStartMedianMs: number;
  jobMedianMs: number;
}

export const defaultWeekOptions: WeekOptions = {
  seed: 20260112,
  timeZone: "Europe/Berlin",
  weekStart: "2026-01-12T00:00:00",
  trainingWeeks: 4,
  maxCount: 40,
  pollMs: 5000,
  idlePollMs: 15_000,
  agentMinIdlePeriodMs: 5 * MIN,
  podStartMedianMs: 30_000,
  jobMedianMs: 4 * MIN,
};

// ---------------------------------------------------------------------------------------------------------------
// The workload

/** The same seeded PRNG as the chaos run (mulberry32): the same moments in every run. */
const seeded = mulberry32;

function normal(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

const logNormal = (random: () => number, median: number, sigma: number) => median * Math.exp(sigma * normal(random));

function poisson(random: () => number, mean: number): number {
  let n = 0;
  let p = Math.exp(-mean);
  let s = p;
  const u = random();
  while (u > s && n < 1000) {
    n++;
    p *= mean / n;
    s += p;
  }
  return n;
}

/** Jobs per hour by local hour, weekdays and weekends (besides the bursts). */
const WEEKDAY_RATE = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 4, 10, 22, 28, 22, 10, 20, 24, 20, 14, 8, 4, 2, 1, 1, 0.5, 0.5];
const WEEKEND_RATE = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.5, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 0.5, 0.5, 0.3, 0.3];

export interface SimJob {
  id: number;
  queueMs: number;
  durationMs: number;
}

/** One week of jobs from local Monday 00:00 (`start`, an instant). */
export function generateWeek(
  start: number,
  zone: Zone,
  random: () => number,
  o: WeekOptions,
  firstId: number,
): SimJob[] {
  const jobs: SimJob[] = [];
  const duration = () => Math.min(45 * MIN, Math.max(20_000, logNormal(random, o.jobMedianMs, 0.7)));
  const wallStart = zone.wall(start);
  const at = (day: number, hour: number, minute = 0) =>
    zone.instant(wallStart + day * 24 * HOUR + hour * HOUR + minute * MIN);
  for (let day = 0; day < 7; day++) {
    const weekend = day >= 5;
    const rates = weekend ? WEEKEND_RATE : WEEKDAY_RATE;
    for (let hour = 0; hour < 24; hour++) {
      // Poisson arrivals over the hour, with day-to-day noise on the rate.
      const n = poisson(random, (rates[hour] as number) * Math.max(0.3, 1 + 0.25 * normal(random)));
      for (let i = 0; i < n; i++)
        jobs.push({ id: 0, queueMs: at(day, hour) + random() * HOUR, durationMs: duration() });
    }
    const burst = (hour: number, size: number) => {
      const n = Math.max(0, Math.round(size + normal(random) * size * 0.25));
      for (let i = 0; i < n; i++)
        jobs.push({ id: 0, queueMs: at(day, hour) + random() * 30_000, durationMs: duration() });
    };
    if (!weekend) {
      burst(9, 8);
      burst(13, 6);
    }
    burst(2, 4);
  }
  jobs.sort((a, b) => a.queueMs - b.queueMs);
  jobs.forEach((j, i) => {
    j.id = firstId + i;
  });
  return jobs;
}

// ---------------------------------------------------------------------------------------------------------------
// Strategies

export interface Strategy {
  name: string;
  /** The template's standby block (undefined: plain minCount, busy agents included). */
  template: StandbyTemplate | undefined;
  minCount: number;
}

export function strategies(tz: string, maxCount: number): Strategy[] {
  const office = { days: ["Mon", "Tue", "Wed", "Thu", "Fri"], from: "07:30", to: "18:30", timeZone: tz };
  const predictive = (percentile: number) => ({
    percentile,
    lookaheadMinutes: 10,
    historyWeeks: 4,
    timeZone: tz,
    max: 12,
  });
  const standby = (minCount: number, rest: Partial<StandbyTemplate> = {}): StandbyTemplate => ({
    minCount,
    maxCount,
    schedules: [],
    ...rest,
  });
  return [
    { name: "no standby (minCount 0)", template: undefined, minCount: 0 },
    { name: "minCount 4, no standby block", template: undefined, minCount: 4 },
    { name: "standby 2 always", template: standby(2), minCount: 2 },
    { name: "standby 8 always (generous)", template: standby(8), minCount: 8 },
    {
      name: "schedule: standby 6 Mon-Fri 07:30-18:30, else 1",
      template: standby(1, { schedules: [{ ...office, minCount: 6 }] }),
      minCount: 1,
    },
    { name: "predictive p75", template: standby(0, { predictive: predictive(75) }), minCount: 0 },
    { name: "predictive p90", template: standby(0, { predictive: predictive(90) }), minCount: 0 },
    {
      name: "predictive p75, at least 1",
      template: standby(1, { predictive: predictive(75) }),
      minCount: 1,
    },
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// The simulation

interface SimPod {
  name: string;
  createdMs: number;
  readyMs: number;
  createdFor: number[];
  job?: number;
  idleMark?: number | null;
}

export interface StrategyResult {
  strategy: string;
  jobs: number;
  waitsMs: number[];
  idleAgentMinutes: number;
  podsCreated: number;
  maxPods: number;
}

export function simulate(
  strategy: Strategy,
  jobs: readonly SimJob[],
  history: JobHistory,
  window: { start: number; end: number },
  o: WeekOptions,
  zones: (name: string) => Zone,
): StrategyResult {
  const random = seeded(o.seed + 1);
  const pending: SimJob[] = [];
  const running = new Map<number, { job: SimJob; pod: string; endMs: number }>();
  const started = new Map<number, number>();
  const pods = new Map<string, SimPod>();
  let nextPod = 0;
  let podsCreated = 0;
  let maxPods = 0;
  let idleMs = 0;
  let now = window.start;
  let arrival = 0;
  let nextPoll = window.start;
  let moved = false;
  let decision: StandbyDecision | undefined;

  const idleAgents = () =>
    [...pods.values()].filter((p) => p.readyMs <= now && p.job === undefined).sort((a, b) => a.readyMs - b.readyMs);
  const assign = () => {
    // The service: oldest queued job to the agent waiting longest.
    for (const agent of idleAgents()) {
      const job = pending.shift();
      if (job === undefined) return;
      agent.job = job.id;
      agent.idleMark = null;
      started.set(job.id, now);
      running.set(job.id, { job, pod: agent.name, endMs: now + job.durationMs });
      moved = true;
    }
  };
  const advanceTo = (t: number) => {
    // Idle agent time within the measured window.
    const from = Math.max(now, window.start);
    const to = Math.min(t, window.end);
    if (to > from) {
      let idle = 0;
      for (const p of pods.values()) if (p.job === undefined && p.readyMs <= now) idle++;
      idleMs += idle * (to - from);
    }
    now = t;
  };

  for (;;) {
    // The next event: an arrival, a pod ready, a job done, or a poll.
    const nextArrival = jobs[arrival]?.queueMs ?? Number.POSITIVE_INFINITY;
    let nextReady = Number.POSITIVE_INFINITY;
    for (const p of pods.values()) if (p.readyMs > now && p.readyMs < nextReady) nextReady = p.readyMs;
    let nextDone = Number.POSITIVE_INFINITY;
    for (const r of running.values()) if (r.endMs < nextDone) nextDone = r.endMs;
    const t = Math.min(nextArrival, nextReady, nextDone, nextPoll);
    if (
      !Number.isFinite(t) ||
      (t >= window.end && arrival >= jobs.length && running.size === 0 && pending.length === 0)
    ) {
      advanceTo(Math.max(now, window.end));
      break;
    }
    advanceTo(t);
    if (t === nextArrival) {
      pending.push(jobs[arrival] as SimJob);
      arrival++;
      moved = true;
      assign();
    } else if (t === nextReady) {
      assign();
    } else if (t === nextDone) {
      for (const [id, r] of running) {
        if (r.endMs > now) continue;
        running.delete(id);
        pods.delete(r.pod); // run once: the pod finishes with its job
        moved = true;
      }
    } else {
      // A poll, then the plan on what it shows.
      const observedPods: ObservedPod[] = [...pods.values()].map((p) => ({
        name: p.name,
        templateIndex: 0,
        extraAgentContainers: null,
        createdAtMs: p.createdMs,
        phase: "Running",
        scheduled: true,
        deleting: false,
        agentContainer: "running",
        otherContainers: [],
        createdForRequestIds: p.createdFor,
        idleMarkedAtMs: p.idleMark ?? null,
      }));
      const agents: ObservedAgent[] = [...pods.values()]
        .filter((p) => p.readyMs <= now)
        .map((p, i) => ({
          id: i + 1,
          name: p.name,
          status: "online",
          busy: p.job !== undefined,
          idleSinceMs: p.readyMs,
        }));
      const requests: JobRequest[] = [
        ...pending.map((j) => ({ requestId: j.id, queueTime: new Date(j.queueMs).toISOString() })),
        ...[...running.values()].map((r) => ({
          requestId: r.job.id,
          queueTime: new Date(r.job.queueMs).toISOString(),
          assignTime: new Date(started.get(r.job.id) as number).toISOString(),
          reservedAgent: { id: 0, name: r.pod },
        })),
      ];
      let minCount = strategy.minCount;
      if (strategy.template !== undefined) {
        if (decision?.nextChangeAt === undefined ? decision === undefined : now >= decision.nextChangeAt) {
          decision = decideStandby(strategy.template, now, history, zones);
        }
        const busy = [...pods.values()].filter((p) => p.job !== undefined).length;
        minCount = planMinCount((decision as StandbyDecision).minCount, busy, o.maxCount);
      }
      const plan = planScaling({
        templates: [{ capabilities: {}, minCount, maxCount: o.maxCount }],
        jobRequests: requests,
        pods: observedPods,
        agents,
        now,
        agentMinIdlePeriodMs: o.agentMinIdlePeriodMs,
        maxTerminatedPodsToKeep: 0,
      });
      const changed = plan.creates.length > 0 || plan.removals.length > 0;
      for (const c of plan.creates as PodCreate[]) {
        const name = `p${nextPod++}`;
        pods.set(name, {
          name,
          createdMs: now,
          readyMs: now + logNormal(random, o.podStartMedianMs, 0.3),
          createdFor: [...c.forRequestIds],
        });
        podsCreated++;
      }
      for (const r of plan.removals) {
        const p = pods.get(r.podName);
        if (p !== undefined && p.job === undefined) pods.delete(r.podName);
      }
      for (const m of plan.idleMarks as IdleMarkChange[]) {
        const p = pods.get(m.podName);
        if (p !== undefined) p.idleMark = m.action === "set" ? m.atMs : null;
      }
      maxPods = Math.max(maxPods, pods.size);
      nextPoll = now + (moved || changed || pending.length > 0 ? o.pollMs : o.idlePollMs);
      moved = false;
    }
  }
  const measured = jobs.filter((j) => j.queueMs >= window.start && j.queueMs < window.end);
  return {
    strategy: strategy.name,
    jobs: measured.length,
    waitsMs: measured.map((j) => (started.get(j.id) ?? Number.NaN) - j.queueMs),
    idleAgentMinutes: idleMs / MIN,
    podsCreated,
    maxPods,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The benchmark

export function runStandbyWeek(options: Partial<WeekOptions> = {}, quick = false): BenchResult {
  const o: WeekOptions = { ...defaultWeekOptions, ...options };
  const startedAt = new Date();
  const cache = new Map<string, Zone>();
  const zones = (name: string) => {
    let z = cache.get(name);
    if (z === undefined) {
      z = timeZone(name);
      cache.set(name, z);
    }
    return z;
  };
  const zone = zones(o.timeZone);
  const weekStart = zone.instant(Date.parse(`${o.weekStart}Z`));
  const random = seeded(o.seed);
  // The training weeks (the history) and the week measured, each drawn afresh from the same rhythm.
  let history = emptyHistory(zone.instant(zone.wall(weekStart) - o.trainingWeeks * WEEK_MS));
  let id = 1;
  for (let k = o.trainingWeeks; k >= 1; k--) {
    const start = zone.instant(zone.wall(weekStart) - k * WEEK_MS);
    const week = generateWeek(start, zone, random, o, id);
    id += week.length;
    history = addJobs(
      history,
      week.map((j) => j.queueMs),
    );
  }
  const jobs = generateWeek(weekStart, zone, random, o, id);
  const window = { start: weekStart, end: zone.instant(zone.wall(weekStart) + WEEK_MS) };
  const chosen = quick
    ? strategies(o.timeZone, o.maxCount).filter((_, i) => [0, 3, 5].includes(i))
    : strategies(o.timeZone, o.maxCount);
  const results = chosen.map((s) => simulate(s, jobs, history, window, o, zones));

  const summary = results.map((r) => {
    const waits = r.waitsMs.filter(Number.isFinite).sort((a, b) => a - b);
    return {
      strategy: r.strategy,
      jobs: r.jobs,
      unfinished: r.waitsMs.length - waits.length,
      meanWaitS: waits.reduce((a, b) => a + b, 0) / Math.max(1, waits.length) / 1000,
      medianWaitS: percentile(waits, 50) / 1000,
      p90WaitS: percentile(waits, 90) / 1000,
      p99WaitS: percentile(waits, 99) / 1000,
      maxWaitS: (waits.at(-1) ?? Number.NaN) / 1000,
      waitedOver10s: waits.filter((w) => w > 10_000).length,
      idleAgentMinutes: Math.round(r.idleAgentMinutes),
      podsCreated: r.podsCreated,
      maxPods: r.maxPods,
    };
  });
  const generous = summary.find((s) => s.strategy.includes("generous"));
  const tables: Table[] = [
    {
      title: `A synthetic week of ${jobs.length} jobs (${o.timeZone}, week of ${o.weekStart.slice(0, 10)}), per standby strategy`,
      columns: [
        "strategy",
        "wait mean (s)",
        "median (s)",
        "p90 (s)",
        "p99 (s)",
        "max (s)",
        "waited > 10 s",
        "idle agent-minutes",
        "of the generous",
        "pods",
      ],
      rows: summary.map((s) => [
        s.strategy,
        fixed(s.meanWaitS, 1),
        fixed(s.medianWaitS, 1),
        fixed(s.p90WaitS, 1),
        fixed(s.p99WaitS, 1),
        fixed(s.maxWaitS, 0),
        `${s.waitedOver10s} (${fixed((100 * s.waitedOver10s) / s.jobs, 0)} %)`,
        String(s.idleAgentMinutes),
        generous ? `${fixed((100 * s.idleAgentMinutes) / generous.idleAgentMinutes, 0)} %` : "-",
        String(s.podsCreated),
      ]),
      notes: [
        "wait: queue to start; standby counts are idle agents beside busy ones (standby block), except the minCount row",
        `model: polls every ${o.pollMs / 1000} s while jobs move, ${o.idlePollMs / 1000} s when idle; pods start in ${o.podStartMedianMs / 1000} s (median); idle agents removed after ${o.agentMinIdlePeriodMs / MIN} min`,
        `predictive: history of ${o.trainingWeeks} earlier weeks of the same rhythm (drawn afresh), lookahead 10 min, max 12`,
      ],
    },
  ];
  return {
    name: "standby-week",
    date: startedAt.toISOString(),
    durationS: Math.round((Date.now() - startedAt.getTime()) / 1000),
    machine: machineInfo(),
    ...(gitRevision() ? { revision: gitRevision() } : {}),
    parameters: { ...o, quick, strategies: chosen },
    results: { jobs: jobs.length, historyJobs: id - 1, summary },
    tables,
  };
}

export const standbyWeek: Benchmark = {
  name: "standby-week",
  description: "a synthetic week replayed through the scale plan: wait and idle agent-minutes per standby strategy",
  expectedS: 10,
  run: async (ctx: BenchContext) => runStandbyWeek({}, ctx.quick),
};

if (import.meta.main) {
  const result = runStandbyWeek({}, process.argv.includes("--quick"));
  printResult(result);
  if (!process.argv.includes("--quick")) process.stderr.write(`saved ${saveResult(result)}\n`);
}
