/**
 * The Azure DevOps emulator: `startAzureDevOpsEmulator(options)` serves the REST API of one organization at
 * `http://127.0.0.1:PORT/{organization}` (loopback only) plus the control API under `/_sim/`, and returns the URLs
 * and a typed control handle. See README.md in this folder.
 */
import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import { type BearerTokenInfo, type BearerTokenStore, InMemoryBearerTokenStore, type PatConfig } from "./auth.ts";
import { type Clock, systemClock } from "./clock.ts";
import { EmulatorControl } from "./control.ts";
import type { EngineOptions } from "./engine.ts";
import type { RateLimitConfig } from "./ratelimit.ts";
import { createRequestListener } from "./server.ts";

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
export type { FaultRule } from "./faults.ts";
export type { RateLimitConfig } from "./ratelimit.ts";
export type { SimAgentView, SimJobView } from "./views.ts";

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
  /** Randomness for fault injection. Default Math.random. */
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
  /** Typed in-process control: pools, PATs, jobs, waits, request log, faults, rate limiting, reset. */
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
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let port = 0;
  const baseUrl = () => `http://127.0.0.1:${port}`;
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
    },
    clock,
    options.bearerTokenStore ?? new InMemoryBearerTokenStore(),
    organizationUrl,
  );
  const server: Server = createServer(
    { keepAliveTimeout: 5_000 },
    createRequestListener({
      control,
      baseUrl,
      organizationUrl,
      random: options.random ?? Math.random,
      messagePollTimeoutMs: options.messagePollTimeoutMs ?? 50_000,
      maxPageSize: options.maxPageSize ?? 200,
      log,
    }),
  );
  const sockets = new Set<Socket>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the emulator has no TCP address");
  port = address.port;
  let closing: Promise<void> | undefined;
  return {
    url: baseUrl(),
    organizationUrl: organizationUrl(),
    port,
    organization,
    controlUrl: `${baseUrl()}/_sim`,
    control,
    registerBearerToken: (token, info) => control.addBearerToken(token, info),
    close() {
      closing ??= new Promise<void>((resolve) => {
        control.close();
        server.close(() => resolve());
        server.closeIdleConnections();
        // Give answered long polls a moment to flush, then cut whatever is left.
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 50).unref();
      });
      return closing;
    },
  };
}
