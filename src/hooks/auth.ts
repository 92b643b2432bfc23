/**
 * Basic authentication of service hook deliveries, pure: the `Authorization` header against the expected user name
 * and password (the ones typed into the subscription in Azure DevOps). Neither the expected nor the presented
 * password is ever part of a result, a message or a log field.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export interface BasicCredentials {
  readonly username: string;
  readonly password: string;
}

export type AuthFailure = "missing" | "scheme" | "malformed" | "mismatch";
export type AuthResult = { ok: true } | { ok: false; reason: AuthFailure };

/** Equal strings, in time that depends on neither their content nor their length (SHA-256 digests compared). */
export function constantTimeEqual(a: string, b: string): boolean {
  const da = createHash("sha256").update(a, "utf8").digest();
  const db = createHash("sha256").update(b, "utf8").digest();
  return timingSafeEqual(da, db);
}

/**
 * Checks an `Authorization` header. Rules:
 * 1. No header: `missing`.
 * 2. A scheme other than `Basic` (any case): `scheme`.
 * 3. Credentials that are not base64 of `user:password` (UTF-8; the first colon splits, a password may hold
 *    colons): `malformed`.
 * 4. User name and password are both compared, each in constant time, and both must match: else `mismatch`.
 * 5. Expected credentials with an empty user name or password never match (fail closed).
 */
export function checkBasicAuth(header: string | undefined, expected: BasicCredentials): AuthResult {
  if (header === undefined || header.trim() === "") return { ok: false, reason: "missing" };
  const match = /^\s*(\S+)\s+(\S+)\s*$/.exec(header);
  if (match?.[1]?.toLowerCase() !== "basic") {
    return { ok: false, reason: /^\s*basic\s*$/i.test(header) ? "malformed" : "scheme" };
  }
  const token = match[2] as string;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token) || token.length % 4 !== 0) return { ok: false, reason: "malformed" };
  const decoded = Buffer.from(token, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return { ok: false, reason: "malformed" };
  const user = constantTimeEqual(decoded.slice(0, colon), expected.username);
  const password = constantTimeEqual(decoded.slice(colon + 1), expected.password);
  const usable = expected.username !== "" && expected.password !== "";
  return user && password && usable ? { ok: true } : { ok: false, reason: "mismatch" };
}

/** The header a client sends (tests, documentation). */
export function basicAuthHeader(credentials: BasicCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, "utf8").toString("base64")}`;
}
