import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decideFaults, validateFaultRule } from "../../sim/azure-devops/faults.ts";
import { mulberry32, rng } from "./prng.ts";
import {
  adoFaultRules,
  availableAt,
  type ChaosEvent,
  chaosWorld,
  generateSchedule,
  presenceOf,
  scheduleOptions,
  summarizeSchedule,
  templateFits,
  templateOf,
} from "./schedule.ts";

describe("prng", () => {
  test("the same seed gives the same sequence; another seed another", () => {
    const a = mulberry32(7);
    const b = mulberry32(7);
    const c = mulberry32(8);
    const sa = Array.from({ length: 5 }, a);
    assert.deepEqual(sa, Array.from({ length: 5 }, b));
    assert.notDeepEqual(sa, Array.from({ length: 5 }, c));
    for (const x of sa) assert.ok(x >= 0 && x < 1);
  });

  test("int stays within its bounds; weighted never picks a zero weight", () => {
    const r = rng(1);
    for (let i = 0; i < 1000; i++) {
      const n = r.int(3, 5);
      assert.ok(n >= 3 && n <= 5 && Number.isInteger(n));
      assert.equal(
        r.weighted([
          { item: "a", weight: 0 },
          { item: "b", weight: 1 },
        ]),
        "b",
      );
    }
    assert.equal(r.weighted([{ item: "a", weight: 0 }]), undefined);
  });
});

describe("presenceOf and availableAt", () => {
  const o = { settleMs: 10, drainBeforeRemovalMs: 20 };
  const cases: { name: string; events: ChaosEvent[]; checks: [string, string, number, boolean][] }[] = [
    {
      name: "base templates are there from the start and stay",
      events: [],
      checks: [
        ["alpha", "default", 0, true],
        ["gamma", "arm", 1e9, true],
        ["beta", "extra", 50, false],
      ],
    },
    {
      name: "a template removed and added back: no jobs while absent nor before it settles",
      events: [
        { kind: "remove-template", at: 100, resource: "gamma", template: "arm" },
        { kind: "add-template", at: 200, resource: "gamma", template: "arm" },
      ],
      checks: [
        ["gamma", "arm", 99, true],
        ["gamma", "arm", 100, false],
        ["gamma", "arm", 205, false],
        ["gamma", "arm", 210, true],
        ["gamma", "default", 150, true],
      ],
    },
    {
      name: "a temporary template: settles after its addition, no jobs shortly before its removal",
      events: [
        { kind: "add-template", at: 100, resource: "beta", template: "extra" },
        { kind: "remove-template", at: 200, resource: "beta", template: "extra" },
      ],
      checks: [
        ["beta", "extra", 105, false],
        ["beta", "extra", 150, true],
        ["beta", "extra", 185, false],
        ["beta", "extra", 250, false],
      ],
    },
    {
      name: "a deleted resource: nothing until it is created again and has settled",
      events: [
        { kind: "delete-resource", at: 100, resource: "beta" },
        { kind: "create-resource", at: 150, resource: "beta" },
      ],
      checks: [
        ["beta", "default", 99, true],
        ["beta", "default", 120, false],
        ["beta", "default", 155, false],
        ["beta", "default", 160, true],
        ["alpha", "default", 120, true],
      ],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const presence = presenceOf(chaosWorld, c.events);
      for (const [resource, template, t, expected] of c.checks) {
        const base = chaosWorld.find((r) => r.name === resource)?.templates.some((x) => x.id === template) ?? false;
        assert.equal(
          availableAt(presence, resource, template, t, o, base),
          expected,
          `${resource}/${template} at ${t}`,
        );
      }
    });
  }
});

