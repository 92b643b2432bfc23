import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  addJobs,
  BUCKET_MS,
  busyPerTemplate,
  DAY_MS,
  decideStandby,
  describeSchedule,
  emptyHistory,
  type JobHistory,
  jobsToRecord,
  nextScheduleChange,
  percentile,
  planMinCount,
  predict,
  pruneHistory,
  type StandbyScheduleSpec,
  type StandbyTemplate,
  scheduleInForce,
  timeZone,
  WEEK_MS,
} from "./standby.ts";
import type { JobRequest, ObservedPod } from "./types.ts";

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

describe("timeZone: wall clock and back", () => {
  const cases: [string, string, string, string][] = [
    // zone, instant, wall (as UTC), why
    ["UTC", "2026-01-05T08:00:00.000Z", "2026-01-05T08:00:00.000Z", "UTC is the identity"],
    ["Europe/Berlin", "2026-01-05T07:00:00.000Z", "2026-01-05T08:00:00.000Z", "winter: +01:00"],
    ["Europe/Berlin", "2026-07-06T06:00:00.000Z", "2026-07-06T08:00:00.000Z", "summer: +02:00"],
    ["America/New_York", "2026-01-05T13:00:00.000Z", "2026-01-05T08:00:00.000Z", "winter: -05:00"],
    ["Asia/Kathmandu", "2026-01-05T02:15:00.000Z", "2026-01-05T08:00:00.000Z", "+05:45"],
    ["Europe/Berlin", "2026-01-05T07:00:00.250Z", "2026-01-05T08:00:00.250Z", "milliseconds kept"],
  ];
  for (const [zone, instant, wall, why] of cases) {
    test(`${zone} ${instant}: ${why}`, () => {
      const z = timeZone(zone);
      assert.equal(iso(z.wall(at(instant))), wall);
      assert.equal(iso(z.instant(at(wall))), instant);
    });
  }
  test("a wall time the clocks skip is taken as the moment after the gap (Berlin, 2026-03-29 02:30)", () => {
    const z = timeZone("Europe/Berlin");
    assert.equal(iso(z.instant(at("2026-03-29T02:30:00Z"))), "2026-03-29T01:30:00.000Z"); // 03:30 CEST
  });
  test("a wall time that happens twice is the first of the two (Berlin, 2026-10-25 02:30)", () => {
    const z = timeZone("Europe/Berlin");
    assert.equal(iso(z.instant(at("2026-10-25T02:30:00Z"))), "2026-10-25T00:30:00.000Z"); // 02:30 CEST
  });
  test("an unknown name throws a RangeError", () => {
    assert.throws(() => timeZone("Europe/Berln"), RangeError);
  });
});

const office: StandbyScheduleSpec = {
  days: ["Mon", "Tue", "Wed", "Thu", "Fri"],
  from: "08:00",
  to: "18:00",
  timeZone: "Europe/Berlin",
  minCount: 3,
};
const overnight: StandbyScheduleSpec = { days: ["Mon"], from: "22:00", to: "06:00", minCount: 2 };

