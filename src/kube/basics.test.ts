import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { resourcePath } from "./resource.ts";
import { objectKey, Store, splitKey } from "./store.ts";

describe("resourcePath", () => {
  const table: [Parameters<typeof resourcePath>, string][] = [
    [[{ apiVersion: "v1", resource: "pods" }], "/api/v1/pods"],
    [[{ apiVersion: "v1", resource: "pods" }, { namespace: "ci" }], "/api/v1/namespaces/ci/pods"],
    [
      [
        { apiVersion: "v1", resource: "pods" },
        { namespace: "ci", name: "p", subresource: "status" },
      ],
      "/api/v1/namespaces/ci/pods/p/status",
    ],
    [
      [
        { apiVersion: "coordination.k8s.io/v1", resource: "leases" },
        { namespace: "x", name: "l" },
      ],
      "/apis/coordination.k8s.io/v1/namespaces/x/leases/l",
    ],
    [[{ apiVersion: "v1", resource: "namespaces" }, { name: "ci" }], "/api/v1/namespaces/ci"],
  ];
  for (const [args, expected] of table) test(expected, () => assert.equal(resourcePath(...args), expected));
  test("rejects an empty name and a subresource without a name", () => {
    assert.throws(() => resourcePath({ apiVersion: "v1", resource: "pods" }, { name: "" }));
    assert.throws(() => resourcePath({ apiVersion: "v1", resource: "pods" }, { subresource: "status" }));
  });
});

describe("Store", () => {
  const o = (ns: string | undefined, name: string, rv: string, owner = "") => ({
    metadata: { name, resourceVersion: rv, ...(ns ? { namespace: ns } : {}), labels: { owner } },
  });
  test("keys, indexes, replace deltas", () => {
    const store = new Store<ReturnType<typeof o>>({
      owner: (x) => (x.metadata.labels.owner ? [x.metadata.labels.owner] : []),
    });
    assert.equal(objectKey(o("ns", "a", "1")), "ns/a");
    assert.equal(objectKey(o(undefined, "n", "1")), "n");
    assert.deepEqual(splitKey("ns/a"), { namespace: "ns", name: "a" });
    assert.deepEqual(splitKey("n"), { name: "n" });
    store.upsert(o("ns", "a", "1", "x"));
    store.upsert(o("ns", "b", "1", "x"));
    store.upsert(o("other", "c", "1", "y"));
    assert.deepEqual(
      store
        .byIndex("owner", "x")
        .map((x) => x.metadata.name)
        .sort(),
      ["a", "b"],
    );
    assert.equal(store.listByNamespace("ns").length, 2);
    store.upsert(o("ns", "b", "2", "y"));
    assert.deepEqual(
      store.byIndex("owner", "x").map((x) => x.metadata.name),
      ["a"],
    );
    const delta = store.replace([o("ns", "a", "1", "x"), o("ns", "b", "3", "y"), o("ns", "d", "1")]);
    assert.deepEqual(
      delta.added.map((x) => x.metadata.name),
      ["d"],
    );
    assert.deepEqual(
      delta.updated.map((x) => x.obj.metadata.name),
      ["b"],
    );
    assert.deepEqual(
      delta.deleted.map((x) => x.metadata.name),
      ["c"],
    );
    assert.deepEqual(
      store.byIndex("owner", "y").map((x) => x.metadata.name),
      ["b"],
    );
    assert.deepEqual(store.byIndex("owner", "missing"), []);
    assert.throws(() => store.byIndex("nope", "x"));
  });

  test("an index answer is the same list until an object of its bucket changes", () => {
    const store = new Store<ReturnType<typeof o>>({
      owner: (x) => (x.metadata.labels.owner ? [x.metadata.labels.owner] : []),
    });
    store.upsert(o("ns", "a", "1", "x"));
    store.upsert(o("ns", "b", "1", "y"));
    const names = (l: readonly ReturnType<typeof o>[]) =>
      l.map((x) => `${x.metadata.name}@${x.metadata.resourceVersion}`);
    type Step = [string, () => void, boolean, string[]];
    const steps: Step[] = [
      ["asked again", () => {}, true, ["a@1"]],
      ["another bucket's object changed", () => store.upsert(o("ns", "b", "2", "y")), true, ["a@1"]],
      ["its object replaced", () => store.upsert(o("ns", "a", "2", "x")), false, ["a@2"]],
      ["an object moved into it", () => store.upsert(o("ns", "b", "3", "x")), false, ["a@2", "b@3"]],
      ["an object moved out of it", () => store.upsert(o("ns", "b", "4", "y")), false, ["a@2"]],
      ["its object removed", () => store.remove("ns/a"), false, []],
      ["a relist that brings it back", () => store.replace([o("ns", "a", "5", "x")]), false, ["a@5"]],
      ["a relist that changes nothing of it", () => store.replace([o("ns", "a", "5", "x")]), false, ["a@5"]],
    ];
    let before = store.byIndex("owner", "x");
    for (const [label, change, same, want] of steps) {
      change();
      const now = store.byIndex("owner", "x");
      assert.equal(now === before, same, label);
      assert.deepEqual(names(now), want, label);
      before = now;
    }
  });

  test("every object as one list, the same until an object is added, replaced or removed", () => {
    const store = new Store<ReturnType<typeof o>>();
    store.upsert(o("ns", "a", "1"));
    const names = (l: readonly ReturnType<typeof o>[]) =>
      l.map((x) => `${x.metadata.name}@${x.metadata.resourceVersion}`).sort();
    type Step = [string, () => void, boolean, string[]];
    const steps: Step[] = [
      ["asked again", () => {}, true, ["a@1"]],
      ["an object added", () => store.upsert(o("other", "b", "1")), false, ["a@1", "b@1"]],
      ["asked again after the change", () => {}, true, ["a@1", "b@1"]],
      ["an object replaced", () => store.upsert(o("ns", "a", "2")), false, ["a@2", "b@1"]],
      ["an object removed", () => store.remove("other/b"), false, ["a@2"]],
      ["a key that is not there removed", () => store.remove("other/b"), true, ["a@2"]],
      ["a relist", () => store.replace([o("ns", "a", "2"), o("ns", "c", "1")]), false, ["a@2", "c@1"]],
    ];
    let before = store.all();
    for (const [label, change, same, want] of steps) {
      change();
      const now = store.all();
      assert.equal(now === before, same, label);
      assert.deepEqual(names(now), want, label);
      before = now;
    }
  });
});
