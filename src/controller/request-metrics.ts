/**
 * Azure DevOps requests as metrics: what the clients (`onRequest`) and the Entra ID credentials (`onTokenRequest`)
 * observe becomes request counts by operation and status class, latencies, the rate-limit headroom of each identity
 * and the delays the service imposed. Labels hold operations, status classes and identity keys (`pat:<hash>`,
 * `token:entra:<tenant>/<client>`): never a URL, an id or a secret.
 */
import type { RequestObservation } from "../azure-devops/client.ts";
import type { EntraIdErrorKind, TokenRequestObservation } from "../azure-devops/entra-id.ts";
import type { Metrics } from "../observability/metrics.ts";

export type StatusClass = "2xx" | "3xx" | "4xx" | "5xx" | "network" | "other";

/** The class of an HTTP status; `network` when no answer came. */
export function statusClass(status: number | undefined): StatusClass {
  if (status === undefined) return "network";
  if (status >= 200 && status < 600) return `${Math.floor(status / 100)}xx` as StatusClass;
  return "other";
}

/** The class of a token request's outcome, as close to HTTP as the identity library lets us tell. */
export function tokenStatusClass(error: EntraIdErrorKind | undefined): StatusClass {
  switch (error) {
    case undefined:
      return "2xx";
    case "bad-secret":
    case "unknown-client":
    case "unknown-tenant":
    case "federation":
    case "refused":
      return "4xx";
    case "unavailable":
      return "5xx";
    case "unreachable":
    case "untrusted-certificate":
      return "network";
    default:
      return "other";
  }
}

/** One HTTP attempt of a client. */
export function recordAzureDevOpsRequest(metrics: Metrics, o: RequestObservation): void {
  metrics.azureDevOpsRequests.inc({ operation: o.operation, status_class: statusClass(o.status) });
  metrics.azureDevOpsRequestDuration.observe({ operation: o.operation }, o.durationMs / 1000);
  if (o.rateLimit === undefined) return;
  // The service sends budget headers only under pressure: without them the whole budget is there.
  // A bare 429 leaves nothing to spend.
  metrics.rateLimitRemaining.set({ identity: o.identity }, o.remainingRatio ?? (o.status === 429 ? 0 : 1));
  const { delayMs, retryAfterMs } = o.rateLimit;
  if (delayMs !== undefined && delayMs > 0) {
    metrics.rateLimitDelay.observe({ identity: o.identity, header: "x-ratelimit-delay" }, delayMs / 1000);
  }
  if (retryAfterMs !== undefined && retryAfterMs > 0) {
    metrics.rateLimitDelay.observe({ identity: o.identity, header: "retry-after" }, retryAfterMs / 1000);
  }
}

/** The `onRequest` observer of a client, writing to these metrics. */
export function requestRecorder(metrics: Metrics): (observation: RequestObservation) => void {
  return (observation) => recordAzureDevOpsRequest(metrics, observation);
}

/** One Entra ID token request (operation `token`). */
export function recordTokenRequest(metrics: Metrics, o: TokenRequestObservation): void {
  metrics.azureDevOpsRequests.inc({ operation: "token", status_class: tokenStatusClass(o.error) });
  metrics.azureDevOpsRequestDuration.observe({ operation: "token" }, o.durationMs / 1000);
}