describe("scheduleInForce", () => {
  const cases: [string, StandbyScheduleSpec[], string, number | undefined][] = [
    ["office hours, Monday 08:00 Berlin in winter (07:00Z)", [office], "2026-01-05T07:00:00Z", 0],
    ["office hours, Monday 07:59 Berlin", [office], "2026-01-05T06:59:00Z", undefined],
    ["office hours, Monday 17:59 Berlin", [office], "2026-01-05T16:59:59Z", 0],
    ["office hours, Monday 18:00 Berlin: the end is exclusive", [office], "2026-01-05T17:00:00Z", undefined],
    ["office hours, summer: 08:00 Berlin is 06:00Z", [office], "2026-07-06T06:00:00Z", 0],
    ["office hours, summer: 17:30Z is 19:30 Berlin", [office], "2026-07-06T17:30:00Z", undefined],
    ["office hours, Saturday", [office], "2026-01-10T10:00:00Z", undefined],
    ["office hours, Monday after DST began (Sunday 2026-03-29)", [office], "2026-03-30T06:00:00Z", 0],
    ["overnight, Monday 23:00", [overnight], "2026-01-05T23:00:00Z", 0],
    ["overnight, Tuesday 05:59 (the window started Monday)", [overnight], "2026-01-06T05:59:00Z", 0],
    ["overnight, Tuesday 06:00", [overnight], "2026-01-06T06:00:00Z", undefined],
    ["overnight, Tuesday 23:00 (not a start day)", [overnight], "2026-01-06T23:00:00Z", undefined],
    ["overnight, Monday 05:00 (started on Sunday: not listed)", [overnight], "2026-01-05T05:00:00Z", undefined],
    ["whole day 00:00-24:00, 23:59", [{ from: "00:00", to: "24:00", minCount: 1 }], "2026-01-05T23:59:59Z", 0],
    ["18:00-00:00 at 23:59", [{ from: "18:00", to: "00:00", minCount: 1 }], "2026-01-05T23:59:00Z", 0],
    ["18:00-00:00 at 00:00", [{ from: "18:00", to: "00:00", minCount: 1 }], "2026-01-06T00:00:00Z", undefined],
    [
      "overlapping windows: the largest minCount",
      [
        { from: "00:00", to: "24:00", minCount: 1 },
        { from: "08:00", to: "09:00", minCount: 5 },
      ],
      "2026-01-05T08:30:00Z",
      1,
    ],
    [
      "overlapping windows with equal counts: the first",
      [
        { from: "08:00", to: "10:00", minCount: 2 },
        { from: "07:00", to: "09:00", minCount: 2 },
      ],
      "2026-01-05T08:30:00Z",
      0,
    ],
    [
      "a window in the spring-forward gap does not open that day (Berlin 02:00-03:00 on 2026-03-29)",
      [{ from: "02:00", to: "03:00", timeZone: "Europe/Berlin", minCount: 1 }],
      "2026-03-29T01:00:00Z",
      undefined,
    ],
    [
      "the hour that repeats in autumn is inside 02:00-03:00 twice (first pass)",
      [{ from: "02:00", to: "03:00", timeZone: "Europe/Berlin", minCount: 1 }],
      "2026-10-25T00:30:00Z",
      0,
    ],
    [
      "the hour that repeats in autumn is inside 02:00-03:00 twice (second pass)",
      [{ from: "02:00", to: "03:00", timeZone: "Europe/Berlin", minCount: 1 }],
      "2026-10-25T01:30:00Z",
      0,
    ],
  ];
  for (const [name, schedules, now, want] of cases) {
    test(name, () => assert.equal(scheduleInForce(schedules, at(now))?.index, want));
  }
});

describe("nextScheduleChange", () => {
  const cases: [string, StandbyScheduleSpec[], string, string][] = [
    ["Friday evening: Monday 08:00 Berlin", [office], "2026-01-09T18:30:00Z", "2026-01-12T07:00:00.000Z"],
    ["Monday morning in the window: 18:00 Berlin", [office], "2026-01-05T09:00:00Z", "2026-01-05T17:00:00.000Z"],
    ["overnight, Monday 23:00: closes Tuesday 06:00", [overnight], "2026-01-05T23:00:00Z", "2026-01-06T06:00:00.000Z"],
    ["overnight, Tuesday 07:00: opens next Monday", [overnight], "2026-01-06T07:00:00Z", "2026-01-12T22:00:00.000Z"],
    [
      "across the change to summer time: Friday before, Monday 08:00 CEST",
      [office],
      "2026-03-27T18:00:00Z",
      "2026-03-30T06:00:00.000Z",
    ],
  ];
  for (const [name, schedules, now, want] of cases) {
    test(name, () => assert.equal(iso(nextScheduleChange(schedules, at(now)) as number), want));
  }
  test("nothing without schedules", () => assert.equal(nextScheduleChange([], at("2026-01-05T00:00:00Z")), undefined));
});

describe("describeSchedule", () => {
  const cases: [StandbyScheduleSpec, string][] = [
    [office, "Mon-Fri 08:00-18:00 Europe/Berlin"],
    [overnight, "Mon 22:00-06:00 UTC"],
    [{ from: "00:00", to: "24:00", minCount: 1 }, "every day 00:00-24:00 UTC"],
    [
      { days: ["Sun", "Sat", "Mon", "Wed"], from: "09:00", to: "10:00", minCount: 1 },
      "Mon,Wed,Sat,Sun 09:00-10:00 UTC",
    ],
    [
      { days: ["Mon", "Tue", "Thu", "Fri", "Sat"], from: "09:00", to: "10:00", minCount: 1 },
      "Mon,Tue,Thu-Sat 09:00-10:00 UTC",
    ],
  ];
  for (const [s, want] of cases) test(want, () => assert.equal(describeSchedule(s), want));
});

