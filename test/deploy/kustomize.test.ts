/**
 * The Kustomize manifests, rendered by the real kubectl kustomize: config/default holds the CRD, RBAC and the
 * operator, consistently named and wired; its RBAC is the chart's; the namespaced variant binds the operator's
 * ServiceAccount; the Deployment's environment parses as the operator's configuration. No API server needed.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { before, describe, test } from "node:test";
import { parse } from "yaml";
import type { OperatorConfig } from "../../src/cli/config.ts";
import { flags, parseConfig } from "../../src/cli/config.ts";
import {
  CRD_FILE,
  containerEnv,
  find,
  helmTemplate,
  invalidNames,
  kindsAndNames,
  kustomize,
  KUSTOMIZE_NAMESPACE as NS,
  type Obj,
  KUSTOMIZE_PREFIX as PREFIX,
  repoRoot,
  tempDir,
} from "./support.ts";

const CRD_NAME = "autoscaledagents.azurepipelines.k8s.scaler.io";

/**
 * An overlay in a temporary folder, rendered: `resources` and `components` by relative paths as kustomize wants,
 * then any further lines of its kustomization.
 */
async function overlay(resource: string, components: string[], more: string[] = []): Promise<Obj[]> {
  const dir = join(tempDir("kustomize-overlay-"), "overlay");
  mkdirSync(dir);
  const rel = (path: string) => relative(dir, join(repoRoot, path));
  const lines = ["resources:", `  - ${rel(resource)}`, "components:", ...components.map((c) => `  - ${rel(c)}`)];
  writeFileSync(join(dir, "kustomization.yaml"), `${[...lines, ...more].join("\n")}\n`);
  return kustomize(dir);
}

/** The configuration the Deployment's environment gives the operator, in a pod named scaler-0. */
const operatorConfig = (deployment: Obj) =>
  parseConfig([], containerEnv(deployment, { name: "scaler-0", namespace: NS }), "host") as OperatorConfig;

