/**
 * TLS material for the emulator's HTTPS listener: a throw-away certificate authority and a server certificate for
 * 127.0.0.1 and localhost signed by it, made with the `openssl` command-line tool. Clients trust the CA (its PEM),
 * never the system trust store: in-process with `tlsOptions: { ca }` (or an https.Agent), in another process with
 * `NODE_EXTRA_CA_CERTS=<file holding the CA PEM>`.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TlsMaterial {
  /** The server certificate (PEM); with `ca` appended when the chain should be sent. */
  cert: string;
  /** The server's private key (PEM). */
  key: string;
  /** The certificate authority clients should trust (PEM). */
  ca: string;
}

export interface SelfSignedOptions {
  /** DNS names and IP addresses the server certificate is valid for. Default `127.0.0.1`, `::1`, `localhost`. */
  hosts?: readonly string[];
  /** Validity in days (both certificates). Default 7. */
  days?: number;
  /** The openssl binary. Default `openssl` from PATH. */
  openssl?: string;
}

const isIp = (host: string) => /^[0-9.]+$/.test(host) || host.includes(":");

/**
 * Makes a CA (ECDSA P-256, `CA:TRUE`, keyCertSign) and a server certificate (serverAuth, subjectAltName for every
 * host) signed by it, in a private temporary directory that is removed afterwards. Takes a few tens of ms.
 */
export async function selfSignedTls(options: SelfSignedOptions = {}): Promise<TlsMaterial> {
  const hosts = options.hosts ?? ["127.0.0.1", "::1", "localhost"];
  if (hosts.length === 0) throw new Error("a certificate needs at least one host");
  for (const h of hosts) {
    if (!/^[A-Za-z0-9.:*-]+$/.test(h)) throw new Error(`invalid host for a certificate: ${JSON.stringify(h)}`);
  }
  const days = String(options.days ?? 7);
  const openssl = options.openssl ?? "openssl";
  const san = hosts.map((h) => (isIp(h) ? `IP:${h}` : `DNS:${h}`)).join(", ");
  // Our own config file: the system openssl.cnf (and its default extensions) plays no part.
  const config = [
    "[req]",
    "distinguished_name = dn",
    "prompt = no",
    "[dn]",
    "CN = placeholder",
    "[ca_ext]",
    "basicConstraints = critical, CA:TRUE, pathlen:0",
    "keyUsage = critical, keyCertSign, cRLSign",
    "subjectKeyIdentifier = hash",
    "[leaf_ext]",
    "basicConstraints = critical, CA:FALSE",
    "keyUsage = critical, digitalSignature",
    "extendedKeyUsage = serverAuth",
    `subjectAltName = ${san}`,
    "subjectKeyIdentifier = hash",
    "authorityKeyIdentifier = keyid",
    "",
  ].join("\n");
  const dir = await mkdtemp(join(tmpdir(), "azdo-emulator-tls-"));
  const file = (name: string) => join(dir, name);
  const opensslRun = async (args: string[]) => {
    try {
      await run(openssl, args, { cwd: dir, timeout: 30_000 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === "ENOENT") {
        throw new Error(`the emulator's HTTPS listener needs the openssl command-line tool (${openssl} not found)`);
      }
      throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
    }
  };
  try {
    await writeFile(file("openssl.cnf"), config, { mode: 0o600 });
    const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await opensslRun([
      "req",
      "-x509",
      "-config",
      file("openssl.cnf"),
      "-extensions",
      "ca_ext",
      ...ecKey,
      "-keyout",
      file("ca.key"),
      "-out",
      file("ca.pem"),
      "-days",
      days,
      "-subj",
      "/O=Azure DevOps emulator/CN=Azure DevOps emulator test CA",
    ]);
    await opensslRun([
      "req",
      "-new",
      "-config",
      file("openssl.cnf"),
      ...ecKey,
      "-keyout",
      file("server.key"),
      "-out",
      file("server.csr"),
      "-subj",
      `/O=Azure DevOps emulator/CN=${hosts[0]}`,
    ]);
    await opensslRun([
      "x509",
      "-req",
      "-in",
      file("server.csr"),
      "-CA",
      file("ca.pem"),
      "-CAkey",
      file("ca.key"),
      "-set_serial",
      `0x${[...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("")}`,
      "-extfile",
      file("openssl.cnf"),
      "-extensions",
      "leaf_ext",
      "-days",
      days,
      "-out",
      file("server.pem"),
    ]);
    const [cert, key, ca] = await Promise.all([
      readFile(file("server.pem"), "utf8"),
      readFile(file("server.key"), "utf8"),
      readFile(file("ca.pem"), "utf8"),
    ]);
    return { cert, key, ca };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
