import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { KubeObject } from "../kube/types.ts";
import { stuckContainer } from "./actions.ts";
import { observePod } from "./observe.ts";
import { agentPodView } from "./pod-view.ts";
import type { PodObject } from "./ports.ts";
import { podHasEnded } from "./sharing.ts";

/** A pod as the API server returns it: everything the kubelet, the scheduler and admission add. */
function fullPod(status: Record<string, unknown>, extra: { initContainers?: unknown[]; nodeName?: string } = {}) {
  const container = (name: string) => ({
    name,
    image: `${name}:1`,
    args: ["--once"],
    env: [
      { name: "AZP_URL", value: "https://dev.azure.com/org" },
      { name: "AZP_TOKEN", valueFrom: { secretKeyRef: { name: "azure-pat", key: "pat" } } },
    ],
    resources: { requests: { cpu: "100m" } },
    volumeMounts: [{ name: "kube-api-access-x", mountPath: "/var/run/secrets/kubernetes.io/serviceaccount" }],
    terminationMessagePath: "/dev/termination-log",
    imagePullPolicy: "IfNotPresent",
  });
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "agents-abc12",
      namespace: "ci",
      uid: "u-1",
      resourceVersion: "42",
      creationTimestamp: "2026-12-07T10:00:00Z",
      labels: { "azurepipelines.k8s.scaler.io/template": "k" },
      annotations: { "azurepipelines.k8s.scaler.io/created-for": "7", "azurepipelines.k8s.scaler.io/idle-since": "5" },
      ownerReferences: [{ apiVersion: "x/v1", kind: "AutoScaledAgent", name: "agents", uid: "r-1", controller: true }],
      managedFields: [{ manager: "operator", operation: "Update", fieldsV1: { "f:spec": {} } }],
    },
    spec: {
      ...(extra.nodeName === undefined ? {} : { nodeName: extra.nodeName }),
      containers: [container("agent"), container("buildkit")],
      ...(extra.initContainers ? { initContainers: extra.initContainers } : {}),
      volumes: [
        { name: "cache", persistentVolumeClaim: { claimName: "agents-cache-a" } },
        { name: "kube-api-access-x", projected: { sources: [{ serviceAccountToken: { path: "token" } }] } },
      ],
      tolerations: [{ key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute" }],
      serviceAccountName: "default",
      restartPolicy: "Never",
    },
    status: {
      hostIP: "10.0.0.1",
      podIPs: [{ ip: "10.1.0.5" }],
      qosClass: "Burstable",
      conditions: [{ type: "PodScheduled", status: "True" }],
      ...status,
    },
  };
}

const running = (startedAt = "2026-12-07T10:00:05Z") => ({ running: { startedAt } });
const terminated = (exitCode: number, reason = "Completed") => ({
  terminated: { exitCode, reason, startedAt: "2026-12-07T10:00:05Z", finishedAt: "2026-12-07T10:01:00Z" },
});
const waiting = (reason: string, message?: string) => ({ waiting: { reason, ...(message ? { message } : {}) } });
const statusOf = (name: string, state: unknown) => ({
  name,
  state,
  ready: false,
  restartCount: 0,
  image: "x",
  imageID: "y",
});

const cases: { name: string; pod: ReturnType<typeof fullPod> }[] = [
  { name: "pending, unscheduled", pod: fullPod({ phase: "Pending" }) },
  {
    name: "running, both containers",
    pod: fullPod(
      {
        phase: "Running",
        startTime: "2026-12-07T10:00:01Z",
        containerStatuses: [statusOf("agent", running()), statusOf("buildkit", running())],
      },
      { nodeName: "node-1" },
    ),
  },
  {
    name: "agent done, sidecar running",
    pod: fullPod(
      {
        phase: "Running",
        startTime: "2026-12-07T10:00:01Z",
        containerStatuses: [statusOf("agent", terminated(0)), statusOf("buildkit", running())],
      },
      { nodeName: "node-1" },
    ),
  },
  {
    name: "agent failed with exit code 3",
    pod: fullPod(
      {
        phase: "Failed",
        containerStatuses: [statusOf("agent", terminated(3, "Error")), statusOf("buildkit", terminated(0))],
      },
      { nodeName: "node-1" },
    ),
  },
  {
    name: "image pull failure (stuck)",
    pod: fullPod(
      {
        phase: "Pending",
        containerStatuses: [statusOf("agent", waiting("ImagePullBackOff", 'Back-off pulling image "agent:1"'))],
      },
      { nodeName: "node-1" },
    ),
  },
  {
    name: "a native sidecar",
    pod: fullPod(
      {
        phase: "Running",
        containerStatuses: [statusOf("agent", running())],
        initContainerStatuses: [statusOf("proxy", running())],
      },
      {
        nodeName: "node-1",
        initContainers: [
          { name: "proxy", image: "proxy:1", restartPolicy: "Always", env: [{ name: "A", value: "b" }] },
        ],
      },
    ),
  },
];

describe("agentPodView: what the cache keeps of a pod", () => {
  const templates = [{ capabilities: {}, minCount: 0, maxCount: 5, podTemplateSpec: {} }] as never;
  for (const c of cases) {
    test(`${c.name}: every reading sees the same`, () => {
      const full = structuredClone(c.pod) as unknown as PodObject;
      const view = agentPodView(structuredClone(c.pod) as unknown as PodObject & KubeObject);
      assert.deepEqual(observePod(view, templates), observePod(full, templates));
      assert.deepEqual(stuckContainer(view), stuckContainer(full));
      assert.equal(podHasEnded(view), podHasEnded(full));
      const { managedFields: _, ...metadata } = c.pod.metadata;
      assert.deepEqual(view.metadata, metadata, "the metadata, without managedFields");
      assert.deepEqual(view.spec.volumes, [
        { name: "cache", persistentVolumeClaim: { claimName: "agents-cache-a" } },
        { name: "kube-api-access-x" },
      ]);
      assert.ok(JSON.stringify(view).length < JSON.stringify(c.pod).length / 2, "much smaller than the pod");
    });
  }

  test("the pod given is not changed", () => {
    const pod = fullPod({ phase: "Pending" });
    const before = structuredClone(pod);
    agentPodView(pod as unknown as PodObject & KubeObject);
    assert.deepEqual(pod, before);
  });
});
