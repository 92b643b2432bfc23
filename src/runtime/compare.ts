/**
 * The one string order of the project: by UTF-16 code units, the same on every machine and locale (unlike
 * `localeCompare`), so sorted lists, hashes of sorted keys and tie-breaks are reproducible.
 */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Compares objects by a string key, e.g. `pods.sort(byKey((p) => p.name))`. */
export function byKey<T>(key: (item: T) => string): (a: T, b: T) => number {
  return (a, b) => compareStrings(key(a), key(b));
}
