/**
 * How the resources on one pool share its jobs (the pure rules are `assignJobs` in src/scaling/arbitration.ts):
 * each resource's reconcile publishes how it stands (can it serve now, how many more jobs each template can take),
 * and every reconcile hands the pool's pending jobs out from what all of them published, the live pods each has
 * and those it created that the cache does not show yet (a job a pod was created for stays with its resource), and
 * their templates and policies.
 */
import { type AutoScaledAgent, parseDuration } from "../api/v1/index.ts";
import { byKey, sameEntries, sameItems } from "../runtime/compare.ts";
import { keptIn } from "../runtime/memo.ts";
import { assignJobs, jobsLeftTo, podStanding, type ResourceTemplates } from "../scaling/arbitration.ts";
import { planScaling } from "../scaling/plan.ts";
import type { JobRequest, ObservedPod, PlanInput, ScalePlan, TemplateSpec } from "../scaling/types.ts";
import { observeAgent, observedPod, type PoolMember, poolMembers, templateSpecs } from "./observe.ts";
import type { Caches, PodFactory, PodObject, PoolSnapshot, Resource } from "./ports.ts";

export interface Standing {
  /** Its credential works and its pool poll is healthy. */
  readonly available: boolean;
  /** Jobs each template can still take. */
  readonly capacity?: readonly number[];
}

const NO_PODS: readonly PodObject[] = [];
const AVAILABLE: Standing = { available: true };
const UNAVAILABLE: Standing = { available: false };

type PodStandingOf = ReturnType<typeof podStanding>;

/**
 * The pool's jobs handed out (`assignJobs`) from one poll's list and what every resource on the pool published,
 * kept while all of it stays: every resource's plan on the pool asks for the same answer, and between two changes
 * that matter (a poll, a pod created or taking a job, a capacity) it is computed once, not once per plan.
 */
interface Assignment {
  readonly jobRequests: readonly JobRequest[];
  /** What it was computed from, per resource in the pool's order. */
  readonly contenders: readonly Contender[];
  /** Request id -> the resource that serves it; jobs nobody can take are absent. */
  readonly owners: ReadonlyMap<number, string>;
  /** Each resource's list (`jobsFor`), by key. */
  readonly lists: Map<string, readonly JobRequest[]>;
}

/** A resource of the pool as the assignment sees it: kept objects, compared by identity. */
interface Contender {
  readonly key: string;
  readonly templates: readonly TemplateSpec[];
  readonly checkExtraAgentContainers: ResourceTemplates["checkExtraAgentContainers"];
  /** What it published (`planned`, `unavailable`); none yet: not judged. */
  readonly standing: Standing | undefined;
  /** What its pods hold and how many are spare. */
  readonly pods: PodStandingOf;
}

