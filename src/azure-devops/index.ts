/** The Azure DevOps side: credentials, the REST client, the rate-limit governor, the shared poller, demands. */

export * from "./auth.ts";
export * from "./client.ts";
export * from "./demands.ts";
export * from "./errors.ts";
export * from "./governor.ts";
export * from "./poller.ts";
export * from "./types.ts";
