import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { applyDefaults, DEFAULTS, validateAutoScaledAgent, validatePodTemplateSpec } from "./index.ts";

// biome-ignore lint/suspicious/noExplicitAny: fixtures are free-form JSON, navigated without ceremony
type Obj = { [key: string]: any };

/** A minimal valid AutoScaledAgent, fresh on every call. */
function minimal(): Obj {
  return {
    apiVersion: "azurepipelines.k8s.scaler.io/v1",
    kind: "AutoScaledAgent",
    metadata: { name: "agents", namespace: "ci" },
    spec: {
      poolName: "pool",
      organizationUrl: "https://dev.azure.com/org",
      personalAccessTokenSecretName: "azure-pat",
      podsWithCapabilities: [
        {
          capabilities: { buildkit: "1" },
          maxCount: 3,
          podTemplateSpec: { spec: { containers: [{ name: "agent", image: "agent:1", args: ["--once"] }] } },
        },
      ],
    },
  };
}

function template(capabilities: Record<string, string> | undefined, extra: Obj = {}): Obj {
  const t: Obj = {
    maxCount: 2,
    podTemplateSpec: { spec: { containers: [{ name: "agent", image: "agent:1" }] } },
    ...extra,
  };
  if (capabilities !== undefined) t.capabilities = capabilities;
  return t;
}

function errorsOf(obj: unknown, unknownFields: "error" | "ignore" = "ignore"): string[] {
  const r = validateAutoScaledAgent(obj, { unknownFields });
  return r.ok ? [] : r.errors;
}

const sample = (file: string) =>
  parse(readFileSync(new URL(`../../../config/samples/${file}`, import.meta.url), "utf8"));

