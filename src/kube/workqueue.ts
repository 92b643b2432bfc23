/**
 * A keyed work queue, the way controllers use one:
 * - a key queued twice is processed once (dedup);
 * - a key is processed by one worker at a time; a key added while it is being processed is queued again when
 *   that worker is done, so the newest state is always looked at;
 * - failed keys come back after a per-key exponential backoff (`addRateLimited`, reset by `forget`);
 * - `addAfter` schedules a key (the earliest of several schedules wins);
 * - `shutdown({ drain })` either lets workers finish what is queued, or drops it and aborts running handlers.
 * Keys are strings (typically `namespace/name`). Time comes from an injected clock.
 */
import { type Clock, systemClock, type TimerHandle } from "../runtime/clock.ts";
import { errorMessage, type Logger, silentLogger } from "../runtime/logger.ts";

export interface RateLimiterOptions {
  /** First retry delay; default 200 ms. */
  baseMs?: number;
  /** Longest retry delay; default 5 minutes. */
  maxMs?: number;
}

/** Per-key exponential backoff: base * 2^failures, capped at max; `forget` starts the key over. */
export class ExponentialRateLimiter {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly #failures = new Map<string, number>();

  constructor(options: RateLimiterOptions = {}) {
    this.baseMs = options.baseMs ?? 200;
    this.maxMs = options.maxMs ?? 300_000;
    if (this.baseMs <= 0 || this.maxMs < this.baseMs) throw new Error("rate limiter: need 0 < baseMs <= maxMs");
  }

  /** The delay for the key's next retry; counts one more failure. */
  when(key: string): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    let d = this.baseMs;
    for (let i = 0; i < n && d < this.maxMs; i++) d *= 2;
    return Math.min(d, this.maxMs);
  }

  retries(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }
}

/** What a handler asks for after processing a key (returning nothing means: done, forget the key). */
export type ProcessResult =
  | undefined
  /** Process again after the key's backoff (as if it had thrown, but without an error log). */
  | { requeue: true }
  /** Process again after this delay (resets the key's backoff). */
  | { requeueAfterMs: number };

// biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing (Promise<void>) means "done".
export type ProcessFn = (key: string, signal: AbortSignal) => Promise<ProcessResult | void> | ProcessResult | void;

export interface WorkQueueOptions {
  name?: string;
  clock?: Clock;
  logger?: Logger;
  rateLimiter?: RateLimiterOptions;
}

export interface WorkQueueStats {
  /** Keys waiting for a worker. */
  depth: number;
  /** Keys being processed. */
  processing: number;
  /** Keys scheduled by addAfter / addRateLimited, not yet due. */
  waiting: number;
  adds: number;
  retries: number;
}

interface Waiter {
  resolve(key: string | undefined): void;
}

export class WorkQueue {
  readonly name: string;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #limiter: ExponentialRateLimiter;
  /** Keys ready to be handed out, in order. */
  #queue: string[] = [];
  /** Keys that need processing (queued, or re-added while processing). */
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #delayed = new Map<string, { due: number; timer: TimerHandle }>();
  readonly #waiters: Waiter[] = [];
  readonly #idleWaiters: (() => void)[] = [];
  readonly #abort = new AbortController();
  #shuttingDown = false;
  #drain = true;
  #adds = 0;
  #retries = 0;

