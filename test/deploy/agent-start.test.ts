/**
 * The agent image's entrypoint, images/agent/start.sh: checked by bash and shellcheck, then run for real against a
 * fake agent folder whose config.sh and run.sh record what they were given (arguments, the credentials in their
 * environment) and play the parts of the real agent: registration, a job that runs until the test lets it end,
 * and a removal that Azure DevOps refuses while the job runs.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { repoRoot, tempDir } from "./support.ts";

const script = join(repoRoot, "images", "agent", "start.sh");
/** Every shell script of the repository. */
const shellScripts = [script, join(repoRoot, ".ci", "run")];

const hasShellcheck = spawnSync("shellcheck", ["--version"]).status === 0;

interface FakeAgentOptions {
  /** `config.sh remove` fails this many times first (e.g. the service was briefly unreachable). */
  removeFailures?: number;
  /** Exit code of run.sh when it neither waits for a job nor runs forever. */
  runExit?: number;
  /** run.sh runs until SIGTERM (then exits 0). */
  runForever?: boolean;
  /**
   * run.sh runs one job: it starts at once and ends when the test calls `finishJob()`; then run.sh exits 0, as the
   * agent does after its one job with --once. While the job runs, `config.sh remove` fails (the service refuses to
   * delete an agent that holds a job request).
   */
  job?: boolean;
}

/** A fake agent folder: config.sh and run.sh append what they see to calls.log. */
function fakeAgent(options: FakeAgentOptions) {
  const dir = tempDir("fake-agent-");
  const log = join(dir, "calls.log");
  const jobRunning = join(dir, "job-running");
  const jobDone = join(dir, "job-done");
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    chmodSync(join(dir, name), 0o755);
  };
  write(
    "config.sh",
    `#!/usr/bin/env bash
if [ "$1" = remove ]; then
  n=$(cat "${dir}/remove-count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "${dir}/remove-count"
  line="remove args=[$*] auth=\${VSTS_AGENT_INPUT_AUTH:-} token=\${VSTS_AGENT_INPUT_TOKEN:-}"
  if [ "$n" -le ${options.removeFailures ?? 0} ] || [ -e "${jobRunning}" ]; then
    echo "$line -> refused" >> "${log}"; echo "cannot remove the agent" >&2; exit 1
  fi
  echo "$line -> removed" >> "${log}"
  exit 0
fi
echo "configure args=[$*] auth=\${VSTS_AGENT_INPUT_AUTH:-} token=\${VSTS_AGENT_INPUT_TOKEN:-} secret=\${VSTS_AGENT_INPUT_CLIENTSECRET:-} env_token=\${AZP_TOKEN:-}" >> "${log}"
`,
  );
  let body = `exit ${options.runExit ?? 0}`;
  if (options.runForever) {
    body = `trap 'echo "run got TERM" >> "${log}"; exit 0' TERM
while :; do sleep 0.05; done`;
  } else if (options.job) {
    body = `trap 'echo "run got TERM" >> "${log}"; rm -f "${jobRunning}"; exit 143' TERM
touch "${jobRunning}"
echo "job started" >> "${log}"
while [ ! -e "${jobDone}" ]; do sleep 0.05; done
# The job is over and the agent exits: a TERM from now on interrupts nothing.
trap '' TERM
echo "job finished" >> "${log}"
rm -f "${jobRunning}"
exit 0`;
  }
  write(
    "run.sh",
    `#!/usr/bin/env bash
echo "run args=[$*] env_token=\${AZP_TOKEN:-} ignore=\${VSO_AGENT_IGNORE:-} input=\${VSTS_AGENT_INPUT_TOKEN:-}\${VSTS_AGENT_INPUT_CLIENTSECRET:-}\${VSTS_AGENT_INPUT_AUTH:-}" >> "${log}"
${body}
`,
  );
  const calls = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []);
  return {
    dir,
    calls,
    finishJob: () => writeFileSync(jobDone, ""),
    /** Waits (polling the log, no deadline but the test's) until a call matches. */
    async waitFor(what: string, ok: (line: string) => boolean, output: () => string) {
      for (let i = 0; !calls().some(ok); i++) {
        assert.ok(i < 2400, `${what} did not happen\n${calls().join("\n")}\n${output()}`);
        await sleep(25);
      }
    },
  };
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

