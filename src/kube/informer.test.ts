import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock, settle } from "../runtime/clock.ts";
import { KubeApiError, type WatchEvent } from "./client.ts";
import {
  controllerOwnerKeys,
  enqueueHandler,
  Informer,
  type InformerOptions,
  withoutManagedFields,
} from "./informer.ts";
import type { ListWatch, WatchOptions } from "./listwatch.ts";
import type { KubeObject } from "./types.ts";

interface Obj extends KubeObject {
  data?: string;
}

interface FakeWatcher {
  onEvent: (e: WatchEvent<Obj>) => void;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * The injected seam: a tiny in-memory "server" for one namespace with resourceVersions, watch-from-version
 * replay, compaction (410), bookmarks, and scripted failures.
 */
class FakeServer {
  objects = new Map<string, Obj>();
  history: { rv: number; type: "ADDED" | "MODIFIED" | "DELETED"; obj: Obj }[] = [];
  rv = 10;
  compactedBelow = 0;
  watchers = new Set<FakeWatcher>();
  lists = 0;
  watches: Omit<WatchOptions, "signal">[] = [];
  listFailures: unknown[] = [];
  watchFailures: unknown[] = [];
  /** When set, new watches replay nothing and stay silent (a hung connection). */
  silent = false;

  put(name: string, data: string): void {
    const existed = this.objects.has(name);
    const obj: Obj = { metadata: { name, namespace: "ns", resourceVersion: String(++this.rv) }, data };
    this.objects.set(name, obj);
    this.#emit(existed ? "MODIFIED" : "ADDED", obj);
  }

  remove(name: string): void {
    const old = this.objects.get(name);
    if (!old) return;
    this.objects.delete(name);
    const obj = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.rv) } };
    this.#emit("DELETED", obj);
  }

  /** Changes state without telling watchers (as if the events were missed). */
  putQuietly(name: string, data: string): void {
    this.objects.set(name, { metadata: { name, namespace: "ns", resourceVersion: String(++this.rv) }, data });
  }

  removeQuietly(name: string): void {
    this.objects.delete(name);
    this.rv++;
  }

  compact(): void {
    this.compactedBelow = this.rv;
  }

  bookmark(): void {
    for (const w of [...this.watchers])
      this.#deliver(w, { type: "BOOKMARK", object: { metadata: { resourceVersion: String(this.rv) } } });
  }

  sendError(code: number, reason: string): void {
    for (const w of [...this.watchers])
      this.#deliver(w, { type: "ERROR", object: { kind: "Status", code, reason, message: "x" } as Obj });
  }

  sendRaw(event: WatchEvent<Obj>): void {
    for (const w of [...this.watchers]) this.#deliver(w, event);
  }

  endWatches(): void {
    for (const w of [...this.watchers]) {
      this.watchers.delete(w);
      w.resolve();
    }
  }

  breakWatches(err: unknown): void {
    for (const w of [...this.watchers]) {
      this.watchers.delete(w);
      w.reject(err);
    }
  }

  #emit(type: "ADDED" | "MODIFIED" | "DELETED", obj: Obj): void {
    this.history.push({ rv: this.rv, type, obj });
    for (const w of [...this.watchers]) this.#deliver(w, { type, object: obj });
  }

  #deliver(w: FakeWatcher, event: WatchEvent<Obj>): void {
    try {
      w.onEvent(structuredClone(event));
    } catch (err) {
      this.watchers.delete(w);
      w.reject(err);
    }
  }

  listWatch(): ListWatch<Obj> {
    return {
      list: async () => {
        this.lists++;
        const failure = this.listFailures.shift();
        if (failure) throw failure;
        return { metadata: { resourceVersion: String(this.rv) }, items: structuredClone([...this.objects.values()]) };
      },
      watch: (opts, onEvent) => {
        this.watches.push({ resourceVersion: opts.resourceVersion, timeoutSeconds: opts.timeoutSeconds });
        const failure = this.watchFailures.shift();
        if (failure) return Promise.reject(failure);
        return new Promise<void>((resolve, reject) => {
          const w: FakeWatcher = { onEvent, resolve, reject };
          opts.signal.addEventListener("abort", () => {
            this.watchers.delete(w);
            reject(new DOMException("aborted", "AbortError"));
          });
          this.watchers.add(w);
          if (this.silent) return;
          const from = Number(opts.resourceVersion);
          if (from < this.compactedBelow) {
            this.#deliver(w, {
              type: "ERROR",
              object: { kind: "Status", code: 410, reason: "Expired", message: "too old resource version" } as Obj,
            });
            return;
          }
          for (const h of this.history)
            if (h.rv > from && this.watchers.has(w)) this.#deliver(w, { type: h.type, object: h.obj });
        });
      },
    };
  }
}

