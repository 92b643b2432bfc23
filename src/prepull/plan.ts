/**
 * Image pre-pull, the plan (pure): the DaemonSets that keep a resource's images on the nodes its agent pods can land
 * on. No I/O, no clock; the controller (src/controller/prepull.ts) applies what this returns.
 *
 * Rules (the table test names them by number):
 *  1. Opt-in: without `spec.imagePrePull.enabled` there is no DaemonSet (the controller deletes those that exist).
 *  2. A template's images: its first container (the agent) first, then its other containers, then its init
 *     containers (native sidecars included), in the template's order.
 *  3. An image whose every use in a placement has `imagePullPolicy: Never` is left out: the kubelet never pulls it
 *     for an agent pod either (the cluster provides it some other way).
 *  4. Placement: templates whose pods can land on the same nodes share one DaemonSet; different placements get one
 *     DaemonSet each, so an image goes only to the nodes of the templates that use it (a union in one DaemonSet
 *     would pull every image on every node of every template, and cannot express pod-level constraints at all).
 *     The placement is: `nodeSelector` (`spec.nodeName` counts as the `kubernetes.io/hostname` label), the required
 *     node affinity, the tolerations (as a set), `runtimeClassName` (the runtime that pulls), and the service
 *     account (whose imagePullSecrets the kubelet uses). Preferred node affinity, pod (anti-)affinity and topology
 *     spread depend on other pods or only rank nodes: images go to every node the template admits.
 *  5. Templates for Windows nodes (`spec.os.name: windows`, or the `kubernetes.io/os: windows` node selector) are
 *     skipped with a note: the pre-pull pod's helper and pause images are Linux images.
 *  6. Every DaemonSet's pods select `kubernetes.io/os: linux` unless the template's selector names the OS.
 *  7. `extraImages` go to every DaemonSet, after the templates' images.
 *  8. Images are compared normalized (`ubuntu` = `docker.io/library/ubuntu:latest`): one pull container per image,
 *     with the first spelling met.
 *  9. `imagePullSecrets`: the union, by name, of those of the placement's templates.
 * 10. The pod: an init container copies the helper image's statically linked `true` into an emptyDir; then one init
 *     container per image runs that copy (`/azp-prepull/true`, so images without a shell or a `true` work too)
 *     with `imagePullPolicy: IfNotPresent`; then a pause container keeps the pod, and so the images, in use at no
 *     cost. Init containers run one after the other, which is also how the kubelet pulls (serialized by default).
 *     Every container has tiny requests and limits and the restricted Pod Security Standard (uid 65534, no
 *     privilege escalation, no capabilities, read-only root, RuntimeDefault seccomp); no service account token,
 *     no service links.
 * 11. Names: `<resource>-prepull-<8 hex of the placement>`, stable while the placement stays, so a changed image
 *     updates the same DaemonSet (a rolling update). The selector label is a hash of the resource's uid and the
 *     placement, so two resources with the same placement in one namespace never share pods. The DaemonSet has the
 *     managed-by and resource labels and a controller owner reference: it is deleted with the resource. Its pods
 *     have neither label (what selects a resource's agent pods must not find them), only the selector label.
 * 12. Rolling updates replace at most 25% of a DaemonSet's pods at once (at least one): a changed image reaches the
 *     nodes a quarter at a time, which bounds the load on the registry.
 * 13. The spec-hash annotation is a hash of the DaemonSet as planned: the controller writes only when the observed
 *     DaemonSet carries another one.
 */
import { createHash } from "node:crypto";
import {
  type AutoScaledAgent,
  type Container,
  controllerOwnerReference,
  labels,
  MANAGED_BY_VALUE,
  prePullKeys,
} from "../api/v1/index.ts";
import { labelValue } from "../pods/build.ts";
import { compareStrings } from "../runtime/compare.ts";

/** Images of the pre-pull pod itself (operator flags; mirrored registries set their own). */
export interface PrePullImages {
  /** Keeps the pod running once the images are pulled. */
  pauseImage: string;
  /** Provides a statically linked `/bin/true` (busybox). */
  helperImage: string;
}

export const DEFAULT_PREPULL_IMAGES: PrePullImages = {
  pauseImage: "registry.k8s.io/pause:3.10",
  helperImage: "docker.io/library/busybox:1.37.0-musl",
};

