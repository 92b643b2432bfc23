/**
 * Standby agents (pure): how many idle agents a template keeps ready now, and why.
 *
 * Three sources, from weakest to strongest:
 * 1. the baseline: the template's `minCount`;
 * 2. standby schedules: weekly windows in a time zone (`days`, `from`, `to`), each with its own `minCount`; while
 *    windows are open the largest of their counts replaces the baseline (ties: the first listed). A window whose
 *    `to` is earlier than its `from` crosses midnight and belongs to the day it starts on. Times are local wall-clock
 *    times, so a window follows daylight saving time: 08:00-18:00 Europe/Berlin is 07:00-17:00 UTC in winter and
 *    06:00-16:00 UTC in summer; on the day the clocks go forward, a wall time inside the gap is taken as the moment
 *    after the gap (so an 02:00-03:00 window does not open that day), and on the day they go back an hour repeats.
 * 3. predictive standby (opt-in): the busiest 5 minutes of the coming `lookaheadMinutes`, as each of the past
 *    `historyWeeks` weeks saw them at the same local time of the week, taken at a percentile over those weeks,
 *    bounded by `max` (default `maxCount`); it only ever adds to 1 or 2.
 * Never above `maxCount`.
 *
 * With a standby block these counts are idle agents kept in addition to the busy ones: the scale plan gets
 * `minCount = busy + standby` (`planMinCount`), so a job that takes a standby agent has it replaced in the same
 * reconcile instead of when the job ends.
 *
 * Times are epoch milliseconds. Time zones go through `Intl.DateTimeFormat` (no dependency); `timeZone(name)` throws
 * a RangeError for a name the runtime does not know (validation refuses those first).
 */
import { classifyPod, reservations } from "./plan.ts";
import type { JobRequest, ObservedAgent, ObservedPod } from "./types.ts";

export const MINUTE_MS = 60_000;
export const DAY_MS = 24 * 60 * MINUTE_MS;
export const WEEK_MS = 7 * DAY_MS;
/** The history's resolution: jobs are counted per 5 minutes. */
export const BUCKET_MS = 5 * MINUTE_MS;

export const WEEKDAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;

// ---------------------------------------------------------------------------------------------------------------
// Time zones

/** Local wall-clock time in one time zone. A "wall" value is the local date and time read as if it were UTC. */
export interface Zone {
  readonly name: string;
  /** What a local clock shows at instant `t` (epoch ms of the same date and time in UTC). */
  wall(t: number): number;
  /**
   * The instant at which the local clock shows `wall`. A time the clocks skip (spring forward) is taken as the
   * moment after the gap (02:30 -> 03:30); a time that happens twice (fall back) as the first of the two.
   */
  instant(wall: number): number;
}

/** Resolves a time zone name; callers may memoize (e.g. over a benchmark), the core never does. */
export type ZoneResolver = (name: string) => Zone;

const UTC_ZONE: Zone = { name: "UTC", wall: (t) => t, instant: (w) => w };

export function timeZone(name: string): Zone {
  if (name === "UTC") return UTC_ZONE;
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone: name,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
  });
  const wall = (t: number): number => {
    const parts: Record<string, number> = {};
    for (const p of format.formatToParts(t)) if (p.type !== "literal") parts[p.type] = Number(p.value);
    const ms = t - Math.floor(t / 1000) * 1000;
    const y = parts.year ?? 1970;
    const w = Date.UTC(
      y,
      (parts.month ?? 1) - 1,
      parts.day ?? 1,
      parts.hour ?? 0,
      parts.minute ?? 0,
      parts.second ?? 0,
    );
    // Date.UTC maps years 0-99 to 1900-1999; not a concern for these times, but keep it exact.
    return (y >= 0 && y < 100 ? new Date(w).setUTCFullYear(y) : w) + ms;
  };
  const offset = (t: number) => wall(t) - t;
  return {
    name,
    wall,
    instant(w) {
      // The offsets a day either side: a zone changes its offset at most once in two days.
      const before = w - offset(w - DAY_MS);
      const after = w - offset(w + DAY_MS);
      const beforeOk = wall(before) === w;
      const afterOk = wall(after) === w;
      if (beforeOk && afterOk) return Math.min(before, after);
      if (beforeOk) return before;
      if (afterOk) return after;
      return before; // in a gap: the offset from before the gap moves it past the gap
    },
  };
}

/** Monday = 0 ... Sunday = 6, of a wall time. */
export function weekdayOf(wall: number): number {
  return (new Date(wall).getUTCDay() + 6) % 7;
}

const startOfDay = (wall: number) => Math.floor(wall / DAY_MS) * DAY_MS;

