/**
 * An event recorder: Kubernetes Events about an object ("regarding"), so `kubectl describe` and `kubectl events`
 * tell users what the operator decided and why.
 *
 * API: `events.k8s.io/v1`. It is the current Events API (core/v1 Events are its legacy view, same storage, so
 * `kubectl describe` still shows them); it has a first-class `series` (count + lastObservedTime) made for
 * aggregating repeats, requires and validates `reportingController`/`reportingInstance`/`action`, and its strict
 * validation catches malformed events instead of storing them.
 *
 * Behaviour:
 * - Repeats of an identical event (same object, type, reason, action, note, related) within `aggregationWindowMs`
 *   of the previous one do not create objects: the first creates an Event, later ones bump its `series.count`
 *   (one write in flight per series; further repeats are folded into the next write, at most one per
 *   `seriesUpdateIntervalMs`). If the Event has expired on the server (404), a new one is created.
 * - Similar events (same object, type, reason, action and related, different notes) are combined once more than
 *   `similarThreshold` of them came within `aggregationWindowMs`: the later ones join one event whose note is
 *   "(combined from similar events): " and the first of their notes (an Event's note cannot change), its series
 *   counting them, as client-go's event correlator does. A burst of 200 `PodCreated` events about one resource
 *   is 11 Events and a few series updates.
 * - New (non-repeat) events are rate-limited per object (token bucket) so a flapping controller cannot flood etcd.
 * - `record` never throws and never waits: failures are logged (without the note) and counted.
 *
 * SECRETS: notes are stored in the cluster and readable by anyone who may list events in the namespace. Callers
 * must never put credentials, tokens, PATs, or URLs with credentials into reasons, actions or notes. The optional
 * `redact` hook is a last line of defence, not a licence.
 */

import { type Clock, delay, formatMicroTime, type Random, systemClock } from "../runtime/clock.ts";
import { errorMessage, type Logger, silentLogger } from "../runtime/logger.ts";
import { isNotFound, type KubeClient } from "./client.ts";
import { mergePatch } from "./patch.ts";
import { resourcePath } from "./resource.ts";
import type { KubeObject, ObjectReference } from "./types.ts";

export const eventResource = { apiVersion: "events.k8s.io/v1", resource: "events" } as const;

export type EventType = "Normal" | "Warning";

export interface EventSeries {
  count: number;
  lastObservedTime: string;
}

/** An events.k8s.io/v1 Event, as far as the recorder writes it. */
export interface KubeEvent extends KubeObject {
  eventTime?: string;
  reportingController?: string;
  reportingInstance?: string;
  action?: string;
  reason?: string;
  regarding?: ObjectReference;
  related?: ObjectReference;
  note?: string;
  type?: EventType;
  series?: EventSeries;
}

export interface EventSpec {
  type: EventType;
  /** CamelCase, machine-readable cause, e.g. `PodCreated`, `ScaleDownRefused` (max 128). */
  reason: string;
  /** Human-readable explanation (truncated to 1024 bytes). Never secrets. */
  note: string;
  /** What was done or attempted, e.g. `Create`, `Delete`, `Reconcile` (max 128). Default: the reason. */
  action?: string;
  related?: KubeObject | ObjectReference;
}

export interface EventSink {
  create(namespace: string, event: KubeEvent): Promise<KubeEvent>;
  patchSeries(namespace: string, name: string, series: EventSeries): Promise<KubeEvent>;
}

export function eventSinkFor(client: KubeClient): EventSink {
  return {
    create: (namespace, event) =>
      client.request<KubeEvent>({ method: "POST", path: resourcePath(eventResource, { namespace }), body: event }),
    patchSeries: (namespace, name, series) =>
      mergePatch<KubeEvent>(client, resourcePath(eventResource, { namespace, name }), { series }),
  };
}

