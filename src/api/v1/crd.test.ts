import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { buildCrd, CRD_FILE, crdYaml, toCrdSchema } from "./crd.ts";
import { DEFAULTS, LIMITS } from "./index.ts";
import { typeBoxFromStructural } from "./podtemplate.ts";
import podTemplateFile from "./podtemplatespec.schema.json" with { type: "json" };
import {
  atLeastOneContainer,
  authenticationRequired,
  exactlyOneEntraCredential,
  minCountAtMostMaxCount,
  standbyAtMostMaxCount,
  standbyWindowNotEmpty,
  uniqueCapabilitySets,
} from "./rules.ts";
import { DEFAULTED_SPEC_KEYS, DEFAULTED_TEMPLATE_KEYS } from "./schema.ts";
import { type JsonSchema, structuralProblems } from "./structural.ts";

// biome-ignore lint/suspicious/noExplicitAny: fixtures are free-form JSON, navigated without ceremony
type Node = { [key: string]: any };

const committed = () => readFileSync(new URL(`../../../${CRD_FILE}`, import.meta.url), "utf8");
const openApi = (): Node => (buildCrd() as Node).spec.versions[0].schema.openAPIV3Schema;

function walk(node: unknown, visit: (n: Node, path: string) => void, path = "$"): void {
  if (typeof node !== "object" || node === null) return;
  if (Array.isArray(node)) {
    node.forEach((n, i) => {
      walk(n, visit, `${path}[${i}]`);
    });
    return;
  }
  visit(node as Node, path);
  for (const [k, v] of Object.entries(node)) walk(v, visit, `${path}.${k}`);
}

