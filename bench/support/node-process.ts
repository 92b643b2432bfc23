/**
 * The virtual node of a benchmark, in a process of its own (as a kubelet is), so that its memory and its event
 * loop are measured apart from the load generator. Started by `startNodeProcess()` (node.ts) with its settings in
 * the AZP_BENCH_NODE environment variable (JSON); it talks to the parent over the IPC channel:
 *
 * - child → parent: `{ type: "ready" }`, `{ type: "phase", ... }` (answer to `phase-end`), `{ type: "stopped" }`;
 * - parent → child: `{ cmd: "phase-start" }` (resets the event-loop histogram and the memory peaks),
 *   `{ cmd: "phase-end" }`, `{ cmd: "stop" }`.
 *
 * It stops (and deletes its Node) when told to, and also when the parent goes away.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { agentProgram } from "../../sim/node/agent-program.ts";
import { VirtualNode } from "../../sim/node/index.ts";
import type { Program } from "../../sim/node/programs.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { loadKubeconfigFile } from "../../src/kube/kubeconfig.ts";
import type { Logger } from "../../src/runtime/logger.ts";

export interface NodeProcessSettings {
  kubeconfig: string;
  name: string;
  labels: Record<string, string>;
  heartbeatMs: number;
  retryMs: number;
  /** Agents in this node's pods use this token instead of AZP_TOKEN (so their requests have an identity apart). */
  agentToken?: string;
  agentRenewIntervalMs?: number;
}

export interface PhaseStats {
  type: "phase";
  /** Event-loop delay of the node process during the phase (ms beyond the 10 ms sampling interval). */
  eventLoopDelay: { mean: number; p99: number; max: number };
  /**
   * Resident set size and V8 heap in use (MiB): the peak during the phase (sampled every 250 ms) and at its end
   * after a full garbage collection (what stays: a leak shows as growth from phase to phase).
   */
  rssMiB: { peak: number; afterGc: number };
  heapUsedMiB: { peak: number; afterGc: number };
  /** Pods the node was running at the end of the phase. */
  pods: number;
}

export type ChildMessage = { type: "ready" } | PhaseStats | { type: "stopped" } | { type: "error"; message: string };
export type ParentMessage = { cmd: "phase-start" } | { cmd: "phase-end" } | { cmd: "stop" };

const MiB = 2 ** 20;

async function main(): Promise<void> {
  const settings = JSON.parse(process.env.AZP_BENCH_NODE ?? "{}") as NodeProcessSettings;
  const send = (m: ChildMessage) => process.send?.(m);
  const stderr = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    process.stderr.write(`${new Date().toISOString()} ${level} ${message} ${fields ? JSON.stringify(fields) : ""}\n`);
  const logger: Logger = { debug: () => {}, info: () => {}, warn: stderr("warn"), error: stderr("error") };
  const client = new KubeClient(loadKubeconfigFile(settings.kubeconfig));
  const agent = agentProgram({
    ...(settings.agentRenewIntervalMs ? { renewIntervalMs: settings.agentRenewIntervalMs } : {}),
    retryDelayMs: 200,
  });
  const token = settings.agentToken;
  const program: Program = token ? (ctx) => agent({ ...ctx, env: { ...ctx.env, AZP_TOKEN: token } }) : agent;
  const node = new VirtualNode({
    client,
    name: settings.name,
    labels: settings.labels,
    heartbeatMs: settings.heartbeatMs,
    retryMs: settings.retryMs,
    storageClasses: [],
    agentProgram: program,
    logger,
  });

  const resolutionMs = 10;
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  // The histogram records the time between its timer's ticks: the sampling interval plus the delay.
  const delay = (ns: number) => Math.max(0, ns / 1e6 - resolutionMs);
  histogram.enable();
  let rssPeak = 0;
  let heapPeak = 0;
  const sample = () => {
    const m = process.memoryUsage();
    rssPeak = Math.max(rssPeak, m.rss);
    heapPeak = Math.max(heapPeak, m.heapUsed);
  };
  const sampler = setInterval(sample, 250);

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      clearInterval(sampler);
      histogram.disable();
      await node.stop().catch((err: unknown) => logger.error("node stop failed", { error: String(err) }));
      client.close();
      send({ type: "stopped" });
      // Exit even if something (a socket, a timer of a container program) would keep the loop alive.
      setTimeout(() => process.exit(0), 300);
    })();
    return stopping;
  };
  process.on("disconnect", () => void stop());
  process.on("SIGTERM", () => void stop());
  process.on("message", (m: ParentMessage) => {
    if (m.cmd === "phase-start") {
      histogram.reset();
      rssPeak = 0;
      heapPeak = 0;
      sample();
    } else if (m.cmd === "phase-end") {
      sample();
      const eventLoopDelay = {
        mean: delay(histogram.mean),
        p99: delay(histogram.percentile(99)),
        max: delay(histogram.max),
      };
      globalThis.gc?.();
      const mem = process.memoryUsage();
      send({
        type: "phase",
        eventLoopDelay,
        rssMiB: { peak: rssPeak / MiB, afterGc: mem.rss / MiB },
        heapUsedMiB: { peak: heapPeak / MiB, afterGc: mem.heapUsed / MiB },
        pods: node.pods().length,
      });
    } else if (m.cmd === "stop") {
      void stop();
    }
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

await main();
