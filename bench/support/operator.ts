/**
 * The operator as its own process for benchmarks, in the form the image runs: compiled to JavaScript
 * (`npm run build`, once per benchmark run) with the image's environment (`MALLOC_ARENA_MAX=2`). The tests'
 * launcher, with the operator's default intervals (unless `args` give others), JSON logs at info level, no leader
 * election, and the launcher's default credential policy flags (the emulator on 127.0.0.1 over http:
 * `emulatorAccess()`).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type OperatorProcess, startOperatorProcess as start } from "../../test/support/operator.ts";

const root = join(import.meta.dirname, "..", "..");
let compiled: string | undefined;

/** The compiled operator's entry point: `tsconfig.build.json` compiled to a temporary folder, once per process. */
export function compiledOperator(): string {
  if (compiled) return compiled;
  const out = mkdtempSync(join(tmpdir(), "azp-bench-dist-"));
  execFileSync(
    process.execPath,
    [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json"), "--outDir", out],
    { cwd: root, stdio: "inherit" },
  );
  // As in the image: beside a package.json of type module, with the project's node_modules.
  writeFileSync(join(out, "package.json"), JSON.stringify({ type: "module" }));
  symlinkSync(join(root, "node_modules"), join(out, "node_modules"));
  compiled = join(out, "cli", "operator.js");
  return compiled;
}

/** Environment variables the operator image sets (images/operator/Dockerfile). */
export const imageEnv = { NODE_ENV: "production", MALLOC_ARENA_MAX: "2" };
/** Node flags of the image's entry point (images/operator/Dockerfile). */
export const imageNodeFlags = ["--max-semi-space-size=4", "--heap-growing-percent=20"];

export type { OperatorProcess };

export function startOperatorProcess(options: {
  kubeconfig: string;
  namespaces: string[];
  logFile: string;
  args?: string[];
}): OperatorProcess {
  // AZP_BENCH_OPERATOR_NODE_OPTIONS: Node flags for the operator alone (e.g. `--cpu-prof --cpu-prof-dir=...`).
  const nodeOptions = process.env.AZP_BENCH_OPERATOR_NODE_OPTIONS;
  // AZP_BENCH_OPERATOR_FLAGS: Node flags in place of the image's (space-separated; V8 flags NODE_OPTIONS refuses).
  const flags = process.env.AZP_BENCH_OPERATOR_FLAGS;
  return start({
    entry: compiledOperator(),
    nodeFlags: flags === undefined ? imageNodeFlags : flags.split(/\s+/).filter(Boolean),
    env: { ...imageEnv, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
    kubeconfig: options.kubeconfig,
    namespaces: options.namespaces,
    logFile: options.logFile,
    identity: "bench-operator",
    settings: ["--log-format", "json", "--log-level", "info"],
    args: ["--leader-elect", "false", ...(options.args ?? [])],
  });
}
