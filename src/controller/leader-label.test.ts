import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { labels } from "../api/v1/index.ts";
import { ManualClock } from "../runtime/clock.ts";
import type { Logger } from "../runtime/logger.ts";
import { type LeaderLabelValue, LeaderPodLabel, leaderLabelPatch, nextWrite } from "./leader-label.ts";

describe("nextWrite (rule 2)", () => {
  const cases: [string, Parameters<typeof nextWrite>[0], LeaderLabelValue | undefined][] = [
    ["nothing wanted yet", { wanted: undefined, written: undefined, writing: false, retryDue: false }, undefined],
    ["wanted, never written", { wanted: "false", written: undefined, writing: false, retryDue: false }, "false"],
    ["wanted and written", { wanted: "true", written: "true", writing: false, retryDue: false }, undefined],
    ["changed", { wanted: "true", written: "false", writing: false, retryDue: false }, "true"],
    [
      "changed while a write runs: after it",
      { wanted: "true", written: "false", writing: true, retryDue: false },
      undefined,
    ],
    [
      "a failed write waits for its retry",
      { wanted: "true", written: undefined, writing: false, retryDue: true },
      undefined,
    ],
  ];
  for (const [name, state, expected] of cases) test(name, () => assert.equal(nextWrite(state), expected));
});

test("leaderLabelPatch: a merge patch of the one label", () => {
  assert.deepEqual(leaderLabelPatch("true"), { metadata: { labels: { [labels.leader]: "true" } } });
});

/** A LeaderPodLabel whose writes wait until the test answers them. */
function harness() {
  const clock = new ManualClock(0);
  const writes: { value: string; answer: (ok: boolean) => void }[] = [];
  const logged: string[] = [];
  const log =
    (level: string): Logger["info"] =>
    (msg: string) =>
      logged.push(`${level}: ${msg}`);
  const label = new LeaderPodLabel({
    clock,
    retryMs: 5_000,
    logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
    write: (patch) =>
      new Promise((resolve, reject) => {
        writes.push({
          value: patch.metadata.labels[labels.leader] as string,
          answer: (ok) => (ok ? resolve(undefined) : reject(new Error("pods is forbidden"))),
        });
      }),
  });
  const answer = async (ok: boolean) => {
    const w = writes.find((x) => !(x as { done?: boolean }).done);
    assert.ok(w, "a write is waiting");
    (w as { done?: boolean }).done = true;
    w.answer(ok);
    await clock.tick();
  };
  return { clock, writes, logged, label, answer, values: () => writes.map((w) => w.value) };
}

describe("LeaderPodLabel", () => {
  test("start, lead, stop: false, true, false, one write at a time, the newest value winning", async () => {
    const h = harness();
    h.label.set(false);
    h.label.set(true); // while "false" is being written
    h.label.set(false);
    h.label.set(true);
    assert.deepEqual(h.values(), ["false"]);
    await h.answer(true);
    assert.deepEqual(h.values(), ["false", "true"], "only the newest of the values wanted meanwhile");
    await h.answer(true);
    h.label.set(true);
    assert.deepEqual(h.values(), ["false", "true"], "a value already written is not written again");
    h.label.set(false);
    await h.answer(true);
    await h.label.idle();
    assert.deepEqual(h.values(), ["false", "true", "false"]);
    assert.deepEqual(h.logged, []);
  });

  test("rule 3: a failed write is tried again while its value is wanted; one warning per streak", async () => {
    const h = harness();
    h.label.set(true);
    await h.answer(false);
    assert.deepEqual(h.logged.length, 1);
    assert.match(h.logged[0] ?? "", /^warn: cannot label/);
    await h.clock.tick(4_999);
    assert.equal(h.writes.length, 1, "not before retryMs");
    await h.clock.tick(1);
    assert.deepEqual(h.values(), ["true", "true"]);
    await h.answer(false);
    assert.equal(h.logged.length, 1, "the streak goes on: no second warning");
    h.label.set(false); // a newer value waits for the retry too
    await h.clock.tick(5_000);
    assert.deepEqual(h.values(), ["true", "true", "false"]);
    await h.answer(true);
    assert.deepEqual(h.logged.at(-1), "info: leader label written again");
  });

  test("close: no more writes nor retries", async () => {
    const h = harness();
    h.label.set(true);
    await h.answer(false);
    h.label.close();
    h.label.set(false);
    await h.clock.tick(60_000);
    assert.equal(h.writes.length, 1);
  });
});
