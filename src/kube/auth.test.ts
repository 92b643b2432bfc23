import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock } from "../runtime/clock.ts";
import {
  type AuthSettings,
  type Credentials,
  cachedCredentials,
  describeAuth,
  type RequestAuth,
  requestAuth,
} from "./auth.ts";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

const plugin = (c: Credentials, description = "plugin") => ({
  description,
  get: async () => c,
  invalidate: () => {},
});

describe("requestAuth", () => {
  const files: Record<string, string> = { "/t/token": "from-file\n" };
  const readFile = (p: string) => {
    const text = files[p];
    if (text === undefined) throw new Error(`ENOENT: ${p}`);
    return text;
  };
  const cases: [string, AuthSettings, RequestAuth][] = [
    ["anonymous", {}, { headers: {} }],
    ["a token", { token: "t" }, { headers: { Authorization: "Bearer t" } }],
    ["a token file, trimmed", { tokenFile: "/t/token" }, { headers: { Authorization: "Bearer from-file" } }],
    [
      "a token file wins over a token (client-go)",
      { token: "t", tokenFile: "/t/token" },
      { headers: { Authorization: "Bearer from-file" } },
    ],
    ["basic auth", { username: "u", password: "p" }, { headers: { Authorization: basic("u", "p") } }],
    ["a client certificate", { cert: "C", key: "K" }, { headers: {}, cert: "C", key: "K" }],
    [
      "a certificate and a token together",
      { cert: "C", key: "K", token: "t" },
      { headers: { Authorization: "Bearer t" }, cert: "C", key: "K" },
    ],
    [
      "impersonation",
      { token: "t", impersonate: { user: "jane", uid: "42", groups: ["a", "b"] } },
      {
        headers: {
          Authorization: "Bearer t",
          "Impersonate-User": "jane",
          "Impersonate-Uid": "42",
          "Impersonate-Group": ["a", "b"],
        },
      },
    ],
    [
      "a plugin's token",
      { credentials: plugin({ token: "exec" }) },
      { headers: { Authorization: "Bearer exec" }, fromPlugin: { token: "exec" } },
    ],
    [
      "a plugin's certificate",
      { credentials: plugin({ cert: "EC", key: "EK" }) },
      { headers: {}, cert: "EC", key: "EK", fromPlugin: { cert: "EC", key: "EK" } },
    ],
    [
      "a static token wins over a plugin (kubectl)",
      { token: "t", credentials: plugin({ token: "exec" }) },
      { headers: { Authorization: "Bearer t" } },
    ],
    [
      "a static certificate wins over a plugin (kubectl)",
      { cert: "C", key: "K", credentials: plugin({ token: "exec" }) },
      { headers: {}, cert: "C", key: "K" },
    ],
  ];
  for (const [name, settings, expected] of cases) {
    test(name, async () => {
      assert.deepEqual(await requestAuth(settings, { readFile }), expected);
    });
  }

  test("an unreadable token file names the file", async () => {
    await assert.rejects(
      requestAuth({ tokenFile: "/t/missing" }, { readFile }),
      /cannot read the token file \/t\/missing/,
    );
  });

  test("describeAuth never shows a secret", () => {
    assert.equal(describeAuth({ token: "secret" }), "bearer token");
    assert.equal(describeAuth({ username: "u", password: "secret" }), "basic auth as u");
    assert.equal(describeAuth({ credentials: plugin({}, 'user "x": exec plugin "y"') }), 'user "x": exec plugin "y"');
    assert.equal(describeAuth({}), "anonymous");
  });
});

describe("cachedCredentials", () => {
  /** A fetcher whose answers the test releases by hand; counts fetchers made and fetches started. */
  function controlled() {
    const state = { fetchers: 0, fetches: 0, resolvers: [] as ((c: Credentials) => void)[] };
    const rejecters: ((e: Error) => void)[] = [];
    return {
      state,
      rejecters,
      fetcher: () => {
        state.fetchers++;
        return () =>
          new Promise<Credentials>((resolve, reject) => {
            state.fetches++;
            state.resolvers.push(resolve);
            rejecters.push(reject);
          });
      },
    };
  }

  test("concurrent callers share one fetch", async () => {
    const c = controlled();
    const source = cachedCredentials({ description: "d", fetcher: c.fetcher, clock: new ManualClock() });
    const all = Promise.all([source.get(), source.get(), source.get()]);
    assert.equal(c.state.fetches, 1);
    c.state.resolvers[0]?.({ token: "t" });
    assert.deepEqual(await all, [{ token: "t" }, { token: "t" }, { token: "t" }]);
    // Settled: the next get asks the fetcher again (which keeps its own cache of valid credentials).
    const next = source.get();
    assert.equal(c.state.fetches, 2);
    c.state.resolvers[1]?.({ token: "t" });
    await next;
    assert.equal(c.state.fetchers, 1, "the same fetcher, with its cache, until invalidated");
  });

  test("invalidate makes a new fetcher (its cache dropped), once for many refusals of the same answers", async () => {
    const c = controlled();
    const source = cachedCredentials({ description: "d", fetcher: c.fetcher, clock: new ManualClock() });
    const first = source.get();
    c.state.resolvers[0]?.({ token: "old" });
    const a = await first;
    const second = source.get();
    c.state.resolvers[1]?.({ token: "old" });
    const b = await second;
    // Two requests with answers of the first fetcher fail with 401 at about the same time.
    source.invalidate(a);
    source.invalidate(b);
    assert.equal(c.state.fetchers, 2, "one new fetcher");
    const third = source.get();
    c.state.resolvers[2]?.({ token: "old" });
    // Refused again although fetched anew (the plugin gave the same token): that is news, ask again.
    source.invalidate(await third);
    assert.equal(c.state.fetchers, 3);
    source.invalidate();
    assert.equal(c.state.fetchers, 4, "without the rejected answers: always");
  });

  test("a hanging fetch fails after the timeout and is forgotten", async () => {
    const clock = new ManualClock();
    const c = controlled();
    const source = cachedCredentials({
      description: 'user "u": exec plugin "p"',
      fetcher: c.fetcher,
      clock,
      timeoutMs: 1000,
    });
    const first = source.get();
    const failed = assert.rejects(first, /^Error: user "u": exec plugin "p": no credentials after 1000 ms$/);
    await clock.tick(1000);
    await failed;
    assert.equal(c.state.fetchers, 2, "the hanging fetcher was replaced");
    const second = source.get();
    assert.equal(c.state.fetches, 2);
    c.state.resolvers[1]?.({ token: "ok" });
    assert.deepEqual(await second, { token: "ok" });
    assert.equal(clock.pendingTimers, 0);
  });

  test("errors name the source once; after a failure a new fetcher is used", async () => {
    const c = controlled();
    const source = cachedCredentials({ description: "src", fetcher: c.fetcher, clock: new ManualClock() });
    const p = source.get();
    c.rejecters[0]?.(new Error("exit status 1\n"));
    await assert.rejects(p, /^Error: src: exit status 1$/);
    assert.equal(c.state.fetchers, 2);
  });

  test("a caller that aborts stops waiting; the shared fetch goes on for the others", async () => {
    const c = controlled();
    const source = cachedCredentials({ description: "d", fetcher: c.fetcher, clock: new ManualClock() });
    const ac = new AbortController();
    const aborted = source.get(ac.signal);
    const other = source.get();
    ac.abort(new Error("stop"));
    await assert.rejects(aborted, /stop/);
    c.state.resolvers[0]?.({ token: "t" });
    assert.deepEqual(await other, { token: "t" });
    assert.equal(c.state.fetches, 1);
  });
});
