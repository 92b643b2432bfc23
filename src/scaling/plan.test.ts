import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { classifyPod, finishedPodsToDelete, planScaling, reservations, sidecarsToStop } from "./plan.ts";
import type { JobRequest, ObservedAgent, ObservedPod, PlanInput, ScalePlan, TemplateSpec } from "./types.ts";

const NOW = 10_000_000;
const MIN = 60_000;
const IDLE = 5 * MIN;

const tpl = (capabilities: Record<string, string>, minCount: number, maxCount: number): TemplateSpec => ({
  capabilities,
  minCount,
  maxCount,
});

function queued(id: number, demands: string[] = [], queueOffsetS = id): JobRequest {
  return {
    requestId: id,
    queueTime: new Date(NOW - 600_000 + queueOffsetS * 1000).toISOString(),
    demands: [...demands, "Agent.Version -gtVersion 2.182.1"],
  };
}

function running(id: number, agentName: string): JobRequest {
  return {
    requestId: id,
    queueTime: new Date(NOW - 900_000).toISOString(),
    assignTime: new Date(NOW - 800_000).toISOString(),
    receiveTime: new Date(NOW - 799_000).toISOString(),
    reservedAgent: { id: agentId(agentName), name: agentName },
    demands: [],
  };
}

function agentId(name: string): number {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 100_000;
  return h + 1;
}

function pod(name: string, o: Partial<ObservedPod> = {}): ObservedPod {
  return {
    name,
    templateIndex: 0,
    extraAgentContainers: null,
    createdAtMs: NOW - 3_600_000,
    startedAtMs: NOW - 3_590_000,
    phase: "Running",
    scheduled: true,
    deleting: false,
    agentContainer: "running",
    otherContainers: [],
    createdForRequestIds: [],
    ...o,
  };
}

function agent(name: string, o: Partial<ObservedAgent> = {}): ObservedAgent {
  return { id: agentId(name), name, status: "online", busy: false, ...o };
}

/** An idle pod: scheduled, running, its agent online and free. */
function idlePod(name: string, o: Partial<ObservedPod> = {}, a: Partial<ObservedAgent> = {}) {
  return { pod: pod(name, o), agent: agent(name, a) };
}

function plan(o: Partial<PlanInput> & { templates: TemplateSpec[] }): ScalePlan {
  return planScaling({
    jobRequests: [],
    pods: [],
    agents: [],
    now: NOW,
    agentMinIdlePeriodMs: IDLE,
    maxTerminatedPodsToKeep: 5,
    ...o,
  });
}

function withPods(list: { pod: ObservedPod; agent?: ObservedAgent }[]) {
  return {
    pods: list.map((x) => x.pod),
    agents: list.flatMap((x) => (x.agent === undefined ? [] : [x.agent])),
  };
}

const createsSummary = (p: ScalePlan) =>
  p.creates.map((c) => [c.templateIndex, c.extraAgentContainers, [...c.forRequestIds], c.reason]);

