/**
 * Image pulls on the virtual node, on the real control plane: the first container of an image waits while the
 * node pulls it, the next one on the same node starts from the node's cache, another node pulls for itself,
 * `imagePullPolicy: Always` checks with the registry every time, `Never` refuses an absent image, and the Node
 * lists its images in `status.images`. Pulls are held and released by the test (an injected delay), so nothing
 * depends on how fast this machine is.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { normalizeImage } from "../sim/node/images.ts";
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

/** Pulls that last until the test releases them; `started` lists every pull or check that began. */
function heldPulls() {
  const started: { image: string; ms: number }[] = [];
  const held = new Map<string, () => void>();
  return {
    started,
    delay: (ms: number, image: string) =>
      new Promise<void>((resolve) => {
        started.push({ image, ms });
        held.set(image, resolve);
      }),
    release(image: string) {
      const key = normalizeImage(image);
      const resolve = held.get(key);
      assert.ok(resolve, `no pull of ${image} is held`);
      held.delete(key);
      resolve();
    },
    count: (image: string) => started.filter((s) => s.image === normalizeImage(image)).length,
  };
}

interface NodeObject {
  status?: { images?: { names: string[]; sizeBytes: number }[] };
}

describe("virtual node: image pulls", () => {
  let cluster: TestCluster;
  let ns: string;
  const nodes: { node: VirtualNode; pulls: ReturnType<typeof heldPulls>; name: string }[] = [];
  const PRELOADED = "example.com/images/preloaded:1";

  before(async () => {
    cluster = await testCluster();
    ns = await createNamespace(cluster.client, "images");
    for (let i = 0; i < 2; i++) {
      const pulls = heldPulls();
      const name = uniqueName(`vnode-img${i}`);
      const node = new VirtualNode({
        client: cluster.client,
        name,
        labels: { "azp.test/node": name },
        retryMs: 200,
        podSubnet: 40 + i,
        storageClasses: [],
        images: { defaultPullMs: 30_000, preloaded: [PRELOADED], delay: pulls.delay },
      });
      await node.start();
      nodes.push({ node, pulls, name });
    }
  });
  after(async () => {
    for (const { node } of nodes) await node.stop();
    await deleteNamespace(cluster.client, ns);
    await cluster.close();
  });

  const podsPath = () => `/api/v1/namespaces/${ns}/pods`;
  async function createPod(name: string, on: number, spec: { containers: Container[]; initContainers?: Container[] }) {
    await cluster.client.request({
      method: "POST",
      path: podsPath(),
      body: {
        metadata: { name },
        spec: {
          restartPolicy: "Never",
          nodeSelector: { "azp.test/node": nodes[on]?.name },
          terminationGracePeriodSeconds: 1,
          ...spec,
        },
      },
    });
  }
  const waitPod = (name: string, what: string, ok: (p: Pod) => boolean) =>
    eventually(`${name}: ${what}`, async () => {
      const p = await cluster.client.request<Pod>({ path: `${podsPath()}/${name}` });
      return ok(p) ? p : undefined;
    });
  const mainState = (p: Pod) => p.status?.containerStatuses?.[0]?.state;
  const nodeImages = async (on: number) =>
    (await cluster.client.request<NodeObject>({ path: `/api/v1/nodes/${nodes[on]?.name}` })).status?.images?.flatMap(
      (i) => i.names,
    ) ?? [];
  const records = (on: number, pod: string) =>
    (nodes[on]?.node.pulls() ?? []).filter((r) => r.pod === pod).map((r) => `${r.policy} ${r.action}`);
  const waitHeld = (on: number, image: string, n: number) =>
    eventually(`pull ${n} of ${image}`, async () => ((nodes[on]?.pulls.count(image) ?? 0) >= n ? true : undefined));

  test("the node lists its images in status.images, preloaded ones from the start", async () => {
    const names = await eventually("preloaded image listed", async () => {
      const n = await nodeImages(0);
      return n.includes(PRELOADED) ? n : undefined;
    });
    assert.ok(
      names.some((n) => /^example\.com\/images\/preloaded@sha256:[0-9a-f]{64}$/.test(n)),
      String(names),
    );
  });

  test("the first pod of an image waits for the pull; the next one on that node starts from the cache", async () => {
    const image = "example.com/images/app:1";
    await createPod("first", 0, { containers: [{ name: "main", image }] });
    await waitHeld(0, image, 1);
    const pulling = await waitPod("first", "waiting while pulled", (p) => Boolean(p.status?.podIP));
    assert.equal(pulling.status?.phase, "Pending");
    assert.equal(mainState(pulling)?.waiting?.reason, "ContainerCreating");
    assert.equal(pulling.status?.containerStatuses?.[0]?.imageID, "", "no image ID before the container exists");
    assert.ok(!(await nodeImages(0)).includes(image), "not on the node while being pulled");

    nodes[0]?.pulls.release(image);
    const running = await waitPod("first", "Running", (p) => p.status?.phase === "Running");
    assert.match(running.status?.containerStatuses?.[0]?.imageID ?? "", /^example\.com\/images\/app@sha256:/);
    await eventually("image listed on the node", async () =>
      (await nodeImages(0)).includes(image) ? true : undefined,
    );

    await createPod("second", 0, { containers: [{ name: "main", image }] });
    await waitPod("second", "Running", (p) => p.status?.phase === "Running");
    assert.equal(nodes[0]?.pulls.count(image), 1, "pulled once on this node");
    assert.deepEqual(records(0, "first"), ["IfNotPresent pull"]);
    assert.deepEqual(records(0, "second"), ["IfNotPresent present"]);
    assert.match(nodes[0]?.node.pulls().find((r) => r.pod === "second")?.message ?? "", /already present on machine/);

    // Another node has its own cache: it pulls the image for itself.
    await createPod("elsewhere", 1, { containers: [{ name: "main", image }] });
    await waitHeld(1, image, 1);
    const elsewhere = await waitPod("elsewhere", "waiting while pulled", (p) => Boolean(p.status?.podIP));
    assert.equal(mainState(elsewhere)?.waiting?.reason, "ContainerCreating");
    nodes[1]?.pulls.release(image);
    await waitPod("elsewhere", "Running", (p) => p.status?.phase === "Running");
    assert.deepEqual(records(1, "elsewhere"), ["IfNotPresent pull"]);
  });

  test("an init container's pull keeps the pod initializing", async () => {
    const image = "example.com/images/sim-exit:0"; // exits 0 once started
    await createPod("with-init", 0, {
      initContainers: [{ name: "prepare", image }],
      containers: [{ name: "main", image: PRELOADED }],
    });
    await waitHeld(0, image, 1);
    const pulling = await waitPod("with-init", "waiting while pulled", (p) => Boolean(p.status?.podIP));
    assert.equal(pulling.status?.initContainerStatuses?.[0]?.state.waiting?.reason, "PodInitializing");
    assert.equal(pulling.status?.conditions?.find((c) => c.type === "Initialized")?.status, "False");
    nodes[0]?.pulls.release(image);
    await waitPod("with-init", "Running", (p) => p.status?.phase === "Running");
  });

  test("imagePullPolicy Always checks with the registry every time; only the first start downloads", async () => {
    const image = "example.com/images/tool:latest"; // :latest: the API server defaults the policy to Always
    await createPod("always-1", 0, { containers: [{ name: "main", image }] });
    await waitHeld(0, image, 1);
    nodes[0]?.pulls.release(image);
    await waitPod("always-1", "Running", (p) => p.status?.phase === "Running");

    await createPod("always-2", 0, { containers: [{ name: "main", image }] });
    await waitHeld(0, image, 2);
    const checking = await waitPod("always-2", "waiting while checked", (p) => Boolean(p.status?.podIP));
    assert.equal(mainState(checking)?.waiting?.reason, "ContainerCreating");
    nodes[0]?.pulls.release(image);
    await waitPod("always-2", "Running", (p) => p.status?.phase === "Running");
    assert.deepEqual(records(0, "always-1"), ["Always pull"]);
    assert.deepEqual(records(0, "always-2"), ["Always check"]);
    const [pull, check] = nodes[0]?.pulls.started.filter((s) => s.image === normalizeImage(image)) ?? [];
    assert.deepEqual([pull?.ms, check?.ms], [30_000, 200], "a check is a short request, not the download");
  });

  test("imagePullPolicy Never: an absent image is ErrImageNeverPull, a present one runs", async () => {
    const absent = "example.com/images/absent:1";
    await createPod("never-absent", 0, { containers: [{ name: "main", image: absent, imagePullPolicy: "Never" }] });
    await createPod("never-present", 0, {
      containers: [{ name: "main", image: PRELOADED, imagePullPolicy: "Never" }],
    });
    const refused = await waitPod(
      "never-absent",
      "ErrImageNeverPull",
      (p) => mainState(p)?.waiting?.reason === "ErrImageNeverPull",
    );
    assert.equal(refused.status?.phase, "Pending");
    assert.equal(
      mainState(refused)?.waiting?.message,
      `Container image "${absent}" is not present with pull policy of Never`,
    );
    await waitPod("never-present", "Running", (p) => p.status?.phase === "Running");
    assert.equal(nodes[0]?.pulls.count(absent), 0, "never pulled");
    assert.equal(nodes[0]?.pulls.count(PRELOADED), 0);
  });
});