describe("validateAutoScaledAgent: valid resources", () => {
  const good: [string, (o: Obj) => void][] = [
    ["the minimal resource", () => {}],
    [
      "without apiVersion and kind",
      (o) => {
        delete o.apiVersion;
        delete o.kind;
      },
    ],
    ["without metadata", (o) => delete o.metadata],
    [
      "all durations in Go syntax",
      (o) => {
        Object.assign(o.spec, {
          agentMinIdlePeriod: "1h30m",
          dummyAgentGarbageCollectionInterval: "300ms",
          dummyAgentDeletionMinAge: "1.5h",
          normalOfflineAgentDeletionMinAge: "2h0m0s",
        });
      },
    ],
    ["microsecond durations", (o) => (o.spec.agentMinIdlePeriod = "1µs")],
    ["maxTerminatedPodsToKeep 0", (o) => (o.spec.maxTerminatedPodsToKeep = 0)],
    ["minCount == maxCount", (o) => Object.assign(o.spec.podsWithCapabilities[0], { minCount: 3, maxCount: 3 })],
    ["maxCount 0 (template switched off)", (o) => (o.spec.podsWithCapabilities[0].maxCount = 0)],
    ["a template without capabilities", (o) => delete o.spec.podsWithCapabilities[0].capabilities],
    [
      "templates with overlapping but different capabilities",
      (o) => {
        o.spec.podsWithCapabilities.push(template({ buildkit: "1", dotnet: "8" }), template({}));
      },
    ],
    [
      "capability values with spaces and commas",
      (o) => {
        o.spec.podsWithCapabilities[0].capabilities = { "Agent.OS": "Linux", tools: "a b, c" };
      },
    ],
    [
      "pod labels and annotations",
      (o) => {
        Object.assign(o.spec.podsWithCapabilities[0], { podLabels: { team: "ci" }, podAnnotations: { a: "b" } });
      },
    ],
    [
      "template metadata labels and annotations",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.metadata = { labels: { a: "b" }, annotations: { c: "d" } };
      },
    ],
    [
      "a native sidecar",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.initContainers = [
          { name: "dind", image: "docker:dind", restartPolicy: "Always" },
        ];
      },
    ],
    [
      "int-or-string and quantities in the pod template",
      (o) => {
        Object.assign(o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0], {
          resources: { requests: { cpu: "250m", memory: 64 * 1024 * 1024 }, limits: { cpu: 2, memory: "1Gi" } },
          livenessProbe: { httpGet: { port: "http" } },
          readinessProbe: { httpGet: { port: 8080 } },
        });
      },
    ],
    [
      "cache volumes, one with the empty storage class",
      (o) => {
        o.spec.reusableCacheVolumes = [
          { name: "cache", storageClassName: "fast", requestedStorage: "2Gi" },
          { name: "other", storageClassName: "", requestedStorage: "500M" },
          { name: "third", requestedStorage: "1" },
        ];
      },
    ],
    [
      "Entra ID with a client secret instead of a PAT",
      (o) => {
        delete o.spec.personalAccessTokenSecretName;
        o.spec.entraIdAuthentication = {
          tenantId: "contoso.onmicrosoft.com",
          clientId: "00000000-0000-0000-0000-000000000001",
          clientSecretRef: { name: "sp-secret" },
        };
      },
    ],
    [
      "Entra ID workload identity, with a custom authority host, beside a PAT",
      (o) => {
        o.spec.entraIdAuthentication = {
          tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47",
          clientId: "00000000-0000-0000-0000-000000000001",
          workloadIdentity: { serviceAccountName: "azp" },
          authorityHost: "http://127.0.0.1:8443/",
        };
      },
    ],
    [
      "Entra ID workload identity with the operator's own token",
      (o) => {
        o.spec.entraIdAuthentication = {
          tenantId: "t",
          clientId: "00000000-0000-0000-0000-000000000001",
          workloadIdentity: {},
        };
      },
    ],
    [
      "an extra-containers policy",
      (o) => {
        o.spec.extraAgentContainers = {
          allowedImages: ["docker.io/library/*", "ghcr.io/my-org/**"],
          maxContainers: 2,
          maxCpuPerContainer: "500m",
          maxMemoryPerContainer: "1Gi",
        };
      },
    ],
    ["extra containers switched off", (o) => (o.spec.extraAgentContainers = { maxContainers: 0 })],
    [
      "an http organization URL (Azure DevOps Server, the emulator)",
      (o) => {
        o.spec.organizationUrl = "http://127.0.0.1:8080/tfs/DefaultCollection";
      },
    ],
    [
      "null fields are dropped, as the API server does",
      (o) => {
        o.spec.maxTerminatedPodsToKeep = null;
        o.spec.podsWithCapabilities[0].minCount = null;
        o.spec.reusableCacheVolumes = null;
      },
    ],
    [
      "a full status",
      (o) => {
        o.status = {
          observedGeneration: 3,
          poolId: 12,
          pendingJobs: 1,
          pods: { starting: 1, idle: 0, busy: 2, finished: 1 },
          conditions: [
            {
              type: "Ready",
              status: "True",
              reason: "Reconciled",
              message: "",
              lastTransitionTime: "2025-01-02T03:04:05Z",
              observedGeneration: 3,
            },
            {
              type: "AzureDevOpsReachable",
              status: "False",
              reason: "HTTP500",
              message: "the service answered 500",
              lastTransitionTime: "2025-01-02T03:04:05.123+01:00",
            },
          ],
          templates: [
            {
              index: 0,
              capabilities: { buildkit: "1" },
              pendingJobs: 1,
              pods: { starting: 1, idle: 0, busy: 2, finished: 1 },
            },
          ],
          cacheVolumes: [{ name: "cache", claimName: "agents-abc12", holderPod: "agents-xyz" }],
        };
      },
    ],
  ];
  for (const [name, mutate] of good) {
    test(name, () => {
      const o = minimal();
      mutate(o);
      assert.deepEqual(errorsOf(o, "error"), []);
    });
  }
});

