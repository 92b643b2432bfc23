/**
 * Microsoft Entra ID credentials for Azure DevOps: a service principal with a client secret, workload identity (a
 * federated Kubernetes service account token exchanged for an Entra token), or any client assertion, built on
 * `@azure/identity`. `entraIdCredential(options)` returns the project's token `Credential`: tokens for the Azure
 * DevOps resource (`499b84ac-1321-427f-aa17-267ca6975798/.default`), cached and refreshed before they expire
 * (5 minutes before, or at half their life when they live less than 10 minutes), with a stable identity
 * `entra:<tenant>/<client-id>`.
 *
 * Failures become `EntraIdError`s whose message says what is wrong in the user's terms (the secret was refused, the
 * tenant or application is unknown, the federated token does not match, the authority cannot be reached or its
 * certificate is not trusted). Neither the secret, nor a federated token, nor an access token is ever logged or
 * put in a message.
 *
 * Talking to an authority other than Microsoft's (the emulator, Azure Stack): it must be https (MSAL refuses
 * anything else), its CA must be trusted (`caCertificates`, or `NODE_EXTRA_CA_CERTS` for the whole process), and
 * MSAL's instance discovery, which always asks `login.microsoftonline.com`, is skipped (the default for such hosts).
 */
import { request as httpsRequest } from "node:https";
import * as tls from "node:tls";
// Types only: the library itself (tens of MiB of memory) is loaded when the first Entra credential needs a token.
import type {
  AccessToken,
  TokenCredential as AzureTokenCredential,
  ClientAssertionCredentialOptions,
} from "@azure/identity";
import type { EntraIdAuthentication } from "../api/v1/index.ts";
import { errorMessage, type Logger, silentLogger } from "../runtime/logger.ts";
import { fingerprint, redact, type TokenCredential } from "./auth.ts";

/** The application ID of Azure DevOps in Entra ID. */
export const AZURE_DEVOPS_RESOURCE_ID = "499b84ac-1321-427f-aa17-267ca6975798";
/** The scope every Azure DevOps token is requested for. */
export const AZURE_DEVOPS_SCOPE = `${AZURE_DEVOPS_RESOURCE_ID}/.default`;
export const DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com";
/** Refresh this long before expiry (at most half a token's life). */
export const DEFAULT_REFRESH_MARGIN_MS = 5 * 60_000;
/** After a failed early refresh, try again no sooner than this while the current token still lives. */
export const DEFAULT_REFRESH_RETRY_MS = 30_000;

/**
 * Authority hosts of Microsoft's clouds: MSAL knows their metadata, instance discovery is harmless there. For any
 * other host it is skipped by default (it would ask login.microsoftonline.com about a host it does not know).
 */
const MICROSOFT_AUTHORITY_HOSTS = new Set([
  "login.microsoftonline.com",
  "login.microsoft.com",
  "login.windows.net",
  "sts.windows.net",
  "login.microsoftonline.us",
  "login.usgovcloudapi.net",
  "login-us.microsoftonline.com",
  "login.chinacloudapi.cn",
  "login.partner.microsoftonline.cn",
  "login.microsoftonline.de",
]);

export type EntraIdErrorKind =
  /** The options cannot work (no credential, two credentials, no tenant, an http authority...). */
  | "configuration"
  /** Entra ID refused the client secret (wrong, or expired). */
  | "bad-secret"
  /** The application (client ID) is not known in that tenant. */
  | "unknown-client"
  /** The tenant is not known to the authority. */
  | "unknown-tenant"
  /** The federated token was refused (no matching federated credential, expired, bad signature) or unreadable. */
  | "federation"
  /** No answer from the authority (connection refused or lost, DNS, timeout). */
  | "unreachable"
  /** The authority answered that it cannot serve now (5xx, 429, AADSTS90033). */
  | "unavailable"
  /** The authority's TLS certificate is not trusted. */
  | "untrusted-certificate"
  /** Entra ID refused for another reason (its AADSTS code is in the message). */
  | "refused"
  | "unexpected";

export class EntraIdError extends Error {
  readonly kind: EntraIdErrorKind;
  /** `entra:<tenant>/<client-id>` */
  readonly identity: string;
  /** The AADSTS code Entra answered with, when it answered with one (e.g. `7000215`). */
  readonly aadsts: string | undefined;

