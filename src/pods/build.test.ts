import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parse } from "yaml";
import {
  type DefaultedAutoScaledAgent,
  type EnvVar,
  labels,
  podAnnotations,
  validateAutoScaledAgent,
  validatePodTemplateSpec,
} from "../api/v1/index.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import { agentCapabilities } from "../scaling/plan.ts";
import {
  type AgentPodResource,
  type AgentPodTemplate,
  type BuildAgentPodInput,
  type BuildAgentPodResult,
  buildAgentPod,
  buildPodForCreate,
  capabilitiesAnnotation,
  isEnvVarName,
  labelValue,
  literalEnvValue,
  type Pod,
} from "./build.ts";
import { parseExtraAgentContainers } from "./extra-containers.ts";

const K = { labels, annotations: podAnnotations };

function must<T>(value: T | undefined | null): T {
  if (value === undefined || value === null) throw new Error("fixture value missing");
  return value;
}

function resource(spec: Partial<AgentPodResource["spec"]> = {}): AgentPodResource {
  return {
    metadata: { name: "agents", namespace: "ci", uid: "uid-1" },
    spec: {
      poolName: "pool",
      organizationUrl: "https://dev.azure.com/org",
      personalAccessTokenSecretName: "azure-pat",
      ...spec,
    },
  };
}

function template(overrides: Partial<AgentPodTemplate> = {}): AgentPodTemplate {
  return {
    capabilities: { buildkit: "1" },
    podTemplateSpec: {
      metadata: { labels: { team: "a" }, annotations: { note: "x" } },
      spec: {
        containers: [
          {
            name: "agent",
            image: "agent:1",
            args: ["--once"],
            volumeMounts: [{ name: "workspace", mountPath: "/azp/_work" }],
          },
          { name: "buildkit", image: "moby/buildkit:rootless", volumeMounts: [{ name: "workspace", mountPath: "/w" }] },
        ],
        volumes: [{ name: "workspace", emptyDir: {} }],
      },
    },
    ...overrides,
  };
}

function input(overrides: Partial<BuildAgentPodInput> = {}): BuildAgentPodInput {
  return { resource: resource(), template: template(), templateIndex: 0, podName: "agents-abcde", ...overrides };
}

function built(result: BuildAgentPodResult): { pod: Pod; warnings: string[] } {
  if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
  return result;
}

const build = (overrides: Partial<BuildAgentPodInput> = {}) => built(buildAgentPod(input(overrides)));

function env(pod: Pod): EnvVar[] {
  return pod.spec.containers[0]?.env ?? [];
}
function envValue(pod: Pod, name: string): string | undefined {
  return env(pod).find((e) => e.name === name)?.value;
}

function extra(value: string) {
  const r = parseExtraAgentContainers(value);
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join("; "));
  return r.value;
}

