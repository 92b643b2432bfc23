/**
 * Samples a process's resident memory and CPU time from /proc (Linux) at a fixed interval, so that a benchmark
 * can ask for a window afterwards: mean CPU use, its busiest stretch, RSS (peak and median), and how long its main
 * thread ran and waited for a core.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
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

export interface ProcSample {
  /** Date.now() */
  t: number;
  rssMiB: number;
  cpuS: number;
  /** The main thread's scheduler account (`threadSchedStat`), when the kernel gives one. */
  main?: { runS: number; waitS: number };
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
    if (rssMiB !== undefined && cpuS !== undefined)
      this.samples.push({ t: Date.now(), rssMiB, cpuS, ...(main ? { main } : {}) });
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
    return {
      seconds,
      cpuCores: (last.cpuS - first.cpuS) / ((last.t - first.t) / 1000),
      cpuCoresPeak: peak,
      rssMiB: { median: rss[Math.floor(rss.length / 2)] as number, peak: rss.at(-1) as number, end: last.rssMiB },
      mainThread: { runMsPerS: perS((m) => m.runS), waitMsPerS: perS((m) => m.waitS) },
    };
  }
}
