/**
 * The generated CRD on a real API server: it is accepted and established, the samples apply unchanged and are
 * stored with exactly the defaults applyDefaults computes, the status subresource and printer columns work, and
 * bad resources are refused by the API server (schema and CEL rules) just as validateAutoScaledAgent refuses them.
 *
 *   AZP_TEST_KUBECONFIG=<kubeconfig> npx node --test src/api/v1/crd.integration.test.ts
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import { binDir as builtBinDir } from "../../../sim/control-plane/build.ts";
import {
  createNamespace,
  deleteNamespace,
  eventually,
  type TestCluster,
  testCluster,
} from "../../../test/support/cluster.ts";
import { buildCrd, CRD_FILE } from "./crd.ts";
import { OPENAPI_PATH, type PodTemplateSchemaFile, podTemplateSchemaFile } from "./generate-podtemplate-schema.ts";
import { applyDefaults, CRD_NAME, resourcePath, validateAutoScaledAgent } from "./index.ts";

// biome-ignore lint/suspicious/noExplicitAny: resources are free-form JSON here
type Obj = { [key: string]: any };

const repoFile = (path: string) => new URL(`../../../${path}`, import.meta.url);
const sample = (file: string): Obj => parse(readFileSync(repoFile(`config/samples/${file}`), "utf8"));

function minimal(name: string): Obj {
  return {
    apiVersion: "azurepipelines.k8s.scaler.io/v1",
    kind: "AutoScaledAgent",
    metadata: { name },
    spec: {
      poolName: "pool",
      organizationUrl: "https://dev.azure.com/org",
      personalAccessTokenSecretName: "azure-pat",
      podsWithCapabilities: [
        {
          capabilities: { buildkit: "1" },
          maxCount: 3,
          podTemplateSpec: { spec: { containers: [{ name: "agent", image: "agent:1" }] } },
        },
      ],
    },
  };
}

const second = (extra: Obj = {}): Obj => ({
  capabilities: { other: "1" },
  maxCount: 2,
  podTemplateSpec: { spec: { containers: [{ name: "agent", image: "agent:1" }] } },
  ...extra,
});

describe("the AutoScaledAgent CRD on a real API server", () => {
  let cluster: TestCluster;
  let namespace: string;

  const create = (obj: Obj) =>
    cluster.client.request<Obj>({
      method: "POST",
      path: resourcePath(namespace),
      query: { fieldValidation: "Strict" },
      body: obj,
    });

  /** The API server's refusal message for `obj` (fails the test if it accepts it). */
  async function refusal(obj: Obj): Promise<string> {
    try {
      await create(obj);
    } catch (err) {
      const { status, message } = err as { status?: number; message: string };
      assert.ok(status === 422 || status === 400, `${status} ${message}`);
      return message;
    }
    assert.fail(`the API server accepted ${obj.metadata.name}`);
  }

  before(async () => {
    cluster = await testCluster();
    // Server-side apply, as the operator's installation does; idempotent when other test files apply it too.
    await cluster.client.request({
      method: "PATCH",
      path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`,
      query: { fieldManager: "azp-api-crd-test", force: true },
      contentType: "application/apply-patch+yaml",
      body: buildCrd(),
    });
    await eventually("the CRD to be established", async () => {
      const crd = await cluster.client.request<Obj>({
        path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`,
      });
      const established = (crd.status?.conditions ?? []).find((c: Obj) => c.type === "Established");
      return established?.status === "True" ? true : undefined;
    });
    await eventually("the resource to be served", async () => {
      await cluster.client.request({ path: "/apis/azurepipelines.k8s.scaler.io/v1" });
      return true;
    });
    namespace = await createNamespace(cluster.client, "api");
  });

  after(async () => {
    if (namespace) await deleteNamespace(cluster.client, namespace);
    await cluster?.close();
  });

  test("the committed pod template schema is what this API server's OpenAPI gives (same version)", async (t) => {
    const committed = JSON.parse(
      readFileSync(new URL("./podtemplatespec.schema.json", import.meta.url), "utf8"),
    ) as PodTemplateSchemaFile;
    const { gitVersion } = await cluster.client.request<{ gitVersion: string }>({ path: "/version" });
    if (gitVersion !== committed.kubernetesVersion) {
      return t.skip(`server ${gitVersion}, schema from ${committed.kubernetesVersion}`);
    }
    const doc = await cluster.client.request<Obj>({ path: OPENAPI_PATH });
    assert.deepEqual(podTemplateSchemaFile(doc, gitVersion), committed);
  });

  test("kubectl applies the committed CRD file server-side", (t) => {
    const kubectl = join(cluster.binDir || builtBinDir(), "kubectl");
    if (!existsSync(kubectl)) return t.skip("kubectl not built");
    const out = execFileSync(
      kubectl,
      [
        "--kubeconfig",
        cluster.kubeconfig,
        "apply",
        "--server-side",
        "--field-manager=azp-api-crd-test",
        "--force-conflicts",
        "-f",
        repoFile(CRD_FILE).pathname,
      ],
      { encoding: "utf8" },
    );
    assert.match(out, /autoscaledagents\.azurepipelines\.k8s\.scaler\.io serverside-applied/);
  });

  for (const file of ["v1_autoscaledagent.yaml", "v1_autoscaledagent_native_sidecar.yaml"]) {
    test(`${file} applies unchanged and is stored with applyDefaults' defaults`, async () => {
      const doc = sample(file);
      const stored = await create(doc);
      assert.deepEqual(stored.spec, applyDefaults(doc).spec);
      const r = validateAutoScaledAgent(stored, { unknownFields: "error" });
      assert.deepEqual(r.ok ? [] : r.errors, []);
    });
  }

  test("the status subresource takes the full status, and kubectl shows the printer columns", async (t) => {
    const created = await create(minimal("with-status"));
    const status = {
      observedGeneration: 1,
      poolId: 7,
      pendingJobs: 4,
      pods: { starting: 1, idle: 2, busy: 3, finished: 0 },
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "Reconciled",
          message: "all good",
          lastTransitionTime: "2025-01-02T03:04:05Z",
          observedGeneration: 1,
        },
      ],
      templates: [
        {
          index: 0,
          capabilities: { buildkit: "1" },
          pendingJobs: 4,
          pods: { starting: 1, idle: 2, busy: 3, finished: 0 },
          standby: { minCount: 3, reason: "Schedule", schedule: 0, predicted: 1, message: "schedule 0 is in force" },
        },
      ],
      cacheVolumes: [{ name: "cache", claimName: "with-status-abc", holderPod: "with-status-x" }],
    };
    const updated = await cluster.client.request<Obj>({
      method: "PUT",
      path: `${resourcePath(namespace, "with-status")}/status`,
      body: { ...created, status },
    });
    assert.deepEqual(updated.status, status);
    assert.equal(validateAutoScaledAgent(updated).ok, true);

    const bad: Obj = structuredClone(status);
    bad.conditions[0].status = "Yes";
    await assert.rejects(
      cluster.client.request({
        method: "PUT",
        path: `${resourcePath(namespace, "with-status")}/status`,
        body: { ...updated, status: bad },
      }),
      /status\.conditions\[0\]\.status: Unsupported value: "Yes"/,
    );

    const kubectl = join(cluster.binDir || builtBinDir(), "kubectl");
    if (!existsSync(kubectl)) return t.skip("kubectl not built");
    const table = execFileSync(
      kubectl,
      ["--kubeconfig", cluster.kubeconfig, "get", "asa", "with-status", "-n", namespace, "-o", "wide"],
      { encoding: "utf8" },
    );
    const [header, row] = table
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/));
    assert.deepEqual(header, ["NAME", "POOL", "PENDING", "RUNNING", "IDLE", "STARTING", "READY", "REASON", "AGE"]);
    assert.deepEqual(row?.slice(0, 8), ["with-status", "pool", "4", "3", "2", "1", "True", "Reconciled"]);
  });

  /** [name, change to the minimal resource, fragments of the API server's message]. */
  const refused: [string, (o: Obj) => void, string[]][] = [
    [
      "minCount > maxCount",
      (o) => o.spec.podsWithCapabilities.push(second({ minCount: 3, maxCount: 2 })),
      ["spec.podsWithCapabilities[1].maxCount: Invalid value: must be >= minCount (3 > 2)"],
    ],
    [
      "two templates with the same capabilities",
      (o) => {
        o.spec.podsWithCapabilities.push(second({ capabilities: { buildkit: "1" } }));
      },
      ["spec.podsWithCapabilities: Invalid value: every entry must have a different set of capabilities"],
    ],
    [
      "a template without and one with empty capabilities",
      (o) => {
        delete o.spec.podsWithCapabilities[0].capabilities;
        o.spec.podsWithCapabilities.push(second({ capabilities: {} }));
      },
      ["every entry must have a different set of capabilities"],
    ],
    [
      "a pod template without containers",
      (o) => (o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers = []),
      ["spec.podsWithCapabilities[0].podTemplateSpec.spec.containers: Required value: at least one container"],
    ],
    [
      "a pod template without spec",
      (o) => (o.spec.podsWithCapabilities[0].podTemplateSpec = {}),
      ["spec.podsWithCapabilities[0].podTemplateSpec.spec.containers: Required value: at least one container"],
    ],
    [
      "no PAT secret and no Entra ID",
      (o) => delete o.spec.personalAccessTokenSecretName,
      ['spec.personalAccessTokenSecretName: Required value: the name of a Secret whose key "pat" holds'],
    ],
    [
      "Entra ID with both credentials",
      (o) => {
        o.spec.entraIdAuthentication = {
          tenantId: "t",
          clientId: "00000000-0000-0000-0000-000000000001",
          clientSecretRef: { name: "s" },
          workloadIdentity: {},
        };
      },
      ["spec.entraIdAuthentication: Invalid value: set exactly one of clientSecretRef"],
    ],
    [
      "a duration that is not Go syntax",
      (o) => (o.spec.agentMinIdlePeriod = "5 minutes"),
      ['spec.agentMinIdlePeriod: Invalid value: "5 minutes"'],
    ],
    [
      "a negative maxTerminatedPodsToKeep",
      (o) => (o.spec.maxTerminatedPodsToKeep = -1),
      ["spec.maxTerminatedPodsToKeep: Invalid value: -1"],
    ],
    ["no poolName", (o) => delete o.spec.poolName, ["spec.poolName: Required value"]],
    [
      "no maxCount",
      (o) => delete o.spec.podsWithCapabilities[0].maxCount,
      ["spec.podsWithCapabilities[0].maxCount: Required value"],
    ],
    [
      "an organization URL without scheme",
      (o) => (o.spec.organizationUrl = "dev.azure.com/org"),
      ['spec.organizationUrl: Invalid value: "dev.azure.com/org"'],
    ],
    [
      "a capability value that is a number",
      (o) => (o.spec.podsWithCapabilities[0].capabilities = { buildkit: 1 }),
      ["spec.podsWithCapabilities[0].capabilities.buildkit: Invalid value"],
    ],
    [
      "a decimal CPU quantity",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].resources = { limits: { cpu: 0.5 } };
      },
      ["spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].resources.limits.cpu"],
    ],
    [
      "a malformed memory quantity",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].resources = { limits: { memory: "lots" } };
      },
      ["spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].resources.limits.memory"],
    ],
    [
      "a misspelt imagePullPolicy",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].imagePullPolicy = "always";
      },
      ['imagePullPolicy: Unsupported value: "always"'],
    ],
    [
      "two containers with one name",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers.push({ name: "agent", image: "x" });
      },
      ["spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[1]: Duplicate value"],
    ],
    [
      "two cache volumes with one name",
      (o) => {
        o.spec.reusableCacheVolumes = [
          { name: "c", requestedStorage: "1Gi" },
          { name: "c", requestedStorage: "2Gi" },
        ];
      },
      ["spec.reusableCacheVolumes[1]: Duplicate value"],
    ],
    [
      "an empty podsWithCapabilities",
      (o) => (o.spec.podsWithCapabilities = []),
      ["spec.podsWithCapabilities: Invalid value"],
    ],
    [
      "an unknown field (strict field validation)",
      (o) => (o.spec.poolname = "typo"),
      ['unknown field "spec.poolname"'],
    ],
    [
      "a standby window with from == to",
      (o) => (o.spec.podsWithCapabilities[0].standby = { schedules: [{ from: "08:00", to: "08:00", minCount: 1 }] }),
      ["spec.podsWithCapabilities[0].standby.schedules[0].to: Invalid value", "a window needs a length"],
    ],
    [
      "a standby schedule's minCount above maxCount",
      (o) => (o.spec.podsWithCapabilities[0].standby = { schedules: [{ from: "08:00", to: "18:00", minCount: 4 }] }),
      ["spec.podsWithCapabilities[0].standby.schedules: Invalid value", "must be <= maxCount"],
    ],
    [
      "an unknown day in a standby schedule",
      (o) => {
        o.spec.podsWithCapabilities[0].standby = {
          schedules: [{ days: ["Mon", "Funday"], from: "08:00", to: "18:00", minCount: 1 }],
        };
      },
      ['spec.podsWithCapabilities[0].standby.schedules[0].days[1]: Unsupported value: "Funday"'],
    ],
    [
      "a standby time of 24:30",
      (o) => (o.spec.podsWithCapabilities[0].standby = { schedules: [{ from: "08:00", to: "24:30", minCount: 1 }] }),
      ["spec.podsWithCapabilities[0].standby.schedules[0].to: Invalid value"],
    ],
    [
      "a predictive percentile of 0",
      (o) => (o.spec.podsWithCapabilities[0].standby = { predictive: { percentile: 0 } }),
      ["spec.podsWithCapabilities[0].standby.predictive.percentile: Invalid value"],
    ],
  ];
  refused.forEach(([name, mutate, fragments], i) => {
    test(`refused by the API server and by validateAutoScaledAgent: ${name}`, async () => {
      const obj = minimal(`bad-${i}`);
      mutate(obj);
      const message = await refusal(obj);
      for (const fragment of fragments) assert.ok(message.includes(fragment), `${fragment}\nnot in\n${message}`);
      const r = validateAutoScaledAgent(obj, { unknownFields: "error" });
      assert.equal(r.ok, false, `validateAutoScaledAgent accepted ${name}`);
    });
  });

  test("runtime-only checks: accepted by the API server, reported by validateAutoScaledAgent", async () => {
    const caseOnly = minimal("case-only");
    caseOnly.spec.podsWithCapabilities.push(second({ capabilities: { BuildKit: "1" } }));
    const clash = minimal("volume-clash");
    clash.spec.reusableCacheVolumes = [{ name: "cache", requestedStorage: "1Gi" }];
    clash.spec.podsWithCapabilities[0].podTemplateSpec.spec.volumes = [{ name: "cache", emptyDir: {} }];
    const overflow = minimal("duration-overflow");
    overflow.spec.agentMinIdlePeriod = "3000000h";
    const zone = minimal("unknown-time-zone");
    zone.spec.podsWithCapabilities[0].standby = {
      schedules: [{ from: "08:00", to: "18:00", timeZone: "Europe/Berln", minCount: 1 }],
    };
    for (const obj of [caseOnly, clash, overflow, zone]) {
      await create(obj);
      assert.equal(validateAutoScaledAgent(obj).ok, false, obj.metadata.name);
    }
  });
});
