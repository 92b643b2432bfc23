import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { microTime, parseAuditLine } from "./audit.ts";
import {
  checkJobs,
  checkLeadership,
  deletedBy,
  holdWindows,
  type JobHistory,
  LiveChecker,
  maxCountAt,
  type PodObservation,
  type SpecRecord,
} from "./invariants.ts";

describe("maxCountAt", () => {
  const records: SpecRecord[] = [
    { at: 0, ackAt: 10, resource: "a/r", uid: "u1", maxCounts: { t: 5 } },
    { at: 1000, ackAt: 1010, resource: "a/r", uid: "u1", maxCounts: { t: 2 } },
    { at: 2000, ackAt: 2010, resource: "a/r", uid: "u1", maxCounts: null },
    { at: 3000, ackAt: 3010, resource: "a/r", uid: "u2", maxCounts: { t: 4, u: 1 } },
  ];
  const cases: [string, string, number, number][] = [
    ["t", "before anything", -100, 0],
    ["t", "first value", 500, 5],
    ["t", "old value still in force within the grace after the change", 1200, 5],
    ["t", "the lower value once the grace has passed", 1400, 2],
    ["t", "deleted", 2600, 0],
    ["t", "recreated: the new value from when it was sent", 3000, 4],
    ["u", "a template added later", 3500, 1],
    ["u", "a template that did not exist", 500, 0],
  ];
  for (const [template, name, t, expected] of cases) {
    test(name, () => assert.equal(maxCountAt(records, "a/r", template, t, 200), expected));
  }
  test("another resource's records do not count", () => assert.equal(maxCountAt(records, "a/other", "t", 500, 200), 0));
  test("by uid: the deleted instance has nothing after its deletion, the new one its own values", () => {
    assert.equal(maxCountAt(records, "a/r", "t", 3500, 200, "u1"), 0);
    assert.equal(maxCountAt(records, "a/r", "t", 3500, 200, "u2"), 4);
    assert.equal(maxCountAt(records, "a/r", "t", 500, 200, "u2"), 0);
  });
  test("deletedBy", () => {
    assert.equal(deletedBy(records, "a/r", 2500, "u1"), true);
    assert.equal(deletedBy(records, "a/r", 1500, "u1"), false);
    assert.equal(deletedBy(records, "a/r", 3500), false, "the last record of any instance: created again");
  });
});

const pod = (name: string, over: Partial<PodObservation> = {}): PodObservation => ({
  namespace: "ns",
  name,
  resource: "r",
  template: "t",
  createdAt: Number.NaN,
  phase: "Pending",
  deleting: false,
  agentTerminated: false,
  claims: [],
  ...over,
});

describe("LiveChecker: maxCount", () => {
  const specs: SpecRecord[] = [{ at: 0, ackAt: 0, resource: "ns/r", uid: "u1", maxCounts: { t: 2 } }];
  const checker = () => new LiveChecker({ specs: () => specs, graceMs: 100 });

  test("creations up to maxCount are fine; one more is a violation", () => {
    const c = checker();
    assert.deepEqual(c.onPod(1000, pod("p1")), []);
    assert.deepEqual(c.onPod(1001, pod("p2", { phase: "Running" })), []);
    const v = c.onPod(1002, pod("p3"));
    assert.equal(v.length, 1);
    assert.equal(v[0]?.invariant, 3);
    assert.equal(v[0]?.details.live, 3);
  });

  test("terminating, finished and finishing pods do not count; a pod is judged once, when first seen", () => {
    const c = checker();
    c.onPod(1000, pod("p1", { deleting: true, phase: "Running" }));
    c.onPod(1001, pod("p2", { phase: "Succeeded" }));
    c.onPod(1002, pod("p3", { agentTerminated: true, phase: "Running" }));
    c.onJob({ requestId: 1, state: "finished", result: "succeeded", reservedAgent: { name: "p4" } });
    c.onPod(1003, pod("p4", { phase: "Running" }));
    assert.deepEqual(c.onPod(1004, pod("p5")), []);
    assert.deepEqual(c.onPod(1005, pod("p6")), []);
    assert.deepEqual(c.onPod(1006, pod("p6", { phase: "Running" })), [], "an update is not a creation");
    assert.equal(c.heldExcess.get("ns/r/t")?.excess, 3, "held: p1, p3, p4, p5, p6 over 2");
  });

  test("another template or another resource is counted apart; an absent template has maxCount 0", () => {
    const c = checker();
    c.onPod(1000, pod("p1"));
    c.onPod(1001, pod("p2"));
    assert.deepEqual(
      c.onPod(1002, pod("q1", { resource: "other" })).map((v) => v.kind),
      ["pod-for-absent-template"],
    );
    assert.deepEqual(
      c.onPod(1003, pod("q2", { template: "u" })).map((v) => v.kind),
      ["pod-for-absent-template"],
    );
  });

  test("a batch (a relist) is applied whole before judging: pods that finished meanwhile do not count", () => {
    const c = checker();
    c.onPod(1000, pod("p1", { phase: "Running" }));
    c.onPod(1001, pod("p2", { phase: "Running" }));
    const v = c.onPods(5000, [pod("p3"), pod("p1", { phase: "Succeeded" })], [{ namespace: "ns", name: "p2" }]);
    assert.deepEqual(v, []);
  });

  test("the creation time is creationTimestamp + 1 s when the watch delivers late", () => {
    const changing: SpecRecord[] = [
      { at: 0, ackAt: 0, resource: "ns/r", uid: "u1", maxCounts: { t: 3 } },
      { at: 10_000, ackAt: 10_000, resource: "ns/r", uid: "u1", maxCounts: { t: 1 } },
    ];
    const c = new LiveChecker({ specs: () => changing, graceMs: 100 });
    c.onPod(5000, pod("p1"));
    c.onPod(5000, pod("p2"));
    assert.deepEqual(c.onPod(20_000, pod("p3", { createdAt: 6000 })), [], "created at 7 s at the latest: maxCount 3");
  });
});

