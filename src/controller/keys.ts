/** Labels and annotations the operator puts on (and reads from) the pods it manages: one list, in src/pods. */
import { DEFAULT_POD_KEYS } from "../pods/build.ts";

const prefix = "azurepipelines.k8s.scaler.io";

export const labels = DEFAULT_POD_KEYS.labels;
export const managedByValue = DEFAULT_POD_KEYS.managedByValue;

export const annotations = {
  ...DEFAULT_POD_KEYS.annotations,
  /** Epoch ms when the pod became an idle scale-down candidate (written by the controller). */
  idleSince: `${prefix}/idle-candidate-since`,
  /** Comma-separated names of classic sidecars the operator asked to stop (written by the controller). */
  sidecarsStopped: `${prefix}/sidecars-stopped`,
} as const;
