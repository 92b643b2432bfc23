/**
 * Runs the operator as a separate process (as it runs in a cluster), with short intervals, its log in a file
 * the test can read and search.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const root = join(import.meta.dirname, "..", "..");

export interface OperatorProcess {
  child: ChildProcess;
  logFile: string;
  log(): string;
  /** Waits for a log line matching `pattern`. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM and wait (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL: the process dies mid-whatever. */
  kill(): Promise<void>;
}

export interface OperatorOptions {
  /** The `--kubeconfig` flag; undefined: none, the operator reads `KUBECONFIG` from `env` as kubectl does. */
  kubeconfig: string | undefined;
  namespaces: string[];
  /** Extra flags; defaults give short intervals and no leader election. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  identity?: string;
  /** Where the operator's log goes; default a new temporary file. */
  logFile?: string;
  /** The program to run; default the TypeScript entry point `src/cli/operator.ts` (e.g. a compiled build's). */
  entry?: string;
  /** Flags for Node itself, before the program. */
  nodeFlags?: string[];
  /** Interval and log flags; default short intervals (tests stay fast) and text logs at debug level. */
  settings?: string[];
  /**
   * The credential policy flags (where credentials may go); default `emulatorAccess()`: Azure DevOps on
   * 127.0.0.1 over http, as the emulator serves it. Tests of the policy pass their own.
   */
  access?: string[];
}

/**
 * Flags that let the operator talk to emulators on loopback: Azure DevOps on 127.0.0.1 (http allowed) and, when
 * given, an emulator's HTTPS listener as the Entra authority.
 */
export function emulatorAccess(emulator: { httpsUrl?: string | undefined } = {}): string[] {
  return [
    "--azure-devops-hosts",
    "127.0.0.1",
    "--azure-devops-allow-http",
    "true",
    ...(emulator.httpsUrl ? ["--entra-authority-hosts", emulator.httpsUrl] : []),
  ];
}

const testSettings = [
  "--poll-interval",
  "300ms",
  "--idle-poll-interval",
  "1s",
  // No request budget of our own: the short intervals above are the point (the emulator does not rate-limit).
  "--poll-budget",
  "0",
  "--resync-interval",
  "2s",
  "--log-format",
  "text",
  "--log-level",
  "debug",
];

export function startOperatorProcess(options: OperatorOptions): OperatorProcess {
  const logFile = options.logFile ?? join(mkdtempSync(join(tmpdir(), "azp-operator-")), "operator.log");
  const fd = openSync(logFile, "a");
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeFlags ?? []),
      options.entry ?? join(root, "src", "cli", "operator.ts"),
      ...(options.kubeconfig === undefined ? [] : ["--kubeconfig", options.kubeconfig]),
      "--namespaces",
      options.namespaces.join(","),
      "--port",
      "0",
      "--bind-address",
      "127.0.0.1",
      ...(options.settings ?? testSettings),
      ...(options.access ?? emulatorAccess()),
      "--identity",
      options.identity ?? "test-operator",
      ...(options.args ?? ["--leader-elect", "false"]),
    ],
    { stdio: ["ignore", fd, fd], env: { ...process.env, ...options.env } },
  );
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const log = () => readFileSync(logFile, "utf8");
  return {
    child,
    logFile,
    log,
    async waitForLog(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = log()
          .split("\n")
          .find((l) => pattern.test(l));
        if (line) return line;
        if (child.exitCode !== null)
          throw new Error(`operator exited (${child.exitCode}) before logging ${pattern}:\n${log().slice(-3000)}`);
        if (Date.now() > deadline) throw new Error(`operator did not log ${pattern}:\n${log().slice(-3000)}`);
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
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}
