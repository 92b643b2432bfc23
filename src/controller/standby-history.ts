/**
 * The stored form of predictive standby's job history (pure): what one ConfigMap per resource holds, compact and
 * bounded, and how to read it back. One JSON document under the key `history`:
 *
 *   {"version":1,
 *    "templates":{"<capability set key>":{"since":"2026-01-05T08:00:00.000Z","buckets":"5901234:3,2,1:4"}},
 *    "seen":"4711,1,3"}
 *
 * - `templates`: per template (by the key of its capability set, so reordering the entries keeps their histories;
 *   changing an entry's capabilities starts a new one), when recording began and the job counts per 5-minute
 *   bucket: ascending bucket numbers, the first absolute and the others as the difference to the one before, each
 *   followed by `:count` when the count is not 1.
 * - `seen`: request ids already counted that the last poll still listed (ascending, differences as above), so a job
 *   is counted once across reconciles, restarts and leader changes.
 * A week of one job every 5 minutes is 2016 entries of about 2 bytes; `MAX_BUCKETS` bounds the whole document.
 */
import { BUCKET_MS, type JobHistory } from "../scaling/standby.ts";

export const HISTORY_DATA_KEY = "history";
export const HISTORY_VERSION = 1;
/** Bucket entries kept per resource (about 12 weeks of one job every 5 minutes for two templates, under 250 KiB). */
export const MAX_BUCKETS = 50_000;
/** Request ids kept in `seen` (a poll lists at most a few thousand requests). */
export const MAX_SEEN = 20_000;

export interface StoredHistory {
  readonly templates: ReadonlyMap<string, JobHistory>;
  readonly seen: ReadonlySet<number>;
}

export const emptyStoredHistory = (): StoredHistory => ({ templates: new Map(), seen: new Set() });

function encodeSorted(entries: readonly (readonly [number, number])[]): string {
  let previous = 0;
  return entries
    .map(([n, count], i) => {
      const text = String(i === 0 ? n : n - previous);
      previous = n;
      return count === 1 ? text : `${text}:${count}`;
    })
    .join(",");
}

function decodeSorted(text: string, what: string): [number, number][] {
  if (text === "") return [];
  const out: [number, number][] = [];
  let previous = 0;
  for (const [i, part] of text.split(",").entries()) {
    const m = /^(\d+)(?::(\d+))?$/.exec(part);
    if (!m) throw new Error(`${what}: entry ${i + 1} (${JSON.stringify(part.slice(0, 20))}) is not a number[:count]`);
    const n = i === 0 ? Number(m[1]) : previous + Number(m[1]);
    const count = m[2] === undefined ? 1 : Number(m[2]);
    if (!Number.isSafeInteger(n) || !Number.isSafeInteger(count) || count < 1 || (i > 0 && n <= previous)) {
      throw new Error(`${what}: entry ${i + 1} is out of order or out of range`);
    }
    out.push([n, count]);
    previous = n;
  }
  return out;
}

export function encodeHistory(history: StoredHistory): string {
  const templates: Record<string, { since: string; buckets: string }> = {};
  for (const [key, h] of [...history.templates].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    templates[key] = {
      since: new Date(h.since).toISOString(),
      buckets: encodeSorted([...h.buckets].sort(([a], [b]) => a - b)),
    };
  }
  const seen = encodeSorted([...history.seen].sort((a, b) => a - b).map((id) => [id, 1] as const));
  return JSON.stringify({ version: HISTORY_VERSION, templates, seen });
}

/** Reads a stored document; throws an Error saying what is wrong with it. */
export function decodeHistory(text: string): StoredHistory {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== "object" || doc === null) throw new Error("not a JSON object");
  const d = doc as { version?: unknown; templates?: unknown; seen?: unknown };
  if (d.version !== HISTORY_VERSION)
    throw new Error(`version ${JSON.stringify(d.version)} (expected ${HISTORY_VERSION})`);
  if (typeof d.templates !== "object" || d.templates === null) throw new Error("templates: not an object");
  const templates = new Map<string, JobHistory>();
  for (const [key, value] of Object.entries(d.templates as Record<string, unknown>)) {
    const v = value as { since?: unknown; buckets?: unknown } | null;
    const since = typeof v?.since === "string" ? Date.parse(v.since) : Number.NaN;
    if (Number.isNaN(since)) throw new Error(`templates.${key}.since: not a time`);
    if (typeof v?.buckets !== "string") throw new Error(`templates.${key}.buckets: not a string`);
    templates.set(key, { since, buckets: new Map(decodeSorted(v.buckets, `templates.${key}.buckets`)) });
  }
  if (typeof d.seen !== "string") throw new Error("seen: not a string");
  const seen = new Set(decodeSorted(d.seen, "seen").map(([id]) => id));
  return { templates, seen };
}

/**
 * Bounds a history: keeps only the templates still wanted (by key), `seen` ids the last poll still listed (at most
 * `MAX_SEEN`, newest ids first), and at most `maxBuckets` bucket entries in all, dropping the oldest buckets first
 * (the `since` of a template that loses buckets moves past them, so the lost weeks are not read as quiet).
 */
export function boundHistory(
  history: StoredHistory,
  wanted: ReadonlySet<string>,
  listed: ReadonlySet<number> | undefined,
  maxBuckets = MAX_BUCKETS,
): StoredHistory {
  const kept = [...history.templates].filter(([key]) => wanted.has(key));
  const total = kept.reduce((n, [, h]) => n + h.buckets.size, 0);
  let templates = new Map(kept);
  if (total > maxBuckets) {
    const all = kept.flatMap(([key, h]) => [...h.buckets.keys()].map((b) => [key, b] as const));
    all.sort((a, b) => a[1] - b[1]);
    const drop = all.slice(0, total - maxBuckets);
    templates = new Map();
    for (const [key, h] of kept) {
      const gone = drop.filter(([k]) => k === key).map(([, b]) => b);
      if (gone.length === 0) {
        templates.set(key, h);
        continue;
      }
      const last = Math.max(...gone);
      const buckets = new Map([...h.buckets].filter(([b]) => b > last));
      // The dropped buckets are 5-minute buckets: `since` moves to the start of the next one.
      templates.set(key, { since: Math.max(h.since, (last + 1) * BUCKET_MS), buckets });
    }
  }
  let seen = listed === undefined ? [...history.seen] : [...history.seen].filter((id) => listed.has(id));
  if (seen.length > MAX_SEEN) seen = seen.sort((a, b) => b - a).slice(0, MAX_SEEN);
  return { templates, seen: new Set(seen) };
}
