/**
 * Connection settings for the Kubernetes API, loaded as kubectl loads them: this module parses kubeconfig files,
 * merges a KUBECONFIG list with kubectl's rules, resolves relative paths, picks the context and maps it to a
 * `ClusterConnection`, the plain settings `KubeClient` turns into requests. The credentials of exec plugins and
 * auth providers come from `@kubernetes/client-node`'s authenticators (run when needed, cached until they
 * expire), loaded only when a kubeconfig user has one.
 */
import { existsSync, readFileSync } from "node:fs";
import type { RequestOptions } from "node:https";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import type { KubeConfig, User } from "@kubernetes/client-node";
import { parse, stringify } from "yaml";
import type { Clock } from "../runtime/clock.ts";
import { errorMessage } from "../runtime/logger.ts";
import { type AuthSettings, type Credentials, cachedCredentials, hasStaticAuth, type Impersonation } from "./auth.ts";

export type { CredentialSource, Credentials, Impersonation } from "./auth.ts";

export interface ClusterConnection extends AuthSettings {
  /** `https://host:port`, maybe with a path prefix; no trailing slash. */
  server: string;
  /** PEM of the CA that signs the API server's certificate; undefined: the system trust store. */
  ca?: string;
  /** The name to verify the server's certificate against (and to send as SNI) instead of the URL's host. */
  tlsServerName?: string;
  insecureSkipTlsVerify?: boolean;
  /** An `http://` or `https://` proxy that requests are tunnelled through (CONNECT). */
  proxyUrl?: string;
  /** The context's namespace, or the pod's namespace in-cluster. */
  namespace?: string;
  /** Where the settings came from, for logs: `context "x" of /path/config`, `in-cluster service account`. */
  origin?: string;
}

export interface LoadOptions {
  /**
   * kubeconfig files, merged as kubectl merges a KUBECONFIG list (missing files skipped). Empty or undefined:
   * the `KUBECONFIG` variable, else the in-cluster service account, else `~/.kube/config`.
   */
  paths?: string[];
  /** The context to use instead of the current one. */
  context?: string;
  env?: NodeJS.ProcessEnv;
  /** The service-account mount (tests). */
  serviceAccountDir?: string;
  /** Clock of credential-plugin timeouts (tests). */
  clock?: Clock;
}

/** Splits a KUBECONFIG-style list (`:` between files, `;` on Windows), dropping empty entries. */
export function splitKubeconfigPaths(value: string | undefined): string[] {
  return (value ?? "").split(delimiter).filter((p) => p !== "");
}

/** A cluster entry of a kubeconfig, with its file references made absolute. */
export interface KubeconfigCluster {
  name: string;
  server: string;
  caFile?: string;
  caData?: string;
  skipTLSVerify?: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
}

/** A user entry of a kubeconfig, with its file references (and an exec command with a `/`) made absolute. */
export interface KubeconfigUser {
  name: string;
  token?: string;
  tokenFile?: string;
  certFile?: string;
  certData?: string;
  keyFile?: string;
  keyData?: string;
  username?: string;
  password?: string;
  impersonateUser?: string;
  impersonateUid?: string;
  impersonateGroups?: string[];
  /** The `exec` block as written (command, args, env, apiVersion, interactiveMode, provideClusterInfo, installHint). */
  exec?: Record<string, unknown>;
  /** The `auth-provider` block as written (name, config). */
  authProvider?: { name?: string; config?: Record<string, unknown> };
}

export interface KubeconfigContext {
  name: string;
  cluster: string;
  user?: string;
  namespace?: string;
}

/** A parsed (or merged) kubeconfig. */
export interface Kubeconfig {
  clusters: KubeconfigCluster[];
  users: KubeconfigUser[];
  contexts: KubeconfigContext[];
  currentContext: string;
}

const absolute = (base: string, file: string) => (isAbsolute(file) ? file : join(base, file));
const text = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const record = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

/** The named entries of one list (`clusters`, `users`, `contexts`): `[name, body]`, entries without a name dropped. */
function namedEntries(list: unknown, key: string): [string, Record<string, unknown> | undefined][] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((entry) => {
    const e = record(entry);
    const name = text(e?.name);
    return name ? [[name, record(e?.[key])] as [string, Record<string, unknown> | undefined]] : [];
  });
}

/** Sets `target[key]` when `value` is defined (the configuration types have optional, not undefined, fields). */
function put<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

