/**
 * Carries out the placeholder decisions of plan.ts against Azure DevOps: registers missing placeholders and deletes
 * the agents a garbage decision names. Every outcome is typed data for the controller (status, events, logs); the
 * only thing thrown is a caller's abort. Rate-limit friendly: nothing is sent that the caller's agent list says is
 * unnecessary, and a run stops at the first answer that makes the rest pointless (403, 401, rate limit, pool gone).
 */
import type { AzureDevOpsClient } from "../azure-devops/client.ts";
import {
  AgentBusyError,
  AgentExistsError,
  AzureDevOpsError,
  type AzureDevOpsErrorKind,
} from "../azure-devops/errors.ts";
import { errorMessage, type Logger, silentLogger } from "../runtime/logger.ts";
import {
  type CollectableAgent,
  type EnsureStatus,
  type GarbageDecision,
  type GarbageInput,
  type GarbageReason,
  garbageToCollect,
  missingPlaceholders,
  type WantedPlaceholder,
} from "./plan.ts";

/** What the manager needs of the client (an `AzureDevOpsClient` fits). */
export type PlaceholderClient = Pick<AzureDevOpsClient, "registerAgent" | "deleteAgent" | "listAgents" | "identity">;

export type PlaceholderOutcome =
  | { readonly name: string; readonly status: "registered"; readonly agentId: number }
  /** The name is taken already (409, or the caller's agent list has it): the goal is reached. */
  | { readonly name: string; readonly status: "exists" }
  /** 403: the credential may read the pool but not manage its agents. */
  | { readonly name: string; readonly status: "forbidden"; readonly message: string }
  | {
      readonly name: string;
      readonly status: "failed";
      readonly kind: AzureDevOpsErrorKind;
      readonly message: string;
      readonly transient: boolean;
    }
  /** Not tried: an earlier answer in the same run made it pointless (403, 401, rate limit, pool not found). */
  | { readonly name: string; readonly status: "skipped"; readonly message: string };

/** A problem for the resource's status (the `problems` of the controller's findings) and an event. */
export interface PlaceholderProblem {
  readonly reason: string;
  readonly message: string;
}

export interface EnsureResult {
  /** `ok`: every wanted placeholder exists; `forbidden`: the credential cannot register; `failed`: try again soon. */
  readonly status: EnsureStatus;
  /** One per wanted placeholder, in the order given. */
  readonly outcomes: readonly PlaceholderOutcome[];
  /** Names registered by this run. */
  readonly registered: readonly string[];
  readonly problem?: PlaceholderProblem;
  /** The service asked to wait this long before the next request (rate limit). */
  readonly retryAfterMs?: number;
}

export type CollectOutcome = {
  readonly id: number;
  readonly name: string;
  readonly reason: GarbageReason;
} & (
  | { readonly result: "deleted" }
  /** Already gone (404): the goal is reached. */
  | { readonly result: "gone" }
  /** The service refused for now (it holds a job after all): left for a later run. */
  | { readonly result: "busy"; readonly message: string }
  | { readonly result: "failed"; readonly kind: AzureDevOpsErrorKind; readonly message: string }
  | { readonly result: "skipped"; readonly message: string }
);

export interface CollectResult {
  readonly outcomes: readonly CollectOutcome[];
  /** Names deleted (or found gone) by this run. */
  readonly deleted: readonly string[];
  readonly problem?: PlaceholderProblem;
  readonly retryAfterMs?: number;
}

export const PlaceholderReason = {
  /** The credential may not register agents in the pool (read-only PAT, identity not an Administrator). */
  RegistrationForbidden: "PlaceholderRegistrationForbidden",
  /** Registering failed for another reason (server, network, rate limit, pool gone...). */
  RegistrationFailed: "PlaceholderRegistrationFailed",
  /** The credential may not delete agents of the pool. */
  CollectionForbidden: "AgentCollectionForbidden",
  /** Deleting stale agents failed for another reason. */
  CollectionFailed: "AgentCollectionFailed",
} as const;

export interface PlaceholderManagerOptions {
  client: PlaceholderClient;
  logger?: Logger;
}

export interface EnsureOptions {
  /**
   * Names of the pool's agents as the caller last saw them (e.g. the poller's snapshot): wanted placeholders listed
   * there are not registered again. Without it every wanted placeholder is POSTed (a 409 counts as success).
   */
  existingAgentNames?: Iterable<string>;
  signal?: AbortSignal;
}

/** Whether the credential is a PAT (the client's identity key says so without holding the secret). */
function isPat(identity: string): boolean {
  return identity.startsWith("pat:");
}

