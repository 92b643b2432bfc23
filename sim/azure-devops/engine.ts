/**
 * The platform behaviour of Azure DevOps agent pools, without HTTP: pools, agents, job requests, agent sessions
 * and their message queues, assignment of queued jobs to idle online agents, cancellation, lock and session
 * expiry. Time comes from an injected Clock; every mutation is synchronous, so a test can drive it step by step.
 *
 * Job request states, as a client reads them: queued (no assignTime, no result), assigned (assignTime and
 * reservedAgent, no receiveTime), running (receiveTime, no result), finished (result and finishTime).
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Clock, TimerHandle } from "./clock.ts";
import {
  type CapabilityIndex,
  capabilityIndex,
  type Demand,
  DemandParseError,
  parseDemands,
  satisfiesAll,
} from "./demands.ts";
import {
  agentBusy,
  agentExists,
  agentNotAuthorized,
  agentNotFound,
  argumentInvalid,
  argumentNull,
  jobLockExpired,
  jobRequestNotFound,
  poolNotFound,
  sessionConflict,
  sessionExpired,
} from "./errors.ts";

export type TaskResult = "succeeded" | "succeededWithIssues" | "failed" | "canceled" | "skipped" | "abandoned";
export const taskResults: readonly TaskResult[] = [
  "succeeded",
  "succeededWithIssues",
  "failed",
  "canceled",
  "skipped",
  "abandoned",
];

export type JobState = "queued" | "assigned" | "running" | "finished";

export interface PoolRecord {
  id: number;
  name: string;
  scope: string;
  createdOn: number;
  poolType: "automation" | "deployment";
  isHosted: boolean;
}

export interface PublicKey {
  exponent: string;
  modulus: string;
}

export interface AgentAuthorization {
  authorizationUrl?: string;
  clientId: string;
  publicKey?: PublicKey;
}

export interface AgentRecord {
  id: number;
  poolId: number;
  name: string;
  version: string | undefined;
  osDescription: string | undefined;
  enabled: boolean;
  provisioningState: string;
  maxParallelism: number;
  createdOn: number;
  statusChangedOn: number;
  systemCapabilities: Record<string, string>;
  userCapabilities: Record<string, string>;
  authorization: AgentAuthorization | undefined;
  accessPoint: string | undefined;
  /** Set while the agent's listener holds a session: the agent is `online`. */
  sessionId: string | undefined;
  /** When the agent last became idle (online, or finished a job); the longest idle agent gets the next job. */
  idleSince: number;
  lastCompletedRequestId: number | undefined;
}

export interface JobRecord {
  requestId: number;
  poolId: number;
  demands: string[];
  parsedDemands: Demand[];
  queueTime: number;
  assignTime: number | undefined;
  receiveTime: number | undefined;
  finishTime: number | undefined;
  lockedUntil: number | undefined;
  result: TaskResult | undefined;
  reservedAgentId: number | undefined;
  /** The reserved agent as it was at assignment, for when it has been deleted since. */
  reservedAgentSnapshot: AgentRecord | undefined;
  statusMessage: string | undefined;
  planType: string;
  planId: string;
  planGroup: string;
  jobId: string;
  jobName: string;
  jobDisplayName: string;
  orchestrationId: string;
  scopeId: string;
  hostId: string;
  definition: { id: number; name: string };
  owner: { id: number; name: string };
  priority: number;
  /** What the simulated job does once an agent runs it. */
  durationMs: number;
  startDelayMs: number;
  finishDelayMs: number;
  /** The result the simulated agent reports when the job runs to its end. */
  outcome: TaskResult;
  /** Cancellation was asked for while an agent held the job; it finishes when the agent reports back. */
  cancelRequested: boolean;
  /** The job message sent to the reserved agent, while not yet delivered (undefined once fetched). */
  pendingMessageId: number | undefined;
  /** Set once the agent has fetched the job message. */
  delivered: boolean;
}

export interface MessageRecord {
  messageId: number;
  messageType: string;
  body: string;
  requestId?: number;
}

export interface SessionRecord {
  sessionId: string;
  poolId: number;
  agentId: number;
  ownerName: string;
  createdOn: number;
  messages: MessageRecord[];
  waiters: Set<() => void>;
  activePolls: number;
  idleTimer: TimerHandle | undefined;
}

export interface AgentInput {
  name?: string;
  version?: string;
  osDescription?: string;
  enabled?: boolean;
  provisioningState?: string;
  maxParallelism?: number;
  systemCapabilities?: Record<string, string>;
  userCapabilities?: Record<string, string>;
  authorization?: { authorizationUrl?: string; clientId?: string; publicKey?: PublicKey };
  accessPoint?: string;
}