describe("generateSchedule", () => {
  test("is reproducible from its seed", () => {
    const a = generateSchedule(scheduleOptions(42, true));
    const b = generateSchedule(scheduleOptions(42, true));
    const c = generateSchedule(scheduleOptions(43, true));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.jobs, c.jobs);
  });

  for (const quick of [true, false]) {
    test(`${quick ? "quick" : "full"}: the jobs asked for, every disturbance, every job for a template available then`, () => {
      const s = generateSchedule(scheduleOptions(7, quick));
      const o = s.options;
      assert.equal(s.jobs.length, quick ? 80 : 520);
      const kinds = new Set(s.events.map((e) => (e.kind === "ado-fault" ? `ado-fault:${e.fault}` : e.kind)));
      for (const k of [
        "leader-kill",
        "leader-rolling-update",
        "apiserver-restart",
        "watch-stall",
        "ado-fault:errors",
        "ado-fault:drops",
        "ado-fault:slow",
        "ado-fault:throttle",
        "set-max-count",
        "add-template",
        "remove-template",
        "delete-resource",
        "create-resource",
      ]) {
        assert.ok(kinds.has(k), `has ${k}`);
      }
      for (const e of s.events) assert.ok(e.at >= 0 && e.at <= o.lengthMs, `${e.kind} within the schedule`);
      const stall = s.events.find((e) => e.kind === "watch-stall");
      assert.ok(stall && stall.kind === "watch-stall" && stall.at + stall.durationMs <= o.lengthMs);
      const presence = presenceOf(s.world, s.events);
      for (const j of s.jobs) {
        const t = templateOf(s.world, j.resource, j.template);
        assert.ok(t, `job ${j.id} names a template`);
        const base = s.world.find((r) => r.name === j.resource)?.templates.includes(t) ?? false;
        assert.ok(availableAt(presence, j.resource, j.template, j.at, o, base), `job ${j.id} at ${j.at}`);
        for (const name of Object.keys(t.capabilities)) {
          assert.ok(
            j.demands.some((d) => d === name || d.startsWith(`${name} -equals `)),
            `job ${j.id} demands ${name}`,
          );
        }
        if (j.extraAgentContainers) assert.ok(t.extraAgentContainers);
        if (j.cancel?.stage === "running") assert.ok(j.cancel.afterMs < Math.max(1000, j.durationMs));
      }
      // Every structural edit is undone by the end: maxCounts back to base, removed base templates back.
      const last = new Map<string, number>();
      for (const e of s.events) if (e.kind === "set-max-count") last.set(`${e.resource}/${e.template}`, e.maxCount);
      for (const [key, max] of last) {
        const [res, tpl] = key.split("/") as [string, string];
        assert.equal(templateOf(s.world, res, tpl)?.maxCount, max, `${key} back to its base maxCount`);
      }
      const endPresence = presence
        .filter((p) => p.to === Number.POSITIVE_INFINITY)
        .map((p) => `${p.resource}/${p.template}`);
      for (const r of s.world) for (const t of r.templates) assert.ok(endPresence.includes(`${r.name}/${t.id}`));
      const summary = summarizeSchedule(s);
      assert.equal(
        Object.values(summary.jobsByTemplate).reduce((a, b) => a + b, 0),
        s.jobs.length,
      );
      assert.ok(summary.extraAgentContainerJobs > 0 && summary.cacheVolumeJobs > 0);
      assert.ok(summary.cancellations.queued + summary.cancellations.assigned + summary.cancellations.running > 0);
    });
  }

  test("control disturbances of the full schedule are spread apart", () => {
    const s = generateSchedule(scheduleOptions(11, false));
    const control = s.events
      .filter((e) => ["leader-kill", "leader-rolling-update", "apiserver-restart", "watch-stall"].includes(e.kind))
      .map((e) => e.at)
      .sort((a, b) => a - b);
    for (let i = 1; i < control.length; i++) {
      assert.ok((control[i] as number) - (control[i - 1] as number) >= 40_000, `gap ${i}`);
    }
  });
});

describe("templateFits", () => {
  const cases: [Record<string, string>, string[], boolean][] = [
    [{ alpha: "1" }, ["alpha"], true],
    [{ alpha: "1" }, ["ALPHA -equals 1"], true],
    [{ alpha: "1" }, ["alpha -equals 2"], false],
    [{ alpha: "1" }, ["alpha", "big"], false],
    [{ alpha: "1", big: "1" }, ["alpha", "big -equals 1"], true],
    [{ alpha: "1" }, ["alpha", "ExtraAgentContainers -equals name=a,image=b"], true],
    [{ alpha: "1" }, ["alpha", "Agent.Version -gtVersion 2.182.1"], true],
  ];
  for (const [caps, demands, expected] of cases) {
    test(`${JSON.stringify(caps)} ${JSON.stringify(demands)} → ${expected}`, () =>
      assert.equal(templateFits(caps, demands), expected));
  }
});

describe("adoFaultRules", () => {
  const agentJobCalls: [string, string][] = [
    ["POST", "/sim-org/_apis/distributedtask/pools/10/sessions"],
    ["GET", "/sim-org/_apis/distributedtask/pools/10/messages"],
    ["DELETE", "/sim-org/_apis/distributedtask/pools/10/messages/5"],
    ["PATCH", "/sim-org/_apis/distributedtask/pools/10/jobrequests/77"],
    ["DELETE", "/sim-org/_apis/distributedtask/pools/10/sessions/abc"],
  ];
  for (const fault of ["errors", "drops", "slow", "throttle"] as const) {
    test(`${fault}: valid rules that hit the lists and never an agent's job calls`, () => {
      const rules = adoFaultRules(fault);
      for (const r of rules) assert.equal(validateFaultRule(r), undefined);
      const hits = (method: string, path: string) => decideFaults(rules, method, path, () => 0).matched.length > 0;
      assert.ok(hits("GET", "/sim-org/_apis/distributedtask/pools/10/jobrequests"));
      assert.ok(hits("GET", "/sim-org/_apis/distributedtask/pools/10/agents"));
      for (const [method, path] of agentJobCalls) assert.equal(hits(method, path), false, `${method} ${path}`);
    });
  }
});
