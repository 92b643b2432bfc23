/**
 * Credentials for a ServiceAccount through the TokenRequest API, so tests can run a process with exactly
 * the permissions a Role or the Helm chart grants it (and nothing of the admin's).
 */
import { writeFileSync } from "node:fs";
import type { KubeClient } from "../../src/kube/client.ts";
import { type ClusterConnection, kubeconfigYaml } from "../../src/kube/kubeconfig.ts";

export interface ServiceAccountRef {
  namespace: string;
  name: string;
  /** Token lifetime; the API server enforces a minimum of 10 minutes. */
  expirationSeconds?: number;
  /** Create the ServiceAccount when it does not exist. */
  create?: boolean;
}

export async function serviceAccountConnection(admin: KubeClient, ref: ServiceAccountRef): Promise<ClusterConnection> {
  const base = `/api/v1/namespaces/${ref.namespace}/serviceaccounts`;
  if (ref.create) {
    await admin
      .request({ method: "POST", path: base, body: { metadata: { name: ref.name } } })
      .catch((err: unknown) => {
        if ((err as { reason?: string }).reason !== "AlreadyExists") throw err;
      });
  }
  const answer = await admin.request<{ status: { token: string } }>({
    method: "POST",
    path: `${base}/${ref.name}/token`,
    body: {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds: ref.expirationSeconds ?? 3600 },
    },
  });
  const conn: ClusterConnection = {
    server: admin.connection.server,
    token: answer.status.token,
    namespace: ref.namespace,
  };
  if (admin.connection.ca) conn.ca = admin.connection.ca;
  return conn;
}

/** Writes a kubeconfig for the ServiceAccount and returns its connection. */
export async function writeServiceAccountKubeconfig(admin: KubeClient, ref: ServiceAccountRef, path: string) {
  const conn = await serviceAccountConnection(admin, ref);
  writeFileSync(path, kubeconfigYaml(conn, `${ref.namespace}-${ref.name}`), { mode: 0o600 });
  return conn;
}
