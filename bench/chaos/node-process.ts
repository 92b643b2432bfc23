/**
 * The chaos run's virtual node, in a process of its own (as a kubelet is): plays the kubelet for the pods bound to
 * it, the agent inside agent containers (with a token of its own, so the emulator tells the agents' requests from
 * the operator's), and provisions cache-volume PVCs. Started by `startChaosNode()` with its settings in the
 * AZP_CHAOS_NODE environment variable; says `{ type: "ready" }` over IPC and stops on `{ cmd: "stop" }`, SIGTERM,
 * or when the parent goes away.
 */
import { type ChildProcess, fork } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { agentProgram } from "../../sim/node/agent-program.ts";
import { VirtualNode } from "../../sim/node/index.ts";
import type { Program } from "../../sim/node/programs.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { loadKubeconfigFile } from "../../src/kube/kubeconfig.ts";
import type { Logger } from "../../src/runtime/logger.ts";

export interface ChaosNodeSettings {
  kubeconfig: string;
  name: string;
  labels: Record<string, string>;
  /** Agents use this token instead of AZP_TOKEN. */
  agentToken: string;
  agentRenewIntervalMs: number;
}

type Message = { type: "ready" } | { type: "error"; message: string };

export interface ChaosNode {
  pid: number;
  exited(): boolean;
  stop(): Promise<void>;
}

export async function startChaosNode(settings: ChaosNodeSettings, logFile: string): Promise<ChaosNode> {
  const fd = openSync(logFile, "a");
  const child: ChildProcess = fork(import.meta.filename, [], {
    execPath: process.execPath,
    stdio: ["ignore", fd, fd, "ipc"],
    env: { ...process.env, AZP_CHAOS_NODE: JSON.stringify(settings) },
  });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`virtual node did not start within 60 s (log: ${logFile})`)),
      60_000,
    );
    child.on("message", (m: Message) => {
      clearTimeout(timer);
      if (m.type === "ready") resolve();
      else reject(new Error(`virtual node failed: ${m.message} (log: ${logFile})`));
    });
    child.once("exit", () => reject(new Error(`virtual node exited at start (log: ${logFile})`)));
  }).catch(async (err: unknown) => {
    child.kill("SIGKILL");
    await exited;
    throw err;
  });
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid ?? 0,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.send({ cmd: "stop" });
        const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.env.AZP_CHAOS_NODE ?? "{}") as ChaosNodeSettings;
  const send = (m: Message) => process.send?.(m);
  const line = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    process.stderr.write(`${new Date().toISOString()} ${level} ${message} ${fields ? JSON.stringify(fields) : ""}\n`);
  const logger: Logger = { debug: () => {}, info: line("info"), warn: line("warn"), error: line("error") };
  const client = new KubeClient(loadKubeconfigFile(settings.kubeconfig));
  const agent = agentProgram({ renewIntervalMs: settings.agentRenewIntervalMs, retryDelayMs: 200 });
  const program: Program = (ctx) => agent({ ...ctx, env: { ...ctx.env, AZP_TOKEN: settings.agentToken } });
  const node = new VirtualNode({
    client,
    name: settings.name,
    labels: settings.labels,
    heartbeatMs: 5000,
    retryMs: 500,
    agentProgram: program,
    logger,
  });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await node.stop().catch((err: unknown) => logger.error("node stop failed", { error: String(err) }));
      client.close();
      setTimeout(() => process.exit(0), 300);
    })();
    return stopping;
  };
  process.on("disconnect", () => void stop());
  process.on("SIGTERM", () => void stop());
  process.on("message", (m: { cmd?: string }) => {
    if (m.cmd === "stop") void stop();
  });
  try {
    await node.start();
  } catch (err) {
    send({ type: "error", message: err instanceof Error ? err.message : String(err) });
    await stop();
    return;
  }
  send({ type: "ready" });
}

if (process.env.AZP_CHAOS_NODE && process.send) await main();
