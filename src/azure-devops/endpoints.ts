/**
 * Where credentials may be sent (pure): the Azure DevOps hosts an organization URL may name, and the Microsoft
 * Entra authorities a client secret or a federated token may be sent to. The operator judges every resource with
 * these rules before it reads a secret or asks for a token, so a resource can never point a credential at a host
 * the installer did not allow; the registrator CLI uses the scheme rule.
 *
 * Rules:
 * 1. An organization URL must be an absolute URL without credentials, query or fragment.
 * 2. It must use https; http only when the operator allows it (`--azure-devops-allow-http`: an emulator, a lab
 *    Azure DevOps Server). Any other scheme is refused.
 * 3. Its host must match an allowed host pattern: `name` matches that host on any port, `name:port` only that
 *    port (the scheme's default port when the URL gives none), `*.suffix` exactly one more DNS label in front of
 *    `suffix` (as a TLS certificate wildcard does: `*.visualstudio.com` matches `contoso.visualstudio.com`, not
 *    `visualstudio.com` nor `a.b.visualstudio.com`). Host names compare in lower case. Default: `dev.azure.com`
 *    and `*.visualstudio.com` (Azure DevOps Services).
 * 4. An Entra authority host is an https URL (scheme, host, port, optional path; no credentials, query or
 *    fragment). One is allowed when it equals an allowed authority after normalisation (lower-case host, default
 *    port left out, trailing slashes dropped). Default: `https://login.microsoftonline.com` only.
 */

/** The hosts of Azure DevOps Services. */
export const DEFAULT_AZURE_DEVOPS_HOSTS: readonly string[] = ["dev.azure.com", "*.visualstudio.com"];
/** The public cloud's Entra authority. */
export const PUBLIC_CLOUD_AUTHORITY = "https://login.microsoftonline.com";

export type EndpointVerdict<T = string> = { ok: true; value: T } | { ok: false; reason: string; message: string };

const LABEL = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?";
const HOST_PATTERN = new RegExp(
  `^(?:\\*\\.)?(?:${LABEL})(?:\\.${LABEL})*(?::(\\d{1,5}))?$|^\\[[0-9a-f:.]+\\](?::(\\d{1,5}))?$`,
);

/**
 * Checks and normalises one allowed-host pattern (`dev.azure.com`, `*.visualstudio.com`, `tfs.example.com:8443`,
 * `127.0.0.1`, `[::1]:8080`): lower case, or a message saying what is wrong.
 */
export function parseHostPattern(text: string): EndpointVerdict {
  const pattern = text.trim().toLowerCase();
  const m = HOST_PATTERN.exec(pattern);
  if (!m) {
    return {
      ok: false,
      reason: "InvalidHostPattern",
      message: `${JSON.stringify(text)} is not a host pattern (a host name, "*." and a domain, or an IP address, each with an optional ":port"; no scheme or path)`,
    };
  }
  const port = m[1] ?? m[2];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
    return {
      ok: false,
      reason: "InvalidHostPattern",
      message: `${JSON.stringify(text)}: port ${port} is out of range`,
    };
  }
  return { ok: true, value: pattern };
}

const defaultPort = (protocol: string) => (protocol === "https:" ? "443" : protocol === "http:" ? "80" : "");

/** Whether a URL's host (and port) matches one allowed-host pattern (rule 3). */
export function hostMatches(url: URL, pattern: string): boolean {
  const p = pattern.toLowerCase();
  const portAt = p.startsWith("[") ? p.indexOf("]:") + 1 : p.lastIndexOf(":");
  const hasPort = portAt > 0 && /^\d+$/.test(p.slice(portAt + 1));
  const hostPart = hasPort ? p.slice(0, portAt) : p;
  if (hasPort && p.slice(portAt + 1) !== (url.port || defaultPort(url.protocol))) return false;
  const host = url.hostname.toLowerCase();
  if (hostPart.startsWith("*.")) {
    const suffix = hostPart.slice(1);
    if (!host.endsWith(suffix)) return false;
    const first = host.slice(0, host.length - suffix.length);
    return first !== "" && !first.includes(".");
  }
  return host === hostPart;
}