/** A history with `n` jobs at each of these instants. */
function historyOf(since: string, jobs: [string, number][]): JobHistory {
  let h = emptyHistory(at(since));
  for (const [t, n] of jobs)
    h = addJobs(
      h,
      Array.from({ length: n }, () => at(t)),
    );
  return h;
}

/** The same local time on the `weeks` Mondays before 2026-02-02 (a burst of `n` at 09:00 UTC each). */
const mondays = (weeks: number, n: number, time = "09:00:00Z"): [string, number][] =>
  Array.from({ length: weeks }, (_, k) => [iso(at(`2026-02-02T${time}`) - (k + 1) * WEEK_MS), n]);

describe("predict", () => {
  const spec = { percentile: 75, lookaheadMinutes: 10, historyWeeks: 4 };
  const utc = timeZone("UTC");
  const cases: [string, JobHistory, string, typeof spec, number, number[]][] = [
    [
      "an empty history predicts nothing",
      emptyHistory(at("2026-01-01T00:00:00Z")),
      "2026-02-02T08:55:00Z",
      spec,
      0,
      [0, 0, 0, 0],
    ],
    [
      "a history younger than a week has no week to read",
      historyOf("2026-01-30T00:00:00Z", [["2026-01-30T09:00:00Z", 5]]),
      "2026-02-02T08:55:00Z",
      spec,
      0,
      [],
    ],
    [
      "recording began inside last week's window: that week counts with what was recorded",
      historyOf("2026-01-26T09:00:02Z", [["2026-01-26T09:00:05Z", 3]]),
      "2026-02-02T08:55:00Z",
      spec,
      3,
      [3],
    ],
    [
      "a weekly burst: 6 jobs at Monday 09:00 in each of 4 weeks, seen from 08:55",
      historyOf("2026-01-01T00:00:00Z", mondays(4, 6)),
      "2026-02-02T08:55:00Z",
      spec,
      6,
      [6, 6, 6, 6],
    ],
    [
      "the same burst from 08:50: not yet within 10 minutes",
      historyOf("2026-01-01T00:00:00Z", mondays(4, 6)),
      "2026-02-02T08:49:59Z",
      spec,
      0,
      [0, 0, 0, 0],
    ],
    [
      "the same burst at 09:04: still in the current bucket",
      historyOf("2026-01-01T00:00:00Z", mondays(4, 6)),
      "2026-02-02T09:04:59Z",
      spec,
      6,
      [6, 6, 6, 6],
    ],
    [
      "the same burst at 09:05: over",
      historyOf("2026-01-01T00:00:00Z", mondays(4, 6)),
      "2026-02-02T09:05:00Z",
      spec,
      0,
      [0, 0, 0, 0],
    ],
    [
      "a spike in one week of four is ignored at p75",
      historyOf("2026-01-01T00:00:00Z", mondays(1, 20)),
      "2026-02-02T08:55:00Z",
      spec,
      0,
      [20, 0, 0, 0],
    ],
    [
      "... and followed at p100",
      historyOf("2026-01-01T00:00:00Z", mondays(1, 20)),
      "2026-02-02T08:55:00Z",
      { ...spec, percentile: 100 },
      20,
      [20, 0, 0, 0],
    ],
    [
      "the busiest bucket of the window, not the sum",
      historyOf("2026-01-01T00:00:00Z", [...mondays(4, 2), ...mondays(4, 3, "09:06:00Z")]),
      "2026-02-02T08:58:00Z",
      spec,
      3,
      [3, 3, 3, 3],
    ],
    [
      "two weeks of history: p75 over two weeks",
      historyOf("2026-01-19T00:00:00Z", [...mondays(1, 4), ...mondays(2, 2).slice(1)]),
      "2026-02-02T08:55:00Z",
      spec,
      4,
      [4, 2],
    ],
    [
      "more weeks read than asked for are left alone",
      historyOf("2026-01-01T00:00:00Z", mondays(4, 6)),
      "2026-02-02T08:55:00Z",
      { ...spec, historyWeeks: 2 },
      6,
      [6, 6],
    ],
  ];
  for (const [name, history, now, s, count, peaks] of cases) {
    test(name, () => {
      const p = predict(history, at(now), s, utc);
      assert.deepEqual({ count: p.count, peaks: p.peaks }, { count, peaks });
    });
  }

  test("local office rhythm across the change to summer time: the same local time, not the same UTC time", () => {
    // Every weekday at 09:00 Berlin for the four weeks before Monday 2026-03-30 (the first after the change).
    const jobs: [string, number][] = [];
    for (let d = at("2026-03-02T00:00:00Z"); d < at("2026-03-28T00:00:00Z"); d += DAY_MS) {
      const day = new Date(d).getUTCDay();
      if (day === 0 || day === 6) continue;
      jobs.push([iso(d + 8 * 3_600_000), 3]); // 09:00 CET = 08:00Z
    }
    const history = historyOf("2026-02-01T00:00:00Z", jobs);
    const berlin = timeZone("Europe/Berlin");
    // 08:55 CEST = 06:55Z: in Berlin time the burst is 5 minutes away.
    assert.equal(predict(history, at("2026-03-30T06:55:00Z"), spec, berlin).count, 3);
    // Read in UTC, last week's burst was at 08:00Z: from 06:55Z nothing is predicted.
    assert.equal(predict(history, at("2026-03-30T06:55:00Z"), spec, utc).count, 0);
  });

  test("a clock set back an hour sees what the history says for that earlier hour", () => {
    const history = historyOf("2026-01-01T00:00:00Z", mondays(4, 6));
    assert.equal(predict(history, at("2026-02-02T09:55:00Z"), spec, utc).count, 0);
    assert.equal(predict(history, at("2026-02-02T08:55:00Z"), spec, utc).count, 6);
  });

  test("a clock far ahead of the history reads only empty weeks", () => {
    const history = historyOf("2026-01-01T00:00:00Z", mondays(4, 6));
    const later = predict(history, at("2026-02-02T08:55:00Z") + 10 * WEEK_MS, spec, utc);
    assert.deepEqual(later.peaks, [0, 0, 0, 0]);
  });
});

