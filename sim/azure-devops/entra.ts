/**
 * Microsoft Entra ID, as far as a confidential client of Azure DevOps needs it: tenants, service principals (a
 * client secret and/or federated credentials for workload identity), OpenID discovery and the v2.0 token endpoint
 * with the client credentials grant. What `@azure/identity` (MSAL node) calls is served here:
 *
 *   GET  /{tenant}/v2.0/.well-known/openid-configuration   endpoint discovery (MSAL checks that `issuer` has the
 *                                                          authority's scheme, host and port)
 *   POST /{tenant}/oauth2/v2.0/token                       grant_type=client_credentials, scope=<resource>/.default,
 *                                                          client_secret, or client_assertion + client_assertion_type
 *   GET  /{tenant}/discovery/v2.0/keys                     the signing keys: none (tokens are opaque)
 *
 * MSAL's instance discovery goes to a fixed host (`https://login.microsoftonline.com/common/discovery/instance`),
 * never to the authority, so it cannot be served here: clients must skip it (`disableInstanceDiscovery: true`).
 *
 * Issued access tokens are opaque random strings. Each is registered in the emulator's bearer-token store with the
 * principal's identity (`entra:<tenantId>/<clientId>`), its organization scope (`read` or `manage`) and its expiry,
 * so the Azure DevOps API accepts it as `Authorization: Bearer`. A principal without a scope is not a member of the
 * organization: Entra still issues tokens, Azure DevOps does not accept them. Changing or removing a principal
 * changes or revokes the tokens it holds (the service checks membership on every call).
 *
 * Nothing here does HTTP: the server reads the request and sends the `EntraReply`.
 */
import {
  constants,
  createHash,
  createPublicKey,
  type JsonWebKey,
  randomBytes,
  randomUUID,
  timingSafeEqual,
  verify,
} from "node:crypto";
import type { BearerTokenStore, Scope } from "./auth.ts";
import type { Clock } from "./clock.ts";

/** The application ID of Azure DevOps: scope `499b84ac-1321-427f-aa17-267ca6975798/.default`. */
export const AZURE_DEVOPS_RESOURCE_ID = "499b84ac-1321-427f-aa17-267ca6975798";
/** The other name of the Azure DevOps resource accepted in a scope. */
export const AZURE_DEVOPS_RESOURCE_URI = "https://app.vssps.visualstudio.com";
/** The audience Kubernetes service account tokens carry for workload identity federation. */
export const WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange";
export const JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** What Entra answers for a client credentials token by default (seconds). */
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 3599;

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;
const ASSERTION_CLOCK_SKEW_SECONDS = 300;

export interface EntraTenantConfig {
  /** The tenant ID (a GUID in Entra; any name of letters, digits, dots and dashes here). */
  tenantId: string;
  /** Verified domains: other names of the tenant in URLs (`contoso.onmicrosoft.com`). */
  domains?: readonly string[];
}

/** A federated identity credential of an app registration or user-assigned managed identity. */
export interface FederatedCredentialConfig {
  /** Must equal the assertion's `iss`, e.g. the cluster's service account issuer URL. */
  issuer: string;
  /** Must equal the assertion's `sub`, e.g. `system:serviceaccount:NAMESPACE:NAME`. */
  subject: string;
  /** The assertion's `aud` must hold one of these. Default `api://AzureADTokenExchange`. */
  audiences?: readonly string[];
  name?: string;
}

export interface ServicePrincipalConfig {
  tenantId: string;
  /** Application (client) ID. */
  clientId: string;
  clientSecret?: string;
  federatedCredentials?: readonly FederatedCredentialConfig[];
  /**
   * Its access in the Azure DevOps organization: `read` (Agent Pools: Read) or `manage` (Administrator of the
   * pools). Absent: not a member of the organization (tokens are issued, Azure DevOps does not take them).
   */
  scope?: Scope;
  displayName?: string;
  /** Lifetime of its tokens (seconds); default the directory's. */
  tokenLifetimeSeconds?: number;
}

