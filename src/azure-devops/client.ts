/**
 * The Azure DevOps REST client for one organization and one credential: agent pools, agents and job requests.
 *
 * Every call has a timeout; GET and DELETE are retried on network errors, timeouts, 5xx and 429 with exponential
 * backoff and jitter (bounded attempts, Retry-After honoured); POST and PATCH are never retried. Every answer is
 * reported to the identity's rate-limit governor, and no request is sent before a Retry-After has elapsed. Every
 * failure is an `AzureDevOpsError` (see errors.ts); a caller's abort signal rejects with the signal's reason.
 */

import { backoffDelay } from "../runtime/backoff.ts";
import { type Clock, delay, type Random, systemClock } from "../runtime/clock.ts";
import { type Logger, silentLogger } from "../runtime/logger.ts";
import { authorizationHeader, type Credential, describeCredential, identityKey, knownSecrets, redact } from "./auth.ts";
import { AGENT_REFERENCE_KEEP, MatchedAgentsCompactor } from "./compact.ts";
import {
  AgentBusyError,
  AgentExistsError,
  AmbiguousPoolError,
  AzureDevOpsError,
  type AzureDevOpsErrorKind,
  classifyFetchFailure,
  classifyResponse,
  PoolNotFoundError,
  type RequestFacts,
} from "./errors.ts";
import {
  parseRetryAfter,
  RateLimitGovernor,
  type RateLimitObservation,
  readRateLimitHeaders,
  remainingRatio,
} from "./governor.ts";
import type { TaskAgent, TaskAgentInput, TaskAgentJobRequest, TaskAgentPool } from "./types.ts";

export type HttpMethod = "GET" | "POST" | "PATCH" | "PUT" | "DELETE";

export interface RetryPolicy {
  /** Attempts in all, the first included. Default 4. */
  readonly maxAttempts: number;
  /** Backoff before the first retry; doubles per retry up to `maxDelayMs`. Defaults 500 ms and 8 s. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  /** Fraction by which a backoff delay is randomly shortened. Default 0.5. */
  readonly jitter: number;
  /**
   * The longest Retry-After the client waits for inside one call (default 30 s). A longer one ends the call with
   * a `rate-limited` error carrying `retryAfterMs`, for the caller to schedule.
   */
  readonly maxRetryAfterMs: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 4,
  initialDelayMs: 500,
  maxDelayMs: 8_000,
  jitter: 0.5,
  maxRetryAfterMs: 30_000,
};

/** Methods retried as they are: repeating them cannot do anything twice. */
const idempotentMethods: ReadonlySet<string> = new Set(["GET", "DELETE"]);
const retriedKinds: ReadonlySet<AzureDevOpsErrorKind> = new Set(["network", "timeout", "server", "rate-limited"]);

export interface RetryDecision {
  readonly retry: boolean;
  readonly delayMs: number;
}

/**
 * Whether to retry after a failed attempt (`attempt` is 0 for the first), and after how long: only GET and DELETE,
 * only for network errors, timeouts, 5xx and 429, only while attempts remain; the wait is the Retry-After when the
 * service gave one (no retry when it exceeds `maxRetryAfterMs`), else exponential backoff with jitter.
 */
export function decideRetry(
  input: { method: string; error: AzureDevOpsError; attempt: number },
  policy: RetryPolicy = defaultRetryPolicy,
  random: Random = () => 0,
): RetryDecision {
  const no = { retry: false, delayMs: 0 };
  if (!idempotentMethods.has(input.method.toUpperCase())) return no;
  if (!retriedKinds.has(input.error.kind)) return no;
  if (input.attempt + 1 >= policy.maxAttempts) return no;
  const retryAfter = input.error.retryAfterMs;
  if (retryAfter !== undefined && retryAfter > 0) {
    if (retryAfter > policy.maxRetryAfterMs) return no;
    return { retry: true, delayMs: retryAfter };
  }
  return {
    retry: true,
    delayMs: backoffDelay(
      input.attempt,
      { initialMs: policy.initialDelayMs, maxMs: policy.maxDelayMs, jitter: policy.jitter },
      random,
    ),
  };
}

