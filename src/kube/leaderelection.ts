/**
 * Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas only one reconciles.
 *
 * The decision (may I take the lease, what do I write) is the pure function `decideElection`; the elector is
 * a thin loop around it: every `retryPeriod` it reads the Lease, decides, and writes with optimistic
 * concurrency (the resourceVersion it read; a 409 simply means "try again next period").
 *
 * Expiry is judged, as client-go does, by the local clock: a lease held by someone else expires
 * `leaseDurationSeconds` after *this process first saw its current content*, never by comparing the holder's
 * renewTime with our clock, so clock skew between nodes cannot make two leaders. A new candidate therefore
 * waits up to one lease duration before it takes over from a leader that died; a leader that stops gracefully
 * releases the lease (empty holder, 1 s duration) and hands over at the next retry.
 *
 * A leader that cannot renew for `renewDeadline` (< leaseDuration) steps down before anyone else may take
 * over: the signal given to `onStartedLeading` aborts and `onStoppedLeading` is called.
 */

import { type Clock, delay, formatMicroTime, type Random, systemClock, type TimerHandle } from "../runtime/clock.ts";
import { errorMessage, type Logger, silentLogger } from "../runtime/logger.ts";
import { isNotFound, type KubeClient } from "./client.ts";
import { resourcePath } from "./resource.ts";
import type { KubeObject } from "./types.ts";

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  /** MicroTime (RFC 3339 with microseconds). */
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number | null;
  [field: string]: unknown;
}

export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export const leaseResource = { apiVersion: "coordination.k8s.io/v1", resource: "leases" } as const;

// ---------------------------------------------------------------------------------------------------------------
// Pure decision logic
// ---------------------------------------------------------------------------------------------------------------

/** What this process knows about the lease's current content and since when (by its own clock). */
export interface LeaseObservation {
  /** The spec fields that change when the holder writes (holder, times, duration, transitions). */
  fingerprint: string;
  /** Current holder; "" when released or never held. */
  holder: string;
  /** Local time at which this content was first seen. */
  observedAt: number;
  /** The lease's own duration (ms); 0 when it has none. */
  leaseDurationMs: number;
}

export function leaseFingerprint(spec: LeaseSpec | undefined): string {
  const s = spec ?? {};
  return JSON.stringify([
    s.holderIdentity ?? "",
    s.leaseDurationSeconds ?? 0,
    s.acquireTime ?? "",
    s.renewTime ?? "",
    s.leaseTransitions ?? 0,
  ]);
}

/** Updates an observation with a freshly read lease: unchanged content keeps its first-seen time. */
export function observeLease(
  previous: LeaseObservation | undefined,
  lease: Lease | undefined,
  now: number,
): LeaseObservation | undefined {
  if (!lease) return undefined;
  const fingerprint = leaseFingerprint(lease.spec);
  if (previous && previous.fingerprint === fingerprint) return previous;
  return {
    fingerprint,
    holder: lease.spec?.holderIdentity ?? "",
    observedAt: now,
    leaseDurationMs: Math.max(0, lease.spec?.leaseDurationSeconds ?? 0) * 1000,
  };
}

/** When the observed holding ends by our clock (`fallbackDurationMs` when the lease has no duration). */
export function observationExpiresAt(observation: LeaseObservation, fallbackDurationMs: number): number {
  return observation.observedAt + (observation.leaseDurationMs || fallbackDurationMs);
}

export interface ElectionInput {
  /** The lease as just read; undefined when it does not exist. */
  lease: Lease | undefined;
  /** The observation from previous rounds. */
  observation: LeaseObservation | undefined;
  identity: string;
  now: number;
  /** Duration this candidate writes when it holds the lease. */
  leaseDurationSeconds: number;
  namespace: string;
  name: string;
}

