/**
 * The emulator's HTTP layer: the service's REST API under `/{organization}/_apis/...` (operator-facing and
 * agent-facing), the Entra ID endpoints under `/{tenant}/v2.0/...` and `/{tenant}/oauth2/...`, and the control API
 * under `/_sim/`. Every service request goes through fault injection, the organization check, authentication, the
 * scope check, the api-version check (writes) and rate limiting, in that order, and is written to the request log
 * (Entra requests: fault injection, then the directory; logged too, never with their secrets). Nothing in here
 * decides platform behaviour: that is the engine (and the Entra directory).
 */
import { createHash, type JsonWebKey, randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { allows, authenticate, type Identity, type Scope, signInPage } from "./auth.ts";
import { sleep } from "./clock.ts";
import type { EmulatorControl, RequestLogEntry } from "./control.ts";
import { type Demand, DemandParseError, parseDemand } from "./demands.ts";
import { type AgentInput, type TaskResult, taskResults } from "./engine.ts";
import { EntraError, type EntraReply, isEntraPath, transientEntraError } from "./entra.ts";
import {
  accessDenied,
  apiVersionInvalid,
  apiVersionMissing,
  argumentInvalid,
  argumentNull,
  errorBody,
  injectedFault,
  internalError,
  methodNotAllowed,
  requestBlocked,
  resourceNotFound,
  ServiceError,
  sessionExpired,
} from "./errors.ts";
import { decideFaults, type FaultRule } from "./faults.ts";
import { agentReference, agentView, jobRequestView, poolView, type ViewContext } from "./views.ts";

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

interface Reply {
  status: number;
  /** JSON body; absent for an empty body. */
  body?: unknown;
  /** A non-JSON body (HTML pages). */
  text?: string;
  contentType?: string;
  headers?: Record<string, string | string[]>;
}

const dropped = Symbol("dropped");
type Outcome = Reply | typeof dropped;

type LogDraft = Omit<RequestLogEntry, "seq" | "status" | "durationMs">;

const jsonType = "application/json; charset=utf-8; api-version=7.1";

export function createRequestListener(ctx: HttpContext): RequestListener {
  return (req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      ctx.log(`azure-devops emulator: unexpected failure: ${(err as Error)?.stack ?? err}`);
      if (!res.headersSent) {
        res.writeHead(500, { "Content-Type": jsonType });
        res.end(JSON.stringify(errorBody(internalError(String(err)))));
      } else {
        res.destroy();
      }
    });
  };
}

async function handle(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const method = (req.method ?? "GET").toUpperCase();
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  const aborter = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) aborter.abort(new Error("the client went away"));
  });

  if (url.pathname === "/_sim" || url.pathname.startsWith("/_sim/")) {
    send(res, await controlRequest(ctx, req, method, url));
    return;
  }
  if (isEntraPath(url.pathname)) {
    await entraRequest(ctx, req, res, method, url, started, aborter.signal);
    return;
  }

  const draft: LogDraft = {
    time: new Date(ctx.control.clock.now()).toISOString(),
    method,
    path: url.pathname,
    url: url.pathname + url.search,
  };
  let outcome: Outcome;
  try {
    outcome = await serviceRequest(ctx, req, method, url, aborter.signal, draft);
  } catch (err) {
    outcome = errorReply(err, draft);
  }
  if (outcome === dropped) {
    req.socket.destroy();
    ctx.control.recordRequest({ ...draft, status: 0, durationMs: Math.round(performance.now() - started) });
    return;
  }
  if (aborter.signal.aborted) {
    ctx.control.recordRequest({ ...draft, status: 0, durationMs: Math.round(performance.now() - started) });
    return;
  }
  send(res, outcome);
  ctx.control.recordRequest({ ...draft, status: outcome.status, durationMs: Math.round(performance.now() - started) });
}

