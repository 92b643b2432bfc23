/**
 * Reusable cache volumes: which PVC a new pod gets for each cache volume its template mounts.
 *
 * Rules: a PVC is never handed to a pod while a live pod holds it (mounts it, or holds its claim); reuse before
 * create; prefer the PVC this template used most recently (warm cache); create only while the number of PVCs of
 * that volume stays under the sum of `maxCount` of the templates mounting it; otherwise the pod waits, with a reason.
 * Pure: the controller claims the chosen PVC with an optimistic-concurrency update before creating the pod.
 */

import { compareStrings } from "../runtime/compare.ts";
import type { PodPhase } from "./types.ts";

/** An entry of `reusableCacheVolumes` (only the name matters for the choice). */
export interface CacheVolumeDefinition {
  readonly name: string;
}

/** A claim annotation on a PVC: which pod it was promised to, and when. */
export interface PvcClaim {
  readonly podName: string;
  readonly claimedAtMs: number;
}

/** A PVC the resource owns for a cache volume. */
export interface ObservedPvc {
  readonly name: string;
  /** The `reusableCacheVolumes` entry it belongs to. */
  readonly volumeName: string;
  readonly claim?: PvcClaim | null;
  /** Key of the template whose pod used it last (see `capabilitySetKey`). */
  readonly lastUsedByTemplate?: string | null;
  /** When the last claim was released. */
  readonly releasedAtMs?: number | null;
  readonly createdAtMs: number;
  readonly deleting?: boolean;
}

/** What the cache-volume choice needs to know of each pod of the resource. */
export interface CachePod {
  readonly name: string;
  readonly phase: PodPhase;
  /** `claimName`s of the pod's persistentVolumeClaim volumes. */
  readonly mountedPvcNames: readonly string[];
}

export interface CacheTemplate {
  /** Stable key of the template (e.g. `capabilitySetKey` of its capabilities). */
  readonly key: string;
  readonly maxCount: number;
  /** Names of the volumes its containers mount (non-cache names are ignored). */
  readonly mountedVolumeNames: readonly string[];
}

export interface CacheVolumeState {
  readonly volumes: readonly CacheVolumeDefinition[];
  readonly pvcs: readonly ObservedPvc[];
  readonly pods: readonly CachePod[];
  readonly templates: readonly CacheTemplate[];
  readonly now: number;
  /**
   * A claim whose pod is not (yet) seen stays valid this long: the pod may have been created after the cache was
   * read. Afterwards the claim is treated as stale.
   */
  readonly claimGraceMs: number;
}

export interface CacheVolumeRequest {
  readonly podName: string;
  readonly templateKey: string;
}

export type CacheVolumeDecision =
  | { readonly kind: "reuse"; readonly volumeName: string; readonly pvcName: string; readonly message: string }
  | { readonly kind: "create"; readonly volumeName: string; readonly message: string }
  | {
      readonly kind: "wait";
      readonly volumeName: string;
      readonly reason: "cap-reached" | "unknown-template";
      readonly message: string;
    };

export interface CacheVolumeAssignment {
  readonly podName: string;
  /** False when at least one volume must wait: create neither the pod nor its PVCs now, claim nothing. */
  readonly ready: boolean;
  readonly decisions: readonly CacheVolumeDecision[];
}

const isLive = (phase: PodPhase) => phase !== "Succeeded" && phase !== "Failed";

/** The cache volumes a template mounts, in definition order. */
export function templateCacheVolumes(
  template: CacheTemplate,
  volumes: readonly CacheVolumeDefinition[],
): CacheVolumeDefinition[] {
  const mounted = new Set(template.mountedVolumeNames);
  return volumes.filter((v) => mounted.has(v.name));
}

/** Most PVCs a cache volume may have: the sum of maxCount of the templates mounting it. */
export function pvcCap(volumeName: string, templates: readonly CacheTemplate[]): number {
  let cap = 0;
  for (const t of templates) {
    if (t.mountedVolumeNames.includes(volumeName)) cap += Math.max(0, Math.floor(t.maxCount));
  }
  return cap;
}

/**
 * The live pod holding a PVC, if any: a live pod mounting it, or the pod of its claim while that pod is live or,
 * if not seen, still within the claim grace period. Null when the PVC is free.
 */
export function pvcHolder(pvc: ObservedPvc, state: CacheVolumeState): string | null {
  for (const p of state.pods) {
    if (isLive(p.phase) && p.mountedPvcNames.includes(pvc.name)) return p.name;
  }
  const claim = pvc.claim;
  if (claim == null) return null;
  const pod = state.pods.find((p) => p.name === claim.podName);
  if (pod !== undefined) return isLive(pod.phase) ? pod.name : null;
  return state.now - claim.claimedAtMs < state.claimGraceMs ? claim.podName : null;
}

