/**
 * The sharing of a pool across reconciles: what it keeps of each resource (its pods' standing) must follow every
 * change that matters, cached pods, pods created but not cached yet, and the poll's list.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type AutoScaledAgent, podAnnotations as annotations, labels } from "../api/v1/index.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import type { JobRequest, ObservedPod, ScalePlan } from "../scaling/types.ts";
import { validateCached } from "./observe.ts";
import { createPodFactory } from "./pod-factory.ts";
import type { Caches, PodObject, Resource } from "./ports.ts";
import { PoolSharing, withoutEndedJobs } from "./sharing.ts";

const CAPS = { docker: "1" };
const NONE: readonly PodObject[] = [];

function resource(name: string): AutoScaledAgent {
  return {
    apiVersion: "azurepipelines.k8s.scaler.io/v1",
    kind: "AutoScaledAgent",
    metadata: { name, namespace: "ci", uid: `uid-${name}`, generation: 1, resourceVersion: "1" },
    spec: {
      poolName: "pool",
      organizationUrl: "https://dev.azure.com/org",
      personalAccessTokenSecretName: "pat",
      podsWithCapabilities: [
        {
          capabilities: CAPS,
          minCount: 0,
          maxCount: 5,
          podTemplateSpec: { spec: { containers: [{ name: "agent", image: "agent:1" }] } },
        },
      ],
    },
  } as AutoScaledAgent;
}

function pod(name: string, owner: string, createdFor: number, phase: "Running" | "Succeeded"): PodObject {
  return {
    metadata: {
      name,
      namespace: "ci",
      resourceVersion: `${name}-${phase}`,
      creationTimestamp: "2026-12-01T12:00:00Z",
      labels: { [labels.template]: capabilitySetKey(CAPS) },
      annotations: { [annotations.createdFor]: String(createdFor) },
      ownerReferences: [{ kind: "AutoScaledAgent", name: owner, uid: `uid-${owner}` }],
    },
    spec: { nodeName: "node-1", containers: [{ name: "agent" }] },
    status: {
      phase,
      containerStatuses: [{ name: "agent", state: { running: { startedAt: "2026-12-01T12:00:00Z" } } }],
    },
  } as PodObject;
}

const expectedPod = (name: string, createdFor: number): ObservedPod => ({
  name,
  templateIndex: 0,
  extraAgentContainers: null,
  createdAtMs: 0,
  startedAtMs: null,
  phase: "Pending",
  scheduled: false,
  deleting: false,
  agentContainer: "unknown",
  agentExitCode: null,
  otherContainers: [],
  createdForRequestIds: [createdFor],
  idleMarkedAtMs: null,
});

/** The sharing of a pool over caches that hold these resources and pods, with these pods expected. */
function sharingOf(
  resources: () => readonly AutoScaledAgent[],
  podsOf: (uid: string) => readonly PodObject[],
  expected: (key: string) => readonly ObservedPod[],
): PoolSharing {
  const caches: Caches = {
    resource: () => undefined,
    allResources: resources,
    podsOf,
    pvcsOf: () => [],
    liveAgentPodNames: () => undefined,
    podsListedAt: () => undefined,
  };
  return new PoolSharing({
    caches,
    pods: createPodFactory({ terminatorImage: "busybox:1" }),
    organizationKey: (url) => url,
    expected,
  });
}

/** The sharing of a pool of these resources, with the pods (by owner uid) and expected pods (by key) the test sets. */
function poolOf(objects: readonly AutoScaledAgent[]) {
  const pods = new Map<string, readonly PodObject[]>();
  const expected = new Map<string, readonly ObservedPod[]>();
  const sharing = sharingOf(
    () => objects,
    // The same empty list each time, as the caches answer.
    (uid) => pods.get(uid) ?? NONE,
    (key) => expected.get(key) ?? [],
  );
  return { pods, expected, sharing };
}

