/**
 * REST paths of Kubernetes resources: `/api/v1/...` for the core group, `/apis/<group>/<version>/...` otherwise.
 */

/** A resource type: its API version (`v1`, `coordination.k8s.io/v1`) and plural resource name (`leases`). */
export interface ResourceType {
  apiVersion: string;
  resource: string;
}

export interface ResourcePathOptions {
  /** Omit for cluster-scoped resources, or to address a namespaced resource across all namespaces. */
  namespace?: string;
  name?: string;
  /** `status`, `scale`, `eviction`... (needs a name). */
  subresource?: string;
}

export function apiPrefix(apiVersion: string): string {
  return apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

export function resourcePath(type: ResourceType, options: ResourcePathOptions = {}): string {
  let path = apiPrefix(type.apiVersion);
  if (options.namespace) path += `/namespaces/${encodeURIComponent(options.namespace)}`;
  path += `/${type.resource}`;
  if (options.name !== undefined) {
    if (options.name === "") throw new Error(`resourcePath: empty name for ${type.resource}`);
    path += `/${encodeURIComponent(options.name)}`;
    if (options.subresource) path += `/${options.subresource}`;
  } else if (options.subresource) {
    throw new Error(`resourcePath: subresource ${options.subresource} needs a name`);
  }
  return path;
}
