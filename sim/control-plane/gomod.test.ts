import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { goModulesDir, moduleSpecs, requiredVersion, stagingReplaces } from "./gomod.ts";

test("stagingReplaces maps each local staging module to its published version", () => {
  const gomod = [
    "module k8s.io/kubernetes",
    "replace (",
    "\tk8s.io/api => ./staging/src/k8s.io/api",
    "\tk8s.io/client-go => ./staging/src/k8s.io/client-go",
    "\tgithub.com/x/y => github.com/x/y v1.0.0",
    ")",
  ].join("\n");
  assert.deepEqual(stagingReplaces(gomod, "v1.37.2"), [
    "k8s.io/api => k8s.io/api v0.37.2",
    "k8s.io/client-go => k8s.io/client-go v0.37.2",
  ]);
  assert.throws(() => stagingReplaces("module x", "v1.37.2"), /no staging replace/);
  assert.throws(() => stagingReplaces(gomod, "v2.0.0"), /unexpected Kubernetes version/);
});

test("the committed wrapper modules pin the versions of versions.ts", () => {
  for (const spec of moduleSpecs()) {
    const gomod = readFileSync(join(goModulesDir, spec.folder, "go.mod"), "utf8");
    assert.equal(requiredVersion(gomod, spec.module), spec.version, `go/${spec.folder}/go.mod`);
    for (const tool of spec.tools)
      assert.match(
        gomod,
        new RegExp(`^tool\\s+${tool.replace(/\./g, "\\.")}$|^\\s+${tool.replace(/\./g, "\\.")}$`, "m"),
        tool,
      );
  }
});