/** "cannot register placeholders: the PAT needs Agent Pools (Read & manage)" and what that means. */
export function forbiddenRegistrationMessage(identity: string, poolId: number): string {
  const need = isPat(identity)
    ? "the PAT needs Agent Pools (Read & manage)"
    : "the identity needs the Administrator role on the agent pool";
  return (
    `cannot register placeholders: ${need}. Until then, a job whose demands no registered agent of pool ${poolId} ` +
    "satisfies fails at once instead of waiting for a pod; scaling continues"
  );
}

function forbiddenCollectionMessage(identity: string, poolId: number): string {
  const need = isPat(identity)
    ? "the PAT needs Agent Pools (Read & manage)"
    : "the identity needs the Administrator role on the agent pool";
  return `cannot delete stale agents of pool ${poolId}: ${need}; offline agents pile up in the pool, scaling continues`;
}

/** Kinds after which further requests of the same run would fail the same way. */
const stopKinds: ReadonlySet<AzureDevOpsErrorKind> = new Set(["auth", "forbidden", "rate-limited", "configuration"]);

function stopsTheRun(err: AzureDevOpsError): boolean {
  if (stopKinds.has(err.kind)) return true;
  // The pool itself is gone (an agent-level 404 would name the agent).
  return err.kind === "not-found" && err.typeKey === "TaskAgentPoolNotFoundException";
}

function aborted(signal: AbortSignal | undefined, err: unknown): boolean {
  return signal?.aborted === true && (err === signal.reason || !(err instanceof AzureDevOpsError));
}

export class PlaceholderManager {
  #client: PlaceholderClient;
  #log: Logger;

  constructor(options: PlaceholderManagerOptions) {
    this.#client = options.client;
    this.#log = options.logger ?? silentLogger();
  }