export interface EventRecorderOptions {
  client?: KubeClient;
  sink?: EventSink;
  /** A qualified name, e.g. `azurepipelines.k8s.scaler.io/operator`. */
  reportingController: string;
  /** This replica, e.g. the pod name (max 128). */
  reportingInstance: string;
  /** Repeats closer than this to the previous occurrence join its series. Default 10 minutes. */
  aggregationWindowMs?: number;
  /** More distinct similar events than this within the window are combined into one. Default 10. */
  similarThreshold?: number;
  /** Minimum time between two series updates of one event. Default 1 s. */
  seriesUpdateIntervalMs?: number;
  /** Per-object token bucket for new events: burst, and one token back every refillMs. Default 25 / 2 s. */
  rateLimit?: { burst: number; refillMs: number };
  /** Remembered series (and rate-limit buckets); the oldest are forgotten beyond this. Default 4096. */
  maxEntries?: number;
  /** Last-resort scrubbing of notes (e.g. mask anything that looks like a token). */
  redact?: (note: string) => string;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
}

export interface EventRecorderStats {
  created: number;
  /** Occurrences folded into an existing event's series (combined similar events included). */
  aggregated: number;
  /** New events dropped by the rate limit. */
  dropped: number;
  /** Writes that failed (logged). */
  failed: number;
}

interface SeriesEntry {
  namespace: string;
  body: Omit<KubeEvent, "metadata" | "eventTime" | "series">;
  regardingName: string;
  name: string | undefined;
  count: number;
  firstObserved: number;
  lastObserved: number;
  /** Count already written to the server, and when. */
  written: number;
  lastWriteAt: number;
  inflight: Promise<void> | undefined;
}

/** Prefix of a combined event's note. */
export const COMBINED_NOTE_PREFIX = "(combined from similar events): ";

/** Truncates to at most `maxBytes` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, "utf8") <= maxBytes) return text;
  const ellipsis = "...";
  let out = "";
  let bytes = 0;
  for (const ch of text) {
    const b = Buffer.byteLength(ch, "utf8");
    if (bytes + b > maxBytes - ellipsis.length) break;
    out += ch;
    bytes += b;
  }
  return out + ellipsis;
}

/** An ObjectReference for a full object (a reference is passed through). */
export function referenceTo(obj: KubeObject | ObjectReference): ObjectReference {
  if (!("metadata" in obj) || !obj.metadata) return { ...(obj as ObjectReference) };
  const m = obj.metadata;
  const ref: ObjectReference = {};
  if (obj.apiVersion) ref.apiVersion = obj.apiVersion;
  if (obj.kind) ref.kind = obj.kind;
  if (m.namespace) ref.namespace = m.namespace;
  if (m.name) ref.name = m.name;
  if (m.uid) ref.uid = m.uid;
  return ref;
}

export class EventRecorder {
  readonly #sink: EventSink;
  readonly #controller: string;
  readonly #instance: string;
  readonly #windowMs: number;
  readonly #intervalMs: number;
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #maxEntries: number;
  readonly #similarThreshold: number;
  /** Distinct similar events per similar key, counted since `first`. */
  readonly #similar = new Map<string, { first: number; distinct: number }>();
  readonly #redact: (note: string) => string;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger;
  readonly #series = new Map<string, SeriesEntry>();
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #closing = new AbortController();
  readonly #stats: EventRecorderStats = { created: 0, aggregated: 0, dropped: 0, failed: 0 };

  constructor(options: EventRecorderOptions) {
    const sink = options.sink ?? (options.client && eventSinkFor(options.client));
    if (!sink) throw new Error("event recorder: need a client or a sink");
    if (!options.reportingController) throw new Error("event recorder: reportingController is required");
    if (!options.reportingInstance) throw new Error("event recorder: reportingInstance is required");
    this.#sink = sink;
    this.#controller = options.reportingController;
    this.#instance = options.reportingInstance.slice(0, 128);
    this.#windowMs = options.aggregationWindowMs ?? 10 * 60_000;
    this.#intervalMs = options.seriesUpdateIntervalMs ?? 1000;
    this.#burst = options.rateLimit?.burst ?? 25;
    this.#refillMs = options.rateLimit?.refillMs ?? 2000;
    this.#maxEntries = options.maxEntries ?? 4096;
    this.#similarThreshold = options.similarThreshold ?? 10;
    this.#redact = options.redact ?? ((n) => n);
    this.#clock = options.clock ?? systemClock();
    this.#random = options.random ?? Math.random;
    this.#log = options.logger ?? silentLogger();
  }

