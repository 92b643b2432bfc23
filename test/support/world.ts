/**
 * The simulated world of an end-to-end test: the shared control plane with the CRD installed, a namespace of the
 * test's own, an Azure DevOps emulator and a virtual node (both in-process, private to the test), the PAT Secret,
 * and helpers to create AutoScaledAgents whose pods land on the test's node.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import {
  type AzureDevOpsEmulator,
  type AzureDevOpsEmulatorOptions,
  startAzureDevOpsEmulator,
} from "../../sim/azure-devops/index.ts";
import { agentProgram } from "../../sim/node/agent-program.ts";
import { VirtualNode } from "../../sim/node/index.ts";
import type { Pod } from "../../sim/node/types.ts";
import { createNamespace, deleteNamespace, eventually, type TestCluster, testCluster, uniqueName } from "./cluster.ts";
import { type OperatorOptions, type OperatorProcess, startOperatorProcess } from "./operator.ts";

const root = join(import.meta.dirname, "..", "..");
export const crdFile = join(root, "config", "crd", "azurepipelines.k8s.scaler.io_autoscaledagents.yaml");
const asaPath = (ns: string) => `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents`;

export async function ensureCrd(cluster: TestCluster): Promise<void> {
  const crd = parse(readFileSync(crdFile, "utf8")) as { metadata: { name: string } };
  await cluster.client.request({
    method: "PATCH",
    path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
    contentType: "application/apply-patch+yaml",
    query: { fieldManager: "azp-tests", force: "true" },
    body: crd,
  });
  await eventually("CRD established", async () => {
    const got = await cluster.client.request<{ status?: { conditions?: { type: string; status: string }[] } }>({
      path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
    });
    return got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") || undefined;
  });
}

export interface World {
  cluster: TestCluster;
  ns: string;
  ado: AzureDevOpsEmulator;
  pool: string;
  pat: string;
  readPat: string;
  node: VirtualNode;
  nodeName: string;
  /** A pod template whose pods land on this world's node, with an agent container and optional extras. */
  template(extra?: {
    containers?: unknown[];
    initContainers?: unknown[];
    terminationGracePeriodSeconds?: number;
  }): Record<string, unknown>;
  createResource(name: string, spec: Record<string, unknown>): Promise<void>;
  getResource(name: string): Promise<{
    metadata: { generation: number };
    status?: Record<string, unknown> & {
      conditions?: { type: string; status: string; reason: string; message: string }[];
    };
  }>;
  pods(resource?: string): Promise<Pod[]>;
  /** Registers an offline placeholder agent with these capabilities, so jobs queue instead of failing. */
  placeholder(capabilities: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

export async function startWorld(
  options: { pool?: string; emulator?: Partial<AzureDevOpsEmulatorOptions> } = {},
): Promise<World> {
  const cluster = await testCluster();
  await ensureCrd(cluster);
  const ns = await createNamespace(cluster.client, "e2e");
  const pool = options.pool ?? "e2e pool";
  const pat = `pat-${uniqueName("m")}`;
  const readPat = `pat-${uniqueName("r")}`;
  const ado = await startAzureDevOpsEmulator({
    pools: [pool],
    pats: [
      { token: pat, scope: "manage", name: "admin" },
      { token: readPat, scope: "read", name: "reader" },
    ],
    messagePollTimeoutMs: 1000,
    log: () => {},
    ...options.emulator,
  });
  const nodeName = uniqueName("e2e-node");
  const node = new VirtualNode({
    client: cluster.client,
    name: nodeName,
    labels: { "azp.test/node": nodeName },
    retryMs: 200,
    agentProgram: agentProgram({ retryDelayMs: 100, renewIntervalMs: 1000 }),
  });
  await node.start();
  await cluster.client.request({
    method: "POST",
    path: `/api/v1/namespaces/${ns}/secrets`,
    body: { metadata: { name: "azure-pat" }, stringData: { pat } },
  });
  const basicAuth = `Basic ${Buffer.from(`:${pat}`).toString("base64")}`;
  return {
    cluster,
    ns,
    ado,
    pool,
    pat,
    readPat,
    node,
    nodeName,
    template(extra = {}) {
      return {
        spec: {
          nodeSelector: { "azp.test/node": nodeName },
          terminationGracePeriodSeconds: extra.terminationGracePeriodSeconds ?? 30,
          ...(extra.initContainers ? { initContainers: extra.initContainers } : {}),
          containers: [
            { name: "azure-pipelines-agent", image: "example.com/azure-pipelines-agent:test", args: ["--once"] },
            ...(extra.containers ?? []),
          ],
        },
      };
    },
    async createResource(name, spec) {
      await cluster.client.request({
        method: "POST",
        path: asaPath(ns),
        body: {
          apiVersion: "azurepipelines.k8s.scaler.io/v1",
          kind: "AutoScaledAgent",
          metadata: { name },
          spec: {
            poolName: pool,
            organizationUrl: ado.organizationUrl,
            personalAccessTokenSecretName: "azure-pat",
            ...spec,
          },
        },
      });
    },
    getResource: (name) => cluster.client.request({ path: `${asaPath(ns)}/${name}` }),
    async pods(resource) {
      const list = await cluster.client.request<{ items: Pod[] }>({
        path: `/api/v1/namespaces/${ns}/pods`,
        query: resource ? { labelSelector: `azurepipelines.k8s.scaler.io/autoscaledagent=${resource}` } : {},
      });
      return list.items;
    },
    async placeholder(capabilities) {
      const poolId = ado.control.listPools()[0]?.id;
      const res = await fetch(`${ado.organizationUrl}/_apis/distributedtask/pools/${poolId}/agents?api-version=7.1`, {
        method: "POST",
        headers: { Authorization: basicAuth, "Content-Type": "application/json" },
        body: JSON.stringify({
          name: uniqueName("dummy-agent-test"),
          version: "4.258.1",
          systemCapabilities: capabilities,
        }),
      });
      if (res.status !== 200) throw new Error(`placeholder registration failed: ${res.status}`);
    },
    async close() {
      await node.stop();
      await ado.close();
      await deleteNamespace(cluster.client, ns);
      await cluster.close();
    },
  };
}

/** A world and an operator process watching its namespace, ready to reconcile. */
export async function startWorldAndOperator(
  options: Parameters<typeof startWorld>[0] = {},
  operatorOptions: Partial<OperatorOptions> = {},
): Promise<{ world: World; operator: OperatorProcess }> {
  const world = await startWorld(options);
  const operator = startOperatorProcess({
    kubeconfig: world.cluster.kubeconfig,
    namespaces: [world.ns],
    ...operatorOptions,
  });
  await operator.waitForLog(/caches synced/);
  return { world, operator };
}

export async function stopWorldAndOperator(world: World | undefined, operator: OperatorProcess | undefined) {
  await operator?.stop();
  await world?.close();
}

export { eventually, uniqueName };
