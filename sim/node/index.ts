/**
 * The virtual node: registers Node objects, keeps them Ready (status heartbeats and Leases in kube-node-lease),
 * and plays the kubelet for the pods the real scheduler binds to it (see runtime.ts), with container programs
 * chosen by image (see programs.ts). It also runs a tiny volume provisioner so pods with PVCs really start.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { isAlreadyExists, isNotFound, type KubeClient } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { listWatchFor } from "../../src/kube/listwatch.ts";
import { errorMessage, type Logger, silentLogger } from "../../src/runtime/logger.ts";
import { type ImagePullOptions, ImageStore, type PullRecord } from "./images.ts";
import { startKubeletServer } from "./kubelet-server.ts";
import {
  chooseProgram,
  defaultIsAgentContainer,
  defaultIsPullable,
  defaultProgramRules,
  exitAfter,
  isNoOpCommand,
  type Program,
  type ProgramContext,
  type ProgramRule,
  sleeper,
} from "./programs.ts";
import { ensureStorageClasses, Provisioner } from "./provisioner.ts";
import { PodRuntime } from "./runtime.ts";
import type { Pod } from "./types.ts";

export interface VirtualNodeOptions {
  client: KubeClient;
  name: string;
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute" }[];
  allocatable?: { cpu?: string; memory?: string; pods?: string };
  /** Rules choosing a container's program by image; the default rules are appended. */
  programRules?: ProgramRule[];
  isPullable?: (image: string) => boolean;
  /** Image pull times, preloaded images (see images.ts); default: every pull is instant. */
  images?: ImagePullOptions;
  isAgentContainer?: (image: string, env: Record<string, string>) => boolean;
  /** The program of agent containers (see agent-program.ts); without one, agents only sleep. */
  agentProgram?: Program;
  /** StorageClasses to create and serve with the provisioner; [] disables the provisioner. */
  storageClasses?: string[];
  /** Where container logs are written (`<ns>_<pod>/<container>.log`); default: kept in memory only. */
  logDir?: string;
  heartbeatMs?: number;
  retryMs?: number;
  /** Pod IPs are 10.<200+podSubnet>.x.y, so several nodes hand out distinct IPs. */
  podSubnet?: number;
  logger?: Logger;
  now?: () => Date;
}

const iso = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;
const micro = (d: Date) => d.toISOString().replace("Z", "000Z");

export class VirtualNode {
  readonly name: string;
  readonly #o: VirtualNodeOptions;
  readonly #client: KubeClient;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #runtimes = new Map<string, PodRuntime>();
  readonly #logs = new Map<string, string[]>();
  readonly #usedIPs = new Set<string>();
  readonly #images: ImageStore;
  #imagesPatch: Promise<void> | undefined;
  #imagesDirty = false;
  #stopping = false;
  #informer: Informer<Pod> | undefined;
  #provisioner: Provisioner | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #kubelet: { port: number; close(): Promise<void> } | undefined;
  #nextIP = 1;

  constructor(options: VirtualNodeOptions) {
    this.#o = options;
    this.name = options.name;
    this.#client = options.client;
    this.#logger = options.logger ?? silentLogger();
    this.#now = options.now ?? (() => new Date());
    this.#images = new ImageStore(options.images, () => this.#imagesChanged());
  }

