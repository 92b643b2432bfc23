/** The pure scaling core: decisions from observed state and `now`. See README.md in this folder. */

export * from "./cache-volumes.ts";
export * from "./jobs.ts";
export * from "./naming.ts";
export * from "./plan.ts";
export type * from "./types.ts";
