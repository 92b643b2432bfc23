/**
 * The patch/apply helpers against a real API server: conflict retries under real concurrent writers, merge vs
 * strategic merge semantics, server-side apply ownership, the status subresource.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isConflict, KubeApiError } from "../../src/kube/client.ts";
import { apply, jsonPatch, mergePatch, patchStatus, strategicMergePatch } from "../../src/kube/patch.ts";
import { resourcePath } from "../../src/kube/resource.ts";
import type { KubeObject } from "../../src/kube/types.ts";
import { createNamespace, deleteNamespace, type TestCluster, testCluster } from "../support/cluster.ts";
import { createTestCrd, type TestCrd } from "./fixtures/crd.ts";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

interface Widget extends KubeObject {
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

const configMaps = { apiVersion: "v1", resource: "configmaps" };

let cluster: TestCluster;
let ns: string;
let crd: TestCrd;

before(async () => {
  cluster = await testCluster();
  ns = await createNamespace(cluster.client, "patch");
  crd = await createTestCrd(cluster.client);
});

after(async () => {
  await crd.delete();
  await deleteNamespace(cluster.client, ns);
  await cluster.close();
});

async function createConfigMap(name: string, data: Record<string, string>): Promise<string> {
  await cluster.client.request({
    method: "POST",
    path: resourcePath(configMaps, { namespace: ns }),
    body: { metadata: { name }, data },
  });
  return resourcePath(configMaps, { namespace: ns, name });
}

describe("patch flavours on a real API server", () => {
  test("JSON merge patch: objects merge, null deletes", async () => {
    const path = await createConfigMap("merge", { a: "1", b: "2" });
    const cm = await mergePatch<ConfigMap>(cluster.client, path, { data: { b: null, c: "3" } });
    assert.deepEqual(cm.data, { a: "1", c: "3" });
  });

  test("strategic merge patch merges containers by name (a merge patch would replace the list)", async () => {
    const client = cluster.client;
    const pods = { apiVersion: "v1", resource: "pods" };
    await client.request({
      method: "POST",
      path: resourcePath(pods, { namespace: ns }),
      body: {
        metadata: { name: "smp" },
        spec: {
          containers: [
            { name: "a", image: "example.invalid/a:1" },
            { name: "b", image: "example.invalid/b:1" },
          ],
        },
      },
    });
    const path = resourcePath(pods, { namespace: ns, name: "smp" });
    const pod = await strategicMergePatch<{ spec: { containers: { name: string; image: string }[] } }>(client, path, {
      spec: { containers: [{ name: "b", image: "example.invalid/b:2" }] },
    });
    assert.deepEqual(
      pod.spec.containers.map((c) => `${c.name}=${c.image}`),
      ["a=example.invalid/a:1", "b=example.invalid/b:2"],
    );
  });

  test("strategic merge patch on a custom resource is refused (415)", async () => {
    const client = cluster.client;
    await client.request({
      method: "POST",
      path: resourcePath(crd.resource, { namespace: ns }),
      body: { apiVersion: crd.apiVersion, kind: crd.kind, metadata: { name: "no-smp" }, spec: {} },
    });
    await assert.rejects(
      strategicMergePatch(client, resourcePath(crd.resource, { namespace: ns, name: "no-smp" }), { spec: { a: 1 } }),
      (err: unknown) => err instanceof KubeApiError && err.status === 415,
    );
  });

  test("JSON patch with a test op is a compare-and-swap", async () => {
    const path = await createConfigMap("cas", { owner: "me" });
    await jsonPatch(cluster.client, path, [
      { op: "test", path: "/data/owner", value: "me" },
      { op: "replace", path: "/data/owner", value: "you" },
    ]);
    await assert.rejects(
      jsonPatch(cluster.client, path, [
        { op: "test", path: "/data/owner", value: "me" },
        { op: "replace", path: "/data/owner", value: "again" },
      ]),
      (err: unknown) => err instanceof KubeApiError && err.status === 422,
    );
  });

  test("server-side apply: creates, owns fields per manager, conflicts unless forced", async () => {
    const client = cluster.client;
    const path = resourcePath(configMaps, { namespace: ns, name: "applied" });
    const desired = (v: string) => ({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "applied", namespace: ns },
      data: { shared: v },
    });
    const created = await apply<ConfigMap>(client, path, desired("one"), { fieldManager: "manager-a" });
    assert.equal(created.data?.shared, "one");
    await assert.rejects(apply(client, path, desired("two"), { fieldManager: "manager-b" }), isConflict);
    const forced = await apply<ConfigMap>(client, path, desired("two"), { fieldManager: "manager-b", force: true });
    assert.equal(forced.data?.shared, "two");
    const managedFields = (forced.metadata?.managedFields ?? []) as { manager: string }[];
    const managers = managedFields.map((m) => m.manager);
    assert.ok(managers.includes("manager-b"));
    // Same manager, same content: a no-op apply is fine.
    await apply(client, path, desired("two"), { fieldManager: "manager-b" });
    assert.throws(() => apply(client, path, desired("x"), { fieldManager: "" }));
    const dry = await apply<ConfigMap>(client, path, desired("dry"), { fieldManager: "manager-b", dryRun: true });
    assert.equal(dry.data?.shared, "dry");
    assert.equal((await client.request<ConfigMap>({ path })).data?.shared, "two", "dry run persists nothing");
  });

  test("status patches go to the subresource; the main resource ignores status", async () => {
    const client = cluster.client;
    const path = resourcePath(crd.resource, { namespace: ns, name: "status" });
    await client.request({
      method: "POST",
      path: resourcePath(crd.resource, { namespace: ns }),
      body: { apiVersion: crd.apiVersion, kind: crd.kind, metadata: { name: "status" }, spec: { v: 1 } },
    });
    const ignored = await mergePatch<Widget>(client, path, { status: { ready: true } });
    assert.equal(ignored.status, undefined);
    const merged = await patchStatus<Widget>(client, path, { status: { ready: true, count: 1 } });
    assert.deepEqual(merged.status, { ready: true, count: 1 });
    const applied = await patchStatus<Widget>(
      client,
      path,
      { apiVersion: crd.apiVersion, kind: crd.kind, metadata: { name: "status" }, status: { count: 2 } },
      { type: "apply", fieldManager: "status-writer", force: true },
    );
    assert.equal(applied.status?.count, 2);
    assert.equal(applied.spec?.v, 1);
    assert.throws(() => patchStatus(client, path, {}, { type: "apply" }), /fieldManager/);
  });
});
