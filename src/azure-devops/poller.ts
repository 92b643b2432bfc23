/**
 * The shared job-request poller: one poll loop per (organization URL, pool name, credential identity), however many
 * AutoScaledAgent resources watch that pool. `PollerRegistry.acquire` hands out ref-counted handles; the loop
 * starts with the first and stops when the last is released.
 *
 * One poll = the pool's unfinished job requests (`completedRequestCount=0`, never with `$top`), plus the pool's
 * agents with their assigned and last completed requests when they are needed (`decideAgentRefresh`). Subscribers
 * get every snapshot, or the typed error of a failed poll; the loop keeps going after errors with backoff.
 *
 * Cadence (`decidePollInterval`): the budget goes where it buys latency. A new job is seen one poll after it was
 * queued, so a quiet pool polls its job requests at `idleIntervalMs` and reads its agents only rarely; the identity's
 * polling budget (`pollBudgetPerMinute` of its governor, shared evenly by its pools) stretches that interval when it
 * cannot pay for it. After a change (or `pollNow()`) the pool polls at `fastIntervalMs` for `fastWindowMs`, from an
 * allowance of `fastPollsPerMinute`. The governor stretches everything when the service's rate-limit headers ask;
 * nothing is sent before a Retry-After.
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
    options: { completedRequestCount?: number; matchedAgentsNamed?: string; signal?: AbortSignal },
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
  /**
   * Whether this subscriber has live agent pods on the pool (created and not finished), asked before each poll.
   * Their agents' state (registered, online, idle) is read from the agent list, so a pool with live pods gets a
   * fresh one every `agentsMaxAgeMs`; without, every `agentsIdleMaxAgeMs`. A subscriber that cannot tell leaves it
   * out (or answers undefined): the poller then judges from what it sees (`poolLooksLive`).
   */
  hasLivePods?(): boolean | undefined;
}

export interface PollerOptions {
  /** Interval while work moves (for `fastWindowMs` after a change or `pollNow()`). Default 1 s. */
  readonly fastIntervalMs: number;
  /** Interval of a quiet pool, when the identity's budget pays for it (else longer). Default 3 s. */
  readonly idleIntervalMs: number;
  /** How long after the last change (or `pollNow()`) work counts as moving. Default 10 s. */
  readonly fastWindowMs: number;
  /**
   * Fast polls a pool may make per minute (a bucket holding one minute's worth, refilled continuously), so that a
   * pool whose jobs keep changing cannot poll at `fastIntervalMs` for ever. Default 10.
   */
  readonly fastPollsPerMinute: number;
  /** Least time between the starts of two polls, also for `pollNow()`. Default 1 s. */
  readonly minIntervalMs: number;
  /**
   * Least time between the start of the last poll and an urgent `pollNow()` (a service hook delivery: a job changed
   * that the last poll may have missed). Default 250 ms.
   */
  readonly urgentMinIntervalMs: number;
  /** After a change or `pollNow()`, the agents are read again once the last list is at least this old. Default 5 s. */
  readonly agentsMinAgeMs: number;
  /** Longest age of the agent list while the pool has live agent pods. Default 30 s. */
  readonly agentsMaxAgeMs: number;
  /** Longest age of the agent list while it has none. Default 5 min. */
  readonly agentsIdleMaxAgeMs: number;
  /**
   * When no subscriber can tell whether it has live pods: a change or `pollNow()` within this long counts as live
   * pods (the operator may just have created some). A little longer than `agentsMaxAgeMs`, so that one more agent
   * list, 30 s after, sees the agents that registered meanwhile. Default 35 s.
   */
  readonly liveMemoryMs: number;
  /** Backoff after failed polls (by consecutive failures). */
  readonly errorBackoff: { readonly initialMs: number; readonly maxMs: number; readonly jitter: number };
  /** The pool name is resolved to an id again this often (a pool renamed or recreated). Default 10 min. */
  readonly poolRecheckIntervalMs: number;
  /** Ask for agent capabilities too (bigger answers). Default false. */
  readonly includeAgentCapabilities: boolean;
  /**
   * Keep only the `matchedAgents` references of the job requests whose name starts with this; the others are
   * dropped while the list is read (`listJobRequests`' `matchedAgentsNamed`). Absent (the default): all are kept.
   */
  readonly matchedAgentsNamed?: string;
}

