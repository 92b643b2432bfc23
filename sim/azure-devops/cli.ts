/**
 * Runs the Azure DevOps emulator in the foreground until SIGTERM or SIGINT.
 *
 *   node sim/azure-devops/cli.ts [--port N] [--org NAME] [--pool NAME]... [--pat TOKEN]... [--read-pat TOKEN]...
 *                                [--bearer-token TOKEN]... [--poll-timeout-ms N] [--rate-limit] [--env-out PATH] [--json]
 *                                [--https] [--https-port N] [--ca-out PATH]
 *                                [--service-principal TENANT/CLIENT_ID[:read|:manage]]... [--token-lifetime SECONDS]
 *
 * Once listening it prints, on stdout, shell lines a client can source (AZP_URL, AZP_POOL, AZP_PAT, AZP_READ_PAT,
 * AZP_SIM_CONTROL_URL; with --https AZP_SIM_HTTPS_URL and AZURE_AUTHORITY_HOST; with --ca-out AZP_SIM_CA_FILE; with
 * service principals AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET of the first), or one JSON object with
 * --json; --env-out also writes those lines to a file. Without --pat / --read-pat it makes up one PAT of each
 * scope. Human-readable progress goes to stderr.
 */
import { randomBytes } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startAzureDevOpsEmulator } from "./index.ts";

const usage = `usage: node sim/azure-devops/cli.ts [options]
  --port N              TCP port on 127.0.0.1 (default 0: a free port)
  --org NAME            organization name (default sim-org)
  --pool NAME           pool to create; repeatable (default sim-pool)
  --pat TOKEN           PAT with the manage scope; repeatable (default: one made up)
  --read-pat TOKEN      PAT with the read scope; repeatable (default: one made up)
  --bearer-token TOKEN  bearer token accepted with the manage scope; repeatable
  --poll-timeout-ms N   message long-poll timeout (default 50000)
  --rate-limit          start with rate limiting on (200 TSTUs per 5 minutes)
  --env-out PATH        also write the AZP_* lines to PATH once listening
  --json                print one JSON object instead of shell lines
  --https               also listen with TLS (a throw-away CA made with openssl): the Entra authority host
  --https-port N        port of the HTTPS listener (default 0: a free port)
  --ca-out PATH         write the CA certificate (PEM) to PATH (for NODE_EXTRA_CA_CERTS); needs --https
  --service-principal TENANT/CLIENT_ID[:read|:manage]
                        an Entra service principal with a made-up client secret, granted that scope in the
                        organization (default manage); repeatable
  --token-lifetime S    lifetime of Entra access tokens in seconds (default 3599)
  --help`;

function die(message: string): never {
  process.stderr.write(`${message}\n${usage}\n`);
  process.exit(2);
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function writeAtomically(path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, path);
}

/** A client secret the way Entra makes them: 40 characters. */
function madeUpClientSecret(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
  return [...randomBytes(40)].map((b) => alphabet[b % alphabet.length]).join("");
}

function madeUpToken(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  return [...randomBytes(52)].map((b) => alphabet[b % 32]).join("");
}

