/**
 * A tiny dynamic volume provisioner: for PersistentVolumeClaims of a StorageClass whose provisioner is
 * `simProvisionerName`, it creates a matching PersistentVolume pre-bound to the claim (the controller manager's
 * PV controller then binds them), and deletes the volumes it made once they are Released. WaitForFirstConsumer
 * classes are served once the scheduler has picked a node for the claim.
 */
import { isAlreadyExists, isNotFound, type KubeClient } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { listWatchFor } from "../../src/kube/listwatch.ts";
import type { KubeObject } from "../../src/kube/types.ts";
import { errorMessage, type Logger } from "../../src/runtime/logger.ts";
import type { PersistentVolumeClaim } from "./types.ts";

export const simProvisionerName = "sim.azp.k8s.scaler.io/hostpath";

interface StorageClass extends KubeObject {
  provisioner: string;
  volumeBindingMode?: string;
  reclaimPolicy?: string;
}

interface PersistentVolume extends KubeObject {
  spec: { claimRef?: { namespace: string; name: string; uid?: string }; persistentVolumeReclaimPolicy?: string };
  status?: { phase?: string };
}

/** Creates (if missing) StorageClasses served by the provisioner. */
export async function ensureStorageClasses(client: KubeClient, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await client
      .request({
        method: "POST",
        path: "/apis/storage.k8s.io/v1/storageclasses",
        body: {
          apiVersion: "storage.k8s.io/v1",
          kind: "StorageClass",
          metadata: { name },
          provisioner: simProvisionerName,
          reclaimPolicy: "Delete",
          volumeBindingMode: "Immediate",
        },
      })
      .catch((err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      });
  }
}

export class Provisioner {
  readonly #client: KubeClient;
  readonly #logger: Logger;
  readonly #claims: Informer<PersistentVolumeClaim>;
  readonly #volumes: Informer<PersistentVolume>;
  readonly #classes: Informer<StorageClass>;

  constructor(client: KubeClient, logger: Logger) {
    this.#client = client;
    this.#logger = logger;
    this.#claims = new Informer<PersistentVolumeClaim>({
      name: "sim-provisioner-pvcs",
      listWatch: listWatchFor(client, { resource: { apiVersion: "v1", resource: "persistentvolumeclaims" } }),
      logger,
      resyncIntervalMs: 5000,
    });
    this.#volumes = new Informer<PersistentVolume>({
      name: "sim-provisioner-pvs",
      listWatch: listWatchFor(client, { resource: { apiVersion: "v1", resource: "persistentvolumes" } }),
      logger,
      resyncIntervalMs: 5000,
    });
    this.#classes = new Informer<StorageClass>({
      name: "sim-provisioner-storageclasses",
      listWatch: listWatchFor(client, { resource: { apiVersion: "storage.k8s.io/v1", resource: "storageclasses" } }),
      logger,
    });
    const onClaim = (pvc: PersistentVolumeClaim) => void this.#provision(pvc);
    this.#claims.addHandler({ onAdd: onClaim, onUpdate: (_old, pvc) => onClaim(pvc) });
    const onVolume = (pv: PersistentVolume) => void this.#reclaim(pv);
    this.#volumes.addHandler({ onAdd: onVolume, onUpdate: (_old, pv) => onVolume(pv) });
  }

  async start(): Promise<void> {
    this.#classes.start();
    await this.#classes.waitForSync();
    this.#volumes.start();
    this.#claims.start();
    await Promise.all([this.#volumes.waitForSync(), this.#claims.waitForSync()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.#claims.stop(), this.#volumes.stop(), this.#classes.stop()]);
  }

  #classOf(name: string | undefined): StorageClass | undefined {
    if (!name) return undefined;
    return this.#classes.store.get(name) as StorageClass | undefined;
  }

  async #provision(pvc: PersistentVolumeClaim): Promise<void> {
    if (pvc.spec.volumeName || pvc.status?.phase === "Bound" || pvc.metadata.deletionTimestamp) return;
    const sc = this.#classOf(pvc.spec.storageClassName);
    if (!sc || sc.provisioner !== simProvisionerName) return;
    const selectedNode = pvc.metadata.annotations?.["volume.kubernetes.io/selected-node"];
    if (sc.volumeBindingMode === "WaitForFirstConsumer" && !selectedNode) return;
    const name = `pvc-${pvc.metadata.uid}`;
    const pv = {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: { name, annotations: { "pv.kubernetes.io/provisioned-by": simProvisionerName } },
      spec: {
        capacity: { storage: pvc.spec.resources?.requests?.storage ?? "1Gi" },
        accessModes: pvc.spec.accessModes?.length ? pvc.spec.accessModes : ["ReadWriteOnce"],
        persistentVolumeReclaimPolicy: sc.reclaimPolicy ?? "Delete",
        storageClassName: pvc.spec.storageClassName,
        volumeMode: pvc.spec.volumeMode ?? "Filesystem",
        hostPath: { path: `/var/lib/azp-sim/volumes/${name}`, type: "DirectoryOrCreate" },
        claimRef: {
          apiVersion: "v1",
          kind: "PersistentVolumeClaim",
          namespace: pvc.metadata.namespace,
          name: pvc.metadata.name,
          uid: pvc.metadata.uid,
        },
      },
    };
    try {
      await this.#client.request({ method: "POST", path: "/api/v1/persistentvolumes", body: pv });
      this.#logger.info("provisioned volume", { pvc: `${pvc.metadata.namespace}/${pvc.metadata.name}`, pv: name });
    } catch (err) {
      if (!isAlreadyExists(err)) this.#logger.warn("provisioning failed", { pv: name, error: errorMessage(err) });
    }
  }

  async #reclaim(pv: PersistentVolume): Promise<void> {
    if (pv.metadata?.annotations?.["pv.kubernetes.io/provisioned-by"] !== simProvisionerName) return;
    if (pv.status?.phase !== "Released" || pv.spec.persistentVolumeReclaimPolicy !== "Delete") return;
    try {
      await this.#client.request({ method: "DELETE", path: `/api/v1/persistentvolumes/${pv.metadata.name}` });
    } catch (err) {
      if (!isNotFound(err))
        this.#logger.warn("deleting released volume failed", { pv: pv.metadata.name, error: errorMessage(err) });
    }
  }
}
