/**
 * The Kubernetes writer port over the project's client: pod create / delete / patch, cache-volume PVC create and
 * conditional annotation patches, and the resource's status. A 404 is "gone" (the goal is reached or moot), a 409
 * on a conditional write is "conflict"; anything else is thrown for the caller to report.
 */
import { pvcAnnotations, resourcePath } from "../api/v1/index.ts";
import { isConflict, isNotFound, KubeApiError, type KubeClient } from "../kube/client.ts";
import { type JsonPatchOperation, jsonPatch, mergePatch, patchStatus, strategicMergePatch } from "../kube/patch.ts";
import { errorMessage } from "../runtime/logger.ts";
import type { KubeWriter, WriteResult } from "./ports.ts";

const podsPath = (ns: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/pods`;
const pvcsPath = (ns: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/persistentvolumeclaims`;

async function goneIfNotFound(write: Promise<unknown>): Promise<WriteResult> {
  try {
    await write;
    return "done";
  } catch (err) {
    if (isNotFound(err)) return "gone";
    throw err;
  }
}

export function kubeWriter(client: KubeClient): KubeWriter {
  return {
    async createPod(ns, pod) {
      try {
        const created = await client.request<{ metadata?: { resourceVersion?: string } }>({
          method: "POST",
          path: podsPath(ns),
          body: pod,
        });
        const resourceVersion = created?.metadata?.resourceVersion;
        return { outcome: "created", ...(resourceVersion ? { resourceVersion } : {}) };
      } catch (err) {
        // A 4xx other than a timeout means the API server refused: no pod. Anything else: it may have been stored.
        const refused = err instanceof KubeApiError && err.status >= 400 && err.status < 500 && err.status !== 408;
        return { outcome: refused ? "refused" : "unknown", message: errorMessage(err) };
      }
    },
    async deletePod(ns, name, resourceVersion) {
      const path = `${podsPath(ns)}/${encodeURIComponent(name)}`;
      if (resourceVersion === undefined) return goneIfNotFound(client.request({ method: "DELETE", path }));
      const body = { apiVersion: "v1", kind: "DeleteOptions", preconditions: { resourceVersion } };
      try {
        return await goneIfNotFound(client.request({ method: "DELETE", path, body }));
      } catch (err) {
        if (isConflict(err)) return "changed";
        throw err;
      }
    },
    patchPod: (ns, name, patch) => {
      const path = `${podsPath(ns)}/${encodeURIComponent(name)}`;
      return goneIfNotFound(
        patch.type === "strategic"
          ? strategicMergePatch(client, path, patch.body)
          : mergePatch(client, path, patch.body),
      );
    },
    async createPvc(ns, pvc) {
      await client.request({ method: "POST", path: pvcsPath(ns), body: pvc });
    },
    async patchPvcAnnotations(ns, name, annotations, resourceVersion) {
      const metadata = resourceVersion === undefined ? { annotations } : { resourceVersion, annotations };
      try {
        await mergePatch(client, `${pvcsPath(ns)}/${encodeURIComponent(name)}`, { metadata });
        return "done";
      } catch (err) {
        if (isNotFound(err)) return "gone";
        if (isConflict(err)) return "conflict";
        throw err;
      }
    },
    async releasePvcClaim(ns, name, holder, annotations) {
      const pointer = (key: string) => `/metadata/annotations/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
      const operations: JsonPatchOperation[] = [
        { op: "test", path: pointer(pvcAnnotations.claimedBy), value: holder },
        { op: "remove", path: pointer(pvcAnnotations.claimedBy) },
        ...Object.entries(annotations).map(([k, v]) => ({ op: "add" as const, path: pointer(k), value: v })),
      ];
      try {
        await jsonPatch(client, `${pvcsPath(ns)}/${encodeURIComponent(name)}`, operations);
        return "done";
      } catch (err) {
        if (isNotFound(err)) return "gone";
        // A failed `test` (the claim changed or is gone) is refused as invalid (422).
        if (isConflict(err) || (err instanceof KubeApiError && err.status === 422)) return "conflict";
        throw err;
      }
    },
    async liveResource(ns, name) {
      try {
        const r = await client.request<{ metadata?: { uid?: string; deletionTimestamp?: string } }>({
          path: resourcePath(ns, name),
        });
        return { uid: r.metadata?.uid ?? "", deleting: Boolean(r.metadata?.deletionTimestamp) };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async setFinalizers(ns, name, finalizers, resourceVersion) {
      const metadata = resourceVersion === undefined ? { finalizers } : { finalizers, resourceVersion };
      try {
        await mergePatch(client, resourcePath(ns, name), { metadata });
        return "done";
      } catch (err) {
        if (isNotFound(err)) return "gone";
        if (isConflict(err)) return "conflict";
        throw err;
      }
    },
    async patchStatus(ns, name, status) {
      try {
        await patchStatus(client, resourcePath(ns, name), { status });
        return "done";
      } catch (err) {
        if (isNotFound(err)) return "gone";
        if (isConflict(err)) return "conflict";
        throw err;
      }
    },
  };
}
