import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DURATION_PATTERN,
  formatDuration,
  formatDurationNanoseconds,
  isCrdDuration,
  isDuration,
  parseDuration,
  parseDurationNanoseconds,
} from "./duration.ts";

const S = 1_000_000_000n;

describe("parseDurationNanoseconds (Go's time.ParseDuration)", () => {
  const good: [string, bigint][] = [
    ["0", 0n],
    ["-0", 0n],
    ["+0", 0n],
    ["0s", 0n],
    ["5s", 5n * S],
    ["30s", 30n * S],
    ["1478s", 1478n * S],
    ["-5s", -5n * S],
    ["+5s", 5n * S],
    ["5.6s", 5n * S + 600_000_000n],
    ["5.s", 5n * S],
    [".5s", 500_000_000n],
    ["1.0s", S],
    ["1.00s", S],
    ["1.004s", S + 4_000_000n],
    ["100.00100s", 100n * S + 1_000_000n],
    ["10ns", 10n],
    ["11us", 11_000n],
    ["12µs", 12_000n],
    ["12μs", 12_000n],
    ["13ms", 13_000_000n],
    ["14s", 14n * S],
    ["15m", 15n * 60n * S],
    ["16h", 16n * 3600n * S],
    ["3h30m", (3n * 3600n + 30n * 60n) * S],
    ["10.5s4m", 4n * 60n * S + 10n * S + 500_000_000n],
    ["-2m3.4s", -(2n * 60n * S + 3n * S + 400_000_000n)],
    ["1h2m3s4ms5us6ns", 3600n * S + 120n * S + 3n * S + 4_000_000n + 5_000n + 6n],
    ["39h9m14.425s", (39n * 3600n + 9n * 60n + 14n) * S + 425_000_000n],
    ["52763797000ns", 52_763_797_000n],
    // Exact arithmetic: Go's float64 fraction rounds this one up to exactly 20m.
    ["0.3333333333333333333h", 1_200_000_000_000n - 1n],
    ["9007199254740993ns", 9_007_199_254_740_993n],
    ["9223372036854775807ns", (1n << 63n) - 1n],
    ["-9223372036854775808ns", -(1n << 63n)],
    ["1.5h", 5400n * S],
    ["2h45m", (2n * 3600n + 45n * 60n) * S],
    ["2h0m0s", 7200n * S],
  ];
  for (const [text, want] of good) {
    test(`${JSON.stringify(text)} = ${want}ns`, () => assert.equal(parseDurationNanoseconds(text), want));
  }

  const bad: [string, RegExp][] = [
    ["", /expected a number/],
    ["3", /missing unit/],
    ["-", /expected a number/],
    ["s", /expected a number/],
    [".", /expected a number/],
    ["-.", /expected a number/],
    [".s", /expected a number/],
    ["+.s", /expected a number/],
    ["1d", /unknown unit "d"/],
    ["5 m", /unknown unit " m"/],
    ["5m ", /unknown unit "m "/],
    ["1.5.5h", /missing unit/],
    ["9223372036854775808ns", /out of range/],
    ["9223372036854775.808us", /out of range/],
    ["3000000h", /out of range/],
  ];
  for (const [text, why] of bad) {
    test(`${JSON.stringify(text)} is refused`, () => {
      assert.throws(() => parseDurationNanoseconds(text), why);
      assert.equal(isDuration(text), false);
    });
  }

  test("error messages quote the input", () => {
    assert.throws(() => parseDurationNanoseconds("5 minutes"), { message: /^invalid duration "5 minutes": / });
  });
});

describe("parseDuration (milliseconds)", () => {
  test("whole and fractional milliseconds", () => {
    assert.equal(parseDuration("5m"), 300_000);
    assert.equal(parseDuration("1.5h"), 5_400_000);
    assert.equal(parseDuration("300ms"), 300);
    assert.equal(parseDuration("1500us"), 1.5);
    assert.equal(parseDuration("1ns"), 0.000001);
    assert.equal(parseDuration("-2s"), -2000);
  });
});

describe("formatDurationNanoseconds (Go's Duration.String)", () => {
  const cases: [bigint, string][] = [
    [0n, "0s"],
    [1n, "1ns"],
    [1_100n, "1.1µs"],
    [2_200_000n, "2.2ms"],
    [3_300_000_000n, "3.3s"],
    [4n * 60n * S + 5n * S, "4m5s"],
    [4n * 60n * S + 5_001_000_000n, "4m5.001s"],
    [5n * 3600n * S + 6n * 60n * S + 7_001_000_000n, "5h6m7.001s"],
    [8n * 60n * S + 1n, "8m0.000000001s"],
    [(1n << 63n) - 1n, "2562047h47m16.854775807s"],
    [-(1n << 63n), "-2562047h47m16.854775808s"],
    [-1n, "-1ns"],
    [300n * S, "5m0s"],
    [7200n * S, "2h0m0s"],
    [1000n, "1µs"],
  ];
  for (const [ns, want] of cases) {
    test(`${ns}ns -> ${want}`, () => assert.equal(formatDurationNanoseconds(ns), want));
  }

  test("round-trips through the parser", () => {
    for (const [ns] of cases) assert.equal(parseDurationNanoseconds(formatDurationNanoseconds(ns)), ns);
  });
});

describe("formatDuration (milliseconds)", () => {
  test("formats like Go", () => {
    assert.equal(formatDuration(300_000), "5m0s");
    assert.equal(formatDuration(5_400_000), "1h30m0s");
    assert.equal(formatDuration(300), "300ms");
    assert.equal(formatDuration(1.5), "1.5ms");
    assert.equal(formatDuration(0.0005), "500ns");
    assert.equal(formatDuration(0), "0s");
    assert.equal(formatDuration(-1500), "-1.5s");
  });
  test("refuses non-finite numbers", () => {
    assert.throws(() => formatDuration(Number.NaN), RangeError);
    assert.throws(() => formatDuration(Number.POSITIVE_INFINITY), RangeError);
  });
});

describe("the CRD's duration pattern", () => {
  const pattern = new RegExp(DURATION_PATTERN);
  test("accepts the original's defaults and Go's own output", () => {
    for (const s of ["5m", "30m", "2h", "5h", "300ms", "1.5h", "2h45m", "5m0s", "2h0m0s", "1µs", "1us", "0s"]) {
      assert.ok(pattern.test(s), s);
      assert.ok(isCrdDuration(s), s);
    }
  });
  test("refuses signs, bare numbers, spaces, unknown units (which Go partly accepts)", () => {
    for (const s of ["-5m", "+5m", "0", "5", ".5h", "5.h", "5 m", "5min", "1d", "", "5m "]) {
      assert.equal(pattern.test(s), false, s);
      assert.equal(isCrdDuration(s), false, s);
    }
  });
  test("isCrdDuration also refuses what matches but overflows", () => {
    assert.ok(pattern.test("3000000h"));
    assert.equal(isCrdDuration("3000000h"), false);
  });
});
