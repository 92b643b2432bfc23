/**
 * Rate-limit accounting as the service does it: each identity has a budget of TSTUs (usage units) over a sliding
 * window. Near the limit requests are delayed (still 200, `X-RateLimit-Delay`); over it they are blocked (429).
 * Pure: the caller passes `now` and acts on the decision (waits, or answers 429).
 */

export interface RateLimitConfig {
  enabled: boolean;
  /** TSTUs per identity in the window. Service: 200. */
  budget: number;
  /** Sliding window (ms). Service: 5 minutes. */
  windowMs: number;
  /** TSTUs one request costs. */
  costPerRequest: number;
  /** Usage (as a fraction of the budget, after this request) above which requests are delayed. */
  delayThreshold: number;
  /** How long a delayed request is held (ms). */
  delayMs: number;
  /** Usage fraction from which the X-RateLimit-* headers are sent on every response. */
  headersThreshold: number;
  /** Text of `X-RateLimit-Resource` and of the 429 message. */
  resource: string;
}

export const defaultRateLimitConfig: RateLimitConfig = {
  enabled: false,
  budget: 200,
  windowMs: 5 * 60_000,
  costPerRequest: 1,
  delayThreshold: 0.8,
  delayMs: 200,
  headersThreshold: 0.5,
  resource: "Core",
};

export interface RateLimitDecision {
  action: "allow" | "delay" | "block";
  /** How long to hold the response (delay only). */
  delayMs: number;
  /** Headers to add to the response (empty when usage is low). */
  headers: Record<string, string>;
  /** Usage after this request (TSTUs). */
  usage: number;
}

interface Charge {
  at: number;
  cost: number;
}

export class RateLimiter {
  #config: RateLimitConfig;
  #charges = new Map<string, Charge[]>();

  constructor(config: Partial<RateLimitConfig> = {}) {
    this.#config = { ...defaultRateLimitConfig, ...config };
  }

  get config(): RateLimitConfig {
    return { ...this.#config };
  }

  /** Changes the configuration; usage recorded so far is kept. */
  configure(config: Partial<RateLimitConfig>): RateLimitConfig {
    this.#config = { ...this.#config, ...config };
    return this.config;
  }

  reset(): void {
    this.#charges.clear();
  }

  /** Usage of an identity at `now` (TSTUs in the window). */
  usage(identity: string, now: number): number {
    return this.#live(identity, now).reduce((sum, c) => sum + c.cost, 0);
  }

  /**
   * Charges one request of `identity` at `now` (unless it is blocked, which costs nothing) and says what to do.
   * `force` makes a decision regardless of usage (fault injection: "delay" or "block").
   */
  evaluate(
    identity: string,
    now: number,
    options: { cost?: number; force?: "delay" | "block" } = {},
  ): RateLimitDecision {
    const cfg = this.#config;
    if (!cfg.enabled && !options.force) return { action: "allow", delayMs: 0, headers: {}, usage: 0 };
    const charges = this.#live(identity, now);
    const cost = options.cost ?? cfg.costPerRequest;
    const before = charges.reduce((sum, c) => sum + c.cost, 0);
    if (options.force === "block" || (cfg.enabled && before + cost > cfg.budget && !options.force)) {
      // Blocked: wait until enough old charges leave the window for this request to fit.
      let remaining = before;
      let freeAt = now;
      for (const c of charges) {
        if (remaining + cost <= cfg.budget) break;
        remaining -= c.cost;
        freeAt = c.at + cfg.windowMs;
      }
      const retryAfter = Math.max(1, Math.ceil((freeAt - now) / 1000));
      return {
        action: "block",
        delayMs: 0,
        usage: before,
        headers: { ...this.#headers(charges, before, now), "Retry-After": String(retryAfter) },
      };
    }
    charges.push({ at: now, cost });
    this.#charges.set(identity, charges);
    const after = before + cost;
    const delayed = options.force === "delay" || after > cfg.delayThreshold * cfg.budget;
    if (delayed) {
      const seconds = cfg.delayMs / 1000;
      return {
        action: "delay",
        delayMs: cfg.delayMs,
        usage: after,
        headers: {
          ...this.#headers(charges, after, now),
          "X-RateLimit-Delay": seconds.toFixed(3),
          "Retry-After": String(Math.max(1, Math.ceil(seconds))),
        },
      };
    }
    const headers = after >= cfg.headersThreshold * cfg.budget ? this.#headers(charges, after, now) : {};
    return { action: "allow", delayMs: 0, usage: after, headers };
  }

  #live(identity: string, now: number): Charge[] {
    const from = now - this.#config.windowMs;
    const charges = (this.#charges.get(identity) ?? []).filter((c) => c.at > from);
    if (charges.length === 0) this.#charges.delete(identity);
    else this.#charges.set(identity, charges);
    return charges;
  }

  #headers(charges: readonly Charge[], usage: number, now: number): Record<string, string> {
    const cfg = this.#config;
    const last = charges.at(-1)?.at ?? now;
    return {
      "X-RateLimit-Resource": cfg.resource,
      "X-RateLimit-Limit": String(cfg.budget),
      "X-RateLimit-Remaining": String(Math.max(0, Math.floor(cfg.budget - usage))),
      // When usage would be back to 0 if all consumption stopped now (Unix epoch seconds).
      "X-RateLimit-Reset": String(Math.ceil((last + cfg.windowMs) / 1000)),
    };
  }
}
