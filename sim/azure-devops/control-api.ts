/**
 * The emulator's control API under `/_sim/`: JSON over HTTP, no authentication (loopback only), not rate-limited,
 * not in the request log. A thin layer over `EmulatorControl`; the Entra part (`/_sim/entra/...`) is in
 * `entra-api.ts`.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Type } from "@sinclair/typebox";
import { taskResults } from "./engine.ts";
import { entraControlRoute } from "./entra-api.ts";
import { argumentInvalid, ServiceError } from "./errors.ts";
import type { FaultRule } from "./faults.ts";
import { hooksControlRoute } from "./hooks-api.ts";
import {
  type HttpContext,
  intParam,
  list,
  ok,
  param,
  parseTime,
  pathId,
  type Reply,
  readBody,
  ScopeSchema,
} from "./http.ts";

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

export async function controlRequest(ctx: HttpContext, req: IncomingMessage, method: string, url: URL): Promise<Reply> {
  try {
    return await controlRoute(ctx, req, method, url);
  } catch (err) {
    return controlError(err);
  }
}

async function controlRoute(ctx: HttpContext, req: IncomingMessage, method: string, url: URL): Promise<Reply> {
  const control = ctx.control;
  const parts = url.pathname
    .split("/")
    .filter((p) => p !== "")
    .slice(1)
    .map((p) => decodeURIComponent(p));
  const [resource, id, sub] = parts;
  if (resource === "entra") return entraControlRoute(ctx, req, method, url, parts.slice(1));
  if (resource === "hooks") return hooksControlRoute(ctx, req, method, url, parts.slice(1));
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
        hooks: { subscriptions: control.hooks.subscriptions().length, delivery: control.hooks.settings() },
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
