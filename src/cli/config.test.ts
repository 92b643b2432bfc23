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
    assert.equal(c.pollBudgetPerMinute, 40);
    assert.equal(c.poolPollBudgetPerMinute, 20);
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
    assert.equal(c.ownPod, undefined, "the pod is labelled only with --leader-pod-label");
  });

  test("--leader-pod-label: the pod from POD_NAME and POD_NAMESPACE", () => {
    const c = parseConfig(["--leader-pod-label", "true"], { POD_NAMESPACE: "ops", POD_NAME: "op-0" }, "h");
    assert.ok(c !== "help");
    assert.deepEqual(c.ownPod, { name: "op-0", namespace: "ops" });
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
      "a leader label without the pod's name",
      [],
      { LEADER_POD_LABEL: "true", POD_NAMESPACE: "ops" },
      /--leader-pod-label needs POD_NAME and POD_NAMESPACE/,
    ],
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

  test("the credential policy: safe defaults (Azure DevOps Services over https, the public cloud, nobody)", () => {
    const c = parseConfig([], {}, "h");
    assert.ok(c !== "help");
    assert.deepEqual(c.credentialPolicy, {
      azureDevOpsHosts: ["dev.azure.com", "*.visualstudio.com"],
      allowHttp: false,
      authorityHosts: ["https://login.microsoftonline.com"],
      operatorIdentityNamespaces: [],
    });
    assert.equal(c.extraAgentContainersPolicy, undefined);
  });

  test("the credential policy from flags and variables", () => {
    const c = parseConfig(
      [
        "--azure-devops-hosts",
        "dev.azure.com, TFS.example.com:8443",
        "--azure-devops-allow-http",
        "true",
        "--entra-authority-hosts",
        "https://login.microsoftonline.us/,https://login.microsoftonline.com",
      ],
      { OPERATOR_IDENTITY_NAMESPACES: "platform, ci" },
      "h",
    );
    assert.ok(c !== "help");
    assert.deepEqual(c.credentialPolicy, {
      azureDevOpsHosts: ["dev.azure.com", "tfs.example.com:8443"],
      allowHttp: true,
      authorityHosts: ["https://login.microsoftonline.us", "https://login.microsoftonline.com"],
      operatorIdentityNamespaces: ["platform", "ci"],
    });
  });

  test("without --entra-authority-hosts, the workload identity webhook's AZURE_AUTHORITY_HOST is the one authority", () => {
    const c = parseConfig([], { AZURE_AUTHORITY_HOST: "https://login.microsoftonline.us/" }, "h");
    assert.ok(c !== "help");
    assert.deepEqual(c.credentialPolicy.authorityHosts, ["https://login.microsoftonline.us"]);
    const d = parseConfig(
      ["--entra-authority-hosts", "https://login.chinacloudapi.cn"],
      { AZURE_AUTHORITY_HOST: "https://login.microsoftonline.us/" },
      "h",
    );
    assert.ok(d !== "help");
    assert.deepEqual(d.credentialPolicy.authorityHosts, ["https://login.chinacloudapi.cn"], "the flag wins");
  });

  test("the operator's default ExtraAgentContainers policy (JSON)", () => {
    const c = parseConfig(
      [],
      { EXTRA_AGENT_CONTAINERS_POLICY: '{"allowedImages":["docker.io/library/*"],"maxMemoryPerContainer":"1Gi"}' },
      "h",
    );
    assert.ok(c !== "help");
    assert.deepEqual(c.extraAgentContainersPolicy, {
      allowedImages: ["docker.io/library/*"],
      maxMemoryPerContainer: "1Gi",
    });
  });

  const badPolicy: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    [
      "a URL as a host",
      ["--azure-devops-hosts", "https://dev.azure.com"],
      {},
      /--azure-devops-hosts: "https:\/\/dev.azure.com" is not a host pattern/,
    ],
    ["no host", ["--azure-devops-hosts", " , "], {}, /--azure-devops-hosts: name at least one host/],
    [
      "an http authority",
      ["--entra-authority-hosts", "http://login.example"],
      {},
      /--entra-authority-hosts: .*must use https/,
    ],
    [
      "an http AZURE_AUTHORITY_HOST",
      [],
      { AZURE_AUTHORITY_HOST: "http://x" },
      /AZURE_AUTHORITY_HOST: .*must use https/,
    ],
    [
      "a bad namespace",
      ["--operator-identity-namespaces", "Team_A"],
      {},
      /--operator-identity-namespaces: "Team_A" is not a namespace/,
    ],
    ["a bad allow-http", ["--azure-devops-allow-http", "sometimes"], {}, /--azure-devops-allow-http/],
    [
      "a policy that is not JSON",
      ["--extra-agent-containers-policy", "{x"],
      {},
      /--extra-agent-containers-policy: not JSON/,
    ],
    [
      "a policy with an unknown field",
      ["--extra-agent-containers-policy", '{"maxContainer":1}'],
      {},
      /--extra-agent-containers-policy: .*maxContainer/,
    ],
  ];
  for (const [name, argv, env, message] of badPolicy) {
    test(`refuses ${name}`, () => {
      assert.throws(
        () => parseConfig(argv, env, "h"),
        (err: unknown) => err instanceof ConfigError && message.test(err.message),
      );
    });
  }

  test("service hooks: off by default, whatever else is set", () => {
    const c = parseConfig(["--service-hook-port", "9000"], { SERVICE_HOOK_PASSWORD: "pw" }, "h");
    assert.ok(c !== "help");
    assert.equal(c.serviceHooks, undefined);
  });

  test("service hooks: credentials from files (flags or variables) or from variables; never the values", () => {
    const files = parseConfig(
      ["--service-hooks", "true", "--service-hook-username-file", "/etc/hook/username"],
      { SERVICE_HOOK_PASSWORD_FILE: "/etc/hook/password", SERVICE_HOOK_PASSWORD: "ignored" },
      "h",
    );
    assert.ok(files !== "help");
    assert.deepEqual(files.serviceHooks, {
      port: 8081,
      debounceMs: 500,
      credentials: { username: { file: "/etc/hook/username" }, password: { file: "/etc/hook/password" } },
    });
    const variables = parseConfig(
      ["--service-hook-port", "0", "--service-hook-debounce", "2s"],
      { SERVICE_HOOKS: "true", SERVICE_HOOK_USERNAME: "ado", SERVICE_HOOK_PASSWORD: "s3cret-value" },
      "h",
    );
    assert.ok(variables !== "help");
    assert.deepEqual(variables.serviceHooks, {
      port: 0,
      debounceMs: 2000,
      credentials: { username: { env: "SERVICE_HOOK_USERNAME" }, password: { env: "SERVICE_HOOK_PASSWORD" } },
    });
    assert.ok(!JSON.stringify(variables).includes("s3cret-value"), "the configuration never holds the password");
  });

  const badHooks: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ["no user name", ["--service-hooks", "true"], { SERVICE_HOOK_PASSWORD: "pw" }, /needs a user name/],
    [
      "no password (an empty variable is none)",
      ["--service-hooks", "true"],
      { SERVICE_HOOK_USERNAME: "ado", SERVICE_HOOK_PASSWORD: "" },
      /needs a password: --service-hook-password-file \(or SERVICE_HOOK_PASSWORD\)/,
    ],
    [
      "the metrics port",
      ["--service-hooks", "true", "--service-hook-port", "8080"],
      { SERVICE_HOOK_USERNAME: "a", SERVICE_HOOK_PASSWORD: "b" },
      /--service-hook-port must differ from --port/,
    ],
    [
      "a port out of range",
      ["--service-hooks", "true", "--service-hook-port", "70000"],
      { SERVICE_HOOK_USERNAME: "a", SERVICE_HOOK_PASSWORD: "b" },
      /--service-hook-port: 70000 is not a port/,
    ],
    [
      "a bad debounce",
      ["--service-hooks", "true", "--service-hook-debounce", "soon"],
      { SERVICE_HOOK_USERNAME: "a", SERVICE_HOOK_PASSWORD: "b" },
      /--service-hook-debounce/,
    ],
  ];
  for (const [name, argv, env, message] of badHooks) {
    test(`service hooks: refuses ${name}`, () => {
      assert.throws(
        () => parseConfig(argv, env, "h"),
        (err: unknown) => err instanceof ConfigError && message.test(err.message),
      );
    });
  }

  test("--help and the help text lists every flag with its variable", () => {
    assert.equal(parseConfig(["--help"], {}, "h"), "help");
    const text = helpText();
    assert.match(text, /--poll-interval\s+job-request poll interval/);
    assert.match(text, /env POLL_INTERVAL; default 1s/);
    assert.match(text, /--poll-budget\s+Azure DevOps requests per minute/);
  });
});
