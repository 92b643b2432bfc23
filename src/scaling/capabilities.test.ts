import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  agentPlatform,
  environmentCapabilities,
  expandedEnvValue,
  reportedCapabilities,
  schedulableLabelValues,
} from "./capabilities.ts";

const ARCH = ["kubernetes.io/arch", "beta.kubernetes.io/arch"];
const term = (...matchExpressions: unknown[]) => ({ matchExpressions });
const expr = (key: string, operator: string, values?: string[]) => ({ key, operator, ...(values ? { values } : {}) });
const required = (...nodeSelectorTerms: unknown[]) => ({
  nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms } },
});

describe("schedulableLabelValues: node selection as the scheduler judges it", () => {
  const cases: [string, Record<string, unknown>, string[] | null][] = [
    ["nothing selected", {}, null],
    ["node selector", { nodeSelector: { "kubernetes.io/arch": "arm64", other: "x" } }, ["arm64"]],
    ["beta label", { nodeSelector: { "beta.kubernetes.io/arch": "amd64" } }, ["amd64"]],
    [
      "both labels disagree: nothing",
      { nodeSelector: { "kubernetes.io/arch": "amd64", "beta.kubernetes.io/arch": "arm64" } },
      [],
    ],
    ["affinity In", { affinity: required(term(expr("kubernetes.io/arch", "In", ["arm64"]))) }, ["arm64"]],
    [
      "affinity In, several",
      { affinity: required(term(expr("kubernetes.io/arch", "In", ["arm64", "amd64"]))) },
      ["amd64", "arm64"],
    ],
    [
      "terms are ORed",
      {
        affinity: required(
          term(expr("kubernetes.io/arch", "In", ["arm64"])),
          term(expr("kubernetes.io/arch", "In", ["amd64"])),
        ),
      },
      ["amd64", "arm64"],
    ],
    [
      "a term without the key allows anything",
      { affinity: required(term(expr("kubernetes.io/arch", "In", ["arm64"])), term(expr("zone", "In", ["a"]))) },
      null,
    ],
    [
      "expressions of a term are ANDed",
      {
        affinity: required(
          term(expr("kubernetes.io/arch", "In", ["arm64", "amd64"]), expr("kubernetes.io/arch", "NotIn", ["amd64"])),
        ),
      },
      ["arm64"],
    ],
    ["NotIn alone: not narrowed", { affinity: required(term(expr("kubernetes.io/arch", "NotIn", ["amd64"]))) }, null],
    ["Exists: not narrowed", { affinity: required(term(expr("kubernetes.io/arch", "Exists"))) }, null],
    ["DoesNotExist: no node", { affinity: required(term(expr("kubernetes.io/arch", "DoesNotExist"))) }, []],
    [
      "selector AND affinity",
      {
        nodeSelector: { "kubernetes.io/arch": "arm64" },
        affinity: required(term(expr("kubernetes.io/arch", "In", ["arm64", "amd64"]))),
      },
      ["arm64"],
    ],
    [
      "preferred affinity does not count",
      {
        affinity: {
          nodeAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 1, preference: term(expr("kubernetes.io/arch", "In", ["arm64"])) },
            ],
          },
        },
      },
      null,
    ],
    ["garbage is ignored", { nodeSelector: "x", affinity: { nodeAffinity: 3 } }, null],
  ];
  for (const [label, spec, want] of cases) {
    test(label, () => assert.deepEqual(schedulableLabelValues(spec, ARCH), want));
  }
});

