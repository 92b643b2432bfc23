/**
 * The agent pod: a complete core/v1 Pod from the resource, one of its templates, the pod name, the
 * extra containers a job asked for, the cache-volume claims and the job requests the pod is for.
 *
 * Pure: no I/O, no clock, inputs are never changed (the template is deep-copied). The result says why a pod cannot
 * be built, and lists the adjustments made to the template as warnings (for events). See README.md in this folder.
 */
import { createHash } from "node:crypto";
import {
  API_VERSION,
  type AutoScaledAgentSpec,
  type Container,
  type EnvVar,
  type ExtraAgentContainersPolicy,
  KIND,
  MANAGED_BY_VALUE,
  PAT_SECRET_KEY,
  type PodSpec,
  type PodTemplateSpec,
  podAnnotations,
  labels as podLabels,
  type Volume,
} from "../api/v1/index.ts";
import { EXTRA_AGENT_CONTAINERS_CAPABILITY, sameCapabilityName } from "../azure-devops/demands.ts";
import { compareStrings } from "../runtime/compare.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import type { PodCreate } from "../scaling/types.ts";
import {
  describeExtraAgentContainersProblems,
  effectiveExtraAgentContainersPolicy,
  evaluateExtraAgentContainers,
  extraContainerSpecs,
  type ParsedExtraAgentContainers,
  templateContainerNames,
} from "./extra-containers.ts";

// ---------------------------------------------------------------------------------------------------------------
// Environment

/** Environment variables the operator sets on the agent container (the template cannot override them). */
export const AGENT_ENV = {
  name: "AZP_AGENT_NAME",
  url: "AZP_URL",
  pool: "AZP_POOL",
  token: "AZP_TOKEN",
} as const;

/**
 * Service-principal registration (Entra ID with a client secret and no PAT): the agent's own unattended inputs,
 * read by `config.sh --unattended` (agent 3.227.1 or later).
 */
export const SERVICE_PRINCIPAL_ENV = {
  auth: "VSTS_AGENT_INPUT_AUTH",
  clientId: "VSTS_AGENT_INPUT_CLIENTID",
  tenantId: "VSTS_AGENT_INPUT_TENANTID",
  clientSecret: "VSTS_AGENT_INPUT_CLIENTSECRET",
  /** Names the agent must not advertise as capabilities. */
  ignore: "VSO_AGENT_IGNORE",
} as const;

/** The label Azure Workload Identity's webhook looks for. */
export const WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use";

/**
 * Kubernetes expands `$(NAME)` in env values and turns `$$` into `$`. Doubling every `$` makes any value literal,
 * so a capability value like `$(HOME)` reaches the agent unchanged.
 */
export function literalEnvValue(value: string): string {
  return value.replaceAll("$", () => "$$");
}

/** Environment variable names as the API server accepts them: printable ASCII except `=`, not empty. */
export function isEnvVarName(name: string): boolean {
  return /^[\x20-\x3c\x3e-\x7e]+$/.test(name);
}

// ---------------------------------------------------------------------------------------------------------------
// Labels

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * A label value for a text: the text itself when it is a valid label value (at most 63 characters), else a cut
 * prefix and a hash of the whole, so that long resource names still select their pods.
 */
