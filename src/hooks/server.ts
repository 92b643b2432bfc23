/**
 * The service hook endpoint: a small HTTP server on a port of its own that takes Azure DevOps deliveries of the
 * "Run job state changed" event and asks the job-request pollers of the delivery's organization for an early poll.
 * Thin I/O around the pure rules of `payload.ts`, `auth.ts` and `debounce.ts`; polling stays the source of truth
 * (a lost or forged delivery can only cause, or fail to cause, one extra poll).
 *
 * A request, in order (the first rule that applies answers):
 * 1. `GET /healthz`: 200 `ok` (no authentication, nothing else said).
 * 2. A path other than `/hooks/azure-devops[/<organization>]`: 404 `not-found`.
 * 3. A method other than POST: 405 `bad-request`.
 * 4. Credentials unreadable (a missing file): 503 `unavailable`, logged as an error.
 * 5. Basic authentication failing: 401 `unauthorized` with a `WWW-Authenticate` challenge; the body is not read.
 * 6. A body over `maxBodyBytes` (by Content-Length, or while reading): 413 `too-large`; the connection is closed.
 * 7. A body `parseJobStateChanged` refuses: 400 `bad-request` with the problem.
 * 8. A state that triggers nothing (`triggerReason`): 202 `ignored`.
 * 9. No poll loop for the organizations it is about (unknown organization, or a standby replica: only the leader
 *    polls): 202 `no-poller`.
 * 10. Else each of those organizations is debounced: 202 `triggered` when a poll was asked for at once for one of
 *     them, `coalesced` when all were folded into polls at the end of their windows.
 * Every request but `/healthz` counts once in `onOutcome` (the metric). Rejections are logged at most once a minute
 * per outcome (with the number suppressed), so a scanner cannot flood the log; the password is never logged.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type Clock, systemClock } from "../runtime/clock.ts";
import { errorMessage, type Logger, silentLogger } from "../runtime/logger.ts";
import { type BasicCredentials, checkBasicAuth } from "./auth.ts";
import { OrganizationDebouncer } from "./debounce.ts";
import { parseJobStateChanged, routeHookPath, selectOrganizations, triggerReason } from "./payload.ts";

/** What the endpoint needs from the pollers (`PollerRegistry` and the operator's Azure DevOps port have it). */
export interface OrganizationPolls {
  /** Organizations that have at least one poll loop (normalized URLs). */
  organizationUrls(): string[];
  /** Asks every poll loop of the organization for an early poll; returns how many were asked. */
  pollOrganization(organizationUrl: string, reason: string): number;
}

/** Reads the expected credentials (on every delivery, so a rotated Secret takes effect without a restart). */
export type CredentialSource = () => Promise<BasicCredentials>;

export const HOOK_OUTCOMES = [
  "triggered",
  "coalesced",
  "ignored",
  "no-poller",
  "unauthorized",
  "bad-request",
  "too-large",
  "not-found",
  "unavailable",
] as const;
export type HookOutcome = (typeof HOOK_OUTCOMES)[number];

/** Deliveries are a few KiB; the service's largest event payloads stay well below this. */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024;
export const DEFAULT_DEBOUNCE_MS = 500;

export interface HookServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  credentials: CredentialSource;
  target: OrganizationPolls;
  /** At most one poll per organization per window (the first delivery of a burst polls at once). */
  debounceMs?: number;
  maxBodyBytes?: number;
  onOutcome?: (outcome: HookOutcome) => void;
  clock?: Clock;
  logger?: Logger;
}

export interface RunningHookServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