test("the pool's sharing follows the pods of each resource from reconcile to reconcile", () => {
  const objects = [resource("a"), resource("b")];
  const { pods, expected, sharing } = poolOf(objects);
  const job: JobRequest = { requestId: 42, queueTime: "2026-12-01T12:00:00Z", demands: ["docker"] };
  let jobs: readonly JobRequest[] = [job];
  const servedBy = (id = 42) => {
    const who = objects.filter((r) => {
      const v = validateCached(r);
      assert.ok(v.ok);
      const res = v.value as Resource;
      const key = `ci/${r.metadata?.name}`;
      return sharing.jobsFor(key, res, jobs).some((j) => j.requestId === id);
    });
    return who.map((r) => r.metadata?.name);
  };
  // Equal fits: the tie decides; whichever it is, the other one is then given the job by its pod.
  const [first] = servedBy();
  assert.ok(first === "a" || first === "b");
  const other = first === "a" ? "b" : "a";
  // A later job the tie gives to the same resource, when no pod is spare.
  let later = 43;
  for (; later < 100; later++) {
    jobs = [{ ...job, requestId: later }];
    if (servedBy(later)[0] === first) break;
  }
  jobs = [job];
  const steps: [string, () => void, string][] = [
    ["asked again: the same", () => {}, first],
    [
      "the other created a pod for it (not cached yet): the job stays with its pod",
      () => {
        expected.set(`ci/${other}`, [expectedPod(`${other}-p`, 42)]);
      },
      other,
    ],
    [
      "the pod is cached now, no longer expected",
      () => {
        expected.delete(`ci/${other}`);
        pods.set(`uid-${other}`, [pod(`${other}-p`, other, 42, "Running")]);
      },
      other,
    ],
    [
      "a new poll, the same job: still there",
      () => {
        jobs = [{ ...job }];
      },
      other,
    ],
    [
      "its pod ended: the tie decides again",
      () => {
        pods.set(`uid-${other}`, [pod(`${other}-p`, other, 42, "Succeeded")]);
      },
      first,
    ],
    [
      "a new pod for it, cached",
      () => {
        pods.set(`uid-${other}`, [pod(`${other}-q`, other, 42, "Running")]);
      },
      other,
    ],
  ];
  for (const [label, change, want] of steps) {
    change();
    assert.deepEqual(servedBy(), [want], label);
  }
  // A poll without job 42 (another agent took it) and with a later job: the pod made for 42 is spare now, and a
  // spare pod takes a job first (the service would give it to that idle agent).
  jobs = [{ ...job, requestId: later }];
  assert.deepEqual(servedBy(later), [other], "the spare pod's resource serves the later job");
});

/** A plan as `planned` reads it: template 0 with this many busy pods. */
const planWithBusy = (busy: number) =>
  ({ templates: [{ templateIndex: 0, busy, finishing: 0, terminating: 0, lost: 0 }] }) as unknown as ScalePlan;

test("the pool's assignment is kept from plan to plan while nothing that decides it changes, and follows what does", () => {
  // Listed by the caches in another order than by key.
  const objects = [resource("b"), resource("a")];
  const specs = new Map(
    objects.map((r) => {
      const v = validateCached(r);
      assert.ok(v.ok);
      return [`ci/${r.metadata?.name}`, v.value as Resource];
    }),
  );
  const { pods, expected, sharing } = poolOf(objects);
  const jobs: readonly JobRequest[] = [
    { requestId: 42, queueTime: "2026-12-01T12:00:00Z", demands: ["docker"] },
    // A job the agent of pod "w" runs: that pod holds nothing and is not spare.
    { requestId: 7, assignTime: "2026-12-01T12:00:00Z", reservedAgent: { id: 1, name: "w" }, demands: ["docker"] },
  ];
  /** The list `key`'s plan sees (asking marks it available: it plans from a fresh poll). */
  const listOf = (key: string) => sharing.jobsFor(key, specs.get(key) as Resource, jobs);
  const has42 = (key: string) => listOf(key).some((j) => j.requestId === 42);
  // Equal fits: the tie decides.
  const first = has42("ci/a") ? "ci/a" : "ci/b";
  const other = first === "ci/a" ? "ci/b" : "ci/a";
  assert.equal(has42(other), false, "exactly one of the two serves it");
  const room = (key: string, busy: number) => () =>
    sharing.planned(key, specs.get(key) as Resource, planWithBusy(busy));
  const busyPod = (resourceVersion: string) => {
    const w = pod("w", other.slice(3), 7, "Running");
    return { ...w, metadata: { ...w.metadata, resourceVersion } };
  };
  // Each step: what changes, who serves job 42, and the list of the one that does not (asked only when it plans;
  // asking marks it available), the same array as at the step before or not. The one that serves keeps the whole
  // list (nothing left out), so the other's tells whether the assignment was kept.
  let seen: readonly JobRequest[] | undefined = listOf(other);
  const steps: [string, () => void, string, "kept" | "new" | "not asked"][] = [
    ["asked again: the same list", () => {}, first, "kept"],
    ["its plan published no room: the other serves it", room(first, 5), other, "new"],
    ["the same room published again: the same list", room(first, 5), other, "kept"],
    [
      "the other cannot serve now (its poll fails): back to the first, full or not",
      () => sharing.unavailable(other),
      first,
      "not asked",
    ],
    ["the other plans from a fresh poll: it can serve again, and does", () => {}, other, "new"],
    ["room again: the tie decides", room(first, 0), first, "new"],
    [
      "a pod of the other whose agent runs another job appears: it holds nothing, is not spare: the same list",
      () => pods.set(`uid-${other.slice(3)}`, [busyPod("1")]),
      first,
      "kept",
    ],
    [
      "the same pod, a newer object, the same standing: the same list",
      () => pods.set(`uid-${other.slice(3)}`, [busyPod("2")]),
      first,
      "kept",
    ],
    [
      "pods of both hold the job (both created one): the first by key keeps it",
      () => {
        expected.set("ci/a", [expectedPod("a-p", 42)]);
        expected.set("ci/b", [expectedPod("b-p", 42)]);
      },
      "ci/a",
      "new",
    ],
  ];
  for (const [label, change, want, identity] of steps) {
    change();
    const loser = want === "ci/a" ? "ci/b" : "ci/a";
    if (identity === "not asked") {
      assert.ok(has42(want), `${label}: ${want} serves it`);
      seen = undefined;
      continue;
    }
    // The step's plans, the one that does not serve it first: the other's answer must not depend on who asks first.
    const lost = listOf(loser);
    assert.ok(has42(want), `${label}: ${want} serves it`);
    assert.equal(has42(loser), false, `${label}: ${loser} does not`);
    if (identity === "kept") assert.equal(lost, seen, `${label}: the same list`);
    else assert.notEqual(lost, seen, `${label}: another list`);
    seen = lost;
  }
});

