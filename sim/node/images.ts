/**
 * Container images on the virtual node, the way the kubelet and its container runtime treat them: an image is
 * pulled before its container starts, which takes time (configurable per image); once pulled it stays on that
 * node, and the container's `imagePullPolicy` decides whether the kubelet pulls again:
 *
 * - `IfNotPresent`: a present image is used as it is; an absent one is pulled.
 * - `Never`: a present image is used; an absent one is `ErrImageNeverPull` (retried, never pulled).
 * - `Always`: the kubelet asks the registry for the image's digest every time; when the node has that digest (the
 *   image did not change in the registry, which the simulation always assumes), nothing is downloaded. That check
 *   is modelled as a short pull (`checkMs`); an absent image is pulled in full.
 *
 * Pulls on one node run one at a time, as with the kubelet's default `serializeImagePulls: true`; containers
 * that need an image already being pulled wait for that pull instead of starting another (the runtime shares it).
 * The node reports its images in `status.images` like a kubelet (digest and tag names, size, largest first, at
 * most 50). Images are never garbage-collected, and the cache lasts as long as the VirtualNode object.
 */
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

export type PullPolicy = "Always" | "IfNotPresent" | "Never";

export interface ImagePullOptions {
  /**
   * Pull time in milliseconds by image reference. A key with a tag or digest matches that reference; a key without
   * either matches every tag of the repository. References are compared normalized (`ubuntu` is
   * `docker.io/library/ubuntu:latest`).
   */
  pullMs?: Record<string, number>;
  /** Pull time of images not in `pullMs`; default 0 (pulls are instant). */
  defaultPullMs?: number;
  /**
   * `imagePullPolicy: Always` with the image present: the registry check's time. Default: the image's pull time,
   * at most 200 ms (a manifest request, not a download).
   */
  checkMs?: number;
  /** Images on the node before any pod asks for them (as if pre-pulled into the node's image). */
  preloaded?: string[];
  /** One pull at a time on the node (the kubelet's serializeImagePulls); default true. */
  serialize?: boolean;
  /** Waits out a pull or check of `ms` (default: a timer); tests hold pulls with it. */
  delay?: (ms: number, image: string) => Promise<void>;
}

/** The most images the kubelet lists in `status.images` (its --node-status-max-images default). */
export const MAX_NODE_STATUS_IMAGES = 50;
const MAX_CHECK_MS = 200;

export interface ImageRef {
  /** Registry and path, e.g. `docker.io/library/ubuntu`. */
  repository: string;
  tag?: string;
  digest?: string;
}

/**
 * Parses an image reference the way container runtimes resolve it: no registry means Docker Hub, a single path
 * component on Docker Hub lives in `library/`. The tag is left out when the reference has none.
 */
