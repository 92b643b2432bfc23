/**
 * The Makefile: kubebuilder's familiar targets as thin wrappers over the project's own commands. `make help` lists
 * every target with a description; `make -n` shows what a target runs; `make deploy` is run for real against a
 * stand-in kubectl (kustomize is the real one) to show that IMG reaches the Deployment and nothing else changes.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { CRD_FILE, find, kustomize, parseYamlDocuments, repoRoot, tempDir, tools } from "./support.ts";

const hasMake = spawnSync("make", ["--version"]).status === 0;

/** Runs make in the repository, without the make variables of a caller (a make running the tests). */
function make(args: string[]): string {
  // npm sets NODE (and npm_* variables) for its scripts; the Makefile reads NODE, so the test runs without it.
  const { MAKEFLAGS: _flags, MAKELEVEL: _level, MFLAGS: _mflags, NODE: _node, ...env } = process.env;
  const r = spawnSync("make", ["--no-print-directory", ...args], { cwd: repoRoot, env, encoding: "utf8" });
  assert.equal(r.status, 0, `make ${args.join(" ")} failed\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The targets the Makefile defines (rule lines), in order. */
function definedTargets(): string[] {
  const text = readFileSync(join(repoRoot, "Makefile"), "utf8");
  return [...text.matchAll(/^([a-zA-Z0-9_][a-zA-Z0-9_.-]*):(?!=)/gm)].map((m) => m[1] as string);
}

/** `make help` as target -> description. */
function helpEntries(): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of make(["help"]).split("\n")) {
    const m = /^ {2}([a-zA-Z0-9_.-]+) +(\S.*)$/.exec(line);
    if (m && !m[1]?.includes("=")) entries.set(m[1] as string, m[2] as string);
  }
  return entries;
}

describe("Makefile", { skip: hasMake ? false : "make is not installed" }, () => {
  test("make help lists every target with a one-line description, and is the default goal", () => {
    const help = helpEntries();
    assert.deepEqual([...help.keys()], definedTargets(), "every target, in the Makefile's order");
    for (const [target, description] of help) assert.ok(description.length > 10, `${target}: ${description}`);
    for (const familiar of [
      "help",
      "install",
      "uninstall",
      "run",
      "deploy",
      "undeploy",
      "manifests",
      "docker-build",
      "docker-push",
      "test",
      "demo",
    ]) {
      assert.ok(help.has(familiar), `the original's target ${familiar}`);
    }
    assert.equal(make([]), make(["help"]));
    const phony: string[] = readFileSync(join(repoRoot, "Makefile"), "utf8").match(/^\.PHONY: .*$/gm) ?? [];
    for (const target of help.keys()) assert.ok(phony.includes(`.PHONY: ${target}`), `${target} is .PHONY`);
  });

  const crd = `config/crd/${CRD_FILE}`;
  const cases: [string[], string[]][] = [
    [["install"], ["kubectl apply --server-side -k config/crd"]],
    [["uninstall"], ["kubectl delete --ignore-not-found -k config/crd"]],
    [["run"], ["npm start"]],
    [["run", "ARGS=--log-format text --watch-namespaces ci"], ["npm start -- --log-format text --watch-namespaces ci"]],
    [["undeploy"], ["kubectl delete --ignore-not-found -k config/default"]],
    [
      ["manifests"],
      ["npx node src/api/v1/generate-crd.ts", `cp ${crd} charts/azure-pipelines-k8s-agent-scaler/crds/${CRD_FILE}`],
    ],
    [
      ["docker-build", "IMG=registry.example/op:1", "AGENT_IMG=registry.example/agent:2"],
      [
        "docker build -f images/operator/Dockerfile -t registry.example/op:1 .",
        "docker build -f images/agent/Dockerfile -t registry.example/agent:2 .",
      ],
    ],
    [
      [
        "docker-build-agent",
        "CONTAINER_TOOL=podman",
        "AGENT_IMG=a:1",
        "DOCKER_BUILD_ARGS=--build-arg AGENT_VERSION=4.1.0",
      ],
      ["podman build --build-arg AGENT_VERSION=4.1.0 -f images/agent/Dockerfile -t a:1 ."],
    ],
    [
      ["docker-push", "IMG=r/op:1", "AGENT_IMG=r/agent:1"],
      ["docker push r/op:1", "docker push r/agent:1"],
    ],
    [["test"], ["npm test"]],
    [["demo"], ["npm run demo"]],
    [["sim-up", "NPM=pnpm"], ["pnpm run sim:up"]],
  ];
  for (const [args, expected] of cases) {
    test(`make -n ${args.join(" ")}`, () => {
      const lines = make(["-n", ...args])
        .split("\n")
        .map((l) => l.trim().replace(/\s+/g, " "))
        .filter(Boolean);
      assert.deepEqual(lines, expected);
    });
  }

  test("the default images carry package.json's version", () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
    const out = make(["-n", "docker-build"]);
    assert.match(out, new RegExp(`-t ghcr.io/azure-pipelines-k8s-agent-scaler/operator:${version} \\.`));
    assert.match(out, new RegExp(`-t ghcr.io/azure-pipelines-k8s-agent-scaler/agent:${version} \\.`));
  });

  test("make verify-manifests: the committed CRD and the chart's copy are what make manifests writes", () => {
    make(["verify-manifests", `NODE=${process.execPath}`]);
  });

  // A kubectl that runs the real `kubectl kustomize` and records what `apply` receives.
  async function fakeKubectl() {
    const { kubectl } = await tools();
    const dir = tempDir("make-deploy-");
    const path = join(dir, "kubectl");
    writeFileSync(
      path,
      `#!/usr/bin/env bash
set -eu
case "$1" in
  kustomize) exec "${kubectl}" "$@" ;;
  apply) echo "$*" > "${dir}/apply-args"; cat > "${dir}/applied.yaml" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
`,
    );
    chmodSync(path, 0o755);
    return {
      path,
      args: () => readFileSync(join(dir, "apply-args"), "utf8").trim(),
      applied: () => parseYamlDocuments(readFileSync(join(dir, "applied.yaml"), "utf8")),
    };
  }

  const deploymentImage = (objs: ReturnType<typeof parseYamlDocuments>) =>
    find(objs, "Deployment").spec.template.spec.containers[0].image as string;

  test("make deploy applies config/default server-side, with IMG as the operator's image", async () => {
    const rendered = await kustomize(join(repoRoot, "config", "default"));
    const kubectl = await fakeKubectl();

    make(["deploy", `KUBECTL=${kubectl.path}`]);
    assert.equal(kubectl.args(), "apply --server-side -f -");
    assert.deepEqual(kubectl.applied(), rendered, "by default, config/default exactly (IMG is its image)");

    make(["deploy", `KUBECTL=${kubectl.path}`, "IMG=registry.example/team/operator:1.2.3"]);
    const applied = kubectl.applied();
    assert.equal(deploymentImage(applied), "registry.example/team/operator:1.2.3");
    const deployment = find(applied, "Deployment");
    deployment.spec.template.spec.containers[0].image = deploymentImage(rendered);
    assert.deepEqual(applied, rendered, "only the image changed");
  });
});
