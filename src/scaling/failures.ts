/**
 * Agents that exit without running a job (a token the agent cannot register with, an image that crashes) would make
 * the operator create a new pod every reconcile. This decides, per template, when creating may go on.
 *
 * Rules:
 * 1. A pod whose agent container ended with a non-zero exit code is a failed start: an agent run with `--once`
 *    exits 0 after its job, whatever the job's result. It counts once, by pod name, toward its template's streak.
 * 2. A pod of the template whose agent ended with exit code 0 (it ran a job) ends the streak.
 * 3. With a streak of n failures, creates for the template wait until the last failure + backoff(n - 1)
 *    (`initialMs` doubling up to `maxMs`).
 * 4. Pods no longer observed are forgotten (their failure stays counted in the streak).
 * 5. A pod the operator was taking away (marked idle for scale-down, or being deleted) proves nothing: removing an
 *    idle agent unregisters it first, and an agent whose registration is deleted under it exits with an error (the
 *    real agent as the simulated one). It neither counts as a failure nor ends a streak.
 */
import { backoffDelay } from "../runtime/backoff.ts";
import type { ObservedPod } from "./types.ts";

export interface FailureStreak {
  readonly failures: number;
  /** When the last failure was first seen (epoch ms). */
  readonly lastAt: number;
  /** The pod of the last failure, for messages. */
  readonly lastPod: string;
}

export interface FailureMemory {
  /** Streaks by template index. */
  readonly streaks: ReadonlyMap<number, FailureStreak>;
  /** Pods already counted. */
  readonly counted: ReadonlySet<string>;
}

export const noFailures: FailureMemory = { streaks: new Map(), counted: new Set() };

export interface HeldTemplate {
  readonly until: number;
  readonly failures: number;
  readonly message: string;
}

export function agentFailures(
  memory: FailureMemory,
  pods: readonly ObservedPod[],
  now: number,
  backoff: { readonly initialMs: number; readonly maxMs: number },
): { memory: FailureMemory; held: Map<number, HeldTemplate> } {
  const streaks = new Map(memory.streaks);
  const counted = new Set<string>();
  for (const p of pods) {
    if (p.templateIndex === null || p.agentContainer !== "terminated" || p.agentExitCode == null) continue;
    counted.add(p.name);
    if (memory.counted.has(p.name)) continue;
    // Rule 5.
    if (p.idleMarkedAtMs != null || p.deleting) continue;
    if (p.agentExitCode === 0) {
      streaks.delete(p.templateIndex);
      continue;
    }
    const before = streaks.get(p.templateIndex);
    streaks.set(p.templateIndex, { failures: (before?.failures ?? 0) + 1, lastAt: now, lastPod: p.name });
  }
  const held = new Map<number, HeldTemplate>();
  for (const [index, s] of streaks) {
    const until = s.lastAt + backoffDelay(s.failures - 1, backoff);
    if (until <= now) continue;
    held.set(index, {
      until,
      failures: s.failures,
      message: `the agent of pod ${s.lastPod} exited with an error without running a job (${s.failures} in a row for template ${index}); new pods of that template wait ${Math.ceil((until - now) / 1000)}s`,
    });
  }
  return { memory: { streaks, counted }, held };
}
