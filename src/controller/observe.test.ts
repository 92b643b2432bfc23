import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type AutoScaledAgent,
  podAnnotations as annotations,
  labels,
  validateAutoScaledAgent,
} from "../api/v1/index.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import {
  jobsOfEndedPods,
  observeAgent,
  observedPods,
  observePod,
  resourcesOnPool,
  templateIndexOf,
  templateSpecs,
  validateCached,
  withExpectedPods,
} from "./observe.ts";
import type { PodObject, Resource } from "./ports.ts";

const templates = [
  { capabilities: { a: "1" }, minCount: 0, maxCount: 1, podTemplateSpec: { spec: { containers: [] } } },
  { capabilities: { b: "1" }, minCount: 0, maxCount: 1, podTemplateSpec: { spec: { containers: [] } } },
] as unknown as Parameters<typeof observePod>[1];

function pod(overrides: Partial<PodObject> = {}): PodObject {
  return {
    metadata: {
      name: "r-abcde",
      creationTimestamp: "2026-01-01T00:00:00Z",
      labels: { [labels.template]: capabilitySetKey({ b: "1" }) },
      annotations: {
        [annotations.createdFor]: "11,12",
        [annotations.idleSince]: "1700000000000",
        [annotations.sidecarsStopped]: "side",
      },
      ...overrides.metadata,
    },
    spec: {
      nodeName: "n1",
      containers: [{ name: "agent" }, { name: "side" }],
      initContainers: [{ name: "init" }, { name: "native", restartPolicy: "Always" }],
      ...overrides.spec,
    },
    status: {
      phase: "Running",
      startTime: "2026-01-01T00:00:05Z",
      containerStatuses: [
        { name: "agent", state: { terminated: {} } },
        { name: "side", state: { running: {} } },
      ],
      initContainerStatuses: [{ name: "native", state: { running: {} } }],
      ...overrides.status,
    },
  };
}

describe("observePod", () => {
  test("maps labels, annotations, container states and native sidecars", () => {
    const o = observePod(pod(), templates);
    assert.equal(o.templateIndex, 1);
    assert.deepEqual(o.createdForRequestIds, [11, 12]);
    assert.equal(o.idleMarkedAtMs, 1_700_000_000_000);
    assert.equal(o.agentContainer, "terminated");
    assert.equal(o.scheduled, true);
    assert.equal(o.startedAtMs, Date.parse("2026-01-01T00:00:05Z"));
    assert.deepEqual(o.otherContainers, [
      { name: "side", state: "running", nativeSidecar: false, stopRequested: true },
      { name: "native", state: "running", nativeSidecar: true },
    ]);
  });

  test("a pod of a removed template, not scheduled, without status", () => {
    const o = observePod(
      {
        metadata: { name: "x", labels: { [labels.template]: "gone" } },
        spec: { containers: [{ name: "agent" }] },
      },
      templates,
    );
    assert.equal(o.templateIndex, null);
    assert.equal(o.phase, "Pending");
    assert.equal(o.scheduled, false);
    assert.equal(o.agentContainer, "unknown");
    assert.deepEqual(o.createdForRequestIds, []);
    assert.equal(o.idleMarkedAtMs, null);
  });

  test("templateIndexOf: unknown key", () => {
    assert.equal(templateIndexOf(templates, undefined), null);
    assert.equal(templateIndexOf(templates, capabilitySetKey({ a: "1" })), 0);
  });
});

describe("observeAgent", () => {
  test("busy when the service lists an assigned request", () => {
    assert.deepEqual(
      observeAgent({
        id: 1,
        name: "p",
        status: "online",
        assignedRequest: { requestId: 3 },
        statusChangedOn: "2026-01-01T00:00:00Z",
      }),
      {
        id: 1,
        name: "p",
        status: "online",
        busy: true,
        idleSinceMs: Date.parse("2026-01-01T00:00:00Z"),
        lastCompletedRequestFinishMs: null,
      },
    );
    assert.equal(observeAgent({ id: 2, name: "q", status: "offline" }).busy, false);
    assert.equal(observeAgent({ id: 2, name: "q", status: "weird" }).status, "offline");
  });
});

