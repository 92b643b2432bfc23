/**
 * Go duration strings (`time.ParseDuration` / `time.Duration.String()`), as the original operator's
 * `metav1.Duration` fields used them: "300ms", "1.5h", "2h45m", "5m0s".
 *
 * Parsing is exact (integer nanoseconds in a bigint, with Go's int64 range); the millisecond helpers are what
 * timers want. The CRD accepts the unsigned subset matched by {@link DURATION_PATTERN}; the parser also accepts
 * what Go accepts besides (a sign, a bare "0", ".5h", "5.h", "μs" with a Greek mu).
 */

/** The pattern the original CRD put on every duration field (unsigned, each number with a unit). */
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

const NANOS_PER_UNIT: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  "\u00b5s": 1_000n, // MICRO SIGN, as Go writes it
  "\u03bcs": 1_000n, // GREEK SMALL LETTER MU, also accepted by Go
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const MAX_INT64 = (1n << 63n) - 1n;
const NS_PER_MS = 1_000_000n;

export class DurationError extends Error {
  constructor(text: string, reason: string) {
    super(`invalid duration ${JSON.stringify(text)}: ${reason}`);
    this.name = "DurationError";
  }
}

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";

/** Parses a Go duration string into integer nanoseconds; throws {@link DurationError} when Go would refuse it. */
export function parseDurationNanoseconds(text: string): bigint {
  let s = text;
  let negative = false;
  if (s.startsWith("-") || s.startsWith("+")) {
    negative = s.startsWith("-");
    s = s.slice(1);
  }
  if (s === "0") return 0n;
  if (s === "") throw new DurationError(text, "expected a number followed by a unit, e.g. 5m or 1h30m");
  let total = 0n;
  while (s !== "") {
    let i = 0;
    while (isDigit(s[i])) i++;
    const whole = s.slice(0, i);
    let fraction = "";
    if (s[i] === ".") {
      const start = ++i;
      while (isDigit(s[i])) i++;
      fraction = s.slice(start, i);
    }
    if (whole === "" && fraction === "") {
      throw new DurationError(text, `expected a number at ${JSON.stringify(s)}`);
    }
    s = s.slice(i);
    let u = 0;
    while (u < s.length && s[u] !== "." && !isDigit(s[u])) u++;
    const unit = s.slice(0, u);
    if (unit === "") throw new DurationError(text, 'missing unit (one of "ns", "us", "µs", "ms", "s", "m", "h")');
    const perUnit = NANOS_PER_UNIT[unit];
    if (perUnit === undefined) {
      throw new DurationError(
        text,
        `unknown unit ${JSON.stringify(unit)} (use "ns", "us", "µs", "ms", "s", "m" or "h")`,
      );
    }
    s = s.slice(u);
    let value = BigInt(whole === "" ? "0" : whole) * perUnit;
    if (fraction !== "") value += (BigInt(fraction) * perUnit) / 10n ** BigInt(fraction.length);
    total += value;
    if (total > MAX_INT64 + (negative ? 1n : 0n)) throw new DurationError(text, "out of range (more than ~292 years)");
  }
  return negative ? -total : total;
}

/** Parses a Go duration string into milliseconds (fractional below 1ms); throws {@link DurationError}. */
export function parseDuration(text: string): number {
  const ns = parseDurationNanoseconds(text);
  const ms = ns / NS_PER_MS;
  return Number(ms) + Number(ns - ms * NS_PER_MS) / 1e6;
}

/** True when `text` parses as a Go duration. */
export function isDuration(text: string): boolean {
  try {
    parseDurationNanoseconds(text);
    return true;
  } catch {
    return false;
  }
}

/** True when `text` is a duration the CRD accepts: {@link DURATION_PATTERN} and within Go's range. */
export function isCrdDuration(text: string): boolean {
  return new RegExp(DURATION_PATTERN).test(text) && isDuration(text);
}

function trimFraction(digits: string): string {
  const trimmed = digits.replace(/0+$/, "");
  return trimmed === "" ? "" : `.${trimmed}`;
}

/** Formats nanoseconds the way Go's `time.Duration.String()` does: "0s", "300ms", "1.5µs", "2h45m0s". */
export function formatDurationNanoseconds(nanoseconds: bigint): string {
  if (nanoseconds === 0n) return "0s";
  const sign = nanoseconds < 0n ? "-" : "";
  const u = nanoseconds < 0n ? -nanoseconds : nanoseconds;
  if (u < 1_000n) return `${sign}${u}ns`;
  if (u < 1_000_000n) return `${sign}${u / 1_000n}${trimFraction(String(u % 1_000n).padStart(3, "0"))}µs`;
  if (u < 1_000_000_000n) {
    return `${sign}${u / 1_000_000n}${trimFraction(String(u % 1_000_000n).padStart(6, "0"))}ms`;
  }
  const seconds = u / 1_000_000_000n;
  const secondsText = `${seconds % 60n}${trimFraction(String(u % 1_000_000_000n).padStart(9, "0"))}s`;
  const minutes = (seconds / 60n) % 60n;
  const hours = seconds / 3600n;
  if (hours > 0n) return `${sign}${hours}h${minutes}m${secondsText}`;
  if (minutes > 0n) return `${sign}${minutes}m${secondsText}`;
  return `${sign}${secondsText}`;
}

/** Formats milliseconds (rounded to whole nanoseconds) as a Go duration string, e.g. 300000 -> "5m0s". */
export function formatDuration(milliseconds: number): string {
  if (!Number.isFinite(milliseconds)) throw new RangeError(`cannot format ${milliseconds} as a duration`);
  const whole = Math.trunc(milliseconds);
  const ns = BigInt(whole) * NS_PER_MS + BigInt(Math.round((milliseconds - whole) * 1e6));
  return formatDurationNanoseconds(ns);
}
