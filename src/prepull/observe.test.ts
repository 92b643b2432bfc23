import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { prePullKeys } from "../api/v1/index.ts";
import { needsApply, type ObservedDaemonSet, type ObservedPrePullPod, observePrePull } from "./observe.ts";
import { HELPER_CONTAINER, type PlannedDaemonSet, type PrePullPlan, planPrePull } from "./plan.ts";

const plan = (templates: { selector?: Record<string, string>; image: string }[], extra?: string[]) =>
  planPrePull({
    metadata: { name: "agents", namespace: "ci", uid: "u1" },
    spec: {
      poolName: "p",
      organizationUrl: "https://dev.azure.com/o",
      imagePrePull: { enabled: true, ...(extra ? { extraImages: extra } : {}) },
      podsWithCapabilities: templates.map((t, i) => ({
        capabilities: { [`t${i}`]: "1" },
        maxCount: 1,
        podTemplateSpec: {
          spec: { nodeSelector: t.selector ?? {}, containers: [{ name: "agent", image: t.image }] },
        },
      })),
    },
  });

const ds = (planned: PlannedDaemonSet, desired: number): ObservedDaemonSet => ({
  metadata: { name: planned.name },
  status: { desiredNumberScheduled: desired },
});

let podSeq = 0;
function pod(
  planned: PlannedDaemonSet,
  options: {
    images?: string[];
    ready?: boolean;
    node?: string;
    deleting?: boolean;
    init?: ObservedPrePullPod["status"] extends infer S
      ? S extends { initContainerStatuses?: infer I }
        ? I
        : never
      : never;
    main?: ObservedPrePullPod["status"] extends infer S
      ? S extends { containerStatuses?: infer I }
        ? I
        : never
      : never;
  } = {},
): ObservedPrePullPod {
  const n = ++podSeq;
  const spelled = (planned.object.spec.template.spec.initContainers as { name: string; image: string }[])
    .filter((c) => c.name !== HELPER_CONTAINER)
    .map((c) => c.image);
  const images = options.images ?? spelled;
  return {
    metadata: {
      name: `${planned.name}-${n}`,
      uid: `pod-${n}`,
      labels: { [prePullKeys.selector]: planned.selector },
      ...(options.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: {
      nodeName: options.node ?? `node-${n}`,
      initContainers: [
        { name: HELPER_CONTAINER, image: "busybox" },
        ...images.map((image, i) => ({ name: `pull-${i}`, image })),
      ],
    },
    status: {
      conditions: [{ type: "Ready", status: options.ready === false ? "False" : "True" }],
      ...(options.init ? { initContainerStatuses: options.init } : {}),
      ...(options.main ? { containerStatuses: options.main } : {}),
    },
  };
}

const first = (p: PrePullPlan) => p.daemonSets[0] as PlannedDaemonSet;

describe("observePrePull", () => {
  test("rule 1 and 2: ready on N of M nodes, summed over DaemonSets", () => {
    const p = plan([
      { selector: { pool: "a" }, image: "agent:a" },
      { selector: { pool: "b" }, image: "agent:b" },
    ]);
    const [a, b] = p.daemonSets as [PlannedDaemonSet, PlannedDaemonSet];
    const o = observePrePull({
      plan: p,
      daemonSets: [ds(a, 2), ds(b, 3)],
      pods: [pod(a), pod(a), pod(b), pod(b, { ready: false }), pod(b, { deleting: true })],
    });
    assert.deepEqual(o.status, {
      desiredNodes: 5,
      readyNodes: 3,
      images: 2,
      daemonSets: [a.name, b.name],
      message: "pulling: images present on 3 of 5 nodes",
    });
    assert.equal(o.complete, false);
    assert.deepEqual(o.problems, []);
  });

  test("rule 1: a DaemonSet not seen yet counts no node and the pre-pull is not complete", () => {
    const p = plan([{ image: "agent:1" }]);
    const o = observePrePull({ plan: p, daemonSets: [], pods: [] });
    assert.deepEqual(o.status, {
      desiredNodes: 0,
      readyNodes: 0,
      images: 1,
      daemonSets: [first(p).name],
      message: "creating the pre-pull DaemonSets",
    });
    assert.equal(o.complete, false);
  });

  test("rule 2: during a rolling update a node counts only once its pod has pulled the new images", () => {
    const p = plan([{ image: "agent:2" }]);
    const planned = first(p);
    const o = observePrePull({
      plan: p,
      daemonSets: [ds(planned, 2)],
      // Old pod (agent:1) still Ready; new pod pulled agent:2 (spelled differently).
      pods: [pod(planned, { images: ["agent:1"] }), pod(planned, { images: ["docker.io/library/agent:2"] })],
    });
    assert.equal(o.status.readyNodes, 1);
    assert.equal(o.complete, false);
  });

  test("rule 2: everything ready: complete, no message; pods of other DaemonSets do not count", () => {
    const p = plan([{ image: "agent:1" }]);
    const other = first(plan([{ image: "agent:1", selector: { pool: "x" } }]));
    const o = observePrePull({ plan: p, daemonSets: [ds(first(p), 1)], pods: [pod(first(p)), pod(other)] });
    assert.equal(o.status.readyNodes, 1);
    assert.equal(o.status.message, undefined);
    assert.equal(o.complete, true);
  });

  test("rule 2: no node matches: nothing to wait for", () => {
    const p = plan([{ image: "agent:1" }]);
    const o = observePrePull({ plan: p, daemonSets: [ds(first(p), 0)], pods: [] });
    assert.equal(o.complete, true);
    assert.equal(o.status.desiredNodes, 0);
  });

  test("rule 3: pull errors and failing containers become problems with stable keys", () => {
    const p = plan([{ image: "agent:1" }], ["tools:does-not-exist"]);
    const planned = first(p);
    const pulling = pod(planned, {
      ready: false,
      node: "n1",
      init: [
        { name: HELPER_CONTAINER, state: { terminated: { exitCode: 0, reason: "Completed" } } },
        { name: "pull-0", state: { terminated: { exitCode: 0, reason: "Completed" } } },
        { name: "pull-1", state: { waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image" } } },
      ],
    });
    const crashing = pod(planned, {
      ready: false,
      node: "n2",
      init: [
        { name: HELPER_CONTAINER, state: { terminated: { exitCode: 0 } } },
        {
          name: "pull-0",
          state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 10s" } },
          lastState: { terminated: { exitCode: 126, reason: "Error" } },
        },
      ],
    });
    const pauseMissing = pod(planned, {
      ready: false,
      node: "n3",
      main: [{ name: "pause", state: { waiting: { reason: "ErrImagePull", message: "not found" } } }],
    });
    const o = observePrePull({ plan: p, daemonSets: [ds(planned, 3)], pods: [pulling, crashing, pauseMissing] });
    assert.deepEqual(
      o.problems.map((x) => [x.key, x.reason, x.node, x.container, x.image]),
      [
        [`${pulling.metadata.uid}/pull-1/ErrImagePull`, "ImagePrePullFailed", "n1", "pull-1", "tools:does-not-exist"],
        [`${crashing.metadata.uid}/pull-0/failed`, "ImagePrePullContainerFailed", "n2", "pull-0", "agent:1"],
        [`${pauseMissing.metadata.uid}/pause/ErrImagePull`, "ImagePrePullFailed", "n3", "pause", undefined],
      ],
    );
    assert.equal(
      o.problems[0]?.message,
      "image tools:does-not-exist cannot be pulled on node n1 (ImagePullBackOff: Back-off pulling image)",
    );
    assert.equal(
      o.problems[1]?.message,
      "pre-pull container pull-0 (agent:1) fails on node n2 (CrashLoopBackOff, exit code 126, back-off 10s)",
    );
    assert.equal(o.problems[2]?.message, "the pause image cannot be pulled on node n3 (ErrImagePull: not found)");
    assert.equal(o.status.message, `${o.problems[0]?.message}; 2 more problem(s)`);
    assert.equal(o.status.readyNodes, 0);
  });

  test("rule 3: ErrImagePull and ImagePullBackOff of one container are one problem (one key)", () => {
    const p = plan([{ image: "agent:1" }]);
    const planned = first(p);
    const keyOf = (reason: string) =>
      observePrePull({
        plan: p,
        daemonSets: [ds(planned, 1)],
        pods: [
          {
            ...pod(planned),
            metadata: { name: "x", uid: "same", labels: { [prePullKeys.selector]: planned.selector } },
            status: { initContainerStatuses: [{ name: "pull-0", state: { waiting: { reason } } }] },
          },
        ],
      }).problems[0]?.key;
    assert.equal(keyOf("ErrImagePull"), keyOf("ImagePullBackOff"));
  });

  test("rule 4: the plan's notes when nothing is wrong", () => {
    const p = plan([{ image: "agent:1" }]);
    p.notes.push("template 1 is for Windows nodes: its images are not pre-pulled");
    const o = observePrePull({ plan: p, daemonSets: [ds(first(p), 1)], pods: [pod(first(p))] });
    assert.equal(o.status.message, "template 1 is for Windows nodes: its images are not pre-pulled");
  });

  test("rule 4: apply problems come after pod problems and before notes; the pre-pull is not complete", () => {
    const p = plan([{ image: "agent:1" }]);
    p.notes.push("a note");
    const o = observePrePull({
      plan: p,
      daemonSets: [ds(first(p), 1)],
      pods: [pod(first(p))],
      applyProblems: ["applying DaemonSet x failed: denied by policy"],
    });
    assert.equal(o.status.message, "applying DaemonSet x failed: denied by policy");
    assert.equal(o.complete, false);
  });
});

describe("needsApply (rule 5)", () => {
  const p = plan([{ image: "agent:1" }]);
  const planned = first(p);
  const template = structuredClone(planned.object.spec.template) as NonNullable<ObservedDaemonSet["spec"]>["template"];
  const observed = (changes: { hash?: string; template?: typeof template } = {}): ObservedDaemonSet => ({
    metadata: { name: planned.name, annotations: { [prePullKeys.specHash]: changes.hash ?? planned.specHash } },
    spec: { template: changes.template ?? template },
  });
  const edited = structuredClone(template);
  const init = edited?.spec?.initContainers?.[1];
  if (init) init.image = "agent:hacked";
  const cases: [string, ObservedDaemonSet | undefined, boolean][] = [
    ["missing", undefined, true],
    ["as planned (server defaults aside)", observed(), false],
    ["another spec hash", observed({ hash: "0000000000000000" }), true],
    ["an edited image, hash unchanged", observed({ template: edited }), true],
    ["no template observed", { metadata: observed().metadata }, true],
  ];
  for (const [name, o, expected] of cases) test(name, () => assert.equal(needsApply(planned, o), expected));
});
