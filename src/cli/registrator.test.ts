import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, test } from "node:test";
import { useEmulator } from "../../test/support/emulator.ts";
import { PLACEHOLDER_AGENT_VERSION, prefixedPlaceholderName } from "../placeholders/plan.ts";
import { placeholderAgentName } from "../scaling/naming.ts";
import {
  EXIT_OK,
  EXIT_SERVICE_ERROR,
  EXIT_USAGE,
  parseCapabilities,
  parseRegistratorArgs,
  type RegistratorConfig,
  runRegistrator,
  UsageError,
} from "./registrator.ts";

const managePat = "managepat0123456789abcdefghijklmnopqrstuvwxyz012";
const readPat = "readpat0123456789abcdefghijklmnopqrstuvwxyz01234";
const wrongPat = "wrongpat0123456789abcdefghijklmnopqrstuvwxyz0123";
const pipelineToken = "pipelinetoken0123456789abcdefghijklmnopqrstuvwxyz";
const EXTRA = "name=c,image=docker.io/library/ubuntu:22.04,cpu=250m,memory=64Mi";

// ---------------------------------------------------------------------------------------------------------------
// Unit: parsing

describe("parseCapabilities", () => {
  const ok: Array<[string, Record<string, string>]> = [
    ["a=1", { a: "1" }],
    ["a=1;b=2", { a: "1", b: "2" }],
    [`buildkit=1;ExtraAgentContainers=${EXTRA}`, { buildkit: "1", ExtraAgentContainers: EXTRA }],
    ["x=a=b=c", { x: "a=b=c" }],
    ["x=c,img:tag,250m||d,img2", { x: "c,img:tag,250m||d,img2" }],
    ["a=1;;b=2;", { a: "1", b: "2" }],
    [" a =1", { a: "1" }],
    ["a= spaced value ", { a: " spaced value " }],
    ["a=", { a: "" }],
    ["", {}],
  ];
  for (const [text, want] of ok) {
    test(JSON.stringify(text), () => assert.deepEqual(parseCapabilities(text), want));
  }
  const bad: Array<[string, RegExp]> = [
    ["a", /capability 'a' has no '=': write NAME=VALUE/],
    ["a=1;b", /capability 'b' has no '='/],
    ["=1", /has no name before '='/],
    ["a b=1", /contains white space/],
    ["a=1;A=2", /capability 'A' is given twice/],
  ];
  for (const [text, message] of bad) {
    test(`refuses ${JSON.stringify(text)}`, () =>
      assert.throws(
        () => parseCapabilities(text),
        (e: unknown) => e instanceof UsageError && message.test(e.message),
      ));
  }
});

