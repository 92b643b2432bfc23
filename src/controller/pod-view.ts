/**
 * What the operator keeps of each agent pod in its informer cache: the metadata (without `managedFields`) and the
 * fields `PodObject` declares, with the container-state details the checks read (a waiting reason and message, a
 * terminated exit code). Everything else of a pod (container env, volume sources, tolerations, probes, resources,
 * the projected service-account token volume, conditions, IPs) is most of its JSON and is never read; dropping it
 * on the way into the cache keeps the operator's memory roughly flat in the number of pods it manages.
 *
 * Pure: a new object, the given one is not changed. `pod-view.test.ts` checks that every reading of the cache
 * (`observePod`, `stuckContainer`, `podHasEnded`) sees the same in the view as in the full pod.
 */
import type { KubeObject } from "../kube/types.ts";
import type { ContainerStatus, PodObject } from "./ports.ts";

type CachedPod = PodObject & KubeObject;

function containerStatusView(s: ContainerStatus): ContainerStatus {
  const state = s.state;
  if (!state) return { name: s.name };
  const view: NonNullable<ContainerStatus["state"]> = {};
  if (state.waiting) {
    view.waiting = {
      ...(state.waiting.reason === undefined ? {} : { reason: state.waiting.reason }),
      ...(state.waiting.message === undefined ? {} : { message: state.waiting.message }),
    };
  }
  if (state.running) view.running = {};
  if (state.terminated) {
    const t = state.terminated as { exitCode?: unknown; reason?: unknown };
    view.terminated = {
      ...(typeof t.exitCode === "number" ? { exitCode: t.exitCode } : {}),
      ...(typeof t.reason === "string" ? { reason: t.reason } : {}),
    };
  }
  return { name: s.name, state: view };
}

export function agentPodView<T extends CachedPod>(pod: T): T {
  const { managedFields: _, ...metadata } = (pod.metadata ?? {}) as T["metadata"] & { managedFields?: unknown };
  const spec = pod.spec ?? { containers: [] };
  const status = pod.status;
  const view: CachedPod = {
    ...(pod.apiVersion === undefined ? {} : { apiVersion: pod.apiVersion }),
    ...(pod.kind === undefined ? {} : { kind: pod.kind }),
    metadata,
    spec: {
      ...(spec.nodeName === undefined ? {} : { nodeName: spec.nodeName }),
      containers: (spec.containers ?? []).map((c) => ({
        name: c.name,
        ...(c.image === undefined ? {} : { image: c.image }),
      })),
      ...(spec.initContainers === undefined
        ? {}
        : {
            initContainers: spec.initContainers.map((c) => ({
              name: c.name,
              ...(c.image === undefined ? {} : { image: c.image }),
              ...(c.restartPolicy === undefined ? {} : { restartPolicy: c.restartPolicy }),
            })),
          }),
      ...(spec.volumes === undefined
        ? {}
        : {
            volumes: spec.volumes.map((v) => ({
              name: v.name,
              ...(v.persistentVolumeClaim
                ? { persistentVolumeClaim: { claimName: v.persistentVolumeClaim.claimName } }
                : {}),
            })),
          }),
    },
    ...(status === undefined
      ? {}
      : {
          status: {
            ...(status.phase === undefined ? {} : { phase: status.phase }),
            ...(status.startTime === undefined ? {} : { startTime: status.startTime }),
            ...(status.containerStatuses === undefined
              ? {}
              : { containerStatuses: status.containerStatuses.map(containerStatusView) }),
            ...(status.initContainerStatuses === undefined
              ? {}
              : { initContainerStatuses: status.initContainerStatuses.map(containerStatusView) }),
          },
        }),
  };
  return view as T;
}
