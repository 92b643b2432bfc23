/**
 * Authentication of one request: what `KubeClient` adds to each request for a `ClusterConnection` (headers and,
 * for a client certificate, the TLS identity), and the cache in front of credentials that change (exec plugins,
 * auth providers): one fetch at a time, a timeout, and `invalidate` after the API server answered 401.
 */
import { readFileSync } from "node:fs";
import { type Clock, systemClock, type TimerHandle } from "../runtime/clock.ts";
import { errorMessage } from "../runtime/logger.ts";

/** What a credential plugin hands out: a bearer token, a client certificate (PEM), or both. */
export interface Credentials {
  token?: string;
  cert?: string;
  key?: string;
}

/** Credentials that change over time (exec plugins, auth providers): asked for before every request. */
export interface CredentialSource {
  /** For messages and logs, e.g. `user "aks": exec plugin "kubelogin"`; never a secret. */
  readonly description: string;
  /** The credentials for the next request (cached by the source as long as they are valid). */
  get(signal?: AbortSignal): Promise<Credentials>;
  /**
   * The API server refused credentials (401): the next `get` must fetch new ones. With `rejected`, the ones a
   * request used (as `get` returned them): a refusal of credentials fetched before the last invalidation (many
   * requests failing at once) changes nothing.
   */
  invalidate(rejected?: Credentials): void;
}

/** The part of a connection that says who the client is (see `ClusterConnection`). */
export interface AuthSettings {
  cert?: string;
  key?: string;
  token?: string;
  /** Re-read on every request (bound tokens rotate); wins over `token`, as in client-go. */
  tokenFile?: string;
  username?: string;
  password?: string;
  impersonate?: Impersonation;
  /** Used only when none of the static methods above is set (kubectl's rule for exec plugins). */
  credentials?: CredentialSource;
}

export interface Impersonation {
  user?: string;
  uid?: string;
  groups?: string[];
}

export interface RequestAuth {
  headers: Record<string, string | string[]>;
  /** Client certificate and key (PEM) for the TLS handshake. */
  cert?: string;
  key?: string;
  /** The plugin's credentials in use, to name them in `invalidate` after a 401. */
  fromPlugin?: Credentials;
}

/** True when the settings carry a static method, so that an exec plugin or auth provider is not used. */
export function hasStaticAuth(s: AuthSettings): boolean {
  return Boolean(s.token || s.tokenFile || s.username || (s.cert && s.key));
}

/** How the settings authenticate, for logs: never the secret itself. */
export function describeAuth(s: AuthSettings): string {
  if (s.tokenFile) return `token file ${s.tokenFile}`;
  if (s.token) return "bearer token";
  if (s.username) return `basic auth as ${s.username}`;
  if (s.cert && s.key) return "client certificate";
  if (s.credentials) return s.credentials.description;
  return "anonymous";
}

/**
 * The headers and TLS identity of one request. Precedence as kubectl: a token file, else a token, else basic
 * auth, plus a client certificate; credentials from a plugin only when none of these is set.
 */
export async function requestAuth(
  s: AuthSettings,
  options: { signal?: AbortSignal; readFile?: (path: string) => string } = {},
): Promise<RequestAuth> {
  const readFile = options.readFile ?? ((p: string) => readFileSync(p, "utf8"));
  const headers: Record<string, string | string[]> = {};
  const auth: RequestAuth = { headers };
  if (s.impersonate?.user) headers["Impersonate-User"] = s.impersonate.user;
  if (s.impersonate?.uid) headers["Impersonate-Uid"] = s.impersonate.uid;
  if (s.impersonate?.groups?.length) headers["Impersonate-Group"] = [...s.impersonate.groups];
  if (s.cert && s.key) {
    auth.cert = s.cert;
    auth.key = s.key;
  }
  let token = s.token;
  if (s.tokenFile) {
    try {
      token = readFile(s.tokenFile).trim();
    } catch (err) {
      throw new Error(`cannot read the token file ${s.tokenFile}: ${(err as Error).message}`);
    }
  }
  if (token) headers.Authorization = `Bearer ${token}`;
  else if (s.username) {
    headers.Authorization = `Basic ${Buffer.from(`${s.username}:${s.password ?? ""}`).toString("base64")}`;
  }
  if (s.credentials && !hasStaticAuth(s)) {
    const c = await s.credentials.get(options.signal);
    auth.fromPlugin = c;
    if (c.token) headers.Authorization = `Bearer ${c.token}`;
    if (c.cert && c.key) {
      auth.cert = c.cert;
      auth.key = c.key;
    }
  }
  return auth;
}

