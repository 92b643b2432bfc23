/**
 * A simulated Azure Pipelines agent that speaks the agent protocol to the emulator: find the pool, register
 * (or replace a same-named registration), open a session (the agent is `online`), long-poll for messages, take
 * one job (`--once`) or several, "run" it for the duration the job message says, renew its lock while it runs,
 * finish it `succeeded` (or `canceled` when a cancellation arrives or the agent is stopped), delete the session
 * (`offline`) and deregister, retrying while the service says the agent is still busy.
 *
 * Time is injected (a Clock) and everything can be aborted, so the virtual node can run it inside a simulated
 * pod; the events (registered, online, jobReceived, jobStarted, jobFinished, offline, deregistered) let it follow.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import { type Clock, sleep, systemClock } from "./clock.ts";
import type { TaskResult } from "./engine.ts";

export interface SimulatedAgentOptions {
  /** Organization URL (AZP_URL), e.g. `http://127.0.0.1:PORT/sim-org`. */
  url: string;
  /** Pool name (AZP_POOL). */
  pool: string;
  /** Agent name (AZP_AGENT_NAME). */
  name: string;
  /** PAT (AZP_TOKEN), or a bearer token with `auth: "bearer"`. */
  token: string;
  auth?: "pat" | "bearer";
  /** Agent version reported; must satisfy the jobs' `Agent.Version -gtVersion` demand. Default 4.258.1. */
  version?: string;
  /**
   * Extra system capabilities (what the real agent derives from environment variables). The agent's own ones below
   * (`Agent.Name`, `Agent.OS`, ...) come after them and win, as in the real agent.
   */
  capabilities?: Readonly<Record<string, string>>;
  /** `Agent.OS`: `Linux` (default), `Windows_NT` or `Darwin`, as the real agent names its OS. */
  os?: string;
  /** `Agent.OSArchitecture`: `X64` (default), `ARM64`, `ARM` or `X86`. */
  osArchitecture?: string;
  /** `Agent.ComputerName`, the machine's (container's) host name. Default: this process's host name. */
  computerName?: string;
  userCapabilities?: Readonly<Record<string, string>>;
  /** Replace a registration with the same name (`--replace`). Default true. */
  replace?: boolean;
  /** Take exactly one job, then exit (`--once`). Default true. */
  once?: boolean;
  /** Deregister when done (what container entrypoints do with `config.sh remove`). Default true. */
  deregister?: boolean;
  clock?: Clock;
  fetch?: typeof fetch;
  log?: (line: string) => void;
  /** How often the lock of a running job is renewed (ms). Default 60 s, like the real agent. */
  renewIntervalMs?: number;
  /** Wait between retries (failed polls, deregistration while busy) (ms). Default 1000. */
  retryDelayMs?: number;
  /** Attempts to deregister while the service refuses. Default 30. */
  deregisterAttempts?: number;
  /** Timeout of ordinary requests (not the message long poll) (ms). Default 30 s. */
  requestTimeoutMs?: number;
}

export interface SimulatedJob {
  requestId: number;
  jobId: string;
  jobName: string;
  jobDisplayName: string;
  durationMs: number;
  startDelayMs: number;
  finishDelayMs: number;
  /** The result the job reports when it runs to its end. */
  plannedResult: TaskResult;
}

export interface FinishedJob extends SimulatedJob {
  result: TaskResult;
}

export interface AgentRunResult {
  jobs: FinishedJob[];
  /** True when the run ended because of stop() or the signal, not because the work was done. */
  stopped: boolean;
}

export interface SimulatedAgentEvents {
  registered: [{ agentId: number; poolId: number; replaced: boolean }];
  online: [{ sessionId: string }];
  jobReceived: [SimulatedJob];
  jobStarted: [SimulatedJob];
  jobFinished: [FinishedJob];
  offline: [];
  deregistered: [];
}

