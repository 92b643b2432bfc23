/** Agent pods: building them from a template, ExtraAgentContainers, stopping sidecars. See README.md in this folder. */

export * from "./build.ts";
export * from "./extra-containers.ts";
export * from "./quantity.ts";
export * from "./stop.ts";
