import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { SimAgentView, SimJobView } from "../../sim/azure-devops/views.ts";
import { labels } from "../../src/api/v1/index.ts";
import type { PodObject } from "../../src/controller/ports.ts";
import { capabilitySetKey } from "../../src/scaling/naming.ts";
import {
  deriveWorld,
  formatCapabilities,
  jobBucket,
  jobInfo,
  oneLine,
  type RawEvent,
  type RawResource,
} from "./model.ts";

const T = Date.parse("2025-01-01T12:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const KEY = capabilitySetKey({ buildkit: "1" });

function job(requestId: number, fields: Partial<SimJobView> = {}): SimJobView {
  return {
    requestId,
    poolId: 10,
    poolName: "sim-pool",
    state: "queued",
    demands: ["buildkit"],
    queueTime: iso(T + requestId * 1000),
    cancelRequested: false,
    durationMs: 5000,
    startDelayMs: 0,
    finishDelayMs: 0,
    outcome: "succeeded",
    jobName: "job",
    ...fields,
  };
}

function agent(id: number, name: string, fields: Partial<SimAgentView> = {}): SimAgentView {
  return {
    id,
    poolId: 10,
    poolName: "sim-pool",
    name,
    status: "online",
    enabled: true,
    capabilities: { buildkit: "1" },
    createdOn: iso(T),
    statusChangedOn: iso(T),
    hasPublicKey: true,
    ...fields,
  };
}

interface PodFields {
  node?: boolean;
  phase?: string;
  agentState?: "waiting" | "running" | "terminated";
  deleting?: boolean;
  template?: string;
  createdAt?: number;
}

function pod(name: string, f: PodFields = {}): PodObject {
  return {
    metadata: {
      name,
      creationTimestamp: iso(f.createdAt ?? T),
      ...(f.deleting ? { deletionTimestamp: iso(T + 1) } : {}),
      labels: { [labels.template]: f.template ?? KEY },
    },
    spec: {
      ...(f.node === false ? {} : { nodeName: "sim-node-1" }),
      containers: [{ name: "azure-pipelines-agent" }, { name: "buildkit" }],
    },
    status: {
      phase: f.phase ?? "Running",
      containerStatuses: [{ name: "azure-pipelines-agent", state: { [f.agentState ?? "running"]: {} } }],
    },
  };
}

const resource: RawResource = {
  spec: { podsWithCapabilities: [{ capabilities: { buildkit: "1" }, minCount: 1, maxCount: 3 }] },
  status: {
    templates: [{ index: 0, pendingJobs: 2, pods: { starting: 0, idle: 0, busy: 0, finished: 0 } }],
    conditions: [
      {
        type: "Degraded",
        status: "True",
        reason: "PodStuck",
        message: "pod x:\n  ImagePullBackOff",
        lastTransitionTime: iso(T),
      },
    ],
  },
};

describe("jobBucket", () => {
  const cases: [Pick<SimJobView, "state" | "result">, string][] = [
    [{ state: "queued" }, "queued"],
    [{ state: "assigned" }, "running"],
    [{ state: "running" }, "running"],
    [{ state: "finished", result: "succeeded" }, "succeeded"],
    [{ state: "finished", result: "succeededWithIssues" }, "succeeded"],
    [{ state: "finished", result: "failed" }, "failed"],
    [{ state: "finished", result: "abandoned" }, "failed"],
    [{ state: "finished", result: "canceled" }, "canceled"],
  ];
  for (const [j, bucket] of cases)
    test(`${j.state} ${j.result ?? ""} -> ${bucket}`, () => assert.equal(jobBucket(j), bucket));
});

describe("jobInfo", () => {
  test("started is the receive time, else the assign time; a job back in the queue has not started", () => {
    assert.deepEqual(
      jobInfo(
        job(1, {
          state: "finished",
          result: "succeeded",
          assignTime: iso(T + 2000),
          receiveTime: iso(T + 2500),
          finishTime: iso(T + 7500),
          reservedAgent: { id: 4, name: "p1" },
        }),
      ),
      { id: 1, bucket: "succeeded", queuedAt: T + 1000, startedAt: T + 2500, finishedAt: T + 7500, agent: "p1" },
    );
    assert.equal(jobInfo(job(2, { state: "assigned", assignTime: iso(T + 3000) })).startedAt, T + 3000);
    assert.equal(jobInfo(job(3, { state: "queued", assignTime: iso(T + 3500) })).startedAt, undefined);
    assert.equal(
      jobInfo(job(4, { state: "finished", result: "failed", statusMessage: "No agent\r\nfound" })).message,
      "No agent found",
    );
  });
});

describe("deriveWorld", () => {
  test("pod states as the operator reads them", () => {
    const jobs = [
      job(1, { state: "running", reservedAgent: { id: 2, name: "busy" }, receiveTime: iso(T + 2000) }),
      job(2, { state: "finished", result: "succeeded", finishTime: iso(T + 9000) }),
    ];
    const agents = [
      agent(1, "idle"),
      agent(2, "busy", { assignedRequestId: 1 }),
      agent(3, "done", { lastCompletedRequestId: 2 }),
      agent(4, "offline", { status: "offline" }),
    ];
    const pods = [
      pod("unscheduled", { node: false, phase: "Pending", createdAt: T + 1 }),
      pod("offline", { createdAt: T + 2 }),
      pod("idle", { createdAt: T + 3 }),
      pod("busy", { createdAt: T + 4 }),
      pod("done", { createdAt: T + 5 }),
      pod("exited", { agentState: "terminated", createdAt: T + 6 }),
      pod("deleting", { deleting: true, createdAt: T + 7 }),
      pod("finished", { phase: "Succeeded", agentState: "terminated", createdAt: T + 8 }),
      pod("lost", { phase: "Unknown", createdAt: T + 9 }),
      pod("other-template", { template: "0000000000000000", createdAt: T + 10 }),
    ];
    const w = deriveWorld({ resource, pods, jobs, agents }, { since: T });
    assert.deepEqual(
      w.pods.map((p) => [p.name, p.state, p.template]),
      [
        ["unscheduled", "starting", 0],
        ["offline", "starting", 0],
        ["idle", "idle", 0],
        ["busy", "busy", 0],
        ["done", "finishing", 0],
        ["exited", "finishing", 0],
        ["deleting", "finishing", 0],
        ["finished", "finished", 0],
        ["lost", "lost", 0],
        ["other-template", "starting", null],
      ],
    );
    assert.equal(w.pods[0]?.createdAt, T + 1);
  });

  test("templates from the spec with pending jobs from the status; conditions on one line", () => {
    const w = deriveWorld({ resource }, { since: T });
    assert.deepEqual(w.templates, [{ index: 0, capabilities: "buildkit=1", minCount: 1, maxCount: 3, pendingJobs: 2 }]);
    assert.deepEqual(w.conditions, [
      { type: "Degraded", status: "True", reason: "PodStuck", message: "pod x: ImagePullBackOff" },
    ]);
  });

  test("jobs of this run only, by id", () => {
    const jobs = [job(3), job(-2), job(1)];
    assert.deepEqual(
      deriveWorld({ jobs }, { since: T }).jobs.map((j) => j.id),
      [1, 3],
    );
  });

  test("placeholders: the pool's dummy agents, without the version capability", () => {
    const agents = [
      agent(9, "dummy-agent-0123456789abcdef", {
        status: "offline",
        capabilities: { buildkit: "1", "Agent.Version": "99.999.9" },
      }),
      agent(8, "dummy-agent", { status: "offline", capabilities: {} }),
      agent(1, "autoscaledagent-sample-aaaaa"),
    ];
    assert.deepEqual(deriveWorld({ agents }, { since: T }).placeholders, [
      { name: "dummy-agent", status: "offline", capabilities: "(no capabilities)" },
      { name: "dummy-agent-0123456789abcdef", status: "offline", capabilities: "buildkit=1" },
    ]);
  });

  test("events: since the start, newest first, with their object and count", () => {
    const events: RawEvent[] = [
      {
        metadata: { uid: "u1" },
        eventTime: iso(T + 1000),
        type: "Normal",
        reason: "PodCreated",
        note: "created pod p for job 1",
        regarding: { kind: "AutoScaledAgent", name: "autoscaledagent-sample" },
        reportingController: "azurepipelines.k8s.scaler.io/operator",
      },
      {
        metadata: { uid: "u2" },
        eventTime: iso(T + 500),
        series: { count: 4, lastObservedTime: iso(T + 3000) },
        type: "Warning",
        reason: "PodStuck",
        note: "\u001b[31mpull\u001b[0m failed",
        regarding: { kind: "Pod", name: "p" },
      },
      {
        metadata: { uid: "u3", creationTimestamp: iso(T + 2000) },
        deprecatedLastTimestamp: iso(T + 2000),
        deprecatedCount: 2,
        reason: "Scheduled",
        note: "assigned",
        regarding: { kind: "Pod", name: "p" },
      },
      { metadata: { uid: "old" }, eventTime: iso(T - 1), reason: "Old", regarding: { kind: "Pod", name: "q" } },
    ];
    assert.deepEqual(deriveWorld({ events }, { since: T }).events, [
      {
        key: "u2",
        time: T + 3000,
        type: "Warning",
        reason: "PodStuck",
        object: "pod/p",
        note: "[31mpull [0m failed",
        count: 4,
        byOperator: false,
      },
      {
        key: "u3",
        time: T + 2000,
        type: "Normal",
        reason: "Scheduled",
        object: "pod/p",
        note: "assigned",
        count: 2,
        byOperator: false,
      },
      {
        key: "u1",
        time: T + 1000,
        type: "Normal",
        reason: "PodCreated",
        object: "autoscaledagent/autoscaledagent-sample",
        note: "created pod p for job 1",
        count: 1,
        byOperator: true,
      },
    ]);
  });

  test("nothing read", () => {
    assert.deepEqual(deriveWorld({}, { since: T }), {
      jobs: [],
      pods: [],
      templates: [],
      placeholders: [],
      events: [],
      conditions: [],
    });
  });
});

describe("text", () => {
  test("formatCapabilities sorts by name", () => {
    assert.equal(formatCapabilities({ b: "2", a: "1" }), "a=1,b=2");
    assert.equal(formatCapabilities(undefined), "(no capabilities)");
  });
  test("oneLine drops control characters and folds white space", () => {
    assert.equal(oneLine(" a\u001b[2J\tb\n\nc \u0007"), "a [2J b c");
  });
});
