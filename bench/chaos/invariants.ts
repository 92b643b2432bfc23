/**
 * The invariants of the chaos run, checked over what was observed: pods (a watch), jobs (the emulator's job
 * events), the specs the harness wrote (with when), and the API server's audit log (who wrote what, when).
 * Pure: observations and times come in as data; `LiveChecker` is fed as they arrive and reports at once.
 *
 * 1. A busy agent's pod deleted or killed: a job finished `abandoned`/`canceled` (or `failed` for another reason
 *    than "no agent") that the harness did not cancel; and any DELETE of a pod by an operator replica while the
 *    pod's agent held a job (assigned or running), whether or not the job survived it.
 * 2. A job failed because no agent matched, or left unfinished at the end although a template fits it.
 * 3. More live pods than `maxCount` for a template when a pod is created (see `isLive`).
 * 4. One cache PVC referenced by two pods that are not finished (terminating ones included: they still mount it).
 * 5. Leftovers after the run settles (pods, PVCs, placeholder and agent registrations): collected by the runner.
 * 6. Two replicas acting as leader at once: writes of a replica after a replica that started writing later wrote.
 */

export type InvariantId = 1 | 2 | 3 | 4 | 5 | 6;

export const invariantNames: Record<InvariantId, string> = {
  1: "busy agent's pod deleted or killed",
  2: "job failed for want of an agent, or left unserved",
  3: "more live pods than maxCount",
  4: "cache PVC used by two live pods",
  5: "left behind after the run",
  6: "two replicas acting as leader",
};

