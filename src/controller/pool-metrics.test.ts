import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createMetrics, type Metrics } from "../observability/metrics.ts";
import { wantedPlaceholders } from "../placeholders/plan.ts";
import type { BlockedJob, JobRequest, ObservedPod, ScalePlan, UnmatchedJob } from "../scaling/types.ts";
import {
  countUnserved,
  newlyAssigned,
  PoolMetrics,
  placeholderNames,
  queuedRequestIds,
  queueTimeLookup,
  templateLabel,
  type UnservedReason,
  unservedJobs,
} from "./pool-metrics.ts";
import type { PoolSnapshot, Resource } from "./ports.ts";

const T0 = Date.parse("2026-12-01T12:00:00Z");
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

const unmatched = (requestId: number, reason: UnmatchedJob["reason"]): UnmatchedJob => ({
  requestId,
  demands: [],
  reason,
  message: "",
});
const blocked = (requestId: number): BlockedJob => ({
  requestId,
  templateIndex: 0,
  extraAgentContainers: null,
  reason: "max-count",
  message: "",
});

describe("unservedJobs and countUnserved (rule 1)", () => {
  test("a plan's unmatched jobs keep their reason; blocked jobs are max-count", () => {
    const plan = { unmatchedJobs: [unmatched(1, "no-matching-template")], blockedJobs: [blocked(2)] };
    assert.deepEqual(
      [...unservedJobs(plan)],
      [
        [1, "no-matching-template"],
        [2, "max-count"],
      ],
    );
  });

  const zero = { "max-count": 0, "no-matching-template": 0, "extra-agent-containers-refused": 0 };
  const cases: {
    name: string;
    records: [number, UnservedReason][][];
    queued: number[];
    expect: Partial<Record<UnservedReason, number>>;
  }[] = [
    { name: "no resources: every reason 0", records: [], queued: [1], expect: zero },
    {
      name: "a job nobody can take is in every plan: counted once",
      records: [[[1, "no-matching-template"]], [[1, "no-matching-template"]]],
      queued: [1],
      expect: { ...zero, "no-matching-template": 1 },
    },
    {
      name: "resources disagree: the more specific reason wins",
      records: [[[1, "no-matching-template"]], [[1, "extra-agent-containers-refused"]]],
      queued: [1],
      expect: { ...zero, "extra-agent-containers-refused": 1 },
    },
    {
      name: "blocked by one resource, unmatched by none else: max-count",
      records: [[[2, "max-count"]], []],
      queued: [2],
      expect: { ...zero, "max-count": 1 },
    },
    {
      name: "a job no longer queued in the latest poll does not count (a stale record)",
      records: [[[1, "no-matching-template"]], [[2, "max-count"]]],
      queued: [2],
      expect: { ...zero, "max-count": 1 },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const counts = countUnserved(
        c.records.map((r) => new Map(r)),
        new Set(c.queued),
      );
      for (const [reason, n] of Object.entries(c.expect)) assert.equal(counts[reason as UnservedReason], n, reason);
      assert.equal(Object.keys(counts).length, 7, "every reason is present");
    });
  }
});

test("queuedRequestIds: unfinished and not assigned", () => {
  const jobs: JobRequest[] = [
    { requestId: 1, queueTime: at(0) },
    { requestId: 2, queueTime: at(0), assignTime: at(1), reservedAgent: { id: 1, name: "a" } },
    { requestId: 3, queueTime: at(0), result: "canceled", finishTime: at(2) },
  ];
  assert.deepEqual([...queuedRequestIds(jobs)], [1]);
});

test("queueTimeLookup: parsed queueTimes; unknown ids and unreadable times are undefined", () => {
  const lookup = queueTimeLookup([
    { requestId: 1, queueTime: at(5) },
    { requestId: 2, queueTime: "not a time" },
  ]);
  assert.equal(lookup(1), T0 + 5000);
  assert.equal(lookup(2), undefined);
  assert.equal(lookup(3), undefined);
});

