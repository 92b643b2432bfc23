import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  compareVersions,
  type Demand,
  DemandParseError,
  demandSatisfied,
  extraAgentContainersDemand,
  parseDemand,
  parseDemands,
  satisfies,
  unsatisfiedDemands,
} from "./demands.ts";

function demand(text: string): Demand {
  const r = parseDemand(text);
  if (!r.ok) throw r.error;
  return r.demand;
}

describe("parseDemand", () => {
  const ok: [string, string, Record<string, string>][] = [
    ["exists", "kubectl", { kind: "exists", name: "kubectl" }],
    ["exists with dots", "Agent.OS", { kind: "exists", name: "Agent.OS" }],
    ["surrounding whitespace", "  java  ", { kind: "exists", name: "java" }],
    ["equals", "Agent.OS -equals Linux", { kind: "equals", name: "Agent.OS", value: "Linux" }],
    ["value with spaces", "os -equals Ubuntu 22.04 LTS", { kind: "equals", name: "os", value: "Ubuntu 22.04 LTS" }],
    [
      "value with commas and ||",
      "ExtraAgentContainers -equals name=c,image=i:1,cpu=250m||name=d,image=j",
      { kind: "equals", name: "ExtraAgentContainers", value: "name=c,image=i:1,cpu=250m||name=d,image=j" },
    ],
    ["value starting with a dash", "x -equals -1", { kind: "equals", name: "x", value: "-1" }],
    ["several spaces around the operator", "x   -equals   a b", { kind: "equals", name: "x", value: "a b" }],
    ["operator case", "x -EQUALS y", { kind: "equals", name: "x", value: "y" }],
    ["gtVersion", "Agent.Version -gtVersion 2.182.1", { kind: "gtVersion", name: "Agent.Version", value: "2.182.1" }],
    [
      "unknown operator kept",
      "x -startsWith abc",
      { kind: "unknown", name: "x", operator: "startsWith", value: "abc" },
    ],
  ];
  for (const [label, input, want] of ok) {
    test(label, () => {
      const r = parseDemand(input);
      assert.equal(r.ok, true, `expected ${input} to parse`);
      if (!r.ok) return;
      assert.deepEqual({ ...r.demand, raw: undefined }, { ...want, raw: undefined });
      assert.equal(r.demand.raw, input);
    });
  }

  const bad: [string, string, string][] = [
    ["empty", "", "empty"],
    ["blank", "   ", "empty"],
    ["name with a space, no operator", "my cap", "malformed"],
    ["operator without value", "x -equals", "missing-value"],
    ["operator with blank value", "x -equals    ", "missing-value"],
    ["unknown operator without value", "x -foo", "missing-value"],
  ];
  for (const [label, input, code] of bad) {
    test(`error: ${label}`, () => {
      const r = parseDemand(input);
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.ok(r.error instanceof DemandParseError);
      assert.equal(r.error.code, code);
      assert.equal(r.error.input, input);
    });
  }
});

describe("parseDemands", () => {
  test("keeps good ones and reports bad ones, in order", () => {
    const { demands, errors } = parseDemands(["a", "b c", "d -equals e", ""]);
    assert.deepEqual(
      demands.map((d) => d.name),
      ["a", "d"],
    );
    assert.deepEqual(
      errors.map((e) => [e.input, e.code]),
      [
        ["b c", "malformed"],
        ["", "empty"],
      ],
    );
  });
});

describe("compareVersions", () => {
  const cases: [string, string, number][] = [
    ["2.182.1", "2.182.1", 0],
    ["2.182.1", "2.182.2", -1],
    ["2.210.0", "2.99.9", 1],
    ["3.0.0", "2.999.999", 1],
    ["1.2", "1.2.0", -1],
    ["1.2.3-beta", "1.2.3", 0],
    ["1.2.3.4", "1.2.3", 1],
    ["junk", "1.0", -1],
    ["1.0", "junk", 1],
    ["junk", "other", 0],
    ["2", "1.0", -1], // a single component is not a version (as in .NET)
  ];
  for (const [a, b, want] of cases) {
    test(`${a} vs ${b}`, () => assert.equal(Math.sign(compareVersions(a, b)), want));
  }
});