export interface QueueJobInput {
  poolId: number;
  /** Demand strings, e.g. `["kubectl", "Agent.OS -equals Linux"]`. */
  demands?: readonly string[];
  /** How long the agent "runs" the job (ms). Default 1000. */
  durationMs?: number;
  /** After receiving the job message, the agent waits this long before it starts the job (ms). */
  startDelayMs?: number;
  /** After finishing the job, the agent goes offline and waits this long before it deregisters (ms). */
  finishDelayMs?: number;
  /** Result the agent reports when the job runs to its end. Default `succeeded`. */
  result?: TaskResult;
  jobName?: string;
  jobDisplayName?: string;
  planType?: string;
  definition?: { id?: number; name?: string };
  /** Overrides the engine's automatic `Agent.Version -gtVersion X` demand; null adds none. */
  agentVersionDemand?: string | null;
  priority?: number;
}

export interface JobRequestFilter {
  /** How many finished requests to include (most recent first); undefined = the engine's default. */
  completedRequestCount?: number;
  agentIds?: readonly number[];
}

export interface EngineOptions {
  clock: Clock;
  /** Used to build `authorization.authorizationUrl` of registered agents. */
  organizationUrl?: () => string;
  /** `Agent.Version -gtVersion X` added to every queued job; null for none. Default `2.182.1`. */
  agentVersionDemand?: string | null;
  /** How long an assignment's lock lasts without renewal (ms). Default 5 minutes. */
  lockDurationMs?: number;
  /** How long a session survives without a message poll (ms). Default 2 minutes. */
  sessionTimeoutMs?: number;
  /** How long the service waits for an agent to report a cancelled job before finishing it itself. Default 60 s. */
  cancelTimeoutMs?: number;
  /** Finished requests listed when a list asks for no `completedRequestCount`. Default 50. */
  defaultCompletedRequestCount?: number;
  /** Finished requests kept per pool. Default 1000. */
  finishedRetention?: number;
  /** Re-check queued jobs when agents change, failing those no registered agent satisfies any more. Default false. */
  failUnmatchableQueuedJobs?: boolean;
  newId?: () => string;
}

export interface EngineEvents {
  job: [JobRecord];
  agent: [AgentRecord];
  pool: [PoolRecord];
}

export const jobMessageType = "PipelineAgentJobRequest";
export const cancelMessageType = "JobCancellation";

export function jobState(job: JobRecord): JobState {
  if (job.result !== undefined) return "finished";
  if (job.receiveTime !== undefined) return "running";
  if (job.assignTime !== undefined) return "assigned";
  return "queued";
}

const minute = 60_000;

export class AzureDevOpsEngine extends EventEmitter<EngineEvents> {
  readonly clock: Clock;
  readonly options: Required<Omit<EngineOptions, "organizationUrl" | "clock" | "newId">>;
  #organizationUrl: () => string;
  #newId: () => string;
  #pools = new Map<number, PoolRecord>();
  #agents = new Map<number, AgentRecord>();
  #jobs = new Map<number, JobRecord>();
  #sessions = new Map<string, SessionRecord>();
  #lockTimers = new Map<number, TimerHandle>();
  #cancelTimers = new Map<number, TimerHandle>();
  #nextPoolId = 10;
  #nextAgentId = 100;
  #nextRequestId = 5000;
  /** Runs (the job request's `owner`, a build) are numbered apart from job requests, as on the service. */
  #nextRunId = 1;
  #nextMessageId = 1;
  #closed = false;
  #capabilityCache = new Map<number, CapabilityIndex>();

  constructor(options: EngineOptions) {
    super();
    this.clock = options.clock;
    this.#organizationUrl = options.organizationUrl ?? (() => "http://127.0.0.1/sim-org");
    this.#newId = options.newId ?? randomUUID;
    this.options = {
      agentVersionDemand: options.agentVersionDemand === undefined ? "2.182.1" : options.agentVersionDemand,
      lockDurationMs: options.lockDurationMs ?? 5 * minute,
      sessionTimeoutMs: options.sessionTimeoutMs ?? 2 * minute,
      cancelTimeoutMs: options.cancelTimeoutMs ?? minute,
      defaultCompletedRequestCount: options.defaultCompletedRequestCount ?? 50,
      finishedRetention: options.finishedRetention ?? 1000,
      failUnmatchableQueuedJobs: options.failUnmatchableQueuedJobs ?? false,
    };
  }

  // ---- pools

