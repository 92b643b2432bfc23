/** Placeholder ("dummy") agents and offline-agent garbage collection: pure plans and the manager that acts. */

export * from "./manager.ts";
export * from "./plan.ts";
