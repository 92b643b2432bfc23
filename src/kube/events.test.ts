import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatMicroTime, ManualClock } from "../runtime/clock.ts";
import type { Logger } from "../runtime/logger.ts";
import { KubeApiError } from "./client.ts";
import { EventRecorder, type EventRecorderOptions, type EventSink, type KubeEvent, truncateUtf8 } from "./events.ts";

const pod = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "agent-1", namespace: "ci", uid: "u-1", resourceVersion: "5", labels: { a: "b" } },
};

class FakeSink implements EventSink {
  calls: { op: "create" | "patch"; namespace: string; name?: string; body: unknown }[] = [];
  failCreate: unknown[] = [];
  failPatch: unknown[] = [];
  hold: Promise<void> | undefined;
  /** The body of call `i` (an event for creates, a series for patches). */
  body(i: number): KubeEvent & { count?: number; lastObservedTime?: string } {
    return (this.calls[i]?.body ?? {}) as KubeEvent;
  }
  async create(namespace: string, event: KubeEvent): Promise<KubeEvent> {
    this.calls.push({ op: "create", namespace, body: structuredClone(event) });
    await this.hold;
    const f = this.failCreate.shift();
    if (f) throw f;
    return event;
  }
  async patchSeries(namespace: string, name: string, series: { count: number; lastObservedTime: string }) {
    this.calls.push({ op: "patch", namespace, name, body: structuredClone(series) });
    await this.hold;
    const f = this.failPatch.shift();
    if (f) throw f;
    return {};
  }
}

function setup(extra: Partial<EventRecorderOptions> = {}) {
  const clock = new ManualClock();
  const sink = new FakeSink();
  const logs: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const logger: Logger = {
    debug: (message, fields) => logs.push({ level: "debug", message, ...(fields ? { fields } : {}) }),
    info: (message, fields) => logs.push({ level: "info", message, ...(fields ? { fields } : {}) }),
    warn: (message, fields) => logs.push({ level: "warn", message, ...(fields ? { fields } : {}) }),
    error: (message, fields) => logs.push({ level: "error", message, ...(fields ? { fields } : {}) }),
  };
  const recorder = new EventRecorder({
    sink,
    reportingController: "azurepipelines.k8s.scaler.io/operator",
    reportingInstance: "operator-0",
    clock,
    random: () => 0,
    logger,
    seriesUpdateIntervalMs: 1000,
    ...extra,
  });
  return { clock, sink, recorder, logs };
}