describe("the generated CRD", () => {
  test(`${CRD_FILE} is up to date (else run: npx node src/api/v1/generate-crd.ts)`, () => {
    assert.equal(committed(), crdYaml());
  });

  test("the committed YAML parses back to the generated object", () => {
    assert.deepEqual(parse(committed()), buildCrd());
  });

  test("names, scope, version and status subresource", () => {
    const crd = buildCrd() as Node;
    assert.equal(crd.metadata.name, "autoscaledagents.azurepipelines.k8s.scaler.io");
    assert.equal(crd.spec.group, "azurepipelines.k8s.scaler.io");
    assert.deepEqual(crd.spec.names, {
      kind: "AutoScaledAgent",
      listKind: "AutoScaledAgentList",
      plural: "autoscaledagents",
      singular: "autoscaledagent",
      shortNames: ["asa"],
      categories: ["azure-pipelines"],
    });
    assert.equal(crd.spec.scope, "Namespaced");
    assert.equal(crd.spec.versions.length, 1);
    const v1 = crd.spec.versions[0];
    assert.equal(v1.name, "v1");
    assert.equal(v1.served, true);
    assert.equal(v1.storage, true);
    assert.deepEqual(v1.subresources, { status: {} });
  });

  test("printer columns: pool, pending, running, ready, age (idle, starting, reason with -o wide)", () => {
    const columns = (buildCrd() as Node).spec.versions[0].additionalPrinterColumns as Node[];
    assert.deepEqual(
      columns.filter((c) => !c.priority).map((c) => [c.name, c.jsonPath]),
      [
        ["Pool", ".spec.poolName"],
        ["Pending", ".status.pendingJobs"],
        ["Running", ".status.pods.busy"],
        ["Ready", '.status.conditions[?(@.type=="Ready")].status'],
        ["Age", ".metadata.creationTimestamp"],
      ],
    );
    assert.deepEqual(
      columns.filter((c) => c.priority === 1).map((c) => c.name),
      ["Idle", "Starting", "Reason"],
    );
  });

  test("follows the structural-schema rules", () => {
    assert.deepEqual(structuralProblems(openApi()), []);
  });

  test("has no $ref and no private keys anywhere", () => {
    const text = JSON.stringify(buildCrd());
    for (const key of ['"$ref"', '"x-azp-', '"x-crd-format"', '"patternProperties"', '"$id"', '"allOf"', '"oneOf"']) {
      assert.equal(text.includes(key), false, key);
    }
  });

  test("the pod template carries no descriptions", () => {
    const pts = openApi().properties.spec.properties.podsWithCapabilities.items.properties.podTemplateSpec;
    const { description: _top, ...rest } = pts;
    assert.deepEqual(structuralProblems(rest as JsonSchema, { forbidDescriptions: true }), []);
  });

  test("stays well under the 256 KiB kubectl last-applied annotation limit", () => {
    const bytes = Buffer.byteLength(JSON.stringify(buildCrd()));
    assert.ok(bytes < 256 * 1024, `${bytes} bytes`);
    assert.ok(bytes < 150 * 1024, `${bytes} bytes: more than expected, did descriptions creep into the pod template?`);
  });

  test("metadata at the root is only declared an object", () => {
    assert.deepEqual(openApi().properties.metadata, { type: "object" });
  });

  test("defaults as in the original CRD", () => {
    const spec = openApi().properties.spec.properties;
    assert.equal(spec.maxTerminatedPodsToKeep.default, 5);
    assert.equal(spec.agentMinIdlePeriod.default, "5m");
    assert.equal(spec.dummyAgentGarbageCollectionInterval.default, "30m");
    assert.equal(spec.dummyAgentDeletionMinAge.default, "2h");
    assert.equal(spec.normalOfflineAgentDeletionMinAge.default, "5h");
    const item = spec.podsWithCapabilities.items.properties;
    assert.equal(item.minCount.default, DEFAULTS.minCount);
    assert.deepEqual(item.capabilities.default, {});
  });

  test("DEFAULTED_SPEC_KEYS and DEFAULTED_TEMPLATE_KEYS list exactly the defaulted fields", () => {
    const spec = openApi().properties.spec.properties as Record<string, Node>;
    const defaulted = (props: Record<string, Node>) =>
      Object.keys(props)
        .filter((k) => props[k]?.default !== undefined)
        .sort();
    assert.deepEqual(defaulted(spec), [...DEFAULTED_SPEC_KEYS].sort());
    assert.deepEqual(defaulted(spec.podsWithCapabilities?.items.properties), [...DEFAULTED_TEMPLATE_KEYS].sort());
  });

  test("the original's field types and formats are kept", () => {
    const spec = openApi().properties.spec.properties;
    for (const key of ["agentMinIdlePeriod", "dummyAgentGarbageCollectionInterval", "dummyAgentDeletionMinAge"]) {
      assert.equal(spec[key].type, "string");
      assert.equal(spec[key].pattern, "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$");
    }
    assert.equal(spec.maxTerminatedPodsToKeep.format, "int32");
    assert.equal(spec.maxTerminatedPodsToKeep.minimum, 0);
    const item = spec.podsWithCapabilities.items.properties;
    for (const key of ["minCount", "maxCount"]) {
      assert.equal(item[key].type, "integer");
      assert.equal(item[key].format, "int32");
      assert.equal(item[key].minimum, 0);
    }
    for (const key of ["capabilities", "podLabels", "podAnnotations"]) {
      assert.equal(item[key].type, "object");
      assert.equal(item[key].additionalProperties.type, "string");
    }
    const cache = spec.reusableCacheVolumes.items.properties;
    for (const key of ["name", "storageClassName", "requestedStorage"]) assert.equal(cache[key].type, "string");
    assert.deepEqual(spec.reusableCacheVolumes["x-kubernetes-list-map-keys"], ["name"]);
  });

  test("the CEL rules sit where they apply", () => {
    const spec = openApi().properties.spec;
    assert.deepEqual(spec["x-kubernetes-validations"], [authenticationRequired.cel]);
    const templates = spec.properties.podsWithCapabilities;
    assert.deepEqual(templates["x-kubernetes-validations"], [uniqueCapabilitySets.cel]);
    assert.equal(templates.maxItems, LIMITS.podsWithCapabilities);
    assert.deepEqual(templates.items["x-kubernetes-validations"], [
      minCountAtMostMaxCount.cel,
      standbyAtMostMaxCount.cel,
    ]);
    assert.deepEqual(templates.items.properties.standby.properties.schedules.items["x-kubernetes-validations"], [
      standbyWindowNotEmpty.cel,
    ]);
    assert.deepEqual(templates.items.properties.podTemplateSpec["x-kubernetes-validations"], [atLeastOneContainer.cel]);
    assert.deepEqual(spec.properties.entraIdAuthentication["x-kubernetes-validations"], [
      exactlyOneEntraCredential.cel,
    ]);
    let count = 0;
    walk(buildCrd(), (n) => {
      if (n["x-kubernetes-validations"]) count += (n["x-kubernetes-validations"] as unknown[]).length;
    });
    assert.equal(count, 7);
  });

  test("int-or-string quantities carry their pattern beside the anyOf", () => {
    const policy = openApi().properties.spec.properties.extraAgentContainers.properties;
    assert.deepEqual(policy.maxCpuPerContainer.anyOf, [{ type: "integer" }, { type: "string" }]);
    assert.equal(typeof policy.maxCpuPerContainer.pattern, "string");
    assert.equal(policy.maxCpuPerContainer["x-kubernetes-int-or-string"], true);
  });

  test("status conditions have the metav1.Condition shape", () => {
    const conditions = openApi().properties.status.properties.conditions;
    assert.deepEqual(conditions["x-kubernetes-list-map-keys"], ["type"]);
    assert.deepEqual(conditions.items.required, ["lastTransitionTime", "message", "reason", "status", "type"]);
    assert.equal(conditions.items.properties.lastTransitionTime.format, "date-time");
    assert.equal(conditions.items.properties.lastTransitionTime.pattern, undefined);
    assert.deepEqual(conditions.items.properties.status.enum, ["True", "False", "Unknown"]);
  });
});

