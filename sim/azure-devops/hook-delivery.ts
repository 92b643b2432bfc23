/**
 * Service hooks, the running part: the organization's subscriptions, and the deliveries they cause. Every change
 * of a job request's state (waiting, inProgress, completed) becomes one event; each enabled subscription whose
 * filters let it through gets a notification, POSTed to its URL after the configured delay, on timers of the
 * emulator's clock. Deliveries never block the engine or the HTTP handling: `onJob` only schedules. Each attempt is
 * recorded (time, subscription, status; 0 when lost, refused or timed out). Sending is injected (`send`), so the
 * tests can also run it without a network.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Clock, TimerHandle } from "./clock.ts";
import type { JobRecord } from "./engine.ts";
import { argumentInvalid } from "./errors.ts";
import {
  DEFAULT_RESOURCE_VERSION,
  decideLoss,
  defaultHookDeliverySettings,
  deliveryHeaders,
  type HookDeliverySettings,
  type HookJobState,
  type HookSubscription,
  hookJobState,
  hookSettingsProblem,
  jobStateChangedPayload,
  type SubscriptionInput,
  seededRandom,
  subscriptionMatches,
  validateSubscription,
} from "./hooks.ts";
import { type WaitOptions, waitUntil } from "./wait.ts";

/** One POST; resolves with the HTTP status, rejects when there is no answer. */
export type HookSender = (request: {
  url: string;
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}) => Promise<number>;

/** The default sender: `fetch`, no redirects followed, the answer's body read and dropped. */
export const fetchSender: HookSender = async ({ url, headers, body, signal }) => {
  const response = await fetch(url, { method: "POST", headers, body, signal, redirect: "manual" });
  await response.arrayBuffer().catch(() => undefined);
  return response.status;
};

export interface HookDeliveryAttempt {
  /** Increasing number; `deliveries({ since })` returns attempts after it. */
  seq: number;
  /** When the POST was made (or would have been, for a lost one): ISO, emulator clock. */
  time: string;
  subscriptionId: string;
  notificationId: number;
  /** The event's ID (one event, one notification per subscription). */
  eventId: string;
  url: string;
  /** The job state the event reports. */
  state: HookJobState;
  /** The job request behind the event: the emulator's own bookkeeping, never in the payload. */
  requestId: number;
  /** HTTP status of the receiver's answer; 0 when lost (injected), refused, failed or timed out. */
  status: number;
  /** Why there is no 2xx status. */
  error?: string;
  /** A failure the delivery settings injected: nothing was sent. */
  injected?: true;
  durationMs: number;
}

interface HookEvents {
  delivery: [HookDeliveryAttempt];
}

export interface ServiceHooksOptions {
  clock: Clock;
  /** Randomness of `failureRate` when no seed is set. Default Math.random. */
  random?: () => number;
  organization: string;
  organizationUrl: () => string;
  /** Delivery settings at start and after reset. */
  settings?: Partial<HookDeliverySettings>;
  send?: HookSender;
  /** Attempts kept. Default 10000. */
  attemptLimit?: number;
}

export class ServiceHooks extends EventEmitter<HookEvents> {
  #o: ServiceHooksOptions;
  #send: HookSender;
  #subscriptions = new Map<string, HookSubscription>();
  #settings: HookDeliverySettings;
  #seeded: (() => number) | undefined;
  #lastState = new Map<number, HookJobState>();
  #attempts: HookDeliveryAttempt[] = [];
  #seq = 0;
  #notificationId = 0;
  #timers = new Set<TimerHandle>();
  /** Goes up on reset and close: what was under way before records nothing. */
  #generation = 0;
  #inFlight = new Set<AbortController>();

  constructor(options: ServiceHooksOptions) {
    super();
    this.setMaxListeners(0);
    this.#o = options;
    this.#send = options.send ?? fetchSender;
    this.#settings = { ...defaultHookDeliverySettings };
    this.configure(options.settings ?? {});
  }

  // ---- subscriptions (the REST API)

