import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { JobInfo, World } from "./model.ts";
import {
  type DashboardState,
  fit,
  formatClock,
  formatDuration,
  formatSummary,
  NOTICE_SHOWN_MS,
  percentile,
  plainLines,
  renderDashboard,
  stripAnsi,
  summarize,
} from "./view.ts";

const T = Date.parse("2025-01-01T12:00:00Z");
const POD_A = "autoscaledagent-sample-aaaaa";
const POD_B = "autoscaledagent-sample-bbbbb";
const POD_C = "autoscaledagent-sample-ccccc";

const emptyWorld = (): World => ({ jobs: [], pods: [], templates: [], placeholders: [], events: [], conditions: [] });

function state(world: Partial<World> = {}, extra: Partial<DashboardState> = {}): DashboardState {
  return {
    info: {
      apiServer: "https://127.0.0.1:6443",
      organizationUrl: "http://127.0.0.1:8080/sim-org",
      controlUrl: "http://127.0.0.1:8080/_sim",
      pool: "sim-pool",
      namespace: "demo",
      resource: "autoscaledagent-sample",
      envFile: ".sim/env",
      operatorLog: ".sim/logs/demo-operator.log",
    },
    startedAt: T,
    world: { ...emptyWorld(), ...world },
    podsCreated: 0,
    activity: "waiting for the placeholder agent",
    notices: [],
    ...extra,
  };
}

/** A minute into a demo: one job done, one running, one queued; three pods. */
const busy = state(
  {
    jobs: [
      { id: 1, bucket: "succeeded", queuedAt: T + 10_000, startedAt: T + 12_000, finishedAt: T + 17_000, agent: POD_A },
      { id: 2, bucket: "running", queuedAt: T + 50_000, startedAt: T + 53_000, agent: POD_B },
      { id: 3, bucket: "queued", queuedAt: T + 58_000 },
    ],
    pods: [
      { name: POD_A, template: 0, state: "finished", createdAt: T + 5_000 },
      { name: POD_B, template: 0, state: "busy", createdAt: T + 45_000 },
      { name: POD_C, template: 0, state: "starting", createdAt: T + 58_500 },
    ],
    templates: [{ index: 0, capabilities: "buildkit=1", minCount: 1, maxCount: 3, pendingJobs: 1 }],
    placeholders: [{ name: "dummy-agent-0123456789abcdef", status: "offline", capabilities: "buildkit=1" }],
    events: [
      {
        key: "e2",
        time: T + 58_500,
        type: "Normal",
        reason: "PodCreated",
        object: "autoscaledagent/autoscaledagent-sample",
        note: `created pod ${POD_C} for job 3`,
        count: 1,
        byOperator: true,
      },
      {
        key: "e1",
        time: T + 45_100,
        type: "Normal",
        reason: "Scheduled",
        object: `pod/${POD_B}`,
        note: `Successfully assigned demo/${POD_B} to sim-node-1`,
        count: 1,
        byOperator: false,
      },
    ],
    conditions: [
      { type: "Degraded", status: "False", reason: "AsExpected", message: "all good" },
      { type: "Ready", status: "True", reason: "Scaling", message: "" },
      { type: "AzureDevOpsReachable", status: "True", reason: "PoolFound", message: "pool 10" },
    ],
  },
  { podsCreated: 3, activity: "queueing a job that demands buildkit every 8s", nextJobAt: T + 65_000 },
);