describe("validateAutoScaledAgent: invalid resources", () => {
  const P = "spec.podsWithCapabilities";
  const bad: [string, (o: Obj) => unknown, string[]][] = [
    [
      "not an object",
      () => ({ replaceWith: "hello" }),
      ['must be an object (an AutoScaledAgent resource), got "hello"'],
    ],
    ["a list", () => ({ replaceWith: [] }), ["must be an object (an AutoScaledAgent resource), got a list"]],
    [
      "another apiVersion",
      (o) => (o.apiVersion = "azurepipelines.k8s.scaler.io/v2"),
      ['apiVersion: must be azurepipelines.k8s.scaler.io/v1 (got "azurepipelines.k8s.scaler.io/v2")'],
    ],
    ["another kind", (o) => (o.kind = "Pod"), ['kind: must be AutoScaledAgent (got "Pod")']],
    ["no spec", (o) => delete o.spec, ["spec: required"]],
    ["spec not an object", (o) => (o.spec = "x"), ['spec: must be an object (got "x")']],
    ["no poolName", (o) => delete o.spec.poolName, ["spec.poolName: required"]],
    ["empty poolName", (o) => (o.spec.poolName = ""), ["spec.poolName: must not be empty"]],
    ["no organizationUrl", (o) => delete o.spec.organizationUrl, ["spec.organizationUrl: required"]],
    [
      "organizationUrl without scheme",
      (o) => (o.spec.organizationUrl = "dev.azure.com/org"),
      ['spec.organizationUrl: must be an http(s) URL such as https://dev.azure.com/my-org (got "dev.azure.com/org")'],
    ],
    [
      "no PAT secret and no Entra ID",
      (o) => delete o.spec.personalAccessTokenSecretName,
      [
        'spec.personalAccessTokenSecretName: required: the name of a Secret whose key "pat" holds the Azure DevOps personal access token (or set entraIdAuthentication)',
      ],
    ],
    [
      "PAT secret name not a Kubernetes name",
      (o) => (o.spec.personalAccessTokenSecretName = "Azure_PAT"),
      [
        "spec.personalAccessTokenSecretName: must be a Kubernetes object name: lower-case letters, digits, '-' and '.', starting and ending alphanumeric (got \"Azure_PAT\")",
      ],
    ],
    [
      "negative maxTerminatedPodsToKeep",
      (o) => (o.spec.maxTerminatedPodsToKeep = -1),
      ["spec.maxTerminatedPodsToKeep: must be >= 0 (got number -1)"],
    ],
    [
      "maxTerminatedPodsToKeep as a string",
      (o) => (o.spec.maxTerminatedPodsToKeep = "5"),
      ['spec.maxTerminatedPodsToKeep: must be an integer (got "5")'],
    ],
    [
      "fractional maxTerminatedPodsToKeep",
      (o) => (o.spec.maxTerminatedPodsToKeep = 1.5),
      ["spec.maxTerminatedPodsToKeep: must be an integer (got number 1.5)"],
    ],
    [
      "maxTerminatedPodsToKeep beyond int32",
      (o) => (o.spec.maxTerminatedPodsToKeep = 2 ** 31),
      ["spec.maxTerminatedPodsToKeep: must be <= 2147483647 (got number 2147483648)"],
    ],
    [
      "a duration with a space",
      (o) => (o.spec.agentMinIdlePeriod = "5 minutes"),
      [
        'spec.agentMinIdlePeriod: must be a Go duration such as "5m", "1h30m" or "300ms" (units ns, us, µs, ms, s, m, h) (got "5 minutes")',
      ],
    ],
    [
      "a negative duration",
      (o) => (o.spec.dummyAgentDeletionMinAge = "-2h"),
      [
        'spec.dummyAgentDeletionMinAge: must be a Go duration such as "5m", "1h30m" or "300ms" (units ns, us, µs, ms, s, m, h) (got "-2h")',
      ],
    ],
    [
      "a duration in days",
      (o) => (o.spec.normalOfflineAgentDeletionMinAge = "1d"),
      [
        'spec.normalOfflineAgentDeletionMinAge: must be a Go duration such as "5m", "1h30m" or "300ms" (units ns, us, µs, ms, s, m, h) (got "1d")',
      ],
    ],
    [
      "a duration beyond Go's range",
      (o) => (o.spec.dummyAgentGarbageCollectionInterval = "3000000h"),
      ['spec.dummyAgentGarbageCollectionInterval: invalid duration "3000000h": out of range (more than ~292 years)'],
    ],
    [
      "a duration as a number",
      (o) => (o.spec.agentMinIdlePeriod = 300),
      ['spec.agentMinIdlePeriod: must be a string (got number 300; quote it in YAML: "300")'],
    ],
    ["no podsWithCapabilities", (o) => delete o.spec.podsWithCapabilities, [`${P}: required`]],
    ["empty podsWithCapabilities", (o) => (o.spec.podsWithCapabilities = []), [`${P}: must have at least one entry`]],
    [
      "podsWithCapabilities not a list",
      (o) => (o.spec.podsWithCapabilities = {}),
      [`${P}: must be a list (got an object)`],
    ],
    [
      "too many templates",
      (o) => {
        o.spec.podsWithCapabilities = Array.from({ length: 51 }, (_, i) => template({ n: String(i) }));
      },
      [`${P}: must have at most 50 entries (got 51)`],
    ],
    [
      "a capability value that is a number",
      (o) => (o.spec.podsWithCapabilities[0].capabilities = { buildkit: 1 }),
      [`${P}[0].capabilities[buildkit]: must be a string (got number 1; quote it in YAML: "1")`],
    ],
    [
      "a capability value that is a boolean",
      (o) => (o.spec.podsWithCapabilities[0].capabilities = { docker: true }),
      [`${P}[0].capabilities[docker]: must be a string (got boolean true; quote it in YAML: "true")`],
    ],
    [
      "an empty capability name",
      (o) => (o.spec.podsWithCapabilities[0].capabilities = { "": "x" }),
      [`${P}[0].capabilities: capability names must not be empty`],
    ],
    [
      "too many capabilities",
      (o) => {
        o.spec.podsWithCapabilities[0].capabilities = Object.fromEntries(
          Array.from({ length: 65 }, (_, i) => [`c${i}`, "1"]),
        );
      },
      [`${P}[0].capabilities: must have at most 64 entries (got 65)`],
    ],
    [
      "two templates with the same capabilities",
      (o) => o.spec.podsWithCapabilities.push(template({ buildkit: "1" })),
      [
        `${P}[1].capabilities: every entry must have a different set of capabilities (a job goes to the best-fitting entry, so an entry with the same set as another is never used); the same as podsWithCapabilities[0]`,
      ],
    ],
    [
      "two templates without capabilities (missing and empty are the same set)",
      (o) => {
        o.spec.podsWithCapabilities = [template(undefined), template({ a: "1" }), template({})];
      },
      [
        `${P}[2].capabilities: every entry must have a different set of capabilities (a job goes to the best-fitting entry, so an entry with the same set as another is never used); the same as podsWithCapabilities[0]`,
      ],
    ],
    [
      "capabilities that differ only in letter case",
      (o) => o.spec.podsWithCapabilities.push(template({ BuildKit: "1" })),
      [
        `${P}[1].capabilities: every entry must have a different set of capabilities (a job goes to the best-fitting entry, so an entry with the same set as another is never used); the same as podsWithCapabilities[0] apart from letter case, and Azure DevOps compares capabilities case-insensitively`,
      ],
    ],
    [
      "minCount > maxCount",
      (o) => o.spec.podsWithCapabilities.push(template({ x: "1" }, { minCount: 3, maxCount: 2 })),
      [`${P}[1].maxCount: must be >= minCount (3 > 2)`],
    ],
    ["no maxCount", (o) => delete o.spec.podsWithCapabilities[0].maxCount, [`${P}[0].maxCount: required`]],
    [
      "negative minCount",
      (o) => (o.spec.podsWithCapabilities[0].minCount = -1),
      [`${P}[0].minCount: must be >= 0 (got number -1)`],
    ],
    [
      "negative maxCount",
      (o) => (o.spec.podsWithCapabilities[0].maxCount = -2),
      [`${P}[0].maxCount: must be >= 0 (got number -2)`, `${P}[0].maxCount: must be >= minCount (0 > -2)`],
    ],
    [
      "a pod label value that is a number",
      (o) => (o.spec.podsWithCapabilities[0].podLabels = { tier: 2 }),
      [`${P}[0].podLabels[tier]: must be a string (got number 2; quote it in YAML: "2")`],
    ],
    [
      "no podTemplateSpec",
      (o) => delete o.spec.podsWithCapabilities[0].podTemplateSpec,
      [`${P}[0].podTemplateSpec: required`],
    ],
    [
      "a pod template without spec",
      (o) => (o.spec.podsWithCapabilities[0].podTemplateSpec = { metadata: {} }),
      [
        `${P}[0].podTemplateSpec.spec.containers: required: at least one container: the first container runs the Azure Pipelines agent`,
      ],
    ],
    [
      "a pod template without containers",
      (o) => (o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers = []),
      [
        `${P}[0].podTemplateSpec.spec.containers: required: at least one container: the first container runs the Azure Pipelines agent`,
      ],
    ],
    [
      "a pod spec without the containers field",
      (o) => (o.spec.podsWithCapabilities[0].podTemplateSpec.spec = { volumes: [] }),
      [
        `${P}[0].podTemplateSpec.spec.containers: required`,
        `${P}[0].podTemplateSpec.spec.containers: required: at least one container: the first container runs the Azure Pipelines agent`,
      ],
    ],
    [
      "a container without a name",
      (o) => delete o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].name,
      [`${P}[0].podTemplateSpec.spec.containers[0].name: required`],
    ],
    [
      "a pod template field of the wrong type",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.terminationGracePeriodSeconds = "long";
      },
      [`${P}[0].podTemplateSpec.spec.terminationGracePeriodSeconds: must be an integer (got "long")`],
    ],
    [
      "args as a string instead of a list",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].args = "--once";
      },
      [`${P}[0].podTemplateSpec.spec.containers[0].args: must be a list (got "--once")`],
    ],
    [
      "a malformed quantity",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].resources = { limits: { memory: "lots" } };
      },
      [
        `${P}[0].podTemplateSpec.spec.containers[0].resources.limits[memory]: must be an integer or a quantity string such as "500m" or "1Gi" (got "lots")`,
      ],
    ],
    [
      "a decimal quantity (CRDs take integers or strings)",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].resources = { requests: { cpu: 0.5 } };
      },
      [
        `${P}[0].podTemplateSpec.spec.containers[0].resources.requests[cpu]: must be an integer or a quantity string such as "500m" or "1Gi" (got number 0.5)`,
      ],
    ],
    [
      "an int-or-string port that is neither",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].livenessProbe = { httpGet: { port: true } };
      },
      [
        `${P}[0].podTemplateSpec.spec.containers[0].livenessProbe.httpGet.port: must be an integer or a string (got boolean true)`,
      ],
    ],
    [
      "a cache volume without name and size",
      (o) => (o.spec.reusableCacheVolumes = [{ storageClassName: "x" }]),
      ["spec.reusableCacheVolumes[0].name: required", "spec.reusableCacheVolumes[0].requestedStorage: required"],
    ],
    [
      "a cache volume with a bad name and size",
      (o) => {
        o.spec.reusableCacheVolumes = [{ name: "Cache_1", requestedStorage: "2 GB" }];
      },
      [
        `spec.reusableCacheVolumes[0].name: must be a volume name: lower-case letters, digits and '-', starting and ending alphanumeric (got "Cache_1")`,
        'spec.reusableCacheVolumes[0].requestedStorage: must be a storage size such as "2Gi" or "500Mi" (got "2 GB")',
      ],
    ],
    [
      "a negative cache size",
      (o) => (o.spec.reusableCacheVolumes = [{ name: "c", requestedStorage: "-1Gi" }]),
      ['spec.reusableCacheVolumes[0].requestedStorage: must be a storage size such as "2Gi" or "500Mi" (got "-1Gi")'],
    ],
    [
      "two cache volumes with one name",
      (o) => {
        o.spec.reusableCacheVolumes = [
          { name: "c", requestedStorage: "1Gi" },
          { name: "c", requestedStorage: "2Gi" },
        ];
      },
      ['spec.reusableCacheVolumes[1]: duplicate entry (name "c", as in spec.reusableCacheVolumes[0])'],
    ],
    [
      "a misspelt imagePullPolicy (the API server publishes the enum)",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].imagePullPolicy = "always";
      },
      [
        `${P}[0].podTemplateSpec.spec.containers[0].imagePullPolicy: must be one of Always, IfNotPresent, Never (got "always")`,
      ],
    ],
    [
      "two containers with one name",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers.push({ name: "agent", image: "other:1" });
      },
      [
        `${P}[0].podTemplateSpec.spec.containers[1]: duplicate entry (name "agent", as in ${P}[0].podTemplateSpec.spec.containers[0])`,
      ],
    ],
    [
      "two ports that differ only by the defaulted protocol",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].ports = [
          { containerPort: 80 },
          { containerPort: 80, protocol: "TCP" },
        ];
      },
      [
        `${P}[0].podTemplateSpec.spec.containers[0].ports[1]: duplicate entry (containerPort number 80, protocol "TCP", as in ${P}[0].podTemplateSpec.spec.containers[0].ports[0])`,
      ],
    ],
    [
      "a duplicate finalizer (a set)",
      (o) => {
        o.spec.podsWithCapabilities[0].podTemplateSpec.metadata = { finalizers: ["a", "a"] };
      },
      [
        `${P}[0].podTemplateSpec.metadata.finalizers[1]: duplicate entry ("a", as in ${P}[0].podTemplateSpec.metadata.finalizers[0])`,
      ],
    ],
    [
      "a template volume named like a cache volume",
      (o) => {
        o.spec.reusableCacheVolumes = [{ name: "cache", requestedStorage: "1Gi" }];
        o.spec.podsWithCapabilities[0].podTemplateSpec.spec.volumes = [{ name: "cache", emptyDir: {} }];
      },
      [
        `${P}[0].podTemplateSpec.spec.volumes[0].name: "cache" is a reusableCacheVolumes entry; the operator adds that volume (a PersistentVolumeClaim) itself, so the template must not define it`,
      ],
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
      [
        "spec.entraIdAuthentication: set exactly one of clientSecretRef (a service principal's secret) and workloadIdentity (a federated token)",
      ],
    ],
    [
      "Entra ID without a credential, a bad client ID and a missing tenant",
      (o) => {
        o.spec.entraIdAuthentication = { clientId: "my-app" };
      },
      [
        "spec.entraIdAuthentication.tenantId: required",
        'spec.entraIdAuthentication.clientId: must be a GUID such as 00000000-0000-0000-0000-000000000000 (got "my-app")',
        "spec.entraIdAuthentication: set exactly one of clientSecretRef (a service principal's secret) and workloadIdentity (a federated token)",
      ],
    ],
    [
      "an Entra secret reference without a name",
      (o) => {
        o.spec.entraIdAuthentication = {
          tenantId: "t",
          clientId: "00000000-0000-0000-0000-000000000001",
          clientSecretRef: { key: "secret" },
        };
      },
      ["spec.entraIdAuthentication.clientSecretRef.name: required"],
    ],
    [
      "a bad extra-containers policy",
      (o) => {
        o.spec.extraAgentContainers = {
          allowedImages: [],
          maxContainers: -1,
          maxCpuPerContainer: "fast",
          maxMemoryPerContainer: 1.5,
        };
      },
      [
        "spec.extraAgentContainers.allowedImages: must have at least one entry",
        "spec.extraAgentContainers.maxContainers: must be >= 0 (got number -1)",
        'spec.extraAgentContainers.maxCpuPerContainer: must be an integer or a quantity string such as "500m" or "1Gi" (got "fast")',
        'spec.extraAgentContainers.maxMemoryPerContainer: must be an integer or a quantity string such as "500m" or "1Gi" (got number 1.5)',
      ],
    ],
    [
      "an image pattern with a space",
      (o) => (o.spec.extraAgentContainers = { allowedImages: ["docker.io/ x"] }),
      ['spec.extraAgentContainers.allowedImages[0]: must be an image pattern without spaces (got "docker.io/ x")'],
    ],
    [
      "a condition with a bad status, reason and time",
      (o) => {
        o.status = {
          conditions: [
            { type: "Ready", status: "Yes", reason: "not ok", message: "m", lastTransitionTime: "yesterday" },
          ],
        };
      },
      [
        'status.conditions[0].lastTransitionTime: must be a string matching ^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$ (got "yesterday")',
        'status.conditions[0].reason: must be a string matching ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$ (got "not ok")',
        'status.conditions[0].status: must be one of True, False, Unknown (got "Yes")',
      ],
    ],
    [
      "negative pod counts in status",
      (o) => (o.status = { pods: { starting: 0, idle: -1, busy: 0, finished: 0 } }),
      ["status.pods.idle: must be >= 0 (got number -1)"],
    ],
  ];
  for (const [name, mutate, want] of bad) {
    test(name, () => {
      const o = minimal();
      const replaced = mutate(o) as { replaceWith?: unknown } | undefined;
      const input = replaced && typeof replaced === "object" && "replaceWith" in replaced ? replaced.replaceWith : o;
      assert.deepEqual(errorsOf(input), want);
    });
  }

  test("every error of one resource is reported at once", () => {
    const o = minimal();
    o.spec.poolName = "";
    o.spec.agentMinIdlePeriod = "soon";
    o.spec.podsWithCapabilities.push(template({ x: "1" }, { minCount: 5, maxCount: 1 }));
    assert.equal(errorsOf(o).length, 3);
  });
});