export interface AzureDevOpsClientOptions {
  /** `https://dev.azure.com/{org}` (Azure DevOps Server: `https://host/{collection}`). */
  organizationUrl: string;
  credential: Credential;
  /** Shared per identity; by default the client gets its own (share one through a GovernorRegistry). */
  governor?: RateLimitGovernor;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
  /** Per attempt, covering the whole answer (headers and body). Default 30 s. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
  /** Sent on writes (`api-version=` query). Default `7.1`. */
  apiVersion?: string;
  userAgent?: string;
  /** Told about every HTTP attempt (metrics); must not throw. */
  onRequest?: (observation: RequestObservation) => void;
}

/** The operations of this client, as metrics name them (no ids, so the set is bounded). */
export type RequestOperation =
  | "find-pool"
  | "get-pool"
  | "list-agents"
  | "get-agent"
  | "register-agent"
  | "update-agent"
  | "delete-agent"
  | "list-job-requests"
  | "other";

/** The operation of a request, from its method and its path relative to the organization URL. */
export function requestOperation(method: string, path: string): RequestOperation {
  const p = path.replace(/^\/+/, "").replace(/[?#].*$/, "");
  const m = method.toUpperCase();
  if (/^_apis\/distributedtask\/pools$/i.test(p)) return m === "GET" ? "find-pool" : "other";
  if (/^_apis\/distributedtask\/pools\/\d+$/i.test(p)) return m === "GET" ? "get-pool" : "other";
  if (/^_apis\/distributedtask\/pools\/\d+\/agents$/i.test(p)) {
    return m === "GET" ? "list-agents" : m === "POST" ? "register-agent" : "other";
  }
  if (/^_apis\/distributedtask\/pools\/\d+\/agents\/\d+$/i.test(p)) {
    const byMethod: Record<string, RequestOperation> = {
      GET: "get-agent",
      PATCH: "update-agent",
      PUT: "update-agent",
      DELETE: "delete-agent",
    };
    return byMethod[m] ?? "other";
  }
  if (/^_apis\/distributedtask\/pools\/\d+\/jobrequests$/i.test(p)) return m === "GET" ? "list-job-requests" : "other";
  return "other";
}

/** What one HTTP attempt did, for metrics: no URL, no secret. */
export interface RequestObservation {
  readonly operation: RequestOperation;
  readonly method: HttpMethod;
  /** The HTTP status; undefined when no (complete) answer came: connection failed or lost, timeout. */
  readonly status: number | undefined;
  /** From sending until the answer was read or the attempt failed. */
  readonly durationMs: number;
  /** The credential's identity key (`pat:<hash>` or `token:<identity>`), never a secret. */
  readonly identity: string;
  /** What the answer's headers said about the rate limit; undefined without an answer. */
  readonly rateLimit: RateLimitObservation | undefined;
  /** The identity's budget left (0..1) as its governor sees it after this answer; undefined when not known. */
  readonly remainingRatio: number | undefined;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborting rejects the call with the signal's reason (no retry, no typed error). */
  signal?: AbortSignal;
}

export interface ListAgentsOptions extends CallOptions {
  agentName?: string;
  includeCapabilities?: boolean;
  includeAssignedRequest?: boolean;
  includeLastCompletedRequest?: boolean;
}

export interface ListJobRequestsOptions extends CallOptions {
  /**
   * How many finished requests to include; 0 lists only unfinished ones (queued, assigned, running). Absent: the
   * service's default mix. (`$top` is deliberately not offered: it changes the answer's shape.)
   */
  completedRequestCount?: number;
  /** Pages followed at most when the service cuts the answer (`X-MS-ContinuationToken`). Default 50. */
  maxPages?: number;
  /**
   * Keep only the `matchedAgents` references whose name starts with this (the others are dropped while the answer
   * is read, compact.ts rule 5). Absent: all references are kept (cut to their fields).
   */
  matchedAgentsNamed?: string;
}

/** Pages of one job-request list followed at most (about 200 requests a page: 10,000 unfinished requests). */
export const defaultMaxJobRequestPages = 50;

export type NextPageDecision =
  | { readonly kind: "done" }
  | { readonly kind: "next"; readonly token: string }
  | { readonly kind: "error"; readonly problem: string };

/**
 * After a page of a list, whether to ask for the next one:
 * 1. no (or an empty) `X-MS-ContinuationToken`: the list is complete;
 * 2. a token already followed: the service is going round in circles, stop with an error rather than loop;
 * 3. `maxPages` pages read and the service still has more: stop with an error (the list is too big to act on);
 * 4. otherwise ask for the next page with that token.
 */
export function decideNextPage(input: {
  token: string | null | undefined;
  followed: ReadonlySet<string>;
  pagesRead: number;
  maxPages: number;
}): NextPageDecision {
  const token = input.token?.trim();
  if (token === undefined || token === "") return { kind: "done" };
  if (input.followed.has(token)) {
    return { kind: "error", problem: `page ${input.pagesRead} repeats an earlier continuation token` };
  }
  if (input.pagesRead >= input.maxPages) {
    return {
      kind: "error",
      problem: `the list did not end after ${input.pagesRead} pages (the most this client reads)`,
    };
  }
  return { kind: "next", token };
}

/** What `deleteAgent` did: deleted it, or found it already gone (404). */
export type DeleteAgentResult = "deleted" | "not-found";

/** A successful answer: its JSON body and its headers. */
interface Answer {
  body: unknown;
  header(name: string): string | null;
}

/** Takes a body's bytes piece by piece; gives its (cut) text at the end. */
interface BodyCompactor {
  push(chunk: Uint8Array): void;
  end(): string;
}

interface RequestSpec {
  method: HttpMethod;
  /** Relative to the organization URL, without a leading slash. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Verb phrase for messages: "list the agents of pool 3". */
  operation: string;
  signal?: AbortSignal | undefined;
  /** Makes a successful answer's body smaller while it is read, before it is decoded and parsed (compact.ts). */
  compact?: () => BodyCompactor;
}

/** Checks an organization URL and returns it without a trailing slash. Throws a `configuration` error. */
export function normalizeOrganizationUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new AzureDevOpsError("configuration", `the organization URL '${value}' is not a URL`);
  }
  const shown = `${url.protocol}//${url.host}${url.pathname}`;
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new AzureDevOpsError("configuration", `the organization URL '${shown}' must use https (or http)`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new AzureDevOpsError(
      "configuration",
      `the organization URL '${shown}' must not hold credentials; put the token in the Secret`,
    );
  }
  if (url.search !== "" || url.hash !== "") {
    throw new AzureDevOpsError("configuration", `the organization URL '${shown}' must not have a query or fragment`);
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export class AzureDevOpsClient {
  readonly organizationUrl: string;
  readonly identity: string;
  readonly governor: RateLimitGovernor;
  #credential: Credential;
  #fetch: typeof fetch;
  #timeoutMs: number;
  #retry: RetryPolicy;
  #clock: Clock;
  #random: Random;
  #log: Logger;
  #apiVersion: string;
  #userAgent: string;
  #onRequest: ((observation: RequestObservation) => void) | undefined;

  constructor(options: AzureDevOpsClientOptions) {
    this.organizationUrl = normalizeOrganizationUrl(options.organizationUrl);
    this.#credential = options.credential;
    this.identity = identityKey(options.credential);
    this.#clock = options.clock ?? systemClock();
    this.#random = options.random ?? Math.random;
    this.governor =
      options.governor ?? new RateLimitGovernor(this.identity, { clock: this.#clock, random: this.#random });
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#retry = { ...defaultRetryPolicy, ...options.retry };
    this.#log = options.logger ?? silentLogger();
    this.#apiVersion = options.apiVersion ?? "7.1";
    this.#userAgent = options.userAgent ?? "azure-pipelines-k8s-agent-scaler";
    this.#onRequest = options.onRequest;
  }

  // ---- pools

  /**
   * The pool with this name. The service matches names case-insensitively (and treats `*` as a wildcard). One
   * result is the pool; among several, the one whose name equals the given name; otherwise `AmbiguousPoolError`.
   * No result: `PoolNotFoundError`. Both have kind `configuration`.
   */
  async findPoolByName(name: string, options: CallOptions = {}): Promise<TaskAgentPool> {
    const operation = `find the agent pool named '${name}'`;
    const body = await this.#request({
      method: "GET",
      path: "_apis/distributedtask/pools",
      query: { poolName: name },
      operation,
      signal: options.signal,
    });
    const pools = this.#list(body, operation, (v) => this.#pool(v, operation));
    if (pools.length === 0) throw new PoolNotFoundError(name, this.organizationUrl);
    if (pools.length === 1) return pools[0] as TaskAgentPool;
    const exact = pools.filter((p) => p.name.toLowerCase() === name.toLowerCase());
    if (exact.length === 1) return exact[0] as TaskAgentPool;
    throw new AmbiguousPoolError(
      name,
      this.organizationUrl,
      pools.map((p) => p.name),
    );
  }

  async getPool(poolId: number, options: CallOptions = {}): Promise<TaskAgentPool> {
    const operation = `read agent pool ${poolId}`;
    const body = await this.#request({
      method: "GET",
      path: `_apis/distributedtask/pools/${poolId}`,
      operation,
      signal: options.signal,
    });
    return this.#pool(body, operation);
  }

  // ---- agents

  async listAgents(poolId: number, options: ListAgentsOptions = {}): Promise<TaskAgent[]> {
    const operation = `list the agents of pool ${poolId}`;
    const body = await this.#request({
      method: "GET",
      path: `_apis/distributedtask/pools/${poolId}/agents`,
      query: {
        agentName: options.agentName,
        includeCapabilities: options.includeCapabilities,
        includeAssignedRequest: options.includeAssignedRequest,
        includeLastCompletedRequest: options.includeLastCompletedRequest,
      },
      operation,
      signal: options.signal,
    });
    return this.#list(body, operation, (v) => this.#agent(v, operation));
  }

  async getAgent(
    poolId: number,
    agentId: number,
    options: Omit<ListAgentsOptions, "agentName"> = {},
  ): Promise<TaskAgent> {
    const operation = `read agent ${agentId} of pool ${poolId}`;
    const body = await this.#request({
      method: "GET",
      path: `_apis/distributedtask/pools/${poolId}/agents/${agentId}`,
      query: {
        includeCapabilities: options.includeCapabilities,
        includeAssignedRequest: options.includeAssignedRequest,
        includeLastCompletedRequest: options.includeLastCompletedRequest,
      },
      operation,
      signal: options.signal,
    });
    return this.#agent(body, operation);
  }

  /** Registers an agent (not retried). A taken name is `AgentExistsError` (409). */
  async registerAgent(poolId: number, agent: TaskAgentInput, options: CallOptions = {}): Promise<TaskAgent> {
    const operation = `register agent '${agent.name ?? ""}' in pool ${poolId}`;
    try {
      const body = await this.#request({
        method: "POST",
        path: `_apis/distributedtask/pools/${poolId}/agents`,
        body: agent,
        operation,
        signal: options.signal,
      });
      return this.#agent(body, operation);
    } catch (err) {
      if (err instanceof AzureDevOpsError && err.status === 409) {
        throw new AgentExistsError(agent.name ?? "", poolId, err);
      }
      throw err;
    }
  }

  /** Changes some fields of an agent (PATCH; not retried). */
  async updateAgent(
    poolId: number,
    agentId: number,
    changes: TaskAgentInput,
    options: CallOptions = {},
  ): Promise<TaskAgent> {
    const operation = `update agent ${agentId} of pool ${poolId}`;
    const body = await this.#request({
      method: "PATCH",
      path: `_apis/distributedtask/pools/${poolId}/agents/${agentId}`,
      body: { ...changes, id: agentId },
      operation,
      signal: options.signal,
    });
    return this.#agent(body, operation);
  }

  /**
   * Deletes an agent registration. Resolves `"deleted"`, or `"not-found"` when the service says the agent (or its
   * pool) does not exist: the goal, no registration, is reached either way, and a retried DELETE whose first
   * attempt went through ends here too. A 404 that is not about the agent (wrong organization URL) still throws.
   * Any other 4xx (except 401, 403, 429) is the service refusing for now (the agent runs a job): `AgentBusyError`.
   */
  async deleteAgent(poolId: number, agentId: number, options: CallOptions = {}): Promise<DeleteAgentResult> {
    const operation = `delete agent ${agentId} of pool ${poolId}`;
    try {
      await this.#request({
        method: "DELETE",
        path: `_apis/distributedtask/pools/${poolId}/agents/${agentId}`,
        operation,
        signal: options.signal,
      });
      return "deleted";
    } catch (err) {
      if (!(err instanceof AzureDevOpsError) || err.status === undefined) throw err;
      if (err.status === 404) {
        if (err.typeKey !== undefined && err.typeKey !== "VssResourceNotFoundException") return "not-found";
        throw err;
      }
      if (err.status >= 400 && err.status < 500 && ![401, 403, 429].includes(err.status)) {
        throw new AgentBusyError(poolId, agentId, err);
      }
      throw err;
    }
  }

  // ---- job requests

  /**
   * The pool's job requests; `completedRequestCount: 0` gives only unfinished ones. When the service cuts the
   * answer (`X-MS-ContinuationToken` header), the next pages are read with `continuationToken=`, up to `maxPages`
   * (`decideNextPage`); a request listed on two pages (it moved while paging) is kept once, from the later page.
   * Each answer's `matchedAgents` are cut while it is read (compact.ts), to `matchedAgentsNamed` when given.
   */
  async listJobRequests(poolId: number, options: ListJobRequestsOptions = {}): Promise<TaskAgentJobRequest[]> {
    const operation = `list the job requests of pool ${poolId}`;
    const maxPages = Math.max(1, options.maxPages ?? defaultMaxJobRequestPages);
    const byId = new Map<number, TaskAgentJobRequest>();
    const followed = new Set<string>();
    let token: string | undefined;
    for (let pagesRead = 1; ; pagesRead++) {
      const answer = await this.#send({
        method: "GET",
        path: `_apis/distributedtask/pools/${poolId}/jobrequests`,
        query: { completedRequestCount: options.completedRequestCount, continuationToken: token },
        operation: pagesRead === 1 ? operation : `${operation} (page ${pagesRead})`,
        signal: options.signal,
        compact: () => new MatchedAgentsCompactor({ referenceNamePrefix: options.matchedAgentsNamed }),
      });
      for (const job of this.#list(answer.body, operation, (v) => this.#jobRequest(v, operation))) {
        byId.delete(job.requestId);
        byId.set(job.requestId, job);
      }
      const next = decideNextPage({
        token: answer.header("X-MS-ContinuationToken"),
        followed,
        pagesRead,
        maxPages,
      });
      if (next.kind === "done") return [...byId.values()];
      if (next.kind === "error") {
        throw new AzureDevOpsError(
          "invalid-response",
          `Azure DevOps (${this.organizationUrl}) sent an unexpected answer to the request to ${operation}: ` +
            `${next.problem}; ${byId.size} job requests read so far`,
          { organizationUrl: this.organizationUrl, method: "GET" },
        );
      }
      followed.add(next.token);
      token = next.token;
    }
  }

  // ---- shapes

  #invalid(operation: string, problem: string): AzureDevOpsError {
    return new AzureDevOpsError(
      "invalid-response",
      `Azure DevOps (${this.organizationUrl}) sent an unexpected answer to the request to ${operation}: ${problem}`,
      { organizationUrl: this.organizationUrl },
    );
  }

  #list<T>(body: unknown, operation: string, item: (value: unknown) => T): T[] {
    if (!isRecord(body) || !Array.isArray(body.value)) throw this.#invalid(operation, "expected {count, value: [...]}");
    return body.value.map(item);
  }

  #pool(value: unknown, operation: string): TaskAgentPool {
    if (!isRecord(value) || typeof value.id !== "number" || typeof value.name !== "string") {
      throw this.#invalid(operation, "an agent pool without a numeric id and a name");
    }
    return value as unknown as TaskAgentPool;
  }

  #agent(value: unknown, operation: string): TaskAgent {
    if (!isRecord(value) || typeof value.id !== "number" || typeof value.name !== "string") {
      throw this.#invalid(operation, "an agent without a numeric id and a name");
    }
    if (value.assignedRequest !== undefined && value.assignedRequest !== null) {
      this.#jobRequest(value.assignedRequest, operation);
    }
    return value as unknown as TaskAgent;
  }

  #jobRequest(value: unknown, operation: string): TaskAgentJobRequest {
    if (!isRecord(value) || typeof value.requestId !== "number") {
      throw this.#invalid(operation, "a job request without a numeric requestId");
    }
    if (value.demands !== undefined && value.demands !== null) {
      if (!Array.isArray(value.demands) || value.demands.some((d) => typeof d !== "string")) {
        throw this.#invalid(operation, `job request ${value.requestId} has demands that are not a list of strings`);
      }
    }
    return compactJobRequest(value);
  }

  /** Tells the `onRequest` observer about an attempt; an observer that throws is logged, never fails the call. */
  #observed(spec: RequestSpec, status: number | undefined, started: number, rateLimit?: RateLimitObservation): void {
    if (this.#onRequest === undefined) return;
    const now = this.#clock.now();
    try {
      this.#onRequest({
        operation: requestOperation(spec.method, spec.path),
        method: spec.method,
        status,
        durationMs: Math.max(0, now - started),
        identity: this.identity,
        rateLimit,
        remainingRatio: remainingRatio(this.governor.state, now, this.governor.policy),
      });
    } catch (err) {
      this.#log.warn("azure devops: request observer failed", { error: err });
    }
  }

  // ---- the HTTP layer

  #url(spec: RequestSpec): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined) params.set(key, String(value));
    }
    if (spec.method !== "GET") params.set("api-version", this.#apiVersion);
    const query = params.toString();
    // URLSearchParams encodes a space as "+"; the service reads "%20" everywhere, so use that.
    return `${this.organizationUrl}/${spec.path}${query === "" ? "" : `?${query.replace(/\+/g, "%20")}`}`;
  }

  async #request(spec: RequestSpec): Promise<unknown> {
    return (await this.#send(spec)).body;
  }

  async #send(spec: RequestSpec): Promise<Answer> {
    const facts: RequestFacts = {
      method: spec.method,
      url: this.#url(spec),
      organizationUrl: this.organizationUrl,
      operation: spec.operation,
      credential: describeCredential(this.#credential),
      secrets: knownSecrets(this.#credential),
    };
    let reauthenticated = false;
    for (let attempt = 0; ; attempt++) {
      await this.#waitForRateLimit(facts, spec.signal);
      try {
        return await this.#attempt(spec, facts);
      } catch (err) {
        if (!(err instanceof AzureDevOpsError)) throw err;
        const credential = this.#credential;
        if (err.kind === "auth" && credential.kind === "token" && credential.invalidate && !reauthenticated) {
          // A refused token was not processed: ask the provider for a fresh one and try once more.
          reauthenticated = true;
          credential.invalidate();
          attempt--;
          this.#log.info("azure devops: token not accepted; retrying once with a fresh one", {
            identity: this.identity,
            url: facts.url,
          });
          continue;
        }
        const decision = decideRetry({ method: spec.method, error: err, attempt }, this.#retry, this.#random);
        if (!decision.retry) throw err;
        const waitMs = Math.max(decision.delayMs, this.governor.requestWaitMs());
        this.#log.warn("azure devops: request failed; retrying", {
          ...err.fields(),
          attempt: attempt + 1,
          retryInMs: waitMs,
        });
        if (!(await delay(this.#clock, waitMs, spec.signal))) throw spec.signal?.reason;
      }
    }
  }

  /** Waits out a Retry-After of this identity, or fails at once when it is longer than the client waits. */
  async #waitForRateLimit(facts: RequestFacts, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    const waitMs = this.governor.requestWaitMs();
    if (waitMs <= 0) return;
    if (waitMs > this.#retry.maxRetryAfterMs) {
      throw new AzureDevOpsError(
        "rate-limited",
        `Azure DevOps (${this.organizationUrl}) asked this identity to wait ${Math.ceil(waitMs / 1000)} s ` +
          `before its next request (Retry-After); not sending the request to ${facts.operation} yet`,
        { method: facts.method, url: facts.url, organizationUrl: this.organizationUrl, retryAfterMs: waitMs },
      );
    }
    this.#log.debug("azure devops: waiting for Retry-After", { identity: this.identity, waitMs });
    if (!(await delay(this.#clock, waitMs, signal))) throw signal?.reason;
  }

  async #attempt(spec: RequestSpec, facts: RequestFacts): Promise<Answer> {
    let auth: { value: string; secrets: readonly string[] };
    try {
      auth = await authorizationHeader(this.#credential);
    } catch (err) {
      if (err instanceof AzureDevOpsError) throw err;
      const message = redact(err instanceof Error ? err.message : String(err), facts.secrets);
      throw new AzureDevOpsError(
        "auth",
        `could not get a token for ${describeCredential(this.#credential)} to ${spec.operation}: ${message}`,
        { method: facts.method, url: facts.url, organizationUrl: this.organizationUrl, cause: err },
      );
    }
    const secrets = [...facts.secrets, ...auth.secrets];
    const withSecrets: RequestFacts = { ...facts, secrets };
    const headers: Record<string, string> = {
      Authorization: auth.value,
      Accept: "application/json",
      "User-Agent": this.#userAgent,
    };
    let payload: string | undefined;
    if (spec.body !== undefined) {
      payload = JSON.stringify(spec.body);
      headers["Content-Type"] = "application/json";
    }
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = spec.signal ? AbortSignal.any([spec.signal, timeout]) : timeout;
    const started = this.#clock.now();
    let rateLimit: RateLimitObservation | undefined;
    let status: number;
    let contentType: string | null;
    let bodyText: string;
    let retryAfter: string | null;
    let responseHeaders: Headers;
    try {
      const response = await this.#fetch(facts.url, {
        method: spec.method,
        headers,
        ...(payload === undefined ? {} : { body: payload }),
        signal,
      });
      status = response.status;
      responseHeaders = response.headers;
      contentType = response.headers.get("content-type");
      retryAfter = response.headers.get("retry-after");
      rateLimit = readRateLimitHeaders(status, (name) => response.headers.get(name), this.#clock.now());
      this.governor.record(rateLimit);
      bodyText =
        spec.compact && status >= 200 && status < 300 && response.body
          ? await readCompacted(response.body, spec.compact())
          : await response.text();
    } catch (err) {
      if (spec.signal?.aborted) throw spec.signal.reason;
      this.#observed(spec, undefined, started, rateLimit);
      const failure = classifyFetchFailure(
        withSecrets,
        err,
        timeout.aborted ? { timeoutMs: this.#timeoutMs } : undefined,
      );
      this.#log.debug("azure devops: no answer", { ...failure.fields(), durationMs: this.#clock.now() - started });
      throw failure;
    }
    this.#observed(spec, status, started, rateLimit);
    const result = classifyResponse(withSecrets, {
      status,
      contentType,
      bodyText,
      retryAfterMs: parseRetryAfter(retryAfter, this.#clock.now()),
    });
    this.#log.debug("azure devops: answer", {
      method: spec.method,
      url: facts.url,
      status,
      durationMs: this.#clock.now() - started,
      identity: this.identity,
    });
    if (!result.ok) throw result.error;
    return { body: result.body, header: (name) => responseHeaders.get(name) };
  }
}

const JOB_REQUEST_FIELDS = [
  "requestId",
  "queueTime",
  "assignTime",
  "receiveTime",
  "finishTime",
  "lockedUntil",
  "result",
  "demands",
  "matchesAllAgentsInPool",
  "poolId",
  "planType",
  "planId",
  "jobId",
  "jobName",
  "statusMessage",
  "priority",
] as const;

function pick(value: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) if (value[f] !== undefined && value[f] !== null) out[f] = value[f];
  return out;
}

