import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Clock } from "../runtime/clock.ts";
import { KubeApiError } from "./client.ts";
import { ConflictRetriesExhaustedError, updateWithRetry } from "./patch.ts";

/** A clock whose timers fire on the next microtask, recording the delays asked for. */
function instantClock(delays: number[]): Clock {
  let now = 0;
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      delays.push(ms);
      now += ms;
      queueMicrotask(fn);
      return undefined;
    },
    clearTimeout: () => {},
  };
}

interface Obj {
  metadata: { resourceVersion: string };
  spec: { n: number };
}

const conflict = () => new KubeApiError(409, "Conflict", "the object has been modified");

describe("updateWithRetry", () => {
  test("retries conflicts with a fresh read each time, backing off", async () => {
    let stored: Obj = { metadata: { resourceVersion: "1" }, spec: { n: 0 } };
    let conflictsLeft = 2;
    const reads: string[] = [];
    const delays: number[] = [];
    const result = await updateWithRetry(
      async () => {
        reads.push(stored.metadata.resourceVersion);
        return structuredClone(stored);
      },
      (o) => {
        o.spec.n += 1;
        return o;
      },
      async (o) => {
        if (conflictsLeft-- > 0) {
          // someone else wrote meanwhile
          stored = {
            metadata: { resourceVersion: String(Number(stored.metadata.resourceVersion) + 1) },
            spec: { n: 10 },
          };
          throw conflict();
        }
        stored = { ...o, metadata: { resourceVersion: "99" } };
        return stored;
      },
      { clock: instantClock(delays), random: () => 0, backoff: { initialMs: 10, maxMs: 100 } },
    );
    assert.deepEqual(reads, ["1", "2", "3"]);
    assert.equal(result.spec.n, 11, "the last mutation applied to the freshest read");
    assert.deepEqual(delays, [10, 20]);
  });

  test("mutate gets a private copy; undefined means no write", async () => {
    const original: Obj = { metadata: { resourceVersion: "1" }, spec: { n: 1 } };
    let writes = 0;
    const result = await updateWithRetry(
      async () => original,
      (o) => {
        o.spec.n = 42;
        return undefined;
      },
      async (o) => {
        writes++;
        return o;
      },
    );
    assert.equal(writes, 0);
    assert.equal(result, original);
    assert.equal(original.spec.n, 1);
  });

  test("initial saves the first read; later attempts read again", async () => {
    let gets = 0;
    let first = true;
    await updateWithRetry(
      async () => {
        gets++;
        return { metadata: { resourceVersion: "2" }, spec: { n: 0 } };
      },
      (o) => o,
      async (o) => {
        if (first) {
          first = false;
          throw conflict();
        }
        return o;
      },
      { initial: { metadata: { resourceVersion: "1" }, spec: { n: 0 } }, clock: instantClock([]) },
    );
    assert.equal(gets, 1);
  });

  test("other errors are thrown at once", async () => {
    let updates = 0;
    await assert.rejects(
      updateWithRetry(
        async () => ({ n: 1 }),
        (o) => o,
        async () => {
          updates++;
          throw new KubeApiError(422, "Invalid", "bad");
        },
      ),
      (err: unknown) => err instanceof KubeApiError && err.status === 422,
    );
    assert.equal(updates, 1);
  });

  test("gives up after the attempts with the last conflict as cause", async () => {
    let updates = 0;
    const err = await updateWithRetry(
      async () => ({ n: 1 }),
      (o) => o,
      async () => {
        updates++;
        throw conflict();
      },
      { attempts: 3, clock: instantClock([]) },
    ).catch((e: unknown) => e);
    assert.ok(err instanceof ConflictRetriesExhaustedError);
    assert.equal(err.attempts, 3);
    assert.ok(err.cause instanceof KubeApiError);
    assert.equal(updates, 3);
  });

  test("an aborted signal stops the retries", async () => {
    const ac = new AbortController();
    ac.abort(new Error("shutting down"));
    await assert.rejects(
      updateWithRetry(
        async () => ({ n: 1 }),
        (o) => o,
        async (o) => o,
        { signal: ac.signal },
      ),
      /shutting down/,
    );
  });
});
