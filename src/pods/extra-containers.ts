/**
 * The `ExtraAgentContainers` demand: a pipeline asks for extra containers in its agent pod with
 *
 *   ExtraAgentContainers -equals name=c,image=repo/img:1,cpu=250m,memory=64Mi||name=d,image=other:2
 *   ExtraAgentContainers -equals c,repo/img:1,250m,64Mi||d,other:2          (positional, as in the original README)
 *
 * This module parses such a value (both forms, per entry), checks it against the resource's optional
 * `extraAgentContainers` policy and turns it into container specs. Pure: no I/O, no clock.
 * See README.md in this folder for the rules and every error.
 */
import { createHash } from "node:crypto";
import {
  API_VERSION,
  type Container,
  type ExtraAgentContainersPolicy,
  KIND,
  type VolumeMount,
  validateAutoScaledAgent,
} from "../api/v1/index.ts";
import { compareQuantities, parseQuantity, type Quantity, quantityFrom, signOf } from "./quantity.ts";

/** Separates the container entries of a value. */
export const ENTRY_SEPARATOR = "||";

/**
 * Longest value accepted. The agent does not advertise capabilities (environment variables) of 1024 characters or
 * more, so a pod made for a longer value could never receive its job.
 */
export const MAX_VALUE_LENGTH = 1023;

/** Keys of the key=value form. */
export const EXTRA_CONTAINER_KEYS = ["name", "image", "cpu", "memory"] as const;
type Key = (typeof EXTRA_CONTAINER_KEYS)[number];

export type ExtraContainerForm = "key-value" | "positional";

/** One container a job asks for. `cpu` and `memory` are quantity strings as written (trimmed). */
export interface ExtraAgentContainer {
  readonly name: string;
  readonly image: string;
  readonly cpu?: string;
  readonly memory?: string;
  /** How the entry was written. */
  readonly form: ExtraContainerForm;
}

/** A valid value: its containers, in order, and a stable key of the value. */
export interface ParsedExtraAgentContainers {
  /** The demand value exactly as given. */
  readonly value: string;
  /** `extraAgentContainersKey(value)`: 16 hex characters, usable as a label value. */
  readonly key: string;
  readonly containers: readonly ExtraAgentContainer[];
}

export type ExtraAgentContainersErrorCode =
  /** The value is empty or only whitespace. */
  | "empty-value"
  /** Longer than MAX_VALUE_LENGTH. */
  | "value-too-long"
  /** An entry between separators is empty (`a,b||`, `||a,b`, `a,b|| ||c,d`). */
  | "empty-entry"
  /** A single `|` (entries are separated by `||`). */
  | "bad-separator"
  /** Key=value form: an attribute without `=`, or with an empty key. */
  | "malformed-attribute"
  | "unknown-key"
  | "duplicate-key"
  /** Positional form: more than name, image, cpu, memory. */
  | "too-many-fields"
  /** Positional form: a field written as key=value. */
  | "mixed-form"
  | "missing-name"
  /** Not a DNS-1123 label (lower-case letters, digits, '-', at most 63 characters). */
  | "invalid-name"
  /** Two entries with the same name. */
  | "duplicate-name"
  /** The name of a container or init container of the pod template. */
  | "name-clash"
  | "missing-image"
  /** Not an image reference: `[registry[:port]/]repository[:tag][@digest]`, repository lower-case. */
  | "invalid-image"
  /** cpu or memory is not a positive Kubernetes quantity. */
  | "bad-quantity";

export interface ExtraAgentContainersError {
  readonly code: ExtraAgentContainersErrorCode;
  /** 1-based position of the entry in the value; 0 for the value as a whole. */
  readonly entry: number;
  /** The container's name, when the entry names one. */
  readonly container?: string;
  /** A human message that names the entry (and container) and the problem. */
  readonly message: string;
}

export type ParseExtraAgentContainersResult =
  | { readonly ok: true; readonly value: ParsedExtraAgentContainers }
  | { readonly ok: false; readonly errors: readonly ExtraAgentContainersError[] };

