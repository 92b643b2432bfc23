import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { labels, MANAGED_BY_VALUE, prePullKeys } from "../api/v1/index.ts";
import {
  DEFAULT_PREPULL_IMAGES,
  HELPER_CONTAINER,
  normalizeImage,
  PAUSE_CONTAINER,
  type PlannedDaemonSet,
  type PrePullResource,
  planPrePull,
  TOOLS_DIR,
} from "./plan.ts";

type Spec = Record<string, unknown>;

function resource(
  templates: Spec[],
  prePull: PrePullResource["spec"]["imagePrePull"] = { enabled: true },
  name = "agents",
  uid = "uid-1",
): PrePullResource {
  return {
    metadata: { name, namespace: "ci", uid },
    spec: {
      poolName: "p",
      organizationUrl: "https://dev.azure.com/o",
      personalAccessTokenSecretName: "pat",
      ...(prePull ? { imagePrePull: prePull } : {}),
      podsWithCapabilities: templates.map((spec, i) => ({
        capabilities: { [`t${i}`]: "1" },
        maxCount: 2,
        podTemplateSpec: { spec: spec as never },
      })),
    },
  };
}

const agent = (image = "ghcr.io/org/agent:1.0", extra: Spec = {}) => ({ name: "agent", image, ...extra });
const podSpec = (ds: PlannedDaemonSet) =>
  ds.object.spec.template.spec as Spec & {
    initContainers: { name: string; image: string; command: string[]; imagePullPolicy: string }[];
    containers: { name: string; image: string }[];
    nodeSelector: Record<string, string>;
  };
const pullImages = (ds: PlannedDaemonSet) =>
  podSpec(ds)
    .initContainers.filter((c) => c.name !== HELPER_CONTAINER)
    .map((c) => c.image);

describe("normalizeImage", () => {
  const cases: [string, string][] = [
    ["ubuntu", "docker.io/library/ubuntu:latest"],
    ["ubuntu:24.04", "docker.io/library/ubuntu:24.04"],
    ["docker.io/library/ubuntu:24.04", "docker.io/library/ubuntu:24.04"],
    ["index.docker.io/library/ubuntu", "docker.io/library/ubuntu:latest"],
    ["org/app", "docker.io/org/app:latest"],
    ["ghcr.io/org/agent", "ghcr.io/org/agent:latest"],
    ["localhost/agent:dev", "localhost/agent:dev"],
    ["registry:5000/agent", "registry:5000/agent:latest"],
    ["registry:5000/agent:2", "registry:5000/agent:2"],
    ["ghcr.io/org/agent@sha256:abc", "ghcr.io/org/agent@sha256:abc"],
    ["ghcr.io/org/agent:1@sha256:abc", "ghcr.io/org/agent:1@sha256:abc"],
    [" busybox ", "docker.io/library/busybox:latest"],
  ];
  for (const [input, expected] of cases)
    test(`${input} -> ${expected}`, () => assert.equal(normalizeImage(input), expected));
});

