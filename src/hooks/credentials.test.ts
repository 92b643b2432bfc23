import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { credentialSource, secretText } from "./credentials.ts";

describe("secretText", () => {
  const table: [string, string][] = [
    ["s3cret", "s3cret"],
    ["s3cret\n", "s3cret"],
    ["s3cret\r\n", "s3cret"],
    ["s3cret\n\n", "s3cret\n"],
    [" spaced ", " spaced "],
  ];
  for (const [raw, text] of table) test(JSON.stringify(raw), () => assert.equal(secretText(raw), text));
});

describe("credentialSource", () => {
  const files: Record<string, string> = { "/s/username": "ado\n", "/s/password": "pw", "/s/empty": "\n" };
  const readFile = async (path: string) => {
    const text = files[path];
    if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
    return text;
  };

  test("files, read on every call (a rotated Secret counts at once)", async () => {
    const source = credentialSource(
      { username: { file: "/s/username" }, password: { file: "/s/password" } },
      { env: {}, readFile },
    );
    assert.deepEqual(await source(), { username: "ado", password: "pw" });
    files["/s/password"] = "rotated\n";
    assert.deepEqual(await source(), { username: "ado", password: "rotated" });
  });

  test("environment variables", async () => {
    const source = credentialSource(
      { username: { env: "HOOK_USER" }, password: { env: "HOOK_PASSWORD" } },
      { env: { HOOK_USER: "ado", HOOK_PASSWORD: "pw" }, readFile },
    );
    assert.deepEqual(await source(), { username: "ado", password: "pw" });
  });

  test("missing or empty: an error naming the place, never a value", async () => {
    const cases: [Parameters<typeof credentialSource>[0], RegExp][] = [
      [{ username: { file: "/s/none" }, password: { file: "/s/password" } }, /ENOENT.*\/s\/none/],
      [{ username: { file: "/s/username" }, password: { file: "/s/empty" } }, /password \(file \/s\/empty\) is empty/],
      [{ username: { env: "NOPE" }, password: { file: "/s/password" } }, /user name \(environment variable NOPE\)/],
    ];
    for (const [locations, message] of cases) {
      await assert.rejects(credentialSource(locations, { env: {}, readFile })(), message);
    }
  });
});