  /**
   * Registers the wanted placeholders the pool does not have. A 409 is success (the name, and so the capability set,
   * is there already); a changed capability set has a new name, so "re-registering" is registering the new one
   * (the old one becomes unwanted and is collected later). Never throws except for the caller's abort.
   */
  async ensure(
    poolId: number,
    wanted: readonly WantedPlaceholder[],
    options: EnsureOptions = {},
  ): Promise<EnsureResult> {
    const toRegister = new Set(
      (options.existingAgentNames ? missingPlaceholders(wanted, options.existingAgentNames) : wanted).map(
        (w) => w.name,
      ),
    );
    const outcomes: PlaceholderOutcome[] = [];
    const registered: string[] = [];
    let stop: { message: string; forbidden: boolean } | undefined;
    let failure: AzureDevOpsError | undefined;
    let retryAfterMs: number | undefined;
    for (const w of wanted) {
      if (!toRegister.has(w.name)) {
        outcomes.push({ name: w.name, status: "exists" });
        continue;
      }
      if (stop) {
        outcomes.push({ name: w.name, status: "skipped", message: stop.message });
        continue;
      }
      try {
        const agent = await this.#client.registerAgent(poolId, w.registration, { signal: options.signal });
        outcomes.push({ name: w.name, status: "registered", agentId: agent.id });
        registered.push(w.name);
        this.#log.info("placeholder agent registered", { poolId, agent: w.name, agentId: agent.id });
      } catch (err) {
        if (aborted(options.signal, err)) throw err;
        if (err instanceof AgentExistsError) {
          outcomes.push({ name: w.name, status: "exists" });
          continue;
        }
        const e =
          err instanceof AzureDevOpsError
            ? err
            : new AzureDevOpsError("unexpected", `registering placeholder '${w.name}' failed: ${errorMessage(err)}`);
        if (e.kind === "forbidden") {
          const message = forbiddenRegistrationMessage(this.#client.identity, poolId);
          outcomes.push({ name: w.name, status: "forbidden", message });
          stop = { message, forbidden: true };
          this.#log.warn("placeholder agents cannot be registered", { poolId, ...e.fields() });
          continue;
        }
        outcomes.push({ name: w.name, status: "failed", kind: e.kind, message: e.message, transient: e.transient });
        failure ??= e;
        if (e.retryAfterMs !== undefined) retryAfterMs = Math.max(retryAfterMs ?? 0, e.retryAfterMs);
        this.#log.warn("placeholder agent not registered", { poolId, agent: w.name, ...e.fields() });
        if (stopsTheRun(e)) stop = { message: `not tried after: ${e.message}`, forbidden: false };
      }
    }
    const base = { outcomes, registered, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
    if (stop?.forbidden) {
      return {
        ...base,
        status: "forbidden",
        problem: { reason: PlaceholderReason.RegistrationForbidden, message: stop.message },
      };
    }
    if (failure) {
      const failed = outcomes.filter((o) => o.status === "failed" || o.status === "skipped").length;
      return {
        ...base,
        status: "failed",
        problem: {
          reason: PlaceholderReason.RegistrationFailed,
          message: `${failed} of ${wanted.length} placeholder agents could not be registered in pool ${poolId}: ${failure.message}`,
        },
      };
    }
    return { ...base, status: "ok" };
  }

  /**
   * Deletes the agents of a garbage decision, in its order. A refusal (the agent holds a job after all) is skipped
   * and left for a later run; a 404 counts as done. Never throws except for the caller's abort.
   */
  async collect(
    poolId: number,
    decision: GarbageDecision,
    options: { signal?: AbortSignal } = {},
  ): Promise<CollectResult> {
    const outcomes: CollectOutcome[] = [];
    const deleted: string[] = [];
    let stop: string | undefined;
    let problem: PlaceholderProblem | undefined;
    let retryAfterMs: number | undefined;
    for (const item of decision.delete) {
      const base = { id: item.id, name: item.name, reason: item.reason };
      if (stop) {
        outcomes.push({ ...base, result: "skipped", message: stop });
        continue;
      }
      try {
        const result = await this.#client.deleteAgent(poolId, item.id, { signal: options.signal });
        outcomes.push({ ...base, result: result === "deleted" ? "deleted" : "gone" });
        deleted.push(item.name);
        this.#log.info("stale agent deleted", { poolId, agent: item.name, agentId: item.id, reason: item.reason });
      } catch (err) {
        if (aborted(options.signal, err)) throw err;
        if (err instanceof AgentBusyError) {
          outcomes.push({ ...base, result: "busy", message: err.message });
          this.#log.info("stale agent not deleted: the service refused for now", { poolId, agent: item.name });
          continue;
        }
        const e =
          err instanceof AzureDevOpsError
            ? err
            : new AzureDevOpsError("unexpected", `deleting agent '${item.name}' failed: ${errorMessage(err)}`);
        if (e.kind === "forbidden") {
          const message = forbiddenCollectionMessage(this.#client.identity, poolId);
          outcomes.push({ ...base, result: "failed", kind: e.kind, message });
          problem = { reason: PlaceholderReason.CollectionForbidden, message };
          stop = message;
          continue;
        }
        outcomes.push({ ...base, result: "failed", kind: e.kind, message: e.message });
        problem ??= { reason: PlaceholderReason.CollectionFailed, message: e.message };
        if (e.retryAfterMs !== undefined) retryAfterMs = Math.max(retryAfterMs ?? 0, e.retryAfterMs);
        this.#log.warn("stale agent not deleted", { poolId, agent: item.name, ...e.fields() });
        if (stopsTheRun(e)) stop = `not tried after: ${e.message}`;
      }
    }
    return {
      outcomes,
      deleted,
      ...(problem ? { problem } : {}),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }

  /**
   * Unregisters what `choose` picks from a fresh agent list (with assigned requests; one GET): the cleanup of a
   * deleted resource. A failed list is the problem, nothing is deleted.
   */
  async removeAgents(
    poolId: number,
    choose: (agents: readonly CollectableAgent[]) => GarbageDecision,
    options: { signal?: AbortSignal } = {},
  ): Promise<CollectResult> {
    let agents: Awaited<ReturnType<PlaceholderClient["listAgents"]>>;
    try {
      agents = await this.#client.listAgents(poolId, { includeAssignedRequest: true, signal: options.signal });
    } catch (err) {
      if (aborted(options.signal, err)) throw err;
      return {
        outcomes: [],
        deleted: [],
        problem: { reason: PlaceholderReason.CollectionFailed, message: errorMessage(err) },
      };
    }
    return this.collect(poolId, choose(agents), options);
  }

  /**
   * One garbage-collection run on a fresh agent list: lists the pool's agents (with their assigned requests; one
   * GET), decides with {@link garbageToCollect} and deletes. A failed list is reported as the problem, nothing is
   * deleted. Use this on `dummyAgentGarbageCollectionInterval`; use {@link collect} to act on a decision made from
   * an agent list the caller already has.
   */
  async collectGarbage(
    poolId: number,
    input: Omit<GarbageInput, "agents">,
    options: { signal?: AbortSignal } = {},
  ): Promise<CollectResult & { decision: GarbageDecision | undefined }> {
    let agents: Awaited<ReturnType<PlaceholderClient["listAgents"]>>;
    try {
      agents = await this.#client.listAgents(poolId, { includeAssignedRequest: true, signal: options.signal });
    } catch (err) {
      if (aborted(options.signal, err)) throw err;
      const e = err instanceof AzureDevOpsError ? err : undefined;
      return {
        decision: undefined,
        outcomes: [],
        deleted: [],
        problem: { reason: PlaceholderReason.CollectionFailed, message: e ? e.message : errorMessage(err) },
        ...(e?.retryAfterMs === undefined ? {} : { retryAfterMs: e.retryAfterMs }),
      };
    }
    const decision = garbageToCollect({ ...input, agents });
    return { decision, ...(await this.collect(poolId, decision, options)) };
  }
}
