/**
 * Resolves a container's environment the way the kubelet does: literal values, secret and config map keys
 * (a missing object or key is a CreateContainerConfigError unless optional), field references, envFrom.
 */
import type { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/client.ts";
import type { Container, Pod } from "./types.ts";

export class ContainerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ContainerConfigError";
  }
}

type DataObject = { data?: Record<string, string> };

function fieldValue(pod: Pod, fieldPath: string, podIP: string | undefined): string {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (m) return (m[1] === "labels" ? pod.metadata.labels : pod.metadata.annotations)?.[m[2] ?? ""] ?? "";
  switch (fieldPath) {
    case "metadata.name":
      return pod.metadata.name;
    case "metadata.namespace":
      return pod.metadata.namespace;
    case "metadata.uid":
      return pod.metadata.uid;
    case "spec.nodeName":
      return pod.spec.nodeName ?? "";
    case "spec.serviceAccountName":
      return pod.spec.serviceAccountName ?? "default";
    case "status.podIP":
    case "status.hostIP":
      return fieldPath === "status.podIP" ? (podIP ?? "") : "127.0.0.1";
    default:
      throw new ContainerConfigError(`unsupported fieldPath ${fieldPath}`);
  }
}

export async function resolveEnv(
  client: KubeClient,
  pod: Pod,
  container: Container,
  podIP: string | undefined,
): Promise<Record<string, string>> {
  const ns = pod.metadata.namespace;
  const cache = new Map<string, DataObject | null>();
  const read = async (kind: "secrets" | "configmaps", name: string): Promise<DataObject | null> => {
    const key = `${kind}/${name}`;
    if (!cache.has(key)) {
      try {
        cache.set(key, await client.request<DataObject>({ path: `/api/v1/namespaces/${ns}/${kind}/${name}` }));
      } catch (err) {
        if (!isNotFound(err)) throw err;
        cache.set(key, null);
      }
    }
    return cache.get(key) ?? null;
  };
  const decode = (kind: "secrets" | "configmaps", v: string) =>
    kind === "secrets" ? Buffer.from(v, "base64").toString("utf8") : v;
  const label = (kind: "secrets" | "configmaps") => (kind === "secrets" ? "secret" : "configmap");
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const ref = from.secretRef ?? from.configMapRef;
    if (!ref) continue;
    const kind = from.secretRef ? "secrets" : "configmaps";
    const obj = await read(kind, ref.name);
    if (!obj) {
      if (ref.optional) continue;
      throw new ContainerConfigError(`${label(kind)} "${ref.name}" not found`);
    }
    for (const [k, v] of Object.entries(obj.data ?? {})) env[`${from.prefix ?? ""}${k}`] = decode(kind, v);
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom === undefined) {
      env[e.name] = e.value ?? "";
      continue;
    }
    const keyRef = e.valueFrom.secretKeyRef ?? e.valueFrom.configMapKeyRef;
    if (keyRef) {
      const kind = e.valueFrom.secretKeyRef ? "secrets" : "configmaps";
      const obj = await read(kind, keyRef.name);
      if (!obj) {
        if (keyRef.optional) continue;
        throw new ContainerConfigError(`${label(kind)} "${keyRef.name}" not found`);
      }
      const value = obj.data?.[keyRef.key];
      if (value === undefined) {
        if (keyRef.optional) continue;
        const kindName = kind === "secrets" ? "Secret" : "ConfigMap";
        throw new ContainerConfigError(`couldn't find key ${keyRef.key} in ${kindName} ${ns}/${keyRef.name}`);
      }
      env[e.name] = decode(kind, value);
    } else if (e.valueFrom.fieldRef) {
      env[e.name] = fieldValue(pod, e.valueFrom.fieldRef.fieldPath, podIP);
    } else {
      env[e.name] = "";
    }
  }
  return env;
}
