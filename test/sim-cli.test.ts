/**
 * `npm run sim:up` / `sim:down`: the background simulation starts, is reusable from a shell through .sim/env,
 * tolerates being started twice or stopped when not running, and leaves no process or port behind.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { isAlive, portIsFree } from "../sim/control-plane/processes.ts";
import { readState } from "../sim/state.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..");

async function sim(command: "up" | "down", dir: string, args: string[] = []) {
  return run(process.execPath, [join(root, "sim", "cli.ts"), command, ...args], {
    env: { ...process.env, SIM_DIR: dir },
    timeout: 15 * 60_000,
  });
}

test("sim:up then sim:down leaves no process and no port behind", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), "azp-simcli-")), ".sim");
  try {
    // down without up is harmless
    await sim("down", dir);
    await sim("up", dir, ["--image-pull-ms", "10", "--image-pull-ms", "example.com/sim/big=20"]);
    const state = readState(dir);
    assert.ok(state?.ready, "state says ready");
    const names = state.processes.map((p) => p.name).sort();
    assert.deepEqual(names, ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "sim-services"]);
    const services = state.processes.find((p) => p.name === "sim-services");
    assert.match(services?.command ?? "", / --image-pull-ms 10 --image-pull-ms example\.com\/sim\/big=20$/);
    for (const p of state.processes) assert.ok(isAlive(p.pid), `${p.name} runs`);
    for (const f of ["kubeconfig", "env", "logs/kube-apiserver.log"]) assert.ok(existsSync(join(dir, f)), f);

    // the env file puts kubectl on PATH and points it at the cluster
    const { stdout } = await run("bash", [
      "-c",
      `source '${join(dir, "env")}' && kubectl get namespace default -o name`,
    ]);
    assert.equal(stdout.trim(), "namespace/default");

    // the virtual node is Ready, and the emulator answers with the PATs the env file exports
    const script = [
      `source '${join(dir, "env")}'`,
      'kubectl get node "$SIM_NODE" -o jsonpath=\'{.status.conditions[?(@.type=="Ready")].status}\'',
      "echo",
      'echo "$AZP_URL|$AZP_POOL|$AZP_PAT|$AZP_READ_PAT"',
    ].join(" && ");
    const out = (await run("bash", ["-c", script])).stdout.trim().split("\n");
    assert.equal(out[0], "True");
    const [url, pool, pat, readPat] = (out[1] ?? "").split("|");
    assert.ok(url && pool === "sim-pool" && pat && readPat);
    const pools = await fetch(`${url}/_apis/distributedtask/pools?poolName=${encodeURIComponent(pool)}`, {
      headers: { Authorization: `Basic ${Buffer.from(`:${readPat}`).toString("base64")}` },
    });
    assert.equal(pools.status, 200);
    assert.equal(((await pools.json()) as { count: number }).count, 1);

    // up twice is harmless: the same processes keep running
    const again = await sim("up", dir);
    assert.match(again.stderr, /already running/);
    assert.deepEqual(
      readState(dir)?.processes.map((p) => p.pid),
      state.processes.map((p) => p.pid),
    );

    await sim("down", dir);
    for (const p of state.processes) assert.equal(isAlive(p.pid), false, `${p.name} stopped`);
    for (const [name, port] of Object.entries(state.ports)) assert.ok(await portIsFree(port), `port ${name} free`);
    assert.equal(existsSync(dir), false, "data removed");
    await sim("down", dir);
  } finally {
    const state = readState(dir);
    for (const p of state?.processes ?? []) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already stopped
      }
    }
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
});

test("sim:up refuses malformed image options before starting anything", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), "azp-simcli-")), ".sim");
  try {
    await assert.rejects(
      sim("up", dir, ["--image-pull-ms", "ubuntu=fast"]),
      (err: { code?: number; stderr?: string }) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr ?? "", /--image-pull-ms ubuntu: expected milliseconds/);
        return true;
      },
    );
    assert.equal(existsSync(dir), false, "nothing started");
  } finally {
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
});

test("a failed start names the component and shows its log", async () => {
  const { startControlPlane, ComponentStartError } = await import("../sim/control-plane/index.ts");
  await assert.rejects(
    startControlPlane({ extraApiServerArgs: ["--no-such-flag=1"], readyTimeoutMs: 120_000 }),
    (err: unknown) =>
      err instanceof ComponentStartError &&
      err.component === "kube-apiserver" &&
      /no-such-flag/.test(err.message) &&
      /last lines of/.test(err.message),
  );
});
