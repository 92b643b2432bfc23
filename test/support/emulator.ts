/**
 * The Azure DevOps emulator in tests and benchmarks: one emulator per test file (started in `before`, back to its
 * start before each test, closed in `after`), and an offline placeholder agent registered through the REST API.
 */
import { after, before, beforeEach } from "node:test";
import {
  type AzureDevOpsEmulator,
  type AzureDevOpsEmulatorOptions,
  startAzureDevOpsEmulator,
} from "../../sim/azure-devops/index.ts";

/**
 * Registers the hooks that give the current test file (or `describe`) its own emulator, quiet unless `options.log`
 * says otherwise, and returns it. The emulator exists from `before` on: the returned object forwards to it, so it
 * can be kept in a `const` at the top of the file. `reset: false` keeps its state from one test to the next.
 * Hooks run in the order they are registered: register a hook that must run before the emulator starts, resets
 * or closes (e.g. stopping a client that polls it) before calling this.
 */
export function useEmulator(
  options: AzureDevOpsEmulatorOptions = {},
  settings: { reset?: boolean } = {},
): AzureDevOpsEmulator {
  let current: AzureDevOpsEmulator | undefined;
  before(async () => {
    current = await startAzureDevOpsEmulator({ log: () => undefined, ...options });
  });
  after(async () => {
    await current?.close();
  });
  if (settings.reset !== false) {
    beforeEach(() => {
      current?.control.reset();
    });
  }
  return new Proxy({} as AzureDevOpsEmulator, {
    get(_target, key) {
      if (current === undefined) throw new Error("the emulator starts in before(): use it in hooks and tests");
      const value: unknown = Reflect.get(current, key);
      return typeof value === "function" ? value.bind(current) : value;
    },
  });
}

/**
 * Registers an agent without a key, as the operator's placeholders are: it stays offline and keeps jobs whose
 * demands its capabilities satisfy queued instead of failed. Needs a manage-scope PAT.
 */
export async function registerPlaceholder(
  emu: Pick<AzureDevOpsEmulator, "organizationUrl" | "control">,
  options: { pat: string; name: string; capabilities: Record<string, string>; pool?: string },
): Promise<void> {
  const poolId = emu.control.poolId(options.pool === undefined ? {} : { pool: options.pool });
  const res = await fetch(`${emu.organizationUrl}/_apis/distributedtask/pools/${poolId}/agents?api-version=7.1`, {
    method: "POST",
    headers: {
      Authorization: `Basic ${Buffer.from(`:${options.pat}`).toString("base64")}`,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ name: options.name, version: "4.258.1", systemCapabilities: options.capabilities }),
  });
  if (res.status !== 200) {
    throw new Error(`placeholder ${options.name} not registered: HTTP ${res.status} ${await res.text()}`);
  }
}