describe("scale up", () => {
  const cases: {
    name: string;
    templates: TemplateSpec[];
    jobs?: JobRequest[];
    pods?: { pod: ObservedPod; agent?: ObservedAgent }[];
    creates: unknown[];
    blocked?: number[];
  }[] = [
    {
      name: "one job, no pods: one pod for it",
      templates: [tpl({}, 0, 5)],
      jobs: [queued(1)],
      creates: [[0, null, [1], "pending-job"]],
    },
    {
      name: "no jobs, minCount 0: nothing",
      templates: [tpl({}, 0, 5)],
      creates: [],
    },
    {
      name: "minCount 2 without jobs: two warm pods",
      templates: [tpl({}, 2, 5)],
      creates: [
        [0, null, [], "min-count"],
        [0, null, [], "min-count"],
      ],
    },
    {
      name: "minCount 1 with two jobs: two pods for the jobs, no extra warm one",
      templates: [tpl({}, 1, 5)],
      jobs: [queued(1), queued(2)],
      creates: [
        [0, null, [1], "pending-job"],
        [0, null, [2], "pending-job"],
      ],
    },
    {
      name: "minCount 3 with one job and three idle warm pods: the job takes a warm pod, nothing created",
      templates: [tpl({}, 3, 999)],
      jobs: [queued(1)],
      pods: [idlePod("w1"), idlePod("w2"), idlePod("w3")],
      creates: [],
    },
    {
      name: "three jobs, maxCount 2: two pods, one job waits",
      templates: [tpl({}, 0, 2)],
      jobs: [queued(1), queued(2), queued(3)],
      creates: [
        [0, null, [1], "pending-job"],
        [0, null, [2], "pending-job"],
      ],
      blocked: [3],
    },
    {
      name: "maxCount 0: nothing, the job waits",
      templates: [tpl({}, 0, 0)],
      jobs: [queued(1)],
      creates: [],
      blocked: [1],
    },
    {
      name: "maxCount 0 beats minCount",
      templates: [tpl({}, 2, 0)],
      creates: [],
    },
    {
      name: "starting pod created for the job counts: no second pod",
      templates: [tpl({}, 0, 5)],
      jobs: [queued(1)],
      pods: [{ pod: pod("p1", { createdForRequestIds: [1] }) }],
      creates: [],
    },
    {
      name: "unscheduled pod created for the job counts",
      templates: [tpl({}, 0, 5)],
      jobs: [queued(1)],
      pods: [{ pod: pod("p1", { createdForRequestIds: [1], scheduled: false, phase: "Pending" }) }],
      creates: [],
    },
    {
      name: "starting pod for job 1 does not cover job 2",
      templates: [tpl({}, 0, 5)],
      jobs: [queued(1), queued(2)],
      pods: [{ pod: pod("p1", { createdForRequestIds: [1] }) }],
      creates: [[0, null, [2], "pending-job"]],
    },
    {
      name: "an idle pod takes the oldest job, a starting pod keeps its own, spare ones the oldest left in turn",
      templates: [tpl({}, 0, 9)],
      jobs: [queued(1), queued(2), queued(3), queued(4), queued(5)],
      pods: [idlePod("w1"), { pod: pod("p3", { createdForRequestIds: [3] }) }, { pod: pod("p0") }, { pod: pod("p00") }],
      creates: [[0, null, [5], "pending-job"]],
    },
    {
      name: "starting pod whose job was cancelled serves the next job",
      templates: [tpl({}, 0, 5)],
      jobs: [{ ...queued(1), result: "canceled", finishTime: new Date(NOW).toISOString() }, queued(2)],
      pods: [{ pod: pod("p1", { createdForRequestIds: [1] }) }],
      creates: [],
    },
    {
      name: "busy agents count: minCount 2 with one busy pod adds one warm pod",
      templates: [tpl({}, 2, 5)],
      jobs: [running(9, "b1")],
      pods: [{ pod: pod("b1"), agent: agent("b1") }],
      creates: [[0, null, [], "min-count"]],
    },
    {
      name: "standby 2 beside busy pods: one busy, one idle -> one more pod",
      templates: [{ ...tpl({}, 0, 5), standby: 2 }],
      jobs: [running(9, "b1")],
      pods: [
        { pod: pod("b1"), agent: agent("b1") },
        { pod: pod("i1"), agent: agent("i1") },
      ],
      creates: [[0, null, [], "min-count"]],
    },
    {
      name: "standby 0: no warm pod, whatever another view of the pods counted as busy (the spec's minCount is ignored)",
      templates: [{ ...tpl({}, 3, 5), standby: 0 }],
      // Its job list no longer reserves f1 (the job ended), its agent list says f1 completed a job: finishing.
      pods: [{ pod: pod("f1"), agent: agent("f1", { lastCompletedRequestFinishMs: NOW - 1000 }) }],
      creates: [],
    },
    {
      name: "standby beside busy pods stays within maxCount",
      templates: [{ ...tpl({}, 0, 2), standby: 2 }],
      jobs: [running(8, "b1"), running(9, "b2")],
      pods: [
        { pod: pod("b1"), agent: agent("b1") },
        { pod: pod("b2"), agent: agent("b2") },
      ],
      creates: [],
    },
    {
      name: "busy agents do not cover pending jobs",
      templates: [tpl({}, 0, 5)],
      jobs: [queued(1)],
      pods: [{ pod: pod("b1"), agent: agent("b1", { busy: true }) }],
      creates: [[0, null, [1], "pending-job"]],
    },
    {
      name: "busy pods fill maxCount",
      templates: [tpl({}, 0, 2)],
      jobs: [queued(1), running(8, "b1"), running(9, "b2")],
      pods: [
        { pod: pod("b1"), agent: agent("b1") },
        { pod: pod("b2"), agent: agent("b2") },
      ],
      creates: [],
      blocked: [1],
    },
    {
      name: "terminating pods count toward maxCount",
      templates: [tpl({}, 0, 1)],
      jobs: [queued(1)],
      pods: [{ pod: pod("t1", { deleting: true }) }],
      creates: [],
      blocked: [1],
    },
    {
      name: "a pod whose agent container terminated is not capacity",
      templates: [tpl({}, 0, 1)],
      jobs: [queued(1)],
      pods: [{ pod: pod("f1", { agentContainer: "terminated" }), agent: agent("f1", { status: "offline" }) }],
      creates: [[0, null, [1], "pending-job"]],
    },
    {
      name: "a run-once agent that completed its job is not capacity",
      templates: [tpl({}, 0, 2)],
      jobs: [queued(1)],
      pods: [{ pod: pod("f1"), agent: agent("f1", { lastCompletedRequestFinishMs: NOW - 1000 }) }],
      creates: [[0, null, [1], "pending-job"]],
    },
    {
      name: "jobs go to their best-fit template",
      templates: [tpl({ buildkit: "1", kubectl: "1" }, 0, 5), tpl({ buildkit: "1" }, 0, 5), tpl({}, 0, 5)],
      jobs: [queued(1, ["buildkit"]), queued(2, ["kubectl"]), queued(3), queued(4, ["docker"])],
      creates: [
        [0, null, [2], "pending-job"],
        [1, null, [1], "pending-job"],
        [2, null, [3], "pending-job"],
      ],
    },
    {
      name: "an idle pod of another template does not cover the job",
      templates: [tpl({ a: "1" }, 0, 5), tpl({ a: "1", b: "1" }, 0, 5)],
      jobs: [queued(1, ["a"])],
      pods: [idlePod("x", { templateIndex: 1 })],
      creates: [[0, null, [1], "pending-job"]],
    },
    {
      name: "ExtraAgentContainers values need separate pods",
      templates: [tpl({ buildkit: "1" }, 0, 10)],
      jobs: [
        queued(1, ["buildkit", "ExtraAgentContainers -equals name=a,image=x"]),
        queued(2, ["buildkit", "ExtraAgentContainers -equals name=b,image=y"]),
        queued(3, ["buildkit"]),
        queued(4, ["buildkit", "ExtraAgentContainers -equals name=a,image=x"]),
      ],
      pods: [
        { pod: pod("pa", { extraAgentContainers: "name=a,image=x", createdForRequestIds: [1] }) },
        idlePod("plain"),
      ],
      creates: [
        [0, "name=b,image=y", [2], "pending-job"],
        [0, "name=a,image=x", [4], "pending-job"],
      ],
    },
    {
      name: "an idle plain pod does not cover a job with ExtraAgentContainers",
      templates: [tpl({}, 1, 5)],
      jobs: [queued(1, ["ExtraAgentContainers -equals c,img:1"])],
      pods: [idlePod("warm")],
      creates: [[0, "c,img:1", [1], "pending-job"]],
    },
    {
      name: "pods of a removed template are not capacity of any template",
      templates: [tpl({}, 0, 5)],
      jobs: [queued(1)],
      pods: [idlePod("old", { templateIndex: 3 })],
      creates: [[0, null, [1], "pending-job"]],
    },
    {
      name: "queue order decides which jobs get the last slots",
      templates: [tpl({}, 0, 2)],
      jobs: [queued(5, [], 50), queued(6, [], 10), queued(7, [], 30)],
      creates: [
        [0, null, [6], "pending-job"],
        [0, null, [7], "pending-job"],
      ],
      blocked: [5],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = plan({ templates: c.templates, jobRequests: c.jobs ?? [], ...withPods(c.pods ?? []) });
      assert.deepEqual(createsSummary(p), c.creates);
      assert.deepEqual(
        p.blockedJobs.map((b) => b.requestId),
        c.blocked ?? [],
      );
      assert.equal(p.removals.length, 0, "scale-up cases remove nothing");
    });
  }

  test("a create carries the agent's capabilities, with ExtraAgentContainers added", () => {
    const p = plan({
      templates: [tpl({ buildkit: "1" }, 0, 5)],
      jobRequests: [queued(1, ["buildkit", "ExtraAgentContainers -equals c,img:1,250m,64Mi"])],
    });
    assert.deepEqual(p.creates[0]?.agentCapabilities, { buildkit: "1", ExtraAgentContainers: "c,img:1,250m,64Mi" });
    assert.match(p.creates[0]?.message ?? "", /job 1/);
  });

  test("the blocked message names maxCount", () => {
    const p = plan({ templates: [tpl({}, 0, 0)], jobRequests: [queued(1)] });
    assert.match(p.blockedJobs[0]?.message ?? "", /maxCount 0/);
  });

  test("a refused ExtraAgentContainers job is reported and gets no pod", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [queued(1, ["ExtraAgentContainers -equals nope"]), queued(2)],
      checkExtraAgentContainers: (v) => (v === "nope" ? "missing image" : undefined),
    });
    assert.deepEqual(createsSummary(p), [[0, null, [2], "pending-job"]]);
    assert.deepEqual(
      p.unmatchedJobs.map((u) => [u.requestId, u.reason]),
      [[1, "extra-agent-containers-refused"]],
    );
  });

  test("jobs matching no template are reported, others still planned", () => {
    const p = plan({ templates: [tpl({ a: "1" }, 0, 5)], jobRequests: [queued(1, ["b"]), queued(2, ["a"])] });
    assert.deepEqual(
      p.unmatchedJobs.map((u) => [u.requestId, u.reason]),
      [[1, "no-matching-template"]],
    );
    assert.deepEqual(createsSummary(p), [[0, null, [2], "pending-job"]]);
  });

  test("no double creation across reconciles: applying the plan converges", () => {
    const templates = [tpl({ x: "1" }, 1, 4), tpl({}, 0, 2)];
    const jobs = [queued(1, ["x"]), queued(2, ["x"]), queued(3), queued(4), queued(5), queued(6, ["x"])];
    let pods: ObservedPod[] = [];
    const history: number[] = [];
    for (let round = 0; round < 4; round++) {
      const p = plan({ templates, jobRequests: jobs, pods });
      history.push(p.creates.length);
      pods = [
        ...pods,
        ...p.creates.map((c, i) =>
          pod(`r${round}-${i}`, {
            templateIndex: c.templateIndex,
            createdForRequestIds: c.forRequestIds,
            scheduled: false,
            phase: "Pending",
          }),
        ),
      ];
    }
    assert.deepEqual(history, [5, 0, 0, 0]);
    assert.equal(pods.filter((p) => p.templateIndex === 0).length, 3);
    assert.equal(pods.filter((p) => p.templateIndex === 1).length, 2);
  });
});

