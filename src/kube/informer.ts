/**
 * An informer: keeps a local cache of one resource type in step with the API server (list, then watch from the
 * list's resourceVersion) and tells handlers about adds, updates and deletes.
 *
 * It never stops silently. Whatever goes wrong, it starts again:
 * - the server ends the watch (timeoutSeconds reached, apiserver restart): watch again from the last version;
 * - transport or HTTP error, ERROR event: back off (exponential, jittered, capped), then watch again from the last
 *   version, or list again when there is none;
 * - 410 Gone (HTTP status or ERROR event with code 410: the version is too old) and undecodable events: back off,
 *   then relist; objects that vanished meanwhile are reported as deleted with `finalStateUnknown`;
 * - nothing at all (not even a bookmark) for `staleAfterMs`: the watchdog drops the watch and opens a new one.
 * Bookmarks only move the resume version forward. `health()` reports the last sync, restarts and the last error.
 */
import { type BackoffOptions, backoffDelay } from "../runtime/backoff.ts";
import { type Clock, delay, type Random, systemClock, type TimerHandle } from "../runtime/clock.ts";
import { errorMessage, type Logger, silentLogger } from "../runtime/logger.ts";
import { isGone, KubeApiError, type WatchEvent } from "./client.ts";
import type { ListWatch } from "./listwatch.ts";
import { type IndexFn, objectKey, Store } from "./store.ts";
import type { KubeList, KubeObject, KubeStatus } from "./types.ts";

export interface InformerHandler<T> {
  /** `initialList`: the object was in the first list (or the cache when the handler was added), not a change. */
  onAdd?(obj: T, info: { initialList: boolean }): void;
  /** Also called with old === obj on periodic resync. */
  onUpdate?(old: T, obj: T): void;
  /**
   * `finalStateUnknown`: the deletion was noticed by a relist, so `obj` is the last state the cache had,
   * not the state at deletion.
   */
  onDelete?(obj: T, info: { finalStateUnknown: boolean }): void;
}

export interface InformerHealth {
  name: string;
  running: boolean;
  /** The first list has completed. */
  synced: boolean;
  /** A watch stream is currently open. */
  watching: boolean;
  resourceVersion: string;
  objects: number;
  /** Time (ms) of the last successful list. */
  lastSyncTime?: number;
  /** When that list was asked for: every object that existed then is in the cache (or was deleted since). */
  lastListStartTime?: number;
  /** Time (ms) the cache was last known current: last list, event or bookmark. */
  lastActivityTime?: number;
  /** Restarts of list/watch after an error, a 410 or the watchdog (a server-ended watch is not counted). */
  restarts: number;
  /** Failures since the last event received; drives the backoff. */
  consecutiveFailures: number;
  lastError?: { message: string; time: number };
}

export interface InformerOptions<T extends KubeObject> {
  listWatch: ListWatch<T>;
  /** For logs and health, e.g. `pods` or `autoscaledagents`. */
  name?: string;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
  /** Server-side watch timeout; each watch asks for a random value in [t, 2t). Default 300. */
  watchTimeoutSeconds?: number;
  /** Watchdog: restart a watch that delivered nothing (not even a bookmark) for this long. Default 150 s. */
  staleAfterMs?: number;
  /** Restart backoff. Default: 500 ms doubling to 30 s, jitter 0.5. */
  backoff?: Partial<BackoffOptions>;
  /** Calls onUpdate(obj, obj) for every cached object this often (0: never, the default). */
  resyncIntervalMs?: number;
  indexers?: Record<string, IndexFn<T>>;
  /**
   * Applied to every listed or watched object before it is cached and handed to handlers (e.g.
   * `withoutManagedFields`, to keep less in memory). It must not change what the cache's users read.
   */
  transform?: (obj: T) => T;
  /** Aborting stops the informer (like `stop()`). */
  signal?: AbortSignal;
}

/**
 * The object without `metadata.managedFields` (server-side apply bookkeeping the operator never reads: about a
 * third of a pod's JSON). A shallow copy; the object given is not changed.
 */
export function withoutManagedFields<T extends KubeObject>(obj: T): T {
  if (obj.metadata?.managedFields === undefined) return obj;
  const { managedFields: _, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

/** The watch said 410 Gone: the resume version is too old; a relist is needed. */
export class WatchExpiredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WatchExpiredError";
  }
}

/** An event that cannot be understood (unknown type, object without name); the cache may have missed state. */
export class WatchDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WatchDecodeError";
  }
}

interface SyncWaiter {
  resolve(): void;
  reject(err: Error): void;
}

