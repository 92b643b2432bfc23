import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { stringify } from "yaml";
import { type RequestAuth, requestAuth } from "./auth.ts";
import {
  type ClusterConnection,
  inClusterConnection,
  kubeconfigYaml,
  loadConnection,
  loadKubeconfigFiles,
  parseKubeconfig,
  splitKubeconfigPaths,
} from "./kubeconfig.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

function tempDir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "kc-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** A kubeconfig with one context `c` (cluster `k`, user `u`) as current context. */
function kubeconfig(cluster: Record<string, unknown>, user?: Record<string, unknown>, namespace?: string): string {
  const context: Record<string, unknown> = { cluster: "k" };
  if (user) context.user = "u";
  if (namespace) context.namespace = namespace;
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "k", cluster: { server: "https://127.0.0.1:6443", ...cluster } }],
    users: user ? [{ name: "u", user }] : [],
    contexts: [{ name: "c", context }],
    "current-context": "c",
  });
}

/** A script for an exec user: prints `credential` as an ExecCredential, counts its runs, keeps its environment. */
function execPlugin(dir: string, status: Record<string, unknown>, name = "plugin.sh"): string {
  const path = join(dir, name);
  const credential = JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status });
  writeFileSync(
    path,
    [
      "#!/bin/sh",
      `echo run >> '${dir}/runs'`,
      `printf '%s' "$KUBERNETES_EXEC_INFO" > '${dir}/exec-info'`,
      `printf '%s' "$EXTRA" > '${dir}/extra'`,
      `cat <<'EOF'`,
      credential,
      "EOF",
      "",
    ].join("\n"),
  );
  chmodSync(path, 0o755);
  return path;
}

const runs = (dir: string) =>
  existsSync(join(dir, "runs")) ? readFileSync(join(dir, "runs"), "utf8").split("\n").length - 1 : 0;

/** The connection's settings without its plugin (compared on their own) and origin. */
function settings(conn: ClusterConnection): Record<string, unknown> {
  const { credentials: _c, origin: _o, ...rest } = conn;
  return rest;
}

