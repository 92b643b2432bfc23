/**
 * A small HTTP client for the Kubernetes API on node:https: JSON requests with typed errors, and
 * line-delimited watch streams, each request authenticated as `auth.ts` says for its connection (credentials
 * from a plugin are asked for per request and forgotten after a 401). Informers and patch helpers build on these.
 */
import type { IncomingMessage } from "node:http";
import { Agent, type AgentOptions, request as httpsRequest, type RequestOptions } from "node:https";
import { type RequestAuth, requestAuth } from "./auth.ts";
import type { ClusterConnection } from "./kubeconfig.ts";
import { LineReader } from "./lines.ts";

/** A `Status` answer from the API server (or a transport failure), with the fields callers branch on. */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly details: unknown;
  constructor(status: number, reason: string, message: string, details?: unknown) {
    super(message);
    this.name = "KubeApiError";
    this.status = status;
    this.reason = reason;
    this.details = details;
  }
}

export const isNotFound = (e: unknown) => e instanceof KubeApiError && e.status === 404;
export const isConflict = (e: unknown) => e instanceof KubeApiError && e.status === 409;
export const isAlreadyExists = (e: unknown) => e instanceof KubeApiError && e.reason === "AlreadyExists";
export const isGone = (e: unknown) => e instanceof KubeApiError && e.status === 410;

export interface RequestSpec {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Defaults to application/json; use a patch content type for PATCH. */
  contentType?: string;
  signal?: AbortSignal;
  /** Per-request timeout; defaults to the client's. */
  timeoutMs?: number;
}

export interface WatchEvent<T = unknown> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

export interface KubeClientOptions {
  /** Default per-request timeout (ms). */
  timeoutMs?: number;
  userAgent?: string;
}

export function buildPath(path: string, query?: RequestSpec["query"]): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** A request ready to send: its options, body and the credentials it carries. */
interface Prepared {
  options: RequestOptions;
  payload: string | undefined;
  auth: RequestAuth;
}

export class KubeClient {
  readonly connection: ClusterConnection;
  readonly #agent: Agent;
  readonly #url: URL;
  readonly #tls: Pick<RequestOptions, "ca" | "servername" | "rejectUnauthorized">;
  readonly #timeoutMs: number;
  readonly #userAgent: string;

  constructor(connection: ClusterConnection, options: KubeClientOptions = {}) {
    this.connection = connection;
    this.#url = new URL(connection.server);
    if (this.#url.protocol !== "https:") throw new Error(`API server URL must be https: ${connection.server}`);
    const agentOptions: AgentOptions = { keepAlive: true, maxSockets: 64 };
    // Node's own proxy support tunnels every request to the API server through the proxy (CONNECT).
    if (connection.proxyUrl) agentOptions.proxyEnv = { HTTPS_PROXY: connection.proxyUrl };
    this.#agent = new Agent(agentOptions);
    // TLS settings go with each request (the agent pools connections by them): a client certificate from an exec
    // plugin may change between requests.
    this.#tls = { rejectUnauthorized: !connection.insecureSkipTlsVerify };
    if (connection.ca && !connection.insecureSkipTlsVerify) this.#tls.ca = connection.ca;
    if (connection.tlsServerName) this.#tls.servername = connection.tlsServerName;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#userAgent = options.userAgent ?? "azure-pipelines-k8s-agent-scaler";
  }

  close(): void {
    this.#agent.destroy();
  }

  /** Request options with this request's credentials (an exec plugin may run here, or its cached answer be used). */
  async #prepare(spec: RequestSpec): Promise<Prepared> {
    const payload = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    const method = spec.method ?? "GET";
    const auth = await requestAuth(this.connection, spec.signal ? { signal: spec.signal } : {});
    const headers: Record<string, string | string[]> = {
      Accept: "application/json",
      "User-Agent": this.#userAgent,
      ...auth.headers,
    };
    if (payload !== undefined) {
      headers["Content-Type"] = spec.contentType ?? "application/json";
      // An explicit length: a chunked body on DELETE can leave bytes on a kept-alive connection.
      headers["Content-Length"] = String(Buffer.byteLength(payload));
    }
    const options: RequestOptions = {
      ...this.#tls,
      protocol: this.#url.protocol,
      hostname: this.#url.hostname.replace(/^\[|\]$/g, ""),
      port: this.#url.port || 443,
      path: `${this.#url.pathname.replace(/\/$/, "")}${buildPath(spec.path, spec.query)}`,
      method,
      agent: this.#agent,
      headers,
    };
    if (auth.cert && auth.key) {
      options.cert = auth.cert;
      options.key = auth.key;
    }
    if (spec.signal) options.signal = spec.signal;
    return { options, payload, auth };
  }