describe("the pod template schema", () => {
  test("records the Kubernetes version it came from", () => {
    assert.match(podTemplateFile.kubernetesVersion, /^v1\.\d+\.\d+/);
    assert.equal(
      (buildCrd() as Node).metadata.annotations["azurepipelines.k8s.scaler.io/pod-template-schema-kubernetes-version"],
      podTemplateFile.kubernetesVersion,
    );
  });

  test("is structural, without descriptions", () => {
    assert.deepEqual(structuralProblems(podTemplateFile.schema, { forbidDescriptions: true }), []);
  });

  test("survives the TypeBox round trip exactly", () => {
    assert.deepEqual(toCrdSchema(typeBoxFromStructural(podTemplateFile.schema)), podTemplateFile.schema);
  });

  test("is what the CRD embeds (plus the container rule and a description)", () => {
    const pts = openApi().properties.spec.properties.podsWithCapabilities.items.properties.podTemplateSpec;
    const { description: _d, "x-kubernetes-validations": _v, ...rest } = pts;
    assert.deepEqual(rest, podTemplateFile.schema);
  });

  test("keeps the list-map keys of containers, volumes, env and ports", () => {
    const spec = (podTemplateFile.schema as Node).properties.spec.properties;
    assert.deepEqual(spec.containers["x-kubernetes-list-map-keys"], ["name"]);
    assert.deepEqual(spec.volumes["x-kubernetes-list-map-keys"], ["name"]);
    assert.deepEqual(spec.containers.items.properties.env["x-kubernetes-list-map-keys"], ["name"]);
    const ports = spec.containers.items.properties.ports;
    assert.deepEqual(ports["x-kubernetes-list-map-keys"], ["containerPort", "protocol"]);
    assert.equal(ports.items.properties.protocol.default, "TCP");
    assert.deepEqual((podTemplateFile.schema as Node).properties.spec.required, ["containers"]);
  });

  test("keeps template labels and annotations (controller-gen's embedded ObjectMeta)", () => {
    const meta = (podTemplateFile.schema as Node).properties.metadata.properties;
    assert.deepEqual(Object.keys(meta), ["annotations", "finalizers", "labels", "name", "namespace"]);
  });

  test("supports native sidecars (restartPolicy on init containers)", () => {
    const init = (podTemplateFile.schema as Node).properties.spec.properties.initContainers.items.properties;
    assert.equal(init.restartPolicy.type, "string");
  });
});