/** Signing keys of a federated token issuer; assertions from an issuer without keys are not signature-checked. */
export interface FederatedIssuerConfig {
  issuer: string;
  keys: readonly JsonWebKey[];
}

export interface EntraIdConfig {
  /** Default lifetime of access tokens (seconds, whole). Default 3599, like Entra. */
  tokenLifetimeSeconds?: number;
  tenants?: readonly EntraTenantConfig[];
  servicePrincipals?: readonly ServicePrincipalConfig[];
  issuers?: readonly FederatedIssuerConfig[];
}

/** A principal as the control API shows it: never its secret. */
export interface ServicePrincipalView {
  tenantId: string;
  clientId: string;
  /** The identity its tokens carry in Azure DevOps (rate limits, request log, connectionData). */
  identity: string;
  displayName: string;
  scope?: Scope;
  hasSecret: boolean;
  federatedCredentials: FederatedCredentialConfig[];
  tokenLifetimeSeconds?: number;
  /** Tokens issued to it that have not expired. */
  activeTokens: number;
}

export interface EntraReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** For the request log: who asked (known client), the error code and what went wrong. */
  identity?: string;
  error?: string;
  detail?: string;
}

export interface EntraRequest {
  method: string;
  /** The path without the query. */
  pathname: string;
  /** The form of a POST (already read). */
  form?: URLSearchParams;
  /** The Authorization header (client_secret_basic). */
  authorization?: string | undefined;
  /** `https://127.0.0.1:PORT` (or http): the origin the client called, for the URLs of discovery. */
  origin: string;
  /** The client's correlation ID (`client-request-id`), echoed back. */
  correlationId?: string | undefined;
}

interface Tenant {
  tenantId: string;
  domains: string[];
}

interface Principal {
  tenantId: string;
  clientId: string;
  secretHash?: Buffer;
  federatedCredentials: FederatedCredentialConfig[];
  scope?: Scope;
  displayName: string;
  tokenLifetimeSeconds?: number;
}

interface IssuedToken {
  principalKey: string;
  expiresOn: number;
}

const lower = (s: string) => s.toLowerCase();
const principalKey = (tenantId: string, clientId: string) => `${lower(tenantId)}/${lower(clientId)}`;
const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** The identity a principal's tokens carry in Azure DevOps. */
export const entraIdentity = (tenantId: string, clientId: string) => `entra:${lower(tenantId)}/${lower(clientId)}`;

/** The paths of the Entra endpoints: `/{tenant}/` followed by one of these segments. */
const entraSecondSegments = new Set(["v2.0", ".well-known", "oauth2", "discovery"]);

/** Whether a request path belongs to the Entra endpoints rather than to an organization. */
export function isEntraPath(pathname: string): boolean {
  const segments = pathname.split("/");
  const tenant = segments[1] ?? "";
  return tenant !== "" && tenant !== "_sim" && entraSecondSegments.has(lower(segments[2] ?? ""));
}

export class EntraError extends Error {
  readonly status: number;
  readonly error: string;
  readonly code: number;
  constructor(status: number, error: string, code: number, message: string) {
    super(message);
    this.name = "EntraError";
    this.status = status;
    this.error = error;
    this.code = code;
  }
}

const stsTimestamp = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");

// ---- the errors Entra answers (codes and wording follow the service's AADSTS messages)

const tenantNotFound = (tenant: string) =>
  new EntraError(
    400,
    "invalid_tenant",
    90002,
    `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
  );
const tokenTenantNotFound = (tenant: string) =>
  new EntraError(400, "invalid_request", 90002, tenantNotFound(tenant).message);
const missingParameter = (name: string) =>
  new EntraError(400, "invalid_request", 900144, `The request body must contain the following parameter: '${name}'.`);
const unsupportedGrant = (grant: string) =>
  new EntraError(400, "unsupported_grant_type", 70003, `The app requested an unsupported grant type '${grant}'.`);
const applicationNotFound = (clientId: string, tenant: string) =>
  new EntraError(
    400,
    "unauthorized_client",
    700016,
    `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
  );