export const defaultPollerOptions: PollerOptions = {
  fastIntervalMs: 1_000,
  idleIntervalMs: 3_000,
  fastWindowMs: 10_000,
  fastPollsPerMinute: 10,
  minIntervalMs: 1_000,
  urgentMinIntervalMs: 250,
  agentsMinAgeMs: 5_000,
  agentsMaxAgeMs: 30_000,
  agentsIdleMaxAgeMs: 5 * 60_000,
  liveMemoryMs: 35_000,
  errorBackoff: { initialMs: 2_000, maxMs: 60_000, jitter: 0.3 },
  poolRecheckIntervalMs: 10 * 60_000,
  includeAgentCapabilities: false,
};

// ---------------------------------------------------------------------------------------------------------------
// Pure decisions

/**
 * Whether the pool has live agent pods of the operator, from the subscribers' answers and what the poller saw:
 * 1. a subscriber says it has live pods: yes;
 * 2. every subscriber can tell and none has: no;
 * 3. otherwise judge from the data: an online agent in the last agent list (placeholders are offline for ever), a
 *    job request that an agent holds (assigned or running), or a change or `pollNow()` within `liveMemoryMs`.
 */
export function poolLooksLive(
  input: {
    hints: readonly (boolean | undefined)[];
    agents: readonly TaskAgent[] | undefined;
    jobRequests: readonly TaskAgentJobRequest[];
    sinceActivityMs: number;
  },
  options: Pick<PollerOptions, "liveMemoryMs">,
): boolean {
  if (input.hints.some((h) => h === true)) return true;
  if (input.hints.length > 0 && input.hints.every((h) => h === false)) return false;
  if (input.agents?.some((a) => a.status === "online")) return true;
  if (input.jobRequests.some((j) => j.reservedAgent !== undefined && jobRequestState(j) !== "finished")) return true;
  return input.sinceActivityMs < options.liveMemoryMs;
}

export type AgentRefreshReason = "initial" | "changed" | "live" | "idle";

/**
 * Whether this poll reads the agents too (after the job requests), and why; undefined: the last list is reused.
 * The reconciler needs agents for the state of its own pods' agents (registered, online, idle, done). Job requests
 * already tell which agents hold a job (`reservedAgent`), so a reused list is never unsafe: a busy agent is still
 * busy by its job request, and deleting an agent's registration is refused while it runs a job.
 * 1. no agent list for this pool id yet: read it ("initial");
 * 2. the job requests changed or `pollNow()` was called since the list was read, and it is at least
 *    `agentsMinAgeMs` old ("changed"; a burst of changes is followed by one list, not one per poll);
 * 3. the pool has live agent pods and the list is `agentsMaxAgeMs` old: agents registering or going idle change
 *    no job request ("live");
 * 4. the list is `agentsIdleMaxAgeMs` old ("idle").
 */
export function decideAgentRefresh(
  input: { hasList: boolean; pending: boolean; live: boolean; ageMs: number },
  options: Pick<PollerOptions, "agentsMinAgeMs" | "agentsMaxAgeMs" | "agentsIdleMaxAgeMs">,
): AgentRefreshReason | undefined {
  if (!input.hasList) return "initial";
  if (input.pending && input.ageMs >= options.agentsMinAgeMs) return "changed";
  if (input.live && input.ageMs >= options.agentsMaxAgeMs) return "live";
  if (input.ageMs >= options.agentsIdleMaxAgeMs) return "idle";
  return undefined;
}

/**
 * The interval of quiet polls that a pool's budget share pays for: job-request lists get what the expected agent
 * lists leave of `requestsPerMinute` (at least half of it). 0 when there is no budget.
 */
