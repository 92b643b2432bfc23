/**
 * The logging seam of the runtime. Structured: a short message plus fields. Anything with these four methods
 * works (the operator's logger, a test spy); the runtime never logs object contents that could hold secrets.
 */
export type LogFn = (message: string, fields?: Record<string, unknown>) => void;

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

/** A logger that drops everything: the default when no logger is given. */
export function silentLogger(): Logger {
  const drop: LogFn = () => {};
  return { debug: drop, info: drop, warn: drop, error: drop };
}

/** The message of any thrown value, for log fields. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
