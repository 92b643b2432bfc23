import assert from "node:assert/strict";
import { test } from "node:test";
import { threadKind } from "./proc-sampler.ts";

test("threadKind: a Node process's threads by name", () => {
  const cases: [string, ReturnType<typeof threadKind>][] = [
    ["V8Worker", "v8"],
    ["DelayedTaskSche", "v8"],
    ["libuv-worker", "libuv"],
    ["SignalInspector", "other"],
    ["node", "other"],
  ];
  for (const [comm, kind] of cases) assert.equal(threadKind(comm), kind, comm);
});