describe("parseRegistratorArgs", () => {
  const required = ["-organization-url", "https://dev.azure.com/org/", "-pool-name", "my pool", "-pat", "p4t-value"];
  const parse = (argv: string[], env: Record<string, string> = {}) => {
    const c = parseRegistratorArgs(argv, env);
    assert.notEqual(c, "help");
    return c as RegistratorConfig;
  };

  test("the original's single-dash flags", () => {
    const c = parse([
      ...required,
      "-agent-name-prefix",
      "dummy-agent",
      "-capabilities",
      `buildkit=1;ExtraAgentContainers=${EXTRA}`,
    ]);
    assert.equal(c.organizationUrl, "https://dev.azure.com/org");
    assert.equal(c.poolName, "my pool");
    assert.deepEqual(c.credential, { kind: "pat", pat: "p4t-value" });
    assert.equal(c.tokenSource, "-pat");
    assert.deepEqual(c.capabilities, { buildkit: "1", ExtraAgentContainers: EXTRA });
    assert.equal(c.agentName, placeholderAgentName({ buildkit: "1", ExtraAgentContainers: EXTRA }));
    assert.equal(c.timeoutMs, 30_000);
  });

  test("double dashes and --flag=value; repeated -capabilities merge", () => {
    const c = parse([
      "--organization-url=https://dev.azure.com/org",
      "--pool-name",
      "p",
      "--pat=secret=with=equals",
      "--agent-name-prefix=dummy-agent-ci",
      "--capabilities",
      "a=1",
      "--capabilities=b=x=y",
      "--timeout-seconds=2.5",
    ]);
    assert.deepEqual(c.credential, { kind: "pat", pat: "secret=with=equals" });
    assert.deepEqual(c.capabilities, { a: "1", b: "x=y" });
    assert.equal(c.agentName, prefixedPlaceholderName("dummy-agent-ci", { a: "1", b: "x=y" }));
    assert.equal(c.timeoutMs, 2500);
  });

  test("the default prefix gives the operator's placeholder name", () => {
    const c = parse([...required, "-capabilities", "buildkit=1"]);
    assert.equal(c.agentNamePrefix, "dummy-agent");
    assert.equal(c.agentName, placeholderAgentName({ buildkit: "1" }));
  });

  test("-extra-agent-containers is a shorthand", () => {
    const c = parse([...required, "-capabilities", "buildkit=1", "-extra-agent-containers", EXTRA]);
    assert.deepEqual(c.capabilities, { buildkit: "1", ExtraAgentContainers: EXTRA });
  });

  test("environment fallbacks; flags win", () => {
    const env = { AZP_URL: "https://dev.azure.com/env-org", AZP_POOL: "env-pool", AZP_TOKEN: " env-pat\n" };
    const c = parse(["-capabilities", "a=1"], env);
    assert.equal(c.organizationUrl, "https://dev.azure.com/env-org");
    assert.equal(c.poolName, "env-pool");
    assert.deepEqual(c.credential, { kind: "pat", pat: "env-pat" });
    assert.equal(c.tokenSource, "AZP_TOKEN");
    const flagged = parse([...required, "-capabilities", "a=1"], env);
    assert.equal(flagged.organizationUrl, "https://dev.azure.com/org");
    assert.equal(flagged.poolName, "my pool");
    assert.equal(flagged.tokenSource, "-pat");
  });

  test("in a pipeline: SYSTEM_COLLECTIONURI and SYSTEM_ACCESSTOKEN (as a bearer token)", async () => {
    const c = parse(["-pool-name", "p", "-capabilities", "a=1"], {
      SYSTEM_COLLECTIONURI: "https://dev.azure.com/ci-org/",
      SYSTEM_ACCESSTOKEN: "jwt-ish",
    });
    assert.equal(c.organizationUrl, "https://dev.azure.com/ci-org");
    assert.equal(c.credential.kind, "token");
    assert.equal(c.credential.kind === "token" ? await c.credential.getToken() : "", "jwt-ish");
    assert.equal(c.tokenSource, "SYSTEM_ACCESSTOKEN");
    const preferUrl = parse(["-pool-name", "p", "-capabilities", "a=1"], {
      AZP_URL: "https://a.example/x",
      SYSTEM_COLLECTIONURI: "https://b.example/y",
      AZP_TOKEN: "pat",
      SYSTEM_ACCESSTOKEN: "jwt",
    });
    assert.equal(preferUrl.organizationUrl, "https://a.example/x");
    assert.equal(preferUrl.credential.kind, "pat");
  });

  test("--help, -help, -h", () => {
    for (const flag of ["--help", "-help", "-h"]) assert.equal(parseRegistratorArgs([flag], {}), "help");
  });

  const bad: Array<[string, string[], Record<string, string>, RegExp]> = [
    [
      "no URL",
      ["-pool-name", "p", "-pat", "x", "-capabilities", "a=1"],
      {},
      /no organization URL: pass -organization-url/,
    ],
    ["a URL that is not one", ["-organization-url", "dev.azure.com/org"], {}, /is not a URL/],
    ["no pool", ["-organization-url", "https://h/o", "-pat", "x", "-capabilities", "a=1"], {}, /no pool name/],
    [
      "no token",
      ["-organization-url", "https://h/o", "-pool-name", "p", "-capabilities", "a=1"],
      {},
      /no token: pass -pat/,
    ],
    ["an empty -pat", [...required.slice(0, 4), "-pat", " ", "-capabilities", "a=1"], {}, /-pat is empty/],
    ["no capabilities", required, {}, /no capabilities: pass -capabilities/],
    ["an unknown flag", [...required, "-capability", "a=1"], {}, /unknown flag '-capability'/],
    ["a flag without its value", [...required, "-capabilities"], {}, /flag '-capabilities' needs a value/],
    ["a stray argument", [...required, "a=1"], {}, /unexpected argument 'a=1'/],
    ["a malformed flag", [...required, "---x"], {}, /malformed flag '---x'/],
    [
      "a prefix with a slash",
      [...required, "-agent-name-prefix", "a/b", "-capabilities", "a=1"],
      {},
      /must start with/,
    ],
    ["a prefix too long", [...required, "-agent-name-prefix", "x".repeat(48), "-capabilities", "a=1"], {}, /too long/],
    ["a bad timeout", [...required, "-capabilities", "a=1", "-timeout-seconds", "soon"], {}, /positive number/],
    [
      "ExtraAgentContainers twice",
      [...required, "-capabilities", "ExtraAgentContainers=x", "-extra-agent-containers", "y"],
      {},
      /given both/,
    ],
  ];
  test("-allow-http is a switch: https needs nothing, http needs it", () => {
    assert.equal(parse([...required, "-capabilities", "a=1"]).allowHttp, false);
    const http = [
      "-organization-url",
      "http://127.0.0.1:8080/org",
      "-pool-name",
      "p",
      "-pat",
      "x",
      "-capabilities",
      "a=1",
    ];
    assert.throws(() => parse(http), /uses plain http/);
    assert.equal(parse([...http, "-allow-http"]).allowHttp, true);
    assert.equal(parse([...http, "--allow-http=true"]).allowHttp, true);
    assert.throws(() => parse([...http, "--allow-http=false"]), /uses plain http/);
    assert.throws(() => parse([...http, "--allow-http=maybe"]), /takes no value/);
  });

  for (const [name, argv, env, message] of bad) {
    test(`usage error: ${name}`, () =>
      assert.throws(
        () => parseRegistratorArgs(argv, env),
        (e: unknown) => e instanceof UsageError && message.test(e.message),
      ));
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Against the emulator

const emu = useEmulator({
  pools: ["sim-pool", "Pool With Spaces"],
  pats: [
    { token: managePat, scope: "manage", identity: "alice" },
    { token: readPat, scope: "read", identity: "bob" },
  ],
  bearerTokens: [{ token: pipelineToken, identity: "build-service", scope: "manage" }],
  messagePollTimeoutMs: 200,
});

async function run(argv: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const sleeps: number[] = [];
  const code = await runRegistrator(argv, env, {
    stdout: (l) => out.push(l),
    stderr: (l) => err.push(l),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  const text = `${out.join("\n")}\n${err.join("\n")}`;
  for (const secret of [managePat, readPat, wrongPat, pipelineToken]) {
    assert.ok(!text.includes(secret), "a token was printed");
  }
  return { code, stdout: out.join("\n"), stderr: err.join("\n"), sleeps };
}

const args = (pat: string, pool = "sim-pool", caps = `buildkit=1;ExtraAgentContainers=${EXTRA}`) => [
  "-organization-url",
  emu.organizationUrl,
  "-pool-name",
  pool,
  "-pat",
  pat,
  "-agent-name-prefix",
  "dummy-agent",
  "-capabilities",
  caps,
  // The emulator serves plain http.
  "-allow-http",
];
const agentsOf = (pool = "sim-pool") => emu.control.listAgents({ pool });
const expectedName = placeholderAgentName({ buildkit: "1", ExtraAgentContainers: EXTRA });

describe("runRegistrator", () => {
  test("registers an offline placeholder; a second run finds it (409) and exits 0", async () => {
    const first = await run(args(managePat));
    assert.equal(first.code, EXIT_OK, first.stderr);
    assert.match(
      first.stdout,
      new RegExp(`registered placeholder agent '${expectedName}' \\(id \\d+\\) in pool 'sim-pool'`),
    );
    const [agent] = agentsOf();
    assert.equal(agent?.name, expectedName);
    assert.equal(agent?.status, "offline");
    assert.equal(agent?.capabilities.ExtraAgentContainers, EXTRA);
    assert.equal(agent?.capabilities.buildkit, "1");
    assert.equal(agent?.version, PLACEHOLDER_AGENT_VERSION);

    const second = await run(args(managePat));
    assert.equal(second.code, EXIT_OK);
    assert.match(second.stdout, /already exists in pool 'sim-pool': nothing to do/);
    assert.equal(agentsOf().length, 1);
  });

  test("a pool name with spaces, from the environment", async () => {
    const r = await run(["-capabilities", "a=1", "-allow-http"], {
      AZP_URL: emu.organizationUrl,
      AZP_POOL: "Pool With Spaces",
      AZP_TOKEN: managePat,
    });
    assert.equal(r.code, EXIT_OK, r.stderr);
    assert.equal(agentsOf("Pool With Spaces")[0]?.name, placeholderAgentName({ a: "1" }));
  });

  test("the pipeline's access token (bearer) from SYSTEM_ACCESSTOKEN", async () => {
    const r = await run(["-pool-name", "sim-pool", "-capabilities", "a=1", "-allow-http"], {
      SYSTEM_COLLECTIONURI: `${emu.organizationUrl}/`,
      SYSTEM_ACCESSTOKEN: pipelineToken,
    });
    assert.equal(r.code, EXIT_OK, r.stderr);
    const post = emu.control.requests({ path: "/agents" }).find((e) => e.method === "POST");
    assert.equal(post?.identity, "build-service");
  });

  test("a custom prefix: registered, with a note that the operator will not collect it", async () => {
    const r = await run([
      ...args(managePat).slice(0, 6),
      "--agent-name-prefix",
      "tmp",
      "--capabilities",
      "a=1",
      "--allow-http",
    ]);
    assert.equal(r.code, EXIT_OK);
    assert.equal(agentsOf()[0]?.name, prefixedPlaceholderName("tmp", { a: "1" }));
    assert.match(r.stderr, /garbage-collects placeholders whose names start with 'dummy-agent-'/);
  });

  const failures: Array<[string, () => string[], RegExp, RegExp]> = [
    [
      "a wrong PAT",
      () => args(wrongPat),
      /^error: the token \(-pat\) was not accepted: wrong, expired or revoked/m,
      /HTTP 401/,
    ],
    [
      "a read-only PAT",
      () => args(readPat),
      /^error: the PAT \(-pat\) may not register agents: it needs Agent Pools \(Read & manage\), not just Read/m,
      /HTTP 403/,
    ],
    [
      "an unknown pool",
      () => args(managePat, "no-such-pool"),
      /^error: unknown or ambiguous pool 'no-such-pool'/m,
      /no agent pool named 'no-such-pool' exists/,
    ],
    [
      "a wrong organization",
      () => ["-organization-url", `${emu.url}/other-org`, ...args(managePat).slice(2)],
      /^error: not found: check the organization URL and the pool/m,
      /HTTP 404/,
    ],
  ];
  for (const [name, argv, cause, detail] of failures) {
    test(`${name}: exit 1 naming the cause`, async () => {
      const r = await run(argv());
      assert.equal(r.code, EXIT_SERVICE_ERROR);
      assert.match(r.stderr, cause);
      assert.match(r.stderr, detail);
      assert.equal(agentsOf().length, 0);
    });
  }

  test("a passing server error is retried (the fixed name makes a repeated POST safe)", async () => {
    emu.control.setFaults([{ path: "**/agents", method: "POST", errorRate: 1, status: 503 }]);
    const failing = await run(args(managePat));
    assert.equal(failing.code, EXIT_SERVICE_ERROR);
    assert.match(failing.stderr, /^warning: .*HTTP 503.*trying again in 1 s/m);
    assert.match(failing.stderr, /^error: Azure DevOps failed/m);
    assert.deepEqual(failing.sleeps, [1000, 2000]);
    assert.equal(emu.control.requests({ path: "/agents" }).filter((e) => e.method === "POST").length, 3);
  });

  test("unreachable: exit 1", async () => {
    const r = await run([
      "-organization-url",
      "http://127.0.0.1:9/org",
      ...args(managePat).slice(2),
      "-timeout-seconds",
      "2",
    ]);
    assert.equal(r.code, EXIT_SERVICE_ERROR);
    assert.match(r.stderr, /^error: Azure DevOps could not be reached at http:\/\/127\.0\.0\.1:9\/org/m);
  });

  test("plain http: refused unless -allow-http, and nothing is sent", async () => {
    const withoutFlag = args(managePat).filter((a) => a !== "-allow-http");
    const refused = await run(withoutFlag);
    assert.equal(refused.code, EXIT_USAGE);
    assert.match(refused.stderr, /^error: the organization URL http:\/\/127\.0\.0\.1:\d+\/\S+ uses plain http/);
    assert.match(refused.stderr, /-allow-http/);
    assert.deepEqual(emu.control.requests(), [], "no request reached Azure DevOps");
    assert.equal(agentsOf().length, 0);
    // The same through the environment (AZP_URL) and with -allow-http=false.
    const env = await run(["-pool-name", "sim-pool", "-capabilities", "a=1", "-allow-http=false"], {
      AZP_URL: emu.organizationUrl,
      AZP_TOKEN: managePat,
    });
    assert.equal(env.code, EXIT_USAGE);
    assert.deepEqual(emu.control.requests(), []);
    // Allowed: registered, with a warning that the token travelled unencrypted.
    const allowed = await run(args(managePat));
    assert.equal(allowed.code, EXIT_OK, allowed.stderr);
    assert.match(allowed.stderr, /^warning: -allow-http: the token is sent unencrypted/m);
  });

  test("a token on the command line works, with a warning; from the environment, without", async () => {
    const flag = await run(args(managePat));
    assert.equal(flag.code, EXIT_OK, flag.stderr);
    assert.match(flag.stderr, /^warning: the token was given on the command line \(-pat\).*set AZP_TOKEN/m);
    const fromEnv = await run(
      [
        "-pool-name",
        "sim-pool",
        "-capabilities",
        "buildkit=1",
        "-allow-http",
        "-organization-url",
        emu.organizationUrl,
      ],
      { AZP_TOKEN: managePat },
    );
    assert.equal(fromEnv.code, EXIT_OK, fromEnv.stderr);
    assert.doesNotMatch(fromEnv.stderr, /command line/);
  });

  test("usage errors: exit 2", async () => {
    const r = await run(["-pool-name"]);
    assert.equal(r.code, EXIT_USAGE);
    assert.match(r.stderr, /^error: flag '-pool-name' needs a value/);
    assert.match(r.stderr, /--help/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// As a child process, the way a pipeline runs it

const cli = new URL("./registrator.ts", import.meta.url).pathname;

async function child(argv: string[], env: Record<string, string> = {}) {
  const p = spawn(process.execPath, [cli, ...argv], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  let stdout = "";
  let stderr = "";
  p.stdout.on("data", (d) => {
    stdout += d;
  });
  p.stderr.on("data", (d) => {
    stderr += d;
  });
  const [code] = (await once(p, "exit")) as [number];
  return { code, stdout, stderr };
}

describe("the CLI as a child process", () => {
  test("a job demanding ExtraAgentContainers fails without the placeholder and stays queued with it", {
    timeout: 60_000,
  }, async () => {
    const demands = ["buildkit", `ExtraAgentContainers -equals ${EXTRA}`];
    const before = emu.control.queueJob({ pool: "sim-pool", demands });
    const failed = emu.control.getJob(before.requestId);
    assert.equal(failed?.result, "failed");
    assert.match(failed?.statusMessage ?? "", /No agent found in pool sim-pool which satisfies the specified demands/);

    const r = await child(args(managePat));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`registered placeholder agent '${expectedName}'`));
    assert.ok(!`${r.stdout}${r.stderr}`.includes(managePat));

    const after = emu.control.queueJob({ pool: "sim-pool", demands });
    assert.equal(emu.control.getJob(after.requestId)?.state, "queued");

    const again = await child(args(managePat));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already exists/);
  });

  test("bad flags exit 2 with a message; --help exits 0", { timeout: 60_000 }, async () => {
    const bad = await child([
      "-organization-url",
      emu.organizationUrl,
      "-pool-name",
      "sim-pool",
      "-pat",
      managePat,
      "-capabilities",
      "novalue",
      "-allow-http",
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error: capability 'novalue' has no '='/);
    const unknown = await child(["--bogus"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown flag '--bogus'/);
    const help = await child(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: node src\/cli\/registrator\.ts -organization-url URL/);
  });

  test("a read-only PAT exits 1 naming the cause", { timeout: 60_000 }, async () => {
    const r = await child(args(readPat));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /needs Agent Pools \(Read & manage\)/);
    assert.ok(!r.stderr.includes(readPat));
  });
});
