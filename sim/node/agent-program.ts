/**
 * The Azure Pipelines agent inside a simulated container, playing `run.sh --once` with a container entrypoint
 * that removes the agent on exit: it reads AZP_URL, AZP_POOL, AZP_AGENT_NAME and AZP_TOKEN from the
 * environment, registers (replacing a same-named registration), goes online, takes one job, runs it, and exits 0.
 * Its system capabilities are the container's environment variables, minus the ones the agent ignores, and then its
 * own, which win: `Agent.Name`, `Agent.Version`, `Agent.ComputerName` (the pod's host name), `Agent.OS` and
 * `Agent.OSArchitecture` of the node it runs on (its `kubernetes.io/os` and `kubernetes.io/arch` labels, named as
 * the real agent names them: `Linux`, `Windows_NT`; `X64`, `ARM64`, `ARM`, `X86`).
 *
 * Signals, as the real container sees them:
 * - SIGTERM while idle: the agent goes offline, deregisters and exits 0;
 * - SIGTERM while a job runs: the job keeps running to its end (the pod's grace period bounds it), then exit;
 * - SIGKILL: the process vanishes; no further request reaches the service (the job is then abandoned by the
 *   service when its lock expires, and the registration stays behind, offline).
 * A bad token or an unknown pool makes the container exit 1 with a log line that says why.
 */
import { SimulatedAgent } from "../azure-devops/agent.ts";
import type { Program } from "./programs.ts";

/** Variables the agent never reports as capabilities (credentials the entrypoint consumes). */
const alwaysIgnored = [
  "AZP_TOKEN",
  "AZP_TOKEN_FILE",
  "VSTS_AGENT_INPUT_TOKEN",
  "VSTS_AGENT_INPUT_PASSWORD",
  "VSO_AGENT_IGNORE",
];

/** Capabilities from an environment: names in VSO_AGENT_IGNORE and credentials dropped, long values skipped. */
export function capabilitiesFromEnv(env: Record<string, string>): Record<string, string> {
  const ignore = new Set(alwaysIgnored.map((n) => n.toUpperCase()));
  for (const name of (env.VSO_AGENT_IGNORE ?? "").split(",")) if (name.trim()) ignore.add(name.trim().toUpperCase());
  const caps: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (ignore.has(k.toUpperCase()) || v.length >= 1024) continue;
    caps[k] = v;
  }
  return caps;
}

/** `Agent.OS` as the real agent reports it, by Kubernetes OS name. */
export function agentOs(os: string): string {
  if (os === "windows") return "Windows_NT";
  if (os === "darwin") return "Darwin";
  return "Linux";
}

/** `Agent.OSArchitecture` as the real agent reports it (.NET's architecture names), by Kubernetes architecture. */
export function agentOsArchitecture(arch: string): string {
  const names: Record<string, string> = { amd64: "X64", arm64: "ARM64", arm: "ARM", "386": "X86" };
  return names[arch] ?? arch.toUpperCase();
}

export interface AgentProgramOptions {
  /** Version the agent reports. */
  version?: string;
  /** Lock renewal interval of a running job (ms); the real agent uses 60 s. */
  renewIntervalMs?: number;
  retryDelayMs?: number;
}

export function agentProgram(options: AgentProgramOptions = {}): Program {
  return (ctx) => {
    const { AZP_URL: url, AZP_POOL: pool, AZP_TOKEN: token } = ctx.env;
    const name = ctx.env.AZP_AGENT_NAME || ctx.podName;
    let busy = false;
    let jobDone: (() => void) | undefined;
    const idleAgain = () => (busy ? new Promise<void>((resolve) => (jobDone = resolve)) : Promise.resolve());

    // SIGKILL: every request fails at once, and nothing new is sent.
    const killed = new AbortController();
    ctx.kill.addEventListener("abort", () => killed.abort(new Error("killed")), { once: true });
    const guardedFetch: typeof fetch = (input, init) => {
      if (killed.signal.aborted) return Promise.reject(new Error("container killed"));
      const signal = init?.signal ? AbortSignal.any([init.signal, killed.signal]) : killed.signal;
      return fetch(input, { ...init, signal });
    };

    const exited = (async () => {
      const missing = ["AZP_URL", "AZP_POOL", "AZP_TOKEN"].filter((k) => !ctx.env[k]);
      if (missing.length > 0) {
        ctx.log(`error: ${missing.join(", ")} must be set`);
        return 1;
      }
      const agent = new SimulatedAgent({
        url: url as string,
        pool: pool as string,
        name,
        token: token as string,
        capabilities: capabilitiesFromEnv(ctx.env),
        os: agentOs(ctx.platform.os),
        osArchitecture: agentOsArchitecture(ctx.platform.arch),
        computerName: ctx.podName,
        replace: true,
        once: true,
        fetch: guardedFetch,
        log: ctx.log,
        ...(options.version ? { version: options.version } : {}),
        ...(options.renewIntervalMs ? { renewIntervalMs: options.renewIntervalMs } : {}),
        ...(options.retryDelayMs ? { retryDelayMs: options.retryDelayMs } : {}),
      });
      // The listener starts the job's worker as soon as it takes the job message, so the pod is busy from then on
      // (the preStop hook's `pgrep Agent.Worker` finds the worker while the job starts, too), not only once the
      // job's first lock renewal (the service's receive time) has been answered.
      agent.on("jobReceived", (job) => {
        busy = true;
        ctx.log(`received job ${job.jobName} (request ${job.requestId})`);
      });
      agent.on("jobStarted", (job) => {
        ctx.log(`running job ${job.jobName} (request ${job.requestId})`);
      });
      agent.on("jobFinished", (job) => {
        busy = false;
        ctx.log(`job ${job.jobName} finished: ${job.result}`);
        jobDone?.();
      });
      ctx.terminate.addEventListener(
        "abort",
        () => {
          if (killed.signal.aborted) return;
          if (busy) {
            ctx.log("SIGTERM received while a job runs: letting it finish");
            return;
          }
          ctx.log("SIGTERM received: going offline");
          void agent.stop();
        },
        { once: true },
      );
      const run = agent.run();
      const outcome = await Promise.race([
        run.then(
          () => "done" as const,
          (err: unknown) => err as Error,
        ),
        new Promise<"killed">((resolve) =>
          killed.signal.addEventListener("abort", () => resolve("killed"), { once: true }),
        ),
      ]);
      if (outcome === "killed") {
        // Ends the agent's loops; every request it still tries fails locally, so nothing reaches the service.
        void agent.stop();
        run.catch(() => {});
        return 137;
      }
      if (outcome instanceof Error) {
        ctx.log(`error: ${outcome.message}`);
        return 1;
      }
      ctx.log("agent exited");
      return 0;
    })();

    return {
      exited,
      // The preStop hook of agent templates waits while a job runs (the original's `pgrep Agent.Worker` loop).
      preStop: async (signal) => {
        await Promise.race([
          idleAgain(),
          new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true })),
        ]);
      },
    };
  };
}
