/**
 * The Azure DevOps emulator: `startAzureDevOpsEmulator(options)` serves the REST API of one organization at
 * `http://127.0.0.1:PORT/{organization}` (loopback only), the Microsoft Entra ID token endpoint, and the control API
 * under `/_sim/`, and returns the URLs and a typed control handle. With `https`, the same is also served over TLS
 * on a second port (MSAL only talks to an https authority). See README.md in this folder.
 */
import { createServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import { type BearerTokenInfo, type BearerTokenStore, InMemoryBearerTokenStore, type PatConfig } from "./auth.ts";
import { type Clock, systemClock } from "./clock.ts";
import { EmulatorControl } from "./control.ts";
import type { EngineOptions } from "./engine.ts";
import type { EntraIdConfig } from "./entra.ts";
import type { HookDeliverySettings } from "./hooks.ts";
import type { RateLimitConfig } from "./ratelimit.ts";
import { createRequestListener } from "./server.ts";
import { selfSignedTls, type TlsMaterial } from "./tls.ts";

export type {
  AgentRunResult,
  FinishedJob,
  SimulatedAgentErrorKind,
  SimulatedAgentEvents,
  SimulatedAgentOptions,
  SimulatedJob,
} from "./agent.ts";
export { SimulatedAgent, SimulatedAgentError } from "./agent.ts";
export type { BearerTokenInfo, BearerTokenStore, PatConfig, Scope } from "./auth.ts";
export { InMemoryBearerTokenStore } from "./auth.ts";
export type { Clock } from "./clock.ts";
export { ManualClock, systemClock } from "./clock.ts";
export type { EmulatorControl, QueueJobRequest, RequestLogEntry } from "./control.ts";
export type { TaskResult } from "./engine.ts";
export type {
  EntraIdConfig,
  EntraIdDirectory,
  EntraTenantConfig,
  FederatedCredentialConfig,
  FederatedIssuerConfig,
  ServicePrincipalConfig,
  ServicePrincipalView,
} from "./entra.ts";
export {
  AZURE_DEVOPS_RESOURCE_ID,
  entraIdentity,
  JWT_BEARER_ASSERTION_TYPE,
  WORKLOAD_IDENTITY_AUDIENCE,
} from "./entra.ts";
export type { FaultRule } from "./faults.ts";
export type { HookDeliveryAttempt, HookSender } from "./hook-delivery.ts";
export type { HookDeliverySettings, HookJobState } from "./hooks.ts";
export { JOB_STATE_CHANGED_EVENT, simProject } from "./hooks.ts";
export type { RateLimitConfig } from "./ratelimit.ts";
export type { TlsMaterial } from "./tls.ts";
export { selfSignedTls } from "./tls.ts";
export type { SimAgentView, SimJobView } from "./views.ts";

export interface HttpsOptions {
  /** TCP port on 127.0.0.1 for the HTTPS listener; 0 (default) picks a free one. */
  port?: number;
  /**
   * Certificate and key of the server (PEM), and the CA that signed it (reported as `caCertificate`). Default: a
   * throw-away CA and a certificate for 127.0.0.1 / ::1 / localhost, made with the openssl CLI at start.
   */
  tls?: TlsMaterial;
}

export interface AzureDevOpsEmulatorOptions {
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Organization name: the API lives under `/{organization}/_apis/...`. Default `sim-org`. */
  organization?: string;
  /** Pools created at start (and again on reset). Default none. */
  pools?: readonly string[];
  /** PATs accepted at start (and again on reset). */
  pats?: readonly PatConfig[];
  /** Bearer tokens accepted at start (and again on reset). */
  bearerTokens?: ReadonlyArray<{ token: string } & BearerTokenInfo>;
  /** Where bearer tokens are validated; default in memory. A token endpoint can bring its own store. */
  bearerTokenStore?: BearerTokenStore;
  /** Default: the system clock. */
  clock?: Clock;
  /** Randomness for fault injection and for service hook failures without a seed. Default Math.random. */
  random?: () => number;
  /** How long a message long poll waits before answering "no message" (ms). Default 50 s, like the service. */
  messagePollTimeoutMs?: number;
  /** Page size cap for `$top`. Default 200. */
  maxPageSize?: number;
  /** Request-log entries kept. Default 10000. */
  requestLogLimit?: number;
  /** Rate limiting at start (and on reset); off unless `enabled: true`. */
  rateLimit?: Partial<RateLimitConfig>;
  /** Automatic `Agent.Version -gtVersion X` demand on queued jobs; null for none. Default `2.182.1`. */
  agentVersionDemand?: string | null;
  lockDurationMs?: number;
  sessionTimeoutMs?: number;
  cancelTimeoutMs?: number;
  defaultCompletedRequestCount?: number;
  finishedRetention?: number;
  failUnmatchableQueuedJobs?: boolean;
  /**
   * Also listen with TLS (another port, same API, same state): what an Entra authority host must be for MSAL.
   * `true` for the defaults. Off by default.
   */
  https?: boolean | HttpsOptions;
  /**
   * Microsoft Entra ID at start (and again on reset): token lifetime, tenants, service principals (secret and/or
   * federated credentials, organization scope) and federated issuers' keys.
   */
  entraId?: EntraIdConfig;
  /**
   * Service hook deliveries at start (and again on reset): delay, injected failures (the next N, or a rate with an
   * optional seed), the receiver's timeout. Subscriptions are made through the REST API.
   */
  serviceHooks?: Partial<HookDeliverySettings>;
  /** Diagnostics (unexpected failures). Default stderr. */
  log?: (line: string) => void;
}

export interface AzureDevOpsEmulator {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `http://127.0.0.1:PORT/{organization}`: what a client calls the organization URL (AZP_URL). */
  organizationUrl: string;
  port: number;
  organization: string;
  /** The control URL: `http://127.0.0.1:PORT/_sim`. */
  controlUrl: string;
  /**
   * `https://127.0.0.1:HTTPS_PORT` when `https` is on: the Entra authority host (`authorityHost` of
   * `@azure/identity`, `AZURE_AUTHORITY_HOST`); the service API is there too (`${httpsUrl}/{organization}`).
   */
  httpsUrl: string | undefined;
  httpsPort: number | undefined;
  /** The CA certificate (PEM) clients must trust to call `httpsUrl`; undefined without https or a given CA. */
  caCertificate: string | undefined;
  /** Typed in-process control: pools, PATs, jobs, waits, request log, faults, rate limiting, service hooks, reset. */
  control: EmulatorControl;
  /** Accepts `token` as `Authorization: Bearer <token>` (e.g. issued by a simulated token endpoint). */
  registerBearerToken(token: string, info: BearerTokenInfo): void;
  /** Stops listening, ends open long polls and connections. */
  close(): Promise<void>;
}

const engineKeys = [
  "agentVersionDemand",
  "lockDurationMs",
  "sessionTimeoutMs",
  "cancelTimeoutMs",
  "defaultCompletedRequestCount",
  "finishedRetention",
  "failUnmatchableQueuedJobs",
] as const;

export async function startAzureDevOpsEmulator(options: AzureDevOpsEmulatorOptions = {}): Promise<AzureDevOpsEmulator> {
  const organization = options.organization ?? "sim-org";
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(organization)) {
    throw new Error(`invalid organization name '${organization}'`);
  }
  if (organization.toLowerCase() === "_sim") throw new Error("the organization cannot be called _sim");
  const clock = options.clock ?? systemClock({ unref: true });
  const random = options.random ?? Math.random;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let port = 0;
  let httpsPort: number | undefined;
  const baseUrl = () => `http://127.0.0.1:${port}`;
  const httpsBaseUrl = () => (httpsPort === undefined ? undefined : `https://127.0.0.1:${httpsPort}`);
  const httpsOptions = options.https === true ? {} : options.https === false ? undefined : options.https;
  const tls = httpsOptions === undefined ? undefined : (httpsOptions.tls ?? (await selfSignedTls()));
  const organizationUrl = () => `${baseUrl()}/${organization}`;
  const engine: Omit<EngineOptions, "clock" | "organizationUrl"> = {};
  for (const key of engineKeys) {
    if (options[key] !== undefined) (engine as Record<string, unknown>)[key] = options[key];
  }
  const control = new EmulatorControl(
    {
      organization,
      pools: options.pools ?? [],
      pats: options.pats ?? [],
      bearerTokens: options.bearerTokens ?? [],
      engine,
      rateLimit: options.rateLimit ?? {},
      requestLogLimit: options.requestLogLimit ?? 10_000,
      entraId: options.entraId ?? {},
      ...(options.serviceHooks ? { serviceHooks: options.serviceHooks } : {}),
    },
    clock,
    options.bearerTokenStore ?? new InMemoryBearerTokenStore(),
    organizationUrl,
    { random },
  );
  const listener = createRequestListener({
    control,
    baseUrl,
    httpsBaseUrl,
    organizationUrl,
    random,
    messagePollTimeoutMs: options.messagePollTimeoutMs ?? 50_000,
    maxPageSize: options.maxPageSize ?? 200,
    log,
  });
  const servers: Server[] = [createServer({ keepAliveTimeout: 5_000 }, listener)];
  if (tls !== undefined) {
    servers.push(createHttpsServer({ keepAliveTimeout: 5_000, cert: tls.cert, key: tls.key }, listener));
  }
  const sockets = new Set<Socket>();
  const ports: number[] = [];
  try {
    for (const [i, server] of servers.entries()) {
      server.on("connection", (socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(i === 0 ? (options.port ?? 0) : (httpsOptions?.port ?? 0), "127.0.0.1", () => {
          server.off("error", reject);
          resolve();
        });
      });
      const address = server.address();
      if (address === null || typeof address === "string") throw new Error("the emulator has no TCP address");
      ports.push(address.port);
    }
  } catch (err) {
    control.close();
    for (const server of servers) server.close();
    throw err;
  }
  port = ports[0] as number;
  httpsPort = ports[1];
  let closing: Promise<void> | undefined;
  return {
    url: baseUrl(),
    organizationUrl: organizationUrl(),
    port,
    organization,
    controlUrl: `${baseUrl()}/_sim`,
    httpsUrl: httpsBaseUrl(),
    httpsPort,
    caCertificate: tls?.ca === "" ? undefined : tls?.ca,
    control,
    registerBearerToken: (token, info) => control.addBearerToken(token, info),
    close() {
      closing ??= (async () => {
        control.close();
        // Give answered long polls a moment to flush, then cut whatever is left.
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 50).unref();
        await Promise.all(
          servers.map(
            (server) =>
              new Promise<void>((resolve) => {
                server.close(() => resolve());
                server.closeIdleConnections();
              }),
          ),
        );
      })();
      return closing;
    },
  };
}