  constructor(
    kind: EntraIdErrorKind,
    identity: string,
    message: string,
    options: { aadsts?: string; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "EntraIdError";
    this.kind = kind;
    this.identity = identity;
    this.aadsts = options.aadsts;
  }

  /** The same call may succeed later as it is (the authority was unreachable or busy). */
  get transient(): boolean {
    return this.kind === "unreachable" || this.kind === "unavailable" || this.kind === "unexpected";
  }
}

export interface EntraIdCredentialOptions {
  /** Tenant ID (GUID) or verified domain. Default: env `AZURE_TENANT_ID`. */
  tenantId?: string;
  /** Application (client) ID of the service principal or managed identity. Default: env `AZURE_CLIENT_ID`. */
  clientId?: string;
  /** Default: env `AZURE_AUTHORITY_HOST`, else `https://login.microsoftonline.com`. Must be https. */
  authorityHost?: string;

  // Exactly one credential (with none, a federated token file in the environment means workload identity):
  /** A service principal's client secret. */
  clientSecret?: string;
  /** Workload identity: the federated token file (default: env `AZURE_FEDERATED_TOKEN_FILE`, re-read as it rotates). */
  workloadIdentity?: boolean | { tokenFilePath?: string };
  /** Any client assertion, e.g. a service account token from the TokenRequest API (audience api://AzureADTokenExchange). */
  clientAssertion?: () => Promise<string>;
  /** Any other `@azure/identity` credential (e.g. ManagedIdentityCredential); tenant and client ID name it. */
  tokenCredential?: AzureTokenCredential;