export type ElectionAction =
  /** No lease yet: create it, held by us. */
  | { type: "create"; lease: Lease }
  /** The lease is free (empty holder) or expired: take it over (update with the read resourceVersion). */
  | { type: "acquire"; lease: Lease; previousHolder: string }
  /** We hold it: renew. */
  | { type: "renew"; lease: Lease }
  /** Someone else holds it and it has not expired. */
  | { type: "wait"; holder: string; expiresAt: number };

export interface ElectionDecision {
  action: ElectionAction;
  observation: LeaseObservation | undefined;
}

function heldSpec(identity: string, input: ElectionInput, acquireTime: string, transitions: number): LeaseSpec {
  return {
    holderIdentity: identity,
    leaseDurationSeconds: input.leaseDurationSeconds,
    acquireTime,
    renewTime: formatMicroTime(input.now),
    leaseTransitions: transitions,
  };
}

/** Decides what to do with the lease this round. Pure: same input, same answer. */
export function decideElection(input: ElectionInput): ElectionDecision {
  const { lease, identity, now } = input;
  const observation = observeLease(input.observation, lease, now);
  const nowMicro = formatMicroTime(now);
  if (!lease || !observation) {
    return {
      action: {
        type: "create",
        lease: {
          apiVersion: leaseResource.apiVersion,
          kind: "Lease",
          metadata: { name: input.name, namespace: input.namespace },
          spec: heldSpec(identity, input, nowMicro, 0),
        },
      },
      observation,
    };
  }
  const spec = lease.spec ?? {};
  const holder = spec.holderIdentity ?? "";
  const transitions = spec.leaseTransitions ?? 0;
  const withSpec = (s: LeaseSpec): Lease => ({
    ...lease,
    apiVersion: leaseResource.apiVersion,
    kind: "Lease",
    metadata: { ...lease.metadata },
    spec: { ...spec, ...s },
  });
  if (holder === identity) {
    return {
      action: { type: "renew", lease: withSpec(heldSpec(identity, input, spec.acquireTime || nowMicro, transitions)) },
      observation,
    };
  }
  const expiresAt = observationExpiresAt(observation, input.leaseDurationSeconds * 1000);
  if (holder !== "" && now < expiresAt) {
    return { action: { type: "wait", holder, expiresAt }, observation };
  }
  return {
    action: {
      type: "acquire",
      lease: withSpec(heldSpec(identity, input, nowMicro, transitions + 1)),
      previousHolder: holder,
    },
    observation,
  };
}

/**
 * The lease to write when `identity` gives up leadership gracefully: no holder, a 1 s duration, so the next
 * candidate takes over at once. Undefined when the lease is not ours (nothing to release).
 */
export function releasedLease(lease: Lease, identity: string, now: number): Lease | undefined {
  if ((lease.spec?.holderIdentity ?? "") !== identity) return undefined;
  return {
    ...lease,
    metadata: { ...lease.metadata },
    spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: formatMicroTime(now) },
  };
}

/** A candidate identity: the pod name plus a random suffix, so a restarted pod is a new candidate. */
export function leaderIdentity(podName: string, random: Random = Math.random): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  let suffix = "";
  for (let i = 0; i < 6; i++) suffix += alphabet[Math.floor(random() * alphabet.length) % alphabet.length];
  return `${podName || "operator"}_${suffix}`;
}

