/**
 * Deleting an AutoScaledAgent cleans up: its finalizer unregisters its placeholder and its agents, then Kubernetes
 * garbage collection takes its pods and PVCs. Nothing is left in the namespace or the pool.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isNotFound } from "../../src/kube/client.ts";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

describe("operator: deleting a resource", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator());
  });
  after(() => stopWorldAndOperator(world, operator));

  const pvcs = async () =>
    (
      await world.cluster.client.request<{ items: { metadata: { name: string } }[] }>({
        path: `/api/v1/namespaces/${world.ns}/persistentvolumeclaims`,
      })
    ).items;

  test("with a warm pod, a placeholder and a cache PVC: nothing is left in the namespace or the pool", async () => {
    const template = world.template() as { spec: { containers: Record<string, unknown>[] } };
    const agentContainer = template.spec.containers[0] as Record<string, unknown>;
    agentContainer.volumeMounts = [{ name: "cache", mountPath: "/cache" }];
    await world.createResource("gone", {
      reusableCacheVolumes: [{ name: "cache", storageClassName: "hostpath", requestedStorage: "1Gi" }],
      podsWithCapabilities: [{ capabilities: { gone: "1" }, minCount: 1, maxCount: 2, podTemplateSpec: template }],
    });
    await eventually("the finalizer", async () => {
      const r = (await world.getResource("gone")) as { metadata?: { finalizers?: string[] } };
      return (r.metadata?.finalizers ?? []).includes("azurepipelines.k8s.scaler.io/cleanup") ? r : undefined;
    });
    await eventually("a warm agent online, its placeholder and its PVC", async () => {
      const agents = world.ado.control.listAgents({ pool: world.pool });
      const warm = agents.find((a) => a.name.startsWith("gone-") && a.status === "online");
      const placeholder = agents.find((a) => !a.name.startsWith("gone-"));
      return warm && placeholder && (await pvcs()).length > 0 ? agents : undefined;
    });

    await world.cluster.client.request({
      method: "DELETE",
      path: `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${world.ns}/autoscaledagents/gone`,
    });
    await eventually(
      "the resource gone",
      async () => {
        try {
          await world.getResource("gone");
          return undefined;
        } catch (err) {
          return isNotFound(err) ? true : undefined;
        }
      },
      120_000,
    );
    await eventually(
      "no pod, no PVC, no agent left",
      async () => {
        const left = {
          pods: (await world.pods("gone")).map((p) => p.metadata.name),
          pvcs: (await pvcs()).map((p) => p.metadata.name),
          agents: world.ado.control.listAgents({ pool: world.pool }).map((a) => a.name),
        };
        return left.pods.length + left.pvcs.length + left.agents.length === 0 ? left : undefined;
      },
      120_000,
    );
    const reasons = await world.cluster.client.request<{ items: { reason?: string }[] }>({
      path: `/apis/events.k8s.io/v1/namespaces/${world.ns}/events`,
    });
    assert.ok(
      reasons.items.some((e) => e.reason === "CleanedUp"),
      "a CleanedUp event",
    );
  });
});