const scopeNotDefault = (scope: string) =>
  new EntraError(
    400,
    "invalid_scope",
    1002012,
    `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
  );
const resourceNotFound = (resource: string, tenant: string) =>
  new EntraError(
    400,
    "invalid_resource",
    500011,
    `The resource principal named ${resource} was not found in the tenant named ${tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
  );
const invalidSecret = (clientId: string) =>
  new EntraError(
    401,
    "invalid_client",
    7000215,
    `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
  );
const noClientCredential = () =>
  new EntraError(
    401,
    "invalid_client",
    7000218,
    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
  );
const badAssertionType = (type: string) =>
  new EntraError(
    400,
    "invalid_request",
    700010,
    `Invalid client assertion type '${type}'; expected '${JWT_BEARER_ASSERTION_TYPE}'.`,
  );
const malformedAssertion = () => new EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.");
const noFederatedRecord = (iss: string, sub: string, aud: string) =>
  new EntraError(
    400,
    "invalid_request",
    70021,
    `No matching federated identity record found for presented assertion. Assertion Issuer: '${iss}'. Assertion Subject: '${sub}'. Assertion Audience: '${aud}'.`,
  );
const assertionTime = (nowSec: number, nbf: number | undefined, exp: number) =>
  new EntraError(
    401,
    "invalid_client",
    700024,
    `Client assertion is not within its valid time range. Current time: ${new Date(nowSec * 1000).toISOString()}, assertion valid from ${nbf === undefined ? "(not given)" : new Date(nbf * 1000).toISOString()}, expiry time of assertion ${new Date(exp * 1000).toISOString()}.`,
  );
const assertionSignature = () =>
  new EntraError(401, "invalid_client", 700027, "Client assertion contains an invalid signature.");
const endpointNotFound = (path: string) =>
  new EntraError(404, "invalid_request", 900561, `The endpoint ${path} does not exist.`);
const postOnly = (method: string) =>
  new EntraError(
    405,
    "invalid_request",
    900561,
    `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`,
  );

/** The error body Entra sends: `{ error, error_description, error_codes, timestamp, trace_id, correlation_id, error_uri }`. */
export function entraErrorBody(error: EntraError, options: { now: number; origin: string; correlationId?: string }) {
  const traceId = randomUUID();
  const correlationId = options.correlationId ?? randomUUID();
  const timestamp = stsTimestamp(options.now);
  return {
    error: error.error,
    error_description: `AADSTS${error.code}: ${error.message} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
    error_codes: [error.code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `${options.origin}/error?code=${error.code}`,
  };
}

/** An injected fault on an Entra endpoint (status from the fault rule). */
export const transientEntraError = (status: number) =>
  new EntraError(
    status,
    status >= 500 ? "temporarily_unavailable" : "invalid_request",
    90033,
    "A transient error has occurred. Please try again.",
  );

function validName(value: string, what: string): string {
  if (typeof value !== "string" || !NAME_PATTERN.test(value)) {
    throw new TypeError(`${what} must be letters, digits, dots and dashes (got ${JSON.stringify(value)})`);
  }
  return value;
}

function validLifetime(seconds: number, what: string): number {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400) {
    throw new TypeError(`${what} must be a whole number of seconds from 1 to 86400 (got ${seconds})`);
  }
  return seconds;
}

interface ParsedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

