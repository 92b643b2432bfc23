/**
 * The image pre-pull controller (I/O): a reconcile loop of its own, beside the main reconciler, with its own work
 * queue of resource keys. For each AutoScaledAgent it applies the DaemonSets `planPrePull` wants (server-side
 * apply, only when `needsApply`: missing, another spec hash, or edited containers), deletes the resource's other pre-pull DaemonSets, writes
 * `status.imagePrePull` from `observePrePull`, and records events. The decisions are pure (src/prepull); this file
 * only reads caches and writes.
 *
 * Triggers: any change of a resource; any change of one of its pre-pull DaemonSets (their status included); any
 * change of a pre-pull pod (through its DaemonSet). Also every `resyncIntervalMs`. Only the leader runs the loop.
 *
 * The DaemonSet and pod informers are the operator's to start and stop, but nothing else waits for them: until they
 * have synced (forever, when RBAC on DaemonSets is missing) reconciles only come back later, and scaling goes on.
 *
 * With `enabled: false` (the operator's `--image-prepull` is off, and so the RBAC for DaemonSets may be missing)
 * there are no DaemonSet or pod informers: a resource that asks for pre-pull gets a status message and one warning
 * event saying so, nothing else.
 *
 * Events on the resource: `ImagePrePullCreated`, `ImagePrePullUpdated`, `ImagePrePullRemoved` (a DaemonSet written
 * or deleted), `ImagesPrePulled` (every node of every DaemonSet has the current images, once per change),
 * `ImagePrePullFailed` / `ImagePrePullContainerFailed` (once per problem, see src/prepull/observe.ts),
 * `ImagePrePullApplyFailed` (a DaemonSet write refused; retried with backoff), `ImagePrePullDisabled` (once per
 * resource and process).
 */
import {
  type AutoScaledAgent,
  type ImagePrePullStatus,
  KIND,
  labels,
  MANAGED_BY_VALUE,
  prePullKeys,
  resourcePath,
  resourceRef,
} from "../api/v1/index.ts";
import { isNotFound, type KubeClient } from "../kube/client.ts";
import { controllerOwnerKeys, Informer, withoutManagedFields } from "../kube/informer.ts";
import { listWatchFor } from "../kube/listwatch.ts";
import { apply, patchStatus } from "../kube/patch.ts";
import { resourcePath as kubePath } from "../kube/resource.ts";
import type { KubeObject } from "../kube/types.ts";
import type { ProcessResult } from "../kube/workqueue.ts";
import { WorkQueue } from "../kube/workqueue.ts";
import type { StructuredLogger } from "../observability/logger.ts";
import { needsApply, type ObservedDaemonSet, type ObservedPrePullPod, observePrePull } from "../prepull/observe.ts";
import { canonicalJson, type PrePullImages, planPrePull } from "../prepull/plan.ts";
import { errorMessage } from "../runtime/logger.ts";
import { validateCached } from "./observe.ts";
import type { EventsPort } from "./ports.ts";

export interface PrePullSettings extends PrePullImages {
  /** The operator may manage DaemonSets (`--image-prepull`). */
  enabled: boolean;
}

export interface PrePullDeps {
  client: KubeClient;
  logger: StructuredLogger;
  events: EventsPort;
  settings: PrePullSettings;
  /** Namespaces watched; `[""]` for all. */
  namespaces: string[];
  /** The operator's AutoScaledAgent informers (this controller adds its handlers to them). */
  resourceInformers: Informer<AutoScaledAgent & KubeObject>[];
  resyncIntervalMs: number;
  workers?: number;
}

type DaemonSet = ObservedDaemonSet & KubeObject & { metadata: { name: string; namespace?: string } };
type PrePullPod = ObservedPrePullPod & KubeObject;

const FIELD_MANAGER = `${MANAGED_BY_VALUE}/image-prepull`;
const DAEMONSETS = { apiVersion: "apps/v1", resource: "daemonsets" };
const ownerIndex = "owner";
const selectorIndex = "selector";
export const PREPULL_DISABLED_MESSAGE =
  "image pre-pull is off in the operator: start it with --image-prepull (Helm value imagePrePull.enabled)";

const ownerUids = (o: KubeObject) =>
  (o.metadata?.ownerReferences ?? []).filter((r) => r.kind === KIND).map((r) => r.uid);
const selectorOf = (o: KubeObject) => {
  const v = o.metadata?.labels?.[prePullKeys.selector];
  return v ? [v] : [];
};

export class PrePullController {
  /** Informers this controller added (DaemonSets and pre-pull pods; none when disabled). */
  readonly informers: Informer<KubeObject>[];
  readonly #deps: PrePullDeps;
  readonly #log: StructuredLogger;
  readonly #queue: WorkQueue;
  readonly #daemonSets: Informer<DaemonSet>[];
  readonly #pods: Informer<PrePullPod>[];
  /** Per resource key: problem keys already reported (a problem that goes away and comes back is reported again). */
  readonly #reported = new Map<string, Set<string>>();
  /** Per resource key: the spec hashes last announced as complete. */
  readonly #announced = new Map<string, string>();
  readonly #warnedDisabled = new Set<string>();
  #running: Promise<void> | undefined;

