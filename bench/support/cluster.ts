/**
 * The control plane of a benchmark run: one given by `AZP_BENCH_KUBECONFIG` (e.g. `.sim/kubeconfig` after
 * `npm run sim:up`), or one started for the run (`startControlPlane()`) and stopped afterwards. The runner starts
 * one and hands it to every benchmark; a benchmark run on its own starts its own.
 * Also: namespaces, the CRD, and waiting helpers. Everything a benchmark creates is removed again.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parse } from "yaml";
import { startControlPlane } from "../../sim/control-plane/index.ts";
import { versions } from "../../sim/control-plane/versions.ts";
import { isNotFound, KubeClient } from "../../src/kube/client.ts";
import { loadKubeconfigFile } from "../../src/kube/kubeconfig.ts";

export interface BenchCluster {
  client: KubeClient;
  kubeconfig: string;
  /** The Kubernetes version of the control plane (for the result files). */
  kubernetes: string;
  /** True when this run started the control plane (then `close()` stops it). */
  owned: boolean;
  close(): Promise<void>;
}

export type Log = (line: string) => void;

export const stderrLog: Log = (line) => process.stderr.write(`${line}\n`);

export async function benchCluster(log: Log = stderrLog): Promise<BenchCluster> {
  const given = process.env.AZP_BENCH_KUBECONFIG;
  if (given) {
    const client = new KubeClient(loadKubeconfigFile(given));
    const version = await client
      .request<{ gitVersion?: string }>({ path: "/version" })
      .then((v) => v.gitVersion ?? "unknown")
      .catch(() => "unknown");
    log(`using the control plane of AZP_BENCH_KUBECONFIG (${version})`);
    return { client, kubeconfig: given, kubernetes: version, owned: false, close: async () => client.close() };
  }
  log("starting a control plane for the benchmarks (set AZP_BENCH_KUBECONFIG to use a running one)");
  const cp = await startControlPlane({ log });
  log(`control plane ready at ${cp.server}`);
  return {
    client: cp.client,
    kubeconfig: cp.kubeconfig,
    kubernetes: `v${versions.kubernetes}`,
    owned: true,
    close: () => cp.stop(),
  };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

/** Polls `fn` every `everyMs` until it returns something other than undefined; throws after `timeoutMs`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 120_000,
  everyMs = 100,
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

/** Creates a namespace and waits for its default ServiceAccount (pods need it). */
export async function createNamespace(client: KubeClient, prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  await client.request({
    method: "POST",
    path: "/api/v1/namespaces",
    body: { metadata: { name, labels: { "azp.bench/owner": "bench" } } },
  });
  await until(`the default service account of ${name}`, async () => {
    await client.request({ path: `/api/v1/namespaces/${name}/serviceaccounts/default` });
    return true;
  });
  return name;
}

/** Deletes a namespace and, when `wait`, waits until it is gone (its pods need a node to finish them). */
export async function deleteNamespace(client: KubeClient, name: string, wait = false): Promise<void> {
  await client.request({ method: "DELETE", path: `/api/v1/namespaces/${name}` }).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
  if (!wait) return;
  await until(
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

const crdFile = join(
  import.meta.dirname,
  "..",
  "..",
  "config",
  "crd",
  "azurepipelines.k8s.scaler.io_autoscaledagents.yaml",
);

/** Installs (server-side apply) the AutoScaledAgent CRD and waits until it is established. */
export async function ensureCrd(client: KubeClient): Promise<void> {
  const crd = parse(readFileSync(crdFile, "utf8")) as { metadata: { name: string } };
  const path = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`;
  await client.request({
    method: "PATCH",
    path,
    contentType: "application/apply-patch+yaml",
    query: { fieldManager: "azp-bench", force: "true" },
    body: crd,
  });
  await until("CRD established", async () => {
    const got = await client.request<{ status?: { conditions?: { type: string; status: string }[] } }>({ path });
    return got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") || undefined;
  });
}

/** Deletes a virtual node's Lease in kube-node-lease (the virtual node leaves it behind when its Node goes). */
export async function deleteNodeLease(client: KubeClient, nodeName: string): Promise<void> {
  await client
    .request({ method: "DELETE", path: `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}` })
    .catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
}
