import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  actionDuration,
  defaultPullPolicy,
  type ImagePullOptions,
  ImageStore,
  imageID,
  imageSizeBytes,
  MAX_NODE_STATUS_IMAGES,
  nodeStatusImages,
  normalizeImage,
  type PullPolicy,
  parseImagePullFlags,
  parseImageRef,
  pullAction,
  pullDuration,
} from "./images.ts";

describe("image references", () => {
  const cases: [string, string, PullPolicy][] = [
    ["ubuntu", "docker.io/library/ubuntu:latest", "Always"],
    ["ubuntu:24.04", "docker.io/library/ubuntu:24.04", "IfNotPresent"],
    ["ubuntu:latest", "docker.io/library/ubuntu:latest", "Always"],
    ["library/ubuntu:24.04", "docker.io/library/ubuntu:24.04", "IfNotPresent"],
    ["docker.io/ubuntu:24.04", "docker.io/library/ubuntu:24.04", "IfNotPresent"],
    ["index.docker.io/library/ubuntu:24.04", "docker.io/library/ubuntu:24.04", "IfNotPresent"],
    ["moby/buildkit:v0.20.0", "docker.io/moby/buildkit:v0.20.0", "IfNotPresent"],
    ["ghcr.io/org/agent:1.2.3", "ghcr.io/org/agent:1.2.3", "IfNotPresent"],
    ["ghcr.io/org/agent", "ghcr.io/org/agent:latest", "Always"],
    ["localhost:5000/agent:dev", "localhost:5000/agent:dev", "IfNotPresent"],
    ["registry:5000/team/agent", "registry:5000/team/agent:latest", "Always"],
    ["localhost/agent:dev", "localhost/agent:dev", "IfNotPresent"],
    ["ubuntu@sha256:abc", "docker.io/library/ubuntu@sha256:abc", "IfNotPresent"],
    ["ubuntu:24.04@sha256:abc", "docker.io/library/ubuntu:24.04@sha256:abc", "IfNotPresent"],
    ["example.com/sim-exit:0-300ms", "example.com/sim-exit:0-300ms", "IfNotPresent"],
  ];
  for (const [ref, normalized, policy] of cases) {
    test(`${ref} -> ${normalized}, default policy ${policy}`, () => {
      assert.equal(normalizeImage(ref), normalized);
      assert.equal(defaultPullPolicy(ref), policy, "the API server's default");
    });
  }

  test("parts", () => {
    assert.deepEqual(parseImageRef("ubuntu"), { repository: "docker.io/library/ubuntu" });
    assert.deepEqual(parseImageRef("localhost:5000/a/b:1@sha256:f"), {
      repository: "localhost:5000/a/b",
      tag: "1",
      digest: "sha256:f",
    });
  });

  test("image IDs: the repository and a stable digest; sizes stable and plausible", () => {
    assert.match(imageID("ubuntu:24.04"), /^docker\.io\/library\/ubuntu@sha256:[0-9a-f]{64}$/);
    assert.equal(imageID("ubuntu:24.04"), imageID("docker.io/library/ubuntu:24.04"));
    assert.notEqual(imageID("ubuntu:24.04"), imageID("ubuntu:22.04"));
    assert.equal(imageID("ubuntu@sha256:abc"), "docker.io/library/ubuntu@sha256:abc");
    for (const ref of ["a", "b:1", "ghcr.io/x/y:2"]) {
      assert.equal(imageSizeBytes(ref), imageSizeBytes(ref));
      assert.ok(imageSizeBytes(ref) >= 5 * 2 ** 20 && imageSizeBytes(ref) <= 2 ** 30);
    }
  });
});

describe("pullAction: what the kubelet does before starting a container", () => {
  const cases: [PullPolicy, boolean, string][] = [
    ["Always", false, "pull"],
    ["Always", true, "check"],
    ["IfNotPresent", false, "pull"],
    ["IfNotPresent", true, "present"],
    ["Never", false, "never"],
    ["Never", true, "present"],
  ];
  for (const [policy, present, action] of cases) {
    test(`${policy}, image ${present ? "present" : "absent"}: ${action}`, () => {
      assert.equal(pullAction(policy, present), action);
    });
  }
});

