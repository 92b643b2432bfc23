/**
 * Exponential backoff with jitter, as a pure function of the attempt number and a random draw.
 * Shared by the informer's restarts, the conflict retries and the leader elector's acquire loop.
 */
import type { Random } from "./clock.ts";

export interface BackoffOptions {
  /** Delay before the first retry (attempt 0). */
  initialMs: number;
  /** Upper bound of any delay, jitter included. */
  maxMs: number;
  /** Growth per attempt; default 2. */
  factor?: number;
  /**
   * Fraction in [0, 1] by which a delay is randomly shortened, so that many clients failing together do not
   * retry together: the delay lies in [d * (1 - jitter), d]. Default 0 (no jitter).
   */
  jitter?: number;
}

/** The delay before retry number `attempt` (0-based): min(maxMs, initialMs * factor^attempt), minus jitter. */
export function backoffDelay(attempt: number, options: BackoffOptions, random: Random = () => 0): number {
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0));
  const n = Math.max(0, Math.floor(attempt));
  // Stop multiplying once the cap is reached so huge attempt numbers cannot overflow to Infinity/NaN.
  let base = options.initialMs;
  for (let i = 0; i < n && base < options.maxMs; i++) base *= factor;
  const capped = Math.min(options.maxMs, base);
  return Math.max(0, Math.round(capped * (1 - jitter * random())));
}