  createPool(input: { name: string; poolType?: "automation" | "deployment" }): PoolRecord {
    const name = input.name.trim();
    if (!name) throw argumentNull("pool.Name");
    if ([...this.#pools.values()].some((p) => p.name.toLowerCase() === name.toLowerCase())) {
      throw argumentInvalid(`An agent pool named ${name} already exists.`);
    }
    const pool: PoolRecord = {
      id: this.#nextPoolId++,
      name,
      scope: this.#newId(),
      createdOn: this.clock.now(),
      poolType: input.poolType ?? "automation",
      isHosted: false,
    };
    this.#pools.set(pool.id, pool);
    this.emit("pool", pool);
    return pool;
  }

  listPools(): PoolRecord[] {
    return [...this.#pools.values()].sort((a, b) => a.id - b.id);
  }

  getPool(poolId: number): PoolRecord {
    const pool = this.#pools.get(poolId);
    if (!pool) throw poolNotFound(poolId);
    return pool;
  }

  findPoolByName(name: string): PoolRecord | undefined {
    return [...this.#pools.values()].find((p) => p.name.toLowerCase() === name.toLowerCase());
  }

  // ---- agents

  listAgents(poolId: number, filter: { name?: string; demands?: readonly Demand[] } = {}): AgentRecord[] {
    this.getPool(poolId);
    return [...this.#agents.values()]
      .filter((a) => a.poolId === poolId)
      .filter((a) => filter.name === undefined || a.name.toLowerCase() === filter.name.toLowerCase())
      .filter((a) => !filter.demands || satisfiesAll(this.capabilities(a), filter.demands))
      .sort((a, b) => a.id - b.id);
  }

  /** The agent's capabilities (system + user), cached until the agent changes. */
  capabilities(agent: AgentRecord): CapabilityIndex {
    let index = this.#capabilityCache.get(agent.id);
    if (!index) {
      index = capabilityIndex(agent);
      this.#capabilityCache.set(agent.id, index);
    }
    return index;
  }

  poolSize(poolId: number): number {
    let n = 0;
    for (const a of this.#agents.values()) if (a.poolId === poolId) n++;
    return n;
  }

  agentById(agentId: number): AgentRecord | undefined {
    return this.#agents.get(agentId);
  }

  /** The agent reserved for a job: the live record, or the record as it was if the agent has been deleted. */
  reservedAgent(job: JobRecord): AgentRecord | undefined {
    if (job.reservedAgentId === undefined) return undefined;
    return this.#agents.get(job.reservedAgentId) ?? job.reservedAgentSnapshot;
  }

  allAgents(): AgentRecord[] {
    return [...this.#agents.values()].sort((a, b) => a.id - b.id);
  }

  getAgent(poolId: number, agentId: number): AgentRecord {
    this.getPool(poolId);
    const agent = this.#agents.get(agentId);
    if (!agent || agent.poolId !== poolId) throw agentNotFound(poolId, agentId);
    return agent;
  }

  registerAgent(poolId: number, input: AgentInput): AgentRecord {
    const pool = this.getPool(poolId);
    const name = input.name?.trim();
    if (!name) throw argumentNull("agent.Name");
    if (this.listAgents(poolId, { name }).length > 0) throw agentExists(name, pool.name);
    const now = this.clock.now();
    const agent: AgentRecord = {
      id: this.#nextAgentId++,
      poolId,
      name,
      version: input.version,
      osDescription: input.osDescription,
      enabled: input.enabled ?? true,
      provisioningState: input.provisioningState ?? "Provisioned",
      maxParallelism: input.maxParallelism ?? 1,
      createdOn: now,
      statusChangedOn: now,
      systemCapabilities: { ...(input.systemCapabilities ?? {}) },
      userCapabilities: { ...(input.userCapabilities ?? {}) },
      authorization: this.#authorization(input.authorization, undefined),
      accessPoint: input.accessPoint,
      sessionId: undefined,
      idleSince: now,
      lastCompletedRequestId: undefined,
    };
    this.#agents.set(agent.id, agent);
    this.emit("agent", agent);
    this.#agentsChanged(poolId);
    return agent;
  }

  /** PUT: the full agent, as `config --replace` sends it. A new public key ends the old listener's session. */
  replaceAgent(poolId: number, agentId: number, input: AgentInput): AgentRecord {
    const pool = this.getPool(poolId);
    const agent = this.getAgent(poolId, agentId);
    const name = input.name?.trim() || agent.name;
    const clash = this.listAgents(poolId, { name }).find((a) => a.id !== agentId);
    if (clash) throw agentExists(name, pool.name);
    const oldKey = agent.authorization?.publicKey?.modulus;
    agent.name = name;
    agent.version = input.version;
    agent.osDescription = input.osDescription;
    agent.enabled = input.enabled ?? true;
    agent.provisioningState = input.provisioningState ?? "Provisioned";
    agent.maxParallelism = input.maxParallelism ?? 1;
    agent.systemCapabilities = { ...(input.systemCapabilities ?? {}) };
    agent.userCapabilities = { ...(input.userCapabilities ?? {}) };
    agent.authorization = this.#authorization(input.authorization, agent.authorization);
    agent.accessPoint = input.accessPoint;
    this.#capabilityCache.delete(agent.id);
    if (agent.sessionId && agent.authorization?.publicKey?.modulus !== oldKey) this.#dropSession(agent.sessionId);
    this.emit("agent", agent);
    this.#agentsChanged(poolId);
    return agent;
  }

  /** PATCH: only the fields given. */
  updateAgent(poolId: number, agentId: number, input: AgentInput): AgentRecord {
    const pool = this.getPool(poolId);
    const agent = this.getAgent(poolId, agentId);
    if (input.name !== undefined) {
      const name = input.name.trim();
      if (!name) throw argumentNull("agent.Name");
      if (this.listAgents(poolId, { name }).some((a) => a.id !== agentId)) throw agentExists(name, pool.name);
      agent.name = name;
    }
    if (input.version !== undefined) agent.version = input.version;
    if (input.osDescription !== undefined) agent.osDescription = input.osDescription;
    if (input.enabled !== undefined) agent.enabled = input.enabled;
    if (input.provisioningState !== undefined) agent.provisioningState = input.provisioningState;
    if (input.maxParallelism !== undefined) agent.maxParallelism = input.maxParallelism;
    if (input.systemCapabilities !== undefined) agent.systemCapabilities = { ...input.systemCapabilities };
    if (input.userCapabilities !== undefined) agent.userCapabilities = { ...input.userCapabilities };
    if (input.authorization !== undefined)
      agent.authorization = this.#authorization(input.authorization, agent.authorization);
    if (input.accessPoint !== undefined) agent.accessPoint = input.accessPoint;
    this.#capabilityCache.delete(agent.id);
    this.emit("agent", agent);
    this.#agentsChanged(poolId);
    return agent;
  }

  setUserCapabilities(poolId: number, agentId: number, capabilities: Record<string, string>): AgentRecord {
    return this.updateAgent(poolId, agentId, { userCapabilities: capabilities });
  }

  /** Refused (400) while the agent holds a job request; otherwise removes it and ends its session. */
  deleteAgent(poolId: number, agentId: number): void {
    const agent = this.getAgent(poolId, agentId);
    const held = this.assignedRequest(agent);
    if (held) throw agentBusy(agent.name, held.requestId);
    if (agent.sessionId) this.#dropSession(agent.sessionId);
    this.#agents.delete(agentId);
    this.#capabilityCache.delete(agentId);
    this.emit("agent", agent);
    this.#agentsChanged(poolId);
  }

  /** The unfinished job request reserved for the agent, if any. */
  assignedRequest(agent: AgentRecord): JobRecord | undefined {
    for (const job of this.#jobs.values()) {
      if (job.reservedAgentId === agent.id && job.result === undefined) return job;
    }
    return undefined;
  }

  lastCompletedRequest(agent: AgentRecord): JobRecord | undefined {
    return agent.lastCompletedRequestId === undefined ? undefined : this.#jobs.get(agent.lastCompletedRequestId);
  }

  isOnline(agent: AgentRecord): boolean {
    return agent.sessionId !== undefined;
  }

  /** Registered agents of the job's pool whose capabilities satisfy its demands (offline and disabled included). */
  matchedAgents(job: JobRecord): AgentRecord[] {
    return [...this.#agents.values()]
      .filter((a) => a.poolId === job.poolId && satisfiesAll(this.capabilities(a), job.parsedDemands))
      .sort((a, b) => a.id - b.id);
  }

  #authorization(
    input: AgentInput["authorization"] | undefined,
    previous: AgentAuthorization | undefined,
  ): AgentAuthorization | undefined {
    if (!input) return previous;
    return {
      authorizationUrl: `${this.#organizationUrl()}/_apis/oauth2/token`,
      clientId: previous?.clientId ?? input.clientId ?? this.#newId(),
      ...(input.publicKey ? { publicKey: { ...input.publicKey } } : {}),
    };
  }

  // ---- job requests

  queueJob(input: QueueJobInput): JobRecord {
    const pool = this.getPool(input.poolId);
    const demands = [...(input.demands ?? [])].map((d) => d.trim());
    const versionDemand =
      input.agentVersionDemand === undefined ? this.options.agentVersionDemand : input.agentVersionDemand;
    if (versionDemand && !demands.some((d) => /^agent\.version\s+-gtversion\s/i.test(d))) {
      demands.push(`Agent.Version -gtVersion ${versionDemand}`);
    }
    let parsed: Demand[];
    try {
      parsed = parseDemands(demands);
    } catch (e) {
      if (e instanceof DemandParseError) throw argumentInvalid(e.message);
      throw e;
    }
    for (const [field, value] of [
      ["durationMs", input.durationMs],
      ["startDelayMs", input.startDelayMs],
      ["finishDelayMs", input.finishDelayMs],
    ] as const) {
      if (value !== undefined && (!Number.isFinite(value) || value < 0)) {
        throw argumentInvalid(`${field} must be a non-negative number`);
      }
    }
    const now = this.clock.now();
    const requestId = this.#nextRequestId++;
    const runId = this.#nextRunId++;
    const definitionId = input.definition?.id ?? 1;
    const job: JobRecord = {
      requestId,
      poolId: pool.id,
      demands,
      parsedDemands: parsed,
      queueTime: now,
      assignTime: undefined,
      receiveTime: undefined,
      finishTime: undefined,
      lockedUntil: undefined,
      result: undefined,
      reservedAgentId: undefined,
      reservedAgentSnapshot: undefined,
      statusMessage: undefined,
      planType: input.planType ?? "Build",
      planId: this.#newId(),
      planGroup: `Build:${pool.scope}:${requestId}`,
      jobId: this.#newId(),
      jobName: input.jobName ?? "__default",
      jobDisplayName: input.jobDisplayName ?? input.jobName ?? "Job",
      orchestrationId: "",
      scopeId: pool.scope,
      hostId: this.#newId(),
      definition: { id: definitionId, name: input.definition?.name ?? "sim-pipeline" },
      owner: { id: runId, name: `${runId}` },
      priority: input.priority ?? 0,
      durationMs: input.durationMs ?? 1000,
      startDelayMs: input.startDelayMs ?? 0,
      finishDelayMs: input.finishDelayMs ?? 0,
      outcome: input.result ?? "succeeded",
      cancelRequested: false,
      pendingMessageId: undefined,
      delivered: false,
    };
    job.orchestrationId = `${job.planId}.${job.jobId}.__default`;
    this.#jobs.set(requestId, job);
    this.emit("job", job);
    if (!this.#hasEligibleAgent(job)) {
      this.#finish(job, "failed", this.#noAgentMessage(job));
    } else {
      this.#schedule(pool.id);
    }
    return job;
  }

  getJob(requestId: number): JobRecord | undefined {
    return this.#jobs.get(requestId);
  }

  getJobRequest(poolId: number, requestId: number): JobRecord {
    this.getPool(poolId);
    const job = this.#jobs.get(requestId);
    if (!job || job.poolId !== poolId) throw jobRequestNotFound(requestId);
    return job;
  }

  allJobs(): JobRecord[] {
    return [...this.#jobs.values()].sort((a, b) => a.requestId - b.requestId);
  }

  /** Unfinished requests plus the N most recently finished, in request-ID order. */
  listJobRequests(poolId: number, filter: JobRequestFilter = {}): JobRecord[] {
    this.getPool(poolId);
    let jobs = [...this.#jobs.values()].filter((j) => j.poolId === poolId);
    if (filter.agentIds && filter.agentIds.length > 0) {
      const ids = new Set(filter.agentIds);
      jobs = jobs.filter((j) => j.reservedAgentId !== undefined && ids.has(j.reservedAgentId));
    }
    const count = filter.completedRequestCount ?? this.options.defaultCompletedRequestCount;
    const finished = jobs
      .filter((j) => j.result !== undefined)
      .sort((a, b) => (b.finishTime ?? 0) - (a.finishTime ?? 0) || b.requestId - a.requestId)
      .slice(0, Math.max(0, count));
    return [...jobs.filter((j) => j.result === undefined), ...finished].sort((a, b) => a.requestId - b.requestId);
  }

  /**
   * Cancels a job request. Queued (or assigned and not yet fetched by the agent): finished `canceled` at once.
   * Held by an agent: the agent gets a cancellation message and finishes it; if it has no session or does not
   * report within the cancel timeout, the service finishes it `canceled` itself. Finished: nothing changes.
   */
  cancelJob(requestId: number): JobRecord {
    const job = this.#jobs.get(requestId);
    if (!job) throw jobRequestNotFound(requestId);
    if (job.result !== undefined) return job;
    const agent = job.reservedAgentId === undefined ? undefined : this.#agents.get(job.reservedAgentId);
    const session = agent?.sessionId ? this.#sessions.get(agent.sessionId) : undefined;
    if (!agent || !session || !job.delivered) {
      this.#finish(job, "canceled", "The job was canceled.");
      return job;
    }
    if (!job.cancelRequested) {
      job.cancelRequested = true;
      this.#enqueueMessage(session, cancelMessageType, JSON.stringify({ jobId: job.jobId, timeout: "00:05:00" }));
      this.#cancelTimers.set(
        job.requestId,
        this.clock.setTimeout(() => {
          this.#cancelTimers.delete(job.requestId);
          if (job.result === undefined) this.#finish(job, "canceled", "The job was canceled.");
        }, this.options.cancelTimeoutMs),
      );
      this.emit("job", job);
    }
    return job;
  }

  /**
   * The agent's PATCH of its job request: a renewal (only `lockedUntil` or nothing) or, with `result`, the
   * completion. The first renewal marks the request received. Finishing a finished request changes nothing.
   */
  updateJobRequest(poolId: number, requestId: number, update: { result?: TaskResult; finishTime?: number }): JobRecord {
    const job = this.getJobRequest(poolId, requestId);
    const now = this.clock.now();
    if (update.result !== undefined) {
      if (job.result !== undefined) return job;
      if (job.reservedAgentId === undefined) throw jobLockExpired(requestId);
      const result = job.cancelRequested && update.result !== "canceled" ? "canceled" : update.result;
      // A job the agent finishes without ever renewing was still received, unless it was cancelled before it started.
      if (job.receiveTime === undefined && result !== "canceled") job.receiveTime = now;
      this.#finish(job, result, undefined, update.finishTime);
      return job;
    }
    if (job.result !== undefined || job.reservedAgentId === undefined) throw jobLockExpired(requestId);
    if (job.receiveTime === undefined) job.receiveTime = now;
    this.#lock(job);
    this.emit("job", job);
    return job;
  }

  #hasEligibleAgent(job: JobRecord): boolean {
    return this.matchedAgents(job).some((a) => a.enabled);
  }

  #noAgentMessage(job: JobRecord): string {
    const pool = this.getPool(job.poolId);
    return `No agent found in pool ${pool.name} which satisfies the specified demands: ${job.demands.join(", ")}`;
  }

  #lock(job: JobRecord): void {
    job.lockedUntil = this.clock.now() + this.options.lockDurationMs;
    const old = this.#lockTimers.get(job.requestId);
    if (old) this.clock.clearTimeout(old);
    this.#lockTimers.set(
      job.requestId,
      this.clock.setTimeout(() => this.#lockExpired(job.requestId), this.options.lockDurationMs),
    );
  }

  #lockExpired(requestId: number): void {
    this.#lockTimers.delete(requestId);
    const job = this.#jobs.get(requestId);
    if (!job || job.result !== undefined) return;
    if (job.receiveTime === undefined) {
      this.#requeue(job);
    } else {
      this.#finish(job, "abandoned", "The agent stopped renewing the lock on the job request; the job was abandoned.");
    }
  }

  #clearTimers(requestId: number): void {
    for (const timers of [this.#lockTimers, this.#cancelTimers]) {
      const t = timers.get(requestId);
      if (t) this.clock.clearTimeout(t);
      timers.delete(requestId);
    }
  }

  #removePendingMessage(job: JobRecord): void {
    if (job.pendingMessageId === undefined) return;
    for (const session of this.#sessions.values()) {
      session.messages = session.messages.filter((m) => m.messageId !== job.pendingMessageId);
    }
    job.pendingMessageId = undefined;
  }

  /** Back to the queue: the reserved agent never started the job. */
  #requeue(job: JobRecord): void {
    this.#clearTimers(job.requestId);
    this.#removePendingMessage(job);
    const agent = job.reservedAgentId === undefined ? undefined : this.#agents.get(job.reservedAgentId);
    job.assignTime = undefined;
    job.receiveTime = undefined;
    job.lockedUntil = undefined;
    job.reservedAgentId = undefined;
    job.reservedAgentSnapshot = undefined;
    job.delivered = false;
    if (agent) agent.idleSince = this.clock.now();
    this.emit("job", job);
    this.#schedule(job.poolId);
  }

  #finish(job: JobRecord, result: TaskResult, statusMessage: string | undefined, finishTime?: number): void {
    this.#clearTimers(job.requestId);
    this.#removePendingMessage(job);
    job.result = result;
    job.finishTime = finishTime ?? this.clock.now();
    job.lockedUntil = undefined;
    if (statusMessage !== undefined) job.statusMessage = statusMessage;
    const agent = job.reservedAgentId === undefined ? undefined : this.#agents.get(job.reservedAgentId);
    if (agent) {
      agent.lastCompletedRequestId = job.requestId;
      agent.idleSince = this.clock.now();
    }
    this.emit("job", job);
    this.#prune(job.poolId);
    this.#schedule(job.poolId);
  }