describe("jobsOfEndedPods", () => {
  const base = observePod(pod(), []);
  const running = { ...base, name: "run", agentContainer: "running" as const, createdForRequestIds: [1] };
  const ended = { ...base, name: "end", agentContainer: "terminated" as const, createdForRequestIds: [2] };
  const deleting = { ...running, name: "del", deleting: true, createdForRequestIds: [3] };
  const cases: [string, Map<number, number>, (typeof base)[], number | undefined, [number, number][]][] = [
    ["a running pod's job is not remembered", new Map(), [running], 50, []],
    [
      "an ended pod's jobs are remembered from now",
      new Map(),
      [ended, deleting],
      50,
      [
        [2, 100],
        [3, 100],
      ],
    ],
    ["without a snapshot nothing is dropped", new Map([[9, 10]]), [], undefined, [[9, 10]]],
    ["an earlier sighting is kept", new Map([[2, 40]]), [ended], 30, [[2, 40]]],
    ["a snapshot fetched later drops the memory", new Map([[2, 40]]), [], 41, []],
    ["a snapshot fetched at the same moment does not", new Map([[2, 40]]), [], 40, [[2, 40]]],
  ];
  for (const [name, memory, pods, fetchedAt, want] of cases) {
    test(name, () => assert.deepEqual([...jobsOfEndedPods(memory, pods, fetchedAt, 100)], want));
  }
});

describe("withExpectedPods", () => {
  const base = observePod(pod(), []);
  const seen = { ...base, name: "seen" };
  const expectation = (name: string, at: number, confirmed = true, pending = false) => ({
    at,
    pod: { ...base, name },
    pvcNames: [],
    confirmed,
    ...(pending ? { pending } : {}),
  });
  const cases: [string, ReturnType<typeof expectation>, number | undefined, boolean][] = [
    ["the cache shows it: no longer expected", expectation("seen", 0), undefined, false],
    ["a list asked for after the create lacks it: gone", expectation("p", 1_000), 2_000, false],
    ["a list asked for before the create says nothing", expectation("p", 1_000), 900, true],
    // Longer than any TTL and than the 150 s watch watchdog: a silently stalled watch must not let it go.
    ["confirmed, unseen for 10 minutes, no relist: still expected", expectation("p", 0), undefined, true],
    ["unconfirmed, unseen past its TTL: dropped", expectation("p", 0, false), undefined, false],
    ["unconfirmed, within its TTL: expected", expectation("p", 590_000, false), undefined, true],
    ["POST not answered, a list since: still expected", expectation("p", 1_000, false, true), 2_000, true],
    ["POST not answered for 10 minutes: still expected", expectation("p", 0, false, true), undefined, true],
    ["POST not answered, the cache shows it: no longer expected", expectation("seen", 0, false, true), 2_000, false],
  ];
  for (const [name, e, listedAt, kept] of cases) {
    test(name, () => {
      const cached = [seen];
      const r = withExpectedPods(cached, new Map([[e.pod.name, e]]), {
        now: 600_000,
        listedAt,
        unconfirmedTtlMs: 60_000,
      });
      assert.equal(r.open.has(e.pod.name), kept);
      assert.equal(r.pods.length, kept ? 2 : 1);
      // Nothing added: the cached list itself, so what is kept by list downstream is found again.
      assert.equal(r.pods === cached, !kept);
    });
  }
});

describe("observedPods: kept by pod object and list while the templates list stays", () => {
  const a = pod({ metadata: { name: "a" } } as Partial<PodObject>);
  const b = pod({ metadata: { name: "b" } } as Partial<PodObject>);
  const list = [a, b];
  const first = observedPods(list, templates);
  const cases: {
    name: string;
    pods: PodObject[];
    templates: typeof templates;
    sameList: boolean;
    samePods: boolean[];
  }[] = [
    { name: "the same list and templates", pods: list, templates, sameList: true, samePods: [true, true] },
    { name: "a new list of the same pods", pods: [a, b], templates, sameList: false, samePods: [true, true] },
    {
      name: "a pod replaced by the cache",
      pods: [a, { ...b, metadata: { ...b.metadata } }],
      templates,
      sameList: false,
      samePods: [true, false],
    },
    {
      name: "another templates list",
      pods: list,
      templates: [...templates],
      sameList: false,
      samePods: [false, false],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const out = observedPods(c.pods, c.templates);
      assert.equal(out === first, c.sameList);
      assert.deepEqual(
        out.map((p, i) => p === first[i]),
        c.samePods,
      );
      assert.deepEqual(
        out,
        c.pods.map((p) => observePod(p, c.templates)),
      );
    });
  }
});