describe("planPrePull", () => {
  test("rule 1: off unless enabled", () => {
    for (const prePull of [undefined, {}, { enabled: false }, { enabled: false, extraImages: ["x"] }]) {
      const r = resource([{ containers: [agent()] }]);
      if (prePull) r.spec.imagePrePull = prePull;
      else delete r.spec.imagePrePull;
      const plan = planPrePull(r);
      assert.deepEqual(plan, { enabled: false, daemonSets: [], images: [], notes: [] });
    }
  });

  test("rule 2: the agent image first, then other containers, then init containers and native sidecars", () => {
    const plan = planPrePull(
      resource([
        {
          initContainers: [
            { name: "setup", image: "busybox:1.36" },
            { name: "proxy", image: "envoy:1", restartPolicy: "Always" },
          ],
          containers: [agent(), { name: "docker", image: "docker:dind" }],
        },
      ]),
    );
    assert.equal(plan.daemonSets.length, 1);
    const ds = plan.daemonSets[0] as PlannedDaemonSet;
    assert.deepEqual(pullImages(ds), ["ghcr.io/org/agent:1.0", "docker:dind", "busybox:1.36", "envoy:1"]);
    assert.deepEqual(ds.images, [
      "ghcr.io/org/agent:1.0",
      "docker.io/library/docker:dind",
      "docker.io/library/busybox:1.36",
      "docker.io/library/envoy:1",
    ]);
    assert.deepEqual(plan.images, ds.images);
  });

  test("rule 3: an image only ever used with imagePullPolicy Never is left out; one pullable use keeps it", () => {
    const plan = planPrePull(
      resource([
        { containers: [agent("local/agent:1", { imagePullPolicy: "Never" }), { name: "s", image: "side:1" }] },
        {
          nodeSelector: { pool: "b" },
          containers: [agent("local/agent:1", { imagePullPolicy: "Never" })],
          initContainers: [{ name: "again", image: "docker.io/local/agent:1" }],
        },
      ]),
    );
    assert.deepEqual(plan.daemonSets.map(pullImages), [["side:1"], ["local/agent:1"]]);
  });

  test("rule 3: a placement with nothing to pull gets no DaemonSet", () => {
    const plan = planPrePull(resource([{ containers: [agent("local/agent:1", { imagePullPolicy: "Never" })] }]));
    assert.deepEqual(plan.daemonSets, []);
    assert.equal(plan.enabled, true);
  });

  test("rule 4: templates with the same placement share a DaemonSet; others get their own", () => {
    const plan = planPrePull(
      resource([
        { nodeSelector: { pool: "a" }, containers: [agent("agent:a")] },
        { nodeSelector: { pool: "b" }, containers: [agent("agent:b")] },
        // Same placement as the first, keys in another order, tolerations in another order.
        {
          nodeSelector: { pool: "a" },
          tolerations: [
            { key: "y", operator: "Exists" },
            { key: "x", operator: "Exists" },
          ],
          containers: [agent("agent:c")],
        },
        {
          nodeSelector: { pool: "a" },
          tolerations: [
            { operator: "Exists", key: "x" },
            { key: "y", operator: "Exists" },
          ],
          containers: [agent("agent:d")],
        },
        // Preferred affinity, pod anti-affinity and spread constraints do not change the placement.
        {
          nodeSelector: { pool: "a" },
          affinity: {
            nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: {} }] },
            podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [] },
          },
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "zone", whenUnsatisfiable: "DoNotSchedule" }],
          containers: [agent("agent:e")],
        },
      ]),
    );
    assert.deepEqual(
      plan.daemonSets.map((d) => d.templateIndexes),
      [[0, 4], [1], [2, 3]],
    );
    assert.deepEqual(plan.daemonSets.map(pullImages), [["agent:a", "agent:e"], ["agent:b"], ["agent:c", "agent:d"]]);
    assert.equal(new Set(plan.daemonSets.map((d) => d.name)).size, 3);
    const spec = podSpec(plan.daemonSets[2] as PlannedDaemonSet);
    assert.deepEqual(spec.tolerations, [
      { key: "x", operator: "Exists" },
      { key: "y", operator: "Exists" },
    ]);
    assert.equal(podSpec(plan.daemonSets[0] as PlannedDaemonSet).affinity, undefined, "preferred affinity dropped");
  });

  test("rule 4: required node affinity, runtime class, service account and nodeName are part of the placement", () => {
    const required = { nodeSelectorTerms: [{ matchExpressions: [{ key: "gpu", operator: "Exists" }] }] };
    const plan = planPrePull(
      resource([
        { containers: [agent()] },
        {
          affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } },
          containers: [agent()],
        },
        { runtimeClassName: "kata", containers: [agent()] },
        { serviceAccountName: "builder", containers: [agent()] },
        { serviceAccount: "builder", containers: [agent()] },
        { nodeName: "node-7", containers: [agent()] },
      ]),
    );
    assert.deepEqual(
      plan.daemonSets.map((d) => d.templateIndexes),
      [[0], [1], [2], [3, 4], [5]],
    );
    const [plain, affinity, kata, sa, pinned] = plan.daemonSets.map(podSpec);
    assert.deepEqual(affinity?.affinity, {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required },
    });
    assert.equal(kata?.runtimeClassName, "kata");
    assert.equal(sa?.serviceAccountName, "builder");
    assert.equal(plain?.serviceAccountName, undefined);
    assert.deepEqual(pinned?.nodeSelector, { "kubernetes.io/hostname": "node-7", "kubernetes.io/os": "linux" });
  });

  test("rules 5 and 6: Windows templates are skipped with a note; Linux is selected unless the template names the OS", () => {
    const plan = planPrePull(
      resource([
        { nodeSelector: { "kubernetes.io/os": "windows" }, containers: [agent("agent:win")] },
        { os: { name: "windows" }, containers: [agent("agent:win2")] },
        { nodeSelector: { pool: "a" }, containers: [agent("agent:linux")] },
        { nodeSelector: { "kubernetes.io/os": "linux", pool: "b" }, containers: [agent("agent:linux2")] },
      ]),
    );
    assert.deepEqual(plan.notes, [
      "template 0 is for Windows nodes: its images are not pre-pulled",
      "template 1 is for Windows nodes: its images are not pre-pulled",
    ]);
    assert.deepEqual(
      plan.daemonSets.map((d) => podSpec(d).nodeSelector),
      [
        { pool: "a", "kubernetes.io/os": "linux" },
        { "kubernetes.io/os": "linux", pool: "b" },
      ],
    );
  });

  test("rules 7 and 8: extra images go to every DaemonSet; images are compared normalized, first spelling kept", () => {
    const plan = planPrePull(
      resource(
        [
          {
            nodeSelector: { pool: "a" },
            containers: [agent("ubuntu"), { name: "s", image: "docker.io/library/ubuntu:latest" }],
          },
          { nodeSelector: { pool: "b" }, containers: [agent("ghcr.io/org/agent:2")] },
        ],
        { enabled: true, extraImages: ["postgres:16", "ghcr.io/org/agent:2", "docker.io/library/postgres:16"] },
      ),
    );
    assert.deepEqual(plan.daemonSets.map(pullImages), [
      ["ubuntu", "postgres:16", "ghcr.io/org/agent:2"],
      ["ghcr.io/org/agent:2", "postgres:16"],
    ]);
    assert.deepEqual(plan.images, [
      "docker.io/library/ubuntu:latest",
      "docker.io/library/postgres:16",
      "ghcr.io/org/agent:2",
    ]);
  });

  test("rule 8: an extra image makes an image that the templates only use with Never pullable", () => {
    const plan = planPrePull(
      resource([{ containers: [agent("local/agent:1", { imagePullPolicy: "Never" })] }], {
        enabled: true,
        extraImages: ["local/agent:1"],
      }),
    );
    assert.deepEqual(plan.daemonSets.map(pullImages), [["local/agent:1"]]);
  });

  test("rule 9: image pull secrets of the placement's templates, by name, once", () => {
    const plan = planPrePull(
      resource([
        { imagePullSecrets: [{ name: "a" }, { name: "b" }], containers: [agent()] },
        { imagePullSecrets: [{ name: "b" }, { name: "c" }], containers: [agent("other:1")] },
      ]),
    );
    assert.deepEqual(podSpec(plan.daemonSets[0] as PlannedDaemonSet).imagePullSecrets, [
      { name: "a" },
      { name: "b" },
      { name: "c" },
    ]);
  });

  test("rule 10: helper copies a static true, each image runs it, pause keeps the pod; restricted and tiny", () => {
    const plan = planPrePull(
      resource([{ containers: [agent(), { name: "side", image: "distroless/static:nonroot" }] }]),
      {
        pauseImage: "mirror.example/pause:3.10",
        helperImage: "mirror.example/busybox:1.37.0-musl",
      },
    );
    const spec = podSpec(plan.daemonSets[0] as PlannedDaemonSet);
    const [helper, ...pulls] = spec.initContainers;
    assert.equal(helper?.name, HELPER_CONTAINER);
    assert.equal(helper?.image, "mirror.example/busybox:1.37.0-musl");
    assert.deepEqual(helper?.command, ["cp", "/bin/true", `${TOOLS_DIR}/true`]);
    assert.deepEqual(
      pulls.map((c) => [c.name, c.command, c.imagePullPolicy]),
      [
        ["pull-0-agent", [`${TOOLS_DIR}/true`], "IfNotPresent"],
        ["pull-1-static", [`${TOOLS_DIR}/true`], "IfNotPresent"],
      ],
    );
    assert.deepEqual(
      spec.containers.map((c) => [c.name, c.image]),
      [[PAUSE_CONTAINER, "mirror.example/pause:3.10"]],
    );
    assert.equal(spec.automountServiceAccountToken, false);
    assert.equal(spec.enableServiceLinks, false);
    assert.deepEqual(spec.securityContext, {
      runAsNonRoot: true,
      runAsUser: 65534,
      runAsGroup: 65534,
      seccompProfile: { type: "RuntimeDefault" },
    });
    for (const c of [...spec.initContainers, ...spec.containers] as Spec[]) {
      assert.deepEqual(c.securityContext, {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
      });
      assert.deepEqual(c.resources, {
        requests: { cpu: "1m", memory: "8Mi" },
        limits: { cpu: "100m", memory: "32Mi" },
      });
    }
  });

  test("rule 10: pull container names are DNS labels, unique by index", () => {
    const long = `registry.example/${"x".repeat(80)}:1`;
    const plan = planPrePull(
      resource([
        {
          containers: [
            agent("Reg.Example/Org/My_Agent:1"),
            { name: "l", image: long },
            { name: "d", image: "a/b@sha256:00" },
          ],
        },
      ]),
    );
    const names = podSpec(plan.daemonSets[0] as PlannedDaemonSet).initContainers.map((c) => c.name);
    assert.deepEqual(names.slice(0, 2), [HELPER_CONTAINER, "pull-0-my-agent"]);
    for (const n of names) assert.match(n, /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    assert.equal(names[3], "pull-2-b");
  });

  test("rule 11: names, labels, selector and owner reference", () => {
    const plan = planPrePull(resource([{ containers: [agent()] }]));
    const ds = plan.daemonSets[0] as PlannedDaemonSet;
    assert.match(ds.name, /^agents-prepull-[0-9a-f]{8}$/);
    assert.match(ds.selector, /^[0-9a-f]{16}$/);
    assert.equal(ds.object.metadata.namespace, "ci");
    assert.deepEqual(ds.object.metadata.labels, {
      [labels.managedBy]: MANAGED_BY_VALUE,
      "app.kubernetes.io/component": "image-prepull",
      [labels.resource]: "agents",
      [prePullKeys.selector]: ds.selector,
    });
    assert.deepEqual(ds.object.spec.selector, { matchLabels: { [prePullKeys.selector]: ds.selector } });
    assert.equal(ds.object.spec.template.metadata.labels[prePullKeys.selector], ds.selector);
    assert.equal(ds.object.spec.template.metadata.labels[labels.managedBy], undefined, "not an agent pod");
    assert.equal(ds.object.spec.template.metadata.labels[labels.resource], undefined, "not an agent pod");
    assert.deepEqual(ds.object.metadata.ownerReferences, [
      {
        apiVersion: "azurepipelines.k8s.scaler.io/v1",
        kind: "AutoScaledAgent",
        name: "agents",
        uid: "uid-1",
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    assert.equal(ds.object.metadata.annotations[prePullKeys.templates], "0");
  });

  test("rule 11: a changed image keeps the name; another resource with the same placement gets another selector", () => {
    const one = planPrePull(resource([{ containers: [agent("agent:1")] }])).daemonSets[0] as PlannedDaemonSet;
    const two = planPrePull(resource([{ containers: [agent("agent:2")] }])).daemonSets[0] as PlannedDaemonSet;
    const other = planPrePull(resource([{ containers: [agent("agent:1")] }], { enabled: true }, "agents", "uid-2"))
      .daemonSets[0] as PlannedDaemonSet;
    assert.equal(one.name, two.name);
    assert.equal(one.selector, two.selector);
    assert.notEqual(one.specHash, two.specHash);
    assert.equal(other.name, one.name, "names are per namespace and resource");
    assert.notEqual(other.selector, one.selector);
  });

  test("rule 11: a long resource name is cut so the DaemonSet name stays a valid, bounded name", () => {
    const name = `${"a".repeat(199)}-${"b".repeat(53)}`;
    const ds = planPrePull(resource([{ containers: [agent()] }], { enabled: true }, name))
      .daemonSets[0] as PlannedDaemonSet;
    assert.ok(ds.name.length <= 217, `${ds.name.length}`);
    assert.match(ds.name, /^a+-prepull-[0-9a-f]{8}$/);
    assert.match(ds.object.metadata.labels[labels.resource] ?? "", /^[a-z0-9-]{1,63}$/);
  });

  test("rule 12: rolling updates a quarter at a time", () => {
    const ds = planPrePull(resource([{ containers: [agent()] }])).daemonSets[0] as PlannedDaemonSet;
    assert.deepEqual(ds.object.spec.updateStrategy, {
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: "25%" },
    });
  });

  test("rule 13: the spec hash follows the DaemonSet, not the template's other fields", () => {
    const hash = (spec: Spec, images = DEFAULT_PREPULL_IMAGES) =>
      (planPrePull(resource([spec]), images).daemonSets[0] as PlannedDaemonSet).specHash;
    const base = hash({ containers: [agent()] });
    assert.equal(hash({ containers: [agent("ghcr.io/org/agent:1.0", { env: [{ name: "X", value: "1" }] })] }), base);
    assert.equal(hash({ containers: [agent()], terminationGracePeriodSeconds: 99 }), base);
    assert.notEqual(hash({ containers: [agent("ghcr.io/org/agent:1.1")] }), base);
    assert.notEqual(hash({ containers: [agent()] }, { ...DEFAULT_PREPULL_IMAGES, pauseImage: "p:1" }), base);
    const ds = planPrePull(resource([{ containers: [agent()] }])).daemonSets[0] as PlannedDaemonSet;
    assert.equal(ds.object.metadata.annotations[prePullKeys.specHash], ds.specHash);
  });
});