  #prune(poolId: number): void {
    const finished = [...this.#jobs.values()]
      .filter((j) => j.poolId === poolId && j.result !== undefined)
      .sort((a, b) => (a.finishTime ?? 0) - (b.finishTime ?? 0) || a.requestId - b.requestId);
    for (const j of finished.slice(0, Math.max(0, finished.length - this.options.finishedRetention))) {
      this.#jobs.delete(j.requestId);
    }
  }

  #agentsChanged(poolId: number): void {
    this.#capabilityCache.clear();
    if (this.options.failUnmatchableQueuedJobs) {
      for (const job of [...this.#jobs.values()]) {
        if (job.poolId === poolId && jobState(job) === "queued" && !this.#hasEligibleAgent(job)) {
          this.#finish(job, "failed", this.#noAgentMessage(job));
        }
      }
    }
    this.#schedule(poolId);
  }

  /** Hands queued jobs (oldest first) to idle, online, enabled agents that satisfy their demands. */
  #schedule(poolId: number): void {
    if (this.#closed) return;
    const queued = [...this.#jobs.values()]
      .filter((j) => j.poolId === poolId && jobState(j) === "queued")
      .sort((a, b) => b.priority - a.priority || a.queueTime - b.queueTime || a.requestId - b.requestId);
    if (queued.length === 0) return;
    const busy = new Set<number>();
    for (const j of this.#jobs.values()) {
      if (j.result === undefined && j.reservedAgentId !== undefined) busy.add(j.reservedAgentId);
    }
    const idle = [...this.#agents.values()]
      .filter((a) => a.poolId === poolId && a.enabled && a.sessionId !== undefined && !busy.has(a.id))
      .sort((a, b) => a.idleSince - b.idleSince || a.id - b.id);
    for (const job of queued) {
      const i = idle.findIndex((a) => satisfiesAll(this.capabilities(a), job.parsedDemands));
      if (i < 0) continue;
      const [agent] = idle.splice(i, 1);
      if (agent) this.#assign(job, agent);
    }
  }

  #assign(job: JobRecord, agent: AgentRecord): void {
    const session = agent.sessionId ? this.#sessions.get(agent.sessionId) : undefined;
    if (!session) return;
    job.assignTime = this.clock.now();
    job.reservedAgentId = agent.id;
    job.reservedAgentSnapshot = { ...agent, sessionId: undefined };
    job.delivered = false;
    this.#lock(job);
    const message = this.#enqueueMessage(session, jobMessageType, JSON.stringify(this.jobMessage(job)), job.requestId);
    job.pendingMessageId = message.messageId;
    this.emit("job", job);
  }

  /** The body of the job message: the shape of the agent's `Pipelines.AgentJobRequestMessage`, trimmed. */
  jobMessage(job: JobRecord): Record<string, unknown> {
    const v = (value: string | number) => ({ value: String(value) });
    return {
      messageType: jobMessageType,
      plan: {
        scopeIdentifier: job.scopeId,
        planType: job.planType,
        version: 1,
        planId: job.planId,
        planGroup: job.planGroup,
        definition: { id: job.definition.id, name: job.definition.name },
        owner: job.owner,
      },
      timeline: { id: job.planId, changeId: 1 },
      jobId: job.jobId,
      jobDisplayName: job.jobDisplayName,
      jobName: job.jobName,
      requestId: job.requestId,
      lockedUntil: "0001-01-01T00:00:00",
      resources: { endpoints: [], repositories: [] },
      variables: {
        "system.jobId": v(job.jobId),
        "system.planId": v(job.planId),
        "system.definitionId": v(job.definition.id),
        "build.definitionName": v(job.definition.name),
        "sim.durationMs": v(job.durationMs),
        "sim.startDelayMs": v(job.startDelayMs),
        "sim.finishDelayMs": v(job.finishDelayMs),
        "sim.result": v(job.outcome),
      },
      demands: job.demands,
      steps: [
        {
          type: "action",
          reference: { type: "script" },
          id: this.#newId(),
          name: "sim",
          displayName: `simulated work (${job.durationMs} ms)`,
        },
      ],
      workspace: {},
    };
  }

  // ---- sessions and messages (the agent's listener)

  createSession(
    poolId: number,
    input: { agentId: number; ownerName?: string; systemCapabilities?: Record<string, string> },
  ): SessionRecord {
    const agent = this.getAgent(poolId, input.agentId);
    if (!agent.authorization?.publicKey) throw agentNotAuthorized(agent.name);
    if (agent.sessionId && this.#sessions.has(agent.sessionId)) throw sessionConflict(agent.name);
    const now = this.clock.now();
    const session: SessionRecord = {
      sessionId: this.#newId(),
      poolId,
      agentId: agent.id,
      ownerName: input.ownerName ?? agent.name,
      createdOn: now,
      messages: [],
      waiters: new Set(),
      activePolls: 0,
      idleTimer: undefined,
    };
    this.#sessions.set(session.sessionId, session);
    if (input.systemCapabilities) {
      agent.systemCapabilities = { ...input.systemCapabilities };
      this.#capabilityCache.delete(agent.id);
    }
    agent.sessionId = session.sessionId;
    agent.statusChangedOn = now;
    agent.idleSince = now;
    this.#armSessionTimer(session);
    this.emit("agent", agent);
    this.#schedule(poolId);
    return session;
  }

  getSession(poolId: number, sessionId: string): SessionRecord {
    const session = this.#sessions.get(sessionId);
    if (!session || session.poolId !== poolId) throw sessionExpired(sessionId);
    return session;
  }

  deleteSession(poolId: number, sessionId: string): void {
    this.getPool(poolId);
    this.getSession(poolId, sessionId);
    this.#dropSession(sessionId);
  }

  /**
   * Ends a session: the agent goes offline, pending polls return empty, and a job reserved for the agent that it
   * had not started goes back to the queue. A job it was running keeps its lock until it expires (abandoned).
   */
  #dropSession(sessionId: string): void {
    const session = this.#sessions.get(sessionId);
    if (!session) return;
    this.#sessions.delete(sessionId);
    if (session.idleTimer) this.clock.clearTimeout(session.idleTimer);
    const agent = this.#agents.get(session.agentId);
    if (agent && agent.sessionId === sessionId) {
      agent.sessionId = undefined;
      agent.statusChangedOn = this.clock.now();
      this.emit("agent", agent);
      const held = this.assignedRequest(agent);
      if (held && held.receiveTime === undefined) this.#requeue(held);
    }
    for (const wake of session.waiters) wake();
    session.waiters.clear();
  }

  #armSessionTimer(session: SessionRecord): void {
    if (session.idleTimer) this.clock.clearTimeout(session.idleTimer);
    session.idleTimer = undefined;
    if (session.activePolls > 0) return;
    session.idleTimer = this.clock.setTimeout(() => {
      session.idleTimer = undefined;
      if (session.activePolls === 0) this.#dropSession(session.sessionId);
    }, this.options.sessionTimeoutMs);
  }