export function budgetIntervalMs(input: { requestsPerMinute: number; live: boolean }, options: PollerOptions): number {
  const share = input.requestsPerMinute;
  if (!(share > 0) || !Number.isFinite(share)) return 0;
  const agentLists = 60_000 / (input.live ? options.agentsMaxAgeMs : options.agentsIdleMaxAgeMs);
  const jobLists = Math.max(share / 2, share - agentLists);
  return Math.round(60_000 / jobLists);
}

export type PollIntervalReason = "fast" | "idle" | "budget" | "error-backoff";

export interface PollIntervalDecision {
  readonly baseMs: number;
  readonly reason: PollIntervalReason;
  /** The next poll is a fast one: it takes one from the fast-poll allowance. */
  readonly fast: boolean;
}

/**
 * The base delay before the next poll, before the rate-limit governor stretches it:
 * 1. after a failed poll: exponential backoff with jitter by consecutive failures;
 * 2. the identity's budget: when its share does not pay for `idleIntervalMs` (`budgetMs` longer), every interval of
 *    this pool, fast ones too, stretches by `budgetMs / idleIntervalMs` (all of the identity's pools slow evenly);
 * 3. work moves (a change or `pollNow()` within `fastWindowMs`) and the fast-poll allowance has a poll left (or
 *    the identity has no budget, `budgetMs` 0): `fastIntervalMs` (stretched; never slower than `idleIntervalMs`);
 * 4. otherwise: `idleIntervalMs`, or `budgetMs` when longer.
 */
export function decidePollInterval(
  input: {
    outcome: "snapshot" | "error";
    consecutiveErrors: number;
    sinceActivityMs: number;
    fastTokens: number;
    budgetMs: number;
  },
  options: PollerOptions,
  random: Random = () => 0,
): PollIntervalDecision {
  if (input.outcome === "error") {
    return {
      baseMs: backoffDelay(Math.max(0, input.consecutiveErrors - 1), options.errorBackoff, random),
      reason: "error-backoff",
      fast: false,
    };
  }
  const stretch = Math.max(1, input.budgetMs / Math.max(1, options.idleIntervalMs));
  if (input.sinceActivityMs < options.fastWindowMs && (input.fastTokens >= 1 || input.budgetMs === 0)) {
    const fastMs = Math.min(options.fastIntervalMs, options.idleIntervalMs);
    return { baseMs: Math.round(fastMs * stretch), reason: "fast", fast: true };
  }
  return input.budgetMs > options.idleIntervalMs
    ? { baseMs: input.budgetMs, reason: "budget", fast: false }
    : { baseMs: options.idleIntervalMs, reason: "idle", fast: false };
}

/**
 * The fast-poll allowance after `elapsedMs`: refilled at `perMinute` a minute up to one minute's worth (never
 * beyond), from wherever it was (it may be below zero after `pollNow()` calls).
 */