describe("scale down", () => {
  test("minCount reduced: idle pods are only marked at first", () => {
    const p = plan({
      templates: [tpl({}, 1, 999)],
      ...withPods([idlePod("a"), idlePod("b"), idlePod("c")]),
    });
    assert.equal(p.removals.length, 0);
    assert.deepEqual(
      p.idleMarks.map((m) => [m.podName, m.action, m.atMs]),
      [
        ["a", "set", NOW],
        ["b", "set", NOW],
        ["c", "set", NOW],
      ],
    );
    assert.equal(p.templates[0]?.desired, 1);
  });

  for (const [label, markedAgo, removed] of [
    ["not idle long enough", IDLE - 1, 0],
    ["idle exactly long enough", IDLE, 2],
    ["idle longer", 3 * IDLE, 2],
  ] as const) {
    test(`minCount reduced, marked and ${label}`, () => {
      const p = plan({
        templates: [tpl({}, 1, 999)],
        ...withPods(["a", "b", "c"].map((n) => idlePod(n, { idleMarkedAtMs: NOW - markedAgo }))),
      });
      assert.equal(p.removals.length, removed);
      for (const r of p.removals) {
        assert.equal(r.reason, "idle");
        assert.equal(r.agentId, agentId(r.podName), "delete the agent registration first");
      }
      assert.deepEqual(p.idleMarks, [], "existing marks are kept as they are");
    });
  }

  test("a shorter idle period removes sooner", () => {
    const pods = withPods(["a", "b"].map((n) => idlePod(n, { idleMarkedAtMs: NOW - 10_000 })));
    assert.equal(plan({ templates: [tpl({}, 0, 9)], ...pods, agentMinIdlePeriodMs: 10_000 }).removals.length, 2);
    assert.equal(plan({ templates: [tpl({}, 0, 9)], ...pods, agentMinIdlePeriodMs: IDLE }).removals.length, 0);
  });

  test("the longest idle pod goes first", () => {
    const p = plan({
      templates: [tpl({}, 2, 9)],
      ...withPods([
        idlePod("young", { idleMarkedAtMs: NOW - IDLE }),
        idlePod("old", { idleMarkedAtMs: NOW - 2 * IDLE }),
        idlePod("mid", { idleMarkedAtMs: NOW - 1.5 * IDLE }),
      ]),
    });
    assert.deepEqual(
      p.removals.map((r) => r.podName),
      ["old"],
    );
  });

  test("agent idle evidence newer than the mark restarts the clock", () => {
    const p = plan({
      templates: [tpl({}, 0, 9)],
      ...withPods([idlePod("a", { idleMarkedAtMs: NOW - 2 * IDLE }, { idleSinceMs: NOW - 1000 })]),
    });
    assert.equal(p.removals.length, 0);
  });

  test("agentMinIdlePeriod 0 removes an unmarked idle pod at once", () => {
    const p = plan({ templates: [tpl({}, 0, 9)], ...withPods([idlePod("a")]), agentMinIdlePeriodMs: 0 });
    assert.deepEqual(
      p.removals.map((r) => [r.podName, r.reason]),
      [["a", "idle"]],
    );
  });

  test("a busy pod is never removed, even above maxCount after maxCount was edited down", () => {
    const p = plan({
      templates: [tpl({}, 0, 1)],
      jobRequests: [running(1, "b1"), running(2, "b2")],
      ...withPods([
        { pod: pod("b1", { idleMarkedAtMs: NOW - 10 * IDLE }), agent: agent("b1") },
        { pod: pod("b2"), agent: agent("b2", { busy: true }) },
        { pod: pod("b3"), agent: agent("b3", { busy: true }) },
        idlePod("i1", { idleMarkedAtMs: NOW - 10 * IDLE }),
      ]),
    });
    assert.deepEqual(
      p.removals.map((r) => r.podName),
      ["i1"],
    );
    assert.deepEqual(
      p.idleMarks.map((m) => [m.podName, m.action]),
      [["b1", "clear"]],
      "a busy pod loses its idle mark",
    );
    assert.equal(p.podStates.get("b1"), "busy");
    assert.equal(p.creates.length, 0);
  });

  test("above maxCount, even a pod expected to take a job goes (after its idle period)", () => {
    const p = plan({
      templates: [tpl({}, 0, 1)],
      jobRequests: [queued(1), queued(2)],
      ...withPods([idlePod("i1", { idleMarkedAtMs: NOW - IDLE }), idlePod("i2", { idleMarkedAtMs: NOW - 2 * IDLE })]),
    });
    assert.deepEqual(
      p.removals.map((r) => r.podName),
      ["i2"],
    );
  });

  test("pods never scheduled go at once when not needed (job cancelled while unschedulable)", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [{ ...queued(1), result: "canceled", finishTime: new Date(NOW).toISOString() }],
      pods: [pod("u1", { scheduled: false, phase: "Pending", createdForRequestIds: [1], agentContainer: "unknown" })],
    });
    assert.deepEqual(
      p.removals.map((r) => [r.podName, r.reason, r.agentId]),
      [["u1", "unscheduled", null]],
    );
    assert.deepEqual(p.idleMarks, []);
  });

  test("an unscheduled pod still expected by a pending job stays", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [queued(1)],
      pods: [pod("u1", { scheduled: false, phase: "Pending", createdForRequestIds: [1] })],
    });
    assert.deepEqual(p.removals, []);
  });

  test("an unscheduled pod keeps the job it was created for; the other unscheduled one goes", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [queued(1), { ...queued(2), result: "canceled", finishTime: new Date(NOW).toISOString() }],
      pods: [
        pod("u-for-2", { scheduled: false, createdForRequestIds: [2], createdAtMs: NOW - 20_000 }),
        pod("u-for-1", { scheduled: false, createdForRequestIds: [1], createdAtMs: NOW - 10_000 }),
      ],
    });
    assert.deepEqual(
      p.removals.map((r) => r.podName),
      ["u-for-2"],
    );
  });

  test("an idle agent takes the job first; the unscheduled pod made for it goes", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [queued(1)],
      ...withPods([idlePod("i1"), { pod: pod("u1", { scheduled: false, createdForRequestIds: [1] }) }]),
    });
    assert.deepEqual(
      p.removals.map((r) => [r.podName, r.reason]),
      [["u1", "unscheduled"]],
    );
    assert.deepEqual(p.idleMarks, []);
    assert.equal(p.creates.length, 0);
  });

  test("unscheduled pods go before idle ones", () => {
    const p = plan({
      templates: [tpl({}, 1, 5)],
      ...withPods([idlePod("i1", { idleMarkedAtMs: NOW - IDLE }), { pod: pod("u1", { scheduled: false }) }]),
    });
    assert.deepEqual(
      p.removals.map((r) => r.podName),
      ["u1"],
    );
    assert.deepEqual(
      p.idleMarks.map((m) => [m.podName, m.action]),
      [["i1", "clear"]],
    );
  });

  test("a starting pod (scheduled, agent not online yet) is not removed", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      ...withPods([{ pod: pod("s1") }, { pod: pod("s2"), agent: agent("s2", { status: "offline" }) }]),
    });
    assert.deepEqual(p.removals, []);
    assert.equal(p.podStates.get("s1"), "starting");
    assert.equal(p.podStates.get("s2"), "starting");
  });

  test("job cancelled before it started: the idle pod waits the idle period like any other", () => {
    const cancelled = { ...queued(1), result: "canceled", finishTime: new Date(NOW).toISOString() };
    const first = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [cancelled],
      ...withPods([idlePod("p1", { createdForRequestIds: [1] })]),
    });
    assert.deepEqual(first.removals, []);
    assert.deepEqual(
      first.idleMarks.map((m) => m.podName),
      ["p1"],
    );
    const later = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [cancelled],
      now: NOW + IDLE,
      ...withPods([idlePod("p1", { createdForRequestIds: [1], idleMarkedAtMs: NOW })]),
    });
    assert.deepEqual(
      later.removals.map((r) => r.podName),
      ["p1"],
    );
  });

  test("job cancelled while running: the pod finishes on its own, nothing removed or re-created", () => {
    const cancelled: JobRequest = {
      ...running(1, "p1"),
      result: "canceled",
      finishTime: new Date(NOW - 1000).toISOString(),
    };
    const whileAgentExits = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [cancelled],
      ...withPods([{ pod: pod("p1"), agent: agent("p1", { lastCompletedRequestFinishMs: NOW - 1000 }) }]),
    });
    assert.equal(whileAgentExits.podStates.get("p1"), "finishing");
    assert.deepEqual([whileAgentExits.removals, whileAgentExits.creates, whileAgentExits.idleMarks], [[], [], []]);
    const exited = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [cancelled],
      pods: [
        pod("p1", {
          agentContainer: "terminated",
          otherContainers: [{ name: "buildkit", state: "running", nativeSidecar: false }],
        }),
      ],
    });
    assert.deepEqual(exited.stopSidecars, [{ podName: "p1", containers: ["buildkit"] }]);
    assert.deepEqual([exited.removals, exited.creates], [[], []]);
  });

  test("a marked pod that is needed again loses its mark", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [queued(1)],
      ...withPods([idlePod("a", { idleMarkedAtMs: NOW - 2 * IDLE })]),
    });
    assert.deepEqual(p.removals, []);
    assert.deepEqual(
      p.idleMarks.map((m) => [m.podName, m.action, m.atMs]),
      [["a", "clear", null]],
    );
  });

  test("at maxCount, an idle pod of the wrong ExtraAgentContainers group makes room after its idle period", () => {
    const jobs = [queued(1, ["ExtraAgentContainers -equals c,img"])];
    const early = plan({ templates: [tpl({}, 0, 1)], jobRequests: jobs, ...withPods([idlePod("plain")]) });
    assert.deepEqual(early.removals, []);
    assert.deepEqual(
      early.blockedJobs.map((b) => b.requestId),
      [1],
    );
    assert.deepEqual(
      early.idleMarks.map((m) => [m.podName, m.action]),
      [["plain", "set"]],
    );
    const late = plan({
      templates: [tpl({}, 0, 1)],
      jobRequests: jobs,
      ...withPods([idlePod("plain", { idleMarkedAtMs: NOW - IDLE })]),
    });
    assert.deepEqual(
      late.removals.map((r) => r.podName),
      ["plain"],
    );
    assert.match(late.removals[0]?.message ?? "", /room/);
  });

  test("pods of a template removed from the resource: unscheduled at once, idle after the period, busy kept", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      jobRequests: [running(1, "ob")],
      ...withPods([
        { pod: pod("ou", { templateIndex: null, scheduled: false }) },
        idlePod("oi", { templateIndex: 7, idleMarkedAtMs: NOW - IDLE }),
        idlePod("oj", { templateIndex: null }),
        { pod: pod("ob", { templateIndex: null }), agent: agent("ob") },
      ]),
    });
    assert.deepEqual(
      p.removals.map((r) => [r.podName, r.templateIndex, r.reason]),
      [
        ["ou", null, "unscheduled"],
        ["oi", null, "idle"],
      ],
    );
    assert.deepEqual(
      p.idleMarks.map((m) => [m.podName, m.action]),
      [["oj", "set"]],
    );
    assert.equal(p.orphaned.busy, 1);
  });
});

