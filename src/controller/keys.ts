/** Labels and annotations the operator puts on (and reads from) the pods it manages. */
const prefix = "azurepipelines.k8s.scaler.io";

export const labels = {
  managedBy: "app.kubernetes.io/managed-by",
  /** Name of the owning AutoScaledAgent. */
  resource: `${prefix}/autoscaledagent`,
  /** capabilitySetKey of the template the pod was made from. */
  template: `${prefix}/template`,
} as const;

export const managedByValue = "azure-pipelines-k8s-agent-scaler";

export const annotations = {
  /** Canonical JSON of the agent's capabilities. */
  capabilities: `${prefix}/capabilities`,
  /** Comma-separated job request ids the pod was created for. */
  createdFor: `${prefix}/created-for-requests`,
  /** The raw ExtraAgentContainers value the pod was made for. */
  extraAgentContainers: `${prefix}/extra-agent-containers`,
  /** Epoch ms when the pod became an idle scale-down candidate. */
  idleSince: `${prefix}/idle-candidate-since`,
  /** Comma-separated names of classic sidecars the operator asked to stop. */
  sidecarsStopped: `${prefix}/sidecars-stopped`,
} as const;
