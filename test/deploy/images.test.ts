/**
 * The container images. There is no container engine here, so the Dockerfiles are checked for their structure
 * (stages, base images, non-root user, entrypoint, what is copied). The agent's entrypoint script has its own tests
 * (agent-start.test.ts).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { imageEnv, imageNodeFlags } from "../../bench/support/operator.ts";
import { repoRoot } from "./support.ts";

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions, with continuation lines joined and comments dropped. */
function instructions(path: string): Instruction[] {
  const lines = readFileSync(path, "utf8").split("\n");
  const out: Instruction[] = [];
  let current = "";
  for (const raw of lines) {
    const line = raw.trim();
    if (current === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.startsWith("#")) continue;
    current += `${line.replace(/\\$/, "")} `;
    if (!line.endsWith("\\")) {
      const [op = "", ...rest] = current.trim().split(/\s+/);
      out.push({ op: op.toUpperCase(), args: rest.join(" ") });
      current = "";
    }
  }
  return out;
}

const stages = (ins: Instruction[]) => ins.filter((i) => i.op === "FROM");
const lastStage = (ins: Instruction[]) => ins.slice(ins.findLastIndex((i) => i.op === "FROM"));

function isNonRootUser(ins: Instruction[]): string {
  const users = lastStage(ins).filter((i) => i.op === "USER");
  const user = users.at(-1)?.args ?? "";
  assert.ok(user, "the final stage sets USER");
  // Numeric, so that Kubernetes can verify runAsNonRoot.
  assert.match(user, /^[1-9][0-9]*(:[0-9]+)?$/, `USER ${user} must be a numeric non-root uid`);
  return user;
}

describe("images/operator/Dockerfile", () => {
  const file = join(repoRoot, "images", "operator", "Dockerfile");
  const ins = instructions(file);

  test("three stages on Node 24 slim: runtime dependencies without dev dependencies; a build with them", () => {
    const arg = ins.find((i) => i.op === "ARG" && i.args.startsWith("NODE_IMAGE="));
    assert.match(arg?.args ?? "", /^NODE_IMAGE=node:24[-.\w]*slim$/);
    assert.deepEqual(
      stages(ins).map((s) => s.args),
      ["$" + "{NODE_IMAGE} AS dependencies", "$" + "{NODE_IMAGE} AS build", "$" + "{NODE_IMAGE}"],
    );
    const installs = ins.filter((i) => i.op === "RUN" && i.args.includes("npm ci")).map((i) => i.args);
    assert.match(installs[0] ?? "", /npm ci --omit=dev --ignore-scripts/);
    assert.match(installs[1] ?? "", /npm ci --ignore-scripts/);
    assert.doesNotMatch(installs[1] ?? "", /--omit=dev/, "the build needs the TypeScript compiler");
    assert.ok(
      ins.some((i) => i.op === "COPY" && i.args === "package.json package-lock.json ./"),
      "copies the manifest and lock file before installing",
    );
    assert.ok(ins.some((i) => i.op === "COPY" && i.args === "tsconfig.json tsconfig.build.json ./"));
    assert.ok(ins.some((i) => i.op === "RUN" && i.args === "npm run build"));
  });

  test("the final stage copies the dependencies, the compiled dist/ and config/crd/, runs as non-root, starts it", () => {
    const final = lastStage(ins);
    const copies = final.filter((i) => i.op === "COPY").map((i) => i.args);
    assert.ok(copies.includes("--from=dependencies /app/node_modules ./node_modules"));
    assert.ok(copies.includes("--from=build /app/dist/ ./dist/"));
    assert.ok(!copies.some((c) => c.startsWith("src/")), "no TypeScript sources in the image");
    assert.ok(copies.includes("config/crd/ ./config/crd/"));
    assert.ok(copies.includes("package.json ./"), "package.json: type module");
    assert.equal(isNonRootUser(ins), "1000:1000");
    // The benchmarks run the operator with the image's Node flags and environment: they must agree.
    assert.equal(
      final.filter((i) => i.op === "ENTRYPOINT").at(-1)?.args,
      JSON.stringify(["node", ...imageNodeFlags, "dist/cli/operator.js"]).replaceAll(",", ", "),
    );
    assert.ok(final.some((i) => i.op === "EXPOSE" && i.args === "8080"));
    const env = Object.fromEntries(
      final
        .filter((i) => i.op === "ENV")
        .flatMap((i) => i.args.split(/\s+/))
        .map((kv) => kv.split("=")),
    );
    assert.deepEqual(env, imageEnv);
  });

  test("its .dockerignore keeps tests out and lets in everything the image copies", () => {
    const ignore = readFileSync(join(repoRoot, "images", "operator", "Dockerfile.dockerignore"), "utf8");
    const rules = ignore.split("\n").filter((l) => l && !l.startsWith("#"));
    assert.equal(rules[0], "*");
    for (const path of [
      "package.json",
      "package-lock.json",
      "tsconfig.json",
      "tsconfig.build.json",
      "src/",
      "config/crd/",
    ]) {
      assert.ok(rules.includes(`!${path}`), path);
    }
    assert.ok(rules.includes("src/**/*.test.ts"));
  });
});

describe("images/agent", () => {
  const file = join(repoRoot, "images", "agent", "Dockerfile");
  const ins = instructions(file);

  test("Dockerfile: downloads a pinned agent at build time, runs as non-root through start.sh", () => {
    assert.equal(stages(ins).length, 1);
    assert.match(stages(ins)[0]?.args ?? "", /^ubuntu:\d+\.\d+$/);
    assert.match(ins.find((i) => i.op === "ARG" && i.args.startsWith("AGENT_VERSION="))?.args ?? "", /=\d+\.\d+\.\d+$/);
    const download = ins.find((i) => i.op === "RUN" && i.args.includes("vsts-agent-linux"));
    assert.match(download?.args ?? "", /https:\/\/download\.agent\.dev\.azure\.com\/agent\/\$\{AGENT_VERSION\}\//);
    assert.match(download?.args ?? "", /installdependencies\.sh/);
    assert.ok(ins.some((i) => i.op === "COPY" && i.args.includes("images/agent/start.sh")));
    assert.equal(isNonRootUser(ins), "1001:1001");
    const entrypoint = JSON.parse(ins.filter((i) => i.op === "ENTRYPOINT").at(-1)?.args ?? "[]");
    assert.equal(entrypoint.at(-1), "/usr/local/bin/start-agent.sh", "container args (--once) reach start.sh");
    assert.ok(
      ins.some((i) => i.op === "ENV" && /AZP_WORK=\/azp\/_work/.test(i.args)),
      "work folder of the samples",
    );
  });
});
