/**
 * Counting one client's requests on the API server, from the API server's own `/metrics`.
 *
 * `apiserver_request_total` has no user label, so the client gets an identity of its own (a ServiceAccount,
 * bound to cluster-admin, with a kubeconfig of its token) and API Priority and Fairness FlowSchemas that match
 * only that ServiceAccount, one per kind of request. They send it to the `exempt` priority level (no queueing,
 * no limit: the measurement changes nothing), and `apiserver_flowcontrol_dispatched_requests_total{flow_schema}`
 * then counts its requests by kind. Watches count once, when they start.
 */

import { writeServiceAccountKubeconfig } from "../../sim/control-plane/serviceaccount.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/client.ts";
import { eventually } from "../../test/support/cluster.ts";
import { parseSamples, sumOf } from "./prometheus.ts";

const writeVerbs = ["create", "update", "patch", "delete", "deletecollection"];

/** Kinds of request, in FlowSchema precedence order (the first that matches counts the request). */
export const requestKinds = {
  podWrites: {
    label: "pod writes",
    rule: { verbs: writeVerbs, apiGroups: [""], resources: ["pods", "pods/status", "pods/eviction"] },
  },
  statusWrites: {
    label: "AutoScaledAgent writes",
    rule: {
      verbs: writeVerbs,
      apiGroups: ["azurepipelines.k8s.scaler.io"],
      resources: ["autoscaledagents", "autoscaledagents/status"],
    },
  },
  eventWrites: {
    label: "event writes",
    rule: { verbs: writeVerbs, apiGroups: ["", "events.k8s.io"], resources: ["events"] },
  },
  otherWrites: { label: "other writes", rule: { verbs: writeVerbs, apiGroups: ["*"], resources: ["*"] } },
  reads: { label: "reads (get, list, watch)", rule: { verbs: ["*"], apiGroups: ["*"], resources: ["*"] } },
} as const;
export type RequestKind = keyof typeof requestKinds;
export const requestKindNames = Object.keys(requestKinds) as RequestKind[];

export type RequestCounts = Record<RequestKind, number> & {
  total: number;
  /**
   * The API server's own time for pod creations (every client's: POST on pods, not subresources), seconds summed
   * and count: while only the counted client creates pods, its mean create latency.
   */
  podCreates: { seconds: number; count: number };
};

export interface CountedIdentity {
  /** A kubeconfig for the ServiceAccount (what the counted process uses). */
  kubeconfig: string;
  /** `system:serviceaccount:<ns>:<name>` */
  user: string;
  /** The counts so far (API server's counters since it started). */
  counts(): Promise<RequestCounts>;
  /** Removes the FlowSchemas and the binding (the ServiceAccount goes with its namespace). */
  remove(): Promise<void>;
}

export async function countedIdentity(
  admin: KubeClient,
  options: { namespace: string; name: string; prefix: string; kubeconfigFile: string },
): Promise<CountedIdentity> {
  const { namespace, name, prefix } = options;
  await writeServiceAccountKubeconfig(
    admin,
    { namespace, name, create: true, expirationSeconds: 4 * 3600 },
    options.kubeconfigFile,
  );
  const binding = `${prefix}-cluster-admin`;
  await admin.request({
    method: "POST",
    path: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    body: {
      metadata: { name: binding },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
      subjects: [{ kind: "ServiceAccount", name, namespace }],
    },
  });
  const schemaName = (kind: RequestKind) => `${prefix}-${kind.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const created: string[] = [];
  // Precedence 1 is reserved for `exempt`; 2.. puts these before every built-in schema.
  for (const [i, kind] of requestKindNames.entries()) {
    const rule = requestKinds[kind].rule;
    await admin.request({
      method: "POST",
      path: "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
      body: {
        metadata: { name: schemaName(kind) },
        spec: {
          matchingPrecedence: 2 + i,
          priorityLevelConfiguration: { name: "exempt" },
          rules: [
            {
              subjects: [{ kind: "ServiceAccount", serviceAccount: { name, namespace } }],
              resourceRules: [{ ...rule, namespaces: ["*"], clusterScope: true }],
              ...(kind === "reads" ? { nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }] } : {}),
            },
          ],
        },
      },
    });
    created.push(schemaName(kind));
  }
  // The API server takes a schema into use once its controller has looked at it (it then sets Dangling).
  for (const schema of created) {
    await eventually(`FlowSchema ${schema} in use`, async () => {
      const fs = await admin.request<{ status?: { conditions?: { type: string; status: string }[] } }>({
        path: `/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/${schema}`,
      });
      return fs.status?.conditions?.some((c) => c.type === "Dangling" && c.status === "False") || undefined;
    });
  }
  const ignoreMissing = (err: unknown) => {
    if (!isNotFound(err)) throw err;
  };
  return {
    kubeconfig: options.kubeconfigFile,
    user: `system:serviceaccount:${namespace}:${name}`,
    async counts() {
      const samples = parseSamples(await admin.requestText({ path: "/metrics" }));
      const podPost = { verb: "POST", resource: "pods", subresource: "" };
      const counts = {
        total: 0,
        podCreates: {
          seconds: sumOf(samples, "apiserver_request_duration_seconds_sum", podPost),
          count: sumOf(samples, "apiserver_request_duration_seconds_count", podPost),
        },
      } as RequestCounts;
      for (const kind of requestKindNames) {
        counts[kind] = sumOf(samples, "apiserver_flowcontrol_dispatched_requests_total", {
          flow_schema: schemaName(kind),
        });
        counts.total += counts[kind];
      }
      return counts;
    },
    async remove() {
      for (const schema of created) {
        await admin
          .request({ method: "DELETE", path: `/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/${schema}` })
          .catch(ignoreMissing);
      }
      await admin
        .request({ method: "DELETE", path: `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${binding}` })
        .catch(ignoreMissing);
    },
  };
}

/** b − a, per kind. */
export function countsDelta(a: RequestCounts, b: RequestCounts): RequestCounts {
  const out = {
    total: b.total - a.total,
    podCreates: {
      seconds: b.podCreates.seconds - a.podCreates.seconds,
      count: b.podCreates.count - a.podCreates.count,
    },
  } as RequestCounts;
  for (const kind of requestKindNames) out[kind] = b[kind] - a[kind];
  return out;
}
