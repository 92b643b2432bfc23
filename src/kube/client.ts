/**
 * A small, dependency-free HTTP client for the Kubernetes API: JSON requests with typed errors, and
 * line-delimited watch streams. Higher layers (informers, patch helpers) are built on these two calls.
 */
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { Agent, request as httpsRequest, type RequestOptions } from "node:https";
import type { ClusterConnection } from "./kubeconfig.ts";

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

export class KubeClient {
  readonly connection: ClusterConnection;
  readonly #agent: Agent;
  readonly #url: URL;
  readonly #timeoutMs: number;
  readonly #userAgent: string;

  constructor(connection: ClusterConnection, options: KubeClientOptions = {}) {
    this.connection = connection;
    this.#url = new URL(connection.server);
    if (this.#url.protocol !== "https:") throw new Error(`API server URL must be https: ${connection.server}`);
    const agentOptions: ConstructorParameters<typeof Agent>[0] = {
      keepAlive: true,
      maxSockets: 64,
      rejectUnauthorized: !connection.insecureSkipTlsVerify,
    };
    if (connection.ca) agentOptions.ca = connection.ca;
    if (connection.cert) agentOptions.cert = connection.cert;
    if (connection.key) agentOptions.key = connection.key;
    this.#agent = new Agent(agentOptions);
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#userAgent = options.userAgent ?? "azure-pipelines-k8s-agent-scaler";
  }

  close(): void {
    this.#agent.destroy();
  }

  #headers(contentType?: string): Record<string, string> {
    const headers: Record<string, string> = { Accept: "application/json", "User-Agent": this.#userAgent };
    if (contentType) headers["Content-Type"] = contentType;
    let token = this.connection.token;
    if (this.connection.tokenFile) token = readFileSync(this.connection.tokenFile, "utf8").trim();
    if (token) headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  #open(spec: RequestSpec, timeoutMs: number, onResponse: (res: IncomingMessage) => void, onError: (e: Error) => void) {
    const payload = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    const method = spec.method ?? "GET";
    const contentType = payload === undefined ? undefined : (spec.contentType ?? "application/json");
    const options: RequestOptions = {
      protocol: this.#url.protocol,
      hostname: this.#url.hostname.replace(/^\[|\]$/g, ""),
      port: this.#url.port || 443,
      path: `${this.#url.pathname.replace(/\/$/, "")}${buildPath(spec.path, spec.query)}`,
      method,
      agent: this.#agent,
      headers: this.#headers(contentType),
    };
    // An explicit length: a chunked body on DELETE can leave bytes on a kept-alive connection.
    if (payload !== undefined)
      (options.headers as Record<string, string>)["Content-Length"] = String(Buffer.byteLength(payload));
    if (spec.signal) options.signal = spec.signal;
    const req = httpsRequest(options, onResponse);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${spec.path}: timed out after ${timeoutMs}ms`)));
    req.on("error", onError);
    req.end(payload);
    return req;
  }

  /** Sends a request and returns the body as text (e.g. `/readyz`, `/metrics`); a non-2xx answer throws. */
  requestText(spec: RequestSpec): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.#open(
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
  watch<T = unknown>(
    spec: Omit<RequestSpec, "method" | "body">,
    onEvent: (event: WatchEvent<T>) => void,
  ): Promise<void> {
    const query = { ...spec.query, watch: "true", allowWatchBookmarks: "true" };
    return new Promise<void>((resolve, reject) => {
      const req = this.#open(
        { ...spec, query },
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
          let buffered = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            buffered += chunk;
            let nl = buffered.indexOf("\n");
            while (nl >= 0) {
              const line = buffered.slice(0, nl).trim();
              buffered = buffered.slice(nl + 1);
              nl = buffered.indexOf("\n");
              if (!line) continue;
              try {
                onEvent(JSON.parse(line) as WatchEvent<T>);
              } catch (err) {
                req.destroy();
                reject(err);
                return;
              }
            }
          });
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
