/**
 * The control plane of a benchmark run: one given by `AZP_BENCH_KUBECONFIG` (e.g. `.sim/kubeconfig` after
 * `npm run sim:up`), or one started for the run (`startControlPlane()`) and stopped afterwards. The runner starts
 * one and hands it to every benchmark; a benchmark run on its own starts its own. Namespaces, the CRD and waiting
 * helpers are the tests' (`test/support/cluster.ts`). Everything a benchmark creates is removed again.
 */
import { startControlPlane } from "../../sim/control-plane/index.ts";
import { versions } from "../../sim/control-plane/versions.ts";
import { KubeClient } from "../../src/kube/client.ts";
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

/** Labels of the namespaces a benchmark creates (to find leftovers of an interrupted run). */
export const benchLabels = { "azp.bench/owner": "bench" };

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
