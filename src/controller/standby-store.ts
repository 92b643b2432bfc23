/**
 * The edges of the standby work (standby.ts): the clock standby schedules and job histories are read in, and where
 * a resource's job history is kept (a ConfigMap it owns, garbage-collected with it).
 */
import { controllerOwnerReference, labels, MANAGED_BY_VALUE } from "../api/v1/index.ts";
import { isConflict, isNotFound, type KubeClient } from "../kube/client.ts";
import { labelValue } from "../pods/build.ts";
import type { Resource } from "./ports.ts";
import { HISTORY_DATA_KEY } from "./standby-history.ts";

// ---------------------------------------------------------------------------------------------------------------
// The clock schedules and histories are read in

/**
 * The time standby schedules and the job history are read in. In production it is the real clock. For tests only,
 * the operator can start it at another moment and run it faster (`--standby-clock-start`, `--standby-clock-rate`),
 * so that a window opening on Monday 08:00 or last week's burst can be shown in seconds; nothing else of the
 * operator (idle periods, expectations, events) uses it.
 */
export interface StandbyClock {
  now(): number;
  /** The standby time of an instant of the real clock (a job's queue time). */
  fromReal(realMs: number): number;
  /** Real milliseconds for a span of standby time. */
  realDelay(standbyMs: number): number;
}

export function standbyClock(realNow: () => number, test?: { startMs: number; rate: number }): StandbyClock {
  if (test === undefined) return { now: realNow, fromReal: (t) => t, realDelay: (ms) => ms };
  const realStart = realNow();
  const fromReal = (t: number) => test.startMs + (t - realStart) * test.rate;
  return { now: () => fromReal(realNow()), fromReal, realDelay: (ms) => ms / test.rate };
}

// ---------------------------------------------------------------------------------------------------------------
// Where the history is kept

export type HistoryWrite = { outcome: "written"; resourceVersion: string } | { outcome: "conflict" };

export interface HistoryStore {
  /** The stored document and its resourceVersion; undefined when there is none. */
  read(namespace: string, name: string): Promise<{ resourceVersion: string; text: string | undefined } | undefined>;
  /** Creates (no resourceVersion) or replaces (with one, conditionally) the document. */
  write(
    namespace: string,
    name: string,
    text: string,
    options: { resourceVersion?: string | undefined; owner: Resource },
  ): Promise<HistoryWrite>;
}

/** Name of the resource's history ConfigMap: `<resource>-standby-history`, shortened with a hash when too long. */
export function historyConfigMapName(resourceName: string): string {
  const name = `${resourceName}-standby-history`;
  if (name.length <= 253) return name;
  let h = 0;
  for (const c of resourceName) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
  return `${resourceName.slice(0, 253 - 25).replace(/[-.]+$/, "")}-${h.toString(16).padStart(8, "0")}-standby-history`;
}

interface ConfigMap {
  metadata: { name: string; resourceVersion?: string };
  data?: Record<string, string>;
}

/** The history as a ConfigMap per resource, owned by it (garbage-collected with it). */
export function configMapHistoryStore(client: KubeClient): HistoryStore {
  const path = (ns: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/configmaps`;
  return {
    async read(ns, name) {
      try {
        const cm = await client.request<ConfigMap>({ path: `${path(ns)}/${encodeURIComponent(name)}` });
        return { resourceVersion: cm.metadata.resourceVersion ?? "", text: cm.data?.[HISTORY_DATA_KEY] };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async write(ns, name, text, { resourceVersion, owner }) {
      const body = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: {
          name,
          ...(resourceVersion ? { resourceVersion } : {}),
          labels: { [labels.managedBy]: MANAGED_BY_VALUE, [labels.resource]: labelValue(owner.metadata.name) },
          ownerReferences: [controllerOwnerReference(owner)],
        },
        data: { [HISTORY_DATA_KEY]: text },
      };
      try {
        const cm = await client.request<ConfigMap>(
          resourceVersion
            ? { method: "PUT", path: `${path(ns)}/${encodeURIComponent(name)}`, body }
            : { method: "POST", path: path(ns), body },
        );
        return { outcome: "written", resourceVersion: cm.metadata.resourceVersion ?? "" };
      } catch (err) {
        // 409: changed since read, or created by someone else meanwhile; 404: deleted since read.
        if (isConflict(err) || isNotFound(err)) return { outcome: "conflict" };
        throw err;
      }
    },
  };
}