describe("renderDashboard", () => {
  test("a busy minute, on a roomy terminal", () => {
    assert.deepEqual(renderDashboard(busy, { width: 100, height: 40, now: T + 60_000 }), [
      "Azure Pipelines agents on Kubernetes · demo                                                 up 1m00s",
      "Kubernetes   https://127.0.0.1:6443 · namespace demo · autoscaledagent/autoscaledagent-sample",
      "Azure DevOps http://127.0.0.1:8080/sim-org · pool sim-pool · control API http://127.0.0.1:8080/_sim",
      "Look inside  source .sim/env && kubectl get asa,pods,events -n demo",
      "Stop         q or Ctrl-C; then npm run sim:down removes the simulation",
      "",
      "Resource conditions",
      "  Ready                 True    Scaling",
      "  AzureDevOpsReachable  True    PoolFound",
      "  Degraded              False   AsExpected",
      "",
      "Jobs  queued 1  running 1  succeeded 1  failed 0  canceled 0",
      "  oldest queued 2.0s · wait to start: median 2.5s, p90 2.9s (2 started)",
      "  #2     running   for 7.0s on autoscaledagent-sample-bbbbb",
      "  #3     queued    waiting 2.0s",
      "  #1     succeeded waited 2.0s, ran 5.0s, 43s ago, on autoscaledagent-sample-aaaaa",
      "",
      "Agent pods (3 made since the start)",
      "  template 0 buildkit=1 (min 1, max 3) · pending jobs 1",
      "    starting 1  idle 0  busy 1  finishing 0  finished 1",
      "    autoscaledagent-sample-ccccc  starting  made 1.5s ago",
      "    autoscaledagent-sample-bbbbb  busy      made 15s ago",
      "    autoscaledagent-sample-aaaaa  finished  made 55s ago",
      "",
      "Placeholder agents (offline on purpose: queued jobs wait instead of failing)",
      "  dummy-agent-0123456789abcdef  offline  buildkit=1",
      "",
      "Events in namespace demo",
      "    1.5s ago  Normal  PodCreated: created pod autoscaledagent-sample-ccccc for job 3",
      "     14s ago  Normal  Scheduled pod/autoscaledagent-sample-bbbbb: Successfully assigned demo/autosc…",
      "",
      "q or Ctrl-C: stop · queueing a job that demands buildkit every 8s · next in 5.0s",
    ]);
  });

  test("nothing read yet", () => {
    assert.deepEqual(renderDashboard(state(), { width: 80, height: 30, now: T + 1500 }), [
      "Azure Pipelines agents on Kubernetes · demo                              up 1.5s",
      "Kubernetes   https://127.0.0.1:6443 · namespace demo · autoscaledagent/autoscal…",
      "Azure DevOps http://127.0.0.1:8080/sim-org · pool sim-pool · control API http:/…",
      "Look inside  source .sim/env && kubectl get asa,pods,events -n demo",
      "Stop         q or Ctrl-C; then npm run sim:down removes the simulation",
      "",
      "Resource conditions",
      "  none yet (the operator writes them on its first reconcile)",
      "",
      "Jobs  queued 0  running 0  succeeded 0  failed 0  canceled 0",
      "  nothing queued · wait to start: no job started yet",
      "",
      "Agent pods (0 made since the start)",
      "  no templates yet",
      "",
      "Placeholder agents (offline on purpose: queued jobs wait instead of failing)",
      "  none yet (the operator registers one per template)",
      "",
      "Events in namespace demo",
      "  none yet",
      "",
      "q or Ctrl-C: stop · waiting for the placeholder agent",
    ]);
  });

  test("trouble: bad conditions with their messages, a failed job, operator warnings, a read error", () => {
    const s = state(
      {
        jobs: [
          {
            id: 7,
            bucket: "failed",
            queuedAt: T,
            finishedAt: T + 100,
            message: "No agent found in pool sim-pool which satisfies the specified demands: gpu",
          },
        ],
        conditions: [
          { type: "Ready", status: "False", reason: "SecretNotFound", message: 'secret "azure-pat" not found' },
          { type: "AzureDevOpsReachable", status: "Unknown", reason: "NotChecked", message: "see Degraded" },
          { type: "Degraded", status: "True", reason: "SecretNotFound", message: 'secret "azure-pat" not found' },
        ],
      },
      {
        notices: [
          { seq: 0, time: T + 1000, level: "warn", text: "reconcile failed" },
          { seq: 1, time: T + 2000, level: "error", text: "cannot read secret" },
        ],
        readError: "jobs: HTTP 500",
      },
    );
    const lines = renderDashboard(s, { width: 120, height: 50, now: T + 3000 });
    const at = (first: string) => lines.slice(lines.indexOf(first));
    assert.deepEqual(at("Resource conditions").slice(0, 4), [
      "Resource conditions",
      '  Ready                 False   SecretNotFound: secret "azure-pat" not found',
      "  AzureDevOpsReachable  Unknown NotChecked: see Degraded",
      '  Degraded              True    SecretNotFound: secret "azure-pat" not found',
    ]);
    assert.deepEqual(at("Jobs  queued 0  running 0  succeeded 0  failed 1  canceled 0").slice(0, 3), [
      "Jobs  queued 0  running 0  succeeded 0  failed 1  canceled 0",
      "  nothing queued · wait to start: no job started yet",
      "  #7     failed    never started, 2.9s ago, No agent found in pool sim-pool which satisfies the specified demands: gpu",
    ]);
    assert.deepEqual(at("Operator warnings (full log: .sim/logs/demo-operator.log)").slice(0, 4), [
      "Operator warnings (full log: .sim/logs/demo-operator.log)",
      "    1.0s ago  ERROR cannot read secret",
      "    2.0s ago  WARN  reconcile failed",
      "  demo read failed: jobs: HTTP 500",
    ]);
    // Warnings fade; with no read error the section goes.
    const later = renderDashboard(
      { ...s, readError: undefined },
      { width: 120, height: 50, now: T + 1000 + NOTICE_SHOWN_MS },
    );
    assert.ok(later.some((l) => l.endsWith("ERROR cannot read secret")));
    assert.ok(!later.some((l) => l.endsWith("WARN  reconcile failed")));
    const muchLater = renderDashboard(
      { ...s, readError: undefined },
      { width: 120, height: 50, now: T + 2000 + NOTICE_SHOWN_MS },
    );
    assert.ok(!muchLater.some((l) => l.startsWith("Operator warnings")));
  });

  test("pods of no current template get their own group; a lost pod is counted", () => {
    const s = state({
      templates: [{ index: 0, capabilities: "buildkit=1", minCount: 0, maxCount: 2 }],
      pods: [
        { name: POD_A, template: null, state: "idle", createdAt: T },
        { name: POD_B, template: 0, state: "lost", createdAt: T },
      ],
    });
    const lines = renderDashboard(s, { width: 100, height: 50, now: T + 20_000 });
    const from = lines.indexOf("Agent pods (0 made since the start)");
    assert.deepEqual(lines.slice(from, from + 7), [
      "Agent pods (0 made since the start)",
      "  template 0 buildkit=1 (min 0, max 2)",
      "    starting 0  idle 0  busy 0  finishing 0  finished 0  lost 1",
      "    autoscaledagent-sample-bbbbb  lost      made 20s ago",
      "  no current template",
      "    starting 0  idle 1  busy 0  finishing 0  finished 0",
      "    autoscaledagent-sample-aaaaa  idle      made 20s ago",
    ]);
  });

  const FOOTER = "q or Ctrl-C: stop · queueing a job that demands buildkit every 8s · next in 5.0s";
  const sizes: [string, number, number][] = [
    ["narrow", 40, 40],
    ["very narrow", 12, 40],
    ["a standard terminal", 80, 24],
    ["short", 100, 16],
    ["tiny", 10, 3],
    ["one line", 80, 1],
  ];
  for (const [label, width, height] of sizes) {
    for (const color of [false, true]) {
      test(`${label} (${width}x${height}${color ? ", colour" : ""}): within the size, footer last`, () => {
        const lines = renderDashboard(busy, { width, height, now: T + 60_000, color });
        assert.ok(lines.length <= height, `${lines.length} lines`);
        for (const l of lines) assert.ok(stripAnsi(l).length <= width, `too wide: ${JSON.stringify(l)}`);
        const footer = stripAnsi(lines.at(-1) ?? "").replace(/…$/, "");
        assert.ok(FOOTER.startsWith(footer), `footer last: ${JSON.stringify(lines.at(-1))}`);
        if (color) assert.ok(lines.some((l) => l !== stripAnsi(l)));
      });
    }
  }

  test("a short screen drops list rows from the longest list first, then the blank lines", () => {
    const lines = renderDashboard(busy, { width: 100, height: 24, now: T + 60_000 });
    assert.equal(lines.length, 24);
    assert.equal(lines.at(-1), "q or Ctrl-C: stop · queueing a job that demands buildkit every 8s · next in 5.0s");
    assert.ok(!lines.slice(0, -2).includes(""), "no blank lines between sections");
    // Two list rows left for 3 jobs, 3 pods and 2 events: one each from the longest lists.
    assert.ok(lines.includes("  #2     running   for 7.0s on autoscaledagent-sample-bbbbb"));
    assert.ok(lines.includes("    autoscaledagent-sample-ccccc  starting  made 1.5s ago"));
    assert.ok(!lines.some((l) => l.startsWith("  #3")));
    assert.ok(lines.includes("Events in namespace demo"));
  });
});

