/**
 * Certificates and keys for a throw-away control plane, made with the openssl CLI:
 * a CA, the API server's serving certificate (valid for 127.0.0.1 and the in-cluster names),
 * client certificates for the admin and the control-plane components, and the service-account key pair.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await execFileAsync("openssl", args, { cwd });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") throw new Error("openssl is not installed (Debian package: openssl)");
    throw new Error(`openssl ${args.join(" ")} failed: ${e.stderr ?? e.message}`);
  }
}

export interface ClientCert {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  saPub: string;
  saKey: string;
  clients: Record<"admin" | "controllerManager" | "scheduler", ClientCert>;
}

const clientSubjects = {
  admin: "/O=system:masters/CN=kubernetes-admin",
  controllerManager: "/CN=system:kube-controller-manager",
  scheduler: "/CN=system:kube-scheduler",
} as const;

async function signed(
  dir: string,
  name: string,
  subject: string,
  extensions: string,
): Promise<{ cert: string; key: string }> {
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  await openssl(["genrsa", "-out", `${name}.key`, "2048"], dir);
  await openssl(["req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`], dir);
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-set_serial",
      `0x${randomBytes(12).toString("hex")}`,
      "-days",
      "30",
      "-sha256",
      "-extfile",
      ext,
      "-out",
      `${name}.crt`,
    ],
    dir,
  );
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

const clientExt = [
  "basicConstraints=CA:FALSE",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "extendedKeyUsage=clientAuth",
  "",
].join("\n");

/**
 * One more client certificate signed by the CA of `pkiDir` (a folder `generatePki` made), e.g. one per operator
 * replica so that the API server's audit log tells the replicas apart: `subject` like `/O=system:masters/CN=name`.
 */
export function clientCertificate(pkiDir: string, name: string, subject: string): Promise<ClientCert> {
  return signed(pkiDir, name, subject, clientExt);
}

export async function generatePki(dir: string): Promise<Pki> {
  mkdirSync(dir, { recursive: true });
  await openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "30",
      "-subj",
      "/CN=azp-sim-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ],
    dir,
  );
  const serverExt = [
    "basicConstraints=CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth",
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
    "",
  ].join("\n");
  const server = await signed(dir, "apiserver", "/CN=kube-apiserver", serverExt);
  const clients = {} as Pki["clients"];
  await Promise.all(
    (Object.keys(clientSubjects) as (keyof typeof clientSubjects)[]).map(async (name) => {
      clients[name] = await signed(dir, name, clientSubjects[name], clientExt);
    }),
  );
  await openssl(["genrsa", "-out", "sa.key", "2048"], dir);
  await openssl(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
  return {
    dir,
    caCert: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    serverCert: server.cert,
    serverKey: server.key,
    saPub: join(dir, "sa.pub"),
    saKey: join(dir, "sa.key"),
    clients,
  };
}

export function base64File(path: string): string {
  return readFileSync(path).toString("base64");
}
