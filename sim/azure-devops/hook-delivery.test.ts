/**
 * Service hooks end to end: subscriptions through the REST API, and deliveries to a real HTTP receiver on
 * 127.0.0.1 (payload, basic auth, headers), with the delivery settings of the control API (delay, lost deliveries,
 * a seeded failure rate, timeouts). The emulator runs on a manual clock: deliveries are due when the test says so.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";
import { useEmulator } from "../../test/support/emulator.ts";
import { ManualClock } from "./clock.ts";
import { JOB_STATE_CHANGED_EVENT, seededRandom } from "./hooks.ts";

const managePat = "hooks-manage-pat";
const readPat = "hooks-read-pat";
const key = { publicKey: { exponent: "AQAB", modulus: "bW9kdWx1cw==" } };

// biome-ignore lint/suspicious/noExplicitAny: test assertions walk JSON freely
type Json = any;

const clock = new ManualClock(Date.UTC(2025, 0, 1, 12));
const emu = useEmulator({
  pools: ["sim-pool"],
  pats: [
    { token: managePat, scope: "manage", identity: "alice" },
    { token: readPat, scope: "read", identity: "bob" },
  ],
  clock,
  messagePollTimeoutMs: 100,
});

interface Received {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: Json;
}

/** The consumer's side: records what it is sent and answers with `status`, or holds the answer while `hold`. */
class Receiver {
  server: Server;
  received: Received[] = [];
  status = 200;
  hold = false;
  #held: ServerResponse[] = [];
  #waiters: Array<() => void> = [];

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        this.received.push({
          method: req.method ?? "",
          path: req.url ?? "",
          headers: req.headers,
          body: JSON.parse(text),
        });
        for (const w of this.#waiters.splice(0)) w();
        if (this.hold) this.#held.push(res);
        else res.writeHead(this.status).end();
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/azp/hook`;
  }

  /** Resolves once `count` requests have arrived (event-driven, no polling). */
  async waitFor(count: number): Promise<Received[]> {
    while (this.received.length < count) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return this.received;
  }

  release(): void {
    for (const res of this.#held.splice(0)) res.writeHead(this.status).end();
  }

  reset(): void {
    this.release();
    this.received = [];
    this.status = 200;
    this.hold = false;
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const receiver = new Receiver();
before(() => receiver.start());
after(() => receiver.close());
beforeEach(() => receiver.reset());

async function rest(
  method: string,
  path: string,
  options: { body?: unknown; token?: string } = {},
): Promise<{ status: number; json: Json }> {
  const headers: Record<string, string> = {
    Authorization: `Basic ${Buffer.from(`:${options.token ?? managePat}`).toString("base64")}`,
  };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${emu.organizationUrl}/${path}`, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === "" ? undefined : JSON.parse(text) };
}