describe("pod classification", () => {
  const none = reservations([]);
  const cases: [string, Partial<ObservedPod>, Partial<ObservedAgent> | undefined, string][] = [
    ["succeeded", { phase: "Succeeded", agentContainer: "terminated" }, {}, "finished"],
    ["failed", { phase: "Failed" }, undefined, "finished"],
    ["deleting", { deleting: true }, { busy: true }, "terminating"],
    ["node lost", { phase: "Unknown" }, {}, "lost"],
    ["agent container terminated", { agentContainer: "terminated" }, { busy: true }, "finishing"],
    ["busy", {}, { busy: true }, "busy"],
    ["unscheduled", { scheduled: false, phase: "Pending" }, undefined, "unscheduled"],
    ["scheduled, no agent yet", { phase: "Pending" }, undefined, "starting"],
    ["agent offline", {}, { status: "offline" }, "starting"],
    ["agent online", {}, {}, "idle"],
    ["completed a job (run once)", {}, { lastCompletedRequestFinishMs: 1 }, "finishing"],
  ];
  for (const [label, p, a, want] of cases) {
    test(label, () => {
      assert.equal(classifyPod(pod("x", p), a === undefined ? undefined : agent("x", a), none), want);
    });
  }

  test("a job request reserving the agent makes it busy", () => {
    const r = reservations([running(1, "x")]);
    assert.equal(classifyPod(pod("x"), agent("x"), r), "busy");
    assert.equal(classifyPod(pod("x"), undefined, r), "busy");
  });

  test("a finished job request does not", () => {
    const r = reservations([{ ...running(1, "x"), result: "succeeded", finishTime: "2024-01-01T00:00:00Z" }]);
    assert.equal(classifyPod(pod("x"), agent("x"), r), "idle");
  });

  test("kept by list: the same list gives the same sets, a new list is read afresh", () => {
    const list = [running(1, "x")];
    assert.equal(reservations(list), reservations(list));
    const next = [running(2, "y")];
    assert.deepEqual([...reservations(next).names], ["y"]);
    assert.deepEqual([...reservations(list).names], ["x"]);
  });

  test("without run-once agents a completed agent is idle capacity", () => {
    assert.equal(classifyPod(pod("x"), agent("x", { lastCompletedRequestFinishMs: 1 }), none, false), "idle");
  });
});