describe("agentPlatform: Agent.OS and Agent.OSArchitecture (rules 5, 6)", () => {
  const cases: [string, unknown, string | null, string | null][] = [
    ["no template", undefined, "Linux", null],
    ["empty spec", { spec: {} }, "Linux", null],
    ["amd64", { spec: { nodeSelector: { "kubernetes.io/arch": "amd64" } } }, "Linux", "X64"],
    ["arm64", { spec: { nodeSelector: { "kubernetes.io/arch": "arm64" } } }, "Linux", "ARM64"],
    ["arm", { spec: { nodeSelector: { "kubernetes.io/arch": "arm" } } }, "Linux", "ARM"],
    ["386", { spec: { nodeSelector: { "kubernetes.io/arch": "386" } } }, "Linux", "X86"],
    [
      "an architecture the agent does not name",
      { spec: { nodeSelector: { "kubernetes.io/arch": "s390x" } } },
      "Linux",
      null,
    ],
    [
      "several architectures",
      { spec: { affinity: required(term(expr("kubernetes.io/arch", "In", ["amd64", "arm64"]))) } },
      "Linux",
      null,
    ],
    ["spec.os.name windows", { spec: { os: { name: "windows" } } }, "Windows_NT", null],
    ["spec.os.name linux", { spec: { os: { name: "linux" } } }, "Linux", null],
    ["kubernetes.io/os windows", { spec: { nodeSelector: { "kubernetes.io/os": "windows" } } }, "Windows_NT", null],
    [
      "spec.os.name wins over the selection",
      { spec: { os: { name: "linux" }, nodeSelector: { "kubernetes.io/os": "windows" } } },
      "Linux",
      null,
    ],
    [
      "several OSes: unknown",
      { spec: { affinity: required(term(expr("kubernetes.io/os", "In", ["linux", "windows"]))) } },
      null,
      null,
    ],
  ];
  for (const [label, template, os, arch] of cases) {
    test(label, () => {
      const p = agentPlatform(template);
      assert.equal(p.os, os);
      assert.equal(p.osArchitecture, arch);
      assert.ok(p.osFrom.length > 0 && p.osArchitectureFrom.length > 0);
    });
  }
});

describe("expandedEnvValue: Kubernetes' $(NAME) and $$", () => {
  const cases: [string, string | null][] = [
    ["plain", "plain"],
    ["a$$b", "a$b"],
    ["$$(HOME)", "$(HOME)"],
    ["$(HOME)/x", null],
    ["cost $5", "cost $5"],
    ["$(", "$("],
    ["$()", "$()"],
  ];
  for (const [input, want] of cases) test(JSON.stringify(input), () => assert.equal(expandedEnvValue(input), want));
});

describe("environmentCapabilities (rule 1)", () => {
  const withEnv = (env: unknown[], more: unknown[] = []) => ({
    spec: {
      containers: [
        { name: "agent", env },
        { name: "sidecar", env: more },
      ],
    },
  });
  test("literal values of the agent container only, with the agent's exclusions", () => {
    const caps = environmentCapabilities(
      withEnv(
        [
          { name: "DOCKER_HOST", value: "tcp://localhost:2375" },
          { name: "EMPTY", value: "" },
          { name: "REF", value: "$(AZP_AGENT_NAME)-x" },
          { name: "FROM_SECRET", valueFrom: { secretKeyRef: { name: "s", key: "k" } } },
          { name: "NO_VALUE" },
          { name: "AZP_WORK", value: "/w" },
          { name: "AZP_URL", value: "https://x" },
          { name: "VSTS_AGENT_INPUT_AUTH", value: "SP" },
          { name: "VSO_AGENT_IGNORE", value: "HIDDEN, ALSO_HIDDEN" },
          { name: "HIDDEN", value: "1" },
          { name: "ALSO_HIDDEN", value: "1" },
          { name: "TERM", value: "xterm" },
          { name: "SYSTEM_ACCESSTOKEN", value: "t" },
          { name: "LONG", value: "x".repeat(1024) },
          { name: "ALMOST_LONG", value: "x".repeat(1023) },
          { name: "DOLLARS", value: "a$$b" },
        ],
        [{ name: "SIDECAR_ONLY", value: "1" }],
      ),
    );
    assert.deepEqual(caps, {
      DOCKER_HOST: "tcp://localhost:2375",
      EMPTY: "",
      REF: null,
      ALMOST_LONG: "x".repeat(1023),
      DOLLARS: "a$b",
    });
  });
  test("no template, no container, no env", () => {
    assert.deepEqual(environmentCapabilities(undefined), {});
    assert.deepEqual(environmentCapabilities({ spec: { containers: [] } }), {});
    assert.deepEqual(environmentCapabilities({ spec: { containers: [{ name: "a" }] } }), {});
  });
});