export interface ElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** Throws when the timings cannot guarantee a single leader (client-go's rules). */
export function validateTimings(t: ElectionTimings): void {
  if (!(t.retryPeriodMs > 0)) throw new Error("leader election: retryPeriod must be > 0");
  if (!(t.renewDeadlineMs > t.retryPeriodMs * jitterFactor)) {
    throw new Error(`leader election: renewDeadline must be greater than retryPeriod * ${jitterFactor}`);
  }
  if (!(Math.ceil(t.leaseDurationMs / 1000) * 1000 > t.renewDeadlineMs)) {
    throw new Error("leader election: leaseDuration must be greater than renewDeadline");
  }
}

const jitterFactor = 1.2;
const stoppingReason = "stopping";

// ---------------------------------------------------------------------------------------------------------------
// I/O
// ---------------------------------------------------------------------------------------------------------------

/** Reads and writes one Lease. `get` resolves undefined when it does not exist. */
export interface LeaseClient {
  get(signal: AbortSignal): Promise<Lease | undefined>;
  create(lease: Lease, signal: AbortSignal): Promise<Lease>;
  update(lease: Lease, signal: AbortSignal): Promise<Lease>;
}

export function leaseClientFor(client: KubeClient, namespace: string, name: string): LeaseClient {
  const collection = resourcePath(leaseResource, { namespace });
  const item = resourcePath(leaseResource, { namespace, name });
  return {
    async get(signal) {
      try {
        return await client.request<Lease>({ path: item, signal });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    create: (lease, signal) => client.request<Lease>({ method: "POST", path: collection, body: lease, signal }),
    update: (lease, signal) => client.request<Lease>({ method: "PUT", path: item, body: lease, signal }),
  };
}

export interface LeaderElectorOptions {
  namespace: string;
  /** Lease name, e.g. `azure-pipelines-k8s-agent-scaler`. */
  name: string;
  /** This candidate, e.g. `leaderIdentity(podName)`. */
  identity: string;
  /** Either a client (the Lease is read and written through it) or a LeaseClient. */
  client?: KubeClient;
  leaseClient?: LeaseClient;
  /** How long a lease is valid without renewal. Default 15 s (written rounded up to whole seconds). */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long steps down. Default 10 s. */
  renewDeadlineMs?: number;
  /** Interval between attempts to acquire or renew. Default 2 s. */
  retryPeriodMs?: number;
  /** On stop, hand the lease over by releasing it. Default true. */
  releaseOnStop?: boolean;
  /** Once leadership is lost, compete again (default) rather than stay out. */
  rejoinAfterLoss?: boolean;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
  /** Called when this candidate becomes leader; `signal` aborts when leadership ends. Errors are logged. */
  onStartedLeading?: (signal: AbortSignal) => void | Promise<void>;
  /**
   * Called once each time leadership ends: lost, renew deadline passed (`requested: false`), or `stop()`
   * (`requested: true`, called before the lease is released).
   */
  onStoppedLeading?: (info: { requested: boolean; reason: string }) => void;
  /** Called when the observed holder changes (including to ourselves). */
  onNewLeader?: (identity: string) => void;
}

export interface LeaderElectorHealth {
  identity: string;
  leading: boolean;
  /** The holder last observed (may be stale by up to one retry period). */
  leader: string | undefined;
  lastRenewTime?: number;
  lastError?: { message: string; time: number };
  /** Times this candidate became leader. */
  terms: number;
}

export class LeaderElector {
  readonly identity: string;
  readonly #options: LeaderElectorOptions;
  readonly #lc: LeaseClient;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger;
  readonly #timings: ElectionTimings;
  readonly #leaseDurationSeconds: number;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #observation: LeaseObservation | undefined;
  /** The lease as last written by us (for renewals' bookkeeping and the release). */
  #lease: Lease | undefined;
  #leading = false;
  #leaderAbort: AbortController | undefined;
  #leaderWork: Promise<void> | undefined;
  #deadlineTimer: TimerHandle | undefined;
  #reportedLeader: string | undefined;
  #lastRenewTime: number | undefined;
  #lastError: { message: string; time: number } | undefined;
  #terms = 0;

  constructor(options: LeaderElectorOptions) {
    this.#options = options;
    this.identity = options.identity;
    if (!options.identity) throw new Error("leader election: identity is required");
    const lc =
      options.leaseClient ?? (options.client && leaseClientFor(options.client, options.namespace, options.name));
    if (!lc) throw new Error("leader election: need a client or a leaseClient");
    this.#lc = lc;
    this.#clock = options.clock ?? systemClock();
    this.#random = options.random ?? Math.random;
    this.#log = options.logger ?? silentLogger();
    this.#timings = {
      leaseDurationMs: options.leaseDurationMs ?? 15_000,
      renewDeadlineMs: options.renewDeadlineMs ?? 10_000,
      retryPeriodMs: options.retryPeriodMs ?? 2_000,
    };
    validateTimings(this.#timings);
    this.#leaseDurationSeconds = Math.ceil(this.#timings.leaseDurationMs / 1000);
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** The holder last observed, if any. */
  get leader(): string | undefined {
    return this.#reportedLeader || undefined;
  }

  health(): LeaderElectorHealth {
    const h: LeaderElectorHealth = {
      identity: this.identity,
      leading: this.#leading,
      leader: this.leader,
      terms: this.#terms,
    };
    if (this.#lastRenewTime !== undefined) h.lastRenewTime = this.#lastRenewTime;
    if (this.#lastError) h.lastError = { ...this.#lastError };
    return h;
  }

  /** Starts competing in the background. Idempotent. */
  start(): void {
    if (this.#loop || this.#stop.signal.aborted) return;
    this.#loop = this.#run();
  }

  /**
   * Stops competing. A leader steps down first (its signal aborts, onStoppedLeading runs, and its
   * onStartedLeading work gets up to renewDeadline to finish), then releases the lease unless told not to.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    this.#stop.abort();
    this.#stepDown(stoppingReason);
    const work = this.#leaderWork;
    if (work) {
      const waitAbort = new AbortController();
      await Promise.race([work, delay(this.#clock, this.#timings.renewDeadlineMs, waitAbort.signal)]);
      waitAbort.abort();
    }
    await this.#loop;
    // Release whenever we ever wrote the lease as holder: optimistic concurrency makes this safe even if someone
    // else holds it by now (the write conflicts, the re-read shows the other holder, nothing is written).
    if (this.#lease && this.#options.releaseOnStop !== false) await this.#release();
  }

  async #release(): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const ac = new AbortController();
      const timer = this.#clock.setTimeout(() => ac.abort(), this.#timings.renewDeadlineMs);
      try {
        const current = attempt === 0 && this.#lease ? this.#lease : await this.#lc.get(ac.signal);
        const released = current && releasedLease(current, this.identity, this.#clock.now());
        if (!released) return;
        await this.#lc.update(released, ac.signal);
        this.#log.info("released the leader lease", { identity: this.identity });
        return;
      } catch (err) {
        // A conflict means our copy was stale: re-read once and release if the lease is still ours.
        this.#log.warn("could not release the leader lease", { identity: this.identity, error: errorMessage(err) });
      } finally {
        this.#clock.clearTimeout(timer);
      }
    }
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    const { retryPeriodMs } = this.#timings;
    while (!stop.aborted) {
      const result = await this.#attempt(this.#timings.renewDeadlineMs);
      if (stop.aborted) break;
      if (result === "held") {
        this.#becomeLeader();
        await this.#renewLoop();
        if (this.#options.rejoinAfterLoss === false) break;
        continue;
      }
      await delay(this.#clock, retryPeriodMs * (1 + (jitterFactor - 1) * this.#random()), stop);
    }
  }

  async #renewLoop(): Promise<void> {
    const leaderSignal = this.#leaderAbort?.signal;
    while (this.#leading && !this.#stop.signal.aborted) {
      if (!(await delay(this.#clock, this.#timings.retryPeriodMs, leaderSignal))) break;
      const lastRenew = this.#lastRenewTime ?? this.#clock.now();
      const remaining = lastRenew + this.#timings.renewDeadlineMs - this.#clock.now();
      const result = await this.#attempt(Math.max(1, remaining), leaderSignal);
      if (!this.#leading) break;
      if (result === "held") this.#armDeadline();
      else if (result === "other") this.#stepDown(`the lease is now held by ${this.#observation?.holder}`);
    }
  }

  /** One read-decide-write round. "error": nothing learned (retry); "other": someone else validly holds it. */
  async #attempt(timeoutMs: number, extra?: AbortSignal): Promise<"held" | "other" | "error"> {
    const ac = new AbortController();
    const timer = this.#clock.setTimeout(
      () => ac.abort(new Error(`lease request timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = () => ac.abort();
    this.#stop.signal.addEventListener("abort", onAbort, { once: true });
    extra?.addEventListener("abort", onAbort, { once: true });
    try {
      const current = await this.#lc.get(ac.signal);
      const { action, observation } = decideElection({
        lease: current,
        observation: this.#observation,
        identity: this.identity,
        now: this.#clock.now(),
        leaseDurationSeconds: this.#leaseDurationSeconds,
        namespace: this.#options.namespace,
        name: this.#options.name,
      });
      this.#observation = observation;
      if (action.type === "wait") {
        this.#reportLeader(action.holder);
        return "other";
      }
      if (ac.signal.aborted) return "error";
      const written =
        action.type === "create"
          ? await this.#lc.create(action.lease, ac.signal)
          : await this.#lc.update(action.lease, ac.signal);
      const now = this.#clock.now();
      this.#lease = written;
      this.#observation = observeLease(undefined, written, now);
      this.#lastRenewTime = now;
      if (action.type === "acquire") {
        this.#log.info("acquired the leader lease", { identity: this.identity, previousHolder: action.previousHolder });
      }
      this.#reportLeader(this.identity);
      return "held";
    } catch (err) {
      if (!this.#stop.signal.aborted) {
        this.#lastError = { message: errorMessage(err), time: this.#clock.now() };
        this.#log[this.#leading ? "warn" : "debug"]("lease attempt failed", {
          identity: this.identity,
          error: errorMessage(err),
        });
      }
      return "error";
    } finally {
      this.#clock.clearTimeout(timer);
      this.#stop.signal.removeEventListener("abort", onAbort);
      extra?.removeEventListener("abort", onAbort);
    }
  }

  #reportLeader(holder: string): void {
    if (holder === this.#reportedLeader) return;
    this.#reportedLeader = holder;
    if (!holder) return;
    try {
      this.#options.onNewLeader?.(holder);
    } catch (err) {
      this.#log.error("onNewLeader threw", { error: errorMessage(err) });
    }
  }

  #becomeLeader(): void {
    this.#leading = true;
    this.#terms++;
    this.#leaderAbort = new AbortController();
    this.#armDeadline();
    this.#log.info("became leader", { identity: this.identity });
    const signal = this.#leaderAbort.signal;
    try {
      const work = this.#options.onStartedLeading?.(signal);
      this.#leaderWork = Promise.resolve(work).then(
        () => {},
        (err: unknown) => this.#log.error("onStartedLeading failed", { error: errorMessage(err) }),
      );
    } catch (err) {
      this.#log.error("onStartedLeading threw", { error: errorMessage(err) });
    }
  }

  #armDeadline(): void {
    this.#clock.clearTimeout(this.#deadlineTimer);
    const since = this.#lastRenewTime ?? this.#clock.now();
    const due = since + this.#timings.renewDeadlineMs - this.#clock.now();
    this.#deadlineTimer = this.#clock.setTimeout(() => {
      this.#deadlineTimer = undefined;
      this.#stepDown(`could not renew the lease for ${this.#timings.renewDeadlineMs} ms`);
    }, due);
  }

  #stepDown(reason: string): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.#leaderAbort?.abort(new Error(`leadership ended: ${reason}`));
    const requested = reason === stoppingReason;
    this.#log[requested ? "info" : "warn"]("stopped leading", { identity: this.identity, reason });
    try {
      this.#options.onStoppedLeading?.({ requested, reason });
    } catch (err) {
      this.#log.error("onStoppedLeading threw", { error: errorMessage(err) });
    }
  }
}
