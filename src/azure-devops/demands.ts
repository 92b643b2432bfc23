/**
 * Azure Pipelines demands: parsing and judging them against a capability set, the way the service does.
 *
 * Pure: no I/O, no clock, no randomness. Behaviour follows the service's own demand model:
 * - a demand string is `NAME` (the capability must exist, whatever its value) or `NAME -OPERATOR VALUE`, where
 *   NAME holds no whitespace and VALUE is everything after the operator (it may contain spaces and commas);
 * - `-equals` compares values case-insensitively;
 * - `-gtVersion` means "capability version >= demanded version" (despite its name), versions compared like .NET's
 *   `System.Version` after dropping a `-suffix`;
 * - capability NAMES are compared case-insensitively: the service keeps an agent's capabilities in a dictionary
 *   with an ordinal ignore-case comparer, so a demand `java` is met by a capability `JAVA`.
 * Any other operator is kept as `unknown`: it is reported and never satisfied, so nothing is silently matched.
 *
 * Capability sets may hold `null` values: a capability the agent will report whose value is known only once it runs
 * (its name, its version, an environment variable set from a reference). Such a capability meets `NAME` (exists) and
 * nothing else: the operator cannot promise a value it does not know.
 */

/** The capability name of the demand the service adds to (practically) every job. */
export const AGENT_VERSION_CAPABILITY = "Agent.Version";

/** System capabilities every agent reports of itself, whatever its environment (its own values win). */
export const AGENT_NAME_CAPABILITY = "Agent.Name";
export const AGENT_OS_CAPABILITY = "Agent.OS";
export const AGENT_OS_ARCHITECTURE_CAPABILITY = "Agent.OSArchitecture";

/**
 * A capability set as judged here: name -> value, or `null` for a capability that is reported but whose value is not
 * known in advance.
 */
export type CapabilitySet = Readonly<Record<string, string | null>>;

/**
 * A demand that is not a template capability: it asks for extra containers in the agent pod, and is satisfied by
 * adding them (the pod's agent then advertises the same value as a capability).
 */
export const EXTRA_AGENT_CONTAINERS_CAPABILITY = "ExtraAgentContainers";

export type Demand =
  | { readonly kind: "exists"; readonly name: string; readonly raw: string }
  | { readonly kind: "equals"; readonly name: string; readonly value: string; readonly raw: string }
  | { readonly kind: "gtVersion"; readonly name: string; readonly value: string; readonly raw: string }
  | {
      readonly kind: "unknown";
      readonly name: string;
      readonly operator: string;
      readonly value: string;
      readonly raw: string;
    };

export type DemandParseErrorCode = "empty" | "malformed" | "missing-value";

/** A demand string that cannot be read. `input` is the string as received. */
export class DemandParseError extends Error {
  readonly input: string;
  readonly code: DemandParseErrorCode;

  constructor(input: string, code: DemandParseErrorCode, message: string) {
    super(message);
    this.name = "DemandParseError";
    this.input = input;
    this.code = code;
  }
}

export type DemandParseResult =
  | { readonly ok: true; readonly demand: Demand }
  | { readonly ok: false; readonly error: DemandParseError };

// NAME, then optionally: whitespace, "-", an operator without whitespace, whitespace, the value (rest of the line).
const demandPattern = /^(\S+)(?:\s+-(\S+)(?:\s+([\s\S]*))?)?$/;

/** Parses one demand string. Surrounding whitespace is ignored; the value keeps its inner spaces and commas. */
export function parseDemand(input: string): DemandParseResult {
  const text = input.trim();
  if (text === "") {
    return { ok: false, error: new DemandParseError(input, "empty", "empty demand") };
  }
  const m = demandPattern.exec(text);
  if (m === null) {
    return {
      ok: false,
      error: new DemandParseError(
        input,
        "malformed",
        `malformed demand ${JSON.stringify(input)}: expected "NAME" or "NAME -operator VALUE"`,
      ),
    };
  }
  const name = m[1] ?? "";
  const operator = m[2];
  if (operator === undefined) {
    return { ok: true, demand: { kind: "exists", name, raw: input } };
  }
  const value = m[3] ?? "";
  if (value.trim() === "") {
    return {
      ok: false,
      error: new DemandParseError(input, "missing-value", `demand ${JSON.stringify(input)} has no value`),
    };
  }
  switch (operator.toLowerCase()) {
    case "equals":
      return { ok: true, demand: { kind: "equals", name, value, raw: input } };
    case "gtversion":
      return { ok: true, demand: { kind: "gtVersion", name, value: value.trim(), raw: input } };
    default:
      return { ok: true, demand: { kind: "unknown", name, operator, value, raw: input } };
  }
}

/** Parses a job's demand list; malformed entries are returned as errors, never dropped silently. */
export function parseDemands(inputs: readonly string[]): { demands: Demand[]; errors: DemandParseError[] } {
  const demands: Demand[] = [];
  const errors: DemandParseError[] = [];
  for (const input of inputs) {
    const r = parseDemand(input);
    if (r.ok) demands.push(r.demand);
    else errors.push(r.error);
  }
  return { demands, errors };
}

/** Capability names compare case-insensitively (ordinal ignore-case in the service). */
export function sameCapabilityName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

export function isAgentVersionDemand(d: Demand): boolean {
  return d.kind === "gtVersion" && sameCapabilityName(d.name, AGENT_VERSION_CAPABILITY);
}