/**
 * One kubeconfig document. Relative file references (certificates, keys, token files, an exec command with a `/`
 * in it) are resolved against `path`'s folder, as kubectl does. As kubectl, an incomplete entry (a cluster without
 * server, a context without cluster) is left out: it stands in the way only when it is used.
 */
export function readKubeconfig(source: string, path: string): Kubeconfig {
  let raw: unknown;
  try {
    raw = parse(source);
  } catch (err) {
    throw new Error(`kubeconfig ${path}: not valid YAML: ${errorMessage(err)}`);
  }
  if (raw === null || raw === undefined) return { clusters: [], users: [], contexts: [], currentContext: "" };
  const doc = record(raw);
  if (!doc) throw new Error(`kubeconfig ${path}: not a kubeconfig document`);
  const base = dirname(resolve(path));
  const file = (v: unknown) => {
    const f = text(v);
    return f === undefined ? undefined : absolute(base, f);
  };
  const clusters = namedEntries(doc.clusters, "cluster").flatMap(([name, c]): KubeconfigCluster[] => {
    const server = text(c?.server);
    if (!c || !server) return [];
    const cluster: KubeconfigCluster = { name, server };
    put(cluster, "caFile", file(c["certificate-authority"]));
    put(cluster, "caData", text(c["certificate-authority-data"]));
    if (c["insecure-skip-tls-verify"] === true) cluster.skipTLSVerify = true;
    put(cluster, "tlsServerName", text(c["tls-server-name"]));
    put(cluster, "proxyUrl", text(c["proxy-url"]));
    return [cluster];
  });
  const users = namedEntries(doc.users, "user").map(([name, u]): KubeconfigUser => {
    const user: KubeconfigUser = { name };
    if (!u) return user;
    put(user, "token", text(u.token));
    // `tokenFile` is kubectl's spelling; `token-file` is what client libraries accepted too.
    put(user, "tokenFile", file(u.tokenFile) ?? file(u["token-file"]));
    put(user, "certFile", file(u["client-certificate"]));
    put(user, "certData", text(u["client-certificate-data"]));
    put(user, "keyFile", file(u["client-key"]));
    put(user, "keyData", text(u["client-key-data"]));
    put(user, "username", text(u.username));
    put(user, "password", text(u.password));
    put(user, "impersonateUser", text(u.as));
    put(user, "impersonateUid", text(u["as-uid"]));
    if (Array.isArray(u["as-groups"])) user.impersonateGroups = u["as-groups"].map(String);
    const exec = record(u.exec);
    if (exec) {
      const command = exec.command;
      const relative = typeof command === "string" && command.includes("/") && !isAbsolute(command);
      user.exec = relative ? { ...exec, command: join(base, command) } : exec;
    }
    const provider = record(u["auth-provider"]);
    if (provider) {
      user.authProvider = {};
      put(user.authProvider, "name", text(provider.name));
      put(user.authProvider, "config", record(provider.config));
    }
    return user;
  });
  const contexts = namedEntries(doc.contexts, "context").flatMap(([name, c]): KubeconfigContext[] => {
    const cluster = text(c?.cluster);
    if (!c || !cluster) return [];
    const context: KubeconfigContext = { name, cluster };
    put(context, "user", text(c.user));
    put(context, "namespace", text(c.namespace));
    return [context];
  });
  return { clusters, users, contexts, currentContext: text(doc["current-context"]) ?? "" };
}

/**
 * Merges kubeconfigs as kubectl merges a KUBECONFIG list: for each cluster, user and context name the first file
 * that defines it wins, and the current context is the first one a file sets.
 */
export function mergeKubeconfigs(configs: Kubeconfig[]): Kubeconfig {
  const firstByName = <T extends { name: string }>(lists: T[][]): T[] => {
    const byName = new Map<string, T>();
    for (const item of lists.flat()) if (!byName.has(item.name)) byName.set(item.name, item);
    return [...byName.values()];
  };
  return {
    clusters: firstByName(configs.map((c) => c.clusters)),
    users: firstByName(configs.map((c) => c.users)),
    contexts: firstByName(configs.map((c) => c.contexts)),
    currentContext: configs.find((c) => c.currentContext)?.currentContext ?? "",
  };
}

/** The auth providers client-node can serve (`azure` and `gcp` are the legacy ones kubectl dropped in 1.26). */
const authProviders = ["oidc", "azure", "gcp", "exec"];

