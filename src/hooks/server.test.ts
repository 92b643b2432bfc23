/**
 * The endpoint over real HTTP on 127.0.0.1, with a recording target and a manual clock for the debounce window.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, beforeEach, describe, test } from "node:test";
import { ManualClock } from "../runtime/clock.ts";
import { basicAuthHeader } from "./auth.ts";
import { JOB_STATE_CHANGED_EVENT } from "./payload.ts";
import { type HookOutcome, type RunningHookServer, startHookServer } from "./server.ts";

const credentials = { username: "ado", password: "correct horse battery staple" };
const organizations = ["http://127.0.0.1:1/sim-org", "https://dev.azure.com/fabrikam"];

const delivery = (state: string | undefined = "waiting", extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    notificationId: 1,
    eventType: JOB_STATE_CHANGED_EVENT,
    publisherId: "pipelines",
    ...(state === undefined ? {} : { resource: { job: { state } } }),
    resourceContainers: { collection: { id: "c" } },
    ...extra,
  });

describe("the service hook endpoint", () => {
  let server: RunningHookServer;
  const clock = new ManualClock(0);
  const polls: [string, string][] = [];
  const outcomes: HookOutcome[] = [];
  const logged: [string, Record<string, unknown> | undefined][] = [];
  let credentialsReadable = true;
  let url: (path?: string) => string;

  before(async () => {
    const log = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
      logged.push([`${level} ${msg}`, fields]);
    server = await startHookServer({
      host: "127.0.0.1",
      port: 0,
      credentials: async () => {
        if (!credentialsReadable) throw new Error("ENOENT: no such file, open '/etc/hook/password'");
        return credentials;
      },
      target: {
        organizationUrls: () => organizations,
        pollOrganization: (org, reason) => {
          polls.push([org, reason]);
          return 1;
        },
      },
      debounceMs: 500,
      maxBodyBytes: 4096,
      onOutcome: (o) => outcomes.push(o),
      clock,
      logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
    });
    url = (path = "/hooks/azure-devops/sim-org") => `http://127.0.0.1:${server.port}${path}`;
  });
  after(() => server.close());
  beforeEach(() => {
    clock.advance(10_000); // every test starts outside any debounce window
    polls.length = 0;
    outcomes.length = 0;
    logged.length = 0;
    credentialsReadable = true;
  });

  const post = (body: string, options: { path?: string; auth?: string | null; method?: string } = {}) =>
    fetch(url(options.path), {
      method: options.method ?? "POST",
      headers: {
        "Content-Type": "application/json; charset=utf-8",
        ...(options.auth === null ? {} : { Authorization: options.auth ?? basicAuthHeader(credentials) }),
      },
      ...(options.method === "GET" ? {} : { body }),
    });

  test("a waiting job: 202 triggered, a poll of the organization the path names", async () => {
    const res = await post(delivery());
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { outcome: "triggered", organizations: 1 });
    assert.deepEqual(polls, [["http://127.0.0.1:1/sim-org", "service hook"]]);
    assert.deepEqual(outcomes, ["triggered"]);
  });

  test("a burst: one poll at once, the rest coalesced into one at the window's end", async () => {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await post(delivery(i % 2 ? "inProgress" : "completed"))).status);
    assert.deepEqual(statuses, [202, 202, 202, 202, 202]);
    assert.deepEqual(outcomes, ["triggered", "coalesced", "coalesced", "coalesced", "coalesced"]);
    assert.equal(polls.length, 1);
    clock.advance(500);
    assert.equal(polls.length, 2);
  });

  test("without an organization in the path: every polled organization (the payload names none)", async () => {
    const res = await post(delivery(), { path: "/hooks/azure-devops" });
    assert.deepEqual(await res.json(), { outcome: "triggered", organizations: 2 });
    assert.deepEqual(
      polls.map(([org]) => org),
      organizations,
    );
  });

  test("without an organization in the path: the payload's base URL when it has one", async () => {
    const body = delivery("waiting", {
      resourceContainers: { collection: { id: "c", baseUrl: "https://dev.azure.com/fabrikam/" } },
    });
    const res = await post(body, { path: "/hooks/azure-devops/" });
    assert.deepEqual(await res.json(), { outcome: "triggered", organizations: 1 });
    assert.deepEqual(polls, [["https://dev.azure.com/fabrikam", "service hook"]]);
  });

  test("an organization nobody polls: 202 no-poller, nothing polled", async () => {
    const res = await post(delivery(), { path: "/hooks/azure-devops/northwind" });
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { outcome: "no-poller", organizations: 0 });
    assert.deepEqual(polls, []);
  });

  test("a state that triggers nothing: 202 ignored; no resource details: a poll", async () => {
    const ignored = await post(delivery("someFutureState"));
    assert.deepEqual(await ignored.json(), { outcome: "ignored" });
    assert.deepEqual(polls, []);
    const bare = await post(delivery(undefined));
    assert.deepEqual(await bare.json(), { outcome: "triggered", organizations: 1 });
    assert.equal(polls.length, 1);
  });

  const unauthorized: [string, string | null][] = [
    ["no credentials", null],
    ["a wrong password", basicAuthHeader({ ...credentials, password: "guess" })],
    ["a wrong user", basicAuthHeader({ ...credentials, username: "admin" })],
    ["a bearer token", "Bearer abc"],
    ["garbage", "Basic !!!"],
  ];
  for (const [name, auth] of unauthorized) {
    test(`${name}: 401 with a challenge, nothing polled, no secret in the log`, async () => {
      const res = await post(delivery(), { auth });
      assert.equal(res.status, 401);
      assert.match(res.headers.get("www-authenticate") ?? "", /^Basic realm=/);
      assert.deepEqual(polls, []);
      assert.deepEqual(outcomes, ["unauthorized"]);
      const text = JSON.stringify(logged);
      assert.ok(!text.includes(credentials.password) && !text.includes("guess"), text);
    });
  }

  test("rejections are logged once a minute per outcome, with the number suppressed", async () => {
    clock.advance(60_000);
    for (let i = 0; i < 3; i++) await post(delivery(), { auth: null });
    const warnings = () => logged.filter(([m]) => m === "warn service hook delivery rejected");
    assert.equal(warnings().length, 1);
    assert.equal(warnings()[0]?.[1]?.reason, "missing");
    clock.advance(60_000);
    await post(delivery(), { auth: null });
    assert.equal(warnings().length, 2);
    assert.equal(warnings()[1]?.[1]?.suppressedSinceLastLog, 2);
    assert.equal(outcomes.length, 4, "every one is counted");
  });

  const malformed: [string, string, RegExp][] = [
    ["not JSON", "{", /not JSON/],
    ["another event", delivery("waiting", { eventType: "git.push" }), /git\.push/],
    [
      "a state that is not a string",
      JSON.stringify({ eventType: JOB_STATE_CHANGED_EVENT, resource: { job: { state: 1 } } }),
      /state/,
    ],
  ];
  for (const [name, body, message] of malformed) {
    test(`${name}: 400 with the problem, nothing polled`, async () => {
      const res = await post(body);
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { message: string }).message, message);
      assert.deepEqual(polls, []);
      assert.deepEqual(outcomes, ["bad-request"]);
    });
  }

  test("a body over the limit: 413, by Content-Length and when streamed without one", async () => {
    const big = delivery("waiting", { padding: "x".repeat(5000) });
    const res = await post(big);
    assert.equal(res.status, 413);
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = request(
        url(),
        { method: "POST", headers: { Authorization: basicAuthHeader(credentials), "Transfer-Encoding": "chunked" } },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      for (let i = 0; i < 10; i++) req.write("x".repeat(1000));
      req.end();
    });
    assert.equal(streamed, 413);
    assert.deepEqual(polls, []);
    assert.deepEqual(outcomes, ["too-large", "too-large"]);
  });

  test("another path: 404; another method: 405; /healthz: 200 and not counted", async () => {
    assert.equal((await post(delivery(), { path: "/hooks/other" })).status, 404);
    assert.equal((await post(delivery(), { path: "/hooks/azure-devops/a/b" })).status, 404);
    const get = await post("", { method: "GET" });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    const health = await fetch(url("/healthz"));
    assert.equal(health.status, 200);
    assert.equal(await health.text(), "ok\n");
    assert.deepEqual(outcomes, ["not-found", "not-found", "bad-request"]);
    assert.deepEqual(polls, []);
  });

  test("credentials that cannot be read: 503, logged as an error", async () => {
    credentialsReadable = false;
    const res = await post(delivery());
    assert.equal(res.status, 503);
    assert.deepEqual(outcomes, ["unavailable"]);
    assert.ok(logged.some(([m]) => m === "error service hook credentials cannot be read"));
    assert.deepEqual(polls, []);
  });
});