export function parseImageRef(ref: string): ImageRef {
  let rest = ref.trim();
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split("/");
  const first = parts[0] ?? "";
  const hasRegistry = parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost");
  let repository = rest;
  if (!hasRegistry) repository = parts.length === 1 ? `docker.io/library/${rest}` : `docker.io/${rest}`;
  else if (first === "index.docker.io") repository = `docker.io/${parts.slice(1).join("/")}`;
  if (repository.startsWith("docker.io/") && repository.split("/").length === 2) {
    repository = `docker.io/library/${repository.slice("docker.io/".length)}`;
  }
  return { repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The normalized reference the node caches an image under: `repository:tag`, `repository@digest` or both. */
export function normalizeImage(ref: string): string {
  const r = parseImageRef(ref);
  if (r.digest) return `${r.repository}${r.tag ? `:${r.tag}` : ""}@${r.digest}`;
  return `${r.repository}:${r.tag ?? "latest"}`;
}

/** The API server's default pull policy: Always for `:latest` or no tag (without a digest), else IfNotPresent. */
export function defaultPullPolicy(ref: string): PullPolicy {
  const r = parseImageRef(ref);
  if (r.tag === "latest" || (r.tag === undefined && r.digest === undefined)) return "Always";
  return "IfNotPresent";
}

/**
 * What the kubelet does before starting a container: `pull` the image, `check` it with the registry (Always, image
 * present), use it as `present`, or refuse (`never`: policy Never, image absent).
 */
export type PullAction = "pull" | "check" | "present" | "never";

export function pullAction(policy: PullPolicy, present: boolean): PullAction {
  if (policy === "Always") return present ? "check" : "pull";
  if (present) return "present";
  return policy === "Never" ? "never" : "pull";
}

/** The configured pull time of an image (see ImagePullOptions.pullMs). */
export function pullDuration(ref: string, options: ImagePullOptions): number {
  const image = normalizeImage(ref);
  const repository = parseImageRef(ref).repository;
  let byRepository: number | undefined;
  for (const [key, ms] of Object.entries(options.pullMs ?? {})) {
    const k = parseImageRef(key);
    if (k.tag === undefined && k.digest === undefined) {
      if (k.repository === repository) byRepository = ms;
    } else if (normalizeImage(key) === image) {
      return ms;
    }
  }
  return byRepository ?? options.defaultPullMs ?? 0;
}

/** How long `action` keeps the container waiting. */
export function actionDuration(action: PullAction, ref: string, options: ImagePullOptions): number {
  if (action === "pull") return pullDuration(ref, options);
  if (action === "check") return options.checkMs ?? Math.min(MAX_CHECK_MS, pullDuration(ref, options));
  return 0;
}

/** A stable made-up digest of an image (the simulation has no registry). */
export function imageDigest(ref: string): string {
  const r = parseImageRef(ref);
  if (r.digest) return r.digest;
  return `sha256:${createHash("sha256").update(normalizeImage(ref)).digest("hex")}`;
}

/** The image ID a container status shows: `repository@digest`. */
export function imageID(ref: string): string {
  return `${parseImageRef(ref).repository}@${imageDigest(ref)}`;
}

/** A stable made-up size between 5 MiB and 1 GiB, derived from the reference. */
export function imageSizeBytes(ref: string): number {
  const hash = createHash("sha256").update(normalizeImage(ref)).digest();
  const mib = 5 + (hash.readUInt32BE(0) % 1019);
  return mib * 1024 * 1024;
}

export interface NodeImage {
  names: string[];
  sizeBytes: number;
}

/** `status.images` of a node holding `refs`: names by digest and by tag, largest first, at most 50. */
export function nodeStatusImages(refs: Iterable<string>): NodeImage[] {
  const byID = new Map<string, NodeImage>();
  for (const ref of refs) {
    const id = imageID(ref);
    const entry = byID.get(id) ?? { names: [id], sizeBytes: imageSizeBytes(ref) };
    const r = parseImageRef(ref);
    if (r.tag !== undefined || r.digest === undefined) {
      const tagged = `${r.repository}:${r.tag ?? "latest"}`;
      if (!entry.names.includes(tagged)) entry.names.push(tagged);
    }
    byID.set(id, entry);
  }
  return [...byID.values()]
    .sort((a, b) => b.sizeBytes - a.sizeBytes || (a.names[0] ?? "").localeCompare(b.names[0] ?? ""))
    .slice(0, MAX_NODE_STATUS_IMAGES);
}

/**
 * Parses the `--image-pull-ms` values of `sim:up`: `MS` sets the default pull time, `IMAGE=MS` one image's (or,
 * without a tag, one repository's). Throws on anything else.
 */
export function parseImagePullFlags(values: readonly string[], checkMs?: string): ImagePullOptions {
  const ms = (text: string, what: string) => {
    if (!/^\d+$/.test(text.trim())) throw new Error(`${what}: expected milliseconds (a whole number), got "${text}"`);
    return Number(text.trim());
  };
  const options: ImagePullOptions = {};
  for (const value of values) {
    const eq = value.lastIndexOf("=");
    if (eq < 0) {
      options.defaultPullMs = ms(value, "--image-pull-ms");
      continue;
    }
    const image = value.slice(0, eq).trim();
    if (!image) throw new Error(`--image-pull-ms ${value}: no image before "="`);
    options.pullMs = { ...options.pullMs, [image]: ms(value.slice(eq + 1), `--image-pull-ms ${image}`) };
  }
  if (checkMs !== undefined) options.checkMs = ms(checkMs, "--image-check-ms");
  return options;
}

/** One image decision of the node, in the order they were made. */
export interface PullRecord {
  namespace: string;
  pod: string;
  container: string;
  image: string;
  policy: PullPolicy;
  action: PullAction;
  /** The time the action kept the container waiting, as configured (not measured). */
  durationMs: number;
  /** The kubelet's event message for it. */
  message: string;
}

export interface EnsureRequest {
  namespace: string;
  pod: string;
  container: string;
  image: string;
  policy: PullPolicy;
  /** Aborted when the pod stops: the caller no longer waits (the pull itself goes on and fills the cache). */
  signal: AbortSignal;
}

export type EnsureResult =
  | { ok: true; action: PullAction }
  | { ok: false; action: "never"; reason: "ErrImageNeverPull"; message: string }
  | { ok: false; action: PullAction; reason: "Aborted" };

const seconds = (ms: number) => `${(ms / 1000).toFixed(3).replace(/\.?0+$/, "")}s`;

/** The images of one node: what is present, the pulls under way, and the record of every decision. */
export class ImageStore {
  readonly #options: ImagePullOptions;
  readonly #onChange: () => void;
  readonly #present = new Set<string>();
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #records: PullRecord[] = [];
  #queue: Promise<void> = Promise.resolve();
  /** How many records are kept (the oldest go first): a container stuck in ErrImageNeverPull adds one per retry. */
  static readonly MAX_RECORDS = 1000;

  constructor(options: ImagePullOptions = {}, onChange: () => void = () => {}) {
    this.#options = options;
    this.#onChange = onChange;
    for (const ref of options.preloaded ?? []) this.#present.add(normalizeImage(ref));
  }

  has(ref: string): boolean {
    return this.#present.has(normalizeImage(ref));
  }

  /** What starting a container of this image with this policy takes now. */
  actionFor(ref: string, policy: PullPolicy): PullAction {
    return pullAction(policy, this.has(ref));
  }

  /** The normalized references present on the node. */
  images(): string[] {
    return [...this.#present];
  }

  statusImages(): NodeImage[] {
    return nodeStatusImages(this.#present);
  }

  records(): PullRecord[] {
    return [...this.#records];
  }

  /**
   * Makes the image available for a container start as the policy says, waiting for the pull or check. Call only
   * for images the registry has (the caller decides pull failures).
   */
  async ensure(request: EnsureRequest): Promise<EnsureResult> {
    const action = pullAction(request.policy, this.has(request.image));
    const durationMs = actionDuration(action, request.image, this.#options);
    const record = (message: string) => {
      if (this.#records.length >= ImageStore.MAX_RECORDS) this.#records.shift();
      this.#records.push({
        namespace: request.namespace,
        pod: request.pod,
        container: request.container,
        image: request.image,
        policy: request.policy,
        action,
        durationMs,
        message,
      });
    };
    if (action === "never") {
      const message = `Container image "${request.image}" is not present with pull policy of Never`;
      record(message);
      return { ok: false, action, reason: "ErrImageNeverPull", message };
    }
    if (action === "present") {
      record(`Container image "${request.image}" already present on machine`);
      return { ok: true, action };
    }
    const pulled = this.#pull(request.image, durationMs);
    const aborted = new Promise<"aborted">((resolve) => {
      if (request.signal.aborted) resolve("aborted");
      else request.signal.addEventListener("abort", () => resolve("aborted"), { once: true });
    });
    if ((await Promise.race([pulled, aborted])) === "aborted") return { ok: false, action, reason: "Aborted" };
    record(
      `Successfully pulled image "${request.image}" in ${seconds(durationMs)}. ` +
        `Image size: ${imageSizeBytes(request.image)} bytes.`,
    );
    return { ok: true, action };
  }

  /** Pulls (or checks) an image once per concurrent demand, one pull at a time when serialized. */
  #pull(ref: string, durationMs: number): Promise<void> {
    const image = normalizeImage(ref);
    const running = this.#inFlight.get(image);
    if (running) return running;
    const delay = this.#options.delay ?? ((ms: number) => (ms > 0 ? sleep(ms) : Promise.resolve()));
    const work = async () => {
      await delay(durationMs, image);
      const added = !this.#present.has(image);
      this.#present.add(image);
      if (added) this.#onChange();
    };
    let pull: Promise<void>;
    if (this.#options.serialize ?? true) {
      pull = this.#queue.then(work);
      this.#queue = pull.catch(() => {});
    } else {
      pull = work();
    }
    const tracked = pull.finally(() => this.#inFlight.delete(image));
    this.#inFlight.set(image, tracked);
    return tracked;
  }
}