/** Assignments kept per pool: a few, as resources with jobs of ended pods left out plan from lists of their own. */
const ASSIGNMENTS_PER_POOL = 4;

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
    this.#standing.set(key, UNAVAILABLE);
  }

  /**
   * The resource planned from a fresh poll: available, with this much room per template. The standing object stays
   * while its room does (the pool's assignment is kept by it).
   */
  planned(key: string, resource: Resource, plan: ScalePlan): void {
    const capacity = jobCapacity(resource, plan);
    const kept = this.#standing.get(key);
    if (kept?.available === true && kept.capacity !== undefined && sameItems(kept.capacity, capacity)) return;
    this.#standing.set(key, { available: true, capacity });
  }

  forget(key: string): void {
    this.#standing.delete(key);
    this.#podStandings.delete(key);
    // Its pool's assignments name it; the next plan on that pool computes one without it (and pools left empty
    // keep no poll's list).
    this.#assignments.clear();
  }

  /**
   * What each resource's pods hold and how many are spare (`podStanding`), kept while its cached pods (the caches
   * answer with the same list until one of them changes), its expected pods, its templates and the poll's list stay
   * the same: every plan on a pool looks at every resource on it, and most of them have not changed since the last.
   * A new standing equal to the kept one is answered as the kept object (a pod that only changed its status changes
   * nothing of it), so the pool's assignment stays found.
   */
  readonly #podStandings = new Map<
    string,
    {
      cached: readonly PodObject[];
      expected: readonly ObservedPod[];
      templates: Resource["spec"]["podsWithCapabilities"];
      jobRequests: readonly JobRequest[];
      standing: PodStandingOf;
    }
  >();

  #podStanding(
    key: string,
    uid: string | undefined,
    templates: Resource["spec"]["podsWithCapabilities"],
    jobRequests: readonly JobRequest[],
  ): PodStandingOf {
    const cached = uid === undefined ? NO_PODS : this.#caches.podsOf(uid);
    const expected = this.#expected(key);
    const kept = this.#podStandings.get(key);
    if (
      kept !== undefined &&
      kept.cached === cached &&
      kept.templates === templates &&
      kept.jobRequests === jobRequests &&
      sameItems(kept.expected, expected)
    ) {
      return kept.standing;
    }
    const pods: ObservedPod[] = [];
    for (const p of cached) if (!podHasEnded(p)) pods.push(observedPod(p, templates));
    pods.push(...expected);
    const computed = podStanding(pods, jobRequests, templates.length);
    const standing = kept !== undefined && sameStanding(kept.standing, computed) ? kept.standing : computed;
    this.#podStandings.set(key, { cached, expected, templates, jobRequests, standing });
    return standing;
  }

  /**
   * The requests `key`'s plan sees: the list without the pending jobs another resource on the pool serves (the rules
   * are arbitration.ts's). Jobs nobody can take stay in every list (every resource reports them). Every resource is
   * seen with its templates as `templateSpecs(spec)` answers them, this one too (the sharing matches and ranks jobs,
   * which standby counts do not change), in the pool's order (by key; rule 1's "first listed"), so that every plan
   * on the pool asks the same question: the answer is kept until a poll or a resource's standing changes it, and so
   * is each resource's list (the same array, so what is kept by list downstream stays found too).
   */
  jobsFor(key: string, resource: Resource, jobRequests: readonly JobRequest[]): readonly JobRequest[] {
    const members = this.#members(resource);
    if (members.length === 0 || (members.length === 1 && members[0]?.key === key)) return jobRequests;
    // This resource is planning from a fresh poll, so it can serve now (and says so to the plans that follow).
    if (this.#standing.get(key)?.available !== true) this.#standing.set(key, AVAILABLE);
    const pool = members.some((m) => m.key === key)
      ? members.map((m) => (m.key === key ? { ...m, spec: resource.spec } : m))
      : [...members, { key, uid: resource.metadata?.uid, spec: resource.spec }].sort(byMemberKey);
    const contenders = pool.map(
      (m): Contender => ({
        key: m.key,
        templates: templateSpecs(m.spec),
        checkExtraAgentContainers: this.#pods.extraAgentContainersChecker(m.spec),
        standing: this.#standing.get(m.key),
        pods: this.#podStanding(m.key, m.uid, m.spec.podsWithCapabilities, jobRequests),
      }),
    );
    const poolKey = poolKeyOf(resource, this.#organizationKey);
    const kept = this.#assignments.get(poolKey) ?? [];
    let assignment = kept.find((a) => a.jobRequests === jobRequests && sameContenders(a.contenders, contenders));
    if (assignment === undefined) {
      const resources = contenders.map(
        (c): ResourceTemplates => ({
          key: c.key,
          templates: c.templates,
          checkExtraAgentContainers: c.checkExtraAgentContainers,
          available: c.standing?.available ?? true,
          ...(c.standing?.capacity ? { capacity: c.standing.capacity } : {}),
          ...c.pods,
        }),
      );
      assignment = { jobRequests, contenders, owners: assignJobs(jobRequests, resources), lists: new Map() };
      this.#assignments.set(poolKey, [assignment, ...kept.slice(0, ASSIGNMENTS_PER_POOL - 1)]);
    }
    return keptIn(assignment.lists, key, () => jobsLeftTo(jobRequests, (assignment as Assignment).owners, key));
  }

  readonly #assignments = new Map<string, readonly Assignment[]>();

  /**
   * The valid, live resources on the resource's pool (`poolMembers`) by key, kept by the caches' array of
   * resources (the same until a resource is added, changed or removed) and pool: every plan asks, most of them
   * between two changes.
   */
  readonly #poolMembers = new WeakMap<readonly AutoScaledAgent[], Map<string, readonly PoolMember[]>>();

  #members(resource: Resource): readonly PoolMember[] {
    const all = this.#caches.allResources();
    const byPool = keptIn(this.#poolMembers, all, () => new Map<string, readonly PoolMember[]>());
    return keptIn(byPool, poolKeyOf(resource, this.#organizationKey), () =>
      poolMembers(all, resource, this.#organizationKey).sort(byMemberKey),
    );
  }
}

const byMemberKey = byKey((m: PoolMember) => m.key);

function poolKeyOf(resource: Resource, organizationKey: (url: string) => string): string {
  return `${organizationKey(resource.spec.organizationUrl)}\n${resource.spec.poolName.toLowerCase()}`;
}

function sameContenders(a: readonly Contender[], b: readonly Contender[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Contender;
    const y = b[i] as Contender;
    if (
      x.key !== y.key ||
      x.templates !== y.templates ||
      x.checkExtraAgentContainers !== y.checkExtraAgentContainers ||
      x.standing !== y.standing ||
      x.pods !== y.pods
    )
      return false;
  }
  return true;
}

function sameStanding(a: PodStandingOf, b: PodStandingOf): boolean {
  return sameItems(a.spare, b.spare) && sameEntries(a.covers, b.covers);
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
  const polled = withoutEndedJobs(r.snapshot?.jobRequests ?? [], r.endedJobs);
  const jobRequests = r.snapshot ? sharing.jobsFor(r.key, r.resource, polled) : polled;
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
