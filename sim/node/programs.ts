/**
 * What a simulated container "runs", chosen by image name (and, for agents, by environment): a sleeper that runs
 * until stopped, a program that exits with a given code after a delay, or the Azure Pipelines agent.
 */

export interface ProgramContext {
  namespace: string;
  podName: string;
  containerName: string;
  image: string;
  /** The container's `command` and `args` as the pod gives them (undefined: the image's entrypoint and cmd). */
  command?: string[] | undefined;
  args?: string[] | undefined;
  /** The container's resolved environment (secrets included: never log it). */
  env: Record<string, string>;
  /** The node's platform, as a process in the container sees it: its `kubernetes.io/os` and `kubernetes.io/arch`. */
  platform: { os: string; arch: string };
  /** The pod's termination grace period, for programs that wait on SIGTERM. */
  gracePeriodMs: number;
  /** Aborted when the container gets SIGTERM. */
  terminate: AbortSignal;
  /** Aborted when the container is killed (SIGKILL): the program must stop at once, without cleaning up. */
  kill: AbortSignal;
  log(line: string): void;
}

export interface RunningProgram {
  /** Resolves to the exit code. */
  exited: Promise<number>;
  /** A preStop hook: resolves when the hook is done (the kubelet bounds it by the grace period). */
  preStop?(signal: AbortSignal): Promise<void>;
}

export type Program = (ctx: ProgramContext) => RunningProgram;

const abortPromise = (signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });

/** Runs until SIGTERM (exit 143) or SIGKILL (exit 137). */
export const sleeper: Program = (ctx) => ({
  exited: (async () => {
    ctx.log("sleeping until stopped");
    await Promise.race([abortPromise(ctx.terminate), abortPromise(ctx.kill)]);
    ctx.log(ctx.kill.aborted ? "killed" : "received SIGTERM, exiting");
    return ctx.kill.aborted ? 137 : 143;
  })(),
});

/** Exits with `code` after `afterMs`; SIGTERM or SIGKILL end it earlier. */
export function exitAfter(code: number, afterMs: number): Program {
  return (ctx) => ({
    exited: (async () => {
      ctx.log(`will exit with code ${code} after ${afterMs}ms`);
      const timer = new Promise<"done">((resolve) => {
        const t = setTimeout(() => resolve("done"), afterMs);
        const clear = () => clearTimeout(t);
        ctx.terminate.addEventListener("abort", clear, { once: true });
        ctx.kill.addEventListener("abort", clear, { once: true });
      });
      const how = await Promise.race([
        timer,
        abortPromise(ctx.terminate).then(() => "term" as const),
        abortPromise(ctx.kill).then(() => "kill" as const),
      ]);
      if (how === "kill") return 137;
      if (how === "term") return 143;
      ctx.log(`exiting with code ${code}`);
      return code;
    })(),
  });
}

export interface ProgramRule {
  /** Matched against the image reference; the first matching rule wins. */
  image: RegExp;
  /** Builds the program; `match` is the regular expression's match of the image. */
  program: (match: RegExpExecArray, ctx: ProgramContext) => Program;
}

/**
 * Default rules:
 * - `hello-world` (any registry, tag or digest): exits 0 at once;
 * - `…/sim-exit:<code>` or `…/sim-exit:<code>-<ms>ms`: exits with <code> after <ms> (default 0 ms);
 * - anything else: the sleeper.
 * Agent detection is separate (see `isAgentContainer`), and unpullable images never get this far.
 */
export const defaultProgramRules: ProgramRule[] = [
  // Docker's hello-world prints a greeting and exits 0 (the operator's default terminator image).
  { image: /(?:^|\/)hello-world(?:[:@].*)?$/, program: () => exitAfter(0, 0) },
  {
    image: /(?:^|\/)sim-exit:(\d+)(?:-(\d+)ms)?$/,
    program: (m) => exitAfter(Number(m[1]), Number(m[2] ?? 0)),
  },
];

/** Default pull rule: images whose reference contains `does-not-exist` or ends with `:unpullable` fail to pull. */
export function defaultIsPullable(image: string): boolean {
  return !image.includes("does-not-exist") && !image.endsWith(":unpullable");
}

/** Default agent rule: the image names the Azure Pipelines agent, or the environment has AZP_URL and AZP_POOL. */
export function defaultIsAgentContainer(image: string, env: Record<string, string>): boolean {
  return /azure-pipelines-agent|azp-agent/.test(image) || (Boolean(env.AZP_URL) && Boolean(env.AZP_POOL));
}

const basename = (path: string) => path.slice(path.lastIndexOf("/") + 1);

/**
 * Whether a container's command is one the simulation knows to end at once with exit code 0, whatever the image:
 * a `command` replaces the image's entrypoint, as with a real runtime, so an agent image started with `true` runs
 * `true`, not the agent. Only a `command` counts (`args` alone keep the image's entrypoint). Recognised, with any
 * directory in front of the program: `true` (any arguments), `busybox true`, `sh -c` (or bash, ash, dash) with
 * `true`, `:` or `exit 0`, and `cp` (a copy: the simulation keeps no files, only the exit code).
 */
export function isNoOpCommand(command: readonly string[] | undefined, args: readonly string[] = []): boolean {
  if (!command || command.length === 0) return false;
  const argv = [...command, ...args];
  const program = basename(argv[0] ?? "");
  if (program === "true" || program === "cp") return true;
  if (program === "busybox") return argv[1] === "true" || argv[1] === "cp";
  if (["sh", "bash", "ash", "dash"].includes(program) && argv[1] === "-c")
    return ["true", ":", "exit 0"].includes((argv[2] ?? "").trim());
  return false;
}

export function chooseProgram(rules: readonly ProgramRule[], ctx: ProgramContext): Program {
  for (const rule of rules) {
    rule.image.lastIndex = 0;
    const m = rule.image.exec(ctx.image);
    if (m) return rule.program(m, ctx);
  }
  return sleeper;
}
