/**
 * The capabilities an entry's agent will report, as far as they are known before its pod runs (contract 2).
 *
 * Azure DevOps judges a job's demands against every capability an agent reports, not only the ones a template
 * declares. The real agent reports its environment variables (minus an ignore list and values of 1024 characters or
 * more), then its own system capabilities, which come last and win: `Agent.Name`, `Agent.OS`,
 * `Agent.OSArchitecture`, `Agent.Version` (and a few that nothing here can know: `Agent.ComputerName`,
 * `Agent.HomeDirectory`, `InteractiveSession`). Matching and placeholders use the set computed here, by these rules:
 *
 * 1. Environment: each variable of the template's agent container (the first container) with a literal `value` is
 *    reported with that value, after Kubernetes' expansion (`$$` is `$`); a value that refers to another variable
 *    (`$(NAME)`) is reported with a value known only when the pod runs. Not counted: `valueFrom` and `envFrom`
 *    (resolved at run time; they may even be absent), the image's own variables (not visible here), the entrypoint's
 *    settings (`AZP_*`, `VSTS_AGENT_INPUT_*`, `VSO_AGENT_IGNORE`: the operator sets or replaces them), the names the
 *    agent ignores (its fixed list and the template's own `VSO_AGENT_IGNORE`), values of 1024 characters or more.
 * 2. Declared: the entry's `capabilities` (they become environment variables of the agent, replacing a template
 *    variable of the same name) win over rule 1.
 * 3. `Agent.Name` is the pod's name: reported, value unknown in advance. A declared value is never advertised
 *    (reported in `overridden`).
 * 4. `Agent.Version`: the agent image decides it: reported, value unknown, unless the entry declares it (the operator
 *    cannot see the image, so a declared version is trusted).
 * 5. `Agent.OS`: from `spec.os.name` (`linux` -> `Linux`, `windows` -> `Windows_NT`, as the agent reports Windows);
 *    else from the one `kubernetes.io/os` value the pod can be scheduled on (nodeSelector and required node
 *    affinity); else `Linux` when nothing selects an OS. Several possible values: unknown, unless declared.
 * 6. `Agent.OSArchitecture`: from the one `kubernetes.io/arch` value the pod can be scheduled on (`amd64` -> `X64`,
 *    `arm64` -> `ARM64`, `arm` -> `ARM`, `386` -> `X86`); unconstrained, several values or another architecture:
 *    unknown, unless declared.
 * 7. A declared `Agent.OS` or `Agent.OSArchitecture` that differs (ignoring case) from the value rules 5 and 6 find is
 *    replaced by that value, as the agent replaces it, and reported in `overridden`.
 * Capability names compare case-insensitively throughout, as the service compares them.
 * Pure: no I/O; the pod template is read defensively (it is `unknown` here, to keep this folder free of the API types).
 */
import {
  AGENT_NAME_CAPABILITY,
  AGENT_OS_ARCHITECTURE_CAPABILITY,
  AGENT_OS_CAPABILITY,
  AGENT_VERSION_CAPABILITY,
  type CapabilitySet,
  sameCapabilityName,
} from "../azure-devops/demands.ts";

/** The node labels that say a node's OS and architecture (the kubelet sets both, and the beta ones). */
export const OS_LABELS = ["kubernetes.io/os", "beta.kubernetes.io/os"] as const;
export const ARCH_LABELS = ["kubernetes.io/arch", "beta.kubernetes.io/arch"] as const;

/** `Agent.OS` by Kubernetes OS name. On Windows the agent reports its `OS` environment variable: `Windows_NT`. */
export const AGENT_OS_BY_KUBERNETES_OS: Readonly<Record<string, string>> = { linux: "Linux", windows: "Windows_NT" };

/** `Agent.OSArchitecture` (.NET's process architecture names) by Kubernetes architecture. */
export const AGENT_OS_ARCHITECTURE_BY_KUBERNETES_ARCH: Readonly<Record<string, string>> = {
  amd64: "X64",
  arm64: "ARM64",
  arm: "ARM",
  "386": "X86",
};

/** Environment variables the agent never reports (its fixed list; compared exactly, as on Linux). */
export const AGENT_IGNORED_ENV: readonly string[] = [
  "comp_wordbreaks",
  "ls_colors",
  "TERM",
  "TERM_PROGRAM",
  "TERM_PROGRAM_VERSION",
  "SHLVL",
  "PSMODULEPATH",
  "SYSTEM_ACCESSTOKEN",
];

/** The agent skips environment variables whose value has this many characters or more. */
export const MAX_ENV_CAPABILITY_LENGTH = 1024;

/** What the agent of an entry's pods reports about its platform, with where the value comes from (for messages). */
export interface AgentPlatform {
  /** `Agent.OS`, or null when the pod template leaves it open. */
  readonly os: string | null;
  readonly osFrom: string;
  /** `Agent.OSArchitecture`, or null when the pod template leaves it open. */
  readonly osArchitecture: string | null;
  readonly osArchitectureFrom: string;
}