export function labelValue(text: string): string {
  if (text.length <= 63 && LABEL_VALUE.test(text)) return text;
  const hash = createHash("sha256").update(text, "utf8").digest("hex").slice(0, 10);
  const head = text
    .slice(0, 52)
    .replace(/[^-A-Za-z0-9_.]/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .replace(/[^A-Za-z0-9]+$/, "");
  return head === "" ? hash : `${head}-${hash}`;
}

/** Canonical JSON of a capability set: an object with its names in code-unit order. */
export function capabilitiesAnnotation(capabilities: Readonly<Record<string, string>>): string {
  const sorted: Record<string, string> = {};
  for (const name of Object.keys(capabilities).sort(compareStrings)) {
    sorted[name] = capabilities[name] as string;
  }
  return JSON.stringify(sorted);
}

// ---------------------------------------------------------------------------------------------------------------
// Input and output

/** The parts of an AutoScaledAgent the pod is built from. */
export interface AgentPodResource {
  readonly metadata: { readonly name: string; readonly namespace: string; readonly uid: string };
  readonly spec: Pick<
    AutoScaledAgentSpec,
    | "poolName"
    | "organizationUrl"
    | "personalAccessTokenSecretName"
    | "entraIdAuthentication"
    | "reusableCacheVolumes"
    | "extraAgentContainers"
  >;
}

/** One entry of `podsWithCapabilities`. */
export interface AgentPodTemplate {
  readonly capabilities?: Readonly<Record<string, string>>;
  readonly podLabels?: Readonly<Record<string, string>>;
  readonly podAnnotations?: Readonly<Record<string, string>>;
  readonly podTemplateSpec: PodTemplateSpec;
}

export interface BuildAgentPodInput {
  readonly resource: AgentPodResource;
  readonly template: AgentPodTemplate;
  /** Position of the template in `podsWithCapabilities` (an annotation, for people). */
  readonly templateIndex: number;
  /** Label value identifying the template; default `capabilitySetKey(template.capabilities)`. */
  readonly templateKey?: string;
  readonly podName: string;
  /**
   * Capabilities the agent advertises (`PodCreate.agentCapabilities`); default the template's. When extra
   * containers are given, `ExtraAgentContainers` is set to their value whatever this says.
   */
  readonly agentCapabilities?: Readonly<Record<string, string>>;
  /** A valid ExtraAgentContainers value (see `evaluateExtraAgentContainers`), or nothing. */
  readonly extraAgentContainers?: ParsedExtraAgentContainers | null;
  /** Cache volume name -> PersistentVolumeClaim name, for the cache volumes this pod mounts. */
  readonly cacheVolumes?: Readonly<Record<string, string>>;
  /** Job request ids the pod is created for (empty for a warm pod). */
  readonly forRequestIds?: readonly number[];
}

export interface PodMetadata {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  ownerReferences: {
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller: boolean;
    blockOwnerDeletion: boolean;
  }[];
  finalizers?: string[];
}

/** A core/v1 Pod as sent to the API server. */
export interface Pod {
  apiVersion: "v1";
  kind: "Pod";
  metadata: PodMetadata;
  spec: PodSpec;
}

export type BuildFailureReason =
  /** The template has no container, or mounts a volume it does not define. */
  | "InvalidPodTemplate"
  /** A cache volume the template mounts has no claim in `cacheVolumes`. */
  | "CacheVolumeNotAssigned"
  /** A capability cannot become an environment variable, or takes a name the operator sets. */
  | "InvalidCapability"
  /** The resource names no credential the agent could register with. */
  | "NoAgentCredentials"
  /** The ExtraAgentContainers value is malformed or clashes with the template. */
  | "InvalidExtraAgentContainers"
  /** The ExtraAgentContainers value is outside the resource's policy. */
  | "ExtraAgentContainersRefused"
  /** `PodCreate.templateIndex` is not an entry of the resource. */
  | "UnknownTemplate";

export type BuildAgentPodResult =
  | { readonly ok: true; readonly pod: Pod; readonly warnings: string[] }
  | { readonly ok: false; readonly reason: BuildFailureReason; readonly message: string };

const fail = (reason: BuildFailureReason, message: string): BuildAgentPodResult => ({ ok: false, reason, message });

// ---------------------------------------------------------------------------------------------------------------
// Building

interface Credentials {
  readonly env: EnvVar[];
  /** Env names the agent must not report as capabilities. */
  readonly ignore: string[];
  readonly workloadIdentity?: { readonly serviceAccountName?: string };
}

function agentCredentials(spec: AgentPodResource["spec"]): Credentials | string {
  if (spec.personalAccessTokenSecretName) {
    return {
      env: [
        {
          name: AGENT_ENV.token,
          valueFrom: { secretKeyRef: { name: spec.personalAccessTokenSecretName, key: PAT_SECRET_KEY } },
        },
      ],
      ignore: [],
    };
  }
  const entra = spec.entraIdAuthentication;
  if (entra?.clientSecretRef) {
    return {
      env: [
        { name: SERVICE_PRINCIPAL_ENV.auth, value: "SP" },
        { name: SERVICE_PRINCIPAL_ENV.clientId, value: literalEnvValue(entra.clientId) },
        { name: SERVICE_PRINCIPAL_ENV.tenantId, value: literalEnvValue(entra.tenantId) },
        {
          name: SERVICE_PRINCIPAL_ENV.clientSecret,
          valueFrom: {
            secretKeyRef: { name: entra.clientSecretRef.name, key: entra.clientSecretRef.key ?? "clientSecret" },
          },
        },
      ],
      ignore: [SERVICE_PRINCIPAL_ENV.clientSecret],
    };
  }
  if (entra?.workloadIdentity) {
    const sa = entra.workloadIdentity.serviceAccountName;
    return { env: [], ignore: [], workloadIdentity: sa === undefined ? {} : { serviceAccountName: sa } };
  }
  return "the resource sets neither personalAccessTokenSecretName nor entraIdAuthentication, so the agent has no credential to register with";
}

function volumeMountsOf(c: Container): string[] {
  return (c.volumeMounts ?? []).map((m) => m.name);
}

/** Builds the agent pod. See the module comment and README.md. */
export function buildAgentPod(input: BuildAgentPodInput): BuildAgentPodResult {
  const warnings: string[] = [];
  const { resource, template, podName } = input;
  const templateSpec = template.podTemplateSpec.spec;
  if (templateSpec === undefined || !Array.isArray(templateSpec.containers) || templateSpec.containers.length === 0) {
    return fail(
      "InvalidPodTemplate",
      `podsWithCapabilities[${input.templateIndex}].podTemplateSpec has no container (the first runs the agent)`,
    );
  }
  const spec = structuredClone(templateSpec) as PodSpec;
  const [agentTemplate, ...sidecars] = spec.containers as [Container, ...Container[]];

  // Extra containers: their names must not clash with the template's (the caller may have checked already).
  const extra = input.extraAgentContainers ?? null;
  if (extra !== null) {
    const reserved = new Set(templateContainerNames(spec));
    const clashes = extra.containers.filter((c) => reserved.has(c.name));
    if (clashes.length > 0) {
      return fail(
        "InvalidExtraAgentContainers",
        describeExtraAgentContainersProblems(
          extra.value,
          "invalid",
          clashes.map((c) => ({ message: `the pod template already has a container named ${JSON.stringify(c.name)}` })),
        ),
      );
    }
  }

  // Capabilities the agent advertises.
  const capabilities: Record<string, string> = { ...(input.agentCapabilities ?? template.capabilities ?? {}) };
  if (extra !== null) {
    for (const name of Object.keys(capabilities)) {
      if (sameCapabilityName(name, EXTRA_AGENT_CONTAINERS_CAPABILITY)) delete capabilities[name];
    }
    capabilities[EXTRA_AGENT_CONTAINERS_CAPABILITY] = extra.value;
  }

  const credentials = agentCredentials(resource.spec);
  if (typeof credentials === "string") return fail("NoAgentCredentials", credentials);

  // Agent environment: the operator's variables first (so template values may refer to them as $(AZP_AGENT_NAME)),
  // then the capabilities, then the template's own variables minus those the operator sets.
  const operatorEnv: EnvVar[] = [
    { name: AGENT_ENV.name, value: literalEnvValue(podName) },
    { name: AGENT_ENV.url, value: literalEnvValue(resource.spec.organizationUrl) },
    { name: AGENT_ENV.pool, value: literalEnvValue(resource.spec.poolName) },
    ...credentials.env,
  ];
  const operatorNames = new Set(operatorEnv.map((e) => e.name));
  const capabilityNames = Object.keys(capabilities).sort(compareStrings);
  for (const name of capabilityNames) {
    if (!isEnvVarName(name)) {
      return fail(
        "InvalidCapability",
        `capability ${JSON.stringify(name)} cannot be an environment variable of the agent container (names are printable ASCII without "=")`,
      );
    }
    const taken = [...operatorNames, SERVICE_PRINCIPAL_ENV.ignore].find((n) => sameCapabilityName(n, name));
    if (taken !== undefined) {
      return fail(
        "InvalidCapability",
        `capability ${JSON.stringify(name)} would replace the environment variable ${taken} that the operator sets for the agent`,
      );
    }
  }
  const capabilityEnv: EnvVar[] = capabilityNames.map((name) => ({
    name,
    value: literalEnvValue(capabilities[name] as string),
  }));

  const templateEnv: EnvVar[] = [];
  for (const e of agentTemplate.env ?? []) {
    if (operatorNames.has(e.name)) {
      warnings.push(
        `the template sets ${e.name} on the agent container; the operator's value is used (it sets ${e.name} itself)`,
      );
      continue;
    }
    const capability = capabilityNames.find((n) => sameCapabilityName(n, e.name));
    if (capability !== undefined) {
      const same = capability === e.name && e.valueFrom === undefined && e.value === capabilities[capability];
      if (!same) {
        warnings.push(
          `the template sets ${e.name} on the agent container, which is also the capability ${capability}; the capability's value is used, as the job was matched on it`,
        );
      }
      continue;
    }
    if (e.name === SERVICE_PRINCIPAL_ENV.ignore && credentials.ignore.length > 0) {
      if (e.value === undefined) {
        warnings.push(
          `the template sets ${e.name} from a source; it is replaced so the agent does not advertise ${credentials.ignore.join(", ")}`,
        );
      }
      continue;
    }
    templateEnv.push(e);
  }
  const ignoreEnv: EnvVar[] = [];
  if (credentials.ignore.length > 0) {
    const own = (agentTemplate.env ?? []).find((e) => e.name === SERVICE_PRINCIPAL_ENV.ignore)?.value;
    const names = [...(own ?? "").split(","), ...credentials.ignore].map((s) => s.trim()).filter(Boolean);
    ignoreEnv.push({ name: SERVICE_PRINCIPAL_ENV.ignore, value: [...new Set(names)].join(",") });
  }
  const agent: Container = { ...agentTemplate, env: [...operatorEnv, ...ignoreEnv, ...capabilityEnv, ...templateEnv] };

  // Extra containers share every volume the agent mounts, and run under the agent container's security context.
  const extraContainers = extra === null ? [] : extraContainerSpecs(extra.containers, agent);
  if (extraContainers.length > 0 && (agent.volumeMounts ?? []).length === 0) {
    warnings.push(
      "the agent container mounts no volume, so the extra containers share no workspace with it (mount the workspace volume in the agent container)",
    );
  }
  spec.containers = [agent, ...sidecars, ...extraContainers];

  // restartPolicy Never: the agent runs one job (--once) and the pod is done.
  if (spec.restartPolicy !== undefined && spec.restartPolicy !== "Never") {
    warnings.push(
      `the template's restartPolicy ${spec.restartPolicy} is replaced by Never (an agent pod runs one job and ends)`,
    );
  }
  spec.restartPolicy = "Never";

  // Cache volumes: the claim replaces a template volume of the same name, or is added.
  const volumes: Volume[] = [...(spec.volumes ?? [])];
  for (const [volumeName, claimName] of Object.entries(input.cacheVolumes ?? {})) {
    const volume: Volume = { name: volumeName, persistentVolumeClaim: { claimName } };
    const at = volumes.findIndex((v) => v.name === volumeName);
    if (at >= 0) {
      warnings.push(
        `the template defines volume ${volumeName}, which is a reusable cache volume; it is replaced by PersistentVolumeClaim ${claimName}`,
      );
      volumes[at] = volume;
    } else {
      volumes.push(volume);
    }
  }
  if (volumes.length > 0) spec.volumes = volumes;

  // Every mount must name a volume of the pod; for cache volumes, that means a claim was assigned.
  const defined = new Set(volumes.map((v) => v.name));
  const cacheNames = new Set((resource.spec.reusableCacheVolumes ?? []).map((v) => v.name));
  const allContainers = [...spec.containers, ...(spec.initContainers ?? [])];
  const unassigned = new Set<string>();
  const undefinedMounts: string[] = [];
  for (const c of allContainers) {
    for (const name of volumeMountsOf(c)) {
      if (defined.has(name)) continue;
      if (cacheNames.has(name)) unassigned.add(name);
      else undefinedMounts.push(`container ${c.name} mounts volume ${name}`);
    }
  }
  if (unassigned.size > 0) {
    return fail(
      "CacheVolumeNotAssigned",
      `pod ${podName} mounts the reusable cache volume(s) ${[...unassigned].join(", ")}, but no PersistentVolumeClaim was assigned`,
    );
  }
  if (undefinedMounts.length > 0) {
    return fail(
      "InvalidPodTemplate",
      `podsWithCapabilities[${input.templateIndex}].podTemplateSpec: ${[...new Set(undefinedMounts)].join("; ")}, which the template does not define`,
    );
  }

  // Identity for workload identity federation.
  if (credentials.workloadIdentity !== undefined) {
    const wanted = credentials.workloadIdentity.serviceAccountName;
    if (wanted !== undefined && spec.serviceAccountName === undefined) spec.serviceAccountName = wanted;
    else if (wanted !== undefined && spec.serviceAccountName !== wanted) {
      warnings.push(
        `the template runs the pod as service account ${spec.serviceAccountName}, not ${wanted} (entraIdAuthentication.workloadIdentity); the template's is kept`,
      );
    }
    warnings.push(
      "entraIdAuthentication uses workload identity and there is no personalAccessTokenSecretName: the agent container gets no token from the operator, so its image must exchange the federated token itself",
    );
  }

  // Metadata: template labels/annotations, then podLabels/podAnnotations, then the operator's own keys.
  const meta = template.podTemplateSpec.metadata ?? {};
  const labels: Record<string, string> = { ...(meta.labels ?? {}), ...(template.podLabels ?? {}) };
  const annotations: Record<string, string> = { ...(meta.annotations ?? {}), ...(template.podAnnotations ?? {}) };
  if (credentials.workloadIdentity !== undefined) labels[WORKLOAD_IDENTITY_LABEL] = "true";
  const operatorLabels: Record<string, string> = {
    [podLabels.managedBy]: MANAGED_BY_VALUE,
    [podLabels.resource]: labelValue(resource.metadata.name),
    [podLabels.template]: input.templateKey ?? capabilitySetKey(template.capabilities ?? {}),
  };
  if (extra !== null) operatorLabels[podLabels.extraAgentContainers] = extra.key;
  const operatorAnnotations: Record<string, string> = {
    [podAnnotations.capabilities]: capabilitiesAnnotation(capabilities),
    [podAnnotations.createdFor]: (input.forRequestIds ?? []).join(","),
    [podAnnotations.templateIndex]: String(input.templateIndex),
  };
  if (extra !== null) operatorAnnotations[podAnnotations.extraAgentContainers] = extra.value;
  // Labels and annotations the operator reads back never come from the template, even those it does not set here.
  for (const k of Object.values(podLabels)) {
    if (k in labels && labels[k] !== operatorLabels[k]) {
      warnings.push(`label ${k} belongs to the operator; the template's value is not used`);
    }
    delete labels[k];
  }
  Object.assign(labels, operatorLabels);
  for (const k of Object.values(podAnnotations)) {
    if (k in annotations && annotations[k] !== operatorAnnotations[k]) {
      warnings.push(`annotation ${k} belongs to the operator; the template's value is not used`);
    }
    delete annotations[k];
  }
  Object.assign(annotations, operatorAnnotations);

  const metadata: PodMetadata = {
    name: podName,
    namespace: resource.metadata.namespace,
    labels,
    annotations,
    ownerReferences: [
      {
        apiVersion: API_VERSION,
        kind: KIND,
        name: resource.metadata.name,
        uid: resource.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ],
  };
  if (meta.finalizers !== undefined && meta.finalizers.length > 0) metadata.finalizers = [...meta.finalizers];

  return { ok: true, pod: { apiVersion: "v1", kind: "Pod", metadata, spec }, warnings };
}

// ---------------------------------------------------------------------------------------------------------------
// From a scale plan's create

export interface PodForCreateInput {
  /** The resource, defaults applied (as validateAutoScaledAgent returns it). */
  readonly resource: AgentPodResource & {
    readonly spec: { readonly podsWithCapabilities: readonly AgentPodTemplate[] };
  };
  readonly create: Pick<PodCreate, "templateIndex" | "extraAgentContainers" | "agentCapabilities" | "forRequestIds">;
  readonly podName: string;
  readonly cacheVolumes?: Readonly<Record<string, string>>;
  readonly templateKey?: string;
}

export interface PodForCreateOptions {
  /** The operator's ExtraAgentContainers policy for resources that set none (`--extra-agent-containers-policy`). */
  readonly defaultExtraAgentContainersPolicy?: ExtraAgentContainersPolicy | undefined;
}

/**
 * A `ScalePlan.creates` entry made into a pod: picks the template, parses the ExtraAgentContainers value and checks
 * it against the policy (the resource's, else the operator's default) and the template's container names, then
 * builds. A refused value gives `ok: false` with `InvalidExtraAgentContainers` or `ExtraAgentContainersRefused` and
 * a message naming each problem.
 */
export function buildPodForCreate(input: PodForCreateInput, options: PodForCreateOptions = {}): BuildAgentPodResult {
  const { resource, create } = input;
  const template = resource.spec.podsWithCapabilities[create.templateIndex];
  if (template === undefined) {
    return fail(
      "UnknownTemplate",
      `podsWithCapabilities[${create.templateIndex}] does not exist (the resource has ${resource.spec.podsWithCapabilities.length})`,
    );
  }
  let extra: ParsedExtraAgentContainers | null = null;
  if (create.extraAgentContainers !== null) {
    const verdict = evaluateExtraAgentContainers(create.extraAgentContainers, {
      reservedNames: templateContainerNames(template.podTemplateSpec.spec ?? {}),
      ...effectiveExtraAgentContainersPolicy(
        resource.spec.extraAgentContainers,
        options.defaultExtraAgentContainersPolicy,
      ),
    });
    if (!verdict.ok) {
      const reason = verdict.reason === "invalid" ? "InvalidExtraAgentContainers" : "ExtraAgentContainersRefused";
      const jobs = create.forRequestIds.length > 0 ? `job request ${create.forRequestIds.join(", ")}: ` : "";
      return fail(reason, `${jobs}${verdict.message}`);
    }
    extra = verdict.value;
  }
  return buildAgentPod({
    resource,
    template,
    templateIndex: create.templateIndex,
    podName: input.podName,
    agentCapabilities: create.agentCapabilities,
    extraAgentContainers: extra,
    forRequestIds: create.forRequestIds,
    ...(input.cacheVolumes === undefined ? {} : { cacheVolumes: input.cacheVolumes }),
    ...(input.templateKey === undefined ? {} : { templateKey: input.templateKey }),
  });
}