describe("newlyAssigned (rule 2)", () => {
  const pods = new Map<string, number | null>([
    ["agents-a", 0],
    ["agents-b", 1],
    ["agents-old", null],
  ]);
  const job = (requestId: number, agent: string | undefined, assignS?: number, queueS = 0): JobRequest => ({
    requestId,
    queueTime: at(queueS),
    ...(assignS === undefined ? {} : { assignTime: at(assignS) }),
    ...(agent === undefined ? {} : { reservedAgent: { id: requestId, name: agent } }),
  });
  const cases: {
    name: string;
    jobs: JobRequest[];
    seen: number[];
    waits: [number, number | null, number][];
    remembered: number[];
  }[] = [
    { name: "queued jobs: nothing", jobs: [job(1, undefined)], seen: [], waits: [], remembered: [] },
    {
      name: "assigned to our pod: its wait and its template",
      jobs: [job(1, "agents-a", 12), job(2, "agents-b", 70, 10)],
      seen: [],
      waits: [
        [1, 0, 12],
        [2, 1, 60],
      ],
      remembered: [1, 2],
    },
    {
      name: "seen before: not observed again, still remembered",
      jobs: [job(1, "agents-a", 12)],
      seen: [1],
      waits: [],
      remembered: [1],
    },
    {
      name: "assigned to an agent that is not our pod: ignored",
      jobs: [job(1, "static-agent", 3)],
      seen: [],
      waits: [],
      remembered: [],
    },
    {
      name: "a pod whose entry is gone: template null",
      jobs: [job(1, "agents-old", 4)],
      seen: [],
      waits: [[1, null, 4]],
      remembered: [1],
    },
    {
      name: "finished jobs leave the list: the memory forgets them",
      jobs: [],
      seen: [1, 2],
      waits: [],
      remembered: [],
    },
    {
      name: "assignTime before queueTime (clock skew): 0",
      jobs: [job(1, "agents-a", 1, 5)],
      seen: [],
      waits: [[1, 0, 0]],
      remembered: [1],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = newlyAssigned({ jobRequests: c.jobs, podTemplates: pods, seen: new Set(c.seen) });
      assert.deepEqual(
        r.waits.map((w) => [w.requestId, w.templateIndex, w.seconds]),
        c.waits,
      );
      assert.deepEqual([...r.seen], c.remembered);
    });
  }
});

test("placeholderNames (rule 3): wanted, and registered among the pool's agents ignoring case", () => {
  const r = placeholderNames(["dummy-agent-aa", "dummy-agent-bb"], ["DUMMY-AGENT-AA", "agents-x"]);
  assert.deepEqual([...r.wanted], ["dummy-agent-aa", "dummy-agent-bb"]);
  assert.deepEqual([...r.registered], ["dummy-agent-aa"]);
});

test("templateLabel", () => {
  assert.equal(templateLabel(0), "0");
  assert.equal(templateLabel(null), "none");
});

// ---------------------------------------------------------------------------------------------------------------
// The shell, with a registry of its own

function resource(name: string, pool = "Pool", caps: Record<string, string> = { a: "1" }): Resource {
  return {
    apiVersion: "azurepipelines.k8s.scaler.io/v1",
    kind: "AutoScaledAgent",
    metadata: { name, namespace: "ci", uid: `uid-${name}` },
    spec: {
      poolName: pool,
      organizationUrl: "https://dev.azure.com/org",
      podsWithCapabilities: [{ capabilities: caps, minCount: 0, maxCount: 1, podTemplateSpec: { spec: {} } }],
    },
  } as unknown as Resource;
}

function plan(unmatchedJobs: UnmatchedJob[] = [], blockedJobs: BlockedJob[] = []): ScalePlan {
  return { unmatchedJobs, blockedJobs } as unknown as ScalePlan;
}

function snapshot(jobRequests: JobRequest[], agents: string[] = []): PoolSnapshot {
  return { poolId: 1, jobRequests, agents: agents.map((name, id) => ({ id, name })), fetchedAt: T0 };
}

const pod = (name: string, templateIndex: number | null = 0) => ({ name, templateIndex }) as ObservedPod;

async function values(metrics: Metrics, name: string): Promise<Record<string, number>> {
  const metric = metrics.registry.getSingleMetric(name);
  assert.ok(metric, name);
  const out: Record<string, number> = {};
  for (const v of (await metric.get()).values) {
    out[
      Object.entries(v.labels)
        .map(([k, x]) => `${k}=${x}`)
        .join(",")
    ] = v.value;
  }
  return out;
}