  async start(): Promise<void> {
    this.#kubelet = await startKubeletServer({
      lines: (ns, pod, container) => {
        const rt = this.#runtimes.get(`${ns}/${pod}`);
        const known = rt?.records().some((r) => r.name === container);
        return known ? this.logs(ns, pod, container) : undefined;
      },
      running: (ns, pod, container) =>
        Boolean(
          this.#runtimes
            .get(`${ns}/${pod}`)
            ?.records()
            .find((r) => r.name === container)?.state.running,
        ),
    });
    await this.#registerNode();
    await this.#beat();
    this.#heartbeat = setInterval(() => {
      this.#beat().catch((err: unknown) =>
        this.#logger.warn("node heartbeat failed", { node: this.name, error: errorMessage(err) }),
      );
    }, this.#o.heartbeatMs ?? 10_000);
    const storageClasses = this.#o.storageClasses ?? ["hostpath", "sim-standard"];
    if (storageClasses.length > 0) {
      await ensureStorageClasses(this.#client, storageClasses);
      this.#provisioner = new Provisioner(this.#client, this.#logger);
      await this.#provisioner.start();
    }
    this.#informer = new Informer<Pod>({
      name: `pods-on-${this.name}`,
      listWatch: listWatchFor(this.#client, {
        resource: { apiVersion: "v1", resource: "pods" },
        fieldSelector: `spec.nodeName=${this.name}`,
      }),
      logger: this.#logger,
    });
    this.#informer.addHandler({
      onAdd: (pod) => this.#observe(pod),
      onUpdate: (_old, pod) => this.#observe(pod),
      onDelete: (pod) => this.#forget(pod),
    });
    this.#informer.start();
    await this.#informer.waitForSync();
  }

  /** Stops the node's loops and every container (without touching pods); deletes the Node unless told not to. */
  async stop(options: { deleteNode?: boolean } = {}): Promise<void> {
    this.#stopping = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    await this.#imagesPatch;
    await this.#informer?.stop();
    await this.#provisioner?.stop();
    for (const rt of this.#runtimes.values()) rt.remove();
    this.#runtimes.clear();
    await this.#kubelet?.close();
    if (options.deleteNode ?? true) {
      await this.#client.request({ method: "DELETE", path: `/api/v1/nodes/${this.name}` }).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
  }

  /** The log lines of a container (all of its runs). */
  logs(namespace: string, pod: string, container: string): string[] {
    return [...(this.#logs.get(`${namespace}/${pod}/${container}`) ?? [])];
  }

  /** The images present on this node (normalized references, e.g. `docker.io/library/ubuntu:24.04`). */
  images(): string[] {
    return this.#images.images();
  }

  /** Every image decision of this node, oldest first: pulled, checked with the registry, present, refused. */
  pulls(): PullRecord[] {
    return this.#images.records();
  }

  /** The pods this node currently runs (namespace/name). */
  pods(): string[] {
    return [...this.#runtimes.keys()];
  }

  #observe(pod: Pod): void {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const existing = this.#runtimes.get(key);
    if (existing && existing.pod.metadata.uid === pod.metadata.uid) {
      existing.update(pod);
      return;
    }
    existing?.remove();
    const rt = new PodRuntime(pod, {
      client: this.#client,
      hostIP: "127.0.0.1",
      allocateIP: () => this.#allocateIP(),
      releaseIP: (ip) => this.#usedIPs.delete(ip),
      isPullable: this.#o.isPullable ?? defaultIsPullable,
      images: this.#images,
      programFor: (ctx) => this.#programFor(ctx),
      platform: this.#platform(),
      logLine: (p, container, line) => this.#logLine(p, container, line),
      logger: this.#logger,
      retryMs: this.#o.retryMs ?? 1000,
      now: this.#now,
    });
    this.#runtimes.set(key, rt);
    rt.start();
  }

  #forget(pod: Pod): void {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const rt = this.#runtimes.get(key);
    if (rt && rt.pod.metadata.uid === pod.metadata.uid) {
      rt.remove();
      this.#runtimes.delete(key);
    }
  }

  #programFor(ctx: ProgramContext): Program {
    // The command replaces the image's entrypoint: a known no-op ends at once, even in an agent image.
    if (isNoOpCommand(ctx.command, ctx.args)) return exitAfter(0, 0);
    const isAgent = this.#o.isAgentContainer ?? defaultIsAgentContainer;
    if (isAgent(ctx.image, ctx.env)) {
      if (this.#o.agentProgram) return this.#o.agentProgram;
      ctx.log("no agent program configured on this virtual node: sleeping instead");
      return sleeper;
    }
    return chooseProgram([...(this.#o.programRules ?? []), ...defaultProgramRules], ctx);
  }

  /** Pod IPs 10.<200+podSubnet>.x.y: 64k per node, distinct across nodes with distinct subnets. */
  #allocateIP(): string {
    const second = 200 + (this.#o.podSubnet ?? 0);
    for (let tries = 0; tries < 65_000; tries++) {
      const n = this.#nextIP;
      this.#nextIP = (n + 1) % 65_000;
      const ip = `10.${second}.${Math.floor(n / 254)}.${(n % 254) + 1}`;
      if (!this.#usedIPs.has(ip)) {
        this.#usedIPs.add(ip);
        return ip;
      }
    }
    throw new Error("no pod IP left");
  }

  /** A new image is present: report the node's images now rather than at the next heartbeat. */
  #imagesChanged(): void {
    if (this.#stopping || !this.#heartbeat) return;
    this.#imagesDirty = true;
    this.#imagesPatch ??= (async () => {
      while (this.#imagesDirty && !this.#stopping) {
        this.#imagesDirty = false;
        await this.#client
          .request({
            method: "PATCH",
            path: `/api/v1/nodes/${this.name}/status`,
            contentType: "application/strategic-merge-patch+json",
            body: { status: { images: this.#images.statusImages() } },
          })
          .catch((err: unknown) =>
            this.#logger.warn("node images update failed", { node: this.name, error: errorMessage(err) }),
          );
      }
    })().finally(() => {
      this.#imagesPatch = undefined;
    });
  }

  #logLine(pod: Pod, container: string, line: string): void {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}/${container}`;
    const stamped = `${this.#now().toISOString()} ${line}`;
    let lines = this.#logs.get(key);
    if (!lines) {
      lines = [];
      this.#logs.set(key, lines);
    }
    lines.push(stamped);
    if (lines.length > 5000) lines.splice(0, lines.length - 5000);
    if (this.#o.logDir) {
      const dir = join(this.#o.logDir, `${pod.metadata.namespace}_${pod.metadata.name}`);
      mkdirSync(dir, { recursive: true });
      appendFileSync(join(dir, `${container}.log`), `${stamped}\n`);
    }
  }

  #labels(): Record<string, string> {
    return {
      "kubernetes.io/hostname": this.name,
      "kubernetes.io/os": "linux",
      "kubernetes.io/arch": "amd64",
      "node.kubernetes.io/instance-type": "azp-virtual",
      ...this.#o.labels,
    };
  }

  /** The OS and architecture the node claims in its labels: what its containers see as their platform. */
  #platform(): { os: string; arch: string } {
    const labels = this.#labels();
    return { os: labels["kubernetes.io/os"] ?? "linux", arch: labels["kubernetes.io/arch"] ?? "amd64" };
  }

  async #registerNode(): Promise<void> {
    const labels = this.#labels();
    const body = {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: this.name, labels },
      spec: { taints: this.#o.taints ?? [] },
    };
    try {
      await this.#client.request({ method: "POST", path: "/api/v1/nodes", body });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      await this.#client.request({
        method: "PATCH",
        path: `/api/v1/nodes/${this.name}`,
        contentType: "application/merge-patch+json",
        body: { metadata: { labels }, spec: { taints: this.#o.taints ?? null, unschedulable: null } },
      });
    }
  }

  async #beat(): Promise<void> {
    const now = this.#now();
    const resources = {
      cpu: this.#o.allocatable?.cpu ?? "64",
      memory: this.#o.allocatable?.memory ?? "256Gi",
      pods: this.#o.allocatable?.pods ?? "1000",
      "ephemeral-storage": "500Gi",
    };
    const cond = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: iso(now),
    });
    await this.#client.request({
      method: "PATCH",
      path: `/api/v1/nodes/${this.name}/status`,
      contentType: "application/strategic-merge-patch+json",
      body: {
        status: {
          capacity: resources,
          allocatable: resources,
          conditions: [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "virtual node"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "virtual node"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "virtual node"),
            cond("Ready", "True", "KubeletReady", "virtual node is posting ready status"),
          ],
          addresses: [
            { type: "InternalIP", address: "127.0.0.1" },
            { type: "Hostname", address: this.name },
          ],
          // Where the API server reaches this node's kubelet API (container logs).
          daemonEndpoints: { kubeletEndpoint: { Port: this.#kubelet?.port ?? 0 } },
          // The images on the node, as the kubelet lists them (the scheduler's ImageLocality scores with them).
          images: this.#images.statusImages(),
          nodeInfo: {
            machineID: this.name,
            systemUUID: this.name,
            bootID: this.name,
            kernelVersion: "virtual",
            osImage: "azure-pipelines-k8s-agent-scaler virtual node",
            containerRuntimeVersion: "sim://1.0.0",
            kubeletVersion: "v1.37.2",
            operatingSystem: "linux",
            architecture: "amd64",
          },
        },
      },
    });
    const leasePath = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${this.name}`;
    const spec = { holderIdentity: this.name, leaseDurationSeconds: 40, renewTime: micro(now) };
    try {
      await this.#client.request({
        method: "PATCH",
        path: leasePath,
        contentType: "application/merge-patch+json",
        body: { spec },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.#client.request({
        method: "POST",
        path: "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
        body: { metadata: { name: this.name }, spec },
      });
    }
  }
}

export async function startVirtualNode(options: VirtualNodeOptions): Promise<VirtualNode> {
  const node = new VirtualNode(options);
  await node.start();
  return node;
}
