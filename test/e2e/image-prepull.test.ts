/**
 * End to end, image pre-pull (spec.imagePrePull) with the operator started with --image-prepull: the DaemonSet
 * appears, its pod pulls the templates' images on the virtual node (which takes time per image there), the node
 * lists them in status.images, and an agent pod then finds its image present; an edited image rolls the DaemonSet;
 * a pull problem gives an event and a status message; turning the option off or deleting the resource removes the
 * DaemonSet.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { PullRecord } from "../../sim/node/images.ts";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

const AGENT_IMAGE = "example.com/azure-pipelines-agent:test";
const PREPULL_LABEL = "azurepipelines.k8s.scaler.io/image-prepull";

interface DaemonSet {
  metadata: {
    name: string;
    uid: string;
    ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[];
    labels?: Record<string, string>;
  };
  spec: {
    template: { spec: { initContainers: { name: string; image: string; command?: string[] }[] } };
  };
  status?: { desiredNumberScheduled?: number; numberReady?: number; updatedNumberScheduled?: number };
}

interface PrePullStatus {
  desiredNodes: number;
  readyNodes: number;
  images: number;
  daemonSets?: string[];
  message?: string;
}

describe("operator: image pre-pull", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator(
      // Pulls take time on this node, so that a pod that had to pull is told apart from one that found the image.
      { nodeImages: { pullMs: { "example.com/azure-pipelines-agent": 1500, "example.com/sidecar": 500 } } },
      { args: ["--leader-elect", "false", "--image-prepull", "true"] },
    ));
  });
  after(() => stopWorldAndOperator(world, operator));

  const asaPath = () => `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${world.ns}/autoscaledagents`;
  const daemonSetsOf = async (resource: string) => {
    const list = await world.cluster.client.request<{ items: DaemonSet[] }>({
      path: `/apis/apps/v1/namespaces/${world.ns}/daemonsets`,
      query: { labelSelector: `azurepipelines.k8s.scaler.io/autoscaledagent=${resource}` },
    });
    return list.items;
  };
  const prePullStatus = async (resource: string) =>
    (await world.getResource(resource)).status?.imagePrePull as PrePullStatus | undefined;
  const nodeImages = async () => {
    const node = await world.cluster.client.request<{ status?: { images?: { names: string[] }[] } }>({
      path: `/api/v1/nodes/${world.nodeName}`,
    });
    return (node.status?.images ?? []).flatMap((i) => i.names);
  };
  const pulledBy = (pod: string, image: string): PullRecord[] =>
    world.node.pulls().filter((r) => r.pod === pod && r.image === image);
  const prePullPods = async () => {
    const list = await world.cluster.client.request<{
      items: { metadata: { name: string; labels?: Record<string, string> } }[];
    }>({ path: `/api/v1/namespaces/${world.ns}/pods`, query: { labelSelector: PREPULL_LABEL } });
    return list.items;
  };
  const eventFor = (name: string, reason: string) =>
    eventually(`${name}: event ${reason}`, async () => {
      const list = await world.cluster.client.request<{
        items: { reason: string; note?: string; type?: string; regarding?: { name?: string } }[];
      }>({ path: `/apis/events.k8s.io/v1/namespaces/${world.ns}/events` });
      return list.items.find((e) => e.reason === reason && e.regarding?.name === name);
    });
  const template = (sidecarImage: string) =>
    world.template({
      containers: [{ name: "sidecar", image: sidecarImage }],
      initContainers: [{ name: "setup", image: "example.com/setup:1", command: ["true"] }],
    });

  test("pulls the templates' images on the node; the agent pod then starts without pulling; edits roll out", async () => {
    await world.placeholder({ prepull: "1" });
    await world.createResource("pp", {
      maxTerminatedPodsToKeep: 5,
      imagePrePull: { enabled: true },
      podsWithCapabilities: [
        {
          capabilities: { prepull: "1" },
          minCount: 0,
          maxCount: 2,
          podTemplateSpec: template("example.com/sidecar:1"),
        },
      ],
    });
    const resource = await world.getResource("pp");
    const uid = (resource as { metadata: { uid?: string } }).metadata.uid;

    // The DaemonSet appears, owned by the resource, one pull container per image (agent first).
    const ds = await eventually("the pre-pull DaemonSet", async () => (await daemonSetsOf("pp"))[0]);
    assert.match(ds.metadata.name, /^pp-prepull-[0-9a-f]{8}$/);
    assert.deepEqual(
      ds.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]),
      [["AutoScaledAgent", "pp", uid, true]],
    );
    assert.deepEqual(ds.spec.template.spec.initContainers.map((c) => c.image).slice(1), [
      AGENT_IMAGE,
      "example.com/sidecar:1",
      "example.com/setup:1",
    ]);

    // Its pod pulls them: the node lists them, the status says ready on 1 of 1 nodes.
    const status = await eventually("pre-pull ready on the node", async () => {
      const s = await prePullStatus("pp");
      return s && s.desiredNodes === 1 && s.readyNodes === 1 ? s : undefined;
    });
    assert.deepEqual(status, { desiredNodes: 1, readyNodes: 1, images: 3, daemonSets: [ds.metadata.name] });
    const images = await nodeImages();
    for (const image of [AGENT_IMAGE, "example.com/sidecar:1", "example.com/setup:1"])
      assert.ok(images.includes(image), `node status.images lists ${image}: ${images.join(", ")}`);
    const [prePullPod] = await prePullPods();
    assert.ok(prePullPod, "a pre-pull pod");
    assert.equal(
      world.node.pulls().find((r) => r.image === AGENT_IMAGE)?.pod,
      prePullPod.metadata.name,
      "the pre-pull pod pulled the agent image first",
    );
    await eventFor("pp", "ImagePrePullCreated");
    await eventFor("pp", "ImagesPrePulled");

    // A job: its agent pod finds every image present.
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["prepull"], durationMs: 300 });
    const finished = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 90_000,
    });
    assert.equal(finished.result, "succeeded");
    const agentPod = finished.reservedAgent?.name ?? "";
    assert.deepEqual(
      pulledBy(agentPod, AGENT_IMAGE).map((r) => r.action),
      ["present"],
      "the agent container did not pull",
    );
    assert.deepEqual(
      pulledBy(agentPod, "example.com/sidecar:1").map((r) => r.action),
      ["present"],
      "nor did the sidecar",
    );
    assert.equal((await world.pods("pp")).length, 1, "pre-pull pods are not the resource's agent pods");

    // Editing the template's image rolls the DaemonSet: same name, the new image pulled by a new pod.
    await world.cluster.client.request({
      method: "PATCH",
      path: `${asaPath()}/pp`,
      contentType: "application/json-patch+json",
      body: [
        {
          op: "replace",
          path: "/spec/podsWithCapabilities/0/podTemplateSpec/spec/containers/1/image",
          value: "example.com/sidecar:2",
        },
      ],
    });
    const rolled = await eventually("the DaemonSet has the new image", async () => {
      const [d] = await daemonSetsOf("pp");
      return d?.spec.template.spec.initContainers.some((c) => c.image === "example.com/sidecar:2") ? d : undefined;
    });
    assert.equal(rolled.metadata.name, ds.metadata.name, "updated in place");
    await eventually("the new image pulled by a new pre-pull pod", async () => {
      const record = world.node.pulls().find((r) => r.image === "example.com/sidecar:2");
      return record && record.pod !== prePullPod.metadata.name && record.action === "pull" ? record : undefined;
    });
    await eventually("ready again with the new image", async () => {
      const s = await prePullStatus("pp");
      return s?.readyNodes === 1 && s.desiredNodes === 1 ? s : undefined;
    });
    assert.ok((await nodeImages()).includes("example.com/sidecar:2"));
    await eventFor("pp", "ImagePrePullUpdated");

    // A hand edit of the DaemonSet's containers is undone.
    await world.cluster.client.request({
      method: "PATCH",
      path: `/apis/apps/v1/namespaces/${world.ns}/daemonsets/${ds.metadata.name}`,
      contentType: "application/json-patch+json",
      body: [{ op: "replace", path: "/spec/template/spec/initContainers/1/image", value: "example.com/other:1" }],
    });
    await eventually("the operator restores the DaemonSet", async () => {
      const [d] = await daemonSetsOf("pp");
      return d?.spec.template.spec.initContainers[1]?.image === AGENT_IMAGE ? d : undefined;
    });

    // Deleting the resource removes the DaemonSet (garbage collection through the owner reference).
    await world.cluster.client.request({ method: "DELETE", path: `${asaPath()}/pp` });
    await eventually(
      "the DaemonSet is gone",
      async () => ((await daemonSetsOf("pp")).length === 0 ? true : undefined),
      90_000,
    );
  });

  test("an image that cannot be pulled: an event and a status message; turning pre-pull off removes the DaemonSet", async () => {
    await world.createResource("broken", {
      imagePrePull: { enabled: true, extraImages: ["example.com/does-not-exist:1"] },
      podsWithCapabilities: [
        { capabilities: { broken: "1" }, minCount: 0, maxCount: 1, podTemplateSpec: world.template() },
      ],
    });
    const event = await eventFor("broken", "ImagePrePullFailed");
    assert.match(event.note ?? "", /example\.com\/does-not-exist:1 cannot be pulled on node/);
    const status = await eventually("a status message", async () => {
      const s = await prePullStatus("broken");
      return s?.message?.includes("does-not-exist") ? s : undefined;
    });
    assert.equal(status.readyNodes, 0);
    assert.equal(status.images, 2);

    await world.cluster.client.request({
      method: "PATCH",
      path: `${asaPath()}/broken`,
      contentType: "application/merge-patch+json",
      body: { spec: { imagePrePull: { enabled: false } } },
    });
    await eventually("the DaemonSet is deleted", async () =>
      (await daemonSetsOf("broken")).length === 0 ? true : undefined,
    );
    await eventually("the status field is removed", async () =>
      (await prePullStatus("broken")) === undefined ? true : undefined,
    );
    await eventFor("broken", "ImagePrePullRemoved");
  });
});

describe("operator without --image-prepull", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator());
  });
  after(() => stopWorldAndOperator(world, operator));

  test("a resource asking for pre-pull gets a status message and a warning, no DaemonSet; scaling goes on", async () => {
    await world.createResource("asks", {
      imagePrePull: { enabled: true },
      podsWithCapabilities: [
        { capabilities: { asks: "1" }, minCount: 1, maxCount: 1, podTemplateSpec: world.template() },
      ],
    });
    const status = await eventually("a status message", async () => {
      const r = await world.getResource("asks");
      return r.status?.imagePrePull as { message?: string; readyNodes: number } | undefined;
    });
    assert.match(status.message ?? "", /--image-prepull/);
    const events = await eventually("an ImagePrePullDisabled event", async () => {
      const list = await world.cluster.client.request<{ items: { reason: string; type?: string }[] }>({
        path: `/apis/events.k8s.io/v1/namespaces/${world.ns}/events`,
      });
      return list.items.find((e) => e.reason === "ImagePrePullDisabled");
    });
    assert.equal(events.type, "Warning");
    await eventually("the warm agent pod runs", async () =>
      (await world.pods("asks")).some((p) => p.status?.phase === "Running") ? true : undefined,
    );
    const list = await world.cluster.client.request<{ items: unknown[] }>({
      path: `/apis/apps/v1/namespaces/${world.ns}/daemonsets`,
    });
    assert.equal(list.items.length, 0);
  });
});
