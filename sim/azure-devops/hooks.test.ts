import assert from "node:assert/strict";
import { test } from "node:test";
import type { JobRecord } from "./engine.ts";
import { ServiceError } from "./errors.ts";
import {
  decideLoss,
  deliveryHeaders,
  type HookJobState,
  type HookSubscription,
  hookJobState,
  hookSettingsProblem,
  JOB_STATE_CHANGED_EVENT,
  jobStateChangedPayload,
  MASKED,
  type SubscriptionInput,
  seededRandom,
  simProject,
  subscriptionMatches,
  subscriptionView,
  validateSubscription,
} from "./hooks.ts";

const org = "sim-org";
const project = simProject(org);

const input = (extra: Partial<SubscriptionInput> = {}): SubscriptionInput => ({
  publisherId: "pipelines",
  eventType: JOB_STATE_CHANGED_EVENT,
  consumerId: "webHooks",
  consumerActionId: "httpRequest",
  consumerInputs: { url: "http://127.0.0.1:8080/hook" },
  ...extra,
});

const subscription = (publisherInputs: Record<string, string> = {}): HookSubscription => ({
  id: "5e5e5e5e-0000-4000-8000-000000000001",
  publisherId: "pipelines",
  eventType: JOB_STATE_CHANGED_EVENT,
  resourceVersion: "5.1-preview.1",
  consumerId: "webHooks",
  consumerActionId: "httpRequest",
  publisherInputs,
  consumerInputs: { url: "http://127.0.0.1:8080/hook", basicAuthUsername: "u", basicAuthPassword: "secret" },
  createdBy: { id: "alice", displayName: "Alice" },
  createdDate: Date.UTC(2025, 0, 1),
});

const job = (extra: Partial<JobRecord> = {}) =>
  ({
    requestId: 5001,
    poolId: 10,
    jobId: "0b0b0b0b-0000-4000-8000-000000000002",
    jobName: "build",
    result: undefined,
    queueTime: Date.UTC(2025, 0, 1, 12),
    assignTime: undefined,
    receiveTime: undefined,
    finishTime: undefined,
    definition: { id: 7, name: "ci" },
    owner: { id: 3, name: "3" },
    ...extra,
  }) as JobRecord;

test("the job state of the event: waiting until assigned, inProgress until finished, then completed", () => {
  const t = Date.UTC(2025, 0, 1, 12);
  const cases: Array<[Partial<JobRecord>, HookJobState]> = [
    [{}, "waiting"],
    [{ assignTime: t }, "inProgress"],
    [{ assignTime: t, receiveTime: t }, "inProgress"],
    [{ assignTime: t, receiveTime: t, result: "succeeded", finishTime: t }, "completed"],
    [{ result: "failed", finishTime: t }, "completed"],
    [{ result: "canceled", finishTime: t }, "completed"],
  ];
  for (const [fields, state] of cases) assert.equal(hookJobState(job(fields)), state, JSON.stringify(fields));
});

test("a subscription is checked; what the emulator does not model is refused with the service's 400", () => {
  validateSubscription(input(), org);
  validateSubscription(input({ consumerInputs: { url: "https://localhost/x" } }), org);
  validateSubscription(input({ consumerInputs: { url: "http://[::1]:9/x" } }), org);
  validateSubscription(
    input({
      publisherInputs: {
        projectId: project.id.toUpperCase(),
        pipelineId: "7",
        jobStateId: "Completed",
        jobResultId: "Failed",
      },
    }),
    org,
  );
  const refused: Array<[Partial<SubscriptionInput>, RegExp]> = [
    [{ publisherId: "tfs", eventType: "build.complete" }, /publishes only the event/],
    [{ eventType: "ms.vss-pipelines.run-state-changed-event" }, /publishes only the event/],
    [{ consumerId: "azureStorageQueue", consumerActionId: "enqueue" }, /only with consumer webHooks/],
    [{ consumerInputs: {} }, /'url' is required/],
    [{ consumerInputs: { url: "not a url" } }, /not a valid URL/],
    [{ consumerInputs: { url: "ftp://127.0.0.1/x" } }, /http or https/],
    [{ consumerInputs: { url: "https://example.com/hook" } }, /only to loopback/],
    [{ consumerInputs: { url: "http://10.0.0.1/hook" } }, /only to loopback/],
    [{ publisherInputs: { projectId: "00000000-0000-0000-0000-000000000000" } }, /does not exist/],
    [{ publisherInputs: { pipelineId: "ci" } }, /pipelineId/],
    [{ publisherInputs: { jobStateId: "Queued" } }, /jobStateId/],
    [{ publisherInputs: { jobResultId: "Abandoned" } }, /jobResultId/],
  ];
  for (const [fields, message] of refused) {
    assert.throws(
      () => validateSubscription(input(fields), org),
      (err: unknown) => err instanceof ServiceError && err.status === 400 && message.test(err.message),
      JSON.stringify(fields),
    );
  }
});