describe("unknown fields", () => {
  test("are ignored by default (a newer CRD may have more fields)", () => {
    const o = minimal();
    o.spec.futureField = true;
    assert.deepEqual(errorsOf(o, "ignore"), []);
  });
  test("are reported on request, with a suggestion for case mistakes", () => {
    const o = minimal();
    o.spec.poolname = "x";
    o.spec.podsWithCapabilities[0].maxcount = 1;
    o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].imagePullPolicyy = "Always";
    o.metadata.somethingElse = 1; // metadata belongs to the API server: not checked
    assert.deepEqual(errorsOf(o, "error").sort(), [
      "spec.podsWithCapabilities[0].maxcount: unknown field (did you mean maxCount?)",
      "spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].imagePullPolicyy: unknown field",
      "spec.poolname: unknown field (did you mean poolName?)",
    ]);
  });
});

describe("applyDefaults", () => {
  test("fills the original's defaults", () => {
    const o = applyDefaults(minimal());
    assert.equal(o.spec.maxTerminatedPodsToKeep, 5);
    assert.equal(o.spec.agentMinIdlePeriod, "5m");
    assert.equal(o.spec.dummyAgentGarbageCollectionInterval, "30m");
    assert.equal(o.spec.dummyAgentDeletionMinAge, "2h");
    assert.equal(o.spec.normalOfflineAgentDeletionMinAge, "5h");
    assert.equal(o.spec.podsWithCapabilities[0].minCount, 0);
  });
  test("DEFAULTS holds the same values", () => {
    assert.deepEqual(
      {
        maxTerminatedPodsToKeep: DEFAULTS.maxTerminatedPodsToKeep,
        agentMinIdlePeriod: DEFAULTS.agentMinIdlePeriod,
        dummyAgentGarbageCollectionInterval: DEFAULTS.dummyAgentGarbageCollectionInterval,
        dummyAgentDeletionMinAge: DEFAULTS.dummyAgentDeletionMinAge,
        normalOfflineAgentDeletionMinAge: DEFAULTS.normalOfflineAgentDeletionMinAge,
      },
      {
        maxTerminatedPodsToKeep: 5,
        agentMinIdlePeriod: "5m",
        dummyAgentGarbageCollectionInterval: "30m",
        dummyAgentDeletionMinAge: "2h",
        normalOfflineAgentDeletionMinAge: "5h",
      },
    );
  });
  test("defaults a missing capability map to {} and a secret key to clientSecret", () => {
    const input = minimal();
    delete input.spec.podsWithCapabilities[0].capabilities;
    input.spec.entraIdAuthentication = { tenantId: "t", clientId: "c", clientSecretRef: { name: "s" } };
    const o = applyDefaults(input);
    assert.deepEqual(o.spec.podsWithCapabilities[0].capabilities, {});
    assert.equal(o.spec.entraIdAuthentication.clientSecretRef.key, "clientSecret");
  });
  test("keeps given values, including zero", () => {
    const input = minimal();
    input.spec.maxTerminatedPodsToKeep = 0;
    input.spec.agentMinIdlePeriod = "1m";
    input.spec.podsWithCapabilities[0].minCount = 2;
    const o = applyDefaults(input);
    assert.equal(o.spec.maxTerminatedPodsToKeep, 0);
    assert.equal(o.spec.agentMinIdlePeriod, "1m");
    assert.equal(o.spec.podsWithCapabilities[0].minCount, 2);
  });
  test("defaults a container port's protocol to TCP, as the API server does", () => {
    const input = minimal();
    input.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].ports = [{ containerPort: 80 }];
    const o = applyDefaults(input);
    assert.equal(o.spec.podsWithCapabilities[0].podTemplateSpec.spec.containers[0].ports[0].protocol, "TCP");
  });
  test("does not change its input, and drops nulls", () => {
    const input = minimal();
    input.spec.reusableCacheVolumes = null;
    const before = structuredClone(input);
    const o = applyDefaults(input);
    assert.deepEqual(input, before);
    assert.equal("reusableCacheVolumes" in o.spec, false);
  });
  test("validateAutoScaledAgent returns the defaulted copy", () => {
    const r = validateAutoScaledAgent(minimal());
    assert.ok(r.ok);
    assert.equal(r.value.spec.maxTerminatedPodsToKeep, 5);
    assert.equal(r.value.spec.podsWithCapabilities[0]?.minCount, 0);
  });
});