const rejectionLogIntervalMs = 60_000;

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.pause();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export async function startHookServer(options: HookServerOptions): Promise<RunningHookServer> {
  const clock = options.clock ?? systemClock();
  const log = options.logger ?? silentLogger();
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const debouncer = new OrganizationDebouncer({
    windowMs: options.debounceMs ?? DEFAULT_DEBOUNCE_MS,
    clock,
    fire: (organizationUrl) => options.target.pollOrganization(organizationUrl, "service hook"),
  });
  const lastRejectionLog = new Map<HookOutcome, { at: number; suppressed: number }>();

  const logRejection = (outcome: HookOutcome, req: IncomingMessage, fields: Record<string, unknown>) => {
    const now = clock.now();
    const last = lastRejectionLog.get(outcome);
    if (last !== undefined && now - last.at < rejectionLogIntervalMs) {
      last.suppressed++;
      return;
    }
    lastRejectionLog.set(outcome, { at: now, suppressed: 0 });
    log.warn("service hook delivery rejected", {
      outcome,
      method: req.method,
      path: (req.url ?? "").split("?")[0]?.slice(0, 200),
      remoteAddress: req.socket.remoteAddress,
      ...(last?.suppressed ? { suppressedSinceLastLog: last.suppressed } : {}),
      ...fields,
    });
  };

  const answer = (
    res: ServerResponse,
    status: number,
    outcome: HookOutcome,
    body: Record<string, unknown>,
    headers: Record<string, string> = {},
  ) => {
    options.onOutcome?.(outcome);
    res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", ...headers });
    res.end(`${JSON.stringify({ outcome, ...body })}\n`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const route = routeHookPath(req.url ?? "/");
    if (route.kind === "health") {
      res.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
      return;
    }
    if (route.kind === "unknown") {
      logRejection("not-found", req, {});
      answer(res, 404, "not-found", { message: "not found" });
      return;
    }
    if (req.method !== "POST") {
      logRejection("bad-request", req, { problem: "method not allowed" });
      answer(res, 405, "bad-request", { message: "only POST" }, { Allow: "POST" });
      return;
    }
    let expected: BasicCredentials;
    try {
      expected = await options.credentials();
    } catch (err) {
      log.error("service hook credentials cannot be read", { error: errorMessage(err) });
      answer(res, 503, "unavailable", { message: "credentials unavailable" });
      return;
    }
    const auth = checkBasicAuth(req.headers.authorization, expected);
    if (!auth.ok) {
      logRejection("unauthorized", req, { reason: auth.reason });
      answer(
        res,
        401,
        "unauthorized",
        { message: "authentication required" },
        { "WWW-Authenticate": 'Basic realm="azure-pipelines-k8s-agent-scaler", charset="UTF-8"', Connection: "close" },
      );
      return;
    }
    const declared = Number(req.headers["content-length"] ?? "0");
    let body: string;
    try {
      if (declared > maxBodyBytes) throw new BodyTooLarge();
      body = await readBody(req, maxBodyBytes);
    } catch (err) {
      if (!(err instanceof BodyTooLarge)) throw err;
      logRejection("too-large", req, { limitBytes: maxBodyBytes });
      answer(
        res,
        413,
        "too-large",
        { message: `the body is larger than ${maxBodyBytes} bytes` },
        { Connection: "close" },
      );
      return;
    }
    const parsed = parseJobStateChanged(body);
    if (!parsed.ok) {
      logRejection("bad-request", req, { problem: parsed.problem });
      answer(res, 400, "bad-request", { message: parsed.problem });
      return;
    }
    const { event } = parsed;
    const reason = triggerReason(event);
    const fields = {
      state: event.state,
      notificationId: event.notificationId,
      eventId: event.eventId,
      organization: route.organization,
    };
    if (reason === undefined) {
      log.debug("service hook delivery ignored", fields);
      answer(res, 202, "ignored", {});
      return;
    }
    const organizations = selectOrganizations(options.target.organizationUrls(), route.organization, event.baseUrls);
    if (organizations.length === 0) {
      log.debug("service hook delivery for no polled organization", fields);
      answer(res, 202, "no-poller", { organizations: 0 });
      return;
    }
    const fired = organizations.map((url) => debouncer.trigger(url)).filter((o) => o === "fired").length;
    const outcome: HookOutcome = fired > 0 ? "triggered" : "coalesced";
    log.debug("service hook delivery", { ...fields, reason, outcome, organizations });
    answer(res, 202, outcome, { organizations: organizations.length });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error("service hook request failed", { error: errorMessage(err) });
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  // Deliveries are small and quick: slow clients are cut off.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        debouncer.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
