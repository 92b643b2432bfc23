import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { basicAuthHeader, checkBasicAuth, constantTimeEqual } from "./auth.ts";

const expected = { username: "azure-devops", password: "s3cret:with:colons" };
const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

describe("checkBasicAuth", () => {
  const table: [string, string | undefined, ReturnType<typeof checkBasicAuth>][] = [
    ["the right credentials", basicAuthHeader(expected), { ok: true }],
    ["scheme in another case, extra spaces", `  bAsIc   ${b64("azure-devops:s3cret:with:colons")} `, { ok: true }],
    ["no header", undefined, { ok: false, reason: "missing" }],
    ["an empty header", "  ", { ok: false, reason: "missing" }],
    ["a bearer token", "Bearer abc", { ok: false, reason: "scheme" }],
    ["a scheme alone", "Bearer", { ok: false, reason: "scheme" }],
    ["Basic without credentials", "Basic", { ok: false, reason: "malformed" }],
    ["not base64", "Basic ***", { ok: false, reason: "malformed" }],
    ["base64 of the wrong length", "Basic YWJj=", { ok: false, reason: "malformed" }],
    ["no colon", `Basic ${b64("azure-devops")}`, { ok: false, reason: "malformed" }],
    ["three parts", `Basic ${b64("a:b")} extra`, { ok: false, reason: "scheme" }],
    ["wrong password", basicAuthHeader({ ...expected, password: "s3cret" }), { ok: false, reason: "mismatch" }],
    ["wrong user", basicAuthHeader({ ...expected, username: "someone" }), { ok: false, reason: "mismatch" }],
    [
      "password in another case",
      basicAuthHeader({ ...expected, password: "S3CRET:with:colons" }),
      {
        ok: false,
        reason: "mismatch",
      },
    ],
    [
      "user and password swapped",
      basicAuthHeader({ username: expected.password, password: expected.username }),
      {
        ok: false,
        reason: "mismatch",
      },
    ],
    ["both empty", `Basic ${b64(":")}`, { ok: false, reason: "mismatch" }],
  ];
  for (const [name, header, result] of table) {
    test(name, () => assert.deepEqual(checkBasicAuth(header, expected), result));
  }

  test("non-ASCII credentials are compared as UTF-8", () => {
    const unicode = { username: "ünïcode", password: "pässwörd✓" };
    assert.deepEqual(checkBasicAuth(basicAuthHeader(unicode), unicode), { ok: true });
  });

  test("expected credentials with an empty part never match, even an equal header", () => {
    for (const creds of [
      { username: "", password: "x" },
      { username: "x", password: "" },
      { username: "", password: "" },
    ]) {
      assert.deepEqual(checkBasicAuth(basicAuthHeader(creds), creds), { ok: false, reason: "mismatch" });
    }
  });

  test("a result never holds a password", () => {
    const r = checkBasicAuth(basicAuthHeader({ ...expected, password: "guess" }), expected);
    assert.ok(!JSON.stringify(r).includes("guess") && !JSON.stringify(r).includes(expected.password));
  });
});

describe("constantTimeEqual", () => {
  const table: [string, string, boolean][] = [
    ["a", "a", true],
    ["", "", true],
    ["a", "b", false],
    ["short", "a much longer string", false],
    ["prefix", "prefix-and-more", false],
  ];
  for (const [a, b, equal] of table) {
    test(`${JSON.stringify(a)} vs ${JSON.stringify(b)}`, () => assert.equal(constantTimeEqual(a, b), equal));
  }
});