function send(res: ServerResponse, reply: Reply, options: { vssHeaders?: boolean } = {}): void {
  if (res.destroyed) return;
  const headers: Record<string, string | string[]> = {
    ...(options.vssHeaders === false
      ? {}
      : { ActivityId: randomUUID(), "X-TFS-Session": randomUUID(), "X-VSS-E2EID": randomUUID() }),
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
function originOf(ctx: HttpContext, req: IncomingMessage): string {
  const encrypted = (req.socket as Partial<TLSSocket>).encrypted === true;
  return (encrypted ? ctx.httpsBaseUrl?.() : undefined) ?? ctx.baseUrl();
}

/** The Entra ID endpoints: fault injection, then the directory. Logged without body (it holds the secrets). */
async function entraRequest(
  ctx: HttpContext,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  url: URL,
  started: number,
  signal: AbortSignal,
): Promise<void> {
  const control = ctx.control;
  const draft: LogDraft = {
    time: new Date(control.clock.now()).toISOString(),
    method,
    path: url.pathname,
    url: url.pathname + url.search,
  };
  const finish = (status: number) =>
    control.recordRequest({ ...draft, status, durationMs: Math.round(performance.now() - started) });
  const header = req.headers["client-request-id"];
  const correlationId = typeof header === "string" && header !== "" ? header : undefined;
  const request = {
    method,
    pathname: url.pathname,
    authorization: req.headers.authorization,
    origin: originOf(ctx, req),
    correlationId,
  };

  const fault = decideFaults(control.faults(), method, url.pathname, ctx.random);
  if (fault.latencyMs > 0) {
    draft.fault = "latency";
    await sleep(control.clock, fault.latencyMs, signal).catch(() => undefined);
  }
  if (fault.drop) {
    draft.fault = "dropped";
    req.socket.destroy();
    finish(0);
    return;
  }
  let reply: EntraReply | undefined;
  if (fault.errorStatus !== undefined) {
    draft.fault = "error";
    reply = control.entra.errorReply(transientEntraError(fault.errorStatus), request, {});
  } else {
    let form: URLSearchParams | undefined;
    if (method === "POST") {
      try {
        form = new URLSearchParams(await readText(req));
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err;
        reply = control.entra.errorReply(
          new EntraError(400, "invalid_request", 90014, "The request body is too large."),
          request,
          {},
        );
        form = undefined;
      }
      const fromForm = form?.get("client-request-id");
      if (request.correlationId === undefined && fromForm) request.correlationId = fromForm;
    }
    reply ??= control.entra.handle({ ...request, ...(form === undefined ? {} : { form }) });
  }
  if (reply === undefined) throw new Error("no Entra reply");
  if (reply.identity !== undefined) draft.identity = reply.identity;
  if (reply.error !== undefined) draft.error = reply.error;
  if (reply.detail !== undefined) draft.detail = reply.detail;
  if (signal.aborted) {
    finish(0);
    return;
  }
  send(
    res,
    {
      status: reply.status,
      body: reply.body,
      contentType: "application/json; charset=utf-8",
      ...(reply.headers ? { headers: reply.headers } : {}),
    },
    { vssHeaders: false },
  );
  finish(reply.status);
}

function errorReply(err: unknown, draft: LogDraft): Reply {
  const error =
    err instanceof ServiceError ? err : internalError(err instanceof Error ? (err.stack ?? err.message) : String(err));
  draft.error = error.typeKey;
  if (error.detail !== undefined) draft.detail = error.detail;
  return { status: error.status, body: errorBody(error) };
}

// ---- request helpers

function param(url: URL, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of url.searchParams) if (k.toLowerCase() === lower) return v;
  return undefined;
}

function boolParam(url: URL, name: string): boolean | undefined {
  const v = param(url, name);
  if (v === undefined || v === "") return undefined;
  if (/^true$/i.test(v)) return true;
  if (/^false$/i.test(v)) return false;
  throw argumentInvalid(`The value '${v}' is not valid for ${name}.`);
}

function intParam(url: URL, name: string, min = 0): number | undefined {
  const v = param(url, name);
  if (v === undefined || v === "") return undefined;
  if (!/^-?\d+$/.test(v.trim()) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
    throw argumentInvalid(`The value '${v}' is not valid for ${name}.`);
  }
  return Number(v);
}

function intListParam(url: URL, name: string): number[] | undefined {
  const v = param(url, name);
  if (v === undefined || v === "") return undefined;
  return v.split(",").map((part) => {
    if (!/^\d+$/.test(part.trim())) throw argumentInvalid(`The value '${v}' is not valid for ${name}.`);
    return Number(part.trim());
  });
}

function pathId(value: string, name: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw argumentInvalid(`The value '${value}' is not valid for ${name}.`);
  }
  return Number(value);
}

const bodyLimit = 4 * 1024 * 1024;

