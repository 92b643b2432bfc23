/**
 * Waiting for the emulator's state to reach something, driven by its events (no polling): the control handle's
 * `waitForJob` / `waitForAgent` and the service hooks' `waitForDelivery` share it. The timeout is wall-clock time,
 * since it guards the test that waits, not the emulated world.
 */

export interface WaitOptions {
  /** Default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Resolves with `check()` as soon as it is not undefined: now, or after one of the changes `subscribe` reports
 * (it registers the listener and returns how to remove it). Rejects after the timeout, with `describe()` saying
 * what was awaited, or when the signal aborts.
 */
export function waitUntil<V>(
  check: () => V | undefined,
  subscribe: (onChange: () => void) => () => void,
  describe: () => string,
  options: WaitOptions = {},
): Promise<V> {
  return new Promise<V>((resolve, reject) => {
    const now = check();
    if (now !== undefined) {
      resolve(now);
      return;
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    const cleanup = () => {
      clearTimeout(timer);
      unsubscribe();
      options.signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      cleanup();
      reject(options.signal?.reason);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`));
    }, timeoutMs);
    const unsubscribe = subscribe(() => {
      const v = check();
      if (v === undefined) return;
      cleanup();
      resolve(v);
    });
    options.signal?.addEventListener("abort", onAbort, { once: true });
  });
}