function userCredentials(user: KubeconfigUser, cluster: KubeconfigCluster, ca: string | undefined, clock?: Clock) {
  const exec = user.exec;
  const provider = user.authProvider;
  let description: string;
  let session: User;
  if (exec) {
    if (typeof exec.command !== "string" || exec.command === "") {
      throw new Error(`user "${user.name}": exec has no command`);
    }
    if (exec.interactiveMode === "Always") {
      throw new Error(
        `user "${user.name}": exec plugin "${exec.command}" needs a terminal (interactiveMode: Always); ` +
          "the operator runs unattended: use a non-interactive login (e.g. kubelogin with a service principal, " +
          "managed identity or workload identity)",
      );
    }
    description = `user "${user.name}": exec plugin "${exec.command}"`;
    // client-go tells the plugin how it runs through KUBERNETES_EXEC_INFO; client-node does not, so add it.
    const info: Record<string, unknown> = {
      apiVersion: exec.apiVersion ?? "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      spec: { interactive: false },
    };
    if (exec.provideClusterInfo === true) {
      const c: Record<string, unknown> = { server: cluster.server };
      if (ca) c["certificate-authority-data"] = Buffer.from(ca).toString("base64");
      if (cluster.tlsServerName) c["tls-server-name"] = cluster.tlsServerName;
      if (cluster.skipTLSVerify) c["insecure-skip-tls-verify"] = true;
      if (cluster.proxyUrl) c["proxy-url"] = cluster.proxyUrl;
      (info.spec as Record<string, unknown>).cluster = c;
    }
    const env = [
      ...((exec.env as { name: string; value: string }[] | null | undefined) ?? []),
      { name: "KUBERNETES_EXEC_INFO", value: JSON.stringify(info) },
    ];
    session = { name: user.name, exec: { ...exec, args: exec.args ?? [], env } };
  } else if (provider) {
    const name = provider.name ?? "";
    if (!authProviders.includes(name) && !provider.config?.exec) {
      throw new Error(
        `user "${user.name}": auth-provider "${name}" is not supported (supported: ${authProviders.join(", ")}); ` +
          "use an exec plugin instead (kubelogin for AKS, gke-gcloud-auth-plugin for GKE, aws eks get-token for EKS)",
      );
    }
    description = `user "${user.name}": auth-provider "${name}"`;
    session = { name: user.name, authProvider: provider };
  } else {
    return undefined;
  }
  const hint = typeof exec?.installHint === "string" ? ` (${exec.installHint.trim()})` : "";
  return cachedCredentials({
    description,
    ...(clock ? { clock } : {}),
    // client-node's authenticators run the plugin (or the provider's refresh) and cache what it gives until it
    // expires. It is loaded only here: most operators talk to their own cluster with a service-account token and
    // never pay for the library (about 90 MiB of memory). A KubeConfig holding only this user: its authenticators
    // (and their caches) live as long as the fetcher.
    fetcher: () => {
      let kc: Promise<KubeConfig> | undefined;
      const authenticator = async () => {
        const { KubeConfig } = await import("@kubernetes/client-node");
        const config = new KubeConfig();
        config.loadFromClusterAndUser(
          { name: "credentials", server: "https://credentials.invalid", skipTLSVerify: false },
          session,
        );
        return config;
      };
      return async () => {
        kc ??= authenticator();
        const opts: RequestOptions = {};
        try {
          await (await kc).applyToHTTPSOptions(opts);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") throw new Error(`command not found${hint}`);
          const message = errorMessage(err).trim();
          throw new Error(message ? `failed: ${message}` : "failed without a message");
        }
        const credentials: Credentials = {};
        const authorization = (opts.headers as Record<string, unknown> | undefined)?.Authorization;
        if (typeof authorization === "string" && authorization.startsWith("Bearer ")) {
          credentials.token = authorization.slice("Bearer ".length);
        }
        if (opts.cert && opts.key) {
          credentials.cert = opts.cert.toString();
          credentials.key = opts.key.toString();
        }
        if (!credentials.token && !credentials.cert) throw new Error("gave neither a token nor a client certificate");
        return credentials;
      };
    },
  });
}

function readFileOrData(what: string, file: string | undefined, data: string | undefined): string | undefined {
  if (file) {
    try {
      return readFileSync(file, "utf8");
    } catch (err) {
      throw new Error(`cannot read ${what} ${file}: ${errorMessage(err)}`);
    }
  }
  return data ? Buffer.from(data, "base64").toString("utf8") : undefined;
}