describe("EventRecorder", () => {
  test("creates an events.k8s.io/v1 Event about the object", async () => {
    const { clock, sink, recorder } = setup();
    recorder.normal(pod, "PodCreated", "created pod agent-1 for job 42", "Create");
    await recorder.flush();
    assert.equal(sink.calls.length, 1);
    const call = sink.calls[0];
    assert.equal(call?.op, "create");
    assert.equal(call?.namespace, "ci");
    const ev = call?.body as KubeEvent;
    assert.deepEqual(ev, {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name: `agent-1.${clock.now().toString(16)}0000`, namespace: "ci" },
      eventTime: formatMicroTime(clock.now()),
      reportingController: "azurepipelines.k8s.scaler.io/operator",
      reportingInstance: "operator-0",
      action: "Create",
      reason: "PodCreated",
      regarding: { apiVersion: "v1", kind: "Pod", namespace: "ci", name: "agent-1", uid: "u-1" },
      note: "created pod agent-1 for job 42",
      type: "Normal",
    });
    assert.deepEqual(recorder.stats(), { created: 1, aggregated: 0, dropped: 0, failed: 0 });
  });

  test("action defaults to the reason; cluster-scoped objects report into default", async () => {
    const { sink, recorder } = setup();
    recorder.warning({ apiVersion: "v1", kind: "Node", name: "n1" }, "NodeGone", "n1 vanished");
    await recorder.flush();
    const ev = sink.calls[0]?.body as KubeEvent;
    assert.equal(sink.calls[0]?.namespace, "default");
    assert.equal(ev.action, "NodeGone");
    assert.equal(ev.type, "Warning");
  });

  test("identical repeats within the window bump the series instead of creating events", async () => {
    const { clock, sink, recorder } = setup();
    recorder.warning(pod, "AzureDevOpsUnreachable", "HTTP 503");
    await recorder.flush();
    await clock.tick(5000);
    recorder.warning(pod, "AzureDevOpsUnreachable", "HTTP 503");
    await clock.tick();
    await recorder.flush();
    await clock.tick(5000);
    recorder.warning(pod, "AzureDevOpsUnreachable", "HTTP 503");
    await clock.tick();
    await recorder.flush();
    assert.deepEqual(
      sink.calls.map((c) => [c.op, c.name, c.body && (c.body as { count?: number }).count]),
      [
        ["create", undefined, undefined],
        ["patch", sink.body(0).metadata?.name, 2],
        ["patch", sink.body(0).metadata?.name, 3],
      ],
    );
    assert.equal(sink.body(2).lastObservedTime, formatMicroTime(clock.now()));
    assert.deepEqual(recorder.stats(), { created: 1, aggregated: 2, dropped: 0, failed: 0 });
  });

  test("a burst of repeats while a write is in flight folds into one write, spaced by the interval", async () => {
    const { clock, sink, recorder } = setup();
    let release!: () => void;
    sink.hold = new Promise<void>((r) => {
      release = r;
    });
    recorder.normal(pod, "Tick", "same");
    await clock.tick();
    for (let i = 0; i < 9; i++) recorder.normal(pod, "Tick", "same");
    await clock.tick();
    assert.equal(sink.calls.length, 1, "one create in flight");
    release();
    sink.hold = undefined;
    await clock.tick();
    assert.equal(sink.calls.length, 1, "the folded update waits out the interval");
    await clock.tick(1000);
    await recorder.flush();
    assert.equal(sink.calls.length, 2);
    assert.deepEqual(sink.body(1).count, 10);
  });

  test("repeats before the first write are created with a series at once", async () => {
    const { sink, recorder } = setup();
    recorder.normal(pod, "Tick", "same");
    recorder.normal(pod, "Tick", "same");
    // Both records happened before the create was sent: it carries the series.
    await recorder.flush();
    assert.equal(sink.calls.length, 1);
    assert.equal(sink.body(0).series?.count, 2);
  });

  test("different notes, types, reasons or objects are different events", async () => {
    const { sink, recorder } = setup();
    recorder.normal(pod, "A", "one");
    recorder.normal(pod, "A", "two");
    recorder.warning(pod, "A", "one");
    recorder.normal(pod, "B", "one");
    recorder.normal({ ...pod, metadata: { ...pod.metadata, name: "agent-2", uid: "u-2" } }, "A", "one");
    await recorder.flush();
    assert.equal(sink.calls.filter((c) => c.op === "create").length, 5);
  });

  test("a repeat after the window starts a new event", async () => {
    const { clock, sink, recorder } = setup({ aggregationWindowMs: 60_000 });
    recorder.normal(pod, "A", "one");
    await recorder.flush();
    await clock.tick(60_001);
    recorder.normal(pod, "A", "one");
    await recorder.flush();
    assert.deepEqual(
      sink.calls.map((c) => c.op),
      ["create", "create"],
    );
  });

  test("an event that expired on the server (404 on update) is created again", async () => {
    const { clock, sink, recorder } = setup();
    recorder.normal(pod, "A", "one");
    await recorder.flush();
    sink.failPatch.push(new KubeApiError(404, "NotFound", "gone"));
    await clock.tick(2000);
    recorder.normal(pod, "A", "one");
    await clock.tick();
    await recorder.flush();
    assert.deepEqual(
      sink.calls.map((c) => c.op),
      ["create", "patch", "create"],
    );
    assert.equal(sink.body(2).series, undefined);
  });

  test("failures never reach the caller; they are logged without the note and counted", async () => {
    const { sink, recorder, logs } = setup();
    sink.failCreate.push(new KubeApiError(403, "Forbidden", "events is forbidden"));
    assert.doesNotThrow(() => recorder.warning(pod, "Secretive", "the note text"));
    await recorder.flush();
    assert.equal(recorder.stats().failed, 1);
    const warn = logs.find((l) => l.level === "warn");
    assert.ok(warn);
    assert.ok(!JSON.stringify(warn).includes("the note text"));
    // Bad input is also swallowed.
    assert.doesNotThrow(() => recorder.normal({ metadata: {} }, "X", "y"));
    assert.doesNotThrow(() => recorder.record(pod, { type: "Bogus" as "Normal", reason: "X", note: "y" }));
    assert.equal(recorder.stats().failed, 3);
  });

  test("a failed write is retried by the next occurrence", async () => {
    const { sink, recorder } = setup();
    sink.failCreate.push(new Error("connection refused"));
    recorder.normal(pod, "A", "one");
    await recorder.flush();
    recorder.normal(pod, "A", "one");
    await recorder.flush();
    assert.deepEqual(
      sink.calls.map((c) => c.op),
      ["create", "create"],
    );
    assert.deepEqual(sink.body(1).series?.count, 2);
  });

  test("new events per object are rate limited (token bucket)", async () => {
    const { clock, sink, recorder } = setup({ rateLimit: { burst: 2, refillMs: 10_000 } });
    recorder.normal(pod, "A", "1");
    recorder.normal(pod, "A", "2");
    recorder.normal(pod, "A", "3");
    recorder.normal({ ...pod, metadata: { ...pod.metadata, name: "other" } }, "A", "1");
    await recorder.flush();
    assert.equal(sink.calls.length, 3);
    assert.equal(recorder.stats().dropped, 1);
    recorder.normal(pod, "A", "1"); // a repeat is not a new event: not limited
    await clock.tick(10_000);
    recorder.normal(pod, "A", "4");
    await recorder.flush();
    assert.equal(sink.calls.filter((c) => c.op === "create").length, 4);
  });

  test("similar events beyond the threshold are combined into one event that counts them", async () => {
    const { clock, sink, recorder } = setup({ similarThreshold: 3 });
    for (let i = 1; i <= 6; i++) recorder.normal(pod, "PodCreated", `created pod p${i}`, "CreatePod");
    recorder.normal(pod, "PodCreated", "created pod p1", "CreatePod"); // a repeat of an early one: its own series
    recorder.warning(pod, "PodCreated", "created pod p9", "CreatePod"); // another type: not similar
    await clock.tick();
    await clock.tick(1000);
    await recorder.flush();
    const creates = sink.calls.filter((c) => c.op === "create").map((c) => c.body as KubeEvent);
    assert.deepEqual(
      creates.map((e) => [e.type, e.note, e.series?.count]),
      [
        ["Normal", "created pod p1", 2],
        ["Normal", "created pod p2", undefined],
        ["Normal", "created pod p3", undefined],
        ["Normal", "(combined from similar events): created pod p4", 3],
        ["Warning", "created pod p9", undefined],
      ],
    );
    assert.deepEqual(recorder.stats(), { created: 5, aggregated: 3, dropped: 0, failed: 0 });
    // Later similar events update the combined event's series (an Event's note cannot change).
    recorder.normal(pod, "PodCreated", "created pod p7", "CreatePod");
    await clock.tick(1000);
    await recorder.flush();
    assert.deepEqual(sink.calls.at(-1)?.op, "patch");
    assert.equal(sink.body(sink.calls.length - 1).count, 4);
  });

  test("similar events are counted per window: after a quiet window they are created one by one again", async () => {
    const { clock, sink, recorder } = setup({ similarThreshold: 2, aggregationWindowMs: 60_000 });
    for (const n of ["a", "b", "c"]) recorder.normal(pod, "R", n);
    await recorder.flush();
    await clock.tick(61_000);
    for (const n of ["d", "e"]) recorder.normal(pod, "R", n);
    await recorder.flush();
    assert.deepEqual(
      sink.calls.map((c) => (c.body as KubeEvent).note),
      ["a", "b", "(combined from similar events): c", "d", "e"],
    );
  });

  test("notes are redacted and truncated to 1024 bytes; reason and action to 128", async () => {
    const { sink, recorder } = setup({ redact: (n) => n.replace(/token=\S+/g, "token=***") });
    recorder.record(pod, { type: "Normal", reason: "R".repeat(200), note: `x token=abc ${"é".repeat(2000)}` });
    await recorder.flush();
    const ev = sink.calls[0]?.body as KubeEvent;
    assert.ok(ev.note?.startsWith("x token=*** "));
    assert.ok(Buffer.byteLength(ev.note ?? "") <= 1024);
    assert.equal(ev.reason?.length, 128);
    assert.equal(ev.action?.length, 128);
  });

  test("close flushes and ignores later records", async () => {
    const { sink, recorder } = setup();
    recorder.normal(pod, "A", "1");
    await recorder.close();
    recorder.normal(pod, "A", "2");
    await recorder.flush();
    assert.equal(sink.calls.length, 1);
  });
});

describe("truncateUtf8", () => {
  test("keeps short text, cuts long text on a character boundary", () => {
    assert.equal(truncateUtf8("abc", 10), "abc");
    const t = truncateUtf8("ééééé", 8);
    assert.ok(Buffer.byteLength(t) <= 8);
    assert.equal(t, "éé...");
  });
});