/** Where the helper's `true` is copied, in every pre-pull container. */
export const TOOLS_DIR = "/azp-prepull";
const TOOLS_VOLUME = "azp-prepull";
export const HELPER_CONTAINER = "prepull-tools";
export const PAUSE_CONTAINER = "pause";
/** The uid and gid of the pre-pull pod's containers ("nobody"). */
export const PREPULL_UID = 65534;
/** The part of the DaemonSet name after the resource's name. */
const NAME_INFIX = "-prepull-";
/** Room for the resource name in a DaemonSet name (253), leaving room for pod and revision suffixes. */
const MAX_BASE_LENGTH = 200;
const HOSTNAME_LABEL = "kubernetes.io/hostname";
const OS_LABEL = "kubernetes.io/os";

/** The resource as the plan reads it (a validated, defaulted AutoScaledAgent with its identity). */
export type PrePullResource = Pick<AutoScaledAgent, "spec"> & {
  metadata: { name: string; namespace: string; uid: string };
};

export interface DaemonSetObject {
  apiVersion: "apps/v1";
  kind: "DaemonSet";
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences: ReturnType<typeof controllerOwnerReference>[];
  };
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> };
    updateStrategy: { type: "RollingUpdate"; rollingUpdate: { maxUnavailable: string } };
    revisionHistoryLimit: number;
  };
}

/** One planned DaemonSet: the object to apply, and what observing it needs. */
export interface PlannedDaemonSet {
  name: string;
  /** Value of the `prePullKeys.selector` label of its pods. */
  selector: string;
  /** Normalized references of the images its pods pull, in pull order. */
  images: string[];
  /** Indexes in spec.podsWithCapabilities of the templates it serves. */
  templateIndexes: number[];
  /** Value of the spec-hash annotation. */
  specHash: string;
  object: DaemonSetObject;
}

