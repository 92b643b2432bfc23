/**
 * Structured logging: one JSON object per line (time, level, msg, fields), child loggers carrying fixed fields
 * (one per AutoScaledAgent), and a minimum level. Implements the runtime's Logger interface.
 */
import type { Logger } from "../runtime/logger.ts";

export type Level = "debug" | "info" | "warn" | "error";
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface StructuredLogger extends Logger {
  child(fields: Record<string, unknown>): StructuredLogger;
}

export interface LoggerOptions {
  level?: Level;
  /** "json" (default) or "text" (human-readable, for `npm start` in a terminal). */
  format?: "json" | "text";
  write?: (line: string) => void;
  now?: () => Date;
}

function errorFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? v.message : v;
  return out;
}

export function createLogger(options: LoggerOptions = {}, base: Record<string, unknown> = {}): StructuredLogger {
  const min = order[options.level ?? "info"];
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < min) return;
    const all = { ...base, ...errorFields(fields ?? {}) };
    if (options.format === "text") {
      const rest = Object.entries(all)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      write(`${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}${rest ? ` ${rest}` : ""}`);
      return;
    }
    write(JSON.stringify({ time: now().toISOString(), level, msg, ...all }));
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}