describe("pull durations", () => {
  const options: ImagePullOptions = {
    defaultPullMs: 100,
    pullMs: { "ghcr.io/org/agent": 5000, "ghcr.io/org/agent:slim": 800, ubuntu: 2000, "busybox:1.36": 50 },
  };
  const cases: [string, string, number][] = [
    ["pull", "ghcr.io/org/agent:1.0", 5000],
    ["pull", "ghcr.io/org/agent:slim", 800],
    ["pull", "ubuntu:24.04", 2000],
    ["pull", "docker.io/library/ubuntu", 2000],
    ["pull", "busybox:1.36", 50],
    ["pull", "busybox:1.37", 100],
    ["pull", "other:1", 100],
    ["check", "ghcr.io/org/agent:1.0", 200],
    ["check", "busybox:1.36", 50],
    ["present", "ghcr.io/org/agent:1.0", 0],
    ["never", "ghcr.io/org/agent:1.0", 0],
  ];
  for (const [action, ref, ms] of cases) {
    test(`${action} ${ref}: ${ms} ms`, () => {
      assert.equal(actionDuration(action as "pull", ref, options), ms);
    });
  }

  test("no options: everything is instant; checkMs overrides the check's time", () => {
    assert.equal(pullDuration("ubuntu", {}), 0);
    assert.equal(actionDuration("check", "ubuntu", {}), 0);
    assert.equal(actionDuration("check", "ubuntu", { defaultPullMs: 5000, checkMs: 20 }), 20);
  });
});

describe("nodeStatusImages", () => {
  test("digest and tag names per image, tags of one digest together, largest first", () => {
    const images = nodeStatusImages(["busybox:1.36", "ghcr.io/org/agent:1.0", "ghcr.io/org/agent@sha256:abc"]);
    assert.equal(images.length, 3);
    const sizes = images.map((i) => i.sizeBytes);
    assert.deepEqual(
      sizes,
      [...sizes].sort((a, b) => b - a),
    );
    const busybox = images.find((i) => i.names.includes("docker.io/library/busybox:1.36"));
    assert.deepEqual(busybox?.names, [imageID("busybox:1.36"), "docker.io/library/busybox:1.36"]);
    assert.ok(images.some((i) => i.names.length === 1 && i.names[0] === "ghcr.io/org/agent@sha256:abc"));
  });

  test(`at most ${MAX_NODE_STATUS_IMAGES}, like the kubelet`, () => {
    const refs = Array.from({ length: 80 }, (_, i) => `example.com/image-${i}:1`);
    assert.equal(nodeStatusImages(refs).length, MAX_NODE_STATUS_IMAGES);
    assert.deepEqual(nodeStatusImages([]), []);
  });
});

describe("parseImagePullFlags (sim:up --image-pull-ms, --image-check-ms)", () => {
  const cases: [string[], string | undefined, ImagePullOptions][] = [
    [[], undefined, {}],
    [["3000"], undefined, { defaultPullMs: 3000 }],
    [
      ["1000", "ghcr.io/org/agent=8000", "busybox:1.36=50"],
      "100",
      { defaultPullMs: 1000, pullMs: { "ghcr.io/org/agent": 8000, "busybox:1.36": 50 }, checkMs: 100 },
    ],
  ];
  for (const [values, check, expected] of cases) {
    test(`${values.join(" ") || "(none)"} ${check ?? ""}`, () => {
      assert.deepEqual(parseImagePullFlags(values, check), expected);
    });
  }
  const bad: [string[], string | undefined, RegExp][] = [
    [["fast"], undefined, /--image-pull-ms: expected milliseconds/],
    [["ubuntu=-1"], undefined, /--image-pull-ms ubuntu: expected milliseconds/],
    [["=100"], undefined, /no image before "="/],
    [[], "1.5", /--image-check-ms: expected milliseconds/],
  ];
  for (const [values, check, message] of bad) {
    test(`refused: ${values.join(" ")} ${check ?? ""}`, () => {
      assert.throws(() => parseImagePullFlags(values, check), message);
    });
  }
});

/** Pulls that end when the test says so; `started` lists what began, in order. */
function gatedDelay() {
  const started: string[] = [];
  const waiting = new Map<string, () => void>();
  const changes: (() => void)[] = [];
  const notify = () => {
    for (const f of changes.splice(0)) f();
  };
  return {
    started,
    delay: (ms: number, image: string) =>
      new Promise<void>((resolve) => {
        started.push(`${image} ${ms}`);
        waiting.set(image, resolve);
        notify();
      }),
    finish(image: string) {
      const f = waiting.get(normalizeImage(image));
      assert.ok(f, `no pull of ${image} under way (${[...waiting.keys()]})`);
      waiting.delete(normalizeImage(image));
      f();
    },
    /** Resolves once `n` delays have started. */
    async startedCount(n: number) {
      while (started.length < n) await new Promise<void>((r) => changes.push(r));
    },
  };
}

const request = (pod: string, image: string, policy: PullPolicy, signal = new AbortController().signal) => ({
  namespace: "ns",
  pod,
  container: "c",
  image,
  policy,
  signal,
});