interface Recorded {
  log: string[];
}

function setup(server: FakeServer, extra: Partial<InformerOptions<Obj>> = {}) {
  const clock = new ManualClock();
  const rec: Recorded = { log: [] };
  const informer = new Informer<Obj>({
    name: "things",
    listWatch: server.listWatch(),
    clock,
    random: () => 0,
    backoff: { initialMs: 100, maxMs: 1000, jitter: 0 },
    staleAfterMs: 60_000,
    watchTimeoutSeconds: 300,
    ...extra,
  });
  informer.addHandler({
    onAdd: (o, i) => rec.log.push(`add ${o.metadata?.name}=${o.data}${i.initialList ? " (initial)" : ""}`),
    onUpdate: (old, o) => rec.log.push(`update ${o.metadata?.name} ${old.data}->${o.data}`),
    onDelete: (o, i) =>
      rec.log.push(`delete ${o.metadata?.name}${i.finalStateUnknown ? " (unknown final state)" : ""}`),
  });
  const cache = () =>
    Object.fromEntries(
      informer.store
        .list()
        .map((o) => [o.metadata?.name, o.data])
        .sort(),
    );
  return { clock, rec, informer, cache };
}

describe("Informer", () => {
  test("lists, syncs, then follows watch events", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    server.put("b", "1");
    const { clock, rec, informer, cache } = setup(server);
    informer.start();
    await informer.waitForSync();
    assert.equal(informer.hasSynced(), true);
    assert.deepEqual(rec.log, ["add a=1 (initial)", "add b=1 (initial)"]);
    await clock.tick();
    server.put("a", "2");
    server.put("c", "1");
    server.remove("b");
    assert.deepEqual(cache(), { a: "2", c: "1" });
    assert.deepEqual(rec.log.slice(2), ["update a 1->2", "add c=1", "delete b"]);
    assert.equal(informer.resourceVersion, String(server.rv));
    assert.equal(informer.store.getByName("ns", "a")?.data, "2");
    assert.equal(informer.store.listByNamespace("ns").length, 2);
    const h = informer.health();
    assert.equal(h.synced, true);
    assert.equal(h.watching, true);
    assert.equal(h.restarts, 0);
    assert.equal(h.objects, 2);
    await informer.stop();
  });

  test("a transform (withoutManagedFields) applies to listed and watched objects before they are cached", async () => {
    const server = new FakeServer();
    const managed = (name: string, data: string): Obj => ({
      metadata: { name, namespace: "ns", resourceVersion: String(++server.rv), managedFields: [{ manager: "x" }] },
      data,
    });
    server.objects.set("a", managed("a", "1"));
    const { clock, informer } = setup(server, { transform: withoutManagedFields });
    informer.start();
    await informer.waitForSync();
    await clock.tick();
    server.sendRaw({ type: "ADDED", object: managed("b", "1") });
    for (const name of ["a", "b"]) {
      const cached = informer.store.getByName("ns", name);
      assert.equal(cached?.data, "1");
      assert.equal(cached?.metadata?.managedFields, undefined, name);
    }
    assert.ok(server.objects.get("a")?.metadata?.managedFields, "the object given is not changed");
    await informer.stop();
  });

  test("a watch ended by the server is reopened from the last version, at once, without counting a restart", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    const { clock, rec, informer } = setup(server);
    informer.start();
    await clock.tick();
    server.put("a", "2");
    const rv = informer.resourceVersion;
    server.endWatches();
    await clock.tick();
    assert.equal(server.watches.length, 2);
    assert.equal(server.watches[1]?.resourceVersion, rv);
    assert.equal(server.lists, 1, "no relist");
    assert.equal(informer.health().restarts, 0);
    server.put("a", "3");
    assert.equal(rec.log.at(-1), "update a 2->3");
    await informer.stop();
  });

  test("a transport error restarts the watch after a backoff, from the last version: nothing is missed", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    const { clock, rec, informer, cache } = setup(server);
    informer.start();
    await clock.tick();
    server.breakWatches(new Error("socket hang up"));
    await clock.tick();
    server.put("a", "2"); // happens while nobody watches
    server.put("b", "1");
    assert.deepEqual(cache(), { a: "1" });
    assert.equal(informer.health().watching, false);
    await clock.tick(99);
    assert.equal(server.watches.length, 1, "waits for the backoff");
    await clock.tick(1);
    assert.equal(server.watches.length, 2);
    assert.deepEqual(cache(), { a: "2", b: "1" });
    assert.deepEqual(rec.log.slice(1), ["update a 1->2", "add b=1"]);
    assert.equal(server.lists, 1);
    const h = informer.health();
    assert.equal(h.restarts, 1);
    assert.match(h.lastError?.message ?? "", /socket hang up/);
    await informer.stop();
  });

  test("repeated failures back off exponentially up to the cap; an event resets the backoff", async () => {
    const server = new FakeServer();
    const { clock, informer } = setup(server);
    server.listFailures = [1, 2, 3, 4, 5, 6].map((i) => new KubeApiError(500, "InternalError", `fail ${i}`));
    const listAt: number[] = [];
    const start = clock.now();
    informer.start();
    for (let i = 0; i < 100; i++) {
      const before = server.lists;
      await clock.tick(50);
      if (server.lists > before) listAt.push(clock.now() - start);
      if (server.lists === 7) break;
    }
    // First list at 0 (not recorded as the tick loop starts after it), then 100, 200, 400, 800, 1000, 1000 later.
    const gaps = listAt.map((t, i) => t - (i === 0 ? 0 : (listAt[i - 1] ?? 0)));
    assert.deepEqual(gaps, [100, 200, 400, 800, 1000, 1000]);
    assert.equal(informer.hasSynced(), true);
    assert.equal(informer.health().restarts, 6);
    server.put("x", "1");
    assert.equal(informer.health().consecutiveFailures, 0);
    server.breakWatches(new Error("again"));
    await clock.tick(100);
    assert.equal(server.watches.length, 2, "first delay again after the reset");
    await informer.stop();
  });

  test("410 as an ERROR event: relist; vanished objects are deleted, missed changes applied", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    server.put("b", "1");
    server.put("c", "1");
    const { clock, rec, informer, cache } = setup(server);
    informer.start();
    await clock.tick(5000);
    server.endWatches(); // the informer is between watches...
    server.removeQuietly("b");
    server.putQuietly("c", "2");
    server.putQuietly("d", "1");
    server.compact(); // ...and its version is compacted away
    await clock.tick();
    assert.equal(server.lists, 1);
    await clock.tick(100);
    assert.equal(server.lists, 2, "relisted after the 410");
    assert.deepEqual(cache(), { a: "1", c: "2", d: "1" });
    assert.deepEqual(rec.log.slice(3), ["delete b (unknown final state)", "add d=1", "update c 1->2"]);
    assert.equal(informer.health().restarts, 1);
    assert.match(informer.health().lastError?.message ?? "", /too old/);
    server.put("a", "2");
    assert.equal(cache().a, "2", "watching again after the relist");
    await informer.stop();
  });

  test("relist() lists again at once, applying what a silent watch missed; no restart or failure is counted", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    server.put("b", "1");
    const { clock, rec, informer, cache } = setup(server);
    informer.start();
    await clock.tick(10);
    // Changes the open watch never delivers (as through a stalled connection).
    server.removeQuietly("b");
    server.putQuietly("c", "1");
    const relisted = informer.relist();
    await clock.tick(10);
    await relisted;
    assert.equal(server.lists, 2);
    assert.deepEqual(cache(), { a: "1", c: "1" });
    assert.deepEqual(rec.log.slice(2), ["delete b (unknown final state)", "add c=1"]);
    assert.equal(informer.health().restarts, 0);
    assert.equal(informer.health().consecutiveFailures, 0);
    server.put("a", "2");
    assert.equal(cache().a, "2", "watching again after the relist");
    await informer.stop();
  });

  test("410 as an HTTP status when opening the watch: relist", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    const { clock, rec, informer, cache } = setup(server);
    informer.start();
    await clock.tick();
    await clock.tick(5000);
    server.watchFailures.push(new KubeApiError(410, "Expired", "too old resource version"));
    server.removeQuietly("a");
    server.endWatches();
    await clock.tick(100);
    assert.equal(server.lists, 2);
    assert.deepEqual(cache(), {});
    assert.equal(rec.log.at(-1), "delete a (unknown final state)");
    await informer.stop();
  });

  test("an ERROR event with another code restarts the watch without a relist", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    const { clock, informer } = setup(server);
    informer.start();
    await clock.tick();
    server.sendError(500, "InternalError");
    await clock.tick(100);
    assert.equal(server.watches.length, 2);
    assert.equal(server.lists, 1);
    assert.equal(informer.health().restarts, 1);
    await informer.stop();
  });

  test("an undecodable event forces a relist", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    const { clock, informer } = setup(server);
    informer.start();
    await clock.tick();
    server.sendRaw({ type: "ADDED", object: { metadata: {} } });
    await clock.tick(100);
    assert.equal(server.lists, 2);
    server.sendRaw({ type: "WHATEVER" as "ADDED", object: { metadata: { name: "z" } } });
    await clock.tick(200);
    assert.equal(server.lists, 3);
    assert.equal(informer.store.get("ns/z"), undefined);
    await informer.stop();
  });

  test("bookmarks move the resume version without touching the cache", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    const { clock, rec, informer } = setup(server);
    informer.start();
    await clock.tick();
    server.putQuietly("other", "x"); // changes elsewhere advance the version
    server.removeQuietly("other");
    server.bookmark();
    assert.equal(informer.resourceVersion, String(server.rv));
    assert.equal(rec.log.length, 1);
    server.endWatches();
    await clock.tick();
    assert.equal(server.watches.at(-1)?.resourceVersion, String(server.rv));
    await informer.stop();
  });

  test("watchdog: a silent watch is replaced after staleAfterMs; bookmarks keep it alive", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    const { clock, informer } = setup(server, { staleAfterMs: 10_000 });
    informer.start();
    await clock.tick();
    for (let i = 0; i < 5; i++) {
      await clock.tick(8000);
      server.bookmark();
    }
    assert.equal(server.watches.length, 1, "bookmarks count as life");
    server.silent = true;
    await clock.tick(9999);
    assert.equal(server.watches.length, 1);
    await clock.tick(1);
    assert.equal(server.watches.length, 2, "restarted by the watchdog");
    assert.equal(server.watchers.size, 1, "the old stream was aborted");
    assert.equal(informer.health().restarts, 1);
    assert.match(informer.health().lastError?.message ?? "", /no event or bookmark/);
    server.silent = false;
    await clock.tick(10_000);
    assert.equal(server.watches.length, 3);
    server.put("b", "1");
    assert.equal(informer.store.get("ns/b")?.data, "1");
    await informer.stop();
  });

  test("watches ask for a server timeout in [t, 2t)", async () => {
    const server = new FakeServer();
    const clock = new ManualClock();
    const informer = new Informer<Obj>({
      listWatch: server.listWatch(),
      clock,
      random: () => 0.5,
      watchTimeoutSeconds: 10,
    });
    informer.start();
    await clock.tick();
    assert.equal(server.watches[0]?.timeoutSeconds, 15);
    await informer.stop();
  });

  test("a handler that throws does not stop the informer or other handlers", async () => {
    const server = new FakeServer();
    const { clock, rec, informer } = setup(server);
    informer.addHandler({
      onAdd: () => {
        throw new Error("bad handler");
      },
    });
    informer.start();
    await clock.tick();
    server.put("a", "1");
    server.put("b", "1");
    assert.deepEqual(rec.log, ["add a=1", "add b=1"]);
    assert.equal(informer.health().restarts, 0);
    await informer.stop();
  });

  test("a handler added after sync gets the cached objects as initial adds", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    const { clock, informer } = setup(server);
    informer.start();
    await clock.tick();
    const seen: string[] = [];
    const remove = informer.addHandler({ onAdd: (o, i) => seen.push(`${o.metadata?.name}:${i.initialList}`) });
    server.put("b", "1");
    remove();
    server.put("c", "1");
    assert.deepEqual(seen, ["a:true", "b:false"]);
    await informer.stop();
  });

  test("resync replays every cached object as an update", async () => {
    const server = new FakeServer();
    server.put("a", "1");
    const { clock, rec, informer } = setup(server, { resyncIntervalMs: 30_000 });
    informer.start();
    await clock.tick(29_999);
    assert.equal(rec.log.length, 1);
    await clock.tick(1);
    assert.deepEqual(rec.log, ["add a=1 (initial)", "update a 1->1"]);
    await informer.stop();
  });

  test("stop aborts the watch, clears every timer, and is idempotent", async () => {
    const server = new FakeServer();
    const { clock, informer } = setup(server, { resyncIntervalMs: 1000 });
    informer.start();
    await clock.tick();
    assert.equal(server.watchers.size, 1);
    await informer.stop();
    await informer.stop();
    assert.equal(server.watchers.size, 0);
    assert.equal(clock.pendingTimers, 0);
    assert.equal(informer.health().running, false);
  });

  test("stop during a backoff wait ends at once; waitForSync rejects when stopped before the first list", async () => {
    const server = new FakeServer();
    server.listFailures = [new Error("down")];
    const { clock, informer } = setup(server);
    informer.start();
    const sync = informer.waitForSync();
    await clock.tick();
    assert.equal(clock.pendingTimers, 1, "the backoff timer");
    await informer.stop();
    await assert.rejects(sync, /stopped before its first sync/);
    assert.equal(clock.pendingTimers, 0);
  });

  test("an aborted signal option stops the informer", async () => {
    const server = new FakeServer();
    const ac = new AbortController();
    const { clock, informer } = setup(server, { signal: ac.signal });
    informer.start();
    await clock.tick();
    ac.abort();
    await settle();
    assert.equal(server.watchers.size, 0);
    assert.equal(informer.health().running, false);
  });

  test("a stream that ends at once without events is treated as a failure (no busy loop)", async () => {
    const server = new FakeServer();
    const { clock, informer } = setup(server);
    informer.start();
    await clock.tick();
    for (let i = 0; i < 5; i++) {
      server.endWatches();
      await clock.tick();
    }
    // Each immediate end waits out a growing backoff instead of spinning.
    assert.ok(server.watches.length <= 2, `watches opened: ${server.watches.length}`);
    await informer.stop();
  });
});

