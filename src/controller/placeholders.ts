/**
 * Placeholder agents and offline-agent garbage collection for one resource, on the schedule of the pure
 * `placeholderSchedule`: one offline placeholder per capability set of the templates (so jobs queue instead of
 * failing), registered on the first run, when the set changes, 1 min after a failure and every 10 min; and garbage
 * collection every `dummyAgentGarbageCollectionInterval` of offline placeholders no resource on the pool wants and
 * of agents this resource's pods left behind. The only state is when each ran last, and the problems of the last
 * run, per resource key. Runs go through the organization's lane (see lanes.ts), outside the reconcile.
 */
import { type AutoScaledAgent, resourceRef } from "../api/v1/index.ts";
import {
  type LastEnsure,
  placeholderSchedule,
  placeholderSetKey,
  placeholderSettings,
  wantedPlaceholders,
} from "../placeholders/plan.ts";
import { podNamePrefix } from "../scaling/naming.ts";
import type { Problem } from "./actions.ts";
import type { Lanes } from "./lanes.ts";
import type { AzureDevOpsPort, EventsPort, PoolSnapshot, PoolTarget, Resource } from "./ports.ts";

export interface PlaceholderWorkOptions {
  azureDevOps: AzureDevOpsPort;
  events: EventsPort;
  now(): number;
  /** How long an agent of a resource must have been offline before garbage collection may delete it. */
  offlineAgentGraceMs?: number | undefined;
}

export interface PlaceholderRunInput {
  key: string;
  resource: Resource;
  target: PoolTarget;
  /** The pool's id (from the last successful poll). */
  poolId: number;
  /** A fresh snapshot, when the last poll succeeded: collection needs one, registration only saves requests with it. */
  snapshot?: PoolSnapshot | undefined;
  /** Every valid resource on the same pool (its placeholders are kept), this one included. */
  samePool: readonly (Resource["spec"] & { key: string })[];
  /** Live agent pods of every resource, or undefined before the pod cache synced (nothing is collected then). */
  liveAgentPodNames: ReadonlySet<string> | undefined;
}

/** What the reconcile's placeholder step needs; the pool-wide inputs are read only when a run is submitted. */
export interface PlaceholderStepInput extends Omit<PlaceholderRunInput, "samePool" | "liveAgentPodNames"> {
  organization: string;
  lanes: Lanes;
  samePool(): PlaceholderRunInput["samePool"];
  liveAgentPodNames(): PlaceholderRunInput["liveAgentPodNames"];
  /** Called when a submitted run ends (the reconciler requeues the resource). */
  done(): void;
}

export class PlaceholderWork {
  readonly #o: PlaceholderWorkOptions;
  readonly #runs = new Map<string, { lastEnsure?: LastEnsure; lastCollectAt?: number; problems?: Problem[] }>();

  constructor(options: PlaceholderWorkOptions) {
    this.#o = options;
  }

  forget(key: string): void {
    this.#runs.delete(key);
  }

  /** What is due now for the resource, and when the next run falls due. */
  schedule(key: string, resource: Resource) {
    const runs = this.#runs.get(key) ?? {};
    return placeholderSchedule({
      now: this.#o.now(),
      wantedKey: placeholderSetKey(wantedPlaceholders([{ key, ...resource.spec }])),
      lastEnsure: runs.lastEnsure,
      lastCollectAt: runs.lastCollectAt,
      collectIntervalMs: placeholderSettings(resource.spec).collectIntervalMs,
    });
  }