export class Informer<T extends KubeObject> {
  readonly store: Store<T>;
  readonly #transform: ((obj: T) => T) | undefined;
  readonly name: string;
  readonly #lw: ListWatch<T>;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger;
  readonly #watchTimeoutSeconds: number;
  readonly #staleAfterMs: number;
  readonly #backoff: BackoffOptions;
  readonly #resyncIntervalMs: number;
  readonly #handlers = new Set<InformerHandler<T>>();
  readonly #syncWaiters = new Set<SyncWaiter>();
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  #started = false;
  #synced = false;
  #watching = false;
  #resourceVersion = "";
  #restarts = 0;
  #failures = 0;
  #lastSyncTime: number | undefined;
  #lastListStartTime: number | undefined;
  #attempt: AbortController | undefined;
  #relistWaiters: (() => void)[] = [];
  #lastActivityTime: number | undefined;
  #lastError: { message: string; time: number } | undefined;
  #resyncTimer: TimerHandle | undefined;

  constructor(options: InformerOptions<T>) {
    this.#lw = options.listWatch;
    this.name = options.name ?? "informer";
    this.#clock = options.clock ?? systemClock();
    this.#random = options.random ?? Math.random;
    this.#log = options.logger ?? silentLogger();
    this.#watchTimeoutSeconds = Math.max(1, Math.floor(options.watchTimeoutSeconds ?? 300));
    this.#staleAfterMs = options.staleAfterMs ?? 150_000;
    this.#backoff = { initialMs: 500, maxMs: 30_000, jitter: 0.5, ...options.backoff };
    this.#resyncIntervalMs = options.resyncIntervalMs ?? 0;
    this.store = new Store<T>(options.indexers);
    this.#transform = options.transform;
    if (options.signal) {
      if (options.signal.aborted) this.#stop.abort();
      else options.signal.addEventListener("abort", () => void this.stop(), { once: true });
    }
  }