describe("kubeconfig → connection and request auth", () => {
  const cases: {
    name: string;
    files?: Record<string, string>;
    cluster?: Record<string, unknown>;
    user?: (dir: string) => Record<string, unknown> | undefined;
    namespace?: string;
    connection: (dir: string) => Record<string, unknown>;
    auth: RequestAuth;
    plugin?: string;
  }[] = [
    {
      name: "embedded CA and client certificate",
      cluster: { "certificate-authority-data": b64("CA") },
      user: () => ({ "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") }),
      connection: () => ({ server: "https://127.0.0.1:6443", ca: "CA", cert: "CERT", key: "KEY" }),
      auth: { headers: {}, cert: "CERT", key: "KEY" },
    },
    {
      name: "CA, certificate and key files relative to the kubeconfig",
      files: { "pki/ca.pem": "CA-F", "pki/c.pem": "CERT-F", "pki/k.pem": "KEY-F" },
      cluster: { "certificate-authority": "pki/ca.pem" },
      user: () => ({ "client-certificate": "pki/c.pem", "client-key": "pki/k.pem" }),
      connection: () => ({ server: "https://127.0.0.1:6443", ca: "CA-F", cert: "CERT-F", key: "KEY-F" }),
      auth: { headers: {}, cert: "CERT-F", key: "KEY-F" },
    },
    {
      name: "a token, a namespace, a trailing slash",
      cluster: { server: "https://127.0.0.1:6443/" },
      user: () => ({ token: "t0k" }),
      namespace: "ns1",
      connection: () => ({ server: "https://127.0.0.1:6443", token: "t0k", namespace: "ns1" }),
      auth: { headers: { Authorization: "Bearer t0k" } },
    },
    {
      name: "a token file relative to the kubeconfig (wins over a token, as in client-go)",
      files: { "secrets/token": "file-token\n" },
      user: () => ({ tokenFile: "secrets/token", token: "ignored" }),
      connection: (dir) => ({ server: "https://127.0.0.1:6443", tokenFile: join(dir, "secrets/token") }),
      auth: { headers: { Authorization: "Bearer file-token" } },
    },
    {
      name: "basic auth",
      user: () => ({ username: "admin", password: "pw" }),
      connection: () => ({ server: "https://127.0.0.1:6443", username: "admin", password: "pw" }),
      auth: { headers: { Authorization: `Basic ${b64("admin:pw")}` } },
    },
    {
      name: "tls-server-name, insecure-skip-tls-verify and an http proxy",
      cluster: {
        "tls-server-name": "kubernetes.default",
        "insecure-skip-tls-verify": true,
        "proxy-url": "http://127.0.0.1:3128",
      },
      connection: () => ({
        server: "https://127.0.0.1:6443",
        tlsServerName: "kubernetes.default",
        insecureSkipTlsVerify: true,
        proxyUrl: "http://127.0.0.1:3128",
      }),
      auth: { headers: {} },
    },
    {
      name: "impersonation (as, as-uid, as-groups)",
      user: () => ({ token: "t", as: "jane", "as-uid": "7", "as-groups": ["devs", "ops"] }),
      connection: () => ({
        server: "https://127.0.0.1:6443",
        token: "t",
        impersonate: { user: "jane", uid: "7", groups: ["devs", "ops"] },
      }),
      auth: {
        headers: {
          Authorization: "Bearer t",
          "Impersonate-User": "jane",
          "Impersonate-Uid": "7",
          "Impersonate-Group": ["devs", "ops"],
        },
      },
    },
    {
      name: "an exec plugin printing a token",
      user: (dir) => ({
        exec: { apiVersion: "client.authentication.k8s.io/v1", command: execPlugin(dir, { token: "exec-token" }) },
      }),
      connection: () => ({ server: "https://127.0.0.1:6443" }),
      auth: { headers: { Authorization: "Bearer exec-token" }, fromPlugin: { token: "exec-token" } },
      plugin: 'user "u": exec plugin',
    },
    {
      name: "an exec plugin printing a client certificate",
      user: (dir) => ({
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: execPlugin(dir, { clientCertificateData: "EXEC-CERT", clientKeyData: "EXEC-KEY" }),
        },
      }),
      connection: () => ({ server: "https://127.0.0.1:6443" }),
      auth: {
        headers: {},
        cert: "EXEC-CERT",
        key: "EXEC-KEY",
        fromPlugin: { cert: "EXEC-CERT", key: "EXEC-KEY" },
      },
      plugin: 'user "u": exec plugin',
    },
    {
      name: "a static token wins over an exec plugin (kubectl)",
      user: (dir) => ({ token: "static", exec: { command: execPlugin(dir, { token: "exec" }) } }),
      connection: () => ({ server: "https://127.0.0.1:6443", token: "static" }),
      auth: { headers: { Authorization: "Bearer static" } },
    },
    {
      name: "no user: anonymous",
      user: () => undefined,
      connection: () => ({ server: "https://127.0.0.1:6443" }),
      auth: { headers: {} },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const dir = tempDir(c.files);
      const path = join(dir, "config");
      writeFileSync(path, kubeconfig(c.cluster ?? {}, c.user?.(dir), c.namespace));
      const conn = loadConnection({ paths: [path], env: {} });
      assert.deepEqual(settings(conn), c.connection(dir));
      assert.equal(conn.origin, `context "c" of ${path}`);
      if (c.plugin) assert.match(conn.credentials?.description ?? "", new RegExp(`^${c.plugin}`));
      else assert.equal(conn.credentials, undefined);
      assert.deepEqual(await requestAuth(conn), c.auth);
    });
  }

  const bad: [string, string, RegExp][] = [
    ["no current context", kubeconfig({}).replace("current-context: c", 'current-context: ""'), /no current-context/],
    [
      "a missing context",
      kubeconfig({}).replace("current-context: c", "current-context: zz"),
      /context "zz" not found/,
    ],
    [
      "a missing cluster",
      kubeconfig({}).replace("cluster: k\n", "cluster: nope\n"),
      /cluster "nope" not found \(or without a server\)/,
    ],
    ["a missing user", kubeconfig({}, { token: "t" }).replace("user: u", "user: who"), /user "who" not found/],
    ["a plain http server", kubeconfig({ server: "http://127.0.0.1:8080" }), /server must be an https URL/],
    [
      "a socks proxy (credentials hidden)",
      kubeconfig({ "proxy-url": "socks5://me:secret@127.0.0.1:1080" }),
      /proxy-url "socks5:\/\/\*\*\*@127\.0\.0\.1:1080" is not supported: only http:\/\/ and https:\/\//,
    ],
    [
      "a token and basic auth together",
      kubeconfig({}, { token: "t", username: "u", password: "p" }),
      /username\/password or a bearer token may be set, but not both/,
    ],
    [
      "a certificate without its key",
      kubeconfig({}, { "client-certificate-data": b64("C") }),
      /needs both the certificate and the key/,
    ],
    [
      "an unknown auth-provider",
      kubeconfig({}, { "auth-provider": { name: "keystone", config: {} } }),
      /auth-provider "keystone" is not supported .*use an exec plugin/,
    ],
    [
      "an interactive-only exec plugin",
      kubeconfig({}, { exec: { command: "kubelogin", interactiveMode: "Always" } }),
      /needs a terminal \(interactiveMode: Always\)/,
    ],
    [
      "an unreadable CA file",
      kubeconfig({ "certificate-authority": "/nonexistent/ca.pem" }),
      /cannot read the certificate authority \/nonexistent\/ca\.pem/,
    ],
    ["YAML that does not parse", "clusters: [", /not valid YAML/],
    ["a document that is not a mapping", "- a\n- b\n", /not a kubeconfig document/],
  ];
  for (const [name, text, message] of bad) {
    test(`refuses ${name}, naming the file and context`, () => {
      assert.throws(() => parseKubeconfig(text, "/x/config"), message);
      assert.throws(() => parseKubeconfig(text, "/x/config"), /\/x\/config/);
    });
  }

  test("an explicit context", () => {
    const doc = kubeconfig({}, { token: "t" }).replace(
      "contexts:\n",
      "contexts:\n  - name: other\n    context: { cluster: k, user: u, namespace: elsewhere }\n",
    );
    assert.equal(parseKubeconfig(doc, "/x/config", "other").namespace, "elsewhere");
    assert.equal(parseKubeconfig(doc, "/x/config").namespace, undefined);
  });

  test("an incomplete entry matters only when it is used (kubectl)", () => {
    const doc = kubeconfig({}, { token: "t" }).replace("clusters:\n", "clusters:\n  - name: broken\n    cluster: {}\n");
    assert.equal(parseKubeconfig(doc, "/x/config").token, "t");
    const used = doc.replace("cluster: k\n", "cluster: broken\n");
    assert.throws(() => parseKubeconfig(used, "/x/config"), /cluster "broken" not found \(or without a server\)/);
  });

  test("round-trips through kubeconfigYaml", () => {
    const conns: ClusterConnection[] = [
      { server: "https://127.0.0.1:9", ca: "CA", cert: "C", key: "K", namespace: "n" },
      { server: "https://127.0.0.1:9", token: "abc", tlsServerName: "api", proxyUrl: "http://127.0.0.1:3128" },
      { server: "https://127.0.0.1:9", username: "u", password: "p", insecureSkipTlsVerify: true },
      { server: "https://127.0.0.1:9", tokenFile: "/t", impersonate: { user: "j", uid: "1", groups: ["g"] } },
    ];
    for (const conn of conns)
      assert.deepEqual(settings(parseKubeconfig(kubeconfigYaml(conn, "sa"), "/x/config")), conn);
  });
});

