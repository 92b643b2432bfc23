/**
 * The informer against a real API server: server-ended watches, cut connections, a real 410 and the watchdog.
 * The list/watch functions are the real ones (listWatchFor); a thin wrapper only lets the test cut a stream,
 * hold the next watch, or make it start from a too-old version, and counts what happened.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { WatchEvent } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { type ListWatch, listWatchFor } from "../../src/kube/listwatch.ts";
import type { KubeObject } from "../../src/kube/types.ts";
import { createNamespace, deleteNamespace, eventually, type TestCluster, testCluster } from "../support/cluster.ts";
import { createTestCrd, type TestCrd } from "./fixtures/crd.ts";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

const configMaps = { apiVersion: "v1", resource: "configmaps" };

/** Wraps real list/watch functions so a test can interfere with the stream. */
function controllable<T extends KubeObject>(inner: ListWatch<T>) {
  const state = {
    lists: 0,
    watches: [] as string[],
    serverEvents: [] as string[],
    /** The next watch starts from resourceVersion "1" instead of the informer's. */
    staleNext: false,
    hold: undefined as Promise<void> | undefined,
    cut: undefined as (() => void) | undefined,
  };
  const lw: ListWatch<T> = {
    list: async (o) => {
      state.lists++;
      return inner.list(o);
    },
    watch: async (o, onEvent) => {
      if (state.hold) {
        await Promise.race([
          state.hold,
          new Promise((resolve) => o.signal.addEventListener("abort", resolve, { once: true })),
        ]);
      }
      if (o.signal.aborted) throw new Error("aborted");
      const resourceVersion = state.staleNext ? "1" : o.resourceVersion;
      state.staleNext = false;
      state.watches.push(resourceVersion);
      const ac = new AbortController();
      const onAbort = () => ac.abort();
      o.signal.addEventListener("abort", onAbort, { once: true });
      state.cut = () => ac.abort(new Error("connection cut by the test"));
      try {
        await inner.watch({ ...o, resourceVersion, signal: ac.signal }, (e: WatchEvent<T>) => {
          if (e.type === "ERROR") state.serverEvents.push(`ERROR ${(e.object as { code?: number }).code}`);
          else state.serverEvents.push(e.type);
          onEvent(e);
        });
      } finally {
        o.signal.removeEventListener("abort", onAbort);
      }
    },
  };
  return { state, lw };
}

function recordingInformer<T extends KubeObject>(
  lw: ListWatch<T>,
  options: Partial<ConstructorParameters<typeof Informer<T>>[0]> = {},
) {
  const log: string[] = [];
  const value = (o: T) => (o as ConfigMap).data?.v ?? (o as { spec?: { v?: string } }).spec?.v ?? "";
  const informer = new Informer<T>({
    listWatch: lw,
    backoff: { initialMs: 200, maxMs: 2000, jitter: 0.5 },
    ...options,
  });
  informer.addHandler({
    onAdd: (o) => log.push(`add ${o.metadata?.name}=${value(o)}`),
    onUpdate: (old, o) => {
      if (old.metadata?.resourceVersion !== o.metadata?.resourceVersion)
        log.push(`update ${o.metadata?.name}=${value(o)}`);
    },
    onDelete: (o, i) => log.push(`delete ${o.metadata?.name}${i.finalStateUnknown ? " (relist)" : ""}`),
  });
  const snapshot = () =>
    Object.fromEntries(
      informer.store
        .list()
        .map((o) => [o.metadata?.name ?? "", value(o)])
        .sort(),
    );
  return { informer, log, snapshot };
}

let cluster: TestCluster;
let ns: string;

before(async () => {
  cluster = await testCluster();
  ns = await createNamespace(cluster.client, "informer");
});

after(async () => {
  await deleteNamespace(cluster.client, ns);
  await cluster.close();
});

async function serverConfigMaps(namespace: string): Promise<Record<string, string>> {
  const list = await cluster.client.request<{ items: ConfigMap[] }>({
    path: `/api/v1/namespaces/${namespace}/configmaps`,
  });
  return Object.fromEntries(
    list.items
      .filter((c) => c.metadata?.name !== "kube-root-ca.crt")
      .map((c) => [c.metadata?.name ?? "", c.data?.v ?? ""])
      .sort(),
  );
}

function withoutRootCa(s: Record<string, string>): Record<string, string> {
  const { "kube-root-ca.crt": _ignored, ...rest } = s;
  return rest;
}

