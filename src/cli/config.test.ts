import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, helpText, parseConfig } from "./config.ts";

describe("parseConfig", () => {
  test("defaults", () => {
    const c = parseConfig([], {}, "host-1");
    assert.ok(c !== "help");
    assert.equal(c.identity, "host-1");
    assert.deepEqual(c.namespaces, []);
    assert.equal(c.pollIntervalMs, 5000);
    assert.equal(c.leaderElect, true);
    assert.equal(c.leaderElectionNamespace, "default");
    assert.equal(c.port, 8080);
    assert.deepEqual(c.imagePrePull, {
      enabled: false,
      pauseImage: "registry.k8s.io/pause:3.10",
      helperImage: "docker.io/library/busybox:1.37.0-musl",
    });
  });

  test("image pre-pull: --image-prepull and its images, from flags or the environment", () => {
    const c = parseConfig(
      ["--image-prepull", "true", "--image-prepull-helper-image", "mirror.example/busybox:1"],
      { IMAGE_PREPULL_PAUSE_IMAGE: "mirror.example/pause:3.10" },
      "h",
    );
    assert.ok(c !== "help");
    assert.deepEqual(c.imagePrePull, {
      enabled: true,
      pauseImage: "mirror.example/pause:3.10",
      helperImage: "mirror.example/busybox:1",
    });
  });

  test("flags win over environment variables, which win over defaults", () => {
    const c = parseConfig(
      ["--poll-interval", "250ms", "--namespaces", "a, b"],
      { POLL_INTERVAL: "9s", IDLE_POLL_INTERVAL: "1m", POD_NAMESPACE: "ops", POD_NAME: "op-0", LEADER_ELECT: "false" },
      "h",
    );
    assert.ok(c !== "help");
    assert.equal(c.pollIntervalMs, 250);
    assert.equal(c.idlePollIntervalMs, 60_000);
    assert.deepEqual(c.namespaces, ["a", "b"]);
    assert.equal(c.leaderElectionNamespace, "ops");
    assert.equal(c.identity, "op-0");
    assert.equal(c.leaderElect, false);
  });

  const bad: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ["bad duration", ["--poll-interval", "5"], {}, /--poll-interval: "5" is not a valid duration/],
    ["negative-ish int", ["--workers", "0"], {}, /--workers: "0" must be an integer >= 1/],
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
      "bad pre-pull image",
      [],
      { IMAGE_PREPULL_PAUSE_IMAGE: "two words" },
      /--image-prepull-pause-image: .*not an image reference/,
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

  test("a KUBECONFIG list: every file (merged when loaded); --kubeconfig and --context win", () => {
    const c = parseConfig([], { KUBECONFIG: ":/a/config:/b/config" }, "h");
    assert.ok(c !== "help");
    assert.deepEqual(c.kubeconfig, ["/a/config", "/b/config"]);
    assert.equal(c.context, undefined);
    const d = parseConfig(
      ["--kubeconfig", "/c/config", "--context", "aks"],
      { KUBECONFIG: "/a/config", KUBE_CONTEXT: "x" },
      "h",
    );
    assert.ok(d !== "help");
    assert.deepEqual(d.kubeconfig, ["/c/config"]);
    assert.equal(d.context, "aks");
    const e = parseConfig([], { KUBE_CONTEXT: "x" }, "h");
    assert.ok(e !== "help");
    assert.deepEqual([e.kubeconfig, e.context], [[], "x"]);
  });

  test("--help and the help text lists every flag with its variable", () => {
    assert.equal(parseConfig(["--help"], {}, "h"), "help");
    const text = helpText();
    assert.match(text, /--poll-interval\s+job-request poll interval/);
    assert.match(text, /env POLL_INTERVAL; default 5s/);
  });
});