export type SimulatedAgentErrorKind =
  | "auth"
  | "forbidden"
  | "pool-not-found"
  | "agent-exists"
  | "session"
  | "service"
  | "network"
  /** The registration was deleted (or replaced) while the agent was connected. */
  | "agent-removed";

export class SimulatedAgentError extends Error {
  readonly kind: SimulatedAgentErrorKind;
  readonly status: number | undefined;
  readonly typeKey: string | undefined;
  constructor(
    kind: SimulatedAgentErrorKind,
    message: string,
    options: { status?: number; typeKey?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SimulatedAgentError";
    this.kind = kind;
    this.status = options.status;
    this.typeKey = options.typeKey;
  }
}

interface Answer {
  status: number;
  json: unknown;
}

interface Message {
  messageId: number;
  messageType: string;
  body: string;
}

const emptyGuid = "00000000-0000-0000-0000-000000000000";
const apiVersion = "7.1";

export class SimulatedAgent extends EventEmitter<SimulatedAgentEvents> {
  readonly options: SimulatedAgentOptions;
  #clock: Clock;
  #fetch: typeof fetch;
  #log: (line: string) => void;
  #stop = new AbortController();
  #running: Promise<AgentRunResult> | undefined;
  #poolId: number | undefined;
  #agentId: number | undefined;
  #sessionId: string | undefined;
  #lastMessageId: number | undefined;

  constructor(options: SimulatedAgentOptions) {
    super();
    this.options = options;
    this.#clock = options.clock ?? systemClock();
    this.#fetch = options.fetch ?? fetch;
    this.#log = options.log ?? (() => undefined);
  }

  get poolId(): number | undefined {
    return this.#poolId;
  }

  get agentId(): number | undefined {
    return this.#agentId;
  }

  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  get version(): string {
    return this.options.version ?? "4.258.1";
  }

  /**
   * The whole life of a `--once` agent: register, go online, take and run one job (or jobs until stopped
   * without `once`), go offline, wait the job's finish delay, deregister. Configuration errors (bad token,
   * unknown pool, name taken without `replace`) reject with a SimulatedAgentError. Calling it twice returns the
   * same run.
   */
  run(signal?: AbortSignal): Promise<AgentRunResult> {
    if (signal) {
      if (signal.aborted) this.#stop.abort(signal.reason);
      else signal.addEventListener("abort", () => this.#stop.abort(signal.reason), { once: true });
    }
    this.#running ??= this.#run();
    return this.#running;
  }

  /** Stops the agent: a running job finishes `canceled`, then the session ends and the agent deregisters. */
  async stop(): Promise<AgentRunResult | undefined> {
    this.#stop.abort(new Error("agent stopped"));
    return this.#running?.catch(() => undefined);
  }

  async #run(): Promise<AgentRunResult> {
    const stop = this.#stop.signal;
    const jobs: FinishedJob[] = [];
    let failure: unknown;
    try {
      await this.register(stop);
      await this.connect(stop);
      await this.#listen(stop, jobs);
    } catch (err) {
      if (!stop.aborted) failure = err;
    }
    if (this.#sessionId) await this.disconnect().catch((e: unknown) => this.#log(`could not delete the session: ${e}`));
    const finishDelay = jobs.at(-1)?.finishDelayMs ?? 0;
    if (!stop.aborted && finishDelay > 0) await sleep(this.#clock, finishDelay, stop).catch(() => undefined);
    if ((this.options.deregister ?? true) && this.#agentId !== undefined) {
      try {
        await this.deregister();
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure) throw failure;
    return { jobs, stopped: stop.aborted };
  }

  // ---- configuration (config.sh)

  async resolvePool(signal?: AbortSignal): Promise<number> {
    const answer = await this.#call("GET", "pools", { query: { poolName: this.options.pool }, signal });
    const found = (answer.json as { value?: Array<{ id: number; name: string }> }).value ?? [];
    if (found.length === 0) {
      throw new SimulatedAgentError(
        "pool-not-found",
        `agent pool '${this.options.pool}' does not exist in ${this.options.url}`,
      );
    }
    if (found.length > 1) {
      throw new SimulatedAgentError(
        "pool-not-found",
        `agent pool name '${this.options.pool}' is ambiguous in ${this.options.url}`,
      );
    }
    this.#poolId = (found[0] as { id: number }).id;
    return this.#poolId;
  }

  /** Registers the agent (replacing a same-named registration when `replace`), with a fresh public key. */
  async register(signal?: AbortSignal): Promise<{ agentId: number; poolId: number; replaced: boolean }> {
    const poolId = this.#poolId ?? (await this.resolvePool(signal));
    const body = this.#agentBody();
    const replace = this.options.replace ?? true;
    const findExisting = async () => {
      const answer = await this.#call("GET", `pools/${poolId}/agents`, {
        query: { agentName: this.options.name },
        signal,
      });
      return ((answer.json as { value?: Array<{ id: number }> }).value ?? [])[0];
    };
    let existing = await findExisting();
    let replaced = false;
    if (!existing) {
      try {
        const answer = await this.#call("POST", `pools/${poolId}/agents`, { body, signal });
        this.#agentId = (answer.json as { id: number }).id;
      } catch (err) {
        if (!(err instanceof SimulatedAgentError && err.status === 409)) throw err;
        existing = await findExisting();
        if (!existing) throw err;
      }
    }
    if (existing) {
      if (!replace) {
        throw new SimulatedAgentError(
          "agent-exists",
          `an agent named '${this.options.name}' already exists in pool '${this.options.pool}' (replace it with replace: true)`,
          { status: 409 },
        );
      }
      const answer = await this.#call("PUT", `pools/${poolId}/agents/${existing.id}`, {
        body: { ...body, id: existing.id },
        signal,
      });
      this.#agentId = (answer.json as { id: number }).id;
      replaced = true;
    }
    const info = { agentId: this.#agentId as number, poolId, replaced };
    this.#log(
      `registered agent ${this.options.name} (${info.agentId}) in pool ${this.options.pool}${replaced ? " (replaced)" : ""}`,
    );
    this.emit("registered", info);
    return info;
  }

