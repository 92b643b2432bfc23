/**
 * The container images. There is no container engine here, so the Dockerfiles are checked for their structure
 * (stages, base images, non-root user, entrypoint, what is copied), and the agent's entrypoint script is checked
 * by bash (syntax) and run for real against a fake agent (config.sh/run.sh that record what they were given).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { repoRoot, tempDir } from "./support.ts";

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

  test("two stages on Node 24 slim: runtime dependencies installed from the lock file, without dev dependencies", () => {
    const arg = ins.find((i) => i.op === "ARG" && i.args.startsWith("NODE_IMAGE="));
    assert.match(arg?.args ?? "", /^NODE_IMAGE=node:24[-.\w]*slim$/);
    assert.deepEqual(
      stages(ins).map((s) => s.args),
      ["$" + "{NODE_IMAGE} AS dependencies", "$" + "{NODE_IMAGE}"],
    );
    const install = ins.find((i) => i.op === "RUN" && i.args.includes("npm ci"));
    assert.match(install?.args ?? "", /npm ci --omit=dev/);
    assert.ok(
      ins.some((i) => i.op === "COPY" && i.args === "package.json package-lock.json ./"),
      "copies the manifest and lock file before installing",
    );
  });

  test("the final stage copies the dependencies, src/ and config/crd/, runs as non-root, starts the operator", () => {
    const final = lastStage(ins);
    const copies = final.filter((i) => i.op === "COPY").map((i) => i.args);
    assert.ok(copies.includes("--from=dependencies /app/node_modules ./node_modules"));
    assert.ok(copies.includes("src/ ./src/"));
    assert.ok(copies.includes("config/crd/ ./config/crd/"));
    assert.ok(copies.includes("package.json ./"), "package.json: type module");
    assert.equal(isNonRootUser(ins), "1000:1000");
    assert.equal(final.filter((i) => i.op === "ENTRYPOINT").at(-1)?.args, '["node", "src/cli/operator.ts"]');
    assert.ok(final.some((i) => i.op === "EXPOSE" && i.args === "8080"));
  });

  test("its .dockerignore keeps tests out and lets in everything the image copies", () => {
    const ignore = readFileSync(join(repoRoot, "images", "operator", "Dockerfile.dockerignore"), "utf8");
    const rules = ignore.split("\n").filter((l) => l && !l.startsWith("#"));
    assert.equal(rules[0], "*");
    for (const path of ["package.json", "package-lock.json", "src/", "config/crd/"]) {
      assert.ok(rules.includes(`!${path}`), path);
    }
    assert.ok(rules.includes("src/**/*.test.ts"));
  });
});