export async function main(argv: string[]): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      options: {
        port: { type: "string" },
        org: { type: "string" },
        pool: { type: "string", multiple: true },
        pat: { type: "string", multiple: true },
        "read-pat": { type: "string", multiple: true },
        "bearer-token": { type: "string", multiple: true },
        "poll-timeout-ms": { type: "string" },
        "rate-limit": { type: "boolean" },
        "env-out": { type: "string" },
        json: { type: "boolean" },
        https: { type: "boolean" },
        "https-port": { type: "string" },
        "ca-out": { type: "string" },
        "service-principal": { type: "string", multiple: true },
        "token-lifetime": { type: "string" },
        help: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    });
  }
  try {
    parsed = parse();
  } catch (err) {
    die((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const port = v.port === undefined ? 0 : Number(v.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) die(`invalid --port ${v.port}`);
  const pollTimeout = v["poll-timeout-ms"] === undefined ? undefined : Number(v["poll-timeout-ms"]);
  if (pollTimeout !== undefined && !(pollTimeout > 0)) die(`invalid --poll-timeout-ms ${v["poll-timeout-ms"]}`);
  const pools = v.pool ?? ["sim-pool"];
  const managePats = v.pat ?? [madeUpToken()];
  const readPats = v["read-pat"] ?? [madeUpToken()];
  const httpsPort = v["https-port"] === undefined ? 0 : Number(v["https-port"]);
  if (!Number.isInteger(httpsPort) || httpsPort < 0 || httpsPort > 65535)
    die(`invalid --https-port ${v["https-port"]}`);
  const https = v.https === true || v["https-port"] !== undefined;
  if (v["ca-out"] !== undefined && !https) die("--ca-out needs --https");
  const tokenLifetime = v["token-lifetime"] === undefined ? undefined : Number(v["token-lifetime"]);
  if (tokenLifetime !== undefined && !(Number.isInteger(tokenLifetime) && tokenLifetime >= 1)) {
    die(`invalid --token-lifetime ${v["token-lifetime"]}`);
  }
  const principals = (v["service-principal"] ?? []).map((spec) => {
    const m = /^([A-Za-z0-9][A-Za-z0-9.-]*)\/([^\s/:]+)(?::(read|manage))?$/.exec(spec);
    if (!m) die(`invalid --service-principal ${spec} (TENANT/CLIENT_ID[:read|:manage])`);
    return {
      tenantId: m[1] as string,
      clientId: m[2] as string,
      clientSecret: madeUpClientSecret(),
      scope: (m[3] ?? "manage") as "read" | "manage",
    };
  });

  const emulator = await startAzureDevOpsEmulator({
    port,
    organization: v.org ?? "sim-org",
    pools,
    pats: [
      ...managePats.map((token, i) => ({ token, scope: "manage" as const, name: `manage-pat-${i + 1}` })),
      ...readPats.map((token, i) => ({ token, scope: "read" as const, name: `read-pat-${i + 1}` })),
    ],
    bearerTokens: (v["bearer-token"] ?? []).map((token, i) => ({
      token,
      identity: `bearer-${i + 1}`,
      scope: "manage",
    })),
    ...(pollTimeout === undefined ? {} : { messagePollTimeoutMs: pollTimeout }),
    ...(v["rate-limit"] ? { rateLimit: { enabled: true } } : {}),
    ...(https ? { https: { port: httpsPort } } : {}),
    entraId: {
      servicePrincipals: principals,
      ...(tokenLifetime === undefined ? {} : { tokenLifetimeSeconds: tokenLifetime }),
    },
  });

  const values: Record<string, string> = {
    AZP_URL: emulator.organizationUrl,
    AZP_POOL: pools[0] as string,
    AZP_PAT: managePats[0] as string,
    AZP_READ_PAT: readPats[0] as string,
    AZP_SIM_CONTROL_URL: emulator.controlUrl,
  };
  if (emulator.httpsUrl !== undefined) {
    values.AZP_SIM_HTTPS_URL = emulator.httpsUrl;
    values.AZURE_AUTHORITY_HOST = emulator.httpsUrl;
  }
  if (v["ca-out"] !== undefined && emulator.caCertificate !== undefined) {
    writeAtomically(v["ca-out"], emulator.caCertificate, 0o644);
    values.AZP_SIM_CA_FILE = v["ca-out"];
  }
  const first = principals[0];
  if (first) {
    values.AZURE_TENANT_ID = first.tenantId;
    values.AZURE_CLIENT_ID = first.clientId;
    values.AZURE_CLIENT_SECRET = first.clientSecret;
  }
  const lines = `${Object.entries(values)
    .map(([k, val]) => `export ${k}=${shellQuote(val)}`)
    .join("\n")}\n`;
  if (v["env-out"]) writeAtomically(v["env-out"], lines, 0o600);
  const json = {
    ...values,
    port: emulator.port,
    pools,
    ...(emulator.httpsPort === undefined ? {} : { httpsPort: emulator.httpsPort }),
    ...(emulator.caCertificate === undefined ? {} : { caCertificate: emulator.caCertificate }),
    ...(principals.length === 0 ? {} : { servicePrincipals: principals }),
  };
  process.stdout.write(v.json ? `${JSON.stringify(json)}\n` : lines);
  process.stderr.write(
    `azure devops emulator: organization ${emulator.organizationUrl}, control ${emulator.controlUrl}${emulator.httpsUrl === undefined ? "" : `, https ${emulator.httpsUrl} (Entra authority host)`}\n`,
  );

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stderr.write(`azure devops emulator: ${signal}, stopping\n`);
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  await emulator.close();
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`azure devops emulator failed: ${(err as Error)?.message ?? err}\n`);
      process.exit(1);
    },
  );
}