describe("stopping sidecars", () => {
  const c = (name: string, state: "running" | "waiting" | "terminated", extra = {}) => ({
    name,
    state,
    nativeSidecar: false,
    ...extra,
  });
  const cases: [string, Partial<ObservedPod>, string[]][] = [
    ["agent still running", { otherContainers: [c("buildkit", "running")] }, []],
    [
      "agent terminated: running and waiting classic sidecars stop",
      {
        agentContainer: "terminated",
        otherContainers: [c("buildkit", "running"), c("db", "waiting"), c("done", "terminated")],
      },
      ["buildkit", "db"],
    ],
    [
      "native sidecars need nothing",
      { agentContainer: "terminated", otherContainers: [c("proxy", "running", { nativeSidecar: true })] },
      [],
    ],
    [
      "already asked to stop",
      { agentContainer: "terminated", otherContainers: [c("buildkit", "running", { stopRequested: true })] },
      [],
    ],
    ["no other containers", { agentContainer: "terminated" }, []],
    ["pod being deleted", { agentContainer: "terminated", deleting: true, otherContainers: [c("b", "running")] }, []],
  ];
  for (const [label, p, want] of cases) {
    test(label, () => assert.deepEqual(sidecarsToStop(pod("x", p)), want));
  }

  test("the plan lists them per pod, with an ExtraAgentContainers container like any other", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      pods: [
        pod("x", {
          agentContainer: "terminated",
          extraAgentContainers: "c,img",
          otherContainers: [c("buildkit", "running"), c("c", "running")],
        }),
      ],
    });
    assert.deepEqual(p.stopSidecars, [{ podName: "x", containers: ["buildkit", "c"] }]);
    assert.equal(p.podStates.get("x"), "finishing");
    assert.equal(p.templates[0]?.finishing, 1);
  });
});

