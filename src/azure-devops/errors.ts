/**
 * Typed errors of the Azure DevOps client and the pure classification of an HTTP answer (status, headers, body)
 * into data or an error. Messages are for users (status conditions, events): they name the organization, what was
 * being done and what the service said, and never contain a credential.
 */

import { errorMessage } from "../runtime/logger.ts";
import { redact } from "./auth.ts";

export type AzureDevOpsErrorKind =
  /** 401, or a sign-in page (HTTP 203 / HTML) instead of JSON: the credential was not accepted. */
  | "auth"
  /** 403: authenticated, but not allowed (e.g. a read-only PAT registering an agent). */
  | "forbidden"
  | "not-found"
  /** 409, and refusals of the current state (an agent that still runs a job cannot be deleted). */
  | "conflict"
  /** Any other 4xx. */
  | "bad-request"
  /** 429; `retryAfterMs` says when to come back (when the service said). */
  | "rate-limited"
  /** 5xx. */
  | "server"
  /** No HTTP answer: connection refused, reset, dropped, DNS. */
  | "network"
  /** No answer within the client's timeout (or HTTP 408). */
  | "timeout"
  /** A 2xx answer that is not what the API promises (unreadable JSON, wrong shape). */
  | "invalid-response"
  /** The settings cannot work: a malformed organization URL, a pool name matching several pools. */
  | "configuration"
  /** A failure the client did not foresee (a bug); reported rather than thrown past the poller. */
  | "unexpected";

/** Kinds worth retrying as they are: the same request may succeed later. */
const transientKinds: ReadonlySet<AzureDevOpsErrorKind> = new Set(["rate-limited", "server", "network", "timeout"]);

export interface AzureDevOpsErrorOptions {
  status?: number | undefined;
  /** The `message` of the service's JSON error body. */
  serviceMessage?: string | undefined;
  /** The `typeKey` of the service's JSON error body, e.g. `TaskAgentExistsException`. */
  typeKey?: string | undefined;
  /** How long the service asked us to wait (Retry-After), in ms. */
  retryAfterMs?: number | undefined;
  method?: string | undefined;
  /** The request URL (it never holds a credential). */
  url?: string | undefined;
  organizationUrl?: string | undefined;
  cause?: unknown;
}

export class AzureDevOpsError extends Error {
  readonly kind: AzureDevOpsErrorKind;
  readonly status: number | undefined;
  readonly serviceMessage: string | undefined;
  readonly typeKey: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly organizationUrl: string | undefined;

  constructor(kind: AzureDevOpsErrorKind, message: string, options: AzureDevOpsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AzureDevOpsError";
    this.kind = kind;
    this.status = options.status;
    this.serviceMessage = options.serviceMessage;
    this.typeKey = options.typeKey;
    this.retryAfterMs = options.retryAfterMs;
    this.method = options.method;
    this.url = options.url;
    this.organizationUrl = options.organizationUrl;
  }

  /** The same request may succeed later (rate limit, server error, network, timeout). */
  get transient(): boolean {
    return transientKinds.has(this.kind);
  }

  /** The fields of this error, for structured logs. */
  fields(): Record<string, unknown> {
    return {
      kind: this.kind,
      status: this.status,
      typeKey: this.typeKey,
      method: this.method,
      url: this.url,
      retryAfterMs: this.retryAfterMs,
    };
  }

  protected static optionsOf(error: AzureDevOpsError): AzureDevOpsErrorOptions {
    return {
      status: error.status,
      serviceMessage: error.serviceMessage,
      typeKey: error.typeKey,
      retryAfterMs: error.retryAfterMs,
      method: error.method,
      url: error.url,
      organizationUrl: error.organizationUrl,
      cause: error,
    };
  }
}

/** Registering an agent whose name is taken in the pool (409). */
export class AgentExistsError extends AzureDevOpsError {
  readonly agentName: string;

  constructor(agentName: string, poolId: number, error: AzureDevOpsError) {
    super(
      "conflict",
      `an agent named '${agentName}' already exists in pool ${poolId} of ${error.organizationUrl ?? "the organization"}`,
      AzureDevOpsError.optionsOf(error),
    );
    this.name = "AgentExistsError";
    this.agentName = agentName;
  }
}

/**
 * The service refused to delete an agent (any 4xx other than 401, 403, 404 and 429): it is running a job, or the
 * service is otherwise not ready to let it go. Not now; try again later. `kind` is `conflict`.
 */
export class AgentBusyError extends AzureDevOpsError {
  readonly agentId: number;

