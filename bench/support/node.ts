/** Starts the benchmark's virtual node in its own process (see node-process.ts) and talks to it. */
import { type ChildProcess, fork } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import type { ChildMessage, NodeProcessSettings, PhaseStats } from "./node-process.ts";

export interface NodeProcess {
  name: string;
  pid: number;
  logFile: string;
  /** Starts a measured phase: resets the node's event-loop histogram and memory peaks. */
  phaseStart(): void;
  /** Ends the phase and returns what the node process measured during it. */
  phaseEnd(): Promise<PhaseStats>;
  /** Stops the node (its containers, its Node object) and waits for the process to exit. */
  stop(): Promise<void>;
}

export async function startNodeProcess(settings: NodeProcessSettings, logFile: string): Promise<NodeProcess> {
  const fd = openSync(logFile, "a");
  const child: ChildProcess = fork(join(import.meta.dirname, "node-process.ts"), [], {
    execPath: process.execPath,
    // gc() at the end of a phase: memory that stays after a full collection.
    execArgv: [...process.execArgv, "--expose-gc"],
    stdio: ["ignore", fd, fd, "ipc"],
    env: { ...process.env, AZP_BENCH_NODE: JSON.stringify(settings) },
  });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const next = <T extends ChildMessage["type"]>(type: T, timeoutMs: number) =>
    new Promise<Extract<ChildMessage, { type: T }>>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`virtual node process: no "${type}" message within ${timeoutMs} ms (log: ${logFile})`));
      }, timeoutMs);
      const onMessage = (m: ChildMessage) => {
        if (m.type === "error") {
          cleanup();
          reject(new Error(`virtual node process failed: ${m.message} (log: ${logFile})`));
        } else if (m.type === type) {
          cleanup();
          resolve(m as Extract<ChildMessage, { type: T }>);
        }
      };
      const onExit = () => {
        cleanup();
        reject(new Error(`virtual node process exited before "${type}" (log: ${logFile})`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
    });
  try {
    await next("ready", 60_000);
  } catch (err) {
    child.kill("SIGKILL");
    await exited;
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    name: settings.name,
    pid: child.pid ?? 0,
    logFile,
    phaseStart: () => child.send({ cmd: "phase-start" }),
    async phaseEnd() {
      const answer = next("phase", 10_000);
      child.send({ cmd: "phase-end" });
      return answer;
    },
    stop() {
      stopped ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.send({ cmd: "stop" });
        const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        await exited;
        clearTimeout(timer);
      })();
      return stopped;
    },
  };
}
