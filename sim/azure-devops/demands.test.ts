import assert from "node:assert/strict";
import { test } from "node:test";
import {
  capabilityIndex,
  compareVersions,
  DemandParseError,
  parseDemand,
  satisfiesAll,
  satisfiesDemand,
} from "./demands.ts";

test("parseDemand reads exists, equals and gtVersion demands", () => {
  const cases: Array<[string, ReturnType<typeof parseDemand>]> = [
    ["kubectl", { name: "kubectl", operator: "exists", text: "kubectl" }],
    ["  kubectl  ", { name: "kubectl", operator: "exists", text: "kubectl" }],
    ["kubectl -exists", { name: "kubectl", operator: "exists", text: "kubectl -exists" }],
    [
      "Agent.OS -equals Linux",
      { name: "Agent.OS", operator: "equals", value: "Linux", text: "Agent.OS -equals Linux" },
    ],
    [
      "Agent.OS -EQUALS Linux",
      { name: "Agent.OS", operator: "equals", value: "Linux", text: "Agent.OS -EQUALS Linux" },
    ],
    [
      "ExtraAgentContainers -equals name=c,image=i:1, cpu=250m",
      {
        name: "ExtraAgentContainers",
        operator: "equals",
        value: "name=c,image=i:1, cpu=250m",
        text: "ExtraAgentContainers -equals name=c,image=i:1, cpu=250m",
      },
    ],
    [
      "Agent.Version -gtVersion 2.182.1",
      { name: "Agent.Version", operator: "gtVersion", value: "2.182.1", text: "Agent.Version -gtVersion 2.182.1" },
    ],
  ];
  for (const [text, expected] of cases) assert.deepEqual(parseDemand(text), expected, text);
});

test("parseDemand refuses what the service would not accept", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["   ", /empty/],
    ["my cap", /malformed/],
    ["cap -startsWith x", /unknown operator/],
    ["cap -equals", /missing value/],
    ["Agent.Version -gtVersion latest", /not a version/],
    ["cap -exists yes", /takes no value/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseDemand(text),
      (e: unknown) => e instanceof DemandParseError && message.test(e.message),
      text,
    );
  }
});

test("compareVersions compares dotted numbers, missing parts as zero", () => {
  const cases: Array<[string, string, number | undefined]> = [
    ["2.182.1", "2.182.1", 0],
    ["2.182.10", "2.182.9", 1],
    ["2.9", "2.182.1", -1],
    ["3", "2.999.999", 1],
    ["2.182", "2.182.0", 0],
    ["v2", "2", undefined],
    ["2.x", "2", undefined],
  ];
  for (const [a, b, expected] of cases) assert.equal(compareVersions(a, b), expected, `${a} vs ${b}`);
});

test("demands are judged against system plus user capabilities the way the service does", () => {
  const agent = {
    version: "4.258.1",
    systemCapabilities: { "Agent.OS": "Linux", kubectl: "", "Agent.Version": "4.258.1", java: "17" },
    userCapabilities: { buildkit: "1", java: "21", ExtraAgentContainers: "name=c,image=i,cpu=250m,memory=64Mi" },
  };
  const caps = capabilityIndex(agent);
  const cases: Array<[string, boolean]> = [
    ["kubectl", true], // exists, whatever the value (even empty)
    ["KUBECTL", true], // capability names are case-insensitive
    ["buildkit", true], // user capabilities count
    ["docker", false],
    ["Agent.OS -equals Linux", true],
    ["Agent.OS -equals linux", true], // equals ignores case
    ["Agent.OS -equals Windows_NT", false],
    ["docker -equals 1", false], // equals on a missing capability
    ["java -equals 21", true], // the user capability wins a clash
    ["java -equals 17", false],
    ["ExtraAgentContainers -equals name=c,image=i,cpu=250m,memory=64Mi", true],
    ["ExtraAgentContainers -equals name=c,image=i,cpu=250m", false],
    ["Agent.Version -gtVersion 2.182.1", true],
    ["Agent.Version -gtVersion 4.258.1", true], // gtVersion means "at least"
    ["Agent.Version -gtVersion 4.258.2", false],
  ];
  for (const [text, expected] of cases) assert.equal(satisfiesDemand(caps, parseDemand(text)), expected, text);
});

test("Agent.Version falls back to the agent's version field", () => {
  const versionDemand = parseDemand("Agent.Version -gtVersion 2.182.1");
  assert.equal(satisfiesDemand(capabilityIndex({ version: "3.0.0" }), versionDemand), true);
  assert.equal(satisfiesDemand(capabilityIndex({ version: "2.100.0" }), versionDemand), false);
  assert.equal(satisfiesDemand(capabilityIndex({}), versionDemand), false);
  // A reported capability overrides the field.
  assert.equal(
    satisfiesDemand(
      capabilityIndex({ version: "3.0.0", systemCapabilities: { "Agent.Version": "2.0.0" } }),
      versionDemand,
    ),
    false,
  );
});

test("satisfiesAll needs every demand; no demands match every agent", () => {
  const caps = capabilityIndex({ systemCapabilities: { a: "1", b: "2" } });
  assert.equal(satisfiesAll(caps, []), true);
  assert.equal(satisfiesAll(caps, [parseDemand("a"), parseDemand("b -equals 2")]), true);
  assert.equal(satisfiesAll(caps, [parseDemand("a"), parseDemand("c")]), false);
});
