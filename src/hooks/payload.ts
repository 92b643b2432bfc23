/**
 * Service hook deliveries, the pure part: what a delivery of the "Run job state changed" event
 * (`ms.vss-pipelines.job-state-changed-event`, publisher `pipelines`) tells the operator, which of them trigger a
 * poll, and which organizations a delivery is about. No I/O, no clock.
 *
 * The event names no pool, no demands and no job request ID: a delivery only says that some job of the organization
 * changed state. So it is a "poll now" trigger for every pool of that organization; the job-request poll stays the
 * source of truth, and a payload never decides anything on its own.
 */

export const JOB_STATE_CHANGED_EVENT = "ms.vss-pipelines.job-state-changed-event";
export const PIPELINES_PUBLISHER = "pipelines";

/** What the operator reads from a delivery. */
export interface JobStateChangedEvent {
  /** `resource.job.state` as sent (waiting, inProgress, completed); undefined when the payload carries no resource. */
  readonly state: string | undefined;
  /** `notificationId` and `id` (the event's), for logs. */
  readonly notificationId: number | undefined;
  readonly eventId: string | undefined;
  /** The organization's base URLs from `resourceContainers` (collection, account), when the service sends them. */
  readonly baseUrls: readonly string[];
}

export type ParsedDelivery = { ok: true; event: JobStateChangedEvent } | { ok: false; problem: string };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value);

/** A value from the request, quoted and cut short, for an error message. */
const shown = (value: unknown): string => {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
};

/**
 * Reads a delivery's body. Rules:
 * 1. The body is JSON, and an object.
 * 2. `eventType` is `ms.vss-pipelines.job-state-changed-event` (any case). Another event (a subscription to the
 *    wrong trigger) is refused, naming the one that came.
 * 3. `publisherId`, when present, is `pipelines`.
 * 4. `resource`, `resource.job` and `resource.job.state` may be missing (a subscription whose "Resource details to
 *    send" is None or Minimal); when present they are an object, an object and a string.
 * 5. `resourceContainers.collection.baseUrl` and `.account.baseUrl` are only hints: http(s) URLs among them are
 *    kept, anything else there is ignored.
 * 6. Everything else in the payload (messages, run, pipeline, unknown fields) is ignored.
 */
export function parseJobStateChanged(body: string): ParsedDelivery {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return { ok: false, problem: "the body is not JSON" };
  }
  if (!isRecord(value)) return { ok: false, problem: "the body is not a JSON object" };
  const eventType = value.eventType;
  if (typeof eventType !== "string" || eventType.toLowerCase() !== JOB_STATE_CHANGED_EVENT) {
    return {
      ok: false,
      problem:
        eventType === undefined
          ? `no eventType: expected ${JOB_STATE_CHANGED_EVENT}`
          : `eventType ${shown(eventType)} is not ${JOB_STATE_CHANGED_EVENT} (the "Run job state changed" event)`,
    };
  }
  if (value.publisherId !== undefined && String(value.publisherId).toLowerCase() !== PIPELINES_PUBLISHER) {
    return { ok: false, problem: `publisherId ${shown(value.publisherId)} is not ${PIPELINES_PUBLISHER}` };
  }
  let state: string | undefined;
  const resource = value.resource;
  if (resource !== undefined && resource !== null) {
    if (!isRecord(resource)) return { ok: false, problem: "resource is not an object" };
    const job = resource.job;
    if (job !== undefined && job !== null) {
      if (!isRecord(job)) return { ok: false, problem: "resource.job is not an object" };
      if (job.state !== undefined && job.state !== null) {
        if (typeof job.state !== "string") return { ok: false, problem: "resource.job.state is not a string" };
        state = job.state;
      }
    }
  }
  const baseUrls: string[] = [];
  const containers = value.resourceContainers;
  if (isRecord(containers)) {
    for (const key of ["collection", "account"]) {
      const container = containers[key];
      const baseUrl = isRecord(container) ? container.baseUrl : undefined;
      if (typeof baseUrl === "string" && /^https?:\/\//i.test(baseUrl.trim())) baseUrls.push(baseUrl.trim());
    }
  }
  return {
    ok: true,
    event: {
      state,
      notificationId: typeof value.notificationId === "number" ? value.notificationId : undefined,
      eventId: typeof value.id === "string" ? value.id : undefined,
      baseUrls,
    },
  };
}