describe("finished pods", () => {
  const finished = (name: string, startedAgoS: number | null, createdAgoS = 10_000) =>
    pod(name, {
      phase: "Succeeded",
      agentContainer: "terminated",
      startedAtMs: startedAgoS === null ? null : NOW - startedAgoS * 1000,
      createdAtMs: NOW - createdAgoS * 1000,
    });
  const pods = [finished("a", 300), finished("b", 100), finished("c", 200), finished("d", null, 50)];
  const cases: [number, string[]][] = [
    [0, ["d", "b", "c", "a"]],
    [1, ["b", "c", "a"]],
    [2, ["c", "a"]],
    [4, []],
    [5, []],
  ];
  for (const [keep, want] of cases) {
    test(`keep ${keep}`, () => {
      assert.deepEqual(
        finishedPodsToDelete(pods, keep).map((p) => p.name),
        want,
      );
    });
  }

  test("the plan deletes beyond maxTerminatedPodsToKeep, with a leftover agent registration", () => {
    const p = plan({
      templates: [tpl({}, 0, 5)],
      maxTerminatedPodsToKeep: 1,
      pods: [...pods, pod("live")],
      agents: [agent("a", { status: "offline" }), agent("live")],
    });
    assert.deepEqual(
      p.deleteFinished.map((d) => [d.podName, d.agentId]),
      [
        ["b", null],
        ["c", null],
        ["a", agentId("a")],
      ],
    );
    assert.equal(p.templates[0]?.finished, 4);
  });

  test("finished pods do not count as capacity", () => {
    const p = plan({ templates: [tpl({}, 1, 5)], pods });
    assert.equal(p.creates.length, 1);
  });
});