describe("reportedCapabilities (rules 1 to 7)", () => {
  const arm = { spec: { nodeSelector: { "kubernetes.io/arch": "arm64" }, containers: [{ name: "a" }] } };
  const cases: [string, Record<string, string>, unknown, Record<string, string | null>, string[]][] = [
    [
      "declared plus the agent's own",
      { buildkit: "1" },
      arm,
      {
        buildkit: "1",
        "Agent.Name": null,
        "Agent.Version": null,
        "Agent.OS": "Linux",
        "Agent.OSArchitecture": "ARM64",
      },
      [],
    ],
    [
      "a declared value replaces a template variable of the same name (any case)",
      { tool: "2" },
      { spec: { containers: [{ name: "a", env: [{ name: "TOOL", value: "1" }] }] } },
      { tool: "2", "Agent.Name": null, "Agent.Version": null, "Agent.OS": "Linux", "Agent.OSArchitecture": null },
      [],
    ],
    [
      "declared Agent.OS that agrees (any case) is no problem",
      { "agent.os": "linux" },
      undefined,
      { "Agent.OS": "Linux", "Agent.Name": null, "Agent.Version": null, "Agent.OSArchitecture": null },
      [],
    ],
    [
      "declared Agent.OSArchitecture fills what the template leaves open",
      { "Agent.OSArchitecture": "X64" },
      undefined,
      { "Agent.OSArchitecture": "X64", "Agent.Name": null, "Agent.Version": null, "Agent.OS": "Linux" },
      [],
    ],
    [
      "declared Agent.OSArchitecture that the node selection contradicts is replaced",
      { "Agent.OSArchitecture": "X64" },
      arm,
      { "Agent.OSArchitecture": "ARM64", "Agent.Name": null, "Agent.Version": null, "Agent.OS": "Linux" },
      ["Agent.OSArchitecture"],
    ],
    [
      "declared Agent.OS Windows on a Linux pod is replaced",
      { "Agent.OS": "Windows" },
      undefined,
      { "Agent.OS": "Linux", "Agent.Name": null, "Agent.Version": null, "Agent.OSArchitecture": null },
      ["Agent.OS"],
    ],
    [
      "declared Agent.Version is trusted",
      { "Agent.Version": "4.258.1" },
      undefined,
      { "Agent.Version": "4.258.1", "Agent.Name": null, "Agent.OS": "Linux", "Agent.OSArchitecture": null },
      [],
    ],
    [
      "declared Agent.Name is never advertised",
      { "Agent.Name": "fixed" },
      undefined,
      { "Agent.Name": null, "Agent.Version": null, "Agent.OS": "Linux", "Agent.OSArchitecture": null },
      ["Agent.Name"],
    ],
  ];
  for (const [label, declared, template, want, overridden] of cases) {
    test(label, () => {
      const r = reportedCapabilities(declared, template);
      assert.deepEqual(r.capabilities, want);
      assert.deepEqual(
        r.overridden.map((o) => o.name),
        overridden,
      );
    });
  }

  test("the override message says what is declared, what is reported and why", () => {
    const [o] = reportedCapabilities({ "Agent.OS": "Windows" }, undefined).overridden;
    assert.match(o?.message ?? "", /Agent\.OS is declared "Windows", but the agent of these pods reports "Linux"/);
    assert.match(o?.message ?? "", /Linux by default/);
    const [n] = reportedCapabilities({ "Agent.Name": "x" }, undefined).overridden;
    assert.match(n?.message ?? "", /reports its own name/);
  });

  test("the declared set is not changed", () => {
    const declared = { "Agent.OS": "Windows" };
    reportedCapabilities(declared, undefined);
    assert.deepEqual(declared, { "Agent.OS": "Windows" });
  });
});
