/**
 * The CustomResourceDefinition, generated from the TypeBox schema. Pure: `crdYaml()` is what
 * `generate-crd.ts` writes to config/crd/, and a test compares it with the committed file.
 */
import { stringify } from "yaml";
import {
  API_VERSION,
  CATEGORIES,
  CRD_NAME,
  GROUP,
  KIND,
  LIST_KIND,
  PLURAL,
  SHORT_NAMES,
  SINGULAR,
  VERSION,
} from "./constants.ts";
import { POD_TEMPLATE_KUBERNETES_VERSION } from "./podtemplate.ts";
import { AutoScaledAgentSchema } from "./schema.ts";
import { canonicalize, type JsonSchema } from "./structural.ts";

export const CRD_FILE = `config/crd/${GROUP}_${PLURAL}.yaml`;
export const POD_TEMPLATE_VERSION_ANNOTATION = `${GROUP}/pod-template-schema-kubernetes-version`;

const isObject = (v: unknown): v is JsonSchema => typeof v === "object" && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

/**
 * Converts a TypeBox schema into a CRD (structural OpenAPI v3) schema: TypeBox's symbols and `x-azp-*` hints
 * dropped, Records as `additionalProperties`, `x-crd-format` as `format`, the pattern of an int-or-string's string
 * branch moved beside the `anyOf` (the only shape a CRD accepts), keys sorted.
 */
export function toCrdSchema(schema: unknown): JsonSchema {
  const walk = (node: unknown, path: string): JsonSchema => {
    if (!isObject(node)) throw new Error(`${path}: not a schema`);
    const out: JsonSchema = {};
    for (const key of Object.keys(node)) {
      const value = node[key];
      if (key.startsWith("x-azp-") || value === undefined) continue;
      switch (key) {
        case "properties": {
          if (!isObject(value)) throw new Error(`${path}.properties: not an object`);
          const names = Object.keys(value);
          if (names.length === 0) break;
          const props: JsonSchema = {};
          for (const name of names) props[name] = walk(value[name], `${path}.${name}`);
          out.properties = props;
          break;
        }
        case "patternProperties": {
          if (!isObject(value)) throw new Error(`${path}.patternProperties: not an object`);
          const patterns = Object.keys(value);
          if (patterns.length !== 1 || patterns[0] !== "^(.*)$") {
            throw new Error(`${path}: only Record(String, T) maps are supported, not patternProperties ${patterns}`);
          }
          out.additionalProperties = walk(value["^(.*)$"], `${path}[*]`);
          break;
        }
        case "additionalProperties":
          if (value === true) out["x-kubernetes-preserve-unknown-fields"] = true;
          else if (value !== false) out.additionalProperties = walk(value, `${path}[*]`);
          break;
        case "items":
          out.items = walk(value, `${path}[*]`);
          break;
        case "anyOf":
          if (!Array.isArray(value)) throw new Error(`${path}.anyOf: not a list`);
          out.anyOf = value.map((branch, i) => walk(branch, `${path}.anyOf[${i}]`));
          break;
        case "required":
          if (Array.isArray(value) && value.length > 0) out.required = [...value].sort();
          break;
        case "x-crd-format":
          out.format = value;
          break;
        case "allOf":
        case "oneOf":
        case "not":
        case "$ref":
        case "$id":
          throw new Error(`${path}: ${key} is not supported in a CRD schema`);
        default:
          out[key] = clone(value);
      }
    }
    if (out.format !== undefined && node["x-crd-format"] !== undefined) delete out.pattern;
    if (out["x-kubernetes-int-or-string"] === true && Array.isArray(out.anyOf)) {
      for (const branch of out.anyOf as JsonSchema[]) {
        if (branch.type === "string" && typeof branch.pattern === "string") {
          out.pattern = branch.pattern;
          delete branch.pattern;
        }
      }
    }
    return out;
  };
  return canonicalize(walk(schema, "$")) as JsonSchema;
}

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** `kubectl get autoscaledagents` (priority 1: only with `-o wide`). */
export const PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: "Pool", type: "string", jsonPath: ".spec.poolName", description: "Azure DevOps agent pool" },
  { name: "Pending", type: "integer", jsonPath: ".status.pendingJobs", description: "Queued jobs for these agents" },
  { name: "Running", type: "integer", jsonPath: ".status.pods.busy", description: "Agent pods running a job" },
  { name: "Idle", type: "integer", jsonPath: ".status.pods.idle", description: "Agent pods waiting", priority: 1 },
  {
    name: "Starting",
    type: "integer",
    jsonPath: ".status.pods.starting",
    description: "Agent pods not ready yet",
    priority: 1,
  },
  { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: "Reason", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].reason', priority: 1 },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

/** The openAPIV3Schema of the CRD. */
export function crdOpenApiSchema(): JsonSchema {
  const schema = toCrdSchema(AutoScaledAgentSchema);
  // At the root, metadata is the API server's business: a CRD may only say it is an object.
  (schema.properties as JsonSchema).metadata = { type: "object" };
  return schema;
}

/** The CustomResourceDefinition object. */
export function buildCrd(): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: CRD_NAME,
      labels: { "app.kubernetes.io/name": "azure-pipelines-k8s-agent-scaler" },
      annotations: { [POD_TEMPLATE_VERSION_ANNOTATION]: POD_TEMPLATE_KUBERNETES_VERSION },
    },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: LIST_KIND,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: [...CATEGORIES],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS.map((c) => ({ ...c })),
          schema: { openAPIV3Schema: crdOpenApiSchema() },
        },
      ],
    },
  };
}

/** The committed YAML: a header and the CRD. */
export function crdYaml(): string {
  const header = [
    `# ${API_VERSION} ${KIND}: generated from src/api/v1/schema.ts; do not edit.`,
    "# Regenerate: npx node src/api/v1/generate-crd.ts",
    `# Pod template schema from Kubernetes ${POD_TEMPLATE_KUBERNETES_VERSION} (src/api/v1/podtemplatespec.schema.json).`,
  ].join("\n");
  return `${header}\n${stringify(buildCrd(), { lineWidth: 0 })}`;
}
