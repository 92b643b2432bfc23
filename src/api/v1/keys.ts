/**
 * Every label and annotation key the operator writes or reads, in one place. All of them live under the API group,
 * except the well-known `app.kubernetes.io/managed-by`.
 */
import { API_VERSION, GROUP, KIND } from "./constants.ts";

/** The value of `app.kubernetes.io/managed-by` on every object the operator creates. */
export const MANAGED_BY_VALUE = "azure-pipelines-k8s-agent-scaler";

/** Labels on agent pods and cache-volume PVCs (the operator's informers select by `managedBy`). */
export const labels = {
  managedBy: "app.kubernetes.io/managed-by",
  /** The owning AutoScaledAgent's name (made a valid label value). */
  resource: `${GROUP}/autoscaledagent`,
  /** Key of the template the pod was made from (`capabilitySetKey` of its capabilities). */
  template: `${GROUP}/template`,
  /** `extraAgentContainersKey` of the value; only on pods made for an ExtraAgentContainers demand. */
  extraAgentContainers: `${GROUP}/extra-agent-containers`,
  /** On a cache-volume PVC: the name of the `reusableCacheVolumes` entry it serves. */
  cacheVolume: `${GROUP}/cache-volume`,
  /** On the operator's own pods: "true" on the leader's, "false" on a standby's (src/controller/leader-label.ts). */
  leader: `${GROUP}/leader`,
} as const;

/** Annotations on agent pods. */
export const podAnnotations = {
  /** Canonical JSON of the capabilities the agent advertises. */
  capabilities: `${GROUP}/capabilities`,
  /** Comma-separated job request ids the pod was created for. */
  createdFor: `${GROUP}/created-for-requests`,
  /** The raw ExtraAgentContainers value. */
  extraAgentContainers: `${GROUP}/extra-agent-containers`,
  /** Index of the template in spec.podsWithCapabilities when the pod was made (informational). */
  templateIndex: `${GROUP}/template-index`,
  /** Epoch ms when the pod became an idle scale-down candidate (written by the controller). */
  idleSince: `${GROUP}/idle-candidate-since`,
  /** Comma-separated names of classic sidecars the operator asked to stop (written by the controller). */
  sidecarsStopped: `${GROUP}/sidecars-stopped`,
} as const;

/** Annotations on cache-volume PVCs: the claim (which pod holds it) and its history. */
export const pvcAnnotations = {
  claimedBy: `${GROUP}/claimed-by`,
  claimedAt: `${GROUP}/claimed-at`,
  lastTemplate: `${GROUP}/last-used-by-template`,
  releasedAt: `${GROUP}/released-at`,
} as const;

/** Labels and annotations of the image pre-pull DaemonSets and their pods (src/prepull). */
export const prePullKeys = {
  /**
   * Label on pre-pull DaemonSets and their pods, the DaemonSet's selector: a hash of the resource's uid and the
   * placement (the operator's pre-pull pod informer selects on this key existing).
   */
  selector: `${GROUP}/image-prepull`,
  /** Annotation on pre-pull DaemonSets: a hash of what the operator applied (it applies again only on change). */
  specHash: `${GROUP}/prepull-spec-hash`,
  /** Annotation on pre-pull DaemonSets: indexes in spec.podsWithCapabilities of the templates it serves. */
  templates: `${GROUP}/prepull-templates`,
} as const;

/** The finalizer that keeps a deleted AutoScaledAgent until its agents are unregistered (bounded in time). */
export const FINALIZER = `${GROUP}/cleanup`;

/** The operator's name as a reporting controller of Kubernetes Events. */
export const REPORTING_CONTROLLER = `${GROUP}/operator`;

/** An owner or event reference to an AutoScaledAgent. */
export interface ResourceRef {
  apiVersion: string;
  kind: string;
  namespace?: string | undefined;
  name?: string | undefined;
  uid?: string | undefined;
}

export function resourceRef(resource: {
  metadata?: { namespace?: string; name?: string; uid?: string } | undefined;
}): ResourceRef {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    namespace: resource.metadata?.namespace,
    name: resource.metadata?.name,
    uid: resource.metadata?.uid,
  };
}

/** The controller owner reference that makes Kubernetes garbage-collect an object with its AutoScaledAgent. */
export function controllerOwnerReference(resource: { metadata: { name: string; uid: string } }) {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: resource.metadata.name,
    uid: resource.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}
