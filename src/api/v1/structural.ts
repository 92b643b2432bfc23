/**
 * Turns a Kubernetes OpenAPI v3 component (e.g. `io.k8s.api.core.v1.PodTemplateSpec`) into a structural schema
 * that a CustomResourceDefinition accepts, and checks schemas against the CRD rules.
 *
 * What "structural" means here (see the apiextensions-apiserver validation):
 * - no `$ref`, no `allOf`/`oneOf` wrappers: every reference is inlined, a recursive one is cut to an object that
 *   preserves unknown fields;
 * - a `type` on every node, except `x-kubernetes-int-or-string` nodes, which have exactly
 *   `anyOf: [{type: integer}, {type: string}]` (IntOrString, and Quantity with its pattern beside the anyOf);
 * - `properties` and `additionalProperties` never together; objects with neither preserve unknown fields;
 * - `x-kubernetes-list-type: map` only where the items are objects and every key is required or has a default
 *   (the default is kept only for such keys); `set` only for scalar items;
 * - descriptions, patch-strategy and union extensions, and all other defaults dropped (size, and the API server
 *   applies the Pod's defaults itself when the pod is created);
 * - an embedded ObjectMeta reduced to what a template may carry (labels, annotations, finalizers, name, namespace),
 *   as controller-gen does with `generateEmbeddedObjectMeta`.
 *
 * Pure functions: no I/O.
 */

/** A JSON schema node, loosely typed: the converter works on whatever the API server publishes. */
export type JsonSchema = { [key: string]: unknown };

export interface OpenApiV3Document {
  components?: { schemas?: Record<string, JsonSchema> };
  [key: string]: unknown;
}

export const INT_OR_STRING_REF = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
export const QUANTITY_REF = "io.k8s.apimachinery.pkg.api.resource.Quantity";
export const OBJECT_META_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/** The pattern controller-gen puts on `resource.Quantity` fields (and that `kubectl explain` users know). */
export const QUANTITY_PATTERN =
  "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";

/** The ObjectMeta fields kept in an embedded (template) metadata. */
export const EMBEDDED_OBJECT_META_FIELDS: readonly string[] = [
  "annotations",
  "finalizers",
  "labels",
  "name",
  "namespace",
];

const REF_PREFIX = "#/components/schemas/";
/** Value validations copied from the source as they are (`uniqueItems` is not: CRDs forbid it). */
const COPIED_VALIDATIONS = [
  "enum",
  "maximum",
  "minimum",
  "exclusiveMaximum",
  "exclusiveMinimum",
  "maxLength",
  "minLength",
  "pattern",
  "maxItems",
  "minItems",
  "maxProperties",
  "minProperties",
  "multipleOf",
];
const NUMERIC_FORMATS = new Set(["int32", "int64", "float", "double"]);
const SCALAR_TYPES = new Set(["string", "integer", "number", "boolean"]);

export interface StructuralResult {
  schema: JsonSchema;
  /** Decisions worth knowing (lists downgraded to atomic, recursion cut), for the generator's log. */
  notes: string[];
}

const isObject = (v: unknown): v is JsonSchema => typeof v === "object" && v !== null && !Array.isArray(v);