describe("KUBECONFIG lists, merged as kubectl merges them", () => {
  const file = (doc: Record<string, unknown>) => stringify({ apiVersion: "v1", kind: "Config", ...doc });
  const cluster = (name: string, server: string) => ({ name, cluster: { server } });

  test("cluster in one file, user and context in the other", () => {
    const dir = tempDir({
      "a/config": file({ clusters: [cluster("sim", "https://127.0.0.1:1111")] }),
      "b/config": file({
        users: [{ name: "me", user: { token: "t" } }],
        contexts: [{ name: "work", context: { cluster: "sim", user: "me", namespace: "ops" } }],
        "current-context": "work",
      }),
    });
    const conn = loadConnection({ env: { KUBECONFIG: `${dir}/a/config:${dir}/b/config` } });
    assert.deepEqual(settings(conn), { server: "https://127.0.0.1:1111", token: "t", namespace: "ops" });
  });

  test("the first file wins for a name; the current context is the first one set", () => {
    const dir = tempDir({
      one: file({ clusters: [cluster("k", "https://127.0.0.1:1")], users: [{ name: "u", user: { token: "first" } }] }),
      two: file({
        clusters: [cluster("k", "https://127.0.0.1:2"), cluster("k2", "https://127.0.0.1:22")],
        users: [{ name: "u", user: { token: "second" } }],
        contexts: [
          { name: "c", context: { cluster: "k", user: "u" } },
          { name: "c2", context: { cluster: "k2", user: "u" } },
        ],
        "current-context": "c",
      }),
      three: file({ contexts: [{ name: "c", context: { cluster: "k2", user: "u" } }], "current-context": "c2" }),
    });
    const paths = ["one", "two", "three"].map((f) => join(dir, f));
    const conn = loadConnection({ paths });
    assert.deepEqual(settings(conn), { server: "https://127.0.0.1:1", token: "first" });
    assert.equal(conn.origin, `context "c" of ${paths.join(":")}`);
    assert.equal(loadKubeconfigFiles(paths).currentContext, "c");
    const other = loadConnection({ paths, context: "c2" });
    assert.deepEqual(settings(other), { server: "https://127.0.0.1:22", token: "first" });
  });

  test("relative paths are resolved against each file's own folder", () => {
    const dir = tempDir({
      "a/ca.pem": "CA-A",
      "a/config": file({
        clusters: [{ name: "k", cluster: { server: "https://127.0.0.1:1", "certificate-authority": "ca.pem" } }],
      }),
      "b/token": "tok-b",
      "b/config": file({
        users: [{ name: "u", user: { tokenFile: "token" } }],
        contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
        "current-context": "c",
      }),
    });
    const conn = loadConnection({ paths: [join(dir, "a/config"), join(dir, "b/config")] });
    assert.deepEqual(settings(conn), { server: "https://127.0.0.1:1", ca: "CA-A", tokenFile: join(dir, "b/token") });
  });

  test("missing and empty files in the list are skipped; none at all is an error", () => {
    const dir = tempDir({ empty: "", config: kubeconfig({}, { token: "t" }) });
    const conn = loadConnection({
      paths: [join(dir, "missing"), join(dir, "empty"), join(dir, "config"), join(dir, "config")],
    });
    assert.equal(conn.token, "t");
    assert.throws(() => loadConnection({ paths: [join(dir, "missing")] }), /kubeconfig .*missing: no such file/);
  });

  test("splitKubeconfigPaths drops empty entries", () => {
    assert.deepEqual(splitKubeconfigPaths(":/a::/b:"), ["/a", "/b"]);
    assert.deepEqual(splitKubeconfigPaths(undefined), []);
  });
});

