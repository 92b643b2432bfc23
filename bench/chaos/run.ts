/**
 * The chaos run: the operator as two replicas with leader election (own processes, short lease settings), the
 * simulated world (a control plane of its own with an audit log, the Azure DevOps emulator in this process, a
 * virtual node in its own process, a stalling proxy between the replicas and the API server), a seeded schedule of
 * jobs and disturbances, invariants checked as observations arrive and once more at the end, and a report.
 * See docs/reliability.md.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { FaultRule } from "../../sim/azure-devops/faults.ts";
import { type AzureDevOpsEmulator, startAzureDevOpsEmulator } from "../../sim/azure-devops/index.ts";
import type { SimJobView } from "../../sim/azure-devops/views.ts";
import { type ControlPlane, startControlPlane } from "../../sim/control-plane/index.ts";
import { clientCertificate } from "../../sim/control-plane/pki.ts";
import { TcpProxy } from "../../sim/tcp-proxy/index.ts";
import { labels, MANAGED_BY_VALUE } from "../../src/api/v1/index.ts";
import { isAlreadyExists, isNotFound, type KubeClient } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { kubeconfigYaml } from "../../src/kube/kubeconfig.ts";
import { listWatchFor } from "../../src/kube/listwatch.ts";
import type { KubeObject } from "../../src/kube/types.ts";
import { capabilitySetKey } from "../../src/scaling/naming.ts";
import { createNamespace, ensureCrd } from "../../test/support/cluster.ts";
import { benchLabels } from "../support/cluster.ts";
import { type BenchResult, gitRevision, machineInfo, rounded, secs, summarize, type Table } from "../support/stats.ts";
import { type AuditRecord, AuditTail, auditPolicyYaml } from "./audit.ts";
import {
  checkJobs,
  checkLeadership,
  type InvariantId,
  invariantNames,
  type JobHistory,
  LiveChecker,
  type PodObservation,
  type SpecRecord,
  type Violation,
  type WriteRecord,
} from "./invariants.ts";
import { startChaosNode } from "./node-process.ts";
import { mulberry32 } from "./prng.ts";
import { type Replica, ReplicaSet, replicaPrefix } from "./replicas.ts";
import {
  adoFaultRules,
  type ChaosEvent,
  generateSchedule,
  type JobPlan,
  type ResourceDef,
  type Schedule,
  scheduleOptions,
  summarizeSchedule,
  type TemplateDef,
  templateFits,
} from "./schedule.ts";

export interface ChaosOptions {
  seed: number;
  quick: boolean;
  /** Override the number of jobs. */
  jobs?: number;
  log: (line: string) => void;
}

const GC_USER = "system:serviceaccount:kube-system:generic-garbage-collector";
const NODE_USER = "chaos-virtual-node";
const LEASE_NAME = "azure-pipelines-k8s-agent-scaler";
/** How long after a spec change the operator may still act on the old one. */
const SPEC_GRACE_MS = 5000;
/** An instantaneous disturbance (a kill, a restart) counts as going on for this long in the violations' context. */
const AFTERMATH_MS = 30_000;

const operatorTiming = {
  leaseDuration: "6s",
  renewDeadline: "4s",
  retryPeriod: "1s",
  pollInterval: "1s",
  idlePollInterval: "3s",
  resyncInterval: "10s",
  offlineAgentGrace: "30s",
};

interface ResourceState {
  def: ResourceDef;
  namespace: string;
  exists: boolean;
  /** The uid of the instance that exists now (or last existed). */
  uid: string;
  /** Templates now, in order, with their current maxCount. */
  templates: TemplateDef[];
}

interface ActionRecord {
  at: number;
  /** For windows (faults, stalls, restarts): when it ended. */
  until?: number;
  label: string;
  detail?: string;
}

interface PodLike extends KubeObject {
  metadata: NonNullable<KubeObject["metadata"]> & { name: string; namespace: string };
  spec: {
    containers: { name: string }[];
    volumes?: { persistentVolumeClaim?: { claimName: string } }[];
  };
  status?: {
    phase?: string;
    containerStatuses?: { name: string; state?: { terminated?: unknown } }[];
  };
}

const templateKey = (t: TemplateDef) => capabilitySetKey(t.capabilities);

const ownerUid = (p: KubeObject) =>
  p.metadata?.ownerReferences?.find((r) => r.kind === "AutoScaledAgent" && r.controller)?.uid;

function podObservation(p: PodLike): PodObservation {
  const agent = p.spec.containers[0]?.name;
  return {
    namespace: p.metadata.namespace,
    name: p.metadata.name,
    resource: p.metadata.labels?.[labels.resource],
    ...(ownerUid(p) ? { ownerUid: ownerUid(p) } : {}),
    template: p.metadata.labels?.[labels.template],
    createdAt: p.metadata.creationTimestamp ? Date.parse(p.metadata.creationTimestamp) : Number.NaN,
    phase: p.status?.phase ?? "Pending",
    deleting: Boolean(p.metadata.deletionTimestamp),
    agentTerminated: Boolean(p.status?.containerStatuses?.find((c) => c.name === agent)?.state?.terminated),
    claims: (p.spec.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : [])),
  };
}

function podTemplate(t: TemplateDef, nodeSelector: Record<string, string>) {
  const mounts = [
    { name: "workspace", mountPath: "/azp/_work" },
    ...(t.cacheVolume ? [{ name: t.cacheVolume, mountPath: "/cache" }] : []),
  ];
  const containers: Record<string, unknown>[] = [
    {
      name: "azure-pipelines-agent",
      image: "example.com/azure-pipelines-agent:chaos",
      args: ["--once"],
      volumeMounts: mounts,
    },
  ];
  if (t.sidecar === "classic") {
    containers.push({
      name: "helper",
      image: "example.com/chaos-helper:1",
      volumeMounts: [{ name: "workspace", mountPath: "/azp/_work" }],
    });
  }
  return {
    spec: {
      nodeSelector,
      terminationGracePeriodSeconds: 10,
      volumes: [{ name: "workspace", emptyDir: {} }],
      containers,
      ...(t.sidecar === "native"
        ? { initContainers: [{ name: "proxy", image: "example.com/chaos-proxy:1", restartPolicy: "Always" }] }
        : {}),
    },
  };
}

function resourceSpec(r: ResourceState, ado: AzureDevOpsEmulator, nodeSelector: Record<string, string>) {
  return {
    poolName: r.def.pool,
    organizationUrl: ado.organizationUrl,
    personalAccessTokenSecretName: "azure-pat",
    maxTerminatedPodsToKeep: 1,
    agentMinIdlePeriod: "15s",
    dummyAgentGarbageCollectionInterval: "20s",
    dummyAgentDeletionMinAge: "3m",
    ...(r.def.cacheVolumes.length > 0
      ? {
          reusableCacheVolumes: r.def.cacheVolumes.map((name) => ({
            name,
            storageClassName: "hostpath",
            requestedStorage: "1Gi",
          })),
        }
      : {}),
    podsWithCapabilities: r.templates.map((t) => ({
      capabilities: t.capabilities,
      minCount: t.minCount,
      maxCount: t.maxCount,
      podTemplateSpec: podTemplate(t, nodeSelector),
    })),
  };
}