  /**
   * Registers handlers; returns a function that removes them. Handlers added after the first list get an
   * `onAdd` (initialList: true) for every object already cached. Handlers run synchronously and must be quick
   * (typically: put a key on a work queue); what they throw is logged and ignored.
   */
  addHandler(handler: InformerHandler<T>): () => void {
    this.#handlers.add(handler);
    if (this.#synced)
      for (const obj of this.store.list()) this.#call("onAdd", () => handler.onAdd?.(obj, { initialList: true }));
    return () => {
      this.#handlers.delete(handler);
    };
  }

  /** Starts listing and watching in the background. Idempotent; an informer cannot be restarted after stop(). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (this.#stop.signal.aborted) return;
    this.#running = this.#run();
    this.#scheduleResync();
  }

  /** Stops: aborts the open request, clears every timer, and resolves once the loop has ended. */
  async stop(): Promise<void> {
    if (!this.#stop.signal.aborted) this.#stop.abort();
    this.#clock.clearTimeout(this.#resyncTimer);
    this.#resyncTimer = undefined;
    for (const w of this.#syncWaiters) w.reject(new Error(`informer ${this.name} stopped before its first sync`));
    this.#syncWaiters.clear();
    await this.#running;
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  /** Resolves after the first successful list; rejects if the informer stops or `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    if (this.#stop.signal.aborted) return Promise.reject(new Error(`informer ${this.name} is stopped`));
    if (signal?.aborted) return Promise.reject(signal.reason ?? new Error("aborted"));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#syncWaiters.delete(waiter);
        reject(signal?.reason ?? new Error("aborted"));
      };
      const waiter: SyncWaiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      this.#syncWaiters.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The last resourceVersion seen (list, event or bookmark). */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  health(): InformerHealth {
    const h: InformerHealth = {
      name: this.name,
      running: this.#started && !this.#stop.signal.aborted,
      synced: this.#synced,
      watching: this.#watching,
      resourceVersion: this.#resourceVersion,
      objects: this.store.size,
      restarts: this.#restarts,
      consecutiveFailures: this.#failures,
    };
    if (this.#lastSyncTime !== undefined) h.lastSyncTime = this.#lastSyncTime;
    if (this.#lastListStartTime !== undefined) h.lastListStartTime = this.#lastListStartTime;
    if (this.#lastActivityTime !== undefined) h.lastActivityTime = this.#lastActivityTime;
    if (this.#lastError) h.lastError = { ...this.#lastError };
    return h;
  }

  /**
   * Lists again now (the watch is dropped and reopened from the new list): for a cache that must be known current,
   * e.g. when this replica becomes the leader after a watch that may have been silently stalled. Resolves once the
   * new list is in the cache.
   */
  relist(): Promise<void> {
    return new Promise((resolve) => {
      this.#relistWaiters.push(resolve);
      this.#attempt?.abort();
    });
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    let needList = true;
    while (!stop.aborted) {
      const attempt = new AbortController();
      this.#attempt = attempt;
      const abortAttempt = () => attempt.abort();
      stop.addEventListener("abort", abortAttempt, { once: true });
      let stale = false;
      const relistAsked = () => this.#relistWaiters.length > 0;
      try {
        if (needList || relistAsked()) {
          const listStarted = this.#clock.now();
          const list = await this.#lw.list({ signal: attempt.signal });
          if (stop.aborted) break;
          this.#applyList(list, listStarted);
          needList = false;
          // Every waiter was there when this list began: one asking later aborts the list and gets the next.
          for (const w of this.#relistWaiters.splice(0)) w();
        }
        const outcome = await this.#watchOnce(attempt, () => {
          stale = true;
        });
        if (stop.aborted) break;
        if (relistAsked()) continue;
        if (stale) {
          this.#noteRestart(`no event or bookmark for ${this.#staleAfterMs} ms`, "watch is stale: restarting it");
          continue;
        }
        if (outcome.events === 0 && outcome.durationMs < 1000) {
          // A stream that ends at once without a single event is a failure in disguise: do not spin on it.
          this.#failures++;
          await delay(this.#clock, this.#nextDelay(), stop);
        } else {
          this.#log.debug("watch ended by the server; watching again", { informer: this.name });
        }
      } catch (err) {
        if (stop.aborted) break;
        // A relist was asked for: the aborted watch is no failure.
        if (relistAsked()) continue;
        if (stale) {
          this.#noteRestart(`no event or bookmark for ${this.#staleAfterMs} ms`, "watch is stale: restarting it");
          continue;
        }
        const expired = err instanceof WatchExpiredError || isGone(err);
        if (expired || err instanceof WatchDecodeError || err instanceof SyntaxError) needList = true;
        this.#failures++;
        const wait = this.#nextDelay();
        this.#noteRestart(errorMessage(err), expired ? "resource version expired: relisting" : "list/watch failed", {
          relist: needList,
          retryInMs: wait,
        });
        await delay(this.#clock, wait, stop);
      } finally {
        stop.removeEventListener("abort", abortAttempt);
        this.#watching = false;
      }
    }
  }

  #nextDelay(): number {
    return backoffDelay(this.#failures - 1, this.#backoff, this.#random);
  }

  #noteRestart(message: string, what: string, fields: Record<string, unknown> = {}): void {
    this.#restarts++;
    this.#lastError = { message, time: this.#clock.now() };
    const level = what.startsWith("resource version expired") ? "info" : "warn";
    this.#log[level](what, {
      informer: this.name,
      error: message,
      restarts: this.#restarts,
      failures: this.#failures,
      ...fields,
    });
  }

  async #watchOnce(attempt: AbortController, onStale: () => void): Promise<{ events: number; durationMs: number }> {
    const started = this.#clock.now();
    let events = 0;
    let lastSeen = started;
    let watchdog: TimerHandle | undefined;
    const arm = (ms: number) => {
      watchdog = this.#clock.setTimeout(() => {
        const idle = this.#clock.now() - lastSeen;
        if (idle >= this.#staleAfterMs) {
          onStale();
          attempt.abort();
        } else {
          arm(this.#staleAfterMs - idle);
        }
      }, ms);
    };
    arm(this.#staleAfterMs);
    const timeoutSeconds = Math.floor(this.#watchTimeoutSeconds * (1 + this.#random()));
    this.#watching = true;
    try {
      await this.#lw.watch(
        { resourceVersion: this.#resourceVersion, timeoutSeconds, signal: attempt.signal },
        (event: WatchEvent<T>) => {
          if (attempt.signal.aborted) return;
          this.#applyEvent(event);
          events++;
          lastSeen = this.#clock.now();
          this.#lastActivityTime = lastSeen;
          this.#failures = 0;
        },
      );
    } finally {
      this.#clock.clearTimeout(watchdog);
      this.#watching = false;
    }
    return { events, durationMs: this.#clock.now() - started };
  }

  #applyList(list: KubeList<T>, started: number): void {
    const items = Array.isArray(list.items) ? list.items : [];
    for (const item of items) {
      if (!item?.metadata?.name) throw new WatchDecodeError(`list of ${this.name} holds an object without a name`);
    }
    const initial = !this.#synced;
    const delta = this.store.replace(this.#transform ? items.map(this.#transform) : items);
    this.#resourceVersion = list.metadata?.resourceVersion ?? "";
    const now = this.#clock.now();
    this.#lastSyncTime = now;
    this.#lastListStartTime = started;
    this.#lastActivityTime = now;
    for (const obj of delta.deleted) this.#emit("onDelete", (h) => h.onDelete?.(obj, { finalStateUnknown: true }));
    for (const obj of delta.added) this.#emit("onAdd", (h) => h.onAdd?.(obj, { initialList: initial }));
    for (const { old, obj } of delta.updated) this.#emit("onUpdate", (h) => h.onUpdate?.(old, obj));
    if (!initial && (delta.added.length || delta.updated.length || delta.deleted.length)) {
      this.#log.info("relist changed the cache", {
        informer: this.name,
        added: delta.added.length,
        updated: delta.updated.length,
        deleted: delta.deleted.length,
      });
    }
    if (initial) {
      this.#synced = true;
      for (const w of this.#syncWaiters) w.resolve();
      this.#syncWaiters.clear();
    }
  }

  #applyEvent(event: WatchEvent<T>): void {
    const type = event?.type;
    if (type === "ERROR") {
      const status = (event.object ?? {}) as KubeStatus;
      const message = `watch ${this.name}: ${status.reason ?? "error"}: ${status.message ?? "(no message)"}`;
      if (status.code === 410) throw new WatchExpiredError(message);
      throw new KubeApiError(status.code ?? 500, status.reason ?? "WatchError", message, status.details);
    }
    const obj = event?.object;
    const rv = obj?.metadata?.resourceVersion;
    if (type === "BOOKMARK") {
      if (rv) this.#resourceVersion = rv;
      return;
    }
    if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED") {
      throw new WatchDecodeError(`watch ${this.name}: unknown event type ${JSON.stringify(type)}`);
    }
    if (!obj?.metadata?.name) throw new WatchDecodeError(`watch ${this.name}: ${type} event without an object name`);
    this.#applyObject(type, this.#transform ? this.#transform(obj) : obj);
    if (rv) this.#resourceVersion = rv;
  }

  #applyObject(type: "ADDED" | "MODIFIED" | "DELETED", obj: T): void {
    if (type === "DELETED") {
      const old = this.store.remove(objectKey(obj));
      if (old) this.#emit("onDelete", (h) => h.onDelete?.(obj, { finalStateUnknown: false }));
    } else {
      const old = this.store.upsert(obj);
      if (old) this.#emit("onUpdate", (h) => h.onUpdate?.(old, obj));
      else this.#emit("onAdd", (h) => h.onAdd?.(obj, { initialList: false }));
    }
  }

  #emit(what: keyof InformerHandler<T>, fn: (h: InformerHandler<T>) => void): void {
    for (const h of this.#handlers) this.#call(what, () => fn(h));
  }

  #call(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error("informer handler threw", { informer: this.name, handler: what, error: errorMessage(err) });
    }
  }

  #scheduleResync(): void {
    if (this.#resyncIntervalMs <= 0 || this.#stop.signal.aborted) return;
    this.#resyncTimer = this.#clock.setTimeout(() => {
      this.#resyncTimer = undefined;
      if (this.#stop.signal.aborted) return;
      if (this.#synced) for (const obj of this.store.list()) this.#emit("onUpdate", (h) => h.onUpdate?.(obj, obj));
      this.#scheduleResync();
    }, this.#resyncIntervalMs);
  }
}

