/**
 * Small statistics and reporting helpers of the benchmarks: summaries (median, p90, max) of samples, plain-text
 * tables, the machine description, and the JSON result files under `bench/results/`.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";

export interface Summary {
  n: number;
  min: number;
  median: number;
  p90: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile (p in 0..100) of already sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** Median of unsorted values (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function summarize(values: readonly number[]): Summary {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0)
    return { n: 0, min: Number.NaN, median: Number.NaN, p90: Number.NaN, max: Number.NaN, mean: Number.NaN };
  return {
    n: s.length,
    min: s[0] as number,
    median: median(s),
    p90: percentile(s, 90),
    max: s[s.length - 1] as number,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

/** Rounds every number of a summary (for JSON files that stay readable). */
export function rounded(summary: Summary, digits = 0): Summary {
  const f = 10 ** digits;
  const r = (v: number) => (Number.isFinite(v) ? Math.round(v * f) / f : v);
  return {
    n: summary.n,
    min: r(summary.min),
    median: r(summary.median),
    p90: r(summary.p90),
    max: r(summary.max),
    mean: r(summary.mean),
  };
}

/** Milliseconds as seconds with `digits` decimals, or "-" for no value. */
export function secs(ms: number | undefined, digits = 2): string {
  return ms === undefined || !Number.isFinite(ms) ? "-" : (ms / 1000).toFixed(digits);
}

export function fixed(v: number | undefined, digits = 1): string {
  return v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(digits);
}

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  notes?: string[];
}

/** A plain-text table: the first column left-aligned, the others right-aligned. */
export function renderTable(table: Table): string {
  const widths = table.columns.map((c, i) => Math.max(c.length, ...table.rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  return [
    table.title,
    line(table.columns),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...table.rows.map(line),
    ...(table.notes ?? []).map((n) => `  ${n}`),
  ].join("\n");
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  platform: string;
  arch: string;
  /** Load average (1 min) when the benchmark started: other work on a shared machine shows here. */
  loadAverage1m: number;
  /** The same when the benchmark ended. */
  loadAverage1mEnd?: number;
  kubernetes?: string;
}

export function machineInfo(extra: { kubernetes?: string } = {}): MachineInfo {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    loadAverage1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    ...extra,
  };
}

/** The commit the benchmark ran on (with `+dirty` when the work tree has changes), if git is there. */
export function gitRevision(): string | undefined {
  try {
    const cwd = join(import.meta.dirname, "..", "..");
    const rev = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src", "sim"], { cwd, encoding: "utf8" }).trim();
    return dirty ? `${rev}+dirty` : rev;
  } catch {
    return undefined;
  }
}

export interface BenchResult {
  name: string;
  /** ISO date and time the benchmark started. */
  date: string;
  durationS: number;
  machine: MachineInfo;
  revision?: string;
  parameters: Record<string, unknown>;
  results: Record<string, unknown>;
  tables: Table[];
}

export const resultsDir = join(import.meta.dirname, "..", "results");

export function saveResult(result: BenchResult, dir = resultsDir): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${result.name}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

export function printResult(result: BenchResult, write: (s: string) => void = (s) => process.stdout.write(s)): void {
  const m = result.machine;
  write(
    `\n== ${result.name} (${result.date}, ${result.durationS.toFixed(0)} s; ${m.cpus} cpus ${m.cpuModel}, node ${m.node}, load ${m.loadAverage1m}${m.loadAverage1mEnd === undefined ? "" : ` → ${m.loadAverage1mEnd}`})\n\n`,
  );
  for (const t of result.tables) write(`${renderTable(t)}\n\n`);
}
