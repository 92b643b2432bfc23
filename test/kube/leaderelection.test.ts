/**
 * Leader election between separate operator processes on one real Lease: exactly one leader; a killed leader
 * is replaced once its lease expires; a leader that stops gracefully hands over by releasing the lease.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Lease } from "../../src/kube/leaderelection.ts";
import {
  createNamespace,
  deleteNamespace,
  eventually,
  type TestCluster,
  testCluster,
  uniqueName,
} from "../support/cluster.ts";

const fixture = fileURLToPath(new URL("./fixtures/elector.ts", import.meta.url));

interface Line {
  event: string;
  at: number;
  identity?: string;
  leader?: string;
  leading?: boolean;
  requested?: boolean;
  level?: string;
  message?: string;
  fields?: Record<string, unknown>;
}

class Candidate {
  readonly lines: Line[] = [];
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly #waiters = new Set<() => void>();
  stderr = "";

  constructor(pod: string, env: Record<string, string>) {
    this.proc = spawn(process.execPath, [fixture], {
      env: { ...process.env, ...env, ELECTOR_POD: pod },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.exited = new Promise((resolve) => this.proc.on("exit", (code) => resolve(code)));
    this.proc.stderr?.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    createInterface({ input: this.proc.stdout as NodeJS.ReadableStream }).on("line", (text) => {
      try {
        this.lines.push(JSON.parse(text) as Line);
      } catch {
        this.stderr += `${text}\n`;
      }
      for (const w of this.#waiters) w();
    });
  }

  get identity(): string | undefined {
    return this.lines.find((l) => l.event === "ready")?.identity;
  }

  count(event: string): number {
    return this.lines.filter((l) => l.event === event).length;
  }

  /** Resolves with the first line (from index `from`) matching; fails after `timeoutMs` or if the process dies. */
  waitFor(what: string, match: (l: Line) => boolean, timeoutMs = 60_000, from = 0): Promise<Line> {
    return new Promise<Line>((resolve, reject) => {
      const check = () => {
        const hit = this.lines.slice(from).find(match);
        if (hit) {
          done();
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}; stderr: ${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      const onExit = () => {
        check();
        done();
        reject(new Error(`process exited while waiting for ${what}; stderr: ${this.stderr.slice(-2000)}`));
      };
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        this.proc.off("exit", onExit);
      };
      this.#waiters.add(check);
      this.proc.on("exit", onExit);
      check();
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }
}

let cluster: TestCluster;
let ns: string;
const candidates: Candidate[] = [];

before(async () => {
  cluster = await testCluster();
  ns = await createNamespace(cluster.client, "election");
});

after(async () => {
  for (const c of candidates) c.kill("SIGKILL");
  await Promise.all(candidates.map((c) => c.exited));
  await deleteNamespace(cluster.client, ns);
  await cluster.close();
});

function start(pod: string, lease: string, timings: { lease: number; renew: number; retry: number }): Candidate {
  const c = new Candidate(pod, {
    ELECTOR_KUBECONFIG: cluster.kubeconfig,
    ELECTOR_NAMESPACE: ns,
    ELECTOR_LEASE: lease,
    ELECTOR_LEASE_MS: String(timings.lease),
    ELECTOR_RENEW_MS: String(timings.renew),
    ELECTOR_RETRY_MS: String(timings.retry),
  });
  candidates.push(c);
  return c;
}

async function readLease(name: string): Promise<Lease> {
  return cluster.client.request<Lease>({ path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}` });
}

/** Starts two candidates and returns them as [leader, follower] once both agree on the leader. */
async function electPair(lease: string, timings: { lease: number; renew: number; retry: number }) {
  const a = start("operator-a", lease, timings);
  const b = start("operator-b", lease, timings);
  await Promise.all([
    a.waitFor("a ready", (l) => l.event === "ready"),
    b.waitFor("b ready", (l) => l.event === "ready"),
  ]);
  const winner = await Promise.race([
    a.waitFor("a leading", (l) => l.event === "started").then(() => a),
    b.waitFor("b leading", (l) => l.event === "started").then(() => b),
  ]);
  const loser = winner === a ? b : a;
  await loser.waitFor("the follower to see the leader", (l) => l.event === "leader" && l.leader === winner.identity);
  return [winner, loser] as const;
}

const short = { lease: 3000, renew: 2000, retry: 500 };

describe("leader election between two processes", () => {
  test("exactly one leader; the lease names it; the follower keeps following", async () => {
    const lease = uniqueName("one-leader");
    const [leader, follower] = await electPair(lease, short);
    // Watch both over ten of the follower's health reports (event-driven, several retry periods).
    const from = follower.lines.length;
    await follower.waitFor(
      "ten health reports",
      () => follower.lines.slice(from).filter((l) => l.event === "health").length >= 10,
    );
    const reports = follower.lines.slice(from).filter((l) => l.event === "health");
    assert.ok(reports.every((l) => l.leading === false && l.leader === leader.identity));
    assert.equal(follower.count("started"), 0);
    assert.equal(leader.count("started"), 1);
    assert.equal(leader.count("stopped"), 0);
    const l = await readLease(lease);
    assert.equal(l.spec?.holderIdentity, leader.identity);
    assert.equal(l.spec?.leaseDurationSeconds, 3);
    leader.kill("SIGKILL");
    follower.kill("SIGKILL");
  });

  test("SIGKILL of the leader: the follower takes over once the lease has expired", async () => {
    const lease = uniqueName("killed");
    const [leader, follower] = await electPair(lease, short);
    const before = await readLease(lease);
    const killedIdentity = leader.identity;
    leader.kill("SIGKILL");
    await leader.exited;
    await follower.waitFor("the follower to lead", (l) => l.event === "started", 60_000);
    const acquired = await follower.waitFor("the acquire log", (l) => l.message === "acquired the leader lease");
    assert.equal(acquired.fields?.previousHolder, killedIdentity, "it took over an expired lease, not a released one");
    const after = await readLease(lease);
    assert.equal(after.spec?.holderIdentity, follower.identity);
    assert.equal(after.spec?.leaseTransitions, (before.spec?.leaseTransitions ?? 0) + 1);
    assert.equal(leader.count("stopped"), 0, "a killed process gets no callback");
    follower.kill("SIGKILL");
  });

  test("graceful stop releases the lease: the follower takes over long before it could expire", async () => {
    // A long lease: without the release the follower would wait 60 s; the wait below gives up at 30 s.
    const timings = { lease: 60_000, renew: 2000, retry: 500 };
    const lease = uniqueName("graceful");
    const [leader, follower] = await electPair(lease, timings);
    leader.kill("SIGTERM");
    await leader.waitFor("leadership ended on request", (l) => l.event === "stopped" && l.requested === true);
    await leader.waitFor("released", (l) => l.message === "released the leader lease");
    assert.equal(await leader.exited, 0);
    await follower.waitFor("the follower to lead", (l) => l.event === "started", 30_000);
    const acquired = await follower.waitFor("the acquire log", (l) => l.message === "acquired the leader lease");
    assert.equal(acquired.fields?.previousHolder, "", "it took a released lease");
    await eventually("the lease to name the new leader", async () =>
      (await readLease(lease)).spec?.holderIdentity === follower.identity ? true : undefined,
    );
    // The new leader stops gracefully too: the lease is left free.
    follower.kill("SIGTERM");
    assert.equal(await follower.exited, 0);
    const l = await readLease(lease);
    assert.equal(l.spec?.holderIdentity, "");
    assert.equal(l.spec?.leaseDurationSeconds, 1);
  });
});
