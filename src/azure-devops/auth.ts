/**
 * Credentials for Azure DevOps: a personal access token (HTTP Basic, empty user name) or a bearer token from an
 * injectable async provider (Microsoft Entra ID: service principal, managed or workload identity).
 *
 * Each credential has a stable identity key. Pollers and rate-limit budgets are shared per identity key, and the key
 * may appear in logs, metrics and map keys, so it never holds a secret: for a PAT it is a truncated SHA-256 of the
 * token, for a token provider it is the identity the provider names (e.g. tenant and client id).
 */
import { createHash } from "node:crypto";

/** A personal access token, sent as HTTP Basic with an empty user name and the token as password. */
export interface PatCredential {
  readonly kind: "pat";
  readonly pat: string;
}

/** A bearer token from a provider (refreshing is the provider's job). */
export interface TokenCredential {
  readonly kind: "token";
  /** Returns a currently valid access token; called before every request, so it should cache. */
  getToken(): Promise<string>;
  /** Who the tokens belong to, e.g. `entra:<tenant>/<client-id>`. Must not be a secret. */
  readonly identity: string;
  /**
   * What the provider authenticates with, as a non-secret fingerprint (a hash of a client secret, the service
   * account whose tokens are the assertion, the authority): two providers of one identity with different material
   * are different credentials (one may be revoked while the other works).
   */
  readonly material?: string;
  /**
   * Called when the service did not accept a token (401, or the 203 sign-in page): the provider should drop its
   * cached token. The client then tries the request once more with a fresh one.
   */
  invalidate?(): void;
}

export type Credential = PatCredential | TokenCredential;

/** A PAT credential. Surrounding whitespace (a trailing newline in a Secret) is removed: PATs hold none. */
export function patCredential(pat: string): PatCredential {
  const trimmed = pat.trim();
  if (trimmed === "") throw new TypeError("the personal access token is empty");
  return { kind: "pat", pat: trimmed };
}

/**
 * The stable, non-secret key of a credential: `pat:<16 hex digits of SHA-256(pat)>` or `token:<identity>`.
 * Two Secrets holding the same PAT give the same key, so they share one poller and one rate-limit budget.
 */
export function identityKey(credential: Credential): string {
  if (credential.kind === "pat") {
    return `pat:${createHash("sha256").update(credential.pat).digest("hex").slice(0, 16)}`;
  }
  return `token:${credential.identity}`;
}

/**
 * The key of the credential itself: its identity plus, for token providers, their material. Polls and clients are
 * shared per credential key (a rotated or different secret gets its own), rate-limit budgets per identity key.
 */
export function credentialKey(credential: Credential): string {
  const id = identityKey(credential);
  return credential.kind === "token" && credential.material ? `${id}#${credential.material}` : id;
}

/** A short non-secret fingerprint of some secret material (for `TokenCredential.material`). */
export function fingerprint(...parts: string[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 16);
}

/** The Authorization header value and the secrets it contains (for redaction). */
export interface AuthorizationHeader {
  readonly value: string;
  readonly secrets: readonly string[];
}

/** Builds the Authorization header. A token provider's failure propagates to the caller. */
export async function authorizationHeader(credential: Credential): Promise<AuthorizationHeader> {
  if (credential.kind === "pat") {
    const encoded = Buffer.from(`:${credential.pat}`).toString("base64");
    return { value: `Basic ${encoded}`, secrets: [credential.pat, encoded] };
  }
  const token = await credential.getToken();
  if (typeof token !== "string" || token.trim() === "") {
    throw new TypeError(`the token provider of ${credential.identity} returned no token`);
  }
  return { value: `Bearer ${token}`, secrets: [token] };
}

/** The secrets a credential holds that is known without calling a provider (the PAT and its Basic encoding). */
export function knownSecrets(credential: Credential): string[] {
  if (credential.kind !== "pat") return [];
  return [credential.pat, Buffer.from(`:${credential.pat}`).toString("base64")];
}

/** Replaces every occurrence of each secret (of 4 characters or more) with `***`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    out = out.split(secret).join("***");
  }
  return out;
}

/** How a credential is described in messages: never its value. */
export function describeCredential(credential: Credential): string {
  return credential.kind === "pat" ? "the personal access token" : `the access token of ${credential.identity}`;
}
