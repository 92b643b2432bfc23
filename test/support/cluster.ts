/**
 * The control plane for a test file: the one shared by the whole run (started by scripts/test.ts, passed in
 * AZP_TEST_KUBECONFIG), or, when a test file is run on its own, one it starts and stops itself.
 * Tests stay parallel-safe by working in their own namespace and labelling cluster-scoped objects.
 *
 * Also what tests and benchmarks both use on a cluster: unique names, polling until something holds, namespaces,
 * the AutoScaledAgent CRD, and a virtual node's leftover Lease.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parse } from "yaml";
import { startControlPlane } from "../../sim/control-plane/index.ts";
import { isNotFound, KubeClient } from "../../src/kube/client.ts";
import { type ClusterConnection, loadKubeconfigFile } from "../../src/kube/kubeconfig.ts";

export interface TestCluster {
  client: KubeClient;
  connection: ClusterConnection;
  kubeconfig: string;
  binDir: string;
  close(): Promise<void>;
}

export async function testCluster(): Promise<TestCluster> {
  const shared = process.env.AZP_TEST_KUBECONFIG;
  if (shared) {
    const connection = loadKubeconfigFile(shared);
    const client = new KubeClient(connection);
    return {
      client,
      connection,
      kubeconfig: shared,
      binDir: process.env.AZP_TEST_BIN_DIR ?? "",
      close: async () => client.close(),
    };
  }
  const cp = await startControlPlane({ log: (l) => process.stderr.write(`${l}\n`) });
  return {
    client: cp.client,
    connection: cp.connection,
    kubeconfig: cp.kubeconfig,
    binDir: cp.binDir,
    close: () => cp.stop(),
  };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/**
 * Polls `fn` every `everyMs` until it returns a value other than undefined (a throw counts as "not yet"); fails
 * after `timeoutMs`, with `what` and the last error.
 */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`,
      );
    }
    await sleep(everyMs);
  }
}

/** Creates a namespace (`prefix-<random>`) and waits until its default ServiceAccount exists (pods need it). */
export async function createNamespace(
  client: KubeClient,
  prefix = "t",
  options: { labels?: Record<string, string> } = {},
): Promise<string> {
  const name = uniqueName(prefix);
  await client.request({
    method: "POST",
    path: "/api/v1/namespaces",
    body: { metadata: { name, ...(options.labels ? { labels: options.labels } : {}) } },
  });
  await eventually(`default service account in ${name}`, async () => {
    await client.request({ path: `/api/v1/namespaces/${name}/serviceaccounts/default` });
    return true;
  });
  return name;
}

/** Deletes a namespace and, with `wait`, waits until it is gone (its pods need a node to finish them). */
export async function deleteNamespace(client: KubeClient, name: string, options: { wait?: boolean } = {}) {
  await client.request({ method: "DELETE", path: `/api/v1/namespaces/${name}` }).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
  if (!options.wait) return;
  await eventually(
    `namespace ${name} gone`,
    async () => {
      try {
        await client.request({ path: `/api/v1/namespaces/${name}` });
        return undefined;
      } catch (err) {
        if (isNotFound(err)) return true;
        throw err;
      }
    },
    120_000,
    250,
  );
}

export const crdFile = join(
  import.meta.dirname,
  "..",
  "..",
  "config",
  "crd",
  "azurepipelines.k8s.scaler.io_autoscaledagents.yaml",
);

/** Waits until the CustomResourceDefinition `name` is established. */
export async function crdEstablished(client: KubeClient, name: string): Promise<void> {
  await eventually(`CRD ${name} established`, async () => {
    const got = await client.request<{ status?: { conditions?: { type: string; status: string }[] } }>({
      path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
    });
    return got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") || undefined;
  });
}

/**
 * Installs the AutoScaledAgent CRD of `config/crd` (server-side apply, as `fieldManager`) and waits until it is
 * established. Every test file and benchmark applies the same object; none deletes it.
 */
export async function ensureCrd(client: KubeClient, fieldManager = "azp-tests"): Promise<void> {
  const crd = parse(readFileSync(crdFile, "utf8")) as { metadata: { name: string } };
  await client.request({
    method: "PATCH",
    path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
    contentType: "application/apply-patch+yaml",
    query: { fieldManager, force: "true" },
    body: crd,
  });
  await crdEstablished(client, crd.metadata.name);
}

/** Deletes a virtual node's Lease in kube-node-lease (the virtual node leaves it behind when its Node goes). */
export async function deleteNodeLease(client: KubeClient, nodeName: string): Promise<void> {
  await client
    .request({ method: "DELETE", path: `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}` })
    .catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
}