export interface CachedCredentialOptions {
  description: string;
  /**
   * Fetches credentials. It may keep its own cache (client-node's exec authenticator keeps a credential until its
   * `expirationTimestamp`); a new fetcher is asked for after `invalidate` or a failure, dropping what it cached.
   */
  fetcher: () => (signal?: AbortSignal) => Promise<Credentials>;
  /** A fetch that takes longer fails (a hanging plugin must not stall every request); default 60 s. */
  timeoutMs?: number;
  clock?: Clock;
}

/**
 * A `CredentialSource` over a fetcher: concurrent callers share one fetch (no burst of plugin runs when many
 * requests start at once), a fetch that hangs fails after `timeoutMs`; after a failure the next caller gets a new
 * fetcher; errors name the source.
 */
export function cachedCredentials(options: CachedCredentialOptions): CredentialSource {
  const clock = options.clock ?? systemClock();
  const timeoutMs = options.timeoutMs ?? 60_000;
  let fetch = options.fetcher();
  let pending: Promise<Credentials> | undefined;
  /** Counts invalidations; each answer remembers the one it was fetched in. */
  let generation = 0;
  const generationOf = new WeakMap<Credentials, number>();
  const description = options.description;

  const start = (): Promise<Credentials> => {
    const own = fetch;
    const startedIn = generation;
    let timer: TimerHandle | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = clock.setTimeout(() => {
        // Forget the hanging fetch: the next caller starts a new one.
        if (pending === p) {
          pending = undefined;
          if (fetch === own) fetch = options.fetcher();
        }
        reject(new Error(`${description}: no credentials after ${timeoutMs} ms`));
      }, timeoutMs);
    });
    const p: Promise<Credentials> = Promise.race([own(), timedOut])
      .then((c) => {
        // A fresh object per fetch: `invalidate` tells the answers of one fetch apart from the next one's.
        const answer = { ...c };
        generationOf.set(answer, startedIn);
        return answer;
      })
      .catch((err: unknown) => {
        // Whatever the fetcher kept may be the cause (client-node keeps any JSON a plugin printed): start afresh.
        if (fetch === own) fetch = options.fetcher();
        const message = errorMessage(err);
        throw new Error(message.startsWith(description) ? message : `${description}: ${message.trim()}`, {
          cause: err,
        });
      })
      .finally(() => {
        clock.clearTimeout(timer);
        if (pending === p) pending = undefined;
      });
    return p;
  };

  return {
    description,
    get(signal) {
      if (signal?.aborted) return Promise.reject(signal.reason ?? new Error("aborted"));
      pending ??= start();
      if (!signal) return pending;
      // A caller that gives up does not cancel the shared fetch.
      const shared = pending;
      return new Promise<Credentials>((resolve, reject) => {
        const onAbort = () => reject(signal.reason ?? new Error("aborted"));
        signal.addEventListener("abort", onAbort, { once: true });
        shared.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
      });
    },
    invalidate(rejected) {
      // Credentials fetched before the last invalidation were dealt with already.
      if (rejected && (generationOf.get(rejected) ?? generation) < generation) return;
      generation++;
      pending = undefined;
      fetch = options.fetcher();
    },
  };
}
