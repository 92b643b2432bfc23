/**
 * Child-process plumbing shared by the simulated components: start a binary with its output in a log file,
 * notice early exits, read the last lines of a log for error messages, stop gracefully then forcefully.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface ManagedProcess {
  name: string;
  pid: number;
  logFile: string;
  /** The command line, used to recognise the process again (PIDs are reused). */
  command: string;
  /** Resolves when the process exits (only for processes started by this Node process). */
  exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  child?: ChildProcess;
}

/** Starts `bin args`, appending stdout and stderr to `logFile`. Detached processes outlive this one. */
export function startProcess(
  name: string,
  bin: string,
  args: string[],
  logFile: string,
  options: { detached?: boolean; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): ManagedProcess {
  mkdirSync(dirname(logFile), { recursive: true });
  const fd = openSync(logFile, "a");
  const child = spawn(bin, args, {
    stdio: ["ignore", fd, fd],
    detached: options.detached ?? false,
    env: options.env ?? process.env,
    cwd: options.cwd,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${bin}`);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
    child.on("error", () => resolve({ code: -1, signal: null }));
  });
  if (options.detached) child.unref();
  return { name, pid: child.pid, logFile, command: [bin, ...args].join(" "), exited, child };
}

export function logTail(logFile: string, lines = 15): string {
  if (!existsSync(logFile)) return "(no log)";
  const text = readFileSync(logFile, "utf8").trimEnd().split("\n");
  return text.slice(-lines).join("\n");
}

/** True when the process exists and is not a zombie (an exited child nobody has reaped yet). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  return !isZombieOrGone(pid);
}

/** True when `pid` is alive and still runs the same command (guards against PID reuse). */
export function isSameProcess(pid: number, command: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
    return cmdline === command;
  } catch {
    return false;
  }
}

function isZombieOrGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL and wait for the process to disappear. */
export async function stopProcess(p: Pick<ManagedProcess, "pid" | "command" | "exited">, graceMs = 10_000) {
  if (!isSameProcess(p.pid, p.command)) return;
  const gone = async (deadline: number) => {
    while (Date.now() < deadline) {
      if (!isAlive(p.pid)) return true;
      await sleep(50);
    }
    return !isAlive(p.pid);
  };
  try {
    process.kill(p.pid, "SIGTERM");
  } catch {
    return;
  }
  if (!(await gone(Date.now() + graceMs))) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await gone(Date.now() + 10_000);
  }
  if (p.exited) await Promise.race([p.exited, sleep(2000)]);
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True when nothing listens on 127.0.0.1:`port`. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.on("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}
