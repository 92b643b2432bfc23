/**
 * The agent registrator: registers an offline placeholder agent with given capabilities in an Azure DevOps agent
 * pool, so that a following job whose demands include them (e.g. `ExtraAgentContainers -equals ...`) is queued
 * instead of failing at once, until the operator's pod registers a real agent for it.
 *
 *   node src/cli/registrator.ts -organization-url URL -pool-name POOL -pat PAT \
 *     -agent-name-prefix dummy-agent -capabilities 'buildkit=1;ExtraAgentContainers=name=c,image=i'
 *
 * Accepts the original Go tool's single-dash flags and their double-dash forms (`--flag value`, `--flag=value`),
 * with environment fallbacks. The name is `<prefix>-<hash of the capabilities>`: running it twice is harmless.
 * Exit codes: 0 registered (or already there), 1 Azure DevOps refused or could not be reached, 2 usage error.
 * It needs nothing but Node.js 24 and the sources (no npm dependencies). It never prints the token.
 *
 * The token is sent only over https, unless `-allow-http` says otherwise (an emulator, a lab server): a plain http
 * URL is a usage error and nothing is sent. A token given on the command line (`-pat`) works, with a warning on
 * stderr: other processes can read a command line; the environment (`AZP_TOKEN`) is the place for it.
 */
import { type Credential, patCredential, type TokenCredential } from "../azure-devops/auth.ts";
import { AzureDevOpsClient, normalizeOrganizationUrl } from "../azure-devops/client.ts";
import { AgentExistsError, AzureDevOpsError, PoolLookupError } from "../azure-devops/errors.ts";
import type { TaskAgent } from "../azure-devops/types.ts";
import { placeholderRegistration, prefixedPlaceholderName } from "../placeholders/plan.ts";
import { errorMessage } from "../runtime/logger.ts";
import { PLACEHOLDER_AGENT_PREFIX } from "../scaling/naming.ts";

export const EXIT_OK = 0;
export const EXIT_SERVICE_ERROR = 1;
export const EXIT_USAGE = 2;

/**
 * The longest agent name the CLI makes (the prefix leaves room for "-" and 16 hex). The service's own limit is not
 * documented; 64 keeps names readable in the web UI and close to the pod names' 63.
 */
export const MAX_AGENT_NAME_LENGTH = 64;
const HASH_PART_LENGTH = 17;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface RegistratorConfig {
  organizationUrl: string;
  poolName: string;
  credential: Credential;
  /** Where the token came from, for messages: `-pat`, `AZP_TOKEN` or `SYSTEM_ACCESSTOKEN`. */
  tokenSource: string;
  agentNamePrefix: string;
  capabilities: Record<string, string>;
  agentName: string;
  timeoutMs: number;
  /** Whether an http organization URL was allowed (`-allow-http`). */
  allowHttp: boolean;
}

interface FlagSpec {
  readonly value: string;
  readonly help: string;
}

const FLAGS: Record<string, FlagSpec> = {
  "organization-url": {
    value: "URL",
    help: "organization URL, e.g. https://dev.azure.com/my-org (env AZP_URL, then SYSTEM_COLLECTIONURI)",
  },
  "pool-name": { value: "NAME", help: "agent pool name (env AZP_POOL)" },
  pat: {
    value: "TOKEN",
    help:
      "personal access token with Agent Pools (Read & manage) (env AZP_TOKEN; else SYSTEM_ACCESSTOKEN, sent as " +
      "a bearer token: the pipeline's identity then needs the Administrator role on the pool)",
  },
  "agent-name-prefix": {
    value: "PREFIX",
    help:
      `agent name prefix (default ${PLACEHOLDER_AGENT_PREFIX}); the name is PREFIX-<16 hex of the capabilities>. ` +
      `The operator garbage-collects unwanted placeholders whose names start with ${PLACEHOLDER_AGENT_PREFIX}-`,
  },
  capabilities: {
    value: "'K=V;K2=V2'",
    help:
      "capabilities of the placeholder, separated by ';', each split at its first '=' (values may hold '=' and " +
      "','); may be given more than once",
  },
  "extra-agent-containers": {
    value: "VALUE",
    help: "shorthand for the capability ExtraAgentContainers=VALUE (the original tool's first version)",
  },
  "timeout-seconds": { value: "N", help: "timeout of each request to Azure DevOps (default 30)" },
  "allow-http": {
    value: "",
    help: "allow an http organization URL, sending the token unencrypted (emulators and labs only); default: https only",
  },
  help: { value: "", help: "print this help" },
};

