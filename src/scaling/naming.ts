/**
 * Names: placeholder ("dummy") agents per capability set, and agent pods. Deterministic; randomness comes in as
 * data (the pod name suffix).
 */

import { createHash } from "node:crypto";
import { compareStrings } from "../runtime/compare.ts";

/** Prefix of placeholder agent names, as in the original operator and its registrator CLI. */
export const PLACEHOLDER_AGENT_PREFIX = "dummy-agent";

/** Hex digest of a text; SHA-256 by default. */
export type HexHash = (text: string) => string;

export const sha256Hex: HexHash = (text) => createHash("sha256").update(text, "utf8").digest("hex");

/**
 * A canonical text of a capability set: entries sorted by name (code-unit order), JSON-encoded so that no two
 * different sets give the same text (unlike plain concatenation of names and values).
 */
export function canonicalCapabilities(capabilities: Readonly<Record<string, string>>): string {
  const entries = Object.entries(capabilities).sort(([a], [b]) => compareStrings(a, b));
  return JSON.stringify(entries);
}

/** A short stable key of a capability set (16 hex characters of its hash). */
export function capabilitySetKey(capabilities: Readonly<Record<string, string>>, hash: HexHash = sha256Hex): string {
  return hash(canonicalCapabilities(capabilities)).slice(0, 16);
}

/** The placeholder agent of a capability set: `dummy-agent-<16 hex>`. */
export function placeholderAgentName(
  capabilities: Readonly<Record<string, string>>,
  hash: HexHash = sha256Hex,
): string {
  return `${PLACEHOLDER_AGENT_PREFIX}-${capabilitySetKey(capabilities, hash)}`;
}

/** Whether an agent name looks like a placeholder (ours, the original's, or the registrator CLI's). */
export function isPlaceholderAgentName(name: string): boolean {
  return name === PLACEHOLDER_AGENT_PREFIX || name.startsWith(`${PLACEHOLDER_AGENT_PREFIX}-`);
}

const suffixAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";

/** Pod names double as host names and agent names: keep them a DNS label. */
export const MAX_POD_NAME_LENGTH = 63;

export const POD_NAME_SUFFIX_LENGTH = 5;

/** Turns random bytes (injected) into a pod-name suffix of [a-z0-9]; one byte per character. */
export function podNameSuffix(randomBytes: Uint8Array, length = POD_NAME_SUFFIX_LENGTH): string {
  if (randomBytes.length < length) {
    throw new RangeError(`podNameSuffix needs ${length} random bytes, got ${randomBytes.length}`);
  }
  let out = "";
  for (let i = 0; i < length; i++) out += suffixAlphabet[(randomBytes[i] ?? 0) % suffixAlphabet.length];
  return out;
}

/**
 * The deterministic part of a pod name: the resource name, cut so that prefix + suffix stay a DNS label,
 * without a trailing "-" or ".", followed by "-".
 */
export function podNamePrefix(resourceName: string, suffixLength = POD_NAME_SUFFIX_LENGTH): string {
  const room = MAX_POD_NAME_LENGTH - suffixLength - 1;
  const cut = resourceName.slice(0, room).replace(/[-.]+$/, "");
  return `${cut}-`;
}

/** `<resource>-<suffix>`, as the original operator named its pods (agent name = pod name). */
export function podName(resourceName: string, suffix: string): string {
  if (!/^[a-z0-9]+$/.test(suffix)) throw new RangeError(`pod name suffix must be [a-z0-9]+, got ${suffix}`);
  return `${podNamePrefix(resourceName, suffix.length)}${suffix}`;
}