export interface ParseExtraAgentContainersOptions {
  /** Names already used in the pod (the template's containers and init containers): extra containers may not. */
  readonly reservedNames?: Iterable<string>;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_NAME_LENGTH = 63;

// Image references as the container runtimes read them (distribution/reference grammar).
const pathComponent = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const domain = `(?:${domainComponent}(?:\\.${domainComponent})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
const imageName = `(?:${domain}/)?${pathComponent}(?:/${pathComponent})*`;
const tag = "[\\w][\\w.-]{0,127}";
const digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const IMAGE_REFERENCE = new RegExp(`^(${imageName})(?::${tag})?(?:@${digest})?$`);
const MAX_IMAGE_NAME_LENGTH = 255;

/** Whether a string is an image reference a container runtime can pull (`[registry/]repo[:tag][@digest]`). */
export function isImageReference(image: string): boolean {
  const m = IMAGE_REFERENCE.exec(image);
  return m !== null && (m[1] ?? "").length <= MAX_IMAGE_NAME_LENGTH;
}

/** Whether a container name is valid (a DNS-1123 label). */
export function isContainerName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && DNS_LABEL.test(name);
}

/** A stable key of a value: 16 hex characters of SHA-256 over the value exactly as the demand carries it. */
export function extraAgentContainersKey(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex").slice(0, 16);
}

const show = (text: string) => JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);

interface RawEntry {
  name?: string;
  image?: string;
  cpu?: string;
  memory?: string;
  form: ExtraContainerForm;
}

/** Parses one entry (already trimmed, not empty); pushes errors, returns the fields found. */
function parseEntry(text: string, entry: number, errors: ExtraAgentContainersError[]): RawEntry {
  const fields = text.split(",").map((f) => f.trim());
  const where = `entry ${entry} (${show(text)})`;
  const fail = (code: ExtraAgentContainersErrorCode, message: string) => errors.push({ code, entry, message });
  if ((fields[0] ?? "").includes("=")) {
    const raw: RawEntry = { form: "key-value" };
    const seen = new Set<string>();
    fields.forEach((field, i) => {
      const eq = field.indexOf("=");
      if (field === "") {
        fail("malformed-attribute", `${where}: attribute ${i + 1} is empty (remove the extra comma)`);
        return;
      }
      if (eq < 0) {
        fail(
          "malformed-attribute",
          `${where}: attribute ${i + 1} ${show(field)} is not key=value (keys: ${EXTRA_CONTAINER_KEYS.join(", ")})`,
        );
        return;
      }
      const key = field.slice(0, eq).trim();
      const value = field.slice(eq + 1).trim();
      if (key === "") {
        fail("malformed-attribute", `${where}: attribute ${i + 1} ${show(field)} has no key`);
        return;
      }
      if (!(EXTRA_CONTAINER_KEYS as readonly string[]).includes(key)) {
        const similar = EXTRA_CONTAINER_KEYS.find((k) => k === key.toLowerCase());
        fail(
          "unknown-key",
          `${where}: unknown key ${show(key)}${similar ? ` (did you mean ${similar}?)` : ""}; the keys are ${EXTRA_CONTAINER_KEYS.join(", ")}`,
        );
        return;
      }
      if (seen.has(key)) {
        fail("duplicate-key", `${where}: key ${key} is given more than once`);
        return;
      }
      seen.add(key);
      raw[key as Key] = value;
    });
    return raw;
  }
  const raw: RawEntry = { form: "positional" };
  const positions: Key[] = ["name", "image", "cpu", "memory"];
  fields.forEach((field, i) => {
    const key = positions[i];
    if (key === undefined) return;
    if (field.includes("=")) {
      fail(
        "mixed-form",
        `${where}: field ${i + 1} ${show(field)} is written as key=value, but the entry starts positionally (name,image,cpu,memory); use one form per entry`,
      );
      return;
    }
    // Empty optional positional fields mean "not given" (`c,img,,64Mi`).
    if (field === "" && (key === "cpu" || key === "memory")) return;
    raw[key] = field;
  });
  if (fields.length > positions.length) {
    fail(
      "too-many-fields",
      `${where}: ${fields.length} fields, but the positional form has at most ${positions.length} (name,image,cpu,memory)`,
    );
  }
  return raw;
}

function checkQuantity(
  what: "cpu" | "memory",
  text: string | undefined,
  entry: number,
  container: string | undefined,
  errors: ExtraAgentContainersError[],
): string | undefined {
  if (text === undefined) return undefined;
  const label = `entry ${entry}${container ? ` (container ${show(container)})` : ""}`;
  const q = parseQuantity(text);
  if (!q.ok) {
    const message = `${label}: ${what} ${q.message}`;
    errors.push({ code: "bad-quantity", entry, ...(container ? { container } : {}), message });
    return undefined;
  }
  if (signOf(q.quantity) <= 0) {
    errors.push({
      code: "bad-quantity",
      entry,
      ...(container ? { container } : {}),
      message: `${label}: ${what} ${show(text)} must be greater than zero`,
    });
    return undefined;
  }
  return q.quantity.text;
}

/**
 * Parses an `ExtraAgentContainers` value. Every problem is reported (not only the first), each naming the entry
 * and, when known, the container.
 */
export function parseExtraAgentContainers(
  value: string,
  options: ParseExtraAgentContainersOptions = {},
): ParseExtraAgentContainersResult {
  const errors: ExtraAgentContainersError[] = [];
  if (value.trim() === "") {
    return {
      ok: false,
      errors: [
        {
          code: "empty-value",
          entry: 0,
          message: "the value is empty; expected name=c,image=i[,cpu=q][,memory=q]||... or c,i[,cpu][,memory]||...",
        },
      ],
    };
  }
  if (value.length > MAX_VALUE_LENGTH) {
    return {
      ok: false,
      errors: [
        {
          code: "value-too-long",
          entry: 0,
          message: `the value has ${value.length} characters; at most ${MAX_VALUE_LENGTH} are possible, because the agent does not advertise longer capabilities`,
        },
      ],
    };
  }
  const reserved = new Set(options.reservedNames ?? []);
  const parts = value.split(ENTRY_SEPARATOR);
  const containers: ExtraAgentContainer[] = [];
  const firstEntryOf = new Map<string, number>();
  parts.forEach((part, i) => {
    const entry = i + 1;
    const text = part.trim();
    if (text === "") {
      errors.push({
        code: "empty-entry",
        entry,
        message: `entry ${entry} of ${parts.length} is empty (entries are separated by "||"; remove the extra separator)`,
      });
      return;
    }
    if (text.includes("|")) {
      errors.push({
        code: "bad-separator",
        entry,
        message: `entry ${entry} (${show(text)}) contains a single "|"; entries are separated by "||"`,
      });
      return;
    }
    const before = errors.length;
    const raw = parseEntry(text, entry, errors);
    const name = raw.name;
    const named = name !== undefined && name !== "" ? name : undefined;
    const label = `entry ${entry}${named ? ` (container ${show(named)})` : ""}`;
    const fail = (code: ExtraAgentContainersErrorCode, message: string) =>
      errors.push({ code, entry, ...(named ? { container: named } : {}), message });
    if (named === undefined) {
      fail("missing-name", `entry ${entry} (${show(text)}): the container name is missing`);
    } else if (!isContainerName(named)) {
      fail(
        "invalid-name",
        `${label}: ${show(named)} is not a valid container name (lower-case letters, digits and '-', starting and ending with a letter or digit, at most ${MAX_NAME_LENGTH} characters)`,
      );
    } else if (firstEntryOf.has(named)) {
      fail("duplicate-name", `${label}: the name is already used by entry ${firstEntryOf.get(named)}`);
    } else if (reserved.has(named)) {
      fail("name-clash", `${label}: the pod template already has a container named ${show(named)}`);
    }
    if (named !== undefined && !firstEntryOf.has(named)) firstEntryOf.set(named, entry);
    const image = raw.image;
    if (image === undefined || image === "") {
      fail("missing-image", `${label}: the image is missing`);
    } else if (!isImageReference(image)) {
      fail(
        "invalid-image",
        `${label}: ${show(image)} is not an image reference ([registry[:port]/]repository[:tag][@digest], repository in lower case)`,
      );
    }
    const cpu = checkQuantity("cpu", raw.cpu, entry, named, errors);
    const memory = checkQuantity("memory", raw.memory, entry, named, errors);
    if (errors.length === before && named !== undefined && image !== undefined) {
      containers.push({
        name: named,
        image,
        ...(cpu !== undefined ? { cpu } : {}),
        ...(memory !== undefined ? { memory } : {}),
        form: raw.form,
      });
    }
  });
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: { value, key: extraAgentContainersKey(value), containers } };
}

// ---------------------------------------------------------------------------------------------------------------
// Policy

export type PolicyViolationCode =
  | "max-containers"
  | "image-not-allowed"
  | "cpu-above-limit"
  | "memory-above-limit"
  /** A maximum is set and the container gives no value (it would be unbounded). */
  | "cpu-required"
  | "memory-required"
  /** The policy itself holds something unreadable (a bad quantity). */
  | "invalid-policy";

export interface PolicyViolation {
  readonly code: PolicyViolationCode;
  readonly container?: string;
  readonly message: string;
}

/**
 * Whose policy judges a value: the resource's `spec.extraAgentContainers`, or the operator's default
 * (`--extra-agent-containers-policy`), which applies to resources that set none.
 */
export type PolicySource = "resource" | "operator";

const POLICY_PATH = "spec.extraAgentContainers";
const OPERATOR_POLICY = "--extra-agent-containers-policy";

/** How a message names a field of the policy. */
function policyField(source: PolicySource, field: string): string {
  return source === "resource" ? `${POLICY_PATH}.${field}` : `${field} of the operator's ${OPERATOR_POLICY}`;
}

