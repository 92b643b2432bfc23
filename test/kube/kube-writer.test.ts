/**
 * The controller's Kubernetes writer against a real API server: cache-volume claims are conditional, so a claim
 * made for another pod is never wiped by a release or overwritten by a claim from a stale cache.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pvcAnnotations } from "../../src/api/v1/index.ts";
import { kubeWriter } from "../../src/controller/kube-writer.ts";
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
