/**
 * What every HTTP surface of the emulator shares: the context it runs in, the shape of an answer and how it is
 * written, the request log's draft entry, fault injection, and the parsing of query parameters and JSON bodies
 * the way the service binds them. The surfaces themselves are `service-api.ts` (the service's REST API),
 * `entra-api.ts` (Microsoft Entra ID) and `control-api.ts` (the emulator's control API); `server.ts` puts them
 * behind one request listener.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { sleep } from "./clock.ts";
import type { EmulatorControl, RequestLogEntry } from "./control.ts";
import { apiVersionInvalid, apiVersionMissing, argumentInvalid, argumentNull } from "./errors.ts";
import { decideFaults } from "./faults.ts";

export interface HttpContext {
  control: EmulatorControl;
  /** `http://127.0.0.1:PORT` */
  baseUrl: () => string;
  /** `https://127.0.0.1:PORT` of the HTTPS listener, when there is one. */
  httpsBaseUrl?: () => string | undefined;
  organizationUrl: () => string;
  random: () => number;
  /** How long a message long poll waits before answering "no message" (ms). */
  messagePollTimeoutMs: number;
  /** The largest page `$top` gets. */
  maxPageSize: number;
  log: (line: string) => void;
}

export interface Reply {
  status: number;
  /** JSON body; absent for an empty body. */
  body?: unknown;
  /** A non-JSON body (HTML pages). */
  text?: string;
  contentType?: string;
  headers?: Record<string, string | string[]>;
  /** Without the service's correlation headers (`ActivityId`, ...): Entra's answers. */
  plain?: boolean;
}

/** The connection is cut without an answer (an injected drop). */
export const dropped = Symbol("dropped");
export type Outcome = Reply | typeof dropped;

/** A request-log entry being filled in while the request runs. */
export type LogDraft = Omit<RequestLogEntry, "seq" | "status" | "durationMs">;

export function logDraft(ctx: HttpContext, method: string, url: URL): LogDraft {
  return {
    time: new Date(ctx.control.clock.now()).toISOString(),
    method,
    path: url.pathname,
    url: url.pathname + url.search,
  };
}

export const jsonType = "application/json; charset=utf-8; api-version=7.1";

/** Writes an answer: JSON or text body, Content-Length, and (unless `plain`) the service's correlation headers. */
export function send(res: ServerResponse, reply: Reply): void {
  if (res.destroyed) return;
  const headers: Record<string, string | string[]> = {
    ...(reply.plain ? {} : { ActivityId: randomUUID(), "X-TFS-Session": randomUUID(), "X-VSS-E2EID": randomUUID() }),
    ...(reply.headers ?? {}),
  };
  let payload: string | undefined;
  if (reply.text !== undefined) {
    payload = reply.text;
    headers["Content-Type"] = reply.contentType ?? "text/html; charset=utf-8";
  } else if (reply.body !== undefined) {
    payload = JSON.stringify(reply.body);
    headers["Content-Type"] = reply.contentType ?? jsonType;
  }
  if (payload !== undefined) headers["Content-Length"] = String(Buffer.byteLength(payload));
  else headers["Content-Length"] = "0";
  res.writeHead(reply.status, headers);
  res.end(payload);
}

/** The origin the client called: the HTTPS listener's or the plain one's. */
export function originOf(ctx: HttpContext, req: IncomingMessage): string {
  const encrypted = (req.socket as Partial<TLSSocket>).encrypted === true;
  return (encrypted ? ctx.httpsBaseUrl?.() : undefined) ?? ctx.baseUrl();
}

// ---- request parsing

export function param(url: URL, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of url.searchParams) if (k.toLowerCase() === lower) return v;
  return undefined;
}

export function boolParam(url: URL, name: string): boolean | undefined {
  const v = param(url, name);
  if (v === undefined || v === "") return undefined;
  if (/^true$/i.test(v)) return true;
  if (/^false$/i.test(v)) return false;
  throw argumentInvalid(`The value '${v}' is not valid for ${name}.`);
}

