/**
 * How the resources on one pool share its jobs (the pure rules are `assignJobs` in src/scaling/arbitration.ts):
 * each resource's reconcile publishes how it stands (can it serve now, how many more jobs each template can take),
 * and every reconcile hands the pool's pending jobs out from what all of them published, the live pods each has
 * and those it created that the cache does not show yet (a job a pod was created for stays with its resource), and
 * their templates and policies.
 */
import { type AutoScaledAgent, parseDuration } from "../api/v1/index.ts";
import { keptIn } from "../runtime/memo.ts";
import { jobsServedElsewhere, podStanding, type ResourceTemplates } from "../scaling/arbitration.ts";
import { planScaling } from "../scaling/plan.ts";
import type { JobRequest, ObservedPod, PlanInput, ScalePlan } from "../scaling/types.ts";
import { observeAgent, observedPod, type PoolMember, poolMembers, templateSpecs } from "./observe.ts";
import type { Caches, PodFactory, PodObject, PoolSnapshot, Resource } from "./ports.ts";

export interface Standing {
  /** Its credential works and its pool poll is healthy. */
  readonly available: boolean;
  /** Jobs each template can still take. */
  readonly capacity?: readonly number[];
}

const NO_PODS: readonly PodObject[] = [];

export class PoolSharing {
  readonly #standing = new Map<string, Standing>();
  readonly #caches: Caches;
  readonly #pods: PodFactory;
  readonly #organizationKey: (url: string) => string;

  readonly #expected: (key: string) => readonly ObservedPod[];

  constructor(options: {
    caches: Caches;
    pods: PodFactory;
    organizationKey: (url: string) => string;
    /** Pods a resource created that the cache does not show yet (their jobs are covered as much as cached ones). */
    expected?: (key: string) => readonly ObservedPod[];
  }) {
    this.#caches = options.caches;
    this.#pods = options.pods;
    this.#organizationKey = options.organizationKey;
    this.#expected = options.expected ?? (() => []);
  }

  /** The resource cannot serve now (invalid, no credential, poll failing, being deleted). */
  unavailable(key: string): void {
    this.#standing.set(key, { available: false });
  }

  /** The resource planned from a fresh poll: available, with this much room per template. */
  planned(key: string, resource: Resource, plan: ScalePlan): void {
    this.#standing.set(key, { available: true, capacity: jobCapacity(resource, plan) });
  }

  forget(key: string): void {
    this.#standing.delete(key);
    this.#podStandings.delete(key);
  }

  /**
   * What each resource's pods hold and how many are spare (`podStanding`), kept while its cached pods (the caches
   * answer with the same list until one of them changes), its expected pods, its templates and the poll's list stay
   * the same: every plan on a pool looks at every resource on it, and most of them have not changed since the last.
   */
  readonly #podStandings = new Map<
    string,
    {
      cached: readonly PodObject[];
      expected: readonly ObservedPod[];
      templates: Resource["spec"]["podsWithCapabilities"];
      jobRequests: readonly JobRequest[];
      standing: ReturnType<typeof podStanding>;
    }
  >();

