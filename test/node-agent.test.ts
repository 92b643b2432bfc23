/**
 * The agent inside a pod on the virtual node, against the Azure DevOps emulator: it registers from the pod's
 * environment (token from a Secret), takes exactly one queued job, completes it and exits; graceful deletion waits
 * for a running job; a bad token makes the container fail with a reason in its log.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type AzureDevOpsEmulator, startAzureDevOpsEmulator } from "../sim/azure-devops/index.ts";
import { agentProgram } from "../sim/node/agent-program.ts";
import { VirtualNode } from "../sim/node/index.ts";
import type { Pod } from "../sim/node/types.ts";
import {
  createNamespace,
  deleteNamespace,
  eventually,
  type TestCluster,
  testCluster,
  uniqueName,
} from "./support/cluster.ts";
import { registerPlaceholder } from "./support/emulator.ts";

const pat = "sim-pat-manage";

describe("agent pods on the virtual node", () => {
  let cluster: TestCluster;
  let ns: string;
  let node: VirtualNode;
  let nodeName: string;
  let ado: AzureDevOpsEmulator;

  before(async () => {
    cluster = await testCluster();
    ns = await createNamespace(cluster.client, "agent");
    ado = await startAzureDevOpsEmulator({
      pools: ["sim pool"],
      pats: [{ token: pat, scope: "manage" }],
      messagePollTimeoutMs: 500,
    });
    nodeName = uniqueName("vnode");
    node = new VirtualNode({
      client: cluster.client,
      name: nodeName,
      labels: { "azp.test/node": nodeName },
      retryMs: 200,
      agentProgram: agentProgram({ retryDelayMs: 100, renewIntervalMs: 500 }),
    });
    await node.start();
    await cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/secrets`,
      body: { metadata: { name: "azure-pat" }, stringData: { pat } },
    });
    await cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/secrets`,
      body: { metadata: { name: "wrong-pat" }, stringData: { pat: "not-a-valid-pat" } },
    });
    // An offline placeholder, so jobs queue instead of failing while no real agent is registered.
    await registerPlaceholder(ado, { pat, name: "dummy-agent-test", capabilities: { buildkit: "1" } });
  });
  after(async () => {
    await node.stop();
    await ado.close();
    await deleteNamespace(cluster.client, ns);
    await cluster.close();
  });

  function agentPod(name: string, secret = "azure-pat", extra: Record<string, unknown> = {}, preStop = true) {
    return cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/pods`,
      body: {
        metadata: { name },
        spec: {
          restartPolicy: "Never",
          nodeSelector: { "azp.test/node": nodeName },
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: "azure-pipelines-agent",
              image: "example.com/azure-pipelines-agent:latest",
              env: [
                { name: "AZP_URL", value: ado.organizationUrl },
                { name: "AZP_POOL", value: "sim pool" },
                { name: "AZP_AGENT_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                { name: "AZP_TOKEN", valueFrom: { secretKeyRef: { name: secret, key: "pat" } } },
                { name: "buildkit", value: "1" },
              ],
              ...(preStop ? { lifecycle: { preStop: { exec: { command: ["/bin/sh", "-c", "wait-for-job"] } } } } : {}),
            },
          ],
          ...extra,
        },
      },
    });
  }
  const getPod = (name: string) => cluster.client.request<Pod>({ path: `/api/v1/namespaces/${ns}/pods/${name}` });
  const agentState = (p: Pod) => p.status?.containerStatuses?.[0]?.state;

  test("an agent pod takes exactly one queued job, completes it, deregisters and exits 0", async () => {
    const first = ado.control.queueJob({ pool: "sim pool", demands: ["buildkit"], durationMs: 300 });
    const second = ado.control.queueJob({ pool: "sim pool", demands: ["buildkit"], durationMs: 300 });
    assert.equal(first.state, "queued");
    await agentPod("agent-one");
    const done = await eventually("pod Succeeded", async () => {
      const p = await getPod("agent-one");
      return p.status?.phase === "Succeeded" ? p : undefined;
    });
    assert.equal(agentState(done)?.terminated?.exitCode, 0);
    const jobs = [ado.control.getJob(first.requestId), ado.control.getJob(second.requestId)];
    const ran = jobs.filter((j) => j?.reservedAgent?.name === "agent-one");
    assert.equal(ran.length, 1, "exactly one job ran on the pod");
    assert.equal(ran[0]?.result, "succeeded");
    assert.ok(ran[0]?.assignTime && ran[0]?.receiveTime && ran[0]?.finishTime);
    const other = jobs.find((j) => j?.reservedAgent?.name !== "agent-one");
    assert.equal(other?.state, "queued", "the other job still waits");
    assert.equal(
      ado.control.listAgents().some((a) => a.name === "agent-one"),
      false,
      "the agent removed its registration",
    );
    // Capabilities come from the environment, without the token.
    ado.control.cancelJob(other?.requestId ?? 0);
  });

  for (const preStop of [true, false]) {
    test(`graceful deletion waits for the running job to finish (${preStop ? "preStop hook" : "agent on SIGTERM"})`, async () => {
      const name = preStop ? "agent-busy-hook" : "agent-busy-term";
      const job = ado.control.queueJob({ pool: "sim pool", demands: ["buildkit"], durationMs: 1500 });
      await agentPod(name, "azure-pat", {}, preStop);
      await ado.control.waitForJob(job.requestId, (j) => j.state === "running", { timeoutMs: 60_000 });
      await cluster.client.request({ method: "DELETE", path: `/api/v1/namespaces/${ns}/pods/${name}` });
      const finished = await ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
        timeoutMs: 60_000,
      });
      assert.equal(finished.result, "succeeded", "the job was not cut short");
      await eventually("pod removed after the job", async () => {
        try {
          await getPod(name);
          return undefined;
        } catch {
          return true;
        }
      });
      const log = node.logs(ns, name, "azure-pipelines-agent").map((l) => l.replace(/^\S+ /, ""));
      const jobEnd = log.findIndex((l) => /finished: succeeded/.test(l));
      const term = log.findIndex((l) => /SIGTERM received/.test(l));
      assert.ok(jobEnd >= 0 && term >= 0, log.join("\n"));
      if (preStop) assert.ok(term > jobEnd, "the preStop hook held SIGTERM back until the job ended");
      else assert.match(log[term] ?? "", /letting it finish/);
    });
  }

  test("graceful deletion while the job is still starting (received, not yet running) waits for it too", async () => {
    const name = "agent-starting";
    const job = ado.control.queueJob({ pool: "sim pool", demands: ["buildkit"], startDelayMs: 1500, durationMs: 300 });
    await agentPod(name);
    // The agent took the job's message: its worker is starting (the service shows no receive time yet).
    await eventually("the agent received the job", async () =>
      node.logs(ns, name, "azure-pipelines-agent").some((l) => l.includes(`(request ${job.requestId})`))
        ? true
        : undefined,
    );
    assert.notEqual(ado.control.getJob(job.requestId)?.state, "running", "deleted before the job ran");
    await cluster.client.request({ method: "DELETE", path: `/api/v1/namespaces/${ns}/pods/${name}` });
    const finished = await ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 60_000,
    });
    assert.equal(finished.result, "succeeded", "the starting job was not cut short");
  });

  test("a wrong token makes the agent container exit non-zero and say why", async () => {
    await agentPod("agent-badtoken", "wrong-pat");
    const failed = await eventually("pod Failed", async () => {
      const p = await getPod("agent-badtoken");
      return p.status?.phase === "Failed" ? p : undefined;
    });
    assert.notEqual(agentState(failed)?.terminated?.exitCode, 0);
    const log = node.logs(ns, "agent-badtoken", "azure-pipelines-agent").join("\n");
    assert.match(log, /error: .*(401|auth|token|Unauthorized)/i);
    assert.doesNotMatch(log, /not-a-valid-pat/, "the token is not logged");
  });
});
