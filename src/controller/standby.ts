/**
 * Standby agents for the reconciler: per template with a `standby` block, the standby in force (the pure
 * `decideStandby` of src/scaling/standby.ts: baseline, schedules, prediction), turned into the scale plan's minCount
 * (busy + standby), status entries and an event when it changes; and, for predictive standby, the job history:
 * read from a ConfigMap owned by the resource, added to from each poll, written back at most every
 * `writeIntervalMs` (the clock and the ConfigMap store: standby-store.ts).
 *
 * State per resource key, all of it rebuilt from the cluster after a restart or a leader change: the history as
 * last read or written (and its resourceVersion), whether it changed since, when it was last written, and the
 * standby last announced per template (seeded from the status, so a restart does not announce again).
 *
 * Rules:
 * 1. Every template keeps its standby agents ready beside its busy ones: the plan's minCount is busy + the standby in
 *    force (at most maxCount), so a job that takes a warm agent has it replaced within one poll. The plan counts the
 *    busy pods itself (`TemplateSpec.standby`): its job list leaves out jobs of ended pods, and busy pods counted
 *    from the whole list could outnumber its live ones and make warm pods at the end of a burst. (The original
 *    operator counted busy pods toward minCount: its warm agent came back only when the job had ended.)
 * 2. Without a standby block the standby in force is the template's minCount; with one, the baseline, schedules and
 *    prediction decide (`decideStandby`).
 * 3. The history is only read and written for resources with a predictive template; a resource without one never
 *    gets a ConfigMap.
 * 4. The history is read once per resource (again after a write conflict). A history that cannot be read leaves the
 *    prediction out (problem `StandbyHistoryUnavailable`) and nothing is recorded or written until it can: an empty
 *    history written over an unread one would lose it. A history that is not readable as one (someone edited it) is
 *    reported (`StandbyHistoryInvalid`, Warning event) and replaced by an empty one.
 * 5. Jobs are recorded only from a fresh poll, each once (`seen`), at their queue time, in the standby clock.
 * 6. A write conflict (another writer: a previous leader's last write, a person) re-reads the stored history and
 *    merges it, keeping the larger count of each bucket, then writes again.
 */
import { type AutoScaledAgent, type AutoScaledAgentStatus, resourceRef, type StandbyStatus } from "../api/v1/index.ts";
import type { Logger } from "../runtime/logger.ts";
import { keptIn } from "../runtime/memo.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import {
  addJobs,
  busyPerTemplate,
  decideStandby,
  emptyHistory,
  historyRetentionMs,
  type JobHistory,
  jobsToRecord,
  planMinCount,
  pruneHistory,
  type StandbyDecision,
  timeZone,
  type Zone,
} from "../scaling/standby.ts";
import type { ObservedPod } from "../scaling/types.ts";
import type { Problem } from "./actions.ts";
import { observeAgent } from "./observe.ts";
import type { EventsPort, PoolSnapshot, Resource } from "./ports.ts";
import {
  boundHistory,
  decodeHistory,
  emptyStoredHistory,
  encodeHistory,
  HISTORY_DATA_KEY,
  type StoredHistory,
} from "./standby-history.ts";
import { type HistoryStore, historyConfigMapName, type StandbyClock } from "./standby-store.ts";

// ---------------------------------------------------------------------------------------------------------------
// The work

export interface StandbyWorkOptions {
  store: HistoryStore;
  events: EventsPort;
  clock: StandbyClock;
  /** The real clock (write intervals). */
  realNow(): number;
  /** The history is written at most this often (and only when it changed). */
  writeIntervalMs: number;
  logger?: Logger | undefined;
}

export interface StandbyInput {
  key: string;
  resource: Resource;
  /** The resource's status as read (the standby announced before). */
  previous: AutoScaledAgentStatus | undefined;
  /** The pool's latest poll; undefined when there is none or it failed (then nothing is recorded). */
  snapshot: PoolSnapshot | undefined;
  /** The resource's pods as the plan sees them. */
  pods: readonly ObservedPod[];
}

export interface StandbyResult {
  /** The scale plan's minCount per template (spec order): busy + standby, from this view of the pods. */
  minCounts: number[];
  /** The standby in force per template (spec order): the plan keeps this many free beside its busy pods. */
  standby: number[];
  /** `status.templates[].standby` per template; undefined for templates without a standby block. */
  status: (StandbyStatus | undefined)[];
  /** Reconcile again after this many real milliseconds: the standby may change then. */
  requeueAfterMs?: number;
  problems: Problem[];
}

