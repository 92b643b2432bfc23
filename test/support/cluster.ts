/**
 * The control plane for a test file: the one shared by the whole run (started by scripts/test.ts, passed in
 * AZP_TEST_KUBECONFIG), or, when a test file is run on its own, one it starts and stops itself.
 * Tests stay parallel-safe by working in their own namespace and labelling cluster-scoped objects.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
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

/** Polls `fn` until it returns a value other than undefined; fails with `what` after `timeoutMs`. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
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
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    }
    await sleep(200);
  }
}

/** Creates a namespace and waits until its default ServiceAccount exists (pods need it). */
export async function createNamespace(client: KubeClient, prefix = "t"): Promise<string> {
  const name = uniqueName(prefix);
  await client.request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name } } });
  await eventually(`default service account in ${name}`, async () => {
    await client.request({ path: `/api/v1/namespaces/${name}/serviceaccounts/default` });
    return true;
  });
  return name;
}

export async function deleteNamespace(client: KubeClient, name: string): Promise<void> {
  await client.request({ method: "DELETE", path: `/api/v1/namespaces/${name}` }).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
}
