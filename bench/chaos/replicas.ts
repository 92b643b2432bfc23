/**
 * The operator's replicas in the chaos run, each its own process with a client certificate of its own (so the
 * audit log names the replica behind every write) and a kubeconfig pointing at the stalling proxy. Plays the
 * Deployment and the kubelet: keeps `want` replicas, starting a new one (a new identity, as a new pod would have)
 * shortly after one exits, unless the harness stopped it on purpose for a rolling update. Also watches the leader
 * Lease, so the harness knows whom to kill.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { clientCertificate } from "../../sim/control-plane/pki.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { kubeconfigYaml } from "../../src/kube/kubeconfig.ts";
import { listWatchFor } from "../../src/kube/listwatch.ts";
import type { KubeObject } from "../../src/kube/types.ts";
import { type OperatorProcess, startOperatorProcess } from "../../test/support/operator.ts";

export const replicaPrefix = "chaos-op-";

export interface ReplicaExit {
  at: number;
  code: number | null;
  signal: string | null;
  /** What the harness did to it, if anything. */
  cause: "harness-kill" | "harness-stop" | "shutdown" | "lease-lost" | "crashed";
  /** The last lines of its log, for unexpected exits. */
  logTail?: string[];
}

export interface Replica {
  n: number;
  identity: string;
  startedAt: number;
  process: OperatorProcess;
  logFile: string;
  /** Set by the harness before it signals the replica. */
  stopping?: "harness-kill" | "harness-stop" | "shutdown";
  exit?: ReplicaExit;
}

export interface ReplicaSetOptions {
  /** The control plane's PKI folder (its CA signs the replicas' certificates). */
  pkiDir: string;
  caPem: string;
  /** https://127.0.0.1:PORT of the proxy in front of the API server. */
  server: string;
  namespaces: string[];
  leaseNamespace: string;
  leaseName: string;
  workDir: string;
  /** Operator flags besides kubeconfig, namespaces, identity and port. */
  args: string[];
  log: (line: string) => void;
  /** Delay before a replacement starts (a kubelet's restart back-off, shortened). */
  restartDelayMs: number;
}

interface LeaseLike extends KubeObject {
  spec?: { holderIdentity?: string | null; renewTime?: string };
}

export class ReplicaSet {
  readonly replicas: Replica[] = [];
  /** Holder changes of the leader Lease as seen by a watch: when, and the replica identity ("" when none). */
  readonly leaderChanges: { at: number; identity: string }[] = [];
  readonly #o: ReplicaSetOptions;
  readonly #lease: Informer<LeaseLike>;
  #want = 0;
  #next = 1;
  #closing = false;
  readonly #pendingStarts = new Set<Promise<unknown>>();

