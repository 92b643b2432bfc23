/**
 * Installing on a real API server: the Helm chart (cluster-wide and namespaced) and the Kustomize manifests
 * (cluster-wide and the namespaced overlay) are rendered by the real helm/kubectl and applied server-side by
 * kubectl; helm itself installs, upgrades and uninstalls a release. Then, with a token of the installed
 * ServiceAccount, the API server is asked what the operator may do: exactly what it needs, nothing more. Finally
 * the operator process runs with the namespaced chart's ServiceAccount and environment and does its job's
 * Kubernetes side (caches, Lease, secret lookup, status, events).
 *
 * The operator Deployments never run a pod (a node selector no node matches); their pods are still created,
 * which shows they pass the "restricted" Pod Security admission. Cluster-scoped objects carry unique names; the
 * CRD is shared with every other test and only ever applied, never deleted.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { stringify } from "yaml";
import { serviceAccountConnection, writeServiceAccountKubeconfig } from "../../sim/control-plane/serviceaccount.ts";
import { isNotFound, KubeApiError, KubeClient } from "../../src/kube/client.ts";
import {
  crdEstablished,
  createNamespace,
  deleteNamespace,
  eventually,
  type TestCluster,
  testCluster,
  uniqueName,
} from "../support/cluster.ts";
import {
  type Access,
  accessMismatches,
  applyServerSide,
  CRD_FILE,
  chartDir,
  containerEnv,
  find,
  helmTemplate,
  KUSTOMIZE_PREFIX,
  kustomize,
  NO_NODE_SELECTOR,
  type Obj,
  repoRoot,
  runOk,
  tempDir,
  tools,
  writeTemp,
} from "./support.ts";

const GROUP = "azurepipelines.k8s.scaler.io";
const CRD_NAME = `autoscaledagents.${GROUP}`;
const FIELD_MANAGER = "azp-deploy-test";

let cluster: TestCluster;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  cluster = await testCluster();
  const { kubectl } = await tools();
  // The CRD as an installer applies it; the same object for every test file, so never deleted.
  runOk(kubectl, [
    "--kubeconfig",
    cluster.kubeconfig,
    "apply",
    "--server-side",
    `--field-manager=${FIELD_MANAGER}`,
    "--force-conflicts",
    "-f",
    join(repoRoot, "config", "crd", CRD_FILE),
  ]);
  await crdEstablished(cluster.client, CRD_NAME);
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await cluster?.close();
});

async function namespace(prefix: string): Promise<string> {
  const ns = await createNamespace(cluster.client, prefix);
  cleanups.push(() => deleteNamespace(cluster.client, ns));
  return ns;
}

const clusterScopedPath: Record<string, string> = {
  ClusterRole: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
  ClusterRoleBinding: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
};

/** Applies rendered objects (except the CRD and Namespaces handled elsewhere) and schedules their cleanup. */
async function install(objs: Obj[]): Promise<void> {
  const applied = objs.filter((o) => o.kind !== "CustomResourceDefinition");
  for (const o of applied) {
    const base = clusterScopedPath[o.kind];
    if (base) {
      cleanups.push(() =>
        cluster.client.request({ method: "DELETE", path: `${base}/${o.metadata.name}` }).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        }),
      );
    }
  }
  const out = await applyServerSide(cluster.kubeconfig, applied, FIELD_MANAGER);
  assert.match(out, /deployment\.apps\/\S+ serverside-applied/);
}

/** A client with a fresh token of the ServiceAccount: what the operator pod would get. */
async function clientAs(ns: string, name: string): Promise<KubeClient> {
  const client = new KubeClient(await serviceAccountConnection(cluster.client, { namespace: ns, name }));
  cleanups.push(async () => client.close());
  return client;
}