function parseJwt(token: string): ParsedJwt | undefined {
  const parts = token.trim().split(".");
  if (parts.length !== 3) return undefined;
  const [h, p, s] = parts as [string, string, string];
  const json = (part: string): Record<string, unknown> | undefined => {
    if (!/^[A-Za-z0-9_-]+$/.test(part)) return undefined;
    try {
      const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
      return value !== null && typeof value === "object" && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : undefined;
    } catch {
      return undefined;
    }
  };
  const header = json(h);
  const payload = json(p);
  if (!header || !payload || !/^[A-Za-z0-9_-]*$/.test(s)) return undefined;
  return { header, payload, signingInput: `${h}.${p}`, signature: Buffer.from(s, "base64url") };
}

function verifyJwtSignature(jwt: ParsedJwt, keys: readonly JsonWebKey[]): boolean {
  const alg = jwt.header.alg;
  const kid = jwt.header.kid;
  const withKid = typeof kid === "string" ? keys.filter((k) => (k as { kid?: unknown }).kid === kid) : [];
  const candidates = withKid.length > 0 ? withKid : keys;
  const data = Buffer.from(jwt.signingInput, "ascii");
  for (const jwk of candidates) {
    try {
      const key = createPublicKey({ key: jwk, format: "jwk" });
      let ok = false;
      if (alg === "RS256") ok = verify("sha256", data, key, jwt.signature);
      else if (alg === "PS256") {
        ok = verify(
          "sha256",
          data,
          { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
          jwt.signature,
        );
      } else if (alg === "ES256") ok = verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, jwt.signature);
      if (ok) return true;
    } catch {
      // A key of another type, or one that does not parse: try the next.
    }
  }
  return false;
}

/** Tenants, service principals, federated issuers and the tokens issued, with the two Entra endpoints. */
export class EntraIdDirectory {
  readonly #config: EntraIdConfig;
  readonly #clock: Clock;
  readonly #store: BearerTokenStore;
  #tokenLifetimeSeconds = DEFAULT_TOKEN_LIFETIME_SECONDS;
  #tenants = new Map<string, Tenant>();
  #principals = new Map<string, Principal>();
  #issuers = new Map<string, JsonWebKey[]>();
  #issued = new Map<string, IssuedToken>();

  constructor(config: EntraIdConfig, clock: Clock, store: BearerTokenStore) {
    this.#config = config;
    this.#clock = clock;
    this.#store = store;
    this.reset();
  }