describe("informer on a real API server", () => {
  test("sees every change while the server keeps ending its watches (timeoutSeconds 1)", async () => {
    const namespace = await createNamespace(cluster.client, "inf-timeout");
    const { state, lw } = controllable(listWatchFor<ConfigMap>(cluster.client, { resource: configMaps, namespace }));
    const { informer, log, snapshot } = recordingInformer(lw, { watchTimeoutSeconds: 1, name: "configmaps" });
    informer.start();
    await informer.waitForSync();
    const expected: string[] = [];
    const path = `/api/v1/namespaces/${namespace}/configmaps`;
    // Changes spread over several watch lifetimes: wait for a new watch between rounds instead of sleeping.
    for (let round = 0; round < 4; round++) {
      const watchesBefore = state.watches.length;
      const name = `cm-${round}`;
      await cluster.client.request({ method: "POST", path, body: { metadata: { name }, data: { v: "0" } } });
      expected.push(`add ${name}=0`);
      for (let v = 1; v <= 3; v++) {
        await cluster.client.request({
          method: "PATCH",
          path: `${path}/${name}`,
          contentType: "application/merge-patch+json",
          body: { data: { v: String(v) } },
        });
        expected.push(`update ${name}=${v}`);
      }
      if (round % 2 === 1) {
        await cluster.client.request({ method: "DELETE", path: `${path}/${name}` });
        expected.push(`delete ${name}`);
      }
      await eventually("the server to end the watch and the informer to open a new one", async () =>
        state.watches.length > watchesBefore ? true : undefined,
      );
    }
    await eventually("every change seen", async () =>
      log.filter((l) => !l.includes("kube-root-ca.crt")).length >= expected.length ? true : undefined,
    );
    assert.deepEqual(
      log.filter((l) => !l.includes("kube-root-ca.crt")),
      expected,
      "each change exactly once, in order",
    );
    assert.deepEqual(withoutRootCa(snapshot()), await serverConfigMaps(namespace));
    assert.ok(state.watches.length >= 5, `watches opened: ${state.watches.length}`);
    assert.equal(state.lists, 1, "no relist was needed");
    assert.equal(informer.health().restarts, 0, "a server-ended watch is not an error");
    await informer.stop();
    await deleteNamespace(cluster.client, namespace);
  });

  test("a cut connection is resumed from the last version after a backoff; changes made meanwhile arrive", async () => {
    const { state, lw } = controllable(
      listWatchFor<ConfigMap>(cluster.client, { resource: configMaps, namespace: ns }),
    );
    const { informer, log, snapshot } = recordingInformer(lw, { name: "configmaps" });
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    await cluster.client.request({ method: "POST", path, body: { metadata: { name: "cut-a" }, data: { v: "1" } } });
    informer.start();
    await informer.waitForSync();
    await eventually("watching", async () => (informer.health().watching ? true : undefined));
    let release!: () => void;
    state.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    state.cut?.();
    await eventually("the informer to notice the cut", async () =>
      informer.health().restarts === 1 ? true : undefined,
    );
    // While nobody watches:
    await cluster.client.request({
      method: "PATCH",
      path: `${path}/cut-a`,
      contentType: "application/merge-patch+json",
      body: { data: { v: "2" } },
    });
    await cluster.client.request({ method: "POST", path, body: { metadata: { name: "cut-b" }, data: { v: "1" } } });
    const resumeFrom = informer.resourceVersion;
    state.hold = undefined;
    release();
    await eventually("the missed changes", async () => {
      const s = withoutRootCa(snapshot());
      return s["cut-a"] === "2" && s["cut-b"] === "1" ? true : undefined;
    });
    assert.equal(state.watches.at(-1), resumeFrom, "resumed from the last version");
    assert.equal(state.lists, 1, "no relist for a cut connection");
    assert.match(informer.health().lastError?.message ?? "", /cut by the test|abort/i);
    assert.ok(log.includes("update cut-a=2") && log.includes("add cut-b=1"));
    await informer.stop();
    assert.equal(informer.health().watching, false);
  });

  test("410 from the real server (watch from a too-old version): relist, vanished objects deleted", async (t) => {
    const crd: TestCrd = await createTestCrd(cluster.client);
    t.after(() => crd.delete());
    const path = `/apis/${crd.apiVersion}/namespaces/${ns}/widgets`;
    const widget = (name: string, v: string) => ({
      apiVersion: crd.apiVersion,
      kind: crd.kind,
      metadata: { name },
      spec: { v },
    });
    for (const n of ["a", "b", "c"]) await cluster.client.request({ method: "POST", path, body: widget(n, "1") });

    const { state, lw } = controllable(
      listWatchFor<KubeObject>(cluster.client, { resource: crd.resource, namespace: ns }),
    );
    const { informer, log, snapshot } = recordingInformer<KubeObject>(lw, { name: "widgets" });
    informer.start();
    await informer.waitForSync();
    assert.deepEqual(snapshot(), { a: "1", b: "1", c: "1" });
    await eventually("watching", async () => (informer.health().watching ? true : undefined));

    // Cut the watch and hold the next one while the world changes...
    let release!: () => void;
    state.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    state.cut?.();
    await eventually("the cut noticed", async () => (informer.health().restarts >= 1 ? true : undefined));
    await cluster.client.request({ method: "DELETE", path: `${path}/b` });
    await cluster.client.request({
      method: "PATCH",
      path: `${path}/c`,
      contentType: "application/merge-patch+json",
      body: { spec: { v: "2" } },
    });
    await cluster.client.request({ method: "POST", path, body: widget("d", "1") });
    // ...then resume from a version the server no longer has.
    state.staleNext = true;
    state.hold = undefined;
    release();

    await eventually("the relist", async () => (state.lists >= 2 ? true : undefined));
    await eventually("the cache to match the server", async () => {
      const s = snapshot();
      return s.a === "1" && s.b === undefined && s.c === "2" && s.d === "1" ? true : undefined;
    });
    assert.ok(
      state.serverEvents.includes("ERROR 410") ||
        /410|too old|Expired/i.test(informer.health().lastError?.message ?? ""),
      `the server said 410 (events: ${state.serverEvents.join(", ")}; last error: ${informer.health().lastError?.message})`,
    );
    t.diagnostic(
      `server events: ${state.serverEvents.join(", ")}; informer's last error: ${informer.health().lastError?.message}`,
    );
    assert.ok(log.includes("delete b (relist)"), log.join("\n"));
    assert.ok(log.includes("add d=1"));
    assert.ok(log.includes("update c=2"));
    // and it keeps watching after the relist
    await cluster.client.request({ method: "POST", path, body: widget("e", "1") });
    await eventually("a change after the relist", async () => (snapshot().e === "1" ? true : undefined));
    await informer.stop();
  });

  test("the watchdog replaces a watch that delivers nothing, and events still arrive", async () => {
    const namespace = await createNamespace(cluster.client, "inf-quiet");
    const { state, lw } = controllable(listWatchFor<ConfigMap>(cluster.client, { resource: configMaps, namespace }));
    // Bookmarks come about once a minute, so a 1.5 s watchdog fires on a quiet namespace.
    const { informer, snapshot } = recordingInformer(lw, { staleAfterMs: 1500, watchTimeoutSeconds: 600 });
    informer.start();
    await informer.waitForSync();
    await eventually("two watchdog restarts", async () => (informer.health().restarts >= 2 ? true : undefined));
    assert.match(informer.health().lastError?.message ?? "", /no event or bookmark/);
    assert.ok(state.watches.length >= 3);
    assert.equal(state.lists, 1, "the watchdog re-watches, it does not relist");
    await cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      body: { metadata: { name: "late" }, data: { v: "1" } },
    });
    await eventually("the late configmap", async () => (snapshot().late === "1" ? true : undefined));
    await informer.stop();
    await deleteNamespace(cluster.client, namespace);
  });

  test("all namespaces with a label selector; stop leaves no timer behind", async () => {
    const other = await createNamespace(cluster.client, "inf-sel");
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const timersBefore = timers();
    const { informer, snapshot } = recordingInformer(
      listWatchFor<ConfigMap>(cluster.client, { resource: configMaps, labelSelector: `sel-test=${other}` }),
      { resyncIntervalMs: 60_000 },
    );
    informer.start();
    await informer.waitForSync();
    for (const [namespace, name, labelled] of [
      [ns, "sel-1", true],
      [other, "sel-2", true],
      [other, "sel-3", false],
    ] as const) {
      await cluster.client.request({
        method: "POST",
        path: `/api/v1/namespaces/${namespace}/configmaps`,
        body: { metadata: { name, labels: labelled ? { "sel-test": other } : {} }, data: { v: "1" } },
      });
    }
    await eventually("both labelled configmaps", async () => (Object.keys(snapshot()).length === 2 ? true : undefined));
    assert.deepEqual(snapshot(), { "sel-1": "1", "sel-2": "1" });
    assert.ok(informer.store.get(`${other}/sel-2`));
    await informer.stop();
    assert.equal(timers(), timersBefore, "no timer left behind (watchdog, backoff, resync)");
    await deleteNamespace(cluster.client, other);
  });
});
