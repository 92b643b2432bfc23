/**
 * The simulated world of an end-to-end test: the shared control plane with the CRD installed, a namespace of the
 * test's own, an Azure DevOps emulator and a virtual node (both in-process, private to the test), the PAT Secret,
 * and helpers to create AutoScaledAgents whose pods land on the test's node.
 */
import {
  type AzureDevOpsEmulator,
  type AzureDevOpsEmulatorOptions,
  startAzureDevOpsEmulator,
} from "../../sim/azure-devops/index.ts";
import { agentProgram } from "../../sim/node/agent-program.ts";
import type { ImagePullOptions } from "../../sim/node/images.ts";
import { VirtualNode } from "../../sim/node/index.ts";
import type { Pod } from "../../sim/node/types.ts";
import {
  createNamespace,
  deleteNamespace,
  ensureCrd,
  eventually,
  type TestCluster,
  testCluster,
  uniqueName,
} from "./cluster.ts";
import { registerPlaceholder } from "./emulator.ts";
import { emulatorAccess, type OperatorOptions, type OperatorProcess, startOperatorProcess } from "./operator.ts";

const asaPath = (ns: string) => `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents`;

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
  options: {
    pool?: string;
    emulator?: Partial<AzureDevOpsEmulatorOptions>;
    /** Image pull times and preloaded images of the world's node (default: instant pulls). */
    nodeImages?: ImagePullOptions;
  } = {},
): Promise<World> {
  const cluster = await testCluster();
  await ensureCrd(cluster.client);
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
    ...(options.nodeImages ? { images: options.nodeImages } : {}),
    agentProgram: agentProgram({ retryDelayMs: 100, renewIntervalMs: 1000 }),
  });
  await node.start();
  await cluster.client.request({
    method: "POST",
    path: `/api/v1/namespaces/${ns}/secrets`,
    body: { metadata: { name: "azure-pat" }, stringData: { pat } },
  });
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
    placeholder: (capabilities) =>
      registerPlaceholder(ado, { pat, name: uniqueName("dummy-agent-test"), capabilities }),
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
    access: emulatorAccess(world.ado),
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