describe("LiveChecker: cache PVCs", () => {
  const c = new LiveChecker({ specs: () => [], graceMs: 0 });
  test("two unfinished pods with one claim: reported once per pair; a finished holder does not count", () => {
    assert.deepEqual(c.onPod(1, pod("a", { claims: ["pvc-1"], phase: "Succeeded" })), []);
    assert.deepEqual(
      c.onPod(2, pod("b", { claims: ["pvc-1"], phase: "Running" })).filter((v) => v.invariant === 4),
      [],
    );
    const v = c.onPod(3, pod("c", { claims: ["pvc-1"], deleting: false })).filter((x) => x.invariant === 4);
    assert.equal(v.length, 1);
    assert.equal(v[0]?.kind, "claim-shared-by-live-pods");
    assert.deepEqual(
      c.onPod(4, pod("c", { claims: ["pvc-1"], phase: "Running" })).filter((x) => x.invariant === 4),
      [],
      "the same pair is not reported again",
    );
    c.onPodGone("ns", "b");
    assert.deepEqual(
      c.onPod(5, pod("d", { claims: ["pvc-2"] })).filter((x) => x.invariant === 4),
      [],
    );
  });
  test("a terminating holder still mounts the claim", () => {
    const k = new LiveChecker({ specs: () => [], graceMs: 0 });
    k.onPod(1, pod("a", { claims: ["x"], deleting: true, phase: "Running" }));
    assert.equal(
      k.onPod(2, pod("b", { claims: ["x"] })).find((v) => v.invariant === 4)?.kind,
      "claim-shared-with-terminating-pod",
    );
  });
});

const job = (requestId: number, changes: JobHistory["changes"], over: Partial<JobHistory> = {}): JobHistory => ({
  requestId,
  changes,
  resource: "ns/r",
  template: "t",
  demands: ["x"],
  ...over,
});

describe("holdWindows", () => {
  test("assigned → running → finished is one window; a job returned to the queue closes it", () => {
    const w = holdWindows([
      job(1, [
        { at: 0, state: "queued" },
        { at: 10, state: "assigned", agent: "p1" },
        { at: 20, state: "queued" },
        { at: 30, state: "assigned", agent: "p2" },
        { at: 40, state: "running", agent: "p2" },
        { at: 90, state: "finished" },
      ]),
    ]);
    assert.deepEqual(w.get("p1"), [{ requestId: 1, from: 10, to: 20 }]);
    assert.deepEqual(w.get("p2"), [{ requestId: 1, from: 30, to: 90 }]);
  });
});