export interface PrePullPlan {
  enabled: boolean;
  daemonSets: PlannedDaemonSet[];
  /** Normalized references of every image pre-pulled (over all DaemonSets). */
  images: string[];
  /** Templates left out and why (rule 5). */
  notes: string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Image references

/**
 * A Docker image reference in its normalized form (as the kubelet and container runtimes compare them): registry
 * `docker.io` when none is given, `library/` for a single-component Docker Hub name, tag `latest` when neither a
 * tag nor a digest is given. References that cannot be parsed come back unchanged.
 */
export function normalizeImage(reference: string): string {
  const ref = reference.trim();
  if (ref === "") return ref;
  const at = ref.indexOf("@");
  const digest = at >= 0 ? ref.slice(at) : "";
  let name = at >= 0 ? ref.slice(0, at) : ref;
  let tag = "";
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) {
    tag = name.slice(colon);
    name = name.slice(0, colon);
  }
  const slash = name.indexOf("/");
  const first = slash >= 0 ? name.slice(0, slash) : "";
  const hasDomain = slash >= 0 && (first.includes(".") || first.includes(":") || first === "localhost");
  let domain = hasDomain ? first : "docker.io";
  let path = hasDomain ? name.slice(slash + 1) : name;
  if (domain === "index.docker.io") domain = "docker.io";
  if (domain === "docker.io" && !path.includes("/")) path = `library/${path}`;
  if (tag === "" && digest === "") tag = ":latest";
  return `${domain}/${path}${tag}${digest}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Placement

/** JSON with object keys sorted, so equal values give equal texts whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => compareStrings(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

const sha256Hex = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

/** What decides the nodes a template's pods can land on, and how their images are pulled (rule 4). */
export interface Placement {
  nodeSelector: Record<string, string>;
  /** `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`, when set. */
  requiredNodeAffinity?: unknown;
  /** Sorted by their canonical JSON (a set). */
  tolerations: unknown[];
  runtimeClassName?: string;
  serviceAccountName?: string;
}

type PodSpecLike = Record<string, unknown> & {
  containers?: Container[];
  initContainers?: Container[];
  nodeSelector?: Record<string, string>;
  nodeName?: string;
  affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: unknown } };
  tolerations?: unknown[];
  runtimeClassName?: string;
  serviceAccountName?: string;
  serviceAccount?: string;
  imagePullSecrets?: { name?: string }[];
  os?: { name?: string };
};

export function placementOf(spec: PodSpecLike): Placement {
  const nodeSelector: Record<string, string> = { ...(spec.nodeSelector ?? {}) };
  if (spec.nodeName && nodeSelector[HOSTNAME_LABEL] === undefined) nodeSelector[HOSTNAME_LABEL] = spec.nodeName;
  if (nodeSelector[OS_LABEL] === undefined) nodeSelector[OS_LABEL] = "linux";
  const placement: Placement = {
    nodeSelector,
    tolerations: [...(spec.tolerations ?? [])].sort((a, b) => compareStrings(canonicalJson(a), canonicalJson(b))),
  };
  const required = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (required !== undefined) placement.requiredNodeAffinity = required;
  if (spec.runtimeClassName) placement.runtimeClassName = spec.runtimeClassName;
  const serviceAccount = spec.serviceAccountName || spec.serviceAccount;
  if (serviceAccount) placement.serviceAccountName = serviceAccount;
  return placement;
}

function isWindows(spec: PodSpecLike): boolean {
  return spec.os?.name?.toLowerCase() === "windows" || spec.nodeSelector?.[OS_LABEL]?.toLowerCase() === "windows";
}

// ---------------------------------------------------------------------------------------------------------------
// The plan

interface Group {
  key: string;
  placement: Placement;
  templateIndexes: number[];
  /** Normalized image -> first spelling and whether any use may pull it. */
  images: Map<string, { spelling: string; pullable: boolean }>;
  pullSecrets: string[];
}

function templateImages(spec: PodSpecLike): { image: string; never: boolean }[] {
  const containers = spec.containers ?? [];
  const all = [...containers, ...(spec.initContainers ?? [])];
  return all
    .filter((c) => typeof c.image === "string" && c.image.trim() !== "")
    .map((c) => ({ image: (c.image as string).trim(), never: c.imagePullPolicy === "Never" }));
}

/** A DNS label for a pull container: `pull-<i>-<last path component of the image>`. */
function pullContainerName(index: number, image: string): string {
  const path = image.split("@")[0] ?? image;
  const last = path.slice(path.lastIndexOf("/") + 1).split(":")[0] ?? "";
  const prefix = `pull-${index}`;
  const slug = last
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .slice(0, 63 - prefix.length - 1)
    .replace(/^-+|-+$/g, "");
  return slug ? `${prefix}-${slug}` : prefix;
}

const tinyResources = () => ({
  requests: { cpu: "1m", memory: "8Mi" },
  limits: { cpu: "100m", memory: "32Mi" },
});

const restrictedContainer = () => ({
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ["ALL"] },
});

function daemonSetName(resourceName: string, placementHash: string): string {
  const base = resourceName.slice(0, MAX_BASE_LENGTH).replace(/[-.]+$/, "");
  return `${base}${NAME_INFIX}${placementHash}`;
}

function buildDaemonSet(
  resource: PrePullResource,
  group: Group,
  images: { normalized: string; spelling: string }[],
  prePullImages: PrePullImages,
): PlannedDaemonSet {
  const placementHash = sha256Hex(group.key).slice(0, 8);
  const name = daemonSetName(resource.metadata.name, placementHash);
  const selector = sha256Hex(`${resource.metadata.uid}\n${group.key}`).slice(0, 16);
  // Not the managed-by and resource labels of agent pods: what selects agent pods must not get these.
  const podLabels = {
    "app.kubernetes.io/name": MANAGED_BY_VALUE,
    "app.kubernetes.io/component": "image-prepull",
    [prePullKeys.selector]: selector,
  };
  const mount = (readOnly: boolean) => [{ name: TOOLS_VOLUME, mountPath: TOOLS_DIR, readOnly }];
  const helper = {
    name: HELPER_CONTAINER,
    image: prePullImages.helperImage,
    imagePullPolicy: "IfNotPresent",
    command: ["cp", "/bin/true", `${TOOLS_DIR}/true`],
    volumeMounts: mount(false),
    resources: tinyResources(),
    securityContext: restrictedContainer(),
  };
  const pulls = images.map((img, i) => ({
    name: pullContainerName(i, img.spelling),
    image: img.spelling,
    imagePullPolicy: "IfNotPresent",
    command: [`${TOOLS_DIR}/true`],
    volumeMounts: mount(true),
    resources: tinyResources(),
    securityContext: restrictedContainer(),
  }));
  const pause = {
    name: PAUSE_CONTAINER,
    image: prePullImages.pauseImage,
    imagePullPolicy: "IfNotPresent",
    resources: tinyResources(),
    securityContext: restrictedContainer(),
  };
  const { placement } = group;
  const podSpec: Record<string, unknown> = {
    initContainers: [helper, ...pulls],
    containers: [pause],
    volumes: [{ name: TOOLS_VOLUME, emptyDir: { sizeLimit: "16Mi" } }],
    nodeSelector: placement.nodeSelector,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: 5,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: PREPULL_UID,
      runAsGroup: PREPULL_UID,
      seccompProfile: { type: "RuntimeDefault" },
    },
  };
  if (placement.requiredNodeAffinity !== undefined)
    podSpec.affinity = {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: placement.requiredNodeAffinity },
    };
  if (placement.tolerations.length > 0) podSpec.tolerations = placement.tolerations;
  if (placement.runtimeClassName) podSpec.runtimeClassName = placement.runtimeClassName;
  if (placement.serviceAccountName) podSpec.serviceAccountName = placement.serviceAccountName;
  if (group.pullSecrets.length > 0) podSpec.imagePullSecrets = group.pullSecrets.map((n) => ({ name: n }));

  const spec: DaemonSetObject["spec"] = {
    selector: { matchLabels: { [prePullKeys.selector]: selector } },
    template: { metadata: { labels: podLabels }, spec: podSpec },
    updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%" } },
    revisionHistoryLimit: 3,
  };
  const dsLabels = {
    [labels.managedBy]: MANAGED_BY_VALUE,
    "app.kubernetes.io/component": "image-prepull",
    [labels.resource]: labelValue(resource.metadata.name),
    [prePullKeys.selector]: selector,
  };
  const templates = group.templateIndexes.join(",");
  const specHash = sha256Hex(canonicalJson({ labels: dsLabels, templates, spec })).slice(0, 16);
  const object: DaemonSetObject = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: {
      name,
      namespace: resource.metadata.namespace,
      labels: dsLabels,
      annotations: { [prePullKeys.specHash]: specHash, [prePullKeys.templates]: templates },
      ownerReferences: [controllerOwnerReference(resource)],
    },
    spec,
  };
  return {
    name,
    selector,
    images: images.map((i) => i.normalized),
    templateIndexes: group.templateIndexes,
    specHash,
    object,
  };
}

/** The DaemonSets a resource wants (see the rules above). */
export function planPrePull(
  resource: PrePullResource,
  prePullImages: PrePullImages = DEFAULT_PREPULL_IMAGES,
): PrePullPlan {
  const options = resource.spec.imagePrePull;
  if (options?.enabled !== true) return { enabled: false, daemonSets: [], images: [], notes: [] };
  const groups = new Map<string, Group>();
  const notes: string[] = [];
  resource.spec.podsWithCapabilities.forEach((template, index) => {
    const spec = (template.podTemplateSpec?.spec ?? {}) as PodSpecLike;
    if (isWindows(spec)) {
      notes.push(`template ${index} is for Windows nodes: its images are not pre-pulled`);
      return;
    }
    const placement = placementOf(spec);
    const key = canonicalJson(placement);
    let group = groups.get(key);
    if (!group) {
      group = { key, placement, templateIndexes: [], images: new Map(), pullSecrets: [] };
      groups.set(key, group);
    }
    group.templateIndexes.push(index);
    for (const { image, never } of templateImages(spec)) {
      const normalized = normalizeImage(image);
      const seen = group.images.get(normalized);
      if (seen) seen.pullable ||= !never;
      else group.images.set(normalized, { spelling: image, pullable: !never });
    }
    for (const secret of spec.imagePullSecrets ?? [])
      if (secret?.name && !group.pullSecrets.includes(secret.name)) group.pullSecrets.push(secret.name);
  });
  const daemonSets: PlannedDaemonSet[] = [];
  const all = new Set<string>();
  for (const group of groups.values()) {
    for (const extra of options.extraImages ?? []) {
      const normalized = normalizeImage(extra);
      const seen = group.images.get(normalized);
      if (seen) seen.pullable = true;
      else group.images.set(normalized, { spelling: extra.trim(), pullable: true });
    }
    const images = [...group.images]
      .filter(([, v]) => v.pullable)
      .map(([normalized, v]) => ({ normalized, spelling: v.spelling }));
    if (images.length === 0) continue;
    for (const i of images) all.add(i.normalized);
    daemonSets.push(buildDaemonSet(resource, group, images, prePullImages));
  }
  return { enabled: true, daemonSets, images: [...all], notes };
}
