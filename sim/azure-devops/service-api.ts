/**
 * The service's REST API: the route table of what lives under `/{organization}/_apis/...`, operator-facing (pools,
 * agents, job requests, connection data) and agent-facing (sessions, messages, job-request renewals), with the
 * scope each route needs and the shapes of the bodies it binds. `server.ts` runs the pipeline (faults,
 * authentication, routing, scope, api-version, rate limit) before a handler; the engine decides what happens.
 */
import type { IncomingMessage } from "node:http";
import { type Static, Type } from "@sinclair/typebox";
import type { Identity, Scope } from "./auth.ts";
import { type Demand, DemandParseError, parseDemand } from "./demands.ts";
import { type AgentInput, type TaskResult, taskResults } from "./engine.ts";
import { argumentInvalid, argumentNull, sessionExpired } from "./errors.ts";
import { stableGuid } from "./hooks.ts";
import {
  boolParam,
  type HttpContext,
  intListParam,
  intParam,
  list,
  param,
  parseTime,
  pathId,
  type Reply,
  readBody,
} from "./http.ts";
import { agentReference, agentView, jobRequestView, poolView, type ViewContext } from "./views.ts";

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

// ---- the routes

export interface RouteContext {
  ctx: HttpContext;
  req: IncomingMessage;
  url: URL;
  params: string[];
  identity: Identity;
  signal: AbortSignal;
  view: ViewContext;
}

export interface Route {
  method: string;
  pattern: RegExp;
  scope: Scope;
  /** For the 403 message. */
  action: string;
  handler: (rc: RouteContext) => Reply | Promise<Reply>;
}

const pools = "_apis/distributedtask/pools";
/** A route of the service API: `{name}` in the path is a parameter (handed over in order in `params`). */
export const route = (
  method: string,
  path: string,
  scope: Scope,
  action: string,
  handler: Route["handler"],
): Route => ({
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

export const serviceRoutes: Route[] = [
  route("GET", "_apis/connectionData", "read", "read connection data", (rc) => {
    const user = {
      id: stableGuid(rc.identity.id),
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
        instanceId: stableGuid(`org:${rc.ctx.control.organization}`),
        deploymentId: stableGuid(`deployment:${rc.ctx.control.organization}`),
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