  /** Extra CA certificates (PEM) to trust for the authority, besides the default ones. */
  caCertificates?: string | readonly string[];
  /** Skip MSAL's instance discovery. Default: true for hosts that are not Microsoft's. */
  disableInstanceDiscovery?: boolean;
  /** Retries of the identity library's HTTP calls (network errors, 5xx, 429). Default 3. */
  maxRetries?: number;
  /** Refresh this long before expiry; capped at half the token's life. Default 5 minutes. */
  refreshMarginMs?: number;
  /** After a failed early refresh, wait this long before the next attempt (the current token is kept). Default 30 s. */
  refreshRetryMs?: number;
  /** The clock (ms since the epoch, like Date.now, which the identity library uses for expiry). */
  now?: () => number;
  /** The environment read for defaults. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  logger?: Logger;
  /**
   * Names the credential's material when it is not a client secret (e.g. `sa:<namespace>/<name>` for a
   * ServiceAccount's tokens as the assertion); a client secret is fingerprinted by itself.
   */
  materialName?: string;
  /** Told about every token request to the identity library (metrics); must not throw. */
  onTokenRequest?: (observation: TokenRequestObservation) => void;
}

/** One token request: who, how long, and how it failed (absent: a token came). */
export interface TokenRequestObservation {
  /** `entra:<tenant>/<client-id>`, never a secret. */
  readonly identity: string;
  readonly durationMs: number;
  readonly error?: EntraIdErrorKind;
}

/** What the operator resolved for an `entraIdAuthentication` block: the Secret's value or an assertion source. */
export interface ResolvedEntraIdSecrets {
  /** The value of `clientSecretRef` (the operator read the Secret). */
  clientSecret?: string;
  /**
   * For `workloadIdentity.serviceAccountName`: a token of that service account with audience
   * `api://AzureADTokenExchange` (from the TokenRequest API).
   */
  clientAssertion?: () => Promise<string>;
}

/**
 * Options for `entraIdCredential` from an AutoScaledAgent's `entraIdAuthentication` block: `clientSecretRef` needs
 * the secret, `workloadIdentity.serviceAccountName` an assertion source, `workloadIdentity: {}` uses the operator's
 * own federated token file (`AZURE_FEDERATED_TOKEN_FILE`, set by the AKS workload identity webhook).
 */
export function entraIdOptionsFromSpec(
  auth: EntraIdAuthentication,
  resolved: ResolvedEntraIdSecrets,
  rest: Omit<
    EntraIdCredentialOptions,
    "tenantId" | "clientId" | "authorityHost" | "clientSecret" | "workloadIdentity" | "clientAssertion"
  > = {},
): EntraIdCredentialOptions {
  const base: EntraIdCredentialOptions = {
    ...rest,
    tenantId: auth.tenantId,
    clientId: auth.clientId,
    ...(auth.authorityHost === undefined ? {} : { authorityHost: auth.authorityHost }),
  };
  const identity = entraIdentity(auth.tenantId, auth.clientId);
  if (auth.clientSecretRef !== undefined) {
    if (resolved.clientSecret === undefined) {
      throw new EntraIdError(
        "configuration",
        identity,
        `the client secret of ${identity} (Secret ${auth.clientSecretRef.name}) was not provided`,
        {},
      );
    }
    return { ...base, clientSecret: resolved.clientSecret };
  }
  if (auth.workloadIdentity?.serviceAccountName !== undefined) {
    if (resolved.clientAssertion === undefined) {
      throw new EntraIdError(
        "configuration",
        identity,
        `no token source for service account ${auth.workloadIdentity.serviceAccountName} (workload identity of ${identity})`,
        {},
      );
    }
    return { ...base, clientAssertion: resolved.clientAssertion };
  }
  return { ...base, workloadIdentity: true };
}

/** The stable identity of an Entra principal: `entra:<tenant>/<client-id>`, lower case. */
export function entraIdentity(tenantId: string, clientId: string): string {
  return `entra:${tenantId.trim().toLowerCase()}/${clientId.trim().toLowerCase()}`;
}

interface Cached {
  token: string;
  expiresOn: number;
  /** When to fetch a new one. */
  refreshAt: number;
  /** After this the token is not handed out any more (a little before expiry). */
  usableUntil: number;
}

type Mode =
  | { kind: "secret"; secret: string }
  | { kind: "workload"; tokenFilePath: string | undefined }
  | { kind: "assertion"; getAssertion: () => Promise<string> }
  | { kind: "custom"; credential: AzureTokenCredential };

/**
 * A token credential for Azure DevOps from Microsoft Entra ID. Throws `EntraIdError` (kind `configuration`) at once
 * when the options cannot work; `getToken()` rejects with an `EntraIdError` when no token can be had.
 */
export function entraIdCredential(options: EntraIdCredentialOptions): TokenCredential {
  return new EntraIdTokenProvider(options);
}

class EntraIdTokenProvider implements TokenCredential {
  readonly kind = "token";
  readonly identity: string;
  readonly material: string;
  readonly #tenantId: string;
  readonly #clientId: string;
  readonly #authorityHost: string;
  readonly #mode: Mode;
  readonly #ca: string[] | undefined;
  readonly #options: EntraIdCredentialOptions;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #secrets: string[];
  #credential: Promise<AzureTokenCredential>;
  #cached: Cached | undefined;
  #inflight: { generation: number; promise: Promise<Cached> } | undefined;
  /** Bumped by invalidate(): a fetch started before it must not hand out or cache its (possibly refused) token. */
  #generation = 0;
  #nextAttempt = 0;

