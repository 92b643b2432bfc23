import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatMicroTime, ManualClock, settle } from "../runtime/clock.ts";
import { KubeApiError } from "./client.ts";
import {
  decideElection,
  type ElectionAction,
  LeaderElector,
  type Lease,
  type LeaseClient,
  type LeaseObservation,
  leaderIdentity,
  observeLease,
  releasedLease,
  validateTimings,
} from "./leaderelection.ts";

const T0 = 1_700_000_000_000;
const s = (n: number) => n * 1000;

function lease(spec: Lease["spec"] | undefined, rv = "7"): Lease {
  const l: Lease = {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: "op", namespace: "ns", resourceVersion: rv, labels: { keep: "me" } },
  };
  if (spec !== undefined) l.spec = spec;
  return l;
}

const held = (holder: string, extra: Partial<NonNullable<Lease["spec"]>> = {}) =>
  lease({
    holderIdentity: holder,
    leaseDurationSeconds: 15,
    acquireTime: formatMicroTime(T0 - s(100)),
    renewTime: formatMicroTime(T0 - s(1)),
    leaseTransitions: 3,
    ...extra,
  });

/** An observation of `l` made at `at`. */
const seen = (l: Lease, at: number): LeaseObservation => observeLease(undefined, l, at) as LeaseObservation;

interface Case {
  name: string;
  lease: Lease | undefined;
  observation?: (l: Lease | undefined) => LeaseObservation | undefined;
  now?: number;
  expect: ElectionAction["type"];
  check?: (a: ElectionAction, obs: LeaseObservation | undefined) => void;
}

const me = "op-1_abcdef";

const cases: Case[] = [
  {
    name: "no lease: create it, held by me, zero transitions",
    lease: undefined,
    expect: "create",
    check: (a) => {
      assert.equal(a.type, "create");
      if (a.type !== "create") return;
      assert.deepEqual(a.lease.metadata, { name: "op", namespace: "ns" });
      assert.deepEqual(a.lease.spec, {
        holderIdentity: me,
        leaseDurationSeconds: 15,
        acquireTime: formatMicroTime(T0),
        renewTime: formatMicroTime(T0),
        leaseTransitions: 0,
      });
    },
  },
  {
    name: "held by me: renew, keep acquireTime, transitions and resourceVersion",
    lease: held(me),
    expect: "renew",
    check: (a) => {
      if (a.type !== "renew") return;
      assert.equal(a.lease.spec?.renewTime, formatMicroTime(T0));
      assert.equal(a.lease.spec?.acquireTime, formatMicroTime(T0 - s(100)));
      assert.equal(a.lease.spec?.leaseTransitions, 3);
      assert.equal(a.lease.metadata?.resourceVersion, "7");
      assert.deepEqual(a.lease.metadata?.labels, { keep: "me" });
    },
  },
  {
    name: "released (empty holder): acquire at once, one more transition",
    lease: held("", { leaseDurationSeconds: 1 }),
    observation: (l) => seen(l as Lease, T0),
    expect: "acquire",
    check: (a) => {
      if (a.type !== "acquire") return;
      assert.equal(a.previousHolder, "");
      assert.equal(a.lease.spec?.holderIdentity, me);
      assert.equal(a.lease.spec?.leaseTransitions, 4);
      assert.equal(a.lease.spec?.acquireTime, formatMicroTime(T0));
      assert.equal(a.lease.spec?.leaseDurationSeconds, 15);
      assert.equal(a.lease.metadata?.resourceVersion, "7", "update is guarded by the read version");
    },
  },
  {
    name: "lease without spec: acquire",
    lease: lease(undefined),
    expect: "acquire",
    check: (a) => {
      if (a.type !== "acquire") return;
      assert.equal(a.lease.spec?.leaseTransitions, 1);
    },
  },
  {
    name: "holder null: acquire",
    lease: lease({ holderIdentity: null }),
    expect: "acquire",
  },
  {
    name: "held by another, first seen now: wait a full duration",
    lease: held("other"),
    expect: "wait",
    check: (a) => {
      assert.deepEqual(a, { type: "wait", holder: "other", expiresAt: T0 + s(15) });
    },
  },
  {
    name: "held by another, unchanged for 14.999 s: wait",
    lease: held("other"),
    observation: (l) => seen(l as Lease, T0 - s(15) + 1),
    expect: "wait",
  },
  {
    name: "held by another, unchanged for exactly the duration: expired, acquire",
    lease: held("other"),
    observation: (l) => seen(l as Lease, T0 - s(15)),
    expect: "acquire",
    check: (a) => {
      if (a.type !== "acquire") return;
      assert.equal(a.previousHolder, "other");
    },
  },
  {
    name: "held by another, seen long ago but renewed since: wait (the clock restarts)",
    lease: held("other", { renewTime: formatMicroTime(T0 - 500) }),
    observation: () => seen(held("other"), T0 - s(60)),
    expect: "wait",
    check: (a, obs) => {
      assert.equal(obs?.observedAt, T0);
      if (a.type === "wait") assert.equal(a.expiresAt, T0 + s(15));
    },
  },
  {
    name: "renewTime far in the past (holder's clock skewed) but just seen: wait, renewTime is not trusted",
    lease: held("other", { renewTime: formatMicroTime(T0 - s(3600)) }),
    expect: "wait",
  },
  {
    name: "renewTime in the future (skew the other way), unchanged for a duration: acquire",
    lease: held("other", { renewTime: formatMicroTime(T0 + s(3600)) }),
    observation: (l) => seen(l as Lease, T0 - s(16)),
    expect: "acquire",
  },
  {
    name: "the lease's own (longer) duration counts, not mine",
    lease: held("other", { leaseDurationSeconds: 60 }),
    observation: (l) => seen(l as Lease, T0 - s(20)),
    expect: "wait",
    check: (a) => {
      if (a.type === "wait") assert.equal(a.expiresAt, T0 - s(20) + s(60));
    },
  },
  {
    name: "a lease without duration falls back to mine",
    lease: held("other", { leaseDurationSeconds: null }),
    observation: (l) => seen(l as Lease, T0 - s(15)),
    expect: "acquire",
  },
  {
    name: "released but still showing a holder with 1 s: expires a second after being seen",
    lease: held("other", { leaseDurationSeconds: 1 }),
    observation: (l) => seen(l as Lease, T0 - s(1)),
    expect: "acquire",
  },
];

