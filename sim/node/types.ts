/** The parts of core/v1 objects the virtual node reads and writes. */
import type { KubeObject } from "../../src/kube/types.ts";

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
    resourceFieldRef?: { resource: string; containerName?: string };
  };
}

export interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: {
    prefix?: string;
    secretRef?: { name: string; optional?: boolean };
    configMapRef?: { name: string; optional?: boolean };
  }[];
  restartPolicy?: string;
  lifecycle?: { preStop?: unknown; postStart?: unknown };
  volumeMounts?: { name: string; mountPath: string }[];
}

export interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  [other: string]: unknown;
}

export interface PodSpec {
  nodeName?: string;
  restartPolicy?: "Always" | "OnFailure" | "Never";
  terminationGracePeriodSeconds?: number;
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
}

export interface ContainerState {
  waiting?: { reason: string; message?: string };
  running?: { startedAt: string };
  terminated?: {
    exitCode: number;
    reason: string;
    message?: string;
    startedAt?: string;
    finishedAt: string;
    containerID?: string;
  };
}

export interface ContainerStatus {
  name: string;
  image: string;
  imageID: string;
  containerID?: string;
  ready: boolean;
  started?: boolean;
  restartCount: number;
  state: ContainerState;
  lastState: ContainerState;
}

export interface PodCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastProbeTime?: string | null;
}

export interface PodStatus {
  phase?: "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";
  conditions?: PodCondition[];
  hostIP?: string;
  hostIPs?: { ip: string }[];
  podIP?: string;
  podIPs?: { ip: string }[];
  startTime?: string;
  initContainerStatuses?: ContainerStatus[];
  containerStatuses?: ContainerStatus[];
  message?: string;
  reason?: string;
}

export interface Pod extends KubeObject {
  metadata: NonNullable<KubeObject["metadata"]> & { name: string; namespace: string; uid: string };
  spec: PodSpec;
  status?: PodStatus;
}

export interface PersistentVolumeClaim extends KubeObject {
  metadata: NonNullable<KubeObject["metadata"]> & { name: string; namespace: string; uid: string };
  spec: {
    storageClassName?: string;
    accessModes?: string[];
    resources?: { requests?: { storage?: string } };
    volumeName?: string;
    volumeMode?: string;
  };
  status?: { phase?: string };
}