describe("PoolMetrics", () => {
  const org = "https://dev.azure.com/org";

  test("two resources on a pool: queued jobs, unserved counted once, placeholders united", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const pm = new PoolMetrics(metrics);
    const jobs: JobRequest[] = [
      { requestId: 1, queueTime: at(0) },
      { requestId: 2, queueTime: at(0) },
      { requestId: 3, queueTime: at(0) },
    ];
    const s = snapshot(jobs);
    const a = resource("a", "Pool", { a: "1" });
    const b = resource("b", "pool", { b: "1" });
    pm.planned({
      key: "ci/a",
      resource: a,
      organization: org,
      snapshot: s,
      plan: plan([unmatched(1, "no-matching-template")], [blocked(2)]),
      pods: [],
    });
    pm.planned({
      key: "ci/b",
      resource: b,
      organization: org,
      snapshot: s,
      plan: plan([unmatched(1, "no-matching-template")]),
      pods: [],
    });
    const labels = `organization=${org},pool=Pool`;
    assert.deepEqual(await values(metrics, "azp_scaler_queued_jobs"), { [labels]: 3 });
    const unserved = await values(metrics, "azp_scaler_unserved_jobs");
    assert.equal(unserved[`${labels},reason=no-matching-template`], 1);
    assert.equal(unserved[`${labels},reason=max-count`], 1);
    assert.equal(Object.keys(unserved).length, 7);
    assert.deepEqual(await values(metrics, "azp_scaler_placeholder_agents"), {
      [`${labels},state=wanted`]: 2,
      [`${labels},state=registered`]: 0,
    });

    // One resource is no longer available: only the other's record counts; when both are gone, so are the series.
    pm.unavailable("ci/a");
    assert.equal(
      (await values(metrics, "azp_scaler_unserved_jobs"))[`organization=${org},pool=pool,reason=max-count`],
      0,
    );
    assert.equal(
      (await values(metrics, "azp_scaler_placeholder_agents"))[`organization=${org},pool=pool,state=wanted`],
      1,
    );
    pm.forget("ci/b");
    assert.deepEqual(await values(metrics, "azp_scaler_queued_jobs"), {});
    assert.deepEqual(await values(metrics, "azp_scaler_unserved_jobs"), {});
    assert.deepEqual(await values(metrics, "azp_scaler_placeholder_agents"), {});
  });

  test("a resource that moves to another pool takes its record along", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const pm = new PoolMetrics(metrics);
    const s = snapshot([{ requestId: 1, queueTime: at(0) }]);
    pm.planned({ key: "ci/a", resource: resource("a", "one"), organization: org, snapshot: s, plan: plan(), pods: [] });
    pm.planned({ key: "ci/a", resource: resource("a", "two"), organization: org, snapshot: s, plan: plan(), pods: [] });
    assert.deepEqual(Object.keys(await values(metrics, "azp_scaler_queued_jobs")), [`organization=${org},pool=two`]);
  });

  test("assigned waits: none for jobs assigned before the first plan, then once per job", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const pm = new PoolMetrics(metrics);
    const r = resource("a");
    const assigned = (requestId: number, agent: string, s: number): JobRequest => ({
      requestId,
      queueTime: at(0),
      assignTime: at(s),
      reservedAgent: { id: requestId, name: agent },
    });
    const planned = (jobs: JobRequest[], agents: string[]) =>
      pm.planned({
        key: "ci/a",
        resource: r,
        organization: org,
        snapshot: snapshot(jobs, agents),
        plan: plan(),
        pods: [pod("a-1"), pod("a-2")],
      });
    planned([assigned(1, "a-1", 5)], ["a-1"]);
    planned([assigned(1, "a-1", 5), assigned(2, "a-2", 20)], ["a-1", "a-2"]);
    planned([assigned(1, "a-1", 5), assigned(2, "a-2", 20)], ["a-1", "a-2"]);
    const all = (await metrics.jobWaitAssigned.get()).values as {
      metricName?: string;
      value: number;
      labels: object;
    }[];
    const count = all.find((v) => v.metricName?.endsWith("_count"));
    const sum = all.find((v) => v.metricName?.endsWith("_sum"));
    assert.equal(count?.value, 1);
    assert.equal(sum?.value, 20);
    assert.deepEqual(count?.labels, { namespace: "ci", name: "a", template: "0" });
  });

  test("the same poll's lists planned again: the gauges follow what changed, and only that", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const pm = new PoolMetrics(metrics);
    const jobs: JobRequest[] = [
      { requestId: 1, queueTime: at(0) },
      { requestId: 2, queueTime: at(0) },
    ];
    const s = snapshot(jobs, ["dummy-agent-x"]);
    const labels = `organization=${org},pool=Pool`;
    const unserved = async (reason: string) =>
      (await values(metrics, "azp_scaler_unserved_jobs"))[`${labels},reason=${reason}`];
    const planned = (r: Resource, p: ScalePlan, sn: PoolSnapshot = s, pods: ObservedPod[] = []) =>
      pm.planned({ key: "ci/a", resource: r, organization: org, snapshot: sn, plan: p, pods });
    const a = resource("a");
    const cases: { what: string; run: () => void; check: () => Promise<void> }[] = [
      {
        what: "first plan",
        run: () => planned(a, plan([unmatched(1, "no-matching-template")])),
        check: async () => assert.equal(await unserved("no-matching-template"), 1),
      },
      {
        what: "same lists, another reason for the same job",
        run: () => planned(a, plan([unmatched(1, "malformed-demand")])),
        check: async () => {
          assert.equal(await unserved("no-matching-template"), 0);
          assert.equal(await unserved("malformed-demand"), 1);
        },
      },
      {
        what: "same lists, one more job unserved",
        run: () => planned(a, plan([unmatched(1, "malformed-demand")], [blocked(2)])),
        check: async () => assert.equal(await unserved("max-count"), 1),
      },
      {
        what: "same lists and plan: nothing changes",
        run: () => planned(a, plan([unmatched(1, "malformed-demand")], [blocked(2)])),
        check: async () => assert.equal(await unserved("max-count"), 1),
      },
      {
        what: "the pool name's case changes: the series move to the new label",
        run: () => planned(resource("a", "POOL"), plan([unmatched(1, "malformed-demand")], [blocked(2)])),
        check: async () =>
          assert.deepEqual(Object.keys(await values(metrics, "azp_scaler_queued_jobs")), [
            `organization=${org},pool=POOL`,
          ]),
      },
      {
        what: "a new poll: queued jobs and registered placeholders follow it",
        run: () => {
          const wanted = wantedPlaceholders([{ key: "ci/a", ...a.spec }]).map((w) => w.name);
          planned(a, plan(), snapshot([{ requestId: 3, queueTime: at(0) }], wanted));
        },
        check: async () => {
          assert.deepEqual(await values(metrics, "azp_scaler_queued_jobs"), { [labels]: 1 });
          assert.equal(await unserved("malformed-demand"), 0);
          assert.equal((await values(metrics, "azp_scaler_placeholder_agents"))[`${labels},state=registered`], 1);
        },
      },
    ];
    for (const c of cases) {
      c.run();
      await c.check().catch((err: Error) => {
        throw new Error(`${c.what}: ${err.message}`);
      });
    }
  });

  test("assigned waits: a pod that shows up after the poll that assigned its job is still observed", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const pm = new PoolMetrics(metrics);
    const r = resource("a");
    const s = snapshot(
      [{ requestId: 1, queueTime: at(0), assignTime: at(7), reservedAgent: { id: 1, name: "a-1" } }],
      ["a-1"],
    );
    const planned = (pods: ObservedPod[]) =>
      pm.planned({ key: "ci/a", resource: r, organization: org, snapshot: s, plan: plan(), pods });
    planned([]);
    planned([]);
    planned([pod("a-1")]);
    const count = ((await metrics.jobWaitAssigned.get()).values as { metricName?: string; value: number }[]).find((v) =>
      v.metricName?.endsWith("_count"),
    );
    assert.equal(count?.value, 1);
  });
});
