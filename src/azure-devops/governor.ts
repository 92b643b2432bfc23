/**
 * The rate-limit governor: one per credential identity, shared by every client and poller that uses it, because
 * Azure DevOps keeps one budget per identity (200 TSTUs in a sliding 5-minute window).
 *
 * It reads every answer's `Retry-After` (also on 200), `X-RateLimit-Limit/Remaining/Reset/Delay` and 429s, and says
 * - how long a request must wait before it may be sent (`requestWaitMs`): until any Retry-After has elapsed;
 * - how long a poller should wait before its next poll (`pollDelay`): its base interval, stretched as
 *   Remaining/Limit drops, as the service starts delaying requests, and never shorter than a Retry-After;
 * - what share of the identity's own polling budget (`pollBudgetPerMinute`, requests a minute) each of its pollers
 *   may spend (`budgetShare`): the budget divided evenly by the pollers attached.
 *
 * The decisions are pure functions of a small state, the observation and `now` (`applyObservation`,
 * `requestWaitMs`, `decidePollDelay`), table-tested; the class only holds the state and reads the clock.
 */
import { backoffDelay } from "../runtime/backoff.ts";
import { type Clock, type Random, systemClock } from "../runtime/clock.ts";

// ---------------------------------------------------------------------------------------------------------------
// Reading headers

/** What one answer said about the rate limit. Times are epoch ms, durations ms. */
export interface RateLimitObservation {
  readonly status: number;
  readonly retryAfterMs?: number | undefined;
  readonly limit?: number | undefined;
  readonly remaining?: number | undefined;
  /** `X-RateLimit-Reset` (epoch seconds) in epoch ms. */
  readonly resetAt?: number | undefined;
  /** `X-RateLimit-Delay` (seconds) in ms: the service held this request that long. */
  readonly delayMs?: number | undefined;
}

