/** Names of the AutoScaledAgent API: group, version, kind, resource names, condition types. */

export const GROUP = "azurepipelines.k8s.scaler.io";
export const VERSION = "v1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "AutoScaledAgent";
export const LIST_KIND = "AutoScaledAgentList";
export const PLURAL = "autoscaledagents";
export const SINGULAR = "autoscaledagent";
/** `kubectl get asa`. */
export const SHORT_NAMES: readonly string[] = ["asa"];
/**
 * `kubectl get azure-pipelines` lists every resource of this project. Deliberately not in `all`: that category is
 * meant for built-in workloads, and operators that join it make `kubectl get all` slow and surprising.
 */
export const CATEGORIES: readonly string[] = ["azure-pipelines"];
export const CRD_NAME = `${PLURAL}.${GROUP}`;

/** The key in the `personalAccessTokenSecretName` Secret that holds the PAT (as in the original). */
export const PAT_SECRET_KEY = "pat";
/** Default key of the client secret in `entraIdAuthentication.clientSecretRef`. */
export const CLIENT_SECRET_KEY = "clientSecret";

/** Condition types the operator writes to `status.conditions`. */
export const ConditionType = {
  /** The resource is valid and the operator reconciles it (pods are created as jobs need them). */
  Ready: "Ready",
  /** The last call to Azure DevOps for this resource's pool succeeded. */
  AzureDevOpsReachable: "AzureDevOpsReachable",
  /** Something is wrong that needs a human: bad input, refused requests, missing Secret. */
  Degraded: "Degraded",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/** API path of the collection in a namespace, or of one resource when `name` is given. */
export function resourcePath(namespace: string, name?: string): string {
  const base = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${PLURAL}`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}
