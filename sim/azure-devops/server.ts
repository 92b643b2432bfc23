/**
 * The emulator's request pipeline. One listener serves three surfaces: the control API under `/_sim/`
 * (`control-api.ts`), Microsoft Entra ID under `/{tenant}/v2.0/...` and `/{tenant}/oauth2/...` (`entra-api.ts`), and
 * the service's REST API under `/{organization}/_apis/...` (`service-api.ts`, plus `hooks-api.ts` for service hook
 * subscriptions). A service request goes through fault injection, the organization check, authentication, routing,
 * the scope check, the api-version check (writes) and rate limiting, in that order, before its route's handler
 * runs; an Entra request through fault injection, then the directory. Both are written to the request log (Entra
 * requests never with their secrets); control calls are not. Nothing in here decides platform behaviour: that is
 * the engine (and the Entra directory).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { allows, authenticate, signInPage } from "./auth.ts";
import { sleep } from "./clock.ts";
import { controlRequest } from "./control-api.ts";
import { isEntraPath } from "./entra.ts";
import { entraRequest } from "./entra-api.ts";
import {
  accessDenied,
  errorBody,
  injectedFault,
  internalError,
  methodNotAllowed,
  requestBlocked,
  resourceNotFound,
  ServiceError,
} from "./errors.ts";
import { hookRoutes } from "./hooks-api.ts";
import {
  dropped,
  type HttpContext,
  injectFaults,
  jsonType,
  type LogDraft,
  logDraft,
  type Outcome,
  type Reply,
  requireApiVersion,
  send,
} from "./http.ts";
import { type RouteContext, serviceRoutes } from "./service-api.ts";

/** Every route of the service API. */
const routes = [...serviceRoutes, ...hookRoutes];

export type { HttpContext } from "./http.ts";

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
  const draft = logDraft(ctx, method, url);
  let outcome: Outcome;
  if (isEntraPath(url.pathname)) {
    outcome = await entraRequest(ctx, req, method, url, aborter.signal, draft);
  } else {
    try {
      outcome = await serviceRequest(ctx, req, method, url, aborter.signal, draft);
    } catch (err) {
      outcome = errorReply(err, draft);
    }
  }
  // The request log: status 0 when the connection was dropped or the client went away before the answer.
  const record = (status: number) =>
    ctx.control.recordRequest({ ...draft, status, durationMs: Math.round(performance.now() - started) });
  if (outcome === dropped) {
    req.socket.destroy();
    record(0);
    return;
  }
  if (aborter.signal.aborted) {
    record(0);
    return;
  }
  send(res, outcome);
  record(outcome.status);
}

/** The service's error answer for what a step or handler threw (500 for anything unexpected). */
function errorReply(err: unknown, draft: LogDraft): Reply {
  const error =
    err instanceof ServiceError ? err : internalError(err instanceof Error ? (err.stack ?? err.message) : String(err));
  draft.error = error.typeKey;
  if (error.detail !== undefined) draft.detail = error.detail;
  return { status: error.status, body: errorBody(error) };
}

/** What the service answers a request without usable credentials. */
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

/** The service's pipeline, up to the route's handler. */
async function serviceRequest(
  ctx: HttpContext,
  req: IncomingMessage,
  method: string,
  url: URL,
  signal: AbortSignal,
  draft: LogDraft,
): Promise<Outcome> {
  const control = ctx.control;
  const fault = await injectFaults(ctx, method, url, signal, draft);
  if (fault.drop) return dropped;
  if (fault.errorStatus !== undefined) throw injectedFault(fault.errorStatus);

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