/** The built pod checked against the CRD's PodTemplateSpec schema (what the API server would refuse). */
function schemaErrors(pod: Pod): string[] {
  return validatePodTemplateSpec(
    { metadata: { labels: pod.metadata.labels, annotations: pod.metadata.annotations }, spec: pod.spec },
    { unknownFields: "error" },
  );
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe("buildAgentPod: the pod", () => {
  test("kind, name, namespace, owner reference, restartPolicy", () => {
    const { pod, warnings } = build();
    assert.equal(pod.apiVersion, "v1");
    assert.equal(pod.kind, "Pod");
    assert.equal(pod.metadata.name, "agents-abcde");
    assert.equal(pod.metadata.namespace, "ci");
    assert.deepEqual(pod.metadata.ownerReferences, [
      {
        apiVersion: "azurepipelines.k8s.scaler.io/v1",
        kind: "AutoScaledAgent",
        name: "agents",
        uid: "uid-1",
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    assert.equal(pod.spec.restartPolicy, "Never");
    assert.deepEqual(warnings, []);
    assert.deepEqual(schemaErrors(pod), []);
  });

  for (const policy of ["Always", "OnFailure"]) {
    test(`restartPolicy ${policy} becomes Never, with a warning`, () => {
      const t = template();
      const { pod, warnings } = build({
        template: { ...t, podTemplateSpec: { spec: { ...must(t.podTemplateSpec.spec), restartPolicy: policy } } },
      });
      assert.equal(pod.spec.restartPolicy, "Never");
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? "", new RegExp(`restartPolicy ${policy} is replaced by Never`));
    });
  }
  test("restartPolicy Never in the template: no warning", () => {
    const t = template();
    const { warnings } = build({
      template: { ...t, podTemplateSpec: { spec: { ...must(t.podTemplateSpec.spec), restartPolicy: "Never" } } },
    });
    assert.deepEqual(warnings, []);
  });

  test("the rest of the template spec is kept", () => {
    const t = template();
    const spec = {
      ...must(t.podTemplateSpec.spec),
      terminationGracePeriodSeconds: 1200,
      nodeSelector: { pool: "ci" },
      shareProcessNamespace: true,
    };
    const { pod } = build({ template: { ...t, podTemplateSpec: { spec } } });
    assert.equal(pod.spec.terminationGracePeriodSeconds, 1200);
    assert.deepEqual(pod.spec.nodeSelector, { pool: "ci" });
    assert.equal(pod.spec.shareProcessNamespace, true);
    assert.deepEqual(pod.spec.containers[1], spec.containers[1]);
    assert.deepEqual(pod.spec.containers[0]?.args, ["--once"]);
  });

  test("a template without containers cannot be built", () => {
    const r = buildAgentPod(input({ template: template({ podTemplateSpec: { spec: { containers: [] } } }) }));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.reason, "InvalidPodTemplate");
    const r2 = buildAgentPod(input({ template: template({ podTemplateSpec: {} }) }));
    assert.equal(r2.ok ? "ok" : r2.reason, "InvalidPodTemplate");
  });

  test("the schema check catches a broken pod (so the checks above can fail)", () => {
    const { pod } = build({ extraAgentContainers: extra("c,img,1") });
    const broken = structuredClone(pod);
    const c = must(broken.spec.containers[2]);
    c.resources = { limits: { cpu: "lots" } };
    broken.spec.restartPolicy = "Sometimes";
    const errors = schemaErrors(broken);
    assert.ok(
      errors.some((e) => e.startsWith("spec.containers[2].resources.limits[cpu]:")),
      errors.join("\n"),
    );
    assert.ok(
      errors.some((e) => e.startsWith("spec.restartPolicy: must be one of")),
      errors.join("\n"),
    );
  });

  test("inputs are not changed", () => {
    const i = deepFreeze(
      input({
        cacheVolumes: { cache: "claim-1" },
        extraAgentContainers: extra("c,img,1,1Gi"),
        forRequestIds: [1, 2],
        agentCapabilities: { buildkit: "1", ExtraAgentContainers: "c,img,1,1Gi" },
      }),
    );
    const before = structuredClone(i);
    const { pod } = built(buildAgentPod(i));
    assert.deepEqual(i, before);
    // The pod shares no objects with the template.
    assert.notEqual(pod.spec.containers[1], i.template.podTemplateSpec.spec?.containers[1]);
  });
});

describe("buildAgentPod: agent environment", () => {
  test("AZP_AGENT_NAME, AZP_URL, AZP_POOL and AZP_TOKEN from the Secret, first", () => {
    const { pod } = build();
    assert.deepEqual(env(pod).slice(0, 4), [
      { name: "AZP_AGENT_NAME", value: "agents-abcde" },
      { name: "AZP_URL", value: "https://dev.azure.com/org" },
      { name: "AZP_POOL", value: "pool" },
      { name: "AZP_TOKEN", valueFrom: { secretKeyRef: { name: "azure-pat", key: "pat" } } },
    ]);
  });

  test("only the agent container gets them", () => {
    const { pod } = build({ extraAgentContainers: extra("c,img") });
    for (const c of pod.spec.containers.slice(1)) {
      assert.ok(!(c.env ?? []).some((e) => e.name.startsWith("AZP_")), c.name);
    }
  });

  test("one env var per capability, sorted, literal", () => {
    const { pod } = build({ agentCapabilities: { zeta: "1", alpha: "a b, c", dollar: "$(HOME) costs $$5" } });
    assert.deepEqual(env(pod).slice(4), [
      { name: "alpha", value: "a b, c" },
      { name: "dollar", value: "$$(HOME) costs $$$$5" },
      { name: "zeta", value: "1" },
    ]);
  });

  test("capabilities default to the template's", () => {
    const { pod } = build();
    assert.equal(envValue(pod, "buildkit"), "1");
  });

  test("ExtraAgentContainers is advertised with the exact value", () => {
    const value = "name=c,image=img,cpu=250m";
    const { pod } = build({ extraAgentContainers: extra(value), agentCapabilities: { buildkit: "1" } });
    assert.equal(envValue(pod, "ExtraAgentContainers"), value);
    assert.equal(JSON.parse(pod.metadata.annotations[K.annotations.capabilities] ?? "{}").ExtraAgentContainers, value);
  });

  test("a stale ExtraAgentContainers capability (any case) is replaced by the value of the containers", () => {
    const { pod } = build({
      extraAgentContainers: extra("c,img"),
      agentCapabilities: { extraagentcontainers: "old" },
    });
    assert.deepEqual(
      env(pod)
        .filter((e) => e.name.toLowerCase() === "extraagentcontainers")
        .map((e) => [e.name, e.value]),
      [["ExtraAgentContainers", "c,img"]],
    );
  });

  test("template env: kept after the operator's, operator names and capabilities win", () => {
    const t = template();
    const [agent, ...rest] = must(t.podTemplateSpec.spec).containers;
    const templateEnv: EnvVar[] = [
      { name: "LOG_DIR", value: "/logs/$(AZP_AGENT_NAME)" },
      { name: "AZP_URL", value: "https://elsewhere" },
      { name: "AZP_TOKEN", value: "literal-token" },
      { name: "buildkit", value: "1" },
      { name: "BUILDKIT", value: "0" },
      { name: "java", valueFrom: { configMapKeyRef: { name: "m", key: "k" } } },
      { name: "AZP_WORK", value: "/azp/_work" },
    ];
    const { pod, warnings } = build({
      template: {
        ...t,
        podTemplateSpec: {
          spec: { ...must(t.podTemplateSpec.spec), containers: [{ ...must(agent), env: templateEnv }, ...rest] },
        },
      },
      agentCapabilities: { buildkit: "1", java: "17" },
    });
    assert.deepEqual(
      env(pod).map((e) => e.name),
      ["AZP_AGENT_NAME", "AZP_URL", "AZP_POOL", "AZP_TOKEN", "buildkit", "java", "LOG_DIR", "AZP_WORK"],
    );
    assert.equal(envValue(pod, "AZP_URL"), "https://dev.azure.com/org");
    assert.equal(envValue(pod, "java"), "17");
    assert.equal(
      env(pod).find((e) => e.name === "AZP_TOKEN")?.value,
      undefined,
      "the token comes from the Secret, never as a value",
    );
    assert.equal(warnings.length, 4, warnings.join("\n"));
    assert.ok(warnings.some((w) => /sets AZP_URL .* operator's value is used/.test(w)));
    assert.ok(warnings.some((w) => /sets AZP_TOKEN/.test(w)));
    assert.ok(warnings.some((w) => /sets BUILDKIT .* capability buildkit; the capability's value is used/.test(w)));
    assert.ok(warnings.some((w) => /sets java .* capability java/.test(w)));
    assert.ok(!warnings.some((w) => /sets buildkit /.test(w)), "the same name and value is no conflict");
  });

  const bad: [string, Record<string, string>, RegExp][] = [
    ["a name with =", { "a=b": "1" }, /cannot be an environment variable/],
    ["an empty name", { "": "1" }, /cannot be an environment variable/],
    ["a non-ASCII name", { größe: "1" }, /cannot be an environment variable/],
    ["an operator name", { AZP_POOL: "other" }, /would replace the environment variable AZP_POOL/],
    ["an operator name in another case", { azp_token: "x" }, /would replace the environment variable AZP_TOKEN/],
  ];
  for (const [title, caps, message] of bad) {
    test(`a capability with ${title} cannot be built`, () => {
      const r = buildAgentPod(input({ agentCapabilities: caps }));
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.reason, "InvalidCapability");
        assert.match(r.message, message);
      }
    });
  }

  test("env helpers", () => {
    assert.equal(literalEnvValue("a$b$$c$(D)"), "a$$b$$$$c$$(D)");
    assert.equal(isEnvVarName("Agent.Name with space"), true);
    assert.equal(isEnvVarName("a=b"), false);
    assert.equal(isEnvVarName(""), false);
    assert.equal(isEnvVarName("tab\t"), false);
  });
});

describe("buildAgentPod: credentials", () => {
  test("Entra ID with a PAT Secret: the agent still registers with the PAT", () => {
    const { pod } = build({
      resource: resource({
        entraIdAuthentication: {
          tenantId: "t",
          clientId: "00000000-0000-0000-0000-000000000000",
          clientSecretRef: { name: "sp" },
        },
      }),
    });
    assert.deepEqual(env(pod)[3], {
      name: "AZP_TOKEN",
      valueFrom: { secretKeyRef: { name: "azure-pat", key: "pat" } },
    });
    assert.ok(!env(pod).some((e) => e.name.startsWith("VSTS_AGENT_INPUT_")));
  });

  test("Entra ID service principal without a PAT: the agent's unattended SP inputs, the secret by reference", () => {
    const t = template();
    const [agent, ...rest] = must(t.podTemplateSpec.spec).containers;
    const { pod, warnings } = build({
      resource: resource({
        personalAccessTokenSecretName: undefined,
        entraIdAuthentication: {
          tenantId: "contoso.onmicrosoft.com",
          clientId: "11111111-2222-3333-4444-555555555555",
          clientSecretRef: { name: "sp-secret", key: "secret" },
        },
      }),
      template: {
        ...t,
        podTemplateSpec: {
          spec: {
            ...must(t.podTemplateSpec.spec),
            containers: [{ ...must(agent), env: [{ name: "VSO_AGENT_IGNORE", value: "MY_SECRET" }] }, ...rest],
          },
        },
      },
    });
    assert.deepEqual(warnings, []);
    assert.deepEqual(env(pod).slice(3, 8), [
      { name: "VSTS_AGENT_INPUT_AUTH", value: "SP" },
      { name: "VSTS_AGENT_INPUT_CLIENTID", value: "11111111-2222-3333-4444-555555555555" },
      { name: "VSTS_AGENT_INPUT_TENANTID", value: "contoso.onmicrosoft.com" },
      { name: "VSTS_AGENT_INPUT_CLIENTSECRET", valueFrom: { secretKeyRef: { name: "sp-secret", key: "secret" } } },
      { name: "VSO_AGENT_IGNORE", value: "MY_SECRET,VSTS_AGENT_INPUT_CLIENTSECRET" },
    ]);
    assert.equal(env(pod).filter((e) => e.name === "VSO_AGENT_IGNORE").length, 1);
    assert.ok(!env(pod).some((e) => e.name === "AZP_TOKEN"));
    assert.deepEqual(schemaErrors(pod), []);
  });

  test("Entra ID service principal: the secret key defaults to clientSecret", () => {
    const { pod } = build({
      resource: resource({
        personalAccessTokenSecretName: undefined,
        entraIdAuthentication: { tenantId: "t", clientId: "c", clientSecretRef: { name: "sp" } },
      }),
    });
    assert.deepEqual(env(pod).find((e) => e.name === "VSTS_AGENT_INPUT_CLIENTSECRET")?.valueFrom, {
      secretKeyRef: { name: "sp", key: "clientSecret" },
    });
  });

  test("workload identity without a PAT: pod identity, and a warning that the image must get its token", () => {
    const { pod, warnings } = build({
      resource: resource({
        personalAccessTokenSecretName: undefined,
        entraIdAuthentication: { tenantId: "t", clientId: "c", workloadIdentity: { serviceAccountName: "agent-sa" } },
      }),
    });
    assert.equal(pod.spec.serviceAccountName, "agent-sa");
    assert.equal(pod.metadata.labels["azure.workload.identity/use"], "true");
    assert.ok(!env(pod).some((e) => e.name === "AZP_TOKEN"));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /must exchange the federated token itself/);
  });

  test("no credential at all cannot be built", () => {
    const r = buildAgentPod(input({ resource: resource({ personalAccessTokenSecretName: undefined }) }));
    assert.equal(r.ok ? "ok" : r.reason, "NoAgentCredentials");
  });
});

describe("buildAgentPod: labels and annotations", () => {
  test("template metadata, then podLabels/podAnnotations, then the operator's", () => {
    const t = template({
      podLabels: { team: "b", tier: "ci" },
      podAnnotations: { note: "y", [K.annotations.createdFor]: "999" },
    });
    const { pod, warnings } = build({ template: t, forRequestIds: [7, 8], templateIndex: 2 });
    assert.deepEqual(pod.metadata.labels, {
      team: "b",
      tier: "ci",
      [K.labels.managedBy]: "azure-pipelines-k8s-agent-scaler",
      [K.labels.resource]: "agents",
      [K.labels.template]: capabilitySetKey({ buildkit: "1" }),
    });
    assert.deepEqual(pod.metadata.annotations, {
      note: "y",
      [K.annotations.capabilities]: '{"buildkit":"1"}',
      [K.annotations.createdFor]: "7,8",
      [K.annotations.templateIndex]: "2",
    });
    assert.deepEqual(warnings, [
      `annotation ${K.annotations.createdFor} belongs to the operator; the template's value is not used`,
    ]);
  });

  test("a warm pod: empty created-for annotation", () => {
    const { pod } = build();
    assert.equal(pod.metadata.annotations[K.annotations.createdFor], "");
  });

  test("extra containers: key label and raw value annotation", () => {
    const value = "c,img,250m";
    const e = extra(value);
    const { pod } = build({ extraAgentContainers: e });
    assert.equal(pod.metadata.labels[K.labels.extraAgentContainers], e.key);
    assert.equal(pod.metadata.annotations[K.annotations.extraAgentContainers], value);
  });

  test("a plain pod never carries the operator's ExtraAgentContainers keys, even from the template", () => {
    const t = template({
      podLabels: { [K.labels.extraAgentContainers]: "x", [K.labels.managedBy]: "helm" },
      podAnnotations: { [K.annotations.extraAgentContainers]: "c,img" },
    });
    const { pod, warnings } = build({ template: t });
    assert.equal(K.labels.extraAgentContainers in pod.metadata.labels, false);
    assert.equal(K.annotations.extraAgentContainers in pod.metadata.annotations, false);
    assert.equal(pod.metadata.labels[K.labels.managedBy], "azure-pipelines-k8s-agent-scaler");
    assert.equal(warnings.length, 3, warnings.join("\n"));
  });

  test("a given template key is used", () => {
    const { pod } = build({ templateKey: "k1" });
    assert.equal(pod.metadata.labels[K.labels.template], "k1");
  });

  test("finalizers of the template metadata are kept", () => {
    const t = template();
    const { pod } = build({
      template: { ...t, podTemplateSpec: { ...t.podTemplateSpec, metadata: { finalizers: ["example.com/keep"] } } },
    });
    assert.deepEqual(pod.metadata.finalizers, ["example.com/keep"]);
  });

  test("capability annotation is canonical JSON", () => {
    assert.equal(capabilitiesAnnotation({ b: "2", a: "1", B: "3" }), '{"B":"3","a":"1","b":"2"}');
  });

  test("label values: valid names as they are, long ones cut with a hash", () => {
    assert.equal(labelValue("agents"), "agents");
    const long = `${"a".repeat(70)}.example`;
    const v = labelValue(long);
    assert.ok(v.length <= 63, v);
    assert.match(v, /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/);
    assert.notEqual(labelValue(`${"a".repeat(70)}.other`), v);
    const { pod } = build({ resource: { ...resource(), metadata: { name: long, namespace: "ci", uid: "u" } } });
    assert.equal(pod.metadata.labels[K.labels.resource], v);
    assert.equal(pod.metadata.ownerReferences[0]?.name, long);
  });
});

describe("buildAgentPod: cache volumes", () => {
  function mountingCache(defineVolume: boolean): AgentPodTemplate {
    const t = template();
    const spec = must(t.podTemplateSpec.spec);
    const [agent, buildkit] = spec.containers;
    return {
      ...t,
      podTemplateSpec: {
        spec: {
          ...spec,
          containers: [
            must(agent),
            {
              ...must(buildkit),
              volumeMounts: [...(must(buildkit).volumeMounts ?? []), { name: "cache", mountPath: "/c" }],
            },
          ],
          volumes: [...(spec.volumes ?? []), ...(defineVolume ? [{ name: "cache", emptyDir: {} }] : [])],
        },
      },
    };
  }
  const withCache = resource({ reusableCacheVolumes: [{ name: "cache", requestedStorage: "1Gi" }] });

  test("a mounted cache volume gets its claim as a volume", () => {
    const { pod, warnings } = build({
      resource: withCache,
      template: mountingCache(false),
      cacheVolumes: { cache: "agents-pvc-1" },
    });
    assert.deepEqual(pod.spec.volumes, [
      { name: "workspace", emptyDir: {} },
      { name: "cache", persistentVolumeClaim: { claimName: "agents-pvc-1" } },
    ]);
    assert.deepEqual(warnings, []);
    assert.deepEqual(schemaErrors(pod), []);
  });

  test("a template volume of that name is replaced, with a warning", () => {
    const { pod, warnings } = build({
      resource: withCache,
      template: mountingCache(true),
      cacheVolumes: { cache: "agents-pvc-1" },
    });
    assert.deepEqual(pod.spec.volumes, [
      { name: "workspace", emptyDir: {} },
      { name: "cache", persistentVolumeClaim: { claimName: "agents-pvc-1" } },
    ]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /defines volume cache, which is a reusable cache volume/);
  });

  test("a mounted cache volume without a claim cannot be built", () => {
    const r = buildAgentPod(input({ resource: withCache, template: mountingCache(false) }));
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.reason, "CacheVolumeNotAssigned");
      assert.match(r.message, /cache volume\(s\) cache/);
    }
  });

  test("a mount of a volume the template does not define cannot be built", () => {
    const r = buildAgentPod(input({ template: mountingCache(false) }));
    assert.equal(r.ok ? "ok" : r.reason, "InvalidPodTemplate");
    if (!r.ok) assert.match(r.message, /container buildkit mounts volume cache/);
  });
});

describe("buildAgentPod: extra containers", () => {
  test("appended after the template's containers, sharing every mount of the agent", () => {
    const { pod, warnings } = build({
      extraAgentContainers: extra("name=c,image=tool:1,cpu=250m,memory=64Mi||d,other:2"),
    });
    assert.deepEqual(
      pod.spec.containers.map((c) => c.name),
      ["agent", "buildkit", "c", "d"],
    );
    assert.deepEqual(pod.spec.containers[2], {
      name: "c",
      image: "tool:1",
      resources: { requests: { cpu: "250m", memory: "64Mi" }, limits: { cpu: "250m", memory: "64Mi" } },
      volumeMounts: [{ name: "workspace", mountPath: "/azp/_work" }],
    });
    assert.deepEqual(pod.spec.containers[3], {
      name: "d",
      image: "other:2",
      volumeMounts: [{ name: "workspace", mountPath: "/azp/_work" }],
    });
    assert.deepEqual(warnings, []);
    assert.deepEqual(schemaErrors(pod), []);
  });

  test("an agent without mounts: a warning", () => {
    const { warnings } = build({
      template: template({ podTemplateSpec: { spec: { containers: [{ name: "agent", image: "a" }] } } }),
      extraAgentContainers: extra("c,img"),
    });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /share no workspace/);
  });

  test("they run under the agent container's security context (a copy), never a looser one", () => {
    const hardened = {
      runAsNonRoot: true,
      runAsUser: 1000,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    };
    const t = template();
    const spec = must(t.podTemplateSpec.spec);
    const [agent, sidecar] = spec.containers;
    const withContext: AgentPodTemplate = {
      ...t,
      podTemplateSpec: {
        ...t.podTemplateSpec,
        spec: {
          ...spec,
          securityContext: { fsGroup: 1000 },
          containers: [{ ...must(agent), securityContext: hardened }, must(sidecar)],
        },
      },
    };
    const { pod } = build({ template: withContext, extraAgentContainers: extra("c,tool:1||d,other:2") });
    for (const name of ["c", "d"]) {
      const c = pod.spec.containers.find((x) => x.name === name);
      assert.deepEqual(c?.securityContext, hardened, name);
      assert.notEqual(c?.securityContext, pod.spec.containers[0]?.securityContext, "a copy, not a shared object");
    }
    assert.deepEqual(pod.spec.securityContext, { fsGroup: 1000 }, "the pod's own context applies to all");
    assert.equal(
      pod.spec.containers.find((x) => x.name === "buildkit")?.securityContext,
      undefined,
      "sidecars as written",
    );
    assert.deepEqual(schemaErrors(pod), []);
  });

  test("an agent container without a security context: the extra containers get none either", () => {
    const { pod } = build({ extraAgentContainers: extra("c,tool:1") });
    assert.equal(pod.spec.containers.find((x) => x.name === "c")?.securityContext, undefined);
  });

  test("a name clashing with the template cannot be built", () => {
    const r = buildAgentPod(input({ extraAgentContainers: extra("buildkit,img") }));
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.reason, "InvalidExtraAgentContainers");
      assert.match(r.message, /already has a container named "buildkit"/);
    }
  });
});

