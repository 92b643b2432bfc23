/**
 * The shared job-request poller: one poll loop per (organization URL, pool name, credential identity), however many
 * AutoScaledAgent resources watch that pool. `PollerRegistry.acquire` hands out ref-counted handles; the loop
 * starts with the first and stops when the last is released.
 *
 * One poll = the pool's unfinished job requests (`completedRequestCount=0`, never with `$top`), plus the pool's
 * agents with their assigned and last completed requests when they are needed (see `agentsMaxAgeMs`). Subscribers
 * get every snapshot, or the typed error of a failed poll; the loop keeps going after errors with backoff.
 *
 * Cadence: `fastIntervalMs` while work is moving (a job queued or assigned but not yet running, or any change since
 * the previous poll), `idleIntervalMs` otherwise, stretched by the identity's rate-limit governor, never before a
 * Retry-After. `pollNow()` polls at once (after at least `minIntervalMs` since the last poll started).
 */
import { backoffDelay } from "../runtime/backoff.ts";
import { type Clock, type Random, systemClock } from "../runtime/clock.ts";
import { type Logger, silentLogger } from "../runtime/logger.ts";
import { type Credential, credentialKey, identityKey } from "./auth.ts";
import { AzureDevOpsClient, type AzureDevOpsClientOptions, normalizeOrganizationUrl } from "./client.ts";
import { AzureDevOpsError, asAzureDevOpsError } from "./errors.ts";
import { GovernorRegistry, type PollDelayReason, type RateLimitGovernor } from "./governor.ts";
import { jobRequestState, type TaskAgent, type TaskAgentJobRequest, type TaskAgentPool } from "./types.ts";

/** What the poller needs from a client (AzureDevOpsClient has it). */
export interface PoolReader {
  readonly governor: RateLimitGovernor;
  findPoolByName(name: string, options?: { signal?: AbortSignal }): Promise<TaskAgentPool>;
  listJobRequests(
    poolId: number,
    options: { completedRequestCount?: number; signal?: AbortSignal },
  ): Promise<TaskAgentJobRequest[]>;
  listAgents(
    poolId: number,
    options: {
      includeCapabilities?: boolean;
      includeAssignedRequest?: boolean;
      includeLastCompletedRequest?: boolean;
      signal?: AbortSignal;
    },
  ): Promise<TaskAgent[]>;
}

export interface PoolSnapshot {
  readonly organizationUrl: string;
  readonly poolName: string;
  readonly poolId: number;
  /** Unfinished job requests (queued, assigned, running). */
  readonly jobRequests: readonly TaskAgentJobRequest[];
  /** Every agent of the pool, with `assignedRequest` and `lastCompletedRequest`. */
  readonly agents: readonly TaskAgent[];
  /** When the job requests were read (epoch ms). */
  readonly fetchedAt: number;
  /** When the agents were read (epoch ms); older than `fetchedAt` when this poll reused them. */
  readonly agentsFetchedAt: number;
  /** The job requests differ from the previous snapshot's (always true for the first). */
  readonly changed: boolean;
}

export interface PollSubscriber {
  onSnapshot(snapshot: PoolSnapshot): void;
  onError(error: AzureDevOpsError): void;
}

export interface PollerOptions {
  /** Interval while work is moving. Default 5 s. */
  readonly fastIntervalMs: number;
  /** Interval when nothing is queued or changing. Default 30 s. */
  readonly idleIntervalMs: number;
  /** Least time between the starts of two polls, also for `pollNow()`. Default 1 s. */
  readonly minIntervalMs: number;
  /**
   * Agents are re-read when the job requests changed, on `pollNow()`, on the first poll, and whenever the last
   * agent list is older than this. Default 15 s.
   */
  readonly agentsMaxAgeMs: number;
  /** Backoff after failed polls (by consecutive failures). */
  readonly errorBackoff: { readonly initialMs: number; readonly maxMs: number; readonly jitter: number };
  /** The pool name is resolved to an id again this often (a pool renamed or recreated). Default 10 min. */
  readonly poolRecheckIntervalMs: number;
  /** Ask for agent capabilities too (bigger answers). Default false. */
  readonly includeAgentCapabilities: boolean;
}

export const defaultPollerOptions: PollerOptions = {
  fastIntervalMs: 5_000,
  idleIntervalMs: 30_000,
  minIntervalMs: 1_000,
  agentsMaxAgeMs: 15_000,
  errorBackoff: { initialMs: 2_000, maxMs: 60_000, jitter: 0.3 },
  poolRecheckIntervalMs: 10 * 60_000,
  includeAgentCapabilities: false,
};