describe("templateSpecs", () => {
  test("declared capabilities, what the agents report, and the declared ones they replace", () => {
    const spec = {
      podsWithCapabilities: [
        {
          capabilities: { buildkit: "1", "Agent.OSArchitecture": "X64" },
          minCount: 1,
          maxCount: 3,
          podTemplateSpec: {
            spec: {
              nodeSelector: { "kubernetes.io/arch": "arm64" },
              containers: [{ name: "agent", env: [{ name: "TOOLS", value: "/opt/tools" }] }],
            },
          },
        },
      ],
    } as unknown as Parameters<typeof templateSpecs>[0];
    const [t] = templateSpecs(spec);
    assert.deepEqual(t?.capabilities, { buildkit: "1", "Agent.OSArchitecture": "X64" });
    assert.deepEqual(t?.reportedCapabilities, {
      TOOLS: "/opt/tools",
      buildkit: "1",
      "Agent.Name": null,
      "Agent.Version": null,
      "Agent.OS": "Linux",
      "Agent.OSArchitecture": "ARM64",
    });
    assert.equal(t?.overriddenCapabilities?.length, 1);
    assert.match(t?.overriddenCapabilities?.[0] ?? "", /Agent\.OSArchitecture is declared "X64".*reports "ARM64"/);
    assert.equal(t?.minCount, 1);
    assert.equal(t?.maxCount, 3);
  });

  test("the same array while the templates and the standby in force stay (job matches are kept by it)", () => {
    const template = { capabilities: { a: "1" }, minCount: 0, maxCount: 3, podTemplateSpec: { spec: {} } };
    const spec = { podsWithCapabilities: [template, template] } as unknown as Parameters<typeof templateSpecs>[0];
    const cases: [string, readonly number[] | undefined, readonly number[] | undefined, boolean][] = [
      ["no standby twice", undefined, undefined, true],
      ["the same standby (another array)", [2, 0], [2, 0], true],
      ["standby against none", [2, 0], undefined, false],
      ["another standby", [2, 0], [1, 0], false],
    ];
    for (const [label, first, second, same] of cases) {
      const a = templateSpecs(spec, first);
      const b = templateSpecs(spec, second);
      assert.equal(a === b, same, label);
      assert.deepEqual(
        b.map((t) => t.standby),
        [second?.[0], second?.[1]],
        label,
      );
    }
    // A new templates' array (a new generation) is looked at anew.
    const next = { podsWithCapabilities: [{ ...template, maxCount: 5 }] } as unknown as typeof spec;
    assert.equal(templateSpecs(next)[0]?.maxCount, 5);
  });
});

