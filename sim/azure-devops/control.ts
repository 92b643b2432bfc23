/**
 * The emulator's world and its typed control handle: the engine, the credentials, the rate limiter, the fault
 * rules and the request log, plus what tests, benchmarks and the demo do with them (create pools and PATs, queue
 * and cancel jobs, wait for a job to reach a state, read the request log, switch faults, reset). The HTTP control
 * API under `/_sim/` is a thin layer over this class.
 */
import { EventEmitter } from "node:events";
import { type BearerTokenInfo, type BearerTokenStore, type PatConfig, PatStore } from "./auth.ts";
import type { Clock } from "./clock.ts";
import { AzureDevOpsEngine, type EngineOptions, type JobRecord, type QueueJobInput } from "./engine.ts";
import { type EntraIdConfig, EntraIdDirectory } from "./entra.ts";
import { argumentInvalid, poolNotFound } from "./errors.ts";
import { type FaultRule, validateFaultRule } from "./faults.ts";
import { type HookSender, ServiceHooks } from "./hook-delivery.ts";
import type { HookDeliverySettings } from "./hooks.ts";
import { defaultRateLimitConfig, type RateLimitConfig, RateLimiter } from "./ratelimit.ts";
import { type SimAgentView, type SimJobView, simAgentView, simJobView } from "./views.ts";
import { type WaitOptions, waitUntil } from "./wait.ts";

export interface RequestLogEntry {
  /** Increasing number; `requests({ since })` returns entries after it. */
  seq: number;
  time: string;
  method: string;
  /** Path without the query. */
  path: string;
  /** Path with the query. */
  url: string;
  /** Caller identity, when authenticated. */
  identity?: string;
  scheme?: "basic" | "bearer";
  /** HTTP status sent; 0 when the connection was dropped or the client went away first. */
  status: number;
  durationMs: number;
  /** `typeKey` of an error answer. */
  error?: string;
  /** What went wrong in more words than the client got (binding errors, exceptions). */
  detail?: string;
  fault?: "error" | "dropped" | "latency";
  rateLimit?: "delayed" | "blocked";
}

export interface EmulatorSettings {
  organization: string;
  pools: readonly string[];
  pats: readonly PatConfig[];
  bearerTokens: ReadonlyArray<{ token: string } & BearerTokenInfo>;
  engine: Omit<EngineOptions, "clock" | "organizationUrl">;
  rateLimit: Partial<RateLimitConfig>;
  requestLogLimit: number;
  /** Microsoft Entra ID: tenants, service principals, federated issuers, token lifetime. */
  entraId?: EntraIdConfig;
  /** Service hook delivery settings at start and after reset (delay, injected failures, timeout). */
  serviceHooks?: Partial<HookDeliverySettings>;
}

export interface QueueJobRequest extends Omit<QueueJobInput, "poolId"> {
  /** Pool name (case-insensitive); or give `poolId`. */
  pool?: string;
  poolId?: number;
}

export interface JobFilter {
  pool?: string;
  poolId?: number;
  state?: SimJobView["state"];
}

export interface ControlEvents {
  job: [SimJobView];
  agent: [SimAgentView];
  request: [RequestLogEntry];
  reset: [];
}

export class EmulatorControl extends EventEmitter<ControlEvents> {
  readonly clock: Clock;
  readonly pats = new PatStore();
  readonly bearerTokens: BearerTokenStore;
  readonly rateLimiter: RateLimiter;
  /** The Entra ID side: service principals and the token endpoint; its tokens land in `bearerTokens`. */
  readonly entra: EntraIdDirectory;
  /** Service hooks: subscriptions (made through the REST API) and their deliveries. */
  readonly hooks: ServiceHooks;
  #settings: EmulatorSettings;
  #organizationUrl: () => string;
  #engine: AzureDevOpsEngine;
  #faults: FaultRule[] = [];
  #log: RequestLogEntry[] = [];
  #seq = 0;

  constructor(
    settings: EmulatorSettings,
    clock: Clock,
    bearerTokens: BearerTokenStore,
    organizationUrl: () => string,
    options: { random?: () => number; sendHook?: HookSender } = {},
  ) {
    super();
    this.setMaxListeners(0);
    this.#settings = settings;
    this.clock = clock;
    this.bearerTokens = bearerTokens;
    this.#organizationUrl = organizationUrl;
    this.rateLimiter = new RateLimiter(settings.rateLimit);
    this.entra = new EntraIdDirectory(settings.entraId ?? {}, clock, bearerTokens);
    this.hooks = new ServiceHooks({
      clock,
      organization: settings.organization,
      organizationUrl,
      ...(options.random ? { random: options.random } : {}),
      ...(settings.serviceHooks ? { settings: settings.serviceHooks } : {}),
      ...(options.sendHook ? { send: options.sendHook } : {}),
    });
    this.#engine = this.#newEngine();
    this.#seed();
  }

