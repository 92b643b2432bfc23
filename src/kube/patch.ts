/**
 * Writing objects without clobbering others' changes:
 * - `mergePatch` (RFC 7386: objects merge, `null` deletes, lists are replaced whole);
 * - `strategicMergePatch` (built-in types only: lists such as containers merge by key; custom resources reject
 *   it with 415);
 * - `jsonPatch` (RFC 6902; a `test` op makes a compare-and-swap);
 * - `apply`: server-side apply with a field manager (`force` takes over fields owned by other managers);
 * - `patchStatus` / `updateStatus`: the same on the status subresource (a plain update ignores status changes
 *   when the resource has one);
 * - `updateWithRetry(get, mutate, update)`: read-modify-write that retries 409 Conflicts with a fresh read.
 * Paths come from `resourcePath`.
 */
import { type BackoffOptions, backoffDelay } from "../runtime/backoff.ts";
import { type Clock, delay, type Random, systemClock } from "../runtime/clock.ts";
import { isConflict, type KubeClient } from "./client.ts";
import type { KubeObject } from "./types.ts";

export const contentTypes = {
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

/** Replaces the status of `obj` (PUT on the status subresource; `obj.metadata.resourceVersion` guards it). */
export function updateStatus<T extends KubeObject>(
  client: KubeClient,
  path: string,
  obj: T,
  options: WriteOptions = {},
): Promise<T> {
  return client.request<T>({
    method: "PUT",
    path: `${path}/status`,
    body: obj,
    query: writeQuery(options),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** Replaces the object (PUT; `obj.metadata.resourceVersion` makes it fail with 409 if it changed meanwhile). */
export function replace<T extends KubeObject>(
  client: KubeClient,
  path: string,
  obj: T,
  options: WriteOptions = {},
): Promise<T> {
  return client.request<T>({
    method: "PUT",
    path,
    body: obj,
    query: writeQuery(options),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

export interface UpdateWithRetryOptions<T> {
  /** Total attempts (reads + writes); default 5. */
  attempts?: number;
  /** Pause between attempts; default 20 ms doubling to 1 s, jitter 0.5. */
  backoff?: BackoffOptions;
  /** Use this as the first "read" (e.g. the informer's copy) to save a GET; later attempts always re-read. */
  initial?: T;
  clock?: Clock;
  random?: Random;
  signal?: AbortSignal;
}

/** The last conflict after all attempts, with how many were made. */
export class ConflictRetriesExhaustedError extends Error {
  readonly attempts: number;
  constructor(attempts: number, cause: unknown) {
    super(`still conflicting after ${attempts} attempts: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "ConflictRetriesExhaustedError";
    this.attempts = attempts;
  }
}

/**
 * Read-modify-write with optimistic concurrency. `mutate` gets a private copy of the current object and returns
 * the object to write, or `undefined` when nothing needs to change (then the current object is returned without
 * a write). A 409 Conflict from `update` starts over with a fresh `get`; other errors are thrown as they are.
 */
export async function updateWithRetry<T>(
  get: () => Promise<T>,
  mutate: (current: T, attempt: number) => T | undefined | Promise<T | undefined>,
  update: (next: T) => Promise<T>,
  options: UpdateWithRetryOptions<T> = {},
): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 5);
  const backoff = options.backoff ?? { initialMs: 20, maxMs: 1000, jitter: 0.5 };
  const clock = options.clock ?? systemClock();
  const random = options.random ?? Math.random;
  let lastConflict: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (options.signal?.aborted) throw options.signal.reason ?? new Error("aborted");
    const current = attempt === 0 && options.initial !== undefined ? options.initial : await get();
    const next = await mutate(structuredClone(current), attempt);
    if (next === undefined) return current;
    try {
      return await update(next);
    } catch (err) {
      if (!isConflict(err)) throw err;
      lastConflict = err;
    }
    if (attempt + 1 < attempts) {
      if (!(await delay(clock, backoffDelay(attempt, backoff, random), options.signal))) {
        throw options.signal?.reason ?? new Error("aborted");
      }
    }
  }
  throw new ConflictRetriesExhaustedError(attempts, lastConflict);
}