// ---------------------------------------------------------------------------------------------------------------
// Pure decisions

/** Work is moving: something changed, or a job waits for an agent or for its assigned agent to start it. */
export function workIsMoving(jobRequests: readonly TaskAgentJobRequest[], changed: boolean): boolean {
  if (changed) return true;
  return jobRequests.some((j) => {
    const state = jobRequestState(j);
    return state === "queued" || state === "assigned";
  });
}

export type PollIntervalReason = "fast" | "idle" | "error-backoff";

/** The base delay before the next poll, before the rate-limit governor stretches it. */
export function decidePollInterval(
  input: { outcome: "snapshot" | "error"; moving: boolean; consecutiveErrors: number },
  options: PollerOptions,
  random: Random = () => 0,
): { baseMs: number; reason: PollIntervalReason } {
  if (input.outcome === "error") {
    return {
      baseMs: backoffDelay(Math.max(0, input.consecutiveErrors - 1), options.errorBackoff, random),
      reason: "error-backoff",
    };
  }
  return input.moving
    ? { baseMs: options.fastIntervalMs, reason: "fast" }
    : { baseMs: options.idleIntervalMs, reason: "idle" };
}

/** A compact fingerprint of what matters in the job requests (state changes, assignments). */
export function jobRequestsFingerprint(jobRequests: readonly TaskAgentJobRequest[]): string {
  return jobRequests
    .map(
      (j) =>
        `${j.requestId}:${j.assignTime ?? ""}:${j.receiveTime ?? ""}:${j.result ?? ""}:${j.reservedAgent?.id ?? ""}`,
    )
    .sort()
    .join("|");
}

/**
 * Job requests corrected by agents read after them: a job the list showed as queued that an agent now holds
 * (`assignedRequest`) takes the agent's newer view, so a snapshot never shows a job pending that is already taken.
 */