/** Builds the structural schema of `component` from an OpenAPI v3 document's `components.schemas`. */
export function structuralSchemaFromOpenApi(doc: OpenApiV3Document, component: string): StructuralResult {
  const schemas = doc.components?.schemas ?? {};
  const notes: string[] = [];
  const lookup = (name: string, path: string): JsonSchema => {
    const found = schemas[name];
    if (!isObject(found)) throw new Error(`${path}: $ref to unknown component ${name}`);
    return found;
  };
  const refName = (ref: unknown, path: string): string => {
    if (typeof ref !== "string" || !ref.startsWith(REF_PREFIX)) throw new Error(`${path}: unsupported $ref ${ref}`);
    return ref.slice(REF_PREFIX.length);
  };
  /** Follows `$ref` and single-element `allOf` wrappers to the definition (for reading defaults and required). */
  const deref = (node: JsonSchema, path: string): JsonSchema => {
    let current = node;
    for (let hops = 0; hops < 64; hops++) {
      if (current.$ref !== undefined) current = lookup(refName(current.$ref, path), path);
      else if (Array.isArray(current.allOf) && current.allOf.length === 1 && isObject(current.allOf[0])) {
        current = current.allOf[0];
      } else return current;
    }
    throw new Error(`${path}: $ref chain too long`);
  };

  const convertRef = (name: string, stack: readonly string[], path: string): JsonSchema => {
    if (name === INT_OR_STRING_REF) {
      return { anyOf: [{ type: "integer" }, { type: "string" }], "x-kubernetes-int-or-string": true };
    }
    if (name === QUANTITY_REF) {
      return {
        anyOf: [{ type: "integer" }, { type: "string" }],
        pattern: QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": true,
      };
    }
    if (stack.includes(name)) {
      notes.push(`${path}: recursive reference to ${name} cut (unknown fields preserved)`);
      return { type: "object", "x-kubernetes-preserve-unknown-fields": true };
    }
    const definition = lookup(name, path);
    if (name === OBJECT_META_REF) {
      const properties = isObject(definition.properties) ? definition.properties : {};
      const kept: JsonSchema = {};
      for (const field of EMBEDDED_OBJECT_META_FIELDS) {
        const p = properties[field];
        if (isObject(p)) kept[field] = p;
      }
      return convert({ type: "object", properties: kept }, [...stack, name], path);
    }
    return convert(definition, [...stack, name], path);
  };

  const convert = (node: JsonSchema, stack: readonly string[], path: string): JsonSchema => {
    let out: JsonSchema;
    if (node.$ref !== undefined) {
      out = convertRef(refName(node.$ref, path), stack, path);
    } else if (node.allOf !== undefined) {
      if (!Array.isArray(node.allOf) || node.allOf.length !== 1 || !isObject(node.allOf[0])) {
        throw new Error(`${path}: allOf with more than one schema is not supported`);
      }
      out = convert(node.allOf[0], stack, path);
    } else if (node.oneOf !== undefined || node.anyOf !== undefined) {
      if (node.format === "int-or-string") return convertRef(INT_OR_STRING_REF, stack, path);
      throw new Error(`${path}: oneOf/anyOf is only supported for IntOrString and Quantity`);
    } else {
      out = convertTyped(node, stack, path);
    }
    for (const key of ["x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type"]) {
      if (node[key] !== undefined && out[key] === undefined) out[key] = node[key];
    }
    if (out.type === "array") fixListType(node, out, path);
    return out;
  };

  const convertTyped = (node: JsonSchema, stack: readonly string[], path: string): JsonSchema => {
    const type = node.type;
    if (typeof type !== "string") throw new Error(`${path}: no type`);
    const out: JsonSchema = { type };
    if (typeof node.format === "string") {
      if (node.format === "int-or-string") return convertRef(INT_OR_STRING_REF, stack, path);
      // String formats are dropped: date-time only occurs in metadata fields a template does not carry.
      if ((type === "integer" || type === "number") && NUMERIC_FORMATS.has(node.format)) out.format = node.format;
    }
    for (const key of COPIED_VALIDATIONS) if (node[key] !== undefined) out[key] = node[key];
    if (type === "object") {
      const properties = isObject(node.properties) ? node.properties : {};
      const names = Object.keys(properties);
      if (names.length > 0) {
        const converted: JsonSchema = {};
        for (const name of names) {
          const p = properties[name];
          if (!isObject(p)) throw new Error(`${path}.${name}: not a schema`);
          converted[name] = convert(p, stack, `${path}.${name}`);
        }
        out.properties = converted;
        const required = Array.isArray(node.required)
          ? node.required.filter((r): r is string => typeof r === "string" && r in converted)
          : [];
        if (required.length > 0) out.required = [...required].sort();
      } else if (isObject(node.additionalProperties)) {
        out.additionalProperties = convert(node.additionalProperties, stack, `${path}[*]`);
      } else {
        out["x-kubernetes-preserve-unknown-fields"] = true;
      }
    } else if (type === "array") {
      if (!isObject(node.items)) throw new Error(`${path}: array without items`);
      out.items = convert(node.items, stack, `${path}[*]`);
    }
    return out;
  };

  /** Keeps list-type map/set only where a CRD allows it; keeps the defaults of non-required map keys. */
  const fixListType = (source: JsonSchema, out: JsonSchema, path: string) => {
    const listType = out["x-kubernetes-list-type"];
    const items = isObject(out.items) ? out.items : {};
    const downgrade = (why: string) => {
      delete out["x-kubernetes-list-type"];
      delete out["x-kubernetes-list-map-keys"];
      notes.push(`${path}: list type ${String(listType)} dropped (${why}); the list is atomic`);
    };
    if (listType === "set" && !SCALAR_TYPES.has(String(items.type))) return downgrade("set items are not scalar");
    if (listType !== "map") {
      if (out["x-kubernetes-list-map-keys"] !== undefined) delete out["x-kubernetes-list-map-keys"];
      return;
    }
    const keys = out["x-kubernetes-list-map-keys"];
    const props = isObject(items.properties) ? items.properties : undefined;
    if (!Array.isArray(keys) || keys.length === 0 || items.type !== "object" || !props) {
      return downgrade("items are not objects with keys");
    }
    const required = new Set(Array.isArray(items.required) ? items.required : []);
    const sourceSchema = deref(source, path);
    const sourceItems = isObject(sourceSchema.items) ? deref(sourceSchema.items, path) : {};
    const sourceProps = isObject(sourceItems.properties) ? sourceItems.properties : {};
    for (const key of keys) {
      const prop = props[String(key)];
      if (!isObject(prop) || !SCALAR_TYPES.has(String(prop.type))) return downgrade(`key ${key} is not a scalar`);
      if (required.has(key)) continue;
      const sourceProp = sourceProps[String(key)];
      const fallback = isObject(sourceProp) ? sourceProp.default : undefined;
      if (fallback === undefined || isObject(fallback) || Array.isArray(fallback)) {
        return downgrade(`key ${key} is neither required nor defaulted`);
      }
      prop.default = fallback;
    }
  };

  const root = lookup(component, component);
  const schema = canonicalize(convert(root, [component], component)) as JsonSchema;
  return { schema, notes };
}

