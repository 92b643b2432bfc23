/**
 * The Helm chart, rendered by the real helm: lint, the objects of each mode (cluster-wide, namespaced), the
 * operator's environment (parsed by the operator's own configuration parser), the values schema, the CRD copy,
 * and the README that documents every value. No API server needed.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { parse } from "yaml";
import { DURATION_PATTERN } from "../../src/api/v1/duration.ts";
import { flags, type OperatorConfig, parseConfig } from "../../src/cli/config.ts";
import {
  type Dashboard,
  dashboardFile,
  foreignMetricNames,
  metricNamesOf,
  panelsOf,
  queriesOf,
} from "../support/dashboard.ts";
import {
  CRD_FILE,
  chartDir,
  containerEnv,
  find,
  helmLint,
  helmTemplate,
  helmTemplateFails,
  invalidNames,
  kindsAndNames,
  type Obj,
  repoRoot,
  schemaValuePaths,
} from "./support.ts";

const chartFile = (path: string) => join(chartDir, path);
const readYaml = (path: string): Obj => parse(readFileSync(path, "utf8"));
const ciValues = readdirSync(chartFile("ci"))
  .filter((f) => f.endsWith("-values.yaml"))
  .map((f) => chartFile(`ci/${f}`));
const fullname = "test-azure-pipelines-k8s-agent-scaler";

function operatorConfig(deployment: Obj): OperatorConfig {
  const config = parseConfig([], containerEnv(deployment), "host-name");
  assert.notEqual(config, "help");
  return config as OperatorConfig;
}

const rulesOf = (role: Obj) => role.rules as Obj[];

describe("helm lint", () => {
  test("passes with the default values and with every ci/*-values.yaml", async () => {
    assert.ok(ciValues.length >= 2, "ci/ holds the values files chart-testing and these tests use");
    for (const valuesFiles of [[], ...ciValues.map((f) => [f])]) {
      const r = await helmLint({ valuesFiles });
      assert.equal(r.code, 0, `helm lint ${valuesFiles.join(" ")}:\n${r.stdout}${r.stderr}`);
      assert.doesNotMatch(r.stdout, /\[(ERROR|WARNING)\]/);
    }
  });
});

// Suites render in before(), not in an async describe body: tests registered after an await in the body may be
// cut off when the runner exits as soon as the tests it knows of are done (--test-force-exit).
describe("helm template with the default values", () => {
  let objs: Obj[];
  let deployment: Obj;
  before(async () => {
    objs = await helmTemplate({ namespace: "operators" });
    deployment = find(objs, "Deployment", fullname, "operators");
  });

  test("renders the operator cluster-wide: ServiceAccount, ClusterRole and binding, Lease Role, Service", () => {
    assert.deepEqual(kindsAndNames(objs), [
      `ClusterRole ${fullname}`,
      `ClusterRole ${fullname}-editor`,
      `ClusterRole ${fullname}-viewer`,
      `ClusterRoleBinding ${fullname}`,
      `Deployment operators/${fullname}`,
      `Role operators/${fullname}-leader-election`,
      `RoleBinding operators/${fullname}-leader-election`,
      `Service operators/${fullname}-metrics`,
      `ServiceAccount operators/${fullname}`,
    ]);
    const binding = find(objs, "ClusterRoleBinding", fullname);
    assert.deepEqual(binding.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: fullname });
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: fullname, namespace: "operators" }]);
  });

  test("every name is valid, also for a release name that makes the full name as long as it gets", async () => {
    assert.deepEqual(invalidNames(objs), []);
    const long = await helmTemplate({ release: "r".repeat(53), valuesFiles: [chartFile("ci/namespaced-values.yaml")] });
    assert.deepEqual(invalidNames(long), []);
  });

  test("the ClusterRole grants exactly what the operator does", () => {
    assert.deepEqual(rulesOf(find(objs, "ClusterRole", fullname)), [
      {
        apiGroups: ["azurepipelines.k8s.scaler.io"],
        resources: ["autoscaledagents"],
        verbs: ["get", "list", "watch", "patch"],
      },
      { apiGroups: ["azurepipelines.k8s.scaler.io"], resources: ["autoscaledagents/finalizers"], verbs: ["update"] },
      {
        apiGroups: ["azurepipelines.k8s.scaler.io"],
        resources: ["autoscaledagents/status"],
        verbs: ["get", "patch", "update"],
      },
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "create", "delete", "patch"] },
      { apiGroups: [""], resources: ["secrets"], verbs: ["get"] },
      {
        apiGroups: [""],
        resources: ["persistentvolumeclaims"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
      },
      { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "create", "update"] },
      { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
    ]);
  });

  test("the Lease Role allows creating Leases and reading and renewing only the operator's", () => {
    const config = operatorConfig(deployment);
    assert.deepEqual(rulesOf(find(objs, "Role", `${fullname}-leader-election`)), [
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        resourceNames: [config.leaderElectionName],
        verbs: ["get", "update"],
      },
    ]);
    assert.equal(config.leaderElectionName, fullname, "one Lease per release, so two releases do not share one");
    assert.equal(config.leaderElectionNamespace, "operators");
  });

  test("the Deployment: one replica, the operator image, probes, restricted security context, metrics port", () => {
    const chart = readYaml(chartFile("Chart.yaml"));
    const pod = deployment.spec.template.spec;
    const [container, ...others] = pod.containers as Obj[];
    assert.equal(others.length, 0);
    assert.equal(deployment.spec.replicas, 1);
    assert.equal(pod.serviceAccountName, fullname);
    assert.equal(container?.image, `ghcr.io/azure-pipelines-k8s-agent-scaler/operator:${chart.appVersion}`);
    assert.deepEqual(container?.livenessProbe.httpGet, { path: "/healthz", port: "http-metrics" });
    assert.deepEqual(container?.readinessProbe.httpGet, { path: "/readyz", port: "http-metrics" });
    assert.deepEqual(container?.ports, [{ name: "http-metrics", containerPort: 8080, protocol: "TCP" }]);
    assert.deepEqual(pod.securityContext, { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    assert.deepEqual(container?.securityContext, {
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    assert.ok(container?.resources.requests.cpu && container.resources.limits.memory);
    // The selector is a subset of the pod labels and is what the Service selects.
    const labels = deployment.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels)) assert.equal(labels[k], v);
    const service = find(objs, "Service", `${fullname}-metrics`);
    assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
    assert.equal(service.spec.ports[0].targetPort, "http-metrics");
  });

  test("the environment is the operator's own flags, parsed as the operator parses it, with its defaults", () => {
    const known = new Set([...Object.values(flags).map((f) => f.env), "POD_NAMESPACE"]);
    const env = containerEnv(deployment, { name: "scaler-abc", namespace: "operators" });
    for (const name of Object.keys(env)) assert.ok(known.has(name), `${name} is not an operator setting`);
    const config = parseConfig([], env, "host-name") as OperatorConfig;
    assert.equal(config.identity, "scaler-abc", "POD_NAME (downward API) is the identity");
    assert.deepEqual(config.namespaces, []);
    assert.equal(config.leaderElect, true);
    assert.equal(config.port, 8080);
    // The chart's defaults are the operator's defaults.
    const defaults = parseConfig([], { POD_NAMESPACE: "operators" }, "host-name") as OperatorConfig;
    for (const key of [
      "leaseDurationMs",
      "renewDeadlineMs",
      "retryPeriodMs",
      "workers",
      "pollIntervalMs",
      "idlePollIntervalMs",
      "pollBudgetPerMinute",
      "poolPollBudgetPerMinute",
      "azureDevOpsTimeoutMs",
      "resyncIntervalMs",
      "terminatorImage",
      "logLevel",
      "logFormat",
    ] as const) {
      assert.equal(config[key], defaults[key], key);
    }
    assert.deepEqual(config.credentialPolicy, defaults.credentialPolicy, "credentialPolicy");
    assert.equal(config.extraAgentContainersPolicy, undefined);
    assert.deepEqual(config.imagePrePull, defaults.imagePrePull, "image pre-pull off, the operator's images");
  });

  test("the credential policy is the safe one: Azure DevOps Services over https, the public cloud, nobody", () => {
    assert.deepEqual(operatorConfig(deployment).credentialPolicy, {
      azureDevOpsHosts: ["dev.azure.com", "*.visualstudio.com"],
      allowHttp: false,
      authorityHosts: ["https://login.microsoftonline.com"],
      operatorIdentityNamespaces: [],
    });
  });

  test("no RBAC on DaemonSets unless imagePrePull.enabled", () => {
    const rules = rulesOf(find(objs, "ClusterRole", fullname));
    assert.equal(rules.filter((r) => r.apiGroups.includes("apps")).length, 0);
  });

  test("--include-crds adds the CRD from crds/", async () => {
    const withCrds = await helmTemplate({ includeCrds: true });
    const crd = find(withCrds, "CustomResourceDefinition", "autoscaledagents.azurepipelines.k8s.scaler.io");
    assert.equal(crd.spec.group, "azurepipelines.k8s.scaler.io");
  });
});

describe("helm template in namespaced mode with the extras (ci/namespaced-values.yaml)", () => {
  let objs: Obj[];
  let deployment: Obj;
  before(async () => {
    objs = await helmTemplate({ namespace: "operators", valuesFiles: [chartFile("ci/namespaced-values.yaml")] });
    deployment = find(objs, "Deployment", fullname);
  });

  test("a Role and RoleBinding in each watched namespace, and nothing cluster-wide but the aggregated roles", () => {
    assert.deepEqual(
      kindsAndNames(objs).filter((o) => o.startsWith("Role") || o.startsWith("Cluster")),
      [
        `ClusterRole ${fullname}-editor`,
        `ClusterRole ${fullname}-viewer`,
        `Role operators/${fullname}-leader-election`,
        `Role team-a/${fullname}`,
        `Role team-b/${fullname}`,
        `RoleBinding operators/${fullname}-leader-election`,
        `RoleBinding team-a/${fullname}`,
        `RoleBinding team-b/${fullname}`,
      ],
    );
    for (const ns of ["team-a", "team-b"]) {
      const binding = find(objs, "RoleBinding", fullname, ns);
      assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: fullname, namespace: "operators" }]);
      const secrets = rulesOf(find(objs, "Role", fullname, ns)).find((r) => r.resources.includes("secrets"));
      assert.deepEqual(secrets, {
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: ["azure-pat"],
        verbs: ["get"],
      });
    }
  });

  test("the operator watches those namespaces, with the values' settings; extraEnv replaces a setting", () => {
    const env = containerEnv(deployment);
    const config = operatorConfig(deployment);
    assert.deepEqual(config.namespaces, ["team-a", "team-b"]);
    assert.equal(config.leaderElectionName, "agents-leader");
    assert.equal(config.logLevel, "debug");
    assert.equal(config.logFormat, "text");
    assert.equal(config.pollIntervalMs, 2000);
    assert.equal(config.idlePollIntervalMs, 60_000);
    assert.equal(config.azureDevOpsTimeoutMs, 45_000, "extraEnv AZURE_DEVOPS_TIMEOUT wins");
    assert.equal(config.terminatorImage, "registry.example.com/mirror/hello-world:latest");
    assert.equal(env.NODE_OPTIONS, "--max-old-space-size=768");
    assert.deepEqual(config.credentialPolicy, {
      azureDevOpsHosts: ["dev.azure.com", "tfs.example.com:8443"],
      allowHttp: false,
      authorityHosts: ["https://login.microsoftonline.us"],
      operatorIdentityNamespaces: ["team-a"],
    });
    assert.deepEqual(config.extraAgentContainersPolicy, {
      allowedImages: ["registry.example.com/approved/**"],
      maxContainers: 2,
      maxMemoryPerContainer: "1Gi",
    });
    const container = deployment.spec.template.spec.containers[0];
    const names = (container.env as Obj[]).map((e) => e.name);
    assert.equal(new Set(names).size, names.length, "no duplicate variables (server-side apply refuses them)");
    assert.deepEqual(
      rulesOf(find(objs, "Role", `${fullname}-leader-election`))[1]?.resourceNames,
      ["agents-leader"],
      "the Lease Role follows leaderElection.leaseName",
    );
  });

  test("image, replicas, scheduling, workload identity and the ServiceMonitor", () => {
    const pod = deployment.spec.template;
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(
      pod.spec.containers[0].image,
      "registry.example.com/azure-pipelines-k8s-agent-scaler/operator:0.1.0-rc.1",
    );
    assert.equal(pod.spec.containers[0].imagePullPolicy, "Always");
    assert.deepEqual(pod.spec.imagePullSecrets, [{ name: "registry-credentials" }]);
    assert.deepEqual(pod.spec.nodeSelector, { "kubernetes.io/os": "linux" });
    assert.equal(pod.spec.tolerations[0].key, "dedicated");
    assert.ok(pod.spec.affinity.podAntiAffinity);
    assert.equal(pod.spec.priorityClassName, "system-cluster-critical");
    assert.equal(pod.metadata.labels["azure.workload.identity/use"], "true");
    assert.equal(pod.metadata.annotations["example.com/team"], "platform");
    const sa = find(objs, "ServiceAccount", fullname);
    assert.equal(sa.metadata.annotations["azure.workload.identity/client-id"], "00000000-0000-0000-0000-000000000000");
    const monitor = find(objs, "ServiceMonitor", fullname);
    assert.equal(monitor.metadata.labels.release, "prometheus");
    assert.deepEqual(monitor.spec.selector.matchLabels, find(objs, "Service", `${fullname}-metrics`).spec.selector);
    assert.deepEqual(monitor.spec.endpoints, [
      { port: "http-metrics", path: "/metrics", interval: "15s", scrapeTimeout: "10s" },
    ]);
  });
});

describe("other values", () => {
  test("an image digest wins over the tag", async () => {
    const digest = `sha256:${"ab".repeat(32)}`;
    const objs = await helmTemplate({ values: { image: { digest, tag: "ignored" } } });
    const image = find(objs, "Deployment").spec.template.spec.containers[0].image;
    assert.equal(image, `ghcr.io/azure-pipelines-k8s-agent-scaler/operator@${digest}`);
  });

  test("an existing ServiceAccount, no RBAC, no leader election, no Service", async () => {
    const objs = await helmTemplate({
      values: {
        serviceAccount: { create: false, name: "platform-operator" },
        rbac: { create: false },
        leaderElection: { enabled: false },
        metrics: { service: { enabled: false } },
      },
    });
    assert.deepEqual(kindsAndNames(objs), [`Deployment operators/${fullname}`]);
    const deployment = find(objs, "Deployment");
    assert.equal(deployment.spec.template.spec.serviceAccountName, "platform-operator");
    assert.equal(operatorConfig(deployment).leaderElect, false);
  });

  test("fullnameOverride names every object", async () => {
    const objs = await helmTemplate({ values: { fullnameOverride: "agent-scaler" } });
    assert.ok(kindsAndNames(objs).every((n) => n.split(" ")[1]?.split("/").pop()?.startsWith("agent-scaler")));
  });

  test("a release named like the chart is not repeated", async () => {
    const objs = await helmTemplate({ release: "azure-pipelines-k8s-agent-scaler" });
    find(objs, "Deployment", "azure-pipelines-k8s-agent-scaler");
  });

  test("the schema refuses wrong values with a message naming them", async () => {
    const cases: [Obj, RegExp][] = [
      [{ logLevel: "verbose" }, /logLevel/],
      [{ logFormat: "xml" }, /logFormat/],
      [{ pollInterval: 5 }, /pollInterval/],
      [{ pollInterval: "5 seconds" }, /pollInterval/],
      [{ watchNamespaces: ["Team_A"] }, /watchNamespaces/],
      [{ watchNamespace: ["team-a"] }, /watchNamespace/],
      [{ image: { pullPolicy: "Sometimes" } }, /pullPolicy/],
      [{ replicaCount: -1 }, /replicaCount/],
      [{ metrics: { port: 70000 } }, /port/],
      [{ credentialPolicy: { allowHttp: "yes" } }, /allowHttp/],
      [{ credentialPolicy: { azureDevOpsHosts: ["https://dev.azure.com"] } }, /azureDevOpsHosts/],
      [{ credentialPolicy: { azureDevOpsHosts: [] } }, /azureDevOpsHosts/],
      [{ credentialPolicy: { entraAuthorityHosts: ["http://login.example"] } }, /entraAuthorityHosts/],
      [{ credentialPolicy: { operatorIdentityNamespaces: ["Team_A"] } }, /operatorIdentityNamespaces/],
      [{ extraAgentContainersPolicy: { maxContainer: 1 } }, /maxContainer/],
    ];
    for (const [values, message] of cases) {
      const stderr = await helmTemplateFails({ values });
      assert.match(stderr, message, JSON.stringify(values));
    }
  });

  test("the schema's durations are the operator's duration syntax", () => {
    const schema = JSON.parse(readFileSync(chartFile("values.schema.json"), "utf8"));
    for (const key of ["pollInterval", "idlePollInterval", "azureDevOpsTimeout", "resyncInterval"]) {
      assert.equal(schema.properties[key].pattern, DURATION_PATTERN, key);
    }
  });

  test("several replicas without leader election are refused", async () => {
    const stderr = await helmTemplateFails({ values: { replicaCount: 2, leaderElection: { enabled: false } } });
    assert.match(stderr, /leaderElection/);
  });

  test("serviceAccount.create=false needs a name", async () => {
    const stderr = await helmTemplateFails({ values: { serviceAccount: { create: false } } });
    assert.match(stderr, /serviceAccount\.name is required/);
  });
});

describe("chart files", () => {
  test("crds/ holds the CRD of config/crd (copy it again after regenerating the CRD)", () => {
    const source = readYaml(join(repoRoot, "config", "crd", CRD_FILE));
    const copy = readYaml(chartFile(`crds/${CRD_FILE}`));
    assert.deepEqual(copy, source, `charts/azure-pipelines-k8s-agent-scaler/crds/${CRD_FILE} is out of date`);
    assert.deepEqual(readdirSync(chartFile("crds")), [CRD_FILE]);
  });

  test("Chart.yaml: apiVersion v2, version 0.1.0, appVersion of the operator", () => {
    const chart = readYaml(chartFile("Chart.yaml"));
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
    assert.equal(chart.apiVersion, "v2");
    assert.equal(chart.name, "azure-pipelines-k8s-agent-scaler");
    assert.equal(chart.version, "0.1.0");
    assert.equal(chart.appVersion, pkg.version);
  });

  test("the README documents every value, and values.yaml sets only values the schema knows", () => {
    const schema = JSON.parse(readFileSync(chartFile("values.schema.json"), "utf8"));
    const readme = readFileSync(chartFile("README.md"), "utf8");
    const documented = schemaValuePaths(schema).filter((p) => p !== "global");
    assert.ok(documented.length > 40);
    const missing = documented.filter((p) => !readme.includes(`\`${p}\``));
    assert.deepEqual(missing, [], "values missing from the chart README");
    const values = readYaml(chartFile("values.yaml"));
    const unknown = (obj: Obj, node: Obj, prefix: string): string[] =>
      Object.entries(obj).flatMap(([k, v]) => {
        const child = node.properties?.[k];
        if (!child) return [`${prefix}${k}`];
        return child.properties && v && typeof v === "object" && !Array.isArray(v)
          ? unknown(v as Obj, child, `${prefix}${k}.`)
          : [];
      });
    assert.deepEqual(unknown(values, schema, ""), []);
  });
});

describe("helm template with imagePrePull.enabled", () => {
  const daemonSets = {
    apiGroups: ["apps"],
    resources: ["daemonsets"],
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
  };
  let plain: Obj[];
  let objs: Obj[];
  let namespaced: Obj[];
  before(async () => {
    plain = await helmTemplate({});
    objs = await helmTemplate({
      values: { imagePrePull: { enabled: true, pauseImage: "mirror.example/pause:3.10" } },
    });
    namespaced = await helmTemplate({
      valuesFiles: [chartFile("ci/namespaced-values.yaml")],
      values: { imagePrePull: { enabled: true } },
    });
  });

  test("the ClusterRole grows by exactly one rule: DaemonSets in apps", () => {
    assert.deepEqual(rulesOf(find(objs, "ClusterRole", fullname)), [
      ...rulesOf(find(plain, "ClusterRole", fullname)),
      daemonSets,
    ]);
  });

  test("so does each namespaced Role", () => {
    for (const ns of ["team-a", "team-b"])
      assert.deepEqual(rulesOf(find(namespaced, "Role", fullname, ns)).at(-1), daemonSets);
  });

  test("the operator runs with --image-prepull and the values' images", () => {
    const config = operatorConfig(find(objs, "Deployment", fullname));
    assert.deepEqual(config.imagePrePull, {
      enabled: true,
      pauseImage: "mirror.example/pause:3.10",
      helperImage: "docker.io/library/busybox:1.37.0-musl",
    });
  });
});

describe("helm template with metrics.grafanaDashboard.enabled", () => {
  let configMap: Obj;
  let dashboard: Dashboard;
  before(async () => {
    const objs = await helmTemplate({ values: { metrics: { grafanaDashboard: { enabled: true } } } });
    configMap = find(objs, "ConfigMap", `${fullname}-dashboard`, "operators");
    dashboard = JSON.parse(configMap.data["azure-pipelines-k8s-agent-scaler.json"]) as Dashboard;
  });

  test("a ConfigMap with the sidecar's label holds the dashboard file as it is", () => {
    assert.equal(configMap.metadata.labels.grafana_dashboard, "1");
    assert.equal(configMap.metadata.labels["app.kubernetes.io/name"], "azure-pipelines-k8s-agent-scaler");
    assert.deepEqual(Object.keys(configMap.data), ["azure-pipelines-k8s-agent-scaler.json"]);
    assert.deepEqual(JSON.parse(readFileSync(dashboardFile, "utf8")), dashboard);
  });

  test("namespace, label and annotations are configurable", async () => {
    const custom = await helmTemplate({
      values: {
        metrics: {
          grafanaDashboard: {
            enabled: true,
            namespace: "monitoring",
            label: "example.com/dashboard",
            labelValue: "yes",
            annotations: { grafana_folder: "CI" },
          },
        },
      },
    });
    const cm = find(custom, "ConfigMap", `${fullname}-dashboard`, "monitoring");
    assert.equal(cm.metadata.labels["example.com/dashboard"], "yes");
    assert.equal(cm.metadata.labels.grafana_dashboard, undefined);
    assert.deepEqual(cm.metadata.annotations, { grafana_folder: "CI" });
    const stderr = await helmTemplateFails({ values: { metrics: { grafanaDashboard: { label: "not a label" } } } });
    assert.match(stderr, /label/);
  });

  test("a plausible Grafana dashboard: title, uid, a Prometheus data source variable, panels with targets", () => {
    assert.ok(dashboard.title && dashboard.uid);
    assert.ok((dashboard.schemaVersion ?? 0) >= 36);
    const datasource = dashboard.templating?.list?.find((v) => v.type === "datasource");
    assert.equal(datasource?.query, "prometheus");
    const panels = panelsOf(dashboard).filter((p) => p.type !== "row");
    assert.ok(panels.length >= 15, `${panels.length} panels`);
    const ids = panelsOf(dashboard).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
    for (const p of panels) {
      assert.ok(p.title, "every panel has a title");
      assert.ok((p.targets ?? []).length > 0, `${p.title}: no targets`);
      for (const t of p.targets ?? []) assert.ok(t.expr && t.refId, `${p.title}: a target without expr or refId`);
      assert.deepEqual(p.datasource, { type: "prometheus", uid: ["$", "{datasource}"].join("") }, p.title);
      const g = p.gridPos;
      assert.ok(g && g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0, `${p.title}: grid position`);
    }
  });

  test("its queries use the operator's metrics only, each documented in docs/metrics.md", () => {
    const docs = readFileSync(join(repoRoot, "docs", "metrics.md"), "utf8");
    const queries = queriesOf(dashboard);
    const base = (n: string) => n.replace(/_(bucket|sum|count)$/, "");
    for (const q of queries) assert.deepEqual(foreignMetricNames(q), [], q);
    const names = new Set(queries.flatMap(metricNamesOf));
    for (const wanted of [
      "azp_scaler_job_wait_until_assigned_seconds_bucket",
      "azp_scaler_job_wait_until_pod_created_seconds_bucket",
      "azp_scaler_queued_jobs",
      "azp_scaler_unserved_jobs",
      "azp_scaler_agent_pods",
      "azp_scaler_azure_devops_requests_total",
      "azp_scaler_azure_devops_rate_limit_remaining_ratio",
      "azp_scaler_reconcile_duration_seconds_bucket",
      "azp_scaler_reconcile_stage_duration_seconds_bucket",
      "azp_scaler_placeholder_agents",
    ]) {
      assert.ok(names.has(wanted), `no panel shows ${wanted}`);
    }
    for (const n of names) assert.ok(docs.includes(`\`${base(n)}\``), `${base(n)} is not in docs/metrics.md`);
  });
});

describe("helm template with serviceHooks", () => {
  let plain: Obj[];
  let objs: Obj[];
  let withIngress: Obj[];
  const hooksValues = {
    serviceHooks: {
      enabled: true,
      debounce: "1s",
      credentialsSecret: { name: "azp-service-hook", passwordKey: "hook-password" },
    },
  };
  before(async () => {
    plain = await helmTemplate({});
    objs = await helmTemplate({ values: hooksValues });
    withIngress = await helmTemplate({
      values: {
        serviceHooks: {
          ...hooksValues.serviceHooks,
          service: { port: 80, annotations: { "example.com/a": "b" } },
          ingress: {
            enabled: true,
            className: "nginx",
            host: "azp-hooks.example.com",
            annotations: { "cert-manager.io/cluster-issuer": "letsencrypt" },
            tls: [{ secretName: "azp-hooks-tls", hosts: ["azp-hooks.example.com"] }],
          },
        },
      },
    });
  });
  const manager = (deployment: Obj) =>
    (deployment.spec.template.spec.containers as Obj[]).find((c) => c.name === "manager") as Obj;

  test("off by default: no hooks Service or Ingress, no port, no credentials volume, the operator without it", () => {
    assert.ok(!kindsAndNames(plain).some((n) => n.includes("-hooks")));
    const deployment = find(plain, "Deployment", fullname);
    assert.deepEqual(
      (manager(deployment).ports as Obj[]).map((p) => p.name),
      ["http-metrics"],
    );
    assert.deepEqual(
      (deployment.spec.template.spec.volumes as Obj[]).map((v) => v.name),
      ["tmp"],
    );
    assert.equal(operatorConfig(deployment).serviceHooks, undefined);
  });

  test("on: a Service for the endpoint only, the port, the Secret mounted read-only as the operator's files", () => {
    assert.deepEqual(
      kindsAndNames(objs).filter((n) => !kindsAndNames(plain).includes(n)),
      [`Service operators/${fullname}-hooks`],
    );
    const deployment = find(objs, "Deployment", fullname);
    const container = manager(deployment);
    assert.deepEqual(container.ports, [
      { name: "http-metrics", containerPort: 8080, protocol: "TCP" },
      { name: "http-hooks", containerPort: 8081, protocol: "TCP" },
    ]);
    const volume = (deployment.spec.template.spec.volumes as Obj[]).find((v) => v.name === "service-hook-credentials");
    assert.deepEqual(volume?.secret, {
      secretName: "azp-service-hook",
      defaultMode: 0o444,
      items: [
        { key: "username", path: "username" },
        { key: "hook-password", path: "password" },
      ],
    });
    const mount = (container.volumeMounts as Obj[]).find((m) => m.name === "service-hook-credentials");
    assert.equal(mount?.readOnly, true);
    const config = operatorConfig(deployment);
    assert.deepEqual(config.serviceHooks, {
      port: 8081,
      debounceMs: 1000,
      credentials: {
        username: { file: `${mount?.mountPath}/username` },
        password: { file: `${mount?.mountPath}/password` },
      },
    });
    const service = find(objs, "Service", `${fullname}-hooks`);
    assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
    assert.deepEqual(service.spec.ports, [
      { name: "http-hooks", port: 8081, targetPort: "http-hooks", protocol: "TCP" },
    ]);
    assert.equal(service.spec.type, "ClusterIP");
    // The metrics Service stays as it was: metrics are never exposed with the hooks.
    assert.deepEqual(find(objs, "Service", `${fullname}-metrics`), find(plain, "Service", `${fullname}-metrics`));
  });

  test("the Ingress: class, host, the hooks path to the hooks Service, TLS, annotations", () => {
    const ingress = find(withIngress, "Ingress", `${fullname}-hooks`, "operators");
    assert.equal(ingress.apiVersion, "networking.k8s.io/v1");
    assert.equal(ingress.metadata.annotations["cert-manager.io/cluster-issuer"], "letsencrypt");
    assert.deepEqual(ingress.spec, {
      ingressClassName: "nginx",
      tls: [{ secretName: "azp-hooks-tls", hosts: ["azp-hooks.example.com"] }],
      rules: [
        {
          host: "azp-hooks.example.com",
          http: {
            paths: [
              {
                path: "/hooks/azure-devops",
                pathType: "Prefix",
                backend: { service: { name: `${fullname}-hooks`, port: { name: "http-hooks" } } },
              },
            ],
          },
        },
      ],
    });
    const service = find(withIngress, "Service", `${fullname}-hooks`);
    assert.equal(service.spec.ports[0].port, 80);
    assert.equal(service.metadata.annotations["example.com/a"], "b");
    assert.deepEqual(invalidNames(withIngress), []);
  });

  test("several replicas: the hooks Service selects the pod the leader labels; its Role may get and patch pods", async () => {
    const leaderLabel = "azurepipelines.k8s.scaler.io/leader";
    const replicas = await helmTemplate({ values: { ...hooksValues, replicaCount: 2 } });
    const deployment = find(replicas, "Deployment", fullname);
    assert.deepEqual(operatorConfig(deployment).ownPod, { name: "operator-pod-0", namespace: "operators" });
    const service = find(replicas, "Service", `${fullname}-hooks`);
    assert.deepEqual(service.spec.selector, { ...deployment.spec.selector.matchLabels, [leaderLabel]: "true" });
    const role = find(replicas, "Role", `${fullname}-leader-election`, "operators");
    assert.deepEqual(
      rulesOf(role).filter((r) => (r.resources as string[]).includes("pods")),
      [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "patch"] }],
    );
    // One replica, or several without hooks: no label, no such permission, every replica selected.
    const cases: [string, Obj[]][] = [
      ["one replica with hooks", objs],
      ["two replicas without hooks", await helmTemplate({ values: { replicaCount: 2 } })],
    ];
    for (const [name, rendered] of cases) {
      const d = find(rendered, "Deployment", fullname);
      assert.equal(operatorConfig(d).ownPod, undefined, name);
      const r = find(rendered, "Role", `${fullname}-leader-election`, "operators");
      assert.ok(!rulesOf(r).some((x) => (x.resources as string[]).includes("pods")), name);
      const hooks = rendered.find((o) => o.kind === "Service" && o.metadata.name === `${fullname}-hooks`);
      if (hooks) assert.deepEqual(hooks.spec.selector, d.spec.selector.matchLabels, name);
    }
  });

  test("an Ingress without a host serves every host", async () => {
    const any = await helmTemplate({
      values: { serviceHooks: { ...hooksValues.serviceHooks, ingress: { enabled: true } } },
    });
    const ingress = find(any, "Ingress", `${fullname}-hooks`);
    assert.equal(ingress.spec.ingressClassName, undefined);
    assert.equal(ingress.spec.tls, undefined);
    assert.deepEqual(Object.keys(ingress.spec.rules[0]), ["http"]);
  });

  test("refused: no credentials Secret, the metrics port, values outside the schema", async () => {
    const cases: [Obj, RegExp][] = [
      [{ serviceHooks: { enabled: true } }, /serviceHooks\.credentialsSecret\.name/],
      [
        { serviceHooks: { ...hooksValues.serviceHooks, port: 8080 } },
        /serviceHooks\.port must differ from metrics\.port/,
      ],
      [{ serviceHooks: { debounce: "half a second" } }, /debounce/],
      [{ serviceHooks: { ingress: { pathType: "Regex" } } }, /pathType/],
      [{ serviceHooks: { ingress: { host: "https://hooks.example.com" } } }, /host/],
      [{ serviceHooks: { ingress: { path: "hooks" } } }, /path/],
      [{ serviceHooks: { credentialsSecret: { name: "Not_A_Name" } } }, /name/],
      [{ serviceHooks: { secretName: "x" } }, /secretName/],
    ];
    for (const [values, message] of cases) {
      const stderr = await helmTemplateFails({ values });
      assert.match(stderr, message, JSON.stringify(values));
    }
  });
});