describe("resourcesOnPool", () => {
  const resource = (name: string, poolName: string, extra: Record<string, unknown> = {}) =>
    ({
      apiVersion: "azurepipelines.k8s.scaler.io/v1",
      kind: "AutoScaledAgent",
      metadata: { name, namespace: "ns", uid: `uid-${name}`, ...extra },
      spec: {
        poolName,
        organizationUrl: "https://dev.azure.com/org",
        personalAccessTokenSecretName: "pat",
        podsWithCapabilities: [
          {
            capabilities: {},
            minCount: 0,
            maxCount: 1,
            podTemplateSpec: { spec: { containers: [{ name: "a", image: "x" }] } },
          },
        ],
      },
    }) as unknown as AutoScaledAgent;
  const orgKey = (url: string) => url.toLowerCase();
  const keys = (all: AutoScaledAgent[], of: AutoScaledAgent) => {
    const v = validateAutoScaledAgent(of);
    assert.ok(v.ok);
    return resourcesOnPool(all, v.value as Resource, orgKey).map((r) => r.key);
  };

  test("valid, live resources on the same pool; a replaced object is looked at anew", () => {
    const a = resource("a", "p");
    const b = resource("b", "P");
    const c = resource("c", "other");
    const gone = resource("d", "p", { deletionTimestamp: "2026-01-01T00:00:00Z" });
    const invalid = { ...resource("e", "p"), spec: { poolName: "p" } } as unknown as AutoScaledAgent;
    assert.deepEqual(keys([a, b, c, gone, invalid], a), ["ns/a", "ns/b"]);
    // Asked again (the same objects: validated once), then with b moved to another pool (a new object).
    assert.deepEqual(keys([a, b, c, gone, invalid], a), ["ns/a", "ns/b"]);
    assert.deepEqual(keys([a, resource("b", "other"), c], a), ["ns/a"]);
  });
});

describe("validateCached", () => {
  const spec = (maxCount: unknown) => ({
    poolName: "p",
    organizationUrl: "https://dev.azure.com/org",
    personalAccessTokenSecretName: "pat",
    podsWithCapabilities: [
      { capabilities: {}, maxCount, podTemplateSpec: { spec: { containers: [{ name: "a", image: "x" }] } } },
    ],
  });
  let version = 0;
  const object = (uid: string, generation: number | undefined, maxCount: unknown, status?: unknown) =>
    ({
      apiVersion: "azurepipelines.k8s.scaler.io/v1",
      kind: "AutoScaledAgent",
      metadata: {
        name: "r",
        namespace: "ns",
        uid,
        resourceVersion: String(++version),
        ...(generation === undefined ? {} : { generation }),
      },
      spec: spec(maxCount),
      ...(status ? { status } : {}),
    }) as unknown as AutoScaledAgent;
  /** What stays the same object when the result is kept: the defaulted spec, or the errors. */
  const specOf = (v: ReturnType<typeof validateCached>) => (v.ok ? v.value.spec : v.errors);

  test("a new object of the same generation (a status write) keeps the result, with its own metadata and status", () => {
    const first = validateCached(object("u-1", 1, 3));
    const statusWritten = object("u-1", 1, 3, { observedGeneration: 1 });
    const second = validateCached(statusWritten);
    assert.ok(first.ok && second.ok);
    assert.equal(second.value.spec, first.value.spec, "the same defaulted spec object (downstream caches hit)");
    assert.equal(second.value.metadata, statusWritten.metadata);
    assert.deepEqual(second.value.status, { observedGeneration: 1 });
    const noStatus = validateCached(object("u-1", 1, 3));
    assert.ok(noStatus.ok && noStatus.value.status === undefined);
  });

  const cases: [string, AutoScaledAgent, AutoScaledAgent, "same" | "anew"][] = [
    ["a new generation is validated anew (now invalid)", object("u-2", 1, 3), object("u-2", 2, "x"), "anew"],
    ["another uid (the resource was replaced) is validated anew", object("u-3", 1, 3), object("u-4", 1, 5), "anew"],
    [
      "without a generation (not from an API server), only the same object keeps it",
      object("u-5", undefined, 3),
      object("u-5", undefined, 4),
      "anew",
    ],
    ["an invalid result is kept like a valid one", object("u-6", 1, "x"), object("u-6", 1, "x"), "same"],
    [
      "without a resourceVersion (not from an API server), only the same object keeps it",
      { ...object("u-7", 1, 3), metadata: { name: "r", namespace: "ns", uid: "u-7", generation: 1 } },
      { ...object("u-7", 1, 4), metadata: { name: "r", namespace: "ns", uid: "u-7", generation: 1 } },
      "anew",
    ],
  ];
  for (const [name, before, after, expected] of cases) {
    test(name, () => {
      const a = validateCached(before);
      const b = validateCached(after);
      assert.equal(validateCached(after), b, "the same object: the same result");
      if (expected === "same") assert.equal(specOf(b), specOf(a));
      else assert.notEqual(specOf(b), specOf(a));
    });
  }
});