  constructor(poolId: number, agentId: number, error: AzureDevOpsError) {
    super(
      "conflict",
      `Azure DevOps refused to delete agent ${agentId} of pool ${poolId} for now (HTTP ${error.status}), ` +
        `probably because it is running a job; retry later${error.serviceMessage ? `: ${error.serviceMessage}` : ""}`,
      AzureDevOpsError.optionsOf(error),
    );
    this.name = "AgentBusyError";
    this.agentId = agentId;
  }
}

/** The configured pool name does not lead to exactly one pool: a setting to fix, not a passing failure. */
export class PoolLookupError extends AzureDevOpsError {
  readonly poolName: string;

  constructor(kind: AzureDevOpsErrorKind, poolName: string, message: string, options: AzureDevOpsErrorOptions) {
    super(kind, message, options);
    this.name = "PoolLookupError";
    this.poolName = poolName;
  }
}

/** No agent pool has the configured name (kind `not-found`). */
export class PoolNotFoundError extends PoolLookupError {
  constructor(poolName: string, organizationUrl: string, options: AzureDevOpsErrorOptions = {}) {
    super(
      "not-found",
      poolName,
      `no agent pool named '${poolName}' exists in ${organizationUrl} (or the credential cannot see it)`,
      { ...options, organizationUrl },
    );
    this.name = "PoolNotFoundError";
  }
}

/** The configured pool name matches several pools (kind `configuration`). */
export class AmbiguousPoolError extends PoolLookupError {
  readonly matches: readonly string[];

  constructor(
    poolName: string,
    organizationUrl: string,
    matches: readonly string[],
    options: AzureDevOpsErrorOptions = {},
  ) {
    super(
      "configuration",
      poolName,
      `the agent pool name '${poolName}' matches ${matches.length} pools in ${organizationUrl} ` +
        `(${matches.map((m) => `'${m}'`).join(", ")}); name exactly one pool`,
      { ...options, organizationUrl },
    );
    this.name = "AmbiguousPoolError";
    this.matches = [...matches];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Classification (pure)

/** The error kind of a non-2xx HTTP status. */
export function kindForStatus(status: number): AzureDevOpsErrorKind {
  if (status === 401) return "auth";
  if (status === 403) return "forbidden";
  if (status === 404) return "not-found";
  if (status === 408) return "timeout";
  if (status === 409) return "conflict";
  if (status === 429) return "rate-limited";
  if (status >= 500) return "server";
  if (status >= 400) return "bad-request";
  return "invalid-response";
}

/** What the client knows about a request when it classifies its answer. */
export interface RequestFacts {
  method: string;
  url: string;
  organizationUrl: string;
  /** What was being done, as a verb phrase: "list the job requests of pool 7". */
  operation: string;
  /** How the credential is named in messages ("the personal access token"). */
  credential: string;
  /** Values to strip from anything the service sent back. */
  secrets: readonly string[];
}

export interface ResponseFacts {
  status: number;
  /** The Content-Type header, if any. */
  contentType: string | null;
  bodyText: string;
  /** Retry-After, already read into ms. */
  retryAfterMs?: number | undefined;
}

export type Classified = { ok: true; body: unknown } | { ok: false; error: AzureDevOpsError };

interface ServiceErrorBody {
  message?: string;
  typeKey?: string;
}

function serviceError(text: string): ServiceErrorBody {
  if (text.trim() === "") return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== "object") return {};
    const out: ServiceErrorBody = {};
    const message = (parsed as Record<string, unknown>).message;
    const typeKey = (parsed as Record<string, unknown>).typeKey;
    if (typeof message === "string" && message.trim() !== "") out.message = message.trim();
    if (typeof typeKey === "string" && typeKey !== "") out.typeKey = typeKey;
    return out;
  } catch {
    return {};
  }
}

function looksLikeHtml(contentType: string | null, text: string): boolean {
  if (contentType !== null && /html/i.test(contentType)) return true;
  return /^\s*</.test(text);
}

const seconds = (ms: number) => `${Math.ceil(ms / 1000)} s`;

/**
 * Turns an HTTP answer into its JSON body (undefined for an empty body) or a typed error:
 * - 203, or an HTML body on any 2xx: the sign-in page the service serves when it does not accept the credential
 *   (typical for a missing or expired bearer token on GET): `auth`;
 * - other 2xx: JSON, or `invalid-response` when it does not parse;
 * - everything else by status (see `kindForStatus`), with the service's `message` and `typeKey` when the body has them.
 */
