import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assignJobs, jobsLeftTo, podStanding, type ResourceTemplates } from "./arbitration.ts";
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

/**
 * The pending jobs `self`'s plan leaves to another resource of the pool (`others`; self among them or not), the pool
 * listed as the controller lists it, by key.
 */
function jobsServedElsewhere(
  jobs: readonly JobRequest[],
  self: ResourceTemplates,
  others: readonly ResourceTemplates[],
): number[] {
  const pool = [self, ...others.filter((o) => o.key !== self.key)].sort((a, b) => (a.key < b.key ? -1 : 1));
  const mine = new Set(jobsLeftTo(jobs, assignJobs(jobs, pool), self.key).map((j) => j.requestId));
  return jobs.filter((j) => !mine.has(j.requestId)).map((j) => j.requestId);
}

describe("jobsServedElsewhere", () => {
  const a = res("ns/a", { docker: "1" });
  const b = res("ns/b", { docker: "1", gpu: "1" });
  const c = res("ns/c", { kubectl: "1" });
  const cases: [string, JobRequest[], typeof a, (typeof a)[], number[]][] = [
    ["alone: everything is mine", [job(1, ["docker"])], a, [], []],
    ["the other fits better (fewer unrequested capabilities)", [job(1, ["docker"])], b, [a, b], [1]],
    ["I fit better", [job(1, ["docker"])], a, [a, b], []],
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
    test(name, () => assert.deepEqual(jobsServedElsewhere(jobs, self, others), expected));
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
    assert.deepEqual(jobsServedElsewhere(jobs, amd, [amd, arm]), [1]);
    assert.deepEqual(jobsServedElsewhere(jobs, arm, [amd, arm]), [2]);
  });
  test("equal declared sets: implicit capabilities do not decide; exactly one of the two serves", () => {
    const jobs = [job(1, ["Agent.OS -equals Linux"])];
    const a = jobsServedElsewhere(jobs, arm, [amd, arm]).length;
    const b = jobsServedElsewhere(jobs, amd, [amd, arm]).length;
    assert.equal(a + b, 1);
  });
});

describe("assignJobs: the best resource that can serve the job now", () => {
  const docker = (key: string, more: Partial<ResourceTemplates> = {}): ResourceTemplates => ({
    ...res(key, { docker: "1" }),
    ...more,
  });
  const jobs = (n: number, demands = ["docker"]) => Array.from({ length: n }, (_, i) => job(i + 1, demands));
  const owners = (m: Map<number, string>) => [...m.values()];
  const count = (m: Map<number, string>, key: string) => owners(m).filter((k) => k === key).length;

  test("equal fits spread over the resources instead of always going to the smaller key", () => {
    const m = assignJobs(jobs(100), [docker("a/agents"), docker("b/agents")]);
    assert.equal(m.size, 100);
    assert.ok(count(m, "a/agents") > 20 && count(m, "b/agents") > 20, JSON.stringify(owners(m)));
  });

  const cases: [string, ResourceTemplates[], number, Record<string, number>][] = [
    [
      "the better fit is unavailable (credential or poll failing): the next one serves",
      [res("a/best", { docker: "1" }), res("b/next", { docker: "1", extra: "1" })].map((r, i) =>
        i === 0 ? { ...r, available: false } : r,
      ),
      3,
      { "b/next": 3 },
    ],
    [
      "the better fit is at maxCount: the next one serves what it cannot",
      [
        { ...res("a/best", { docker: "1" }), capacity: [1] },
        { ...res("b/next", { docker: "1", extra: "1" }), capacity: [5] },
      ],
      3,
      { "a/best": 1, "b/next": 2 },
    ],
    [
      "a job its pod was created for stays, and that pod holds a slot: the next job goes where there is room",
      [
        { ...res("a/best", { docker: "1" }), capacity: [1], covers: new Map([[1, 0]]) },
        { ...res("b/next", { docker: "1", extra: "1" }), capacity: [5] },
      ],
      3,
      { "a/best": 1, "b/next": 2 },
    ],
    [
      "a job covered by the worse fit stays there (no second pod for it)",
      [
        { ...res("a/best", { docker: "1" }), capacity: [5] },
        { ...res("b/next", { docker: "1", extra: "1" }), capacity: [5], covers: new Map([[1, 0]]) },
      ],
      2,
      { "b/next": 1, "a/best": 1 },
    ],
    [
      "pods of two resources hold one job: the first listed keeps it, whatever the fit",
      [
        { ...res("a/next", { docker: "1", extra: "1" }), capacity: [5], covers: new Map([[1, 0]]) },
        { ...res("b/best", { docker: "1" }), capacity: [5], covers: new Map([[1, 0]]) },
      ],
      1,
      { "a/next": 1 },
    ],
    [
      "a spare pod takes a job before a better fit without one (the service gives it to any idle agent)",
      [
        { ...res("a/best", { docker: "1" }), capacity: [5] },
        { ...res("b/next", { docker: "1", extra: "1" }), capacity: [5], spare: [1] },
      ],
      2,
      { "b/next": 1, "a/best": 1 },
    ],
    [
      "nobody has room: the best one keeps them (it reports maxCount)",
      [
        { ...res("a/best", { docker: "1" }), capacity: [0] },
        { ...res("b/next", { docker: "1", extra: "1" }), capacity: [0] },
      ],
      2,
      { "a/best": 2 },
    ],
    [
      "the better fit's policy refuses the job's ExtraAgentContainers: the next one serves",
      [
        { ...res("a/best", { docker: "1" }), checkExtraAgentContainers: () => "image not allowed" },
        res("b/next", { docker: "1", extra: "1" }),
      ],
      2,
      { "b/next": 2 },
    ],
    [
      "only unavailable resources can serve it: it stays theirs (not unmatched elsewhere)",
      [{ ...res("a/only", { docker: "1" }), available: false }, res("b/other", { kubectl: "1" })],
      1,
      { "a/only": 1 },
    ],
  ];
  for (const [name, resources, n, want] of cases) {
    test(name, () => {
      const demands = name.includes("ExtraAgentContainers")
        ? ["docker", "ExtraAgentContainers -equals name=x,image=y"]
        : ["docker"];
      const m = assignJobs(jobs(n, demands), resources);
      const got: Record<string, number> = {};
      for (const k of owners(m)) got[k] = (got[k] ?? 0) + 1;
      assert.deepEqual(got, want);
    });
  }
});