export interface Violation {
  invariant: InvariantId;
  /** A finer class, e.g. "busy-pod-deleted-by-operator". */
  kind: string;
  /** When it happened (epoch ms). */
  at: number;
  message: string;
  details: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------------------------
// Specs over time (what maxCount was in force)

export interface SpecRecord {
  /** When the harness sent the change (epoch ms). */
  at: number;
  /** When the API server acknowledged it. */
  ackAt: number;
  /** `namespace/name`. */
  resource: string;
  /** The resource's uid (a resource deleted and created again has a new one). */
  uid: string;
  /** Template key → maxCount; null: the resource was deleted. */
  maxCounts: Record<string, number> | null;
}

/** Whether the resource (this uid, when given) had been deleted by `t` (its last record by then says so). */
export function deletedBy(records: readonly SpecRecord[], resource: string, t: number, uid?: string): boolean {
  const last = records
    .filter((r) => r.resource === resource && (uid === undefined || r.uid === uid) && r.at <= t)
    .sort((a, b) => a.at - b.at)
    .at(-1);
  return last?.maxCounts === null;
}

/**
 * The largest maxCount of a template in force at some moment of [t - graceMs, t] (the operator needs a moment to
 * see a change): a value is in force from when it was sent until the next value was acknowledged.
 * 0 when the template (or the resource) did not exist.
 */
export function maxCountAt(
  records: readonly SpecRecord[],
  resource: string,
  template: string,
  t: number,
  graceMs: number,
  uid?: string,
): number {
  const mine = records
    .filter((r) => r.resource === resource && (uid === undefined || r.uid === uid))
    .sort((a, b) => a.at - b.at);
  let best = 0;
  for (const [i, r] of mine.entries()) {
    const next = mine[i + 1];
    const from = r.at;
    const to = next ? next.ackAt : Number.POSITIVE_INFINITY;
    if (to < t - graceMs || from > t) continue;
    best = Math.max(best, r.maxCounts?.[template] ?? 0);
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------------------
// Pods

export interface PodObservation {
  namespace: string;
  name: string;
  /** The AutoScaledAgent (owner) name. */
  resource: string | undefined;
  /** The owner reference's uid. */
  ownerUid?: string;
  /** The template key label. */
  template: string | undefined;
  /** creationTimestamp (epoch ms; whole seconds), NaN when unknown. */
  createdAt: number;
  phase: string;
  deleting: boolean;
  /** The agent container (the first) has terminated. */
  agentTerminated: boolean;
  claims: string[];
}

const finalPhase = (p: PodObservation) => p.phase === "Succeeded" || p.phase === "Failed";

/**
 * Live, for maxCount (the operator's own contract: starting, idle and busy pods count): not in a final phase, not
 * being deleted, its agent container still running, and its agent not done with its job. Pods being deleted and
 * pods whose agent has finished still hold resources; they are counted apart as "held" (`isHeld`).
 */
export function isLive(p: PodObservation, agentDone: boolean): boolean {
  return !finalPhase(p) && !p.deleting && !p.agentTerminated && !agentDone;
}

/** Not in a final phase: the pod still holds its node resources and mounts its volumes. */
export function isHeld(p: PodObservation): boolean {
  return !finalPhase(p);
}

export interface JobObservation {
  requestId: number;
  state: "queued" | "assigned" | "running" | "finished";
  result?: string;
  statusMessage?: string;
  reservedAgent?: { name: string };
}

export interface LiveCheckerOptions {
  specs: () => readonly SpecRecord[];
  graceMs: number;
  /** Labels of what was going on at `t` (active disturbances), attached to each violation. */
  context?: (t: number) => string[];
}

export interface HeldExcess {
  template: string;
  /** Held pods minus maxCount, at its largest. */
  excess: number;
  at: number;
  held: number;
  maxCount: number;
}

/** Invariants 3 and 4, checked as pod and job observations arrive (in the order they arrive). */
export class LiveChecker {
  readonly violations: Violation[] = [];
  /** The largest excess of held pods (incl. terminating and finishing) over maxCount, per template key. */
  readonly heldExcess = new Map<string, HeldExcess>();
  readonly #o: LiveCheckerOptions;
  readonly #pods = new Map<string, PodObservation>();
  readonly #firstSeen = new Set<string>();
  /** Agents (pod names) whose job finished. */
  readonly #agentsDone = new Set<string>();
  readonly #reportedPairs = new Set<string>();
  #checks = 0;

  constructor(options: LiveCheckerOptions) {
    this.#o = options;
  }

  get checks(): number {
    return this.#checks;
  }

  onJob(job: JobObservation): void {
    if (job.state === "finished" && job.reservedAgent) this.#agentsDone.add(job.reservedAgent.name);
  }

  /** A pod added or changed; returns the violations it revealed. */
  onPod(t: number, pod: PodObservation): Violation[] {
    return this.onPods(t, [pod]);
  }

  /**
   * Pods added or changed together (e.g. by one relist, whose changes arrive in no particular order): every change
   * is applied first, then each pod is judged against the state after all of them.
   */
  onPods(
    t: number,
    pods: readonly PodObservation[],
    gone: readonly { namespace: string; name: string }[] = [],
  ): Violation[] {
    const fresh: PodObservation[] = [];
    for (const pod of pods) {
      const key = `${pod.namespace}/${pod.name}`;
      this.#pods.set(key, pod);
      if (!this.#firstSeen.has(key)) {
        this.#firstSeen.add(key);
        fresh.push(pod);
      }
    }
    for (const g of gone) this.#pods.delete(`${g.namespace}/${g.name}`);
    const found: Violation[] = [];
    const latest = new Map(pods.map((p) => [`${p.namespace}/${p.name}`, p]));
    for (const pod of fresh) {
      const now = latest.get(`${pod.namespace}/${pod.name}`) ?? pod;
      if (this.#pods.get(`${pod.namespace}/${pod.name}`) === now) found.push(...this.#checkMaxCount(t, now));
    }
    for (const pod of latest.values()) {
      if (this.#pods.get(`${pod.namespace}/${pod.name}`) !== pod) continue;
      found.push(...this.#checkClaims(t, pod));
      this.#trackHeld(t, pod);
      this.#checks++;
    }
    this.violations.push(...found);
    return found;
  }

  onPodGone(namespace: string, name: string): void {
    this.#pods.delete(`${namespace}/${name}`);
  }

  /** Pods of one template of one resource instance (a resource created again is another instance). */
  #templateKey(p: PodObservation): string {
    return `${p.namespace}/${p.resource ?? "?"}/${p.template ?? "?"}${p.ownerUid ? `@${p.ownerUid.slice(0, 8)}` : ""}`;
  }

  #siblings(p: PodObservation): PodObservation[] {
    const k = this.#templateKey(p);
    return [...this.#pods.values()].filter((q) => this.#templateKey(q) === k);
  }

  #context(t: number): string[] {
    return this.#o.context?.(t) ?? [];
  }

  #checkMaxCount(t: number, pod: PodObservation): Violation[] {
    if (!isLive(pod, this.#agentsDone.has(pod.name))) return [];
    // When it was created: the watch may deliver late; creationTimestamp has whole seconds.
    const createdAt = Number.isFinite(pod.createdAt) ? Math.min(t, pod.createdAt + 1000) : t;
    const live = this.#siblings(pod).filter((q) => isLive(q, this.#agentsDone.has(q.name)));
    const resource = `${pod.namespace}/${pod.resource ?? "?"}`;
    const max = maxCountAt(this.#o.specs(), resource, pod.template ?? "?", createdAt, this.#o.graceMs, pod.ownerUid);
    if (live.length <= max) return [];
    const gone = deletedBy(this.#o.specs(), resource, createdAt - this.#o.graceMs, pod.ownerUid);
    return [
      {
        invariant: 3,
        kind: max > 0 ? "above-max-count" : gone ? "pod-for-deleted-resource" : "pod-for-absent-template",
        at: createdAt,
        message: `pod ${pod.namespace}/${pod.name} created while ${live.length} live pods of template ${this.#templateKey(pod)} exceed maxCount ${max}`,
        details: {
          pod: pod.name,
          template: this.#templateKey(pod),
          ownerUid: pod.ownerUid,
          live: live.length,
          maxCount: max,
          livePods: live.map((q) => q.name),
          context: this.#context(createdAt),
        },
      },
    ];
  }

  #checkClaims(t: number, pod: PodObservation): Violation[] {
    if (!isHeld(pod) || pod.claims.length === 0) return [];
    const found: Violation[] = [];
    for (const other of this.#pods.values()) {
      if (other === pod || other.namespace !== pod.namespace || !isHeld(other)) continue;
      for (const claim of pod.claims) {
        if (!other.claims.includes(claim)) continue;
        const pair = [pod.name, other.name].sort().join("+");
        const reportKey = `${pod.namespace}/${claim}/${pair}`;
        if (this.#reportedPairs.has(reportKey)) continue;
        this.#reportedPairs.add(reportKey);
        const describe = (p: PodObservation) => ({
          pod: p.name,
          phase: p.phase,
          deleting: p.deleting,
          agentTerminated: p.agentTerminated,
          createdAt: Number.isFinite(p.createdAt) ? new Date(p.createdAt).toISOString() : undefined,
        });
        found.push({
          invariant: 4,
          kind: other.deleting || pod.deleting ? "claim-shared-with-terminating-pod" : "claim-shared-by-live-pods",
          at: t,
          message: `PVC ${pod.namespace}/${claim} referenced by ${other.name} (${other.phase}${other.deleting ? ", terminating" : ""}) and ${pod.name} (${pod.phase}${pod.deleting ? ", terminating" : ""})`,
          details: { claim, pods: [describe(other), describe(pod)], context: this.#context(t) },
        });
      }
    }
    return found;
  }

  #trackHeld(t: number, pod: PodObservation): void {
    const key = this.#templateKey(pod);
    const held = this.#siblings(pod).filter(isHeld).length;
    const max = maxCountAt(
      this.#o.specs(),
      `${pod.namespace}/${pod.resource ?? "?"}`,
      pod.template ?? "?",
      t,
      0,
      pod.ownerUid,
    );
    const excess = held - max;
    const prev = this.heldExcess.get(key);
    if (excess > 0 && (!prev || excess > prev.excess)) {
      this.heldExcess.set(key, { template: key, excess, at: t, held, maxCount: max });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Jobs: invariants 1 and 2

/** A job's history as the emulator reported it. */
export interface JobHistory {
  requestId: number;
  /** State changes, in order: when, the state, and the agent it was reserved for then. */
  changes: { at: number; state: JobObservation["state"]; agent?: string }[];
  result?: string;
  statusMessage?: string;
  /** The harness asked to cancel it (when). */
  cancelledAt?: number;
  /** The resource (namespace/name) and template key it was meant for. */
  resource: string;
  template: string;
  demands: string[];
}

/** Windows in which an agent held a job (assigned or running), per agent name. */
export function holdWindows(
  jobs: readonly JobHistory[],
): Map<string, { requestId: number; from: number; to: number }[]> {
  const out = new Map<string, { requestId: number; from: number; to: number }[]>();
  for (const j of jobs) {
    let open: { agent: string; from: number } | undefined;
    const close = (to: number) => {
      if (!open) return;
      const list = out.get(open.agent) ?? [];
      list.push({ requestId: j.requestId, from: open.from, to });
      out.set(open.agent, list);
      open = undefined;
    };
    for (const c of j.changes) {
      if ((c.state === "assigned" || c.state === "running") && c.agent) {
        if (open && open.agent !== c.agent) close(c.at);
        open ??= { agent: c.agent, from: c.at };
      } else {
        close(c.at);
      }
    }
    close(Number.POSITIVE_INFINITY);
  }
  return out;
}

/** The agent that last held the job, if any. */
export function lastAgent(j: JobHistory): string | undefined {
  return [...j.changes].reverse().find((c) => c.agent)?.agent;
}

export interface PodDelete {
  at: number;
  user: string;
  namespace: string;
  name: string;
}

export interface JobCheckInput {
  jobs: readonly JobHistory[];
  /** Successful pod DELETEs from the audit log. */
  podDeletes: readonly PodDelete[];
  /** Whether an audit user is an operator replica. */
  isOperator: (user: string) => boolean;
  /** Whether an audit user is Kubernetes' garbage collector. */
  isGarbageCollector: (user: string) => boolean;
  /**
   * For a pod (by name): when the harness deleted its owner (that very instance, by uid), and when the pod was
   * created; undefined when its owner was not deleted.
   */
  ownerDeleted: (podName: string) => { deletedAt: number; podCreatedAt: number } | undefined;
  /** Whether a template of the specs at the end fits the job (for jobs left unfinished). */
  fitsAtEnd: (j: JobHistory) => boolean;
  /** Jobs not finished when the run ended. */
  unfinished: readonly JobHistory[];
  context?: (t: number) => string[];
}

const noAgent = /No agent found/i;

export function checkJobs(input: JobCheckInput): { violations: Violation[]; expected: Violation[] } {
  const violations: Violation[] = [];
  const expected: Violation[] = [];
  const ctx = (t: number) => input.context?.(t) ?? [];
  const deletesOf = (name: string) => input.podDeletes.filter((d) => d.name === name);
  for (const j of input.jobs) {
    const finishedAt = j.changes.find((c) => c.state === "finished")?.at;
    if (finishedAt === undefined || j.result === "succeeded") continue;
    if (j.result === "failed" && noAgent.test(j.statusMessage ?? "")) {
      violations.push({
        invariant: 2,
        kind: "failed-no-agent",
        at: finishedAt,
        message: `job ${j.requestId} (${j.resource} ${j.template}) failed: ${j.statusMessage}`,
        details: { requestId: j.requestId, demands: j.demands, context: ctx(finishedAt) },
      });
      continue;
    }
    if (j.cancelledAt !== undefined && j.cancelledAt <= finishedAt) continue;
    const agent = lastAgent(j);
    const deletes = agent ? deletesOf(agent) : [];
    const firstDelete = deletes.sort((a, b) => a.at - b.at)[0];
    const owner = agent ? input.ownerDeleted(agent) : undefined;
    // The harness deleted the resource while the pod existed: its garbage collection is what the user asked for.
    const ownerGone = owner !== undefined && owner.deletedAt <= finishedAt && owner.podCreatedAt < owner.deletedAt;
    const createdForDeleted = owner !== undefined && owner.podCreatedAt >= owner.deletedAt;
    const byGc = deletes.some((d) => input.isGarbageCollector(d.user));
    const v: Violation = {
      invariant: 1,
      kind: !agent
        ? "job-lost-without-agent"
        : createdForDeleted
          ? "job-taken-by-pod-created-for-deleted-resource"
          : firstDelete && input.isOperator(firstDelete.user)
            ? "busy-pod-deleted-by-operator"
            : firstDelete
              ? `busy-pod-deleted-by-${firstDelete.user.split(":").at(-1)}`
              : "agent-lost-pod-not-deleted",
      at: finishedAt,
      message: `job ${j.requestId} (${j.resource} ${j.template}) finished ${j.result}${agent ? ` on ${agent}` : ""}${firstDelete ? `; pod deleted by ${firstDelete.user} at ${new Date(firstDelete.at).toISOString()}` : ""}`,
      details: {
        requestId: j.requestId,
        result: j.result,
        statusMessage: j.statusMessage,
        agent,
        podDeletes: deletes.map((d) => ({ at: new Date(d.at).toISOString(), user: d.user })),
        ...(owner
          ? {
              ownerDeletedAt: new Date(owner.deletedAt).toISOString(),
              podCreatedAt: new Date(owner.podCreatedAt).toISOString(),
            }
          : {}),
        history: j.changes.map((c) => ({ at: new Date(c.at).toISOString(), state: c.state, agent: c.agent })),
        context: ctx(finishedAt),
      },
    };
    if (ownerGone && (byGc || !firstDelete)) expected.push({ ...v, kind: "resource-deleted-by-harness" });
    else violations.push(v);
  }
  // Pods an operator replica deleted while their agent held a job (even when the job survived the grace period).
  const windows = holdWindows(input.jobs);
  for (const d of input.podDeletes) {
    if (!input.isOperator(d.user)) continue;
    const held = (windows.get(d.name) ?? []).find((w) => w.from <= d.at && d.at < w.to);
    if (!held) continue;
    violations.push({
      invariant: 1,
      kind: "operator-deleted-pod-holding-job",
      at: d.at,
      message: `${d.user} deleted pod ${d.namespace}/${d.name} while its agent held job ${held.requestId} (since ${new Date(held.from).toISOString()})`,
      details: {
        pod: d.name,
        user: d.user,
        requestId: held.requestId,
        heldFrom: new Date(held.from).toISOString(),
        heldTo: Number.isFinite(held.to) ? new Date(held.to).toISOString() : "unfinished",
        context: ctx(d.at),
      },
    });
  }
  for (const j of input.unfinished) {
    const at = j.changes.at(-1)?.at ?? 0;
    const fits = input.fitsAtEnd(j);
    const v: Violation = {
      invariant: 2,
      kind: fits ? "left-unfinished-though-a-template-fits" : "left-unfinished-no-template-fits",
      at,
      message: `job ${j.requestId} (${j.resource} ${j.template}) still ${j.changes.at(-1)?.state ?? "queued"} at the end`,
      details: { requestId: j.requestId, demands: j.demands, state: j.changes.at(-1)?.state, agent: lastAgent(j) },
    };
    if (fits) violations.push(v);
    else expected.push(v);
  }
  return { violations, expected };
}

// ---------------------------------------------------------------------------------------------------------------
// Leadership: invariant 6

export interface WriteRecord {
  at: number;
  user: string;
  verb: string;
  object: string;
}

export interface ReplicaWrites {
  user: string;
  writes: number;
  first: number;
  last: number;
}

/**
 * Writes by a replica after another replica, which wrote for the first time later than it did, had started
 * writing. Replica identities are never reused, so in a clean handover the writers' intervals do not overlap.
 */
export function checkLeadership(
  writes: readonly WriteRecord[],
  context?: (t: number) => string[],
): { violations: Violation[]; replicas: ReplicaWrites[] } {
  const sorted = [...writes].sort((a, b) => a.at - b.at);
  const replicas = new Map<string, ReplicaWrites>();
  for (const w of sorted) {
    const r = replicas.get(w.user);
    if (r) {
      r.writes++;
      r.last = w.at;
    } else {
      replicas.set(w.user, { user: w.user, writes: 1, first: w.at, last: w.at });
    }
  }
  const violations: Violation[] = [];
  for (const w of sorted) {
    const mine = replicas.get(w.user) as ReplicaWrites;
    const newer = [...replicas.values()].filter((s) => s.user !== w.user && s.first > mine.first && s.first < w.at);
    if (newer.length === 0) continue;
    const latest = newer.sort((a, b) => b.first - a.first)[0] as ReplicaWrites;
    violations.push({
      invariant: 6,
      kind: "write-after-a-newer-replica-wrote",
      at: w.at,
      message: `${w.user} ${w.verb} ${w.object} ${Math.round(w.at - latest.first)} ms after ${latest.user} had started writing`,
      details: {
        writer: w.user,
        verb: w.verb,
        object: w.object,
        at: new Date(w.at).toISOString(),
        newerReplica: latest.user,
        newerFirstWrite: new Date(latest.first).toISOString(),
        context: context?.(w.at) ?? [],
      },
    });
  }
  return { violations, replicas: [...replicas.values()].sort((a, b) => a.first - b.first) };
}
