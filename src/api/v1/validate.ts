/**
 * Runtime defaulting and validation of AutoScaledAgent resources, from the same TypeBox schema as the CRD.
 *
 * `validateAutoScaledAgent` does what the API server does, in its order: drop nulls, apply defaults, check the
 * schema, then the cross-field rules (rules.ts, the CRD's CEL rules). It also checks what the API server cannot
 * afford to (runtime-only; the operator reports these in status): durations within Go's range, capability sets that
 * differ only in letter case, empty capability names, and template volumes that clash with a cache volume.
 * Every message starts with the field path, e.g. `spec.podsWithCapabilities[1].maxCount: must be >= minCount (3 > 2)`.
 */
import { Kind, type TSchema } from "@sinclair/typebox";
import { type ValueError, ValueErrorType } from "@sinclair/typebox/errors";
import { Value } from "@sinclair/typebox/value";
import { API_VERSION, KIND } from "./constants.ts";
import { DURATION_PATTERN, parseDurationNanoseconds } from "./duration.ts";
import {
  atLeastOneContainer,
  authenticationRequired,
  capabilitySetKey,
  exactlyOneEntraCredential,
  minCountAtMostMaxCount,
  type Rule,
  standbyAtMostMaxCount,
  standbyWindowNotEmpty,
  UNIQUE_CAPABILITIES_MESSAGE,
  uniqueCapabilitySets,
  type Violation,
} from "./rules.ts";
import { AutoScaledAgentSchema, type DefaultedAutoScaledAgent, TIME_ZONE_PATTERN } from "./schema.ts";

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

export interface ValidateOptions {
  /**
   * Fields the schema does not know: "ignore" (default; what a client does with objects from a newer CRD) or
   * "error" (like `kubectl apply`'s strict field validation, for checking files people wrote).
   */
  unknownFields?: "ignore" | "error";
}

type Json = { [key: string]: unknown };
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** A deep copy without null-valued object fields (the API server drops those before defaulting). */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (!isObject(value)) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = withoutNulls(v);
  return out;
}

/**
 * A copy of `obj` with the CRD's defaults filled in (maxTerminatedPodsToKeep, the durations, each template's
 * minCount and capabilities, ...), as the API server stores it. Null fields are dropped. `obj` is not changed.
 */
export function applyDefaults<T>(obj: T): T {
  return Value.Default(AutoScaledAgentSchema, withoutNulls(obj)) as T;
}