describe("percentile (nearest rank)", () => {
  const cases: [number[], number, number][] = [
    [[], 75, 0],
    [[5], 75, 5],
    [[0, 0, 0, 20], 75, 0],
    [[0, 0, 0, 20], 100, 20],
    [[1, 2, 3, 4], 50, 2],
    [[4, 3, 2, 1], 51, 3],
    [[1, 2, 3, 4], 1, 1],
  ];
  for (const [values, p, want] of cases) {
    test(`p${p} of [${values}] = ${want}`, () => assert.equal(percentile(values, p), want));
  }
});

describe("history", () => {
  test("addJobs counts per 5-minute bucket", () => {
    const h = addJobs(emptyHistory(0), [0, 1000, BUCKET_MS - 1, BUCKET_MS, 3 * BUCKET_MS]);
    assert.deepEqual(
      [...h.buckets],
      [
        [0, 3],
        [1, 1],
        [3, 1],
      ],
    );
  });
  test("pruneHistory drops old buckets and moves since up with them", () => {
    const h = addJobs(emptyHistory(0), [0, 10 * BUCKET_MS, 20 * BUCKET_MS]);
    const p = pruneHistory(h, 20 * BUCKET_MS, 10 * BUCKET_MS);
    assert.deepEqual([...p.buckets.keys()], [10, 20]);
    assert.equal(p.since, 10 * BUCKET_MS);
  });
  test("pruneHistory returns the same object when nothing changes", () => {
    const h = addJobs(emptyHistory(10 * BUCKET_MS), [10 * BUCKET_MS]);
    assert.equal(pruneHistory(h, 11 * BUCKET_MS, 5 * BUCKET_MS), h);
  });
});