async function readText(req: IncomingMessage): Promise<string> {
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
async function readBody<T extends TSchema>(
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

function apiVersionOf(req: IncomingMessage, url: URL): string | undefined {
  const q = param(url, "api-version");
  if (q !== undefined) return q;
  const accept = req.headers.accept ?? "";
  const m = /api-version=([^;,\s]+)/i.exec(accept);
  return m?.[1];
}

function requireApiVersion(req: IncomingMessage, url: URL, method: string): void {
  const version = apiVersionOf(req, url);
  if (version === undefined || version === "") {
    if (method !== "GET" && method !== "HEAD") throw apiVersionMissing(method);
    return;
  }
  if (!/^\d+\.\d+(-preview(\.\d+)?)?$/i.test(version)) throw apiVersionInvalid(version);
}

// ---- schemas of request bodies

const StringMap = Type.Record(Type.String(), Type.String());

const AgentBody = Type.Object({
  id: Type.Optional(Type.Integer()),
  name: Type.Optional(Type.String()),
  version: Type.Optional(Type.String()),
  osDescription: Type.Optional(Type.String()),
  enabled: Type.Optional(Type.Boolean()),
  provisioningState: Type.Optional(Type.String()),
  maxParallelism: Type.Optional(Type.Integer({ minimum: 1 })),
  systemCapabilities: Type.Optional(StringMap),
  userCapabilities: Type.Optional(StringMap),
  authorization: Type.Optional(
    Type.Object({
      authorizationUrl: Type.Optional(Type.String()),
      clientId: Type.Optional(Type.String()),
      publicKey: Type.Optional(Type.Object({ exponent: Type.String(), modulus: Type.String() })),
    }),
  ),
  accessPoint: Type.Optional(Type.String()),
});

const SessionBody = Type.Object({
  sessionId: Type.Optional(Type.String()),
  ownerName: Type.Optional(Type.String()),
  agent: Type.Object({
    id: Type.Integer(),
    name: Type.Optional(Type.String()),
    version: Type.Optional(Type.String()),
    osDescription: Type.Optional(Type.String()),
  }),
  systemCapabilities: Type.Optional(StringMap),
  useFipsEncryption: Type.Optional(Type.Boolean()),
});

const JobRequestBody = Type.Object({
  requestId: Type.Optional(Type.Integer()),
  result: Type.Optional(Type.String()),
  finishTime: Type.Optional(Type.String()),
  lockedUntil: Type.Optional(Type.String()),
});

function agentInput(body: Static<typeof AgentBody>): AgentInput {
  const input: AgentInput = {};
  if (body.name !== undefined) input.name = body.name;
  if (body.version !== undefined) input.version = body.version;
  if (body.osDescription !== undefined) input.osDescription = body.osDescription;
  if (body.enabled !== undefined) input.enabled = body.enabled;
  if (body.provisioningState !== undefined) input.provisioningState = body.provisioningState;
  if (body.maxParallelism !== undefined) input.maxParallelism = body.maxParallelism;
  if (body.systemCapabilities !== undefined) input.systemCapabilities = body.systemCapabilities;
  if (body.userCapabilities !== undefined) input.userCapabilities = body.userCapabilities;
  if (body.authorization !== undefined) input.authorization = body.authorization;
  if (body.accessPoint !== undefined) input.accessPoint = body.accessPoint;
  return input;
}

function parseResult(value: string): TaskResult {
  const found = taskResults.find((r) => r.toLowerCase() === value.toLowerCase());
  if (!found) throw argumentNull("request", `unknown result '${value}'`);
  return found;
}

function parseTime(value: string, name: string): number {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw argumentNull("request", `${name} '${value}' is not a date`);
  return t;
}

/** A stable GUID-shaped id for an identity (connectionData). */
function identityGuid(id: string): string {
  const h = createHash("sha1").update(id).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

// ---- the service API

interface RouteContext {
  ctx: HttpContext;
  req: IncomingMessage;
  url: URL;
  params: string[];
  identity: Identity;
  signal: AbortSignal;
  view: ViewContext;
}

interface Route {
  method: string;
  pattern: RegExp;
  scope: Scope;
  /** For the 403 message. */
  action: string;
  handler: (rc: RouteContext) => Reply | Promise<Reply>;
}

const list = (value: unknown[]) => ({ count: value.length, value });

const pools = "_apis/distributedtask/pools";
const route = (method: string, path: string, scope: Scope, action: string, handler: Route["handler"]): Route => ({
  method,
  pattern: new RegExp(`^${path.replace(/\{\w+\}/g, "([^/]+)")}/?$`, "i"),
  scope,
  action,
  handler,
});

const poolIdOf = (rc: RouteContext) => pathId(rc.params[0] as string, "poolId");

function matchPoolName(pattern: string, name: string): boolean {
  if (!pattern.includes("*")) return pattern.toLowerCase() === name.toLowerCase();
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
    "i",
  );
  return re.test(name);
}

function demandsParam(url: URL): Demand[] | undefined {
  const v = param(url, "demands");
  if (v === undefined || v.trim() === "") return undefined;
  try {
    return v
      .split(",")
      .filter((d) => d.trim() !== "")
      .map(parseDemand);
  } catch (e) {
    if (e instanceof DemandParseError) throw argumentInvalid(e.message);
    throw e;
  }
}

const routes: Route[] = [
  route("GET", "_apis/connectionData", "read", "read connection data", (rc) => {
    const user = {
      id: identityGuid(rc.identity.id),
      descriptor: `sim.${Buffer.from(rc.identity.id).toString("base64url")}`,
      providerDisplayName: rc.identity.displayName,
      isActive: true,
      properties: {},
    };
    return {
      status: 200,
      body: {
        authenticatedUser: user,
        authorizedUser: user,
        instanceId: identityGuid(`org:${rc.ctx.control.organization}`),
        deploymentId: identityGuid(`deployment:${rc.ctx.control.organization}`),
        deploymentType: "hosted",
        locationServiceData: {
          serviceOwner: "00025394-6065-48ca-87d9-7f5672854ef7",
          defaultAccessMappingMoniker: "PublicAccessMapping",
          lastChangeId: 1,
          lastChangeId64: 1,
        },
      },
    };
  }),

  route("GET", pools, "read", "list agent pools", (rc) => {
    const engine = rc.ctx.control.engine;
    const name = param(rc.url, "poolName");
    const ids = intListParam(rc.url, "poolIds");
    const type = param(rc.url, "poolType");
    // actionFilter=manage: only pools the caller may manage; a read-only credential manages none.
    const manageOnly = (param(rc.url, "actionFilter") ?? "").toLowerCase() === "manage";
    if (manageOnly && rc.identity.scope !== "manage") return { status: 200, body: list([]) };
    const found = engine
      .listPools()
      .filter((p) => name === undefined || name === "" || matchPoolName(name, p.name))
      .filter((p) => ids === undefined || ids.includes(p.id))
      .filter((p) => type === undefined || type === "" || p.poolType.toLowerCase() === type.toLowerCase());
    return { status: 200, body: list(found.map((p) => poolView(p, rc.view))) };
  }),

  route("GET", `${pools}/{poolId}`, "read", "read an agent pool", (rc) => ({
    status: 200,
    body: poolView(rc.ctx.control.engine.getPool(poolIdOf(rc)), rc.view),
  })),

  route("GET", `${pools}/{poolId}/agents`, "read", "list agents", (rc) => {
    const engine = rc.ctx.control.engine;
    const name = param(rc.url, "agentName");
    const demands = demandsParam(rc.url);
    const options = {
      includeCapabilities: boolParam(rc.url, "includeCapabilities") ?? false,
      includeAssignedRequest: boolParam(rc.url, "includeAssignedRequest") ?? false,
      includeLastCompletedRequest: boolParam(rc.url, "includeLastCompletedRequest") ?? false,
    };
    const agents = engine.listAgents(poolIdOf(rc), {
      ...(name === undefined || name === "" ? {} : { name }),
      ...(demands ? { demands } : {}),
    });
    return { status: 200, body: list(agents.map((a) => agentView(a, rc.view, options))) };
  }),

  route("POST", `${pools}/{poolId}/agents`, "manage", "register an agent", async (rc) => {
    const poolId = poolIdOf(rc);
    rc.ctx.control.engine.getPool(poolId);
    const body = await readBody(rc.req, "agent", AgentBody);
    const agent = rc.ctx.control.engine.registerAgent(poolId, agentInput(body));
    return { status: 200, body: agentView(agent, rc.view, { includeCapabilities: true }) };
  }),

  route("GET", `${pools}/{poolId}/agents/{agentId}`, "read", "read an agent", (rc) => {
    const agent = rc.ctx.control.engine.getAgent(poolIdOf(rc), pathId(rc.params[1] as string, "agentId"));
    const options = {
      includeCapabilities: boolParam(rc.url, "includeCapabilities") ?? false,
      includeAssignedRequest: boolParam(rc.url, "includeAssignedRequest") ?? false,
      includeLastCompletedRequest: boolParam(rc.url, "includeLastCompletedRequest") ?? false,
    };
    return { status: 200, body: agentView(agent, rc.view, options) };
  }),

  route("PUT", `${pools}/{poolId}/agents/{agentId}`, "manage", "replace an agent", async (rc) => {
    const poolId = poolIdOf(rc);
    const agentId = pathId(rc.params[1] as string, "agentId");
    rc.ctx.control.engine.getAgent(poolId, agentId);
    const body = await readBody(rc.req, "agent", AgentBody);
    if (body.id !== undefined && body.id !== agentId) {
      throw argumentInvalid(`The agent ID in the body (${body.id}) does not match the URL (${agentId}).`);
    }
    const agent = rc.ctx.control.engine.replaceAgent(poolId, agentId, agentInput(body));
    return { status: 200, body: agentView(agent, rc.view, { includeCapabilities: true }) };
  }),

  route("PATCH", `${pools}/{poolId}/agents/{agentId}`, "manage", "update an agent", async (rc) => {
    const poolId = poolIdOf(rc);
    const agentId = pathId(rc.params[1] as string, "agentId");
    rc.ctx.control.engine.getAgent(poolId, agentId);
    const body = await readBody(rc.req, "agent", AgentBody);
    if (body.id !== undefined && body.id !== agentId) {
      throw argumentInvalid(`The agent ID in the body (${body.id}) does not match the URL (${agentId}).`);
    }
    const agent = rc.ctx.control.engine.updateAgent(poolId, agentId, agentInput(body));
    return { status: 200, body: agentView(agent, rc.view, { includeCapabilities: true }) };
  }),

  route("DELETE", `${pools}/{poolId}/agents/{agentId}`, "manage", "delete an agent", (rc) => {
    rc.ctx.control.engine.deleteAgent(poolIdOf(rc), pathId(rc.params[1] as string, "agentId"));
    return { status: 204 };
  }),

  route(
    "PUT",
    `${pools}/{poolId}/agents/{agentId}/usercapabilities`,
    "manage",
    "update user capabilities",
    async (rc) => {
      const poolId = poolIdOf(rc);
      const agentId = pathId(rc.params[1] as string, "agentId");
      rc.ctx.control.engine.getAgent(poolId, agentId);
      const body = await readBody(rc.req, "userCapabilities", StringMap);
      const agent = rc.ctx.control.engine.setUserCapabilities(poolId, agentId, body);
      return { status: 200, body: agentView(agent, rc.view, { includeCapabilities: true }) };
    },
  ),

  route("GET", `${pools}/{poolId}/jobrequests`, "read", "list job requests", (rc) => {
    const engine = rc.ctx.control.engine;
    const poolId = poolIdOf(rc);
    const completedRequestCount = intParam(rc.url, "completedRequestCount");
    const agentId = intParam(rc.url, "agentId");
    const agentIds = [...(intListParam(rc.url, "agentIds") ?? []), ...(agentId === undefined ? [] : [agentId])];
    const top = intParam(rc.url, "$top", 1);
    const token = param(rc.url, "continuationToken");
    let jobs = engine.listJobRequests(poolId, {
      ...(completedRequestCount === undefined ? {} : { completedRequestCount }),
      ...(agentIds.length > 0 ? { agentIds } : {}),
    });
    if (token !== undefined && token !== "") {
      if (!/^\d+$/.test(token)) throw argumentInvalid(`The continuation token '${token}' is not valid.`);
      const from = Number(token);
      jobs = jobs.filter((j) => j.requestId >= from);
    }
    if (top === undefined) {
      return { status: 200, body: list(jobs.map((j) => jobRequestView(j, rc.view))) };
    }
    const size = Math.min(top, rc.ctx.maxPageSize);
    const page = jobs.slice(0, size);
    const next = jobs[size];
    return {
      status: 200,
      body: list(page.map((j) => jobRequestView(j, rc.view, { includeMatchedAgents: false }))),
      ...(next ? { headers: { "X-MS-ContinuationToken": String(next.requestId) } } : {}),
    };
  }),

  route("GET", `${pools}/{poolId}/jobrequests/{requestId}`, "read", "read a job request", (rc) => {
    const job = rc.ctx.control.engine.getJobRequest(poolIdOf(rc), pathId(rc.params[1] as string, "requestId"));
    return { status: 200, body: jobRequestView(job, rc.view) };
  }),

  route("PATCH", `${pools}/{poolId}/jobrequests/{requestId}`, "manage", "update a job request", async (rc) => {
    const poolId = poolIdOf(rc);
    const requestId = pathId(rc.params[1] as string, "requestId");
    const lockToken = param(rc.url, "lockToken");
    if (lockToken === undefined || lockToken === "") throw argumentNull("lockToken");
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(lockToken)) {
      throw argumentInvalid(`The value '${lockToken}' is not valid for lockToken.`);
    }
    rc.ctx.control.engine.getJobRequest(poolId, requestId);
    const body = await readBody(rc.req, "request", JobRequestBody);
    if (body.requestId !== undefined && body.requestId !== requestId) {
      throw argumentInvalid(`The request ID in the body (${body.requestId}) does not match the URL (${requestId}).`);
    }
    const update: { result?: TaskResult; finishTime?: number } = {};
    if (body.result !== undefined) update.result = parseResult(body.result);
    if (body.finishTime !== undefined) update.finishTime = parseTime(body.finishTime, "finishTime");
    if (body.lockedUntil !== undefined) parseTime(body.lockedUntil, "lockedUntil");
    const job = rc.ctx.control.engine.updateJobRequest(poolId, requestId, update);
    return { status: 200, body: jobRequestView(job, rc.view, { includeMatchedAgents: false }) };
  }),

  route("POST", `${pools}/{poolId}/sessions`, "manage", "create an agent session", async (rc) => {
    const poolId = poolIdOf(rc);
    const engine = rc.ctx.control.engine;
    engine.getPool(poolId);
    const body = await readBody(rc.req, "session", SessionBody);
    const session = engine.createSession(poolId, {
      agentId: body.agent.id,
      ...(body.ownerName === undefined ? {} : { ownerName: body.ownerName }),
      ...(body.systemCapabilities === undefined ? {} : { systemCapabilities: body.systemCapabilities }),
    });
    const agent = engine.getAgent(poolId, session.agentId);
    return {
      status: 200,
      body: {
        sessionId: session.sessionId,
        ownerName: session.ownerName,
        agent: agentReference(agent, rc.view),
        useFipsEncryption: false,
      },
    };
  }),

  route("DELETE", `${pools}/{poolId}/sessions/{sessionId}`, "manage", "delete an agent session", (rc) => {
    const raw = rc.params[1] as string;
    let sessionId: string;
    try {
      sessionId = decodeURIComponent(raw);
    } catch {
      throw sessionExpired(raw);
    }
    rc.ctx.control.engine.deleteSession(poolIdOf(rc), sessionId);
    return { status: 204 };
  }),

  route("GET", `${pools}/{poolId}/messages`, "manage", "read agent messages", async (rc) => {
    const poolId = poolIdOf(rc);
    const sessionId = param(rc.url, "sessionId");
    if (sessionId === undefined || sessionId === "") throw argumentNull("sessionId");
    const lastMessageId = intParam(rc.url, "lastMessageId");
    const message = await rc.ctx.control.engine.pollMessage(poolId, sessionId, {
      ...(lastMessageId === undefined ? {} : { lastMessageId }),
      timeoutMs: rc.ctx.messagePollTimeoutMs,
      signal: rc.signal,
    });
    if (!message) return { status: 202 };
    return {
      status: 200,
      body: { messageId: message.messageId, messageType: message.messageType, body: message.body },
    };
  }),

  route("DELETE", `${pools}/{poolId}/messages/{messageId}`, "manage", "delete an agent message", (rc) => {
    const poolId = poolIdOf(rc);
    const messageId = pathId(rc.params[1] as string, "messageId");
    const sessionId = param(rc.url, "sessionId");
    if (sessionId === undefined || sessionId === "") throw argumentNull("sessionId");
    rc.ctx.control.engine.deleteMessage(poolId, sessionId, messageId);
    return { status: 204 };
  }),
];

function authFailure(
  ctx: HttpContext,
  method: string,
  kind: "anonymous" | "bad-pat" | "bad-bearer" | "malformed",
): Reply {
  const realm = `Basic realm="${ctx.baseUrl()}/"`;
  if ((kind === "anonymous" || kind === "bad-bearer") && (method === "GET" || method === "HEAD")) {
    // The service's quirk: a browser-less client without a usable bearer token gets a sign-in page, not a 401.
    return { status: 203, text: signInPage(ctx.organizationUrl()), contentType: "text/html; charset=utf-8" };
  }
  return {
    status: 401,
    headers: { "WWW-Authenticate": ["Bearer", realm], "X-TFS-FedAuthRealm": ctx.baseUrl() },
    text: "<html><head><title>Access Denied</title></head><body>Access Denied: the credentials supplied are not valid or have expired.</body></html>\n",
    contentType: "text/html; charset=utf-8",
  };
}

async function serviceRequest(
  ctx: HttpContext,
  req: IncomingMessage,
  method: string,
  url: URL,
  signal: AbortSignal,
  draft: LogDraft,
): Promise<Outcome> {
  const control = ctx.control;
  const fault = decideFaults(control.faults(), method, url.pathname, ctx.random);
  if (fault.latencyMs > 0) {
    draft.fault = "latency";
    await sleep(control.clock, fault.latencyMs, signal).catch(() => undefined);
  }
  if (fault.drop) {
    draft.fault = "dropped";
    return dropped;
  }
  if (fault.errorStatus !== undefined) {
    draft.fault = "error";
    throw injectedFault(fault.errorStatus);
  }

  const segments = url.pathname.split("/");
  let org: string;
  try {
    org = decodeURIComponent(segments[1] ?? "");
  } catch {
    throw resourceNotFound(url.pathname);
  }
  if (org.toLowerCase() !== control.organization.toLowerCase()) throw resourceNotFound(url.pathname);
  const rest = segments.slice(2).join("/");

  const auth = authenticate(req.headers.authorization, control.pats, control.bearerTokens, control.clock.now());
  if (auth.kind !== "ok") return authFailure(ctx, method, auth.kind);
  const identity = auth.identity;
  draft.identity = identity.id;
  draft.scheme = identity.scheme;

  const candidates = routes.filter((r) => r.pattern.test(rest));
  if (candidates.length === 0) throw resourceNotFound(url.pathname);
  const found = candidates.find((r) => r.method === method);
  if (!found) throw methodNotAllowed(method, url.pathname);
  if (!allows(identity, found.scope)) throw accessDenied(identity.displayName, found.action);
  requireApiVersion(req, url, method);

  const decision = control.rateLimiter.evaluate(identity.id, control.clock.now(), {
    ...(fault.rateLimit ? { force: fault.rateLimit } : {}),
  });
  if (decision.action === "block") {
    draft.rateLimit = "blocked";
    const error = requestBlocked(control.rateLimiter.config.resource);
    draft.error = error.typeKey;
    return { status: 429, body: errorBody(error), headers: decision.headers };
  }
  if (decision.action === "delay") {
    draft.rateLimit = "delayed";
    await sleep(control.clock, decision.delayMs, signal).catch(() => undefined);
  }

  const params = (found.pattern.exec(rest) ?? []).slice(1);
  const rc: RouteContext = {
    ctx,
    req,
    url,
    params,
    identity,
    signal,
    view: { engine: control.engine, organizationUrl: ctx.organizationUrl() },
  };
  let reply: Reply;
  try {
    reply = await found.handler(rc);
  } catch (err) {
    reply = errorReply(err, draft);
  }
  return { ...reply, headers: { ...decision.headers, ...(reply.headers ?? {}) } };
}

// ---- the control API (/_sim/)

const TaskResultSchema = Type.Union(taskResults.map((r) => Type.Literal(r)));

const QueueJobBody = Type.Object({
  pool: Type.Optional(Type.String()),
  poolId: Type.Optional(Type.Integer()),
  demands: Type.Optional(Type.Array(Type.String())),
  durationMs: Type.Optional(Type.Number({ minimum: 0 })),
  startDelayMs: Type.Optional(Type.Number({ minimum: 0 })),
  finishDelayMs: Type.Optional(Type.Number({ minimum: 0 })),
  result: Type.Optional(TaskResultSchema),
  jobName: Type.Optional(Type.String()),
  jobDisplayName: Type.Optional(Type.String()),
  planType: Type.Optional(Type.String()),
  definition: Type.Optional(Type.Object({ id: Type.Optional(Type.Integer()), name: Type.Optional(Type.String()) })),
  agentVersionDemand: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  priority: Type.Optional(Type.Integer()),
  count: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
});

const ScopeSchema = Type.Union([Type.Literal("read"), Type.Literal("manage")]);

const PatBody = Type.Object({
  token: Type.Optional(Type.String({ minLength: 1 })),
  scope: ScopeSchema,
  name: Type.Optional(Type.String()),
  identity: Type.Optional(Type.String()),
});

const TokenBody = Type.Object({
  token: Type.Optional(Type.String({ minLength: 1 })),
  identity: Type.String({ minLength: 1 }),
  scope: ScopeSchema,
  displayName: Type.Optional(Type.String()),
  expiresOn: Type.Optional(Type.Union([Type.String(), Type.Number()])),
  expiresInMs: Type.Optional(Type.Number()),
});

const FaultRuleSchema = Type.Object({
  path: Type.String({ minLength: 1 }),
  method: Type.Optional(Type.String()),
  errorRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  status: Type.Optional(Type.Integer({ minimum: 400, maximum: 599 })),
  latencyMs: Type.Optional(Type.Number({ minimum: 0 })),
  dropRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  rateLimit: Type.Optional(Type.Union([Type.Literal("delay"), Type.Literal("block")])),
});

const FaultsBody = Type.Union([Type.Array(FaultRuleSchema), Type.Object({ rules: Type.Array(FaultRuleSchema) })]);

const RateLimitBody = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    budget: Type.Optional(Type.Number({ minimum: 0 })),
    windowMs: Type.Optional(Type.Number({ minimum: 1 })),
    costPerRequest: Type.Optional(Type.Number({ minimum: 0 })),
    delayThreshold: Type.Optional(Type.Number({ minimum: 0 })),
    delayMs: Type.Optional(Type.Number({ minimum: 0 })),
    headersThreshold: Type.Optional(Type.Number({ minimum: 0 })),
    resource: Type.Optional(Type.String()),
    resetUsage: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const PoolBody = Type.Object({ name: Type.String({ minLength: 1 }) });

/** A PAT-like token: 52 characters of base32, like the service's. */
function newToken(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  return [...randomBytes(52)].map((b) => alphabet[b % 32]).join("");
}

function controlError(err: unknown): Reply {
  if (err instanceof ServiceError) {
    return {
      status: err.status,
      body: { message: err.message, typeKey: err.typeKey, ...(err.detail ? { detail: err.detail } : {}) },
    };
  }
  return { status: 500, body: { message: String((err as Error)?.message ?? err) } };
}

async function controlRequest(ctx: HttpContext, req: IncomingMessage, method: string, url: URL): Promise<Reply> {
  try {
    return await controlRoute(ctx, req, method, url);
  } catch (err) {
    return controlError(err);
  }
}

const ok = (body: unknown, status = 200): Reply => ({ status, body, contentType: "application/json; charset=utf-8" });

async function controlRoute(ctx: HttpContext, req: IncomingMessage, method: string, url: URL): Promise<Reply> {
  const control = ctx.control;
  const parts = url.pathname
    .split("/")
    .filter((p) => p !== "")
    .slice(1)
    .map((p) => decodeURIComponent(p));
  const [resource, id, sub] = parts;
  if (resource === "entra") return entraControlRoute(ctx, req, method, url, parts.slice(1));
  const key = `${method} ${resource ?? ""}${id === undefined ? "" : "/:id"}${sub === undefined ? "" : `/${sub}`}`;
  const numericId = () => pathId(id as string, "id");
  switch (key) {
    case "GET ":
    case "GET state": {
      const jobs = control.listJobs();
      const count = (state: string) => jobs.filter((j) => j.state === state).length;
      const httpsUrl = ctx.httpsBaseUrl?.();
      return ok({
        organization: control.organization,
        organizationUrl: ctx.organizationUrl(),
        ...(httpsUrl === undefined ? {} : { httpsUrl }),
        pools: control.listPools(),
        agents: control.listAgents().length,
        jobs: {
          queued: count("queued"),
          assigned: count("assigned"),
          running: count("running"),
          finished: count("finished"),
        },
        rateLimit: control.rateLimit(),
        faults: control.faults(),
        entra: { servicePrincipals: control.entra.servicePrincipals().length, ...control.entra.configure({}) },
      });
    }
    case "GET pools":
      return ok(list(control.listPools()));
    case "POST pools": {
      const body = await readBody(req, "pool", PoolBody);
      return ok(control.createPool(body.name), 201);
    }
    case "GET pats":
      return ok(list(control.pats.list()));
    case "POST pats": {
      const body = await readBody(req, "pat", PatBody);
      return ok(control.addPat({ ...body, token: body.token ?? newToken() }), 201);
    }
    case "DELETE pats/:id":
      return control.removePat(id as string) ? ok({ removed: true }) : ok({ message: "no such PAT" }, 404);
    case "GET tokens":
      return ok(list(control.bearerTokens.list()));
    case "POST tokens": {
      const body = await readBody(req, "token", TokenBody);
      const token = body.token ?? newToken();
      let expiresOn: number | undefined;
      if (typeof body.expiresOn === "number") expiresOn = body.expiresOn;
      else if (typeof body.expiresOn === "string") expiresOn = parseTime(body.expiresOn, "expiresOn");
      if (body.expiresInMs !== undefined) expiresOn = control.clock.now() + body.expiresInMs;
      control.addBearerToken(token, {
        identity: body.identity,
        scope: body.scope,
        ...(body.displayName === undefined ? {} : { displayName: body.displayName }),
        ...(expiresOn === undefined ? {} : { expiresOn }),
      });
      return ok(
        { token, identity: body.identity, scope: body.scope, ...(expiresOn === undefined ? {} : { expiresOn }) },
        201,
      );
    }
    case "DELETE tokens/:id":
      return control.removeBearerToken(id as string) ? ok({ removed: true }) : ok({ message: "no such token" }, 404);
    case "GET jobs": {
      const state = param(url, "state");
      if (state !== undefined && !["queued", "assigned", "running", "finished"].includes(state)) {
        throw argumentInvalid(`unknown state '${state}'`);
      }
      const pool = param(url, "pool");
      const poolId = intParam(url, "poolId");
      return ok(
        list(
          control.listJobs({
            ...(pool === undefined ? {} : { pool }),
            ...(poolId === undefined ? {} : { poolId }),
            ...(state === undefined ? {} : { state: state as "queued" }),
          }),
        ),
      );
    }
    case "POST jobs": {
      const body = await readBody(req, "job", QueueJobBody, { keepNulls: true });
      const { count, ...job } = body;
      if (count === undefined) return ok(control.queueJob(job), 201);
      const queued = Array.from({ length: count }, () => control.queueJob(job));
      return ok(list(queued), 201);
    }
    case "GET jobs/:id": {
      const job = control.getJob(numericId());
      return job ? ok(job) : ok({ message: `no job ${id}` }, 404);
    }
    case "POST jobs/:id/cancel":
      return ok(control.cancelJob(numericId()));
    case "GET agents": {
      const pool = param(url, "pool");
      return ok(list(control.listAgents(pool === undefined ? {} : { pool })));
    }
    case "GET requests": {
      const since = intParam(url, "since");
      const path = param(url, "path");
      return ok(
        list(control.requests({ ...(since === undefined ? {} : { since }), ...(path === undefined ? {} : { path }) })),
      );
    }
    case "DELETE requests":
      control.clearRequests();
      return ok({ cleared: true });
    case "GET faults":
      return ok({ rules: control.faults() });
    case "PUT faults": {
      const body = await readBody(req, "faults", FaultsBody);
      const rules = (Array.isArray(body) ? body : body.rules) as FaultRule[];
      return ok({ rules: control.setFaults(rules) });
    }
    case "POST faults": {
      const rule = (await readBody(req, "fault", FaultRuleSchema)) as FaultRule;
      return ok({ rules: control.addFault(rule) }, 201);
    }
    case "DELETE faults":
      control.clearFaults();
      return ok({ rules: [] });
    case "GET rate-limit":
      return ok(control.rateLimit());
    case "PUT rate-limit": {
      const body = await readBody(req, "rateLimit", RateLimitBody);
      return ok(control.setRateLimit(body));
    }
    case "POST reset":
      control.reset();
      return ok({ reset: true });
    default:
      return ok({ message: `no control endpoint ${method} ${url.pathname}; see GET /_sim/state and the README` }, 404);
  }
}

// ---- the control API of the Entra side (/_sim/entra/...)

const FederatedCredentialBody = Type.Object({
  issuer: Type.String({ minLength: 1 }),
  subject: Type.String({ minLength: 1 }),
  audiences: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
  name: Type.Optional(Type.String()),
});

const ServicePrincipalBody = Type.Object({
  tenantId: Type.String({ minLength: 1 }),
  clientId: Type.Optional(Type.String({ minLength: 1 })),
  clientSecret: Type.Optional(Type.String({ minLength: 1 })),
  federatedCredentials: Type.Optional(Type.Array(FederatedCredentialBody)),
  scope: Type.Optional(Type.Union([ScopeSchema, Type.Null()])),
  displayName: Type.Optional(Type.String()),
  tokenLifetimeSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
});

const TenantBody = Type.Object({
  tenantId: Type.String({ minLength: 1 }),
  domains: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
});

const IssuerBody = Type.Object({
  issuer: Type.String({ minLength: 1 }),
  keys: Type.Array(Type.Record(Type.String(), Type.Unknown()), { minItems: 1 }),
});

const EntraSettingsBody = Type.Object(
  { tokenLifetimeSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })) },
  { additionalProperties: false },
);