test("publisher inputs filter events; empty inputs filter nothing", () => {
  const t = Date.UTC(2025, 0, 1, 12);
  const waiting = { job: job(), state: "waiting" as const };
  const running = { job: job({ assignTime: t }), state: "inProgress" as const };
  const failed = { job: job({ assignTime: t, result: "failed", finishTime: t }), state: "completed" as const };
  const cases: Array<[Record<string, string>, boolean[]]> = [
    [{}, [true, true, true]],
    [{ pipelineId: "" }, [true, true, true]],
    [{ pipelineId: "7" }, [true, true, true]],
    [{ pipelineId: "8" }, [false, false, false]],
    [{ jobNameId: "BUILD" }, [true, true, true]],
    [{ jobNameId: "test" }, [false, false, false]],
    [{ stageNameId: "__default" }, [true, true, true]],
    [{ stageNameId: "deploy" }, [false, false, false]],
    [{ jobStateId: "Waiting" }, [true, false, false]],
    [{ jobStateId: "Running" }, [false, true, false]],
    [{ jobStateId: "completed" }, [false, false, true]],
    [{ jobResultId: "Failed" }, [false, false, true]],
    [{ jobResultId: "Succeeded" }, [false, false, false]],
    [{ jobStateId: "Completed", jobResultId: "Failed", pipelineId: "7" }, [false, false, true]],
  ];
  for (const [inputs, expected] of cases) {
    const got = [waiting, running, failed].map((source) => subscriptionMatches(subscription(inputs), source));
    assert.deepEqual(got, expected, JSON.stringify(inputs));
  }
});

/** Every key and every scalar value of a JSON value, depth first. */
function walk(value: unknown, keys: string[] = [], values: unknown[] = []): { keys: string[]; values: unknown[] } {
  if (Array.isArray(value)) for (const v of value) walk(v, keys, values);
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      keys.push(k);
      walk(v, keys, values);
    }
  } else values.push(value);
  return { keys, values };
}

test("the payload has the documented shape and names neither the pool nor the job request", () => {
  const t = Date.UTC(2025, 0, 1, 12);
  const base = {
    subscription: subscription(),
    eventId: "e1e1e1e1-0000-4000-8000-000000000003",
    notificationId: 4,
    organization: org,
    organizationUrl: "http://127.0.0.1:1234/sim-org",
    now: t + 5_000,
  };
  const waiting = jobStateChangedPayload({ ...base, source: { job: job(), state: "waiting" } });
  const done = jobStateChangedPayload({
    ...base,
    source: {
      job: job({ assignTime: t + 1_000, receiveTime: t + 2_000, result: "succeeded", finishTime: t + 4_000 }),
      state: "completed",
    },
  });
  // biome-ignore lint/suspicious/noExplicitAny: the payload is read field by field
  const w = waiting as any;
  // biome-ignore lint/suspicious/noExplicitAny: the payload is read field by field
  const d = done as any;
  assert.equal(w.subscriptionId, base.subscription.id);
  assert.equal(w.notificationId, 4);
  assert.equal(w.id, base.eventId);
  assert.equal(w.eventType, JOB_STATE_CHANGED_EVENT);
  assert.equal(w.publisherId, "pipelines");
  assert.deepEqual(Object.keys(w.message), ["text", "html", "markdown"]);
  assert.deepEqual(
    { ...w.resource.job, _links: undefined },
    {
      _links: undefined,
      id: "0b0b0b0b-0000-4000-8000-000000000002",
      name: "build",
      state: "waiting",
      result: null,
      startTime: null,
      finishTime: null,
    },
  );
  assert.equal(d.resource.job.state, "completed");
  assert.equal(d.resource.job.result, "succeeded");
  assert.equal(d.resource.job.startTime, new Date(t + 2_000).toISOString());
  assert.equal(d.resource.job.finishTime, new Date(t + 4_000).toISOString());
  assert.match(d.message.text, /job build succeeded\.$/);
  assert.deepEqual(
    [d.resource.run.id, d.resource.run.state, d.resource.run.result],
    [3, "completed", "succeeded"],
    "the run is the job request's owner",
  );
  assert.equal(w.resource.run.state, "inProgress");
  assert.deepEqual([d.resource.pipeline.id, d.resource.pipeline.name], [7, "ci"]);
  assert.equal(d.resource.projectId, project.id);
  assert.deepEqual(Object.keys(d.resourceContainers), ["collection", "account", "project"]);
  assert.equal(d.resourceContainers.project.id, project.id);
  assert.equal(d.resourceVersion, "5.1-preview.1");
  assert.equal(d.createdDate, new Date(t + 5_000).toISOString());
  for (const payload of [waiting, done]) {
    const { keys, values } = walk(payload);
    assert.deepEqual(
      keys.filter((k) => /pool|request|demand|agent/i.test(k)),
      [],
      "no key names a pool, request, demand or agent",
    );
    assert.ok(!values.includes(5001) && !values.includes("5001"), "the request ID appears nowhere");
    assert.ok(!values.includes(10), "the pool ID appears nowhere");
  }
});

