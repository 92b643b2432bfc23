/**
 * The event recorder against a real API server: events.k8s.io/v1 Events pass the server's strict validation,
 * repeats aggregate into one Event's series, the core/v1 view (what `kubectl describe` reads) shows them, and
 * failures stay inside the recorder.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EventRecorder, type KubeEvent } from "../../src/kube/events.ts";
import type { KubeObject } from "../../src/kube/types.ts";
import {
  createNamespace,
  deleteNamespace,
  eventually,
  type TestCluster,
  testCluster,
  uniqueName,
} from "../support/cluster.ts";

let cluster: TestCluster;
let ns: string;
let subject: KubeObject;

before(async () => {
  cluster = await testCluster();
  ns = await createNamespace(cluster.client, "events");
  subject = await cluster.client.request<KubeObject>({
    method: "POST",
    path: `/api/v1/namespaces/${ns}/configmaps`,
    body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "subject" } },
  });
  // The API returns apiVersion/kind on single objects; keep them explicit for the reference anyway.
  subject = { ...subject, apiVersion: "v1", kind: "ConfigMap" };
});

after(async () => {
  await deleteNamespace(cluster.client, ns);
  await cluster.close();
});

function recorder(extra: Partial<ConstructorParameters<typeof EventRecorder>[0]> = {}) {
  return new EventRecorder({
    client: cluster.client,
    reportingController: "azurepipelines.k8s.scaler.io/operator",
    reportingInstance: "operator-test-0",
    seriesUpdateIntervalMs: 50,
    ...extra,
  });
}

async function eventsAbout(name: string, namespace = ns): Promise<KubeEvent[]> {
  const list = await cluster.client.request<{ items: KubeEvent[] }>({
    path: `/apis/events.k8s.io/v1/namespaces/${namespace}/events`,
  });
  return list.items.filter((e) => e.regarding?.name === name);
}

describe("event recorder on a real API server", () => {
  test("creates a valid events.k8s.io/v1 Event, visible in the core/v1 view", async () => {
    const r = recorder();
    r.normal(subject, "PodCreated", "created pod agent-1 for job 42", "Create");
    await r.flush();
    assert.deepEqual(r.stats(), { created: 1, aggregated: 0, dropped: 0, failed: 0 });
    const [ev, ...rest] = await eventsAbout("subject");
    assert.equal(rest.length, 0);
    assert.equal(ev?.reason, "PodCreated");
    assert.equal(ev?.note, "created pod agent-1 for job 42");
    assert.equal(ev?.type, "Normal");
    assert.equal(ev?.action, "Create");
    assert.equal(ev?.reportingController, "azurepipelines.k8s.scaler.io/operator");
    assert.equal(ev?.reportingInstance, "operator-test-0");
    assert.equal(ev?.regarding?.uid, subject.metadata?.uid);
    assert.equal(ev?.regarding?.kind, "ConfigMap");
    const core = await cluster.client.request<{
      items: { involvedObject: { name: string; uid: string }; reason: string; message: string }[];
    }>({
      path: `/api/v1/namespaces/${ns}/events`,
      query: { fieldSelector: "involvedObject.name=subject" },
    });
    assert.equal(core.items.length, 1);
    assert.equal(core.items[0]?.involvedObject.uid, subject.metadata?.uid);
    assert.equal(core.items[0]?.message, "created pod agent-1 for job 42");
    await r.close();
  });

  test("identical repeats become one Event with a series count", async () => {
    const other = await cluster.client.request<KubeObject>({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/configmaps`,
      body: { metadata: { name: "repeated" } },
    });
    const ref = { ...other, apiVersion: "v1", kind: "ConfigMap" };
    const r = recorder();
    r.warning(ref, "AzureDevOpsUnreachable", "GET /_apis/distributedtask/pools: HTTP 503");
    await r.flush();
    for (let i = 0; i < 4; i++) {
      r.warning(ref, "AzureDevOpsUnreachable", "GET /_apis/distributedtask/pools: HTTP 503");
      await r.flush();
    }
    r.warning(ref, "AzureDevOpsReachable", "pool 12 answered");
    await r.flush();
    const events = await eventsAbout("repeated");
    const unreachable = events.filter((e) => e.reason === "AzureDevOpsUnreachable");
    assert.equal(unreachable.length, 1, "one object for five occurrences");
    assert.equal(unreachable[0]?.series?.count, 5);
    assert.ok(unreachable[0]?.series?.lastObservedTime);
    assert.equal(events.filter((e) => e.reason === "AzureDevOpsReachable").length, 1);
    assert.equal(r.stats().created, 2);
    assert.equal(r.stats().aggregated, 4);
    await r.close();
  });

  test("similar events beyond the threshold become one combined Event whose series counts them", async () => {
    const r = recorder({ similarThreshold: 2 });
    const ref = { apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "bursting" };
    for (let i = 1; i <= 5; i++) {
      r.normal(ref, "PodCreated", `created pod agent-${i}`, "CreatePod");
      await r.flush();
    }
    const events = await eventsAbout("bursting");
    assert.deepEqual(events.map((e) => e.note).sort(), [
      "(combined from similar events): created pod agent-3",
      "created pod agent-1",
      "created pod agent-2",
    ]);
    const combined = events.find((e) => e.note?.startsWith("(combined"));
    assert.equal(combined?.series?.count, 3);
    assert.deepEqual(r.stats(), { created: 3, aggregated: 2, dropped: 0, failed: 0 });
    await r.close();
  });

  test("an Event deleted on the server (expired) is created again on the next repeat", async () => {
    const r = recorder();
    const ref = { apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "expiring" };
    r.normal(ref, "Tick", "same note");
    await r.flush();
    const [first] = await eventsAbout("expiring");
    assert.ok(first?.metadata?.name);
    await cluster.client.request({
      method: "DELETE",
      path: `/apis/events.k8s.io/v1/namespaces/${ns}/events/${first.metadata.name}`,
    });
    r.normal(ref, "Tick", "same note");
    await r.flush();
    const after = await eventsAbout("expiring");
    assert.equal(after.length, 1);
    assert.notEqual(after[0]?.metadata?.name, first.metadata.name);
    assert.equal(r.stats().failed, 0);
    await r.close();
  });

  test("a cluster-scoped object's events go to the default namespace", async (t) => {
    const r = recorder();
    const nsObject = await cluster.client.request<KubeObject>({ path: `/api/v1/namespaces/${ns}` });
    const reason = `Probe${uniqueName("x").replace(/[^a-z0-9]/gi, "")}`;
    r.normal({ ...nsObject, apiVersion: "v1", kind: "Namespace" }, reason, "cluster-scoped subject");
    await r.flush();
    const events = await eventsAbout(ns, "default");
    const mine = events.filter((e) => e.reason === reason);
    t.after(async () => {
      for (const e of mine) {
        await cluster.client
          .request({ method: "DELETE", path: `/apis/events.k8s.io/v1/namespaces/default/events/${e.metadata?.name}` })
          .catch(() => {});
      }
    });
    assert.equal(mine.length, 1);
    assert.equal(mine[0]?.regarding?.kind, "Namespace");
    await r.close();
  });

  test("a failing write does not reach the caller", async () => {
    const warnings: string[] = [];
    const r = recorder({
      logger: { debug: () => {}, info: () => {}, error: () => {}, warn: (m, f) => warnings.push(`${m} ${f?.error}`) },
    });
    const missing = uniqueName("no-such-namespace");
    assert.doesNotThrow(() =>
      r.warning({ kind: "ConfigMap", namespace: missing, name: "x" }, "Nope", "secret-free note"),
    );
    await r.flush();
    assert.equal(r.stats().failed, 1);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /not found/i);
    await eventually("nothing was created", async () => ((await eventsAbout("x", ns)).length === 0 ? true : undefined));
    await r.close();
  });
});
