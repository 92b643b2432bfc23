/**
 * What the reconciler keeps between reconciles, per resource key. All of it is safe to lose on a restart or a
 * leader change: the next reconcile rebuilds what matters from the caches and the next poll.
 */

import { type FailureMemory, noFailures } from "../scaling/failures.ts";
import type { Problem } from "./actions.ts";
import type { DeletionState } from "./deletion.ts";
import type { Expectation } from "./observe.ts";
import type { PoolSubscription, PoolTarget } from "./ports.ts";

export interface Memory {
  /** The pool subscription, and what it was made for (a changed target or credential makes a new one). */
  attached?: { fingerprint: string; target: PoolTarget; subscription: PoolSubscription };
  /** Pods created (or maybe created) but not yet seen in the cache (see `withExpectedPods`). */
  expected: Map<string, Expectation>;
  /** Unmatched jobs already reported (one event per job). */
  reported: ReadonlySet<number>;
  /** Problems of lane tasks (agent deletions) by task key, until the task succeeds or its pod is gone. */
  background: Map<string, Problem[]>;
  /**
   * The last failed pod create per template index, until a create of the template succeeds or the plan no longer
   * creates pods of it (creates answer in their lane, after the reconcile that asked for them).
   */
  createProblems: Map<number, Problem>;
  /** Agents that exited with an error before running a job, per template (see `agentFailures`). */
  failures: FailureMemory;
  /** The cleanup of a deletion under way. */
  deletion: DeletionState;
  /** The pool's id from the last successful poll. */
  poolId?: number;
  /** Jobs of pods that ended their run, until a newer poll (see `jobsOfEndedPods`). */
  endedJobs: Map<number, number>;
}

export const newMemory = (): Memory => ({
  expected: new Map(),
  reported: new Set(),
  endedJobs: new Map(),
  background: new Map(),
  createProblems: new Map(),
  failures: noFailures,
  deletion: {},
});