  /**
   * Back to the configuration: its tenants, principals, issuers and token lifetime; no tokens issued (the control
   * clears the bearer-token store itself).
   */
  reset(): void {
    this.#tenants.clear();
    this.#principals.clear();
    this.#issuers.clear();
    this.#issued.clear();
    this.#tokenLifetimeSeconds = DEFAULT_TOKEN_LIFETIME_SECONDS;
    this.configure({
      ...(this.#config.tokenLifetimeSeconds === undefined
        ? {}
        : { tokenLifetimeSeconds: this.#config.tokenLifetimeSeconds }),
    });
    for (const t of this.#config.tenants ?? []) this.addTenant(t);
    for (const p of this.#config.servicePrincipals ?? []) this.addServicePrincipal(p);
    for (const i of this.#config.issuers ?? []) this.addIssuer(i);
  }

  // ---- settings

  get tokenLifetimeSeconds(): number {
    return this.#tokenLifetimeSeconds;
  }

  /** Changes the default token lifetime (tokens already issued keep theirs). */
  configure(settings: { tokenLifetimeSeconds?: number }): { tokenLifetimeSeconds: number } {
    if (settings.tokenLifetimeSeconds !== undefined) {
      this.#tokenLifetimeSeconds = validLifetime(settings.tokenLifetimeSeconds, "tokenLifetimeSeconds");
    }
    return { tokenLifetimeSeconds: this.#tokenLifetimeSeconds };
  }

  // ---- tenants

  /** Adds a tenant (or more domains to one). Principals add their tenant themselves. */
  addTenant(config: EntraTenantConfig): EntraTenantConfig {
    const tenantId = validName(config.tenantId, "tenantId");
    const domains = (config.domains ?? []).map((d) => validName(d, "a tenant domain"));
    const existing = this.#tenants.get(lower(tenantId));
    if (existing) {
      for (const d of domains) if (!existing.domains.some((x) => lower(x) === lower(d))) existing.domains.push(d);
      return { tenantId: existing.tenantId, domains: [...existing.domains] };
    }
    for (const d of domains) {
      const other = this.resolveTenant(d);
      if (other) throw new TypeError(`the domain ${d} already belongs to tenant ${other.tenantId}`);
    }
    const tenant: Tenant = { tenantId, domains };
    this.#tenants.set(lower(tenantId), tenant);
    return { tenantId, domains: [...domains] };
  }

  tenants(): EntraTenantConfig[] {
    return [...this.#tenants.values()].map((t) => ({ tenantId: t.tenantId, domains: [...t.domains] }));
  }

  /** A tenant by ID or domain, case-insensitively. */
  resolveTenant(nameOrId: string): Tenant | undefined {
    const key = lower(nameOrId);
    const byId = this.#tenants.get(key);
    if (byId) return byId;
    for (const t of this.#tenants.values()) if (t.domains.some((d) => lower(d) === key)) return t;
    return undefined;
  }

  // ---- service principals

  /**
   * Adds a service principal, or replaces the one with the same tenant and client ID (its tokens take the new
   * scope at once; without a scope they stop working). Creates the tenant when needed.
   */
  addServicePrincipal(config: ServicePrincipalConfig): ServicePrincipalView {
    const tenantInput = validName(config.tenantId, "tenantId");
    const tenant =
      this.resolveTenant(tenantInput) ?? this.#tenants.get(lower(this.addTenant({ tenantId: tenantInput }).tenantId));
    if (!tenant) throw new Error(`tenant ${tenantInput} could not be created`);
    if (typeof config.clientId !== "string" || !/^\S+$/.test(config.clientId)) {
      throw new TypeError(
        `clientId must be a non-empty string without spaces (got ${JSON.stringify(config.clientId)})`,
      );
    }
    if (config.clientSecret !== undefined && (typeof config.clientSecret !== "string" || config.clientSecret === "")) {
      throw new TypeError("clientSecret must be a non-empty string");
    }
    if (config.scope !== undefined && config.scope !== "read" && config.scope !== "manage") {
      throw new TypeError(`scope must be read or manage (got ${JSON.stringify(config.scope)})`);
    }
    const federatedCredentials = (config.federatedCredentials ?? []).map((f) => {
      if (typeof f.issuer !== "string" || f.issuer === "" || typeof f.subject !== "string" || f.subject === "") {
        throw new TypeError("a federated credential needs an issuer and a subject");
      }
      const audiences = f.audiences === undefined ? [WORKLOAD_IDENTITY_AUDIENCE] : [...f.audiences];
      if (audiences.length === 0 || audiences.some((a) => typeof a !== "string" || a === "")) {
        throw new TypeError("a federated credential's audiences must be non-empty strings");
      }
      return { issuer: f.issuer, subject: f.subject, audiences, ...(f.name === undefined ? {} : { name: f.name }) };
    });
    const principal: Principal = {
      tenantId: tenant.tenantId,
      clientId: config.clientId,
      federatedCredentials,
      displayName: config.displayName ?? `service principal ${config.clientId}`,
      ...(config.clientSecret === undefined ? {} : { secretHash: sha256(config.clientSecret) }),
      ...(config.scope === undefined ? {} : { scope: config.scope }),
      ...(config.tokenLifetimeSeconds === undefined
        ? {}
        : { tokenLifetimeSeconds: validLifetime(config.tokenLifetimeSeconds, "tokenLifetimeSeconds") }),
    };
    const key = principalKey(principal.tenantId, principal.clientId);
    this.#principals.set(key, principal);
    this.#syncTokens(key);
    return this.#view(principal);
  }

  /** Removes a principal; its tokens stop working at once. */
  removeServicePrincipal(tenantId: string, clientId: string): boolean {
    const tenant = this.resolveTenant(tenantId);
    if (!tenant) return false;
    const key = principalKey(tenant.tenantId, clientId);
    const removed = this.#principals.delete(key);
    if (removed) this.#syncTokens(key);
    return removed;
  }

  servicePrincipals(): ServicePrincipalView[] {
    return [...this.#principals.values()].map((p) => this.#view(p));
  }

  getServicePrincipal(tenantId: string, clientId: string): ServicePrincipalView | undefined {
    const tenant = this.resolveTenant(tenantId);
    const p = tenant && this.#principals.get(principalKey(tenant.tenantId, clientId));
    return p ? this.#view(p) : undefined;
  }

  #view(p: Principal): ServicePrincipalView {
    const key = principalKey(p.tenantId, p.clientId);
    const now = this.#clock.now();
    let activeTokens = 0;
    for (const t of this.#issued.values()) if (t.principalKey === key && t.expiresOn > now) activeTokens++;
    return {
      tenantId: p.tenantId,
      clientId: p.clientId,
      identity: entraIdentity(p.tenantId, p.clientId),
      displayName: p.displayName,
      ...(p.scope === undefined ? {} : { scope: p.scope }),
      hasSecret: p.secretHash !== undefined,
      federatedCredentials: p.federatedCredentials.map((f) => ({ ...f })),
      ...(p.tokenLifetimeSeconds === undefined ? {} : { tokenLifetimeSeconds: p.tokenLifetimeSeconds }),
      activeTokens,
    };
  }

  /** Puts the store in line with the principal: its tokens get its scope, or go when it has none or is gone. */
  #syncTokens(key: string): void {
    const principal = this.#principals.get(key);
    for (const [token, issued] of this.#issued) {
      if (issued.principalKey !== key) continue;
      if (principal?.scope === undefined) this.#store.remove(token);
      else this.#store.add(token, this.#tokenInfo(principal, principal.scope, issued.expiresOn));
      if (!principal) this.#issued.delete(token);
    }
  }

  #tokenInfo(p: Principal, scope: Scope, expiresOn: number) {
    return {
      identity: entraIdentity(p.tenantId, p.clientId),
      scope,
      displayName: p.displayName,
      expiresOn,
    };
  }

  // ---- federated issuers

  /** Registers the signing keys (JWKs) of a federated token issuer; its assertions must then be signed by one. */
  addIssuer(config: FederatedIssuerConfig): { issuer: string; keys: number } {
    if (typeof config.issuer !== "string" || config.issuer === "") throw new TypeError("an issuer needs its URL");
    if (!Array.isArray(config.keys) || config.keys.length === 0) throw new TypeError("an issuer needs keys (JWKs)");
    for (const k of config.keys) {
      try {
        createPublicKey({ key: k, format: "jwk" });
      } catch (err) {
        throw new TypeError(`a key of issuer ${config.issuer} is not a usable public JWK: ${(err as Error).message}`);
      }
    }
    this.#issuers.set(
      config.issuer,
      config.keys.map((k) => ({ ...k })),
    );
    return { issuer: config.issuer, keys: config.keys.length };
  }

  removeIssuer(issuer: string): boolean {
    return this.#issuers.delete(issuer);
  }

  issuers(): Array<{ issuer: string; keys: number }> {
    return [...this.#issuers].map(([issuer, keys]) => ({ issuer, keys: keys.length }));
  }

  // ---- the endpoints

  /** Answers a request to an Entra path (see `isEntraPath`). */
  handle(request: EntraRequest): EntraReply {
    const segments = request.pathname.split("/").slice(1);
    const tenantSegment = decodeSegment(segments[0] ?? "");
    const rest = segments.slice(1).map(lower).join("/").replace(/\/$/, "");
    const method = request.method.toUpperCase();
    try {
      if (rest === "v2.0/.well-known/openid-configuration" || rest === ".well-known/openid-configuration") {
        if (method !== "GET" && method !== "HEAD") throw endpointNotFound(request.pathname);
        return this.#discovery(tenantSegment, request.origin);
      }
      if (rest === "oauth2/v2.0/token") {
        if (method !== "POST") throw postOnly(method);
        return this.#token(tenantSegment, request);
      }
      if (rest === "discovery/v2.0/keys" || rest === "discovery/keys") {
        if (!this.resolveTenant(tenantSegment)) throw tenantNotFound(tenantSegment);
        return { status: 200, body: { keys: [] } };
      }
      throw endpointNotFound(request.pathname);
    } catch (err) {
      if (!(err instanceof EntraError)) throw err;
      return this.errorReply(err, request, {});
    }
  }

  errorReply(err: EntraError, request: EntraRequest, extra: { identity?: string; detail?: string }): EntraReply {
    return {
      status: err.status,
      body: entraErrorBody(err, {
        now: this.#clock.now(),
        origin: request.origin,
        ...(request.correlationId === undefined ? {} : { correlationId: request.correlationId }),
      }),
      headers: noStore(request.correlationId),
      error: err.error,
      detail: `AADSTS${err.code}${extra.detail === undefined ? "" : `: ${extra.detail}`}`,
      ...(extra.identity === undefined ? {} : { identity: extra.identity }),
    };
  }

  #discovery(tenantSegment: string, origin: string): EntraReply {
    const tenant = this.resolveTenant(tenantSegment);
    if (!tenant) throw tenantNotFound(tenantSegment);
    const base = `${origin}/${encodeURIComponent(tenant.tenantId)}`;
    return {
      status: 200,
      body: {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_modes_supported: ["query", "fragment", "form_post"],
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
        response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
        scopes_supported: ["openid", "profile", "email", "offline_access"],
        issuer: `${base}/v2.0`,
        request_uri_parameter_supported: false,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        http_logout_supported: true,
        frontchannel_logout_supported: true,
        claims_supported: ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "azp"],
        tenant_region_scope: "EU",
        cloud_instance_name: "sim.local",
      },
    };
  }

  #token(tenantSegment: string, request: EntraRequest): EntraReply {
    const tenant = this.resolveTenant(tenantSegment);
    if (!tenant) throw tokenTenantNotFound(tenantSegment);
    const form = request.form ?? new URLSearchParams();
    const get = (name: string) => {
      const v = form.get(name);
      return v === null || v === "" ? undefined : v;
    };
    // client_secret_basic: Authorization: Basic base64(urlencoded id ":" urlencoded secret)
    let basicId: string | undefined;
    let basicSecret: string | undefined;
    const auth = /^Basic\s+(\S+)$/i.exec(request.authorization ?? "");
    if (auth) {
      const decoded = Buffer.from(auth[1] as string, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon > 0) {
        try {
          basicId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " "));
          basicSecret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, " "));
        } catch {
          basicId = undefined;
        }
      }
    }

    const grant = get("grant_type");
    if (grant === undefined) throw missingParameter("grant_type");
    if (grant !== "client_credentials") throw unsupportedGrant(grant);
    const clientId = get("client_id") ?? basicId;
    if (clientId === undefined) throw missingParameter("client_id");
    const principal = this.#principals.get(principalKey(tenant.tenantId, clientId));
    if (!principal) throw applicationNotFound(clientId, tenantSegment);
    const identity = entraIdentity(principal.tenantId, principal.clientId);
    try {
      this.#checkScope(get("scope"), tenantSegment);
      const secret =
        get("client_secret") ?? (basicId !== undefined && lower(basicId) === lower(clientId) ? basicSecret : undefined);
      const assertion = get("client_assertion");
      if (secret !== undefined) {
        if (!principal.secretHash || !timingSafeEqual(principal.secretHash, sha256(secret))) {
          throw invalidSecret(principal.clientId);
        }
      } else if (assertion !== undefined) {
        const type = get("client_assertion_type");
        if (type === undefined) throw missingParameter("client_assertion_type");
        if (type !== JWT_BEARER_ASSERTION_TYPE) throw badAssertionType(type);
        this.#checkAssertion(principal, assertion);
      } else {
        throw noClientCredential();
      }
    } catch (err) {
      if (err instanceof EntraError) return this.errorReply(err, request, { identity });
      throw err;
    }
    return this.#issue(principal, request);
  }

