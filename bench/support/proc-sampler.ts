/**
 * Samples a process's resident memory and CPU time from /proc (Linux) at a fixed interval, so that a benchmark
 * can ask for a window afterwards: mean CPU use, its busiest stretch, RSS (peak and median), and how long its main
 * thread ran and waited for a core.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { processRssMiB } from "./process.ts";

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User plus system CPU time of a process (s) from /proc/<pid>/stat; undefined when unknown or gone. */
export function processCpuSeconds(pid: number): number | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) in parentheses: state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / clockTicks();
  } catch {
    return undefined;
  }
}

/** The process's peak resident set size so far (VmHWM, MiB). */
export function processPeakRssMiB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The scheduler's account of one thread (Linux, /proc/<pid>/task/<tid>/schedstat): time it ran, and time it was
 * ready to run but waited for a core (seconds); undefined when unknown or gone. The main thread's tid is the pid.
 */
export function threadSchedStat(pid: number, tid = pid): { runS: number; waitS: number } | undefined {
  if (!pid) return undefined;
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").trim().split(" ").map(Number);
    if (run === undefined || wait === undefined || Number.isNaN(run) || Number.isNaN(wait)) return undefined;
    return { runS: run / 1e9, waitS: wait / 1e9 };
  } catch {
    return undefined;
  }
}

/** Kinds of a Node process's other threads, by name (`/proc/<pid>/task/<tid>/comm`). */
export type ThreadKind = "v8" | "libuv" | "other";
export const threadKinds: readonly ThreadKind[] = ["v8", "libuv", "other"];

/** V8's workers (concurrent GC, compilation) and its delayed-task runner; libuv's thread pool; anything else. */
export function threadKind(comm: string): ThreadKind {
  if (comm.startsWith("V8") || comm.startsWith("DelayedTask")) return "v8";
  if (comm.startsWith("libuv")) return "libuv";
  return "other";
}

/**
 * Run time (s) of a process's threads other than its main one, by kind: the threads that share the process's cores
 * with its main thread (a thread gone since is no longer counted, so read differences over short windows only).
 */
export function otherThreadsRunS(pid: number): Record<ThreadKind, number> | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  const out: Record<ThreadKind, number> = { v8: 0, libuv: 0, other: 0 };
  for (const tid of tids) {
    if (Number(tid) === pid) continue;
    const stat = threadSchedStat(pid, Number(tid));
    if (!stat) continue;
    let comm = "";
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
    } catch {
      continue;
    }
    out[threadKind(comm)] += stat.runS;
  }
  return out;
}

export interface ProcSample {
  /** Date.now() */
  t: number;
  rssMiB: number;
  cpuS: number;
  /** The main thread's scheduler account (`threadSchedStat`), when the kernel gives one. */
  main?: { runS: number; waitS: number };
  /** The other threads' run time by kind (`otherThreadsRunS`). */
  others?: Record<ThreadKind, number>;
}

export interface ProcWindow {
  seconds: number;
  /** Mean CPU use over the window (1 = one core busy). */
  cpuCores: number;
  /** The busiest stretch of `burstS` seconds within the window (cores). */
  cpuCoresPeak: number;
  rssMiB: { median: number; peak: number; end: number };
  /**
   * The main thread (where JavaScript runs) over the window, in ms per second: running, and ready to run but waiting
   * for a core (NaN when unknown).
   */
  mainThread: { runMsPerS: number; waitMsPerS: number };
  /** The process's other threads, running, in ms per second by kind (NaN when unknown). */
  otherThreadsMsPerS: Record<ThreadKind, number>;
}

export class ProcSampler {
  readonly samples: ProcSample[] = [];
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;

  constructor(pid: number, everyMs = 1000) {
    this.#pid = pid;
    this.sample();
    this.#timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): void {
    const rssMiB = processRssMiB(this.#pid);
    const cpuS = processCpuSeconds(this.#pid);
    const main = threadSchedStat(this.#pid);
    const others = otherThreadsRunS(this.#pid);
    if (rssMiB !== undefined && cpuS !== undefined)
      this.samples.push({ t: Date.now(), rssMiB, cpuS, ...(main ? { main } : {}), ...(others ? { others } : {}) });
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Statistics of [from, to] (ms); `burstS`: the length of the busiest stretch looked for. */
  window(from: number, to: number, burstS = 5): ProcWindow {
    const inside = this.samples.filter((s) => s.t >= from && s.t <= to);
    const first = inside[0];
    const last = inside.at(-1);
    const nan = { seconds: Number.NaN, cpuCores: Number.NaN, cpuCoresPeak: Number.NaN };
    if (!first || !last || last.t <= first.t) {
      return {
        ...nan,
        rssMiB: { median: Number.NaN, peak: Number.NaN, end: Number.NaN },
        mainThread: { runMsPerS: Number.NaN, waitMsPerS: Number.NaN },
        otherThreadsMsPerS: { v8: Number.NaN, libuv: Number.NaN, other: Number.NaN },
      };
    }
    let peak = 0;
    for (let i = 0, j = 0; i < inside.length; i++) {
      const a = inside[i] as ProcSample;
      while (j < inside.length && (inside[j] as ProcSample).t - a.t < burstS * 1000) j++;
      const b = inside[Math.min(j, inside.length - 1)] as ProcSample;
      if (b.t - a.t >= burstS * 500) peak = Math.max(peak, (b.cpuS - a.cpuS) / ((b.t - a.t) / 1000));
    }
    const rss = inside.map((s) => s.rssMiB).sort((x, y) => x - y);
    const seconds = (last.t - first.t) / 1000;
    const perS = (f: (m: { runS: number; waitS: number }) => number) =>
      first.main && last.main ? ((f(last.main) - f(first.main)) * 1000) / seconds : Number.NaN;
    // Threads come and go (libuv's start on first use): sum the gains between samples, never a drop.
    const othersPerS = (k: ThreadKind) => {
      let sum = 0;
      for (let i = 1; i < inside.length; i++) {
        const a = inside[i - 1]?.others;
        const b = inside[i]?.others;
        if (!a || !b) return Number.NaN;
        sum += Math.max(0, b[k] - a[k]);
      }
      return (sum * 1000) / seconds;
    };
    return {
      seconds,
      cpuCores: (last.cpuS - first.cpuS) / ((last.t - first.t) / 1000),
      cpuCoresPeak: peak,
      rssMiB: { median: rss[Math.floor(rss.length / 2)] as number, peak: rss.at(-1) as number, end: last.rssMiB },
      mainThread: { runMsPerS: perS((m) => m.runS), waitMsPerS: perS((m) => m.waitS) },
      otherThreadsMsPerS: {
        v8: othersPerS("v8"),
        libuv: othersPerS("libuv"),
        other: othersPerS("other"),
      },
    };
  }
}