function render(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

/** Turns a JSON pointer into a Kubernetes field path (`spec.list[1].map[key]`), using the schema to tell maps. */
export function fieldPath(pointer: string, schema: TSchema = AutoScaledAgentSchema): string {
  if (pointer === "") return "";
  const segments = pointer
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  let out = "";
  let node: TSchema | undefined = schema;
  for (const segment of segments) {
    const kind = node?.[Kind];
    if (kind === "Array") {
      out += `[${segment}]`;
      node = node?.items as TSchema | undefined;
    } else if (kind === "Record") {
      out += `[${segment}]`;
      node = Object.values((node?.patternProperties ?? {}) as Record<string, TSchema>)[0];
    } else {
      out += out === "" ? segment : `.${segment}`;
      const props = node?.properties as Record<string, TSchema> | undefined;
      node = props?.[segment];
    }
  }
  return out;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function describe(error: ValueError): string {
  const s = error.schema as Json;
  const v = error.value;
  const expected = typeof s["x-azp-expected"] === "string" ? (s["x-azp-expected"] as string) : undefined;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return "required";
    case ValueErrorType.Object:
      return `must be an object (got ${render(v)})`;
    case ValueErrorType.Array:
      return `must be a list (got ${render(v)})`;
    case ValueErrorType.String:
      return typeof v === "number" || typeof v === "boolean"
        ? `must be a string (got ${render(v)}; quote it in YAML: "${String(v)}")`
        : `must be a string (got ${render(v)})`;
    case ValueErrorType.StringPattern:
      return `must be ${expected ?? `a string matching ${s.pattern}`} (got ${render(v)})`;
    case ValueErrorType.StringMinLength:
      return s.minLength === 1 ? "must not be empty" : `must be at least ${plural(s.minLength as number, "character")}`;
    case ValueErrorType.StringMaxLength:
      return `must be at most ${plural(s.maxLength as number, "character")} (got ${(v as string).length})`;
    case ValueErrorType.Integer:
      return `must be an integer (got ${render(v)})`;
    case ValueErrorType.Number:
      return `must be a number (got ${render(v)})`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `must be >= ${s.minimum} (got ${render(v)})`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `must be <= ${s.maximum} (got ${render(v)})`;
    case ValueErrorType.Boolean:
      return `must be true or false (got ${render(v)})`;
    case ValueErrorType.ArrayMinItems:
      return s.minItems === 1 ? "must have at least one entry" : `must have at least ${s.minItems} entries`;
    case ValueErrorType.ArrayMaxItems:
      return `must have at most ${plural(s.maxItems as number, "entry").replace("entrys", "entries")} (got ${(v as unknown[]).length})`;
    case ValueErrorType.ObjectMaxProperties:
      return `must have at most ${s.maxProperties} entries (got ${Object.keys(v as object).length})`;
    case ValueErrorType.ObjectMinProperties:
      return `must have at least ${s.minProperties} entries`;
    case ValueErrorType.Union:
      return `must be ${expected ?? "one of the allowed forms"} (got ${render(v)})`;
    default:
      return `${error.message} (got ${render(v)})`;
  }
}

function schemaErrors(value: unknown, schema: TSchema = AutoScaledAgentSchema): string[] {
  const errors: string[] = [];
  const required = new Set<string>();
  for (const error of Value.Errors(schema, value)) {
    if (error.type === ValueErrorType.ObjectRequiredProperty) required.add(error.path);
    else if (error.value === undefined && required.has(error.path)) continue;
    const path = fieldPath(error.path, schema);
    errors.push(path === "" ? describe(error) : `${path}: ${describe(error)}`);
  }
  return errors;
}

/** Duplicates in lists the API server treats as maps (by their keys) or sets, as it refuses them. */
function duplicateErrors(schema: TSchema, list: unknown[], path: string, out: string[]): void {
  const listType = schema["x-kubernetes-list-type"];
  if (listType !== "map" && listType !== "set") return;
  const keys = listType === "map" ? ((schema["x-kubernetes-list-map-keys"] ?? []) as string[]) : [];
  const first = new Map<string, number>();
  list.forEach((item, i) => {
    if (listType === "map" && !isObject(item)) return;
    const identity = JSON.stringify(listType === "map" ? keys.map((k) => (item as Json)[k]) : item);
    const earlier = first.get(identity);
    if (earlier === undefined) {
      first.set(identity, i);
      return;
    }
    const what = listType === "map" ? keys.map((k) => `${k} ${render((item as Json)[k])}`).join(", ") : render(item);
    out.push(`${path}[${i}]: duplicate entry (${what}, as in ${path}[${earlier}])`);
  });
}

/** Unknown fields (when asked for), enum values and list duplicates, which TypeBox's checks do not cover. */
function walkErrors(schema: TSchema | undefined, value: unknown, path: string, unknown: boolean, out: string[]): void {
  if (!schema || value === undefined) return;
  const kind = schema[Kind];
  if (Array.isArray(schema.enum) && typeof value === "string" && !schema.enum.includes(value)) {
    out.push(`${path}: must be one of ${schema.enum.join(", ")} (got ${render(value)})`);
  }
  if (kind === "Array" && Array.isArray(value)) {
    value.forEach((item, i) => {
      walkErrors(schema.items as TSchema, item, `${path}[${i}]`, unknown, out);
    });
    duplicateErrors(schema, value, path, out);
  } else if (kind === "Record" && isObject(value)) {
    const valueSchema = Object.values((schema.patternProperties ?? {}) as Record<string, TSchema>)[0];
    for (const [k, v] of Object.entries(value)) walkErrors(valueSchema, v, `${path}[${k}]`, unknown, out);
  } else if (kind === "Object" && isObject(value)) {
    const props = (schema.properties ?? {}) as Record<string, TSchema>;
    const open = schema.additionalProperties === true || schema["x-kubernetes-preserve-unknown-fields"] === true;
    for (const [k, v] of Object.entries(value)) {
      const child = path === "" ? k : `${path}.${k}`;
      const prop = props[k];
      if (prop) walkErrors(prop, v, child, unknown, out);
      else if (unknown && !open) {
        const similar = Object.keys(props).find((p) => p.toLowerCase() === k.toLowerCase());
        out.push(`${child}: unknown field${similar ? ` (did you mean ${similar}?)` : ""}`);
      }
    }
  }
}

function applyRule<T>(rule: Rule<T>, self: T, path: string, out: string[]): void {
  const prefix = rule.cel.reason === "FieldValueRequired" ? "required: " : "";
  for (const v of rule.check(self)) out.push(formatViolation(path, { ...v, message: `${prefix}${v.message}` }));
}

function formatViolation(path: string, v: Violation): string {
  const where = v.field.startsWith(".") && path === "" ? v.field.slice(1) : `${path}${v.field}`;
  return `${where}: ${v.message}`;
}

/** Whether this runtime knows the IANA time zone (the API server cannot check that; the operator does). */
export function isKnownTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

function timeZoneErrors(value: unknown, path: string, out: string[]): void {
  if (typeof value !== "string" || !new RegExp(TIME_ZONE_PATTERN).test(value) || isKnownTimeZone(value)) return;
  out.push(
    `${path}: unknown time zone ${JSON.stringify(value)} (an IANA time zone name such as "Europe/Berlin", "America/New_York" or "UTC")`,
  );
}

/** Standby: the CEL rules' TypeScript side, and time zones the runtime must know. */
function standbyErrors(entry: Json, at: string, out: string[]): void {
  const standby = entry.standby;
  if (!isObject(standby)) return;
  const schedules = Array.isArray(standby.schedules) ? standby.schedules : [];
  schedules.forEach((schedule, j) => {
    if (!isObject(schedule)) return;
    const where = `${at}.standby.schedules[${j}]`;
    if (typeof schedule.from === "string" && typeof schedule.to === "string") {
      applyRule(standbyWindowNotEmpty, { from: schedule.from, to: schedule.to }, where, out);
    }
    timeZoneErrors(schedule.timeZone, `${where}.timeZone`, out);
  });
  const comparable = schedules.every((s) => isObject(s) && Number.isInteger(s.minCount));
  if (Number.isInteger(entry.maxCount) && comparable) {
    applyRule(
      standbyAtMostMaxCount,
      { maxCount: entry.maxCount as number, standby: { schedules: schedules as { minCount: number }[] } },
      at,
      out,
    );
  }
  if (isObject(standby.predictive))
    timeZoneErrors(standby.predictive.timeZone, `${at}.standby.predictive.timeZone`, out);
}

const isStringMap = (v: unknown): v is Record<string, string> =>
  isObject(v) && Object.values(v).every((x) => typeof x === "string");

/** The CEL rules' TypeScript side, plus the runtime-only checks. Guards keep malformed parts from throwing. */
function ruleErrors(obj: Json): string[] {
  const out: string[] = [];
  const spec = obj.spec;
  if (!isObject(spec)) return out;
  const durationPattern = new RegExp(DURATION_PATTERN);
  applyRule(authenticationRequired, spec, "spec", out);
  for (const key of [
    "agentMinIdlePeriod",
    "dummyAgentGarbageCollectionInterval",
    "dummyAgentDeletionMinAge",
    "normalOfflineAgentDeletionMinAge",
  ]) {
    const text = spec[key];
    // Only what the pattern admits: the schema check already reported the rest. This catches overflow.
    if (typeof text !== "string" || !durationPattern.test(text)) continue;
    try {
      parseDurationNanoseconds(text);
    } catch (err) {
      out.push(`spec.${key}: ${(err as Error).message}`);
    }
  }
  if (isObject(spec.entraIdAuthentication)) {
    applyRule(exactlyOneEntraCredential, spec.entraIdAuthentication, "spec.entraIdAuthentication", out);
  }
  const cacheNames = new Set<string>();
  if (Array.isArray(spec.reusableCacheVolumes)) {
    for (const volume of spec.reusableCacheVolumes) {
      if (isObject(volume) && typeof volume.name === "string") cacheNames.add(volume.name);
    }
  }
  const templates = spec.podsWithCapabilities;
  if (!Array.isArray(templates)) return out;
  const path = "spec.podsWithCapabilities";
  const comparable = templates.every(
    (t) => isObject(t) && (t.capabilities === undefined || isStringMap(t.capabilities)),
  );
  if (comparable) {
    const entries = templates as { capabilities?: Record<string, string> }[];
    const exact = uniqueCapabilitySets.check(entries);
    for (const v of exact) out.push(formatViolation(path, v));
    const exactDuplicates = new Set(exact.map((v) => v.field));
    const seen = new Map<string, number>();
    entries.forEach((entry, i) => {
      const key = capabilitySetKey(entry.capabilities, true);
      const earlier = seen.get(key);
      if (earlier === undefined) seen.set(key, i);
      else if (!exactDuplicates.has(`[${i}].capabilities`)) {
        out.push(
          `${path}[${i}].capabilities: ${UNIQUE_CAPABILITIES_MESSAGE}; the same as podsWithCapabilities[${earlier}] apart from letter case, and Azure DevOps compares capabilities case-insensitively`,
        );
      }
    });
  }
  templates.forEach((entry, i) => {
    if (!isObject(entry)) return;
    const at = `${path}[${i}]`;
    if (isStringMap(entry.capabilities) && Object.keys(entry.capabilities).some((k) => k.trim() === "")) {
      out.push(`${at}.capabilities: capability names must not be empty`);
    }
    const min = entry.minCount ?? 0;
    if (Number.isInteger(min) && Number.isInteger(entry.maxCount)) {
      applyRule(minCountAtMostMaxCount, { minCount: min as number, maxCount: entry.maxCount as number }, at, out);
    }
    standbyErrors(entry, at, out);
    const template = entry.podTemplateSpec;
    if (!isObject(template)) return;
    const podSpec = template.spec;
    if (
      podSpec === undefined ||
      (isObject(podSpec) && (podSpec.containers === undefined || Array.isArray(podSpec.containers)))
    ) {
      applyRule(atLeastOneContainer, template as { spec?: { containers?: unknown[] } }, `${at}.podTemplateSpec`, out);
    }
    if (isObject(podSpec) && Array.isArray(podSpec.volumes)) {
      podSpec.volumes.forEach((volume, j) => {
        if (isObject(volume) && typeof volume.name === "string" && cacheNames.has(volume.name)) {
          out.push(
            `${at}.podTemplateSpec.spec.volumes[${j}].name: ${JSON.stringify(volume.name)} is a reusableCacheVolumes entry; the operator adds that volume (a PersistentVolumeClaim) itself, so the template must not define it`,
          );
        }
      });
    }
  });
  return out;
}

/**
 * Defaults and validates an AutoScaledAgent. On success, `value` is a defaulted copy; on failure, `errors` holds
 * one message per problem, each starting with the field path.
 */
export function validateAutoScaledAgent(
  obj: unknown,
  options: ValidateOptions = {},
): ValidationResult<DefaultedAutoScaledAgent> {
  if (!isObject(obj)) return { ok: false, errors: [`must be an object (an ${KIND} resource), got ${render(obj)}`] };
  const value = applyDefaults(obj) as Json;
  const errors: string[] = [];
  if (value.apiVersion !== undefined && value.apiVersion !== API_VERSION) {
    errors.push(`apiVersion: must be ${API_VERSION} (got ${render(value.apiVersion)})`);
  }
  if (value.kind !== undefined && value.kind !== KIND) errors.push(`kind: must be ${KIND} (got ${render(value.kind)})`);
  errors.push(...schemaErrors(value));
  walkErrors(AutoScaledAgentSchema, value, "", options.unknownFields === "error", errors);
  errors.push(...ruleErrors(value));
  const unique = [...new Set(errors)];
  return unique.length === 0 ? { ok: true, value: value as DefaultedAutoScaledAgent } : { ok: false, errors: unique };
}

/** The pod template's schema, as it sits in the AutoScaledAgent schema. */
function podTemplateSchema(): TSchema {
  const spec = AutoScaledAgentSchema.properties.spec;
  return spec.properties.podsWithCapabilities.items.properties.podTemplateSpec as TSchema;
}

/**
 * Checks a pod template (or a pod's `metadata` labels/annotations and `spec`) against the PodTemplateSpec schema of
 * the CRD, as the API server checks the field: types, patterns, required fields, enum values and list duplicates
 * (and unknown fields with `{ unknownFields: "error" }`). Returns one message per problem, each starting with the
 * field path (`spec.containers[0].name: required`); empty when valid.
 */
export function validatePodTemplateSpec(value: unknown, options: ValidateOptions = {}): string[] {
  const schema = podTemplateSchema();
  const cleaned = withoutNulls(value);
  const errors = [...schemaErrors(cleaned, schema)];
  walkErrors(schema, cleaned, "", options.unknownFields === "error", errors);
  return [...new Set(errors)];
}