  /**
   * The reconcile's step: submits a run to the organization's lane when one is due and none is under way.
   * Registration needs only the pool's id, so a new template gets its placeholder while polls fail (jobs for it then
   * queue instead of failing); garbage collection waits for a fresh agent list. Returns the problems of the last run
   * and when the next one falls due (undefined while a run is under way: its end requeues the resource).
   */
  step(input: PlaceholderStepInput): { problems: Problem[]; nextDueAt: number | undefined } {
    const { key, resource, lanes } = input;
    const taskKey = `placeholders:${key}`;
    const due = this.schedule(key, resource);
    if ((due.ensure || (due.collect && input.snapshot)) && !lanes.has(taskKey)) {
      const run: PlaceholderRunInput = {
        key,
        resource,
        target: input.target,
        poolId: input.poolId,
        snapshot: input.snapshot,
        samePool: input.samePool(),
        liveAgentPodNames: input.liveAgentPodNames(),
      };
      lanes.submit(input.organization, { key: taskKey, run: () => this.run(run).finally(input.done) });
    }
    return { problems: this.problems(key), nextDueAt: lanes.has(taskKey) ? undefined : due.nextDueAt };
  }

  /** The problems of the resource's last run (kept until the next run). */
  problems(key: string): Problem[] {
    return this.#runs.get(key)?.problems ?? [];
  }

  /** Runs what is due; keeps its problems for `problems(key)`. */
  async run(input: PlaceholderRunInput): Promise<void> {
    const { key, resource, snapshot, poolId } = input;
    const problems: Problem[] = [];
    const settings = placeholderSettings(resource.spec);
    const runs = this.#runs.get(key) ?? {};
    this.#runs.set(key, runs);
    const wanted = wantedPlaceholders([{ key, ...resource.spec }]);
    const wantedKey = placeholderSetKey(wanted);
    const due = this.schedule(key, resource);
    const manager = this.#o.azureDevOps.placeholders(input.target);
    const ref = resourceRef(resource as AutoScaledAgent);
    if (due.ensure) {
      const at = this.#o.now();
      // Without a fresh agent list every wanted placeholder is POSTed (a 409 for an existing name is success).
      const r = await manager.ensure(
        poolId,
        wanted,
        snapshot ? { existingAgentNames: snapshot.agents.map((a) => a.name) } : {},
      );
      runs.lastEnsure = {
        at,
        wantedKey,
        status: r.status,
        ...(r.retryAfterMs ? { retryAfterMs: r.retryAfterMs } : {}),
      };
      for (const name of r.registered) {
        this.#o.events.normal(
          ref,
          "PlaceholderRegistered",
          `registered offline placeholder agent ${name}`,
          "RegisterPlaceholder",
        );
      }
      if (r.problem) this.#o.events.warning(ref, r.problem.reason, r.problem.message, "RegisterPlaceholder");
    }
    if (runs.lastEnsure?.status === "forbidden") {
      problems.push({
        reason: "PlaceholderRegistrationForbidden",
        message:
          "cannot register placeholder agents: the credential needs Agent Pools (Read & manage); scaling continues",
      });
    }
    if (due.collect && snapshot) {
      const at = this.#o.now();
      const r = await manager.collectGarbage(poolId, {
        wantedNames: wantedPlaceholders(input.samePool).map((w) => w.name),
        podNames: input.liveAgentPodNames,
        resourcePodNamePrefixes: [podNamePrefix(resource.metadata.name)],
        jobRequests: snapshot.jobRequests,
        now: at,
        dummyAgentDeletionMinAgeMs: settings.dummyAgentDeletionMinAgeMs,
        normalOfflineAgentDeletionMinAgeMs: settings.normalOfflineAgentDeletionMinAgeMs,
        ...(this.#o.offlineAgentGraceMs !== undefined ? { offlineGraceMs: this.#o.offlineAgentGraceMs } : {}),
      });
      runs.lastCollectAt = at;
      if (r.deleted.length > 0) {
        this.#o.events.normal(
          ref,
          "OfflineAgentsDeleted",
          `deleted offline agents: ${r.deleted.join(", ")}`,
          "CollectAgents",
        );
      }
      if (r.problem) {
        problems.push(r.problem);
        this.#o.events.warning(ref, r.problem.reason, r.problem.message, "CollectAgents");
      }
    }
    runs.problems = problems;
  }
}