export function classifyResponse(req: RequestFacts, res: ResponseFacts): Classified {
  const { status, bodyText } = res;
  const base: AzureDevOpsErrorOptions = {
    status,
    method: req.method,
    url: req.url,
    organizationUrl: req.organizationUrl,
  };
  const service = `Azure DevOps (${req.organizationUrl})`;
  const clean = (text: string) => redact(text, req.secrets);
  if (status >= 200 && status < 300) {
    if (status === 203 || (bodyText.trim() !== "" && looksLikeHtml(res.contentType, bodyText))) {
      return {
        ok: false,
        error: new AzureDevOpsError(
          "auth",
          `${service} answered the request to ${req.operation} with a sign-in page (HTTP ${status}) instead of data: ` +
            `${req.credential} was not accepted (missing, wrong or expired)`,
          base,
        ),
      };
    }
    if (bodyText.trim() === "") return { ok: true, body: undefined };
    try {
      return { ok: true, body: JSON.parse(bodyText) };
    } catch (err) {
      return {
        ok: false,
        error: new AzureDevOpsError(
          "invalid-response",
          `${service} sent an unreadable answer to the request to ${req.operation} (HTTP ${status}): ` +
            `not JSON (${clean((err as Error).message)})`,
          base,
        ),
      };
    }
  }

  const kind = kindForStatus(status);
  const body = serviceError(bodyText);
  const serviceMessage = body.message === undefined ? undefined : clean(body.message);
  const options: AzureDevOpsErrorOptions = {
    ...base,
    serviceMessage,
    typeKey: body.typeKey,
    retryAfterMs: res.retryAfterMs,
  };
  const said = serviceMessage === undefined ? "" : `: ${serviceMessage}`;
  let message: string;
  switch (kind) {
    case "auth":
      message =
        `${service} did not accept ${req.credential} (HTTP 401) for the request to ${req.operation}: ` +
        "it is wrong, expired or revoked";
      break;
    case "forbidden":
      message =
        `${service} refused to ${req.operation} (HTTP 403): ${req.credential} lacks the permission ` +
        `(reading needs "Agent Pools (Read)"; registering or deleting agents needs "Agent Pools (Read & manage)" ` +
        `or the Administrator role on the pool)${said}`;
      break;
    case "not-found": {
      const hint =
        body.typeKey === undefined || body.typeKey === "VssResourceNotFoundException"
          ? " (check the organization URL)"
          : "";
      message = `${service} could not ${req.operation} (HTTP 404)${said || ": not found"}${hint}`;
      break;
    }
    case "rate-limited":
      message =
        `${service} rate-limited the request to ${req.operation} (HTTP 429)` +
        `${res.retryAfterMs === undefined ? "" : `; retry after ${seconds(res.retryAfterMs)}`}${said}`;
      break;
    case "server":
      message = `${service} failed to ${req.operation} (HTTP ${status})${said}`;
      break;
    case "timeout":
      message = `${service} timed out the request to ${req.operation} (HTTP ${status})${said}`;
      break;
    default:
      message = `${service} refused to ${req.operation} (HTTP ${status})${said}`;
  }
  return { ok: false, error: new AzureDevOpsError(kind, clean(message), options) };
}

/** Describes why `fetch` threw (undici hides the socket error in `cause`). */
function networkDetail(err: unknown, secrets: readonly string[]): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    const e = current as { code?: unknown; message?: unknown; cause?: unknown };
    const code = typeof e.code === "string" ? e.code : undefined;
    const message = typeof e.message === "string" ? e.message : String(current);
    parts.push(code !== undefined && !message.includes(code) ? `${code}: ${message}` : message);
    current = e.cause;
  }
  return redact(parts.join(" <- "), secrets);
}

/** The error for a request that got no HTTP answer: `timeout` when the client's timeout fired, else `network`. */
export function classifyFetchFailure(
  req: RequestFacts,
  err: unknown,
  timedOut: { timeoutMs: number } | undefined,
): AzureDevOpsError {
  const base: AzureDevOpsErrorOptions = {
    method: req.method,
    url: req.url,
    organizationUrl: req.organizationUrl,
    cause: err,
  };
  if (timedOut !== undefined) {
    return new AzureDevOpsError(
      "timeout",
      `Azure DevOps (${req.organizationUrl}) did not answer the request to ${req.operation} within ${timedOut.timeoutMs} ms`,
      base,
    );
  }
  return new AzureDevOpsError(
    "network",
    `could not reach Azure DevOps (${req.organizationUrl}) to ${req.operation}: ${networkDetail(err, req.secrets)}`,
    base,
  );
}

/** Wraps anything thrown into an AzureDevOpsError (kind `unexpected` unless it already is one). */
export function asAzureDevOpsError(err: unknown, context: string): AzureDevOpsError {
  if (err instanceof AzureDevOpsError) return err;
  const message = errorMessage(err);
  return new AzureDevOpsError("unexpected", `${context}: ${message}`, { cause: err });
}