  get organization(): string {
    return this.#settings.organization;
  }

  get engine(): AzureDevOpsEngine {
    return this.#engine;
  }

  #newEngine(): AzureDevOpsEngine {
    const engine = new AzureDevOpsEngine({
      ...this.#settings.engine,
      clock: this.clock,
      organizationUrl: this.#organizationUrl,
    });
    engine.on("job", (job) => {
      if (this.#engine !== engine) return;
      this.hooks.onJob(job);
      this.emit("job", simJobView(job, engine));
    });
    engine.on("agent", (agent) => {
      if (this.#engine === engine && engine.agentById(agent.id)) this.emit("agent", simAgentView(agent, engine));
    });
    return engine;
  }

  #seed(): void {
    for (const name of this.#settings.pools) this.#engine.createPool({ name });
    for (const pat of this.#settings.pats) this.pats.add(pat);
    for (const { token, ...info } of this.#settings.bearerTokens) this.bearerTokens.add(token, info);
  }

  /**
   * Back to the configured start: a new engine with only the configured pools (IDs start over), only the
   * configured PATs and bearer tokens, only the configured Entra principals (tokens issued so far are gone), no
   * faults, rate limiting as configured, an empty request log, no service hook subscriptions or deliveries.
   */
  reset(): void {
    this.#engine.close();
    this.#engine = this.#newEngine();
    this.pats.clear();
    this.bearerTokens.clear();
    this.entra.reset();
    this.hooks.reset();
    this.rateLimiter.reset();
    this.rateLimiter.configure({ enabled: false, ...this.#settings.rateLimit });
    this.#faults = [];
    this.#log = [];
    this.#seed();
    this.emit("reset");
  }

  close(): void {
    this.#engine.close();
    this.hooks.close();
  }

  // ---- pools

  createPool(name: string): { id: number; name: string } {
    const pool = this.#engine.createPool({ name });
    return { id: pool.id, name: pool.name };
  }

  listPools(): Array<{ id: number; name: string; size: number }> {
    return this.#engine.listPools().map((p) => ({ id: p.id, name: p.name, size: this.#engine.poolSize(p.id) }));
  }

  /** Resolves a pool by ID or name; throws the service's 404 when there is none. */
  poolId(ref: { pool?: string; poolId?: number }): number {
    if (ref.poolId !== undefined) return this.#engine.getPool(ref.poolId).id;
    if (ref.pool !== undefined) {
      const pool = this.#engine.findPoolByName(ref.pool);
      if (!pool) throw poolNotFound(ref.pool);
      return pool.id;
    }
    const pools = this.#engine.listPools();
    if (pools.length === 1 && pools[0]) return pools[0].id;
    throw argumentInvalid("give the pool (name) or poolId");
  }

  // ---- credentials

  addPat(pat: PatConfig): Required<PatConfig> {
    return this.pats.add(pat);
  }

  removePat(token: string): boolean {
    return this.pats.remove(token);
  }

  /** Accepts `token` as `Authorization: Bearer <token>` until `info.expiresOn` (epoch ms) if given. */
  addBearerToken(token: string, info: BearerTokenInfo): void {
    this.bearerTokens.add(token, info);
  }

  removeBearerToken(token: string): boolean {
    return this.bearerTokens.remove(token);
  }

  // ---- jobs

  queueJob(request: QueueJobRequest): SimJobView {
    const { pool, poolId, ...rest } = request;
    const job = this.#engine.queueJob({ ...rest, poolId: this.poolId({ pool, poolId }) });
    return simJobView(job, this.#engine);
  }

  cancelJob(requestId: number): SimJobView {
    return simJobView(this.#engine.cancelJob(requestId), this.#engine);
  }

  getJob(requestId: number): SimJobView | undefined {
    const job = this.#engine.getJob(requestId);
    return job ? simJobView(job, this.#engine) : undefined;
  }

  listJobs(filter: JobFilter = {}): SimJobView[] {
    const poolId = filter.pool !== undefined || filter.poolId !== undefined ? this.poolId(filter) : undefined;
    return this.#engine
      .allJobs()
      .filter((j: JobRecord) => poolId === undefined || j.poolId === poolId)
      .map((j) => simJobView(j, this.#engine))
      .filter((j) => filter.state === undefined || j.state === filter.state);
  }

  /**
   * Resolves with the job's view once `predicate` holds (checked now and on every change of the job); rejects
   * after `timeoutMs` (wall clock, default 30 s) or when `signal` aborts.
   */
  waitForJob(
    requestId: number,
    predicate: (job: SimJobView) => boolean,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<SimJobView> {
    return this.#waitFor(() => this.getJob(requestId), predicate, `job ${requestId}`, options);
  }

  // ---- agents

  listAgents(filter: { pool?: string; poolId?: number } = {}): SimAgentView[] {
    const poolId = filter.pool !== undefined || filter.poolId !== undefined ? this.poolId(filter) : undefined;
    return this.#engine
      .allAgents()
      .filter((a) => poolId === undefined || a.poolId === poolId)
      .map((a) => simAgentView(a, this.#engine));
  }

  /** Like waitForJob, for the first agent of that name (any pool). */
  waitForAgent(
    name: string,
    predicate: (agent: SimAgentView) => boolean,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<SimAgentView> {
    const find = () => this.listAgents().find((a) => a.name.toLowerCase() === name.toLowerCase());
    return this.#waitFor(find, predicate, `agent ${name}`, options);
  }

  /** Re-checks `current()` against `predicate` now and after every job or agent change. */
  #waitFor<V>(
    current: () => V | undefined,
    predicate: (v: V) => boolean,
    what: string,
    options: WaitOptions,
  ): Promise<V> {
    const check = () => {
      const v = current();
      return v !== undefined && predicate(v) ? v : undefined;
    };
    const subscribe = (onChange: () => void) => {
      this.on("job", onChange);
      this.on("agent", onChange);
      return () => {
        this.off("job", onChange);
        this.off("agent", onChange);
      };
    };
    return waitUntil(check, subscribe, () => `${what}; last seen: ${JSON.stringify(current())}`, options);
  }

  // ---- request log

  /** Appends an entry (the HTTP layer calls this once per request). */
  recordRequest(entry: Omit<RequestLogEntry, "seq">): RequestLogEntry {
    const full: RequestLogEntry = { seq: ++this.#seq, ...entry };
    this.#log.push(full);
    const excess = this.#log.length - this.#settings.requestLogLimit;
    if (excess > 0) this.#log.splice(0, excess);
    this.emit("request", full);
    return full;
  }

  requests(filter: { since?: number; path?: string } = {}): RequestLogEntry[] {
    return this.#log.filter(
      (e) =>
        (filter.since === undefined || e.seq > filter.since) &&
        (filter.path === undefined || e.path.includes(filter.path)),
    );
  }

  clearRequests(): void {
    this.#log = [];
  }

  // ---- faults and rate limiting

  faults(): FaultRule[] {
    return this.#faults.map((r) => ({ ...r }));
  }

  setFaults(rules: readonly FaultRule[]): FaultRule[] {
    for (const rule of rules) {
      const problem = validateFaultRule(rule);
      if (problem) throw argumentInvalid(`bad fault rule ${JSON.stringify(rule)}: ${problem}`);
    }
    this.#faults = rules.map((r) => ({ ...r }));
    return this.faults();
  }

  addFault(rule: FaultRule): FaultRule[] {
    return this.setFaults([...this.#faults, rule]);
  }

  clearFaults(): void {
    this.#faults = [];
  }

  rateLimit(): RateLimitConfig {
    return this.rateLimiter.config;
  }

  /** Changes rate limiting (e.g. `{ enabled: true, budget: 20 }`); usage so far is kept unless `resetUsage`. */
  setRateLimit(config: Partial<RateLimitConfig> & { resetUsage?: boolean }): RateLimitConfig {
    const { resetUsage, ...rest } = config;
    for (const [k, v] of Object.entries(rest)) {
      if (!(k in defaultRateLimitConfig)) throw argumentInvalid(`unknown rate-limit setting ${k}`);
      if (
        k === "enabled"
          ? typeof v !== "boolean"
          : k === "resource"
            ? typeof v !== "string"
            : typeof v !== "number" || v < 0
      ) {
        throw argumentInvalid(`bad rate-limit setting ${k}: ${JSON.stringify(v)}`);
      }
    }
    if (resetUsage) this.rateLimiter.reset();
    return this.rateLimiter.configure(rest);
  }
}
