/**
 * Reusable cache volumes (contract point 9), the I/O half: reads the resource's PersistentVolumeClaims into the
 * core's observed state, creates claims, and claims / releases them with optimistic concurrency (the claim is an
 * annotation written with the PVC's resourceVersion as precondition), so two reconciles, or two operator replicas
 * during a leader change, can never hand one PVC to two pods. Which PVC goes to which pod is decided by the pure
 * `src/scaling/cache-volumes.ts`.
 */
import {
  controllerOwnerReference,
  type DefaultedAutoScaledAgent,
  labels,
  MANAGED_BY_VALUE as managedByValue,
  pvcAnnotations,
} from "../api/v1/index.ts";
import { isConflict, isNotFound, type KubeClient } from "../kube/client.ts";
import type { KubeObject } from "../kube/types.ts";
import { labelValue } from "../pods/build.ts";
import {
  assignCacheVolumes,
  type CacheTemplate,
  type CacheVolumeState,
  claimsToRelease,
  type ObservedPvc,
  pvcHolder,
} from "../scaling/cache-volumes.ts";
import { capabilitySetKey } from "../scaling/naming.ts";

import type { PodObject } from "./observe.ts";

export interface PvcObject extends KubeObject {
  metadata: NonNullable<KubeObject["metadata"]> & { name: string };
  spec?: { storageClassName?: string; resources?: { requests?: { storage?: string } } };
  status?: { phase?: string };
}

type Resource = DefaultedAutoScaledAgent & { metadata: { name: string; namespace: string; uid: string } };

const num = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : null);

export function observePvc(pvc: PvcObject): ObservedPvc | undefined {
  const volumeName = pvc.metadata.labels?.[labels.cacheVolume];
  if (!volumeName) return undefined;
  const a = pvc.metadata.annotations ?? {};
  const claimedBy = a[pvcAnnotations.claimedBy];
  return {
    name: pvc.metadata.name,
    volumeName,
    claim: claimedBy ? { podName: claimedBy, claimedAtMs: num(a[pvcAnnotations.claimedAt]) ?? 0 } : null,
    lastUsedByTemplate: a[pvcAnnotations.lastTemplate] ?? null,
    releasedAtMs: num(a[pvcAnnotations.releasedAt]),
    createdAtMs: Date.parse(pvc.metadata.creationTimestamp ?? "") || 0,
    deleting: Boolean(pvc.metadata.deletionTimestamp),
  };
}

/** Names of the volumes a template's containers (init containers included) mount. */
export function mountedVolumeNames(template: Resource["spec"]["podsWithCapabilities"][number]): string[] {
  const spec = template.podTemplateSpec.spec as
    | { containers?: { volumeMounts?: { name: string }[] }[]; initContainers?: { volumeMounts?: { name: string }[] }[] }
    | undefined;
  const all = [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])];
  return [...new Set(all.flatMap((c) => (c.volumeMounts ?? []).map((m) => m.name)))];
}

export function cacheState(
  resource: Resource,
  pvcs: readonly PvcObject[],
  pods: readonly PodObject[],
  now: number,
): CacheVolumeState {
  const templates: CacheTemplate[] = resource.spec.podsWithCapabilities.map((t) => ({
    key: capabilitySetKey(t.capabilities),
    maxCount: t.maxCount,
    mountedVolumeNames: mountedVolumeNames(t),
  }));
  return {
    volumes: (resource.spec.reusableCacheVolumes ?? []).map((v) => ({ name: v.name })),
    pvcs: pvcs.flatMap((p) => observePvc(p) ?? []),
    pods: pods.map((p) => ({
      name: p.metadata.name,
      phase: (p.status?.phase ?? "Pending") as "Pending",
      mountedPvcNames: (
        (p.spec as { volumes?: { persistentVolumeClaim?: { claimName: string } }[] }).volumes ?? []
      ).flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : [])),
    })),
    templates,
    now,
    claimGraceMs: 120_000,
  };
}

export type CachePrepared =
  | { ok: true; mapping: Record<string, string>; claimed: string[] }
  | { ok: false; reason: string; message: string };

/** The state after `podName` got `mapping`: its PVCs are claimed and mounted, so later choices skip them. */
export function withClaims(
  state: CacheVolumeState,
  podName: string,
  mapping: Record<string, string>,
  now: number,
): CacheVolumeState {
  const claimed = new Set(Object.values(mapping));
  const known = new Set(state.pvcs.map((p) => p.name));
  const pvcs = state.pvcs.map((p) => (claimed.has(p.name) ? { ...p, claim: { podName, claimedAtMs: now } } : p));
  for (const [volumeName, name] of Object.entries(mapping)) {
    if (!known.has(name)) pvcs.push({ name, volumeName, claim: { podName, claimedAtMs: now }, createdAtMs: now });
  }
  return {
    ...state,
    pvcs,
    pods: [...state.pods, { name: podName, phase: "Pending", mountedPvcNames: [...claimed] }],
  };
}

export class CacheVolumes {
  readonly #client: KubeClient;
  readonly #now: () => number;
  readonly #suffix: () => string;

