/**
 * `npm run chaos`: the operator (two replicas with leader election) against the simulated world under a seeded
 * schedule of jobs and disturbances; counts every invariant violation. See docs/reliability.md.
 *
 *   npm run chaos                      # 520 jobs over 10 minutes (about 20 minutes in all on 2 cores)
 *   npm run chaos -- --quick           # 80 jobs over 2.5 minutes (about 7 minutes in all)
 *   npm run chaos -- --seed 7          # another schedule; the same seed gives the same schedule
 *   npm run chaos -- --jobs 200        # another number of jobs over the same time
 *   npm run chaos -- --strict          # exit 1 when there is a violation
 *
 * Writes bench/results/chaos.json (quick: chaos-quick.json) and keeps the component logs (each replica's, the
 * virtual node's, the audit log) in a temporary folder whose path it prints.
 */
import { parseArgs } from "node:util";
import { runChaos } from "./chaos/run.ts";
import { printResult, saveResult } from "./support/stats.ts";

const { values } = parseArgs({
  options: {
    seed: { type: "string", default: "1" },
    quick: { type: "boolean", default: false },
    jobs: { type: "string" },
    strict: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  process.stdout.write("usage: node bench/chaos.ts [--quick] [--seed N] [--jobs N] [--strict]\n");
  process.exit(0);
}
const seed = Number(values.seed);
if (!Number.isSafeInteger(seed) || seed < 0) {
  process.stderr.write(`--seed must be a non-negative integer, not ${values.seed}\n`);
  process.exit(2);
}
const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
if (jobs !== undefined && (!Number.isSafeInteger(jobs) || jobs < 1)) {
  process.stderr.write(`--jobs must be a positive integer, not ${values.jobs}\n`);
  process.exit(2);
}
const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 23)} ${line}\n`);
try {
  const { result, workDir } = await runChaos({ seed, quick: values.quick, ...(jobs ? { jobs } : {}), log });
  printResult(result);
  log(`saved ${saveResult(result)}`);
  log(`component logs (replicas, virtual node, audit log) kept in ${workDir}`);
  const counts = Object.values(result.results.counts as Record<string, number>);
  if (values.strict && counts.some((n) => n > 0)) process.exitCode = 1;
} catch (err) {
  const dir = (err as { workDir?: string }).workDir;
  if (dir) log(`component logs kept in ${dir}`);
  process.exitCode = 2;
}
process.exit();
