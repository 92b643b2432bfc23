/**
 * Pure mapping from what the caches and Azure DevOps show to the scaling core's observed state.
 */
import type { DefaultedPodsWithCapabilities } from "../api/v1/index.ts";
import { podAnnotations as annotations, labels } from "../api/v1/index.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import type { ContainerRunState, ObservedAgent, ObservedContainer, ObservedPod, PodPhase } from "../scaling/types.ts";
import type { PoolAgent } from "./ports.ts";

export interface PodObject {
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[];
  };
  spec: {
    nodeName?: string;
    containers: { name: string; image?: string }[];
    initContainers?: { name: string; image?: string; restartPolicy?: string }[];
  };
  status?: {
    phase?: string;
    startTime?: string;
    containerStatuses?: { name: string; state?: { waiting?: unknown; running?: unknown; terminated?: unknown } }[];
    initContainerStatuses?: { name: string; state?: { waiting?: unknown; running?: unknown; terminated?: unknown } }[];
  };
}

const ms = (iso: string | undefined): number | null => {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
};

function runState(
  status: { state?: { waiting?: unknown; running?: unknown; terminated?: unknown } } | undefined,
): ContainerRunState {
  if (!status?.state) return "unknown";
  if (status.state.terminated) return "terminated";
  if (status.state.running) return "running";
  if (status.state.waiting) return "waiting";
  return "unknown";
}

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Index of the template with this key in the resource, or null (template removed or changed). */
export function templateIndexOf(
  templates: readonly DefaultedPodsWithCapabilities[],
  key: string | undefined,
): number | null {
  if (key === undefined) return null;
  const i = templates.findIndex((t) => capabilitySetKey(t.capabilities as Record<string, string>) === key);
  return i >= 0 ? i : null;
}

export function observePod(pod: PodObject, templates: readonly DefaultedPodsWithCapabilities[]): ObservedPod {
  const a = pod.metadata.annotations ?? {};
  const statuses = pod.status?.containerStatuses ?? [];
  const initStatuses = pod.status?.initContainerStatuses ?? [];
  const [agent, ...others] = pod.spec.containers;
  const stopped = new Set(list(a[annotations.sidecarsStopped]));
  const otherContainers: ObservedContainer[] = [
    ...others.map((c) => ({
      name: c.name,
      state: runState(statuses.find((s) => s.name === c.name)),
      nativeSidecar: false,
      stopRequested: stopped.has(c.name),
    })),
    ...(pod.spec.initContainers ?? [])
      .filter((c) => c.restartPolicy === "Always")
      .map((c) => ({
        name: c.name,
        state: runState(initStatuses.find((s) => s.name === c.name)),
        nativeSidecar: true,
      })),
  ];
  const phase = (pod.status?.phase ?? "Pending") as PodPhase;
  const idle = a[annotations.idleSince];
  return {
    name: pod.metadata.name,
    templateIndex: templateIndexOf(templates, pod.metadata.labels?.[labels.template]),
    extraAgentContainers: a[annotations.extraAgentContainers] ?? null,
    createdAtMs: ms(pod.metadata.creationTimestamp) ?? 0,
    startedAtMs: ms(pod.status?.startTime),
    phase: ["Pending", "Running", "Succeeded", "Failed", "Unknown"].includes(phase) ? phase : "Unknown",
    scheduled: Boolean(pod.spec.nodeName),
    deleting: Boolean(pod.metadata.deletionTimestamp),
    agentContainer: runState(statuses.find((s) => s.name === agent?.name)),
    otherContainers,
    createdForRequestIds: list(a[annotations.createdFor])
      .map(Number)
      .filter((n) => Number.isSafeInteger(n)),
    idleMarkedAtMs: idle !== undefined && /^\d+$/.test(idle) ? Number(idle) : null,
  };
}

export function observeAgent(agent: PoolAgent): ObservedAgent {
  return {
    id: agent.id,
    name: agent.name,
    status: agent.status === "online" ? "online" : "offline",
    busy: Boolean(agent.assignedRequest),
    idleSinceMs: ms(agent.statusChangedOn),
    lastCompletedRequestFinishMs: ms(agent.lastCompletedRequest?.finishTime ?? undefined),
  };
}
