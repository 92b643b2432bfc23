/**
 * Connection settings for the Kubernetes API, loaded as kubectl loads them. `@kubernetes/client-node`'s
 * `KubeConfig` parses each file and supplies the credentials of exec plugins and auth providers (run when needed,
 * cached until they expire); this module merges a KUBECONFIG list with kubectl's rules, resolves relative paths,
 * picks the context and maps it to a `ClusterConnection`, the plain settings `KubeClient` turns into requests.
 */
import { existsSync, readFileSync } from "node:fs";
import type { RequestOptions } from "node:https";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { type Cluster, type Context, KubeConfig, type User } from "@kubernetes/client-node";
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

/** Extra user fields kubectl knows and client-node's `User` does not keep. */
interface UserExtras {
  tokenFile?: string;
  impersonateUid?: string;
  impersonateGroups?: string[];
}
type LoadedUser = User & UserExtras;

const absolute = (base: string, file: string) => (isAbsolute(file) ? file : join(base, file));

/**
 * One kubeconfig document, parsed by client-node; relative file references (certificates, keys, token files, an
 * exec command with a `/` in it) are resolved against `path`'s folder, as kubectl does.
 */
export function readKubeconfig(text: string, path: string): KubeConfig {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new Error(`kubeconfig ${path}: not valid YAML: ${errorMessage(err)}`);
  }
  const kc = new KubeConfig();
  if (raw === null || raw === undefined) {
    kc.loadFromOptions({ clusters: [], users: [], contexts: [], currentContext: "" });
    return kc;
  }
  if (typeof raw !== "object" || Array.isArray(raw)) throw new Error(`kubeconfig ${path}: not a kubeconfig document`);
  try {
    // As kubectl, an incomplete entry (a cluster without server, ...) stands in the way only when it is used.
    kc.loadFromString(text, { onInvalidEntry: "filter" });
  } catch (err) {
    throw new Error(`kubeconfig ${path}: ${errorMessage(err)}`);
  }
  const base = dirname(resolve(path));
  kc.makePathsAbsolute(base);
  const rawUsers = new Map<string, Record<string, unknown>>();
  for (const entry of ((raw as Record<string, unknown>).users ?? []) as { name?: string; user?: unknown }[]) {
    if (entry?.name && entry.user && typeof entry.user === "object") {
      rawUsers.set(entry.name, entry.user as Record<string, unknown>);
    }
  }
  const users = kc.users.map((user): LoadedUser => {
    const r = rawUsers.get(user.name) ?? {};
    const loaded: LoadedUser = { ...user };
    if (typeof r.tokenFile === "string" && r.tokenFile !== "") loaded.tokenFile = absolute(base, r.tokenFile);
    if (typeof r["as-uid"] === "string" && r["as-uid"] !== "") loaded.impersonateUid = r["as-uid"];
    if (Array.isArray(r["as-groups"])) loaded.impersonateGroups = r["as-groups"].map(String);
    const command = user.exec?.command;
    if (typeof command === "string" && command.includes("/") && !isAbsolute(command)) {
      return { ...loaded, exec: { ...user.exec, command: join(base, command) } };
    }
    return loaded;
  });
  kc.loadFromOptions({ clusters: kc.clusters, users, contexts: kc.contexts, currentContext: kc.currentContext });
  return kc;
}

/**
 * Merges kubeconfigs as kubectl merges a KUBECONFIG list: for each cluster, user and context name the first file
 * that defines it wins, and the current context is the first one a file sets.
 */
export function mergeKubeconfigs(configs: KubeConfig[]): KubeConfig {
  const clusters = new Map<string, Cluster>();
  const users = new Map<string, User>();
  const contexts = new Map<string, Context>();
  let currentContext = "";
  for (const kc of configs) {
    for (const c of kc.getClusters()) if (!clusters.has(c.name)) clusters.set(c.name, c);
    for (const u of kc.getUsers()) if (!users.has(u.name)) users.set(u.name, u);
    for (const c of kc.getContexts()) if (!contexts.has(c.name)) contexts.set(c.name, c);
    if (!currentContext && kc.getCurrentContext()) currentContext = kc.getCurrentContext();
  }
  const merged = new KubeConfig();
  merged.loadFromOptions({
    clusters: [...clusters.values()],
    users: [...users.values()],
    contexts: [...contexts.values()],
    currentContext,
  });
  return merged;
}

/** The auth providers client-node can serve (`azure` and `gcp` are the legacy ones kubectl dropped in 1.26). */
const authProviders = ["oidc", "azure", "gcp", "exec"];

function userCredentials(user: LoadedUser, cluster: Cluster, ca: string | undefined, clock?: Clock) {
  const exec = user.exec as Record<string, unknown> | undefined | null;
  const provider = user.authProvider as { name?: string; config?: Record<string, unknown> } | undefined | null;
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
    // A KubeConfig holding only this user: its authenticators (and their caches) live as long as the fetcher.
    fetcher: () => {
      const kc = new KubeConfig();
      kc.loadFromClusterAndUser(
        { name: "credentials", server: "https://credentials.invalid", skipTLSVerify: false },
        session,
      );
      return async () => {
        const opts: RequestOptions = {};
        try {
          await kc.applyToHTTPSOptions(opts);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") throw new Error(`command not found${hint}`);
          const text = errorMessage(err).trim();
          throw new Error(text ? `failed: ${text}` : "failed without a message");
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
  kc: KubeConfig,
  options: { context?: string; source?: string; clock?: Clock } = {},
): ClusterConnection {
  const source = options.source ?? "kubeconfig";
  const fail = (text: string): never => {
    throw new Error(`${source}: ${text}`);
  };
  const contextName = options.context || kc.getCurrentContext();
  if (!contextName) fail("no current-context is set; set one or choose a context (--context)");
  const ctx = kc.getContextObject(contextName);
  if (!ctx) fail(`context ${JSON.stringify(contextName)} not found (or without a cluster)`);
  const context = ctx as Context;
  const cluster =
    kc.getCluster(context.cluster) ??
    fail(`cluster ${JSON.stringify(context.cluster)} not found (or without a server)`);
  const user = (
    context.user
      ? (kc.getUser(context.user) ?? fail(`user ${JSON.stringify(context.user)} not found`))
      : {
          name: "",
        }
  ) as LoadedUser;
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
    const cert = readFileOrData("the client certificate", user.certFile ?? undefined, user.certData ?? undefined);
    const key = readFileOrData("the client key", user.keyFile ?? undefined, user.keyData ?? undefined);
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
export function loadKubeconfigFiles(paths: string[]): KubeConfig {
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
  const kc = new KubeConfig();
  const user: LoadedUser = { name: "in-cluster", tokenFile: join(dir, "token") };
  const context: Context = { name: "in-cluster", cluster: "in-cluster", user: "in-cluster" };
  try {
    const ns = readFileSync(join(dir, "namespace"), "utf8").trim();
    if (ns) Object.assign(context, { namespace: ns });
  } catch {
    // no namespace file: leave it unset
  }
  kc.loadFromOptions({
    clusters: [
      { name: "in-cluster", server: `https://${hostPart}:${port}`, caFile: join(dir, "ca.crt"), skipTLSVerify: false },
    ],
    users: [user],
    contexts: [context],
    currentContext: "in-cluster",
  });
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
