/**
 * Time for the emulator and the simulated agent: `now()` and timers behind one interface, so the engine can run
 * on the real clock (the HTTP server's default) or on a manual clock that tests advance by hand.
 */

/** An opaque timer handle; only the clock that made it can clear it. */
export interface TimerHandle {
  readonly clockTimer: true;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

interface RealHandle extends TimerHandle {
  timer: NodeJS.Timeout;
}

/**
 * The system clock. With `unref`, its timers do not keep the process alive: the emulator uses that (its open
 * sockets keep the process alive, its own timers for lock and session expiry must not); the agent does not.
 */
export function systemClock(options: { unref?: boolean } = {}): Clock {
  return {
    now: () => Date.now(),
    setTimeout(callback, ms) {
      const timer = setTimeout(callback, Math.max(0, ms));
      if (options.unref) timer.unref();
      const handle: RealHandle = { clockTimer: true, timer };
      return handle;
    },
    clearTimeout(handle) {
      clearTimeout((handle as RealHandle).timer);
    },
  };
}

interface ManualTimer extends TimerHandle {
  due: number;
  seq: number;
  callback: () => void;
}

/** A clock that only moves when told to; timers fire in due order during `advance`. For tests. */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers = new Set<ManualTimer>();

  constructor(start: number | Date = Date.UTC(2025, 0, 1, 12, 0, 0)) {
    this.#now = typeof start === "number" ? start : start.getTime();
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = { clockTimer: true, due: this.#now + Math.max(0, ms), seq: this.#seq++, callback };
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as ManualTimer);
  }

  /** Timers not yet fired. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer that falls due (including ones scheduled meanwhile). */
  advance(ms: number): void {
    const target = this.#now + Math.max(0, ms);
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.#timers) {
        if (t.due <= target && (!next || t.due < next.due || (t.due === next.due && t.seq < next.seq))) next = t;
      }
      if (!next) break;
      this.#timers.delete(next);
      this.#now = Math.max(this.#now, next.due);
      next.callback();
    }
    this.#now = target;
  }
}

/**
 * Resolves after `ms` on `clock`, or rejects with the signal's reason when it aborts first. Zero or less resolves
 * at once, without a timer (so it needs no advance of a manual clock).
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    if (ms <= 0) {
      resolve();
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal?.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
