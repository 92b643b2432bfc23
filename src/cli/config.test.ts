import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, helpText, parseConfig } from "./config.ts";

describe("parseConfig", () => {
  test("defaults", () => {
    const c = parseConfig([], {}, "host-1");
    assert.ok(c !== "help");
    assert.equal(c.identity, "host-1");
    assert.deepEqual(c.namespaces, []);
    assert.equal(c.pollIntervalMs, 1000);
    assert.equal(c.idlePollIntervalMs, 3000);
    assert.equal(c.pollBudgetPerMinute, 20);
    assert.equal(c.leaderElect, true);
    assert.equal(c.leaderElectionNamespace, "default");
    assert.equal(c.port, 8080);
  });

  test("flags win over environment variables, which win over defaults", () => {
    const c = parseConfig(
      ["--poll-interval", "250ms", "--namespaces", "a, b"],
      {
        POLL_INTERVAL: "9s",
        IDLE_POLL_INTERVAL: "1m",
        POLL_BUDGET: "0",
        POD_NAMESPACE: "ops",
        POD_NAME: "op-0",
        LEADER_ELECT: "false",
      },
      "h",
    );
    assert.ok(c !== "help");
    assert.equal(c.pollIntervalMs, 250);
    assert.equal(c.idlePollIntervalMs, 60_000);
    assert.equal(c.pollBudgetPerMinute, 0, "0: no budget of our own");
    assert.deepEqual(c.namespaces, ["a", "b"]);
    assert.equal(c.leaderElectionNamespace, "ops");
    assert.equal(c.identity, "op-0");
    assert.equal(c.leaderElect, false);
  });

  const bad: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ["bad duration", ["--poll-interval", "5"], {}, /--poll-interval: "5" is not a valid duration/],
    ["negative-ish int", ["--workers", "0"], {}, /--workers: "0" must be an integer >= 1/],
    ["bad budget", ["--poll-budget", "2.5"], {}, /--poll-budget: "2.5" must be an integer >= 0/],
    ["bad bool", [], { LEADER_ELECT: "maybe" }, /--leader-elect: "maybe" must be true or false/],
    ["bad level", ["--log-level", "loud"], {}, /--log-level: "loud" must be one of/],
    ["unknown flag", ["--nope"], {}, /Unknown option '--nope'/],
    ["renew >= lease", ["--renew-deadline", "20s"], {}, /--renew-deadline must be shorter/],
    [
      "bad terminator image",
      ["--terminator-image", "not an image!"],
      {},
      /--terminator-image: .*not an image reference/,
    ],
    [
      "renew too close to retry",
      ["--retry-period", "9s"],
      {},
      /--renew-deadline must be more than 1.2 times --retry-period/,
    ],
  ];
  for (const [name, argv, env, message] of bad) {
    test(`refuses ${name} with a specific message`, () => {
      assert.throws(
        () => parseConfig(argv, env, "h"),
        (err: unknown) => err instanceof ConfigError && message.test(err.message),
      );
    });
  }

  test("a KUBECONFIG list: the first file", () => {
    const c = parseConfig([], { KUBECONFIG: ":/a/config:/b/config" }, "h");
    assert.ok(c !== "help");
    assert.equal(c.kubeconfig, "/a/config");
  });

  test("--help and the help text lists every flag with its variable", () => {
    assert.equal(parseConfig(["--help"], {}, "h"), "help");
    const text = helpText();
    assert.match(text, /--poll-interval\s+job-request poll interval/);
    assert.match(text, /env POLL_INTERVAL; default 1s/);
    assert.match(text, /--poll-budget\s+Azure DevOps requests per minute/);
  });
});
