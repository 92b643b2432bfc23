/**
 * What the benchmarks observe through the API server, with the time each change arrived (this process's clock,
 * in ms): pods (first seen, scheduled, Running, Succeeded/Failed, gone) and node heartbeats (the Node's Ready
 * condition `lastHeartbeatTime` and the Lease's `renewTime`).
 */
import type { KubeClient } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { listWatchFor } from "../../src/kube/listwatch.ts";
import type { KubeObject } from "../../src/kube/types.ts";

interface PodLike extends KubeObject {
  metadata: NonNullable<KubeObject["metadata"]> & { name: string };
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

export interface PodTimes {
  /** First seen (watch ADDED). */
  added?: number;
  /** First seen with `spec.nodeName` (bound by the scheduler). */
  scheduled?: number;
  running?: number;
  /** First seen Succeeded or Failed. */
  finished?: number;
  phase?: string;
  deleting?: number;
  gone?: number;
}

/** Watches the pods of a namespace (optionally by label) and keeps, per pod name, when each change was seen. */
export class PodTracker {
  readonly times = new Map<string, PodTimes>();
  readonly #informer: Informer<PodLike>;
  #waiters = new Set<() => void>();

  constructor(client: KubeClient, namespace: string, labelSelector?: string) {
    this.#informer = new Informer<PodLike>({
      name: `bench-pods-${namespace}`,
      listWatch: listWatchFor<PodLike>(client, {
        resource: { apiVersion: "v1", resource: "pods" },
        namespace,
        ...(labelSelector ? { labelSelector } : {}),
      }),
    });
    this.#informer.addHandler({
      onAdd: (p) => this.#see(p),
      onUpdate: (_old, p) => this.#see(p),
      onDelete: (p) => {
        const t = this.#entry(p.metadata.name);
        t.gone ??= Date.now();
        this.#wake();
      },
    });
  }

  async start(): Promise<void> {
    this.#informer.start();
    await this.#informer.waitForSync();
  }

  stop(): Promise<void> {
    return this.#informer.stop();
  }

  /** Names of the pods that currently exist. */
  live(): string[] {
    return this.#informer.store.list().map((p) => p.metadata.name);
  }

  #entry(name: string): PodTimes {
    let t = this.times.get(name);
    if (!t) {
      t = {};
      this.times.set(name, t);
    }
    return t;
  }

  #see(p: PodLike): void {
    const now = Date.now();
    const t = this.#entry(p.metadata.name);
    t.added ??= now;
    if (p.spec?.nodeName) t.scheduled ??= now;
    const phase = p.status?.phase;
    if (phase) t.phase = phase;
    if (phase === "Running") t.running ??= now;
    if (phase === "Succeeded" || phase === "Failed") t.finished ??= now;
    if (p.metadata.deletionTimestamp) t.deleting ??= now;
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /** Resolves when `predicate` holds (checked on every change); rejects after `timeoutMs`. */
  waitFor(what: string, predicate: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (predicate()) {
        resolve();
        return;
      }
      const check = () => {
        if (predicate()) {
          done();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      // A slow poll as a backstop (e.g. a condition on something other than pod events).
      const poll = setInterval(check, 500);
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }
}

export interface Beat {
  /** When the change arrived here. */
  seenAt: number;
  /** The time the node wrote (heartbeat or renew time). */
  value: number;
}

interface NodeLike extends KubeObject {
  status?: { conditions?: { type: string; lastHeartbeatTime?: string }[] };
}

interface LeaseLike extends KubeObject {
  spec?: { renewTime?: string };
}

/** Records every new Ready heartbeat of one Node and every renewal of its Lease. */
export class HeartbeatWatcher {
  readonly readyBeats: Beat[] = [];
  readonly leaseBeats: Beat[] = [];
  readonly #node: Informer<NodeLike>;
  readonly #lease: Informer<LeaseLike>;

  constructor(client: KubeClient, nodeName: string) {
    this.#node = new Informer<NodeLike>({
      name: "bench-node",
      listWatch: listWatchFor<NodeLike>(client, {
        resource: { apiVersion: "v1", resource: "nodes" },
        fieldSelector: `metadata.name=${nodeName}`,
      }),
    });
    this.#lease = new Informer<LeaseLike>({
      name: "bench-lease",
      listWatch: listWatchFor<LeaseLike>(client, {
        resource: { apiVersion: "coordination.k8s.io/v1", resource: "leases" },
        namespace: "kube-node-lease",
        fieldSelector: `metadata.name=${nodeName}`,
      }),
    });
    const push = (list: Beat[], iso: string | undefined) => {
      if (!iso) return;
      const value = Date.parse(iso);
      if (!Number.isFinite(value) || list.at(-1)?.value === value) return;
      list.push({ seenAt: Date.now(), value });
    };
    const onNode = (n: NodeLike) =>
      push(this.readyBeats, n.status?.conditions?.find((c) => c.type === "Ready")?.lastHeartbeatTime);
    const onLease = (l: LeaseLike) => push(this.leaseBeats, l.spec?.renewTime);
    this.#node.addHandler({ onAdd: onNode, onUpdate: (_o, n) => onNode(n) });
    this.#lease.addHandler({ onAdd: onLease, onUpdate: (_o, l) => onLease(l) });
  }

  async start(): Promise<void> {
    this.#node.start();
    this.#lease.start();
    await Promise.all([this.#node.waitForSync(), this.#lease.waitForSync()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.#node.stop(), this.#lease.stop()]);
  }
}

/**
 * The largest gap between consecutive beats within [from, to] (by arrival), counting the time from `from` to the
 * first beat and from the last beat to `to` as gaps too: a node that stops beating shows up even with no beat.
 * `by`: the written value (when the node meant to beat) or the arrival time (also counts API latency).
 */
export function maxBeatGap(beats: readonly Beat[], from: number, to: number, by: "value" | "seenAt"): number {
  const inside = beats.filter((b) => b.seenAt >= from && b.seenAt <= to);
  const before = [...beats].reverse().find((b) => b.seenAt < from);
  const times = [...(before ? [before] : []), ...inside].map((b) => (by === "value" ? b.value : b.seenAt));
  let max = 0;
  for (let i = 1; i < times.length; i++) max = Math.max(max, (times[i] as number) - (times[i - 1] as number));
  const last = inside.at(-1)?.seenAt ?? before?.seenAt ?? from;
  return Math.max(max, to - last);
}