export function reconcileWithAgents(
  jobRequests: readonly TaskAgentJobRequest[],
  agents: readonly TaskAgent[],
): TaskAgentJobRequest[] {
  const held = new Map<number, TaskAgentJobRequest>();
  for (const agent of agents) {
    if (agent.assignedRequest !== undefined) held.set(agent.assignedRequest.requestId, agent.assignedRequest);
  }
  return jobRequests.map((job) => {
    const newer = held.get(job.requestId);
    if (newer === undefined || jobRequestState(job) !== "queued") return job;
    return { ...job, ...newer, demands: newer.demands ?? job.demands };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// One poll loop

export interface PollerStatus {
  readonly poolId: number | undefined;
  readonly polls: number;
  readonly consecutiveErrors: number;
  readonly subscribers: number;
  /** The delay chosen after the last poll and why (the governor's reason wins when it stretched the base). */
  readonly lastDelayMs: number | undefined;
  readonly lastDelayReason: PollIntervalReason | PollDelayReason | undefined;
  readonly nextPollAt: number | undefined;
}

export interface JobRequestPollerOptions {
  organizationUrl: string;
  poolName: string;
  reader: PoolReader;
  options?: Partial<PollerOptions>;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
  /** Fields added to every log line (pool, organization, identity). */
  logFields?: Record<string, unknown>;
}

type Latest = { kind: "snapshot"; snapshot: PoolSnapshot } | { kind: "error"; error: AzureDevOpsError };

export class JobRequestPoller {
  readonly organizationUrl: string;
  readonly poolName: string;
  readonly options: PollerOptions;
  #reader: PoolReader;
  #clock: Clock;
  #random: Random;
  #log: Logger;
  #logFields: Record<string, unknown>;
  #subscribers = new Set<PollSubscriber>();
  #abort = new AbortController();
  #detachGovernor: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #stopped = false;

  #poolId: number | undefined;
  #poolResolvedAt = 0;
  #agents: TaskAgent[] | undefined;
  #agentsFetchedAt = 0;
  #fingerprint: string | undefined;
  #latest: Latest | undefined;

  #polls = 0;
  #consecutiveErrors = 0;
  #lastStart: number | undefined;
  #lastDelayMs: number | undefined;
  #lastDelayReason: PollIntervalReason | PollDelayReason | undefined;
  #forced = false;
  #due = 0;
  #timer: unknown;
  #wake: (() => void) | undefined;

  constructor(options: JobRequestPollerOptions) {
    this.organizationUrl = options.organizationUrl;
    this.poolName = options.poolName;
    this.#reader = options.reader;
    this.options = { ...defaultPollerOptions, ...options.options };
    this.#clock = options.clock ?? systemClock();
    this.#random = options.random ?? Math.random;
    this.#log = options.logger ?? silentLogger();
    this.#logFields = { organizationUrl: options.organizationUrl, pool: options.poolName, ...options.logFields };
  }

  /** Starts the loop (idempotent); the first poll runs at once. */
  start(): void {
    if (this.#loop !== undefined || this.#stopped) return;
    this.#detachGovernor = this.#reader.governor.attach();
    this.#due = this.#clock.now();
    this.#loop = this.#run();
  }

  /** Stops the loop and aborts a poll in flight. Resolves when the loop has ended. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#abort.abort(new Error("poller stopped"));
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#wakeUp();
      this.#detachGovernor?.();
      this.#subscribers.clear();
    }
    await this.#loop;
  }

  /**
   * Adds a subscriber. It gets the latest outcome (snapshot or error) at once, asynchronously, when there is one.
   * Returns the function that removes it.
   */
  subscribe(subscriber: PollSubscriber): () => void {
    this.#subscribers.add(subscriber);
    const latest = this.#latest;
    if (latest !== undefined) {
      queueMicrotask(() => {
        if (this.#subscribers.has(subscriber)) this.#deliver(latest, [subscriber]);
      });
    }
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  latest(): PoolSnapshot | undefined {
    return this.#latest?.kind === "snapshot" ? this.#latest.snapshot : undefined;
  }

  status(): PollerStatus {
    return {
      poolId: this.#poolId,
      polls: this.#polls,
      consecutiveErrors: this.#consecutiveErrors,
      subscribers: this.#subscribers.size,
      lastDelayMs: this.#lastDelayMs,
      lastDelayReason: this.#lastDelayReason,
      nextPollAt: this.#stopped ? undefined : this.#due,
    };
  }

  /**
   * Polls as soon as allowed: at least `minIntervalMs` after the last poll started and never before a Retry-After.
   * While polls fail, the error backoff is kept (the next poll still refreshes the agents). A poll in flight is
   * followed by another one.
   */
  pollNow(): void {
    if (this.#stopped) return;
    this.#forced = true;
    if (this.#wake === undefined || this.#consecutiveErrors > 0) return;
    const earliest = this.#earliestForcedPoll();
    if (earliest < this.#due) {
      this.#due = earliest;
      this.#arm();
    }
  }

  #earliestForcedPoll(): number {
    const now = this.#clock.now();
    const afterLast = this.#lastStart === undefined ? now : this.#lastStart + this.options.minIntervalMs;
    return Math.max(now, afterLast, now + this.#reader.governor.requestWaitMs());
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #arm(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined;
        this.#wakeUp();
      },
      Math.max(0, this.#due - this.#clock.now()),
    );
  }

  #sleepUntilDue(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#arm();
    });
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      await this.#sleepUntilDue();
      if (this.#stopped) break;
      // A Retry-After that arrived since the poll was scheduled (another poller or client of this identity).
      const blockedMs = this.#reader.governor.requestWaitMs();
      if (blockedMs > 0) {
        this.#due = this.#clock.now() + blockedMs;
        continue;
      }
      const forced = this.#forced;
      this.#forced = false;
      this.#lastStart = this.#clock.now();
      this.#polls++;
      let outcome: "snapshot" | "error";
      let moving = false;
      try {
        const snapshot = await this.#poll(forced);
        if (this.#stopped) break;
        this.#consecutiveErrors = 0;
        outcome = "snapshot";
        moving = workIsMoving(snapshot.jobRequests, snapshot.changed);
        this.#latest = { kind: "snapshot", snapshot };
        this.#deliver(this.#latest, [...this.#subscribers]);
      } catch (err) {
        if (this.#stopped) break;
        const error = asAzureDevOpsError(err, `polling pool '${this.poolName}' of ${this.organizationUrl} failed`);
        this.#consecutiveErrors++;
        outcome = "error";
        this.#forced ||= forced;
        this.#latest = { kind: "error", error };
        this.#log.warn("job-request poll failed", {
          ...this.#logFields,
          ...error.fields(),
          error: error.message,
          consecutiveErrors: this.#consecutiveErrors,
        });
        this.#deliver(this.#latest, [...this.#subscribers]);
      }
      if (this.#stopped) break;
      const interval = decidePollInterval(
        { outcome, moving, consecutiveErrors: this.#consecutiveErrors },
        this.options,
        this.#random,
      );
      const paced = this.#reader.governor.pollDelay(interval.baseMs, 2);
      this.#lastDelayMs = paced.delayMs;
      this.#lastDelayReason = paced.reason === "base" ? interval.reason : paced.reason;
      const now = this.#clock.now();
      this.#due = now + paced.delayMs;
      if (this.#forced && outcome === "snapshot") this.#due = Math.min(this.#due, this.#earliestForcedPoll());
      if (paced.reason !== "base") {
        this.#log.debug("job-request polling slowed by the rate limit", {
          ...this.#logFields,
          delayMs: paced.delayMs,
          reason: paced.reason,
        });
      }
    }
  }

  async #poll(forced: boolean): Promise<PoolSnapshot> {
    const signal = this.#abort.signal;
    const started = this.#clock.now();
    if (this.#poolId === undefined || started - this.#poolResolvedAt >= this.options.poolRecheckIntervalMs) {
      const pool = await this.#reader.findPoolByName(this.poolName, { signal });
      if (this.#poolId !== pool.id) {
        if (this.#poolId !== undefined) {
          this.#log.info("agent pool id changed", { ...this.#logFields, from: this.#poolId, to: pool.id });
        }
        this.#agents = undefined;
        this.#fingerprint = undefined;
      }
      this.#poolId = pool.id;
      this.#poolResolvedAt = started;
    }
    const poolId = this.#poolId;
    let jobRequests: TaskAgentJobRequest[];
    let agents = this.#agents;
    let changed: boolean;
    try {
      jobRequests = await this.#reader.listJobRequests(poolId, { completedRequestCount: 0, signal });
      const fetchedAt = this.#clock.now();
      changed = jobRequestsFingerprint(jobRequests) !== this.#fingerprint;
      const refreshAgents =
        agents === undefined || changed || forced || fetchedAt - this.#agentsFetchedAt >= this.options.agentsMaxAgeMs;
      if (refreshAgents) {
        agents = await this.#reader.listAgents(poolId, {
          includeAssignedRequest: true,
          includeLastCompletedRequest: true,
          includeCapabilities: this.options.includeAgentCapabilities,
          signal,
        });
        this.#agents = agents;
        this.#agentsFetchedAt = this.#clock.now();
        jobRequests = reconcileWithAgents(jobRequests, agents);
      }
      const fingerprint = jobRequestsFingerprint(jobRequests);
      changed = fingerprint !== this.#fingerprint;
      this.#fingerprint = fingerprint;
      return {
        organizationUrl: this.organizationUrl,
        poolName: this.poolName,
        poolId,
        jobRequests,
        agents: agents ?? [],
        fetchedAt,
        agentsFetchedAt: this.#agentsFetchedAt,
        changed,
      };
    } catch (err) {
      if (err instanceof AzureDevOpsError && err.kind === "not-found") {
        // The pool went away (or was recreated): resolve the name again on the next poll.
        this.#log.info("agent pool not found by id; resolving its name again", { ...this.#logFields, poolId });
        this.#poolId = undefined;
        this.#agents = undefined;
        this.#fingerprint = undefined;
      }
      throw err;
    }
  }

  #deliver(latest: Latest, subscribers: readonly PollSubscriber[]): void {
    for (const subscriber of subscribers) {
      try {
        if (latest.kind === "snapshot") subscriber.onSnapshot(latest.snapshot);
        else subscriber.onError(latest.error);
      } catch (err) {
        this.#log.error("job-request poll subscriber failed", {
          ...this.#logFields,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The registry

export interface PollerKey {
  readonly organizationUrl: string;
  readonly poolName: string;
  readonly credential: Credential;
}

/**
 * The sharing key: the normalized organization URL and the pool name (both case-insensitive in the service) and
 * the credential's key (identity and material, never the secret). Throws a `configuration` error for a malformed URL.
 */
export function pollerKey(key: PollerKey): string {
  return [
    normalizeOrganizationUrl(key.organizationUrl).toLowerCase(),
    key.poolName.toLowerCase(),
    credentialKey(key.credential),
  ].join("|");
}

export interface PollerHandle {
  /** The sharing key (no secret in it). */
  readonly key: string;
  /** Ask for a poll as soon as allowed (webhook trigger, after scale actions). */
  pollNow(): void;
  /** The last successful snapshot, if any. */
  latest(): PoolSnapshot | undefined;
  status(): PollerStatus;
  /** Stop receiving; the last handle's release stops the loop (resolves when it has stopped). Idempotent. */
  release(): Promise<void>;
}

export type PoolReaderFactory = (
  organizationUrl: string,
  credential: Credential,
  governor: RateLimitGovernor,
) => PoolReader;

export interface PollerRegistryOptions {
  /** Rate-limit governors per identity; share the one the operator's other clients use. Default: a new one. */
  governors?: GovernorRegistry;
  /** Builds the reader of a new poller. Default: an AzureDevOpsClient with `client` options. */
  readerFor?: PoolReaderFactory;
  /** Options of the default client (fetch, timeout, retry policy). */
  client?: Omit<
    AzureDevOpsClientOptions,
    "organizationUrl" | "credential" | "governor" | "clock" | "random" | "logger"
  >;
  /** Intervals of every poller of this registry. */
  poller?: Partial<PollerOptions>;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
}

interface Entry {
  poller: JobRequestPoller;
  refs: number;
}

export class PollerRegistry {
  readonly governors: GovernorRegistry;
  #options: PollerRegistryOptions;
  #clock: Clock;
  #random: Random;
  #log: Logger;
  #entries = new Map<string, Entry>();
  #closed = false;

  constructor(options: PollerRegistryOptions = {}) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock();
    this.#random = options.random ?? Math.random;
    this.#log = options.logger ?? silentLogger();
    this.governors = options.governors ?? new GovernorRegistry({ clock: this.#clock, random: this.#random });
  }

  /**
   * A handle on the poller of this (organization, pool, identity), started if it is new. The subscriber gets every
   * snapshot and error until the handle is released. The credential of the first acquirer is the one used.
   * Throws a `configuration` AzureDevOpsError (synchronously) for a malformed organization URL.
   */
  acquire(key: PollerKey, subscriber: PollSubscriber): PollerHandle {
    if (this.#closed) throw new Error("the poller registry is closed");
    const id = pollerKey(key);
    let entry = this.#entries.get(id);
    if (entry === undefined) {
      const organizationUrl = normalizeOrganizationUrl(key.organizationUrl);
      const identity = identityKey(key.credential);
      const governor = this.governors.get(identity);
      const reader =
        this.#options.readerFor?.(organizationUrl, key.credential, governor) ??
        new AzureDevOpsClient({
          ...this.#options.client,
          organizationUrl,
          credential: key.credential,
          governor,
          clock: this.#clock,
          random: this.#random,
          logger: this.#log,
        });
      const poller = new JobRequestPoller({
        organizationUrl,
        poolName: key.poolName,
        reader,
        clock: this.#clock,
        random: this.#random,
        logger: this.#log,
        logFields: { identity },
        ...(this.#options.poller === undefined ? {} : { options: this.#options.poller }),
      });
      entry = { poller, refs: 0 };
      this.#entries.set(id, entry);
      this.#log.info("job-request poller started", { organizationUrl, pool: key.poolName, identity });
    }
    const current = entry;
    current.refs++;
    const unsubscribe = current.poller.subscribe(subscriber);
    current.poller.start();
    let released: Promise<void> | undefined;
    return {
      key: id,
      pollNow: () => current.poller.pollNow(),
      latest: () => current.poller.latest(),
      status: () => current.poller.status(),
      release: () => {
        released ??= this.#release(id, current, unsubscribe);
        return released;
      },
    };
  }

  async #release(id: string, entry: Entry, unsubscribe: () => void): Promise<void> {
    unsubscribe();
    entry.refs--;
    if (entry.refs > 0) return;
    if (this.#entries.get(id) === entry) this.#entries.delete(id);
    this.#log.info("job-request poller stopped", {
      organizationUrl: entry.poller.organizationUrl,
      pool: entry.poller.poolName,
    });
    await entry.poller.stop();
  }

  /** The organizations (normalized URLs) that have at least one poll loop, each once. */
  organizationUrls(): string[] {
    const urls = new Map<string, string>();
    for (const entry of this.#entries.values()) {
      const url = entry.poller.organizationUrl;
      urls.set(url.toLowerCase(), url);
    }
    return [...urls.values()];
  }

  /**
   * Asks every loop of this organization (any pool, any identity) for a poll as soon as allowed, as a service hook
   * delivery does: `pollNow()` on each, with its minimum interval and the governor still in force. Returns how many
   * loops were asked (0: none for that organization).
   */
  pollOrganization(organizationUrl: string, reason: string): number {
    let wanted: string;
    try {
      wanted = normalizeOrganizationUrl(organizationUrl).toLowerCase();
    } catch {
      return 0;
    }
    let asked = 0;
    for (const entry of this.#entries.values()) {
      if (entry.poller.organizationUrl.toLowerCase() !== wanted) continue;
      entry.poller.pollNow();
      asked++;
    }
    if (asked > 0) this.#log.debug("early poll requested", { organizationUrl, reason, pollers: asked });
    return asked;
  }

  /** Pollers running. */
  get size(): number {
    return this.#entries.size;
  }

  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** Stops every poller. */
  async close(): Promise<void> {
    this.#closed = true;
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map((e) => e.poller.stop()));
  }
}