describe("fit", () => {
  const cases: [string, string, number, string][] = [
    ["short enough", "abc", 5, "abc"],
    ["exactly", "abcde", 5, "abcde"],
    ["cut with an ellipsis", "abcdef", 4, "abc…"],
    ["width 1", "abcdef", 1, "…"],
    ["width 0", "abc", 0, ""],
    ["newlines and tabs become spaces", "a\nb\tc", 10, "a b c"],
    ["escapes do not count", "\x1b[1mab\x1b[0m", 2, "\x1b[1mab\x1b[0m"],
    ["a cut styled line ends with a reset", "\x1b[32mabcdef\x1b[0m", 3, "\x1b[32mab…\x1b[0m"],
  ];
  for (const [label, line, width, expected] of cases) {
    test(label, () => assert.equal(fit(line, width), expected));
  }
});

describe("formatting", () => {
  const durations: [number, string][] = [
    [0, "0.0s"],
    [-5, "0.0s"],
    [420, "0.4s"],
    [9_949, "9.9s"],
    [12_300, "12s"],
    [65_000, "1m05s"],
    [3_725_000, "1h02m"],
  ];
  for (const [ms, text] of durations)
    test(`formatDuration(${ms}) = ${text}`, () => assert.equal(formatDuration(ms), text));
  const clocks: [number, string][] = [
    [0, "00:00"],
    [83_400, "01:23"],
    [3_723_000, "1:02:03"],
  ];
  for (const [ms, text] of clocks) test(`formatClock(${ms}) = ${text}`, () => assert.equal(formatClock(ms), text));
});

