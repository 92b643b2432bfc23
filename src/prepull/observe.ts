/**
 * Image pre-pull, what is observed (pure): the status of a resource's pre-pull (ready on N of M nodes) from its
 * DaemonSets and their pods, and the problems worth an event. No I/O, no clock.
 *
 * Rules (the table test names them by number):
 *  1. Desired nodes: the sum of `status.desiredNumberScheduled` of the planned DaemonSets that exist (0 for one not
 *     seen yet). A node that two placements cover counts twice: it has two pre-pull pods.
 *  2. Ready nodes: pods of a planned DaemonSet (by its selector label) that are not being deleted, are Ready (every
 *     init container, so every pull, is done; the pause container runs) and whose pull containers hold every image
 *     the DaemonSet now plans. During a rolling update a node counts again only once its new pod has pulled.
 *  3. Problems, per container of those pods: an image that cannot be pulled (`ErrImagePull`, `ImagePullBackOff`,
 *     `ErrImageNeverPull`, `InvalidImageName`, `RegistryUnavailable`, `SignatureValidationFailed`) is
 *     `ImagePrePullFailed`; a container that cannot start or fails (`CrashLoopBackOff`, `CreateContainerError`,
 *     `CreateContainerConfigError`, `RunContainerError`, or terminated with a non-zero exit code) is
 *     `ImagePrePullContainerFailed` (e.g. an image for another CPU architecture). Each has a key (pod uid,
 *     container, reason) so that the controller reports it once.
 *  4. The message: the first problem (and how many more), else the apply problems the controller met, else the
 *     plan's notes, else, when not every node is ready, how far the pulls are; nothing when every node is ready.
 *  5. A planned DaemonSet needs applying when it does not exist, carries another spec hash, or its pod template's
 *     containers (names and images, init containers included) differ from the plan: someone edited it.
 */
import type { ImagePrePullStatus } from "../api/v1/index.ts";
import { prePullKeys } from "../api/v1/index.ts";
import { HELPER_CONTAINER, normalizeImage, PAUSE_CONTAINER, type PlannedDaemonSet, type PrePullPlan } from "./plan.ts";

/** A pre-pull DaemonSet as observed (the fields read here). */
export interface ObservedDaemonSet {
  metadata: { name: string; uid?: string; annotations?: Record<string, string> };
  spec?: {
    template?: {
      spec?: { initContainers?: { name: string; image?: string }[]; containers?: { name: string; image?: string }[] };
    };
  };
  status?: { desiredNumberScheduled?: number; numberReady?: number };
}

type ContainerList = { name: string; image?: string }[] | undefined;
const containerImages = (spec: { initContainers?: ContainerList; containers?: ContainerList } | undefined) =>
  JSON.stringify([...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].map((c) => [c.name, c.image]));

/** Whether the controller must apply a planned DaemonSet over what it observes (rule 5). */
export function needsApply(planned: PlannedDaemonSet, observed: ObservedDaemonSet | undefined): boolean {
  if (!observed) return true;
  if (observed.metadata.annotations?.[prePullKeys.specHash] !== planned.specHash) return true;
  const want = planned.object.spec.template.spec as { initContainers?: ContainerList; containers?: ContainerList };
  return containerImages(observed.spec?.template?.spec) !== containerImages(want);
}

interface ContainerStatusLike {
  name: string;
  state?: {
    waiting?: { reason?: string; message?: string };
    terminated?: { exitCode?: number; reason?: string; message?: string };
  };
  lastState?: { terminated?: { exitCode?: number; reason?: string; message?: string } };
}

/** A pre-pull pod as observed (the fields read here). */
export interface ObservedPrePullPod {
  metadata: { name: string; uid?: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec?: { nodeName?: string; initContainers?: { name: string; image?: string }[] };
  status?: {
    conditions?: { type: string; status: string }[];
    initContainerStatuses?: ContainerStatusLike[];
    containerStatuses?: ContainerStatusLike[];
  };
}

export type PrePullProblemReason = "ImagePrePullFailed" | "ImagePrePullContainerFailed";

export interface PrePullProblem {
  /** Stable while the problem lasts: pod uid, container, waiting reason. */
  key: string;
  reason: PrePullProblemReason;
  pod: string;
  node: string | undefined;
  container: string;
  image: string | undefined;
  message: string;
}

export interface PrePullObservation {
  status: ImagePrePullStatus;
  problems: PrePullProblem[];
  /** Every planned DaemonSet exists and every node it runs on has pulled its images. */
  complete: boolean;
}

const PULL_ERRORS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "ErrImageNeverPull",
  "InvalidImageName",
  "RegistryUnavailable",
  "SignatureValidationFailed",
]);
const START_ERRORS = new Set([
  "CrashLoopBackOff",
  "CreateContainerError",
  "CreateContainerConfigError",
  "RunContainerError",
]);

