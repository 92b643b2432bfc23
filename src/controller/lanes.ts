/**
 * Writes that run outside the reconcile, in lanes of bounded concurrency, so that slow answers never hold the workers:
 * - Azure DevOps writes (agent deletions, placeholder registration and garbage collection), one lane per
 *   organization: a slow or failing organization never holds the workers that create pods for the others.
 * - Pod writes, one lane per namespace: a burst of 200 jobs in one namespace neither holds a worker for the time of
 *   200 POSTs nor queues ahead of another namespace's pods (executor.ts, rules 1 and 6).
 *
 * Rules:
 * 1. A task has a key; a task whose key is queued or running is not added again (the next reconcile may ask for
 *    the same deletion while the first is under way).
 * 2. At most `concurrency` tasks of one lane run at once; the others wait in order of submission.
 * 3. A task's failure is its own (it reports through its callback); the lane goes on.
 * 4. After `close()` nothing new starts; `idle()` resolves when nothing is queued or running.
 */

export interface LaneTask {
  /** Deduplication key, e.g. `remove:<pod>` or `placeholders:<resource>`. */
  readonly key: string;
  run(): Promise<void>;
}

/** The next tasks to start in one lane (pure): as many as free slots allow, in order. */
export function tasksToStart(queued: readonly string[], running: number, concurrency: number): string[] {
  return queued.slice(0, Math.max(0, concurrency - running));
}

export class Lanes {
  readonly #concurrency: number;
  readonly #lanes = new Map<string, { queue: LaneTask[]; running: number }>();
  readonly #keys = new Set<string>();
  #closed = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: { concurrency: number }) {
    this.#concurrency = Math.max(1, Math.floor(options.concurrency));
  }

  /** Whether a task with this key is queued or running. */
  has(key: string): boolean {
    return this.#keys.has(key);
  }

  /** Queues a task in the lane (an organization, a namespace); false when its key is already there (rule 1). */
  submit(laneName: string, task: LaneTask): boolean {
    if (this.#closed || this.#keys.has(task.key)) return false;
    this.#keys.add(task.key);
    let lane = this.#lanes.get(laneName);
    if (!lane) {
      lane = { queue: [], running: 0 };
      this.#lanes.set(laneName, lane);
    }
    lane.queue.push(task);
    this.#pump(laneName);
    return true;
  }

  /** Resolves when no task is queued or running. */
  idle(): Promise<void> {
    if (this.#keys.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Starts nothing new; resolves when the running tasks are done (queued ones are dropped). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const lane of this.#lanes.values()) {
      for (const t of lane.queue) this.#keys.delete(t.key);
      lane.queue = [];
    }
    this.#checkIdle();
    await this.idle();
  }

  #pump(laneName: string): void {
    const lane = this.#lanes.get(laneName);
    if (!lane || this.#closed) return;
    const start = tasksToStart(
      lane.queue.map((t) => t.key),
      lane.running,
      this.#concurrency,
    );
    for (const _ of start) {
      const task = lane.queue.shift();
      if (!task) break;
      lane.running++;
      void task
        .run()
        .catch(() => {})
        .finally(() => {
          lane.running--;
          this.#keys.delete(task.key);
          if (lane.running === 0 && lane.queue.length === 0) this.#lanes.delete(laneName);
          this.#pump(laneName);
          this.#checkIdle();
        });
    }
  }

  #checkIdle(): void {
    if (this.#keys.size > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