  constructor(options: WorkQueueOptions = {}) {
    this.name = options.name ?? "workqueue";
    this.#clock = options.clock ?? systemClock();
    this.#log = options.logger ?? silentLogger();
    this.#limiter = new ExponentialRateLimiter(options.rateLimiter);
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Number of keys waiting for a worker. */
  get length(): number {
    return this.#queue.length;
  }

  /** Aborted when the queue shuts down without draining: running handlers should give up. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  stats(): WorkQueueStats {
    return {
      depth: this.#queue.length,
      processing: this.#processing.size,
      waiting: this.#delayed.size,
      adds: this.#adds,
      retries: this.#retries,
    };
  }

  /** Queues a key unless it is already queued. Ignored after shutdown. */
  add(key: string): void {
    if (this.#shuttingDown) return;
    if (this.#dirty.has(key)) return;
    this.#adds++;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return; // queued again by done()
    this.#queue.push(key);
    this.#wake();
  }

  /** Queues a key after `ms`; when the key is already scheduled, the earlier time wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const due = this.#clock.now() + ms;
    const existing = this.#delayed.get(key);
    if (existing && existing.due <= due) return;
    if (existing) this.#clock.clearTimeout(existing.timer);
    const timer = this.#clock.setTimeout(() => {
      const entry = this.#delayed.get(key);
      if (entry?.timer !== timer) return;
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { due, timer });
  }

  /** Queues a key after its backoff, which doubles with every call until `forget`. */
  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.#retries++;
    this.addAfter(key, this.#limiter.when(key));
  }

  /** Resets a key's backoff (call after it was processed successfully). */
  forget(key: string): void {
    this.#limiter.forget(key);
  }

  /** How many times the key has been rate-limited since it was last forgotten. */
  retries(key: string): number {
    return this.#limiter.retries(key);
  }

  /**
   * The next key to process, waiting for one if needed; `undefined` once the queue is shut down (after the
   * queued keys when draining). Every key obtained must be handed back with `done(key)`.
   */
  get(): Promise<string | undefined> {
    const key = this.#take();
    if (key !== undefined || this.#shuttingDown) return Promise.resolve(key);
    return new Promise((resolve) => this.#waiters.push({ resolve }));
  }

  /** Marks a key processed; if it was added meanwhile it goes back on the queue. */
  done(key: string): void {
    if (!this.#processing.delete(key)) return;
    if (this.#dirty.has(key)) {
      if (this.#shuttingDown && !this.#drain) this.#dirty.delete(key);
      else {
        this.#queue.push(key);
        this.#wake();
      }
    }
    if (this.#processing.size === 0) this.#checkIdle();
  }

  /**
   * Runs `workers` loops that take keys and call `process`. A throw logs and requeues the key with backoff;
   * `{ requeue: true }` requeues with backoff; `{ requeueAfterMs }` requeues after that delay; otherwise the key
   * is forgotten. Resolves when the queue has shut down and every worker has returned.
   */
  async run(process: ProcessFn, options: { workers?: number } = {}): Promise<void> {
    const n = Math.max(1, options.workers ?? 1);
    const worker = async () => {
      for (;;) {
        const key = await this.get();
        if (key === undefined) return;
        try {
          const result = await process(key, this.#abort.signal);
          if (result && "requeueAfterMs" in result) {
            this.forget(key);
            this.addAfter(key, result.requeueAfterMs);
          } else if (result && "requeue" in result && result.requeue) {
            this.addRateLimited(key);
          } else {
            this.forget(key);
          }
        } catch (err) {
          if (!this.#abort.signal.aborted) {
            this.#log.warn("processing failed; retrying with backoff", {
              queue: this.name,
              key,
              retries: this.retries(key),
              error: errorMessage(err),
            });
          }
          this.addRateLimited(key);
        } finally {
          this.done(key);
        }
      }
    };
    await Promise.all(Array.from({ length: n }, worker));
  }

  /**
   * Stops accepting keys and cancels scheduled ones. `drain: true` (default): workers still get every queued key
   * (and keys re-added while they ran); `drain: false`: queued keys are dropped and the signal given to running
   * handlers aborts. Resolves when no key is queued (draining) or being processed.
   */
  shutdown(options: { drain?: boolean } = {}): Promise<void> {
    const drain = options.drain ?? true;
    if (!this.#shuttingDown) {
      this.#shuttingDown = true;
      this.#drain = drain;
      for (const { timer } of this.#delayed.values()) this.#clock.clearTimeout(timer);
      this.#delayed.clear();
    }
    if (!drain) {
      this.#drain = false;
      for (const k of this.#queue) this.#dirty.delete(k);
      this.#queue = [];
      if (!this.#abort.signal.aborted) this.#abort.abort(new Error(`work queue ${this.name} shut down`));
    }
    // Workers waiting for a key may now return.
    if (this.#queue.length === 0) this.#releaseWaiters();
    return new Promise<void>((resolve) => {
      this.#idleWaiters.push(resolve);
      this.#checkIdle();
    });
  }

  #take(): string | undefined {
    const key = this.#queue.shift();
    if (key === undefined) return undefined;
    this.#dirty.delete(key);
    this.#processing.add(key);
    return key;
  }

  #wake(): void {
    while (this.#waiters.length > 0 && this.#queue.length > 0) {
      const waiter = this.#waiters.shift() as Waiter;
      waiter.resolve(this.#take());
    }
  }

  #releaseWaiters(): void {
    for (const w of this.#waiters.splice(0)) w.resolve(undefined);
  }

  #checkIdle(): void {
    if (!this.#shuttingDown) return;
    if (this.#queue.length === 0) this.#releaseWaiters();
    if (this.#processing.size > 0 || this.#queue.length > 0) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}
