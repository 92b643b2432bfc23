/**
 * End to end, the service hook endpoint: the operator as its own process with `--service-hooks` and an idle poll
 * interval of a minute, so that only a delivery can explain a quick reaction; an emulator subscription (created
 * through the REST API, as a project administrator would) POSTs "Run job state changed" events to the operator's
 * endpoint with basic auth. Assertions are on the order of events in the emulator's request and delivery logs, and
 * on the operator's metric, never on wall-clock speed.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { RequestLogEntry } from "../../sim/azure-devops/control.ts";
import { basicAuthHeader } from "../../src/hooks/auth.ts";
import { JOB_STATE_CHANGED_EVENT } from "../../src/hooks/payload.ts";
import type { OperatorProcess } from "../support/operator.ts";
import { eventually, startWorldAndOperator, stopWorldAndOperator, type World } from "../support/world.ts";

const idlePollMs = 60_000;
const hookCredentials = { username: "azure-devops", password: `hook-${Math.random().toString(36).slice(2)}-secret` };

describe("operator: service hooks trigger an early poll", () => {
  let world: World;
  let operator: OperatorProcess;
  let hookUrl: string;
  let metricsUrl: string;

  before(async () => {
    ({ world, operator } = await startWorldAndOperator(
      {},
      {
        settings: [
          "--poll-interval",
          "1s",
          "--idle-poll-interval",
          `${idlePollMs / 1000}s`,
          "--resync-interval",
          "2s",
          "--log-format",
          "text",
          "--log-level",
          "debug",
        ],
        args: ["--leader-elect", "false", "--service-hooks", "true", "--service-hook-port", "0"],
        env: { SERVICE_HOOK_USERNAME: hookCredentials.username, SERVICE_HOOK_PASSWORD: hookCredentials.password },
      },
    ));
    const listening = await operator.waitForLog(/service hook endpoint listening/);
    const hookPort = /port=(\d+)/.exec(listening)?.[1];
    const started = await operator.waitForLog(/operator started/);
    const metricsPort = /port=(\d+)/.exec(started)?.[1];
    assert.ok(hookPort && metricsPort, `${listening}\n${started}`);
    const organization = new URL(world.ado.organizationUrl).pathname.split("/").pop();
    hookUrl = `http://127.0.0.1:${hookPort}/hooks/azure-devops/${organization}`;
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;

    // The subscription, through the service's REST API, with the endpoint's basic auth.
    const res = await fetch(`${world.ado.organizationUrl}/_apis/hooks/subscriptions?api-version=7.1`, {
      method: "POST",
      headers: {
        Authorization: basicAuthHeader({ username: "", password: world.pat }),
        "Content-Type": "application/json",
      },
      body: JSON.stringify({
        publisherId: "pipelines",
        eventType: JOB_STATE_CHANGED_EVENT,
        resourceVersion: "5.1-preview.1",
        consumerId: "webHooks",
        consumerActionId: "httpRequest",
        publisherInputs: {},
        consumerInputs: {
          url: hookUrl,
          basicAuthUsername: hookCredentials.username,
          basicAuthPassword: hookCredentials.password,
        },
      }),
    });
    assert.equal(res.status, 200, await res.text());

    await world.placeholder({ hooked: "1" });
    await world.createResource("hooked", {
      maxTerminatedPodsToKeep: 1,
      podsWithCapabilities: [
        { capabilities: { hooked: "1" }, minCount: 0, maxCount: 2, podTemplateSpec: world.template() },
      ],
    });
    // Idle: the first poll (a change) and the next (none) have been made; the next is a minute away.
    await eventually("the operator's first two job-request polls", () => (jobPolls().length >= 2 ? true : undefined));
    await sleep(1500);
  });
  after(() => stopWorldAndOperator(world, operator));

  /** The operator's job-request lists (only its poller lists a pool's job requests). */
  const jobPolls = (): RequestLogEntry[] =>
    world.ado.control.requests().filter((e) => e.method === "GET" && e.path.toLowerCase().endsWith("/jobrequests"));

  const deliveries = async (): Promise<Record<string, number>> => {
    const text = await (await fetch(metricsUrl)).text();
    const counts: Record<string, number> = {};
    for (const m of text.matchAll(/^azp_scaler_service_hook_deliveries_total\{outcome="([^"]+)"\} (\d+)/gm)) {
      counts[m[1] as string] = Number(m[2]);
    }
    return counts;
  };

  const post = (body: string, authorization?: string) =>
    fetch(hookUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(authorization ? { Authorization: authorization } : {}) },
      body,
    });

  test("an unauthenticated POST gets 401, a malformed one 400, and neither polls or creates anything", async () => {
    const pollsBefore = jobPolls().length;
    const waiting = JSON.stringify({ eventType: JOB_STATE_CHANGED_EVENT, resource: { job: { state: "waiting" } } });
    assert.equal((await post(waiting)).status, 401);
    assert.equal((await post(waiting, basicAuthHeader({ ...hookCredentials, password: "guess" }))).status, 401);
    const malformed = await post("{not json", basicAuthHeader(hookCredentials));
    assert.equal(malformed.status, 400);
    assert.match(await malformed.text(), /not JSON/);
    const wrongEvent = await post(JSON.stringify({ eventType: "git.push" }), basicAuthHeader(hookCredentials));
    assert.equal(wrongEvent.status, 400);

    // Longer than the debounce window and the poller's minimum interval: a triggered poll would have come.
    await sleep(2500);
    assert.equal(jobPolls().length, pollsBefore, "no job-request poll after rejected deliveries");
    assert.equal((await world.pods("hooked")).length, 0);
    const counts = await deliveries();
    assert.equal(counts.unauthorized, 2);
    assert.equal(counts["bad-request"], 2);
    assert.equal(counts.triggered, 0);
    assert.ok(!operator.log().includes(hookCredentials.password), "the password is never logged");
    assert.ok(!operator.log().includes("guess"), "nor a wrong one");
  });

  test("a queued job: the delivery comes, the operator polls right after it, the pod runs the job", async () => {
    const queuedAt = Date.now();
    const earlier = jobPolls().filter((e) => Date.parse(e.time) < queuedAt);
    const job = world.ado.control.queueJob({ pool: world.pool, demands: ["hooked"], durationMs: 500 });
    const finished = await world.ado.control.waitForJob(job.requestId, (j) => j.state === "finished", {
      timeoutMs: 3 * idlePollMs,
    });
    assert.equal(finished.result, "succeeded");
    const pods = await world.pods("hooked");
    assert.equal(pods.length, 1);
    assert.equal(finished.reservedAgent?.name, pods[0]?.metadata.name, "the job ran on the operator's pod");

    // The order: queued -> the waiting delivery (accepted) -> the operator's next job-request poll.
    const delivery = world.ado.control.hooks
      .deliveries()
      .find((d) => d.requestId === job.requestId && d.state === "waiting");
    assert.ok(delivery, "the waiting event was delivered");
    assert.equal(delivery.status, 202);
    const firstPoll = jobPolls().find((e) => Date.parse(e.time) >= Date.parse(finished.queueTime));
    assert.ok(firstPoll, "a poll after the job was queued");
    assert.ok(
      Date.parse(firstPoll.time) >= Date.parse(delivery.time),
      "the first poll after queueing follows the delivery",
    );
    // Only the hook explains that poll: the idle cycle's next one was a minute after the last poll before it.
    const lastBefore = earlier.at(-1);
    assert.ok(lastBefore, "the operator had polled before");
    assert.ok(
      Date.parse(firstPoll.time) < Date.parse(lastBefore.time) + idlePollMs,
      `poll at ${firstPoll.time}, the idle cycle's next poll was due at ${new Date(Date.parse(lastBefore.time) + idlePollMs).toISOString()}`,
    );
    assert.ok(Date.parse(finished.receiveTime ?? "") < Date.parse(lastBefore.time) + idlePollMs, "started before it");
    const counts = await deliveries();
    assert.ok((counts.triggered ?? 0) >= 1, JSON.stringify(counts));
    assert.equal(counts.unauthorized, 2, "the emulator's deliveries all authenticated");
  });
});
