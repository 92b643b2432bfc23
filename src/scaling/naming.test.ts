import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import {
  canonicalCapabilities,
  capabilitySetKey,
  isPlaceholderAgentName,
  MAX_POD_NAME_LENGTH,
  placeholderAgentName,
  podName,
  podNamePrefix,
  podNameSuffix,
} from "./naming.ts";

describe("placeholderAgentName", () => {
  test("stable, prefixed, 16 hex characters", () => {
    const name = placeholderAgentName({ buildkit: "1" });
    assert.match(name, /^dummy-agent-[0-9a-f]{16}$/);
    assert.equal(placeholderAgentName({ buildkit: "1" }), name);
  });

  test("known value (sha256 of the canonical JSON)", () => {
    assert.equal(canonicalCapabilities({ b: "2", a: "1" }), '[["a","1"],["b","2"]]');
    // Pinned: a placeholder's name must not change between releases (it would orphan registered placeholders).
    assert.equal(placeholderAgentName({ b: "2", a: "1" }), "dummy-agent-5f13efef7cdd95e7");
    assert.equal(placeholderAgentName({ buildkit: "1" }), "dummy-agent-610d4291c3582aab");
    const direct = createHash("sha256").update('[["a","1"],["b","2"]]').digest("hex").slice(0, 16);
    assert.equal(direct, "5f13efef7cdd95e7");
  });

  const different: [string, Record<string, string>, Record<string, string>][] = [
    ["key order does not matter (same)", { a: "1", b: "2" }, { b: "2", a: "1" }],
    ["value differs", { a: "1" }, { a: "2" }],
    ["concatenation ambiguity", { ab: "c" }, { a: "bc" }],
    ["split across entries", { a: "b", c: "d" }, { a: "bc", "": "d" }],
    ["empty vs one empty value", {}, { a: "" }],
    ["case of names", { Tool: "1" }, { tool: "1" }],
  ];
  for (const [label, x, y] of different) {
    test(label, () => {
      const same = label.endsWith("(same)");
      assert.equal(placeholderAgentName(x) === placeholderAgentName(y), same);
    });
  }

  test("the hash function can be injected", () => {
    assert.equal(
      placeholderAgentName({ a: "1" }, (t) => `${t.length.toString(16).padStart(16, "0")}ffff`),
      "dummy-agent-000000000000000b",
    );
    assert.equal(
      capabilitySetKey({}, () => "0123456789abcdef0123"),
      "0123456789abcdef",
    );
  });

  const placeholders: [string, boolean][] = [
    ["dummy-agent-0123456789abcdef", true],
    ["dummy-agent", true],
    ["dummy-agent-from-registrator-cli", true],
    ["dummy-agentx", false],
    ["my-agent-abcde", false],
  ];
  for (const [name, want] of placeholders)
    test(`isPlaceholderAgentName ${name}`, () => assert.equal(isPlaceholderAgentName(name), want));
});

describe("pod names", () => {
  test("suffix from injected bytes", () => {
    assert.equal(podNameSuffix(new Uint8Array([0, 1, 25, 26, 35])), "abz09");
    assert.equal(podNameSuffix(new Uint8Array([36, 255, 72, 0, 0, 9])), "ada" + "aa");
    assert.throws(() => podNameSuffix(new Uint8Array([1, 2])), RangeError);
  });

  const cases: [string, string, string][] = [
    ["agents", "abcde", "agents-abcde"],
    ["my.agents", "x1y2z", "my.agents-x1y2z"],
    ["a".repeat(80), "abcde", `${"a".repeat(57)}-abcde`],
    [`${"a".repeat(56)}-bbbb`, "abcde", `${"a".repeat(56)}-abcde`],
  ];
  for (const [resource, suffix, want] of cases) {
    test(`${resource.slice(0, 20)}… + ${suffix}`, () => {
      const name = podName(resource, suffix);
      assert.equal(name, want);
      assert.ok(name.length <= MAX_POD_NAME_LENGTH);
      assert.ok(name.startsWith(podNamePrefix(resource)));
    });
  }

  test("a bad suffix is refused", () => {
    assert.throws(() => podName("agents", "AB-c"), RangeError);
    assert.throws(() => podName("agents", ""), RangeError);
  });
});