test("the pool's members follow the resources as the caches list them", () => {
  const a = resource("a");
  const b = resource("b");
  const changed = (r: AutoScaledAgent, generation: number, change: Partial<AutoScaledAgent>): AutoScaledAgent =>
    ({
      ...r,
      ...change,
      metadata: { ...r.metadata, generation, resourceVersion: String(generation), ...change.metadata },
    }) as AutoScaledAgent;
  let objects: readonly AutoScaledAgent[] = [a, b];
  const sharing = sharingOf(
    // A new array on every change, as the caches answer.
    () => objects,
    () => NONE,
    // b created a pod for the job: while b is on the pool, the job is b's.
    (key) => (key === "ci/b" ? [expectedPod("b-p", 42)] : []),
  );
  const jobs: readonly JobRequest[] = [{ requestId: 42, queueTime: "2026-12-01T12:00:00Z", demands: ["docker"] }];
  const aServes = () => {
    const v = validateCached(a);
    assert.ok(v.ok);
    const res = v.value as Resource;
    return sharing.jobsFor("ci/a", res, jobs).some((j) => j.requestId === 42);
  };
  const steps: [string, () => void, boolean][] = [
    ["b's pod holds the job", () => {}, false],
    ["asked again", () => {}, false],
    [
      "b moved to another pool",
      () => {
        objects = [a, changed(b, 2, { spec: { ...b.spec, poolName: "other" } })];
      },
      true,
    ],
    [
      "b back on the pool, its pool name written otherwise",
      () => {
        objects = [a, changed(b, 3, { spec: { ...b.spec, poolName: "POOL" } })];
      },
      false,
    ],
    [
      "b being deleted",
      () => {
        objects = [a, changed(b, 3, { metadata: { deletionTimestamp: "2026-12-01T12:00:00Z" } })];
      },
      true,
    ],
    [
      "b gone",
      () => {
        objects = [a];
      },
      true,
    ],
  ];
  for (const [label, change, want] of steps) {
    change();
    assert.equal(aServes(), want, label);
  }
});

test("the poll's list without the jobs of ended pods is the same list while the same jobs are left out", () => {
  const list: JobRequest[] = [1, 2, 3].map((requestId) => ({ requestId, demands: ["docker"] }));
  const ids = (l: readonly JobRequest[]) => l.map((j) => j.requestId);
  const cases: [string, Map<number, number>, number[], "the list" | "kept" | "new"][] = [
    ["no ended jobs: the list itself", new Map(), [1, 2, 3], "the list"],
    ["ended jobs not in the list: the list itself", new Map([[9, 0]]), [1, 2, 3], "the list"],
    ["job 2 ended: left out", new Map([[2, 0]]), [1, 3], "new"],
    [
      "job 2 ended, seen by another resource (another map): the same list",
      new Map([
        [2, 5],
        [9, 0],
      ]),
      [1, 3],
      "kept",
    ],
    [
      "jobs 2 and 3 ended: another list",
      new Map([
        [2, 0],
        [3, 0],
      ]),
      [1],
      "new",
    ],
  ];
  let previous: readonly JobRequest[] = list;
  for (const [label, ended, want, identity] of cases) {
    const got = withoutEndedJobs(list, ended);
    assert.deepEqual(ids(got), want, label);
    if (identity === "the list") assert.equal(got, list, label);
    else if (identity === "kept") assert.equal(got, previous, label);
    else assert.ok(got !== list && got !== previous, label);
    previous = got;
  }
});