/** The kind of each call after the registration: "run", "remove -> refused", "job finished", ... */
const steps = (calls: string[]) =>
  calls.slice(1).map((l) => (l.startsWith("run args=") ? "run" : l.replace(/^remove .*(->.*)$/, "remove $1")));

const env = {
  AZP_URL: "https://dev.azure.com/example",
  AZP_POOL: "linux pool",
  AZP_AGENT_NAME: "agent-pod-1",
  AZP_TOKEN: "s3cret-token",
};

describe("images/agent/start.sh", () => {
  test("bash syntax, executable", () => {
    const r = spawnSync("bash", ["-n", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(statSync(script).mode & 0o100, "executable");
    assert.match(readFileSync(script, "utf8"), /^#!\/usr\/bin\/env bash\n/);
  });

  test("shellcheck finds nothing in the repository's shell scripts", {
    skip: hasShellcheck ? false : "shellcheck is not installed (apt-get install shellcheck; .ci/run installs it)",
  }, () => {
    const r = spawnSync("shellcheck", ["--shell=bash", "--severity=style", ...shellScripts], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test("configures unattended with --replace, runs run.sh with its arguments (--once), then removes the agent", async () => {
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
    assert.equal(remove, "remove args=[remove --unattended] auth=PAT token=s3cret-token -> removed");
    assert.doesNotMatch(run.output(), /s3cret/, "the token is never printed");
  });

  test("defaults: pool Default, the host name as agent name, AZP_WORK as work folder", async () => {
    const agent = fakeAgent({});
    const { AZP_POOL: _pool, AZP_AGENT_NAME: _name, ...rest } = env;
    const run = startScript(agent.dir, [], { ...rest, AZP_WORK: "/azp/_work" });
    assert.equal(await run.exited, 0, run.output());
    const hostname = spawnSync("hostname", { encoding: "utf8" }).stdout.trim();
    assert.match(
      agent.calls()[0] ?? "",
      new RegExp(`--pool Default --agent ${hostname.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} --work /azp/_work `),
    );
    assert.match(agent.calls()[1] ?? "", /^run args=\[\] /, "no arguments: the agent keeps taking jobs");
  });

  test("reads the token from AZP_TOKEN_FILE and keeps an existing VSO_AGENT_IGNORE", async () => {
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

  test("registers a service principal from the agent's own inputs, which the agent never sees", async () => {
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
    assert.equal(remove, "remove args=[remove --unattended] auth=SP token= -> removed");
    assert.doesNotMatch(run.output(), /s3cret/);
  });

  test("refuses to start without AZP_URL, a token, or an agent", async () => {
    const agent = fakeAgent({});
    const emptyToken = join(agent.dir, "empty");
    writeFileSync(emptyToken, " \n");
    const cases: [NodeJS.ProcessEnv, RegExp][] = [
      [{ ...env, AZP_URL: "" }, /AZP_URL is not set/],
      [{ ...env, AZP_TOKEN: "" }, /set AZP_TOKEN or AZP_TOKEN_FILE \(or VSTS_AGENT_INPUT_AUTH/],
      [{ ...env, AZP_TOKEN: "", AZP_TOKEN_FILE: join(agent.dir, "missing") }, /AZP_TOKEN_FILE .* is not readable/],
      [{ ...env, AZP_TOKEN: "", AZP_TOKEN_FILE: emptyToken }, /AZP_TOKEN_FILE .* is empty/],
      [{ ...env, AZP_AGENT_DIR: tempDir("no-agent-") }, /no agent in .* \(config\.sh and run\.sh are missing\)/],
    ];
    for (const [partial, message] of cases) {
      const run = startScript(agent.dir, [], partial);
      assert.equal(await run.exited, 1);
      assert.match(run.output(), message);
    }
    assert.deepEqual(agent.calls(), [], "nothing configured");
  });

  test("after the agent exits, a failing removal is retried until it succeeds", async () => {
    const agent = fakeAgent({ removeFailures: 2 });
    const run = startScript(agent.dir, ["--once"], env);
    assert.equal(await run.exited, 0, run.output());
    assert.deepEqual(steps(agent.calls()), ["run", "remove -> refused", "remove -> refused", "remove -> removed"]);
    assert.match(run.output(), /removing agent agent-pod-1 failed \(attempt 2;.*retrying in 0\.1s/);
    assert.match(run.output(), /agent agent-pod-1 removed from pool linux pool/);
  });

  test("after the agent exits, removal gives up after AZP_REMOVE_ATTEMPTS and keeps the agent's exit code", async () => {
    const agent = fakeAgent({ removeFailures: 100, runExit: 2 });
    const run = startScript(agent.dir, ["--once"], { ...env, AZP_REMOVE_ATTEMPTS: "3" });
    assert.equal(await run.exited, 2, run.output());
    assert.deepEqual(steps(agent.calls()), ["run", "remove -> refused", "remove -> refused", "remove -> refused"]);
    assert.match(run.output(), /could not remove agent agent-pod-1 after 3 attempts/);
  });

  test("SIGTERM while a job runs: the job runs to its end, then the registration goes, and the container exits 143", async () => {
    const agent = fakeAgent({ job: true });
    const run = startScript(agent.dir, ["--once"], env);
    await agent.waitFor("the job's start", (l) => l === "job started", run.output);
    run.child.kill("SIGTERM");
    // The service refuses the removal while the job runs; the script keeps trying.
    await agent.waitFor("a refused removal", (l) => l.endsWith("-> refused"), run.output);
    agent.finishJob();
    assert.equal(await run.exited, 143, run.output());
    const after = steps(agent.calls());
    assert.deepEqual(after.slice(0, 2), ["run", "job started"]);
    assert.ok(
      after.slice(2, -2).every((s) => s === "remove -> refused"),
      `only refused removals while the job ran: ${after}`,
    );
    assert.deepEqual(after.slice(-2), ["job finished", "remove -> removed"], "the job was never interrupted");
    assert.ok(!after.includes("run got TERM"));
    assert.match(run.output(), /received TERM: removing the agent's registration/);
  });

  test("SIGTERM while idle: the registration goes at once, then the agent is stopped", async () => {
    const agent = fakeAgent({ runForever: true });
    const run = startScript(agent.dir, ["--once"], env);
    await agent.waitFor("the agent's start", (l) => l.startsWith("run args="), run.output);
    run.child.kill("SIGTERM");
    assert.equal(await run.exited, 143, run.output());
    assert.deepEqual(steps(agent.calls()), ["run", "remove -> removed", "run got TERM"]);
  });

  test("SIGTERM: removal retried until it succeeds, then the agent is stopped", async () => {
    const agent = fakeAgent({ runForever: true, removeFailures: 3 });
    const run = startScript(agent.dir, ["--once"], env);
    await agent.waitFor("the agent's start", (l) => l.startsWith("run args="), run.output);
    run.child.kill("SIGTERM");
    assert.equal(await run.exited, 143, run.output());
    assert.deepEqual(
      steps(agent.calls()),
      ["run", "remove -> refused", "remove -> refused", "remove -> refused", "remove -> removed", "run got TERM"],
      "three refused removals, the fourth succeeds, then the agent is stopped",
    );
  });

  test("SIGINT is handled like SIGTERM, with exit code 130", async () => {
    const agent = fakeAgent({ runForever: true });
    const run = startScript(agent.dir, ["--once"], env);
    await agent.waitFor("the agent's start", (l) => l.startsWith("run args="), run.output);
    run.child.kill("SIGINT");
    assert.equal(await run.exited, 130, run.output());
    assert.deepEqual(steps(agent.calls()), ["run", "remove -> removed", "run got TERM"]);
  });
});
