import { readFileSync } from "node:fs";

/** Resident set size of a process (MiB) from /proc (Linux); undefined when unknown or gone. */
export function processRssMiB(pid: number): number | undefined {
  if (!pid) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