describe("checkJobs", () => {
  const base = {
    isOperator: (u: string) => u.startsWith("chaos-op-"),
    isGarbageCollector: (u: string) => u.endsWith(":generic-garbage-collector"),
    ownerDeleted: (name: string) =>
      name.startsWith("beta-")
        ? { deletedAt: 50, podCreatedAt: 5 }
        : name.startsWith("stale-")
          ? { deletedAt: 5, podCreatedAt: 8 }
          : undefined,
    fitsAtEnd: (j: JobHistory) => j.template !== "gone",
    unfinished: [] as JobHistory[],
  };
  const ran = (id: number, agent: string, result: string, over: Partial<JobHistory> = {}) =>
    job(
      id,
      [
        { at: 0, state: "queued" },
        { at: 10, state: "assigned", agent },
        { at: 20, state: "running", agent },
        { at: 100, state: "finished" },
      ],
      { result, ...over },
    );
  test("a table of outcomes", () => {
    const { violations, expected } = checkJobs({
      ...base,
      jobs: [
        ran(1, "alpha-aaaaa", "succeeded"),
        ran(2, "alpha-bbbbb", "abandoned"),
        ran(3, "alpha-ccccc", "canceled", { cancelledAt: 30 }),
        ran(4, "beta-ddddd", "abandoned"),
        ran(5, "alpha-eeeee", "canceled"),
        ran(9, "stale-fffff", "abandoned"),
        job(6, [{ at: 0, state: "finished" }], { result: "failed", statusMessage: "No agent found in pool p which…" }),
      ],
      podDeletes: [
        { at: 40, user: "chaos-op-1", namespace: "ns", name: "alpha-bbbbb" },
        {
          at: 60,
          user: "system:serviceaccount:kube-system:generic-garbage-collector",
          namespace: "ns",
          name: "beta-ddddd",
        },
      ],
      unfinished: [job(7, [{ at: 0, state: "queued" }]), job(8, [{ at: 0, state: "queued" }], { template: "gone" })],
    });
    assert.deepEqual(
      violations.map((v) => [v.invariant, v.kind, v.details.requestId]),
      [
        [1, "busy-pod-deleted-by-operator", 2],
        [1, "agent-lost-pod-not-deleted", 5],
        [1, "job-taken-by-pod-created-for-deleted-resource", 9],
        [2, "failed-no-agent", 6],
        [1, "operator-deleted-pod-holding-job", 2],
        [2, "left-unfinished-though-a-template-fits", 7],
      ],
    );
    assert.deepEqual(
      expected.map((v) => [v.kind, v.details.requestId]),
      [
        ["resource-deleted-by-harness", 4],
        ["left-unfinished-no-template-fits", 8],
      ],
    );
  });
  test("a pod deleted by an operator after its job finished is no violation", () => {
    const { violations } = checkJobs({
      ...base,
      jobs: [ran(1, "alpha-aaaaa", "succeeded")],
      podDeletes: [{ at: 150, user: "chaos-op-1", namespace: "ns", name: "alpha-aaaaa" }],
    });
    assert.deepEqual(violations, []);
  });
});

describe("checkLeadership", () => {
  const w = (at: number, user: string) => ({ at, user, verb: "create", object: `pods/${at}` });
  test("clean handovers: no violation", () => {
    const { violations, replicas } = checkLeadership([w(1, "a"), w(2, "a"), w(5, "b"), w(6, "b"), w(9, "c")]);
    assert.deepEqual(violations, []);
    assert.deepEqual(
      replicas.map((r) => [r.user, r.writes]),
      [
        ["a", 2],
        ["b", 2],
        ["c", 1],
      ],
    );
  });
  test("the old leader writing after the new one started: each such write counts", () => {
    const { violations } = checkLeadership([w(1, "a"), w(5, "b"), w(6, "a"), w(7, "a"), w(8, "b")]);
    assert.deepEqual(
      violations.map((v) => [v.details.writer, v.details.newerReplica]),
      [
        ["a", "b"],
        ["a", "b"],
      ],
    );
  });
});

describe("audit lines", () => {
  test("microsecond timestamps keep their fraction", () => {
    assert.ok(Math.abs(microTime("2026-01-01T00:00:00.123456Z") - Date.UTC(2026, 0, 1) - 123.456) < 0.001);
    assert.equal(microTime("2026-01-01T00:00:01Z") - Date.UTC(2026, 0, 1), 1000);
  });
  test("a ResponseComplete event becomes a record; other stages and junk do not", () => {
    const line = JSON.stringify({
      kind: "Event",
      stage: "ResponseComplete",
      verb: "delete",
      user: { username: "chaos-op-2", groups: ["system:masters"] },
      objectRef: { resource: "pods", namespace: "ns", name: "alpha-abcde", apiVersion: "v1" },
      responseStatus: { code: 200 },
      requestReceivedTimestamp: "2026-01-01T00:00:00.500000Z",
    });
    assert.deepEqual(parseAuditLine(line), {
      at: Date.UTC(2026, 0, 1) + 500,
      user: "chaos-op-2",
      verb: "delete",
      resource: "pods",
      namespace: "ns",
      name: "alpha-abcde",
      code: 200,
    });
    assert.equal(parseAuditLine(line.replace("ResponseComplete", "ResponseStarted")), undefined);
    assert.equal(parseAuditLine("{not json"), undefined);
    assert.equal(parseAuditLine(""), undefined);
  });
});
