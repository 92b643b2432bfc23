/**
 * Reusable cache volumes, the I/O half: reads the resource's PersistentVolumeClaims into the core's observed state,
 * creates claims, and claims / releases them conditionally (a claim is a patch with the PVC's resourceVersion as
 * precondition; a release is a JSON patch that first tests the claim still names the pod it releases), so two
 * reconciles, or two operator replicas during a leader change, can never hand one PVC to two pods, and a release
 * never wipes a claim made since the cache was read. Which PVC goes to
 * which pod is decided by the pure `src/scaling/cache-volumes.ts`.
 */
import {
  controllerOwnerReference,
  labels,
  MANAGED_BY_VALUE as managedByValue,
  pvcAnnotations,
} from "../api/v1/index.ts";
import { labelValue } from "../pods/build.ts";
import {
  assignCacheVolumes,
  type CachePod,
  type CacheTemplate,
  type CacheVolumeState,
  claimsToRelease,
  type ObservedPvc,
  pvcHolder,
} from "../scaling/cache-volumes.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import type { KubeWriter, PodObject, PvcObject, Resource } from "./ports.ts";

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

/** The PVC names a pod mounts. */
export function mountedPvcNames(pod: PodObject): string[] {
  return (pod.spec.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : []));
}

/**
 * The cache-volume core's input, or undefined for a resource without cache volumes. `expected` are pods this process
 * created that the cache does not show yet: they hold the PVCs they mount like any live pod.
 */
export function cacheState(
  resource: Resource,
  pvcs: readonly PvcObject[],
  pods: readonly PodObject[],
  now: number,
  expected: ReadonlyMap<string, { readonly pvcNames: readonly string[] }> = new Map(),
): CacheVolumeState | undefined {
  if ((resource.spec.reusableCacheVolumes ?? []).length === 0) return undefined;
  // Pods created but not in the cache yet hold their claims as Pending pods.
  const extraPods = [...expected].map(([name, e]) => ({
    name,
    phase: "Pending" as const,
    mountedPvcNames: e.pvcNames,
  }));
  const templates: CacheTemplate[] = resource.spec.podsWithCapabilities.map((t) => ({
    key: capabilitySetKey(t.capabilities),
    maxCount: t.maxCount,
    mountedVolumeNames: mountedVolumeNames(t),
  }));
  const cached = pods.map((p) => ({
    name: p.metadata.name,
    phase: (p.status?.phase ?? "Pending") as CachePod["phase"],
    mountedPvcNames: mountedPvcNames(p),
  }));
  const seen = new Set(cached.map((p) => p.name));
  return {
    volumes: (resource.spec.reusableCacheVolumes ?? []).map((v) => ({ name: v.name })),
    pvcs: pvcs.flatMap((p) => observePvc(p) ?? []),
    pods: [...cached, ...extraPods.filter((p) => !seen.has(p.name))],
    templates,
    now,
    claimGraceMs: 120_000,
  };
}

export type CachePrepared =
  | { ok: true; mapping: Record<string, string>; claimed: string[] }
  | { ok: false; reason: string; message: string };

/** The status list of the cache volumes: each PVC and the pod holding it. */
export function cacheVolumeStatus(
  state: CacheVolumeState,
  released: ReadonlySet<string> = new Set(),
): { name: string; claimName: string; holderPod?: string }[] {
  return state.pvcs.map((p) => {
    const holder = released.has(p.name) ? null : pvcHolder(p, state);
    return { name: p.volumeName, claimName: p.name, ...(holder ? { holderPod: holder } : {}) };
  });
}

/** Claims to release now: their pod finished or is gone (pure, from the core). */
export function releasableClaims(state: CacheVolumeState): { name: string; holder: string }[] {
  return claimsToRelease(state).map((r) => ({ name: r.pvcName, holder: r.podName }));
}

export class CacheVolumes {
  readonly #kube: KubeWriter;
  readonly #now: () => number;
  readonly #suffix: () => string;

  constructor(kube: KubeWriter, now: () => number, suffix: () => string) {
    this.#kube = kube;
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
    pvcObjects: ReadonlyMap<string, PvcObject>,
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
    const undo = () =>
      this.release(
        ns,
        claimed.map((name) => ({ name, holder: podName })),
        templateKey,
      );
    for (const d of assignment.decisions) {
      if (d.kind === "reuse") {
        const rv = pvcObjects.get(d.pvcName)?.metadata.resourceVersion;
        // The cached resourceVersion makes the claim conditional: a concurrent claim wins, this one conflicts.
        const r = await this.#kube
          .patchPvcAnnotations(ns, d.pvcName, claimAnnotations, rv)
          .catch(async (err: unknown) => {
            await undo();
            throw err;
          });
        if (r !== "done") {
          await undo();
          return {
            ok: false,
            reason: "CacheVolumeClaimConflict",
            message: `PVC ${d.pvcName} changed while claiming it; retrying`,
          };
        }
        mapping[d.volumeName] = d.pvcName;
        claimed.push(d.pvcName);
      } else if (d.kind === "create") {
        const def = (resource.spec.reusableCacheVolumes ?? []).find((v) => v.name === d.volumeName);
        const name = `${resource.metadata.name}-${d.volumeName}-${this.#suffix()}`.slice(0, 253);
        const spec: NonNullable<PvcObject["spec"]> & { accessModes: string[] } = {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: def?.requestedStorage ?? "1Gi" } },
        };
        if (def?.storageClassName !== undefined) spec.storageClassName = def.storageClassName;
        try {
          await this.#kube.createPvc(ns, {
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
          });
        } catch (err) {
          await undo();
          throw err;
        }
        mapping[d.volumeName] = name;
        claimed.push(name);
      }
    }
    return { ok: true, mapping, claimed };
  }

  /**
   * Drops the claims of these PVCs (their pod finished, vanished, or was never created), each only if it still names
   * the given holder. Returns the names actually released.
   */
  async release(
    ns: string,
    claims: readonly { name: string; holder: string }[],
    templateKey?: string,
  ): Promise<string[]> {
    const released: string[] = [];
    for (const claim of claims) {
      const annotations: Record<string, string> = { [pvcAnnotations.releasedAt]: String(this.#now()) };
      if (templateKey) annotations[pvcAnnotations.lastTemplate] = templateKey;
      const r = await this.#kube.releasePvcClaim(ns, claim.name, claim.holder, annotations);
      if (r === "done") released.push(claim.name);
    }
    return released;
  }
}
