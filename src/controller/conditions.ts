/**
 * Pure helpers for the resource's status conditions: set a condition keeping its lastTransitionTime when the status
 * did not change, and derive Ready / AzureDevOpsReachable / Degraded from what the reconcile found.
 */
import type { Condition, StandbyStatus } from "../api/v1/index.ts";

export type ConditionInput = Omit<Condition, "lastTransitionTime" | "observedGeneration">;

/** Replaces (or adds) conditions, keeping lastTransitionTime of those whose status is unchanged. */
export function setConditions(
  previous: readonly Condition[] | undefined,
  updates: readonly ConditionInput[],
  now: string,
  generation: number | undefined,
): Condition[] {
  const out = [...(previous ?? [])];
  for (const u of updates) {
    const i = out.findIndex((c) => c.type === u.type);
    const before = i >= 0 ? out[i] : undefined;
    const c: Condition = {
      ...u,
      message: u.message.slice(0, 32_000),
      lastTransitionTime: before && before.status === u.status ? before.lastTransitionTime : now,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
    if (i >= 0) out[i] = c;
    else out.push(c);
  }
  return out;
}

/** What a reconcile found, reduced to the three conditions. */
export interface Findings {
  /** The spec could not be used at all (validation errors). */
  invalidSpec?: string;
  /** Credentials could not be read (missing Secret, key, ...). */
  credentials?: { reason: string; message: string };
  /** Azure DevOps: undefined = not tried yet; ok; or the failure. */
  azureDevOps?: { ok: true; poolId: number } | { ok: false; reason: string; message: string };
  /** Problems that did not stop the reconcile (refused jobs, failed creates...), newest first. */
  problems: { reason: string; message: string }[];
  /** The cache volume claims and their holders, for status. */
  cacheVolumes?: { name: string; claimName: string; holderPod?: string }[];
  /** The standby in force per template index (undefined: no standby block), for status. */
  standby?: readonly (StandbyStatus | undefined)[];
}

export function deriveConditions(f: Findings): ConditionInput[] {
  const blocking = f.invalidSpec
    ? { reason: "InvalidSpec", message: f.invalidSpec }
    : (f.credentials ??
      (f.azureDevOps && !f.azureDevOps.ok
        ? { reason: f.azureDevOps.reason, message: f.azureDevOps.message }
        : undefined));
  const ado: ConditionInput =
    f.azureDevOps === undefined
      ? {
          type: "AzureDevOpsReachable",
          status: "Unknown",
          reason: blocking ? "NotChecked" : "Connecting",
          message: blocking
            ? "Azure DevOps was not contacted: see the Degraded condition"
            : "waiting for the first poll",
        }
      : f.azureDevOps.ok
        ? {
            type: "AzureDevOpsReachable",
            status: "True",
            reason: "PoolFound",
            message: `pool id ${f.azureDevOps.poolId}`,
          }
        : {
            type: "AzureDevOpsReachable",
            status: "False",
            reason: f.azureDevOps.reason,
            message: f.azureDevOps.message,
          };
  const problem = blocking ?? f.problems[0];
  const degraded: ConditionInput = problem
    ? { type: "Degraded", status: "True", reason: problem.reason, message: problem.message }
    : { type: "Degraded", status: "False", reason: "AsExpected", message: "" };
  const ready: ConditionInput = blocking
    ? { type: "Ready", status: "False", reason: blocking.reason, message: blocking.message }
    : f.azureDevOps?.ok
      ? { type: "Ready", status: "True", reason: "Scaling", message: "agent pods follow the pool's queued jobs" }
      : { type: "Ready", status: "False", reason: "Connecting", message: "waiting for the first Azure DevOps poll" };
  return [ready, ado, degraded];
}