  constructor(options: EntraIdCredentialOptions) {
    const env = options.env ?? process.env;
    const tenantId = (options.tenantId ?? env.AZURE_TENANT_ID ?? "").trim();
    const clientId = (options.clientId ?? env.AZURE_CLIENT_ID ?? "").trim();
    this.identity = entraIdentity(tenantId || "?", clientId || "?");
    this.material = fingerprint(
      options.authorityHost ?? env.AZURE_AUTHORITY_HOST ?? "",
      options.clientSecret !== undefined ? `secret:${options.clientSecret}` : (options.materialName ?? "ambient"),
    );
    const fail = (message: string): never => {
      throw new EntraIdError("configuration", this.identity, message, {});
    };
    if (tenantId === "") fail("Entra ID authentication needs a tenant ID (tenantId, or env AZURE_TENANT_ID)");
    if (!/^[0-9A-Za-z.-]+$/.test(tenantId)) fail(`the tenant ID ${JSON.stringify(tenantId)} is not a GUID or domain`);
    if (clientId === "") fail("Entra ID authentication needs a client ID (clientId, or env AZURE_CLIENT_ID)");
    this.#tenantId = tenantId;
    this.#clientId = clientId;
    this.#authorityHost = normalizeAuthorityHost(options.authorityHost ?? env.AZURE_AUTHORITY_HOST, fail);
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#log = options.logger ?? silentLogger();

    const given = [
      options.clientSecret !== undefined,
      options.workloadIdentity !== undefined && options.workloadIdentity !== false,
      options.clientAssertion !== undefined,
      options.tokenCredential !== undefined,
    ].filter(Boolean).length;
    if (given > 1) {
      fail(`give one credential for ${this.identity}: a client secret, workload identity or a client assertion`);
    }
    if (options.clientSecret !== undefined) {
      const secret = options.clientSecret.trim();
      if (secret === "") fail(`the client secret of ${this.identity} is empty`);
      this.#mode = { kind: "secret", secret };
    } else if (options.clientAssertion !== undefined) {
      this.#mode = { kind: "assertion", getAssertion: options.clientAssertion };
    } else if (options.tokenCredential !== undefined) {
      this.#mode = { kind: "custom", credential: options.tokenCredential };
    } else if (
      (options.workloadIdentity !== undefined && options.workloadIdentity !== false) ||
      (options.workloadIdentity === undefined && env.AZURE_FEDERATED_TOKEN_FILE !== undefined)
    ) {
      const explicit =
        typeof options.workloadIdentity === "object" ? options.workloadIdentity.tokenFilePath : undefined;
      const tokenFilePath = explicit ?? env.AZURE_FEDERATED_TOKEN_FILE;
      if (tokenFilePath === undefined || tokenFilePath === "") {
        fail(
          `workload identity of ${this.identity} needs the federated token file (env AZURE_FEDERATED_TOKEN_FILE, set by the workload identity webhook when the pod's service account is labelled azure.workload.identity/use: "true")`,
        );
      }
      this.#mode = { kind: "workload", tokenFilePath };
    } else {
      this.#mode = fail(
        `no credential for ${this.identity}: give a client secret, workload identity (a federated token file) or a client assertion`,
      );
    }
    this.#secrets = this.#mode.kind === "secret" ? [this.#mode.secret] : [];
    const extra = options.caCertificates === undefined ? [] : [options.caCertificates].flat();
    this.#ca = extra.length === 0 ? undefined : [...defaultCaCertificates(), ...extra];
    this.#credential = quiet(this.#makeCredential());
  }

