import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { reportedCapabilities } from "./capabilities.ts";
import { isPending, matchJob, matchJobCached, matchJobs, selectPendingJobs } from "./jobs.ts";
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

describe("a waiting job from poll to poll (every poll parses new request objects)", () => {
  const first = { requestId: 901, queueTime: "2024-01-01T00:00:01Z", demands: ["docker", "Agent.OS -equals Linux"] };
  const cases: [string, JobRequest, boolean][] = [
    ["the same demands and queue time: the same parsed job", { ...first, demands: [...first.demands] }, true],
    ["a demand changed: parsed again", { ...first, demands: ["docker", "Agent.OS -equals Windows_NT"] }, false],
    ["a demand more: parsed again", { ...first, demands: [...first.demands, "gpu"] }, false],
    ["another queue time: parsed again", { ...first, queueTime: "2024-01-01T00:00:02Z" }, false],
    ["no demands any more: parsed again", { requestId: 901, queueTime: first.queueTime }, false],
  ];
  for (const [label, next, same] of cases) {
    test(label, () => {
      const [a] = selectPendingJobs([{ ...first }]);
      const [b] = selectPendingJobs([next]);
      assert.equal(a === b, same);
      // Either way, what the job says is what the newest request says.
      assert.deepEqual(b?.rawDemands, next.demands ?? []);
      assert.equal(b?.queueTimeMs, Date.parse(next.queueTime ?? ""));
    });
  }

  test("matches are kept by job, templates' array and checker", () => {
    const templates: TemplateSpec[] = [{ capabilities: { docker: "1" }, minCount: 0, maxCount: 1 }];
    const [j] = selectPendingJobs([{ requestId: 902, demands: ["docker", "ExtraAgentContainers -equals x"] }]);
    if (j === undefined) throw new Error("not pending");
    const allow = () => undefined;
    const refuse = () => "not allowed here";
    const m = matchJobCached(j, templates, allow);
    assert.equal(m.kind, "matched");
    assert.equal(matchJobCached(j, templates, allow), m);
    assert.equal(matchJobCached(j, templates, refuse).kind, "unmatched");
    const other = matchJobCached(j, [...templates], allow);
    assert.notEqual(other, m);
    assert.deepEqual(other, m);
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

describe("matching on what the agent reports by itself (contract 2)", () => {
  const entry = (capabilities: Record<string, string>, spec: Record<string, unknown> = {}): TemplateSpec => {
    const r = reportedCapabilities(capabilities, { spec: { containers: [{ name: "agent" }], ...spec } });
    return { capabilities, reportedCapabilities: r.capabilities, minCount: 0, maxCount: 5 };
  };
  const amd = { nodeSelector: { "kubernetes.io/arch": "amd64" } };
  const arm = { nodeSelector: { "kubernetes.io/arch": "arm64" } };
  const templates: TemplateSpec[] = [
    entry({ buildkit: "1" }, amd),
    entry({ buildkit: "1", arm: "1" }, arm),
    entry({}, { containers: [{ name: "agent", env: [{ name: "JAVA_HOME", value: "/opt/jdk" }] }] }),
    entry({ win: "1" }, { os: { name: "windows" }, ...amd }),
  ];
  const cases: [string, string[], number | string][] = [
    ["Agent.OS Linux: any Linux entry; best fit ignores implicit capabilities", ["Agent.OS -equals Linux"], 2],
    ["Agent.OS linux (case)", ["agent.os -equals linux", AGENT_VERSION], 2],
    ["Agent.OSArchitecture ARM64: the arm64 entry", ["Agent.OSArchitecture -equals ARM64"], 1],
    ["Agent.OSArchitecture X64 with buildkit: the amd64 entry", ["buildkit", "Agent.OSArchitecture -equals X64"], 0],
    ["X64 alone: the first X64 entry by fewest declared", ["Agent.OSArchitecture -equals X64"], 0],
    ["Windows_NT: the Windows entry", ["Agent.OS -equals Windows_NT"], 3],
    ["Windows is not what agents report", ["Agent.OS -equals Windows"], "no-matching-template"],
    ["literal env var of the agent container", ["JAVA_HOME -equals /opt/jdk"], 2],
    ["Agent.Name exists: every agent has one", ["Agent.Name"], 2],
    ["Agent.Name equals: one particular agent", ["Agent.Name -equals build-abcde"], "names-an-agent"],
    ["Agent.Version exists", ["Agent.Version"], 2],
    ["Agent.Version equals: the image decides", ["Agent.Version -equals 4.258.1"], "no-matching-template"],
    ["Agent.ComputerName: not known in advance", ["Agent.ComputerName"], "no-matching-template"],
  ];
  for (const [label, demands, want] of cases) {
    test(label, () => {
      const m = matchJob(job(7, demands), templates);
      if (typeof want === "number") {
        assert.equal(m.kind, "matched", m.kind === "unmatched" ? m.message : "");
        if (m.kind === "matched") assert.equal(m.templateIndex, want);
      } else {
        assert.equal(m.kind, "unmatched");
        if (m.kind === "unmatched") assert.equal(m.reason, want);
      }
    });
  }

  test("messages explain demands on the agent's own capabilities", () => {
    const message = (demands: string[], ts = templates) => {
      const m = matchJob(job(7, demands), ts);
      return m.kind === "unmatched" ? m.message : "";
    };
    assert.match(
      message(["buildkit", "Agent.OS -equals Windows"]),
      /no pod template has capabilities satisfying "buildkit", "Agent.OS -equals Windows" \(Agent\.OS -equals Windows: the templates' agents report Agent\.OS "Linux" or "Windows_NT"; agents on Windows report "Windows_NT"/,
    );
    assert.match(
      message(["Agent.OSArchitecture -equals ARM64"], [entry({})]),
      /Agent\.OSArchitecture a value known only once the pod runs; it is known for a template that selects one kubernetes\.io\/arch/,
    );
    assert.match(message(["Agent.Version -equals 1.0"]), /the agent image decides it/);
    assert.doesNotMatch(message(["docker"]), /\(/, "no explanation for ordinary capabilities");
    assert.match(message(["Agent.Name -equals x"]), /asks for one particular agent/);
  });

  test("without reportedCapabilities only the declared ones count (as before)", () => {
    const m = matchJob(job(7, ["Agent.OS -equals Linux"]), [{ capabilities: {}, minCount: 0, maxCount: 1 }]);
    assert.equal(m.kind, "unmatched");
  });
});