interface State {
  /** The history as read or last written; undefined until read. */
  history?: StoredHistory;
  resourceVersion?: string;
  dirty: boolean;
  lastWriteAt: number;
  /** Per template key: the standby last announced ("3 Schedule 0"). */
  announced?: Map<string, string>;
}

/** Capability-set keys of a spec's templates, by templates' array (replaced, never edited). */
const keysOf = new WeakMap<Resource["spec"]["podsWithCapabilities"], readonly string[]>();

function templateKeys(templates: Resource["spec"]["podsWithCapabilities"]): readonly string[] {
  return keptIn(keysOf, templates, () =>
    templates.map((t) => capabilitySetKey(t.capabilities as Record<string, string>)),
  );
}

const announcement = (s: { minCount: number; reason: string; schedule?: number | undefined }) =>
  `${s.minCount} ${s.reason}${s.schedule === undefined ? "" : ` ${s.schedule}`}`;

/** Keeps the larger count of each bucket and the earlier start (a merge of two views of the same jobs). */
function mergeHistories(a: StoredHistory, b: StoredHistory): StoredHistory {
  const templates = new Map(a.templates);
  for (const [key, h] of b.templates) {
    const mine = templates.get(key);
    if (mine === undefined) {
      templates.set(key, h);
      continue;
    }
    const buckets = new Map(mine.buckets);
    for (const [bucket, n] of h.buckets) buckets.set(bucket, Math.max(n, buckets.get(bucket) ?? 0));
    templates.set(key, { since: Math.min(mine.since, h.since), buckets });
  }
  return { templates, seen: new Set([...a.seen, ...b.seen]) };
}

export class StandbyWork {
  readonly #o: StandbyWorkOptions;
  readonly #states = new Map<string, State>();

  constructor(options: StandbyWorkOptions) {
    this.#o = options;
  }

  forget(key: string): void {
    this.#states.delete(key);
  }

  /**
   * The standby in force. Without a predictive template nothing is read or written, and the answer comes at once
   * (no promise: the reconcile does not yield to other work).
   */
  decide(input: StandbyInput): StandbyResult | Promise<StandbyResult> {
    const { key, resource } = input;
    const templates = resource.spec.podsWithCapabilities;
    const now = this.#o.clock.now();
    const problems: Problem[] = [];
    const state = this.#stateOf(key);
    const keys = templateKeys(templates);
    const predictive = new Map<string, NonNullable<NonNullable<(typeof templates)[number]["standby"]>["predictive"]>>();
    templates.forEach((t, i) => {
      if (t.standby?.predictive) predictive.set(keys[i] as string, t.standby.predictive);
    });
    if (predictive.size === 0) return this.#decideNow(input, state, keys, now, problems, undefined);
    const history =
      state.history === undefined
        ? this.#load(resource, state, problems).then(() => this.#history(input, state, keys, predictive, now, problems))
        : this.#history(input, state, keys, predictive, now, problems);
    if (history instanceof Promise) {
      return history.then((requeueWriteMs) => this.#decideNow(input, state, keys, now, problems, requeueWriteMs));
    }
    return this.#decideNow(input, state, keys, now, problems, history);
  }

  /**
   * Rules 3-6: the history of predictive templates, once read: this poll's jobs recorded, and the history written
   * when due (a promise only then); otherwise how long until it may be written, when it waits.
   */
  #history(
    input: StandbyInput,
    state: State,
    keys: readonly string[],
    predictive: ReadonlyMap<string, { lookaheadMinutes?: number; historyWeeks?: number }>,
    now: number,
    problems: Problem[],
  ): number | undefined | Promise<undefined> {
    const { resource, snapshot, pods } = input;
    if (state.history !== undefined && snapshot !== undefined)
      this.#record(state, snapshot, pods, keys, predictive, now);
    if (state.history !== undefined && state.dirty) {
      const wait = state.lastWriteAt + this.#o.writeIntervalMs - this.#o.realNow();
      if (wait <= 0) return this.#write(resource, state, problems).then(() => undefined);
      return wait;
    }
    return undefined;
  }

