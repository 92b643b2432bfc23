/**
 * Debouncing of hook-triggered polls, per organization: a burst of deliveries (a pipeline queuing 50 jobs sends 50,
 * then 50 more as they start) asks for at most one poll per window, and the first delivery of a quiet period is
 * acted on at once. `decideDebounce` is the pure rule; `OrganizationDebouncer` keeps the state and the timers on an
 * injected clock.
 */
import { type Clock, systemClock, type TimerHandle } from "../runtime/clock.ts";

export interface DebounceState {
  /** When a poll was last asked for (epoch ms). */
  readonly lastFiredAt: number | undefined;
  /** When the trailing poll is due, if one is scheduled. */
  readonly scheduledAt: number | undefined;
}

export type DebounceDecision = { kind: "fire" } | { kind: "schedule"; at: number } | { kind: "coalesce" };

/**
 * What to do with a delivery for an organization. Rules:
 * 1. A trailing poll is already scheduled: coalesce (it comes after this delivery, so it sees what it announces).
 * 2. No poll asked for within the last `windowMs`: fire now (the first delivery of a burst is not delayed).
 * 3. A poll was asked for within the window: schedule one trailing poll at the window's end (the poll already under
 *    way may have read the job requests before this change).
 */
export function decideDebounce(state: DebounceState, now: number, windowMs: number): DebounceDecision {
  if (state.scheduledAt !== undefined) return { kind: "coalesce" };
  if (state.lastFiredAt === undefined || now - state.lastFiredAt >= windowMs) return { kind: "fire" };
  return { kind: "schedule", at: state.lastFiredAt + windowMs };
}

interface Entry {
  lastFiredAt: number | undefined;
  scheduledAt: number | undefined;
  timer: TimerHandle | undefined;
}

/** Outcome of one delivery for one organization: polled now, or folded into a poll at the window's end. */
export type DebounceOutcome = "fired" | "coalesced";

export class OrganizationDebouncer {
  #windowMs: number;
  #clock: Clock;
  #fire: (organizationUrl: string) => void;
  #entries = new Map<string, Entry>();
  #closed = false;

  /** `fire` asks for the poll (at once or when a window ends); organizations are keyed case-insensitively. */
  constructor(options: { windowMs: number; fire: (organizationUrl: string) => void; clock?: Clock }) {
    this.#windowMs = options.windowMs;
    this.#fire = options.fire;
    this.#clock = options.clock ?? systemClock();
  }

  trigger(organizationUrl: string): DebounceOutcome {
    if (this.#closed) return "coalesced";
    const key = organizationUrl.toLowerCase();
    const now = this.#clock.now();
    const entry = this.#entries.get(key) ?? { lastFiredAt: undefined, scheduledAt: undefined, timer: undefined };
    this.#entries.set(key, entry);
    this.#forgetIdle(now, key);
    const decision = decideDebounce(entry, now, this.#windowMs);
    if (decision.kind === "fire") {
      entry.lastFiredAt = now;
      this.#fire(organizationUrl);
      return "fired";
    }
    if (decision.kind === "schedule") {
      entry.scheduledAt = decision.at;
      entry.timer = this.#clock.setTimeout(() => {
        entry.timer = undefined;
        entry.scheduledAt = undefined;
        entry.lastFiredAt = this.#clock.now();
        if (!this.#closed) this.#fire(organizationUrl);
      }, decision.at - now);
    }
    return "coalesced";
  }

  /** Organizations with state (for tests: idle ones are forgotten). */
  get size(): number {
    return this.#entries.size;
  }

  /** Cancels the scheduled polls. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) this.#clock.clearTimeout(entry.timer);
    this.#entries.clear();
  }

  /** Drops organizations whose window has passed with nothing scheduled: their state decides nothing any more. */
  #forgetIdle(now: number, keep: string): void {
    for (const [key, entry] of this.#entries) {
      if (key === keep || entry.scheduledAt !== undefined) continue;
      if (entry.lastFiredAt === undefined || now - entry.lastFiredAt >= this.#windowMs) this.#entries.delete(key);
    }
  }
}