  stats(): EventRecorderStats {
    return { ...this.#stats };
  }

  normal(regarding: KubeObject | ObjectReference, reason: string, note: string, action?: string): void {
    this.record(regarding, action ? { type: "Normal", reason, note, action } : { type: "Normal", reason, note });
  }

  warning(regarding: KubeObject | ObjectReference, reason: string, note: string, action?: string): void {
    this.record(regarding, action ? { type: "Warning", reason, note, action } : { type: "Warning", reason, note });
  }

  /** Records an event; returns at once, never throws. */
  record(regarding: KubeObject | ObjectReference, spec: EventSpec): void {
    try {
      this.#record(regarding, spec);
    } catch (err) {
      this.#stats.failed++;
      this.#log.warn("could not record event", { reason: spec?.reason, error: errorMessage(err) });
    }
  }

  /** Waits until every write started so far has finished (or failed). */
  async flush(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /** Stops recording (later calls are ignored), cuts series waits short, and flushes. */
  async close(): Promise<void> {
    this.#closing.abort();
    await this.flush();
  }

  #record(regardingIn: KubeObject | ObjectReference, spec: EventSpec): void {
    if (this.#closing.signal.aborted) return;
    const regarding = referenceTo(regardingIn);
    if (!regarding.name) throw new Error("the regarding object has no name");
    if (spec.type !== "Normal" && spec.type !== "Warning") throw new Error(`invalid event type ${spec.type}`);
    if (!spec.reason) throw new Error("an event needs a reason");
    const namespace = regarding.namespace || "default";
    const reason = spec.reason.slice(0, 128);
    const action = (spec.action || spec.reason).slice(0, 128);
    let note = truncateUtf8(this.#redact(spec.note ?? ""), 1024);
    const related = spec.related ? referenceTo(spec.related) : undefined;
    const similarKey = JSON.stringify([
      namespace,
      regarding.kind ?? "",
      regarding.name,
      regarding.uid ?? "",
      spec.type,
      reason,
      action,
      related ? [related.kind, related.namespace, related.name, related.uid] : null,
    ]);
    let key = `${similarKey}${JSON.stringify(note)}`;
    const now = this.#clock.now();
    if (!this.#live(key, now)) {
      // A new note: one of the similar events; beyond the threshold it joins their combined event.
      let similar = this.#similar.get(similarKey);
      if (!similar || now - similar.first > this.#windowMs) similar = { first: now, distinct: 0 };
      similar.distinct++;
      this.#similar.delete(similarKey);
      this.#similar.set(similarKey, similar);
      this.#forgetOldest(this.#similar);
      if (similar.distinct > this.#similarThreshold) {
        key = `${similarKey}combined`;
        note = truncateUtf8(`${COMBINED_NOTE_PREFIX}${note}`, 1024);
      }
    }
    const existing = this.#live(key, now);
    if (existing) {
      existing.count++;
      existing.lastObserved = now;
      this.#stats.aggregated++;
      this.#touch(key, existing);
      this.#write(existing);
      return;
    }
    const objectKey = `${namespace}/${regarding.kind ?? ""}/${regarding.name}`;
    if (!this.#takeToken(objectKey, now)) {
      this.#stats.dropped++;
      this.#log.debug("event dropped by rate limit", { object: objectKey, reason });
      return;
    }
    const body: SeriesEntry["body"] = {
      apiVersion: eventResource.apiVersion,
      kind: "Event",
      reportingController: this.#controller,
      reportingInstance: this.#instance,
      action,
      reason,
      regarding,
      note,
      type: spec.type,
    };
    if (related) body.related = related;
    const entry: SeriesEntry = {
      namespace,
      body,
      regardingName: regarding.name,
      name: undefined,
      count: 1,
      firstObserved: now,
      lastObserved: now,
      written: 0,
      lastWriteAt: 0,
      inflight: undefined,
    };
    this.#touch(key, entry);
    this.#write(entry);
  }

  /** Moves the entry to the young end of the map and forgets the oldest beyond the limit or the window. */
  #touch(key: string, entry: SeriesEntry): void {
    this.#series.delete(key);
    this.#series.set(key, entry);
    const now = this.#clock.now();
    for (const [k, e] of this.#series) {
      if (this.#series.size <= this.#maxEntries && now - e.lastObserved <= this.#windowMs) break;
      this.#series.delete(k);
    }
  }

  /** The series of `key` if it is still within the aggregation window. */
  #live(key: string, now: number): SeriesEntry | undefined {
    const entry = this.#series.get(key);
    return entry && now - entry.lastObserved <= this.#windowMs ? entry : undefined;
  }

  /** Forgets the oldest entries of a map kept in use order beyond `maxEntries`. */
  #forgetOldest(map: Map<string, unknown>): void {
    while (map.size > this.#maxEntries) {
      const oldest = map.keys().next().value;
      if (oldest === undefined) break;
      map.delete(oldest);
    }
  }

  #takeToken(objectKey: string, now: number): boolean {
    let bucket = this.#buckets.get(objectKey);
    if (!bucket) {
      bucket = { tokens: this.#burst, at: now };
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) / this.#refillMs);
      bucket.at = now;
      this.#buckets.delete(objectKey);
    }
    this.#buckets.set(objectKey, bucket);
    this.#forgetOldest(this.#buckets);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #write(entry: SeriesEntry): void {
    if (entry.inflight) return; // the running writer picks the new count up
    const p = this.#drain(entry).finally(() => {
      entry.inflight = undefined;
      this.#inflight.delete(p);
    });
    entry.inflight = p;
    this.#inflight.add(p);
  }

  async #drain(entry: SeriesEntry): Promise<void> {
    // Let repeats recorded in the same tick join the first write.
    await Promise.resolve();
    while (entry.written < entry.count) {
      try {
        if (!entry.name) {
          const count = entry.count;
          const created = await this.#sink.create(entry.namespace, this.#newEvent(entry, count));
          entry.name = created.metadata?.name;
          entry.written = count;
          entry.lastWriteAt = this.#clock.now();
          this.#stats.created++;
        } else {
          // Space series updates out; closing cuts the wait short.
          const wait = entry.lastWriteAt + this.#intervalMs - this.#clock.now();
          if (wait > 0) await delay(this.#clock, wait, this.#closing.signal);
          const count = entry.count;
          await this.#sink.patchSeries(entry.namespace, entry.name, {
            count,
            lastObservedTime: formatMicroTime(entry.lastObserved),
          });
          entry.written = count;
          entry.lastWriteAt = this.#clock.now();
        }
      } catch (err) {
        if (entry.name && isNotFound(err)) {
          // The event expired on the server: start a new one for the occurrences not yet written.
          entry.name = undefined;
          entry.count = Math.max(1, entry.count - entry.written);
          entry.written = 0;
          entry.firstObserved = entry.lastObserved;
          continue;
        }
        this.#stats.failed++;
        this.#log.warn("could not write event", {
          namespace: entry.namespace,
          regarding: entry.regardingName,
          reason: entry.body.reason,
          error: errorMessage(err),
        });
        // Unwritten occurrences stay counted: the next record() of this event retries.
        return;
      }
    }
  }

  #newEvent(entry: SeriesEntry, count: number): KubeEvent {
    const ev: KubeEvent = {
      ...entry.body,
      metadata: { name: this.#eventName(entry.regardingName), namespace: entry.namespace },
      eventTime: formatMicroTime(entry.firstObserved),
    };
    if (count >= 2) ev.series = { count, lastObservedTime: formatMicroTime(entry.lastObserved) };
    return ev;
  }

  #eventName(regardingName: string): string {
    const suffix = `${this.#clock.now().toString(16)}${Math.floor(this.#random() * 0x10000)
      .toString(16)
      .padStart(4, "0")}`;
    return `${regardingName.slice(0, 200)}.${suffix}`;
  }
}
