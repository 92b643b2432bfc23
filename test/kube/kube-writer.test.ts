/**
 * The controller's Kubernetes writer against a real API server: cache-volume claims are conditional, so a claim
 * made for another pod is never wiped by a release or overwritten by a claim from a stale cache.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pvcAnnotations } from "../../src/api/v1/index.ts";
import { kubeWriter } from "../../src/controller/kube-writer.ts";
import { mergePatch } from "../../src/kube/patch.ts";
import { createNamespace, deleteNamespace, type TestCluster, testCluster } from "../support/cluster.ts";

let cluster: TestCluster;
let ns: string;

before(async () => {
  cluster = await testCluster();
  ns = await createNamespace(cluster.client, "writer");
});

after(async () => {
  await deleteNamespace(cluster.client, ns);
  await cluster.close();
});

interface Pvc {
  metadata: { name: string; resourceVersion?: string; annotations?: Record<string, string> };
}

async function pvc(name: string, claimedBy: string): Promise<Pvc> {
  return cluster.client.request<Pvc>({
    method: "POST",
    path: `/api/v1/namespaces/${ns}/persistentvolumeclaims`,
    body: {
      metadata: { name, annotations: { [pvcAnnotations.claimedBy]: claimedBy, [pvcAnnotations.claimedAt]: "1" } },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
    },
  });
}

const read = (name: string) =>
  cluster.client.request<Pvc>({ path: `/api/v1/namespaces/${ns}/persistentvolumeclaims/${name}` });

describe("kubeWriter: cache-volume claims", () => {
  test("a release for a pod that no longer holds the claim changes nothing", async () => {
    await pvc("cache-a", "pod-b");
    const writer = kubeWriter(cluster.client);
    assert.equal(
      await writer.releasePvcClaim(ns, "cache-a", "pod-a", { [pvcAnnotations.releasedAt]: "5" }),
      "conflict",
    );
    const after = await read("cache-a");
    assert.equal(after.metadata.annotations?.[pvcAnnotations.claimedBy], "pod-b");
    assert.equal(after.metadata.annotations?.[pvcAnnotations.releasedAt], undefined);
  });

  test("a release for the holder drops the claim and records the release", async () => {
    await pvc("cache-b", "pod-a");
    const writer = kubeWriter(cluster.client);
    assert.equal(await writer.releasePvcClaim(ns, "cache-b", "pod-a", { [pvcAnnotations.releasedAt]: "5" }), "done");
    const after = await read("cache-b");
    assert.equal(after.metadata.annotations?.[pvcAnnotations.claimedBy], undefined);
    assert.equal(after.metadata.annotations?.[pvcAnnotations.releasedAt], "5");
  });

  test("a claim from a stale cache conflicts instead of overwriting", async () => {
    const created = await pvc("cache-c", "pod-a");
    const writer = kubeWriter(cluster.client);
    const claim = { [pvcAnnotations.claimedBy]: "pod-c" };
    assert.equal(await writer.patchPvcAnnotations(ns, "cache-c", claim, created.metadata.resourceVersion), "done");
    const stale = { [pvcAnnotations.claimedBy]: "pod-d" };
    assert.equal(await writer.patchPvcAnnotations(ns, "cache-c", stale, created.metadata.resourceVersion), "conflict");
    assert.equal((await read("cache-c")).metadata.annotations?.[pvcAnnotations.claimedBy], "pod-c");
  });

  test("a PVC that is gone is gone, not an error", async () => {
    const writer = kubeWriter(cluster.client);
    assert.equal(await writer.releasePvcClaim(ns, "nope", "pod-a", {}), "gone");
  });
});

describe("kubeWriter: pod deletes", () => {
  interface Pod {
    metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> };
  }
  const podPath = (name: string) => `/api/v1/namespaces/${ns}/pods/${name}`;
  const createPod = (name: string) =>
    cluster.client.request<Pod>({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/pods`,
      // No scheduler serves this name: nothing but the test changes the pod.
      body: { metadata: { name }, spec: { schedulerName: "none", containers: [{ name: "agent", image: "agent:1" }] } },
    });
  const exists = (name: string) =>
    cluster.client.request({ path: podPath(name) }).then(
      () => true,
      () => false,
    );

  test("a conditional delete of a pod that changed since it was seen (scheduled, say) leaves it alone", async () => {
    const seen = await createPod("unscheduled-a");
    // The change the operator's cache has not shown yet (the scheduler's binding changes the pod the same way).
    await mergePatch(cluster.client, podPath("unscheduled-a"), { metadata: { labels: { moved: "on" } } });
    const writer = kubeWriter(cluster.client);
    assert.equal(await writer.deletePod(ns, "unscheduled-a", seen.metadata.resourceVersion), "changed");
    assert.equal(await exists("unscheduled-a"), true);
  });

  test("a create answers the pod's version; a delete conditional on it works while nothing changed", async () => {
    const writer = kubeWriter(cluster.client);
    const created = await writer.createPod(ns, {
      metadata: { name: "created-c" },
      spec: { schedulerName: "none", containers: [{ name: "agent", image: "agent:1" }] },
    });
    assert.equal(created.outcome, "created");
    const version = created.outcome === "created" ? created.resourceVersion : undefined;
    assert.match(version ?? "", /^\d+$/);
    assert.equal(await writer.deletePod(ns, "created-c", version), "done");
  });

  test("a conditional delete of the version seen deletes; a pod that is gone is gone", async () => {
    const seen = await createPod("unscheduled-b");
    const writer = kubeWriter(cluster.client);
    assert.equal(await writer.deletePod(ns, "unscheduled-b", seen.metadata.resourceVersion), "done");
    assert.equal(await writer.deletePod(ns, "unscheduled-b", seen.metadata.resourceVersion), "gone");
    assert.equal(await writer.deletePod(ns, "never-there"), "gone");
  });
});
