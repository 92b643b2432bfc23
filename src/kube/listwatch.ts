/**
 * The list and watch functions an informer is built on: the seam between the informer's logic and the API
 * server. `listWatchFor` makes them from a KubeClient for one resource type, in one namespace or all of them,
 * with optional label and field selectors; unit tests pass their own.
 */
import type { KubeClient, WatchEvent } from "./client.ts";
import { type ResourceType, resourcePath } from "./resource.ts";
import type { KubeList, KubeObject } from "./types.ts";

export interface ListOptions {
  signal: AbortSignal;
}

export interface WatchOptions {
  /** Resume point: events after this version are delivered. */
  resourceVersion: string;
  /** Asks the server to end the watch after this many seconds (it then simply closes the stream). */
  timeoutSeconds: number;
  signal: AbortSignal;
}

export interface ListWatch<T extends KubeObject> {
  /** A complete, consistent list (all pages) with the list's resourceVersion in `metadata`. */
  list(options: ListOptions): Promise<KubeList<T>>;
  /**
   * Streams events to `onEvent` until the server ends the stream (resolves), or fails (rejects). Must ask for
   * bookmarks. If `onEvent` throws, the watch must stop and reject with that error.
   */
  watch(options: WatchOptions, onEvent: (event: WatchEvent<T>) => void): Promise<void>;
}

export interface ListWatchTarget {
  resource: ResourceType;
  /** Omit (or empty) for all namespaces, and for cluster-scoped resources. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size of the list; default 500. */
  pageSize?: number;
  /** Per-request timeout of list pages (ms); default: the client's. */
  listTimeoutMs?: number;
}

/** List and watch for one resource type through a KubeClient. */
export function listWatchFor<T extends KubeObject>(client: KubeClient, target: ListWatchTarget): ListWatch<T> {
  const path = resourcePath(target.resource, target.namespace ? { namespace: target.namespace } : {});
  const selectors = {
    labelSelector: target.labelSelector || undefined,
    fieldSelector: target.fieldSelector || undefined,
  };
  const limit = target.pageSize ?? 500;
  return {
    async list({ signal }) {
      const items: T[] = [];
      let resourceVersion: string | undefined;
      let cont: string | undefined;
      do {
        const page: KubeList<T> = await client.request<KubeList<T>>({
          path,
          query: { ...selectors, limit, continue: cont },
          signal,
          ...(target.listTimeoutMs ? { timeoutMs: target.listTimeoutMs } : {}),
        });
        items.push(...(page.items ?? []));
        // Every page of a paginated list is served at the first page's resourceVersion.
        resourceVersion ??= page.metadata?.resourceVersion;
        cont = page.metadata?.continue || undefined;
      } while (cont);
      return { metadata: { resourceVersion: resourceVersion ?? "" }, items };
    },
    watch({ resourceVersion, timeoutSeconds, signal }, onEvent) {
      return client.watch<T>(
        {
          path,
          query: { ...selectors, resourceVersion, timeoutSeconds, allowWatchBookmarks: true },
          signal,
          // Socket idle timeout: a backstop well past the server-side timeout; the informer's watchdog is the
          // primary guard against a silent stream.
          timeoutMs: (timeoutSeconds + 60) * 1000,
        },
        onEvent,
      );
    },
  };
}