describe("status counts", () => {
  test("per template and for orphans", () => {
    const p = plan({
      templates: [tpl({ a: "1" }, 0, 9), tpl({}, 0, 9)],
      jobRequests: [queued(1, ["a"]), queued(2, ["a"]), queued(3), running(4, "busy")],
      ...withPods([
        { pod: pod("u", { scheduled: false }) },
        { pod: pod("s") },
        idlePod("i"),
        { pod: pod("busy"), agent: agent("busy") },
        { pod: pod("fin", { phase: "Failed" }) },
        { pod: pod("term", { deleting: true }) },
        { pod: pod("done", { agentContainer: "terminated" }) },
        idlePod("t1", { templateIndex: 1 }),
        idlePod("gone", { templateIndex: null }),
      ]),
    });
    assert.deepEqual(p.templates[0], {
      templateIndex: 0,
      pendingJobs: 2,
      desired: 3,
      starting: 2,
      unscheduled: 1,
      idle: 1,
      busy: 1,
      finishing: 1,
      terminating: 1,
      lost: 0,
      finished: 1,
    });
    assert.equal(p.templates[1]?.pendingJobs, 1);
    assert.equal(p.templates[1]?.idle, 1);
    assert.equal(p.orphaned.idle, 1);
  });
});

describe("capabilities the agent reports by itself", () => {
  const arm: TemplateSpec = {
    ...tpl({ arm: "1" }, 0, 5),
    reportedCapabilities: { arm: "1", "Agent.OS": "Linux", "Agent.OSArchitecture": "ARM64", "Agent.Name": null },
  };
  const amd: TemplateSpec = {
    ...tpl({}, 0, 5),
    reportedCapabilities: { "Agent.OS": "Linux", "Agent.OSArchitecture": "X64", "Agent.Name": null },
  };

  test("a job is planned on the template whose agents report what it demands; pods advertise the declared set", () => {
    const p = plan({
      templates: [amd, arm],
      jobRequests: [queued(1, ["Agent.OSArchitecture -equals ARM64"]), queued(2, ["Agent.OS -equals Linux"])],
    });
    assert.deepEqual(createsSummary(p), [
      [0, null, [2], "pending-job"],
      [1, null, [1], "pending-job"],
    ]);
    assert.deepEqual(p.creates[1]?.agentCapabilities, { arm: "1" }, "only declared capabilities become env vars");
    assert.deepEqual(p.unmatchedJobs, []);
  });

  test("declared capabilities the agent replaces are template problems, in resource order", () => {
    const p = plan({
      templates: [
        { ...amd, overriddenCapabilities: ["capability Agent.OS is declared ..."] },
        arm,
        { ...arm, overriddenCapabilities: ["a", "b"] },
      ],
    });
    assert.deepEqual(
      p.templateProblems.map((t) => [t.templateIndex, t.reason, t.message]),
      [
        [0, "CapabilityOverridden", "podsWithCapabilities[0].capabilities: capability Agent.OS is declared ..."],
        [2, "CapabilityOverridden", "podsWithCapabilities[2].capabilities: a"],
        [2, "CapabilityOverridden", "podsWithCapabilities[2].capabilities: b"],
      ],
    );
  });
});
