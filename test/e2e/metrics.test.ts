/**
 * End to end, the operator's `/metrics` while it serves jobs: job waits per resource and template, queued and
 * unserved jobs per pool by reason, placeholders, Azure DevOps requests and rate-limit delays, poll failures; no
 * secret in any label. Then the chart's Grafana dashboard (rendered by helm with the value on): every metric its
 * queries use has samples in that live `/metrics`.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { find, helmTemplate } from "../deploy/support.ts";
import {
  type Dashboard,
  metricNamesOf,
  parseExposition,
  queriesOf,
  type Sample,
  sampleValue,
} from "../support/dashboard.ts";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

describe("operator metrics and the Grafana dashboard", () => {
  let world: World;
  let operator: OperatorProcess;
  let port: number;
  before(async () => {
    ({ world, operator } = await startWorldAndOperator());
    const line = await operator.waitForLog(/operator started/);
    port = Number(/port=(\d+)/.exec(line)?.[1]);
    assert.ok(port > 0, line);
  });
  after(() => stopWorldAndOperator(world, operator));

  async function scrape(): Promise<{ text: string; samples: Sample[] }> {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    return { text, samples: parseExposition(text) };
  }
  /** Waits until `check` holds for a scrape. */
  const until = (what: string, check: (samples: Sample[]) => boolean) =>
    eventually(what, async () => {
      const s = (await scrape()).samples;
      return check(s) ? s : undefined;
    });
  const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
    sampleValue(samples, name, labels) ?? 0;

  test("jobs, pools, requests: the metrics move; then every metric of the dashboard has samples", async () => {
    const resource = { namespace: world.ns, name: "metrics" };
    const pool = { pool: world.pool };
    await world.placeholder({ metrics: "1" });
    await world.placeholder({ "metrics-nobody": "1" });
    await world.createResource("metrics", {
      maxTerminatedPodsToKeep: 0,
      podsWithCapabilities: [
        { capabilities: { metrics: "1" }, minCount: 0, maxCount: 1, podTemplateSpec: world.template() },
      ],
    });

    // A job that runs until cancelled takes the one pod maxCount allows.
    const long = world.ado.control.queueJob({ pool: world.pool, demands: ["metrics"], durationMs: 600_000 });
    await world.ado.control.waitForJob(long.requestId, (j) => j.state === "running", { timeoutMs: 90_000 });
    // One more that fits (blocked by maxCount) and one no entry fits (kept queued by a placeholder).
    const blocked = world.ado.control.queueJob({ pool: world.pool, demands: ["metrics"], durationMs: 3000 });
    const nobody = world.ado.control.queueJob({ pool: world.pool, demands: ["metrics-nobody"], durationMs: 500 });

    let s = await until(
      "queued and unserved jobs by reason, the first job's waits",
      (x) =>
        value(x, "azp_scaler_queued_jobs", pool) === 2 &&
        value(x, "azp_scaler_unserved_jobs", { ...pool, reason: "max-count" }) === 1 &&
        value(x, "azp_scaler_unserved_jobs", { ...pool, reason: "no-matching-template" }) === 1 &&
        value(x, "azp_scaler_job_wait_until_assigned_seconds_count", { ...resource, template: "0" }) === 1 &&
        // The blocked job is the resource's; the other is nobody's.
        value(x, "azp_scaler_pending_jobs", resource) === 1 &&
        value(x, "azp_scaler_agent_pods", { ...resource, state: "busy" }) === 1,
    );
    assert.equal(value(s, "azp_scaler_job_wait_until_pod_created_seconds_count", { ...resource, template: "0" }), 1);
    assert.equal(value(s, "azp_scaler_unserved_jobs", { ...pool, reason: "extra-agent-containers-refused" }), 0);

    // The operator registers the placeholder of its entry.
    s = await until(
      "placeholders wanted and registered",
      (x) =>
        value(x, "azp_scaler_placeholder_agents", { ...pool, state: "wanted" }) === 1 &&
        value(x, "azp_scaler_placeholder_agents", { ...pool, state: "registered" }) === 1,
    );
    for (const operation of ["find-pool", "list-job-requests", "list-agents", "register-agent"]) {
      assert.ok(value(s, "azp_scaler_azure_devops_requests_total", { operation, status_class: "2xx" }) > 0, operation);
    }
    const headroom = s.filter((x) => x.name === "azp_scaler_azure_devops_rate_limit_remaining_ratio");
    assert.equal(headroom.length, 1, "one identity");
    assert.match(headroom[0]?.labels.identity ?? "", /^pat:[0-9a-f]{16}$/);
    assert.equal(headroom[0]?.value, 1, "no budget headers: the whole budget");

    // The service delays the identity's requests for a while: delays by header, and the budget left.
    world.ado.control.addFault({ path: "**/jobrequests", rateLimit: "delay" });
    s = await until(
      "rate-limit delays",
      (x) =>
        x.some((m) => m.name === "azp_scaler_azure_devops_rate_limit_delay_seconds_count" && m.value > 0) &&
        value(x, "azp_scaler_azure_devops_rate_limit_remaining_ratio") < 1,
    );
    assert.ok(value(s, "azp_scaler_azure_devops_rate_limit_delay_seconds_count", { header: "retry-after" }) > 0);
    world.ado.control.clearFaults();

    // The poll fails (the PAT refused): 4xx requests, a poll failure seen by the reconciles.
    world.ado.control.addFault({ path: "**/jobrequests", errorRate: 1, status: 401 });
    await until(
      "a refused poll",
      (x) =>
        value(x, "azp_scaler_azure_devops_requests_total", { operation: "list-job-requests", status_class: "4xx" }) >
          0 && value(x, "azp_scaler_azure_devops_errors_total", { kind: "auth" }) > 0,
    );
    world.ado.control.clearFaults();

    // The long job ends; the blocked one gets the pod, its waits are observed; the finished pod is deleted.
    world.ado.control.cancelJob(long.requestId);
    await world.ado.control.waitForJob(blocked.requestId, (j) => j.state === "finished", { timeoutMs: 90_000 });
    s = await until(
      "the second job's waits, pods deleted, nothing blocked",
      (x) =>
        value(x, "azp_scaler_job_wait_until_assigned_seconds_count", { ...resource, template: "0" }) === 2 &&
        value(x, "azp_scaler_pods_deleted_total", { ...resource, reason: "finished" }) > 0 &&
        value(x, "azp_scaler_unserved_jobs", { ...pool, reason: "max-count" }) === 0 &&
        value(x, "azp_scaler_queued_jobs", pool) === 1,
    );
    assert.equal(value(s, "azp_scaler_job_wait_until_pod_created_seconds_count", { ...resource, template: "0" }), 2);
    assert.equal(value(s, "azp_scaler_unserved_jobs", { ...pool, reason: "no-matching-template" }), 1);

    // The dashboard, as the chart installs it: every metric its queries use is in this /metrics, with samples.
    const objs = await helmTemplate({ values: { metrics: { grafanaDashboard: { enabled: true } } } });
    const configMap = find(objs, "ConfigMap", "test-azure-pipelines-k8s-agent-scaler-dashboard");
    const dashboard = JSON.parse(configMap.data["azure-pipelines-k8s-agent-scaler.json"]) as Dashboard;
    const used = [...new Set(queriesOf(dashboard).flatMap(metricNamesOf))].sort();
    assert.ok(used.length >= 15, used.join(", "));
    const { text, samples } = await scrape();
    const served = new Set(samples.map((x) => x.name));
    assert.deepEqual(
      used.filter((n) => !served.has(n)),
      [],
      "metrics the dashboard queries that the operator does not serve",
    );

    // No label holds the PAT or its Basic encoding.
    for (const secret of [world.pat, Buffer.from(`:${world.pat}`).toString("base64")]) {
      assert.ok(!text.includes(secret), "a secret in /metrics");
    }
    world.ado.control.cancelJob(nobody.requestId);
  });
});
