/**
 * The pod template: the generated structural schema of Kubernetes' PodTemplateSpec, as a TypeBox schema (so runtime
 * validation checks pod templates the way the API server does), and a TypeScript type for the parts the operator
 * reads and writes. Every other field is allowed and typed `unknown`.
 */
import { type TSchema, Type } from "@sinclair/typebox";
import podTemplateFile from "./podtemplatespec.schema.json" with { type: "json" };
import { QUANTITY_PATTERN } from "./structural.ts";

export interface ObjectMetaTemplate {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  name?: string;
  namespace?: string;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { [source: string]: unknown };
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
  [field: string]: unknown;
}

export type IntOrString = number | string;

export interface ResourceRequirements {
  limits?: Record<string, IntOrString>;
  requests?: Record<string, IntOrString>;
  [field: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  resources?: ResourceRequirements;
  /** `Always` on an init container makes it a native sidecar (Kubernetes 1.29+). */
  restartPolicy?: string;
  workingDir?: string;
  [field: string]: unknown;
}

export interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  emptyDir?: { [field: string]: unknown };
  [source: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  restartPolicy?: string;
  nodeSelector?: Record<string, string>;
  serviceAccountName?: string;
  terminationGracePeriodSeconds?: number;
  [field: string]: unknown;
}

export interface PodTemplateSpec {
  metadata?: ObjectMetaTemplate;
  spec?: PodSpec;
}

/** The Kubernetes version whose OpenAPI the pod template schema was generated from. */
export const POD_TEMPLATE_KUBERNETES_VERSION: string = podTemplateFile.kubernetesVersion;

type Node = { [key: string]: unknown };
const isNode = (v: unknown): v is Node => typeof v === "object" && v !== null && !Array.isArray(v);

/** Options (value validations, extensions) of a node, without the keys a TypeBox builder sets itself. */
function optionsOf(node: Node, ...omit: string[]): Node {
  const out: Node = {};
  for (const [k, v] of Object.entries(node)) if (!omit.includes(k) && k !== "type") out[k] = v;
  return out;
}

/**
 * Converts a structural CRD schema (as produced by `structuralSchemaFromOpenApi`) to TypeBox. The inverse is
 * `toCrdSchema` in crd.ts; a test checks the round trip is exact.
 */
export function typeBoxFromStructural(node: Node, path = "$"): TSchema {
  if (node["x-kubernetes-int-or-string"] === true) {
    const pattern = typeof node.pattern === "string" ? node.pattern : undefined;
    const options = optionsOf(node, "anyOf", "pattern");
    options["x-azp-expected"] =
      pattern === QUANTITY_PATTERN
        ? 'an integer or a quantity string such as "500m" or "1Gi"'
        : "an integer or a string";
    return Type.Union([Type.Integer(), pattern ? Type.String({ pattern }) : Type.String()], options);
  }
  switch (node.type) {
    case "object": {
      if (isNode(node.properties)) {
        const required = new Set(Array.isArray(node.required) ? node.required : []);
        const properties: Record<string, TSchema> = {};
        for (const [name, child] of Object.entries(node.properties)) {
          if (!isNode(child)) throw new Error(`${path}.${name}: not a schema`);
          const converted = typeBoxFromStructural(child, `${path}.${name}`);
          properties[name] = required.has(name) ? converted : Type.Optional(converted);
        }
        return Type.Object(properties, optionsOf(node, "properties", "required"));
      }
      if (isNode(node.additionalProperties)) {
        const value = typeBoxFromStructural(node.additionalProperties, `${path}[*]`);
        return Type.Record(Type.String(), value, optionsOf(node, "additionalProperties"));
      }
      return Type.Object({}, optionsOf(node));
    }
    case "array": {
      if (!isNode(node.items)) throw new Error(`${path}: array without items`);
      return Type.Array(typeBoxFromStructural(node.items, `${path}[*]`), optionsOf(node, "items"));
    }
    case "string":
      return Type.String(optionsOf(node));
    case "integer":
      return Type.Integer(optionsOf(node));
    case "number":
      return Type.Number(optionsOf(node));
    case "boolean":
      return Type.Boolean(optionsOf(node));
    default:
      throw new Error(`${path}: unsupported type ${String(node.type)}`);
  }
}

/** The generated structural schema, as committed. */
export const podTemplateStructuralSchema: Readonly<Node> = podTemplateFile.schema;

/** A fresh TypeBox schema for `PodTemplateSpec`, extended with `extra` options (e.g. validation rules). */
export function podTemplateSpecSchema(extra: Node = {}) {
  return Type.Unsafe<PodTemplateSpec>({ ...typeBoxFromStructural(podTemplateFile.schema), ...extra });
}
