/**
 * Demands and capabilities the way Azure DevOps judges them.
 *
 * A demand is `NAME` (the capability must exist, whatever its value) or `NAME -OPERATOR VALUE`. The operators are
 * `equals` (values compared case-insensitively) and the service's own `gtVersion` (the capability, a dotted
 * version, must be at least VALUE; the service adds `Agent.Version -gtVersion X` to practically every job).
 * Values may contain spaces and commas. Capability names are compared case-insensitively.
 */

export type DemandOperator = "exists" | "equals" | "gtVersion";

export interface Demand {
  name: string;
  operator: DemandOperator;
  /** Absent for `exists`. */
  value?: string;
  /** The demand as written. */
  text: string;
}

export class DemandParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DemandParseError";
  }
}

const operators: Record<string, DemandOperator> = { equals: "equals", gtversion: "gtVersion", exists: "exists" };

/** Parses one demand string; throws DemandParseError for anything the service would not accept. */
export function parseDemand(text: string): Demand {
  const trimmed = text.trim();
  if (trimmed === "") throw new DemandParseError("a demand must not be empty");
  const m = /^(\S+)(?:\s+-(\S+)(?:\s+(.*))?)?$/s.exec(trimmed);
  if (!m) throw new DemandParseError(`malformed demand '${text}': expected 'NAME' or 'NAME -OPERATOR VALUE'`);
  const name = m[1] as string;
  const opText = m[2];
  if (opText === undefined) return { name, operator: "exists", text: trimmed };
  const operator = operators[opText.toLowerCase()];
  if (!operator) throw new DemandParseError(`unknown operator '-${opText}' in demand '${text}'`);
  if (operator === "exists") {
    if (m[3] !== undefined) throw new DemandParseError(`'-exists' takes no value in demand '${text}'`);
    return { name, operator, text: trimmed };
  }
  const value = m[3];
  if (value === undefined || value === "") throw new DemandParseError(`missing value in demand '${text}'`);
  if (operator === "gtVersion" && parseVersion(value) === undefined) {
    throw new DemandParseError(`'${value}' is not a version in demand '${text}'`);
  }
  return { name, operator, value, text: trimmed };
}

/** Parses a list of demands, reporting the first bad one. */
export function parseDemands(texts: readonly string[]): Demand[] {
  return texts.map(parseDemand);
}

/** `1.2.3` -> [1, 2, 3]; undefined when not a dotted number. */
export function parseVersion(text: string): number[] | undefined {
  const t = text.trim();
  if (!/^\d+(\.\d+)*$/.test(t)) return undefined;
  return t.split(".").map(Number);
}

/** Compares two dotted versions (missing parts count as 0); undefined when either is not a version. */
export function compareVersions(a: string, b: string): number | undefined {
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (!va || !vb) return undefined;
  for (let i = 0; i < Math.max(va.length, vb.length); i++) {
    const d = (va[i] ?? 0) - (vb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** Capabilities keyed by lower-cased name, so look-ups are case-insensitive. */
export type CapabilityIndex = ReadonlyMap<string, string>;

export interface CapabilitySource {
  /** The agent's version field; stands in for an `Agent.Version` capability the agent did not report. */
  version?: string;
  systemCapabilities?: Readonly<Record<string, string>>;
  userCapabilities?: Readonly<Record<string, string>>;
}

/** An agent's capabilities: system capabilities plus user capabilities (a user capability wins a name clash). */
export function capabilityIndex(source: CapabilitySource): CapabilityIndex {
  const index = new Map<string, string>();
  if (source.version) index.set("agent.version", source.version);
  for (const [k, v] of Object.entries(source.systemCapabilities ?? {})) index.set(k.toLowerCase(), v);
  for (const [k, v] of Object.entries(source.userCapabilities ?? {})) index.set(k.toLowerCase(), v);
  return index;
}

export function satisfiesDemand(capabilities: CapabilityIndex, demand: Demand): boolean {
  const value = capabilities.get(demand.name.toLowerCase());
  if (value === undefined) return false;
  switch (demand.operator) {
    case "exists":
      return true;
    case "equals":
      return value.toLowerCase() === (demand.value ?? "").toLowerCase();
    case "gtVersion": {
      const c = compareVersions(value, demand.value ?? "");
      return c !== undefined && c >= 0;
    }
  }
}

export function satisfiesAll(capabilities: CapabilityIndex, demands: readonly Demand[]): boolean {
  return demands.every((d) => satisfiesDemand(capabilities, d));
}