describe("samples", () => {
  test("the original project's sample validates unchanged (config/samples/v1_autoscaledagent.yaml)", () => {
    const doc = sample("v1_autoscaledagent.yaml");
    const before = structuredClone(doc);
    const r = validateAutoScaledAgent(doc, { unknownFields: "error" });
    assert.deepEqual(r.ok ? [] : r.errors, []);
    assert.deepEqual(doc, before);
  });
  test("the native-sidecar sample validates", () => {
    const r = validateAutoScaledAgent(sample("v1_autoscaledagent_native_sidecar.yaml"), { unknownFields: "error" });
    assert.deepEqual(r.ok ? [] : r.errors, []);
    assert.ok(r.ok);
    assert.equal(
      r.value.spec.podsWithCapabilities[0]?.podTemplateSpec.spec?.initContainers?.[0]?.restartPolicy,
      "Always",
    );
  });
});

describe("validatePodTemplateSpec", () => {
  test("a valid template has no errors", () => {
    assert.deepEqual(
      validatePodTemplateSpec(
        {
          metadata: { labels: { a: "b" } },
          spec: { restartPolicy: "Never", containers: [{ name: "agent", image: "a:1" }] },
        },
        { unknownFields: "error" },
      ),
      [],
    );
  });
  test("types, required fields, enums and duplicates, each with its path", () => {
    const errors = validatePodTemplateSpec({
      spec: {
        restartPolicy: "Sometimes",
        containers: [{ image: "a:1" }, { name: "x", ports: [{ containerPort: "80" }] }],
        volumes: [
          { name: "v", emptyDir: {} },
          { name: "v", emptyDir: {} },
        ],
      },
    });
    assert.ok(errors.includes("spec.containers[0].name: required"), errors.join("\n"));
    assert.ok(
      errors.some((e) => e.startsWith("spec.restartPolicy: must be one of")),
      errors.join("\n"),
    );
    assert.ok(errors.some((e) => e.startsWith("spec.containers[1].ports[0].containerPort: must be an integer")));
    assert.ok(
      errors.some((e) => e.startsWith("spec.volumes[1]: duplicate entry")),
      errors.join("\n"),
    );
  });
  test("unknown fields only when asked for", () => {
    const template = { spec: { containers: [{ name: "a", image: "a", imagepullpolicy: "Always" }] } };
    assert.deepEqual(validatePodTemplateSpec(template), []);
    assert.deepEqual(validatePodTemplateSpec(template, { unknownFields: "error" }), [
      "spec.containers[0].imagepullpolicy: unknown field (did you mean imagePullPolicy?)",
    ]);
  });
});
