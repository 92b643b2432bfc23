/** Runs the operator as its own process (as in a cluster), its log in a file; stops it by its PID only. */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const root = join(import.meta.dirname, "..", "..");

export interface OperatorProcess {
  child: ChildProcess;
  logFile: string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; waits for the exit. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * `args` are the operator's flags after the fixed ones (kubeconfig, namespaces, metrics on a free loopback port,
 * JSON logs at info level, no leader election); intervals not given keep the operator's defaults.
 */
export function startOperatorProcess(options: {
  kubeconfig: string;
  namespaces: string[];
  logFile: string;
  args?: string[];
}): OperatorProcess {
  const fd = openSync(options.logFile, "a");
  const child = spawn(
    process.execPath,
    [
      join(root, "src", "cli", "operator.ts"),
      "--kubeconfig",
      options.kubeconfig,
      "--namespaces",
      options.namespaces.join(","),
      "--port",
      "0",
      "--bind-address",
      "127.0.0.1",
      "--leader-elect",
      "false",
      "--identity",
      "bench-operator",
      "--log-format",
      "json",
      "--log-level",
      "info",
      ...(options.args ?? []),
    ],
    { stdio: ["ignore", fd, fd], env: { ...process.env } },
  );
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const log = () => readFileSync(options.logFile, "utf8");
  return {
    child,
    logFile: options.logFile,
    async waitForLog(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = log()
          .split("\n")
          .find((l) => pattern.test(l));
        if (line) return line;
        if (child.exitCode !== null) {
          throw new Error(`operator exited (${child.exitCode}) before logging ${pattern}:\n${log().slice(-2000)}`);
        }
        if (Date.now() > deadline) throw new Error(`operator did not log ${pattern}:\n${log().slice(-2000)}`);
        await sleep(100);
      }
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