// Suites render in before(), not in an async describe body (see chart.test.ts).
describe("kubectl kustomize config/default", () => {
  let objs: Obj[];
  let deployment: Obj;
  const sa = `${PREFIX}controller-manager`;
  before(async () => {
    objs = await kustomize(join(repoRoot, "config", "default"));
    deployment = find(objs, "Deployment", `${PREFIX}controller-manager`, NS);
  });

  test("renders the CRD, the operator's namespace, RBAC, Deployment and metrics Service", () => {
    assert.deepEqual(kindsAndNames(objs), [
      `ClusterRole ${PREFIX}autoscaledagent-editor-role`,
      `ClusterRole ${PREFIX}autoscaledagent-viewer-role`,
      `ClusterRole ${PREFIX}manager-role`,
      `ClusterRoleBinding ${PREFIX}manager-rolebinding`,
      `CustomResourceDefinition ${CRD_NAME}`,
      `Deployment ${NS}/${PREFIX}controller-manager`,
      `Namespace ${NS}`,
      `Role ${NS}/${PREFIX}leader-election-role`,
      `RoleBinding ${NS}/${PREFIX}leader-election-rolebinding`,
      `Service ${NS}/${PREFIX}metrics`,
      `ServiceAccount ${NS}/${sa}`,
    ]);
  });

  test("every name is valid, with room for an overlay's own name prefix", () => {
    assert.deepEqual(invalidNames(objs, 16), []);
  });

  test("the CRD is config/crd's", () => {
    const crd = find(objs, "CustomResourceDefinition", CRD_NAME);
    const source = parse(readFileSync(join(repoRoot, "config", "crd", CRD_FILE), "utf8"));
    assert.deepEqual(crd.spec, source.spec);
  });

  test("bindings name the rendered ServiceAccount and roles", () => {
    for (const binding of objs.filter((o) => o.kind.endsWith("Binding"))) {
      assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: sa, namespace: NS }], binding.metadata.name);
      find(objs, binding.roleRef.kind, binding.roleRef.name);
    }
    assert.equal(deployment.spec.template.spec.serviceAccountName, sa);
  });

  test("its RBAC rules are the chart's, and the namespaced variant's", async () => {
    const chart = await helmTemplate({ release: "t" });
    const chartRules = find(chart, "ClusterRole", "t-azure-pipelines-k8s-agent-scaler").rules;
    assert.deepEqual(find(objs, "ClusterRole", `${PREFIX}manager-role`).rules, chartRules);
    const namespaced = await kustomize(join(repoRoot, "config", "rbac", "namespaced"));
    assert.deepEqual(find(namespaced, "Role").rules, chartRules);
    for (const [chartRole, kustomizeRole] of [
      ["editor", "autoscaledagent-editor-role"],
      ["viewer", "autoscaledagent-viewer-role"],
    ]) {
      const mine = find(objs, "ClusterRole", `${PREFIX}${kustomizeRole}`);
      const theirs = find(chart, "ClusterRole", `t-azure-pipelines-k8s-agent-scaler-${chartRole}`);
      assert.deepEqual(mine.rules, theirs.rules);
      const aggregation = (o: Obj) =>
        Object.keys(o.metadata.labels).filter((l) => l.startsWith("rbac.authorization.k8s.io/aggregate-to"));
      assert.deepEqual(aggregation(mine), aggregation(theirs));
    }
  });

  test("the namespaced variant binds the ServiceAccount config/default creates", async () => {
    const namespaced = await kustomize(join(repoRoot, "config", "rbac", "namespaced"));
    const binding = find(namespaced, "RoleBinding");
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: sa, namespace: NS }]);
    assert.equal(binding.roleRef.name, find(namespaced, "Role").metadata.name);
  });

  test("the Deployment: one replica, downward-API identity, probes, restricted security context", () => {
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0] as Obj;
    assert.equal(deployment.spec.replicas, 1);
    assert.equal(container.image, "ghcr.io/azure-pipelines-k8s-agent-scaler/operator:0.1.0");
    const env = Object.fromEntries((container.env as Obj[]).map((e) => [e.name, e]));
    assert.deepEqual(env.POD_NAME?.valueFrom, { fieldRef: { fieldPath: "metadata.name" } });
    assert.deepEqual(env.POD_NAMESPACE?.valueFrom, { fieldRef: { fieldPath: "metadata.namespace" } });
    assert.equal(container.livenessProbe.httpGet.path, "/healthz");
    assert.equal(container.readinessProbe.httpGet.path, "/readyz");
    assert.equal(container.livenessProbe.httpGet.port, "http-metrics");
    assert.deepEqual(container.ports, [{ name: "http-metrics", containerPort: 8080, protocol: "TCP" }]);
    assert.deepEqual(pod.securityContext, { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(container.securityContext.capabilities, { drop: ["ALL"] });
    assert.equal(container.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.ok(container.resources.requests && container.resources.limits);
    const service = find(objs, "Service", `${PREFIX}metrics`);
    assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
    const namespace = find(objs, "Namespace", NS);
    assert.equal(namespace.metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
  });

  test("the environment parses as the operator's configuration; the Lease Role names its Lease", () => {
    const known = new Set([...Object.values(flags).map((f) => f.env), "POD_NAMESPACE"]);
    const env = containerEnv(deployment, { name: "scaler-0", namespace: NS });
    for (const name of Object.keys(env)) assert.ok(known.has(name), `${name} is not an operator setting`);
    const config = parseConfig([], env, "host") as OperatorConfig;
    assert.equal(config.identity, "scaler-0");
    assert.deepEqual(config.namespaces, []);
    assert.equal(config.leaderElect, true);
    assert.equal(config.leaderElectionNamespace, NS);
    assert.equal(config.port, 8080);
    assert.deepEqual(config.credentialPolicy, (parseConfig([], {}, "host") as OperatorConfig).credentialPolicy);
    assert.equal(config.extraAgentContainersPolicy, undefined);
    const lease = find(objs, "Role", `${PREFIX}leader-election-role`);
    assert.deepEqual(lease.rules, [
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        resourceNames: [config.leaderElectionName],
        verbs: ["get", "update"],
      },
    ]);
  });
});

describe("the optional image-prepull component (config/components/image-prepull)", () => {
  const withPrePull = (resource: string) => overlay(resource, ["config/components/image-prepull"]);
  let objs: Obj[];
  let chartRules: unknown;
  before(async () => {
    objs = await withPrePull("config/default");
    const chart = await helmTemplate({ release: "t", values: { imagePrePull: { enabled: true } } });
    chartRules = find(chart, "ClusterRole", "t-azure-pipelines-k8s-agent-scaler").rules;
  });

  test("adds the chart's DaemonSet rule to the ClusterRole and to the namespaced Role", async () => {
    assert.deepEqual(find(objs, "ClusterRole", `${PREFIX}manager-role`).rules, chartRules);
    const namespaced = await withPrePull("config/rbac/namespaced");
    assert.deepEqual(find(namespaced, "Role").rules, chartRules);
  });

  test("turns image pre-pull on in the operator", () => {
    const deployment = find(objs, "Deployment", `${PREFIX}controller-manager`, NS);
    const config = operatorConfig(deployment);
    assert.equal(config.imagePrePull?.enabled, true);
  });
});

