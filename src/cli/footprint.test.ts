import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { stringify } from "yaml";

/**
 * The operator's memory starts with the modules it loads: `@kubernetes/client-node` costs about 90 MiB and
 * `@azure/identity` about 40, and most installations need neither (a service-account token or a kubeconfig with
 * a token or certificate; a PAT). They must be loaded only for the credentials that use them.
 */
const run = promisify(execFile);
const operator = fileURLToPath(new URL("./operator.ts", import.meta.url));
const kubeconfigModule = new URL("../kube/kubeconfig.ts", import.meta.url).href;

/** Runs `node args` with a resolve hook that writes each resolved URL to a file; returns them. */
async function loadedModules(args: string[]): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), "footprint-"));
  const log = join(dir, "resolved.txt");
  const hook = join(dir, "hook.mjs");
  writeFileSync(
    hook,
    [
      'import { appendFileSync } from "node:fs";',
      'import { registerHooks } from "node:module";',
      "registerHooks({",
      "  resolve(specifier, context, next) {",
      "    const r = next(specifier, context);",
      `    appendFileSync(${JSON.stringify(log)}, r.url + "\\n");`,
      "    return r;",
      "  },",
      "});",
      "",
    ].join("\n"),
  );
  writeFileSync(log, "");
  try {
    await run(process.execPath, ["--import", hook, ...args], {
      env: { PATH: process.env.PATH, HOME: dir },
      timeout: 60_000,
    });
    return readFileSync(log, "utf8").split("\n").filter(Boolean);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const heavy = (urls: string[]) =>
  urls.filter((u) => u.includes("/@kubernetes/client-node/") || u.includes("/@azure/identity/"));

describe("the operator loads heavy libraries only when a credential needs them", () => {
  test("the whole program (--help loads every static import) needs neither", async () => {
    const urls = await loadedModules([operator, "--help"]);
    assert.ok(
      urls.some((u) => u.endsWith("/src/controller/operator.ts")),
      "the hook saw the program's modules",
    );
    assert.deepEqual(heavy(urls), []);
  });

  test("the compiled program (the image's `npm run build`) runs and needs neither either", async () => {
    const out = mkdtempSync(join(tmpdir(), "footprint-dist-"));
    try {
      const root = fileURLToPath(new URL("../../", import.meta.url));
      const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
      await run(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", out], {
        cwd: root,
        timeout: 120_000,
      });
      // dist/ sits beside package.json ("type": "module") and node_modules in the image; here, the same.
      writeFileSync(join(out, "package.json"), JSON.stringify({ type: "module" }));
      symlinkSync(join(root, "node_modules"), join(out, "node_modules"));
      const urls = await loadedModules([join(out, "cli", "operator.js"), "--help"]);
      assert.ok(
        urls.some((u) => u.endsWith("/controller/operator.js")),
        "the compiled modules were loaded",
      );
      assert.ok(!urls.some((u) => u.endsWith(".ts")), "no TypeScript module");
      assert.deepEqual(heavy(urls), []);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  test("a kubeconfig with a token: neither; with an exec plugin: client-node, when credentials are fetched", async () => {
    const dir = mkdtempSync(join(tmpdir(), "footprint-kc-"));
    const kubeconfig = (user: Record<string, unknown>) =>
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "k", cluster: { server: "https://127.0.0.1:1", "insecure-skip-tls-verify": true } }],
        users: [{ name: "u", user }],
        contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
        "current-context": "c",
      });
    const plugin = join(dir, "plugin.sh");
    writeFileSync(
      plugin,
      `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}}'\n`,
      { mode: 0o755 },
    );
    const cases: { name: string; user: Record<string, unknown>; clientNode: boolean }[] = [
      { name: "token", user: { token: "static" }, clientNode: false },
      {
        name: "exec",
        user: { exec: { apiVersion: "client.authentication.k8s.io/v1", command: plugin } },
        clientNode: true,
      },
    ];
    try {
      for (const c of cases) {
        const file = join(dir, `${c.name}.yaml`);
        writeFileSync(file, kubeconfig(c.user));
        // Loads the connection as the operator does and asks for the credentials of its first request.
        const script = [
          `const { loadConnection } = await import(${JSON.stringify(kubeconfigModule)});`,
          `const conn = loadConnection({ paths: [${JSON.stringify(file)}] });`,
          "if (conn.credentials) await conn.credentials.get();",
        ].join("\n");
        const urls = await loadedModules(["--input-type=module", "-e", script]);
        const loaded = heavy(urls);
        assert.equal(
          loaded.some((u) => u.includes("/@kubernetes/client-node/")),
          c.clientNode,
          `${c.name}: client-node loaded: ${loaded.length > 0}`,
        );
        assert.ok(!loaded.some((u) => u.includes("/@azure/identity/")), `${c.name}: @azure/identity not loaded`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
