/**
 * End to end: sidecars are stopped once the agent has finished (classic sidecars by the operator, native sidecars
 * by the kubelet), finished pods are kept or deleted as configured, and cancelled jobs leave nothing behind.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

describe("operator: pod lifecycle", () => {
  let world: World;
  let operator: OperatorProcess;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator());
  });
  after(() => stopWorldAndOperator(world, operator));

  for (const keep of [0, 1]) {
    test(`a classic sidecar is stopped after the job; ${keep} finished pod(s) kept`, async () => {
      const cap = `sidecar${keep}`;
      await world.placeholder({ [cap]: "1" });
      await world.createResource(cap, {
        maxTerminatedPodsToKeep: keep,
        podsWithCapabilities: [
          {
            capabilities: { [cap]: "1" },
            maxCount: 2,
            podTemplateSpec: world.template({ containers: [{ name: "buildkit", image: "moby/buildkit:rootless" }] }),
          },
        ],
      });
      const jobs = [1, 2].map(() => world.ado.control.queueJob({ pool: world.pool, demands: [cap], durationMs: 300 }));
      for (const j of jobs) {
        const f = await world.ado.control.waitForJob(j.requestId, (x) => x.state === "finished", { timeoutMs: 90_000 });
        assert.equal(f.result, "succeeded");
      }
      await eventually(`finished pods reduced to ${keep}`, async () => {
        const pods = await world.pods(cap);
        const finished = pods.filter((p) => p.status?.phase === "Succeeded");
        return pods.length === keep && finished.length === keep ? pods : undefined;
      });
      if (keep === 1) {
        const [pod] = await world.pods(cap);
        const side = pod?.status?.containerStatuses?.find((c) => c.name === "buildkit");
        assert.equal(side?.state.terminated?.exitCode, 0, "the sidecar ended cleanly");
        assert.equal(
          pod?.spec.containers.find((c) => c.name === "buildkit")?.image,
          "docker.io/library/hello-world:latest",
          "image swapped to the terminator",
        );
      }
    });
  }

  test("a native sidecar needs no help: the pod completes by itself", async () => {
    await world.placeholder({ native: "1" });
    await world.createResource("native", {
      maxTerminatedPodsToKeep: 1,
      podsWithCapabilities: [
        {
          capabilities: { native: "1" },
          maxCount: 1,
          podTemplateSpec: world.template({
            initContainers: [{ name: "docker", image: "docker:dind", restartPolicy: "Always" }],
          }),
        },
      ],
    });
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["native"], durationMs: 300 });
    await world.ado.control.waitForJob(job.requestId, (x) => x.state === "finished", { timeoutMs: 90_000 });
    const pod = await eventually("pod Succeeded", async () => {
      const [p] = await world.pods("native");
      return p?.status?.phase === "Succeeded" ? p : undefined;
    });
    assert.equal(pod.spec.initContainers?.[0]?.image, "docker:dind", "the operator did not touch the native sidecar");
  });

  test("a job cancelled before its pod started: the idle pod goes after the idle period", async () => {
    await world.placeholder({ cancelq: "1" });
    await world.createResource("cancelq", {
      agentMinIdlePeriod: "1s",
      podsWithCapabilities: [
        {
          capabilities: { cancelq: "1" },
          maxCount: 2,
          // A slow init container: the job is cancelled while the pod is still starting.
          podTemplateSpec: world.template({ initContainers: [{ name: "slow-start", image: "sim-exit:0-3000ms" }] }),
        },
      ],
    });
    const job = world.ado.control.queueJob({
      pool: world.pool,
      demands: ["cancelq"],
      durationMs: 5000,
      startDelayMs: 0,
    });
    await eventually("a pod created", async () => ((await world.pods("cancelq")).length > 0 ? true : undefined));
    world.ado.control.cancelJob(job.requestId);
    await eventually(
      "pod removed",
      async () => ((await world.pods("cancelq")).length === 0 ? true : undefined),
      60_000,
    ).catch(async (err: Error) => {
      const pods = await world.pods("cancelq");
      const agents = world.ado.control.listAgents({ pool: world.pool }).filter((a) => a.name.startsWith("cancelq"));
      const log = operator
        .log()
        .split("\n")
        .filter((l) => /cancelq/.test(l))
        .slice(-8)
        .join("\n");
      throw new Error(
        `${err.message}; pods ${JSON.stringify(pods.map((p) => [p.metadata.name, p.status?.phase, p.metadata.annotations]))}; agents ${JSON.stringify(agents)}; operator: ${log}`,
      );
    });
    assert.equal(world.ado.control.getJob(job.requestId)?.result, "canceled");
  });

  test("a job cancelled while running: the agent finishes it as canceled and its pod completes", async () => {
    await world.placeholder({ cancelr: "1" });
    await world.createResource("cancelr", {
      maxTerminatedPodsToKeep: 1,
      podsWithCapabilities: [{ capabilities: { cancelr: "1" }, maxCount: 1, podTemplateSpec: world.template() }],
    });
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["cancelr"], durationMs: 60_000 });
    await world.ado.control.waitForJob(job.requestId, (x) => x.state === "running", { timeoutMs: 90_000 });
    world.ado.control.cancelJob(job.requestId);
    const f = await world.ado.control.waitForJob(job.requestId, (x) => x.state === "finished", { timeoutMs: 60_000 });
    assert.equal(f.result, "canceled");
    let seen = "";
    await eventually(
      "the job's pod completed",
      async () => {
        const pods = await world.pods("cancelr");
        seen = pods
          .map(
            (p) => `${p.metadata.name}:${p.status?.phase}:${JSON.stringify(p.status?.containerStatuses?.[0]?.state)}`,
          )
          .join(" ");
        return pods.find((p) => p.metadata.name === f.reservedAgent?.name)?.status?.phase === "Succeeded"
          ? true
          : undefined;
      },
      60_000,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}; pods: ${seen}; agent log: ${world.node.logs(world.ns, f.reservedAgent?.name ?? "", "azure-pipelines-agent").join(" | ")}`,
      );
    });
  });

  test("a job cancelled while its pod is unschedulable: the pod is deleted at once", async () => {
    await world.placeholder({ cancelu: "1" });
    const template = world.template();
    (template.spec as Record<string, unknown>).nodeSelector = { "azp.test/node": "no-such-node" };
    await world.createResource("cancelu", {
      agentMinIdlePeriod: "10m",
      podsWithCapabilities: [{ capabilities: { cancelu: "1" }, maxCount: 1, podTemplateSpec: template }],
    });
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["cancelu"], durationMs: 300 });
    await eventually("pod unschedulable", async () => {
      const [p] = await world.pods("cancelu");
      return p?.status?.conditions?.some((c) => c.reason === "Unschedulable") ? true : undefined;
    });
    world.ado.control.cancelJob(job.requestId);
    await eventually("unscheduled pod removed without waiting for the idle period", async () =>
      (await world.pods("cancelu")).length === 0 ? true : undefined,
    );
  });
});