function wrap(text: string, width: number, indent: string): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && indent.length + line.length + 1 + word.length > width) {
      out.push(indent + line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") out.push(indent + line);
  return out;
}

export function helpText(): string {
  const lines = [
    "Registers an offline placeholder agent in an Azure DevOps agent pool, so that a following job whose demands",
    "include the given capabilities waits in the queue (until the operator starts an agent pod for it) instead of",
    'failing at once with "No agent found in pool ... which satisfies the specified demands".',
    "",
    "usage: node src/cli/registrator.ts -organization-url URL -pool-name POOL -pat TOKEN \\",
    "         [-agent-name-prefix PREFIX] -capabilities 'K=V;K2=V2'",
    "",
    "Flags take one or two dashes, and their value as the next argument or after '=' (--pool-name=POOL).",
    "",
  ];
  for (const [name, spec] of Object.entries(FLAGS)) {
    lines.push(`  --${name}${spec.value ? ` ${spec.value}` : ""}`, ...wrap(spec.help, 100, "      "));
  }
  lines.push(
    "",
    "Running it again with the same prefix and capabilities is harmless (the name exists: exit 0).",
    "Exit codes: 0 registered or already registered; 1 Azure DevOps refused (wrong or read-only token, unknown",
    "pool) or could not be reached; 2 usage error.",
    "",
  );
  return lines.join("\n");
}

/**
 * Splits `K=V;K2=V2` into capabilities: segments at `;` (empty ones ignored), each at its first `=`; names trimmed,
 * values kept as they are. Throws {@link UsageError} for a segment without `=`, an empty name, or a name given twice
 * (names are compared ignoring case, as Azure DevOps does).
 */
export function parseCapabilities(text: string, into: Record<string, string> = {}): Record<string, string> {
  for (const segment of text.split(";")) {
    if (segment.trim() === "") continue;
    const eq = segment.indexOf("=");
    if (eq < 0) {
      throw new UsageError(`capability '${segment.trim()}' has no '=': write NAME=VALUE (e.g. buildkit=1)`);
    }
    const name = segment.slice(0, eq).trim();
    if (name === "") throw new UsageError(`capability '${segment.trim()}' has no name before '='`);
    if (/\s/.test(name)) throw new UsageError(`capability name '${name}' contains white space`);
    if (Object.keys(into).some((k) => k.toLowerCase() === name.toLowerCase())) {
      throw new UsageError(`capability '${name}' is given twice`);
    }
    into[name] = segment.slice(eq + 1);
  }
  return into;
}

/** Reads the flags: `-name value`, `--name value`, `-name=value`, `--name=value`; every value of a repeated flag is kept. */
function readFlags(argv: readonly string[]): { values: Map<string, string[]>; help: boolean } {
  const values = new Map<string, string[]>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const match = /^--?([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    if (!match) {
      throw new UsageError(
        arg.startsWith("-") ? `malformed flag '${arg}'` : `unexpected argument '${arg}' (every value follows its flag)`,
      );
    }
    const name = (match[1] as string).toLowerCase();
    if (name === "help" || name === "h") {
      help = true;
      continue;
    }
    if (!(name in FLAGS)) throw new UsageError(`unknown flag '${arg.replace(/=.*$/s, "")}'`);
    let value = match[2];
    if (FLAGS[name]?.value === "") {
      // A switch: `-allow-http`, or `-allow-http=true|false`.
      if (value !== undefined && !["true", "false"].includes(value.toLowerCase())) {
        throw new UsageError(`flag '${arg.replace(/=.*$/s, "")}' takes no value (or =true, =false)`);
      }
      values.set(name, [...(values.get(name) ?? []), (value ?? "true").toLowerCase()]);
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`flag '${arg}' needs a value (${FLAGS[name]?.value})`);
      value = argv[++i] as string;
    }
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  return { values, help };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

/**
 * The configuration from arguments and environment, `"help"`, or a {@link UsageError} naming what is wrong.
 * Flags win over the environment.
 */
export function parseRegistratorArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): RegistratorConfig | "help" {
  const { values, help } = readFlags(argv);
  if (help) return "help";
  const last = (name: string) => values.get(name)?.at(-1);

  const url = nonEmpty(last("organization-url")) ?? nonEmpty(env.AZP_URL) ?? nonEmpty(env.SYSTEM_COLLECTIONURI);
  if (url === undefined) {
    throw new UsageError("no organization URL: pass -organization-url (or set AZP_URL or SYSTEM_COLLECTIONURI)");
  }
  let organizationUrl: string;
  try {
    organizationUrl = normalizeOrganizationUrl(url);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
  const allowHttp = last("allow-http") === "true";
  if (organizationUrl.startsWith("http:") && !allowHttp) {
    throw new UsageError(
      `the organization URL ${organizationUrl} uses plain http, which would send the token unencrypted: use https (or pass -allow-http, for an emulator or a lab server only)`,
    );
  }

  const poolName = nonEmpty(last("pool-name")) ?? nonEmpty(env.AZP_POOL);
  if (poolName === undefined) throw new UsageError("no pool name: pass -pool-name (or set AZP_POOL)");

  let credential: Credential;
  let tokenSource: string;
  const pat = last("pat");
  if (pat !== undefined) {
    if (pat.trim() === "") throw new UsageError("-pat is empty");
    credential = patCredential(pat);
    tokenSource = "-pat";
  } else if (nonEmpty(env.AZP_TOKEN) !== undefined) {
    credential = patCredential(env.AZP_TOKEN as string);
    tokenSource = "AZP_TOKEN";
  } else if (nonEmpty(env.SYSTEM_ACCESSTOKEN) !== undefined) {
    const token = (env.SYSTEM_ACCESSTOKEN as string).trim();
    const bearer: TokenCredential = { kind: "token", identity: "pipeline", getToken: async () => token };
    credential = bearer;
    tokenSource = "SYSTEM_ACCESSTOKEN";
  } else {
    throw new UsageError(
      "no token: pass -pat (or set AZP_TOKEN, or map $(System.AccessToken) to SYSTEM_ACCESSTOKEN in the step's env)",
    );
  }

  const agentNamePrefix = last("agent-name-prefix") ?? PLACEHOLDER_AGENT_PREFIX;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(agentNamePrefix)) {
    throw new UsageError(
      `agent name prefix '${agentNamePrefix}' must start with a letter or digit and hold only letters, digits, '.', '_' and '-'`,
    );
  }
  if (agentNamePrefix.length + HASH_PART_LENGTH > MAX_AGENT_NAME_LENGTH) {
    throw new UsageError(
      `agent name prefix '${agentNamePrefix}' is too long: at most ${MAX_AGENT_NAME_LENGTH - HASH_PART_LENGTH} characters`,
    );
  }

  const capabilities: Record<string, string> = {};
  for (const text of values.get("capabilities") ?? []) parseCapabilities(text, capabilities);
  const extra = last("extra-agent-containers");
  if (extra !== undefined) {
    if (Object.keys(capabilities).some((k) => k.toLowerCase() === "extraagentcontainers")) {
      throw new UsageError("ExtraAgentContainers is given both in -capabilities and as -extra-agent-containers");
    }
    capabilities.ExtraAgentContainers = extra;
  }
  if (Object.keys(capabilities).length === 0) {
    throw new UsageError("no capabilities: pass -capabilities 'NAME=VALUE;NAME2=VALUE2'");
  }

  let timeoutMs = 30_000;
  const timeout = last("timeout-seconds");
  if (timeout !== undefined) {
    const seconds = Number(timeout);
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new UsageError(`-timeout-seconds must be a positive number, got '${timeout}'`);
    }
    timeoutMs = seconds * 1000;
  }

  return {
    organizationUrl,
    poolName,
    credential,
    tokenSource,
    agentNamePrefix,
    capabilities,
    agentName: prefixedPlaceholderName(agentNamePrefix, capabilities),
    timeoutMs,
    allowHttp,
  };
}

/** What the service's refusal means, in a few words, for the first line of the error. */
function causeOf(err: AzureDevOpsError, config: RegistratorConfig): string {
  if (err instanceof PoolLookupError) return `unknown or ambiguous pool '${config.poolName}'`;
  switch (err.kind) {
    case "auth":
      return `the token (${config.tokenSource}) was not accepted: wrong, expired or revoked`;
    case "forbidden":
      return config.credential.kind === "pat"
        ? `the PAT (${config.tokenSource}) may not register agents: it needs Agent Pools (Read & manage), not just Read`
        : "the pipeline's identity may not register agents: give it the Administrator role on the agent pool";
    case "not-found":
      return "not found: check the organization URL and the pool";
    case "network":
    case "timeout":
      return `Azure DevOps could not be reached at ${config.organizationUrl}`;
    case "rate-limited":
      return "rate-limited by Azure DevOps";
    case "server":
      return "Azure DevOps failed";
    default:
      return "unexpected answer from Azure DevOps";
  }
}

export interface RegistratorIo {
  stdout(line: string): void;
  stderr(line: string): void;
  fetch?: typeof fetch;
  /** Waits between attempts of a registration that failed for a passing reason. Default: a timer. */
  sleep?: (ms: number) => Promise<void>;
}

/** Attempts of the registration in all; a repeated POST is safe because the name is fixed (409 = done). */
const REGISTER_ATTEMPTS = 3;

/** Runs the registrator; resolves the exit code. Never prints the token. */
export async function runRegistrator(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  io: RegistratorIo,
): Promise<number> {
  let config: RegistratorConfig | "help";
  try {
    config = parseRegistratorArgs(argv, env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`error: ${err.message}`);
    io.stderr("run with --help for the flags");
    return EXIT_USAGE;
  }
  if (config === "help") {
    io.stdout(helpText());
    return EXIT_OK;
  }
  const cfg = config;
  if (cfg.tokenSource === "-pat") {
    io.stderr(
      "warning: the token was given on the command line (-pat), where other processes can read it (ps, /proc, shell history); set AZP_TOKEN in the step's environment instead",
    );
  }
  if (cfg.organizationUrl.startsWith("http:")) {
    io.stderr(`warning: -allow-http: the token is sent unencrypted to ${cfg.organizationUrl}`);
  }
  const sleep = io.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const client = new AzureDevOpsClient({
    organizationUrl: cfg.organizationUrl,
    credential: cfg.credential,
    timeoutMs: cfg.timeoutMs,
    userAgent: "azure-pipelines-k8s-agent-scaler-registrator",
    ...(io.fetch ? { fetch: io.fetch } : {}),
  });
  try {
    const pool = await client.findPoolByName(cfg.poolName);
    const body = placeholderRegistration(cfg.agentName, cfg.capabilities);
    let agent: TaskAgent | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        agent = await client.registerAgent(pool.id, body);
        break;
      } catch (err) {
        if (err instanceof AgentExistsError) break;
        if (!(err instanceof AzureDevOpsError) || !err.transient || attempt >= REGISTER_ATTEMPTS) throw err;
        const waitMs = Math.min(err.retryAfterMs ?? 1000 * 2 ** (attempt - 1), 30_000);
        io.stderr(`warning: ${err.message}; trying again in ${Math.ceil(waitMs / 1000)} s`);
        await sleep(waitMs);
      }
    }
    const names = Object.keys(cfg.capabilities).join(", ");
    if (agent) {
      io.stdout(
        `registered placeholder agent '${cfg.agentName}' (id ${agent.id}) in pool '${pool.name}' with capabilities ${names}`,
      );
    } else {
      io.stdout(`placeholder agent '${cfg.agentName}' already exists in pool '${pool.name}': nothing to do`);
    }
    if (!cfg.agentName.startsWith(`${PLACEHOLDER_AGENT_PREFIX}-`)) {
      io.stderr(
        `note: the operator garbage-collects placeholders whose names start with '${PLACEHOLDER_AGENT_PREFIX}-'; ` +
          `'${cfg.agentName}' stays until someone deletes it`,
      );
    }
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof AzureDevOpsError)) throw err;
    io.stderr(`error: ${causeOf(err, cfg)}`);
    io.stderr(`  ${err.message}`);
    return EXIT_SERVICE_ERROR;
  }
}

if (import.meta.main) {
  const code = await runRegistrator(process.argv.slice(2), process.env, {
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
  });
  process.exitCode = code;
}
