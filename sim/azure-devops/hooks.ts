/**
 * Service hooks, the pure part: what a subscription is and which inputs it takes, which job state a job request is
 * in as the `ms.vss-pipelines.job-state-changed-event` tells it, whether a subscription's filters let an event
 * through, the event payload, the delivery request (headers, basic auth), the delivery settings and the seeded
 * randomness of injected failures. No I/O and no clock: `hook-delivery.ts` does the sending.
 *
 * The payload follows the service's documented sample. It names the job (its GUID), the run (the job request's
 * `owner`), the pipeline (the `definition`) and the project, never the pool or the job request's ID: a receiver
 * learns that something changed, not which request.
 */
import { createHash } from "node:crypto";
import type { JobRecord, TaskResult } from "./engine.ts";
import { argumentInvalid } from "./errors.ts";

export const PIPELINES_PUBLISHER = "pipelines";
export const JOB_STATE_CHANGED_EVENT = "ms.vss-pipelines.job-state-changed-event";
export const WEB_HOOKS_CONSUMER = "webHooks";
export const HTTP_REQUEST_ACTION = "httpRequest";
/** The resource version of the documented sample payload; a subscription may name another, which is echoed. */
export const DEFAULT_RESOURCE_VERSION = "5.1-preview.1";
/** How the service shows a secret input (the basic-auth password) when it returns a subscription. */
export const MASKED = "********";

/** A GUID-shaped ID that is always the same for the same seed (identities, the project, the collection). */
export function stableGuid(seed: string): string {
  const h = createHash("sha1").update(seed).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** The emulator's one project: every job belongs to it. */
export function simProject(organization: string): { id: string; name: string } {
  return { id: stableGuid(`project:${organization.toLowerCase()}`), name: "sim-project" };
}

// ---- subscriptions

export interface SubscriptionInput {
  publisherId: string;
  eventType: string;
  resourceVersion?: string;
  consumerId: string;
  consumerActionId: string;
  publisherInputs?: Record<string, string>;
  consumerInputs: Record<string, string>;
}

export interface HookSubscription {
  id: string;
  publisherId: string;
  eventType: string;
  resourceVersion: string;
  consumerId: string;
  consumerActionId: string;
  publisherInputs: Record<string, string>;
  consumerInputs: Record<string, string>;
  createdBy: { id: string; displayName: string };
  /** Epoch ms. */
  createdDate: number;
}

/** The state a job is in for the event: `waiting` for an agent, `inProgress` once assigned, `completed`. */
export type HookJobState = "waiting" | "inProgress" | "completed";

export function hookJobState(job: Pick<JobRecord, "result" | "assignTime">): HookJobState {
  if (job.result !== undefined) return "completed";
  if (job.assignTime !== undefined) return "inProgress";
  return "waiting";
}

/** The `jobStateId` filter's values and the states they stand for. */
const stateFilterValues: Record<string, HookJobState> = {
  waiting: "waiting",
  running: "inProgress",
  completed: "completed",
};
/** The `jobResultId` filter's documented values. */
const resultFilterValues = ["succeeded", "skipped", "rejected", "failed", "canceled"];

const isLoopbackHost = (host: string) => host === "localhost" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);

const lower = (value: string | undefined) => (value ?? "").trim().toLowerCase();

/**
 * Checks a subscription the way the service does for the parts the emulator models, and refuses what it does not
 * model (other publishers, events or consumers). Throws the service's 400 (ArgumentException).
 */
export function validateSubscription(input: SubscriptionInput, organization: string): void {
  if (lower(input.publisherId) !== PIPELINES_PUBLISHER || lower(input.eventType) !== JOB_STATE_CHANGED_EVENT) {
    throw argumentInvalid(
      `The emulator publishes only the event ${JOB_STATE_CHANGED_EVENT} of publisher ${PIPELINES_PUBLISHER}; got '${input.eventType}' of '${input.publisherId}'.`,
    );
  }
  if (
    lower(input.consumerId) !== lower(WEB_HOOKS_CONSUMER) ||
    lower(input.consumerActionId) !== lower(HTTP_REQUEST_ACTION)
  ) {
    throw argumentInvalid(
      `The emulator delivers only with consumer ${WEB_HOOKS_CONSUMER}, action ${HTTP_REQUEST_ACTION}; got '${input.consumerId}', '${input.consumerActionId}'.`,
    );
  }
  const url = input.consumerInputs.url?.trim();
  if (!url) throw argumentInvalid("The consumer input 'url' is required.");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw argumentInvalid(`The consumer input 'url' is not a valid URL: '${url}'.`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw argumentInvalid(`The consumer input 'url' must be an http or https URL: '${url}'.`);
  }
  if (!isLoopbackHost(parsed.hostname)) {
    throw argumentInvalid(
      `The emulator delivers only to loopback addresses (127.0.0.1, ::1, localhost); '${parsed.hostname}' is not one.`,
    );
  }
  const inputs = input.publisherInputs ?? {};
  const project = simProject(organization);
  if (inputs.projectId && lower(inputs.projectId) !== project.id) {
    throw argumentInvalid(`The project '${inputs.projectId}' does not exist (the emulator has one: ${project.id}).`);
  }
  if (inputs.pipelineId && !/^\d+$/.test(inputs.pipelineId.trim())) {
    throw argumentInvalid(`The publisher input 'pipelineId' must be a number: '${inputs.pipelineId}'.`);
  }
  if (inputs.jobStateId && !(lower(inputs.jobStateId) in stateFilterValues)) {
    throw argumentInvalid(
      `The publisher input 'jobStateId' must be Waiting, Running or Completed: '${inputs.jobStateId}'.`,
    );
  }
  if (inputs.jobResultId && !resultFilterValues.includes(lower(inputs.jobResultId))) {
    throw argumentInvalid(
      `The publisher input 'jobResultId' must be Succeeded, Skipped, Rejected, Failed or Canceled: '${inputs.jobResultId}'.`,
    );
  }
}