/** "HH:MM" -> minutes after midnight ("24:00" -> 1440). */
export function minutesOfDay(hhmm: string): number {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m) throw new RangeError(`not a time of day "HH:MM": ${JSON.stringify(hhmm)}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

// ---------------------------------------------------------------------------------------------------------------
// Schedules

export interface StandbyScheduleSpec {
  /** Mon..Sun; undefined: every day. */
  readonly days?: readonly string[] | undefined;
  readonly from: string;
  readonly to: string;
  /** Default UTC. */
  readonly timeZone?: string | undefined;
  readonly minCount: number;
}

function startsOn(schedule: StandbyScheduleSpec, weekday: number): boolean {
  return schedule.days === undefined || schedule.days.includes(WEEKDAY_NAMES[weekday] as string);
}

/** Whether the schedule's window is open at local wall time `wall`. */
export function scheduleOpenAt(schedule: StandbyScheduleSpec, wall: number): boolean {
  const from = minutesOfDay(schedule.from);
  const to = minutesOfDay(schedule.to);
  const day = weekdayOf(wall);
  const minute = (wall - startOfDay(wall)) / MINUTE_MS;
  if (from < to) return startsOn(schedule, day) && minute >= from && minute < to;
  // Across midnight: the evening of a listed day, or the morning after one.
  return (startsOn(schedule, day) && minute >= from) || (startsOn(schedule, (day + 6) % 7) && minute < to);
}

/** The open window with the largest minCount (the first listed on ties), if any. */
export function scheduleInForce(
  schedules: readonly StandbyScheduleSpec[],
  now: number,
  zones: ZoneResolver = timeZone,
): { index: number; minCount: number } | undefined {
  let best: { index: number; minCount: number } | undefined;
  schedules.forEach((s, index) => {
    if (!scheduleOpenAt(s, zones(s.timeZone ?? "UTC").wall(now))) return;
    if (best === undefined || s.minCount > best.minCount) best = { index, minCount: s.minCount };
  });
  return best;
}

/** The next instant after `now` at which a window opens or closes (within the coming week), if any. */
export function nextScheduleChange(
  schedules: readonly StandbyScheduleSpec[],
  now: number,
  zones: ZoneResolver = timeZone,
): number | undefined {
  let next: number | undefined;
  for (const s of schedules) {
    const zone = zones(s.timeZone ?? "UTC");
    const today = startOfDay(zone.wall(now));
    const from = minutesOfDay(s.from);
    const to = minutesOfDay(s.to);
    for (let d = -1; d <= 8; d++) {
      const day = today + d * DAY_MS;
      const weekday = weekdayOf(day);
      const boundaries: number[] = [];
      if (startsOn(s, weekday)) boundaries.push(from);
      // A window across midnight closes on the day after it started.
      if (from < to ? startsOn(s, weekday) : startsOn(s, (weekday + 6) % 7)) boundaries.push(to);
      for (const minute of boundaries) {
        const at = zone.instant(day + minute * MINUTE_MS);
        if (at > now && (next === undefined || at < next)) next = at;
      }
    }
  }
  return next;
}

/** "Mon-Fri 08:00-18:00 Europe/Berlin", "every day 22:00-06:00 UTC", "Mon,Wed 09:00-10:00 UTC". */
export function describeSchedule(s: StandbyScheduleSpec): string {
  return `${describeDays(s.days)} ${s.from}-${s.to} ${s.timeZone ?? "UTC"}`;
}

function describeDays(days: readonly string[] | undefined): string {
  if (days === undefined) return "every day";
  const idx = [...new Set(days.map((d) => WEEKDAY_NAMES.indexOf(d as (typeof WEEKDAY_NAMES)[number])))]
    .filter((i) => i >= 0)
    .sort((a, b) => a - b);
  if (idx.length === 7) return "every day";
  const runs: string[] = [];
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && (idx[j + 1] as number) === (idx[j] as number) + 1) j++;
    const a = WEEKDAY_NAMES[idx[i] as number];
    const b = WEEKDAY_NAMES[idx[j] as number];
    runs.push(
      j - i >= 2
        ? `${a}-${b}`
        : idx
            .slice(i, j + 1)
            .map((k) => WEEKDAY_NAMES[k])
            .join(","),
    );
    i = j + 1;
  }
  return runs.join(",");
}

// ---------------------------------------------------------------------------------------------------------------
// Job history and prediction

/** Jobs of one template per 5-minute bucket (`floor(t / BUCKET_MS)` of the job's queue time), since `since`. */
export interface JobHistory {
  /** When recording began (weeks before it are not read as "no jobs"). */
  readonly since: number;
  readonly buckets: ReadonlyMap<number, number>;
}

export function emptyHistory(since: number): JobHistory {
  return { since, buckets: new Map() };
}

/** The history with one more job at each of `times`. */
export function addJobs(history: JobHistory, times: readonly number[]): JobHistory {
  if (times.length === 0) return history;
  const buckets = new Map(history.buckets);
  for (const t of times) {
    const b = Math.floor(t / BUCKET_MS);
    buckets.set(b, (buckets.get(b) ?? 0) + 1);
  }
  return { since: history.since, buckets };
}

/** Drops buckets older than `keepMs` before `now` (and `since` moves up with them). */
export function pruneHistory(history: JobHistory, now: number, keepMs: number): JobHistory {
  const oldest = Math.floor((now - keepMs) / BUCKET_MS);
  let dropped = false;
  const buckets = new Map<number, number>();
  for (const [b, n] of history.buckets) {
    if (b < oldest) dropped = true;
    else buckets.set(b, n);
  }
  const since = Math.max(history.since, oldest * BUCKET_MS);
  return dropped || since !== history.since ? { since, buckets } : history;
}

/** How long a history must be kept for a prediction: the weeks it reads, plus the look-ahead and a day of slack. */
export function historyRetentionMs(spec: PredictiveSpec): number {
  return spec.historyWeeks * WEEK_MS + spec.lookaheadMinutes * MINUTE_MS + DAY_MS;
}

export interface PredictiveSpec {
  /** 1-100. */
  readonly percentile: number;
  /** Upper bound of the prediction; undefined: maxCount. */
  readonly max?: number | undefined;
  readonly lookaheadMinutes: number;
  readonly historyWeeks: number;
  readonly timeZone: string;
}

/** Nearest-rank percentile (0 for no values). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export interface Prediction {
  /** The percentile of `peaks`. */
  readonly count: number;
  /** Per past week read (last week first): the most jobs in one 5-minute bucket of that week's window. */
  readonly peaks: readonly number[];
}

/**
 * What the history says the coming `lookaheadMinutes` need: for each of the past `historyWeeks` weeks that the
 * history covers, the busiest 5-minute bucket of the same local window (same local time of the week, so daylight
 * saving time does not shift it), and the `percentile` of those peaks. Weeks whose window had ended before
 * recording began (`history.since`) are left out rather than read as quiet: a young history reads the weeks it has
 * (one week with a burst predicts that burst), while over four full weeks a spike in one of them stays below the
 * 75th percentile. A window that recording began in the middle of counts with what was recorded.
 */
export function predict(
  history: JobHistory,
  now: number,
  spec: Pick<PredictiveSpec, "percentile" | "lookaheadMinutes" | "historyWeeks">,
  zone: Zone,
): Prediction {
  const wall = zone.wall(now);
  const look = Math.max(1, spec.lookaheadMinutes) * MINUTE_MS;
  const peaks: number[] = [];
  for (let k = 1; k <= spec.historyWeeks; k++) {
    const startWall = wall - k * WEEK_MS;
    const start = zone.instant(startWall);
    const end = Math.max(start + 1, zone.instant(startWall + look));
    if (end <= history.since) break;
    let peak = 0;
    for (let b = Math.floor(start / BUCKET_MS); b <= Math.floor((end - 1) / BUCKET_MS); b++) {
      peak = Math.max(peak, history.buckets.get(b) ?? 0);
    }
    peaks.push(peak);
  }
  return { count: percentile(peaks, spec.percentile), peaks };
}

// ---------------------------------------------------------------------------------------------------------------
// The decision

export interface StandbyTemplate {
  /** The baseline. */
  readonly minCount: number;
  readonly maxCount: number;
  readonly schedules: readonly StandbyScheduleSpec[];
  readonly predictive?: PredictiveSpec | undefined;
}

export type StandbyReason = "Baseline" | "Schedule" | "Prediction";

export interface StandbyDecision {
  /** Standby agents (idle, ready for a job) to keep now. */
  readonly minCount: number;
  readonly reason: StandbyReason;
  /** Index of the schedule in force, if any (also when a prediction is above it). */
  readonly schedule?: number;
  /** The prediction, bounded by `max` and maxCount (predictive standby with a history only). */
  readonly predicted?: number;
  readonly message: string;
  /** When the decision may change next: a window opens or closes, or the prediction moves to the next bucket. */
  readonly nextChangeAt?: number;
}

/**
 * The standby in force for one template at `now`. `history` is undefined when predictive standby is configured but
 * its history could not be read (the prediction is then left out, and the message says so).
 */
export function decideStandby(
  template: StandbyTemplate,
  now: number,
  history: JobHistory | undefined,
  zones: ZoneResolver = timeZone,
): StandbyDecision {
  const maxCount = Math.max(0, template.maxCount);
  const cap = (n: number) => Math.min(maxCount, Math.max(0, Math.floor(n)));
  // 1. Baseline.
  let floor = cap(template.minCount);
  let reason: StandbyReason = "Baseline";
  let why = template.schedules.length > 0 ? `no standby schedule is open: minCount ${floor}` : `minCount ${floor}`;
  // 2. The open window with the largest minCount replaces the baseline.
  const open = scheduleInForce(template.schedules, now, zones);
  if (open !== undefined) {
    const s = template.schedules[open.index] as StandbyScheduleSpec;
    floor = cap(open.minCount);
    reason = "Schedule";
    why = `schedule ${open.index} (${describeSchedule(s)}) is open: ${floor}`;
  }
  let nextChangeAt = nextScheduleChange(template.schedules, now, zones);
  // 3. The prediction adds to that, within max and maxCount.
  let predicted: number | undefined;
  let minCount = floor;
  const p = template.predictive;
  if (p !== undefined) {
    const nextBucket = (Math.floor(now / BUCKET_MS) + 1) * BUCKET_MS;
    nextChangeAt = nextChangeAt === undefined ? nextBucket : Math.min(nextChangeAt, nextBucket);
    if (history === undefined) {
      why += "; predictive standby waits for its history to be read";
    } else {
      const prediction = predict(history, now, p, zones(p.timeZone));
      predicted = Math.min(cap(prediction.count), p.max === undefined ? maxCount : cap(p.max));
      const weeks = prediction.peaks.length;
      if (predicted > floor) {
        minCount = predicted;
        reason = "Prediction";
        why =
          `the past ${weeks} week(s) had at most [${prediction.peaks.join(", ")}] jobs per 5 minutes in the coming ` +
          `${p.lookaheadMinutes} minutes of the week (p${p.percentile}: ${prediction.count}` +
          `${predicted < prediction.count ? `, bounded to ${predicted}` : ""}); ${why}`;
      } else {
        why +=
          weeks === 0
            ? "; predictive standby has no full week of history yet"
            : `; the past ${weeks} week(s) predict ${predicted} (p${p.percentile})`;
      }
    }
  }
  return {
    minCount,
    reason,
    ...(open !== undefined ? { schedule: open.index } : {}),
    ...(predicted !== undefined ? { predicted } : {}),
    message: why,
    ...(nextChangeAt !== undefined ? { nextChangeAt } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Feeding the scale plan

/** The plan's minCount that keeps `standby` agents free beside `busy` ones: busy + standby, at most maxCount. */
export function planMinCount(standby: number, busy: number, maxCount: number): number {
  return Math.max(0, Math.min(maxCount, busy + standby));
}

/** Pods whose agent holds a job, per template index (as the scale plan classifies them). */
export function busyPerTemplate(
  pods: readonly ObservedPod[],
  agents: readonly ObservedAgent[],
  jobRequests: readonly JobRequest[],
  templateCount: number,
): number[] {
  const reserved = reservations(jobRequests);
  const byName = new Map(agents.map((a) => [a.name, a]));
  const busy = new Array<number>(templateCount).fill(0);
  for (const p of pods) {
    const i = p.templateIndex;
    if (i === null || i < 0 || i >= templateCount) continue;
    if (classifyPod(p, byName.get(p.name), reserved) === "busy") busy[i] = (busy[i] ?? 0) + 1;
  }
  return busy;
}

export interface JobToRecord {
  readonly templateIndex: number;
  readonly requestId: number;
  /** The job's queue time. */
  readonly atMs: number;
}

/**
 * Jobs a template served that the history has not counted yet: a job counts for the template of the pod whose agent
 * holds it (`reservedAgent`), or of the pod created for it. Jobs taken at once by a standby agent count too, so
 * standby does not teach the history that no jobs come. Jobs without a readable queue time are skipped.
 */
export function jobsToRecord(
  jobRequests: readonly JobRequest[],
  pods: readonly ObservedPod[],
  seen: ReadonlySet<number>,
): JobToRecord[] {
  const templateOfPod = new Map<string, number>();
  const createdFor = new Map<number, number>();
  for (const p of pods) {
    if (p.templateIndex === null) continue;
    templateOfPod.set(p.name, p.templateIndex);
    for (const id of p.createdForRequestIds) createdFor.set(id, p.templateIndex);
  }
  const out: JobToRecord[] = [];
  for (const r of jobRequests) {
    if (seen.has(r.requestId)) continue;
    const byAgent = r.reservedAgent === undefined ? undefined : templateOfPod.get(r.reservedAgent.name);
    const templateIndex = byAgent ?? createdFor.get(r.requestId);
    if (templateIndex === undefined) continue;
    const atMs = r.queueTime === undefined ? Number.NaN : Date.parse(r.queueTime);
    if (Number.isNaN(atMs)) continue;
    out.push({ templateIndex, requestId: r.requestId, atMs });
  }
  return out;
}
