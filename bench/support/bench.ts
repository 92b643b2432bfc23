/**
 * What a benchmark is to the runner: a name and a `run(ctx)` that returns a result (tables plus JSON), and the
 * plumbing shared by the runner and a benchmark started on its own: the control plane, cleanups that also run on
 * Ctrl-C, printing and saving.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BenchCluster, benchCluster, type Log, stderrLog } from "./cluster.ts";
import { type BenchResult, printResult, resultsDir, saveResult } from "./stats.ts";

/** Cleanups run last-in first-out, once: at the end of a benchmark, or on SIGINT/SIGTERM. */
export class Cleanups {
  #stack: { what: string; fn: () => Promise<void> | void }[] = [];

  /** Registers a cleanup; the returned function runs it now (and forgets it). */
  add(what: string, fn: () => Promise<void> | void): () => Promise<void> {
    const entry = { what, fn };
    this.#stack.push(entry);
    return async () => {
      const i = this.#stack.indexOf(entry);
      if (i < 0) return;
      this.#stack.splice(i, 1);
      await entry.fn();
    };
  }

  async runAll(log: Log): Promise<void> {
    while (this.#stack.length > 0) {
      const entry = this.#stack.pop();
      if (!entry) break;
      try {
        await entry.fn();
      } catch (err) {
        log(`cleanup "${entry.what}" failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

export interface BenchContext {
  cluster: BenchCluster;
  log: Log;
  /** A smaller, faster variant (a smoke test of the benchmark itself; figures not comparable). */
  quick: boolean;
  /** Scratch folder of this run (component logs); removed at the end unless the run failed. */
  workDir: string;
  cleanups: Cleanups;
}

export interface Benchmark {
  name: string;
  /** What it measures, one line (for `run.ts --list`). */
  description: string;
  /** Rough duration on a 2-core machine (s), for the runner's plan. */
  expectedS: number;
  /** False: it runs without a control plane (its context's `cluster` throws when read). */
  cluster?: false;
  run(ctx: BenchContext): Promise<BenchResult>;
}

export interface RunOptions {
  quick: boolean;
  /** Where result files go; default bench/results (quick runs: a temporary folder). */
  outDir?: string;
  log?: Log;
}

/** Runs benchmarks one after the other on one control plane; prints and saves each result as it completes. */
export async function runBenchmarks(benchmarks: readonly Benchmark[], options: RunOptions): Promise<BenchResult[]> {
  const log = options.log ?? stderrLog;
  const cleanups = new Cleanups();
  const workDir = mkdtempSync(join(tmpdir(), "azp-bench-"));
  let interrupted = false;
  const onSignal = (signal: string) => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: cleaning up`);
    void cleanups.runAll(log).finally(() => process.exit(130));
  };
  const sigint = () => onSignal("SIGINT");
  const sigterm = () => onSignal("SIGTERM");
  process.on("SIGINT", sigint);
  process.on("SIGTERM", sigterm);
  const outDir = options.outDir ?? (options.quick ? join(workDir, "results") : resultsDir);
  const results: BenchResult[] = [];
  let failed = false;
  try {
    let cluster: BenchCluster | undefined;
    for (const bench of benchmarks) {
      if (bench.cluster !== false && cluster === undefined) {
        const started = await benchCluster(log);
        cluster = started;
        cleanups.add("control plane", () => started.close());
      }
      log(`\n--- ${bench.name}: ${bench.description} (about ${bench.expectedS} s${options.quick ? ", quick" : ""})`);
      const inner = new Cleanups();
      const popInner = cleanups.add(`${bench.name} resources`, () => inner.runAll(log));
      try {
        const result = await bench.run(contextOf(cluster, { log, quick: options.quick, workDir, cleanups: inner }));
        await popInner();
        printResult(result);
        const file = saveResult(result, outDir);
        log(`saved ${file}`);
        results.push(result);
      } catch (err) {
        failed = true;
        log(`${bench.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        await popInner();
      }
    }
  } finally {
    await cleanups.runAll(log);
    process.off("SIGINT", sigint);
    process.off("SIGTERM", sigterm);
    if (failed) log(`component logs kept in ${workDir}`);
    else if (!options.quick) rmSync(workDir, { recursive: true, force: true });
    else log(`quick results and logs in ${workDir}`);
  }
  if (failed) process.exitCode = 1;
  return results;
}

/** A benchmark's context; without a control plane, reading `cluster` throws. */
function contextOf(cluster: BenchCluster | undefined, rest: Omit<BenchContext, "cluster">): BenchContext {
  if (cluster !== undefined) return { cluster, ...rest };
  return {
    ...rest,
    get cluster(): BenchCluster {
      throw new Error("this benchmark runs without a control plane (cluster: false)");
    },
  };
}

/** `--quick` on the command line. */
export function quickFromArgv(argv: readonly string[] = process.argv.slice(2)): boolean {
  return argv.includes("--quick");
}