/**
 * The usual handler of a controller: every add, update (including resyncs) and delete puts the affected keys on
 * a work queue. `keysOf` maps an object to the keys to reconcile: by default its own `namespace/name`; for
 * owned objects (pods of an AutoScaledAgent), the owner's key.
 */
export function enqueueHandler<T extends KubeObject>(
  queue: { add(key: string): void },
  keysOf: (obj: T) => readonly string[] = (obj) => [objectKey(obj)],
): InformerHandler<T> {
  const enqueue = (obj: T) => {
    for (const key of keysOf(obj)) queue.add(key);
  };
  return { onAdd: enqueue, onUpdate: (_old, obj) => enqueue(obj), onDelete: enqueue };
}

/** Keys (`namespace/name`) of an object's controller owner of the given kind, for `enqueueHandler`. */
export function controllerOwnerKeys(kind: string, apiGroup?: string): (obj: KubeObject) => string[] {
  return (obj) => {
    const owner = obj.metadata?.ownerReferences?.find(
      (o) => o.controller && o.kind === kind && (apiGroup === undefined || o.apiVersion.split("/")[0] === apiGroup),
    );
    if (!owner) return [];
    const ns = obj.metadata?.namespace;
    return [ns ? `${ns}/${owner.name}` : owner.name];
  };
}
