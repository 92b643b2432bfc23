import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { jobsServedElsewhere } from "./arbitration.ts";
import type { JobRequest } from "./types.ts";

const job = (requestId: number, demands: string[], extra: Partial<JobRequest> = {}): JobRequest => ({
  requestId,
  queueTime: "2026-01-01T00:00:00Z",
  demands,
  ...extra,
});
const res = (key: string, ...caps: Record<string, string>[]) => ({
  key,
  templates: caps.map((capabilities) => ({ capabilities, minCount: 0, maxCount: 5 })),
});

describe("jobsServedElsewhere", () => {
  const a = res("ns/a", { docker: "1" });
  const b = res("ns/b", { docker: "1", gpu: "1" });
  const c = res("ns/c", { kubectl: "1" });
  const cases: [string, JobRequest[], typeof a, (typeof a)[], number[]][] = [
    ["alone: everything is mine", [job(1, ["docker"])], a, [], []],
    ["the other fits better (fewer unrequested capabilities)", [job(1, ["docker"])], b, [a, b], [1]],
    ["I fit better", [job(1, ["docker"])], a, [a, b], []],
    ["equal fit: the smaller key serves", [job(1, ["docker"])], res("ns/z", { docker: "1" }), [a], [1]],
    ["only the other can serve it (not reported as unmatched here)", [job(1, ["kubectl"])], a, [c], [1]],
    ["nobody can serve it: stays mine (reported)", [job(1, ["nothing"])], a, [c], []],
    [
      "assigned jobs are not arbitrated",
      [job(1, ["docker"], { assignTime: "t", reservedAgent: { id: 1, name: "x" } })],
      b,
      [a],
      [],
    ],
    ["Agent.Version demands ignored", [job(1, ["docker", "Agent.Version -gtVersion 2.1"])], b, [a], [1]],
  ];
  for (const [name, jobs, self, others, expected] of cases) {
    test(name, () => assert.deepEqual([...jobsServedElsewhere(jobs, self, others)], expected));
  }
});

describe("jobsServedElsewhere with what the agents report by itself", () => {
  const reporting = (key: string, arch: string) => ({
    key,
    templates: [
      {
        capabilities: {},
        reportedCapabilities: { "Agent.OS": "Linux", "Agent.OSArchitecture": arch },
        minCount: 0,
        maxCount: 5,
      },
    ],
  });
  const amd = reporting("ns/a", "X64");
  const arm = reporting("ns/b", "ARM64");
  test("only the resource whose agents report the demanded architecture serves the job", () => {
    const jobs = [job(1, ["Agent.OSArchitecture -equals ARM64"]), job(2, ["Agent.OSArchitecture -equals X64"])];
    assert.deepEqual([...jobsServedElsewhere(jobs, amd, [amd, arm])], [1]);
    assert.deepEqual([...jobsServedElsewhere(jobs, arm, [amd, arm])], [2]);
  });
  test("equal declared sets: implicit capabilities do not decide, the smaller key does", () => {
    const jobs = [job(1, ["Agent.OS -equals Linux"])];
    assert.deepEqual([...jobsServedElsewhere(jobs, arm, [amd, arm])], [1]);
    assert.deepEqual([...jobsServedElsewhere(jobs, amd, [amd, arm])], []);
  });
});