/** The policy that applies: the resource's when it sets one (even an empty one), else the operator's default. */
export function effectiveExtraAgentContainersPolicy(
  resourcePolicy: ExtraAgentContainersPolicy | undefined,
  operatorDefault: ExtraAgentContainersPolicy | undefined,
): { policy?: ExtraAgentContainersPolicy; policySource?: PolicySource } {
  if (resourcePolicy !== undefined) return { policy: resourcePolicy, policySource: "resource" };
  if (operatorDefault !== undefined) return { policy: operatorDefault, policySource: "operator" };
  return {};
}

/**
 * Reads an operator-wide default policy written as JSON in the shape of `spec.extraAgentContainers`, checked with
 * the API's own validation (unknown fields refused): the policy, or one message per problem.
 */
export function parseExtraAgentContainersPolicy(
  json: string,
): { ok: true; value: ExtraAgentContainersPolicy } | { ok: false; errors: string[] } {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    return { ok: false, errors: [`not JSON (${(err as Error).message})`] };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, errors: ['must be a JSON object, e.g. {"allowedImages":["docker.io/library/*"]}'] };
  }
  // The API's validation of the field, on a resource that is valid but for it.
  const probe = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: "policy" },
    spec: {
      poolName: "p",
      organizationUrl: "https://dev.azure.com/x",
      personalAccessTokenSecretName: "s",
      podsWithCapabilities: [{ maxCount: 1, podTemplateSpec: { spec: { containers: [{ name: "a", image: "a" }] } } }],
      extraAgentContainers: value,
    },
  };
  const checked = validateAutoScaledAgent(probe, { unknownFields: "error" });
  if (!checked.ok) {
    return { ok: false, errors: checked.errors.map((e) => e.replace(/^spec\.extraAgentContainers\.?/, "") || e) };
  }
  const policy = checked.value.spec.extraAgentContainers as ExtraAgentContainersPolicy;
  const problems = checkExtraAgentContainersPolicy([], policy, "operator")
    .filter((v) => v.code === "invalid-policy")
    .map((v) => v.message);
  return problems.length > 0 ? { ok: false, errors: problems } : { ok: true, value: policy };
}