export interface OverriddenCapability {
  /** The declared name, as written. */
  readonly name: string;
  readonly declared: string;
  /** What the agent reports instead; null when known only once the pod runs. */
  readonly reported: string | null;
  readonly message: string;
}

export interface ReportedCapabilities {
  /** Every capability the agent will report that is known in advance; null: reported, value known only at run time. */
  readonly capabilities: Record<string, string | null>;
  /** Declared capabilities the agent replaces with its own value (rules 3 and 7). */
  readonly overridden: readonly OverriddenCapability[];
  readonly platform: AgentPlatform;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const strings = (v: unknown): string[] => arr(v).filter((x): x is string => typeof x === "string");

/** Values of a set of keys that a term's match expressions allow; null: any value. */
function termAllows(term: unknown, keys: readonly string[]): Set<string> | null {
  let allowed: string[] | null = null;
  const denied = new Set<string>();
  for (const e of arr(obj(term).matchExpressions)) {
    const x = obj(e);
    if (typeof x.key !== "string" || !keys.includes(x.key)) continue;
    const values = strings(x.values);
    switch (x.operator) {
      case "In":
        allowed = (allowed ?? values).filter((v) => values.includes(v));
        break;
      case "NotIn":
        for (const v of values) denied.add(v);
        break;
      case "DoesNotExist":
        // Every node carries the OS and architecture labels: such a term selects no node.
        allowed = [];
        break;
      default:
        // Exists, Gt, Lt: no particular value.
        break;
    }
  }
  if (allowed === null) return null;
  return new Set(allowed.filter((v) => !denied.has(v)));
}

/**
 * The values of a node label (any of `keys`, e.g. the label and its beta twin) that nodes able to run the pod may
 * have, judging `spec.nodeSelector` and `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`
 * as the scheduler does (selector AND any one of the terms; expressions of a term ANDed). Sorted; null when the pod
 * template does not narrow the label down to a list of values (including `NotIn` alone).
 */
export function schedulableLabelValues(podSpec: unknown, keys: readonly string[]): string[] | null {
  const spec = obj(podSpec);
  const narrowings: Set<string>[] = [];
  const selector = obj(spec.nodeSelector);
  for (const key of keys) {
    const v = selector[key];
    if (typeof v === "string") narrowings.push(new Set([v]));
  }
  const terms = arr(
    obj(obj(obj(spec.affinity).nodeAffinity).requiredDuringSchedulingIgnoredDuringExecution).nodeSelectorTerms,
  );
  if (terms.length > 0) {
    const union = new Set<string>();
    let any = false;
    for (const term of terms) {
      const t = termAllows(term, keys);
      if (t === null) {
        any = true;
        break;
      }
      for (const v of t) union.add(v);
    }
    if (!any) narrowings.push(union);
  }
  const [first, ...rest] = narrowings;
  if (first === undefined) return null;
  return [...first].filter((v) => rest.every((n) => n.has(v))).sort();
}

function describeSelection(label: string, values: readonly string[]): string {
  if (values.length === 0) return `the pod template's node selection allows no ${label} value`;
  return `the pod template's node selection allows ${label} ${values.map((v) => JSON.stringify(v)).join(", ")}`;
}

/** `Agent.OS` and `Agent.OSArchitecture` of an entry's agents (rules 5 and 6). */
export function agentPlatform(podTemplate: unknown): AgentPlatform {
  const spec = obj(obj(podTemplate).spec);
  const osName = obj(spec.os).name;
  let os: string | null;
  let osFrom: string;
  if (typeof osName === "string") {
    os = AGENT_OS_BY_KUBERNETES_OS[osName] ?? null;
    osFrom = `spec.os.name is ${JSON.stringify(osName)}`;
  } else {
    const values = schedulableLabelValues(spec, OS_LABELS);
    if (values === null) {
      os = AGENT_OS_BY_KUBERNETES_OS.linux ?? "Linux";
      osFrom = "the pod template sets no spec.os.name and selects no kubernetes.io/os: Linux by default";
    } else {
      const only = values.length === 1 ? values[0] : undefined;
      os = only === undefined ? null : (AGENT_OS_BY_KUBERNETES_OS[only] ?? null);
      osFrom = describeSelection("kubernetes.io/os", values);
    }
  }
  const archValues = schedulableLabelValues(spec, ARCH_LABELS);
  let osArchitecture: string | null = null;
  let osArchitectureFrom: string;
  if (archValues === null) {
    osArchitectureFrom = "the pod template selects no kubernetes.io/arch (nodeSelector or required node affinity)";
  } else {
    const only = archValues.length === 1 ? archValues[0] : undefined;
    osArchitecture = only === undefined ? null : (AGENT_OS_ARCHITECTURE_BY_KUBERNETES_ARCH[only] ?? null);
    osArchitectureFrom = describeSelection("kubernetes.io/arch", archValues);
  }
  return { os, osFrom, osArchitecture, osArchitectureFrom };
}

/**
 * An environment value as the container sees it: Kubernetes turns `$$` into `$` and replaces `$(NAME)` with the
 * value of an earlier variable. Returns null when the value refers to a variable (its value is not known here).
 */
export function expandedEnvValue(value: string): string | null {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === "$" && value[i + 1] === "$") {
      out += "$";
      i++;
      continue;
    }
    if (c === "$" && value[i + 1] === "(" && value.indexOf(")", i + 2) > i + 2) return null;
    out += c;
  }
  return out;
}

