import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { inClusterConnection, kubeconfigYaml, parseKubeconfig } from "./kubeconfig.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("parseKubeconfig", () => {
  const doc = (user: Record<string, unknown>, extra = "") => `
apiVersion: v1
kind: Config
current-context: b
clusters:
- name: ca
  cluster: { server: "https://a.example:6443", certificate-authority-data: ${b64("CA-A")} }
- name: cb
  cluster: { server: "https://127.0.0.1:1234/", certificate-authority: ca.pem }
users:
- name: u
  user: ${JSON.stringify(user)}
contexts:
- name: a
  context: { cluster: ca, user: u }
- name: b
  context: { cluster: cb, user: u, namespace: ns1 }
${extra}`;

  test("reads the current context, relative files, trailing slash, namespace", () => {
    const dir = mkdtempSync(join(tmpdir(), "kc-"));
    writeFileSync(join(dir, "ca.pem"), "CA-B");
    const conn = parseKubeconfig(doc({ token: "t0k" }), join(dir, "config"));
    assert.deepEqual(conn, { server: "https://127.0.0.1:1234", ca: "CA-B", token: "t0k", namespace: "ns1" });
  });

  test("an explicit context and embedded client certificates", () => {
    const conn = parseKubeconfig(
      doc({ "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") }),
      "/x/config",
      "a",
    );
    assert.deepEqual(conn, { server: "https://a.example:6443", ca: "CA-A", cert: "CERT", key: "KEY" });
  });

  const bad: [string, string, RegExp][] = [
    ["missing context", doc({}).replace("current-context: b", "current-context: zz"), /context "zz" not found/],
    ["missing cluster", doc({}).replace("cluster: cb, user", "cluster: nope, user"), /cluster "nope" not found/],
    ["exec plugin", doc({ exec: { command: "x" } }), /exec and auth-provider/],
  ];
  for (const [name, text, message] of bad) {
    test(`refuses a kubeconfig with a ${name}`, () => {
      assert.throws(() => parseKubeconfig(text, "/x/config"), message);
    });
  }

  test("round-trips through kubeconfigYaml", () => {
    const conn = { server: "https://127.0.0.1:9", ca: "CA", cert: "C", key: "K", namespace: "n" };
    assert.deepEqual(parseKubeconfig(kubeconfigYaml(conn), "/x/config"), conn);
    const tokenConn = { server: "https://127.0.0.1:9", token: "abc" };
    assert.deepEqual(parseKubeconfig(kubeconfigYaml(tokenConn, "sa"), "/x/config"), tokenConn);
  });
});

describe("inClusterConnection", () => {
  test("undefined outside a cluster", () => {
    assert.equal(inClusterConnection({}), undefined);
  });
  test("reads the service-account mount, IPv6 hosts bracketed", () => {
    const dir = mkdtempSync(join(tmpdir(), "sa-"));
    writeFileSync(join(dir, "ca.crt"), "CA");
    writeFileSync(join(dir, "namespace"), "ops\n");
    const conn = inClusterConnection({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" }, dir);
    assert.deepEqual(conn, {
      server: "https://[fd00::1]:443",
      ca: "CA",
      tokenFile: join(dir, "token"),
      namespace: "ops",
    });
  });
});