describe("decideElection", () => {
  for (const c of cases) {
    test(c.name, () => {
      const { action, observation } = decideElection({
        lease: c.lease,
        observation: c.observation?.(c.lease),
        identity: me,
        now: c.now ?? T0,
        leaseDurationSeconds: 15,
        namespace: "ns",
        name: "op",
      });
      assert.equal(action.type, c.expect);
      c.check?.(action, observation);
    });
  }

  test("pure: the input lease is not modified", () => {
    const l = held("other");
    const before = structuredClone(l);
    decideElection({
      lease: l,
      observation: seen(l, T0 - s(100)),
      identity: me,
      now: T0,
      leaseDurationSeconds: 15,
      namespace: "ns",
      name: "op",
    });
    assert.deepEqual(l, before);
  });
});

describe("observeLease", () => {
  test("unchanged content keeps the first-seen time; any change restarts it", () => {
    const a = held("x");
    const o1 = observeLease(undefined, a, T0);
    assert.equal(o1?.observedAt, T0);
    assert.equal(observeLease(o1, structuredClone(a), T0 + 5000)?.observedAt, T0, "same content");
    assert.equal(observeLease(o1, lease(a.spec, "99"), T0 + 5000)?.observedAt, T0, "metadata-only change");
    assert.equal(observeLease(o1, held("x", { renewTime: "later" }), T0 + 5000)?.observedAt, T0 + 5000);
    assert.equal(observeLease(o1, held("y"), T0 + 6000)?.holder, "y");
    assert.equal(observeLease(o1, undefined, T0), undefined);
  });
});

describe("releasedLease", () => {
  test("ours: empty holder, 1 s duration, renewed now, version kept", () => {
    const r = releasedLease(held(me), me, T0);
    assert.equal(r?.spec?.holderIdentity, "");
    assert.equal(r?.spec?.leaseDurationSeconds, 1);
    assert.equal(r?.spec?.renewTime, formatMicroTime(T0));
    assert.equal(r?.spec?.leaseTransitions, 3);
    assert.equal(r?.metadata?.resourceVersion, "7");
  });
  test("not ours: nothing to release", () => {
    assert.equal(releasedLease(held("other"), me, T0), undefined);
    assert.equal(releasedLease(held(""), me, T0), undefined);
  });
});

describe("timings and identity", () => {
  const table: { t: [number, number, number]; ok: boolean }[] = [
    { t: [15_000, 10_000, 2_000], ok: true },
    { t: [3_000, 2_000, 500], ok: true },
    { t: [2_500, 2_000, 500], ok: true }, // written as 3 s
    { t: [2_000, 2_000, 500], ok: false },
    { t: [15_000, 2_000, 2_000], ok: false },
    { t: [15_000, 10_000, 0], ok: false },
  ];
  for (const { t, ok } of table) {
    test(`lease ${t[0]} renew ${t[1]} retry ${t[2]}: ${ok ? "valid" : "rejected"}`, () => {
      const run = () => validateTimings({ leaseDurationMs: t[0], renewDeadlineMs: t[1], retryPeriodMs: t[2] });
      if (ok) run();
      else assert.throws(run);
    });
  }

  test("identity: pod name plus a random suffix", () => {
    assert.equal(
      leaderIdentity("pod-1", () => 0),
      "pod-1_bbbbbb",
    );
    assert.match(leaderIdentity("pod-1"), /^pod-1_[a-z0-9]{6}$/);
    assert.notEqual(leaderIdentity("p"), leaderIdentity("p"));
  });
});