/** Why a delivery asks for a poll. */
export type TriggerReason = "job-waiting" | "job-started" | "job-completed" | "job-state-changed";

/**
 * Does this delivery trigger a poll? Rules (states compared in any case):
 * 1. `waiting`: a job waits for an agent; the operator may have to start one. The reason the endpoint exists.
 * 2. `inProgress`: an agent took a job; when it was a warm (minCount or standby) agent, a replacement is due.
 * 3. `completed`: a job finished or was cancelled; its agent leaves, capacity under maxCount frees up for waiting
 *    jobs, and a pod started for a job cancelled while waiting is no longer needed.
 * 4. No state (no resource details sent): some job changed; poll.
 * 5. Any other state: nothing known to act on; the delivery is accepted and ignored.
 */
export function triggerReason(event: Pick<JobStateChangedEvent, "state">): TriggerReason | undefined {
  if (event.state === undefined) return "job-state-changed";
  switch (event.state.toLowerCase()) {
    case "waiting":
      return "job-waiting";
    case "inprogress":
      return "job-started";
    case "completed":
      return "job-completed";
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Organizations

/** The endpoint's path, and the organization a path names. */
export const HOOK_PATH = "/hooks/azure-devops";

export type HookRoute = { kind: "hook"; organization: string | undefined } | { kind: "health" } | { kind: "unknown" };

/**
 * Routes a request path (the query is ignored). Rules:
 * 1. `/healthz`: the endpoint's own liveness (for load balancers and ingress health checks); no authentication.
 * 2. `/hooks/azure-devops` (trailing slash allowed): the delivery names its organization itself, if at all.
 * 3. `/hooks/azure-devops/<organization>`: one segment, percent-decoded, 1 to 256 characters, no control
 *    characters: the organization's name as in its URL (`fabrikam` of `https://dev.azure.com/fabrikam`).
 * 4. Anything else is unknown (404).
 */
export function routeHookPath(url: string): HookRoute {
  const path = url.split("?")[0] ?? "";
  if (path === "/healthz") return { kind: "health" };
  if (path === HOOK_PATH || path === `${HOOK_PATH}/`) return { kind: "hook", organization: undefined };
  if (!path.startsWith(`${HOOK_PATH}/`)) return { kind: "unknown" };
  const segment = path.slice(HOOK_PATH.length + 1).replace(/\/$/, "");
  if (segment === "" || segment.includes("/")) return { kind: "unknown" };
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return { kind: "unknown" };
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (name.length > 256 || /[\u0000-\u001f\u007f/]/.test(name) || name.trim() === "") return { kind: "unknown" };
  return { kind: "hook", organization: name };
}

/**
 * The name of an organization URL, as a hook path names it: the host's first label for
 * `https://<name>.visualstudio.com`, else the last path segment (`https://dev.azure.com/<name>`, an Azure DevOps
 * Server collection `https://server/tfs/<collection>`), else the host. Undefined for what is not a URL.
 */
export function organizationName(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    return undefined;
  }
  const host = parsed.hostname.toLowerCase();
  if (host.endsWith(".visualstudio.com")) return host.split(".")[0];
  const segments = parsed.pathname.split("/").filter((s) => s !== "");
  const last = segments.at(-1);
  if (last === undefined) return host;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/**
 * The organizations (of those polled) a delivery is about. Rules:
 * 1. The path names an organization: the polled ones of that name (any case); none when it is not polled.
 * 2. Else the payload's base URLs: the polled organizations of the same name as one of them.
 * 3. Else (the payload names none; the service's pipeline events usually carry only IDs): every polled
 *    organization. Debouncing keeps that cheap; one path per organization avoids it.
 */
export function selectOrganizations(
  polled: readonly string[],
  pathOrganization: string | undefined,
  baseUrls: readonly string[],
): string[] {
  const same = (names: readonly string[]) => {
    const wanted = new Set(names.map((n) => n.toLowerCase()));
    return polled.filter((url) => wanted.has((organizationName(url) ?? "").toLowerCase()));
  };
  if (pathOrganization !== undefined) return same([pathOrganization]);
  const named = baseUrls.map(organizationName).filter((n): n is string => n !== undefined);
  if (named.length > 0) return same(named);
  return [...polled];
}
