import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  assignCacheVolumes,
  type CachePod,
  type CacheTemplate,
  type CacheVolumeState,
  claimsToRelease,
  type ObservedPvc,
  pvcCap,
  pvcHolder,
  withClaims,
} from "./cache-volumes.ts";

const NOW = 5_000_000;
const GRACE = 30_000;

const templates: CacheTemplate[] = [
  { key: "tA", maxCount: 2, mountedVolumeNames: ["workspace", "buildkit-cache"] },
  { key: "tB", maxCount: 1, mountedVolumeNames: ["buildkit-cache", "npm-cache"] },
  { key: "tC", maxCount: 3, mountedVolumeNames: ["workspace"] },
];

function pvc(name: string, o: Partial<ObservedPvc> = {}): ObservedPvc {
  return { name, volumeName: "buildkit-cache", createdAtMs: NOW - 1_000_000, ...o };
}

function livePod(name: string, mounted: string[] = []): CachePod {
  return { name, phase: "Running", mountedPvcNames: mounted };
}

function state(o: Partial<CacheVolumeState> = {}): CacheVolumeState {
  return {
    volumes: [{ name: "buildkit-cache" }, { name: "npm-cache" }],
    pvcs: [],
    pods: [],
    templates,
    now: NOW,
    claimGraceMs: GRACE,
    ...o,
  };
}

const summary = (s: CacheVolumeState, podName: string, templateKey: string) => {
  const a = assignCacheVolumes(s, { podName, templateKey });
  return {
    ready: a.ready,
    decisions: a.decisions.map((d) => [d.volumeName, d.kind, d.kind === "reuse" ? d.pvcName : null]),
  };
};

describe("pvcCap", () => {
  test("sums maxCount of the templates mounting the volume", () => {
    assert.equal(pvcCap("buildkit-cache", templates), 3);
    assert.equal(pvcCap("npm-cache", templates), 1);
    assert.equal(pvcCap("other", templates), 0);
  });
});

describe("pvcHolder", () => {
  const cases: [string, ObservedPvc, CachePod[], string | null][] = [
    ["no claim, unmounted", pvc("a"), [], null],
    ["mounted by a live pod without claim", pvc("a"), [livePod("p", ["a"])], "p"],
    ["mounted by a finished pod", pvc("a"), [{ name: "p", phase: "Succeeded", mountedPvcNames: ["a"] }], null],
    ["claimed by a live pod", pvc("a", { claim: { podName: "p", claimedAtMs: 0 } }), [livePod("p")], "p"],
    [
      "claimed by a failed pod",
      pvc("a", { claim: { podName: "p", claimedAtMs: 0 } }),
      [{ name: "p", phase: "Failed", mountedPvcNames: ["a"] }],
      null,
    ],
    [
      "claimed by a pod not seen yet, fresh claim",
      pvc("a", { claim: { podName: "p", claimedAtMs: NOW - 1 } }),
      [],
      "p",
    ],
    ["claimed by a pod gone for long", pvc("a", { claim: { podName: "p", claimedAtMs: NOW - GRACE } }), [], null],
    [
      "claim says one pod, a live other pod mounts it",
      pvc("a", { claim: { podName: "p", claimedAtMs: 0 } }),
      [{ name: "p", phase: "Succeeded", mountedPvcNames: [] }, livePod("q", ["a"])],
      "q",
    ],
  ];
  for (const [label, p, pods, want] of cases) {
    test(label, () => assert.equal(pvcHolder(p, state({ pods })), want));
  }
});