interface PodSpec {
  containers: {
    ports?: { name?: string; containerPort: number }[];
    volumeMounts?: { name: string; mountPath: string }[];
  }[];
  volumes?: { name: string; secret?: { secretName?: string; items?: { key: string; path: string }[] } }[];
}

describe("the optional service-hooks component (config/components/service-hooks)", () => {
  let objs: Obj[];
  let deployment: Obj;
  before(async () => {
    objs = await overlay("config/default", ["config/components/service-hooks"]);
    deployment = find(objs, "Deployment", `${PREFIX}controller-manager`, NS);
  });

  test("turns the endpoint on, with credentials read from the mounted Secret's files", () => {
    const config = operatorConfig(deployment);
    assert.equal(config.serviceHooks?.port, 8081);
    const files = config.serviceHooks?.credentials;
    assert.deepEqual(files, {
      username: { file: "/etc/azp-scaler/service-hook/username" },
      password: { file: "/etc/azp-scaler/service-hook/password" },
    });
    const pod = (deployment.spec as { template: { spec: PodSpec } }).template.spec;
    const container = pod.containers[0];
    const mount = container?.volumeMounts?.find((m) => m.mountPath === "/etc/azp-scaler/service-hook");
    assert.ok(mount, "the credentials are mounted where the files are read");
    const volume = pod.volumes?.find((v) => v.name === mount.name);
    assert.equal(volume?.secret?.secretName, "azp-service-hook");
    assert.deepEqual(volume?.secret?.items?.map((i) => i.path).sort(), ["password", "username"]);
    assert.ok(container?.ports?.some((p) => p.name === "http-hooks" && p.containerPort === 8081));
  });

  test("adds a Service in the operator's namespace that selects the operator's pods on the hook port", () => {
    const service = find(objs, "Service", `${PREFIX}service-hooks`, NS);
    const spec = service.spec as { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
    const podLabels = (deployment.spec as { template: { metadata: { labels: Record<string, string> } } }).template
      .metadata.labels;
    for (const [k, v] of Object.entries(spec.selector)) assert.equal(podLabels[k], v, `selector ${k}`);
    assert.deepEqual(
      spec.ports.map((p) => [p.port, p.targetPort]),
      [[8081, "http-hooks"]],
    );
  });
});

describe("the optional service-hooks-leader component (config/components/service-hooks-leader)", () => {
  let objs: Obj[];
  let deployment: Obj;
  before(async () => {
    objs = await overlay(
      "config/default",
      ["config/components/service-hooks", "config/components/service-hooks-leader"],
      ["replicas:", `  - name: ${PREFIX}controller-manager`, "    count: 2"],
    );
    deployment = find(objs, "Deployment", `${PREFIX}controller-manager`, NS);
  });

  test("the operator labels its pod, and the hooks Service selects the leader's", () => {
    const config = operatorConfig(deployment);
    assert.deepEqual(config.ownPod, { name: "scaler-0", namespace: NS });
    assert.equal(config.leaderElect, true);
    assert.equal((deployment.spec as { replicas: number }).replicas, 2);
    const service = find(objs, "Service", `${PREFIX}service-hooks`, NS);
    const selector = (service.spec as { selector: Record<string, string> }).selector;
    const podLabels = (deployment.spec as { template: { metadata: { labels: Record<string, string> } } }).template
      .metadata.labels;
    const { "azurepipelines.k8s.scaler.io/leader": leader, ...rest } = selector;
    assert.equal(leader, "true");
    for (const [k, v] of Object.entries(rest)) assert.equal(podLabels[k], v, `selector ${k}`);
  });

  test("a Role in the operator's namespace lets the Deployment's ServiceAccount get and patch pods there", () => {
    const role = find(objs, "Role", `${PREFIX}leader-pod-label`, NS);
    assert.deepEqual(role.rules, [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "patch"] }]);
    const binding = find(objs, "RoleBinding", `${PREFIX}leader-pod-label`, NS);
    const sa = (deployment.spec as { template: { spec: { serviceAccountName?: string } } }).template.spec
      .serviceAccountName;
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: sa, namespace: NS }]);
    assert.equal((binding.roleRef as { name: string }).name, `${PREFIX}leader-pod-label`);
  });
});