/** Sorts object keys recursively (arrays keep their order), so generated files are stable. */
export function canonicalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonicalize);
  if (!isObject(value)) return value;
  const out: JsonSchema = {};
  for (const key of Object.keys(value).sort()) {
    const v = value[key];
    if (v !== undefined) out[key] = canonicalize(v);
  }
  return out;
}

/** CRD schema keys this project emits; anything else is reported by {@link structuralProblems}. */
const KNOWN_KEYS = new Set([
  "type",
  "format",
  "description",
  "properties",
  "additionalProperties",
  "items",
  "required",
  "default",
  "anyOf",
  "nullable",
  ...COPIED_VALIDATIONS,
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-validations",
  "x-kubernetes-embedded-resource",
]);

export interface StructuralCheckOptions {
  /** Also report `description` keys (the pod template carries none). */
  forbidDescriptions?: boolean;
}

/**
 * The CRD structural-schema rules this project relies on, checked offline. Returns one message per problem,
 * each starting with the JSON path of the node; an empty list means the schema passes.
 */
export function structuralProblems(schema: JsonSchema, options: StructuralCheckOptions = {}): string[] {
  const problems: string[] = [];
  const visit = (node: JsonSchema, path: string) => {
    for (const key of Object.keys(node)) {
      if (!KNOWN_KEYS.has(key)) problems.push(`${path}: unexpected key ${key}`);
    }
    if (options.forbidDescriptions && node.description !== undefined) problems.push(`${path}: has a description`);
    const intOrString = node["x-kubernetes-int-or-string"] === true;
    if (intOrString) {
      const anyOf = JSON.stringify(node.anyOf);
      if (node.type !== undefined) problems.push(`${path}: int-or-string must not have a type`);
      if (anyOf !== JSON.stringify([{ type: "integer" }, { type: "string" }])) {
        problems.push(`${path}: int-or-string needs exactly anyOf [{type: integer}, {type: string}]`);
      }
    } else if (node.anyOf !== undefined) problems.push(`${path}: anyOf outside int-or-string`);
    if (node.type === undefined && !intOrString && node["x-kubernetes-preserve-unknown-fields"] !== true) {
      problems.push(`${path}: no type`);
    }
    const properties = isObject(node.properties) ? node.properties : undefined;
    if (properties && node.additionalProperties !== undefined) {
      problems.push(`${path}: properties and additionalProperties together`);
    }
    if (node.additionalProperties !== undefined && !isObject(node.additionalProperties)) {
      problems.push(`${path}: additionalProperties must be a schema`);
    }
    if (node.type === "array" && !isObject(node.items)) problems.push(`${path}: array without items`);
    if (node.default !== undefined && (isObject(node.default) || Array.isArray(node.default))) {
      if (JSON.stringify(node.default) !== "{}") problems.push(`${path}: non-scalar default`);
    }
    const listType = node["x-kubernetes-list-type"];
    const items = isObject(node.items) ? node.items : undefined;
    if (listType === "map") {
      const keys = node["x-kubernetes-list-map-keys"];
      const itemProps = items && isObject(items.properties) ? items.properties : {};
      const required = new Set(items && Array.isArray(items.required) ? items.required : []);
      if (!Array.isArray(keys) || keys.length === 0) problems.push(`${path}: list-type map without keys`);
      else {
        for (const key of keys) {
          const prop = itemProps[String(key)];
          if (!isObject(prop)) problems.push(`${path}: list-map key ${key} is not an item property`);
          else if (!required.has(key) && prop.default === undefined) {
            problems.push(`${path}: list-map key ${key} is neither required nor defaulted`);
          }
        }
      }
    } else if (node["x-kubernetes-list-map-keys"] !== undefined) {
      problems.push(`${path}: list-map keys without list-type map`);
    }
    if (listType === "set" && items && !SCALAR_TYPES.has(String(items.type))) {
      problems.push(`${path}: list-type set with non-scalar items`);
    }
    if (node["x-kubernetes-map-type"] !== undefined && node.type !== "object") {
      problems.push(`${path}: map-type on a non-object`);
    }
    if (properties) for (const [k, v] of Object.entries(properties)) if (isObject(v)) visit(v, `${path}.${k}`);
    if (isObject(node.additionalProperties)) visit(node.additionalProperties, `${path}[*]`);
    if (items) visit(items, `${path}[*]`);
    if (Array.isArray(node.anyOf)) {
      node.anyOf.forEach((branch, i) => {
        if (isObject(branch)) visit(branch, `${path}.anyOf[${i}]`);
      });
    }
  };
  if (JSON.stringify(schema).includes('"$ref"')) problems.push("$: contains a $ref");
  visit(schema, "$");
  return problems;
}
