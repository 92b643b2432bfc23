/**
 * The API server's audit log as the chaos run uses it: a policy that records (at Metadata level, no bodies) every
 * write to agent pods, cache-volume PVCs and AutoScaledAgent status, and the parsing of its JSON lines. Each
 * operator replica authenticates with a client certificate of its own, so `user` names the replica that wrote.
 * Pure, except `AuditTail` (reads the file as it grows).
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";

export const auditPolicyYaml = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
    resources:
      - group: ""
        resources: ["pods", "persistentvolumeclaims"]
      - group: "azurepipelines.k8s.scaler.io"
        resources: ["autoscaledagents", "autoscaledagents/status"]
  - level: None
`;

export interface AuditRecord {
  /** requestReceivedTimestamp (epoch ms, sub-ms kept as a fraction). */
  at: number;
  user: string;
  verb: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** HTTP status of the answer. */
  code: number;
}

/** Epoch ms from an RFC 3339 timestamp with up to nanoseconds (Date.parse keeps milliseconds only). */
export function microTime(iso: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(iso);
  if (!m) return Date.parse(iso);
  const whole = Date.parse(`${m[1]}${m[3]}`);
  const frac = m[2] ? Number(`0.${m[2]}`) * 1000 : 0;
  return whole + frac;
}

/** One audit event (a JSON line), or undefined for other stages, other shapes and unreadable lines. */
export function parseAuditLine(line: string): AuditRecord | undefined {
  if (!line.trim()) return undefined;
  let e: {
    stage?: string;
    verb?: string;
    user?: { username?: string };
    objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
    responseStatus?: { code?: number };
    requestReceivedTimestamp?: string;
  };
  try {
    e = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (e.stage !== "ResponseComplete" || !e.objectRef?.resource || !e.verb || !e.requestReceivedTimestamp) {
    return undefined;
  }
  const r: AuditRecord = {
    at: microTime(e.requestReceivedTimestamp),
    user: e.user?.username ?? "",
    verb: e.verb,
    resource: e.objectRef.resource,
    code: e.responseStatus?.code ?? 0,
  };
  if (e.objectRef.subresource) r.subresource = e.objectRef.subresource;
  if (e.objectRef.namespace) r.namespace = e.objectRef.namespace;
  if (e.objectRef.name) r.name = e.objectRef.name;
  return r;
}

/** Reads the lines appended to a file since the last call (a partial last line waits for the next call). */
export class AuditTail {
  readonly #path: string;
  #offset = 0;
  #rest = "";

  constructor(path: string) {
    this.#path = path;
  }

  read(): AuditRecord[] {
    let size: number;
    try {
      size = statSync(this.#path).size;
    } catch {
      return [];
    }
    if (size <= this.#offset) return [];
    const fd = openSync(this.#path, "r");
    try {
      const buf = Buffer.alloc(size - this.#offset);
      const n = readSync(fd, buf, 0, buf.length, this.#offset);
      this.#offset += n;
      const text = this.#rest + buf.subarray(0, n).toString("utf8");
      const lines = text.split("\n");
      this.#rest = lines.pop() ?? "";
      return lines.flatMap((l) => parseAuditLine(l) ?? []);
    } finally {
      closeSync(fd);
    }
  }
}
