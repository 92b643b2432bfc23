import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { test } from "node:test";

test("the CLI prints where it listens, serves, and stops on SIGTERM", { timeout: 60_000 }, async () => {
  const child = spawn(
    process.execPath,
    [
      new URL("./cli.ts", import.meta.url).pathname,
      "--json",
      "--org",
      "cli-org",
      "--pool",
      "Pool A",
      "--pat",
      "manage-token",
      "--read-pat",
      "read-token",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  try {
    const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
    const info = JSON.parse(line);
    assert.match(info.AZP_URL, /^http:\/\/127\.0\.0\.1:\d+\/cli-org$/);
    assert.equal(info.AZP_POOL, "Pool A");
    assert.equal(info.AZP_PAT, "manage-token");
    assert.equal(info.AZP_READ_PAT, "read-token");
    const response = await fetch(`${info.AZP_URL}/_apis/distributedtask/pools?poolName=Pool%20A`, {
      headers: { Authorization: `Basic ${Buffer.from(":read-token").toString("base64")}` },
    });
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { count: number }).count, 1);
  } finally {
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code] = await exited;
    assert.equal(code, 0);
  }
});

test("the CLI refuses unknown flags", { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [new URL("./cli.ts", import.meta.url).pathname, "--bogus"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const [code] = await once(child, "exit");
  assert.equal(code, 2);
  assert.match(stderr, /usage:/);
});