export function intParam(url: URL, name: string, min = 0): number | undefined {
  const v = param(url, name);
  if (v === undefined || v === "") return undefined;
  if (!/^-?\d+$/.test(v.trim()) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
    throw argumentInvalid(`The value '${v}' is not valid for ${name}.`);
  }
  return Number(v);
}

export function intListParam(url: URL, name: string): number[] | undefined {
  const v = param(url, name);
  if (v === undefined || v === "") return undefined;
  return v.split(",").map((part) => {
    if (!/^\d+$/.test(part.trim())) throw argumentInvalid(`The value '${v}' is not valid for ${name}.`);
    return Number(part.trim());
  });
}

export function pathId(value: string, name: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw argumentInvalid(`The value '${value}' is not valid for ${name}.`);
  }
  return Number(value);
}

const bodyLimit = 4 * 1024 * 1024;

export async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > bodyLimit) throw argumentInvalid("The request body is too large.");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Reads a JSON body the way the service binds it: a body it cannot read (empty, malformed, wrong types) is
 * "Value cannot be null. Parameter name: <parameter>". Null properties count as absent unless `keepNulls`.
 */
export async function readBody<T extends TSchema>(
  req: IncomingMessage,
  parameter: string,
  schema: T,
  options: { keepNulls?: boolean } = {},
): Promise<Static<T>> {
  const text = await readText(req);
  if (text.trim() === "") throw argumentNull(parameter, "empty request body");
  let value: unknown;
  try {
    value = options.keepNulls ? JSON.parse(text) : JSON.parse(text, (_k, v) => (v === null ? undefined : v));
  } catch (e) {
    throw argumentNull(parameter, `malformed JSON: ${(e as Error).message}`);
  }
  if (value === undefined || value === null) throw argumentNull(parameter, "the body is null");
  if (!Value.Check(schema, value)) {
    const first = Value.Errors(schema, value).First();
    throw argumentNull(parameter, first ? `${first.path || "/"}: ${first.message}` : "the body does not bind");
  }
  return value as Static<T>;
}

export function apiVersionOf(req: IncomingMessage, url: URL): string | undefined {
  const q = param(url, "api-version");
  if (q !== undefined) return q;
  const accept = req.headers.accept ?? "";
  const m = /api-version=([^;,\s]+)/i.exec(accept);
  return m?.[1];
}

export function requireApiVersion(req: IncomingMessage, url: URL, method: string): void {
  const version = apiVersionOf(req, url);
  if (version === undefined || version === "") {
    if (method !== "GET" && method !== "HEAD") throw apiVersionMissing(method);
    return;
  }
  if (!/^\d+\.\d+(-preview(\.\d+)?)?$/i.test(version)) throw apiVersionInvalid(version);
}

export function parseTime(value: string, name: string): number {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw argumentNull("request", `${name} '${value}' is not a date`);
  return t;
}

/** The service's list shape. */
export const list = (value: unknown[]) => ({ count: value.length, value });
/** A JSON answer of the control API. */
export const ok = (body: unknown, status = 200): Reply => ({
  status,
  body,
  contentType: "application/json; charset=utf-8",
});

export const ScopeSchema = Type.Union([Type.Literal("read"), Type.Literal("manage")]);

export interface InjectedFaults {
  drop: boolean;
  errorStatus: number | undefined;
  rateLimit: "delay" | "block" | undefined;
}

/**
 * Fault injection, the first step of the service and Entra surfaces: waits the rules' latency and says whether the
 * request is to be dropped or answered with an error (what to answer is the surface's business). Notes the fault
 * in the log draft.
 */
export async function injectFaults(
  ctx: HttpContext,
  method: string,
  url: URL,
  signal: AbortSignal,
  draft: LogDraft,
): Promise<InjectedFaults> {
  const control = ctx.control;
  const fault = decideFaults(control.faults(), method, url.pathname, ctx.random);
  if (fault.latencyMs > 0) {
    draft.fault = "latency";
    await sleep(control.clock, fault.latencyMs, signal).catch(() => undefined);
  }
  if (fault.drop) draft.fault = "dropped";
  else if (fault.errorStatus !== undefined) draft.fault = "error";
  return { drop: fault.drop, errorStatus: fault.errorStatus, rateLimit: fault.rateLimit };
}
