/**
 * The leader's mark on its own pod, so that a Service can send service-hook deliveries to the leader alone: only the
 * leader polls Azure DevOps, and a delivery that reaches a standby replica triggers nothing (the chart's hooks
 * Service selects the mark when it runs more than one replica).
 *
 * Rules:
 * 1. The operator's pod (`POD_NAME` in `POD_NAMESPACE`) carries the label `azurepipelines.k8s.scaler.io/leader`:
 *    "true" while this replica leads, "false" otherwise. A replica writes "false" when it starts (a container that
 *    restarts after it led must not keep "true"), "true" when it starts leading, and "false" when it stops, after it
 *    gave the lease up (for a moment two pods may carry "true"; a standby answers such a delivery as before).
 * 2. Writes are merge patches of that one label, one at a time; the newest wanted value wins (`nextWrite`).
 * 3. A failed write is tried again after `retryMs` (5 s by default) while its value is still wanted; the first
 *    failure of a streak is logged as a warning, the success after it at info level.
 * 4. Only with `--leader-pod-label`, which needs the pod's name and namespace (src/cli/config.ts); else nothing is
 *    written.
 */
import { labels } from "../api/v1/index.ts";
import { type Clock, systemClock, type TimerHandle } from "../runtime/clock.ts";
import { errorMessage, type Logger } from "../runtime/logger.ts";

export type LeaderLabelValue = "true" | "false";

/** Rule 2: the value to write now, if any. */
export function nextWrite(state: {
  wanted: LeaderLabelValue | undefined;
  written: LeaderLabelValue | undefined;
  writing: boolean;
  retryDue: boolean;
}): LeaderLabelValue | undefined {
  if (state.writing || state.wanted === undefined || state.wanted === state.written || state.retryDue) return undefined;
  return state.wanted;
}

/** The merge patch that sets the label. */
export function leaderLabelPatch(value: LeaderLabelValue): { metadata: { labels: Record<string, string> } } {
  return { metadata: { labels: { [labels.leader]: value } } };
}

export class LeaderPodLabel {
  readonly #write: (patch: ReturnType<typeof leaderLabelPatch>) => Promise<unknown>;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #retryMs: number;
  #wanted: LeaderLabelValue | undefined;
  #written: LeaderLabelValue | undefined;
  #writing: Promise<void> | undefined;
  #retry: TimerHandle | undefined;
  #failing = false;
  #closed = false;

  constructor(options: {
    /** Patches the operator's own pod. */
    write: (patch: ReturnType<typeof leaderLabelPatch>) => Promise<unknown>;
    logger: Logger;
    clock?: Clock;
    retryMs?: number;
  }) {
    this.#write = options.write;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock();
    this.#retryMs = options.retryMs ?? 5_000;
  }

  /** Rule 1: this replica leads, or not. */
  set(leading: boolean): void {
    if (this.#closed) return;
    this.#wanted = leading ? "true" : "false";
    this.#next();
  }

  /** Resolves when nothing is being written (the wanted value is written, or waits for its retry). */
  async idle(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /** No more writes or retries (a write under way ends on its own). */
  close(): void {
    this.#closed = true;
    this.#clock.clearTimeout(this.#retry);
    this.#retry = undefined;
  }

  #next(): void {
    const value = nextWrite({
      wanted: this.#wanted,
      written: this.#written,
      writing: this.#writing !== undefined,
      retryDue: this.#retry !== undefined,
    });
    if (value === undefined || this.#closed) return;
    this.#writing = this.#write(leaderLabelPatch(value)).then(
      () => {
        this.#written = value;
        if (this.#failing) this.#logger.info("leader label written again", { value });
        this.#failing = false;
      },
      (err: unknown) => {
        // Rule 3: what is on the pod is unknown now; try again later while a value is wanted.
        this.#written = undefined;
        if (!this.#failing) {
          this.#logger.warn("cannot label this replica's pod (service hooks may reach a standby replica)", {
            value,
            error: errorMessage(err),
          });
        }
        this.#failing = true;
        if (!this.#closed) {
          this.#retry = this.#clock.setTimeout(() => {
            this.#retry = undefined;
            this.#next();
          }, this.#retryMs);
        }
      },
    );
    void this.#writing.finally(() => {
      this.#writing = undefined;
      this.#next();
    });
  }
}