  #open(
    prepared: Prepared,
    spec: RequestSpec,
    timeoutMs: number,
    onResponse: (res: IncomingMessage) => void,
    onError: (e: Error) => void,
  ) {
    const method = prepared.options.method;
    const req = httpsRequest(prepared.options, onResponse);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${spec.path}: timed out after ${timeoutMs}ms`)));
    req.on("error", onError);
    req.end(prepared.payload);
    return req;
  }

  /**
   * A 401 with credentials from a plugin: they may have expired early or been revoked. Forget them, so that the
   * next request (or the retry) asks the plugin again. True when that happened.
   */
  #refreshOn401(err: unknown, prepared: Prepared): boolean {
    if (!(err instanceof KubeApiError) || err.status !== 401 || !prepared.auth.fromPlugin) return false;
    this.connection.credentials?.invalidate(prepared.auth.fromPlugin);
    return true;
  }

  /** Sends a request and returns the body as text (e.g. `/readyz`, `/metrics`); a non-2xx answer throws. */
  async requestText(spec: RequestSpec): Promise<string> {
    const prepared = await this.#prepare(spec);
    try {
      return await this.#send(prepared, spec);
    } catch (err) {
      // One retry with fresh credentials: a request refused with 401 was not carried out.
      if (this.#refreshOn401(err, prepared)) return this.#send(await this.#prepare(spec), spec);
      throw err;
    }
  }

  #send(prepared: Prepared, spec: RequestSpec): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.#open(
        prepared,
        spec,
        spec.timeoutMs ?? this.#timeoutMs,
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(text);
            else reject(toApiError(status, text, `${spec.method ?? "GET"} ${spec.path}`));
          });
        },
        reject,
      );
    });
  }

  /** Sends a request and returns the decoded JSON body; a non-2xx answer throws KubeApiError. */
  async request<T = unknown>(spec: RequestSpec): Promise<T> {
    const text = await this.requestText(spec);
    try {
      return (text ? JSON.parse(text) : {}) as T;
    } catch {
      throw new KubeApiError(200, "InvalidResponse", `${spec.path}: non-JSON answer: ${text.slice(0, 200)}`);
    }
  }

  /**
   * Opens a watch and calls `onEvent` for each event until the server closes the stream, the signal aborts,
   * or `onEvent` throws. Resolves when the stream ends normally; rejects on transport or HTTP errors.
   */
  async watch<T = unknown>(
    spec: Omit<RequestSpec, "method" | "body">,
    onEvent: (event: WatchEvent<T>) => void,
  ): Promise<void> {
    const query = { ...spec.query, watch: "true", allowWatchBookmarks: "true" };
    const prepared = await this.#prepare({ ...spec, query });
    try {
      await this.#watchOnce(prepared, spec, onEvent);
    } catch (err) {
      // The caller (an informer) watches again after a backoff, then with fresh credentials.
      this.#refreshOn401(err, prepared);
      throw err;
    }
  }

  #watchOnce<T>(
    prepared: Prepared,
    spec: Omit<RequestSpec, "method" | "body">,
    onEvent: (event: WatchEvent<T>) => void,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req = this.#open(
        prepared,
        spec,
        spec.timeoutMs ?? 15 * 60_000,
        (res) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              reject(toApiError(status, Buffer.concat(chunks).toString("utf8"), `watch ${spec.path}`)),
            );
            return;
          }
          // One JSON document per line; bytes are kept until their line ends and decoded once (lines.ts).
          const lines = new LineReader();
          res.on("data", (chunk: Buffer) =>
            lines.push(chunk, (line) => {
              try {
                onEvent(JSON.parse(line) as WatchEvent<T>);
                return true;
              } catch (err) {
                req.destroy();
                reject(err);
                return false;
              }
            }),
          );
          res.on("end", () => resolve());
          res.on("aborted", () => reject(new Error(`watch ${spec.path}: stream aborted`)));
          res.on("error", reject);
          // A connection dropped mid-stream may close the response without "end" or "error": never hang.
          res.on("close", () => {
            if (res.complete) resolve();
            else reject(new Error(`watch ${spec.path}: stream closed before it ended`));
          });
        },
        reject,
      );
    });
  }
}

export function toApiError(status: number, text: string, what: string): KubeApiError {
  try {
    const body = JSON.parse(text) as { kind?: string; reason?: string; message?: string; details?: unknown };
    if (body.kind === "Status") {
      return new KubeApiError(status, body.reason ?? "Unknown", `${what}: ${body.message ?? text}`, body.details);
    }
  } catch {
    // not a Status document
  }
  return new KubeApiError(
    status,
    status === 401 ? "Unauthorized" : "Unknown",
    `${what}: HTTP ${status} ${text.slice(0, 300)}`,
  );
}