describe("decideStandby", () => {
  const base: StandbyTemplate = { minCount: 1, maxCount: 10, schedules: [] };
  const predictive = { percentile: 75, lookaheadMinutes: 10, historyWeeks: 4, timeZone: "UTC" };
  const weekly = historyOf("2026-01-01T00:00:00Z", mondays(4, 6));
  type Want = { minCount: number; reason: string; schedule?: number; predicted?: number; message?: RegExp };
  const cases: [string, StandbyTemplate, string, JobHistory | undefined, Want][] = [
    [
      "baseline without schedules",
      base,
      "2026-02-02T08:55:00Z",
      undefined,
      { minCount: 1, reason: "Baseline", message: /^minCount 1$/ },
    ],
    [
      "baseline outside the schedule",
      { ...base, schedules: [office] },
      "2026-02-01T12:00:00Z",
      undefined,
      { minCount: 1, reason: "Baseline", message: /no standby schedule is open: minCount 1/ },
    ],
    [
      "the schedule in its window",
      { ...base, schedules: [office] },
      "2026-02-02T08:00:00Z",
      undefined,
      {
        minCount: 3,
        reason: "Schedule",
        schedule: 0,
        message: /schedule 0 \(Mon-Fri 08:00-18:00 Europe\/Berlin\) is open: 3/,
      },
    ],
    [
      "a schedule may lower the baseline (nights without standby)",
      { ...base, minCount: 2, schedules: [{ from: "20:00", to: "06:00", minCount: 0 }] },
      "2026-02-02T23:00:00Z",
      undefined,
      { minCount: 0, reason: "Schedule", schedule: 0 },
    ],
    [
      "never above maxCount",
      { minCount: 1, maxCount: 2, schedules: [{ ...office, minCount: 5 }] },
      "2026-02-02T08:00:00Z",
      undefined,
      { minCount: 2, reason: "Schedule", schedule: 0 },
    ],
    [
      "predictive, history not read: the floor, and a word about it",
      { ...base, predictive },
      "2026-02-02T08:55:00Z",
      undefined,
      { minCount: 1, reason: "Baseline", message: /waits for its history/ },
    ],
    [
      "predictive, empty history: the floor",
      { ...base, predictive },
      "2026-02-02T08:55:00Z",
      emptyHistory(at("2026-02-01T00:00:00Z")),
      { minCount: 1, reason: "Baseline", predicted: 0, message: /no full week of history yet/ },
    ],
    [
      "predictive before a weekly burst",
      { ...base, predictive },
      "2026-02-02T08:55:00Z",
      weekly,
      { minCount: 6, reason: "Prediction", predicted: 6, message: /at most \[6, 6, 6, 6\] jobs per 5 minutes/ },
    ],
    [
      "predictive bounded by max",
      { ...base, predictive: { ...predictive, max: 4 } },
      "2026-02-02T08:55:00Z",
      weekly,
      { minCount: 4, reason: "Prediction", predicted: 4, message: /bounded to 4/ },
    ],
    [
      "predictive bounded by maxCount",
      { ...base, maxCount: 5, predictive },
      "2026-02-02T08:55:00Z",
      weekly,
      { minCount: 5, reason: "Prediction", predicted: 5 },
    ],
    [
      "predictive never below the schedule in force",
      { ...base, schedules: [{ from: "08:00", to: "10:00", minCount: 8 }], predictive },
      "2026-02-02T08:55:00Z",
      weekly,
      { minCount: 8, reason: "Schedule", schedule: 0, predicted: 6 },
    ],
    [
      "predictive above the schedule in force keeps the schedule's index",
      { ...base, schedules: [{ from: "08:00", to: "10:00", minCount: 2 }], predictive },
      "2026-02-02T08:55:00Z",
      weekly,
      { minCount: 6, reason: "Prediction", schedule: 0, predicted: 6, message: /schedule 0 .* is open: 2$/ },
    ],
  ];
  for (const [name, template, now, history, want] of cases) {
    test(name, () => {
      const d = decideStandby(template, at(now), history);
      const { message, ...rest } = want;
      assert.deepEqual(
        {
          minCount: d.minCount,
          reason: d.reason,
          ...(d.schedule !== undefined ? { schedule: d.schedule } : {}),
          ...(d.predicted !== undefined ? { predicted: d.predicted } : {}),
        },
        rest,
      );
      if (message) assert.match(d.message, message);
    });
  }

  test("next change: the next window boundary, or the next 5-minute bucket with predictive standby", () => {
    const s = decideStandby({ ...base, schedules: [office] }, at("2026-02-02T09:00:00Z"), undefined);
    assert.equal(iso(s.nextChangeAt as number), "2026-02-02T17:00:00.000Z");
    const p = decideStandby({ ...base, schedules: [office], predictive }, at("2026-02-02T09:01:00Z"), weekly);
    assert.equal(iso(p.nextChangeAt as number), "2026-02-02T09:05:00.000Z");
    assert.equal(decideStandby(base, 0, undefined).nextChangeAt, undefined);
  });
});