/** The subscription as the REST API returns it: its URL, status and the secret input masked. */
export function subscriptionView(subscription: HookSubscription, organizationUrl: string): Record<string, unknown> {
  const consumerInputs = { ...subscription.consumerInputs };
  if (consumerInputs.basicAuthPassword !== undefined) consumerInputs.basicAuthPassword = MASKED;
  const created = new Date(subscription.createdDate).toISOString();
  return {
    id: subscription.id,
    url: `${organizationUrl}/_apis/hooks/subscriptions/${subscription.id}`,
    status: "enabled",
    publisherId: subscription.publisherId,
    eventType: subscription.eventType,
    resourceVersion: subscription.resourceVersion,
    consumerId: subscription.consumerId,
    consumerActionId: subscription.consumerActionId,
    createdBy: subscription.createdBy,
    createdDate: created,
    modifiedBy: subscription.createdBy,
    modifiedDate: created,
    publisherInputs: subscription.publisherInputs,
    consumerInputs,
  };
}

// ---- events

/** What the payload is made of: the job as it is now and the IDs of this notification. */
export interface JobEventSource {
  job: Pick<
    JobRecord,
    "jobId" | "jobName" | "result" | "assignTime" | "receiveTime" | "finishTime" | "queueTime" | "definition" | "owner"
  >;
  state: HookJobState;
}

/** Does the subscription's filters (publisher inputs) let this event through? Empty inputs filter nothing. */
export function subscriptionMatches(subscription: HookSubscription, source: JobEventSource): boolean {
  const inputs = subscription.publisherInputs;
  const { job, state } = source;
  if (inputs.pipelineId?.trim() && Number(inputs.pipelineId) !== job.definition.id) return false;
  if (inputs.stageNameId?.trim() && lower(inputs.stageNameId) !== "__default") return false;
  if (inputs.jobNameId?.trim() && lower(inputs.jobNameId) !== lower(job.jobName)) return false;
  if (inputs.jobStateId?.trim() && stateFilterValues[lower(inputs.jobStateId)] !== state) return false;
  if (inputs.jobResultId?.trim()) {
    if (state !== "completed" || lower(inputs.jobResultId) !== lower(job.result)) return false;
  }
  return true;
}

const phrase = (state: HookJobState, result: TaskResult | undefined) =>
  state === "completed" ? (result ?? "completed") : state === "inProgress" ? "started" : "is waiting for an agent";

const isoOrNull = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/**
 * The JSON the webHooks consumer POSTs for one job state change to one subscription (the documented sample's
 * shape). `eventId` is the event's (the same for every subscription), `notificationId` this delivery's.
 */
