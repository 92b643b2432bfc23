/**
 * The JSON the service sends for pools, agents and job requests (distributedtask 7.1 shapes). Null fields are
 * left out, so e.g. a queued job request has no `result`, `assignTime` or `reservedAgent` key. Also the
 * emulator's own job view for the control API.
 */
import { type AgentRecord, type AzureDevOpsEngine, type JobRecord, jobState, type PoolRecord } from "./engine.ts";

export interface ViewContext {
  engine: AzureDevOpsEngine;
  organizationUrl: string;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

const simUser = (ctx: ViewContext) => ({
  displayName: "Simulated Administrator",
  id: "00000000-0000-0000-0000-00000000a11c",
  uniqueName: "admin@sim.invalid",
  url: `${ctx.organizationUrl}/_apis/Identities/00000000-0000-0000-0000-00000000a11c`,
});

const apiUrl = (ctx: ViewContext, path: string) => `${ctx.organizationUrl}/_apis/distributedtask/${path}`;

export function poolView(pool: PoolRecord, ctx: ViewContext): Record<string, unknown> {
  const size = ctx.engine.poolSize(pool.id);
  return {
    createdOn: iso(pool.createdOn),
    autoProvision: false,
    autoUpdate: true,
    autoSize: true,
    createdBy: simUser(ctx),
    owner: simUser(ctx),
    id: pool.id,
    scope: pool.scope,
    name: pool.name,
    isHosted: pool.isHosted,
    poolType: pool.poolType,
    size,
    isLegacy: false,
    options: "none",
  };
}

export function agentReference(agent: AgentRecord, ctx: ViewContext): Record<string, unknown> {
  return {
    _links: {
      self: { href: apiUrl(ctx, `Pools/${agent.poolId}/Agents/${agent.id}`) },
      web: { href: `${ctx.organizationUrl}/_settings/agentpools?view=jobs&poolId=${agent.poolId}&agentId=${agent.id}` },
    },
    id: agent.id,
    name: agent.name,
    version: agent.version,
    osDescription: agent.osDescription,
    enabled: agent.enabled,
    status: ctx.engine.isOnline(agent) ? "online" : "offline",
    provisioningState: agent.provisioningState,
    accessPoint: agent.accessPoint,
  };
}

export interface AgentViewOptions {
  includeCapabilities?: boolean;
  includeAssignedRequest?: boolean;
  includeLastCompletedRequest?: boolean;
}

export function agentView(
  agent: AgentRecord,
  ctx: ViewContext,
  options: AgentViewOptions = {},
): Record<string, unknown> {
  const assigned = options.includeAssignedRequest ? ctx.engine.assignedRequest(agent) : undefined;
  const last = options.includeLastCompletedRequest ? ctx.engine.lastCompletedRequest(agent) : undefined;
  return {
    ...(options.includeCapabilities
      ? { systemCapabilities: { ...agent.systemCapabilities }, userCapabilities: { ...agent.userCapabilities } }
      : {}),
    ...(assigned ? { assignedRequest: jobRequestView(assigned, ctx, { includeMatchedAgents: false }) } : {}),
    ...(last ? { lastCompletedRequest: jobRequestView(last, ctx, { includeMatchedAgents: false }) } : {}),
    authorization: agent.authorization
      ? {
          authorizationUrl: agent.authorization.authorizationUrl,
          clientId: agent.authorization.clientId,
          ...(agent.authorization.publicKey ? { publicKey: { ...agent.authorization.publicKey } } : {}),
        }
      : undefined,
    maxParallelism: agent.maxParallelism,
    createdOn: iso(agent.createdOn),
    statusChangedOn: iso(agent.statusChangedOn),
    ...agentReference(agent, ctx),
  };
}

export function jobRequestView(
  job: JobRecord,
  ctx: ViewContext,
  options: { includeMatchedAgents?: boolean } = {},
): Record<string, unknown> {
  const reserved = ctx.engine.reservedAgent(job);
  const includeMatched = options.includeMatchedAgents ?? true;
  const matched = includeMatched ? ctx.engine.matchedAgents(job) : [];
  const poolAgents = ctx.engine.poolSize(job.poolId);
  const planUrl = `${ctx.organizationUrl}/${job.scopeId}/_apis/build/Definitions/${job.definition.id}`;
  return {
    requestId: job.requestId,
    queueTime: iso(job.queueTime),
    assignTime: iso(job.assignTime),
    receiveTime: iso(job.receiveTime),
    finishTime: iso(job.finishTime),
    result: job.result,
    serviceOwner: "00025394-6065-48ca-87d9-7f5672854ef7",
    hostId: job.hostId,
    scopeId: job.scopeId,
    planType: job.planType,
    planId: job.planId,
    jobId: job.jobId,
    demands: [...job.demands],
    reservedAgent: reserved ? agentReference(reserved, ctx) : undefined,
    matchedAgents: includeMatched && matched.length > 0 ? matched.map((a) => agentReference(a, ctx)) : undefined,
    matchesAllAgentsInPool: includeMatched && poolAgents > 0 && matched.length === poolAgents ? true : undefined,
    lockedUntil: iso(job.lockedUntil),
    statusMessage: job.statusMessage,
    definition: {
      _links: { web: { href: planUrl }, self: { href: planUrl } },
      id: job.definition.id,
      name: job.definition.name,
    },
    owner: { _links: { web: { href: planUrl }, self: { href: planUrl } }, id: job.owner.id, name: job.owner.name },
    data: { ParallelismTag: "Private", IsScheduledKey: "False" },
    poolId: job.poolId,
    orchestrationId: job.orchestrationId,
    jobName: job.jobName,
    priority: job.priority,
    planGroup: job.planGroup,
  };
}

/** The emulator's own view of a job for the control API: state, timestamps, what the simulated job does. */
export interface SimJobView {
  requestId: number;
  poolId: number;
  poolName: string;
  state: "queued" | "assigned" | "running" | "finished";
  result?: string;
  statusMessage?: string;
  demands: string[];
  queueTime: string;
  assignTime?: string;
  receiveTime?: string;
  finishTime?: string;
  lockedUntil?: string;
  reservedAgent?: { id: number; name: string };
  cancelRequested: boolean;
  durationMs: number;
  startDelayMs: number;
  finishDelayMs: number;
  outcome: string;
  jobName: string;
}

export function simJobView(job: JobRecord, engine: AzureDevOpsEngine): SimJobView {
  const reserved = engine.reservedAgent(job);
  const view: SimJobView = {
    requestId: job.requestId,
    poolId: job.poolId,
    poolName: engine.getPool(job.poolId).name,
    state: jobState(job),
    demands: [...job.demands],
    queueTime: new Date(job.queueTime).toISOString(),
    cancelRequested: job.cancelRequested,
    durationMs: job.durationMs,
    startDelayMs: job.startDelayMs,
    finishDelayMs: job.finishDelayMs,
    outcome: job.outcome,
    jobName: job.jobName,
  };
  if (job.result !== undefined) view.result = job.result;
  if (job.statusMessage !== undefined) view.statusMessage = job.statusMessage;
  if (job.assignTime !== undefined) view.assignTime = new Date(job.assignTime).toISOString();
  if (job.receiveTime !== undefined) view.receiveTime = new Date(job.receiveTime).toISOString();
  if (job.finishTime !== undefined) view.finishTime = new Date(job.finishTime).toISOString();
  if (job.lockedUntil !== undefined) view.lockedUntil = new Date(job.lockedUntil).toISOString();
  if (reserved) view.reservedAgent = { id: reserved.id, name: reserved.name };
  return view;
}

/** The emulator's view of an agent for the control API. */
export interface SimAgentView {
  id: number;
  poolId: number;
  poolName: string;
  name: string;
  status: "online" | "offline";
  enabled: boolean;
  version?: string;
  sessionId?: string;
  capabilities: Record<string, string>;
  assignedRequestId?: number;
  lastCompletedRequestId?: number;
  createdOn: string;
  statusChangedOn: string;
  hasPublicKey: boolean;
}

export function simAgentView(agent: AgentRecord, engine: AzureDevOpsEngine): SimAgentView {
  const view: SimAgentView = {
    id: agent.id,
    poolId: agent.poolId,
    poolName: engine.getPool(agent.poolId).name,
    name: agent.name,
    status: engine.isOnline(agent) ? "online" : "offline",
    enabled: agent.enabled,
    capabilities: { ...agent.systemCapabilities, ...agent.userCapabilities },
    createdOn: new Date(agent.createdOn).toISOString(),
    statusChangedOn: new Date(agent.statusChangedOn).toISOString(),
    hasPublicKey: agent.authorization?.publicKey !== undefined,
  };
  if (agent.version !== undefined) view.version = agent.version;
  if (agent.sessionId !== undefined) view.sessionId = agent.sessionId;
  const assigned = engine.assignedRequest(agent);
  if (assigned) view.assignedRequestId = assigned.requestId;
  if (agent.lastCompletedRequestId !== undefined) view.lastCompletedRequestId = agent.lastCompletedRequestId;
  return view;
}