describe("planMinCount", () => {
  const cases: [number, number, number, number][] = [
    [1, 0, 5, 1],
    [1, 1, 5, 2],
    [3, 4, 5, 5],
    [0, 2, 5, 2],
  ];
  for (const [standby, busy, max, want] of cases) {
    test(`standby ${standby} + busy ${busy}, maxCount ${max}: ${want}`, () =>
      assert.equal(planMinCount(standby, busy, max), want));
  }
});

function pod(name: string, o: Partial<ObservedPod> = {}): ObservedPod {
  return {
    name,
    templateIndex: 0,
    extraAgentContainers: null,
    createdAtMs: 0,
    phase: "Running",
    scheduled: true,
    deleting: false,
    agentContainer: "running",
    otherContainers: [],
    createdForRequestIds: [],
    ...o,
  };
}

describe("busyPerTemplate", () => {
  test("counts pods whose agent holds a job, by flag or by reservation, per template", () => {
    const pods = [
      pod("a"),
      pod("b"),
      pod("c", { templateIndex: 1 }),
      pod("d", { templateIndex: 1, phase: "Succeeded" }),
      pod("e", { templateIndex: null }),
    ];
    const agents = [
      { id: 1, name: "a", status: "online" as const, busy: true },
      { id: 2, name: "b", status: "online" as const, busy: false },
      { id: 3, name: "c", status: "online" as const, busy: false },
      { id: 5, name: "e", status: "online" as const, busy: true },
    ];
    const jobs: JobRequest[] = [{ requestId: 9, reservedAgent: { id: 3, name: "c" } }];
    assert.deepEqual(busyPerTemplate(pods, agents, jobs, 2), [1, 1]);
  });
});

describe("jobsToRecord", () => {
  const q = "2026-02-02T09:00:00Z";
  const pods = [
    pod("warm", { templateIndex: 1 }),
    pod("made-for-7", { createdForRequestIds: [7] }),
    pod("orphan", { templateIndex: null, createdForRequestIds: [8] }),
  ];
  const cases: [string, JobRequest[], number[], { templateIndex: number; requestId: number }[]][] = [
    [
      "a job a standby agent took at once",
      [{ requestId: 1, queueTime: q, reservedAgent: { id: 1, name: "warm" } }],
      [],
      [{ templateIndex: 1, requestId: 1 }],
    ],
    ["a pending job a pod was made for", [{ requestId: 7, queueTime: q }], [], [{ templateIndex: 0, requestId: 7 }]],
    ["a job already counted", [{ requestId: 7, queueTime: q }], [7], []],
    [
      "a job of another resource's agent",
      [{ requestId: 2, queueTime: q, reservedAgent: { id: 9, name: "other" } }],
      [],
      [],
    ],
    ["a pending job without a pod yet", [{ requestId: 3, queueTime: q }], [], []],
    ["a job of a pod whose template is gone", [{ requestId: 8, queueTime: q }], [], []],
    ["a job without a queue time", [{ requestId: 7 }], [], []],
  ];
  for (const [name, jobs, seen, want] of cases) {
    test(name, () => {
      const got = jobsToRecord(jobs, pods, new Set(seen));
      assert.deepEqual(
        got.map(({ templateIndex, requestId }) => ({ templateIndex, requestId })),
        want,
      );
      for (const j of got) assert.equal(j.atMs, at(q));
    });
  }
});

test("the largest template the API allows (16 schedules, 12 weeks, an hour ahead) decides", () => {
  const template: StandbyTemplate = {
    minCount: 0,
    maxCount: 10,
    schedules: Array.from({ length: 16 }, (_, i) => ({ ...office, from: `0${i % 10}:00`, minCount: i % 4 })),
    predictive: { percentile: 75, lookaheadMinutes: 60, historyWeeks: 12, timeZone: "Europe/Berlin" },
  };
  const history = historyOf("2025-10-01T00:00:00Z", mondays(12, 3));
  const d = decideStandby(template, at("2026-02-02T08:55:00Z"), history);
  assert.ok(d.minCount >= 3);
});