/** The Deployment's pod gets created: it passed admission (Pod Security "restricted" where the namespace asks). */
async function podCreated(ns: string, selector: Obj): Promise<Obj> {
  const labelSelector = Object.entries(selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return eventually(
    `a pod of the operator Deployment in ${ns}`,
    async () => {
      const pods = await cluster.client.request<Obj>({
        path: `/api/v1/namespaces/${ns}/pods`,
        query: { labelSelector },
      });
      return pods.items[0];
    },
    30_000,
  );
}

async function restrictPodSecurity(ns: string): Promise<void> {
  await cluster.client.request({
    method: "PATCH",
    path: `/api/v1/namespaces/${ns}`,
    contentType: "application/merge-patch+json",
    body: { metadata: { labels: { "pod-security.kubernetes.io/enforce": "restricted" } } },
  });
}

const a = (verb: string, resource: string, more: Partial<Access> = {}): Access => ({ verb, resource, ...more });

/** What the operator does in a namespace where it serves AutoScaledAgents. */
function operatorNeeds(ns: string, secret = "azure-pat"): [Access, boolean][] {
  return [
    ...["get", "list", "watch"].map((v): [Access, boolean] => [
      a(v, "autoscaledagents", { group: GROUP, namespace: ns }),
      true,
    ]),
    // Its finalizer (the cleanup of a deleted resource).
    [a("patch", "autoscaledagents", { group: GROUP, namespace: ns, name: "x" }), true],
    [a("update", "autoscaledagents", { group: GROUP, namespace: ns, subresource: "finalizers", name: "x" }), true],
    ...["get", "patch", "update"].map((v): [Access, boolean] => [
      a(v, "autoscaledagents", { group: GROUP, namespace: ns, subresource: "status", name: "x" }),
      true,
    ]),
    // Predictive standby's job history.
    ...["get", "create", "update"].map((v): [Access, boolean] => [
      a(v, "configmaps", { namespace: ns, name: "x" }),
      true,
    ]),
    ...["get", "list", "watch", "create", "delete", "patch"].map((v): [Access, boolean] => [
      a(v, "pods", { namespace: ns }),
      true,
    ]),
    [a("get", "secrets", { namespace: ns, name: secret }), true],
    ...["get", "list", "watch", "create", "update", "patch", "delete"].map((v): [Access, boolean] => [
      a(v, "persistentvolumeclaims", { namespace: ns }),
      true,
    ]),
    [a("create", "events", { group: "events.k8s.io", namespace: ns }), true],
    [a("patch", "events", { group: "events.k8s.io", namespace: ns }), true],
  ];
}

/** What the operator must not do there. */
function operatorMustNot(ns: string): [Access, boolean][] {
  return [
    [a("list", "secrets", { namespace: ns }), false],
    [a("watch", "secrets", { namespace: ns }), false],
    [a("create", "secrets", { namespace: ns }), false],
    [a("create", "autoscaledagents", { group: GROUP, namespace: ns }), false],
    [a("update", "autoscaledagents", { group: GROUP, namespace: ns, name: "x" }), false],
    [a("delete", "autoscaledagents", { group: GROUP, namespace: ns, name: "x" }), false],
    [a("create", "deployments", { group: "apps", namespace: ns }), false],
    [a("create", "pods", { namespace: ns, subresource: "exec", name: "x" }), false],
    [a("list", "configmaps", { namespace: ns }), false],
    [a("delete", "configmaps", { namespace: ns, name: "x" }), false],
    [a("create", "rolebindings", { group: "rbac.authorization.k8s.io", namespace: ns }), false],
    [a("delete", "nodes", { name: "sim-node-1" }), false],
    [a("list", "nodes", {}), false],
    [a("create", "clusterrolebindings", { group: "rbac.authorization.k8s.io" }), false],
    [a("delete", "customresourcedefinitions", { group: "apiextensions.k8s.io", name: CRD_NAME }), false],
  ];
}

/** Its Lease, in its own namespace. */
function leaseAccess(ns: string, lease: string): [Access, boolean][] {
  const leases = (verb: string, name?: string) =>
    a(verb, "leases", { group: "coordination.k8s.io", namespace: ns, ...(name ? { name } : {}) });
  return [
    [leases("create"), true],
    [leases("get", lease), true],
    [leases("update", lease), true],
    [leases("get", "someone-elses-lease"), false],
    [leases("update", "someone-elses-lease"), false],
    [leases("delete", lease), false],
    [leases("list"), false],
  ];
}

/** Cluster-wide mode: every namespace, including ones created after the install. */
function clusterWide(): [Access, boolean][] {
  return [
    [a("list", "autoscaledagents", { group: GROUP }), true],
    [a("watch", "autoscaledagents", { group: GROUP }), true],
    [a("list", "pods", {}), true],
    [a("watch", "pods", {}), true],
    [a("list", "secrets", {}), false],
  ];
}

/** Namespaced mode: nothing outside the watched namespaces. */
function onlyWatched(outside: string): [Access, boolean][] {
  return [
    [a("list", "autoscaledagents", { group: GROUP }), false],
    [a("list", "pods", {}), false],
    [a("list", "autoscaledagents", { group: GROUP, namespace: outside }), false],
    [a("get", "secrets", { namespace: outside, name: "azure-pat" }), false],
    [a("create", "pods", { namespace: outside }), false],
    [a("create", "persistentvolumeclaims", { namespace: outside }), false],
    [a("create", "events", { group: "events.k8s.io", namespace: outside }), false],
  ];
}

async function expectAccess(client: KubeClient, table: [Access, boolean][]): Promise<void> {
  assert.deepEqual(await accessMismatches(client, table), []);
}

async function expectForbidden(what: string, request: Promise<unknown>): Promise<void> {
  await assert.rejects(request, (err: unknown) => err instanceof KubeApiError && err.status === 403, what);
}

function agentResource(name: string, secret: string): Obj {
  return {
    apiVersion: `${GROUP}/v1`,
    kind: "AutoScaledAgent",
    metadata: { name },
    spec: {
      poolName: "deploy-test-pool",
      // Loopback only; the tests never get as far as calling it.
      organizationUrl: "http://127.0.0.1:9/deploy-test",
      personalAccessTokenSecretName: secret,
      podsWithCapabilities: [
        {
          capabilities: { "deploy-test": "1" },
          maxCount: 1,
          podTemplateSpec: { spec: { containers: [{ name: "azure-pipelines-agent", image: "agent:test" }] } },
        },
      ],
    },
  };
}

describe("Helm chart, cluster-wide (default values)", () => {
  const release = uniqueName("hc");
  const fullname = `${release}-azure-pipelines-k8s-agent-scaler`;
  let opNs: string;
  let agentsNs: string;
  let sa: KubeClient;

  before(async () => {
    opNs = await namespace("helm-op");
    agentsNs = await namespace("helm-agents");
    await restrictPodSecurity(opNs);
    const objs = await helmTemplate({ release, namespace: opNs, values: { nodeSelector: NO_NODE_SELECTOR } });
    await install(objs);
    sa = await clientAs(opNs, fullname);
  });

  test("the Deployment is accepted and its pod passes the restricted Pod Security admission", async () => {
    const pod = await podCreated(opNs, { "app.kubernetes.io/instance": release });
    assert.equal(pod.spec.serviceAccountName, fullname);
    assert.equal(pod.spec.containers[0].securityContext.readOnlyRootFilesystem, true);
  });

  test("the ServiceAccount may do what the operator does, in every namespace", async () => {
    await expectAccess(sa, [
      ...operatorNeeds(agentsNs),
      ...operatorNeeds("any-namespace-created-later"),
      ...clusterWide(),
      ...leaseAccess(opNs, fullname),
    ]);
  });

  test("and nothing else", async () => {
    await expectAccess(sa, [...operatorMustNot(agentsNs), ...operatorMustNot(opNs)]);
  });

  test("trying it: list resources everywhere, read the token, patch status, create pods and events, hold the Lease", async () => {
    await cluster.client.request({
      method: "POST",
      path: `/api/v1/namespaces/${agentsNs}/secrets`,
      body: { metadata: { name: "azure-pat" }, stringData: { pat: "not-a-real-token" } },
    });
    await cluster.client.request({
      method: "POST",
      path: `/apis/${GROUP}/v1/namespaces/${agentsNs}/autoscaledagents`,
      body: agentResource("agents", "azure-pat"),
    });
    const list = await sa.request<Obj>({ path: `/apis/${GROUP}/v1/autoscaledagents` });
    assert.ok(list.items.some((o: Obj) => o.metadata.namespace === agentsNs));
    const secret = await sa.request<Obj>({ path: `/api/v1/namespaces/${agentsNs}/secrets/azure-pat` });
    assert.equal(Buffer.from(secret.data.pat, "base64").toString(), "not-a-real-token");
    const patched = await sa.request<Obj>({
      method: "PATCH",
      path: `/apis/${GROUP}/v1/namespaces/${agentsNs}/autoscaledagents/agents/status`,
      contentType: "application/merge-patch+json",
      body: { status: { pendingJobs: 0 } },
    });
    assert.equal(patched.status.pendingJobs, 0);
    await sa.request({
      method: "POST",
      path: `/api/v1/namespaces/${agentsNs}/pods`,
      query: { dryRun: "All" },
      body: { metadata: { name: "agent-pod" }, spec: { containers: [{ name: "agent", image: "agent:test" }] } },
    });
    await sa.request({
      method: "POST",
      path: `/apis/events.k8s.io/v1/namespaces/${agentsNs}/events`,
      body: {
        metadata: { name: uniqueName("agents") },
        // MicroTime: six fractional digits.
        eventTime: new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z"),
        reportingController: "azurepipelines.k8s.scaler.io/operator",
        reportingInstance: "deploy-test",
        action: "Test",
        reason: "Test",
        type: "Normal",
        note: "installed",
        regarding: { apiVersion: `${GROUP}/v1`, kind: "AutoScaledAgent", namespace: agentsNs, name: "agents" },
      },
    });
    const leases = `/apis/coordination.k8s.io/v1/namespaces/${opNs}/leases`;
    await sa.request({
      method: "POST",
      path: leases,
      body: { metadata: { name: fullname }, spec: { holderIdentity: "x" } },
    });
    const lease = await sa.request<Obj>({ path: `${leases}/${fullname}` });
    lease.spec.holderIdentity = "y";
    await sa.request({ method: "PUT", path: `${leases}/${fullname}`, body: lease });

    await expectForbidden("list secrets", sa.request({ path: `/api/v1/namespaces/${agentsNs}/secrets` }));
    await expectForbidden("delete a node", sa.request({ method: "DELETE", path: "/api/v1/nodes/sim-node-1" }));
    await expectForbidden(
      "create a deployment",
      sa.request({
        method: "POST",
        path: `/apis/apps/v1/namespaces/${agentsNs}/deployments`,
        query: { dryRun: "All" },
        body: { metadata: { name: "d" }, spec: {} },
      }),
    );
  });
});

describe("Helm chart, namespaced (watchNamespaces, patSecretNames), and the operator running with it", () => {
  const release = uniqueName("hn");
  const fullname = `${release}-azure-pipelines-k8s-agent-scaler`;
  let opNs: string;
  let watched: string;
  let outside: string;
  let sa: KubeClient;
  let deployment: Obj;

  before(async () => {
    opNs = await namespace("helm-op");
    watched = await namespace("helm-watched");
    outside = await namespace("helm-outside");
    await restrictPodSecurity(opNs);
    const objs = await helmTemplate({
      release,
      namespace: opNs,
      values: {
        watchNamespaces: [watched],
        rbac: { patSecretNames: ["azure-pat"] },
        nodeSelector: NO_NODE_SELECTOR,
        // The test resource names a loopback http URL (never called): allowed, so the Secret is what it lacks.
        credentialPolicy: { azureDevOpsHosts: ["127.0.0.1"], allowHttp: true },
      },
    });
    await install(objs);
    deployment = find(objs, "Deployment", fullname);
    sa = await clientAs(opNs, fullname);
  });

  test("the Deployment's pod passes the restricted Pod Security admission", async () => {
    await podCreated(opNs, { "app.kubernetes.io/instance": release });
  });

  test("the ServiceAccount may do what the operator does in the watched namespace", async () => {
    await expectAccess(sa, [...operatorNeeds(watched), ...leaseAccess(opNs, fullname)]);
  });

  test("and nothing outside it, and no Secret but the named ones", async () => {
    await expectAccess(sa, [
      ...onlyWatched(outside),
      ...operatorMustNot(watched),
      [a("get", "secrets", { namespace: watched, name: "another-secret" }), false],
      [a("get", "secrets", { namespace: opNs, name: "azure-pat" }), false],
    ]);
  });

  test("the operator, with this ServiceAccount and the Deployment's environment, syncs, leads, reports", async (t) => {
    const dir = tempDir("deploy-test-operator-");
    const kubeconfig = join(dir, "kubeconfig");
    await writeServiceAccountKubeconfig(cluster.client, { namespace: opNs, name: fullname }, kubeconfig);
    const env = containerEnv(deployment, { name: "operator-pod-0", namespace: opNs });
    const logFile = join(dir, "operator.log");
    const child: ChildProcess = spawn(
      process.execPath,
      [
        join(repoRoot, "src", "cli", "operator.ts"),
        "--kubeconfig",
        kubeconfig,
        "--port",
        "0",
        "--bind-address",
        "127.0.0.1",
      ],
      { env: { PATH: process.env.PATH, HOME: dir, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let log = "";
    const collect = (d: Buffer) => {
      log += d.toString();
      writeFileSync(logFile, log);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    t.after(async () => {
      child.kill("SIGTERM");
      await exited;
    });
    const lines = () =>
      log
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Obj);

    const started = await eventually(
      `the operator to start (log: ${logFile})`,
      async () => {
        if (child.exitCode !== null) throw new Error(`operator exited ${child.exitCode}: ${log}`);
        return lines().find((l) => l.msg === "operator started" || l.message === "operator started");
      },
      30_000,
    );
    const port = started.port as number;
    await eventually("/readyz to answer 200 (caches synced with these permissions)", async () => {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      return r.status === 200 || undefined;
    });
    const lease = await eventually("the operator to take its Lease", async () => {
      const l = await cluster.client.request<Obj>({
        path: `/apis/coordination.k8s.io/v1/namespaces/${opNs}/leases/${fullname}`,
      });
      return String(l.spec?.holderIdentity ?? "").startsWith("operator-pod-0") ? l : undefined;
    });
    assert.ok(lease);

    // A resource whose Secret does not exist: the operator may read it (404, not 403), says so in status and
    // in an event, and never gets as far as Azure DevOps.
    await cluster.client.request({
      method: "POST",
      path: `/apis/${GROUP}/v1/namespaces/${watched}/autoscaledagents`,
      body: agentResource("agents", "azure-pat"),
    });
    const condition = await eventually(
      "a status condition about the missing Secret",
      async () => {
        const o = await cluster.client.request<Obj>({
          path: `/apis/${GROUP}/v1/namespaces/${watched}/autoscaledagents/agents`,
        });
        return (o.status?.conditions ?? []).find((c: Obj) => /^Secret/.test(c.reason));
      },
      30_000,
    );
    assert.equal(condition.reason, "SecretNotFound", JSON.stringify(condition));
    const event = await eventually("an event about the missing Secret", async () => {
      const events = await cluster.client.request<Obj>({
        path: `/apis/events.k8s.io/v1/namespaces/${watched}/events`,
      });
      return events.items.find((e: Obj) => e.reason === "SecretNotFound" && e.regarding?.name === "agents");
    });
    assert.equal(event.type, "Warning");
    assert.doesNotMatch(log, /forbidden/i, "no request of the operator was refused");
  });
});

describe("Kustomize (config/default through an overlay with its own namespace and prefix)", () => {
  const prefix = `${uniqueName("kc")}-`;
  const saName = `${prefix}${KUSTOMIZE_PREFIX}controller-manager`;
  let opNs: string;
  let agentsNs: string;
  let sa: KubeClient;

  before(async () => {
    opNs = await namespace("kust-op");
    agentsNs = await namespace("kust-agents");
    const overlay = overlayDir({
      namespace: opNs,
      namePrefix: prefix,
      resources: ["config/default"],
      patches: [{ patch: stringify(nodeSelectorPatch()) }],
    });
    const objs = await kustomize(overlay);
    assert.equal(find(objs, "Namespace").metadata.name, opNs);
    await install(objs);
    sa = await clientAs(opNs, saName);
  });

  test("the Namespace gets the restricted Pod Security labels, and the operator's pod passes them", async () => {
    const ns = await cluster.client.request<Obj>({ path: `/api/v1/namespaces/${opNs}` });
    assert.equal(ns.metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
    const pod = await podCreated(opNs, { "control-plane": "controller-manager" });
    assert.equal(pod.spec.serviceAccountName, saName);
  });

  test("the ServiceAccount may do what the operator does, everywhere, and nothing else", async () => {
    await expectAccess(sa, [
      ...operatorNeeds(agentsNs),
      ...clusterWide(),
      ...leaseAccess(opNs, "azure-pipelines-k8s-agent-scaler"),
      ...operatorMustNot(agentsNs),
    ]);
  });
});

describe("Kustomize, namespaced: the overlay of docs/installation.md (config/rbac/namespaced per watched namespace)", () => {
  const prefix = `${uniqueName("kn")}-`;
  const saName = `${prefix}${KUSTOMIZE_PREFIX}controller-manager`;
  let opNs: string;
  let watched: string;
  let outside: string;
  let sa: KubeClient;
  let objs: Obj[];

  before(async () => {
    opNs = await namespace("kust-op");
    watched = await namespace("kust-watched");
    outside = await namespace("kust-outside");
    const root = tempDir("deploy-test-overlay-");
    // The operator: config/default without its cluster-wide binding, watching one namespace.
    const operator = overlayDir(
      {
        namespace: opNs,
        namePrefix: prefix,
        resources: ["config/default"],
        patches: [
          { patch: stringify(nodeSelectorPatch()) },
          { patch: stringify(deletePatch("ClusterRoleBinding", `${KUSTOMIZE_PREFIX}manager-rolebinding`)) },
          { patch: stringify(deletePatch("ClusterRole", `${KUSTOMIZE_PREFIX}manager-role`)) },
          { patch: stringify(watchPatch(watched)) },
        ],
      },
      join(root, "operator"),
    );
    // Its permissions in the watched namespace, bound to the ServiceAccount as this overlay names and places it.
    const rbac = overlayDir(
      {
        namespace: watched,
        resources: ["config/rbac/namespaced"],
        patches: [
          {
            target: { kind: "RoleBinding" },
            patch: stringify([
              { op: "replace", path: "/subjects/0/name", value: saName },
              { op: "replace", path: "/subjects/0/namespace", value: opNs },
            ]),
          },
        ],
      },
      join(root, "watched"),
    );
    objs = [...(await kustomize(operator)), ...(await kustomize(rbac))];
    await install(objs);
    sa = await clientAs(opNs, saName);
  });

  test("renders no cluster-wide binding and watches the namespace", () => {
    assert.ok(!objs.some((o) => o.kind === "ClusterRoleBinding"));
    const env = containerEnv(find(objs, "Deployment"));
    assert.equal(env.WATCH_NAMESPACES, watched);
  });

  test("the ServiceAccount may do what the operator does in the watched namespace, and nothing outside it", async () => {
    await expectAccess(sa, [
      ...operatorNeeds(watched),
      ...leaseAccess(opNs, "azure-pipelines-k8s-agent-scaler"),
      ...onlyWatched(outside),
      ...operatorMustNot(watched),
    ]);
  });
});

describe("helm install, upgrade and uninstall", () => {
  const release = uniqueName("hi");
  const fullname = `${release}-azure-pipelines-k8s-agent-scaler`;
  let opNs: string;
  let helmArgs: string[];

  before(async () => {
    opNs = await namespace("helm-inst");
    helmArgs = ["--kubeconfig", cluster.kubeconfig, "--namespace", opNs];
    const { helm } = await tools();
    cleanups.push(async () => {
      // In case a step failed before the uninstall: the release's cluster-scoped objects.
      for (const [kind, name] of [
        ["ClusterRole", fullname],
        ["ClusterRole", `${fullname}-editor`],
        ["ClusterRole", `${fullname}-viewer`],
        ["ClusterRoleBinding", fullname],
      ] as const) {
        await cluster.client
          .request({ method: "DELETE", path: `${clusterScopedPath[kind]}/${name}` })
          .catch(() => undefined);
      }
      return helm;
    });
  });

  test("installs (the existing CRD is kept), upgrades a value, uninstalls everything but the CRD", async () => {
    const { helm } = await tools();
    const valuesFile = writeTemp("values.yaml", stringify({ nodeSelector: NO_NODE_SELECTOR }));
    const installed = runOk(helm, ["install", release, chartDir, ...helmArgs, "-f", valuesFile]);
    assert.match(installed, /STATUS: deployed/);
    assert.match(installed, new RegExp(`${fullname} is installed in namespace ${opNs}`), "NOTES.txt");
    const deploymentPath = `/apis/apps/v1/namespaces/${opNs}/deployments/${fullname}`;
    const env = async () =>
      Object.fromEntries(
        (
          (await cluster.client.request<Obj>({ path: deploymentPath })).spec.template.spec.containers[0].env as Obj[]
        ).map((e) => [e.name, e.value]),
      );
    assert.equal((await env()).LOG_LEVEL, "info");

    runOk(helm, ["upgrade", release, chartDir, ...helmArgs, "-f", valuesFile, "--set", "logLevel=debug"]);
    assert.equal((await env()).LOG_LEVEL, "debug");
    assert.match(runOk(helm, ["status", release, ...helmArgs]), /REVISION: 2/);

    runOk(helm, ["uninstall", release, ...helmArgs]);
    await eventually("the release's objects to be gone", async () => {
      try {
        await cluster.client.request({ path: `${clusterScopedPath.ClusterRole}/${fullname}` });
        return undefined;
      } catch (err) {
        return isNotFound(err) || undefined;
      }
    });
    await assert.rejects(cluster.client.request({ path: deploymentPath }), isNotFound);
    await cluster.client.request({ path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}` });
  });
});

// ---- Kustomize overlays written to a temporary folder, referring to this repository's config/ ----

function overlayDir(kustomization: Obj, dir = tempDir("deploy-test-overlay-")): string {
  mkdirSync(dir, { recursive: true });
  const resources = (kustomization.resources as string[]).map((r) => relative(dir, join(repoRoot, r)));
  writeFileSync(join(dir, "kustomization.yaml"), stringify({ ...kustomization, resources }));
  return dir;
}

function nodeSelectorPatch(): Obj {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: `${KUSTOMIZE_PREFIX}controller-manager`, namespace: "azure-pipelines-k8s-agent-scaler-system" },
    spec: { template: { spec: { nodeSelector: NO_NODE_SELECTOR } } },
  };
}

function deletePatch(kind: string, name: string): Obj {
  return { $patch: "delete", apiVersion: "rbac.authorization.k8s.io/v1", kind, metadata: { name } };
}

function watchPatch(ns: string): Obj {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: `${KUSTOMIZE_PREFIX}controller-manager`, namespace: "azure-pipelines-k8s-agent-scaler-system" },
    spec: { template: { spec: { containers: [{ name: "manager", env: [{ name: "WATCH_NAMESPACES", value: ns }] }] } } },
  };
}