describe("percentile", () => {
  const cases: [number[], number, number | undefined][] = [
    [[], 50, undefined],
    [[5], 50, 5],
    [[5], 90, 5],
    [[4, 1, 3, 2], 50, 2.5],
    [[1, 2, 3], 50, 2],
    [[10, 1, 2, 3, 4, 5, 6, 7, 8, 9], 90, 9.1],
    [[1, 2, 3], 100, 3],
    [[1, 2, 3], 0, 1],
  ];
  for (const [values, p, expected] of cases) {
    test(`p${p} of [${values}] = ${expected}`, () => {
      const got = percentile(values, p);
      if (expected === undefined) assert.equal(got, undefined);
      else assert.ok(Math.abs((got as number) - expected) < 1e-9, `${got}`);
    });
  }
});

describe("summarize", () => {
  const job = (id: number, bucket: JobInfo["bucket"], waitMs?: number): JobInfo => ({
    id,
    bucket,
    queuedAt: T + id * 1000,
    ...(waitMs === undefined ? {} : { startedAt: T + id * 1000 + waitMs }),
  });

  test("waits of the jobs that started; the others counted by state", () => {
    const jobs = [
      job(1, "succeeded", 1000),
      job(2, "succeeded", 3000),
      job(3, "canceled", 2000),
      job(4, "failed", 4000),
      job(5, "running", 10_000),
      job(6, "queued"),
      job(7, "failed"),
    ];
    const s = summarize(jobs, ["a", "b", "a", "c"], { startedAt: T, now: T + 95_000 });
    assert.equal(s.queued, 7);
    assert.equal(s.run, 5);
    assert.deepEqual(s.byBucket, { queued: 1, running: 1, succeeded: 2, failed: 2, canceled: 1 });
    assert.equal(s.medianWaitMs, 3000);
    assert.equal(s.p90WaitMs, 7600);
    assert.equal(s.podsCreated, 3);
    assert.equal(s.runTimeMs, 95_000);
    assert.deepEqual(formatSummary(s), [
      "Demo summary",
      "  run time        1m35s",
      "  jobs queued     7 (1 still running, 1 still queued)",
      "  jobs run        5 (succeeded 2, failed 2, canceled 1)",
      "  wait to start   median 3.0s, p90 7.6s (queued to started)",
      "  pods created    3",
    ]);
  });

  test("an even count has the mean of the middle two as median", () => {
    const s = summarize([job(1, "succeeded", 1000), job(2, "succeeded", 2000)], [], { startedAt: T, now: T });
    assert.equal(s.medianWaitMs, 1500);
  });

  test("nothing ran", () => {
    const s = summarize([], [], { startedAt: T, now: T + 4000 });
    assert.equal(s.medianWaitMs, undefined);
    assert.deepEqual(formatSummary(s), [
      "Demo summary",
      "  run time        4.0s",
      "  jobs queued     0",
      "  jobs run        0 (succeeded 0, failed 0, canceled 0)",
      "  wait to start   no job started",
      "  pods created    0",
    ]);
  });
});