describe("ImageStore", () => {
  test("a pulled image stays: the next IfNotPresent container uses it, an Always one checks it", async () => {
    const gate = gatedDelay();
    let changes = 0;
    const store = new ImageStore({ defaultPullMs: 1000, delay: gate.delay }, () => changes++);
    const first = store.ensure(request("a", "ghcr.io/org/agent:1", "IfNotPresent"));
    await gate.startedCount(1);
    assert.equal(store.has("ghcr.io/org/agent:1"), false, "not present while pulling");
    gate.finish("ghcr.io/org/agent:1");
    assert.deepEqual(await first, { ok: true, action: "pull" });
    assert.equal(changes, 1);
    assert.deepEqual(await store.ensure(request("b", "ghcr.io/org/agent:1", "IfNotPresent")), {
      ok: true,
      action: "present",
    });
    const check = store.ensure(request("c", "ghcr.io/org/agent:1", "Always"));
    await gate.startedCount(2);
    gate.finish("ghcr.io/org/agent:1");
    assert.deepEqual(await check, { ok: true, action: "check" });
    assert.deepEqual(gate.started, ["ghcr.io/org/agent:1 1000", "ghcr.io/org/agent:1 200"]);
    assert.equal(changes, 1, "a check adds no image");
    assert.deepEqual(
      store.records().map((r) => `${r.pod} ${r.policy} ${r.action} ${r.durationMs}`),
      ["a IfNotPresent pull 1000", "b IfNotPresent present 0", "c Always check 200"],
    );
    assert.match(store.records()[0]?.message ?? "", /^Successfully pulled image "ghcr.io\/org\/agent:1" in 1s\./);
    assert.equal(store.records()[1]?.message, 'Container image "ghcr.io/org/agent:1" already present on machine');
  });

  test("Never: an absent image is refused with the kubelet's message; a present one is used", async () => {
    const store = new ImageStore({ preloaded: ["busybox:1.36"] });
    assert.deepEqual(await store.ensure(request("a", "busybox:1.37", "Never")), {
      ok: false,
      action: "never",
      reason: "ErrImageNeverPull",
      message: 'Container image "busybox:1.37" is not present with pull policy of Never',
    });
    assert.deepEqual(await store.ensure(request("b", "docker.io/library/busybox:1.36", "Never")), {
      ok: true,
      action: "present",
    });
    assert.deepEqual(store.images(), ["docker.io/library/busybox:1.36"]);
  });

  test("containers needing an image being pulled share that pull", async () => {
    const gate = gatedDelay();
    const store = new ImageStore({ defaultPullMs: 500, delay: gate.delay });
    const a = store.ensure(request("a", "app:1", "IfNotPresent"));
    const b = store.ensure(request("b", "app:1", "IfNotPresent"));
    await gate.startedCount(1);
    gate.finish("app:1");
    assert.deepEqual(
      [await a, await b].map((r) => r.action),
      ["pull", "pull"],
    );
    assert.equal(gate.started.length, 1, "one pull");
  });

  test("pulls run one at a time (serializeImagePulls), or together when not serialized", async () => {
    const serial = gatedDelay();
    const store = new ImageStore({ defaultPullMs: 500, delay: serial.delay });
    const a = store.ensure(request("a", "one:1", "IfNotPresent"));
    const b = store.ensure(request("b", "two:1", "IfNotPresent"));
    await serial.startedCount(1);
    assert.deepEqual(serial.started, ["docker.io/library/one:1 500"], "the second waits for the first");
    serial.finish("one:1");
    await a;
    await serial.startedCount(2);
    serial.finish("two:1");
    await b;

    const parallel = gatedDelay();
    const store2 = new ImageStore({ defaultPullMs: 500, serialize: false, delay: parallel.delay });
    const c = store2.ensure(request("c", "one:1", "IfNotPresent"));
    const d = store2.ensure(request("d", "two:1", "IfNotPresent"));
    await parallel.startedCount(2);
    parallel.finish("two:1");
    parallel.finish("one:1");
    await Promise.all([c, d]);
  });

  test("a pod that stops stops waiting; the pull still fills the cache", async () => {
    const gate = gatedDelay();
    const { promise: pulled, resolve } = Promise.withResolvers<void>();
    const store = new ImageStore({ defaultPullMs: 500, delay: gate.delay }, resolve);
    const stop = new AbortController();
    const a = store.ensure(request("a", "app:1", "IfNotPresent", stop.signal));
    await gate.startedCount(1);
    stop.abort();
    assert.deepEqual(await a, { ok: false, action: "pull", reason: "Aborted" });
    gate.finish("app:1");
    await pulled;
    assert.deepEqual(await store.ensure(request("b", "app:1", "IfNotPresent")), { ok: true, action: "present" });
  });

  test("by default pulls are instant and take no timer", async () => {
    const store = new ImageStore();
    assert.deepEqual(await store.ensure(request("a", "app:1", "IfNotPresent")), { ok: true, action: "pull" });
    assert.deepEqual(store.statusImages(), nodeStatusImages(["app:1"]));
  });
});
