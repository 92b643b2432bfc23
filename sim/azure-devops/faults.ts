// Fault injection: rules that match requests by path pattern (and optionally method) and make them fail,
// slow down, lose their connection, or hit the rate limiter. Pure matching; randomness is injected.
//
// Patterns are globs over the request path (without the query), case-insensitive: `*` matches within one path
// segment, `**` across segments, everything else literally. E.g. `**/jobrequests` matches every job-request list,
// `/sim-org/_apis/distributedtask/pools/*/agents/*` every single-agent call.

export interface FaultRule {
  /** Glob over the request path. */
  path: string;
  /** Only this HTTP method (any when absent). */
  method?: string;
  /** Probability (0..1) that a matching request is answered with `status`. */
  errorRate?: number;
  /** Status of injected errors. Default 500. */
  status?: number;
  /** Added before the request is handled (ms). */
  latencyMs?: number;
  /** Probability (0..1) that the connection is destroyed without an answer. */
  dropRate?: number;
  /** Forces the rate limiter's answer for matching requests: delayed (200 + headers) or blocked (429). */
  rateLimit?: "delay" | "block";
}

export interface FaultDecision {
  latencyMs: number;
  drop: boolean;
  errorStatus: number | undefined;
  rateLimit: "delay" | "block" | undefined;
  /** Indexes of the rules that matched. */
  matched: number[];
}

export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        re += ".*";
        i++;
      } else {
        re += "[^/]*";
      }
    } else {
      re += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${re}$`, "i");
}

export function validateFaultRule(rule: FaultRule): string | undefined {
  if (typeof rule.path !== "string" || rule.path === "") return "path must be a non-empty glob";
  for (const k of ["errorRate", "dropRate"] as const) {
    const v = rule[k];
    if (v !== undefined && (typeof v !== "number" || v < 0 || v > 1)) return `${k} must be between 0 and 1`;
  }
  if (rule.status !== undefined && (!Number.isInteger(rule.status) || rule.status < 400 || rule.status > 599)) {
    return "status must be an HTTP error status (400-599)";
  }
  if (rule.latencyMs !== undefined && (typeof rule.latencyMs !== "number" || rule.latencyMs < 0)) {
    return "latencyMs must be a non-negative number";
  }
  if (rule.rateLimit !== undefined && rule.rateLimit !== "delay" && rule.rateLimit !== "block") {
    return "rateLimit must be 'delay' or 'block'";
  }
  return undefined;
}

/** Combines every rule that matches: latencies add up, the first drop or error that fires wins. */
export function decideFaults(
  rules: readonly FaultRule[],
  method: string,
  path: string,
  random: () => number,
): FaultDecision {
  const decision: FaultDecision = {
    latencyMs: 0,
    drop: false,
    errorStatus: undefined,
    rateLimit: undefined,
    matched: [],
  };
  rules.forEach((rule, index) => {
    if (rule.method && rule.method.toUpperCase() !== method.toUpperCase()) return;
    if (!globToRegExp(rule.path).test(path)) return;
    decision.matched.push(index);
    decision.latencyMs += rule.latencyMs ?? 0;
    if (!decision.drop && rule.dropRate && random() < rule.dropRate) decision.drop = true;
    if (decision.errorStatus === undefined && rule.errorRate && random() < rule.errorRate) {
      decision.errorStatus = rule.status ?? 500;
    }
    if (!decision.rateLimit && rule.rateLimit) decision.rateLimit = rule.rateLimit;
  });
  return decision;
}
