/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC on), kube-controller-manager
 * (garbage collection, service accounts, namespaces, PV binding...) and kube-scheduler, with generated
 * certificates and an admin kubeconfig. Used by tests in-process and by `npm run sim:up` in the background.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KubeClient } from "../../src/kube/client.ts";
import { type ClusterConnection, kubeconfigYaml } from "../../src/kube/kubeconfig.ts";
import { type Binaries, ensureBinaries, type Log } from "./build.ts";
import { generatePki } from "./pki.ts";
import { freePort, isSameProcess, logTail, type ManagedProcess, startProcess, stopProcess } from "./processes.ts";

export interface ControlPlaneOptions {
  /** State folder (data, certificates, logs, kubeconfig). Default: a new temporary folder, removed on stop. */
  dir?: string;
  /** Start processes detached so they outlive this Node process (sim:up). */
  detached?: boolean;
  log?: Log;
  /** How long to wait for every component to be ready. */
  readyTimeoutMs?: number;
  extraApiServerArgs?: string[];
  /** Called as each process starts (sim:up records PIDs at once, so an interrupted start can be cleaned up). */
  onProcess?: (p: Pick<ManagedProcess, "name" | "pid" | "logFile" | "command">) => void;
}

export interface ControlPlaneInfo {
  dir: string;
  kubeconfig: string;
  server: string;
  binDir: string;
  ports: Record<string, number>;
  processes: Pick<ManagedProcess, "name" | "pid" | "logFile" | "command">[];
}

export interface ControlPlane extends ControlPlaneInfo {
  connection: ClusterConnection;
  binaries: Binaries;
  /** An admin client; closed by stop(). */
  client: KubeClient;
  /** Environment for child processes: KUBECONFIG set, the binaries first on PATH. */
  env: NodeJS.ProcessEnv;
  /**
   * Stops kube-apiserver (SIGTERM, or SIGKILL with `kill`), waits `downMs`, and starts it again with the same
   * arguments: same port, certificates and etcd (whose data is kept). Resolves when /readyz answers ok again.
   */
  restartApiServer(options?: { kill?: boolean; downMs?: number }): Promise<void>;
  /**
   * Starts again, with the same arguments, every component that has exited (as a kubelet restarts static pods:
   * kube-controller-manager and kube-scheduler exit when they cannot renew their leases, e.g. while the API server
   * is down). Returns the names of the components restarted.
   */
  restartExited(): Promise<string[]>;
  stop(options?: { keepData?: boolean }): Promise<void>;
}

export class ComponentStartError extends Error {
  readonly component: string;
  constructor(component: string, reason: string, logFile: string) {
    super(`${component} failed to start: ${reason}\n--- last lines of ${logFile} ---\n${logTail(logFile)}`);
    this.name = "ComponentStartError";
    this.component = component;
  }
}

function componentKubeconfig(path: string, server: string, ca: string, cert: string, key: string) {
  writeFileSync(
    path,
    kubeconfigYaml({
      server,
      ca: readFileSync(ca, "utf8"),
      cert: readFileSync(cert, "utf8"),
      key: readFileSync(key, "utf8"),
    }),
    { mode: 0o600 },
  );
}