/** Free PVCs of a volume, best first: this template's most recent, then never used, then others least recent. */
export function freePvcsInPreferenceOrder(
  volumeName: string,
  templateKey: string,
  state: CacheVolumeState,
): ObservedPvc[] {
  const free = state.pvcs.filter((p) => p.volumeName === volumeName && !p.deleting && pvcHolder(p, state) === null);
  const group = (p: ObservedPvc) =>
    p.lastUsedByTemplate === templateKey ? 0 : p.lastUsedByTemplate == null || p.lastUsedByTemplate === "" ? 1 : 2;
  const lastUse = (p: ObservedPvc) => p.releasedAtMs ?? p.createdAtMs;
  return free.sort((a, b) => {
    const ga = group(a);
    const gb = group(b);
    if (ga !== gb) return ga - gb;
    let d = 0;
    if (ga === 0) d = lastUse(b) - lastUse(a);
    else if (ga === 2) d = lastUse(a) - lastUse(b);
    else d = a.createdAtMs - b.createdAtMs;
    return d !== 0 ? d : compareStrings(a.name, b.name);
  });
}

/** Decides the PVC of every cache volume the new pod's template mounts. */
export function assignCacheVolumes(state: CacheVolumeState, request: CacheVolumeRequest): CacheVolumeAssignment {
  const template = state.templates.find((t) => t.key === request.templateKey);
  if (template === undefined) {
    return {
      podName: request.podName,
      ready: false,
      decisions: [
        {
          kind: "wait",
          volumeName: "",
          reason: "unknown-template",
          message: `pod ${request.podName}: template ${request.templateKey} is not in the resource`,
        },
      ],
    };
  }
  const decisions: CacheVolumeDecision[] = [];
  for (const volume of templateCacheVolumes(template, state.volumes)) {
    const best = freePvcsInPreferenceOrder(volume.name, request.templateKey, state)[0];
    if (best !== undefined) {
      const warm = best.lastUsedByTemplate === request.templateKey ? " (last used by this template)" : "";
      decisions.push({
        kind: "reuse",
        volumeName: volume.name,
        pvcName: best.name,
        message: `pod ${request.podName} reuses PVC ${best.name} for cache volume ${volume.name}${warm}`,
      });
      continue;
    }
    const existing = state.pvcs.filter((p) => p.volumeName === volume.name).length;
    const cap = pvcCap(volume.name, state.templates);
    if (existing < cap) {
      decisions.push({
        kind: "create",
        volumeName: volume.name,
        message: `pod ${request.podName} gets a new PVC for cache volume ${volume.name} (${existing + 1} of at most ${cap})`,
      });
      continue;
    }
    decisions.push({
      kind: "wait",
      volumeName: volume.name,
      reason: "cap-reached",
      message: `pod ${request.podName} waits for cache volume ${volume.name}: all ${existing} PVCs are held by live pods and the templates' maxCount allow no more than ${cap}`,
    });
  }
  return { podName: request.podName, ready: decisions.every((d) => d.kind !== "wait"), decisions };
}

/**
 * The state after `podName` got `mapping` (cache volume name -> PVC name, reused or newly created): its PVCs are
 * claimed and mounted, so choices for later pods of the same batch skip them and the cap counts the new PVCs.
 */
export function withClaims(
  state: CacheVolumeState,
  podName: string,
  mapping: Readonly<Record<string, string>>,
  now: number,
): CacheVolumeState {
  const claimed = new Set(Object.values(mapping));
  const known = new Set(state.pvcs.map((p) => p.name));
  const claim: PvcClaim = { podName, claimedAtMs: now };
  const pvcs = state.pvcs.map((p) => (claimed.has(p.name) ? { ...p, claim } : p));
  for (const [volumeName, name] of Object.entries(mapping)) {
    if (!known.has(name)) pvcs.push({ name, volumeName, claim, createdAtMs: now });
  }
  return {
    ...state,
    pvcs,
    pods: [...state.pods, { name: podName, phase: "Pending", mountedPvcNames: [...claimed] }],
  };
}

export interface ClaimRelease {
  readonly pvcName: string;
  readonly podName: string;
  readonly reason: "pod-finished" | "pod-gone";
}

/** Claims to release: their pod has finished, or has not been seen for longer than the grace period. */
export function claimsToRelease(state: CacheVolumeState): ClaimRelease[] {
  const out: ClaimRelease[] = [];
  for (const pvc of state.pvcs) {
    const claim = pvc.claim;
    if (claim == null || pvcHolder(pvc, state) !== null) continue;
    const pod = state.pods.find((p) => p.name === claim.podName);
    out.push({ pvcName: pvc.name, podName: claim.podName, reason: pod === undefined ? "pod-gone" : "pod-finished" });
  }
  return out;
}