/** The connection of `context` (default: the current context) of a loaded kubeconfig. */
export function connectionFromKubeConfig(
  kc: Kubeconfig,
  options: { context?: string; source?: string; clock?: Clock } = {},
): ClusterConnection {
  const source = options.source ?? "kubeconfig";
  const fail = (message: string): never => {
    throw new Error(`${source}: ${message}`);
  };
  const contextName = options.context || kc.currentContext;
  if (!contextName) fail("no current-context is set; set one or choose a context (--context)");
  const context =
    kc.contexts.find((c) => c.name === contextName) ??
    fail(`context ${JSON.stringify(contextName)} not found (or without a cluster)`);
  const cluster =
    kc.clusters.find((c) => c.name === context.cluster) ??
    fail(`cluster ${JSON.stringify(context.cluster)} not found (or without a server)`);
  const user: KubeconfigUser = context.user
    ? (kc.users.find((u) => u.name === context.user) ?? fail(`user ${JSON.stringify(context.user)} not found`))
    : { name: "" };
  const where = `context ${JSON.stringify(contextName)} of ${source}`;
  try {
    const conn: ClusterConnection = { server: cluster.server.replace(/\/+$/, ""), origin: where };
    let url: URL | undefined;
    try {
      url = new URL(conn.server);
    } catch {
      // reported below
    }
    if (url?.protocol !== "https:") throw new Error(`cluster "${cluster.name}": server must be an https URL`);
    const ca = readFileOrData("the certificate authority", cluster.caFile, cluster.caData);
    if (ca) conn.ca = ca;
    if (cluster.skipTLSVerify) conn.insecureSkipTlsVerify = true;
    if (cluster.tlsServerName) conn.tlsServerName = cluster.tlsServerName;
    if (cluster.proxyUrl) {
      const scheme = cluster.proxyUrl.split(":")[0]?.toLowerCase();
      if (scheme !== "http" && scheme !== "https") {
        throw new Error(
          `cluster "${cluster.name}": proxy-url ${JSON.stringify(cluster.proxyUrl.replace(/\/\/[^@/]*@/, "//***@"))} ` +
            "is not supported: only http:// and https:// proxies are",
        );
      }
      conn.proxyUrl = cluster.proxyUrl;
    }
    const cert = readFileOrData("the client certificate", user.certFile, user.certData);
    const key = readFileOrData("the client key", user.keyFile, user.keyData);
    if (Boolean(cert) !== Boolean(key)) {
      throw new Error(`user "${user.name}": a client certificate needs both the certificate and the key`);
    }
    if (cert && key) {
      conn.cert = cert;
      conn.key = key;
    }
    if (user.tokenFile) conn.tokenFile = user.tokenFile;
    else if (user.token) conn.token = user.token;
    if (user.username || user.password) {
      if (conn.token || conn.tokenFile) {
        throw new Error(`user "${user.name}": username/password or a bearer token may be set, but not both`);
      }
      conn.username = user.username ?? "";
      if (user.password) conn.password = user.password;
    }
    const impersonate: Impersonation = {};
    if (user.impersonateUser) impersonate.user = user.impersonateUser;
    if (user.impersonateUid) impersonate.uid = user.impersonateUid;
    if (user.impersonateGroups?.length) impersonate.groups = user.impersonateGroups;
    if (Object.keys(impersonate).length > 0) conn.impersonate = impersonate;
    // As kubectl: a token, basic auth or a client certificate in the kubeconfig wins over a plugin.
    if (!hasStaticAuth(conn)) {
      const credentials = userCredentials(user, cluster, ca, options.clock);
      if (credentials) conn.credentials = credentials;
    }
    if (context.namespace) conn.namespace = context.namespace;
    return conn;
  } catch (err) {
    throw new Error(`${where}: ${errorMessage(err)}`);
  }
}

/** Parses one kubeconfig document; `path` resolves relative file references. */
export function parseKubeconfig(text: string, path: string, context?: string): ClusterConnection {
  return connectionFromKubeConfig(readKubeconfig(text, path), { source: path, ...(context ? { context } : {}) });
}

/** Reads and merges kubeconfig files (kubectl's rules); missing files are skipped, but one must exist. */
export function loadKubeconfigFiles(paths: string[]): Kubeconfig {
  const unique = [...new Set(paths)];
  const present = unique.filter((p) => existsSync(p));
  if (present.length === 0) {
    throw new Error(`kubeconfig ${unique.join(delimiter)}: no such file`);
  }
  return mergeKubeconfigs(
    present.map((p) => {
      let text: string;
      try {
        text = readFileSync(p, "utf8");
      } catch (err) {
        throw new Error(`kubeconfig ${p}: ${errorMessage(err)}`);
      }
      return readKubeconfig(text, p);
    }),
  );
}