export function isExtraAgentContainersDemand(d: Demand): boolean {
  return sameCapabilityName(d.name, EXTRA_AGENT_CONTAINERS_CAPABILITY);
}

type ParsedVersion = readonly number[];

/**
 * Reads a version the way the service does: anything from the first `-` (after position 0) is dropped, then
 * 2 to 4 dot-separated non-negative integers. Returns null when it cannot be read.
 */
export function parseVersion(text: string): ParsedVersion | null {
  let s = text.trim();
  const dash = s.indexOf("-");
  if (dash > 0) s = s.slice(0, dash);
  const parts = s.split(".");
  if (parts.length < 2 || parts.length > 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p)) return null;
    const n = Number(p);
    if (n > 2147483647) return null;
    out.push(n);
  }
  return out;
}

/**
 * Compares two version strings: negative when a < b, 0 when equal, positive when a > b.
 * An unreadable version is lower than any readable one (two unreadable ones are equal). As in .NET, a missing
 * component is lower than 0, so "1.2" < "1.2.0".
 */
export function compareVersions(a: string, b: string): number {
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (va === null && vb === null) return 0;
  if (va === null) return -1;
  if (vb === null) return 1;
  for (let i = 0; i < 4; i++) {
    const x = va[i] ?? -1;
    const y = vb[i] ?? -1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export interface SatisfyOptions {
  /** Treat `Agent.Version -gtVersion X` as satisfied (the agent image decides the version, not the template). */
  readonly ignoreAgentVersion?: boolean;
  /** Treat `ExtraAgentContainers ...` as satisfied (it is met by adding containers, not by a capability). */
  readonly ignoreExtraAgentContainers?: boolean;
}

/**
 * Capability values by lower-case name, kept per capability set (sets are never changed once made: templates'
 * declared and reported capabilities, agents' reported ones), so that judging many jobs against a few templates
 * reads each set once.
 */
const byLowerName = new WeakMap<CapabilitySet, Map<string, (string | null)[]>>();

function capabilityValues(capabilities: CapabilitySet, name: string): readonly (string | null)[] {
  let index = byLowerName.get(capabilities);
  if (index === undefined) {
    index = new Map();
    for (const [k, v] of Object.entries(capabilities)) {
      const key = k.toLowerCase();
      const values = index.get(key);
      if (values === undefined) index.set(key, [v]);
      else values.push(v);
    }
    byLowerName.set(capabilities, index);
  }
  return index.get(name.toLowerCase()) ?? [];
}

/**
 * Whether a single demand is met by the capabilities (ignoring nothing). Unknown operators are never met; a
 * capability of unknown value (`null`) meets only `exists`.
 */
export function demandSatisfied(capabilities: CapabilitySet, demand: Demand): boolean {
  const values = capabilityValues(capabilities, demand.name);
  switch (demand.kind) {
    case "exists":
      return values.length > 0;
    case "equals": {
      const want = demand.value.toLowerCase();
      return values.some((v) => v !== null && v.toLowerCase() === want);
    }
    case "gtVersion":
      return values.some((v) => v !== null && compareVersions(demand.value, v) <= 0);
    case "unknown":
      return false;
  }
}

/** The demands the capabilities do not meet, in input order (after the ignore options). */
export function unsatisfiedDemands(
  capabilities: CapabilitySet,
  demands: readonly Demand[],
  options: SatisfyOptions = {},
): Demand[] {
  return demands.filter((d) => {
    if (options.ignoreAgentVersion && isAgentVersionDemand(d)) return false;
    if (options.ignoreExtraAgentContainers && isExtraAgentContainersDemand(d)) return false;
    return !demandSatisfied(capabilities, d);
  });
}

/** Whether the capabilities meet every demand, as Azure DevOps judges it (see the ignore options). */
export function satisfies(
  capabilities: CapabilitySet,
  demands: readonly Demand[],
  options: SatisfyOptions = {},
): boolean {
  for (const d of demands) {
    if (options.ignoreAgentVersion && isAgentVersionDemand(d)) continue;
    if (options.ignoreExtraAgentContainers && isExtraAgentContainersDemand(d)) continue;
    if (!demandSatisfied(capabilities, d)) return false;
  }
  return true;
}

export type ExtraAgentContainersDemand =
  | { readonly kind: "none" }
  | { readonly kind: "value"; readonly value: string }
  | { readonly kind: "invalid"; readonly message: string };

/**
 * The `ExtraAgentContainers -equals VALUE` demand of a job, as a raw string (parsing the container list is another
 * module's job). The same value given twice is fine; two different values, or the name without `-equals`, are
 * invalid: no single pod could satisfy them.
 */
export function extraAgentContainersDemand(demands: readonly Demand[]): ExtraAgentContainersDemand {
  const found = demands.filter(isExtraAgentContainersDemand);
  if (found.length === 0) return { kind: "none" };
  const values = new Set<string>();
  for (const d of found) {
    if (d.kind !== "equals") {
      return {
        kind: "invalid",
        message: `demand ${JSON.stringify(d.raw)}: ${EXTRA_AGENT_CONTAINERS_CAPABILITY} needs the form "${EXTRA_AGENT_CONTAINERS_CAPABILITY} -equals VALUE"`,
      };
    }
    values.add(d.value);
  }
  if (values.size > 1) {
    return {
      kind: "invalid",
      message: `conflicting ${EXTRA_AGENT_CONTAINERS_CAPABILITY} demands: ${[...values].map((v) => JSON.stringify(v)).join(", ")}`,
    };
  }
  return { kind: "value", value: [...values][0] ?? "" };
}
