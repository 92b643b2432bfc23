/**
 * End to end, ExtraAgentContainers: a job demanding extra containers gets a pod with them (sharing the agent's
 * workspace), with and without a static sidecar, and the extra containers are stopped once the agent has finished;
 * a malformed or disallowed value is refused with an event naming the job, and nothing else stops.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

describe("operator: ExtraAgentContainers", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator());
  });
  after(() => stopWorldAndOperator(world, operator));

  const workspace = { volumes: [{ name: "workspace", emptyDir: {} }] };
  const agentWithWorkspace = (extra: { containers?: unknown[] } = {}) => {
    const t = world.template(extra) as { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } };
    (t.spec.containers[0] as Record<string, unknown>).volumeMounts = [{ name: "workspace", mountPath: "/azp/_work" }];
    Object.assign(t.spec, workspace);
    return t;
  };

  for (const withSidecar of [false, true]) {
    test(`a job with ExtraAgentContainers gets them ${withSidecar ? "next to a static sidecar" : "(no static sidecar)"}`, async () => {
      const cap = withSidecar ? "xacside" : "xac";
      const value = "name=ubuntu,image=docker.io/library/ubuntu:22.04,cpu=250m,memory=64Mi";
      await world.placeholder({ [cap]: "1", ExtraAgentContainers: value });
      await world.createResource(cap, {
        maxTerminatedPodsToKeep: 5,
        podsWithCapabilities: [
          {
            capabilities: { [cap]: "1" },
            maxCount: 2,
            podTemplateSpec: agentWithWorkspace(
              withSidecar ? { containers: [{ name: "buildkit", image: "moby/buildkit:rootless" }] } : {},
            ),
          },
        ],
      });
      const job = world.ado.control.queueJob({
        pool: world.pool,
        demands: [cap, `ExtraAgentContainers -equals ${value}`],
        durationMs: 300,
      });
      const f = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", { timeoutMs: 90_000 });
      assert.equal(f.result, "succeeded");
      const pod = await eventually("pod Succeeded", async () => {
        const p = (await world.pods(cap)).find((x) => x.metadata.name === f.reservedAgent?.name);
        return p?.status?.phase === "Succeeded" ? p : undefined;
      });
      const names = pod.spec.containers.map((c) => c.name);
      assert.deepEqual(names, ["azure-pipelines-agent", ...(withSidecar ? ["buildkit"] : []), "ubuntu"]);
      const ubuntu = pod.spec.containers.find((c) => c.name === "ubuntu") as
        | { volumeMounts?: { name: string; mountPath: string }[]; resources?: { limits?: Record<string, string> } }
        | undefined;
      assert.deepEqual(
        ubuntu?.volumeMounts?.find((m) => m.name === "workspace"),
        { name: "workspace", mountPath: "/azp/_work" },
        "shares the workspace",
      );
      assert.equal(ubuntu?.resources?.limits?.cpu, "250m");
      const status = pod.status?.containerStatuses?.find((c) => c.name === "ubuntu");
      assert.equal(status?.state.terminated?.exitCode, 0, "the extra container was stopped");
    });
  }

  test("a malformed ExtraAgentContainers value is refused with an event naming the job; other jobs still run", async () => {
    await world.placeholder({ xacbad: "1", ExtraAgentContainers: "name=UPPER,image=" });
    await world.placeholder({ xacbad: "1" });
    await world.createResource("xacbad", {
      podsWithCapabilities: [{ capabilities: { xacbad: "1" }, maxCount: 2, podTemplateSpec: world.template() }],
    });
    const bad = world.ado.control.queueJob({
      pool: world.pool,
      demands: ["xacbad", "ExtraAgentContainers -equals name=UPPER,image="],
      durationMs: 300,
    });
    const good = world.ado.control.queueJob({ pool: world.pool, demands: ["xacbad"], durationMs: 300 });
    const f = await world.ado.control.waitForJob(good.requestId, (j) => j.state === "finished", { timeoutMs: 90_000 });
    assert.equal(f.result, "succeeded");
    const event = await eventually("JobNotServed event", async () => {
      const list = await world.cluster.client.request<{
        items: { reason: string; note?: string; regarding?: { name?: string } }[];
      }>({
        path: `/apis/events.k8s.io/v1/namespaces/${world.ns}/events`,
      });
      return list.items.find((e) => e.regarding?.name === "xacbad" && e.note?.includes(`job request ${bad.requestId}`));
    });
    assert.match(event.note ?? "", /UPPER|image/);
    assert.equal(world.ado.control.getJob(bad.requestId)?.state, "queued", "no pod for the refused job");
    world.ado.control.cancelJob(bad.requestId);
  });
});