const agentReference = (v: unknown) => (isRecord(v) ? pick(v, AGENT_REFERENCE_KEEP) : v);
const named = (v: unknown) => (isRecord(v) ? pick(v, ["id", "name"]) : v);

/**
 * A job request with the typed fields only. The service lists every matching agent in `matchedAgents`, each with
 * links and details: in a burst of 200 jobs on a pool of 200 agents that is 40,000 references and tens of MB per
 * poll. Kept whole, one poll's list was most of the operator's heap until the next. (The list's text is made small
 * before it is parsed, too: compact.ts. An answer that the compactor left as sent, its rule 3, is cut here only,
 * without the name filter of `matchedAgentsNamed`.)
 */
export function compactJobRequest(value: Record<string, unknown>): TaskAgentJobRequest {
  const out = pick(value, JOB_REQUEST_FIELDS);
  if (isRecord(value.reservedAgent)) out.reservedAgent = agentReference(value.reservedAgent);
  if (Array.isArray(value.matchedAgents)) out.matchedAgents = value.matchedAgents.map(agentReference);
  if (isRecord(value.definition)) out.definition = named(value.definition);
  if (isRecord(value.owner)) out.owner = named(value.owner);
  return out as unknown as TaskAgentJobRequest;
}

/** A body read piece by piece into a compactor, as bytes: only the cut text is ever decoded. */
async function readCompacted(body: ReadableStream<Uint8Array>, compactor: BodyCompactor): Promise<string> {
  for await (const chunk of body) compactor.push(chunk);
  return compactor.end();
}