  /** Removes the registration, retrying while the service refuses (it does while the agent holds a job). */
  async deregister(signal?: AbortSignal): Promise<void> {
    if (this.#agentId === undefined || this.#poolId === undefined) return;
    const attempts = this.options.deregisterAttempts ?? 30;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#call("DELETE", `pools/${this.#poolId}/agents/${this.#agentId}`, { signal });
        break;
      } catch (err) {
        const status = err instanceof SimulatedAgentError ? err.status : undefined;
        if (status === 404) break;
        const retriable = status === undefined || (status >= 400 && status !== 401 && status !== 403);
        if (!retriable || attempt >= attempts) throw err;
        this.#log(`deregistration refused (${(err as Error).message}); retrying`);
        await sleep(this.#clock, this.options.retryDelayMs ?? 1000, signal);
      }
    }
    this.#agentId = undefined;
    this.emit("deregistered");
  }

  get #osDescription(): string {
    return `${this.options.os ?? "Linux"} (simulated agent)`;
  }

  #agentBody(): Record<string, unknown> {
    // The environment's capabilities first, then the agent's own: the real agent's last provider, whose values win
    // (its capability dictionary ignores case, so an environment variable `agent.os` is replaced too).
    const own: Record<string, string> = {
      "Agent.Name": this.options.name,
      "Agent.OS": this.options.os ?? "Linux",
      "Agent.OSArchitecture": this.options.osArchitecture ?? "X64",
      "Agent.Version": this.version,
      "Agent.ComputerName": this.options.computerName ?? hostname(),
    };
    const ownNames = new Set(Object.keys(own).map((k) => k.toLowerCase()));
    const fromEnv = Object.entries(this.options.capabilities ?? {}).filter(([k]) => !ownNames.has(k.toLowerCase()));
    return {
      name: this.options.name,
      version: this.version,
      osDescription: this.#osDescription,
      enabled: true,
      status: "offline",
      provisioningState: "Provisioned",
      maxParallelism: 1,
      authorization: { publicKey: { exponent: "AQAB", modulus: randomBytes(256).toString("base64") } },
      systemCapabilities: { ...Object.fromEntries(fromEnv), ...own },
      userCapabilities: { ...(this.options.userCapabilities ?? {}) },
    };
  }

  // ---- the listener (run.sh)

  /** Opens a session: the agent becomes `online`. Retries a few times while an old session still exists. */
  async connect(signal?: AbortSignal): Promise<string> {
    if (this.#agentId === undefined || this.#poolId === undefined) throw new Error("register the agent first");
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await this.#call("POST", `pools/${this.#poolId}/sessions`, {
          body: {
            ownerName: hostname(),
            agent: {
              id: this.#agentId,
              name: this.options.name,
              version: this.version,
              osDescription: this.#osDescription,
            },
            useFipsEncryption: false,
          },
          signal,
        });
        this.#sessionId = (answer.json as { sessionId: string }).sessionId;
        break;
      } catch (err) {
        if (!(err instanceof SimulatedAgentError && err.status === 409) || attempt >= 5) throw err;
        await sleep(this.#clock, this.options.retryDelayMs ?? 1000, signal);
      }
    }
    this.#lastMessageId = undefined;
    this.emit("online", { sessionId: this.#sessionId });
    return this.#sessionId;
  }

  /** Deletes the session: the agent becomes `offline`. */
  async disconnect(): Promise<void> {
    const sessionId = this.#sessionId;
    if (!sessionId || this.#poolId === undefined) return;
    this.#sessionId = undefined;
    try {
      await this.#call("DELETE", `pools/${this.#poolId}/sessions/${encodeURIComponent(sessionId)}`, {});
    } catch (err) {
      if (!(err instanceof SimulatedAgentError && err.status === 404)) throw err;
    }
    this.emit("offline");
  }

  async #listen(stop: AbortSignal, finished: FinishedJob[]): Promise<void> {
    const once = this.options.once ?? true;
    let current: { job: SimulatedJob; cancel: AbortController; done: Promise<FinishedJob> } | undefined;
    while (!stop.aborted) {
      const pollAbort = new AbortController();
      const onStop = () => pollAbort.abort(stop.reason);
      stop.addEventListener("abort", onStop, { once: true });
      const poll = this.#getMessage(pollAbort.signal).then(
        (message) => ({ kind: "message" as const, message }),
        (error: unknown) => ({ kind: "error" as const, error }),
      );
      const waiters: Array<
        Promise<
          | { kind: "message"; message: Message | undefined }
          | { kind: "error"; error: unknown }
          | { kind: "done"; job: FinishedJob }
        >
      > = [poll];
      if (current) waiters.push(current.done.then((job) => ({ kind: "done" as const, job })));
      const first = await Promise.race(waiters);
      stop.removeEventListener("abort", onStop);
      if (first.kind === "done") {
        pollAbort.abort(new Error("job finished"));
        await poll;
        finished.push(first.job);
        current = undefined;
        if (once) return;
        continue;
      }
      if (first.kind === "error") {
        if (stop.aborted) break;
        const err = first.error;
        if (err instanceof SimulatedAgentError && err.typeKey === "TaskAgentSessionExpiredException") {
          this.#log("session expired; creating a new one");
          this.#sessionId = undefined;
          try {
            await this.connect(stop);
          } catch (e) {
            if (e instanceof SimulatedAgentError && (e.status === 404 || e.status === 409)) {
              if (e.status === 404) this.#agentId = undefined;
              throw new SimulatedAgentError(
                "agent-removed",
                `agent '${this.options.name}' lost its session and cannot reconnect: its registration was ${e.status === 404 ? "deleted" : "taken over by another agent"}`,
                { status: e.status, ...(e.typeKey ? { typeKey: e.typeKey } : {}), cause: e },
              );
            }
            throw e;
          }
          continue;
        }
        if (err instanceof SimulatedAgentError && (err.kind === "auth" || err.kind === "forbidden")) throw err;
        this.#log(`message poll failed: ${(err as Error).message}; retrying`);
        await sleep(this.#clock, this.options.retryDelayMs ?? 1000, stop).catch(() => undefined);
        continue;
      }
      const message = first.message;
      if (!message) continue;
      this.#lastMessageId = message.messageId;
      const type = message.messageType.toLowerCase();
      if (type === "pipelineagentjobrequest" && !current) {
        const job = parseJobMessage(message.body);
        const cancel = new AbortController();
        current = { job, cancel, done: this.#runJob(job, cancel.signal, stop) };
      } else if (type === "jobcancellation" && current) {
        const jobId = (JSON.parse(message.body) as { jobId?: string }).jobId;
        if (jobId === current.job.jobId) current.cancel.abort(new Error("job cancelled"));
      }
      await this.#deleteMessage(message.messageId).catch((e: unknown) => this.#log(`could not delete message: ${e}`));
    }
    if (current) finished.push(await current.done);
  }

  async #getMessage(signal: AbortSignal): Promise<Message | undefined> {
    const answer = await this.#call("GET", `pools/${this.#poolId}/messages`, {
      query: {
        sessionId: this.#sessionId ?? "",
        ...(this.#lastMessageId === undefined ? {} : { lastMessageId: String(this.#lastMessageId) }),
      },
      signal,
      longPoll: true,
    });
    if (answer.status !== 200 || answer.json === undefined) return undefined;
    return answer.json as Message;
  }

  async #deleteMessage(messageId: number): Promise<void> {
    await this.#call("DELETE", `pools/${this.#poolId}/messages/${messageId}`, {
      query: { sessionId: this.#sessionId ?? "" },
    });
  }

  /** Runs one job: start delay, first renewal (received), the work, then the finish call. */
  async #runJob(job: SimulatedJob, cancel: AbortSignal, stop: AbortSignal): Promise<FinishedJob> {
    const either = AbortSignal.any([cancel, stop]);
    this.emit("jobReceived", job);
    let result: TaskResult = job.plannedResult;
    let renewTimer: ReturnType<Clock["setTimeout"]> | undefined;
    try {
      await sleep(this.#clock, job.startDelayMs, either);
      await this.#renew(job.requestId);
      this.emit("jobStarted", job);
      const renewEvery = Math.max(1, this.options.renewIntervalMs ?? 60_000);
      const scheduleRenew = () => {
        renewTimer = this.#clock.setTimeout(() => {
          this.#renew(job.requestId).catch((e: unknown) => this.#log(`lock renewal failed: ${e}`));
          scheduleRenew();
        }, renewEvery);
      };
      scheduleRenew();
      await sleep(this.#clock, job.durationMs, either);
    } catch (err) {
      if (!either.aborted) this.#log(`job ${job.requestId} failed: ${(err as Error).message}`);
      result = either.aborted ? "canceled" : "failed";
    } finally {
      if (renewTimer) this.#clock.clearTimeout(renewTimer);
    }
    const finishedJob: FinishedJob = { ...job, result };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#call("PATCH", `pools/${this.#poolId}/jobrequests/${job.requestId}`, {
          query: { lockToken: emptyGuid },
          body: { requestId: job.requestId, finishTime: new Date(this.#clock.now()).toISOString(), result },
        });
        break;
      } catch (err) {
        if (attempt >= 5 || (err instanceof SimulatedAgentError && err.status !== undefined && err.status < 500)) {
          this.#log(`could not report job ${job.requestId} as ${result}: ${(err as Error).message}`);
          break;
        }
        await sleep(this.#clock, this.options.retryDelayMs ?? 1000).catch(() => undefined);
      }
    }
    this.emit("jobFinished", finishedJob);
    return finishedJob;
  }

  async #renew(requestId: number): Promise<void> {
    await this.#call("PATCH", `pools/${this.#poolId}/jobrequests/${requestId}`, {
      query: { lockToken: emptyGuid },
      body: { requestId },
    });
  }

  // ---- HTTP

  async #call(
    method: string,
    path: string,
    options: { query?: Record<string, string>; body?: unknown; signal?: AbortSignal | undefined; longPoll?: boolean },
  ): Promise<Answer> {
    const url = new URL(`${this.options.url.replace(/\/+$/, "")}/_apis/distributedtask/${path}`);
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
    url.searchParams.set("api-version", apiVersion);
    const auth =
      this.options.auth === "bearer"
        ? `Bearer ${this.options.token}`
        : `Basic ${Buffer.from(`:${this.options.token}`).toString("base64")}`;
    const signals = [...(options.signal ? [options.signal] : [])];
    if (!options.longPoll) signals.push(AbortSignal.timeout(this.options.requestTimeoutMs ?? 30_000));
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers: {
          Authorization: auth,
          Accept: "application/json",
          ...(options.body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.any(signals),
      });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      throw new SimulatedAgentError("network", `${method} ${url.pathname} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const text = await response.text();
    const contentType = response.headers.get("content-type") ?? "";
    if (response.status === 203 || (response.ok && text !== "" && !contentType.includes("json"))) {
      throw new SimulatedAgentError(
        "auth",
        `authentication failed: ${this.options.url} answered ${method} ${url.pathname} with a sign-in page (HTTP ${response.status}); the token is not valid`,
        { status: response.status },
      );
    }
    if (response.status === 401) {
      throw new SimulatedAgentError(
        "auth",
        `authentication failed: ${this.options.url} rejected the token (HTTP 401); check that the PAT is valid and not expired`,
        { status: 401 },
      );
    }
    let json: unknown;
    if (text !== "" && contentType.includes("json")) {
      try {
        json = JSON.parse(text);
      } catch {
        throw new SimulatedAgentError("service", `${method} ${url.pathname}: unreadable JSON answer`, {
          status: response.status,
        });
      }
    }
    if (!response.ok) {
      const error = (json ?? {}) as { message?: string; typeKey?: string };
      const kind: SimulatedAgentErrorKind = response.status === 403 ? "forbidden" : "service";
      throw new SimulatedAgentError(
        kind,
        `${method} ${url.pathname} failed with HTTP ${response.status}${error.message ? `: ${error.message}` : ""}`,
        { status: response.status, ...(error.typeKey ? { typeKey: error.typeKey } : {}) },
      );
    }
    return { status: response.status, json };
  }
}

function variable(variables: Record<string, { value?: string }> | undefined, name: string): string | undefined {
  if (!variables) return undefined;
  const key = Object.keys(variables).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : variables[key]?.value;
}

/** Reads what the simulated agent needs from a `PipelineAgentJobRequest` message body. */
export function parseJobMessage(body: string): SimulatedJob {
  const m = JSON.parse(body) as {
    requestId: number;
    jobId: string;
    jobName?: string;
    jobDisplayName?: string;
    variables?: Record<string, { value?: string }>;
  };
  const ms = (name: string) => {
    const n = Number(variable(m.variables, name) ?? 0);
    return Number.isFinite(n) && n >= 0 ? n : 0;
  };
  const planned = (variable(m.variables, "sim.result") ?? "succeeded") as TaskResult;
  return {
    requestId: m.requestId,
    jobId: m.jobId,
    jobName: m.jobName ?? "__default",
    jobDisplayName: m.jobDisplayName ?? m.jobName ?? "Job",
    durationMs: ms("sim.durationMs"),
    startDelayMs: ms("sim.startDelayMs"),
    finishDelayMs: ms("sim.finishDelayMs"),
    plannedResult: planned,
  };
}
