/**
 * Kubeconfigs as people have them, against the real API server: an exec-plugin user (a script printing an
 * ExecCredential with a ServiceAccount token from a TokenRequest, or the admin's client certificate) lists and
 * watches; credentials refused with 401 are fetched again; tls-server-name and proxy-url are honoured; and the
 * operator started with a two-file KUBECONFIG list (cluster in one file, exec user and context in the other)
 * becomes ready.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { stringify } from "yaml";
import { serviceAccountConnection } from "../../sim/control-plane/serviceaccount.ts";
import { KubeClient, type WatchEvent } from "../../src/kube/client.ts";
import { loadKubeconfigFile } from "../../src/kube/kubeconfig.ts";
import type { KubeObject } from "../../src/kube/types.ts";
import {
  createNamespace,
  deleteNamespace,
  ensureCrd,
  eventually,
  type TestCluster,
  testCluster,
} from "../support/cluster.ts";
import { startOperatorProcess } from "../support/operator.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** An exec plugin: prints each of `statuses` in turn (the last one from then on), counting its runs. */
function execPlugin(dir: string, statuses: Record<string, unknown>[]): string {
  const lines = ["#!/bin/sh", `dir='${dir}'`, 'n=$(cat "$dir/runs" 2>/dev/null || echo 0)', "n=$((n + 1))"];
  lines.push('echo "$n" > "$dir/runs"');
  statuses.forEach((status, i) => {
    const json = JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status });
    writeFileSync(join(dir, `credential-${i + 1}.json`), json);
  });
  lines.push(
    `i=$n; if [ "$i" -gt ${statuses.length} ]; then i=${statuses.length}; fi`,
    'cat "$dir/credential-$i.json"',
  );
  const path = join(dir, "plugin.sh");
  writeFileSync(path, `${lines.join("\n")}\n`);
  chmodSync(path, 0o755);
  return path;
}

const runs = (dir: string) => Number(readFileSync(join(dir, "runs"), "utf8").trim());

async function whoami(client: KubeClient): Promise<string> {
  const review = await client.request<{ status: { userInfo: { username: string } } }>({
    method: "POST",
    path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
  });
  return review.status.userInfo.username;
}

