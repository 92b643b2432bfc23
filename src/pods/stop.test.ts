import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEFAULT_TERMINATOR_IMAGE, resolveTerminatorImage, stopContainersPatch } from "./stop.ts";

const SIM = "registry.local/sim-exit:0";

const pod = {
  spec: {
    containers: [
      { name: "agent", image: "agent:1", args: ["--once"], env: [{ name: "AZP_URL", value: "u" }] },
      { name: "buildkit", image: "moby/buildkit:rootless", args: ["--oci-worker-no-process-sandbox"] },
      { name: "node", image: "node:22", resources: { limits: { cpu: "1" } } },
      { name: "done", image: SIM },
    ],
    initContainers: [{ name: "docker", image: "docker:dind", restartPolicy: "Always" }],
  },
};

/** Applies a strategic-merge patch of containers the way the API server merges by name (enough for these tests). */
function applyStrategic(
  target: typeof pod,
  patch: { spec: { containers: { name: string; image: string }[] } },
): typeof pod {
  const out = structuredClone(target);
  for (const change of patch.spec.containers) {
    const c = out.spec.containers.find((x) => x.name === change.name);
    assert.ok(c, `patch names unknown container ${change.name}`);
    Object.assign(c, change);
  }
  return out;
}

describe("stopContainersPatch (strategic merge)", () => {
  test("changes only the image of the named containers", () => {
    const patch = stopContainersPatch(["buildkit", "node"], SIM);
    assert.deepEqual(patch, {
      spec: {
        containers: [
          { name: "buildkit", image: SIM },
          { name: "node", image: SIM },
        ],
      },
    });
    for (const c of patch.spec.containers) assert.deepEqual(Object.keys(c).sort(), ["image", "name"]);
    const after = applyStrategic(pod, patch);
    assert.equal(after.spec.containers[1]?.image, SIM);
    assert.deepEqual(after.spec.containers[1]?.args, pod.spec.containers[1]?.args);
    assert.deepEqual(after.spec.containers[2]?.resources, { limits: { cpu: "1" } });
    assert.deepEqual(after.spec.containers[0], pod.spec.containers[0]);
    assert.deepEqual(after.spec.initContainers, pod.spec.initContainers);
    assert.equal("initContainers" in patch.spec, false);
    assert.equal("metadata" in patch, false);
  });
  test("names appear once", () => {
    assert.deepEqual(stopContainersPatch(["a", "a"], SIM).spec.containers, [{ name: "a", image: SIM }]);
  });
  test("the default terminator image", () => {
    assert.deepEqual(stopContainersPatch(["a"]).spec.containers, [{ name: "a", image: DEFAULT_TERMINATOR_IMAGE }]);
  });
});

describe("terminator image", () => {
  test("default, trimmed, or refused", () => {
    assert.equal(resolveTerminatorImage(), DEFAULT_TERMINATOR_IMAGE);
    assert.equal(resolveTerminatorImage("  "), DEFAULT_TERMINATOR_IMAGE);
    assert.equal(resolveTerminatorImage(` ${SIM} `), SIM);
    assert.equal(resolveTerminatorImage("busybox:1.37"), "busybox:1.37");
    assert.throws(() => resolveTerminatorImage("Not An Image"), RangeError);
  });
  test("the default is a valid reference", () => {
    assert.equal(resolveTerminatorImage(DEFAULT_TERMINATOR_IMAGE), DEFAULT_TERMINATOR_IMAGE);
  });
});
