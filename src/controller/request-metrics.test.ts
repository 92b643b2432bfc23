import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { RequestObservation } from "../azure-devops/client.ts";
import type { EntraIdErrorKind } from "../azure-devops/entra-id.ts";
import { createMetrics } from "../observability/metrics.ts";
import {
  recordAzureDevOpsRequest,
  recordTokenRequest,
  type StatusClass,
  statusClass,
  tokenStatusClass,
} from "./request-metrics.ts";

describe("statusClass", () => {
  const cases: [number | undefined, StatusClass][] = [
    [200, "2xx"],
    [203, "2xx"],
    [204, "2xx"],
    [302, "3xx"],
    [401, "4xx"],
    [429, "4xx"],
    [503, "5xx"],
    [undefined, "network"],
    [0, "other"],
    [999, "other"],
  ];
  for (const [status, expected] of cases)
    test(`${status} -> ${expected}`, () => assert.equal(statusClass(status), expected));
});

describe("tokenStatusClass", () => {
  const cases: [EntraIdErrorKind | undefined, StatusClass][] = [
    [undefined, "2xx"],
    ["bad-secret", "4xx"],
    ["federation", "4xx"],
    ["unavailable", "5xx"],
    ["unreachable", "network"],
    ["untrusted-certificate", "network"],
    ["configuration", "other"],
    ["unexpected", "other"],
  ];
  for (const [kind, expected] of cases)
    test(`${kind} -> ${expected}`, () => assert.equal(tokenStatusClass(kind), expected));
});

const observation = (o: Partial<RequestObservation>): RequestObservation => ({
  operation: "list-job-requests",
  method: "GET",
  status: 200,
  durationMs: 40,
  identity: "pat:0123456789abcdef",
  rateLimit: { status: 200 },
  remainingRatio: undefined,
  ...o,
});

async function text(metrics: ReturnType<typeof createMetrics>): Promise<string> {
  return metrics.registry.metrics();
}

describe("recordAzureDevOpsRequest", () => {
  test("counts by operation and status class, observes the latency", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    recordAzureDevOpsRequest(metrics, observation({}));
    recordAzureDevOpsRequest(metrics, observation({ status: 503 }));
    recordAzureDevOpsRequest(metrics, observation({ operation: "find-pool", status: undefined, rateLimit: undefined }));
    const out = await text(metrics);
    assert.match(out, /azp_scaler_azure_devops_requests_total\{operation="list-job-requests",status_class="2xx"\} 1/);
    assert.match(out, /azp_scaler_azure_devops_requests_total\{operation="list-job-requests",status_class="5xx"\} 1/);
    assert.match(out, /azp_scaler_azure_devops_requests_total\{operation="find-pool",status_class="network"\} 1/);
    assert.match(out, /azp_scaler_azure_devops_request_duration_seconds_sum\{operation="list-job-requests"\} 0\.08/);
  });

  const headroom: { name: string; o: Partial<RequestObservation>; expect: number | undefined }[] = [
    { name: "no budget headers: the whole budget", o: {}, expect: 1 },
    { name: "the governor's ratio", o: { remainingRatio: 0.25 }, expect: 0.25 },
    { name: "a bare 429: nothing left", o: { status: 429, rateLimit: { status: 429 } }, expect: 0 },
    { name: "no answer: unchanged (no series)", o: { status: undefined, rateLimit: undefined }, expect: undefined },
  ];
  for (const c of headroom) {
    test(`headroom: ${c.name}`, async () => {
      const metrics = createMetrics({ defaultMetrics: false });
      recordAzureDevOpsRequest(metrics, observation(c.o));
      const values = (await metrics.rateLimitRemaining.get()).values;
      assert.deepEqual(
        values.map((v) => v.value),
        c.expect === undefined ? [] : [c.expect],
      );
      if (c.expect !== undefined) assert.deepEqual(values[0]?.labels, { identity: "pat:0123456789abcdef" });
    });
  }

  test("the delays the service imposed, by header", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    recordAzureDevOpsRequest(metrics, observation({ rateLimit: { status: 200, delayMs: 200, retryAfterMs: 1000 } }));
    recordAzureDevOpsRequest(metrics, observation({ rateLimit: { status: 200, delayMs: 0 } }));
    const out = await text(metrics);
    assert.match(
      out,
      /azp_scaler_azure_devops_rate_limit_delay_seconds_count\{identity="pat:0123456789abcdef",header="x-ratelimit-delay"\} 1/,
    );
    assert.match(
      out,
      /azp_scaler_azure_devops_rate_limit_delay_seconds_sum\{identity="pat:0123456789abcdef",header="retry-after"\} 1\n/,
    );
  });
});

test("recordTokenRequest: operation token", async () => {
  const metrics = createMetrics({ defaultMetrics: false });
  recordTokenRequest(metrics, { identity: "entra:t/c", durationMs: 100 });
  recordTokenRequest(metrics, { identity: "entra:t/c", durationMs: 100, error: "bad-secret" });
  const out = await text(metrics);
  assert.match(out, /azp_scaler_azure_devops_requests_total\{operation="token",status_class="2xx"\} 1/);
  assert.match(out, /azp_scaler_azure_devops_requests_total\{operation="token",status_class="4xx"\} 1/);
  assert.match(out, /azp_scaler_azure_devops_request_duration_seconds_count\{operation="token"\} 2/);
});
