/**
 * The simulated control plane is a real one: readiness, CRDs with a status subresource, garbage collection,
 * scheduling, and RBAC enforcement for ServiceAccount credentials.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { serviceAccountConnection } from "../sim/control-plane/serviceaccount.ts";
import { KubeApiError, KubeClient } from "../src/kube/client.ts";
import {
  crdEstablished,
  createNamespace,
  deleteNamespace,
  eventually,
  type TestCluster,
  testCluster,
  uniqueName,
} from "./support/cluster.ts";

interface Pod {
  metadata: { name: string; uid: string };
  spec: { nodeName?: string };
  status?: { phase?: string; conditions?: { type: string; status: string; reason?: string }[] };
}

describe("control plane", () => {
  let cluster: TestCluster;
  let ns: string;
  before(async () => {
    cluster = await testCluster();
    ns = await createNamespace(cluster.client, "cp");
  });
  after(async () => {
    await deleteNamespace(cluster.client, ns);
    await cluster.close();
  });

  test("serves /readyz to the admin", async () => {
    assert.equal((await cluster.client.requestText({ path: "/readyz" })).trim(), "ok");
    const version = await cluster.client.request<{ gitVersion: string }>({ path: "/version" });
    assert.match(version.gitVersion, /^v1\.\d+\.\d+/);
  });

  test("accepts a CustomResourceDefinition and objects of it, status subresource included", async () => {
    const plural = uniqueName("widgets").replace(/-/g, "");
    const group = "test.azp.example.com";
    const crd = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: `${plural}.${group}` },
      spec: {
        group,
        scope: "Namespaced",
        names: { plural, singular: plural.slice(0, -1), kind: `W${plural}`, listKind: `W${plural}List` },
        versions: [
          {
            name: "v1",
            served: true,
            storage: true,
            subresources: { status: {} },
            schema: {
              openAPIV3Schema: {
                type: "object",
                properties: {
                  spec: { type: "object", properties: { size: { type: "integer", minimum: 1 } } },
                  status: { type: "object", properties: { seen: { type: "integer" } } },
                },
              },
            },
          },
        ],
      },
    };
    const crdPath = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    await cluster.client.request({ method: "POST", path: crdPath, body: crd });
    try {
      await crdEstablished(cluster.client, `${plural}.${group}`);
      const base = `/apis/${group}/v1/namespaces/${ns}/${plural}`;
      const created = await eventually("first object accepted", () =>
        cluster.client.request<{ metadata: { name: string; generation: number } }>({
          method: "POST",
          path: base,
          body: { apiVersion: `${group}/v1`, kind: `W${plural}`, metadata: { name: "one" }, spec: { size: 3 } },
        }),
      );
      assert.equal(created.metadata.generation, 1);
      // Schema validation is enforced by the API server.
      await assert.rejects(
        cluster.client.request({
          method: "POST",
          path: base,
          body: { apiVersion: `${group}/v1`, kind: `W${plural}`, metadata: { name: "bad" }, spec: { size: 0 } },
        }),
        (err: unknown) => err instanceof KubeApiError && err.status === 422,
      );
      // Status goes through its own subresource and does not bump the generation.
      const patched = await cluster.client.request<{ status: { seen: number }; metadata: { generation: number } }>({
        method: "PATCH",
        path: `${base}/one/status`,
        contentType: "application/merge-patch+json",
        body: { status: { seen: 7 } },
      });
      assert.equal(patched.status.seen, 7);
      assert.equal(patched.metadata.generation, 1);
      // A status change on the main resource is ignored.
      const viaMain = await cluster.client.request<{ status?: { seen?: number } }>({
        method: "PATCH",
        path: `${base}/one`,
        contentType: "application/merge-patch+json",
        body: { status: { seen: 99 } },
      });
      assert.equal(viaMain.status?.seen, 7);
    } finally {
      await cluster.client.request({ method: "DELETE", path: `${crdPath}/${plural}.${group}` });
    }
  });

  test("garbage collection deletes a Pod whose owner is deleted", async () => {
    const owner = await cluster.client.request<{ metadata: { name: string; uid: string } }>({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/configmaps`,
      body: { metadata: { name: "owner" } },
    });
    const podPath = `/api/v1/namespaces/${ns}/pods`;
    await cluster.client.request({
      method: "POST",
      path: podPath,
      body: {
        metadata: {
          name: "dependent",
          ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata.uid }],
        },
        spec: { nodeSelector: { "azp.test/none": "none" }, containers: [{ name: "c", image: "busybox" }] },
      },
    });
    await cluster.client.request({ method: "DELETE", path: `/api/v1/namespaces/${ns}/configmaps/owner` });
    await eventually("dependent pod deleted", async () => {
      const pods = await cluster.client.request<{ items: Pod[] }>({ path: podPath });
      return pods.items.some((p) => p.metadata.name === "dependent") ? undefined : true;
    });
  });

  test("the scheduler binds a pod to a registered node and leaves an unmatched one Pending/Unschedulable", async () => {
    const nodeName = uniqueName("node");
    const label = uniqueName("pool");
    const now = new Date().toISOString();
    await cluster.client.request({
      method: "POST",
      path: "/api/v1/nodes",
      body: { metadata: { name: nodeName, labels: { "azp.test/pool": label, "kubernetes.io/hostname": nodeName } } },
    });
    try {
      const resources = { cpu: "4", memory: "8Gi", pods: "20" };
      await cluster.client.request({
        method: "PATCH",
        path: `/api/v1/nodes/${nodeName}/status`,
        contentType: "application/merge-patch+json",
        body: {
          status: {
            capacity: resources,
            allocatable: resources,
            conditions: [
              {
                type: "Ready",
                status: "True",
                reason: "KubeletReady",
                message: "test",
                lastHeartbeatTime: now,
                lastTransitionTime: now,
              },
            ],
          },
        },
      });
      const podPath = `/api/v1/namespaces/${ns}/pods`;
      const container = [{ name: "c", image: "busybox" }];
      await cluster.client.request({
        method: "POST",
        path: podPath,
        body: { metadata: { name: "fits" }, spec: { nodeSelector: { "azp.test/pool": label }, containers: container } },
      });
      await cluster.client.request({
        method: "POST",
        path: podPath,
        body: {
          metadata: { name: "nowhere" },
          spec: { nodeSelector: { "azp.test/pool": `${label}-x` }, containers: container },
        },
      });
      const bound = await eventually("pod bound", async () => {
        const pod = await cluster.client.request<Pod>({ path: `${podPath}/fits` });
        return pod.spec.nodeName;
      });
      assert.equal(bound, nodeName);
      const condition = await eventually("pod marked unschedulable", async () => {
        const pod = await cluster.client.request<Pod>({ path: `${podPath}/nowhere` });
        return pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
      });
      assert.equal(condition.reason, "Unschedulable");
      const pod = await cluster.client.request<Pod>({ path: `${podPath}/nowhere` });
      assert.equal(pod.status?.phase, "Pending");
      assert.equal(pod.spec.nodeName, undefined);
    } finally {
      await cluster.client.request({ method: "DELETE", path: `/api/v1/nodes/${nodeName}` });
    }
  });

  test("RBAC refuses a ServiceAccount without a role, and allows what a Role grants", async () => {
    const conn = await serviceAccountConnection(cluster.client, { namespace: ns, name: "nobody", create: true });
    const sa = new KubeClient(conn);
    try {
      await assert.rejects(
        sa.request({ path: `/api/v1/namespaces/${ns}/pods` }),
        (err: unknown) => err instanceof KubeApiError && err.status === 403 && err.reason === "Forbidden",
      );
      await cluster.client.request({
        method: "POST",
        path: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`,
        body: { metadata: { name: "pod-reader" }, rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list"] }] },
      });
      await cluster.client.request({
        method: "POST",
        path: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
        body: {
          metadata: { name: "nobody-reads-pods" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-reader" },
          subjects: [{ kind: "ServiceAccount", name: "nobody", namespace: ns }],
        },
      });
      await eventually("role takes effect", () => sa.request({ path: `/api/v1/namespaces/${ns}/pods` }));
      // Still nothing beyond the role.
      await assert.rejects(
        sa.request({ path: `/api/v1/namespaces/${ns}/secrets` }),
        (err: unknown) => err instanceof KubeApiError && err.status === 403,
      );
      // An invalid token is not authenticated at all.
      const forged = new KubeClient({ ...conn, token: `${conn.token}x` });
      await assert.rejects(
        forged.request({ path: `/api/v1/namespaces/${ns}/pods` }),
        (err: unknown) => err instanceof KubeApiError && err.status === 401,
      );
      forged.close();
    } finally {
      sa.close();
    }
  });
});
