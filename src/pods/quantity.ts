/**
 * Kubernetes resource quantities (`250m`, `64Mi`, `1.5`, `2e3`): parsing with the grammar of
 * k8s.io/apimachinery's `ParseQuantity`, and exact comparison.
 *
 * ```
 * quantity        ::= signedNumber suffix
 * signedNumber    ::= number | "+" number | "-" number
 * number          ::= digits | digits "." digits | digits "." | "." digits
 * suffix          ::= binarySI | decimalExponent | decimalSI
 * binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
 * decimalSI       ::= m | "" | k | M | G | T | P | E
 * decimalExponent ::= "e" signedInteger | "E" signedInteger
 * ```
 *
 * Values are kept as exact fractions of BigInts, so `1Gi` vs `1073741824` or `0.5` vs `500m` compare exactly.
 * Pure: no I/O.
 */

/** A parsed quantity: `numerator / denominator` in base units (cores, bytes), denominator > 0. */
export interface Quantity {
  /** The text as given, trimmed. */
  readonly text: string;
  readonly numerator: bigint;
  readonly denominator: bigint;
}

export type QuantityErrorCode = "empty" | "syntax" | "suffix" | "out-of-range";

export type QuantityResult =
  | { readonly ok: true; readonly quantity: Quantity }
  | { readonly ok: false; readonly code: QuantityErrorCode; readonly message: string };

/** Decimal exponents beyond this are refused (the API server could not store them either). */
export const MAX_DECIMAL_EXPONENT = 100;

const binarySuffixes: Readonly<Record<string, bigint>> = {
  Ki: 2n ** 10n,
  Mi: 2n ** 20n,
  Gi: 2n ** 30n,
  Ti: 2n ** 40n,
  Pi: 2n ** 50n,
  Ei: 2n ** 60n,
};

/** Power of ten of each decimal SI suffix. */
const decimalSuffixes: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

const numberPattern = /^([+-]?)(?:(\d+)(?:\.(\d*))?|\.(\d+))/;

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x === 0n ? 1n : x;
}

function fraction(text: string, numerator: bigint, denominator: bigint): Quantity {
  const g = gcd(numerator, denominator);
  return { text, numerator: numerator / g, denominator: denominator / g };
}

/** Parses a quantity string. Surrounding whitespace is ignored; anything else outside the grammar is an error. */
export function parseQuantity(input: string): QuantityResult {
  const text = input.trim();
  if (text === "") return { ok: false, code: "empty", message: "is empty" };
  const m = numberPattern.exec(text);
  if (m === null) {
    return {
      ok: false,
      code: "syntax",
      message: `${JSON.stringify(text)} is not a quantity (a number with an optional suffix, such as 250m, 0.5, 64Mi or 1G)`,
    };
  }
  const sign = m[1] === "-" ? -1n : 1n;
  const whole = m[2] ?? "";
  const fractional = m[3] ?? m[4] ?? "";
  const suffix = text.slice(m[0].length);
  let numerator = sign * BigInt(`${whole}${fractional}` || "0");
  let denominator = 10n ** BigInt(fractional.length);

  const binary = binarySuffixes[suffix];
  if (binary !== undefined) return { ok: true, quantity: fraction(text, numerator * binary, denominator) };

  let exponent: number | undefined = Object.hasOwn(decimalSuffixes, suffix) ? decimalSuffixes[suffix] : undefined;
  if (exponent === undefined) {
    const e = /^[eE]([+-]?\d+)$/.exec(suffix);
    if (e === null) {
      return {
        ok: false,
        code: "suffix",
        message: `${JSON.stringify(text)} has an unknown suffix ${JSON.stringify(suffix)} (use one of Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E, or an exponent such as e3)`,
      };
    }
    exponent = Number(e[1]);
    if (Math.abs(exponent) > MAX_DECIMAL_EXPONENT) {
      return { ok: false, code: "out-of-range", message: `${JSON.stringify(text)} is out of range` };
    }
  }
  if (exponent >= 0) numerator *= 10n ** BigInt(exponent);
  else denominator *= 10n ** BigInt(-exponent);
  return { ok: true, quantity: fraction(text, numerator, denominator) };
}

/** Whether a string is a quantity. */
export function isQuantity(input: string): boolean {
  return parseQuantity(input).ok;
}

/** Reads an int-or-string quantity (as in a CRD field such as `maxCpuPerContainer`). */
export function quantityFrom(value: number | string): QuantityResult {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      return { ok: false, code: "syntax", message: `${value} is not an integer; write quantities as strings` };
    }
    return { ok: true, quantity: { text: String(value), numerator: BigInt(value), denominator: 1n } };
  }
  return parseQuantity(value);
}

/** -1, 0 or 1 as `a` is less than, equal to or greater than `b` (exactly, whatever their suffixes). */
export function compareQuantities(a: Quantity, b: Quantity): -1 | 0 | 1 {
  const left = a.numerator * b.denominator;
  const right = b.numerator * a.denominator;
  return left < right ? -1 : left > right ? 1 : 0;
}

/** The sign of a quantity: -1, 0 or 1. */
export function signOf(q: Quantity): -1 | 0 | 1 {
  return q.numerator < 0n ? -1 : q.numerator > 0n ? 1 : 0;
}
