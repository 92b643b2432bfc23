/**
 * The informer's local cache: objects keyed by `namespace/name` (or `name` for cluster-scoped objects), with
 * optional secondary indexes (e.g. pods by owner uid). Objects handed out are the cached instances: treat them as
 * read-only, and copy (`structuredClone`) before changing anything.
 */
import type { KubeObject } from "./types.ts";

/** Computes the index values of an object (e.g. its owners' uids); an object may be in several buckets. */
export type IndexFn<T> = (obj: T) => readonly string[];

/** `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(obj: KubeObject): string {
  const name = obj.metadata?.name;
  if (!name) throw new Error("object has no metadata.name");
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

/** Splits a key made by `objectKey`. */
export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** What `Store.replace` changed, in the order handlers should see it. */
export interface ReplaceDelta<T> {
  added: T[];
  updated: { old: T; obj: T }[];
  /** Objects that were cached but are not in the new list: deleted while nobody watched. */
  deleted: T[];
}

export const namespaceIndex = "namespace";

export class Store<T extends KubeObject> {
  readonly #items = new Map<string, T>();
  readonly #indexers = new Map<string, IndexFn<T>>();
  /** index name -> index value -> keys */
  readonly #indexes = new Map<string, Map<string, Set<string>>>();
  /**
   * `byIndex` answers by index name and value, kept until an object of that bucket is added, replaced or removed:
   * the controller asks for the same owner's pods many times between two changes of them. Shared: never edit one.
   */
  readonly #answers = new Map<string, Map<string, readonly T[]>>();

  constructor(indexers: Record<string, IndexFn<T>> = {}) {
    this.#indexers.set(namespaceIndex, (o) => [o.metadata?.namespace ?? ""]);
    for (const [name, fn] of Object.entries(indexers)) this.#indexers.set(name, fn);
    for (const name of this.#indexers.keys()) this.#indexes.set(name, new Map());
  }

  get size(): number {
    return this.#items.size;
  }

  get(key: string): T | undefined {
    return this.#items.get(key);
  }

  getByName(namespace: string | undefined, name: string): T | undefined {
    return this.#items.get(namespace ? `${namespace}/${name}` : name);
  }

  has(key: string): boolean {
    return this.#items.has(key);
  }

  keys(): string[] {
    return [...this.#items.keys()];
  }

  list(): T[] {
    return [...this.#items.values()];
  }

  /** Every object, as one array that stays the same until an object is added, replaced or removed. Never edit it. */
  all(): readonly T[] {
    this.#all ??= [...this.#items.values()];
    return this.#all;
  }

  #all: readonly T[] | undefined;

  listByNamespace(namespace: string): readonly T[] {
    return this.byIndex(namespaceIndex, namespace);
  }

  /**
   * Objects whose index function returned `value` for index `indexName`: the same array until one of them changes
   * (read-only, like the objects).
   */
  byIndex(indexName: string, value: string): readonly T[] {
    const index = this.#indexes.get(indexName);
    if (!index) throw new Error(`no index named ${indexName}`);
    let answers = this.#answers.get(indexName);
    const kept = answers?.get(value);
    if (kept !== undefined) return kept;
    const keys = index.get(value);
    if (!keys) return EMPTY as readonly T[];
    const out: T[] = [];
    for (const k of keys) {
      const o = this.#items.get(k);
      if (o) out.push(o);
    }
    if (answers === undefined) {
      answers = new Map();
      this.#answers.set(indexName, answers);
    }
    answers.set(value, out);
    return out;
  }

  /** Inserts or replaces; returns the previous object. */
  upsert(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.#items.get(key);
    if (old) this.#unindex(key, old);
    this.#all = undefined;
    this.#items.set(key, obj);
    this.#index(key, obj);
    return old;
  }

  /** Removes by key; returns the removed object. */
  remove(key: string): T | undefined {
    const old = this.#items.get(key);
    if (!old) return undefined;
    this.#unindex(key, old);
    this.#all = undefined;
    this.#items.delete(key);
    return old;
  }

  /**
   * Makes the cache hold exactly `items` (a fresh list) and reports the difference. An object counts as updated
   * only when its resourceVersion changed, so a relist after a harmless watch restart stays quiet.
   */
  replace(items: readonly T[]): ReplaceDelta<T> {
    const delta: ReplaceDelta<T> = { added: [], updated: [], deleted: [] };
    const fresh = new Map<string, T>();
    for (const obj of items) fresh.set(objectKey(obj), obj);
    for (const [key, old] of this.#items) {
      if (!fresh.has(key)) {
        this.remove(key);
        delta.deleted.push(old);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.#items.get(key);
      this.upsert(obj);
      if (!old) delta.added.push(obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) delta.updated.push({ old, obj });
    }
    return delta;
  }

  #index(key: string, obj: T): void {
    for (const [name, fn] of this.#indexers) {
      const index = this.#indexes.get(name) as Map<string, Set<string>>;
      const answers = this.#answers.get(name);
      for (const value of safeIndex(fn, obj)) {
        answers?.delete(value);
        const keys = index.get(value);
        if (keys) keys.add(key);
        else index.set(value, new Set([key]));
      }
    }
  }

  #unindex(key: string, obj: T): void {
    for (const [name, fn] of this.#indexers) {
      const index = this.#indexes.get(name) as Map<string, Set<string>>;
      const answers = this.#answers.get(name);
      for (const value of safeIndex(fn, obj)) {
        answers?.delete(value);
        const keys = index.get(value);
        if (!keys) continue;
        keys.delete(key);
        if (keys.size === 0) index.delete(value);
      }
    }
  }
}

const EMPTY: readonly never[] = Object.freeze([]);

/** An index function that throws must not break the cache: such an object is simply not indexed. */
function safeIndex<T>(fn: IndexFn<T>, obj: T): readonly string[] {
  try {
    return fn(obj);
  } catch {
    return [];
  }
}