describe("assignCacheVolumes", () => {
  test("no PVC yet: create one for each cache volume the template mounts (non-cache mounts ignored)", () => {
    assert.deepEqual(summary(state(), "new", "tB"), {
      ready: true,
      decisions: [
        ["buildkit-cache", "create", null],
        ["npm-cache", "create", null],
      ],
    });
    assert.deepEqual(summary(state(), "new", "tC"), { ready: true, decisions: [] });
  });

  test("reuse a free PVC before creating", () => {
    const s = state({
      pvcs: [pvc("held", { claim: { podName: "p1", claimedAtMs: 0 } }), pvc("free")],
      pods: [livePod("p1")],
    });
    assert.deepEqual(summary(s, "new", "tA").decisions, [["buildkit-cache", "reuse", "free"]]);
  });

  test("warm cache: the PVC this template used most recently wins", () => {
    const s = state({
      pvcs: [
        pvc("b-recent", { lastUsedByTemplate: "tB", releasedAtMs: NOW - 10 }),
        pvc("a-old", { lastUsedByTemplate: "tA", releasedAtMs: NOW - 5000 }),
        pvc("a-recent", { lastUsedByTemplate: "tA", releasedAtMs: NOW - 100 }),
        pvc("fresh"),
      ],
    });
    assert.deepEqual(summary(s, "new", "tA").decisions, [["buildkit-cache", "reuse", "a-recent"]]);
  });

  test("no PVC of this template: a never-used one before another template's", () => {
    const s = state({
      pvcs: [pvc("b-recent", { lastUsedByTemplate: "tB", releasedAtMs: NOW - 10 }), pvc("fresh")],
    });
    assert.deepEqual(summary(s, "new", "tA").decisions, [["buildkit-cache", "reuse", "fresh"]]);
  });

  test("only other templates' PVCs: the least recently used, keeping their freshest caches", () => {
    const s = state({
      pvcs: [
        pvc("b-recent", { lastUsedByTemplate: "tB", releasedAtMs: NOW - 10 }),
        pvc("b-old", { lastUsedByTemplate: "tB", releasedAtMs: NOW - 9000 }),
      ],
    });
    assert.deepEqual(summary(s, "new", "tA").decisions, [["buildkit-cache", "reuse", "b-old"]]);
  });

  test("never a PVC held by a live pod, even when it is this template's warm one", () => {
    const s = state({
      pvcs: [
        pvc("warm", {
          lastUsedByTemplate: "tA",
          releasedAtMs: NOW - 1,
          claim: { podName: "p1", claimedAtMs: NOW - 1 },
        }),
        pvc("mounted", { lastUsedByTemplate: "tA" }),
      ],
      pods: [livePod("p1", ["warm"]), livePod("p2", ["mounted"])],
    });
    assert.deepEqual(summary(s, "new", "tA").decisions, [["buildkit-cache", "create", null]]);
  });

  test("a PVC being deleted is not reused", () => {
    const s = state({ pvcs: [pvc("gone", { deleting: true })] });
    assert.deepEqual(summary(s, "new", "tA").decisions, [["buildkit-cache", "create", null]]);
  });

  test("cap reached: the pod waits, with a reason", () => {
    const s = state({
      pvcs: [
        pvc("x1", { claim: { podName: "p1", claimedAtMs: 0 } }),
        pvc("x2", { claim: { podName: "p2", claimedAtMs: 0 } }),
        pvc("x3", { claim: { podName: "p3", claimedAtMs: 0 } }),
      ],
      pods: [livePod("p1"), livePod("p2"), livePod("p3")],
    });
    const a = assignCacheVolumes(s, { podName: "new", templateKey: "tA" });
    assert.equal(a.ready, false);
    const d = a.decisions[0];
    assert.equal(d?.kind, "wait");
    if (d?.kind === "wait") {
      assert.equal(d.reason, "cap-reached");
      assert.match(d.message, /buildkit-cache/);
      assert.match(d.message, /3/);
    }
  });

  test("one volume waiting makes the whole pod wait", () => {
    const s = state({
      pvcs: [pvc("n1", { volumeName: "npm-cache", claim: { podName: "p1", claimedAtMs: 0 } })],
      pods: [livePod("p1")],
    });
    const a = summary(s, "new", "tB");
    assert.equal(a.ready, false);
    assert.deepEqual(a.decisions, [
      ["buildkit-cache", "create", null],
      ["npm-cache", "wait", null],
    ]);
  });

  test("a stale claim of a vanished pod frees the PVC; a fresh one does not", () => {
    const stale = state({ pvcs: [pvc("x", { claim: { podName: "ghost", claimedAtMs: NOW - GRACE - 1 } })] });
    assert.deepEqual(summary(stale, "new", "tA").decisions, [["buildkit-cache", "reuse", "x"]]);
    const fresh = state({ pvcs: [pvc("x", { claim: { podName: "just-made", claimedAtMs: NOW - 1000 } })] });
    assert.deepEqual(summary(fresh, "new", "tA").decisions, [["buildkit-cache", "create", null]]);
  });

  test("unknown template: wait", () => {
    const a = assignCacheVolumes(state(), { podName: "new", templateKey: "nope" });
    assert.equal(a.ready, false);
    assert.equal(a.decisions[0]?.kind, "wait");
  });
});

