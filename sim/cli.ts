/**
 * `npm run sim:up`: starts the simulated world in the background and returns once it is ready, writing
 * `.sim/kubeconfig` and `.sim/env`. `npm run sim:down`: stops every process sim:up started and removes its data.
 * Both are idempotent. SIM_DIR overrides the `.sim` folder.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startControlPlane } from "./control-plane/index.ts";
import { isSameProcess, stopProcess } from "./control-plane/processes.ts";
import { readState, type SimState, simDir, writeState } from "./state.ts";

const log = (line: string) => process.stderr.write(`${line}\n`);

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export async function down(dir: string): Promise<void> {
  const state = readState(dir);
  if (state) {
    for (const p of [...state.processes].reverse()) {
      if (isSameProcess(p.pid, p.command)) log(`stopping ${p.name} (pid ${p.pid})`);
      await stopProcess(p);
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

export async function up(dir: string): Promise<void> {
  const existing = readState(dir);
  if (existing?.ready && existing.processes.every((p) => isSameProcess(p.pid, p.command))) {
    log(`already running (${dir}); source ${join(dir, "env")}`);
    return;
  }
  if (existing) {
    log("a previous simulation is partly running or broken: stopping it first");
  }
  await down(dir);
  const state: SimState = { startedAt: new Date().toISOString(), ready: false, processes: [], ports: {} };
  writeState(dir, state);
  const cp = await startControlPlane({
    dir,
    detached: true,
    log,
    onProcess: (p) => {
      state.processes.push({ name: p.name, pid: p.pid, logFile: p.logFile, command: p.command });
      writeState(dir, state);
    },
  }).catch(async (err: unknown) => {
    await down(dir);
    throw err;
  });
  cp.client.close();
  state.ports = { ...cp.ports };
  const envLines = [
    `export KUBECONFIG=${shellQuote(cp.kubeconfig)}`,
    `export PATH=${shellQuote(cp.binDir)}:"$PATH"`,
    `export SIM_DIR=${shellQuote(dir)}`,
  ];
  writeFileSync(join(dir, "env"), `${envLines.join("\n")}\n`);
  state.ready = true;
  writeState(dir, state);
  log(`control plane ready at ${cp.server}`);
  log(`run: source ${join(dir, "env")} && kubectl get nodes`);
}

if (import.meta.main) {
  const command = process.argv[2];
  const dir = simDir();
  try {
    if (command === "up") await up(dir);
    else if (command === "down") await down(dir);
    else {
      log("usage: node sim/cli.ts up|down");
      process.exit(2);
    }
  } catch (err) {
    log(`sim ${command} failed: ${(err as Error).message}`);
    process.exit(1);
  }
}