/** Reads `Retry-After`: delta seconds or an HTTP date. Undefined when absent, unreadable or not in the future. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) {
    const ms = Math.round(Number(text) * 1000);
    return ms > 0 ? ms : undefined;
  }
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  const ms = date - now;
  return ms > 0 ? ms : undefined;
}

function nonNegativeNumber(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (!/^\d+(\.\d+)?$/.test(text)) return undefined;
  return Number(text);
}

/** Reads the rate-limit headers of an answer. `get` is e.g. `headers.get.bind(headers)` (case-insensitive). */
export function readRateLimitHeaders(
  status: number,
  get: (name: string) => string | null,
  now: number,
): RateLimitObservation {
  const reset = nonNegativeNumber(get("X-RateLimit-Reset"));
  const delay = nonNegativeNumber(get("X-RateLimit-Delay"));
  return {
    status,
    retryAfterMs: parseRetryAfter(get("Retry-After"), now),
    limit: nonNegativeNumber(get("X-RateLimit-Limit")),
    remaining: nonNegativeNumber(get("X-RateLimit-Remaining")),
    resetAt: reset === undefined ? undefined : Math.round(reset * 1000),
    delayMs: delay === undefined ? undefined : Math.round(delay * 1000),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// State and decisions (pure)

export interface RateLimitState {
  /** No request before this time (epoch ms; 0 = none): the latest Retry-After, or backoff after a bare 429. */
  readonly blockedUntil: number;
  /** Budget information from the last answer that carried it; cleared by an answer without it. */
  readonly limit?: number | undefined;
  readonly remaining?: number | undefined;
  readonly resetAt?: number | undefined;
  readonly observedAt?: number | undefined;
  /** When the service last delayed a request (`X-RateLimit-Delay`). */
  readonly delayedAt?: number | undefined;
  /** 429s in a row (drives the backoff when a 429 has no Retry-After). */
  readonly consecutiveBlocks: number;
}

export const initialRateLimitState: RateLimitState = { blockedUntil: 0, consecutiveBlocks: 0 };

export interface GovernorPolicy {
  /**
   * Stretch factors of the poll interval by Remaining/Limit: the first step whose `belowRatio` the ratio is under
   * applies (checked from the smallest ratio up).
   */
  readonly slowdown: ReadonlyArray<{ readonly belowRatio: number; readonly factor: number }>;
  /** From this ratio down, polls are also spread so the remaining budget lasts until the reset. */
  readonly spreadBelowRatio: number;
  /** Factor applied for `delayMemoryMs` after the service delayed a request. */
  readonly delayedFactor: number;
  readonly delayMemoryMs: number;
  /** How long budget information stays valid when the answer gave no reset time (the service's window). */
  readonly budgetMemoryMs: number;
  /** Backoff after a 429 without Retry-After (by consecutive 429s). */
  readonly blockBackoff: { readonly initialMs: number; readonly maxMs: number; readonly jitter: number };
  /** Upper bound of the pacing delay (a Retry-After may be longer: it is always honoured). */
  readonly maxPollDelayMs: number;
  /**
   * Requests a minute that the pollers of this identity spend on quiet pools (job-request and agent lists together),
   * divided evenly by its pollers (`budgetShare`). Infinity: no budget of our own (only the service's headers).
   */
  readonly pollBudgetPerMinute: number;
  /** The most one poller (one pool) spends of it, however few pollers share it. Infinity: no cap. */
  readonly poolPollBudgetPerMinute: number;
}

export const defaultGovernorPolicy: GovernorPolicy = {
  slowdown: [
    { belowRatio: 0.1, factor: 8 },
    { belowRatio: 0.25, factor: 4 },
    { belowRatio: 0.5, factor: 2 },
  ],
  spreadBelowRatio: 0.25,
  delayedFactor: 2,
  delayMemoryMs: 60_000,
  budgetMemoryMs: 5 * 60_000,
  blockBackoff: { initialMs: 2_000, maxMs: 5 * 60_000, jitter: 0.2 },
  maxPollDelayMs: 5 * 60_000,
  pollBudgetPerMinute: 40,
  poolPollBudgetPerMinute: 20,
};

/**
 * Requests a minute one poller may spend: the identity's budget shared evenly by its pollers, at most `perPool`.
 * No budget (0 or Infinity): no limit of our own, the cap included.
 */
export function budgetShare(budgetPerMinute: number, pollers: number, perPool = Number.POSITIVE_INFINITY): number {
  if (!(budgetPerMinute > 0)) return Number.POSITIVE_INFINITY;
  const cap = perPool > 0 ? perPool : Number.POSITIVE_INFINITY;
  return Math.min(cap, budgetPerMinute / Math.max(1, pollers));
}

/**
 * The state after an answer:
 * - a Retry-After (any status) pushes `blockedUntil` to now + Retry-After (never earlier than it already is);
 * - a 429 without Retry-After blocks for an exponential backoff with jitter by consecutive 429s;
 * - budget headers replace the known budget; an answer without them clears it (the service sends them only when
 *   usage is high, so their absence means the pressure is gone), except on a 429;
 * - `X-RateLimit-Delay` is remembered as "the service is delaying us".
 */
export function applyObservation(
  state: RateLimitState,
  observation: RateLimitObservation,
  now: number,
  policy: GovernorPolicy = defaultGovernorPolicy,
  random: Random = () => 0,
): RateLimitState {
  const blocked = observation.status === 429;
  const consecutiveBlocks = blocked ? state.consecutiveBlocks + 1 : 0;
  let blockedUntil = state.blockedUntil;
  if (observation.retryAfterMs !== undefined && observation.retryAfterMs > 0) {
    blockedUntil = Math.max(blockedUntil, now + observation.retryAfterMs);
  } else if (blocked) {
    blockedUntil = Math.max(blockedUntil, now + backoffDelay(consecutiveBlocks - 1, policy.blockBackoff, random));
  }
  const hasBudget = observation.limit !== undefined && observation.remaining !== undefined;
  const next: RateLimitState = {
    blockedUntil,
    consecutiveBlocks,
    delayedAt: observation.delayMs !== undefined && observation.delayMs > 0 ? now : state.delayedAt,
    ...(hasBudget
      ? {
          limit: observation.limit,
          remaining: observation.remaining,
          resetAt: observation.resetAt,
          observedAt: now,
        }
      : blocked
        ? { limit: state.limit, remaining: 0, resetAt: state.resetAt, observedAt: now }
        : {}),
  };
  return next;
}

/** How long a request must wait before it may be sent: until any Retry-After has elapsed. */
export function requestWaitMs(state: RateLimitState, now: number): number {
  return Math.max(0, state.blockedUntil - now);
}

export type PollDelayReason = "base" | "blocked" | "low-budget" | "delayed";

export interface PollDelayDecision {
  readonly delayMs: number;
  readonly reason: PollDelayReason;
}

/** The share of the budget in [0, 1] still available, when the known budget is current. */
export function remainingRatio(state: RateLimitState, now: number, policy: GovernorPolicy): number | undefined {
  if (state.limit === undefined || state.remaining === undefined || state.observedAt === undefined) return undefined;
  if (state.limit <= 0) return undefined;
  const validUntil = state.resetAt ?? state.observedAt + policy.budgetMemoryMs;
  if (now >= validUntil) return undefined;
  return Math.min(1, Math.max(0, state.remaining / state.limit));
}

/**
 * How long a poller should wait before its next poll, given its base interval:
 * 1. the base interval, stretched by the slowdown factor of the current Remaining/Limit;
 * 2. at low budget, at least the time that spreads the remaining budget until the reset over every poller of this
 *    identity (`consumers` pollers making `callsPerPoll` calls each);
 * 3. while the service delays requests (recently `X-RateLimit-Delay`), at least `delayedFactor` times the base;
 * 4. capped at `maxPollDelayMs` (but never below the base);
 * 5. never before a Retry-After has elapsed.
 */
export function decidePollDelay(
  state: RateLimitState,
  input: { baseMs: number; now: number; callsPerPoll?: number; consumers?: number },
  policy: GovernorPolicy = defaultGovernorPolicy,
): PollDelayDecision {
  const { baseMs, now } = input;
  let delayMs = baseMs;
  let reason: PollDelayReason = "base";
  const ratio = remainingRatio(state, now, policy);
  if (ratio !== undefined) {
    const step = [...policy.slowdown].sort((a, b) => a.belowRatio - b.belowRatio).find((s) => ratio < s.belowRatio);
    if (step !== undefined && baseMs * step.factor > delayMs) {
      delayMs = baseMs * step.factor;
      reason = "low-budget";
    }
    if (ratio < policy.spreadBelowRatio) {
      const resetAt = state.resetAt ?? (state.observedAt ?? now) + policy.budgetMemoryMs;
      const calls = Math.max(1, input.callsPerPoll ?? 1) * Math.max(1, input.consumers ?? 1);
      const spread = ((resetAt - now) * calls) / Math.max(1, state.remaining ?? 0);
      if (spread > delayMs) {
        delayMs = spread;
        reason = "low-budget";
      }
    }
  }
  if (state.delayedAt !== undefined && now - state.delayedAt < policy.delayMemoryMs) {
    if (baseMs * policy.delayedFactor > delayMs) {
      delayMs = baseMs * policy.delayedFactor;
      reason = "delayed";
    }
  }
  delayMs = Math.max(baseMs, Math.min(delayMs, policy.maxPollDelayMs));
  const wait = requestWaitMs(state, now);
  if (wait > delayMs) return { delayMs: wait, reason: "blocked" };
  return { delayMs: Math.round(delayMs), reason };
}

// ---------------------------------------------------------------------------------------------------------------
// The stateful shell

export interface RateLimitGovernorOptions {
  clock?: Clock;
  random?: Random;
  policy?: Partial<GovernorPolicy>;
}

export class RateLimitGovernor {
  readonly identity: string;
  readonly policy: GovernorPolicy;
  #clock: Clock;
  #random: Random;
  #state: RateLimitState = initialRateLimitState;
  #consumers = 0;

  constructor(identity: string, options: RateLimitGovernorOptions = {}) {
    this.identity = identity;
    this.#clock = options.clock ?? systemClock();
    this.#random = options.random ?? Math.random;
    this.policy = { ...defaultGovernorPolicy, ...options.policy };
  }

  get state(): RateLimitState {
    return this.#state;
  }

  /** Pollers currently pacing themselves on this budget. */
  get consumers(): number {
    return this.#consumers;
  }

  /** A poller starts sharing this budget; call the returned function when it stops. */
  attach(): () => void {
    this.#consumers++;
    let attached = true;
    return () => {
      if (attached) this.#consumers--;
      attached = false;
    };
  }

  /** Records an answer's status and headers. */
  observe(status: number, get: (name: string) => string | null): RateLimitState {
    const now = this.#clock.now();
    return this.record(readRateLimitHeaders(status, get, now));
  }

  record(observation: RateLimitObservation): RateLimitState {
    this.#state = applyObservation(this.#state, observation, this.#clock.now(), this.policy, this.#random);
    return this.#state;
  }

  /** Milliseconds until a request may be sent (0: now). */
  requestWaitMs(): number {
    return requestWaitMs(this.#state, this.#clock.now());
  }

  /** Requests a minute each poller of this identity may spend while its pool is quiet. */
  budgetShare(): number {
    return budgetShare(this.policy.pollBudgetPerMinute, this.#consumers, this.policy.poolPollBudgetPerMinute);
  }

  /** The next poll's delay for a poller with this base interval. */
  pollDelay(baseMs: number, callsPerPoll = 1): PollDelayDecision {
    return decidePollDelay(
      this.#state,
      { baseMs, now: this.#clock.now(), callsPerPoll, consumers: this.#consumers },
      this.policy,
    );
  }
}

/** One governor per identity key. Create one registry per process (the operator's main) and share it. */
export class GovernorRegistry {
  #options: RateLimitGovernorOptions;
  #governors = new Map<string, RateLimitGovernor>();

  constructor(options: RateLimitGovernorOptions = {}) {
    this.#options = options;
  }

  get(identity: string): RateLimitGovernor {
    let governor = this.#governors.get(identity);
    if (governor === undefined) {
      governor = new RateLimitGovernor(identity, this.#options);
      this.#governors.set(identity, governor);
    }
    return governor;
  }

  get size(): number {
    return this.#governors.size;
  }
}
