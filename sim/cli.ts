/**
 * `npm run sim:up`: starts the simulated world in the background and returns once it is ready, writing
 * `.sim/kubeconfig` and `.sim/env`. `npm run sim:down`: stops every process sim:up started and removes its data.
 * Both are idempotent. SIM_DIR overrides the `.sim` folder.
 *
 *   node sim/cli.ts up [--image-pull-ms MS | --image-pull-ms IMAGE=MS]... [--image-check-ms MS]
 *   node sim/cli.ts down
 *
 * The image options set the virtual node's pull times (see sim/node/images.ts); default: instant pulls.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { startControlPlane } from "./control-plane/index.ts";
import { isSameProcess, logTail, startProcess, stopProcess } from "./control-plane/processes.ts";
import { parseImagePullFlags } from "./node/images.ts";
import type { ServicesInfo } from "./services.ts";
import { type RecordedProcess, readState, type SimState, simDir, writeState } from "./state.ts";

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

export interface UpOptions {
  /** `--image-pull-ms` values: `MS` (every image) or `IMAGE=MS`. */
  imagePullMs?: string[];
  /** `--image-check-ms`: the registry check of imagePullPolicy Always when the image is on the node. */
  imageCheckMs?: string;
}

/** The virtual node's image options as arguments of services.ts (checked here, before anything starts). */
function imageArgs(options: UpOptions): string[] {
  parseImagePullFlags(options.imagePullMs ?? [], options.imageCheckMs);
  return [
    ...(options.imagePullMs ?? []).flatMap((v) => ["--image-pull-ms", v]),
    ...(options.imageCheckMs !== undefined ? ["--image-check-ms", options.imageCheckMs] : []),
  ];
}

/** Starts the emulator and the virtual node in a background process and waits for its ready file. */
async function startServices(
  dir: string,
  kubeconfig: string,
  record: (p: RecordedProcess) => void,
  extraArgs: string[],
): Promise<ServicesInfo> {
  const readyFile = join(dir, "services.json");
  rmSync(readyFile, { force: true });
  const p = startProcess(
    "sim-services",
    process.execPath,
    [
      join(import.meta.dirname, "services.ts"),
      "--kubeconfig",
      kubeconfig,
      "--ready-file",
      readyFile,
      "--log-dir",
      join(dir, "logs", "pods"),
      ...extraArgs,
    ],
    join(dir, "logs", "services.log"),
    { detached: true },
  );
  record({ name: p.name, pid: p.pid, logFile: p.logFile, command: p.command });
  let exited = false;
  void p.exited?.then(() => {
    exited = true;
  });
  const deadline = Date.now() + 120_000;
  while (!existsSync(readyFile)) {
    if (exited) throw new Error(`sim-services exited during start:\n${logTail(p.logFile)}`);
    if (Date.now() > deadline) throw new Error(`sim-services did not get ready:\n${logTail(p.logFile)}`);
    await sleep(100);
  }
  return JSON.parse(readFileSync(readyFile, "utf8")) as ServicesInfo;
}

export async function up(dir: string, options: UpOptions = {}): Promise<void> {
  const servicesArgs = imageArgs(options);
  const existing = readState(dir);
  if (existing?.ready && existing.processes.every((p) => isSameProcess(p.pid, p.command))) {
    log(`already running (${dir}); source ${join(dir, "env")}`);
    if (servicesArgs.length > 0) log("image options take effect after sim:down and a new sim:up");
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
  const services = await startServices(
    dir,
    cp.kubeconfig,
    (p) => {
      state.processes.push(p);
      writeState(dir, state);
    },
    servicesArgs,
  ).catch(async (err: unknown) => {
    await down(dir);
    throw err;
  });
  const envLines = [
    `export KUBECONFIG=${shellQuote(cp.kubeconfig)}`,
    `export PATH=${shellQuote(cp.binDir)}:"$PATH"`,
    `export SIM_DIR=${shellQuote(dir)}`,
    `export AZP_URL=${shellQuote(services.organizationUrl)}`,
    `export AZP_POOL=${shellQuote(services.pool)}`,
    `export AZP_PAT=${shellQuote(services.pat)}`,
    `export AZP_READ_PAT=${shellQuote(services.readPat)}`,
    `export SIM_NODE=${shellQuote(services.nodes[0] ?? "")}`,
    `export SIM_EMULATOR_CONTROL_URL=${shellQuote(services.controlUrl)}`,
  ];
  writeFileSync(join(dir, "env"), `${envLines.join("\n")}\n`);
  state.ready = true;
  writeState(dir, state);
  log(`control plane ready at ${cp.server}`);
  log(
    `Azure DevOps emulator at ${services.organizationUrl} (pool ${services.pool}); virtual node ${services.nodes.join(", ")}`,
  );
  log(`run: source ${join(dir, "env")} && kubectl get nodes`);
}

if (import.meta.main) {
  const command = process.argv[2];
  const dir = simDir();
  try {
    if (command === "up") {
      const { values } = parseArgs({
        args: process.argv.slice(3),
        options: {
          "image-pull-ms": { type: "string", multiple: true },
          "image-check-ms": { type: "string" },
        },
      });
      await up(dir, {
        imagePullMs: values["image-pull-ms"] ?? [],
        ...(values["image-check-ms"] !== undefined ? { imageCheckMs: values["image-check-ms"] } : {}),
      });
    } else if (command === "down") await down(dir);
    else {
      log("usage: node sim/cli.ts up [--image-pull-ms MS|IMAGE=MS]... [--image-check-ms MS] | down");
      process.exit(2);
    }
  } catch (err) {
    log(`sim ${command} failed: ${(err as Error).message}`);
    process.exit(1);
  }
}
