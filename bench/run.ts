/**
 * Runs the benchmarks one after the other on one control plane, prints their tables and writes
 * `bench/results/<name>.json`.
 *
 *   npx node bench/run.ts                 # all of them (about an hour on 2 cores)
 *   npx node bench/run.ts scale-up        # only those named
 *   npx node bench/run.ts --quick         # small variants, results in a temporary folder (a smoke test)
 *   npx node bench/run.ts --list
 *
 * AZP_BENCH_KUBECONFIG=<file> uses a running control plane (e.g. `.sim/kubeconfig` of `npm run sim:up`) instead
 * of starting one.
 */
import { node500 } from "./node-500.ts";
import { plan } from "./plan.ts";
import { prePull } from "./prepull.ts";
import { scale } from "./scale.ts";
import { scaleUp } from "./scale-up.ts";
import { serviceHooks } from "./service-hooks.ts";
import { standby } from "./standby.ts";
import { standbyWeek } from "./standby-week.ts";
import { type Benchmark, quickFromArgv, runBenchmarks } from "./support/bench.ts";

const all: Benchmark[] = [plan, node500, scaleUp, prePull, standby, standbyWeek, serviceHooks, scale];
const args = process.argv.slice(2);

if (args.includes("--list") || args.includes("--help")) {
  for (const b of all) process.stdout.write(`${b.name.padEnd(10)} ${b.description} (about ${b.expectedS} s)\n`);
  process.stdout.write("\nusage: node bench/run.ts [--quick] [name ...]\n");
  process.exit(0);
}
const names = args.filter((a) => !a.startsWith("-"));
const unknown = names.filter((n) => !all.some((b) => b.name === n));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(", ")}; known: ${all.map((b) => b.name).join(", ")}\n`);
  process.exit(2);
}
const chosen = names.length > 0 ? all.filter((b) => names.includes(b.name)) : all;
const started = Date.now();
const results = await runBenchmarks(chosen, { quick: quickFromArgv(args) });
process.stderr.write(
  `\n${results.length} of ${chosen.length} benchmark(s) done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
);