test("the delivery's headers: JSON, basic auth from the inputs, and the httpHeaders lines", () => {
  assert.deepEqual(deliveryHeaders({ url: "http://127.0.0.1/x" }), {
    "Content-Type": "application/json; charset=utf-8",
  });
  const headers = deliveryHeaders({
    url: "http://127.0.0.1/x",
    basicAuthUsername: "hook-user",
    basicAuthPassword: "p:ss",
    httpHeaders: "X-One: 1\r\nX-Two:two: parts\n: no name\nnot a header\n\n",
  });
  assert.equal(headers.Authorization, `Basic ${Buffer.from("hook-user:p:ss").toString("base64")}`);
  assert.equal(headers["X-One"], "1");
  assert.equal(headers["X-Two"], "two: parts");
  assert.equal(Object.keys(headers).length, 4);
  assert.equal(
    deliveryHeaders({ url: "u", basicAuthPassword: "only-a-password" }).Authorization,
    `Basic ${Buffer.from(":only-a-password").toString("base64")}`,
  );
});

test("a returned subscription masks the password and has its URL", () => {
  const view = subscriptionView(subscription(), "http://127.0.0.1:1/sim-org") as {
    url: string;
    status: string;
    consumerInputs: Record<string, string>;
  };
  assert.equal(view.consumerInputs.basicAuthPassword, MASKED);
  assert.equal(view.consumerInputs.basicAuthUsername, "u");
  assert.equal(view.url, "http://127.0.0.1:1/sim-org/_apis/hooks/subscriptions/5e5e5e5e-0000-4000-8000-000000000001");
  assert.equal(view.status, "enabled");
});

test("losses: the next N first, then the rate against the random source", () => {
  const never = () => {
    throw new Error("no draw expected");
  };
  assert.deepEqual(decideLoss({ failNext: 2, failureRate: 0 }, never), { lost: true, failNext: 1 });
  assert.deepEqual(decideLoss({ failNext: 1, failureRate: 1 }, never), { lost: true, failNext: 0 });
  assert.deepEqual(decideLoss({ failNext: 0, failureRate: 0 }, never), { lost: false, failNext: 0 });
  assert.deepEqual(
    decideLoss({ failNext: 0, failureRate: 0.5 }, () => 0.49),
    { lost: true, failNext: 0 },
  );
  assert.deepEqual(
    decideLoss({ failNext: 0, failureRate: 0.5 }, () => 0.5),
    { lost: false, failNext: 0 },
  );
});

test("the seeded random source repeats its sequence and stays in [0, 1)", () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const first = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(
    Array.from({ length: 1000 }, () => b()),
    first,
  );
  assert.ok(first.every((x) => x >= 0 && x < 1));
  assert.notDeepEqual(Array.from({ length: 10 }, seededRandom(43)), first.slice(0, 10));
  const share = first.filter((x) => x < 0.5).length / first.length;
  assert.ok(share > 0.4 && share < 0.6, `about half below 0.5: ${share}`);
});

test("delivery settings are checked", () => {
  const ok = [{}, { delayMs: 0 }, { failNext: 3, failureRate: 0.25, seed: 7 }, { seed: null }, { timeoutMs: 10 }];
  for (const patch of ok) assert.equal(hookSettingsProblem(patch), undefined, JSON.stringify(patch));
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ delay: 1 }, /unknown/],
    [{ delayMs: -1 }, /non-negative/],
    [{ delayMs: "5" }, /non-negative/],
    [{ failNext: 1.5 }, /whole/],
    [{ failureRate: 1.5 }, /between 0 and 1/],
    [{ seed: 1.5 }, /integer or null/],
    [{ timeoutMs: 0 }, /more than 0/],
  ];
  for (const [patch, message] of bad) assert.match(hookSettingsProblem(patch) ?? "", message, JSON.stringify(patch));
});
