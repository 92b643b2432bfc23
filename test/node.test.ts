/**
 * The virtual node on the real control plane: pods are scheduled to it by kube-scheduler and go through the
 * kubelet's phases, sidecars (classic and native), image swaps, image pull and config errors, graceful deletion
 * and volumes that must bind first.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { VirtualNode } from "../sim/node/index.ts";
import type { Container, Pod } from "../sim/node/types.ts";
import {
  createNamespace,
  deleteNamespace,
  eventually,
  type TestCluster,
  testCluster,
  uniqueName,
} from "./support/cluster.ts";

describe("virtual node", () => {
  let cluster: TestCluster;
  let ns: string;
  let node: VirtualNode;
  let nodeName: string;

  before(async () => {
    cluster = await testCluster();
    ns = await createNamespace(cluster.client, "node");
    nodeName = uniqueName("vnode");
    node = new VirtualNode({
      client: cluster.client,
      name: nodeName,
      labels: { "azp.test/node": nodeName },
      retryMs: 200,
    });
    await node.start();
  });
  after(async () => {
    await node.stop();
    await deleteNamespace(cluster.client, ns);
    await cluster.close();
  });

  const podsPath = () => `/api/v1/namespaces/${ns}/pods`;
  async function createPod(name: string, spec: Record<string, unknown> & { containers: Container[] }) {
    await cluster.client.request({
      method: "POST",
      path: podsPath(),
      body: {
        metadata: { name },
        spec: {
          restartPolicy: "Never",
          nodeSelector: { "azp.test/node": nodeName },
          terminationGracePeriodSeconds: 5,
          ...spec,
        },
      },
    });
  }
  const getPod = (name: string) => cluster.client.request<Pod>({ path: `${podsPath()}/${name}` });
  const waitPod = (name: string, what: string, ok: (p: Pod) => boolean) =>
    eventually(`${name}: ${what}`, async () => {
      const p = await getPod(name);
      return ok(p) ? p : undefined;
    });
  const main = (s: Pod, name: string) => s.status?.containerStatuses?.find((c) => c.name === name);
  const init = (s: Pod, name: string) => s.status?.initContainerStatuses?.find((c) => c.name === name);

  test("the node is Ready with a lease", async () => {
    const n = await cluster.client.request<{ status: { conditions: { type: string; status: string }[] } }>({
      path: `/api/v1/nodes/${nodeName}`,
    });
    assert.equal(n.status.conditions.find((c) => c.type === "Ready")?.status, "True");
    await cluster.client.request({
      path: `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}`,
    });
  });

  test("a plain pod runs and completes", async () => {
    await createPod("plain", { containers: [{ name: "main", image: "example.com/sim-exit:0-300ms" }] });
    const running = await waitPod("plain", "Running", (p) => p.status?.phase === "Running");
    assert.equal(running.spec.nodeName, nodeName);
    assert.ok(main(running, "main")?.state.running, "container running");
    assert.ok(running.status?.podIP, "pod IP set");
    const done = await waitPod("plain", "Succeeded", (p) => p.status?.phase === "Succeeded");
    const term = main(done, "main")?.state.terminated;
    assert.equal(term?.exitCode, 0);
    assert.equal(term?.reason, "Completed");
    assert.equal(done.status?.conditions?.find((c) => c.type === "Ready")?.reason, "PodCompleted");
  });

  test("container logs are served through the API server (kubectl logs)", async () => {
    await createPod("talker", { containers: [{ name: "main", image: "example.com/sim-exit:0-100ms" }] });
    await waitPod("talker", "Succeeded", (p) => p.status?.phase === "Succeeded");
    const text = await cluster.client.requestText({ path: `${podsPath()}/talker/log`, query: { container: "main" } });
    assert.match(text, /will exit with code 0 after 100ms\nexiting with code 0\n$/);
    const tail = await cluster.client.requestText({
      path: `${podsPath()}/talker/log`,
      query: { container: "main", tailLines: 1, timestamps: true },
    });
    assert.match(tail, /^\d{4}-\d\d-\d\dT\S+ exiting with code 0\n$/);
  });

  test("a failing main container fails the pod", async () => {
    await createPod("fails", { containers: [{ name: "main", image: "sim-exit:3" }] });
    const done = await waitPod("fails", "Failed", (p) => p.status?.phase === "Failed");
    assert.equal(main(done, "main")?.state.terminated?.exitCode, 3);
    assert.equal(main(done, "main")?.state.terminated?.reason, "Error");
  });

  test("init containers run in order before the main containers; a failing one fails the pod", async () => {
    await createPod("inits", {
      initContainers: [
        { name: "first", image: "sim-exit:0-100ms" },
        { name: "second", image: "sim-exit:0" },
      ],
      containers: [{ name: "main", image: "sim-exit:0" }],
    });
    const done = await waitPod("inits", "Succeeded", (p) => p.status?.phase === "Succeeded");
    const first = init(done, "first")?.state.terminated;
    const second = init(done, "second")?.state.terminated;
    const m = main(done, "main")?.state.terminated;
    assert.ok(first && second && m);
    assert.ok(first.finishedAt <= (second.startedAt ?? ""), "second starts after first finished");
    assert.ok((second.finishedAt ?? "") <= (m.startedAt ?? ""), "main starts after init");

    await createPod("init-fails", {
      initContainers: [{ name: "bad", image: "sim-exit:1" }],
      containers: [{ name: "main", image: "sim-exit:0" }],
    });
    const failed = await waitPod("init-fails", "Failed", (p) => p.status?.phase === "Failed");
    assert.equal(main(failed, "main")?.state.terminated, undefined, "main never ran");
  });

  test("restartPolicy Always: a completed init container is not run again; a failing one is retried", async () => {
    await createPod("init-always", {
      restartPolicy: "Always",
      initContainers: [
        { name: "done", image: "sim-exit:0" },
        { name: "noop", image: "example.com/azure-pipelines-agent:1", command: ["/tools/true"] },
      ],
      containers: [{ name: "main", image: "busybox" }],
    });
    const running = await waitPod("init-always", "Running", (p) => p.status?.phase === "Running");
    await new Promise((r) => setTimeout(r, 500));
    const later = await getPod("init-always");
    for (const name of ["done", "noop"]) {
      assert.equal(init(later, name)?.restartCount, 0, `${name} ran once`);
      assert.equal(init(later, name)?.state.terminated?.exitCode, 0, `${name} completed`);
    }
    assert.ok(main(running, "main")?.state.running);
    assert.ok(
      !node.logs(ns, "init-always", "noop").some((l) => /agent|sleeping/.test(l)),
      "the command replaced the agent image's entrypoint: no agent ran",
    );

    await createPod("init-retry", {
      restartPolicy: "Always",
      initContainers: [{ name: "bad", image: "sim-exit:1" }],
      containers: [{ name: "main", image: "busybox" }],
    });
    const retried = await waitPod("init-retry", "init retried", (p) => (init(p, "bad")?.restartCount ?? 0) >= 1);
    assert.equal(retried.status?.phase, "Pending");
    assert.equal(main(retried, "main")?.state.running, undefined, "main waits");
  });

  test("a classic sidecar keeps the pod Running after the main container exits; swapping its image ends it", async () => {
    await createPod("classic", {
      containers: [
        { name: "agent", image: "sim-exit:0-200ms" },
        { name: "sidecar", image: "busybox" },
      ],
    });
    const mainDone = await waitPod("classic", "main terminated", (p) => Boolean(main(p, "agent")?.state.terminated));
    assert.equal(mainDone.status?.phase, "Running");
    assert.ok(main(mainDone, "sidecar")?.state.running);
    await cluster.client.request({
      method: "PATCH",
      path: `${podsPath()}/classic`,
      contentType: "application/strategic-merge-patch+json",
      body: { spec: { containers: [{ name: "sidecar", image: "sim-exit:0" }] } },
    });
    const done = await waitPod("classic", "Succeeded", (p) => p.status?.phase === "Succeeded");
    const side = main(done, "sidecar");
    assert.equal(side?.restartCount, 1);
    assert.equal(side?.image, "sim-exit:0");
    assert.equal(side?.state.terminated?.exitCode, 0);
    assert.ok(side?.lastState.terminated, "the old container's end is in lastState");
  });

  test("a native sidecar starts before and stops after the main container; the pod Succeeds", async () => {
    await createPod("native", {
      initContainers: [{ name: "sidecar", image: "busybox", restartPolicy: "Always" }],
      containers: [{ name: "agent", image: "sim-exit:0-300ms" }],
    });
    const running = await waitPod("native", "Running", (p) => p.status?.phase === "Running");
    assert.ok(init(running, "sidecar")?.state.running, "sidecar runs alongside");
    const done = await waitPod("native", "Succeeded", (p) => p.status?.phase === "Succeeded");
    const side = init(done, "sidecar")?.state.terminated;
    const agent = main(done, "agent")?.state.terminated;
    assert.ok(side && agent);
    assert.ok((agent.finishedAt ?? "") <= side.finishedAt, "sidecar stopped after the agent");
  });

  test("an image that cannot be pulled ends in ErrImagePull / ImagePullBackOff", async () => {
    await createPod("nopull", { containers: [{ name: "main", image: "registry.example/does-not-exist:1" }] });
    const p = await waitPod(
      "nopull",
      "ImagePullBackOff",
      (x) => main(x, "main")?.state.waiting?.reason === "ImagePullBackOff",
    );
    assert.equal(p.status?.phase, "Pending");
  });

  test("a missing secret or key is a CreateContainerConfigError until it appears", async () => {
    await createPod("needs-secret", {
      containers: [
        {
          name: "main",
          image: "sim-exit:0",
          env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "creds", key: "pat" } } }],
        },
      ],
    });
    const p1 = await waitPod(
      "needs-secret",
      "config error",
      (x) => main(x, "main")?.state.waiting?.reason === "CreateContainerConfigError",
    );
    assert.equal(main(p1, "main")?.state.waiting?.message, 'secret "creds" not found');
    await cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/secrets`,
      body: { metadata: { name: "creds" }, stringData: { other: "x" } },
    });
    const p2 = await waitPod("needs-secret", "missing key", (x) =>
      /couldn't find key pat/.test(main(x, "main")?.state.waiting?.message ?? ""),
    );
    assert.equal(main(p2, "main")?.state.waiting?.message, `couldn't find key pat in Secret ${ns}/creds`);
    await cluster.client.request({
      method: "PATCH",
      path: `/api/v1/namespaces/${ns}/secrets/creds`,
      contentType: "application/merge-patch+json",
      body: { stringData: { pat: "s3cret" } },
    });
    await waitPod("needs-secret", "Succeeded", (x) => x.status?.phase === "Succeeded");
  });

  test("a pod whose nodeSelector matches no node stays Pending", async () => {
    await cluster.client.request({
      method: "POST",
      path: podsPath(),
      body: {
        metadata: { name: "homeless" },
        spec: { nodeSelector: { "azp.test/node": "nope" }, containers: [{ name: "c", image: "x" }] },
      },
    });
    const p = await waitPod("homeless", "Unschedulable", (x) =>
      Boolean(x.status?.conditions?.some((c) => c.reason === "Unschedulable")),
    );
    assert.equal(p.status?.phase, "Pending");
    assert.equal(p.spec.nodeName, undefined);
  });

  test("graceful deletion stops the containers, then the node removes the pod", async () => {
    await createPod("long", { containers: [{ name: "main", image: "busybox" }] });
    await waitPod("long", "Running", (p) => p.status?.phase === "Running");
    await cluster.client.request({ method: "DELETE", path: `${podsPath()}/long` });
    const marked = await getPod("long").catch(() => undefined);
    if (marked) assert.ok(marked.metadata.deletionTimestamp, "deletion is graceful: the pod is marked first");
    await eventually("pod removed", async () => {
      try {
        await getPod("long");
        return undefined;
      } catch {
        return true;
      }
    });
    assert.deepEqual(
      node
        .logs(ns, "long", "main")
        .slice(-1)
        .map((l) => l.replace(/^\S+ /, "")),
      ["received SIGTERM, exiting"],
    );
  });

  test("a pod with a cache PVC starts once the claim is bound", async () => {
    await cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/persistentvolumeclaims`,
      body: {
        metadata: { name: "cache" },
        spec: {
          storageClassName: "hostpath",
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: "1Gi" } },
        },
      },
    });
    await createPod("with-pvc", {
      containers: [{ name: "main", image: "sim-exit:0", volumeMounts: [{ name: "c", mountPath: "/cache" }] }],
      volumes: [{ name: "c", persistentVolumeClaim: { claimName: "cache" } }],
    });
    await waitPod("with-pvc", "Succeeded", (x) => x.status?.phase === "Succeeded");
    const pvc = await cluster.client.request<{ status: { phase: string } }>({
      path: `/api/v1/namespaces/${ns}/persistentvolumeclaims/cache`,
    });
    assert.equal(pvc.status.phase, "Bound");
  });
});