async function control(method: string, path: string, body?: unknown): Promise<Json> {
  const response = await fetch(`${emu.controlUrl}/${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  assert.ok(response.status < 300, `${method} ${path}: ${response.status}`);
  return response.json();
}

const subscriptions = "_apis/hooks/subscriptions?api-version=7.1";

async function subscribe(
  consumerInputs: Record<string, string> = {},
  publisherInputs: Record<string, string> = {},
): Promise<string> {
  const answer = await rest("POST", subscriptions, {
    body: {
      publisherId: "pipelines",
      eventType: JOB_STATE_CHANGED_EVENT,
      resourceVersion: "5.1-preview.1",
      consumerId: "webHooks",
      consumerActionId: "httpRequest",
      publisherInputs,
      consumerInputs: { url: receiver.url, ...consumerInputs },
    },
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return answer.json.id;
}

const poolId = () => emu.control.poolId({ pool: "sim-pool" });

/** An offline agent that matches, so queued jobs wait instead of failing. */
function placeholder(): void {
  emu.control.engine.registerAgent(poolId(), { name: "placeholder", version: "4.258.1", systemCapabilities: {} });
}

/** Queues a job that waits (one `waiting` event). */
function queue(jobName = "build"): number {
  return emu.control.queueJob({ pool: "sim-pool", jobName }).requestId;
}

/** An online agent takes the job (inProgress), renews it (no new state), and finishes it (completed). */
function runThrough(requestId: number, result: "succeeded" | "failed" = "succeeded"): void {
  const engine = emu.control.engine;
  const agent = engine.registerAgent(poolId(), { name: `agent-${requestId}`, version: "4.258.1", authorization: key });
  engine.createSession(poolId(), { agentId: agent.id });
  assert.ok(emu.control.getJob(requestId)?.assignTime, "assigned");
  engine.updateJobRequest(poolId(), requestId, {});
  engine.updateJobRequest(poolId(), requestId, { result, finishTime: clock.now() });
}

/** Lost deliveries are recorded at once, sent ones when answered: the order of the events is the notifications'. */
const byNotification = <T extends { notificationId: number }>(attempts: T[]) =>
  [...attempts].sort((a, b) => a.notificationId - b.notificationId);

/** Fires what is due now on the manual clock. */
const due = () => clock.advance(0);

describe("subscriptions through the REST API", () => {
  test("create, list, filter, read and delete; the password is never returned", async () => {
    const id = await subscribe({ basicAuthUsername: "azp", basicAuthPassword: "s3cret" }, { jobStateId: "Waiting" });
    const one = await rest("GET", `_apis/hooks/subscriptions/${id}`, { token: readPat });
    assert.equal(one.status, 200);
    assert.equal(one.json.id, id);
    assert.equal(one.json.url, `${emu.organizationUrl}/_apis/hooks/subscriptions/${id}`);
    assert.equal(one.json.status, "enabled");
    assert.equal(one.json.consumerInputs.url, receiver.url);
    assert.equal(one.json.consumerInputs.basicAuthUsername, "azp");
    assert.equal(one.json.consumerInputs.basicAuthPassword, "********");
    assert.equal(one.json.publisherInputs.jobStateId, "Waiting");
    assert.match(one.json.publisherInputs.tfsSubscriptionId, /^[0-9a-f-]{36}$/);
    assert.equal(one.json.createdBy.id, "alice");

    const listed = await rest("GET", "_apis/hooks/subscriptions", { token: readPat });
    assert.equal(listed.json.count, 1);
    const filtered = await rest("GET", "_apis/hooks/subscriptions?publisherId=tfs", { token: readPat });
    assert.equal(filtered.json.count, 0);
    const byEvent = await rest("GET", `_apis/hooks/subscriptions?eventType=${JOB_STATE_CHANGED_EVENT}`);
    assert.equal(byEvent.json.count, 1);

    assert.equal((await rest("DELETE", `_apis/hooks/subscriptions/${id}?api-version=7.1`)).status, 204);
    const gone = await rest("GET", `_apis/hooks/subscriptions/${id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.json.typeKey, "SubscriptionNotFoundException");
    assert.equal((await rest("DELETE", `_apis/hooks/subscriptions/${id}?api-version=7.1`)).status, 404);
  });

  test("writes need manage scope and an api-version; bad subscriptions get the service's 400", async () => {
    const body = {
      publisherId: "pipelines",
      eventType: JOB_STATE_CHANGED_EVENT,
      consumerId: "webHooks",
      consumerActionId: "httpRequest",
      consumerInputs: { url: receiver.url },
    };
    assert.equal((await rest("POST", subscriptions, { body, token: readPat })).status, 403);
    const unversioned = await rest("POST", "_apis/hooks/subscriptions", { body });
    assert.equal(unversioned.json.typeKey, "VssVersionNotSpecifiedException");
    const tfs = await rest("POST", subscriptions, {
      body: { ...body, publisherId: "tfs", eventType: "build.complete" },
    });
    assert.deepEqual([tfs.status, tfs.json.typeKey], [400, "ArgumentException"]);
    const outside = await rest("POST", subscriptions, {
      body: { ...body, consumerInputs: { url: "https://hooks.example.com/azp" } },
    });
    assert.deepEqual([outside.status, outside.json.typeKey], [400, "ArgumentException"]);
    assert.match(outside.json.message, /loopback/);
    const { consumerInputs: _, ...noInputs } = body;
    const unbound = await rest("POST", subscriptions, { body: noInputs });
    assert.deepEqual([unbound.status, unbound.json.typeKey], [400, "ArgumentNullException"]);
    assert.equal(emu.control.hooks.subscriptions().length, 0);
  });
});

