/**
 * Builds the control-plane binaries once from the Go wrapper modules and caches them outside the repository,
 * in a folder keyed by the pinned versions and the contents of the wrapper modules. Later calls reuse them.
 * Concurrent callers (parallel test files, sim:up during a test run) wait on a lock instead of building twice.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { goModulesDir, moduleSpecs } from "./gomod.ts";
import { type BinaryName, binariesByModule, versions } from "./versions.ts";

export type Log = (line: string) => void;

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AZP_SIM_CACHE_DIR) return env.AZP_SIM_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "azure-pipelines-k8s-agent-scaler");
}

/** The cache key: versions plus a hash of every wrapper module's go.mod and go.sum. */
export function cacheKey(): string {
  const hash = createHash("sha256");
  for (const folder of Object.keys(binariesByModule)) {
    for (const file of ["go.mod", "go.sum"]) hash.update(readFileSync(join(goModulesDir, folder, file)));
  }
  return `k8s-v${versions.kubernetes}_etcd-v${versions.etcd}_helm-v${versions.helm}_${hash.digest("hex").slice(0, 12)}`;
}

export function binDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), "control-plane", cacheKey(), "bin");
}

export type Binaries = Record<BinaryName, string> & { dir: string };

function binariesIn(dir: string): Binaries {
  const out: Record<string, string> = { dir };
  for (const names of Object.values(binariesByModule)) for (const n of names) out[n] = join(dir, n);
  return out as Binaries;
}

function allPresent(dir: string): boolean {
  return Object.values(binariesByModule)
    .flat()
    .every((n) => existsSync(join(dir, n)));
}

function run(cmd: string, args: string[], cwd: string, log: Log): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split("\n")) if (line.trim()) log(`  ${line}`);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}:\n${tail}`)),
    );
  });
}

function ldflags(folder: string): string {
  if (folder !== "kubernetes") return "-s -w";
  const [major, minor] = versions.kubernetes.split(".");
  const v = `v${versions.kubernetes}`;
  const vars: Record<string, string> = {
    gitMajor: major ?? "1",
    gitMinor: minor ?? "0",
    gitVersion: v,
    gitTreeState: "clean",
    buildDate: "1970-01-01T00:00:00Z",
  };
  const pkgs = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"];
  const xs = pkgs.flatMap((p) => Object.entries(vars).map(([k, val]) => `-X ${p}.${k}=${val}`));
  return ["-s", "-w", ...xs].join(" ");
}

async function buildAll(target: string, log: Log): Promise<void> {
  const staging = `${target}.partial-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    for (const spec of moduleSpecs()) {
      const started = Date.now();
      log(`building ${spec.tools.join(" ")} (${spec.module}@${spec.version}); a first build takes many minutes`);
      // One package: name the output explicitly (go would call etcd's main "server"); several: go names each.
      const names = binariesByModule[spec.folder];
      const output = spec.tools.length === 1 ? join(staging, names[0]) : `${staging}/`;
      await run(
        "go",
        ["build", "-trimpath", "-o", output, "-ldflags", ldflags(spec.folder), ...spec.tools],
        join(goModulesDir, spec.folder),
        log,
      );
      log(`built ${spec.folder} in ${Math.round((Date.now() - started) / 1000)}s`);
    }
    if (!allPresent(staging)) throw new Error(`build finished but binaries are missing in ${staging}`);
    rmSync(target, { recursive: true, force: true });
    renameSync(staging, target);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

async function withLock<T>(lockFile: string, fn: () => Promise<T>, log: Log): Promise<T> {
  let announced = false;
  for (;;) {
    try {
      const handle = await open(lockFile, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number(readFileSync(lockFile, "utf8") || "0");
      if (holder > 0 && !isAlive(holder)) {
        rmSync(lockFile, { force: true });
        continue;
      }
      if (!announced) log(`waiting for another build (pid ${holder}) to finish`);
      announced = true;
      await sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockFile, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Returns the built binaries, building them first if this version has not been built on this machine. */
export async function ensureBinaries(options: { log?: Log; env?: NodeJS.ProcessEnv } = {}): Promise<Binaries> {
  const log = options.log ?? (() => {});
  const dir = binDir(options.env);
  if (allPresent(dir)) return binariesIn(dir);
  const keyDir = join(dir, "..");
  mkdirSync(keyDir, { recursive: true });
  await withLock(
    join(keyDir, "build.lock"),
    async () => {
      if (!allPresent(dir)) await buildAll(dir, log);
    },
    log,
  );
  return binariesIn(dir);
}