  constructor(client: KubeClient, options: ReplicaSetOptions) {
    this.#o = options;
    this.#lease = new Informer<LeaseLike>({
      name: "chaos-leader-lease",
      listWatch: listWatchFor<LeaseLike>(client, {
        resource: { apiVersion: "coordination.k8s.io/v1", resource: "leases" },
        namespace: options.leaseNamespace,
        fieldSelector: `metadata.name=${options.leaseName}`,
      }),
    });
    const see = (l: LeaseLike) => {
      const identity = identityOfHolder(l.spec?.holderIdentity ?? "");
      if (this.leaderChanges.at(-1)?.identity !== identity) this.leaderChanges.push({ at: Date.now(), identity });
    };
    this.#lease.addHandler({ onAdd: see, onUpdate: (_o, l) => see(l), onDelete: () => {} });
  }

  async start(want: number): Promise<void> {
    this.#lease.start();
    await this.#lease.waitForSync();
    this.#want = want;
    for (let i = 0; i < want; i++) await this.startOne();
  }

  /** The replicas running now. */
  running(): Replica[] {
    return this.replicas.filter((r) => !r.exit);
  }

  /** The replica holding the Lease now, if it runs. */
  leader(): Replica | undefined {
    const lease = this.#lease.store.list()[0];
    const identity = identityOfHolder(lease?.spec?.holderIdentity ?? "");
    return this.running().find((r) => r.identity === identity);
  }

  async waitForLeader(timeoutMs: number): Promise<Replica | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = this.leader();
      if (l || Date.now() > deadline) return l;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Starts one more replica (a new identity) and waits until its caches are synced. */
  async startOne(): Promise<Replica> {
    const n = this.#next++;
    const identity = `${replicaPrefix}${n}`;
    const cert = await clientCertificate(this.#o.pkiDir, `chaos-replica-${n}`, `/O=system:masters/CN=${identity}`);
    const kubeconfig = join(this.#o.workDir, `replica-${n}.kubeconfig`);
    writeFileSync(
      kubeconfig,
      kubeconfigYaml(
        {
          server: this.#o.server,
          ca: this.#o.caPem,
          cert: readFileSync(cert.cert, "utf8"),
          key: readFileSync(cert.key, "utf8"),
        },
        "chaos",
      ),
      { mode: 0o600 },
    );
    const logFile = join(this.#o.workDir, `replica-${n}.log`);
    const proc = startOperatorProcess({
      kubeconfig,
      namespaces: this.#o.namespaces,
      identity,
      logFile,
      settings: [],
      args: this.#o.args,
    });
    const replica: Replica = { n, identity, startedAt: Date.now(), process: proc, logFile };
    this.replicas.push(replica);
    this.#o.log(`replica ${identity} started (pid ${proc.child.pid})`);
    proc.child.once("exit", (code, signal) => this.#onExit(replica, code, signal));
    await proc.waitForLog(/caches synced/, 120_000).catch((err: unknown) => {
      this.#o.log(`replica ${identity} did not sync its caches: ${(err as Error).message.split("\n")[0]}`);
    });
    return replica;
  }

  /** SIGKILL; a replacement starts after the restart delay. */
  async kill(r: Replica): Promise<void> {
    r.stopping = "harness-kill";
    await r.process.kill();
  }

  /** SIGTERM (graceful, releases the lease); no replacement (a rolling update starts its own first). */
  async stop(r: Replica): Promise<void> {
    r.stopping = "harness-stop";
    await r.process.stop(20_000);
  }

  /** A rolling update: a new replica first, then the old leader stopped gracefully. */
  async rollingUpdate(): Promise<{ started: Replica; stopped: Replica | undefined }> {
    const started = await this.startOne();
    const old = await this.waitForLeader(30_000);
    if (old && old !== started) await this.stop(old);
    return { started, stopped: old };
  }

  #onExit(r: Replica, code: number | null, signal: NodeJS.Signals | null): void {
    const tail = r.process
      .log()
      .split("\n")
      .filter((l) => l.trim())
      .slice(-15);
    // The operator exits (code 1) by design when it loses the lease, so that it restarts clean.
    const cause = r.stopping ?? (tail.some((l) => l.includes("leader lease lost")) ? "lease-lost" : "crashed");
    r.exit = { at: Date.now(), code, signal, cause };
    if (!r.stopping) r.exit.logTail = tail;
    this.#o.log(`replica ${r.identity} exited (${cause}, code ${code}, signal ${signal})`);
    if (this.#closing || cause === "harness-stop" || cause === "shutdown") return;
    // Keep `want` replicas, as a Deployment would.
    const p = new Promise((resolve) => setTimeout(resolve, this.#o.restartDelayMs)).then(async () => {
      if (this.#closing || this.running().length >= this.#want) return;
      await this.startOne();
    });
    this.#pendingStarts.add(p);
    void p.finally(() => this.#pendingStarts.delete(p));
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.allSettled([...this.#pendingStarts]);
    await Promise.all(
      this.running().map(async (r) => {
        r.stopping = "shutdown";
        await r.process.stop(20_000);
      }),
    );
    await this.#lease.stop();
  }
}

/** The replica identity in a Lease holder (`<identity>_<random suffix>`); "" for none. */
export function identityOfHolder(holder: string): string {
  const i = holder.lastIndexOf("_");
  return i > 0 ? holder.slice(0, i) : holder;
}