export interface OrganizationUrlRules {
  /** Allowed host patterns (rule 3), already checked with `parseHostPattern`. */
  hosts: readonly string[];
  /** Whether plain http is allowed (rule 2). */
  allowHttp: boolean;
}

/** Judges an organization URL before any credential is sent to it (rules 1 to 3). */
export function judgeOrganizationUrl(text: string, rules: OrganizationUrlRules): EndpointVerdict<URL> {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return {
      ok: false,
      reason: "OrganizationUrlNotAllowed",
      message: `the organization URL ${JSON.stringify(text)} is not a URL`,
    };
  }
  const shown = `${url.protocol}//${url.host}${url.pathname}`;
  if (url.username !== "" || url.password !== "") {
    return {
      ok: false,
      reason: "OrganizationUrlNotAllowed",
      message: `the organization URL ${shown} must not hold a user name or password (credentials go in a Secret)`,
    };
  }
  if (url.search !== "" || url.hash !== "") {
    return {
      ok: false,
      reason: "OrganizationUrlNotAllowed",
      message: `the organization URL ${shown} must not have a query or fragment`,
    };
  }
  if (url.protocol === "http:" && !rules.allowHttp) {
    return {
      ok: false,
      reason: "InsecureOrganizationUrl",
      message: `the organization URL ${shown} uses plain http, which would send the credential unencrypted; use https (the operator allows http only with --azure-devops-allow-http)`,
    };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return {
      ok: false,
      reason: "OrganizationUrlNotAllowed",
      message: `the organization URL ${shown} must use https`,
    };
  }
  if (!rules.hosts.some((p) => hostMatches(url, p))) {
    return {
      ok: false,
      reason: "OrganizationUrlNotAllowed",
      message: `the organization URL's host ${url.host} is not one the operator may send credentials to (allowed: ${rules.hosts.join(", ") || "none"}; the installer adds Azure DevOps Server hosts with --azure-devops-hosts)`,
    };
  }
  return { ok: true, value: url };
}

/** Normalises an Entra authority host (rule 4): `https://host[:port][/path]`, or a message. */
export function normalizeAuthority(text: string): EndpointVerdict {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return {
      ok: false,
      reason: "AuthorityHostNotAllowed",
      message: `the Entra authority host ${JSON.stringify(text)} is not a URL`,
    };
  }
  if (url.protocol !== "https:") {
    return {
      ok: false,
      reason: "AuthorityHostNotAllowed",
      message: `the Entra authority host ${url.protocol}//${url.host} must use https`,
    };
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    return {
      ok: false,
      reason: "AuthorityHostNotAllowed",
      message: `the Entra authority host ${url.origin} must be a plain https URL (no credentials, query or fragment)`,
    };
  }
  return { ok: true, value: `${url.origin}${url.pathname.replace(/\/+$/, "")}` };
}

/**
 * Judges the Entra authority a resource names (or, when it names none, the operator's default: the first allowed
 * one) against the allowed authorities (rule 4). The verdict's value is the normalised authority to use.
 */
export function judgeAuthority(given: string | undefined, allowed: readonly string[]): EndpointVerdict {
  const fallback = allowed[0];
  if (given === undefined || given.trim() === "") {
    return fallback === undefined
      ? {
          ok: false,
          reason: "AuthorityHostNotAllowed",
          message: "the operator allows no Entra authority (--entra-authority-hosts)",
        }
      : { ok: true, value: fallback };
  }
  const normalized = normalizeAuthority(given);
  const listed = `allowed: ${allowed.join(", ") || "none"}; the installer sets them with --entra-authority-hosts`;
  if (!normalized.ok) return { ...normalized, message: `${normalized.message} (${listed})` };
  if (!allowed.includes(normalized.value)) {
    return {
      ok: false,
      reason: "AuthorityHostNotAllowed",
      message: `the Entra authority host ${normalized.value} is not one the operator may send a client secret or federated token to (${listed})`,
    };
  }
  return normalized;
}
