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

/** A well-spread, stable number from a string (FNV-1a, 32 bits): for tie-breaks that must not favour a name. */
export function fingerprintNumber(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Whether two lists hold the same items (by identity, `===`) in the same order. */
export function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two maps hold the same entries (values by identity, `===`). */
export function sameEntries<K, V>(a: ReadonlyMap<K, V>, b: ReadonlyMap<K, V>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (!b.has(k) || b.get(k) !== v) return false;
  return true;
}