describe("buildAgentPod: native sidecars", () => {
  const sample = parse(
    readFileSync(new URL("../../config/samples/v1_autoscaledagent_native_sidecar.yaml", import.meta.url), "utf8"),
  );
  const v = validateAutoScaledAgent(sample);
  if (!v.ok) throw new Error(v.errors.join("; "));
  const agent = v.value as DefaultedAutoScaledAgent;

  test("init containers (native sidecars) are left as they are", () => {
    const t = must(agent.spec.podsWithCapabilities[0]);
    const { pod, warnings } = build({ template: t, extraAgentContainers: extra("c,img") });
    assert.deepEqual(pod.spec.initContainers, t.podTemplateSpec.spec?.initContainers);
    assert.equal(pod.spec.initContainers?.[0]?.restartPolicy, "Always");
    assert.deepEqual(
      pod.spec.containers.map((c) => c.name),
      ["azure-pipelines-agent", "c"],
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(schemaErrors(pod), []);
  });

  test("an extra container may not take a native sidecar's name", () => {
    const t = must(agent.spec.podsWithCapabilities[0]);
    const r = buildAgentPod(input({ template: t, extraAgentContainers: extra("docker,img") }));
    assert.equal(r.ok ? "ok" : r.reason, "InvalidExtraAgentContainers");
  });
});

describe("buildPodForCreate: the compat sample", () => {
  const sample = parse(readFileSync(new URL("../../config/samples/v1_autoscaledagent.yaml", import.meta.url), "utf8"));
  sample.metadata.namespace = "ci";
  sample.metadata.uid = "0f0f0f0f-0000-0000-0000-000000000001";
  const v = validateAutoScaledAgent(sample, { unknownFields: "error" });
  if (!v.ok) throw new Error(v.errors.join("; "));
  const asa = v.value as DefaultedAutoScaledAgent & { metadata: { name: string; namespace: string; uid: string } };
  const t0 = must(asa.spec.podsWithCapabilities[0]);
  const create = (extraAgentContainers: string | null, forRequestIds: number[] = [42]) => ({
    templateIndex: 0,
    extraAgentContainers,
    agentCapabilities: agentCapabilities(
      { capabilities: t0.capabilities, minCount: t0.minCount, maxCount: t0.maxCount },
      extraAgentContainers,
    ),
    forRequestIds,
  });

  test("builds a valid pod from the sample's template", () => {
    const r = buildPodForCreate({
      resource: asa,
      create: create(null),
      podName: "autoscaledagent-sample-x1y2z",
      cacheVolumes: { "buildkit-cache": "autoscaledagent-sample-k3j4h" },
    });
    const { pod, warnings } = built(r);
    assert.deepEqual(warnings, []);
    assert.deepEqual(schemaErrors(pod), []);
    assert.equal(pod.spec.restartPolicy, "Never");
    assert.equal(pod.spec.terminationGracePeriodSeconds, 1200);
    assert.deepEqual(
      pod.spec.containers.map((c) => c.name),
      ["azure-pipelines-agent", "buildkit"],
    );
    assert.deepEqual(env(pod), [
      { name: "AZP_AGENT_NAME", value: "autoscaledagent-sample-x1y2z" },
      { name: "AZP_URL", value: "https://dev.azure.com/FOO" },
      { name: "AZP_POOL", value: "shark-marius-operator-test" },
      { name: "AZP_TOKEN", valueFrom: { secretKeyRef: { name: "azure-pat", key: "pat" } } },
      { name: "buildkit", value: "1" },
    ]);
    assert.deepEqual(pod.spec.volumes, [
      { name: "workspace", emptyDir: {} },
      { name: "buildkit-cache", persistentVolumeClaim: { claimName: "autoscaledagent-sample-k3j4h" } },
    ]);
    assert.equal(pod.metadata.annotations.foo, "bar");
    assert.equal(pod.metadata.annotations[K.annotations.createdFor], "42");
    assert.equal(pod.metadata.labels[K.labels.template], capabilitySetKey({ buildkit: "1" }));
    assert.equal(pod.metadata.ownerReferences[0]?.uid, "0f0f0f0f-0000-0000-0000-000000000001");
  });

  test("with ExtraAgentContainers: valid, sharing the workspace, advertising the value", () => {
    const value = "name=node,image=docker.io/library/node:22,cpu=500m,memory=256Mi";
    const { pod } = built(
      buildPodForCreate({
        resource: asa,
        create: create(value),
        podName: "autoscaledagent-sample-abcde",
        cacheVolumes: { "buildkit-cache": "pvc-1" },
      }),
    );
    assert.deepEqual(schemaErrors(pod), []);
    assert.deepEqual(pod.spec.containers[2]?.volumeMounts, [{ name: "workspace", mountPath: "/azp/_work" }]);
    assert.equal(envValue(pod, "ExtraAgentContainers"), value);
    assert.equal(pod.metadata.annotations[K.annotations.extraAgentContainers], value);
  });

  test("without the cache claim: CacheVolumeNotAssigned", () => {
    const r = buildPodForCreate({ resource: asa, create: create(null), podName: "autoscaledagent-sample-abcde" });
    assert.equal(r.ok ? "ok" : r.reason, "CacheVolumeNotAssigned");
  });

  test("a malformed value: InvalidExtraAgentContainers naming the job and the problem", () => {
    const r = buildPodForCreate({
      resource: asa,
      create: create("name=x,image=img,cpu=lots"),
      podName: "p",
      cacheVolumes: { "buildkit-cache": "pvc-1" },
    });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.reason, "InvalidExtraAgentContainers");
    assert.match(
      r.message,
      /^job request 42: ExtraAgentContainers ".*" is invalid: entry 1 \(container "x"\): cpu "lots"/,
    );
  });

  test("a name clashing with the sample's buildkit container: InvalidExtraAgentContainers", () => {
    const r = buildPodForCreate({
      resource: asa,
      create: create("buildkit,moby/buildkit:latest"),
      podName: "p",
      cacheVolumes: { "buildkit-cache": "pvc-1" },
    });
    assert.equal(r.ok ? "ok" : r.reason, "InvalidExtraAgentContainers");
    if (!r.ok) assert.match(r.message, /already has a container named "buildkit"/);
  });

  test("outside the policy: ExtraAgentContainersRefused naming the container and the limit", () => {
    const withPolicy = {
      ...asa,
      spec: {
        ...asa.spec,
        extraAgentContainers: { allowedImages: ["registry.example.com/**"], maxMemoryPerContainer: "128Mi" },
      },
    };
    const r = buildPodForCreate({
      resource: withPolicy,
      create: create("name=node,image=node:22,memory=256Mi"),
      podName: "p",
      cacheVolumes: { "buildkit-cache": "pvc-1" },
    });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.reason, "ExtraAgentContainersRefused");
    assert.match(r.message, /container "node": image "node:22" matches none of/);
    assert.match(r.message, /container "node": memory 256Mi is above the maximum 128Mi/);
  });

  test("the operator's default policy judges resources that set none", () => {
    const defaults = { defaultExtraAgentContainersPolicy: { allowedImages: ["registry.example.com/**"] } };
    const refused = buildPodForCreate(
      {
        resource: asa,
        create: create("name=node,image=node:22"),
        podName: "p",
        cacheVolumes: { "buildkit-cache": "pvc-1" },
      },
      defaults,
    );
    assert.equal(refused.ok ? "ok" : refused.reason, "ExtraAgentContainersRefused");
    if (!refused.ok) {
      assert.match(refused.message, /is refused by the operator's default policy/);
      assert.match(refused.message, /allowedImages of the operator's --extra-agent-containers-policy/);
    }
    const allowed = buildPodForCreate(
      {
        resource: asa,
        create: create("name=node,image=registry.example.com/node:22"),
        podName: "p",
        cacheVolumes: { "buildkit-cache": "pvc-1" },
      },
      defaults,
    );
    assert.equal(allowed.ok, true);
    // A resource's own policy (even an empty one) replaces the default.
    const own = { ...asa, spec: { ...asa.spec, extraAgentContainers: {} } };
    const r = buildPodForCreate(
      {
        resource: own,
        create: create("name=node,image=node:22"),
        podName: "p",
        cacheVolumes: { "buildkit-cache": "pvc-1" },
      },
      defaults,
    );
    assert.equal(r.ok, true);
  });

  test("an unknown template index", () => {
    const r = buildPodForCreate({ resource: asa, create: { ...create(null), templateIndex: 3 }, podName: "p" });
    assert.equal(r.ok ? "ok" : r.reason, "UnknownTemplate");
  });
});