describe("jobsLeftTo: a resource's list once the pool's jobs are handed out", () => {
  const list = [job(1, ["docker"]), job(2, ["docker"]), job(3, ["nothing"]), job(4, ["docker"], { assignTime: "t" })];
  const ids = (l: readonly JobRequest[]) => l.map((j) => j.requestId);
  const cases: [string, Record<number, string>, number[], boolean][] = [
    ["every pending job is mine: the list itself", { 1: "a", 2: "a" }, [1, 2, 3, 4], true],
    ["job 2 is b's: left out", { 1: "a", 2: "b" }, [1, 3, 4], false],
    ["all are b's: what nobody can take and what is no longer pending stay", { 1: "b", 2: "b" }, [3, 4], false],
  ];
  for (const [name, owners, want, same] of cases) {
    test(name, () => {
      const got = jobsLeftTo(list, new Map(Object.entries(owners).map(([id, k]) => [Number(id), k])), "a");
      assert.deepEqual(ids(got), want);
      assert.equal(got === list, same);
    });
  }
});

describe("assignJobs from poll to poll: rankings are kept while the resources' templates and policies stay", () => {
  // The same job objects each time (as a waiting job keeps its parsed object); the field changes between calls.
  const list = [job(7001, ["docker"]), job(7002, ["docker"])];
  const a = res("ns/a", { docker: "1", extra: "1" });
  const b = res("ns/b", { docker: "1" });
  const steps: [string, ResourceTemplates[], Record<number, string>][] = [
    ["b fits better", [a, b], { 7001: "ns/b", 7002: "ns/b" }],
    ["the same resources in another order: the same answer", [b, a], { 7001: "ns/b", 7002: "ns/b" }],
    [
      "b's templates changed (it no longer offers docker): ranked again",
      [a, res("ns/b", { kubectl: "1" })],
      {
        7001: "ns/a",
        7002: "ns/a",
      },
    ],
    [
      "a's policy is a new function: ranked again, b fits better again",
      [{ ...a, checkExtraAgentContainers: () => undefined }, b],
      {
        7001: "ns/b",
        7002: "ns/b",
      },
    ],
    ["b gone", [a], { 7001: "ns/a", 7002: "ns/a" }],
  ];
  test("each step", () => {
    for (const [label, resources, want] of steps) {
      assert.deepEqual(Object.fromEntries(assignJobs(list, resources)), want, label);
    }
  });
});

describe("podStanding: what a resource's live pods hold, and which are spare", () => {
  const pod = (name: string, templateIndex: number | null, ...createdForRequestIds: number[]) => ({
    name,
    templateIndex,
    createdForRequestIds,
  });
  const queued = (id: number) => job(id, ["docker"]);
  const running = (id: number, agent: string) =>
    job(id, ["docker"], { assignTime: "t", receiveTime: "t", reservedAgent: { id: 1, name: agent } });
  const done = (id: number, agent: string) =>
    job(id, ["docker"], { ...running(id, agent), finishTime: "t", result: "succeeded" });
  const cases: [string, ReturnType<typeof pod>[], JobRequest[], [number, number][], number[]][] = [
    ["a pod made for a queued job holds it", [pod("p", 0, 1)], [queued(1)], [[1, 0]], [0, 0]],
    ["a warm pod (made for no job) is spare", [pod("p", 1)], [queued(1)], [], [0, 1]],
    ["its job was taken by another agent: spare", [pod("p", 0, 1)], [running(1, "other")], [], [1, 0]],
    [
      "it runs another job than its own: holds nothing, not spare (its own job is free again)",
      [pod("p", 0, 1)],
      [queued(1), running(2, "p")],
      [],
      [0, 0],
    ],
    ["its agent ran its job (agents run once): not spare", [pod("p", 0, 1)], [done(1, "p")], [], [0, 0]],
    ["a pod of no template counts for nothing", [pod("p", null, 1)], [queued(1)], [], [0, 0]],
  ];
  for (const [name, pods, jobs, covers, spare] of cases) {
    test(name, () => {
      const got = podStanding(pods, jobs, 2);
      assert.deepEqual([...got.covers], covers);
      assert.deepEqual(got.spare, spare);
    });
  }
});
