import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEFAULTS } from "../api/v1/schema.ts";
import { capabilitySetKey, placeholderAgentName, podNamePrefix } from "../scaling/naming.ts";
import {
  type CollectableAgent,
  type CollectableJobRequest,
  DEFAULT_ENSURE_INTERVAL_MS,
  DEFAULT_ENSURE_RETRY_MS,
  DEFAULT_MIN_COLLECT_INTERVAL_MS,
  DEFAULT_OFFLINE_GRACE_MS,
  type GarbageInput,
  garbageToCollect,
  type KeepReason,
  missingPlaceholders,
  PLACEHOLDER_AGENT_VERSION,
  PLACEHOLDER_SETTING_DEFAULTS,
  placeholderCapabilities,
  placeholderRegistration,
  placeholderSchedule,
  placeholderSetKey,
  placeholderSettings,
  prefixedPlaceholderName,
  type ScheduleInput,
  wantedPlaceholders,
} from "./plan.ts";

const MIN = 60_000;
const HOUR = 60 * MIN;

/** What the agent of a template without OS or architecture selection reports besides the declared set. */
const linux = (caps: Record<string, string>) => ({ ...caps, "Agent.OS": "Linux", "Agent.OSArchitecture": "" });

const podOn = (nodeSelector: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  spec: { nodeSelector, containers: [{ name: "agent", image: "agent:1" }], ...extra },
});

describe("placeholderCapabilities: what the entry's agents report", () => {
  const cases: [string, Record<string, string>, unknown, Record<string, string>][] = [
    ["no template: a default Linux pod", { buildkit: "1" }, undefined, linux({ buildkit: "1" })],
    [
      "arm64 node selector",
      { buildkit: "1" },
      podOn({ "kubernetes.io/arch": "arm64" }),
      { buildkit: "1", "Agent.OS": "Linux", "Agent.OSArchitecture": "ARM64" },
    ],
    [
      "windows pod",
      {},
      podOn({}, { os: { name: "windows" } }),
      { "Agent.OS": "Windows_NT", "Agent.OSArchitecture": "" },
    ],
    [
      "literal environment of the agent container; references carried as present",
      {},
      {
        spec: {
          containers: [
            {
              name: "agent",
              env: [
                { name: "DOCKER_HOST", value: "tcp://localhost:2375" },
                { name: "WHO", value: "$(AZP_AGENT_NAME)" },
                { name: "SECRET", valueFrom: { secretKeyRef: { name: "s", key: "k" } } },
              ],
            },
          ],
        },
      },
      linux({ DOCKER_HOST: "tcp://localhost:2375", WHO: "" }),
    ],
    [
      "a declared Agent.Version stays; Agent.Name never comes from the set",
      { "Agent.Version": "4.0.0", "Agent.Name": "x" },
      undefined,
      linux({ "Agent.Version": "4.0.0" }),
    ],
  ];
  for (const [label, declared, template, want] of cases) {
    test(label, () => assert.deepEqual(placeholderCapabilities(declared, template), want));
  }
});