describe("images/agent", () => {
  const file = join(repoRoot, "images", "agent", "Dockerfile");
  const script = join(repoRoot, "images", "agent", "start.sh");
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

  test("start.sh: bash syntax, executable", () => {
    const r = spawnSync("bash", ["-n", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(statSync(script).mode & 0o100, "executable");
    assert.match(readFileSync(script, "utf8"), /^#!\/usr\/bin\/env bash\n/);
  });

  // A fake agent folder: config.sh and run.sh append what they see to calls.log.
  function fakeAgent(options: { removeFailures?: number; runExit?: number; runForever?: boolean }) {
    const dir = tempDir("fake-agent-");
    const log = join(dir, "calls.log");
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      chmodSync(join(dir, name), 0o755);
    };
    write(
      "config.sh",
      `#!/usr/bin/env bash
if [ "$1" = remove ]; then
  n=$(cat "${dir}/remove-count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "${dir}/remove-count"
  echo "remove args=[$*] auth=\${VSTS_AGENT_INPUT_AUTH:-} token=\${VSTS_AGENT_INPUT_TOKEN:-}" >> "${log}"
  if [ "$n" -le ${options.removeFailures ?? 0} ]; then echo "job running" >&2; exit 1; fi
  exit 0
fi
echo "configure args=[$*] auth=\${VSTS_AGENT_INPUT_AUTH:-} token=\${VSTS_AGENT_INPUT_TOKEN:-} secret=\${VSTS_AGENT_INPUT_CLIENTSECRET:-} env_token=\${AZP_TOKEN:-}" >> "${log}"
`,
    );
    write(
      "run.sh",
      `#!/usr/bin/env bash
echo "run args=[$*] env_token=\${AZP_TOKEN:-} ignore=\${VSO_AGENT_IGNORE:-} input=\${VSTS_AGENT_INPUT_TOKEN:-}\${VSTS_AGENT_INPUT_CLIENTSECRET:-}\${VSTS_AGENT_INPUT_AUTH:-}" >> "${log}"
${
  options.runForever
    ? `trap 'echo "run got TERM" >> "${log}"; exit 0' TERM
while :; do sleep 0.05; done`
    : `exit ${options.runExit ?? 0}`
}
`,
    );
    return { dir, log, calls: () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []) };
  }

  function startScript(agentDir: string, args: string[], env: NodeJS.ProcessEnv) {
    const child = spawn("bash", [script, ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: agentDir,
        AZP_AGENT_DIR: agentDir,
        AZP_REMOVE_RETRY_SECONDS: "0.1",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => {
      output += d;
    });
    child.stderr.on("data", (d) => {
      output += d;
    });
    const exited = new Promise<number | null>((resolve) =>
      child.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))),
    );
    return { child, exited, output: () => output };
  }

  const env = {
    AZP_URL: "https://dev.azure.com/example",
    AZP_POOL: "linux pool",
    AZP_AGENT_NAME: "agent-pod-1",
    AZP_TOKEN: "s3cret-token",
  };

  test("start.sh configures unattended with --replace, runs run.sh with its arguments, then removes the agent", async () => {
    const agent = fakeAgent({ runExit: 3 });
    const run = startScript(agent.dir, ["--once"], env);
    assert.equal(await run.exited, 3, `the agent's exit code is the container's\n${run.output()}`);
    const [configure, runLine, remove, ...rest] = agent.calls();
    assert.deepEqual(rest, []);
    assert.equal(
      configure,
      "configure args=[--unattended --url https://dev.azure.com/example --pool linux pool --agent agent-pod-1 " +
        "--work _work --replace --acceptTeeEula] auth=PAT token=s3cret-token secret= env_token=",
      "the token reaches config.sh as its unattended input, never on the command line",
    );
    assert.equal(
      runLine,
      "run args=[--once] env_token= ignore=AZP_TOKEN,AZP_TOKEN_FILE,VSTS_AGENT_INPUT_AUTH,VSTS_AGENT_INPUT_TOKEN input=",
      "the agent (and its jobs) never see the token; it is excluded from capabilities",
    );
    assert.equal(remove, "remove args=[remove --unattended] auth=PAT token=s3cret-token");
    assert.doesNotMatch(run.output(), /s3cret/, "the token is never printed");
  });

  test("start.sh reads the token from AZP_TOKEN_FILE and keeps an existing VSO_AGENT_IGNORE", async () => {
    const agent = fakeAgent({});
    const tokenFile = join(agent.dir, "pat");
    writeFileSync(tokenFile, "file-token\n");
    const { AZP_TOKEN: _, ...rest } = env;
    const run = startScript(agent.dir, [], { ...rest, AZP_TOKEN_FILE: tokenFile, VSO_AGENT_IGNORE: "MY_SECRET" });
    assert.equal(await run.exited, 0, run.output());
    const calls = agent.calls();
    assert.match(calls[0] ?? "", / token=file-token /);
    assert.match(calls[1] ?? "", /^run args=\[\] .*ignore=AZP_TOKEN,AZP_TOKEN_FILE,[A-Z_,]*,MY_SECRET /);
  });

  test("start.sh registers a service principal from the agent's own inputs, which the agent never sees", async () => {
    const agent = fakeAgent({});
    const { AZP_TOKEN: _, ...rest } = env;
    const run = startScript(agent.dir, ["--once"], {
      ...rest,
      // As the operator sets them for entraIdAuthentication.clientSecretRef.
      VSTS_AGENT_INPUT_AUTH: "SP",
      VSTS_AGENT_INPUT_CLIENTID: "00000000-0000-0000-0000-000000000001",
      VSTS_AGENT_INPUT_TENANTID: "contoso.example",
      VSTS_AGENT_INPUT_CLIENTSECRET: "sp-s3cret",
      VSO_AGENT_IGNORE: "VSTS_AGENT_INPUT_CLIENTSECRET",
    });
    assert.equal(await run.exited, 0, run.output());
    const [configure, runLine, remove] = agent.calls();
    assert.match(configure ?? "", / auth=SP token= secret=sp-s3cret /);
    assert.doesNotMatch(configure?.split("] auth=")[0] ?? "", /s3cret/);
    assert.match(runLine ?? "", / input=$/, "no credential reaches the agent");
    assert.match(runLine ?? "", /ignore=AZP_TOKEN,AZP_TOKEN_FILE,.*VSTS_AGENT_INPUT_CLIENTSECRET/);
    assert.equal(remove, "remove args=[remove --unattended] auth=SP token=");
    assert.doesNotMatch(run.output(), /s3cret/);
  });

  test("start.sh refuses to start without AZP_URL or a token", async () => {
    const agent = fakeAgent({});
    for (const [missing, message] of [
      ["AZP_URL", /AZP_URL is not set/],
      ["AZP_TOKEN", /set AZP_TOKEN or AZP_TOKEN_FILE \(or VSTS_AGENT_INPUT_AUTH/],
    ] as const) {
      const partial: NodeJS.ProcessEnv = { ...env };
      delete partial[missing];
      const run = startScript(agent.dir, [], partial);
      assert.equal(await run.exited, 1);
      assert.match(run.output(), message);
    }
    assert.deepEqual(agent.calls(), [], "nothing configured");
  });

  test("start.sh on TERM: retries the removal while the job runs, then stops the agent and exits 143", async () => {
    const agent = fakeAgent({ runForever: true, removeFailures: 3 });
    const run = startScript(agent.dir, ["--once"], env);
    for (let i = 0; !agent.calls().some((l) => l.startsWith("run ")); i++) {
      assert.ok(i < 200, `the agent did not start\n${run.output()}`);
      await sleep(25);
    }
    run.child.kill("SIGTERM");
    assert.equal(await run.exited, 143, run.output());
    const calls = agent.calls();
    assert.deepEqual(
      calls.slice(1).map((l) => l.split(" ")[0] + (l.includes("TERM") ? " TERM" : "")),
      ["run", "remove", "remove", "remove", "remove", "run TERM"],
      "three failed removals (job running), the fourth succeeds, then the agent is stopped",
    );
    assert.match(run.output(), /retrying in 0\.1s/);
  });
});