  createSubscription(input: SubscriptionInput, createdBy: { id: string; displayName: string }): HookSubscription {
    validateSubscription(input, this.#o.organization);
    const id = randomUUID();
    const subscription: HookSubscription = {
      id,
      publisherId: input.publisherId,
      eventType: input.eventType,
      resourceVersion: input.resourceVersion || DEFAULT_RESOURCE_VERSION,
      consumerId: input.consumerId,
      consumerActionId: input.consumerActionId,
      publisherInputs: { ...(input.publisherInputs ?? {}), tfsSubscriptionId: randomUUID() },
      consumerInputs: { ...input.consumerInputs },
      createdBy,
      createdDate: this.#o.clock.now(),
    };
    this.#subscriptions.set(id, subscription);
    return subscription;
  }

  subscriptions(): HookSubscription[] {
    return [...this.#subscriptions.values()];
  }

  subscription(id: string): HookSubscription | undefined {
    return this.#subscriptions.get(id.toLowerCase());
  }

  deleteSubscription(id: string): boolean {
    return this.#subscriptions.delete(id.toLowerCase());
  }

  // ---- delivery settings and attempts (the control API)

  settings(): HookDeliverySettings {
    return { ...this.#settings };
  }

  /** Changes some settings; a `seed` (re)starts its random sequence. Throws the control API's 400 when invalid. */
  configure(patch: Partial<HookDeliverySettings>): HookDeliverySettings {
    const problem = hookSettingsProblem(patch as Record<string, unknown>);
    if (problem) throw argumentInvalid(`bad delivery settings ${JSON.stringify(patch)}: ${problem}`);
    this.#settings = { ...this.#settings, ...patch };
    if ("seed" in patch) this.#seeded = patch.seed === null ? undefined : seededRandom(patch.seed as number);
    return this.settings();
  }

  deliveries(filter: { since?: number; subscriptionId?: string } = {}): HookDeliveryAttempt[] {
    return this.#attempts.filter(
      (a) =>
        (filter.since === undefined || a.seq > filter.since) &&
        (filter.subscriptionId === undefined || a.subscriptionId === filter.subscriptionId.toLowerCase()),
    );
  }

  clearDeliveries(): void {
    this.#attempts = [];
  }

  /** Deliveries scheduled and not yet attempted, plus those waiting for the receiver's answer. */
  get pending(): number {
    return this.#timers.size + this.#inFlight.size;
  }

  /** Resolves with the first recorded attempt `predicate` accepts, checked now and after every new attempt. */
  waitForDelivery(
    predicate: (attempt: HookDeliveryAttempt) => boolean,
    options: WaitOptions = {},
  ): Promise<HookDeliveryAttempt> {
    const subscribe = (onChange: () => void) => {
      this.on("delivery", onChange);
      return () => this.off("delivery", onChange);
    };
    return waitUntil(
      () => this.#attempts.find(predicate),
      subscribe,
      () => "a service hook delivery",
      options,
    );
  }

  // ---- events

  /** The engine changed a job: when its hook state changed, notify every matching subscription. */
  onJob(job: JobRecord): void {
    const state = hookJobState(job);
    if (this.#lastState.get(job.requestId) === state) return;
    if (state === "completed") this.#lastState.delete(job.requestId);
    else this.#lastState.set(job.requestId, state);
    const source = { job, state };
    const eventId = randomUUID();
    for (const subscription of this.#subscriptions.values()) {
      if (!subscriptionMatches(subscription, source)) continue;
      const decision = decideLoss(this.#settings, this.#seeded ?? this.#o.random ?? Math.random);
      this.#settings.failNext = decision.failNext;
      const notificationId = ++this.#notificationId;
      const payload = jobStateChangedPayload({
        source,
        subscription,
        eventId,
        notificationId,
        organization: this.#o.organization,
        organizationUrl: this.#o.organizationUrl(),
        now: this.#o.clock.now(),
      });
      const attempt = { subscriptionId: subscription.id, notificationId, eventId, state, requestId: job.requestId };
      const timer = this.#o.clock.setTimeout(() => {
        this.#timers.delete(timer);
        void this.#deliver(subscription, payload, attempt, decision.lost);
      }, this.#settings.delayMs);
      this.#timers.add(timer);
    }
  }

  async #deliver(
    subscription: HookSubscription,
    payload: Record<string, unknown>,
    attempt: Pick<HookDeliveryAttempt, "subscriptionId" | "notificationId" | "eventId" | "state" | "requestId">,
    lost: boolean,
  ): Promise<void> {
    const clock = this.#o.clock;
    const url = subscription.consumerInputs.url?.trim() ?? "";
    const time = new Date(clock.now()).toISOString();
    const started = performance.now();
    const generation = this.#generation;
    const record = (status: number, extra: { error?: string; injected?: true } = {}) => {
      if (generation !== this.#generation) return;
      this.#record({ ...attempt, time, url, status, ...extra, durationMs: Math.round(performance.now() - started) });
    };
    if (lost) {
      record(0, { error: "lost: failure injected by the delivery settings", injected: true });
      return;
    }
    const aborter = new AbortController();
    this.#inFlight.add(aborter);
    const timeout = clock.setTimeout(
      () => aborter.abort(new Error(`no answer within ${this.#settings.timeoutMs} ms`)),
      this.#settings.timeoutMs,
    );
    try {
      const status = await this.#send({
        url,
        headers: deliveryHeaders(subscription.consumerInputs),
        body: JSON.stringify(payload),
        signal: aborter.signal,
      });
      record(status, status >= 200 && status < 300 ? {} : { error: `the receiver answered ${status}` });
    } catch (err) {
      const reason = aborter.signal.aborted ? aborter.signal.reason : err;
      record(0, { error: (reason as Error)?.message ?? String(reason) });
    } finally {
      clock.clearTimeout(timeout);
      this.#inFlight.delete(aborter);
    }
  }

  #record(entry: Omit<HookDeliveryAttempt, "seq">): void {
    const full: HookDeliveryAttempt = { seq: ++this.#seq, ...entry };
    this.#attempts.push(full);
    const excess = this.#attempts.length - (this.#o.attemptLimit ?? 10_000);
    if (excess > 0) this.#attempts.splice(0, excess);
    this.emit("delivery", full);
  }

  /** Stops what is scheduled or under way (no attempt is recorded for it). */
  #cancelAll(): void {
    this.#generation++;
    for (const timer of this.#timers) this.#o.clock.clearTimeout(timer);
    this.#timers.clear();
    for (const aborter of this.#inFlight) aborter.abort(new Error("the emulator was reset or closed"));
  }

  /** No subscriptions, no attempts, the configured settings; deliveries under way are cut. */
  reset(): void {
    this.#cancelAll();
    this.#subscriptions.clear();
    this.#lastState.clear();
    this.#attempts = [];
    this.#settings = { ...defaultHookDeliverySettings };
    this.#seeded = undefined;
    this.configure(this.#o.settings ?? {});
  }

  close(): void {
    this.#cancelAll();
  }
}