describe("wantedPlaceholders", () => {
  test("one per distinct capability set, sorted by name, with who wants it", () => {
    const wanted = wantedPlaceholders([
      {
        key: "ns/a",
        podsWithCapabilities: [{ capabilities: { buildkit: "1" } }, { capabilities: { java: "17", os: "linux" } }],
      },
      { key: "ns/b", podsWithCapabilities: [{ capabilities: { os: "linux", java: "17" } }, {}] },
      { key: "other/a", podsWithCapabilities: [{ capabilities: { buildkit: "1" } }, { capabilities: {} }] },
    ]);
    const names = [
      placeholderAgentName(linux({ buildkit: "1" })),
      placeholderAgentName(linux({ java: "17", os: "linux" })),
      placeholderAgentName(linux({})),
    ].sort();
    assert.deepEqual(
      wanted.map((w) => w.name),
      names,
    );
    const byName = new Map(wanted.map((w) => [w.name, w]));
    assert.deepEqual(byName.get(placeholderAgentName(linux({ buildkit: "1" })))?.wantedBy, ["ns/a", "other/a"]);
    assert.deepEqual(byName.get(placeholderAgentName(linux({ java: "17", os: "linux" })))?.wantedBy, ["ns/a", "ns/b"]);
    assert.deepEqual(
      byName.get(placeholderAgentName(linux({})))?.wantedBy,
      ["ns/b", "other/a"],
      "absent capabilities = {}",
    );
  });

  test("the same declared set on two architectures gives two placeholders, each with its own", () => {
    const wanted = wantedPlaceholders([
      {
        key: "ns/a",
        podsWithCapabilities: [
          { capabilities: { buildkit: "1" }, podTemplateSpec: podOn({ "kubernetes.io/arch": "amd64" }) },
        ],
      },
      {
        key: "ns/b",
        podsWithCapabilities: [
          { capabilities: { buildkit: "1" }, podTemplateSpec: podOn({ "kubernetes.io/arch": "arm64" }) },
        ],
      },
    ]);
    assert.deepEqual(
      wanted.map((w) => [w.registration.systemCapabilities?.["Agent.OSArchitecture"], w.wantedBy]).sort(),
      [
        ["ARM64", ["ns/b"]],
        ["X64", ["ns/a"]],
      ],
    );
    for (const w of wanted) {
      assert.equal(w.registration.systemCapabilities?.["Agent.OS"], "Linux");
      assert.equal(w.registration.systemCapabilities?.["Agent.Name"], w.name);
      assert.equal(w.name, placeholderAgentName(w.capabilities));
    }
  });

  test("a changed capability set gives a new name, so a new key", () => {
    const before = wantedPlaceholders([{ podsWithCapabilities: [{ capabilities: { a: "1" } }] }]);
    const after = wantedPlaceholders([{ podsWithCapabilities: [{ capabilities: { a: "2" } }] }]);
    assert.notEqual(before[0]?.name, after[0]?.name);
    assert.notEqual(placeholderSetKey(before), placeholderSetKey(after));
    const same = wantedPlaceholders([{ podsWithCapabilities: [{ capabilities: { a: "1" } }] }]);
    assert.equal(placeholderSetKey(before), placeholderSetKey(same));
  });

  test("the set key does not depend on order", () => {
    assert.equal(placeholderSetKey([{ name: "b" }, { name: "a" }]), placeholderSetKey([{ name: "a" }, { name: "b" }]));
    assert.equal(placeholderSetKey([]), "");
  });

  test("an ExtraAgentContainers value of a template is just a capability (never derived from jobs)", () => {
    const [w] = wantedPlaceholders([{ podsWithCapabilities: [{ capabilities: { ExtraAgentContainers: "x,img" } }] }]);
    assert.equal(w?.name, placeholderAgentName(linux({ ExtraAgentContainers: "x,img" })));
    assert.equal(w?.registration.systemCapabilities?.ExtraAgentContainers, "x,img");
  });

  test("no resources, no placeholders", () => {
    assert.deepEqual(wantedPlaceholders([]), []);
  });
});

describe("placeholderRegistration", () => {
  test("offline forever (no authorization), enabled, the set plus Agent.Name and Agent.Version", () => {
    const body = placeholderRegistration("dummy-agent-x", { buildkit: "1", "Agent.OS": "Linux" });
    assert.equal(body.name, "dummy-agent-x");
    assert.equal(body.version, PLACEHOLDER_AGENT_VERSION);
    assert.equal(body.enabled, true);
    assert.equal(body.provisioningState, "Provisioned");
    assert.equal(body.authorization, undefined);
    assert.deepEqual(body.systemCapabilities, {
      "Agent.Name": "dummy-agent-x",
      "Agent.Version": PLACEHOLDER_AGENT_VERSION,
      buildkit: "1",
      "Agent.OS": "Linux",
    });
  });

  test("a set with its own Agent.Version or Agent.Name (any case) keeps it", () => {
    const body = placeholderRegistration("n", { "agent.version": "3.0.0", "AGENT.NAME": "m" });
    assert.deepEqual(body.systemCapabilities, { "agent.version": "3.0.0", "AGENT.NAME": "m" });
  });

  test("the CLI's name with the default prefix is the operator's name", () => {
    const caps = { buildkit: "1", ExtraAgentContainers: "name=c,image=i" };
    assert.equal(prefixedPlaceholderName("dummy-agent", caps), placeholderAgentName(caps));
    assert.equal(prefixedPlaceholderName("ci", caps), `ci-${capabilitySetKey(caps)}`);
  });
});

