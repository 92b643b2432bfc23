/**
 * The virtual kubelet's handling of one pod bound to the node: volumes, init containers in order, native sidecars
 * (init containers with restartPolicy Always) started before and stopped after the main containers, main
 * containers, image changes of running containers (restart with the new image, whatever the restart policy),
 * graceful deletion (preStop hooks, SIGTERM, SIGKILL at the end of the grace period, then the final delete with
 * grace period 0), and status reporting.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { isConflict, isNotFound, type KubeClient } from "../../src/kube/client.ts";
import type { Logger } from "../../src/runtime/logger.ts";
import { errorMessage } from "../../src/runtime/logger.ts";
import { ContainerConfigError, resolveEnv } from "./env.ts";
import { defaultPullPolicy, type ImageStore, type PullPolicy } from "./images.ts";
import type { Program, ProgramContext, RunningProgram } from "./programs.ts";
import { buildPodStatus, type ContainerKind, type ContainerRecord } from "./status.ts";
import type { Container, Pod, PodStatus } from "./types.ts";

export interface PodRuntimeDeps {
  client: KubeClient;
  hostIP: string;
  /** Allocates the pod's IP once its sandbox is ready. */
  allocateIP(): string;
  releaseIP(ip: string): void;
  isPullable(image: string): boolean;
  /** The node's images: what is present, and the pulls (shared by the node's pods). */
  images: ImageStore;
  /** Chooses the program of a container, given its context. */
  programFor(ctx: ProgramContext): Program;
  /** The node's OS and architecture (its `kubernetes.io/os` and `kubernetes.io/arch` labels). */
  platform: { os: string; arch: string };
  /** Receives each log line of each container. */
  logLine(pod: Pod, container: string, line: string): void;
  logger: Logger;
  /** Delay between retries of a failing step (volumes, images, config). */
  retryMs: number;
  now(): Date;
}

interface Slot extends ContainerRecord {
  spec: Container;
  run?: { program: RunningProgram; term: AbortController; kill: AbortController; exited: Promise<number> };
  /** A new image waiting to replace the running one. */
  pendingImage?: string;
}

const iso = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;

export class PodRuntime {
  pod: Pod;
  readonly #deps: PodRuntimeDeps;
  readonly #slots: Slot[];
  #sandboxReady = false;
  #podIP: string | undefined;
  #startTime: string;
  #published: PodStatus | undefined;
  #dirty = false;
  #flushing: Promise<void> | undefined;
  #terminating: Promise<void> | undefined;
  #stoppingSidecars = false;
  #gone = false;
  #containerSeq = 0;
  readonly #stop = new AbortController();

  constructor(pod: Pod, deps: PodRuntimeDeps) {
    this.pod = pod;
    this.#deps = deps;
    this.#startTime = pod.status?.startTime ?? iso(deps.now());
    const slot = (spec: Container, kind: ContainerKind): Slot => ({
      name: spec.name,
      kind,
      image: spec.image ?? "",
      spec,
      state: { waiting: { reason: kind === "main" ? "ContainerCreating" : "PodInitializing" } },
      lastState: {},
      restartCount: 0,
      started: false,
    });
    this.#slots = [
      ...(pod.spec.initContainers ?? []).map((c) => slot(c, c.restartPolicy === "Always" ? "sidecar" : "init")),
      ...pod.spec.containers.map((c) => slot(c, "main")),
    ];
    for (const s of this.#slots) if (s.kind !== "main") s.state = { waiting: { reason: "PodInitializing" } };
  }

  get podIP(): string | undefined {
    return this.#podIP;
  }

  /** Snapshot of the container records, for tests and the log server. */
  records(): readonly ContainerRecord[] {
    return this.#slots;
  }