describe("satisfies", () => {
  const caps = { kubectl: "1", "Agent.OS": "Linux", buildkit: "", JAVA_HOME: "/opt/java", "Agent.Version": "3.220.0" };
  const cases: [string, string[], boolean, { ignoreAgentVersion?: boolean; ignoreExtraAgentContainers?: boolean }?][] =
    [
      ["no demands", [], true],
      ["exists", ["kubectl"], true],
      ["exists with empty value", ["buildkit"], true],
      ["exists, name in other case", ["KUBECTL"], true],
      ["exists, missing", ["docker"], false],
      ["equals", ["Agent.OS -equals Linux"], true],
      ["equals, value case differs", ["Agent.OS -equals linux"], true],
      ["equals, name case differs", ["agent.os -equals LINUX"], true],
      ["equals, other value", ["Agent.OS -equals Windows_NT"], false],
      ["equals, missing capability", ["foo -equals 1"], false],
      ["all must hold", ["kubectl", "docker"], false],
      ["gtVersion met", ["Agent.Version -gtVersion 2.182.1"], true],
      ["gtVersion equal is met", ["Agent.Version -gtVersion 3.220.0"], true],
      ["gtVersion not met", ["Agent.Version -gtVersion 4.0.0"], false],
      ["gtVersion ignored", ["Agent.Version -gtVersion 4.0.0"], true, { ignoreAgentVersion: true }],
      ["gtVersion on another name is not ignored", ["tool -gtVersion 1.0"], false, { ignoreAgentVersion: true }],
      ["unknown operator never met", ["kubectl -startsWith 1"], false],
      ["ExtraAgentContainers not a capability", ["ExtraAgentContainers -equals name=a,image=b"], false],
      [
        "ExtraAgentContainers ignored",
        ["kubectl", "ExtraAgentContainers -equals name=a,image=b"],
        true,
        { ignoreExtraAgentContainers: true },
      ],
    ];
  for (const [label, texts, want, options] of cases) {
    test(label, () => {
      assert.equal(satisfies(caps, texts.map(demand), options), want);
    });
  }

  test("unsatisfiedDemands names the failing ones", () => {
    const failing = unsatisfiedDemands(caps, ["kubectl", "docker", "Agent.OS -equals Mac"].map(demand));
    assert.deepEqual(
      failing.map((d) => d.raw),
      ["docker", "Agent.OS -equals Mac"],
    );
  });

  test("capability names differing only in case: either may satisfy", () => {
    assert.equal(demandSatisfied({ Tool: "a", tool: "b" }, demand("TOOL -equals b")), true);
  });

  test("a capability whose value is not known in advance (null) meets only exists", () => {
    const unknown = { "Agent.Name": null, "Agent.Version": null };
    assert.equal(demandSatisfied(unknown, demand("Agent.Name")), true);
    assert.equal(demandSatisfied(unknown, demand("agent.name -equals x")), false);
    assert.equal(demandSatisfied(unknown, demand("Agent.Version -gtVersion 1.0")), false);
    assert.equal(satisfies(unknown, [demand("Agent.Version -gtVersion 1.0")], { ignoreAgentVersion: true }), true);
  });
});

describe("extraAgentContainersDemand", () => {
  const cases: [string, string[], unknown][] = [
    ["none", ["kubectl"], { kind: "none" }],
    ["value", ["ExtraAgentContainers -equals name=a,image=b"], { kind: "value", value: "name=a,image=b" }],
    ["name in other case", ["extraagentcontainers -equals x,y:1"], { kind: "value", value: "x,y:1" }],
    [
      "same value twice",
      ["ExtraAgentContainers -equals v", "ExtraAgentContainers -equals v"],
      { kind: "value", value: "v" },
    ],
  ];
  for (const [label, texts, want] of cases) {
    test(label, () => assert.deepEqual(extraAgentContainersDemand(texts.map(demand)), want));
  }
  test("exists form is invalid", () => {
    const r = extraAgentContainersDemand([demand("ExtraAgentContainers")]);
    assert.equal(r.kind, "invalid");
  });
  test("two values are invalid", () => {
    const r = extraAgentContainersDemand([
      demand("ExtraAgentContainers -equals a"),
      demand("ExtraAgentContainers -equals b"),
    ]);
    assert.equal(r.kind, "invalid");
    if (r.kind === "invalid") assert.match(r.message, /conflicting/);
  });
});