describe("deliveries", () => {
  test("a job's life: waiting, inProgress, completed, with basic auth and the subscription's headers", async () => {
    const id = await subscribe({
      basicAuthUsername: "azp-operator",
      basicAuthPassword: "hook-password",
      httpHeaders: "X-Azp-Source: emulator\nX-Second:2",
    });
    placeholder();
    const requestId = queue("compile");
    due();
    await receiver.waitFor(1);
    runThrough(requestId);
    due();
    const received = await receiver.waitFor(3);

    for (const r of received) {
      assert.equal(r.method, "POST");
      assert.equal(r.path, "/azp/hook");
      assert.equal(r.headers.authorization, `Basic ${Buffer.from("azp-operator:hook-password").toString("base64")}`);
      assert.equal(r.headers["x-azp-source"], "emulator");
      assert.equal(r.headers["x-second"], "2");
      assert.match(r.headers["content-type"] ?? "", /^application\/json/);
    }
    const events = received.map((r) => r.body).sort((a, b) => a.notificationId - b.notificationId);
    assert.deepEqual(
      events.map((e) => e.resource.job.state),
      ["waiting", "inProgress", "completed"],
    );
    assert.equal(new Set(events.map((e) => e.notificationId)).size, 3);
    assert.equal(new Set(events.map((e) => e.id)).size, 3, "three events");
    for (const e of events) {
      assert.equal(e.subscriptionId, id);
      assert.equal(e.eventType, JOB_STATE_CHANGED_EVENT);
      assert.equal(e.publisherId, "pipelines");
      assert.equal(e.resource.job.name, "compile");
      assert.equal(e.resource.job.id, events[0].resource.job.id, "the same job throughout");
      assert.notEqual(e.resource.run.id, requestId, "the run is not the job request");
      const text = JSON.stringify(e);
      assert.ok(!text.includes("sim-pool") && !/pool|request/i.test(Object.keys(e.resource.job).join()));
      assert.ok(!text.includes(`"requestId"`) && !text.includes(`"poolId"`));
    }
    assert.equal(events[2].resource.job.result, "succeeded");
    assert.ok(events[1].resource.job.startTime);

    const attempts = (await control("GET", `hooks/deliveries?subscriptionId=${id}`)).value;
    assert.equal(attempts.length, 3);
    for (const a of attempts) {
      assert.equal(a.status, 200);
      assert.equal(a.subscriptionId, id);
      assert.equal(a.requestId, requestId);
      assert.equal(a.time, new Date(clock.now()).toISOString());
      assert.equal(a.url, receiver.url);
    }
  });

  test("each subscription gets the events its filters let through", async () => {
    const all = await subscribe();
    const completedOnly = await subscribe({}, { jobStateId: "Completed" });
    placeholder();
    const requestId = queue();
    emu.control.cancelJob(requestId);
    due();
    const received = await receiver.waitFor(3);
    const bySubscription = (id: string) =>
      received.filter((r) => r.body.subscriptionId === id).map((r) => r.body.resource.job.state);
    assert.deepEqual(bySubscription(all).sort(), ["completed", "waiting"]);
    assert.deepEqual(bySubscription(completedOnly), ["completed"]);
    const canceled = received.find((r) => r.body.subscriptionId === completedOnly);
    assert.equal(canceled?.body.resource.job.result, "canceled");
    assert.equal(
      canceled?.body.id,
      received.find((r) => r.body.subscriptionId === all && r.body.resource.job.state === "completed")?.body.id,
      "one event, two notifications",
    );
  });

  test("a delivery waits the configured delay on the emulator's clock", async () => {
    assert.deepEqual((await control("PUT", "hooks/delivery", { delayMs: 5_000 })).delayMs, 5_000);
    await subscribe();
    placeholder();
    queue();
    clock.advance(4_999);
    assert.equal(emu.control.hooks.pending, 1);
    assert.equal(emu.control.hooks.deliveries().length, 0);
    assert.equal(receiver.received.length, 0);
    clock.advance(1);
    const attempt = await emu.control.hooks.waitForDelivery(() => true);
    assert.equal(attempt.status, 200);
    assert.equal(attempt.time, new Date(clock.now()).toISOString());
    assert.equal((await receiver.waitFor(1)).length, 1);
  });

  test("the next N deliveries can be lost: recorded, never sent", async () => {
    await control("PUT", "hooks/delivery", { failNext: 2 });
    await subscribe();
    placeholder();
    const ids = [queue("one"), queue("two"), queue("three")];
    due();
    const last = await emu.control.hooks.waitForDelivery((a) => a.requestId === ids[2]);
    assert.equal(last.status, 200);
    await emu.control.hooks.waitForDelivery(() => emu.control.hooks.deliveries().length === 3);
    const attempts = byNotification(emu.control.hooks.deliveries());
    assert.deepEqual(
      attempts.map((a) => [a.requestId, a.status, a.injected ?? false]),
      [
        [ids[0], 0, true],
        [ids[1], 0, true],
        [ids[2], 200, false],
      ],
    );
    assert.match(attempts[0]?.error ?? "", /lost/);
    const received = await receiver.waitFor(1);
    assert.deepEqual(
      received.map((r) => r.body.resource.job.name),
      ["three"],
    );
    assert.equal((await control("GET", "hooks/delivery")).failNext, 0);
  });

  test("a failure rate with a seed loses the same deliveries every time", async () => {
    const seed = 20_251;
    const draws = seededRandom(seed);
    const expected = Array.from({ length: 12 }, () => draws() < 0.5);
    assert.ok(expected.includes(true) && expected.includes(false), "the seed gives both outcomes");
    await subscribe();
    placeholder();
    const run = async () => {
      await control("PUT", "hooks/delivery", { failureRate: 0.5, seed });
      const since = emu.control.hooks.deliveries().at(-1)?.seq ?? 0;
      for (let i = 0; i < 12; i++) queue(`job-${i}`);
      due();
      await emu.control.hooks.waitForDelivery(() => emu.control.hooks.deliveries({ since }).length === 12);
      return byNotification(emu.control.hooks.deliveries({ since })).map((a) => a.injected === true);
    };
    assert.deepEqual(await run(), expected);
    assert.deepEqual(await run(), expected, "setting the seed again repeats the sequence");
    await control("PUT", "hooks/delivery", { failureRate: 0, seed: null });
    assert.equal((await control("GET", "hooks")).delivery.seed, null);
  });

  test("a receiver's error status, no receiver and a receiver that never answers are recorded; the service keeps answering", async () => {
    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, "127.0.0.1", resolve));
    const closedUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}/hook`;
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    const failing = await subscribe();
    const nobody = await subscribe({ url: closedUrl });
    receiver.status = 503;
    placeholder();
    queue();
    due();
    const refused = await emu.control.hooks.waitForDelivery((a) => a.subscriptionId === nobody);
    assert.equal(refused.status, 0);
    assert.ok(refused.error);
    const answered = await emu.control.hooks.waitForDelivery((a) => a.subscriptionId === failing);
    assert.equal(answered.status, 503);
    assert.match(answered.error ?? "", /503/);

    await control("PUT", "hooks/delivery", { timeoutMs: 30_000 });
    await rest("DELETE", `_apis/hooks/subscriptions/${nobody}?api-version=7.1`);
    receiver.hold = true;
    const held = receiver.received.length;
    queue();
    due();
    await receiver.waitFor(held + 1);
    // The receiver holds its answer: the service and the control API answer meanwhile.
    assert.equal((await rest("GET", "_apis/distributedtask/pools", { token: readPat })).status, 200);
    assert.ok(emu.control.queueJob({ pool: "sim-pool" }).requestId > 0);
    assert.ok(emu.control.hooks.pending >= 1);
    clock.advance(30_000);
    const timedOut = await emu.control.hooks.waitForDelivery((a) => a.status === 0 && /no answer/.test(a.error ?? ""));
    assert.equal(timedOut.subscriptionId, failing);
  });

  test("reset forgets subscriptions, deliveries and settings", async () => {
    await control("PUT", "hooks/delivery", { delayMs: 100 });
    await subscribe();
    placeholder();
    queue();
    assert.equal(emu.control.hooks.pending, 1);
    await control("POST", "reset");
    const state = await control("GET", "hooks");
    assert.deepEqual(
      [state.subscriptions.length, state.deliveries, state.pending, state.delivery.delayMs],
      [0, 0, 0, 0],
    );
    clock.advance(100);
    assert.equal(emu.control.hooks.deliveries().length, 0);
  });
});