  #podStanding(
    key: string,
    uid: string | undefined,
    templates: Resource["spec"]["podsWithCapabilities"],
    jobRequests: readonly JobRequest[],
  ): ReturnType<typeof podStanding> {
    const cached = uid === undefined ? NO_PODS : this.#caches.podsOf(uid);
    const expected = this.#expected(key);
    const kept = this.#podStandings.get(key);
    if (
      kept !== undefined &&
      kept.cached === cached &&
      kept.templates === templates &&
      kept.jobRequests === jobRequests &&
      kept.expected.length === expected.length &&
      kept.expected.every((p, i) => p === expected[i])
    ) {
      return kept.standing;
    }
    const live = cached.filter((p) => !podHasEnded(p));
    const pods = [...live.map((p) => observedPod(p, templates)), ...expected];
    const standing = podStanding(pods, jobRequests, templates.length);
    this.#podStandings.set(key, { cached, expected, templates, jobRequests, standing });
    return standing;
  }

  /**
   * The pending jobs of the pool that another resource serves instead of this one. Every resource is seen with its
   * templates as `templateSpecs(spec)` answers them, this one too: the sharing matches and ranks jobs, which standby
   * counts do not change, and with the same arrays in every plan on the pool each job's ranking is kept from plan to
   * plan (arbitration.ts, `rankings`) instead of being made again in each resource's plan.
   */
  servedElsewhere(key: string, resource: Resource, jobRequests: readonly JobRequest[]): Set<number> {
    const members = this.#members(resource);
    const contender = (k: string, uid: string | undefined, spec: Resource["spec"]): ResourceTemplates => {
      const standing = this.#standing.get(k);
      return {
        key: k,
        ...this.#podStanding(k, uid, spec.podsWithCapabilities, jobRequests),
        templates: templateSpecs(spec),
        // This resource is planning from a fresh poll, so it can serve now.
        available: k === key ? true : (standing?.available ?? true),
        ...(standing?.capacity ? { capacity: standing.capacity } : {}),
        checkExtraAgentContainers: this.#pods.extraAgentContainersChecker(spec),
      };
    };
    const self = contender(key, members.find((m) => m.key === key)?.uid ?? resource.metadata?.uid, resource.spec);
    const others = members.filter((m) => m.key !== key).map((m) => contender(m.key, m.uid, m.spec));
    return jobsServedElsewhere(jobRequests, self, others);
  }

  /**
   * The valid, live resources on the resource's pool (`poolMembers`), kept by the caches' array of resources (the
   * same until a resource is added, changed or removed) and pool: every plan asks, most of them between two changes.
   */
  readonly #poolMembers = new WeakMap<readonly AutoScaledAgent[], Map<string, readonly PoolMember[]>>();

  #members(resource: Resource): readonly PoolMember[] {
    const all = this.#caches.allResources();
    const byPool = keptIn(this.#poolMembers, all, () => new Map<string, readonly PoolMember[]>());
    const pool = `${this.#organizationKey(resource.spec.organizationUrl)}\n${resource.spec.poolName.toLowerCase()}`;
    return keptIn(byPool, pool, () => poolMembers(all, resource, this.#organizationKey));
  }
}

export interface PlanRequest {
  readonly key: string;
  readonly resource: Resource;
  /** The pool's latest poll, when fresh (without one the plan only drives Kubernetes-side housekeeping). */
  readonly snapshot: Pick<PoolSnapshot, "jobRequests" | "agents"> | undefined;
  /** The resource's pods, cached and expected. */
  readonly pods: readonly ObservedPod[];
  /** Jobs of pods that ended (their requests may still show as pending in an older poll). */
  readonly endedJobs: ReadonlyMap<number, number>;
  /** Standby agents in force per template (standby.ts). */
  readonly standbyCounts?: readonly number[] | undefined;
  readonly now: number;
  readonly checkExtraAgentContainers: PlanInput["checkExtraAgentContainers"];
}

/** The scale plan of one resource: the jobs another resource on the pool serves better are left to it. */
export function planOnPool(sharing: PoolSharing, r: PlanRequest): ScalePlan {
  const specs = templateSpecs(r.resource.spec, r.standbyCounts);
  let jobRequests = withoutEndedJobs(r.snapshot?.jobRequests ?? [], r.endedJobs);
  if (r.snapshot) {
    const elsewhere = sharing.servedElsewhere(r.key, r.resource, jobRequests);
    if (elsewhere.size > 0) jobRequests = jobRequests.filter((j) => !elsewhere.has(j.requestId));
  }
  const names = new Set(r.pods.map((p) => p.name));
  return planScaling({
    templates: specs,
    jobRequests,
    pods: r.pods,
    agents: (r.snapshot?.agents ?? []).filter((a) => names.has(a.name)).map(observeAgent),
    now: r.now,
    agentMinIdlePeriodMs: parseDuration(r.resource.spec.agentMinIdlePeriod),
    maxTerminatedPodsToKeep: r.resource.spec.maxTerminatedPodsToKeep,
    checkExtraAgentContainers: r.checkExtraAgentContainers,
  });
}

/** `withoutEndedJobs` answers, by poll list and the ids left out. */
const withoutEnded = new WeakMap<readonly JobRequest[], Map<string, readonly JobRequest[]>>();

/**
 * The poll's list without the jobs of ended pods, the same array for the same list and left-out jobs: what is kept
 * by list (the pending jobs of arbitration.ts and jobs.ts, the pod standings above) stays found from plan to plan.
 * The list itself when no job is left out.
 */
export function withoutEndedJobs(
  polled: readonly JobRequest[],
  ended: ReadonlyMap<number, number>,
): readonly JobRequest[] {
  if (ended.size === 0) return polled;
  const out = polled.filter((j) => ended.has(j.requestId));
  if (out.length === 0) return polled;
  const left = out.map((j) => j.requestId).join(",");
  const byLeft = keptIn(withoutEnded, polled, () => new Map<string, readonly JobRequest[]>());
  let list = byLeft.get(left);
  if (list === undefined) {
    list = polled.filter((j) => !ended.has(j.requestId));
    // A handful of sets per poll (the resources on the pool); past 64, start again.
    if (byLeft.size >= 64) byLeft.clear();
    byLeft.set(left, list);
  }
  return list;
}

/** Jobs each template can still take: maxCount minus its pods that cannot take one (busy, finishing, going). */
export function jobCapacity(resource: Resource, plan: ScalePlan): number[] {
  return resource.spec.podsWithCapabilities.map((t, i) => {
    const c = plan.templates.find((x) => x.templateIndex === i);
    const occupied = c ? c.busy + c.finishing + c.terminating + c.lost : 0;
    return Math.max(0, t.maxCount - occupied);
  });
}

/** `podHasEnded` by pod object (the caches replace an object when it changes). */
const ended = new WeakMap<PodObject, boolean>();

/** The pod has finished, is going away, or its agent has ended: it covers no job any more. */
export function podHasEnded(p: PodObject): boolean {
  let e = ended.get(p);
  if (e === undefined) {
    e = hasEnded(p);
    ended.set(p, e);
  }
  return e;
}

function hasEnded(p: PodObject): boolean {
  const phase = p.status?.phase;
  const agent = p.status?.containerStatuses?.find((c) => c.name === p.spec.containers[0]?.name);
  return (
    phase === "Succeeded" ||
    phase === "Failed" ||
    Boolean(p.metadata.deletionTimestamp) ||
    Boolean(agent?.state?.terminated)
  );
}
