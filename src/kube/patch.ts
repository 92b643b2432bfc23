import type { KubeClient } from "./client.ts";
import type { KubeObject } from "./types.ts";

const contentTypes = {
  mergePatch: "application/merge-patch+json",
  strategicMergePatch: "application/strategic-merge-patch+json",
  jsonPatch: "application/json-patch+json",
  apply: "application/apply-patch+yaml",
} as const;

export interface WriteOptions {
  /** Recorded in managedFields; required for apply. */
  fieldManager?: string;
  /** Validate and default on the server without persisting. */
  dryRun?: boolean;
  /** How the server treats unknown or duplicate fields: `Strict` fails the request. */
  fieldValidation?: "Ignore" | "Warn" | "Strict";
  signal?: AbortSignal;
}

export interface JsonPatchOperation {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  value?: unknown;
  from?: string;
}

function writeQuery(options: WriteOptions, extra: Record<string, string | boolean | undefined> = {}) {
  return {
    fieldManager: options.fieldManager,
    dryRun: options.dryRun ? "All" : undefined,
    fieldValidation: options.fieldValidation,
    ...extra,
  };
}

function patch<T>(
  client: KubeClient,
  path: string,
  body: unknown,
  contentType: string,
  options: WriteOptions,
  extra?: Record<string, string | boolean | undefined>,
): Promise<T> {
  return client.request<T>({
    method: "PATCH",
    path,
    body,
    contentType,
    query: writeQuery(options, extra),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

export function mergePatch<T = KubeObject>(
  client: KubeClient,
  path: string,
  body: unknown,
  options: WriteOptions = {},
): Promise<T> {
  return patch<T>(client, path, body, contentTypes.mergePatch, options);
}

export function strategicMergePatch<T = KubeObject>(
  client: KubeClient,
  path: string,
  body: unknown,
  options: WriteOptions = {},
): Promise<T> {
  return patch<T>(client, path, body, contentTypes.strategicMergePatch, options);
}

export function jsonPatch<T = KubeObject>(
  client: KubeClient,
  path: string,
  operations: JsonPatchOperation[],
  options: WriteOptions = {},
): Promise<T> {
  return patch<T>(client, path, operations, contentTypes.jsonPatch, options);
}

export interface ApplyOptions extends WriteOptions {
  fieldManager: string;
  /** Take ownership of fields other managers own instead of failing with a conflict. */
  force?: boolean;
}

/**
 * Server-side apply of `obj` (must carry apiVersion, kind and metadata.name) at `path` (the object's own path,
 * e.g. resourcePath(type, { namespace, name })). Creates the object if it does not exist. The body is sent as
 * JSON, which is valid YAML.
 */
export function apply<T = KubeObject>(
  client: KubeClient,
  path: string,
  obj: KubeObject,
  options: ApplyOptions,
): Promise<T> {
  if (!options.fieldManager) throw new Error("apply: fieldManager is required");
  if (!obj.apiVersion || !obj.kind || !obj.metadata?.name)
    throw new Error("apply: apiVersion, kind and name are required");
  return patch<T>(client, path, obj, contentTypes.apply, options, { force: options.force ? true : undefined });
}

export type PatchType = "merge" | "strategic" | "json" | "apply";

const patchContentType: Record<PatchType, string> = {
  merge: contentTypes.mergePatch,
  strategic: contentTypes.strategicMergePatch,
  json: contentTypes.jsonPatch,
  apply: contentTypes.apply,
};

/**
 * Patches the status subresource of the object at `path`. With `type: "apply"`, `body` is the object (apiVersion,
 * kind, name and the status fields this manager owns) and `fieldManager` is required.
 */
export function patchStatus<T = KubeObject>(
  client: KubeClient,
  path: string,
  body: unknown,
  options: WriteOptions & { type?: PatchType; force?: boolean } = {},
): Promise<T> {
  const type = options.type ?? "merge";
  if (type === "apply" && !options.fieldManager) throw new Error("patchStatus: apply needs a fieldManager");
  return patch<T>(client, `${path}/status`, body, patchContentType[type], options, {
    force: type === "apply" && options.force ? true : undefined,
  });
}