describe("enqueueHandler", () => {
  test("adds, updates and deletes enqueue the object's key, or its controller owner's", () => {
    const keys: string[] = [];
    const queue = { add: (k: string) => keys.push(k) };
    const own = enqueueHandler<Obj>(queue);
    const pod: Obj = {
      metadata: {
        name: "p",
        namespace: "ns",
        ownerReferences: [
          { apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: "1" },
          {
            apiVersion: "azurepipelines.k8s.scaler.io/v1",
            kind: "AutoScaledAgent",
            name: "asa",
            uid: "2",
            controller: true,
          },
        ],
      },
    };
    own.onAdd?.(pod, { initialList: false });
    own.onUpdate?.(pod, pod);
    own.onDelete?.(pod, { finalStateUnknown: true });
    const owners = enqueueHandler<Obj>(queue, controllerOwnerKeys("AutoScaledAgent", "azurepipelines.k8s.scaler.io"));
    owners.onAdd?.(pod, { initialList: false });
    enqueueHandler<Obj>(queue, controllerOwnerKeys("AutoScaledAgent", "other.group")).onAdd?.(pod, {
      initialList: false,
    });
    enqueueHandler<Obj>(queue, controllerOwnerKeys("ReplicaSet")).onAdd?.(pod, { initialList: false });
    assert.deepEqual(keys, ["ns/p", "ns/p", "ns/p", "ns/asa"]);
  });
});
