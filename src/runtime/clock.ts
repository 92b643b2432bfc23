/**
 * Time as a seam: every runtime piece (informer, work queue, leader election, event recorder, retries) reads the
 * time and schedules timers through a `Clock` passed in its options, so unit tests drive time by hand with
 * `ManualClock` instead of sleeping.
 */

/** An opaque timer handle, as returned by `Clock.setTimeout`. */
export type TimerHandle = unknown;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** The real clock: `Date.now` and the global timers. */
export function systemClock(): Clock {
  return {
    now: () => Date.now(),
    setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
    clearTimeout: (handle) => {
      if (handle !== undefined) clearTimeout(handle as NodeJS.Timeout);
    },
  };
}

/** Kubernetes MicroTime (Lease times, Event times): RFC 3339 in UTC with exactly six fractional digits. */
export function formatMicroTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** A source of uniformly distributed numbers in [0, 1): `Math.random` in production, a sequence in tests. */
export type Random = () => number;

/**
 * Waits `ms` on `clock`. Resolves `true` when the time has passed, `false` at once when `signal` aborts
 * (never rejects, so loops can simply check the result). The timer is cleared on abort.
 */
export function delay(clock: Clock, ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onAbort = () => {
      clock.clearTimeout(handle);
      resolve(false);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

interface ManualTimer {
  id: number;
  due: number;
  fn: () => void;
}

/**
 * A clock that only moves when told to. Timers fire in due order (ties in the order they were set).
 * `advance` is synchronous; `tick` lets promise continuations run between timers, which is what code under
 * test that awaits between timers needs.
 */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers: ManualTimer[] = [];

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = { id: this.#nextId++, due: this.#now + Math.max(0, ms), fn };
    this.#timers.push(timer);
    return { id: timer.id };
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle === undefined) return;
    const id = (handle as { id?: number }).id;
    this.#timers = this.#timers.filter((t) => t.id !== id);
  }

  /** Number of timers not yet fired. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Due time of the next timer, if any. */
  nextDue(): number | undefined {
    return this.#next()?.due;
  }

  #next(): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.#timers) if (!best || t.due < best.due || (t.due === best.due && t.id < best.id)) best = t;
    return best;
  }

  #fireNext(until: number): boolean {
    const t = this.#next();
    if (!t || t.due > until) return false;
    this.#timers = this.#timers.filter((x) => x !== t);
    this.#now = Math.max(this.#now, t.due);
    t.fn();
    return true;
  }

  /** Moves time forward by `ms`, firing due timers synchronously. */
  advance(ms: number): void {
    const until = this.#now + ms;
    while (this.#fireNext(until)) {
      // keep firing
    }
    this.#now = until;
  }

  /** Moves time forward by `ms`, letting pending promise work settle before and after each timer. */
  async tick(ms = 0): Promise<void> {
    const until = this.#now + ms;
    await settle();
    while (this.#fireNext(until)) await settle();
    this.#now = until;
    await settle();
  }
}

/** Lets every queued promise continuation (and I/O-free macrotask chain) run. */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
