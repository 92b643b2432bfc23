/**
 * End to end, reusable cache volumes: a pod mounting a cache volume gets a PVC; the next pod reuses it once the
 * first has finished; a storm of jobs against a capped number of PVCs never mounts one PVC in two live pods
 * (checked continuously while the storm runs).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Pod } from "../../sim/node/types.ts";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

const claimsOf = (p: Pod) =>
  ((p.spec as { volumes?: { persistentVolumeClaim?: { claimName: string } }[] }).volumes ?? []).flatMap((v) =>
    v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : [],
  );
const isLive = (p: Pod) => !["Succeeded", "Failed"].includes(p.status?.phase ?? "");

describe("operator: reusable cache volumes", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator());
  });
  after(() => stopWorldAndOperator(world, operator));

  const template = () =>
    world.template({
      containers: [
        {
          name: "buildkit",
          image: "moby/buildkit:rootless",
          volumeMounts: [{ name: "buildkit-cache", mountPath: "/home/user/.local/share/buildkit" }],
        },
      ],
    });
  const pvcs = async () =>
    (
      await world.cluster.client.request<{
        items: { metadata: { name: string; annotations?: Record<string, string> }; status?: { phase?: string } }[];
      }>({
        path: `/api/v1/namespaces/${world.ns}/persistentvolumeclaims`,
      })
    ).items;

  test("PVC creation and reuse: the second job's pod gets the first pod's PVC", async () => {
    await world.placeholder({ pvc: "1" });
    await world.createResource("pvc", {
      maxTerminatedPodsToKeep: 5,
      reusableCacheVolumes: [{ name: "buildkit-cache", storageClassName: "hostpath", requestedStorage: "1Gi" }],
      podsWithCapabilities: [{ capabilities: { pvc: "1" }, maxCount: 2, podTemplateSpec: template() }],
    });
    const first = world.ado.control.queueJob({ pool: world.pool, demands: ["pvc"], durationMs: 300 });
    await world.ado.control.waitForJob(first.requestId, (j) => j.state === "finished", { timeoutMs: 90_000 });
    const [pvc] = await pvcs();
    assert.ok(pvc, "a PVC was created");
    assert.equal(pvc.status?.phase, "Bound");
    await eventually("claim released after the pod finished", async () =>
      (await pvcs())[0]?.metadata.annotations?.["azurepipelines.k8s.scaler.io/claimed-by"] === undefined
        ? true
        : undefined,
    );
    const second = world.ado.control.queueJob({ pool: world.pool, demands: ["pvc"], durationMs: 300 });
    const f = await world.ado.control.waitForJob(second.requestId, (j) => j.state === "finished", {
      timeoutMs: 90_000,
    });
    assert.equal(f.result, "succeeded");
    assert.equal((await pvcs()).length, 1, "no second PVC: the first was reused");
    const pods = await world.pods("pvc");
    assert.equal(pods.length, 2);
    for (const p of pods) assert.deepEqual(claimsOf(p), [pvc.metadata.name]);
    const asa = await world.getResource("pvc");
    assert.deepEqual(
      (asa.status?.cacheVolumes as { claimName: string }[] | undefined)?.map((c) => c.claimName),
      [pvc.metadata.name],
    );
  });

  test("a storm of 20 jobs against 3 cache PVCs never mounts one PVC in two live pods", async () => {
    await world.placeholder({ storm: "1" });
    await world.createResource("storm", {
      maxTerminatedPodsToKeep: 0,
      reusableCacheVolumes: [{ name: "buildkit-cache", storageClassName: "hostpath", requestedStorage: "1Gi" }],
      podsWithCapabilities: [{ capabilities: { storm: "1" }, maxCount: 3, podTemplateSpec: template() }],
    });
    const jobs = Array.from({ length: 20 }, () =>
      world.ado.control.queueJob({ pool: world.pool, demands: ["storm"], durationMs: 200 }),
    );
    const violations: string[] = [];
    let checks = 0;
    let done = false;
    const watcher = (async () => {
      while (!done) {
        const live = (await world.pods("storm")).filter(isLive);
        const holders = new Map<string, string>();
        for (const p of live) {
          for (const c of claimsOf(p)) {
            const other = holders.get(c);
            if (other) violations.push(`${c} mounted by ${other} and ${p.metadata.name}`);
            holders.set(c, p.metadata.name);
          }
        }
        checks++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      await Promise.all(
        jobs.map((j) =>
          world.ado.control.waitForJob(j.requestId, (x) => x.state === "finished", { timeoutMs: 300_000 }),
        ),
      );
    } finally {
      done = true;
      await watcher;
    }
    assert.deepEqual(violations, [], `no PVC shared by two live pods (${checks} checks)`);
    assert.ok(checks > 10, "the watcher really ran during the storm");
    const stormPvcs = (await pvcs()).filter((p) => p.metadata.name.startsWith("storm-"));
    assert.ok(stormPvcs.length <= 3, `at most maxCount PVCs (${stormPvcs.length})`);
    assert.ok(jobs.every((j) => world.ado.control.getJob(j.requestId)?.result === "succeeded"));
  });
});