  async #makeCredential(): Promise<AzureTokenCredential> {
    const mode = this.#mode;
    if (mode.kind === "custom") return mode.credential;
    const { ClientAssertionCredential, ClientSecretCredential, WorkloadIdentityCredential } = await import(
      "@azure/identity"
    );
    const host = new URL(this.#authorityHost).hostname.toLowerCase();
    const common: ClientAssertionCredentialOptions = {
      authorityHost: this.#authorityHost,
      disableInstanceDiscovery: this.#options.disableInstanceDiscovery ?? !MICROSOFT_AUTHORITY_HOSTS.has(host),
      retryOptions: { maxRetries: this.#options.maxRetries ?? 3 },
      ...(this.#ca === undefined ? {} : { tlsOptions: { ca: this.#ca } }),
    };
    switch (mode.kind) {
      case "secret":
        return new ClientSecretCredential(this.#tenantId, this.#clientId, mode.secret, common);
      case "assertion":
        return new ClientAssertionCredential(this.#tenantId, this.#clientId, mode.getAssertion, common);
      case "workload":
        return new WorkloadIdentityCredential({
          ...common,
          tenantId: this.#tenantId,
          clientId: this.#clientId,
          ...(mode.tokenFilePath === undefined ? {} : { tokenFilePath: mode.tokenFilePath }),
        });
    }
  }

  /** A currently valid access token: the cached one, or a fresh one when it is due for refresh. */
  async getToken(): Promise<string> {
    const now = this.#now();
    const cached = this.#cached;
    if (cached !== undefined && now < cached.refreshAt) return cached.token;
    if (cached !== undefined && now < cached.usableUntil) {
      // Due for refresh, but still good: a failure here keeps the current token for a while.
      if (now < this.#nextAttempt) return cached.token;
      try {
        return (await this.#refresh()).token;
      } catch (err) {
        this.#nextAttempt = this.#now() + (this.#options.refreshRetryMs ?? DEFAULT_REFRESH_RETRY_MS);
        this.#log.warn("entra id: early token refresh failed; keeping the current token", {
          identity: this.identity,
          expiresOn: new Date(cached.expiresOn).toISOString(),
          error: errorMessage(err),
        });
        return cached.token;
      }
    }
    return (await this.#refresh()).token;
  }

  /** Forgets the token (the service refused it); the next call gets a fresh one, past the identity library's cache. */
  invalidate(): void {
    this.#cached = undefined;
    this.#nextAttempt = 0;
    this.#generation++;
    if (this.#mode.kind !== "custom") this.#credential = quiet(this.#makeCredential());
  }

  #refresh(): Promise<Cached> {
    const generation = this.#generation;
    if (this.#inflight?.generation !== generation) {
      const promise = this.#fetch(generation).finally(() => {
        if (this.#inflight?.promise === promise) this.#inflight = undefined;
      });
      this.#inflight = { generation, promise };
    }
    return (this.#inflight as { promise: Promise<Cached> }).promise;
  }

  async #fetch(generation: number): Promise<Cached> {
    let result: AccessToken | null;
    const started = this.#now();
    try {
      result = await (await this.#credential).getToken(AZURE_DEVOPS_SCOPE);
    } catch (err) {
      const explained = await this.#explain(err);
      this.#observed(started, explained.kind);
      throw explained;
    }
    if (!result || typeof result.token !== "string" || result.token === "") {
      this.#observed(started, "unexpected");
      throw new EntraIdError("unexpected", this.identity, `Entra ID returned no token for ${this.identity}`, {});
    }
    this.#observed(started);
    const now = this.#now();
    const remaining = Math.max(0, result.expiresOnTimestamp - now);
    const margin = Math.min(this.#options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS, remaining / 2);
    let refreshAt = result.expiresOnTimestamp - margin;
    if (result.refreshAfterTimestamp !== undefined) refreshAt = Math.min(refreshAt, result.refreshAfterTimestamp);
    const cached: Cached = {
      token: result.token,
      expiresOn: result.expiresOnTimestamp,
      refreshAt,
      usableUntil: result.expiresOnTimestamp - Math.min(30_000, remaining / 10),
    };
    if (generation !== this.#generation) return cached; // invalidated meanwhile: hand it to its caller only
    const renewed = this.#cached !== undefined && this.#cached.token !== cached.token;
    this.#cached = cached;
    this.#nextAttempt = 0;
    this.#log.debug(renewed ? "entra id: token refreshed" : "entra id: token acquired", {
      identity: this.identity,
      expiresOn: new Date(cached.expiresOn).toISOString(),
      refreshAt: new Date(cached.refreshAt).toISOString(),
    });
    return cached;
  }

  #observed(started: number, error?: EntraIdErrorKind): void {
    try {
      this.#options.onTokenRequest?.({
        identity: this.identity,
        durationMs: Math.max(0, this.#now() - started),
        ...(error === undefined ? {} : { error }),
      });
    } catch (err) {
      this.#log.warn("entra id: token request observer failed", { identity: this.identity, error: err });
    }
  }

  /** Turns what the identity library threw into an EntraIdError with a message a user can act on. */
  async #explain(err: unknown): Promise<EntraIdError> {
    const id = this.identity;
    const where = `tenant ${this.#tenantId} at ${this.#authorityHost}`;
    const make = (kind: EntraIdErrorKind, message: string, aadsts?: string) =>
      new EntraIdError(kind, id, redact(message, this.#secrets), {
        cause: err,
        ...(aadsts === undefined ? {} : { aadsts }),
      });
    const text = describeError(err);
    const server = serverAnswer(err);
    if (server !== undefined) {
      const { code, description, status } = server;
      // Federation errors name the assertion's issuer, subject and audience in later sentences: keep them.
      const federation = ["70021", "700024", "700027", "50027", "700211", "700212", "700213"].includes(code);
      const said = `AADSTS${code}: ${firstSentences(description, federation ? 5 : 1)}`;
      switch (code) {
        case "7000215":
          return make(
            "bad-secret",
            `Entra ID refused the client secret of ${id} (${said}): the Secret must hold the secret's value, not its ID`,
            code,
          );
        case "7000222":
          return make("bad-secret", `the client secret of ${id} has expired (${said}); create a new one`, code);
        case "700016":
          return make(
            "unknown-client",
            `application ${this.#clientId} is not known in ${where} (${said}); check clientId and tenantId`,
            code,
          );
        case "90002":
          return make(
            "unknown-tenant",
            `tenant ${this.#tenantId} is not known at ${this.#authorityHost} (${said})`,
            code,
          );
        case "70021":
        case "700024":
        case "700027":
        case "50027":
        case "700211":
        case "700212":
        case "700213":
          return make(
            "federation",
            `Entra ID refused the federated token of ${id} (${said}); check the federated credential's issuer, subject and audience`,
            code,
          );
        default:
          if (code === "90033" || (status !== undefined && (status >= 500 || status === 429))) {
            // MSAL then refuses to ask again for 60 s (or Retry-After): its throttling.
            return make(
              "unavailable",
              `Entra ID could not issue a token for ${id} now (${said}); retrying later`,
              code,
            );
          }
          return make("refused", `Entra ID refused to issue a token for ${id} (${said})`, code);
      }
    }
    if (/endpoints_resolution_error|network_error|untrusted_authority|issuer_validation_failed/.test(text)) {
      const found = await probeAuthority(this.#authorityHost, this.#tenantId, this.#ca);
      if (found !== undefined) return make(found.kind, `${found.message} (getting a token for ${id})`);
      if (/network_error/.test(text)) {
        return make(
          "unreachable",
          `the connection to the Entra authority ${this.#authorityHost} failed while getting a token for ${id} (it answers now: probably transient)`,
        );
      }
      return make(
        "unexpected",
        `the Entra authority ${this.#authorityHost} answers for ${where}, but the identity library could not use it: ${firstSentences(rootMessage(err))}`,
      );
    }
    if (
      this.#mode.kind === "workload" &&
      /ENOENT|EACCES|federated token path|No content on the file|file path/i.test(text)
    ) {
      return make(
        "federation",
        `cannot read the federated token file ${this.#mode.tokenFilePath} of ${id} (${firstSentences(rootMessage(err))})`,
      );
    }
    if (/RestError|ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|socket hang up/.test(text)) {
      return make(
        "unreachable",
        `cannot reach the Entra authority ${this.#authorityHost} for ${id}: ${firstSentences(text)}`,
      );
    }
    return make("unexpected", `could not get a token for ${id} from ${where}: ${firstSentences(text)}`);
  }
}

function normalizeAuthorityHost(value: string | undefined, fail: (message: string) => never): string {
  const raw = (value ?? "").trim() || DEFAULT_AUTHORITY_HOST;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail(`the Entra authority host ${JSON.stringify(raw)} is not a URL`);
  }
  if (url.protocol !== "https:") {
    return fail(
      `the Entra authority host must use https (got ${raw}): the identity library refuses anything else; the Azure DevOps emulator has an HTTPS listener for this`,
    );
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    return fail(`the Entra authority host ${raw} must be a plain https URL (no query, fragment or credentials)`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/** The default trust store of this process (bundled and, with NODE_EXTRA_CA_CERTS, extra certificates). */
function defaultCaCertificates(): string[] {
  const get = (tls as { getCACertificates?: (type?: "default") => string[] }).getCACertificates;
  return get ? get("default") : [...tls.rootCertificates];
}

/** The error's own message plus its causes' (the identity library wraps MSAL's errors). */
function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown; errorCode?: unknown }).code ?? (e as { errorCode?: unknown }).errorCode;
      parts.push(`${e.name}${typeof code === "string" ? ` ${code}` : ""}: ${e.message}`);
      e = (e as { cause?: unknown }).cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join(" <- ");
}

/** The message of the innermost cause. */
function rootMessage(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e instanceof Error && (e as { cause?: unknown }).cause instanceof Error; depth++) {
    e = (e as { cause?: unknown }).cause;
  }
  return errorMessage(e);
}

/**
 * The AADSTS code, description and HTTP status when Entra answered with an error (MSAL's ServerError, or the
 * identity library's AuthenticationError).
 */
function serverAnswer(err: unknown): { code: string; description: string; status: number | undefined } | undefined {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 4; depth++) {
    const fields = e as {
      errorResponse?: { errorDescription?: string };
      errorMessage?: string;
      errorNo?: unknown;
      status?: unknown;
      statusCode?: unknown;
    };
    const raw = fields.status ?? fields.statusCode;
    const status = typeof raw === "number" ? raw : undefined;
    const description = fields.errorResponse?.errorDescription ?? fields.errorMessage ?? e.message;
    const m = /AADSTS(\d+):\s*([\s\S]*)/.exec(description);
    if (m) return { code: m[1] as string, description: m[2] as string, status };
    if (typeof fields.errorNo === "string" && /^\d+$/.test(fields.errorNo)) {
      return { code: fields.errorNo, description: e.message, status };
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * The first `count` sentences of an STS description (or error message), without trace and correlation IDs and
 * timestamps, at most 400 characters.
 */
function firstSentences(text: string, count = 1): string {
  const cut = text.split(/\s+(?:Trace ID:|Correlation ID:|Timestamp:|- Correlation ID|- Trace ID)/)[0] ?? text;
  const sentences = cut
    .trim()
    .replace(/\s+/g, " ")
    .split(/(?<=\.)\s+(?=[A-Z])/);
  const kept = sentences.slice(0, count).join(" ");
  return kept.length > 400 ? `${kept.slice(0, 397)}...` : kept;
}

interface ProbeFinding {
  kind: EntraIdErrorKind;
  message: string;
}

const networkCodes = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
]);

/**
 * MSAL reports every failure of endpoint discovery the same way; fetching the OpenID configuration ourselves (same
 * trust store) tells an unreachable host, an untrusted certificate and an unknown tenant apart.
 */
function probeAuthority(
  authorityHost: string,
  tenantId: string,
  ca: string[] | undefined,
): Promise<ProbeFinding | undefined> {
  const url = `${authorityHost}/${encodeURIComponent(tenantId)}/v2.0/.well-known/openid-configuration`;
  return new Promise((resolve) => {
    const req = httpsRequest(url, { method: "GET", timeout: 10_000, ...(ca === undefined ? {} : { ca }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", () => resolve(undefined));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        let json: { error?: string; error_description?: string; issuer?: string } | undefined;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        const status = res.statusCode ?? 0;
        if (json?.error === "invalid_tenant" || /AADSTS90002/.test(json?.error_description ?? "")) {
          resolve({
            kind: "unknown-tenant",
            message: `tenant ${tenantId} is not known at ${authorityHost} (AADSTS90002)`,
          });
        } else if (status !== 200) {
          resolve({
            kind: status >= 500 || status === 429 ? "unreachable" : "unexpected",
            message: `the Entra authority ${authorityHost} answered HTTP ${status} for the OpenID configuration of tenant ${tenantId}${json?.error_description ? `: ${firstSentences(json.error_description)}` : ""}`,
          });
        } else if (json === undefined || typeof json.issuer !== "string") {
          resolve({
            kind: "unexpected",
            message: `${url} is not an OpenID configuration: is ${authorityHost} an Entra authority host?`,
          });
        } else {
          resolve(undefined);
        }
      });
    });
    req.on("timeout", () => {
      req.destroy();
      resolve({ kind: "unreachable", message: `the Entra authority ${authorityHost} did not answer within 10 s` });
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      const code = err.code ?? "";
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS|HOSTNAME/.test(code)) {
        resolve({
          kind: "untrusted-certificate",
          message: `the TLS certificate of the Entra authority ${authorityHost} is not trusted (${code}): give its CA (caCertificates) or set NODE_EXTRA_CA_CERTS`,
        });
      } else if (networkCodes.has(code)) {
        resolve({ kind: "unreachable", message: `cannot reach the Entra authority ${authorityHost} (${code})` });
      } else {
        resolve({ kind: "unreachable", message: `cannot reach the Entra authority ${authorityHost}: ${err.message}` });
      }
    });
    req.end();
  });
}

/** The promise as it is, with a handler attached: a failure is reported where it is awaited, never as unhandled. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}
