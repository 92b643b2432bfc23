/**
 * Connection settings for the Kubernetes API: loaded from a kubeconfig file (current context) or from the
 * in-cluster service-account mount. Only the authentication methods the operator needs are supported:
 * client certificates, bearer tokens and token files (re-read on every use, as bound tokens rotate).
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { parse, stringify } from "yaml";

export interface ClusterConnection {
  server: string;
  /** PEM of the CA that signs the API server's certificate; undefined: the system trust store. */
  ca?: string;
  /** Client certificate and key (PEM). */
  cert?: string;
  key?: string;
  /** A static bearer token. */
  token?: string;
  /** A file holding a bearer token, read on each request. */
  tokenFile?: string;
  insecureSkipTlsVerify?: boolean;
  /** The context's namespace, or the pod's namespace in-cluster. */
  namespace?: string;
}

interface NamedEntry<T> {
  name: string;
  [key: string]: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

function field(obj: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = obj?.[key];
  return typeof v === "string" && v !== "" ? v : undefined;
}

function readData(
  obj: Record<string, unknown> | undefined,
  dataKey: string,
  fileKey: string,
  base: string,
): string | undefined {
  const data = field(obj, dataKey);
  if (data) return Buffer.from(data, "base64").toString("utf8");
  const file = field(obj, fileKey);
  if (file) return readFileSync(isAbsolute(file) ? file : join(base, file), "utf8");
  return undefined;
}

/** Parses a kubeconfig document; `path` resolves relative file references. */
export function parseKubeconfig(text: string, path: string, context?: string): ClusterConnection {
  const doc = (parse(text) ?? {}) as Record<string, unknown>;
  const contexts = (doc.contexts ?? []) as NamedEntry<Record<string, unknown>>[];
  const clusters = (doc.clusters ?? []) as NamedEntry<Record<string, unknown>>[];
  const users = (doc.users ?? []) as NamedEntry<Record<string, unknown>>[];
  const contextName = context ?? field(doc, "current-context");
  const ctx = contexts.find((c) => c.name === contextName)?.context;
  if (!ctx) throw new Error(`kubeconfig ${path}: context ${JSON.stringify(contextName)} not found`);
  const cluster = clusters.find((c) => c.name === field(ctx, "cluster"))?.cluster;
  if (!cluster) throw new Error(`kubeconfig ${path}: cluster ${JSON.stringify(field(ctx, "cluster"))} not found`);
  const user = users.find((u) => u.name === field(ctx, "user"))?.user ?? {};
  const server = field(cluster, "server");
  if (!server) throw new Error(`kubeconfig ${path}: cluster has no server`);
  if (user.exec || user["auth-provider"]) {
    throw new Error(`kubeconfig ${path}: exec and auth-provider credentials are not supported; use a token or cert`);
  }
  const base = dirname(path);
  const conn: ClusterConnection = { server: server.replace(/\/+$/, "") };
  const ca = readData(cluster, "certificate-authority-data", "certificate-authority", base);
  if (ca) conn.ca = ca;
  if (cluster["insecure-skip-tls-verify"] === true) conn.insecureSkipTlsVerify = true;
  const cert = readData(user, "client-certificate-data", "client-certificate", base);
  const key = readData(user, "client-key-data", "client-key", base);
  if (cert && key) {
    conn.cert = cert;
    conn.key = key;
  }
  const token = field(user, "token");
  if (token) conn.token = token;
  const tokenFile = field(user, "tokenFile");
  if (tokenFile) conn.tokenFile = isAbsolute(tokenFile) ? tokenFile : join(base, tokenFile);
  const ns = field(ctx, "namespace");
  if (ns) conn.namespace = ns;
  return conn;
}

export function loadKubeconfigFile(path: string, context?: string): ClusterConnection {
  return parseKubeconfig(readFileSync(path, "utf8"), path, context);
}

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The connection of a pod's service account, or undefined outside a cluster. */
export function inClusterConnection(env: NodeJS.ProcessEnv = process.env, dir = serviceAccountDir) {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const conn: ClusterConnection = {
    server: `https://${hostPart}:${port}`,
    ca: readFileSync(join(dir, "ca.crt"), "utf8"),
    tokenFile: join(dir, "token"),
  };
  try {
    conn.namespace = readFileSync(join(dir, "namespace"), "utf8").trim();
  } catch {
    // no namespace file: leave it unset
  }
  return conn;
}

/** KUBECONFIG (first entry), else in-cluster, else ~/.kube/config. */
export function defaultConnection(env: NodeJS.ProcessEnv = process.env): ClusterConnection {
  const fromEnv = env.KUBECONFIG?.split(":").find((p) => p !== "");
  if (fromEnv) return loadKubeconfigFile(fromEnv);
  const inCluster = inClusterConnection(env);
  if (inCluster) return inCluster;
  const home = env.HOME ?? "/root";
  return loadKubeconfigFile(join(home, ".kube", "config"));
}

/** Serialises a connection as a self-contained kubeconfig (data embedded, one context named `default`). */
export function kubeconfigYaml(conn: ClusterConnection, name = "default"): string {
  const cluster: Record<string, unknown> = { server: conn.server };
  if (conn.ca) cluster["certificate-authority-data"] = Buffer.from(conn.ca).toString("base64");
  if (conn.insecureSkipTlsVerify) cluster["insecure-skip-tls-verify"] = true;
  const user: Record<string, unknown> = {};
  if (conn.cert && conn.key) {
    user["client-certificate-data"] = Buffer.from(conn.cert).toString("base64");
    user["client-key-data"] = Buffer.from(conn.key).toString("base64");
  }
  if (conn.token) user.token = conn.token;
  if (conn.tokenFile) user.tokenFile = conn.tokenFile;
  const context: Record<string, unknown> = { cluster: name, user: name };
  if (conn.namespace) context.namespace = conn.namespace;
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster }],
    users: [{ name, user }],
    contexts: [{ name, context }],
    "current-context": name,
  });
}