/** A client secret the way Entra makes them: 40 characters. */
function newClientSecret(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
  return [...randomBytes(40)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** Directory errors (bad input) become the control API's 400. */
function directoryCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof TypeError) throw argumentInvalid(err.message);
    throw err;
  }
}

async function entraControlRoute(
  ctx: HttpContext,
  req: IncomingMessage,
  method: string,
  url: URL,
  parts: string[],
): Promise<Reply> {
  const entra = ctx.control.entra;
  const [what, id] = parts;
  const key = `${method} ${what ?? ""}${id === undefined ? "" : "/:id"}`;
  switch (key) {
    case "GET ": {
      const httpsUrl = ctx.httpsBaseUrl?.();
      return ok({
        ...entra.configure({}),
        ...(httpsUrl === undefined ? {} : { authorityHost: httpsUrl }),
        tenants: entra.tenants(),
        servicePrincipals: entra.servicePrincipals(),
        issuers: entra.issuers(),
      });
    }
    case "PUT settings": {
      const body = await readBody(req, "settings", EntraSettingsBody);
      return ok(directoryCall(() => entra.configure(body)));
    }
    case "GET tenants":
      return ok(list(entra.tenants()));
    case "POST tenants": {
      const body = await readBody(req, "tenant", TenantBody);
      return ok(
        directoryCall(() => entra.addTenant(body)),
        201,
      );
    }
    case "GET principals":
      return ok(list(entra.servicePrincipals()));
    case "POST principals": {
      const body = await readBody(req, "principal", ServicePrincipalBody, { keepNulls: true });
      const { scope, ...rest } = body;
      // Neither a secret nor a federated credential: make up a secret (and return it, once).
      const clientSecret = body.clientSecret ?? (body.federatedCredentials?.length ? undefined : newClientSecret());
      const view = directoryCall(() =>
        entra.addServicePrincipal({
          ...rest,
          clientId: body.clientId ?? randomUUID(),
          ...(clientSecret === undefined ? {} : { clientSecret }),
          ...(scope === undefined || scope === null ? {} : { scope }),
        }),
      );
      return ok({ ...view, ...(clientSecret === undefined ? {} : { clientSecret }) }, 201);
    }
    case "GET principals/:id":
    case "DELETE principals/:id": {
      const tenantId = param(url, "tenantId");
      const matches = entra
        .servicePrincipals()
        .filter(
          (p) =>
            p.clientId.toLowerCase() === (id as string).toLowerCase() &&
            (tenantId === undefined || entra.resolveTenant(tenantId)?.tenantId === p.tenantId),
        );
      if (matches.length === 0) return ok({ message: `no service principal ${id}` }, 404);
      if (matches.length > 1) throw argumentInvalid(`${id} exists in several tenants: give ?tenantId=`);
      const found = matches[0] as (typeof matches)[number];
      if (method === "GET") return ok(found);
      entra.removeServicePrincipal(found.tenantId, found.clientId);
      return ok({ removed: true });
    }
    case "GET issuers":
      return ok(list(entra.issuers()));
    case "POST issuers": {
      const body = await readBody(req, "issuer", IssuerBody);
      return ok(
        directoryCall(() => entra.addIssuer({ issuer: body.issuer, keys: body.keys as JsonWebKey[] })),
        201,
      );
    }
    case "DELETE issuers": {
      const issuer = param(url, "issuer");
      if (issuer === undefined) throw argumentInvalid("give ?issuer=URL");
      return entra.removeIssuer(issuer) ? ok({ removed: true }) : ok({ message: `no issuer ${issuer}` }, 404);
    }
    default:
      return ok({ message: `no control endpoint ${method} ${url.pathname}; see the README` }, 404);
  }
}