/** One Lease in memory with the API server's optimistic concurrency; `down` makes every call fail. */
class MemoryLeases {
  lease: Lease | undefined;
  rv = 0;
  down = new Set<string>();
  client(id: string): LeaseClient {
    const fail = () => {
      if (this.down.has(id)) throw new Error(`${id}: connection refused`);
    };
    return {
      get: async () => {
        fail();
        return this.lease && structuredClone(this.lease);
      },
      create: async (l) => {
        fail();
        if (this.lease) throw new KubeApiError(409, "AlreadyExists", "exists");
        this.lease = { ...structuredClone(l), metadata: { ...l.metadata, resourceVersion: String(++this.rv) } };
        return structuredClone(this.lease);
      },
      update: async (l) => {
        fail();
        if (!this.lease || l.metadata?.resourceVersion !== this.lease.metadata?.resourceVersion) {
          throw new KubeApiError(409, "Conflict", "conflict");
        }
        this.lease = { ...structuredClone(l), metadata: { ...l.metadata, resourceVersion: String(++this.rv) } };
        return structuredClone(this.lease);
      },
    };
  }
}

describe("LeaderElector loop (in-memory lease, manual clock)", () => {
  const timings = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };

  function elector(store: MemoryLeases, clock: ManualClock, id: string, log: string[]) {
    return new LeaderElector({
      namespace: "ns",
      name: "op",
      identity: id,
      leaseClient: store.client(id),
      clock,
      random: () => 0.5,
      ...timings,
      onStartedLeading: (signal) => {
        log.push(`${id} start`);
        signal.addEventListener("abort", () => log.push(`${id} signal`));
      },
      onStoppedLeading: (info) => log.push(`${id} stop${info.requested ? " (requested)" : ""}`),
    });
  }

  async function run(clock: ManualClock, ms: number) {
    for (let t = 0; t < ms; t += 100) await clock.tick(100);
  }

  test("one leader; it renews; a released lease goes to the other at once", async () => {
    const clock = new ManualClock(T0);
    const store = new MemoryLeases();
    const log: string[] = [];
    const a = elector(store, clock, "a", log);
    const b = elector(store, clock, "b", log);
    a.start();
    await settle();
    b.start();
    await run(clock, 5000);
    assert.equal(a.isLeader, true);
    assert.equal(b.isLeader, false);
    assert.equal(b.leader, "a");
    assert.deepEqual(log, ["a start"]);
    const renewTime = store.lease?.spec?.renewTime;
    await run(clock, 1000);
    assert.notEqual(store.lease?.spec?.renewTime, renewTime, "renewed");
    await a.stop();
    assert.deepEqual(log, ["a start", "a signal", "a stop (requested)"]);
    assert.equal(store.lease?.spec?.holderIdentity, "");
    await run(clock, 1000); // b's next retry, well under a lease duration
    assert.equal(b.isLeader, true);
    assert.equal(store.lease?.spec?.holderIdentity, "b");
    assert.equal(store.lease?.spec?.leaseTransitions, 1);
    await b.stop();
  });

  test("a leader that cannot renew steps down by renewDeadline; the other takes over after the lease expires", async () => {
    const clock = new ManualClock(T0);
    const store = new MemoryLeases();
    const log: string[] = [];
    const a = elector(store, clock, "a", log);
    const b = elector(store, clock, "b", log);
    a.start();
    await settle();
    b.start();
    await run(clock, 1000);
    assert.equal(a.isLeader, true);
    store.down.add("a"); // a is cut off from the API server
    const cut = clock.now();
    let aStoppedAt: number | undefined;
    let bStartedAt: number | undefined;
    for (let t = 0; t < 8000; t += 100) {
      await clock.tick(100);
      if (aStoppedAt === undefined && !a.isLeader) aStoppedAt = clock.now();
      if (bStartedAt === undefined && b.isLeader) bStartedAt = clock.now();
    }
    assert.ok(aStoppedAt !== undefined && bStartedAt !== undefined);
    assert.ok(aStoppedAt - cut <= timings.renewDeadlineMs, `a stepped down ${aStoppedAt - cut} ms after the cut`);
    assert.ok(bStartedAt > aStoppedAt, "never two leaders");
    assert.ok(bStartedAt - cut >= timings.leaseDurationMs - timings.retryPeriodMs);
    assert.deepEqual(log, ["a start", "a signal", "a stop", "b start"]);
    store.down.delete("a");
    await run(clock, 2000);
    assert.equal(a.isLeader, false, "a rejoins as a candidate, not as leader");
    assert.equal(a.leader, "b");
    await a.stop();
    assert.equal(store.lease?.spec?.holderIdentity, "b", "a's stop does not release b's lease");
    await b.stop();
  });

  test("stop before ever leading leaves no timers", async () => {
    const clock = new ManualClock(T0);
    const store = new MemoryLeases();
    store.lease = held("someone-else");
    const a = elector(store, clock, "a", []);
    a.start();
    await run(clock, 1000);
    await a.stop();
    assert.equal(clock.pendingTimers, 0);
    assert.equal(store.lease?.spec?.holderIdentity, "someone-else");
  });
});