  #checkScope(scope: string | undefined, tenantSegment: string): void {
    if (scope === undefined) throw missingParameter("scope");
    // MSAL may add the OIDC scopes; they play no part in the client credentials grant.
    const scopes = scope.split(/\s+/).filter((s) => s !== "" && !["openid", "profile", "offline_access"].includes(s));
    if (scopes.length !== 1) throw scopeNotDefault(scope);
    const only = scopes[0] as string;
    if (!lower(only).endsWith("/.default")) throw scopeNotDefault(only);
    const resource = lower(only.slice(0, -"/.default".length)).replace(/\/$/, "");
    if (resource !== AZURE_DEVOPS_RESOURCE_ID && resource !== AZURE_DEVOPS_RESOURCE_URI) {
      throw resourceNotFound(only.slice(0, -"/.default".length), tenantSegment);
    }
  }

  #checkAssertion(principal: Principal, assertion: string): void {
    const jwt = parseJwt(assertion);
    if (!jwt) throw malformedAssertion();
    const { iss, sub, aud, exp, nbf } = jwt.payload;
    const audiences =
      typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud.filter((a) => typeof a === "string") : [];
    if (typeof iss !== "string" || typeof sub !== "string" || typeof exp !== "number") throw malformedAssertion();
    const record = principal.federatedCredentials.find(
      (f) => f.issuer === iss && f.subject === sub && (f.audiences ?? []).some((a) => audiences.includes(a)),
    );
    if (!record) throw noFederatedRecord(iss, sub, audiences.join(","));
    const nowSec = Math.floor(this.#clock.now() / 1000);
    const notBefore = typeof nbf === "number" ? nbf : undefined;
    if (exp <= nowSec || (notBefore !== undefined && notBefore > nowSec + ASSERTION_CLOCK_SKEW_SECONDS)) {
      throw assertionTime(nowSec, notBefore, exp);
    }
    const keys = this.#issuers.get(iss);
    if (keys && !verifyJwtSignature(jwt, keys)) throw assertionSignature();
  }

  #issue(principal: Principal, request: EntraRequest): EntraReply {
    const now = this.#clock.now();
    // Forget what has expired (the store drops expired tokens from view already; keep both small).
    for (const [token, issued] of this.#issued) {
      if (issued.expiresOn <= now) {
        this.#issued.delete(token);
        this.#store.remove(token);
      }
    }
    const lifetime = principal.tokenLifetimeSeconds ?? this.#tokenLifetimeSeconds;
    const token = randomBytes(48).toString("base64url");
    const expiresOn = now + lifetime * 1000;
    const key = principalKey(principal.tenantId, principal.clientId);
    this.#issued.set(token, { principalKey: key, expiresOn });
    if (principal.scope !== undefined) {
      this.#store.add(token, this.#tokenInfo(principal, principal.scope, expiresOn));
    }
    return {
      status: 200,
      body: { token_type: "Bearer", expires_in: lifetime, ext_expires_in: lifetime, access_token: token },
      headers: noStore(request.correlationId),
      identity: entraIdentity(principal.tenantId, principal.clientId),
    };
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function noStore(correlationId: string | undefined): Record<string, string> {
  return {
    "Cache-Control": "no-store, no-cache",
    Pragma: "no-cache",
    "x-ms-request-id": randomUUID(),
    ...(correlationId === undefined ? {} : { "client-request-id": correlationId }),
  };
}
