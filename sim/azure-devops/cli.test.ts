import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

test("--https, --ca-out and --service-principal: an Entra authority a separate client can trust", {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "azdo-cli-test-"));
  const caFile = join(dir, "ca.pem");
  const child = spawn(
    process.execPath,
    [
      new URL("./cli.ts", import.meta.url).pathname,
      "--json",
      "--https",
      "--ca-out",
      caFile,
      "--service-principal",
      "sim-tenant/00000000-0000-0000-0000-000000000001",
      "--service-principal",
      "sim-tenant/00000000-0000-0000-0000-000000000002:read",
      "--token-lifetime",
      "120",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  try {
    const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
    const info = JSON.parse(line);
    assert.match(info.AZURE_AUTHORITY_HOST, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(info.AZP_SIM_HTTPS_URL, info.AZURE_AUTHORITY_HOST);
    assert.equal(info.AZURE_TENANT_ID, "sim-tenant");
    assert.equal(info.AZURE_CLIENT_ID, "00000000-0000-0000-0000-000000000001");
    assert.equal(info.AZURE_CLIENT_SECRET.length, 40);
    assert.equal(info.AZP_SIM_CA_FILE, caFile);
    assert.equal(readFileSync(caFile, "utf8"), info.caCertificate);
    assert.deepEqual(
      info.servicePrincipals.map((p: { scope: string }) => p.scope),
      ["manage", "read"],
    );
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        `${info.AZURE_AUTHORITY_HOST}/sim-tenant/oauth2/v2.0/token`,
        { method: "POST", ca: readFileSync(caFile), headers: { "Content-Type": "application/x-www-form-urlencoded" } },
        (res) => {
          let body = "";
          res.on("data", (d) => {
            body += d;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end(
        new URLSearchParams({
          grant_type: "client_credentials",
          client_id: info.AZURE_CLIENT_ID,
          client_secret: info.AZURE_CLIENT_SECRET,
          scope: "499b84ac-1321-427f-aa17-267ca6975798/.default",
        }).toString(),
      );
    });
    assert.equal(answer.status, 200, answer.body);
    const token = JSON.parse(answer.body);
    assert.equal(token.expires_in, 120);
    const pools = await fetch(`${info.AZP_URL}/_apis/distributedtask/pools`, {
      headers: { Authorization: `Bearer ${token.access_token}` },
    });
    assert.equal(pools.status, 200);
  } finally {
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code] = await exited;
    assert.equal(code, 0);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--ca-out without --https and a malformed --service-principal are refused", { timeout: 60_000 }, async () => {
  for (const args of [
    ["--ca-out", "/tmp/x.pem"],
    ["--service-principal", "no-client-id"],
  ]) {
    const child = spawn(process.execPath, [new URL("./cli.ts", import.meta.url).pathname, ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const [code] = await once(child, "exit");
    assert.equal(code, 2, args.join(" "));
    assert.match(stderr, /--ca-out needs --https|invalid --service-principal/);
  }
});
