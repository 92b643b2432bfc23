/**
 * The Azure DevOps side of the reconciler, built on the shared pollers (one per organization, pool and
 * credential, whatever the number of resources) and one client per (organization, credential) for writes, all
 * sharing the rate-limit budget of their identity.
 */
import { credentialKey, identityKey } from "../azure-devops/auth.ts";
import { AzureDevOpsClient, normalizeOrganizationUrl } from "../azure-devops/client.ts";
import { AgentBusyError, type AzureDevOpsError } from "../azure-devops/errors.ts";
import { type PoolSnapshot as PolledSnapshot, PollerRegistry } from "../azure-devops/poller.ts";
import type { OrganizationPolls } from "../hooks/server.ts";
import type { Metrics } from "../observability/metrics.ts";
import { PlaceholderManager } from "../placeholders/manager.ts";
import type { Logger } from "../runtime/logger.ts";
import { PLACEHOLDER_AGENT_PREFIX } from "../scaling/naming.ts";
import type { AgentDeletion, AzureDevOpsPort, PoolSnapshot, PoolTarget } from "./ports.ts";
import { requestRecorder } from "./request-metrics.ts";

export interface AzureDevOpsPortOptions {
  logger: Logger;
  timeoutMs: number;
  pollIntervalMs: number;
  idlePollIntervalMs: number;
  /** Requests a minute per identity for polling quiet pools, shared by its pools (default 40). */
  pollBudgetPerMinute?: number;
  /** The most one pool spends of it (default 20). */
  poolPollBudgetPerMinute?: number;
  fetch?: typeof fetch;
  /** Where every HTTP attempt of every client is counted (request and rate-limit metrics). */
  metrics?: Metrics;
}

function toSnapshot(s: PolledSnapshot): PoolSnapshot {
  return { poolId: s.poolId, jobRequests: s.jobRequests, agents: s.agents, fetchedAt: s.fetchedAt };
}

/** The port, plus what the service hook endpoint asks of the pollers, and `close`. */
export function createAzureDevOpsPort(
  options: AzureDevOpsPortOptions,
): AzureDevOpsPort & OrganizationPolls & { close(): void } {
  const metrics = options.metrics;
  const clientOptions = {
    timeoutMs: options.timeoutMs,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(metrics ? { onRequest: requestRecorder(metrics) } : {}),
  };
  const registry = new PollerRegistry({
    logger: options.logger,
    client: clientOptions,
    ...(options.pollBudgetPerMinute === undefined ? {} : { budgetPerMinute: options.pollBudgetPerMinute }),
    ...(options.poolPollBudgetPerMinute === undefined ? {} : { poolBudgetPerMinute: options.poolPollBudgetPerMinute }),
    poller: {
      fastIntervalMs: options.pollIntervalMs,
      idleIntervalMs: options.idlePollIntervalMs,
      minIntervalMs: Math.min(1000, options.pollIntervalMs),
      // The only reader of a job's `matchedAgents` is the placeholder garbage collection (placeholders/plan.ts,
      // rule 4: a placeholder that a queued job lists is kept), and it looks only at placeholder agents, named
      // `dummy-agent` or `dummy-agent-...` (`isPlaceholderAgentName`). Every other reference is dropped while the
      // list is read: in a burst they are almost all of it.
      matchedAgentsNamed: PLACEHOLDER_AGENT_PREFIX,
    },
  });
  const writers = new Map<string, AzureDevOpsClient>();
  const writer = (target: PoolTarget) => {
    const credential = target.credential;
    const key = JSON.stringify([target.organizationUrl, credentialKey(credential)]);
    let client = writers.get(key);
    if (!client) {
      client = new AzureDevOpsClient({
        ...clientOptions,
        organizationUrl: target.organizationUrl,
        credential,
        governor: registry.governors.get(identityKey(credential)),
        logger: options.logger,
      });
      writers.set(key, client);
    }
    return client;
  };
  const managers = new Map<AzureDevOpsClient, PlaceholderManager>();
  return {
    placeholders(target) {
      const client = writer(target);
      let manager = managers.get(client);
      if (!manager) {
        manager = new PlaceholderManager({ client, logger: options.logger });
        managers.set(client, manager);
      }
      return manager;
    },
    subscribe(target, onChange, hints) {
      let lastError: AzureDevOpsError | undefined;
      let agentsSeenAt: number | undefined;
      const handle = registry.acquire(
        { organizationUrl: target.organizationUrl, poolName: target.poolName, credential: target.credential },
        {
          onSnapshot: (s) => {
            // A poll that saw nothing new needs no reconcile (the resync interval still runs them).
            const news = s.changed || s.agentsFetchedAt !== agentsSeenAt || lastError !== undefined;
            agentsSeenAt = s.agentsFetchedAt;
            lastError = undefined;
            if (news) onChange();
          },
          onError: (err) => {
            lastError = err;
            onChange();
          },
          ...(hints?.hasLivePods ? { hasLivePods: hints.hasLivePods } : {}),
        },
      );
      return {
        latest: () => {
          const s = handle.latest();
          return s ? toSnapshot(s) : undefined;
        },
        lastError: () => (lastError ? { kind: lastError.kind, message: lastError.message } : undefined),
        pollNow: () => handle.pollNow(),
        release: () => {
          void handle.release();
        },
      };
    },
    async deleteAgent(target, poolId, agentId): Promise<AgentDeletion> {
      try {
        const result = await writer(target).deleteAgent(poolId, agentId);
        return result === "deleted" ? "deleted" : "gone";
      } catch (err) {
        if (err instanceof AgentBusyError) return "refused";
        throw err;
      }
    },
    organizationKey,
    credentialKey,
    organizationUrls: () => registry.organizationUrls(),
    pollOrganization: (organizationUrl, reason) => registry.pollOrganization(organizationUrl, reason),
    close() {
      void registry.close();
    },
  };
}

/** Organization URLs as the pollers share them (normalised, case-insensitive), kept per URL as written. */
const organizationKeys = new Map<string, string>();

function organizationKey(url: string): string {
  let k = organizationKeys.get(url);
  if (k === undefined) {
    try {
      k = normalizeOrganizationUrl(url).toLowerCase();
    } catch {
      k = url;
    }
    // Resources' URLs: a handful of strings (past 1,000 distinct ones, start again).
    if (organizationKeys.size >= 1000) organizationKeys.clear();
    organizationKeys.set(url, k);
  }
  return k;
}
