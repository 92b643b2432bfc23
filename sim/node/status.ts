/**
 * Pure functions that turn the virtual kubelet's view of a pod (container records) into the pod's status, the way
 * the kubelet reports it: phase, conditions (with stable transition times) and container statuses.
 */
import { imageID } from "./images.ts";
import type { ContainerState, ContainerStatus, PodCondition, PodStatus } from "./types.ts";

export type ContainerKind = "init" | "sidecar" | "main";

export interface ContainerRecord {
  name: string;
  kind: ContainerKind;
  image: string;
  state: ContainerState;
  lastState: ContainerState;
  restartCount: number;
  started: boolean;
  containerID?: string;
}

export type Phase = NonNullable<PodStatus["phase"]>;

/** The phase the kubelet would report. `previous` terminal phases are sticky. */
export function computePhase(
  records: readonly ContainerRecord[],
  restartPolicy: "Always" | "OnFailure" | "Never",
  previous?: Phase,
): Phase {
  if (previous === "Succeeded" || previous === "Failed") return previous;
  const init = records.filter((r) => r.kind === "init");
  if (restartPolicy === "Never" && init.some((r) => r.state.terminated && r.state.terminated.exitCode !== 0)) {
    return "Failed";
  }
  const initDone = init.every((r) => r.state.terminated?.exitCode === 0);
  if (!initDone) return "Pending";
  const main = records.filter((r) => r.kind === "main");
  const terminated = main.filter((r) => r.state.terminated);
  if (main.length > 0 && terminated.length === main.length) {
    // Native sidecars are stopped once the main containers are done; the pod is terminal only when they have ended.
    if (records.some((r) => r.kind === "sidecar" && !r.state.terminated)) return "Running";
    const failed = terminated.some((r) => r.state.terminated?.exitCode !== 0);
    if (restartPolicy === "Never") return failed ? "Failed" : "Succeeded";
    if (restartPolicy === "OnFailure") return failed ? "Running" : "Succeeded";
    return "Running";
  }
  if (main.some((r) => r.state.running || r.state.terminated)) return "Running";
  return "Pending";
}

function condition(type: string, ok: boolean, reason?: string, message?: string): PodCondition {
  const c: PodCondition = { type, status: ok ? "True" : "False" };
  if (!ok && reason) c.reason = reason;
  if (!ok && message) c.message = message;
  return c;
}

/** Keeps lastTransitionTime of conditions whose status did not change. */
export function mergeConditions(previous: readonly PodCondition[] | undefined, next: PodCondition[], now: string) {
  return next.map((c) => {
    const before = previous?.find((p) => p.type === c.type);
    const lastTransitionTime =
      before && before.status === c.status && before.lastTransitionTime ? before.lastTransitionTime : now;
    return { ...c, lastProbeTime: null, lastTransitionTime };
  });
}

export function podConditions(
  records: readonly ContainerRecord[],
  phase: Phase,
  sandboxReady: boolean,
): PodCondition[] {
  const init = records.filter((r) => r.kind === "init");
  const initDone = init.every((r) => r.state.terminated?.exitCode === 0);
  const terminal = phase === "Succeeded" || phase === "Failed";
  const notReady = records.filter((r) => r.kind !== "init" && !(r.state.running && r.started)).map((r) => r.name);
  const ready = !terminal && notReady.length === 0;
  const readyReason = terminal ? "PodCompleted" : "ContainersNotReady";
  const readyMessage = terminal ? undefined : `containers with unready status: [${notReady.join(" ")}]`;
  return [
    condition("PodReadyToStartContainers", sandboxReady && !terminal),
    condition(
      "Initialized",
      initDone || terminal,
      "ContainersNotInitialized",
      `containers with incomplete status: [${init
        .filter((r) => !r.state.terminated)
        .map((r) => r.name)
        .join(" ")}]`,
    ),
    condition("Ready", ready, readyReason, readyMessage),
    condition("ContainersReady", ready, readyReason, readyMessage),
    condition("PodScheduled", true),
  ];
}

export function containerStatus(r: ContainerRecord): ContainerStatus {
  const status: ContainerStatus = {
    name: r.name,
    image: r.image,
    // Like the kubelet: the image's digest reference once a container of it was created, else empty.
    imageID: r.containerID ? imageID(r.image) : "",
    ready: Boolean(r.state.running && r.started),
    started: Boolean(r.state.running && r.started),
    restartCount: r.restartCount,
    state: r.state,
    lastState: r.lastState,
  };
  if (r.containerID) status.containerID = r.containerID;
  return status;
}

export interface StatusInput {
  records: readonly ContainerRecord[];
  restartPolicy: "Always" | "OnFailure" | "Never";
  previous?: PodStatus;
  sandboxReady: boolean;
  hostIP: string;
  podIP?: string;
  startTime: string;
  now: string;
  /** Set when the pod failed for a pod-level reason (e.g. the node rejected it). */
  failure?: { reason: string; message: string };
}

export function buildPodStatus(input: StatusInput): PodStatus {
  const phase = input.failure ? "Failed" : computePhase(input.records, input.restartPolicy, input.previous?.phase);
  const status: PodStatus = {
    phase,
    conditions: mergeConditions(
      input.previous?.conditions,
      podConditions(input.records, phase, input.sandboxReady),
      input.now,
    ),
    hostIP: input.hostIP,
    hostIPs: [{ ip: input.hostIP }],
    startTime: input.startTime,
    initContainerStatuses: input.records.filter((r) => r.kind !== "main").map(containerStatus),
    containerStatuses: input.records.filter((r) => r.kind === "main").map(containerStatus),
  };
  if (input.podIP) {
    status.podIP = input.podIP;
    status.podIPs = [{ ip: input.podIP }];
  }
  if (input.failure) {
    status.reason = input.failure.reason;
    status.message = input.failure.message;
  }
  return status;
}