describe("where the connection comes from", () => {
  const mount = () => tempDir({ "sa/ca.crt": "SA-CA", "sa/token": "sa-token", "sa/namespace": "ops\n" });
  const inCluster = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" };

  test("in-cluster: the service-account mount, the token re-read on each request, IPv6 bracketed", async () => {
    const dir = mount();
    const conn = inClusterConnection({ ...inCluster, KUBERNETES_SERVICE_HOST: "fd00::1" }, join(dir, "sa"));
    assert.ok(conn);
    assert.deepEqual(settings(conn), {
      server: "https://[fd00::1]:443",
      ca: "SA-CA",
      tokenFile: join(dir, "sa/token"),
      namespace: "ops",
    });
    assert.equal(conn.origin, "in-cluster service account");
    assert.deepEqual((await requestAuth(conn)).headers, { Authorization: "Bearer sa-token" });
    writeFileSync(join(dir, "sa/token"), "rotated");
    assert.deepEqual((await requestAuth(conn)).headers, { Authorization: "Bearer rotated" });
    assert.equal(inClusterConnection({}, join(dir, "sa")), undefined, "outside a cluster");
  });

  test("order: given files, then KUBECONFIG, then in-cluster (unless a context is asked for), then ~/.kube/config", () => {
    const dir = mount();
    const home = tempDir({ ".kube/config": kubeconfig({ server: "https://127.0.0.1:3" }, { token: "home" }) });
    writeFileSync(join(dir, "given"), kubeconfig({ server: "https://127.0.0.1:1" }, { token: "given" }));
    writeFileSync(join(dir, "env"), kubeconfig({ server: "https://127.0.0.1:2" }, { token: "env" }));
    const env = { ...inCluster, HOME: home, KUBECONFIG: join(dir, "env") };
    const sa = join(dir, "sa");
    const token = (o: Parameters<typeof loadConnection>[0]) => {
      const c = loadConnection({ serviceAccountDir: sa, ...o });
      return c.token ?? c.tokenFile;
    };
    assert.equal(token({ env, paths: [join(dir, "given")] }), "given");
    assert.equal(token({ env }), "env");
    assert.equal(token({ env: { ...env, KUBECONFIG: "" } }), join(sa, "token"));
    assert.equal(token({ env: { ...env, KUBECONFIG: "" }, context: "c" }), "home");
    assert.equal(token({ env: { HOME: home } }), "home");
    assert.throws(
      () => loadConnection({ env: { HOME: tempDir() }, serviceAccountDir: sa }),
      /no kubeconfig: .*\.kube\/config does not exist, KUBECONFIG and --kubeconfig are not set, and this is not a pod/,
    );
  });
});

