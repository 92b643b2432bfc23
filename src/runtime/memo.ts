/**
 * Values kept by key (pure helper): the common "look it up, else make it and keep it" of the caches that are keyed
 * by object (WeakMap) or by value (Map).
 */

/** What `keptIn` needs of a map: a Map or a WeakMap. */
export interface KeyedStore<K, V> {
  get(key: K): V | undefined;
  set(key: K, value: V): unknown;
}

/** The value kept under `key`; the first time, `make()` is called and its value kept. */
export function keptIn<K, V>(store: KeyedStore<K, V>, key: K, make: () => V): V {
  let value = store.get(key);
  if (value === undefined) {
    value = make();
    store.set(key, value);
  }
  return value;
}