describe("missingPlaceholders", () => {
  test("names the pool has (ignoring case) are not registered again", () => {
    const wanted = wantedPlaceholders([{ podsWithCapabilities: [{ capabilities: { a: "1" } }, { capabilities: {} }] }]);
    const first = wanted[0]?.name as string;
    assert.deepEqual(
      missingPlaceholders(wanted, [first.toUpperCase(), "other"]).map((w) => w.name),
      wanted.slice(1).map((w) => w.name),
    );
    assert.equal(missingPlaceholders(wanted, []).length, 2);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// garbageToCollect

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();
const RESOURCE = "build";
const PREFIX = podNamePrefix(RESOURCE);
const WANTED = placeholderAgentName({ buildkit: "1" });
const UNWANTED = placeholderAgentName({ old: "1" });

let nextId = 1;
function agent(name: string, fields: Partial<CollectableAgent> & { ageMs?: number; offlineForMs?: number } = {}) {
  const { ageMs = 10 * HOUR, offlineForMs, ...rest } = fields;
  return {
    id: nextId++,
    name,
    status: "offline",
    createdOn: iso(ageMs),
    ...(offlineForMs === undefined ? {} : { statusChangedOn: iso(offlineForMs) }),
    ...rest,
  } satisfies CollectableAgent;
}

function decide(agents: CollectableAgent[], overrides: Partial<GarbageInput> = {}) {
  return garbageToCollect({
    agents,
    wantedNames: [WANTED],
    podNames: new Set([`${PREFIX}alive`]),
    resourcePodNamePrefixes: [PREFIX],
    now: NOW,
    dummyAgentDeletionMinAgeMs: 2 * HOUR,
    normalOfflineAgentDeletionMinAgeMs: 5 * HOUR,
    ...overrides,
  });
}

/** The decision for one agent: its delete reason, or "keep:<reason>", or "ignored". */
function verdict(a: CollectableAgent, overrides: Partial<GarbageInput> = {}): string {
  const d = decide([a], overrides);
  const del = d.delete.find((x) => x.id === a.id);
  if (del) return del.reason;
  const kept = d.kept.find((x) => x.id === a.id);
  return kept ? `keep:${kept.reason}` : "ignored";
}

describe("garbageToCollect: placeholders", () => {
  const cases: Array<[string, CollectableAgent, string, Partial<GarbageInput>?]> = [
    ["unwanted, older than the min age", agent(UNWANTED, { ageMs: 3 * HOUR }), "unwanted-placeholder"],
    ["unwanted, exactly the min age (at least)", agent(UNWANTED, { ageMs: 2 * HOUR }), "unwanted-placeholder"],
    ["unwanted, 1 ms younger than the min age", agent(UNWANTED, { ageMs: 2 * HOUR - 1 }), "keep:too-young"],
    ["unwanted, just registered", agent(UNWANTED, { ageMs: 0 }), "keep:too-young"],
    ["wanted, however old", agent(WANTED, { ageMs: 100 * HOUR }), "keep:wanted"],
    [
      "wanted, its hash in upper case (names compare ignoring case)",
      agent(`dummy-agent-${WANTED.slice("dummy-agent-".length).toUpperCase()}`, { ageMs: 100 * HOUR }),
      "keep:wanted",
    ],
    ["the original's bare dummy-agent", agent("dummy-agent", { ageMs: 3 * HOUR }), "unwanted-placeholder"],
    [
      "the original's FNV-named placeholder",
      agent("dummy-agent-dd123f790c2565f2", { ageMs: 3 * HOUR }),
      "unwanted-placeholder",
    ],
    [
      "the CLI's, default prefix (ExtraAgentContainers set)",
      agent(placeholderAgentName({ buildkit: "1", ExtraAgentContainers: "c,img" }), { ageMs: 3 * HOUR }),
      "unwanted-placeholder",
    ],
    [
      "the CLI's, a prefix starting with dummy-agent-",
      agent(prefixedPlaceholderName("dummy-agent-ci", { a: "1" }), { ageMs: 3 * HOUR }),
      "unwanted-placeholder",
    ],
    ["the CLI's, a custom prefix: not ours", agent(prefixedPlaceholderName("tmp", { a: "1" })), "ignored"],
    ["dummy-agents (no dash): not a placeholder", agent("dummy-agents-x"), "ignored"],
    ["online (someone runs a real agent by that name)", agent(UNWANTED, { status: "online" }), "keep:online"],
    ["status unknown", agent(UNWANTED, { status: undefined }), "keep:online"],
    ["holding a job", agent(UNWANTED, { assignedRequest: { requestId: 7 } }), "keep:busy"],
    ["assignedRequest null is no job", agent(UNWANTED, { assignedRequest: null }), "unwanted-placeholder"],
    ["createdOn missing", agent(UNWANTED, { createdOn: undefined }), "keep:age-unknown"],
    ["createdOn unreadable", agent(UNWANTED, { createdOn: "yesterday-ish" }), "keep:age-unknown"],
    ["the pod cache not synced does not matter", agent(UNWANTED), "unwanted-placeholder", { podNames: undefined }],
    [
      "7 fractional digits, as the service writes them",
      agent(UNWANTED, { createdOn: "2025-06-01T09:59:59.1234567Z" }),
      "unwanted-placeholder",
    ],
  ];
  for (const [name, a, want, overrides] of cases) {
    test(name, () => assert.equal(verdict(a, overrides), want));
  }

  test("a placeholder a queued job matched is kept; once the job is running it may go", () => {
    const a = agent(UNWANTED, { ageMs: 3 * HOUR });
    const queued: CollectableJobRequest = { requestId: 1, matchedAgents: [{ id: a.id, name: a.name }] };
    assert.equal(verdict(a, { jobRequests: [queued] }), "keep:matched-by-queued-job");
    const byName: CollectableJobRequest = { requestId: 1, matchedAgents: [{ name: a.name.toUpperCase() }] };
    assert.equal(verdict(a, { jobRequests: [byName] }), "keep:matched-by-queued-job");
    const running: CollectableJobRequest = {
      ...queued,
      assignTime: iso(MIN),
      receiveTime: iso(MIN),
      reservedAgent: { id: 99, name: "build-x1y2z" },
    };
    assert.equal(verdict(a, { jobRequests: [running] }), "unwanted-placeholder");
    const finished: CollectableJobRequest = { ...queued, result: "failed", finishTime: iso(MIN) };
    assert.equal(verdict(a, { jobRequests: [finished] }), "unwanted-placeholder");
  });
});

describe("garbageToCollect: agents of the resource", () => {
  const gone = `${PREFIX}x1y2z`;
  const alive = `${PREFIX}alive`;
  const grace = DEFAULT_OFFLINE_GRACE_MS;
  const cases: Array<[string, CollectableAgent, string, Partial<GarbageInput>?]> = [
    // pod gone
    ["pod gone, offline past the grace", agent(gone, { ageMs: grace }), "pod-gone"],
    ["pod gone, offline 1 ms short of the grace", agent(gone, { ageMs: grace - 1 }), "keep:in-grace"],
    [
      "pod gone, old but offline only since a moment (statusChangedOn)",
      agent(gone, { ageMs: 3 * HOUR, offlineForMs: MIN }),
      "keep:in-grace",
    ],
    ["pod gone, offline exactly the grace", agent(gone, { ageMs: HOUR, offlineForMs: grace }), "pod-gone"],
    [
      "pod gone, the race: a just-created pod not in the cache yet, its agent registered",
      agent(gone, { ageMs: 2_000 }),
      "keep:in-grace",
    ],
    ["pod gone, a custom grace", agent(gone, { ageMs: 2 * MIN }), "pod-gone", { offlineGraceMs: MIN }],
    ["pod gone, grace 0", agent(gone, { ageMs: 0 }), "pod-gone", { offlineGraceMs: 0 }],
    ["pod gone but online", agent(gone, { status: "online" }), "keep:online"],
    ["pod gone but holding a job", agent(gone, { assignedRequest: { requestId: 3 } }), "keep:busy"],
    [
      "pod gone, pod cache not synced, young",
      agent(gone, { ageMs: HOUR }),
      "keep:pods-unknown",
      { podNames: undefined },
    ],
    [
      "pod gone, pod cache not synced, old: the age rule still applies",
      agent(gone, { ageMs: 5 * HOUR }),
      "offline-too-long",
      { podNames: undefined },
    ],
    ["createdOn missing", agent(gone, { createdOn: undefined }), "keep:age-unknown"],
    // pod alive: the age rule
    ["pod alive, offline, older than the min age", agent(alive, { ageMs: 6 * HOUR }), "offline-too-long"],
    ["pod alive, offline, exactly the min age", agent(alive, { ageMs: 5 * HOUR }), "offline-too-long"],
    ["pod alive, offline, 1 ms younger than the min age", agent(alive, { ageMs: 5 * HOUR - 1 }), "keep:too-young"],
    [
      "pod alive, old, but offline only since a moment",
      agent(alive, { ageMs: 6 * HOUR, offlineForMs: MIN }),
      "keep:in-grace",
    ],
    ["pod alive, young", agent(alive, { ageMs: HOUR }), "keep:too-young"],
    ["pod alive, old, online", agent(alive, { ageMs: 6 * HOUR, status: "online" }), "keep:online"],
    [
      "pod alive, old, holding a job",
      agent(alive, { ageMs: 6 * HOUR, assignedRequest: { requestId: 1 } }),
      "keep:busy",
    ],
    // whose agents
    ["another resource whose name extends ours (build-arm)", agent(`${podNamePrefix("build-arm")}x1y2z`), "ignored"],
    ["not a 5-character suffix", agent(`${PREFIX}x1y2z9`), "ignored"],
    ["an upper-case suffix is no pod name", agent(`${PREFIX}X1Y2Z`), "ignored"],
    ["someone else's agent", agent("laptop-of-bob"), "ignored"],
    [
      "a second prefix given",
      agent(`${podNamePrefix("other")}abcde`),
      "pod-gone",
      {
        resourcePodNamePrefixes: [PREFIX, podNamePrefix("other")],
      },
    ],
  ];
  for (const [name, a, want, overrides] of cases) {
    test(name, () => assert.equal(verdict(a, overrides), want));
  }

  test("the reserved agent of an unfinished job is busy, whatever the agent list says", () => {
    const a = agent(gone, { ageMs: HOUR });
    assert.equal(verdict(a, { jobRequests: [{ requestId: 1, reservedAgent: { id: a.id } }] }), "keep:busy");
    assert.equal(
      verdict(a, { jobRequests: [{ requestId: 1, assignTime: iso(1), reservedAgent: { name: a.name } }] }),
      "keep:busy",
    );
    assert.equal(
      verdict(a, { jobRequests: [{ requestId: 1, result: "succeeded", reservedAgent: { id: a.id } }] }),
      "pod-gone",
    );
  });

  test("a resource agent a queued job merely matched is not protected (its pod cannot serve it)", () => {
    const a = agent(gone, { ageMs: HOUR });
    assert.equal(verdict(a, { jobRequests: [{ requestId: 1, matchedAgents: [{ id: a.id }] }] }), "pod-gone");
  });

  test("a resource named like a placeholder: its pods' agents follow the resource rules", () => {
    const prefix = podNamePrefix("dummy-agent-pool");
    const a = agent(`${prefix}abcde`, { ageMs: 3 * HOUR });
    assert.equal(verdict(a, { resourcePodNamePrefixes: [prefix], podNames: new Set([a.name]) }), "keep:too-young");
  });
});

describe("garbageToCollect: the whole decision", () => {
  test("oldest first, capped by the limit, the rest kept as over-limit", () => {
    const agents = [
      agent(placeholderAgentName({ n: "1" }), { ageMs: 3 * HOUR }),
      agent(`${PREFIX}aaaaa`, { ageMs: 9 * HOUR }),
      agent(placeholderAgentName({ n: "2" }), { ageMs: 4 * HOUR }),
      agent(WANTED, { ageMs: 50 * HOUR }),
    ];
    const all = decide(agents);
    assert.deepEqual(
      all.delete.map((d) => [d.name, d.reason]),
      [
        [`${PREFIX}aaaaa`, "pod-gone"],
        [placeholderAgentName({ n: "2" }), "unwanted-placeholder"],
        [placeholderAgentName({ n: "1" }), "unwanted-placeholder"],
      ],
    );
    assert.match(all.delete[0]?.message ?? "", /its pod no longer exists/);
    assert.match(all.delete[1]?.message ?? "", /wanted by no resource of the pool and is 4h0m old/);
    const capped = decide(agents, { limit: 1 });
    assert.deepEqual(
      capped.delete.map((d) => d.name),
      [`${PREFIX}aaaaa`],
    );
    const reasons: KeepReason[] = capped.kept.map((k) => k.reason).sort();
    assert.deepEqual(reasons, ["over-limit", "over-limit", "wanted"]);
  });

  test("nothing to do on an empty pool", () => {
    assert.deepEqual(decide([]), { delete: [], kept: [] });
  });
});

describe("placeholderSettings", () => {
  test("the CRD defaults", () => {
    assert.deepEqual(PLACEHOLDER_SETTING_DEFAULTS, {
      dummyAgentGarbageCollectionInterval: DEFAULTS.dummyAgentGarbageCollectionInterval,
      dummyAgentDeletionMinAge: DEFAULTS.dummyAgentDeletionMinAge,
      normalOfflineAgentDeletionMinAge: DEFAULTS.normalOfflineAgentDeletionMinAge,
    });
    assert.deepEqual(placeholderSettings({}), {
      collectIntervalMs: 30 * MIN,
      dummyAgentDeletionMinAgeMs: 2 * HOUR,
      normalOfflineAgentDeletionMinAgeMs: 5 * HOUR,
    });
  });

  test("Go durations of the resource", () => {
    assert.deepEqual(
      placeholderSettings({
        dummyAgentGarbageCollectionInterval: "0s",
        dummyAgentDeletionMinAge: "1.5h",
        normalOfflineAgentDeletionMinAge: "2h45m",
      }),
      { collectIntervalMs: 0, dummyAgentDeletionMinAgeMs: 90 * MIN, normalOfflineAgentDeletionMinAgeMs: 165 * MIN },
    );
    assert.throws(() => placeholderSettings({ dummyAgentDeletionMinAge: "2 hours" }), /invalid duration/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// placeholderSchedule

describe("placeholderSchedule", () => {
  const T = NOW;
  const base: ScheduleInput = { now: T, wantedKey: "a,b", collectIntervalMs: 30 * MIN };
  const ok = (at: number, wantedKey = "a,b") => ({ at, wantedKey, status: "ok" as const });
  const cases: Array<[string, Partial<ScheduleInput>, { ensure: string | undefined; collect: boolean; next: number }]> =
    [
      ["first run: both", {}, { ensure: "first", collect: true, next: T }],
      [
        "just ran both: nothing; next is the periodic ensure",
        { lastEnsure: ok(T), lastCollectAt: T },
        { ensure: undefined, collect: false, next: T + DEFAULT_ENSURE_INTERVAL_MS },
      ],
      [
        "wanted set changed: ensure now",
        { lastEnsure: ok(T - MIN, "a"), lastCollectAt: T - MIN },
        { ensure: "changed", collect: false, next: T },
      ],
      [
        "ensure interval elapsed exactly: periodic",
        { lastEnsure: ok(T - DEFAULT_ENSURE_INTERVAL_MS), lastCollectAt: T - MIN },
        { ensure: "periodic", collect: false, next: T },
      ],
      [
        "ensure interval 1 ms short",
        { lastEnsure: ok(T - DEFAULT_ENSURE_INTERVAL_MS + 1), lastCollectAt: T - MIN },
        { ensure: undefined, collect: false, next: T + 1 },
      ],
      [
        "failed: retry after the retry delay",
        { lastEnsure: { at: T - DEFAULT_ENSURE_RETRY_MS, wantedKey: "a,b", status: "failed" }, lastCollectAt: T },
        { ensure: "retry", collect: false, next: T },
      ],
      [
        "failed: not before the retry delay",
        { lastEnsure: { at: T - 1000, wantedKey: "a,b", status: "failed" }, lastCollectAt: T },
        { ensure: undefined, collect: false, next: T - 1000 + DEFAULT_ENSURE_RETRY_MS },
      ],
      [
        "failed with a long Retry-After: waits it out",
        {
          lastEnsure: { at: T - 2 * MIN, wantedKey: "a,b", status: "failed", retryAfterMs: 5 * MIN },
          lastCollectAt: T,
        },
        { ensure: undefined, collect: false, next: T + 3 * MIN },
      ],
      [
        "forbidden: only at the ensure interval, not at the retry delay",
        { lastEnsure: { at: T - 2 * MIN, wantedKey: "a,b", status: "forbidden" }, lastCollectAt: T },
        { ensure: undefined, collect: false, next: T - 2 * MIN + DEFAULT_ENSURE_INTERVAL_MS },
      ],
      [
        "forbidden, but the wanted set changed: try at once",
        { lastEnsure: { at: T - 2 * MIN, wantedKey: "a", status: "forbidden" }, lastCollectAt: T },
        { ensure: "changed", collect: false, next: T },
      ],
      [
        "collect interval elapsed exactly",
        { lastEnsure: ok(T), lastCollectAt: T - 30 * MIN },
        { ensure: undefined, collect: true, next: T },
      ],
      [
        "collect interval 1 ms short",
        { lastEnsure: ok(T), lastCollectAt: T - 30 * MIN + 1 },
        { ensure: undefined, collect: false, next: T + 1 },
      ],
      [
        "collect interval 0s: floored",
        { lastEnsure: ok(T), lastCollectAt: T - 1000, collectIntervalMs: 0 },
        { ensure: undefined, collect: false, next: T - 1000 + DEFAULT_MIN_COLLECT_INTERVAL_MS },
      ],
      [
        "collect interval 0s and no floor: every time",
        { lastEnsure: ok(T), lastCollectAt: T, collectIntervalMs: 0, minCollectIntervalMs: 0 },
        { ensure: undefined, collect: true, next: T },
      ],
      [
        "a clock that went backwards: both due",
        { lastEnsure: ok(T + HOUR), lastCollectAt: T + HOUR },
        { ensure: "periodic", collect: true, next: T },
      ],
      [
        "custom ensure interval",
        { lastEnsure: ok(T - 2 * MIN), lastCollectAt: T, ensureIntervalMs: 2 * MIN },
        { ensure: "periodic", collect: false, next: T },
      ],
    ];
  for (const [name, input, want] of cases) {
    test(name, () => {
      const s = placeholderSchedule({ ...base, ...input });
      assert.deepEqual({ ensure: s.ensure, collect: s.collect, next: s.nextDueAt }, want);
    });
  }
});