  start(): void {
    const terminal = this.pod.status?.phase === "Succeeded" || this.pod.status?.phase === "Failed";
    if (terminal) {
      // A finished pod (e.g. after a node restart): nothing runs; deletion is the only thing left to handle.
      this.#published = this.pod.status;
      if (this.pod.metadata.deletionTimestamp) void this.#finalDelete();
      return;
    }
    void this.#lifecycle().catch((err: unknown) => {
      this.#deps.logger.error("pod lifecycle failed", { pod: this.#key(), error: errorMessage(err) });
    });
    if (this.pod.metadata.deletionTimestamp) this.update(this.pod);
  }

  /** A newer version of the pod was observed. */
  update(pod: Pod): void {
    this.pod = pod;
    if (pod.metadata.deletionTimestamp) {
      this.#terminating ??= this.#terminate().catch((err: unknown) => {
        this.#deps.logger.error("pod termination failed", { pod: this.#key(), error: errorMessage(err) });
      });
      return;
    }
    const specs = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
    for (const slot of this.#slots) {
      const image = specs.find((c) => c.name === slot.name)?.image;
      if (image && image !== slot.image && slot.run && slot.state.running && slot.pendingImage !== image) {
        this.#deps.logger.info("container image changed: restarting it", {
          pod: this.#key(),
          container: slot.name,
          image,
        });
        slot.pendingImage = image;
        this.#stopContainer(slot, this.#graceMs()).catch(() => {});
      }
    }
  }

  /** The pod object is gone (deleted with grace period 0 by someone): stop everything at once. */
  remove(): void {
    this.#gone = true;
    this.#stop.abort();
    for (const s of this.#slots) s.run?.kill.abort();
    if (this.#podIP) this.#deps.releaseIP(this.#podIP);
  }

  #key() {
    return `${this.pod.metadata.namespace}/${this.pod.metadata.name}`;
  }

  #graceMs(): number {
    const s = this.pod.metadata.deletionGracePeriodSeconds ?? this.pod.spec.terminationGracePeriodSeconds ?? 30;
    return s * 1000;
  }

  #stopped(): boolean {
    return this.#gone || this.#terminating !== undefined;
  }

  async #lifecycle(): Promise<void> {
    this.#publish();
    // Volumes: every PersistentVolumeClaim must exist and be Bound.
    for (;;) {
      if (this.#stopped()) return;
      const problem = await this.#volumeProblem();
      if (!problem) break;
      for (const s of this.#slots)
        s.state = {
          waiting: { reason: s.kind === "main" ? "ContainerCreating" : "PodInitializing", message: problem },
        };
      this.#publish();
      await this.#pause();
    }
    this.#sandboxReady = true;
    this.#podIP = this.#deps.allocateIP();
    this.#publish();

    for (const slot of this.#slots.filter((s) => s.kind !== "main")) {
      if (slot.kind === "sidecar") {
        if (!(await this.#launch(slot))) return;
        void this.#containerLoop(slot, true);
        continue;
      }
      const code = await this.#containerLoop(slot, false);
      if (code === undefined) return;
      if (code !== 0 && this.pod.spec.restartPolicy === "Never") {
        await this.#stopSidecars();
        this.#publish();
        return;
      }
    }
    const mains = this.#slots.filter((s) => s.kind === "main");
    await Promise.all(mains.map((s) => this.#containerLoop(s, false)));
    if (this.#stopped()) return;
    await this.#stopSidecars();
    this.#publish();
  }

  async #pause(): Promise<void> {
    await sleep(this.#deps.retryMs, undefined, { signal: this.#stop.signal }).catch(() => {});
  }

  async #volumeProblem(): Promise<string | undefined> {
    for (const v of this.pod.spec.volumes ?? []) {
      const claim = v.persistentVolumeClaim?.claimName;
      if (!claim) continue;
      try {
        const pvc = await this.#deps.client.request<{ status?: { phase?: string } }>({
          path: `/api/v1/namespaces/${this.pod.metadata.namespace}/persistentvolumeclaims/${claim}`,
        });
        if (pvc.status?.phase !== "Bound") return `persistentvolumeclaim "${claim}" is not bound`;
      } catch (err) {
        if (isNotFound(err)) return `persistentvolumeclaim "${claim}" not found`;
        return `persistentvolumeclaim "${claim}": ${errorMessage(err)}`;
      }
    }
    return undefined;
  }

  /**
   * Runs a container until it is finally done (restarts included) and resolves with its last exit code, or
   * undefined when the pod stopped first. `alreadyLaunched`: the first run was started by the caller.
   */
  async #containerLoop(slot: Slot, alreadyLaunched: boolean): Promise<number | undefined> {
    let launched = alreadyLaunched;
    for (;;) {
      if (!launched && !(await this.#launch(slot))) return undefined;
      launched = false;
      const code = (await slot.run?.exited) ?? 137;
      if (slot.pendingImage !== undefined) {
        // The kubelet restarts a container whose spec changed, regardless of the restart policy.
        slot.image = slot.pendingImage;
        slot.pendingImage = undefined;
        continue;
      }
      if (this.#stopped()) return code;
      const policy = slot.kind === "sidecar" ? "Always" : (this.pod.spec.restartPolicy ?? "Always");
      // An init container that completed is done whatever the pod's policy; a failed one is retried unless the
      // policy is Never (the kubelet treats Always as OnFailure for init containers).
      const restart =
        slot.kind === "sidecar"
          ? !this.#stoppingSidecars
          : slot.kind === "init"
            ? policy !== "Never" && code !== 0
            : policy === "Always" || (policy === "OnFailure" && code !== 0);
      if (!restart) return code;
      await this.#pause();
      if (this.#stopped() || (slot.kind === "sidecar" && this.#stoppingSidecars)) return code;
      slot.lastState = slot.state;
      slot.restartCount++;
    }
  }

  /**
   * Pulls the image as the container's imagePullPolicy says, resolves the environment and starts the program;
   * false when the pod stopped first.
   */
  async #launch(slot: Slot): Promise<boolean> {
    let pullFailures = 0;
    for (;;) {
      if (this.#stopped()) return false;
      const policy: PullPolicy = slot.spec.imagePullPolicy ?? defaultPullPolicy(slot.image);
      const action = this.#deps.images.actionFor(slot.image, policy);
      if ((action === "pull" || action === "check") && !this.#deps.isPullable(slot.image)) {
        pullFailures++;
        slot.state =
          pullFailures === 1
            ? {
                waiting: {
                  reason: "ErrImagePull",
                  message: `failed to pull and unpack image "${slot.image}": not found`,
                },
              }
            : { waiting: { reason: "ImagePullBackOff", message: `Back-off pulling image "${slot.image}"` } };
        this.#publish();
        await this.#pause();
        continue;
      }
      // While the image is pulled the container keeps its waiting state (ContainerCreating or PodInitializing at
      // first; after an error, the error, as the kubelet reports the last sync's result).
      const image = await this.#deps.images.ensure({
        namespace: this.pod.metadata.namespace,
        pod: this.pod.metadata.name,
        container: slot.name,
        image: slot.image,
        policy,
        signal: this.#stop.signal,
      });
      if (!image.ok) {
        if (image.reason === "Aborted") return false;
        slot.state = { waiting: { reason: image.reason, message: image.message } };
        this.#publish();
        await this.#pause();
        continue;
      }
      let env: Record<string, string>;
      try {
        env = await resolveEnv(this.#deps.client, this.pod, slot.spec, this.#podIP);
      } catch (err) {
        const message =
          err instanceof ContainerConfigError ? err.message : `resolving environment: ${errorMessage(err)}`;
        slot.state = { waiting: { reason: "CreateContainerConfigError", message } };
        this.#publish();
        await this.#pause();
        continue;
      }
      const term = new AbortController();
      const kill = new AbortController();
      const ctx: ProgramContext = {
        namespace: this.pod.metadata.namespace,
        podName: this.pod.metadata.name,
        containerName: slot.name,
        image: slot.image,
        command: slot.spec.command,
        args: slot.spec.args,
        env,
        platform: this.#deps.platform,
        gracePeriodMs: this.#graceMs(),
        terminate: term.signal,
        kill: kill.signal,
        log: (line) => this.#deps.logLine(this.pod, slot.name, line),
      };
      const program = this.#deps.programFor(ctx)(ctx);
      const startedAt = iso(this.#deps.now());
      const containerID = `sim://${this.pod.metadata.uid.slice(0, 8)}-${slot.name}-${++this.#containerSeq}`;
      const exited = program.exited.then(
        (code) => code,
        (err: unknown) => {
          ctx.log(`program crashed: ${errorMessage(err)}`);
          return 128;
        },
      );
      slot.run = { program, term, kill, exited };
      slot.containerID = containerID;
      slot.state = { running: { startedAt } };
      slot.started = true;
      this.#publish();
      void exited.then((code) => {
        const terminated = {
          terminated: {
            exitCode: code,
            reason: code === 0 ? "Completed" : "Error",
            startedAt,
            finishedAt: iso(this.#deps.now()),
            containerID,
          },
        };
        slot.started = false;
        if (slot.pendingImage !== undefined) {
          // Killed for an image change: it restarts at once, so its end goes straight to lastState.
          slot.lastState = terminated;
          slot.restartCount++;
          slot.state = { waiting: { reason: "ContainerCreating" } };
        } else {
          slot.state = terminated;
        }
        if (!this.#gone) this.#publish();
      });
      return true;
    }
  }

  /** SIGTERM, then SIGKILL when the container is still running after `graceMs`. */
  async #stopContainer(slot: Slot, graceMs: number): Promise<void> {
    const run = slot.run;
    if (!run || !slot.state.running) return;
    run.term.abort();
    const timer = sleep(Math.max(0, graceMs), "timeout" as const);
    if ((await Promise.race([run.exited, timer])) === "timeout") run.kill.abort();
    await run.exited;
  }

  async #stopSidecars(graceMs = this.#graceMs()): Promise<void> {
    this.#stoppingSidecars = true;
    const sidecars = this.#slots.filter((s) => s.kind === "sidecar").reverse();
    for (const s of sidecars) await this.#stopContainer(s, graceMs);
  }

  async #terminate(): Promise<void> {
    this.#stop.abort();
    const deadline = Date.now() + this.#graceMs();
    const left = () => Math.max(0, deadline - Date.now());
    const running = this.#slots.filter((s) => s.run && s.state.running);
    if (running.length > 0) {
      // preStop hooks run before SIGTERM, all bounded by the grace period.
      const hooks = running.filter((s) => s.spec.lifecycle?.preStop && s.run?.program.preStop);
      if (hooks.length > 0) {
        const budget = AbortSignal.timeout(Math.max(1, left()));
        await Promise.all(hooks.map((s) => s.run?.program.preStop?.(budget).catch(() => {})));
      }
      const mains = running.filter((s) => s.kind !== "sidecar");
      await Promise.all(mains.map((s) => this.#stopContainer(s, left())));
      await this.#stopSidecars(left());
    }
    this.#publish();
    await this.#flushed();
    await this.#finalDelete();
  }

  async #finalDelete(): Promise<void> {
    try {
      await this.#deps.client.request({
        method: "DELETE",
        path: `/api/v1/namespaces/${this.pod.metadata.namespace}/pods/${this.pod.metadata.name}`,
        body: {
          kind: "DeleteOptions",
          apiVersion: "v1",
          gracePeriodSeconds: 0,
          preconditions: { uid: this.pod.metadata.uid },
        },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) {
        this.#deps.logger.warn("final pod delete failed", { pod: this.#key(), error: errorMessage(err) });
      }
    }
  }

  #publish(): void {
    if (this.#gone) return;
    this.#dirty = true;
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
    });
  }

  async #flushed(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async #flush(): Promise<void> {
    while (this.#dirty && !this.#gone) {
      this.#dirty = false;
      const status = buildPodStatus({
        records: this.#slots,
        restartPolicy: this.pod.spec.restartPolicy ?? "Always",
        previous: this.#published,
        sandboxReady: this.#sandboxReady,
        hostIP: this.#deps.hostIP,
        startTime: this.#startTime,
        now: iso(this.#deps.now()),
        ...(this.#podIP ? { podIP: this.#podIP } : {}),
      });
      try {
        await this.#deps.client.request({
          method: "PATCH",
          path: `/api/v1/namespaces/${this.pod.metadata.namespace}/pods/${this.pod.metadata.name}/status`,
          contentType: "application/merge-patch+json",
          body: { metadata: { uid: this.pod.metadata.uid }, status },
        });
        this.#published = status;
      } catch (err) {
        if (isNotFound(err) || isConflict(err)) {
          // Gone, or replaced by another pod of the same name (the uid precondition failed).
          this.#gone = true;
          return;
        }
        this.#deps.logger.warn("pod status update failed; retrying", { pod: this.#key(), error: errorMessage(err) });
        this.#dirty = true;
        await sleep(this.#deps.retryMs);
      }
    }
  }
}