/** Assigns pods one after another as the executor does: each sees the claims and creations of those before it. */
function assignInOrder(s: CacheVolumeState, requests: { podName: string; templateKey: string }[]) {
  let current = s;
  return requests.map((request) => {
    const a = assignCacheVolumes(current, request);
    if (a.ready) {
      const mapping: Record<string, string> = {};
      for (const d of a.decisions) {
        if (d.kind === "reuse") mapping[d.volumeName] = d.pvcName;
        if (d.kind === "create") mapping[d.volumeName] = `planned:${request.podName}:${d.volumeName}`;
      }
      current = withClaims(current, request.podName, mapping, s.now);
    }
    return a;
  });
}

describe("assigning a batch in order (assignCacheVolumes + withClaims)", () => {
  test("never hands one PVC to two pods, and holds the cap across the batch", () => {
    const s = state({ pvcs: [pvc("free1")] });
    const out = assignInOrder(
      s,
      ["p1", "p2", "p3", "p4"].map((podName) => ({ podName, templateKey: "tA" })),
    );
    assert.deepEqual(
      out.map((a) => [a.podName, a.ready, a.decisions.map((d) => (d.kind === "reuse" ? d.pvcName : d.kind))]),
      [
        ["p1", true, ["free1"]],
        ["p2", true, ["create"]],
        ["p3", true, ["create"]],
        ["p4", false, ["wait"]],
      ],
    );
  });

  test("a storm of pods over three PVCs: every reuse is distinct", () => {
    const s = state({
      pvcs: [pvc("c1"), pvc("c2"), pvc("c3")],
      templates: [{ key: "t", maxCount: 3, mountedVolumeNames: ["buildkit-cache"] }],
    });
    const out = assignInOrder(
      s,
      Array.from({ length: 20 }, (_, i) => ({ podName: `p${i}`, templateKey: "t" })),
    );
    const reused = out.flatMap((a) => a.decisions.flatMap((d) => (d.kind === "reuse" ? [d.pvcName] : [])));
    assert.deepEqual([...reused].sort(), ["c1", "c2", "c3"]);
    assert.equal(out.filter((a) => a.ready).length, 3);
    assert.ok(out.slice(3).every((a) => !a.ready && a.decisions.every((d) => d.kind === "wait")));
  });
});

describe("claimsToRelease", () => {
  test("releases claims of finished and long-gone pods only", () => {
    const s = state({
      pvcs: [
        pvc("done", { claim: { podName: "p-done", claimedAtMs: 0 } }),
        pvc("live", { claim: { podName: "p-live", claimedAtMs: 0 } }),
        pvc("gone", { claim: { podName: "p-gone", claimedAtMs: NOW - GRACE } }),
        pvc("young", { claim: { podName: "p-young", claimedAtMs: NOW - 1 } }),
        pvc("none"),
      ],
      pods: [{ name: "p-done", phase: "Succeeded", mountedPvcNames: ["done"] }, livePod("p-live", ["live"])],
    });
    assert.deepEqual(
      claimsToRelease(s).map((r) => [r.pvcName, r.reason]),
      [
        ["done", "pod-finished"],
        ["gone", "pod-gone"],
      ],
    );
  });
});