function podProblems(pod: ObservedPrePullPod): PrePullProblem[] {
  const images = new Map((pod.spec?.initContainers ?? []).map((c) => [c.name, c.image]));
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  const out: PrePullProblem[] = [];
  for (const s of statuses) {
    const waiting = s.state?.waiting;
    const terminated = s.state?.terminated;
    const base = {
      pod: pod.metadata.name,
      node: pod.spec?.nodeName,
      container: s.name,
      image: images.get(s.name),
    };
    const key = (reason: string) => `${pod.metadata.uid ?? pod.metadata.name}/${s.name}/${reason}`;
    const what = s.name === HELPER_CONTAINER ? "the helper image" : s.name === PAUSE_CONTAINER ? "the pause image" : "";
    if (waiting?.reason && PULL_ERRORS.has(waiting.reason)) {
      out.push({
        ...base,
        key: key(waiting.reason === "ImagePullBackOff" ? "ErrImagePull" : waiting.reason),
        reason: "ImagePrePullFailed",
        message: `${what || `image ${base.image ?? "?"}`} cannot be pulled on node ${base.node ?? "?"} (${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""})`,
      });
    } else if (
      (waiting?.reason && START_ERRORS.has(waiting.reason)) ||
      (terminated?.exitCode !== undefined && terminated.exitCode !== 0)
    ) {
      const last = terminated ?? s.lastState?.terminated;
      const reason = waiting?.reason ?? terminated?.reason ?? "Error";
      const detail = [
        waiting?.reason,
        last?.exitCode !== undefined ? `exit code ${last.exitCode}` : undefined,
        waiting?.message ?? last?.message,
      ]
        .filter(Boolean)
        .join(", ");
      out.push({
        ...base,
        key: key("failed"),
        reason: "ImagePrePullContainerFailed",
        message: `pre-pull container ${s.name}${base.image ? ` (${base.image})` : ""} fails on node ${base.node ?? "?"} (${detail || reason})`,
      });
    }
  }
  return out;
}

const isReady = (pod: ObservedPrePullPod) =>
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/** Status and problems of a resource's pre-pull (see the rules above). */
export function observePrePull(input: {
  plan: PrePullPlan;
  daemonSets: readonly ObservedDaemonSet[];
  pods: readonly ObservedPrePullPod[];
  /** Writes that failed in this reconcile (messages), e.g. a DaemonSet refused by an admission policy. */
  applyProblems?: readonly string[];
}): PrePullObservation {
  const { plan } = input;
  let desired = 0;
  let ready = 0;
  let allExist = true;
  const problems: PrePullProblem[] = [];
  for (const planned of plan.daemonSets) {
    const ds = input.daemonSets.find((d) => d.metadata.name === planned.name);
    if (!ds) allExist = false;
    desired += ds?.status?.desiredNumberScheduled ?? 0;
    const pods = input.pods.filter(
      (p) => p.metadata.labels?.[prePullKeys.selector] === planned.selector && !p.metadata.deletionTimestamp,
    );
    for (const pod of pods) {
      problems.push(...podProblems(pod));
      const pulled = new Set(
        (pod.spec?.initContainers ?? []).flatMap((c) =>
          c.name === HELPER_CONTAINER || !c.image ? [] : [normalizeImage(c.image)],
        ),
      );
      if (isReady(pod) && planned.images.every((i) => pulled.has(i))) ready++;
    }
  }
  ready = Math.min(ready, desired);
  const status: ImagePrePullStatus = {
    desiredNodes: desired,
    readyNodes: ready,
    images: plan.images.length,
    daemonSets: plan.daemonSets.map((d) => d.name),
  };
  const applyProblems = input.applyProblems ?? [];
  const complete = allExist && ready === desired && applyProblems.length === 0;
  const first = problems[0];
  if (first) {
    status.message = problems.length > 1 ? `${first.message}; ${problems.length - 1} more problem(s)` : first.message;
  } else if (applyProblems.length > 0) {
    status.message = applyProblems.join("; ");
  } else if (plan.notes.length > 0) {
    status.message = plan.notes.join("; ");
  } else if (!allExist) {
    status.message = "creating the pre-pull DaemonSets";
  } else if (ready < desired) {
    status.message = `pulling: images present on ${ready} of ${desired} nodes`;
  }
  return { status, problems, complete };
}