  constructor(deps: PrePullDeps) {
    this.#deps = deps;
    this.#log = deps.logger;
    this.#queue = new WorkQueue({ name: "image-prepull", logger: deps.logger.child({ component: "workqueue" }) });
    const informer = <T extends KubeObject>(
      resource: typeof DAEMONSETS,
      ns: string,
      labelSelector: string,
      index: Record<string, (o: T) => string[]>,
    ) =>
      new Informer<T>({
        name: `${resource.resource}-prepull${ns ? `-${ns}` : ""}`,
        listWatch: listWatchFor<T>(deps.client, { resource, namespace: ns, labelSelector }),
        logger: deps.logger.child({ informer: `${resource.resource}-prepull` }),
        transform: withoutManagedFields,
        indexers: index,
      });
    const enabled = deps.settings.enabled;
    this.#daemonSets = enabled
      ? deps.namespaces.map((ns) =>
          informer<DaemonSet>(DAEMONSETS, ns, `${labels.managedBy}=${MANAGED_BY_VALUE},${prePullKeys.selector}`, {
            [ownerIndex]: ownerUids,
            [selectorIndex]: selectorOf,
          }),
        )
      : [];
    this.#pods = enabled
      ? deps.namespaces.map((ns) =>
          informer<PrePullPod>({ apiVersion: "v1", resource: "pods" }, ns, prePullKeys.selector, {
            [selectorIndex]: selectorOf,
          }),
        )
      : [];
    this.informers = [...this.#daemonSets, ...this.#pods] as Informer<KubeObject>[];

    const add = (o: KubeObject) => this.#queue.add(`${o.metadata?.namespace}/${o.metadata?.name}`);
    for (const inf of deps.resourceInformers)
      inf.addHandler({ onAdd: add, onUpdate: (_old, o) => add(o), onDelete: add });
    const ownerKeys = controllerOwnerKeys(KIND);
    const fromDaemonSet = (ds: KubeObject) => {
      for (const key of ownerKeys(ds)) this.#queue.add(key);
    };
    for (const inf of this.#daemonSets)
      inf.addHandler({ onAdd: fromDaemonSet, onUpdate: (_old, o) => fromDaemonSet(o), onDelete: fromDaemonSet });
    const fromPod = (pod: KubeObject) => {
      for (const selector of selectorOf(pod))
        for (const ds of this.#daemonSets.flatMap((inf) => inf.store.byIndex(selectorIndex, selector)))
          if (ds.metadata.namespace === pod.metadata?.namespace) fromDaemonSet(ds);
    };
    for (const inf of this.#pods)
      inf.addHandler({ onAdd: fromPod, onUpdate: (_old, o) => fromPod(o), onDelete: fromPod });
  }

  /** Runs the loop (the leader only); every known resource is looked at once. */
  start(): void {
    this.#running ??= this.#queue.run((key, signal) => this.reconcile(key, signal), {
      workers: this.#deps.workers ?? 2,
    });
    for (const inf of this.#deps.resourceInformers)
      for (const o of inf.store.list()) this.#queue.add(`${o.metadata?.namespace}/${o.metadata?.name}`);
  }

  /** Stops the loop: running reconciles are aborted and awaited. */
  async stop(): Promise<void> {
    await this.#queue.shutdown({ drain: false });
    await this.#running;
  }

  async reconcile(key: string, signal?: AbortSignal): Promise<ProcessResult> {
    const obj = this.#deps.resourceInformers.map((inf) => inf.store.get(key)).find((o) => o !== undefined);
    if (!obj?.metadata?.name || !obj.metadata.namespace || !obj.metadata.uid) {
      // Deleted: its DaemonSets go with it (owner references).
      this.#reported.delete(key);
      this.#announced.delete(key);
      this.#warnedDisabled.delete(key);
      return undefined;
    }
    if (obj.metadata.deletionTimestamp) return undefined;
    const valid = validateCached(obj);
    if (!valid.ok) return undefined; // The main reconciler reports it; existing DaemonSets stay as they are.
    const { name, namespace, uid } = obj.metadata;
    const ref = resourceRef(obj);
    const plan = planPrePull({ spec: valid.value.spec, metadata: { name, namespace, uid } }, this.#deps.settings);

    if (!this.#deps.settings.enabled) {
      let status: ImagePrePullStatus | undefined;
      if (plan.enabled) {
        status = { desiredNodes: 0, readyNodes: 0, images: plan.images.length, message: PREPULL_DISABLED_MESSAGE };
        if (!this.#warnedDisabled.has(key)) {
          this.#warnedDisabled.add(key);
          this.#deps.events.warning(ref, "ImagePrePullDisabled", PREPULL_DISABLED_MESSAGE);
        }
      }
      await this.#writeStatus(obj, status, signal);
      return undefined;
    }

    if (![...this.#daemonSets, ...this.#pods].every((inf) => inf.hasSynced())) {
      return { requeueAfterMs: 2000 }; // The informers log why (e.g. list forbidden).
    }
    const owned = this.#daemonSets.flatMap((inf) => inf.store.byIndex(ownerIndex, uid));
    const applyProblems: string[] = [];
    for (const planned of plan.daemonSets) {
      if (signal?.aborted) return undefined;
      const current = owned.find((d) => d.metadata.name === planned.name);
      if (!needsApply(planned, current)) continue;
      try {
        await apply(this.#deps.client, kubePath(DAEMONSETS, { namespace, name: planned.name }), planned.object, {
          fieldManager: FIELD_MANAGER,
          force: true,
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        if (signal?.aborted) return undefined;
        // E.g. an admission policy refuses it, or a DaemonSet of that name is still being deleted: retried later.
        const message = `applying DaemonSet ${planned.name} failed: ${errorMessage(err)}`;
        applyProblems.push(message);
        this.#deps.events.warning(ref, "ImagePrePullApplyFailed", message);
        this.#log.warn("applying a pre-pull DaemonSet failed", { resource: key, daemonSet: planned.name, error: err });
        continue;
      }
      const templates = planned.templateIndexes.join(", ");
      const note = `DaemonSet ${planned.name}: ${planned.images.length} image(s) of template(s) ${templates}`;
      this.#deps.events.normal(ref, current ? "ImagePrePullUpdated" : "ImagePrePullCreated", note);
      this.#log.info(current ? "pre-pull DaemonSet updated" : "pre-pull DaemonSet created", {
        resource: key,
        daemonSet: planned.name,
        images: planned.images.length,
      });
    }
    for (const ds of owned) {
      if (plan.daemonSets.some((p) => p.name === ds.metadata.name)) continue;
      if (signal?.aborted) return undefined;
      try {
        await this.#deps.client.request({
          method: "DELETE",
          path: kubePath(DAEMONSETS, { namespace, name: ds.metadata.name }),
          body: { propagationPolicy: "Background", preconditions: { uid: ds.metadata.uid } },
          ...(signal ? { signal } : {}),
        });
        this.#deps.events.normal(ref, "ImagePrePullRemoved", `DaemonSet ${ds.metadata.name} deleted`);
        this.#log.info("pre-pull DaemonSet deleted", { resource: key, daemonSet: ds.metadata.name });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }

    const selectors = new Set(plan.daemonSets.map((d) => d.selector));
    const pods = this.#pods
      .flatMap((inf) => [...selectors].flatMap((s) => inf.store.byIndex(selectorIndex, s)))
      .filter((p) => p.metadata?.namespace === namespace);
    const observation = observePrePull({ plan, daemonSets: owned, pods, applyProblems });

    const seen = this.#reported.get(key) ?? new Set<string>();
    const now = new Set<string>();
    for (const problem of observation.problems) {
      now.add(problem.key);
      if (!seen.has(problem.key)) this.#deps.events.warning(ref, problem.reason, problem.message);
    }
    this.#reported.set(key, now);
    const hashes = plan.daemonSets.map((d) => d.specHash).join(",");
    if (plan.daemonSets.length === 0) this.#announced.delete(key);
    else if (observation.complete && observation.status.desiredNodes > 0 && this.#announced.get(key) !== hashes) {
      this.#announced.set(key, hashes);
      this.#deps.events.normal(
        ref,
        "ImagesPrePulled",
        `${plan.images.length} image(s) present on ${observation.status.readyNodes} node(s)`,
      );
    }
    await this.#writeStatus(obj, plan.enabled ? observation.status : undefined, signal);
    return applyProblems.length > 0 ? { requeue: true } : { requeueAfterMs: this.#deps.resyncIntervalMs };
  }

  /** Merge-patches `status.imagePrePull` (null removes it) when it differs from the cached one. */
  async #writeStatus(obj: AutoScaledAgent, next: ImagePrePullStatus | undefined, signal?: AbortSignal): Promise<void> {
    const previous = obj.status?.imagePrePull;
    if (canonicalJson(previous ?? null) === canonicalJson(next ?? null)) return;
    const { namespace, name } = obj.metadata as { namespace: string; name: string };
    // A merge patch keeps fields it does not name: those the new status lacks are sent as null.
    const body = next ? { ...Object.fromEntries(Object.keys(previous ?? {}).map((k) => [k, null])), ...next } : null;
    try {
      await patchStatus(
        this.#deps.client,
        resourcePath(namespace, name),
        { status: { imagePrePull: body } },
        {
          ...(signal ? { signal } : {}),
        },
      );
    } catch (err) {
      if (isNotFound(err)) return;
      this.#log.warn("writing the pre-pull status failed", {
        resource: `${namespace}/${name}`,
        error: errorMessage(err),
      });
      throw err;
    }
  }
}
