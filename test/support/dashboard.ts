/**
 * The chart's Grafana dashboard as tests read it: its panels, the PromQL of its targets and variables, the metric
 * names those queries use; and the operator's `/metrics` text as series.
 */
import { join } from "node:path";

export const dashboardFile = join(
  import.meta.dirname,
  "..",
  "..",
  "charts",
  "azure-pipelines-k8s-agent-scaler",
  "dashboards",
  "azure-pipelines-k8s-agent-scaler.json",
);

export interface Target {
  expr?: string;
  refId?: string;
  datasource?: unknown;
}

export interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: unknown;
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}

export interface Dashboard {
  title?: string;
  uid?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: { name: string; type: string; query?: unknown; definition?: string }[] };
}

/** Every panel, those inside collapsed rows too. */
export function panelsOf(dashboard: Dashboard): Panel[] {
  return (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** The PromQL of every target and of every query variable. */
export function queriesOf(dashboard: Dashboard): string[] {
  const targets = panelsOf(dashboard).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
  const variables = (dashboard.templating?.list ?? [])
    .filter((v) => v.type === "query")
    .map((v) => {
      const q = v.query;
      return typeof q === "string" ? q : ((q as { query?: string } | undefined)?.query ?? "");
    });
  return [...targets, ...variables];
}

/** The operator's metric names a query uses (`azp_scaler_...`, histograms with their `_bucket`/`_sum`/`_count`). */
export function metricNamesOf(query: string): string[] {
  return [...new Set(query.match(/\bazp_scaler_[a-z0-9_]+/g) ?? [])];
}

/**
 * Words of a PromQL query that read like metric names and are not the operator's: a selector or a function argument
 * that names some other exporter's metric (the dashboard needs nothing but the operator).
 */
export function foreignMetricNames(query: string): string[] {
  const withoutStrings = query.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  // label_values(metric, label): the second argument is a label.
  const withoutLabelArgs = withoutStrings.replace(
    /label_values\(([^,)]*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)/g,
    "label_values($1)",
  );
  const withoutLabels = withoutLabelArgs
    .replace(/\{[^}]*\}/g, "{}")
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, "");
  const words = withoutLabels.replace(/\[[^\]]*\]/g, "").match(/\b[a-zA-Z_:][a-zA-Z0-9_:]*\b/g) ?? [];
  const promql = new Set([
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "label_values",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
  ]);
  return words.filter((w) => !promql.has(w) && !w.startsWith("azp_scaler_"));
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (the samples; HELP and TYPE lines are skipped). */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`not a sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = (l[2] as string).replace(/\\"/g, '"').replace(/\\n/g, "\n").replace(/\\\\/g, "\\");
    }
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample with this name and (at least) these labels, or undefined. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}