export function jobStateChangedPayload(args: {
  source: JobEventSource;
  subscription: HookSubscription;
  eventId: string;
  notificationId: number;
  organization: string;
  organizationUrl: string;
  now: number;
}): Record<string, unknown> {
  const { job, state } = args.source;
  const project = simProject(args.organization);
  const completed = state === "completed";
  const result = completed ? (job.result ?? null) : null;
  const runUrl = `${args.organizationUrl}/${project.name}/_build/results?buildId=${job.owner.id}`;
  const pipelineUrl = `${args.organizationUrl}/${project.name}/_build/definition?definitionId=${job.definition.id}`;
  const pipeline = {
    url: `${args.organizationUrl}/${project.id}/_apis/Pipelines/${job.definition.id}?revision=1`,
    id: job.definition.id,
    revision: 1,
    name: job.definition.name,
    folder: "\\",
  };
  const line = `Run ${job.owner.name} stage __default job ${job.jobName} ${phrase(state, job.result)}.`;
  const linked = `Run ${job.owner.name} stage __default job`;
  const message = {
    text: line,
    html: `${linked} <a href="${runUrl}">${job.jobName}</a> ${phrase(state, job.result)}.`,
    markdown: `${linked} [${job.jobName}](${runUrl}) ${phrase(state, job.result)}.`,
  };
  return {
    subscriptionId: args.subscription.id,
    notificationId: args.notificationId,
    id: args.eventId,
    eventType: JOB_STATE_CHANGED_EVENT,
    publisherId: PIPELINES_PUBLISHER,
    message,
    detailedMessage: message,
    resource: {
      job: {
        _links: { web: { href: runUrl }, "pipeline.web": { href: pipelineUrl } },
        id: job.jobId,
        name: job.jobName,
        state,
        result,
        startTime: state === "waiting" ? null : isoOrNull(job.receiveTime ?? job.assignTime),
        finishTime: completed ? isoOrNull(job.finishTime) : null,
      },
      stage: {
        id: stableGuid(`stage:${job.jobId}`),
        name: "__default",
        displayName: null,
        state,
        result,
        startTime: null,
        finishTime: null,
      },
      run: {
        pipeline,
        state: completed ? "completed" : "inProgress",
        result,
        createdDate: isoOrNull(job.queueTime),
        finishedDate: completed ? isoOrNull(job.finishTime) : null,
        id: job.owner.id,
        name: job.owner.name,
      },
      pipeline,
      repositories: [],
      projectId: project.id,
    },
    resourceVersion: args.subscription.resourceVersion,
    resourceContainers: {
      // The collection is what connectionData calls the instance.
      collection: { id: stableGuid(`org:${args.organization}`) },
      account: { id: stableGuid(`account:${args.organization}`) },
      project: { id: project.id },
    },
    createdDate: new Date(args.now).toISOString(),
  };
}

// ---- delivery

/**
 * The headers of a delivery: JSON, basic authentication when the subscription has a user name or password, and
 * the `httpHeaders` input ("Name:value", one a line; lines without a name are skipped).
 */
export function deliveryHeaders(consumerInputs: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of (consumerInputs.httpHeaders ?? "").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    if (name !== "") headers[name] = line.slice(colon + 1).trim();
  }
  const user = consumerInputs.basicAuthUsername ?? "";
  const password = consumerInputs.basicAuthPassword ?? "";
  if (user !== "" || password !== "") {
    headers.Authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  }
  headers["Content-Type"] = "application/json; charset=utf-8";
  return headers;
}

/** How deliveries go: the emulator's knobs, not the service's (see the README). */
export interface HookDeliverySettings {
  /** Wait between the job's change and the POST (ms). */
  delayMs: number;
  /** The next N deliveries are lost (not sent, recorded with status 0). */
  failNext: number;
  /** Probability (0..1) that a delivery is lost. */
  failureRate: number;
  /** Seed of the randomness behind `failureRate` (null: the emulator's `random`). Setting it restarts the sequence. */
  seed: number | null;
  /** A receiver that has not answered after this long counts as failed (status 0). */
  timeoutMs: number;
}

export const defaultHookDeliverySettings: HookDeliverySettings = {
  delayMs: 0,
  failNext: 0,
  failureRate: 0,
  seed: null,
  timeoutMs: 20_000,
};

/** Checks a change of the delivery settings; returns the problem, or undefined. */
export function hookSettingsProblem(patch: Record<string, unknown>): string | undefined {
  for (const [key, value] of Object.entries(patch)) {
    if (!(key in defaultHookDeliverySettings)) return `unknown delivery setting ${key}`;
    const number = typeof value === "number" && Number.isFinite(value);
    if (key === "seed") {
      if (value !== null && !(number && Number.isInteger(value))) return "seed must be an integer or null";
    } else if (!number || (value as number) < 0) {
      return `${key} must be a non-negative number`;
    } else if (key === "failNext" && !Number.isInteger(value)) {
      return "failNext must be a whole number";
    } else if (key === "failureRate" && (value as number) > 1) {
      return "failureRate must be between 0 and 1";
    } else if (key === "timeoutMs" && value === 0) {
      return "timeoutMs must be more than 0";
    }
  }
  return undefined;
}

/**
 * Is this delivery to be lost? The next `failNext` are (the count goes down by one each); otherwise a draw against
 * `failureRate`. Returns the decision and what is left of `failNext`.
 */
export function decideLoss(
  settings: Pick<HookDeliverySettings, "failNext" | "failureRate">,
  random: () => number,
): { lost: boolean; failNext: number } {
  if (settings.failNext > 0) return { lost: true, failNext: settings.failNext - 1 };
  const lost = settings.failureRate > 0 && random() < settings.failureRate;
  return { lost, failNext: 0 };
}

/** A small deterministic random source (a 32-bit linear congruential generator): same seed, same sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 0x1_0000_0000;
  };
}