/** An HTTP CONNECT proxy on loopback that records the targets it tunnels to. */
async function connectProxy(): Promise<{ url: string; targets: string[]; close(): Promise<void> }> {
  const targets: string[] = [];
  const server: Server = createServer((_, res) => res.writeHead(405).end());
  server.on("connect", (req, socket, head) => {
    targets.push(req.url ?? "");
    const [host, port] = (req.url ?? "").split(":");
    const upstream = connect(Number(port), host, () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    targets,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("kubeconfigs with exec plugins, lists, tls-server-name and proxies", () => {
  let cluster: TestCluster;
  let ns: string;
  let token: string;
  const account = "exec-user";
  const dirs: string[] = [];
  const clients: KubeClient[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "kubeconfig-it-"));
    dirs.push(dir);
    return dir;
  };
  const client = (path: string) => {
    const c = new KubeClient(loadKubeconfigFile(path), { timeoutMs: 20_000 });
    clients.push(c);
    return c;
  };
  const clusterEntry = (extra: Record<string, unknown> = {}) => ({
    server: cluster.connection.server,
    "certificate-authority-data": b64(cluster.connection.ca ?? ""),
    ...extra,
  });
  const kubeconfig = (dir: string, user: Record<string, unknown>, clusterExtra: Record<string, unknown> = {}) => {
    const path = join(dir, "config");
    writeFileSync(
      path,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "sim", cluster: clusterEntry(clusterExtra) }],
        users: [{ name: "me", user }],
        contexts: [{ name: "sim", context: { cluster: "sim", user: "me", namespace: ns } }],
        "current-context": "sim",
      }),
    );
    return path;
  };
  const execUser = (command: string) => ({
    exec: { apiVersion: "client.authentication.k8s.io/v1", command, interactiveMode: "Never" },
  });

  before(async () => {
    cluster = await testCluster();
    ns = await createNamespace(cluster.client, "kubeconfig");
    // The account may do anything in its namespace, nothing elsewhere.
    await cluster.client.request({
      method: "POST",
      path: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
      body: {
        metadata: { name: "exec-user-admin" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
        subjects: [{ kind: "ServiceAccount", name: account, namespace: ns }],
      },
    });
    token =
      (await serviceAccountConnection(cluster.client, { namespace: ns, name: account, create: true })).token ?? "";
    assert.ok(token);
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    if (ns) await deleteNamespace(cluster.client, ns);
    await cluster?.close();
  });

  test("an exec plugin with a ServiceAccount token: lists and watches as that account, run once", async () => {
    const dir = tempDir();
    const kube = client(kubeconfig(dir, execUser(execPlugin(dir, [{ token }]))));
    assert.equal(await whoami(kube), `system:serviceaccount:${ns}:${account}`);
    const list = await kube.request<{ metadata: { resourceVersion: string } }>({
      path: `/api/v1/namespaces/${ns}/configmaps`,
    });
    const ac = new AbortController();
    const seen: WatchEvent<KubeObject>[] = [];
    const watching = kube
      .watch<KubeObject>(
        {
          path: `/api/v1/namespaces/${ns}/configmaps`,
          query: { resourceVersion: list.metadata.resourceVersion },
          signal: ac.signal,
        },
        (e) => {
          seen.push(e);
          if (e.type === "ADDED" && e.object.metadata?.name === "through-exec") ac.abort();
        },
      )
      .catch((err: unknown) => {
        if (!ac.signal.aborted) throw err;
      });
    await kube.request({
      method: "POST",
      path: `/api/v1/namespaces/${ns}/configmaps`,
      body: { metadata: { name: "through-exec" } },
    });
    await watching;
    assert.ok(seen.some((e) => e.type === "ADDED" && e.object.metadata?.name === "through-exec"));
    // The ServiceAccount may not look outside its namespace: these are really its credentials.
    await assert.rejects(kube.request({ path: "/api/v1/namespaces/default/configmaps" }), { status: 403 });
    assert.equal(runs(dir), 1, "a credential without expiry is reused");
  });

  test("an exec plugin with the admin's client certificate", async () => {
    const dir = tempDir();
    const admin = await whoami(cluster.client);
    const status = { clientCertificateData: cluster.connection.cert, clientKeyData: cluster.connection.key };
    const kube = client(kubeconfig(dir, execUser(execPlugin(dir, [status]))));
    assert.equal(await whoami(kube), admin);
    await kube.request({ path: "/api/v1/namespaces/default/configmaps" });
  });

  test("a token refused with 401 is fetched again (once for many requests), and each request retried once", async () => {
    const dir = tempDir();
    const kube = client(kubeconfig(dir, execUser(execPlugin(dir, [{ token: "revoked" }, { token }]))));
    const names = await Promise.all([1, 2, 3, 4, 5].map(() => whoami(kube)));
    assert.deepEqual(new Set(names), new Set([`system:serviceaccount:${ns}:${account}`]));
    assert.equal(runs(dir), 2, "five requests refused at once: one run for all, one more for the retries");
    const dir2 = tempDir();
    const refused = client(kubeconfig(dir2, execUser(execPlugin(dir2, [{ token: "revoked" }]))));
    await assert.rejects(whoami(refused), { status: 401 });
    assert.equal(runs(dir2), 2, "one retry, not a loop");
  });

  test("tls-server-name: the server's certificate is checked against that name", async () => {
    const dir = tempDir();
    const user = { token };
    const good = client(kubeconfig(dir, user, { "tls-server-name": "kubernetes.default.svc" }));
    assert.equal(await whoami(good), `system:serviceaccount:${ns}:${account}`);
    const dir2 = tempDir();
    const bad = client(kubeconfig(dir2, user, { "tls-server-name": "not-the-apiserver.example" }));
    await assert.rejects(whoami(bad), /not-the-apiserver\.example.* is not in the cert's altnames/);
  });

  test("proxy-url: requests and watches are tunnelled through the proxy", async () => {
    const proxy = await connectProxy();
    try {
      const dir = tempDir();
      const kube = client(kubeconfig(dir, { token }, { "proxy-url": proxy.url }));
      assert.equal(await whoami(kube), `system:serviceaccount:${ns}:${account}`);
      const ac = new AbortController();
      const watching = kube
        .watch({ path: `/api/v1/namespaces/${ns}/configmaps`, signal: ac.signal }, () => ac.abort())
        .catch(() => {});
      await watching;
      const server = new URL(cluster.connection.server);
      assert.ok(proxy.targets.length >= 1);
      for (const target of proxy.targets) assert.equal(target, `${server.hostname}:${server.port}`);
    } finally {
      await proxy.close();
    }
  });

  test("the operator runs with a two-file KUBECONFIG list: cluster in one file, exec user and context in the other", async () => {
    await ensureCrd(cluster.client);
    const dir = tempDir();
    const clusters = join(dir, "clusters.yaml");
    const credentials = join(dir, "credentials.yaml");
    writeFileSync(
      clusters,
      stringify({ apiVersion: "v1", kind: "Config", clusters: [{ name: "sim", cluster: clusterEntry() }] }),
    );
    writeFileSync(
      credentials,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        // The first file wins for a name: this unreachable "sim" is ignored.
        clusters: [{ name: "sim", cluster: { server: "https://127.0.0.1:1" } }],
        users: [{ name: "exec", user: execUser(execPlugin(dir, [{ token }])) }],
        contexts: [{ name: "operator", context: { cluster: "sim", user: "exec", namespace: ns } }],
        "current-context": "operator",
      }),
    );
    const operator = startOperatorProcess({
      kubeconfig: undefined,
      env: { KUBECONFIG: `${clusters}:${credentials}` },
      namespaces: [ns],
    });
    try {
      const line = await operator.waitForLog(/kubernetes connection/);
      assert.match(line, /exec plugin/);
      assert.match(line, new RegExp(cluster.connection.server.replace(/[.]/g, "\\.")));
      await operator.waitForLog(/caches synced/);
      await eventually("the plugin to have run", async () => (runs(dir) >= 1 ? true : undefined));
    } finally {
      await operator.stop();
    }
  });
});