const asaPath = (ns: string, name?: string) =>
  `/apis/azurepipelines.k8s.scaler.io/v1/namespaces/${ns}/autoscaledagents${name ? `/${name}` : ""}`;

const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : String(t));

/** Runs the whole thing and returns the result (tables and JSON); throws only when the world cannot be built. */
export async function runChaos(o: ChaosOptions): Promise<{ result: BenchResult; workDir: string; failed: boolean }> {
  const log = o.log;
  const started = new Date();
  const schedule: Schedule = generateSchedule(scheduleOptions(o.seed, o.quick, o.jobs));
  const summary = summarizeSchedule(schedule);
  log(
    `chaos: seed ${o.seed}${o.quick ? " (quick)" : ""}: ${schedule.jobs.length} jobs and ${schedule.events.length} disturbances over ${schedule.options.lengthMs / 1000} s`,
  );
  const workDir = mkdtempSync(join(tmpdir(), "azp-chaos-"));
  const cleanups: { what: string; fn: () => Promise<void> | void }[] = [];
  const cleanup = async () => {
    while (cleanups.length > 0) {
      const c = cleanups.pop();
      if (!c) break;
      try {
        await c.fn();
      } catch (err) {
        log(`cleanup ${c.what} failed: ${(err as Error).message}`);
      }
    }
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log("interrupted: cleaning up");
    void cleanup().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    // ---- the control plane, with an audit log of writes to pods, PVCs and AutoScaledAgents
    const policy = join(workDir, "audit-policy.yaml");
    writeFileSync(policy, auditPolicyYaml);
    const auditLog = join(workDir, "audit.log");
    log("starting a control plane of its own (audit log on)");
    const cp: ControlPlane = await startControlPlane({
      log,
      extraApiServerArgs: [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog}`, "--audit-log-maxsize=0"],
    });
    cleanups.push({ what: "control plane", fn: () => cp.stop() });
    const client: KubeClient = cp.client;
    await ensureCrd(client);
    const nsA = await createNamespace(client, "chaos-a", { labels: benchLabels });
    const nsB = await createNamespace(client, "chaos-b", { labels: benchLabels });
    const nsSys = await createNamespace(client, "chaos-sys", { labels: benchLabels });
    const nsOf = (ref: "a" | "b") => (ref === "a" ? nsA : nsB);

    // ---- Azure DevOps
    const pats = {
      operator: `pat-operator-${o.seed}-${Date.now().toString(36)}`,
      agents: `pat-agents-${o.seed}-${Date.now().toString(36)}`,
      harness: `pat-harness-${o.seed}-${Date.now().toString(36)}`,
    };
    const ado = await startAzureDevOpsEmulator({
      pools: [...new Set(schedule.world.map((r) => r.pool))],
      pats: [
        { token: pats.operator, scope: "manage", identity: "operator" },
        { token: pats.agents, scope: "manage", identity: "agents" },
        { token: pats.harness, scope: "manage", identity: "harness" },
      ],
      messagePollTimeoutMs: 5000,
      requestLogLimit: 5000,
      lockDurationMs: 20_000,
      cancelTimeoutMs: 15_000,
      finishedRetention: 20_000,
      random: mulberry32(o.seed * 3 + 4),
      log: () => {},
    });
    cleanups.push({ what: "Azure DevOps emulator", fn: () => ado.close() });
    // Azure DevOps requests by who made them (injected faults come before authentication: "unauthenticated").
    const requests: Record<string, Record<string, number>> = {};
    ado.control.on("request", (e) => {
      const who = e.identity ?? "unauthenticated";
      const status = e.status === 0 ? "dropped" : String(e.status);
      const m = requests[who] ?? {};
      requests[who] = m;
      m[status] = (m[status] ?? 0) + 1;
    });

    // ---- the virtual node, with a client certificate of its own
    const nodeName = `chaos-node-${o.seed}`;
    const nodeSelector = { "azp.chaos/node": nodeName };
    const nodeCert = await clientCertificate(join(cp.dir, "pki"), "chaos-node", `/O=system:masters/CN=${NODE_USER}`);
    const nodeKubeconfig = join(workDir, "node.kubeconfig");
    writeFileSync(
      nodeKubeconfig,
      kubeconfigYaml({
        server: cp.server,
        ca: cp.connection.ca,
        cert: readFileSync(nodeCert.cert, "utf8"),
        key: readFileSync(nodeCert.key, "utf8"),
      }),
      { mode: 0o600 },
    );
    const node = await startChaosNode(
      {
        kubeconfig: nodeKubeconfig,
        name: nodeName,
        labels: nodeSelector,
        agentToken: pats.agents,
        agentRenewIntervalMs: 2000,
      },
      join(workDir, "node.log"),
    );
    cleanups.push({ what: "virtual node", fn: () => node.stop() });
    for (const ns of [nsA, nsB]) {
      await client.request({
        method: "POST",
        path: `/api/v1/namespaces/${ns}/secrets`,
        body: { metadata: { name: "azure-pat" }, stringData: { pat: pats.operator } },
      });
    }

    // ---- what happened, as it happens
    const actions: ActionRecord[] = [];
    const context = (t: number) =>
      actions
        .filter((a) => a.at <= t && t <= (a.until ?? a.at + AFTERMATH_MS))
        .map((a) => a.label)
        .filter((l, i, all) => all.indexOf(l) === i);
    const specRecords: SpecRecord[] = [];
    const checker = new LiveChecker({ specs: () => specRecords, graceMs: SPEC_GRACE_MS, context });
    const report = (v: Violation) =>
      log(`VIOLATION ${v.invariant} (${invariantNames[v.invariant]}): ${v.message} [${context(v.at).join(", ")}]`);

    const podInformer = new Informer<PodLike>({
      name: "chaos-pods",
      listWatch: listWatchFor<PodLike>(client, {
        resource: { apiVersion: "v1", resource: "pods" },
        labelSelector: `${labels.managedBy}=${MANAGED_BY_VALUE}`,
      }),
    });
    const podsSeen = new Map<string, { resource?: string; ownerUid?: string; namespace: string; createdAt: number }>();
    let peakLive = 0;
    // Changes are judged in batches, one per turn of the event loop: a relist delivers its changes together, in no
    // particular order, and they must all be applied before any pod is judged.
    let batch: PodObservation[] = [];
    let gone: { namespace: string; name: string }[] = [];
    let flushing = false;
    const flush = () => {
      flushing = false;
      const now = Date.now();
      const [pods, left] = [batch, gone];
      batch = [];
      gone = [];
      for (const v of checker.onPods(now, pods, left)) report(v);
    };
    const later = () => {
      if (flushing) return;
      flushing = true;
      setImmediate(flush);
    };
    const onPod = (p: PodLike) => {
      const obs = podObservation(p);
      later();
      batch.push(obs);
      if (!podsSeen.has(obs.name)) {
        podsSeen.set(obs.name, {
          namespace: obs.namespace,
          ...(obs.resource ? { resource: obs.resource } : {}),
          ...(obs.ownerUid ? { ownerUid: obs.ownerUid } : {}),
          createdAt: obs.createdAt,
        });
      }
      const live = podInformer.store
        .list()
        .filter((q) => !["Succeeded", "Failed"].includes(q.status?.phase ?? "") && !q.metadata.deletionTimestamp);
      peakLive = Math.max(peakLive, live.length);
    };
    podInformer.addHandler({
      onAdd: onPod,
      onUpdate: (_o, p) => onPod(p),
      onDelete: (p) => {
        later();
        gone.push({ namespace: p.metadata.namespace, name: p.metadata.name });
      },
    });
    podInformer.start();
    cleanups.push({ what: "pod watch", fn: () => podInformer.stop() });
    await podInformer.waitForSync();

    // When each agent registration (placeholders included) first appeared, and when it went away.
    const agentSeen = new Map<string, { first: number; gone?: number }>();
    ado.control.on("agent", (a) => {
      if (!agentSeen.has(a.name)) agentSeen.set(a.name, { first: Date.now() });
    });

    // Jobs: their history from the emulator's events; cancellations as planned.
    const histories = new Map<number, JobHistory>();
    const plans = new Map<number, JobPlan>();
    const cancelArmed = new Set<number>();
    const harnessCancelled = new Map<number, { at: number; stateThen: string }>();
    const cancel = (requestId: number) => {
      const job = ado.control.getJob(requestId);
      if (!job || job.state === "finished") return;
      const h = histories.get(requestId);
      const at = Date.now();
      harnessCancelled.set(requestId, { at, stateThen: job.state });
      if (h) h.cancelledAt = at;
      try {
        ado.control.cancelJob(requestId);
      } catch (err) {
        log(`cancel ${requestId} failed: ${(err as Error).message}`);
      }
    };
    const maybeCancel = (requestId: number, state: SimJobView["state"]) => {
      const plan = plans.get(requestId);
      if (!plan?.cancel || cancelArmed.has(requestId) || state === "finished") return;
      const reached =
        plan.cancel.stage === "queued" ||
        (plan.cancel.stage === "assigned" && (state === "assigned" || state === "running")) ||
        (plan.cancel.stage === "running" && state === "running");
      if (!reached) return;
      cancelArmed.add(requestId);
      setTimeout(() => cancel(requestId), plan.cancel.afterMs);
    };
    const finishedWatchers = new Set<() => void>();
    ado.control.on("job", (view) => {
      const now = Date.now();
      let h = histories.get(view.requestId);
      if (!h) {
        h = { requestId: view.requestId, changes: [], resource: "", template: "", demands: view.demands };
        histories.set(view.requestId, h);
      }
      const last = h.changes.at(-1);
      const agent = view.reservedAgent?.name;
      if (!last || last.state !== view.state || (agent && last.agent !== agent)) {
        h.changes.push({ at: now, state: view.state, ...(agent ? { agent } : {}) });
      }
      if (view.state === "finished") {
        if (view.result !== undefined) h.result = view.result;
        if (view.statusMessage !== undefined) h.statusMessage = view.statusMessage;
        const lastAgent = [...h.changes].reverse().find((c) => c.agent)?.agent;
        checker.onJob({
          requestId: view.requestId,
          state: "finished",
          ...(lastAgent ? { reservedAgent: { name: lastAgent } } : {}),
        });
        const cancelled = harnessCancelled.has(view.requestId);
        if (view.result !== "succeeded" && !cancelled) {
          log(
            `job ${view.requestId} finished ${view.result}${lastAgent ? ` on ${lastAgent}` : ""}${view.statusMessage ? `: ${view.statusMessage}` : ""} [${context(now).join(", ")}]`,
          );
        }
        for (const w of finishedWatchers) w();
      }
      maybeCancel(view.requestId, view.state);
    });

    // The audit log: who wrote what.
    const auditTail = new AuditTail(auditLog);
    const audit: AuditRecord[] = [];
    let leadershipReported = 0;
    const operatorWrites = (): WriteRecord[] =>
      audit
        .filter((r) => r.user.startsWith(replicaPrefix) && r.code < 400)
        .map((r) => ({
          at: r.at,
          user: r.user,
          verb: r.verb,
          object: `${r.resource}${r.subresource ? `/${r.subresource}` : ""} ${r.namespace ?? ""}/${r.name ?? ""}`,
        }));
    const auditTimer = setInterval(() => {
      const fresh = auditTail.read();
      audit.push(...fresh);
      if (fresh.some((r) => r.user.startsWith(replicaPrefix))) {
        const { violations } = checkLeadership(operatorWrites(), context);
        for (const v of violations.slice(leadershipReported)) report(v);
        leadershipReported = Math.max(leadershipReported, violations.length);
      }
    }, 1000);
    cleanups.push({ what: "audit tail", fn: () => clearInterval(auditTimer) });

    // ---- the stalling proxy and the replicas
    const proxy = new TcpProxy({
      target: { host: "127.0.0.1", port: cp.ports.apiserver as number },
      streamAfterMs: 3000,
    });
    await proxy.start();
    cleanups.push({ what: "proxy", fn: () => proxy.close() });
    const operatorArgs = [
      "--leader-elect",
      "true",
      "--leader-election-namespace",
      nsSys,
      "--leader-election-name",
      LEASE_NAME,
      "--lease-duration",
      operatorTiming.leaseDuration,
      "--renew-deadline",
      operatorTiming.renewDeadline,
      "--retry-period",
      operatorTiming.retryPeriod,
      "--poll-interval",
      operatorTiming.pollInterval,
      "--idle-poll-interval",
      operatorTiming.idlePollInterval,
      "--resync-interval",
      operatorTiming.resyncInterval,
      "--offline-agent-grace",
      operatorTiming.offlineAgentGrace,
      "--log-format",
      "json",
      "--log-level",
      "info",
    ];
    const replicas = new ReplicaSet(client, {
      pkiDir: join(cp.dir, "pki"),
      caPem: cp.connection.ca ?? "",
      server: `https://127.0.0.1:${proxy.port}`,
      namespaces: [nsA, nsB],
      leaseNamespace: nsSys,
      leaseName: LEASE_NAME,
      workDir,
      args: operatorArgs,
      log,
      restartDelayMs: 2000,
    });
    cleanups.push({ what: "operator replicas", fn: () => replicas.close() });
    await replicas.start(2);
    const firstLeader = await replicas.waitForLeader(60_000);
    log(`leader: ${firstLeader?.identity ?? "none yet"}`);

    // Control-plane components that exit (e.g. after losing their leases while the API server is down) come back,
    // as a kubelet restarts static pods.
    const componentRestarts: { at: number; name: string }[] = [];
    const componentTimer = setInterval(() => {
      void cp.restartExited().then((names) => {
        for (const name of names) {
          componentRestarts.push({ at: Date.now(), name });
          log(`control plane: ${name} had exited; started again`);
        }
      });
    }, 2000);
    cleanups.push({ what: "component supervisor", fn: () => clearInterval(componentTimer) });

    // ---- the resources
    const states = new Map<string, ResourceState>(
      schedule.world.map((def) => [
        def.name,
        {
          def,
          namespace: nsOf(def.namespace),
          exists: false,
          uid: "",
          templates: def.templates.map((t) => ({ ...t })),
        },
      ]),
    );
    /**
     * Writes a change, as someone who means it: retried (the API server may be restarting) until it is done or a
     * minute has passed; then recorded with when it was sent and acknowledged.
     */
    const record = async (r: ResourceState, write: () => Promise<unknown>) => {
      const at = Date.now();
      let answer: { metadata?: { uid?: string } } | undefined;
      for (let attempt = 1; ; attempt++) {
        try {
          answer = (await write()) as typeof answer;
          break;
        } catch (err) {
          // A retried create or delete that the first attempt did after all.
          if (attempt > 1 && (isAlreadyExists(err) || isNotFound(err))) {
            if (r.exists) {
              const got = await client.request<{ metadata?: { uid?: string } }>({
                path: asaPath(r.namespace, r.def.name),
              });
              answer = got;
            }
            break;
          }
          if (Date.now() - at > 60_000) throw err;
          log(`write to ${r.def.name} failed (${(err as Error).message}); retrying`);
          await sleep(1000);
        }
      }
      if (r.exists && answer?.metadata?.uid) r.uid = answer.metadata.uid;
      specRecords.push({
        at,
        ackAt: Date.now(),
        resource: `${r.namespace}/${r.def.name}`,
        uid: r.uid,
        maxCounts: r.exists ? Object.fromEntries(r.templates.map((t) => [templateKey(t), t.maxCount])) : null,
      });
    };
    const createResource = (r: ResourceState) => {
      r.exists = true;
      return record(r, () =>
        client.request({
          method: "POST",
          path: asaPath(r.namespace),
          body: {
            apiVersion: "azurepipelines.k8s.scaler.io/v1",
            kind: "AutoScaledAgent",
            metadata: { name: r.def.name },
            spec: resourceSpec(r, ado, nodeSelector),
          },
        }),
      );
    };
    const patchTemplates = (r: ResourceState) =>
      record(r, () =>
        client.request({
          method: "PATCH",
          path: asaPath(r.namespace, r.def.name),
          contentType: "application/merge-patch+json",
          body: { spec: { podsWithCapabilities: resourceSpec(r, ado, nodeSelector).podsWithCapabilities } },
        }),
      );
    const deleteResource = (r: ResourceState) => {
      r.exists = false;
      return record(r, () => client.request({ method: "DELETE", path: asaPath(r.namespace, r.def.name) }));
    };
    for (const r of states.values()) await createResource(r);

    // Placeholders first: jobs queued before them would fail at once.
    const hasAgentWith = (pool: string, caps: Record<string, string>, placeholderOnly = false) =>
      ado.control
        .listAgents({ pool })
        .some(
          (a) =>
            (!placeholderOnly || a.name.startsWith("dummy-agent")) &&
            Object.entries(caps).every(([k, v]) =>
              Object.entries(a.capabilities).some(([ak, av]) => ak.toLowerCase() === k.toLowerCase() && av === v),
            ),
        );
    const placeholderDeadline = Date.now() + 120_000;
    for (;;) {
      const missing = [...states.values()].flatMap((r) =>
        r.templates.filter((t) => !hasAgentWith(r.def.pool, t.capabilities, true)).map((t) => `${r.def.name}/${t.id}`),
      );
      if (missing.length === 0) break;
      if (Date.now() > placeholderDeadline) throw new Error(`placeholders never registered: ${missing.join(", ")}`);
      await sleep(500);
    }
    log("every template has its placeholder; the schedule starts");

    // ---- the schedule
    const t0 = Date.now();
    const at = (ms: number) => sleep(Math.max(0, t0 + ms - Date.now()));
    const harnessAuth = `Basic ${Buffer.from(`:${pats.harness}`).toString("base64")}`;
    const poolIds = new Map(ado.control.listPools().map((p) => [p.name, p.id]));
    const extraPlaceholders: string[] = [];
    /** What a pipeline does before it queues a job with an ExtraAgentContainers demand: registers a placeholder. */
    const ensureExtraPlaceholder = async (pool: string, caps: Record<string, string>) => {
      const name = `dummy-agent-chaos-${createHash("sha256").update(JSON.stringify(caps)).digest("hex").slice(0, 12)}`;
      const res = await fetch(
        `${ado.organizationUrl}/_apis/distributedtask/pools/${poolIds.get(pool)}/agents?api-version=7.1`,
        {
          method: "POST",
          headers: { Authorization: harnessAuth, "Content-Type": "application/json" },
          body: JSON.stringify({ name, version: "4.258.1", systemCapabilities: caps }),
        },
      );
      if (res.status === 200) extraPlaceholders.push(name);
      else if (res.status !== 409) log(`placeholder ${name}: HTTP ${res.status}`);
      await res.arrayBuffer().catch(() => {});
    };
    const queueJob = async (plan: JobPlan) => {
      const r = states.get(plan.resource) as ResourceState;
      const template = [...r.def.templates, ...r.def.extraTemplates].find((t) => t.id === plan.template) as TemplateDef;
      const caps = plan.extraAgentContainers
        ? { ...template.capabilities, ExtraAgentContainers: plan.extraAgentContainers }
        : undefined;
      for (let attempt = 0; caps && !hasAgentWith(r.def.pool, caps) && attempt < 10; attempt++) {
        await ensureExtraPlaceholder(r.def.pool, caps);
      }
      // No await between the check above and the queueing: the emulator runs in this process.
      const view = ado.control.queueJob({
        pool: r.def.pool,
        demands: plan.demands,
        durationMs: plan.durationMs,
        startDelayMs: plan.startDelayMs,
        finishDelayMs: plan.finishDelayMs,
        jobName: `chaos-${plan.id}`,
      });
      plans.set(view.requestId, plan);
      const h = histories.get(view.requestId);
      if (h) {
        h.resource = `${r.namespace}/${r.def.name}`;
        h.template = plan.template;
        h.demands = plan.demands;
      }
      maybeCancel(view.requestId, ado.control.getJob(view.requestId)?.state ?? "finished");
    };

    const activeFaults = new Map<number, FaultRule[]>();
    let faultSeq = 0;
    const applyFaults = () => ado.control.setFaults([...activeFaults.values()].flat());
    const runEvent = async (e: ChaosEvent) => {
      const now = Date.now();
      switch (e.kind) {
        case "leader-kill": {
          const leader = await replicas.waitForLeader(30_000);
          if (!leader) {
            actions.push({ at: now, label: "leader-kill", detail: "no leader to kill" });
            return;
          }
          actions.push({ at: Date.now(), label: "leader-kill", detail: `SIGKILL ${leader.identity}` });
          log(`disturbance: SIGKILL the leader ${leader.identity}`);
          await replicas.kill(leader);
          return;
        }
        case "leader-rolling-update": {
          const rec: ActionRecord = { at: now, label: "leader-rolling-update" };
          actions.push(rec);
          log("disturbance: rolling update (a new replica, then SIGTERM to the leader)");
          const { started: s, stopped } = await replicas.rollingUpdate();
          rec.until = Date.now();
          rec.detail = `started ${s.identity}, stopped ${stopped?.identity ?? "nobody (no leader)"}`;
          return;
        }
        case "apiserver-restart": {
          const rec: ActionRecord = { at: now, label: "apiserver-restart" };
          actions.push(rec);
          log(`disturbance: restart kube-apiserver (${e.kill ? `SIGKILL, ${e.downMs} ms down` : "SIGTERM"})`);
          await cp.restartApiServer({ kill: e.kill, downMs: e.downMs }).catch((err: unknown) => {
            log(`API server restart failed: ${(err as Error).message}`);
          });
          rec.until = Date.now() + AFTERMATH_MS;
          rec.detail = `${e.kill ? "SIGKILL" : "SIGTERM"}, back after ${((Date.now() - now) / 1000).toFixed(1)} s`;
          return;
        }
        case "watch-stall": {
          const rec: ActionRecord = { at: now, until: now + e.durationMs, label: "watch-stall" };
          actions.push(rec);
          log(`disturbance: watches through the proxy stall silently for ${e.durationMs / 1000} s`);
          const frozen = proxy.freeze("streams");
          setTimeout(() => {
            proxy.stopFreezing();
            const total = proxy.stats().frozenTotal;
            log(`watch stall window over: ${total} connection(s) frozen so far; they stay silent until dropped`);
            // The stall goes on for the clients until they drop the frozen connections (their watchdog).
            const aftermath =
              actions.push({
                at: Date.now(),
                until: Number.POSITIVE_INFINITY,
                label: "watch-stall (frozen connections left)",
              }) - 1;
            const poll = setInterval(() => {
              const left = proxy.stats().frozen;
              if (left > 0 && Date.now() - rec.at < e.durationMs + 300_000) return;
              clearInterval(poll);
              const a = actions[aftermath];
              if (a) {
                a.until = Date.now();
                a.detail = `${left} still frozen`;
              }
              rec.detail = `${total} connection(s) frozen (${frozen} at once); the last dropped by its client ${((Date.now() - rec.at) / 1000).toFixed(0)} s after the stall began`;
              log(`watch stall over for every client: ${rec.detail}`);
            }, 1000);
            cleanups.push({ what: "stall poll", fn: () => clearInterval(poll) });
          }, e.durationMs);
          return;
        }
        case "ado-fault": {
          const id = ++faultSeq;
          actions.push({ at: now, until: now + e.durationMs, label: `ado-${e.fault}` });
          log(`disturbance: Azure DevOps ${e.fault} for ${(e.durationMs / 1000).toFixed(0)} s`);
          activeFaults.set(id, adoFaultRules(e.fault));
          applyFaults();
          setTimeout(() => {
            activeFaults.delete(id);
            applyFaults();
          }, e.durationMs);
          return;
        }
        case "set-max-count":
        case "remove-template":
        case "add-template":
        case "delete-resource":
        case "create-resource": {
          const r = states.get(e.resource) as ResourceState;
          let label: string;
          if (e.kind === "set-max-count") {
            const t = r.templates.find((x) => x.id === e.template);
            if (t) t.maxCount = e.maxCount;
            label = `maxCount ${e.resource}/${e.template}=${e.maxCount}`;
          } else if (e.kind === "remove-template") {
            r.templates = r.templates.filter((x) => x.id !== e.template);
            label = `template ${e.resource}/${e.template} removed`;
          } else if (e.kind === "add-template") {
            const all = [...r.def.templates, ...r.def.extraTemplates];
            const t = all.find((x) => x.id === e.template);
            if (t && !r.templates.some((x) => x.id === t.id)) {
              r.templates = all
                .filter((x) => x === t || r.templates.some((y) => y.id === x.id))
                .map((x) => {
                  const current = r.templates.find((y) => y.id === x.id);
                  return current ?? { ...x };
                });
            }
            label = `template ${e.resource}/${e.template} added`;
          } else if (e.kind === "delete-resource") {
            label = `resource ${e.resource} deleted`;
          } else {
            label = `resource ${e.resource} created again`;
          }
          actions.push({ at: now, label });
          log(`edit: ${label}`);
          try {
            if (e.kind === "delete-resource") await deleteResource(r);
            else if (e.kind === "create-resource") await createResource(r);
            else if (r.exists) await patchTemplates(r);
          } catch (err) {
            log(`edit failed (${label}): ${(err as Error).message}`);
          }
          return;
        }
      }
    };

    const pending: Promise<unknown>[] = [];
    const timeline = [
      ...schedule.jobs.map((j) => ({ at: j.at, run: () => queueJob(j) })),
      ...schedule.events.map((e) => ({ at: e.at, run: () => runEvent(e) })),
    ].sort((a, b) => a.at - b.at);
    for (const item of timeline) {
      await at(item.at);
      pending.push(
        item.run().catch((err: unknown) => log(`schedule item at ${item.at} ms failed: ${(err as Error).message}`)),
      );
    }
    await at(schedule.options.lengthMs);
    await Promise.all(pending);
    ado.control.clearFaults();
    proxy.stopFreezing();
    log(`schedule done after ${((Date.now() - t0) / 1000).toFixed(0)} s; draining`);

    // ---- drain: every job finished
    const unfinished = () => [...histories.values()].filter((h) => h.changes.at(-1)?.state !== "finished");
    const drainDeadline = Date.now() + (o.quick ? 240_000 : 420_000);
    while (unfinished().length > 0 && Date.now() < drainDeadline) {
      await new Promise<void>((resolve) => {
        const done = () => {
          finishedWatchers.delete(done);
          resolve();
        };
        finishedWatchers.add(done);
        setTimeout(done, 2000);
      });
    }
    const drainedAt = Date.now();
    const leftUnfinished = unfinished().map((h) => structuredClone(h));
    log(`drain over after ${((drainedAt - t0) / 1000).toFixed(0)} s: ${leftUnfinished.length} job(s) unfinished`);
    for (const h of leftUnfinished) cancel(h.requestId);

    // ---- settle (resources still there): agent registrations whose pods are gone must be collected
    const resourceNames = schedule.world.map((r) => r.name);
    const podAgentName = new RegExp(`^(${resourceNames.join("|")})-[a-z0-9]{5}$`);
    const livePodNames = () =>
      new Set(
        podInformer.store
          .list()
          .filter((p) => !["Succeeded", "Failed"].includes(p.status?.phase ?? ""))
          .map((p) => p.metadata.name),
      );
    const staleAgents = () => {
      const live = livePodNames();
      return ado.control
        .listAgents()
        .filter((a) => podAgentName.test(a.name) && !live.has(a.name) && a.status === "offline");
    };
    const settleDeadline = Date.now() + 120_000;
    while (staleAgents().length > 0 && Date.now() < settleDeadline) await sleep(2000);
    const staleAfterSettle = staleAgents().map((a) => ({ name: a.name, pool: a.poolName, since: a.statusChangedOn }));
    log(`settle: ${staleAfterSettle.length} agent registration(s) of gone pods still there`);

    // ---- idle: nothing happens for a while; what does the operator still write? (After a pause: the last jobs'
    // pods finish, warm pods are replaced.)
    await sleep(20_000);
    const idleFrom = Date.now();
    // Which status fields change while nothing happens (read every second, transition times left out).
    const statusChanges: Record<string, number> = {};
    const lastStatus = new Map<string, Map<string, string>>();
    while (Date.now() - idleFrom < 30_000) {
      for (const r of states.values()) {
        if (!r.exists) continue;
        const got = await client
          .request<{ status?: unknown }>({ path: asaPath(r.namespace, r.def.name) })
          .catch(() => undefined);
        if (!got) continue;
        const flat = flatten(got.status ?? {});
        const before = lastStatus.get(r.def.name);
        if (before) {
          for (const [path, value] of flat) {
            if (before.get(path) !== value) statusChanges[path] = (statusChanges[path] ?? 0) + 1;
          }
        }
        lastStatus.set(r.def.name, flat);
      }
      await sleep(1000);
    }
    const idleTo = Date.now();
    audit.push(...auditTail.read());
    const idleWrites: Record<string, number> = {};
    for (const r of audit) {
      if (!r.user.startsWith(replicaPrefix) || r.at < idleFrom || r.at >= idleTo) continue;
      const key = `${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ""} ${r.code}`;
      idleWrites[key] = (idleWrites[key] ?? 0) + 1;
    }
    log(
      `idle for 30 s: the operator wrote ${JSON.stringify(idleWrites)}; status fields that changed: ${JSON.stringify(statusChanges)}`,
    );

    // ---- teardown: every resource deleted; everything must go
    for (const r of states.values()) if (r.exists) await deleteResource(r).catch(() => {});
    const teardownAt = Date.now();
    const leftovers = async () => {
      const pods = podInformer.store.list().map((p) => ({
        name: `${p.metadata.namespace}/${p.metadata.name}`,
        phase: p.status?.phase ?? "Pending",
        deleting: Boolean(p.metadata.deletionTimestamp),
      }));
      const pvcs: string[] = [];
      for (const ns of [nsA, nsB]) {
        const list = await client
          .request<{ items: { metadata: { name: string } }[] }>({
            path: `/api/v1/namespaces/${ns}/persistentvolumeclaims`,
          })
          .catch(() => ({ items: [] }));
        pvcs.push(...list.items.map((p) => `${ns}/${p.metadata.name}`));
      }
      const templatePlaceholders = new Set(
        schedule.world.flatMap((r) =>
          [...r.templates, ...r.extraTemplates].map((t) => `dummy-agent-${templateKey(t)}`),
        ),
      );
      const agents = ado.control.listAgents().map((a) => ({
        name: a.name,
        pool: a.poolName,
        status: a.status,
        kind: templatePlaceholders.has(a.name)
          ? "template placeholder"
          : a.name.startsWith("dummy-agent")
            ? "pipeline placeholder"
            : podAgentName.test(a.name)
              ? "agent of a pod"
              : "other",
      }));
      return { pods, pvcs, agents };
    };
    const teardownDeadline = Date.now() + 150_000;
    let left = await leftovers();
    while (Date.now() < teardownDeadline) {
      left = await leftovers();
      if (left.pods.length + left.pvcs.length + left.agents.length === 0) break;
      // Pods and PVCs go with Kubernetes' garbage collection; agent registrations only if someone deletes them.
      if (left.pods.length + left.pvcs.length === 0 && Date.now() - teardownAt > 90_000) break;
      await sleep(2000);
    }
    log(
      `teardown: after ${((Date.now() - teardownAt) / 1000).toFixed(0)} s, ${left.pods.length} pod(s), ${left.pvcs.length} PVC(s), ${left.agents.length} agent registration(s) left`,
    );

    // ---- final evaluation
    await sleep(1500);
    audit.push(...auditTail.read());
    const replicaList = replicas.replicas.map((r: Replica) => ({
      identity: r.identity,
      startedAt: iso(r.startedAt),
      exit: r.exit ? { ...r.exit, at: iso(r.exit.at) } : undefined,
    }));
    const leaderChanges = replicas.leaderChanges.map((c) => ({ at: iso(c.at), identity: c.identity }));
    const finalTemplates = (h: JobHistory) => {
      const name = h.resource.split("/")[1] ?? "";
      const r = states.get(name);
      return r ? r.def.templates : [];
    };
    const podDeletes = audit
      .filter((r) => r.resource === "pods" && !r.subresource && r.verb === "delete" && r.code < 300 && r.name)
      .map((r) => ({ at: r.at, user: r.user, namespace: r.namespace ?? "", name: r.name as string }));
    const resourceDeletions = specRecords.filter((s) => s.maxCounts === null);
    const podCreates = new Map(
      audit
        .filter((r) => r.resource === "pods" && !r.subresource && r.verb === "create" && r.code < 300 && r.name)
        .map((r) => [r.name as string, { at: r.at, user: r.user }]),
    );
    // Who created and who deleted the pods named in violations (from the audit log).
    const withPodHistory = (v: Violation): Violation => {
      if (v.kind === "failed-no-agent") {
        // When the placeholder of the job's template was registered, and when the template appeared.
        const h = histories.get(v.details.requestId as number);
        const r = h ? states.get(h.resource.split("/")[1] ?? "") : undefined;
        const t = r ? [...r.def.templates, ...r.def.extraTemplates].find((x) => x.id === h?.template) : undefined;
        if (!t || !r) return v;
        const placeholder = `dummy-agent-${templateKey(t)}`;
        const seen = agentSeen.get(placeholder);
        const queuedAt = h?.changes[0]?.at ?? 0;
        const added = actions.filter(
          (a) =>
            a.at <= queuedAt &&
            (a.label.includes(`${r.def.name}/${t.id} added`) || a.label.includes(`resource ${r.def.name} created`)),
        );
        return {
          ...v,
          details: {
            ...v.details,
            template: `${r.def.name}/${t.id}`,
            placeholder,
            placeholderRegisteredAt: seen ? iso(seen.first) : "never",
            templateAddedAt: added.map((a) => iso(a.at)).at(-1) ?? "at the start",
            queuedAt: iso(queuedAt),
          },
        };
      }
      const name = (v.details.pod ?? v.details.agent) as string | undefined;
      if (!name) return v;
      const created = podCreates.get(name);
      return {
        ...v,
        details: {
          ...v.details,
          ...(created ? { podCreated: { at: iso(created.at), by: created.user } } : {}),
          podDeleted: podDeletes.filter((d) => d.name === name).map((d) => ({ at: iso(d.at), by: d.user })),
        },
      };
    };
    const jobsCheck = checkJobs({
      jobs: [...histories.values()],
      podDeletes,
      isOperator: (u) => u.startsWith(replicaPrefix),
      isGarbageCollector: (u) => u === GC_USER,
      ownerDeleted: (podName) => {
        const seen = podsSeen.get(podName);
        const deletion = resourceDeletions.find((d) => d.uid === seen?.ownerUid && d.at < teardownAt);
        if (!seen || !deletion) return undefined;
        const created = podCreates.get(podName)?.at ?? seen.createdAt;
        return { deletedAt: deletion.at, podCreatedAt: created };
      },
      fitsAtEnd: (h) => finalTemplates(h).some((t) => templateFits(t.capabilities, h.demands)),
      unfinished: leftUnfinished,
      context,
    });
    // Jobs that got the harness's cancellation while still unfinished at the end are counted there, not as killed.
    const leftIds = new Set(leftUnfinished.map((h) => h.requestId));
    const jobViolations = jobsCheck.violations.filter(
      (v) => !(v.invariant === 1 && leftIds.has(v.details.requestId as number)),
    );
    const leadership = checkLeadership(operatorWrites(), context);
    const leftoverViolations: Violation[] = [
      ...staleAfterSettle.map((a) => ({
        invariant: 5 as const,
        kind: "agent-of-gone-pod-not-collected",
        at: drainedAt,
        message: `agent ${a.name} (${a.pool}) still registered ${((Date.now() - drainedAt) / 1000).toFixed(0)} s after the drain though its pod is gone`,
        details: a,
      })),
      ...left.pods.map((p) => ({
        invariant: 5 as const,
        kind: "pod-left",
        at: teardownAt,
        message: `pod ${p.name} (${p.phase}${p.deleting ? ", terminating" : ""}) left after the resources were deleted`,
        details: p,
      })),
      ...left.pvcs.map((p) => ({
        invariant: 5 as const,
        kind: "pvc-left",
        at: teardownAt,
        message: `PVC ${p} left after the resources were deleted`,
        details: { pvc: p },
      })),
      ...left.agents.map((a) => ({
        invariant: 5 as const,
        kind: `registration-left: ${a.kind}`,
        at: teardownAt,
        message: `${a.kind} ${a.name} (${a.pool}, ${a.status}) still registered after the resources were deleted`,
        details: a,
      })),
    ];
    const violations: Violation[] = [
      ...jobViolations,
      ...checker.violations,
      ...leftoverViolations,
      ...leadership.violations,
    ]
      .map(withPodHistory)
      .sort((a, b) => a.invariant - b.invariant || a.at - b.at);

    // ---- outcome figures
    const finals = [...histories.values()];
    const byResult: Record<string, number> = {};
    for (const h of finals) {
      const key = harnessCancelled.has(h.requestId)
        ? `${h.result ?? "unfinished"} (cancelled by the harness)`
        : (h.result ?? "unfinished");
      byResult[key] = (byResult[key] ?? 0) + 1;
    }
    // How long jobs waited: queued → running (first time), for the jobs that ran.
    const waits = finals.flatMap((h) => {
      const queued = h.changes[0]?.at;
      const running = h.changes.find((c) => c.state === "running")?.at;
      return queued !== undefined && running !== undefined ? [{ h, ms: running - queued }] : [];
    });
    const waitSummary = rounded(summarize(waits.map((w) => w.ms)));
    const slowest = [...waits]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 5)
      .map((w) => ({
        requestId: w.h.requestId,
        resource: w.h.resource,
        template: w.h.template,
        waitedS: Math.round(w.ms / 100) / 10,
        queuedAt: iso(w.h.changes[0]?.at ?? 0),
        history: w.h.changes.map((c) => `${iso(c.at).slice(11, 23)} ${c.state}${c.agent ? ` ${c.agent}` : ""}`),
        context: context(w.h.changes[0]?.at ?? 0),
      }));
    // The operator's writes to the API server by replica, verb, resource and answer (refusals show stale caches).
    const writeMix: Record<string, Record<string, number>> = {};
    for (const r of audit) {
      if (!r.user.startsWith(replicaPrefix)) continue;
      const m = writeMix[r.user] ?? {};
      writeMix[r.user] = m;
      const key = `${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ""} ${r.code}`;
      m[key] = (m[key] ?? 0) + 1;
    }
    const writeTotals = { ok: 0, notFound: 0, conflict: 0, other: 0 };
    for (const r of audit) {
      if (!r.user.startsWith(replicaPrefix)) continue;
      if (r.code < 300) writeTotals.ok++;
      else if (r.code === 404) writeTotals.notFound++;
      else if (r.code === 409) writeTotals.conflict++;
      else writeTotals.other++;
    }
    // Waits by when the job was queued (per minute of the schedule): the disturbances' effect on latency.
    const waitByMinute = new Map<number, number[]>();
    for (const w of waits) {
      const minute = Math.floor(((w.h.changes[0]?.at ?? t0) - t0) / 60_000);
      const list = waitByMinute.get(minute) ?? [];
      list.push(w.ms);
      waitByMinute.set(minute, list);
    }
    const stats = {
      operatorWrites: { ...writeTotals, byReplica: writeMix },
      operatorWritesWhileIdle30s: idleWrites,
      statusFieldsChangedWhileIdle: statusChanges,
      jobWaitByMinute: [...waitByMinute.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([minute, list]) => ({ minute, jobs: list.length, ...rounded(summarize(list)) })),
      jobWaitMs: waitSummary,
      slowestJobs: slowest,
      jobsQueued: finals.length,
      jobsByResult: byResult,
      harnessCancellations: harnessCancelled.size,
      podsCreated: podsSeen.size,
      peakLivePods: peakLive,
      replicasStarted: replicas.replicas.length,
      replicaExitsLeaseLost: replicas.replicas.filter((r) => r.exit?.cause === "lease-lost").length,
      replicaCrashes: replicas.replicas.filter((r) => r.exit?.cause === "crashed").length,
      leaderChanges: replicas.leaderChanges.filter((c) => c.identity !== "").length,
      componentRestarts,
      proxy: proxy.stats(),
      azureDevOpsRequests: requests,
      auditRecords: audit.length,
      liveChecks: checker.checks,
      heldAboveMaxCount: [...checker.heldExcess.values()].map((h) => ({ ...h, at: iso(h.at) })),
      scheduleS: Math.round((drainedAt - t0) / 1000),
    };

    const ids: InvariantId[] = [1, 2, 3, 4, 5, 6];
    const kindsOf = (list: Violation[]) => {
      const kinds: Record<string, number> = {};
      for (const v of list) kinds[v.kind] = (kinds[v.kind] ?? 0) + 1;
      return kinds;
    };
    const invariants = ids.map((id) => {
      const list = violations.filter((v) => v.invariant === id);
      const expected = jobsCheck.expected.filter((v) => v.invariant === id);
      return {
        id,
        name: invariantNames[id],
        violations: list.length,
        kinds: kindsOf(list),
        examples: pickExamples(list, 6).map((v) => ({ ...v, at: iso(v.at) })),
        expected: expected.length,
        expectedKinds: kindsOf(expected),
        expectedExamples: expected.slice(0, 3).map((v) => ({ ...v, at: iso(v.at) })),
      };
    });
    const tables: Table[] = [
      {
        title: `Invariants (seed ${o.seed}${o.quick ? ", quick" : ""}; ${finals.length} jobs; violations counted as they were found)`,
        columns: ["#", "invariant", "violations", "by kind", "not counted (expected)"],
        rows: invariants.map((i) => [
          String(i.id),
          i.name,
          String(i.violations),
          Object.entries(i.kinds)
            .map(([k, n]) => `${k} ${n}`)
            .join("; ") || "-",
          Object.entries(i.expectedKinds)
            .map(([k, n]) => `${k} ${n}`)
            .join("; ") || "-",
        ]),
        notes: [
          "3: live = not Succeeded/Failed, not terminating, agent container running, agent not done with its job; judged when a pod is created",
          "4: pods not Succeeded/Failed (terminating ones included: they still mount the claim)",
          "6: from the audit log (each replica has a certificate of its own): writes after a newer replica had started writing",
        ],
      },
      {
        title: "Run",
        columns: ["what", "value"],
        rows: [
          ["jobs queued", String(stats.jobsQueued)],
          [
            "jobs by result",
            Object.entries(byResult)
              .map(([k, n]) => `${k} ${n}`)
              .join("; "),
          ],
          [
            "queued → running, median / p90 / max (s)",
            `${secs(waitSummary.median, 1)} / ${secs(waitSummary.p90, 1)} / ${secs(waitSummary.max, 1)}`,
          ],
          ["pods created / peak live", `${stats.podsCreated} / ${stats.peakLivePods}`],
          [
            "operator writes in 30 s of idleness (resources untouched, no jobs)",
            Object.entries(idleWrites)
              .map(([k, n]) => `${k}: ${n}`)
              .join(", ") || "none",
          ],
          [
            "status fields that changed in those 30 s (reads every second)",
            Object.entries(statusChanges)
              .map(([k, n]) => `${k}: ${n}`)
              .join(", ") || "none",
          ],
          [
            "queued → running by minute of the schedule, median (s)",
            [...waitByMinute.entries()]
              .sort((a, b) => a[0] - b[0])
              .map(([m, list]) => `${m}: ${secs(summarize(list).median, 0)}`)
              .join(", "),
          ],
          [
            "operator writes to the API: ok / 404 / 409 / other",
            `${writeTotals.ok} / ${writeTotals.notFound} / ${writeTotals.conflict} / ${writeTotals.other}`,
          ],
          [
            "replicas started / exited on lease loss / crashed / leader changes",
            `${stats.replicasStarted} / ${stats.replicaExitsLeaseLost} / ${stats.replicaCrashes} / ${stats.leaderChanges}`,
          ],
          ["control-plane components restarted", componentRestarts.map((c) => c.name).join(", ") || "none"],
          ["proxy connections frozen / refused", `${stats.proxy.frozenTotal} / ${stats.proxy.refused}`],
          ...Object.entries(requests).map(([who, byStatus]) => [
            `Azure DevOps requests of ${who}`,
            Object.entries(byStatus)
              .sort((a, b) => b[1] - a[1])
              .map(([k, n]) => `${k}: ${n}`)
              .join(", "),
          ]),
          ["schedule + drain (s)", String(stats.scheduleS)],
        ],
      },
      {
        title: "Disturbances, as executed (s from the start of the schedule)",
        columns: ["at", "until", "what", "detail"],
        rows: actions.map((a) => [
          ((a.at - t0) / 1000).toFixed(1),
          a.until === undefined ? "" : Number.isFinite(a.until) ? ((a.until - t0) / 1000).toFixed(1) : "not over",
          a.label,
          a.detail ?? "",
        ]),
      },
      {
        title: "Examples (up to 3 per invariant; all in the JSON file)",
        columns: ["#", "at (s)", "what", "while"],
        rows: invariants.flatMap((i) =>
          violations
            .filter((v) => v.invariant === i.id)
            .slice(0, 3)
            .map((v) => [
              String(v.invariant),
              ((v.at - t0) / 1000).toFixed(1),
              v.message.length > 150 ? `${v.message.slice(0, 147)}...` : v.message,
              context(v.at).join(", "),
            ]),
        ),
      },
    ];
    const result: BenchResult = {
      name: o.quick ? "chaos-quick" : "chaos",
      date: started.toISOString(),
      durationS: Math.round((Date.now() - started.getTime()) / 1000),
      machine: { ...machineInfo({ kubernetes: "v1.37.2" }), loadAverage1mEnd: machineInfo().loadAverage1m },
      ...(gitRevision() ? { revision: gitRevision() } : {}),
      parameters: {
        seed: o.seed,
        quick: o.quick,
        jobs: schedule.jobs.length,
        scheduleLengthS: schedule.options.lengthMs / 1000,
        operator: operatorTiming,
        emulator: { lockDurationMs: 20_000, cancelTimeoutMs: 15_000, agentRenewIntervalMs: 2000 },
        specGraceMs: SPEC_GRACE_MS,
        replicas: 2,
      },
      results: {
        schedule: summary,
        counts: Object.fromEntries(invariants.map((i) => [String(i.id), i.violations])),
        invariants,
        stats,
        replicas: replicaList,
        leaderChanges,
        disturbances: actions.map((a) => ({ ...a, at: iso(a.at), ...(a.until ? { until: iso(a.until) } : {}) })),
        leftovers: { afterSettle: staleAfterSettle, afterTeardown: left },
        extraPlaceholdersRegistered: extraPlaceholders.length,
      },
      tables,
    };
    await cleanup();
    return { result, workDir, failed: false };
  } catch (err) {
    log(`chaos run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanup();
    throw Object.assign(err instanceof Error ? err : new Error(String(err)), { workDir });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** JSON paths to values (transition times left out: they may change without anything else changing). */
function flatten(value: unknown, prefix = "", out = new Map<string, string>()): Map<string, string> {
  if (value !== null && typeof value === "object") {
    const key = (v: unknown, i: number) => {
      const o = (v ?? {}) as { type?: string; claimName?: string; index?: number };
      return String(o.type ?? o.claimName ?? o.index ?? i);
    };
    const entries = Array.isArray(value) ? value.map((v, i) => [key(v, i), v] as const) : Object.entries(value);
    // The order of a list is a change of its own (a list rewritten in another order is a write too).
    if (Array.isArray(value)) out.set(`${prefix}.(order)`, entries.map(([k]) => k).join(","));
    for (const [k, v] of entries) {
      if (k === "lastTransitionTime") continue;
      flatten(v, prefix ? `${prefix}.${k}` : k, out);
    }
  } else {
    out.set(prefix, JSON.stringify(value));
  }
  return out;
}

/** Examples spread over the kinds: the first of each kind, then more in order. */
function pickExamples(list: Violation[], n: number): Violation[] {
  const out: Violation[] = [];
  const kinds = new Set<string>();
  for (const v of list) {
    if (out.length >= n) break;
    if (!kinds.has(v.kind)) {
      kinds.add(v.kind);
      out.push(v);
    }
  }
  for (const v of list) {
    if (out.length >= n) break;
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

export function removeWorkDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
