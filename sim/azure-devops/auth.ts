/**
 * Who is calling: PATs sent with HTTP Basic (any user name, the PAT as password) and bearer tokens (Microsoft
 * Entra ID in the real service). Each credential has a scope: `read` (Agent Pools: Read) or `manage`
 * (Agent Pools: Read & manage). Bearer tokens live in a pluggable store, so a token endpoint can issue them.
 */

import { createHash } from "node:crypto";

export type Scope = "read" | "manage";

export interface Identity {
  /** Stable id of the caller; the rate-limit budget is kept per identity. */
  id: string;
  displayName: string;
  scope: Scope;
  scheme: "basic" | "bearer";
}

export interface PatConfig {
  token: string;
  scope: Scope;
  /** A label for logs and the control API. Defaults to the identity. */
  name?: string;
  /** The user the PAT belongs to; PATs of one user share a rate-limit budget. Defaults to the name, else a hash. */
  identity?: string;
}

export interface BearerTokenInfo {
  identity: string;
  scope: Scope;
  displayName?: string;
  /** Epoch ms after which the token is refused (answered like a missing token). */
  expiresOn?: number;
}

/** Where bearer tokens are checked. The default is in memory; a token endpoint can bring its own. */
export interface BearerTokenStore {
  validate(token: string, now: number): BearerTokenInfo | undefined;
  add(token: string, info: BearerTokenInfo): void;
  remove(token: string): boolean;
  clear(): void;
  list(): Array<{ token: string } & BearerTokenInfo>;
}

export class InMemoryBearerTokenStore implements BearerTokenStore {
  #tokens = new Map<string, BearerTokenInfo>();

  validate(token: string, now: number): BearerTokenInfo | undefined {
    const info = this.#tokens.get(token);
    if (!info) return undefined;
    if (info.expiresOn !== undefined && info.expiresOn <= now) return undefined;
    return info;
  }

  add(token: string, info: BearerTokenInfo): void {
    this.#tokens.set(token, { ...info });
  }

  remove(token: string): boolean {
    return this.#tokens.delete(token);
  }

  clear(): void {
    this.#tokens.clear();
  }

  list(): Array<{ token: string } & BearerTokenInfo> {
    return [...this.#tokens].map(([token, info]) => ({ token, ...info }));
  }
}

/** A label that identifies a PAT without revealing it. */
export function patLabel(token: string): string {
  return `pat-${createHash("sha256").update(token).digest("hex").slice(0, 8)}`;
}

export class PatStore {
  #pats = new Map<string, Required<PatConfig>>();

  add(pat: PatConfig): Required<PatConfig> {
    if (!pat.token) throw new Error("a PAT must not be empty");
    const label = pat.name ?? pat.identity ?? patLabel(pat.token);
    const entry: Required<PatConfig> = {
      token: pat.token,
      scope: pat.scope,
      name: label,
      identity: pat.identity ?? label,
    };
    this.#pats.set(pat.token, entry);
    return entry;
  }

  get(token: string): Required<PatConfig> | undefined {
    return this.#pats.get(token);
  }

  remove(token: string): boolean {
    return this.#pats.delete(token);
  }

  clear(): void {
    this.#pats.clear();
  }

  list(): Required<PatConfig>[] {
    return [...this.#pats.values()];
  }
}

export type AuthResult =
  | { kind: "ok"; identity: Identity }
  /** No Authorization header. */
  | { kind: "anonymous" }
  /** Basic credentials with an unknown PAT. */
  | { kind: "bad-pat" }
  /** A bearer token the store does not accept (unknown or expired). */
  | { kind: "bad-bearer" }
  /** An Authorization header of another scheme, or one that cannot be decoded. */
  | { kind: "malformed" };

export function authenticate(
  header: string | undefined,
  pats: PatStore,
  bearer: BearerTokenStore,
  now: number,
): AuthResult {
  if (!header || header.trim() === "") return { kind: "anonymous" };
  const m = /^(\S+)\s+(.+)$/.exec(header.trim());
  if (!m) return { kind: "malformed" };
  const scheme = (m[1] as string).toLowerCase();
  const value = (m[2] as string).trim();
  if (scheme === "basic") {
    let decoded: string;
    try {
      decoded = Buffer.from(value, "base64").toString("utf8");
    } catch {
      return { kind: "malformed" };
    }
    const colon = decoded.indexOf(":");
    const token = colon >= 0 ? decoded.slice(colon + 1) : decoded;
    const pat = pats.get(token);
    if (!pat) return { kind: "bad-pat" };
    return { kind: "ok", identity: { id: pat.identity, displayName: pat.name, scope: pat.scope, scheme: "basic" } };
  }
  if (scheme === "bearer") {
    const info = bearer.validate(value, now);
    if (!info) return { kind: "bad-bearer" };
    return {
      kind: "ok",
      identity: {
        id: info.identity,
        displayName: info.displayName ?? info.identity,
        scope: info.scope,
        scheme: "bearer",
      },
    };
  }
  return { kind: "malformed" };
}

export const allows = (identity: Identity, needed: Scope) => needed === "read" || identity.scope === "manage";

/** What the service serves to a browser-less client whose bearer token it does not accept on GET (HTTP 203). */
export function signInPage(organizationUrl: string): string {
  return [
    "<!DOCTYPE html>",
    '<html lang="en">',
    '<head><meta charset="utf-8"><title>Azure DevOps Services | Sign In</title></head>',
    "<body>",
    "<h1>Sign in to Azure DevOps</h1>",
    `<p>You need to sign in to access ${escapeHtml(organizationUrl)}.</p>`,
    "<p>Your session has expired or your credentials were not accepted. Please sign in again.</p>",
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