  constructor(client: KubeClient, now: () => number, suffix: () => string) {
    this.#client = client;
    this.#now = now;
    this.#suffix = suffix;
  }

  /**
   * Gets a PVC for every cache volume the template mounts, for `podName`: claims free ones, creates new ones within
   * the cap. On any refusal (cap reached, a claim lost to a concurrent writer) it releases what it claimed and says
   * why, so the pod is not created now.
   */
  async prepare(
    resource: Resource,
    state: CacheVolumeState,
    podName: string,
    templateIndex: number,
    pvcObjects: Map<string, PvcObject>,
  ): Promise<CachePrepared> {
    const template = resource.spec.podsWithCapabilities[templateIndex];
    if (!template) return { ok: true, mapping: {}, claimed: [] };
    const templateKey = capabilitySetKey(template.capabilities);
    const assignment = assignCacheVolumes(state, { podName, templateKey });
    if (assignment.decisions.length === 0) return { ok: true, mapping: {}, claimed: [] };
    if (!assignment.ready) {
      const waits = assignment.decisions.filter((d) => d.kind === "wait").map((d) => d.message);
      return { ok: false, reason: "CacheVolumeUnavailable", message: waits.join("; ") };
    }
    const mapping: Record<string, string> = {};
    const claimed: string[] = [];
    const claimAnnotations = {
      [pvcAnnotations.claimedBy]: podName,
      [pvcAnnotations.claimedAt]: String(this.#now()),
      [pvcAnnotations.lastTemplate]: templateKey,
    };
    const ns = resource.metadata.namespace;
    for (const d of assignment.decisions) {
      if (d.kind === "reuse") {
        const obj = pvcObjects.get(d.pvcName);
        try {
          await this.#client.request({
            method: "PATCH",
            path: `/api/v1/namespaces/${ns}/persistentvolumeclaims/${d.pvcName}`,
            contentType: "application/merge-patch+json",
            // resourceVersion makes the patch conditional: a concurrent claim wins, this one gets 409.
            body: { metadata: { resourceVersion: obj?.metadata.resourceVersion, annotations: claimAnnotations } },
          });
          mapping[d.volumeName] = d.pvcName;
          claimed.push(d.pvcName);
        } catch (err) {
          await this.release(ns, claimed, templateKey);
          if (isConflict(err) || isNotFound(err)) {
            return {
              ok: false,
              reason: "CacheVolumeClaimConflict",
              message: `PVC ${d.pvcName} changed while claiming it; retrying`,
            };
          }
          throw err;
        }
      } else if (d.kind === "create") {
        const def = (resource.spec.reusableCacheVolumes ?? []).find((v) => v.name === d.volumeName);
        const name = `${resource.metadata.name}-${d.volumeName}-${this.#suffix()}`.slice(0, 253);
        const spec: Record<string, unknown> = {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: def?.requestedStorage ?? "1Gi" } },
        };
        if (def?.storageClassName !== undefined) spec.storageClassName = def.storageClassName;
        try {
          await this.#client.request({
            method: "POST",
            path: `/api/v1/namespaces/${ns}/persistentvolumeclaims`,
            body: {
              apiVersion: "v1",
              kind: "PersistentVolumeClaim",
              metadata: {
                name,
                labels: {
                  [labels.managedBy]: managedByValue,
                  [labels.resource]: labelValue(resource.metadata.name),
                  [labels.cacheVolume]: d.volumeName,
                },
                annotations: claimAnnotations,
                ownerReferences: [controllerOwnerReference(resource)],
              },
              spec,
            },
          });
          mapping[d.volumeName] = name;
          claimed.push(name);
        } catch (err) {
          await this.release(ns, claimed, templateKey);
          throw err;
        }
      }
    }
    return { ok: true, mapping, claimed };
  }

  /** Drops the claims of these PVCs (their pod finished, vanished, or was never created). */
  async release(ns: string, pvcNames: readonly string[], templateKey?: string): Promise<void> {
    for (const name of pvcNames) {
      const annotations: Record<string, string | null> = {
        [pvcAnnotations.claimedBy]: null,
        [pvcAnnotations.claimedAt]: null,
        [pvcAnnotations.releasedAt]: String(this.#now()),
      };
      if (templateKey) annotations[pvcAnnotations.lastTemplate] = templateKey;
      await this.#client
        .request({
          method: "PATCH",
          path: `/api/v1/namespaces/${ns}/persistentvolumeclaims/${name}`,
          contentType: "application/merge-patch+json",
          body: { metadata: { annotations } },
        })
        .catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
    }
  }

  /** Releases claims whose pod has finished or is gone; returns the status list of the cache volumes. */
  async sweep(ns: string, state: CacheVolumeState): Promise<{ name: string; claimName: string; holderPod?: string }[]> {
    const releases = claimsToRelease(state);
    if (releases.length > 0)
      await this.release(
        ns,
        releases.map((r) => r.pvcName),
      );
    const released = new Set(releases.map((r) => r.pvcName));
    return state.pvcs.map((p) => {
      const holder = released.has(p.name) ? null : pvcHolder(p, state);
      return { name: p.volumeName, claimName: p.name, ...(holder ? { holderPod: holder } : {}) };
    });
  }
}
