import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isPending, matchJob, matchJobs, selectPendingJobs } from "./jobs.ts";
import type { JobRequest, PendingJob, TemplateSpec } from "./types.ts";

const AGENT_VERSION = "Agent.Version -gtVersion 2.182.1";

function req(id: number, extra: Partial<JobRequest> = {}): JobRequest {
  return { requestId: id, queueTime: `2024-01-01T00:00:${String(id % 60).padStart(2, "0")}Z`, ...extra };
}

function job(id: number, demands: string[]): PendingJob {
  const p = selectPendingJobs([{ requestId: id, demands }])[0];
  if (p === undefined) throw new Error("not pending");
  return p;
}

describe("pending jobs", () => {
  const cases: [string, JobRequest, boolean][] = [
    ["queued", req(1), true],
    ["queued without demands field", { requestId: 2 }, true],
    ["assigned", req(3, { assignTime: "2024-01-01T00:01:00Z", reservedAgent: { id: 7, name: "p" } }), false],
    ["reserved without assign time", req(4, { reservedAgent: { id: 7, name: "p" } }), false],
    ["running", req(5, { assignTime: "x", receiveTime: "2024-01-01T00:02:00Z" }), false],
    ["received only", req(6, { receiveTime: "2024-01-01T00:02:00Z" }), false],
    ["finished", req(7, { result: "succeeded", finishTime: "2024-01-01T00:03:00Z" }), false],
    ["cancelled while queued", req(8, { result: "canceled", finishTime: "2024-01-01T00:03:00Z" }), false],
    ["finish time without result", req(9, { finishTime: "2024-01-01T00:03:00Z" }), false],
    ["result without finish time", req(10, { result: "abandoned" }), false],
  ];
  for (const [label, r, want] of cases) test(label, () => assert.equal(isPending(r), want));

  test("selectPendingJobs: filters, dedups, sorts by queue time then id, parses demands", () => {
    const jobs = selectPendingJobs([
      req(30, { queueTime: "2024-01-01T00:00:30.1234567Z", demands: ["kubectl", AGENT_VERSION] }),
      req(10, { queueTime: "2024-01-01T00:00:40Z" }),
      req(20, { result: "canceled", finishTime: "2024-01-01T00:01:00Z" }),
      req(5, { queueTime: undefined }),
      req(4, { queueTime: "2024-01-01T00:00:30.1234567Z", demands: ["bad demand"] }),
      req(10, { queueTime: "2024-01-01T00:00:00Z" }),
    ]);
    assert.deepEqual(
      jobs.map((j) => j.requestId),
      [4, 30, 10, 5],
    );
    const j30 = jobs.find((j) => j.requestId === 30);
    assert.deepEqual(
      j30?.demands.map((d) => d.kind),
      ["exists", "gtVersion"],
    );
    assert.equal(jobs.find((j) => j.requestId === 4)?.demandErrors.length, 1);
    assert.equal(jobs.find((j) => j.requestId === 5)?.queueTimeMs, null);
  });
});

describe("matching and best fit", () => {
  const templates: TemplateSpec[] = [
    { capabilities: { buildkit: "1", kubectl: "1" }, minCount: 0, maxCount: 5 },
    { capabilities: { buildkit: "1" }, minCount: 0, maxCount: 5 },
    { capabilities: { os: "Ubuntu 22.04 LTS", arch: "x64,arm64" }, minCount: 0, maxCount: 5 },
    { capabilities: { buildkit: "1" }, minCount: 0, maxCount: 5 }, // duplicate of 1: loses ties
    { capabilities: {}, minCount: 0, maxCount: 5 },
  ];
  const cases: [string, string[], number | string][] = [
    ["no demands: the template with fewest capabilities", [AGENT_VERSION], 4],
    ["no demands at all", [], 4],
    ["exact match preferred over superset", ["buildkit", AGENT_VERSION], 1],
    ["superset when it is the only fit", ["buildkit", "kubectl"], 0],
    ["equals with spaces", ["os -equals Ubuntu 22.04 LTS"], 2],
    ["equals with commas", ["arch -equals x64,arm64"], 2],
    ["case differences in names and values", ["OS -equals ubuntu 22.04 lts", "ARCH"], 2],
    ["exists regardless of value", ["buildkit -equals 1", "KubeCtl"], 0],
    ["no template", ["docker"], "no-matching-template"],
    ["value mismatch", ["buildkit -equals 2"], "no-matching-template"],
    ["Agent.Version ignored even when high", ["buildkit", "Agent.Version -gtVersion 99.0.0"], 1],
    ["unknown operator reported", ["buildkit -startsWith 1"], "unsupported-operator"],
    ["malformed demand reported", ["two words"], "malformed-demand"],
    ["ExtraAgentContainers exists form reported", ["ExtraAgentContainers"], "invalid-extra-agent-containers"],
    [
      "ExtraAgentContainers is not a template capability",
      ["buildkit", "ExtraAgentContainers -equals name=a,image=b"],
      1,
    ],
  ];
  for (const [label, demands, want] of cases) {
    test(label, () => {
      const m = matchJob(job(1, demands), templates);
      if (typeof want === "number") {
        assert.equal(m.kind, "matched", m.kind === "unmatched" ? m.message : "");
        if (m.kind === "matched") assert.equal(m.templateIndex, want);
      } else {
        assert.equal(m.kind, "unmatched");
        if (m.kind === "unmatched") {
          assert.equal(m.reason, want);
          assert.match(m.message, /job 1/);
        }
      }
    });
  }

  test("ExtraAgentContainers value is exposed raw", () => {
    const m = matchJob(job(1, ["ExtraAgentContainers -equals c,img:1,250m,64Mi||d,img2"]), templates);
    assert.equal(m.kind, "matched");
    if (m.kind === "matched") {
      assert.equal(m.templateIndex, 4);
      assert.equal(m.extraAgentContainers, "c,img:1,250m,64Mi||d,img2");
    }
  });

  test("a refused ExtraAgentContainers value is reported, not matched", () => {
    const m = matchJob(job(1, ["ExtraAgentContainers -equals bad"]), templates, (v) =>
      v === "bad" ? "missing image" : undefined,
    );
    assert.equal(m.kind, "unmatched");
    if (m.kind === "unmatched") {
      assert.equal(m.reason, "extra-agent-containers-refused");
      assert.match(m.message, /missing image/);
    }
  });

  test("no templates at all: everything unmatched", () => {
    const r = matchJobs([job(1, []), job(2, ["a"])], []);
    assert.equal(r.matched.length, 0);
    assert.deepEqual(
      r.unmatched.map((u) => u.reason),
      ["no-matching-template", "no-matching-template"],
    );
  });

  test("matchJobs splits and keeps order", () => {
    const r = matchJobs([job(1, ["docker"]), job(2, ["buildkit"]), job(3, [])], templates);
    assert.deepEqual(
      r.matched.map((m) => [m.job.requestId, m.templateIndex, m.extraAgentContainers]),
      [
        [2, 1, null],
        [3, 4, null],
      ],
    );
    assert.deepEqual(
      r.unmatched.map((u) => [u.requestId, u.demands]),
      [[1, ["docker"]]],
    );
  });
});