export function loadKubeconfigFile(path: string, context?: string): ClusterConnection {
  return loadConnection({ paths: [path], ...(context ? { context } : {}) });
}

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The connection of a pod's service account (token re-read on each request), or undefined outside a cluster. */
export function inClusterConnection(
  env: NodeJS.ProcessEnv = process.env,
  dir = serviceAccountDir,
): ClusterConnection | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port || !existsSync(join(dir, "token"))) return undefined;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const context: KubeconfigContext = { name: "in-cluster", cluster: "in-cluster", user: "in-cluster" };
  try {
    const ns = readFileSync(join(dir, "namespace"), "utf8").trim();
    if (ns) context.namespace = ns;
  } catch {
    // no namespace file: leave it unset
  }
  const kc: Kubeconfig = {
    clusters: [{ name: "in-cluster", server: `https://${hostPart}:${port}`, caFile: join(dir, "ca.crt") }],
    users: [{ name: "in-cluster", tokenFile: join(dir, "token") }],
    contexts: [context],
    currentContext: "in-cluster",
  };
  const conn = connectionFromKubeConfig(kc, { source: "in-cluster service account" });
  conn.origin = "in-cluster service account";
  return conn;
}

/**
 * The connection the operator uses: the given kubeconfig files (a KUBECONFIG-style list, merged), else the
 * `KUBECONFIG` variable, else the in-cluster service account (unless a context is asked for), else
 * `~/.kube/config`. `context` picks a context other than the current one.
 */
export function loadConnection(options: LoadOptions = {}): ClusterConnection {
  const env = options.env ?? process.env;
  const extra = {
    ...(options.context ? { context: options.context } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  };
  let paths = options.paths?.filter((p) => p !== "") ?? [];
  if (paths.length === 0) paths = splitKubeconfigPaths(env.KUBECONFIG);
  if (paths.length === 0 && !options.context) {
    const inCluster = inClusterConnection(env, options.serviceAccountDir);
    if (inCluster) return inCluster;
  }
  if (paths.length === 0) {
    const home = env.HOME || homedir();
    const file = join(home, ".kube", "config");
    if (!existsSync(file)) {
      throw new Error(
        `no kubeconfig: ${file} does not exist, KUBECONFIG and --kubeconfig are not set, and this is not a pod`,
      );
    }
    paths = [file];
  }
  return connectionFromKubeConfig(loadKubeconfigFiles(paths), { source: paths.join(delimiter), ...extra });
}

/** KUBECONFIG (every file, merged), else in-cluster, else ~/.kube/config. */
export function defaultConnection(env: NodeJS.ProcessEnv = process.env): ClusterConnection {
  return loadConnection({ env });
}

/**
 * Serialises a connection as a self-contained kubeconfig (data embedded, one context named `name`). Credentials
 * from a plugin cannot be written: such a connection is refused.
 */
export function kubeconfigYaml(conn: ClusterConnection, name = "default"): string {
  if (conn.credentials) throw new Error(`kubeconfigYaml: ${conn.credentials.description} cannot be serialised`);
  const cluster: Record<string, unknown> = { server: conn.server };
  if (conn.ca) cluster["certificate-authority-data"] = Buffer.from(conn.ca).toString("base64");
  if (conn.insecureSkipTlsVerify) cluster["insecure-skip-tls-verify"] = true;
  if (conn.tlsServerName) cluster["tls-server-name"] = conn.tlsServerName;
  if (conn.proxyUrl) cluster["proxy-url"] = conn.proxyUrl;
  const user: Record<string, unknown> = {};
  if (conn.cert && conn.key) {
    user["client-certificate-data"] = Buffer.from(conn.cert).toString("base64");
    user["client-key-data"] = Buffer.from(conn.key).toString("base64");
  }
  if (conn.token) user.token = conn.token;
  if (conn.tokenFile) user.tokenFile = conn.tokenFile;
  if (conn.username !== undefined) user.username = conn.username;
  if (conn.password !== undefined) user.password = conn.password;
  if (conn.impersonate?.user) user.as = conn.impersonate.user;
  if (conn.impersonate?.uid) user["as-uid"] = conn.impersonate.uid;
  if (conn.impersonate?.groups?.length) user["as-groups"] = conn.impersonate.groups;
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