/** Waits for `check` to return true, failing early when one of `procs` exits. */
async function waitFor(
  what: string,
  owner: ManagedProcess,
  procs: ManagedProcess[],
  deadline: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const exits = procs.map((p) => (p.exited ?? new Promise(() => {})).then((r) => ({ p, r }) as const));
  let lastError = "";
  for (;;) {
    const exited = await Promise.race([...exits, sleep(0).then(() => undefined)]);
    if (exited) {
      const how = exited.r.signal ? `signal ${exited.r.signal}` : `exit code ${exited.r.code}`;
      throw new ComponentStartError(
        exited.p.name,
        `process exited (${how}) while waiting for ${what}`,
        exited.p.logFile,
      );
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new ComponentStartError(
        owner.name,
        `timed out waiting for ${what}${lastError ? ` (${lastError})` : ""}`,
        owner.logFile,
      );
    }
    await sleep(250);
  }
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = options.log ?? (() => {});
  const binaries = await ensureBinaries({ log });
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "azp-sim-cp-"));
  mkdirSync(dir, { recursive: true });
  const logs = join(dir, "logs");
  const pki = await generatePki(join(dir, "pki"));
  const ports = {
    etcdClient: await freePort(),
    etcdPeer: await freePort(),
    apiserver: await freePort(),
  };
  const server = `https://127.0.0.1:${ports.apiserver}`;
  const detached = options.detached ?? false;
  const procs: ManagedProcess[] = [];
  /** How each component was started, so that it can be started again the same way. */
  const launches = new Map<string, { bin: string; args: string[]; logFile: string }>();
  /** Every process ever started (a component started again leaves its old entry here): stop() stops them all. */
  const everStarted: ManagedProcess[] = [];
  const launch = (name: string, bin: string, args: string[], logFile: string): ManagedProcess => {
    const p = startProcess(name, bin, args, logFile, { detached });
    everStarted.push(p);
    launches.set(name, { bin, args, logFile });
    const i = procs.findIndex((q) => q.name === name);
    if (i >= 0) procs[i] = p;
    else procs.push(p);
    options.onProcess?.(p);
    return p;
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 180_000);
  const stopAll = async () => {
    for (const p of [...everStarted].reverse()) await stopProcess(p);
  };

  try {
    const etcd = launch(
      "etcd",
      binaries.etcd,
      [
        "--name=sim",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=http://127.0.0.1:${ports.etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${ports.etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
        `--initial-cluster=sim=http://127.0.0.1:${ports.etcdPeer}`,
        "--unsafe-no-fsync",
        "--log-level=warn",
      ],
      join(logs, "etcd.log"),
    );
    await waitFor("etcd /health", etcd, procs, deadline, async () => {
      const res = await fetch(`http://127.0.0.1:${ports.etcdClient}/health`);
      return res.ok;
    });

    let apiserver = launch(
      "kube-apiserver",
      binaries["kube-apiserver"],
      [
        `--etcd-servers=http://127.0.0.1:${ports.etcdClient}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${ports.apiserver}`,
        `--tls-cert-file=${pki.serverCert}`,
        `--tls-private-key-file=${pki.serverKey}`,
        `--client-ca-file=${pki.caCert}`,
        `--service-account-key-file=${pki.saPub}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.96.0.0/24",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        // Virtual nodes serve their kubelet API (container logs) on 127.0.0.1.
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
        `--cert-dir=${join(dir, "apiserver-certs")}`,
        ...(options.extraApiServerArgs ?? []),
      ],
      join(logs, "kube-apiserver.log"),
    );
    const connection: ClusterConnection = {
      server,
      ca: readFileSync(pki.caCert, "utf8"),
      cert: readFileSync(pki.clients.admin.cert, "utf8"),
      key: readFileSync(pki.clients.admin.key, "utf8"),
    };
    const client = new KubeClient(connection, { timeoutMs: 10_000 });
    await waitFor("kube-apiserver /readyz", apiserver, procs, deadline, async () => {
      return (await client.requestText({ path: "/readyz" })).trim() === "ok";
    });

    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(kubeconfig, kubeconfigYaml(connection, "sim"), { mode: 0o600 });
    const kcmConfig = join(dir, "kube-controller-manager.kubeconfig");
    componentKubeconfig(
      kcmConfig,
      server,
      pki.caCert,
      pki.clients.controllerManager.cert,
      pki.clients.controllerManager.key,
    );
    const schedConfig = join(dir, "kube-scheduler.kubeconfig");
    componentKubeconfig(schedConfig, server, pki.caCert, pki.clients.scheduler.cert, pki.clients.scheduler.key);

    const kcm = launch(
      "kube-controller-manager",
      binaries["kube-controller-manager"],
      [
        `--kubeconfig=${kcmConfig}`,
        "--secure-port=0",
        "--leader-elect=true",
        "--leader-elect-resource-namespace=kube-system",
        `--service-account-private-key-file=${pki.saKey}`,
        `--root-ca-file=${pki.caCert}`,
        `--cluster-signing-cert-file=${pki.caCert}`,
        `--cluster-signing-key-file=${pki.caKey}`,
        "--use-service-account-credentials=true",
        "--concurrent-gc-syncs=5",
      ],
      join(logs, "kube-controller-manager.log"),
    );
    const scheduler = launch(
      "kube-scheduler",
      binaries["kube-scheduler"],
      [`--kubeconfig=${schedConfig}`, "--secure-port=0", "--leader-elect=true", "-v=2"],
      join(logs, "kube-scheduler.log"),
    );

    const leaseHeld = (name: string) => async () => {
      const lease = await client.request<{ spec?: { holderIdentity?: string } }>({
        path: `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${name}`,
      });
      return Boolean(lease.spec?.holderIdentity);
    };
    await waitFor("its leader lease", kcm, procs, deadline, leaseHeld("kube-controller-manager"));
    await waitFor("its leader lease", scheduler, procs, deadline, leaseHeld("kube-scheduler"));
    await waitFor("the default service account", kcm, procs, deadline, async () => {
      await client.request({ path: "/api/v1/namespaces/default/serviceaccounts/default" });
      return true;
    });

    const info: ControlPlaneInfo = {
      dir,
      kubeconfig,
      server,
      binDir: binaries.dir,
      ports,
      processes: procs.map(({ name, pid, logFile, command }) => ({ name, pid, logFile, command })),
    };
    let stopped = false;
    const relaunch = (name: string): ManagedProcess => {
      const spec = launches.get(name);
      if (!spec) throw new Error(`unknown component ${name}`);
      return launch(name, spec.bin, spec.args, spec.logFile);
    };
    /** Components being restarted on purpose: restartExited() leaves them alone. */
    const restarting = new Set<string>();
    const onExit = () => {
      if (detached) return;
      for (const p of everStarted) {
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    };
    const restartApiServerNow = async (restartOptions: { kill?: boolean; downMs?: number }): Promise<void> => {
      if (restartOptions.kill) {
        try {
          process.kill(apiserver.pid, "SIGKILL");
        } catch {
          // gone already
        }
        await apiserver.exited;
      } else {
        await stopProcess(apiserver);
      }
      if (restartOptions.downMs) await sleep(restartOptions.downMs);
      apiserver = relaunch("kube-apiserver");
      await waitFor(
        "kube-apiserver /readyz after a restart",
        apiserver,
        [apiserver],
        Date.now() + 180_000,
        async () => {
          return (await client.requestText({ path: "/readyz" })).trim() === "ok";
        },
      );
    };
    process.once("exit", onExit);
    return {
      ...info,
      connection,
      binaries,
      client,
      env: { ...process.env, KUBECONFIG: kubeconfig, PATH: `${binaries.dir}:${process.env.PATH ?? ""}` },
      async restartApiServer(restartOptions = {}) {
        if (stopped) throw new Error("the control plane is stopped");
        if (restarting.has("kube-apiserver")) throw new Error("kube-apiserver is being restarted already");
        restarting.add("kube-apiserver");
        try {
          await restartApiServerNow(restartOptions);
        } finally {
          restarting.delete("kube-apiserver");
        }
      },
      async restartExited() {
        if (stopped) return [];
        const restarted: string[] = [];
        for (const p of [...procs]) {
          if (restarting.has(p.name)) continue;
          if (p.child && p.child.exitCode === null && p.child.signalCode === null) continue;
          if (!p.child && isSameProcess(p.pid, p.command)) continue;
          const again = relaunch(p.name);
          if (p.name === "kube-apiserver") apiserver = again;
          restarted.push(p.name);
        }
        return restarted;
      },
      async stop(stopOptions = {}) {
        if (stopped) return;
        stopped = true;
        process.off("exit", onExit);
        client.close();
        await stopAll();
        if (ownsDir && !stopOptions.keepData) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopAll();
    if (ownsDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