/** Variables of the agent's entrypoint and of the operator: not capabilities anyone should match on (rule 1). */
function isEntrypointVariable(name: string): boolean {
  return name.startsWith("AZP_") || name.startsWith("VSTS_AGENT_INPUT_") || name === "VSO_AGENT_IGNORE";
}

/** Rule 1: the capabilities the template's agent container environment yields. */
export function environmentCapabilities(podTemplate: unknown): Record<string, string | null> {
  const [agent] = arr(obj(obj(podTemplate).spec).containers);
  const env = arr(obj(agent).env).map(obj);
  const ignored = new Set(AGENT_IGNORED_ENV);
  for (const e of env) {
    if (e.name === "VSO_AGENT_IGNORE" && typeof e.value === "string") {
      for (const n of e.value.split(",")) if (n.trim() !== "") ignored.add(n.trim());
    }
  }
  const out: Record<string, string | null> = {};
  for (const e of env) {
    const name = e.name;
    if (typeof name !== "string" || name === "" || e.valueFrom !== undefined || typeof e.value !== "string") continue;
    if (isEntrypointVariable(name) || ignored.has(name)) continue;
    const value = expandedEnvValue(e.value);
    if (value !== null && value.length >= MAX_ENV_CAPABILITY_LENGTH) continue;
    set(out, name, value);
  }
  return out;
}

/** Sets a capability, replacing one whose name differs only in case. */
function set(caps: Record<string, string | null>, name: string, value: string | null): void {
  for (const k of Object.keys(caps)) if (k !== name && sameCapabilityName(k, name)) delete caps[k];
  caps[name] = value;
}

function declaredEntry(declared: Readonly<Record<string, string>>, name: string): [string, string] | undefined {
  return Object.entries(declared).find(([k]) => sameCapabilityName(k, name));
}

/** The capabilities an entry's agent will report (rules 1 to 7), and the declared ones it replaces. */
export function reportedCapabilities(
  declared: Readonly<Record<string, string>>,
  podTemplate: unknown,
): ReportedCapabilities {
  const capabilities = environmentCapabilities(podTemplate);
  for (const [name, value] of Object.entries(declared)) set(capabilities, name, value);
  const overridden: OverriddenCapability[] = [];

  // Rule 3.
  const name = declaredEntry(declared, AGENT_NAME_CAPABILITY);
  if (name !== undefined) {
    overridden.push({
      name: name[0],
      declared: name[1],
      reported: null,
      message: `capability ${name[0]} is declared ${JSON.stringify(name[1])}, but every agent reports its own name (its pod's name) as ${AGENT_NAME_CAPABILITY}; the declared value is never advertised and is not matched on`,
    });
  }
  set(capabilities, AGENT_NAME_CAPABILITY, null);

  // Rule 4.
  const version = declaredEntry(declared, AGENT_VERSION_CAPABILITY);
  set(capabilities, version?.[0] ?? AGENT_VERSION_CAPABILITY, version?.[1] ?? null);

  // Rules 5 to 7.
  const platform = agentPlatform(podTemplate);
  const own = (capability: string, value: string | null, from: string) => {
    const d = declaredEntry(declared, capability);
    if (value === null) {
      set(capabilities, d?.[0] ?? capability, d?.[1] ?? null);
      return;
    }
    if (d !== undefined && d[1].toLowerCase() !== value.toLowerCase()) {
      overridden.push({
        name: d[0],
        declared: d[1],
        reported: value,
        message: `capability ${d[0]} is declared ${JSON.stringify(d[1])}, but the agent of these pods reports ${JSON.stringify(value)} (${from}); jobs are matched on ${JSON.stringify(value)}`,
      });
    }
    set(capabilities, capability, value);
  };
  own(AGENT_OS_CAPABILITY, platform.os, platform.osFrom);
  own(AGENT_OS_ARCHITECTURE_CAPABILITY, platform.osArchitecture, platform.osArchitectureFrom);
  return { capabilities, overridden, platform };
}

/** The reported capabilities of a template for matching: `reportedCapabilities` when known, else the declared. */
export function matchableCapabilities(template: {
  readonly capabilities: Readonly<Record<string, string>>;
  readonly reportedCapabilities?: CapabilitySet;
}): CapabilitySet {
  return template.reportedCapabilities ?? template.capabilities;
}