  /** Rules 1-2: the decision and the plan's minCount per template. */
  #decideNow(
    input: StandbyInput,
    state: State,
    keys: readonly string[],
    now: number,
    problems: Problem[],
    requeueWriteMs: number | undefined,
  ): StandbyResult {
    const { resource, snapshot, pods } = input;
    const templates = resource.spec.podsWithCapabilities;
    const zones = new Map<string, Zone>();
    const zoneOf = (name: string) => {
      let z = zones.get(name);
      if (z === undefined) {
        z = timeZone(name);
        zones.set(name, z);
      }
      return z;
    };
    const names = new Set(pods.map((p) => p.name));
    const busy = busyPerTemplate(
      pods,
      (snapshot?.agents ?? []).filter((a) => names.has(a.name)).map(observeAgent),
      snapshot?.jobRequests ?? [],
      templates.length,
    );
    const minCounts: number[] = [];
    const standby: number[] = [];
    const status: (StandbyStatus | undefined)[] = [];
    let next: number | undefined;
    const decisions: (StandbyDecision | undefined)[] = templates.map((t, i) => {
      if (t.standby === undefined) return undefined;
      const p = t.standby.predictive;
      const history = p === undefined ? undefined : state.history?.templates.get(keys[i] as string);
      return decideStandby(
        {
          minCount: t.minCount,
          maxCount: t.maxCount,
          schedules: t.standby.schedules ?? [],
          predictive:
            p === undefined
              ? undefined
              : {
                  percentile: p.percentile ?? 75,
                  max: p.max,
                  lookaheadMinutes: p.lookaheadMinutes ?? 10,
                  historyWeeks: p.historyWeeks ?? 4,
                  timeZone: p.timeZone ?? "UTC",
                },
        },
        now,
        history ?? (p !== undefined && state.history !== undefined ? emptyHistory(now) : undefined),
        zoneOf,
      );
    });
    templates.forEach((t, i) => {
      const d = decisions[i];
      if (d === undefined) {
        minCounts.push(planMinCount(t.minCount, busy[i] ?? 0, t.maxCount));
        standby.push(t.minCount);
        status.push(undefined);
        return;
      }
      minCounts.push(planMinCount(d.minCount, busy[i] ?? 0, t.maxCount));
      standby.push(d.minCount);
      status.push({
        minCount: d.minCount,
        reason: d.reason,
        ...(d.schedule !== undefined ? { schedule: d.schedule } : {}),
        ...(d.predicted !== undefined ? { predicted: d.predicted } : {}),
        message: d.message.slice(0, 1024),
      });
      if (d.nextChangeAt !== undefined) next = next === undefined ? d.nextChangeAt : Math.min(next, d.nextChangeAt);
    });
    this.#announce(input, state, keys, status);

    const waits = [
      ...(next === undefined ? [] : [Math.max(100, Math.ceil(this.#o.clock.realDelay(next - now)))]),
      ...(requeueWriteMs === undefined ? [] : [Math.max(100, requeueWriteMs)]),
    ];
    return { minCounts, standby, status, ...(waits.length ? { requeueAfterMs: Math.min(...waits) } : {}), problems };
  }

  #stateOf(key: string): State {
    let s = this.#states.get(key);
    if (s === undefined) {
      s = { dirty: false, lastWriteAt: Number.NEGATIVE_INFINITY };
      this.#states.set(key, s);
    }
    return s;
  }

  async #load(resource: Resource, state: State, problems: Problem[]): Promise<void> {
    if (state.history !== undefined) return;
    const { namespace, name } = resource.metadata;
    const cmName = historyConfigMapName(name);
    let stored: Awaited<ReturnType<HistoryStore["read"]>>;
    try {
      stored = await this.#o.store.read(namespace, cmName);
    } catch (err) {
      problems.push({
        reason: "StandbyHistoryUnavailable",
        message: `cannot read the predictive standby history (ConfigMap ${cmName}): ${(err as Error).message}; predictive standby waits for it`,
      });
      return;
    }
    if (stored === undefined) {
      state.history = emptyStoredHistory();
      delete state.resourceVersion;
      state.dirty = true;
      return;
    }
    state.resourceVersion = stored.resourceVersion;
    try {
      state.history = decodeHistory(stored.text ?? "");
    } catch (err) {
      const message = `the predictive standby history in ConfigMap ${cmName} (key ${HISTORY_DATA_KEY}) is not readable (${(err as Error).message}); starting a new one`;
      problems.push({ reason: "StandbyHistoryInvalid", message });
      this.#o.events.warning(resourceRef(resource as AutoScaledAgent), "StandbyHistoryInvalid", message, "ReadHistory");
      state.history = emptyStoredHistory();
      state.dirty = true;
    }
  }

  #record(
    state: State,
    snapshot: PoolSnapshot,
    pods: readonly ObservedPod[],
    keys: readonly string[],
    predictive: ReadonlyMap<string, { lookaheadMinutes?: number; historyWeeks?: number }>,
    now: number,
  ): void {
    const history = state.history as StoredHistory;
    const templates = new Map(history.templates);
    const seen = new Set(history.seen);
    let changed = false;
    for (const key of predictive.keys()) {
      if (!templates.has(key)) {
        templates.set(key, emptyHistory(now));
        changed = true;
      }
    }
    const times = new Map<string, number[]>();
    for (const job of jobsToRecord(snapshot.jobRequests, pods, seen)) {
      const key = keys[job.templateIndex];
      if (key === undefined || !predictive.has(key)) continue;
      seen.add(job.requestId);
      times.set(key, [...(times.get(key) ?? []), this.#o.clock.fromReal(job.atMs)]);
      changed = true;
    }
    for (const [key, p] of predictive) {
      const before = templates.get(key) as JobHistory;
      const added = addJobs(before, times.get(key) ?? []);
      const pruned = pruneHistory(
        added,
        now,
        historyRetentionMs({
          percentile: 75,
          lookaheadMinutes: p.lookaheadMinutes ?? 10,
          historyWeeks: p.historyWeeks ?? 4,
          timeZone: "UTC",
        }),
      );
      if (pruned !== before) changed = true;
      templates.set(key, pruned);
    }
    const listed = new Set(snapshot.jobRequests.map((j) => j.requestId));
    const bounded = boundHistory({ templates, seen }, new Set(predictive.keys()), listed);
    if (bounded.seen.size !== history.seen.size || bounded.templates.size !== history.templates.size) changed = true;
    state.history = bounded;
    if (changed) state.dirty = true;
  }

  async #write(resource: Resource, state: State, problems: Problem[]): Promise<void> {
    const { namespace, name } = resource.metadata;
    const cmName = historyConfigMapName(name);
    const attempt = () =>
      this.#o.store.write(namespace, cmName, encodeHistory(state.history as StoredHistory), {
        resourceVersion: state.resourceVersion,
        owner: resource,
      });
    try {
      let r = await attempt();
      if (r.outcome === "conflict") {
        // Rule 6: someone else wrote; merge what is stored and try once more.
        const stored = await this.#o.store.read(namespace, cmName);
        if (stored === undefined) delete state.resourceVersion;
        else {
          state.resourceVersion = stored.resourceVersion;
          try {
            state.history = mergeHistories(state.history as StoredHistory, decodeHistory(stored.text ?? ""));
          } catch {
            // Unreadable: ours replaces it.
          }
        }
        r = await attempt();
      }
      if (r.outcome === "written") {
        state.resourceVersion = r.resourceVersion;
        state.dirty = false;
        state.lastWriteAt = this.#o.realNow();
      } else {
        // Still conflicting: read it afresh next time.
        delete state.history;
      }
    } catch (err) {
      problems.push({
        reason: "StandbyHistoryWriteFailed",
        message: `cannot write the predictive standby history (ConfigMap ${cmName}): ${(err as Error).message}; retrying`,
      });
      state.lastWriteAt = this.#o.realNow();
    }
  }

  /** A Normal event per template whose standby in force changed since it was last announced (or shown in status). */
  #announce(
    input: StandbyInput,
    state: State,
    keys: readonly string[],
    status: readonly (StandbyStatus | undefined)[],
  ) {
    const { resource, previous } = input;
    const templates = resource.spec.podsWithCapabilities;
    if (state.announced === undefined) {
      state.announced = new Map();
      for (const t of previous?.templates ?? []) {
        const key = keys[t.index];
        if (key !== undefined && t.standby !== undefined) state.announced.set(key, announcement(t.standby));
      }
    }
    const announced = state.announced;
    status.forEach((s, i) => {
      const key = keys[i] as string;
      if (s === undefined) {
        announced.delete(key);
        return;
      }
      const now = announcement(s);
      const before =
        announced.get(key) ?? announcement({ minCount: (templates[i]?.minCount ?? 0) as number, reason: "Baseline" });
      announced.set(key, now);
      if (now === before) return;
      const from = Number(before.split(" ")[0]);
      this.#o.events.normal(
        resourceRef(resource as AutoScaledAgent),
        "StandbyChanged",
        `podsWithCapabilities[${i}]: ${from === s.minCount ? "" : `${from} -> `}${s.minCount} standby agent(s): ${s.message}`,
        "Scale",
      );
    });
  }
}