/** Turns an image pattern into a regular expression: `**` any characters, `*` any characters but `/`. */
export function imagePatternRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === "*" && pattern[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (c === "*") {
      source += "[^/]*";
    } else {
      source += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${source}$`, "s");
}

/** Whether an image matches one pattern of `allowedImages` (the whole reference, as written). */
export function imageMatchesPattern(image: string, pattern: string): boolean {
  return imagePatternRegExp(pattern).test(image);
}

function policyLimit(
  field: "maxCpuPerContainer" | "maxMemoryPerContainer",
  raw: number | string | undefined,
  out: PolicyViolation[],
  source: PolicySource,
): Quantity | undefined {
  if (raw === undefined) return undefined;
  const q = quantityFrom(raw);
  if (!q.ok) {
    out.push({
      code: "invalid-policy",
      message: `${policyField(source, field)} ${show(String(raw))} is not a quantity, so no extra container can be checked against it`,
    });
    return undefined;
  }
  return q.quantity;
}

/**
 * Checks parsed containers against the resource's policy. Without a policy (or with an empty one) nothing is
 * refused, as in the original. Each violation names the container and the limit.
 */
export function checkExtraAgentContainersPolicy(
  containers: readonly ExtraAgentContainer[],
  policy: ExtraAgentContainersPolicy | undefined,
  source: PolicySource = "resource",
): PolicyViolation[] {
  const out: PolicyViolation[] = [];
  if (policy === undefined) return out;
  const path = (field: string) => policyField(source, field);
  if (policy.maxContainers !== undefined && containers.length > policy.maxContainers) {
    out.push({
      code: "max-containers",
      message:
        policy.maxContainers === 0
          ? `${containers.length} extra container(s) asked for, but ${source === "resource" ? "this resource allows" : "the operator allows by default"} none (${path("maxContainers")} is 0)`
          : `${containers.length} extra containers asked for, at most ${policy.maxContainers} allowed (${path("maxContainers")})`,
    });
  }
  const maxCpu = policyLimit("maxCpuPerContainer", policy.maxCpuPerContainer, out, source);
  const maxMemory = policyLimit("maxMemoryPerContainer", policy.maxMemoryPerContainer, out, source);
  const patterns = policy.allowedImages;
  for (const c of containers) {
    const who = `container ${show(c.name)}`;
    if (patterns !== undefined && !patterns.some((p) => imageMatchesPattern(c.image, p))) {
      out.push({
        code: "image-not-allowed",
        container: c.name,
        message: `${who}: image ${show(c.image)} matches none of ${path("allowedImages")} (${patterns.join(", ")})`,
      });
    }
    const limits: [
      string,
      string | undefined,
      Quantity | undefined,
      string,
      PolicyViolationCode,
      PolicyViolationCode,
    ][] = [
      ["cpu", c.cpu, maxCpu, "maxCpuPerContainer", "cpu-above-limit", "cpu-required"],
      ["memory", c.memory, maxMemory, "maxMemoryPerContainer", "memory-above-limit", "memory-required"],
    ];
    for (const [what, given, max, field, above, required] of limits) {
      if (max === undefined) continue;
      if (given === undefined) {
        out.push({
          code: required,
          container: c.name,
          message: `${who}: gives no ${what}, but ${path(field)} limits it to ${max.text}; add ${what}=<at most ${max.text}>`,
        });
        continue;
      }
      const q = parseQuantity(given);
      if (q.ok && compareQuantities(q.quantity, max) > 0) {
        out.push({
          code: above,
          container: c.name,
          message: `${who}: ${what} ${given} is above the maximum ${max.text} (${path(field)})`,
        });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Parse + policy in one step

export type ExtraAgentContainersVerdict =
  | { readonly ok: true; readonly value: ParsedExtraAgentContainers }
  | {
      readonly ok: false;
      /** `invalid`: malformed or clashing with the template; `refused`: well-formed but outside the policy. */
      readonly reason: "invalid" | "refused";
      readonly errors: readonly (ExtraAgentContainersError | PolicyViolation)[];
      /** One line for an event or a status message. */
      readonly message: string;
    };

export interface EvaluateOptions extends ParseExtraAgentContainersOptions {
  readonly policy?: ExtraAgentContainersPolicy;
  /** Whose policy it is, for messages; default the resource's. */
  readonly policySource?: PolicySource;
}

/** One line describing why a value cannot be served. */
export function describeExtraAgentContainersProblems(
  value: string,
  reason: "invalid" | "refused",
  problems: readonly { readonly message: string }[],
  policySource: PolicySource = "resource",
): string {
  const whose = policySource === "resource" ? "the resource's policy" : "the operator's default policy";
  const what = reason === "invalid" ? "is invalid" : `is refused by ${whose}`;
  return `ExtraAgentContainers ${show(value)} ${what}: ${problems.map((p) => p.message).join("; ")}`;
}

/** Parses a value and checks it against the policy. */
export function evaluateExtraAgentContainers(
  value: string,
  options: EvaluateOptions = {},
): ExtraAgentContainersVerdict {
  const parsed = parseExtraAgentContainers(value, options);
  if (!parsed.ok) {
    return {
      ok: false,
      reason: "invalid",
      errors: parsed.errors,
      message: describeExtraAgentContainersProblems(value, "invalid", parsed.errors),
    };
  }
  const source = options.policySource ?? "resource";
  const violations = checkExtraAgentContainersPolicy(parsed.value.containers, options.policy, source);
  if (violations.length > 0) {
    return {
      ok: false,
      reason: "refused",
      errors: violations,
      message: describeExtraAgentContainersProblems(value, "refused", violations, source),
    };
  }
  return parsed;
}

/**
 * A pure check for the scaling core (`PlanInput.checkExtraAgentContainers`): parsing and policy, returning the
 * message when a value is refused. Name clashes depend on the template, which the core's hook does not know;
 * `buildAgentPod` checks those.
 */
export function extraAgentContainersChecker(
  policy: ExtraAgentContainersPolicy | undefined,
  policySource: PolicySource = "resource",
): (value: string) => string | undefined {
  return (value) => {
    const verdict = evaluateExtraAgentContainers(value, policy === undefined ? {} : { policy, policySource });
    return verdict.ok ? undefined : verdict.message;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Container specs

/** The names extra containers may not use: the template's containers and init containers. */
export function templateContainerNames(spec: {
  readonly containers?: readonly { readonly name: string }[];
  readonly initContainers?: readonly { readonly name: string }[];
}): string[] {
  return [...(spec.containers ?? []), ...(spec.initContainers ?? [])].map((c) => c.name);
}

/**
 * The volume mount of the agent container, as an extra container gets it: same volume, path, read-only flag and
 * sub path. Mount propagation is left out (Bidirectional would need a privileged container).
 */
export function sharedMount(mount: VolumeMount): VolumeMount {
  const out: VolumeMount = { name: mount.name, mountPath: mount.mountPath };
  if (mount.readOnly !== undefined) out.readOnly = mount.readOnly;
  if (mount.recursiveReadOnly !== undefined) out.recursiveReadOnly = mount.recursiveReadOnly;
  if (mount.subPath !== undefined) out.subPath = mount.subPath;
  if (mount.subPathExpr !== undefined) out.subPathExpr = mount.subPathExpr;
  return out;
}

/**
 * Container specs for the extra containers: name, image (its own entrypoint and command), requests = limits for
 * the cpu and memory given, every volume mount of the agent container at the same path (the workspace), and a copy
 * of the agent container's `securityContext`. The image is the pipeline's choice, so it runs exactly as
 * constrained as the agent (user, capabilities, privilege escalation, read-only root, seccomp...): never more
 * privileged, and never less constrained than the template's author made the agent. The pod's own
 * `securityContext` applies to every container anyway.
 */
export function extraContainerSpecs(
  containers: readonly ExtraAgentContainer[],
  agentContainer: Pick<Container, "volumeMounts"> & { readonly securityContext?: unknown },
): Container[] {
  return containers.map((c) => {
    const spec: Container = { name: c.name, image: c.image };
    if (agentContainer.securityContext !== undefined) {
      spec.securityContext = structuredClone(agentContainer.securityContext);
    }
    const amounts: Record<string, string> = {};
    if (c.cpu !== undefined) amounts.cpu = c.cpu;
    if (c.memory !== undefined) amounts.memory = c.memory;
    if (Object.keys(amounts).length > 0) spec.resources = { requests: { ...amounts }, limits: { ...amounts } };
    const mounts = (agentContainer.volumeMounts ?? []).map(sharedMount);
    if (mounts.length > 0) spec.volumeMounts = mounts;
    return spec;
  });
}
