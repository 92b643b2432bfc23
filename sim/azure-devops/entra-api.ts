/**
 * The Microsoft Entra ID surface: discovery and the token endpoint over HTTP (the directory in `entra.ts` decides
 * the answers), and the Entra part of the control API (`/_sim/entra/...`: tenants, service principals, issuers'
 * keys, settings).
 */
import { type JsonWebKey, randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Type } from "@sinclair/typebox";
import { EntraError, type EntraReply, transientEntraError } from "./entra.ts";
import { argumentInvalid, ServiceError } from "./errors.ts";
import {
  dropped,
  type HttpContext,
  injectFaults,
  type LogDraft,
  list,
  type Outcome,
  ok,
  originOf,
  param,
  type Reply,
  readBody,
  readText,
  ScopeSchema,
} from "./http.ts";

/**
 * The Entra ID endpoints: fault injection, then the directory. The log draft gets the client's identity and the
 * error, never the body (it holds the secrets).
 */
export async function entraRequest(
  ctx: HttpContext,
  req: IncomingMessage,
  method: string,
  url: URL,
  signal: AbortSignal,
  draft: LogDraft,
): Promise<Outcome> {
  const control = ctx.control;
  const header = req.headers["client-request-id"];
  const correlationId = typeof header === "string" && header !== "" ? header : undefined;
  const request = {
    method,
    pathname: url.pathname,
    authorization: req.headers.authorization,
    origin: originOf(ctx, req),
    correlationId,
  };

  const fault = await injectFaults(ctx, method, url, signal, draft);
  if (fault.drop) return dropped;
  let reply: EntraReply | undefined;
  if (fault.errorStatus !== undefined) {
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
  return {
    status: reply.status,
    body: reply.body,
    contentType: "application/json; charset=utf-8",
    ...(reply.headers ? { headers: reply.headers } : {}),
    plain: true,
  };
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

export async function entraControlRoute(
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