describe("exec plugins (run by client-node, cached by expiry)", () => {
  const load = (dir: string, exec: Record<string, unknown>) => {
    writeFileSync(join(dir, "config"), kubeconfig({ "certificate-authority-data": b64("CA") }, { exec }));
    return loadConnection({ paths: [join(dir, "config")] });
  };

  test("a credential without expiry is fetched once; invalidate fetches it again", async () => {
    const dir = tempDir();
    const conn = load(dir, { apiVersion: "client.authentication.k8s.io/v1", command: execPlugin(dir, { token: "t" }) });
    await Promise.all([requestAuth(conn), requestAuth(conn), requestAuth(conn)]);
    await requestAuth(conn);
    assert.equal(runs(dir), 1);
    conn.credentials?.invalidate();
    assert.deepEqual((await requestAuth(conn)).headers, { Authorization: "Bearer t" });
    assert.equal(runs(dir), 2);
  });

  test("an expired credential is fetched again on each use", async () => {
    const dir = tempDir();
    const expired = { token: "t", expirationTimestamp: "2000-01-01T00:00:00Z" };
    const conn = load(dir, { apiVersion: "client.authentication.k8s.io/v1", command: execPlugin(dir, expired) });
    await requestAuth(conn);
    await requestAuth(conn);
    assert.equal(runs(dir), 2);
  });

  test("arguments, env, KUBERNETES_EXEC_INFO with the cluster when asked, a command relative to the file", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "bin"));
    execPlugin(dir, { token: "t" }, "bin/plugin.sh");
    const conn = load(dir, {
      apiVersion: "client.authentication.k8s.io/v1beta1",
      command: "./bin/plugin.sh",
      args: ["get-token"],
      env: [{ name: "EXTRA", value: "yes" }],
      provideClusterInfo: true,
    });
    assert.match(conn.credentials?.description ?? "", new RegExp(`exec plugin "${dir}/bin/plugin.sh"`));
    await requestAuth(conn);
    assert.equal(readFileSync(join(dir, "extra"), "utf8"), "yes");
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "exec-info"), "utf8")), {
      apiVersion: "client.authentication.k8s.io/v1beta1",
      kind: "ExecCredential",
      spec: {
        interactive: false,
        cluster: { server: "https://127.0.0.1:6443", "certificate-authority-data": b64("CA") },
      },
    });
  });

  test("failures say which user and plugin, with the install hint or the plugin's message", async () => {
    const dir = tempDir();
    const missing = load(dir, { command: join(dir, "nope"), installHint: "install it with brew install nope" });
    await assert.rejects(
      requestAuth(missing),
      new RegExp(`user "u": exec plugin "${dir}/nope": command not found \\(install it with brew install nope\\)`),
    );
    writeFileSync(join(dir, "fail.sh"), "#!/bin/sh\necho 'AADSTS70043: the refresh token has expired' >&2\nexit 1\n");
    chmodSync(join(dir, "fail.sh"), 0o755);
    await assert.rejects(
      requestAuth(load(dir, { command: join(dir, "fail.sh") })),
      /exec plugin ".*fail\.sh": failed: AADSTS70043: the refresh token has expired/,
    );
    writeFileSync(
      join(dir, "empty.sh"),
      '#!/bin/sh\necho \'{"apiVersion":"client.authentication.k8s.io/v1","status":{}}\'\n',
    );
    chmodSync(join(dir, "empty.sh"), 0o755);
    const empty = load(dir, { command: join(dir, "empty.sh") });
    await assert.rejects(requestAuth(empty), /gave neither a token nor a client certificate/);
    // What the plugin printed is not kept after a failure: fixed, it is asked again.
    execPlugin(dir, { token: "fixed" }, "empty.sh");
    assert.deepEqual((await requestAuth(empty)).headers, { Authorization: "Bearer fixed" });
  });
});
