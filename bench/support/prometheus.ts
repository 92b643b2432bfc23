/**
 * Reading Prometheus text exposition (the operator's `/metrics`, the API server's): samples by name and labels,
 * counters summed over matching series, histograms, the difference of two scrapes, and quantile estimates from
 * bucket counts (linear interpolation within a bucket, as PromQL's `histogram_quantile` does).
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const lineRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample of a scrape (comments and malformed lines skipped). */
export function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = lineRe.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(labelRe)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, "$1");
    const raw = m[3] as string;
    const value = raw === "+Inf" ? Number.POSITIVE_INFINITY : raw === "-Inf" ? Number.NEGATIVE_INFINITY : Number(raw);
    out.push({ name: m[1] as string, labels, value });
  }
  return out;
}

export type LabelFilter = Record<string, string | ((value: string) => boolean)>;

function matches(labels: Record<string, string>, filter: LabelFilter): boolean {
  for (const [k, want] of Object.entries(filter)) {
    const v = labels[k];
    if (v === undefined) return false;
    if (typeof want === "string" ? v !== want : !want(v)) return false;
  }
  return true;
}

/** The sum of the samples named `name` whose labels match `filter` (0 when none). */
export function sumOf(samples: readonly Sample[], name: string, filter: LabelFilter = {}): number {
  let total = 0;
  for (const s of samples) if (s.name === name && matches(s.labels, filter)) total += s.value;
  return total;
}

/** The largest sample named `name` (NaN when none). */
export function maxOf(samples: readonly Sample[], name: string, filter: LabelFilter = {}): number {
  let max = Number.NaN;
  for (const s of samples) {
    if (s.name === name && matches(s.labels, filter)) max = Number.isNaN(max) ? s.value : Math.max(max, s.value);
  }
  return max;
}

export interface Histogram {
  /** Cumulative counts by upper bound, ascending, +Inf last. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

/** A histogram (summed over the series matching `filter`). */
export function histogramOf(samples: readonly Sample[], name: string, filter: LabelFilter = {}): Histogram {
  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !matches(s.labels, filter)) continue;
    const le = s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return {
    buckets: [...byLe.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count })),
    sum: sumOf(samples, `${name}_sum`, filter),
    count: sumOf(samples, `${name}_count`, filter),
  };
}

/** What was observed between two scrapes of the same histogram. */
export function histogramDelta(before: Histogram, after: Histogram): Histogram {
  const prior = new Map(before.buckets.map((b) => [b.le, b.count]));
  return {
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (prior.get(b.le) ?? 0) })),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/**
 * The q-quantile (0..1) estimated from the buckets: linear within the bucket it falls in (from 0 for the first);
 * in the +Inf bucket, the largest finite bound. NaN for an empty histogram.
 */
export function histogramQuantile(h: Histogram, q: number): number {
  const total = h.buckets.at(-1)?.count ?? 0;
  if (total <= 0) return Number.NaN;
  const rank = q * total;
  let lowerLe = 0;
  let lowerCount = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return lowerLe;
      const inBucket = b.count - lowerCount;
      return inBucket <= 0 ? b.le : lowerLe + ((b.le - lowerLe) * (rank - lowerCount)) / inBucket;
    }
    lowerLe = b.le;
    lowerCount = b.count;
  }
  return lowerLe;
}

/** The smallest bucket bound with at least a share q of the observations (an upper bound of the quantile). */
export function histogramBound(h: Histogram, q: number): number {
  const total = h.buckets.at(-1)?.count ?? 0;
  if (total <= 0) return Number.NaN;
  return h.buckets.find((b) => b.count >= q * total)?.le ?? Number.POSITIVE_INFINITY;
}
