/**
 * The state of a background simulation started by `npm run sim:up`: which processes it started (so
 * `sim:down` can stop exactly those) and which ports they use. Kept in `<simDir>/state.json`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ManagedProcess } from "./control-plane/processes.ts";

export type RecordedProcess = Pick<ManagedProcess, "name" | "pid" | "logFile" | "command">;

export interface SimState {
  startedAt: string;
  ready: boolean;
  processes: RecordedProcess[];
  ports: Record<string, number>;
}

export function simDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.SIM_DIR ?? join(import.meta.dirname, "..", ".sim");
}

const stateFile = (dir: string) => join(dir, "state.json");

export function readState(dir: string): SimState | undefined {
  if (!existsSync(stateFile(dir))) return undefined;
  try {
    return JSON.parse(readFileSync(stateFile(dir), "utf8")) as SimState;
  } catch {
    return undefined;
  }
}

export function writeState(dir: string, state: SimState): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(stateFile(dir), `${JSON.stringify(state, null, 2)}\n`);
}