describe("plainLines", () => {
  test("the first lines say what runs, then what is there already", () => {
    assert.deepEqual(plainLines(undefined, state(), T + 2000), [
      "[00:02] Kubernetes https://127.0.0.1:6443, namespace demo, autoscaledagent/autoscaledagent-sample",
      "[00:02] Azure DevOps emulator http://127.0.0.1:8080/sim-org, pool sim-pool",
      "[00:02] operator log: .sim/logs/demo-operator.log; look inside: source .sim/env && kubectl get asa,pods -n demo",
      "[00:02] waiting for the placeholder agent",
    ]);
  });

  test("nothing changed, nothing said", () => {
    assert.deepEqual(plainLines(busy, busy, T + 61_000), []);
  });

  test("one line per change of interest", () => {
    const before = state(
      {
        jobs: [
          { id: 2, bucket: "running", queuedAt: T + 50_000, startedAt: T + 53_000, agent: POD_B },
          { id: 3, bucket: "queued", queuedAt: T + 58_000 },
        ],
        pods: [
          { name: POD_A, template: 0, state: "finished", createdAt: T },
          { name: POD_B, template: 0, state: "busy", createdAt: T },
        ],
        conditions: [{ type: "Degraded", status: "False", reason: "AsExpected", message: "" }],
        events: [
          {
            key: "e1",
            time: T,
            type: "Normal",
            reason: "PodCreated",
            object: "x",
            note: "old",
            count: 1,
            byOperator: true,
          },
        ],
      },
      { activity: "queueing jobs" },
    );
    const after = state(
      {
        jobs: [
          { id: 2, bucket: "succeeded", queuedAt: T + 50_000, startedAt: T + 53_000, finishedAt: T + 58_000 },
          { id: 3, bucket: "running", queuedAt: T + 58_000, startedAt: T + 60_500, agent: POD_C },
          { id: 4, bucket: "failed", queuedAt: T + 61_000, finishedAt: T + 61_000, message: "no agent" },
        ],
        pods: [
          { name: POD_B, template: 0, state: "finishing", createdAt: T },
          { name: POD_C, template: 0, state: "busy", createdAt: T + 55_000 },
        ],
        conditions: [{ type: "Degraded", status: "True", reason: "PodStuck", message: "pod x: ImagePullBackOff" }],
        events: [
          {
            key: "e4",
            time: T + 61_500,
            type: "Normal",
            reason: "Scheduled",
            object: `pod/${POD_C}`,
            note: "assigned",
            count: 1,
            byOperator: false,
          },
          {
            key: "e3",
            time: T + 61_200,
            type: "Normal",
            reason: "PodCreated",
            object: "autoscaledagent/autoscaledagent-sample",
            note: `created pod ${POD_C}`,
            count: 1,
            byOperator: true,
          },
          {
            key: "e2",
            time: T + 61_000,
            type: "Warning",
            reason: "BackOff",
            object: "pod/x",
            note: "pull",
            count: 1,
            byOperator: false,
          },
          {
            key: "e1",
            time: T,
            type: "Normal",
            reason: "PodCreated",
            object: "x",
            note: "old",
            count: 2,
            byOperator: true,
          },
        ],
      },
      {
        activity: "queueing jobs",
        notices: [{ seq: 0, time: T + 61_000, level: "warn", text: "pod x stuck" }],
      },
    );
    assert.deepEqual(plainLines(before, after, T + 62_000), [
      "[01:02] condition Degraded True (PodStuck): pod x: ImagePullBackOff",
      "[01:02] job #2 succeeded (ran 5.0s)",
      "[01:02] job #3 started on autoscaledagent-sample-ccccc after waiting 2.5s",
      "[01:02] job #4 queued",
      "[01:02] job #4 failed: no agent",
      "[01:02] pod autoscaledagent-sample-bbbbb finishing (agent done)",
      "[01:02] pod autoscaledagent-sample-ccccc busy (running a job)",
      "[01:02] pod autoscaledagent-sample-aaaaa deleted",
      "[01:02] warning BackOff pod/x: pull",
      "[01:02] event PodCreated: created pod autoscaledagent-sample-ccccc",
      "[01:02] operator WARN pod x stuck",
    ]);
  });

  test("a job that went back to the queue, placeholders coming and going", () => {
    const before = state({
      jobs: [{ id: 5, bucket: "running", queuedAt: T, startedAt: T + 1000 }],
      placeholders: [{ name: "dummy-agent-old", status: "offline", capabilities: "a=1" }],
    });
    const after = state({
      jobs: [{ id: 5, bucket: "queued", queuedAt: T }],
      placeholders: [{ name: "dummy-agent-new", status: "offline", capabilities: "b=1" }],
    });
    assert.deepEqual(plainLines(before, after, T + 3000), [
      "[00:03] placeholder agent dummy-agent-new (b=1) is offline",
      "[00:03] placeholder agent dummy-agent-old removed",
      "[00:03] job #5 back in the queue",
    ]);
  });
});