  #enqueueMessage(session: SessionRecord, messageType: string, body: string, requestId?: number): MessageRecord {
    const message: MessageRecord = {
      messageId: this.#nextMessageId++,
      messageType,
      body,
      ...(requestId === undefined ? {} : { requestId }),
    };
    session.messages.push(message);
    for (const wake of session.waiters) wake();
    session.waiters.clear();
    return message;
  }

  /** The next message for the session, without waiting. Messages up to `lastMessageId` count as acknowledged. */
  takeMessage(poolId: number, sessionId: string, lastMessageId?: number): MessageRecord | undefined {
    const session = this.getSession(poolId, sessionId);
    if (lastMessageId !== undefined) {
      session.messages = session.messages.filter((m) => m.messageId > lastMessageId);
    }
    const message = session.messages[0];
    if (message?.requestId !== undefined) {
      const job = this.#jobs.get(message.requestId);
      if (job && job.pendingMessageId === message.messageId) {
        job.pendingMessageId = undefined;
        job.delivered = true;
        this.emit("job", job);
      }
    }
    return message;
  }

  /**
   * Long poll: resolves with the next message, or undefined after `timeoutMs`, when the session ends or when
   * `signal` aborts. While a poll is open the session cannot expire.
   */
  async pollMessage(
    poolId: number,
    sessionId: string,
    options: { lastMessageId?: number; timeoutMs: number; signal?: AbortSignal },
  ): Promise<MessageRecord | undefined> {
    const session = this.getSession(poolId, sessionId);
    const now = this.takeMessage(poolId, sessionId, options.lastMessageId);
    if (now) {
      this.#armSessionTimer(session);
      return now;
    }
    session.activePolls++;
    this.#armSessionTimer(session);
    try {
      await new Promise<void>((resolve) => {
        let timer: TimerHandle | undefined;
        const done = () => {
          if (timer) this.clock.clearTimeout(timer);
          session.waiters.delete(done);
          options.signal?.removeEventListener("abort", done);
          resolve();
        };
        timer = this.clock.setTimeout(done, options.timeoutMs);
        session.waiters.add(done);
        options.signal?.addEventListener("abort", done, { once: true });
        if (options.signal?.aborted) done();
      });
    } finally {
      session.activePolls--;
      if (this.#sessions.has(sessionId)) this.#armSessionTimer(session);
    }
    if (!this.#sessions.has(sessionId) || options.signal?.aborted) return undefined;
    return this.takeMessage(poolId, sessionId);
  }

  deleteMessage(poolId: number, sessionId: string, messageId: number): void {
    const session = this.getSession(poolId, sessionId);
    session.messages = session.messages.filter((m) => m.messageId !== messageId);
  }

  // ---- lifecycle

  /** Stops every timer and wakes every poll; the engine accepts no more scheduling. */
  close(): void {
    this.#closed = true;
    for (const t of [...this.#lockTimers.values(), ...this.#cancelTimers.values()]) this.clock.clearTimeout(t);
    this.#lockTimers.clear();
    this.#cancelTimers.clear();
    for (const s of this.#sessions.values()) {
      if (s.idleTimer) this.clock.clearTimeout(s.idleTimer);
      for (const wake of s.waiters) wake();
      s.waiters.clear();
    }
  }
}
