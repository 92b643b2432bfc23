/**
 * Where the operator runs on the machine's cores, for runs that tell its own cost apart from waiting for a core
 * (Linux). The `scale` benchmark shares two cores between the operator, the API server, etcd, the virtual nodes and
 * the emulator; in a cluster those run on other machines. Two ways to come closer to that:
 *
 * - a nice value for the operator's threads (`setThreadsNice`): it gets a core first, but still shares both;
 * - a core of its own (`placeOperator`): the operator's threads on some CPUs, the benchmark's process and every
 *   process it started (control plane, virtual nodes) on the others.
 *
 * Threads and processes started later inherit the placement of the thread that starts them, so one call after the
 * operator starts is enough for affinity; nice values are per thread and are set again by the caller.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { cpus, setPriority } from "node:os";

/**
 * Sets the nice value of every thread of a process (on Linux a nice value is per thread, and `setpriority` of a
 * pid changes its main thread alone). Returns how many threads were set; a thread gone meanwhile is skipped.
 */
export function setThreadsNice(pid: number, nice: number): number {
  let set = 0;
  for (const tid of tasksOf(pid)) {
    try {
      setPriority(tid, nice);
      set++;
    } catch {
      // Gone, or not allowed (a negative value needs CAP_SYS_NICE): the caller checks the count.
    }
  }
  return set;
}

function tasksOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

/** The parent of each process on the machine (/proc/<pid>/stat, field 4). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      out.set(Number(entry), ppid);
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** `root` and every process below it in `parentOf` (pid -> parent pid), without `except` and what is below that. */
export function treeOf(parentOf: ReadonlyMap<number, number>, root: number, except: number): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parentOf) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const out: number[] = [];
  const seen = new Set<number>();
  const visit = (pid: number) => {
    if (pid === except || seen.has(pid)) return;
    seen.add(pid);
    out.push(pid);
    for (const c of children.get(pid) ?? []) visit(c);
  };
  visit(root);
  return out;
}

/** The CPUs of `list` ("1", "0-1", "0,2") as numbers. */
export function cpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(",").map((s) => s.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`not a CPU list: ${list}`);
    const from = Number(m[1]);
    for (let c = from; c <= Number(m[2] ?? from); c++) out.push(c);
  }
  return out;
}

/** Pins every thread of a process to `list` (taskset). False when it could not be done. */
function pin(pid: number, list: string): boolean {
  try {
    execFileSync("taskset", ["--all-tasks", "--pid", "--cpu-list", list, String(pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * The operator (`operatorPid`, every thread) on the CPUs of `list`; this process and every process it started but
 * the operator on the others. Returns what was done, for the result; throws when `list` leaves no CPU for the rest.
 */
export function placeOperator(operatorPid: number, list: string): { operatorCpus: number[]; otherCpus: number[] } {
  const all = cpus().map((_, i) => i);
  const operatorCpus = cpuList(list).filter((c) => all.includes(c));
  const otherCpus = all.filter((c) => !operatorCpus.includes(c));
  if (operatorCpus.length === 0 || otherCpus.length === 0)
    throw new Error(`CPU list ${list} must name some but not all of CPUs 0-${all.length - 1}`);
  if (!pin(operatorPid, operatorCpus.join(","))) throw new Error(`could not pin the operator to CPUs ${list}`);
  for (const pid of treeOf(parents(), process.pid, operatorPid)) pin(pid, otherCpus.join(","));
  return { operatorCpus, otherCpus };
}