export function refillFastTokens(tokens: number, elapsedMs: number, perMinute: number): number {
  if (!(perMinute > 0)) return 0;
  return Math.min(perMinute, tokens + (Math.max(0, elapsedMs) * perMinute) / 60_000);
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

/**
 * An agent list read before the job requests (a reused one), corrected by them, so that it never shows an agent
 * holding a job that the newer job requests say it no longer holds (which would count a finished agent as busy and
 * make room for one pod too many):
 * 1. the agent's assigned request is no longer unfinished: it finished; the agent holds nothing and that request
 *    becomes its last completed one, finished when it was first seen gone (`seenAt`) unless the list said so;
 * 2. the assigned request is now reserved by another agent (requeued after a lost lock): the agent holds nothing;
 * 3. otherwise the assigned request takes the job request's newer view.
 * Agents that hold nothing are returned as they are (a job an idle agent took shows in the job requests'
 * `reservedAgent`, which the scaling core reads too).
 */
export function correctAgentsByJobs(
  agents: readonly TaskAgent[],
  jobRequests: readonly TaskAgentJobRequest[],
  seenAt: number,
): TaskAgent[] {
  const byId = new Map(jobRequests.map((j) => [j.requestId, j]));
  return agents.map((agent) => {
    const held = agent.assignedRequest;
    if (held === undefined || held === null) return agent;
    const { assignedRequest: _, ...rest } = agent;
    const now = byId.get(held.requestId);
    if (now === undefined) {
      return {
        ...rest,
        lastCompletedRequest: { ...held, finishTime: held.finishTime ?? new Date(seenAt).toISOString() },
      };
    }
    if (now.reservedAgent !== undefined && now.reservedAgent.id !== agent.id) return rest;
    return { ...agent, assignedRequest: { ...held, ...now } };
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
  /** Fast polls left in the allowance (may be below zero after `pollNow()` calls). */
  readonly fastTokens: number;
  /** Whether the pool had live agent pods at the last poll (`poolLooksLive`). */
  readonly live: boolean;
  /** Why the last agent list was read. */
  readonly lastAgentRefresh: AgentRefreshReason | undefined;
  readonly agentsFetchedAt: number | undefined;
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
  /** The forced poll is urgent (see `urgentMinIntervalMs`). */
  #urgent = false;
  /** A change or `pollNow()` since the agents were read. */
  #agentsPending = false;
  #lastAgentRefresh: AgentRefreshReason | undefined;
  /** The last change of the job requests or `pollNow()` (epoch ms). */
  #lastActivityAt: number | undefined;
  #live = false;
  #fastTokens: number;
  #tokensAt: number;
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
    this.#fastTokens = this.options.fastPollsPerMinute;
    this.#tokensAt = this.#clock.now();
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
      fastTokens: this.#fastTokens,
      live: this.#live,
      lastAgentRefresh: this.#lastAgentRefresh,
      agentsFetchedAt: this.#agents === undefined ? undefined : this.#agentsFetchedAt,
    };
  }

  /**
   * Something happened that the poll should see (a webhook, the operator's own action): polls as soon as allowed,
   * at least `minIntervalMs` after the last poll started and never before a Retry-After; the poll reads the agents
   * again (once `agentsMinAgeMs` old) and work counts as moving (`fastWindowMs`). It takes a poll from the fast-poll
   * allowance when there is one, but does not wait for it: after its own actions the operator must not act again on
   * a job list older than what its pods have done meanwhile (a pod that ran its job within one quiet interval would
   * otherwise look like a job still waiting). While polls fail, the error backoff is kept. A poll in flight is
   * followed by another one. `urgent` (a service hook delivery) shortens the least time after the last poll to
   * `urgentMinIntervalMs`: the delivery may be about a job queued just after that poll.
   */
  pollNow(options: { urgent?: boolean } = {}): void {
    if (this.#stopped) return;
    this.#forced = true;
    if (options.urgent) this.#urgent = true;
    this.#lastActivityAt = this.#clock.now();
    if (this.#wake === undefined || this.#consecutiveErrors > 0) return;
    this.#bringForward();
  }

  /** Moves the next poll to the earliest forced poll when that is sooner (taking a poll from the allowance if any). */
  #bringForward(): boolean {
    const earliest = this.#earliestForcedPoll();
    if (earliest >= this.#due) return false;
    this.#refillTokens();
    if (this.#fastTokens >= 1) this.#fastTokens -= 1;
    this.#due = earliest;
    if (this.#wake !== undefined) this.#arm();
    return true;
  }

  #refillTokens(): void {
    const now = this.#clock.now();
    this.#fastTokens = refillFastTokens(this.#fastTokens, now - this.#tokensAt, this.options.fastPollsPerMinute);
    this.#tokensAt = now;
  }

  #hints(): (boolean | undefined)[] {
    return [...this.#subscribers].map((s) => {
      try {
        return s.hasLivePods?.();
      } catch {
        return undefined;
      }
    });
  }

  #earliestForcedPoll(): number {
    const now = this.#clock.now();
    const least = this.#urgent
      ? Math.min(this.options.urgentMinIntervalMs, this.options.minIntervalMs)
      : this.options.minIntervalMs;
    const afterLast = this.#lastStart === undefined ? now : this.#lastStart + least;
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
      this.#urgent = false;
      this.#lastStart = this.#clock.now();
      this.#polls++;
      let outcome: "snapshot" | "error";
      try {
        const snapshot = await this.#poll(forced);
        if (this.#stopped) break;
        this.#consecutiveErrors = 0;
        outcome = "snapshot";
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
      this.#refillTokens();
      const now = this.#clock.now();
      const interval = decidePollInterval(
        {
          outcome,
          consecutiveErrors: this.#consecutiveErrors,
          sinceActivityMs: this.#sinceActivity(now),
          fastTokens: this.#fastTokens,
          budgetMs: budgetIntervalMs(
            { requestsPerMinute: this.#reader.governor.budgetShare(), live: this.#live },
            this.options,
          ),
        },
        this.options,
        this.#random,
      );
      if (interval.fast) this.#fastTokens -= 1;
      const paced = this.#reader.governor.pollDelay(interval.baseMs, 2);
      this.#lastDelayMs = paced.delayMs;
      this.#lastDelayReason = paced.reason === "base" ? interval.reason : paced.reason;
      this.#due = now + paced.delayMs;
      if (this.#forced && outcome === "snapshot") this.#bringForward();
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
      const named = this.options.matchedAgentsNamed;
      jobRequests = await this.#reader.listJobRequests(poolId, {
        completedRequestCount: 0,
        ...(named === undefined ? {} : { matchedAgentsNamed: named }),
        signal,
      });
      const fetchedAt = this.#clock.now();
      changed = jobRequestsFingerprint(jobRequests) !== this.#fingerprint;
      const activity = changed && this.#fingerprint !== undefined;
      if (activity) this.#lastActivityAt = fetchedAt;
      this.#live = poolLooksLive(
        { hints: this.#hints(), agents, jobRequests, sinceActivityMs: this.#sinceActivity(fetchedAt) },
        this.options,
      );
      const pending = this.#agentsPending || activity || forced;
      const refresh = decideAgentRefresh(
        { hasList: agents !== undefined, pending, live: this.#live, ageMs: fetchedAt - this.#agentsFetchedAt },
        this.options,
      );
      this.#agentsPending = pending;
      if (refresh !== undefined) {
        agents = await this.#reader.listAgents(poolId, {
          includeAssignedRequest: true,
          includeLastCompletedRequest: true,
          includeCapabilities: this.options.includeAgentCapabilities,
          signal,
        });
        this.#agents = agents;
        this.#agentsFetchedAt = this.#clock.now();
        this.#agentsPending = false;
        this.#lastAgentRefresh = refresh;
        jobRequests = reconcileWithAgents(jobRequests, agents);
      }
      if (refresh === undefined && agents !== undefined) {
        // A reused list: the job requests just read are newer; an agent whose job is gone no longer holds it.
        this.#agents = correctAgentsByJobs(agents, jobRequests, fetchedAt);
        agents = this.#agents;
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

  #sinceActivity(now: number): number {
    return this.#lastActivityAt === undefined ? Number.POSITIVE_INFINITY : now - this.#lastActivityAt;
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
  /**
   * Requests a minute each identity's pollers spend on quiet pools, shared evenly by its pools (the governors'
   * `pollBudgetPerMinute`; default 40). Only used when `governors` is not given.
   */
  budgetPerMinute?: number;
  /** The most one pool's poller spends of it (`poolPollBudgetPerMinute`; default 20). */
  poolBudgetPerMinute?: number;
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
    this.governors =
      options.governors ??
      new GovernorRegistry({
        clock: this.#clock,
        random: this.#random,
        policy: {
          ...(options.budgetPerMinute === undefined ? {} : { pollBudgetPerMinute: options.budgetPerMinute }),
          ...(options.poolBudgetPerMinute === undefined
            ? {}
            : { poolPollBudgetPerMinute: options.poolBudgetPerMinute }),
        },
      });
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
   * delivery does: an urgent `pollNow()` on each, with its minimum interval and the governor still in force. Returns how many
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
      entry.poller.pollNow({ urgent: true });
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
