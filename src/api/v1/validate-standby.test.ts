/**
 * The standby block of a podsWithCapabilities entry: schedules and predictive standby, their defaults and every
 * message validation gives (the CRD's CEL rules are checked against the API server in crd.integration.test.ts).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { applyDefaults, isKnownTimeZone, validateAutoScaledAgent } from "./index.ts";

// biome-ignore lint/suspicious/noExplicitAny: fixtures are free-form JSON, navigated without ceremony
type Obj = { [key: string]: any };

function withStandby(standby: unknown, entry: Obj = {}): Obj {
  return {
    apiVersion: "azurepipelines.k8s.scaler.io/v1",
    kind: "AutoScaledAgent",
    metadata: { name: "agents", namespace: "ci" },
    spec: {
      poolName: "pool",
      organizationUrl: "https://dev.azure.com/org",
      personalAccessTokenSecretName: "azure-pat",
      podsWithCapabilities: [
        {
          capabilities: { linux: "1" },
          minCount: 1,
          maxCount: 5,
          podTemplateSpec: { spec: { containers: [{ name: "agent", image: "agent:1" }] } },
          standby,
          ...entry,
        },
      ],
    },
  };
}

const errorsOf = (obj: unknown, unknownFields: "error" | "ignore" = "error") => {
  const r = validateAutoScaledAgent(obj, { unknownFields });
  return r.ok ? [] : r.errors;
};

const office = { days: ["Mon", "Tue", "Wed", "Thu", "Fri"], from: "08:00", to: "18:00", minCount: 3 };
const P = "spec.podsWithCapabilities[0].standby";

describe("standby: valid", () => {
  const good: [string, unknown][] = [
    ["an empty block (standby semantics for minCount)", {}],
    ["office hours in Berlin", { schedules: [{ ...office, timeZone: "Europe/Berlin" }] }],
    ["an overnight window", { schedules: [{ from: "22:00", to: "06:00", minCount: 2 }] }],
    ["the whole day", { schedules: [{ days: ["Sat", "Sun"], from: "00:00", to: "24:00", minCount: 0 }] }],
    ["a window ending at midnight", { schedules: [{ from: "18:00", to: "00:00", minCount: 1 }] }],
    ["minCount == maxCount", { schedules: [{ ...office, minCount: 5 }] }],
    [
      "zones of several shapes",
      {
        schedules: [
          { ...office, timeZone: "America/Argentina/Buenos_Aires" },
          { ...office, timeZone: "Etc/GMT+5" },
          { ...office, timeZone: "Asia/Kathmandu" },
        ],
      },
    ],
    ["predictive with defaults", { predictive: {} }],
    [
      "predictive with every field",
      { predictive: { percentile: 90, max: 4, lookaheadMinutes: 15, historyWeeks: 8, timeZone: "Europe/Berlin" } },
    ],
    ["schedules and predictive", { schedules: [office], predictive: { percentile: 50 } }],
  ];
  for (const [name, standby] of good) {
    test(name, () => assert.deepEqual(errorsOf(withStandby(standby)), []));
  }
});

describe("standby: invalid, with a message naming the field", () => {
  const bad: [string, unknown, string[], Obj?][] = [
    [
      "an unknown day",
      { schedules: [{ ...office, days: ["Mon", "Funday"] }] },
      [`${P}.schedules[0].days[1]: must be one of Mon, Tue, Wed, Thu, Fri, Sat, Sun (got "Funday")`],
    ],
    [
      "a day twice",
      { schedules: [{ ...office, days: ["Mon", "Mon"] }] },
      [`${P}.schedules[0].days[1]: duplicate entry ("Mon", as in ${P}.schedules[0].days[0])`],
    ],
    [
      "no days at all",
      { schedules: [{ ...office, days: [] }] },
      [`${P}.schedules[0].days: must have at least one entry`],
    ],
    [
      "from == to",
      { schedules: [{ ...office, from: "08:00", to: "08:00" }] },
      [
        `${P}.schedules[0].to: must differ from \`from\`: a window needs a length (the whole day is from 00:00 to 24:00)`,
      ],
    ],
    [
      "a time without a leading zero",
      { schedules: [{ ...office, from: "8:00" }] },
      [`${P}.schedules[0].from: must be a time of day "HH:MM" from 00:00 to 23:59 (got "8:00")`],
    ],
    [
      "from 24:00",
      { schedules: [{ ...office, from: "24:00", to: "06:00" }] },
      [`${P}.schedules[0].from: must be a time of day "HH:MM" from 00:00 to 23:59 (got "24:00")`],
    ],
    [
      "to 25:00",
      { schedules: [{ ...office, to: "25:00" }] },
      [`${P}.schedules[0].to: must be a time of day "HH:MM" from 00:00 to 24:00 (got "25:00")`],
    ],
    [
      "an unknown time zone",
      { schedules: [{ ...office, timeZone: "Europe/Berln" }] },
      [
        `${P}.schedules[0].timeZone: unknown time zone "Europe/Berln" (an IANA time zone name such as "Europe/Berlin", "America/New_York" or "UTC")`,
      ],
    ],
    [
      "a time zone that is not a name",
      { schedules: [{ ...office, timeZone: "+01:00" }] },
      [
        `${P}.schedules[0].timeZone: must be an IANA time zone name such as "Europe/Berlin", "America/New_York" or "UTC" (got "+01:00")`,
      ],
    ],
    [
      "a schedule's minCount above maxCount",
      { schedules: [office, { ...office, minCount: 7 }] },
      [`${P}.schedules[1].minCount: must be <= maxCount (7 > 5)`],
    ],
    [
      "a schedule without minCount",
      { schedules: [{ from: "08:00", to: "18:00" }] },
      [`${P}.schedules[0].minCount: required`],
    ],
    ["a schedule without from", { schedules: [{ to: "18:00", minCount: 1 }] }, [`${P}.schedules[0].from: required`]],
    [
      "a percentile out of range",
      { predictive: { percentile: 0 } },
      [`${P}.predictive.percentile: must be >= 1 (got number 0)`],
    ],
    [
      "a percentile above 100",
      { predictive: { percentile: 101 } },
      [`${P}.predictive.percentile: must be <= 100 (got number 101)`],
    ],
    [
      "no look-ahead",
      { predictive: { lookaheadMinutes: 0 } },
      [`${P}.predictive.lookaheadMinutes: must be >= 1 (got number 0)`],
    ],
    [
      "too much history",
      { predictive: { historyWeeks: 13 } },
      [`${P}.predictive.historyWeeks: must be <= 12 (got number 13)`],
    ],
    [
      "predictive in an unknown zone",
      { predictive: { timeZone: "Mars/Olympus_Mons" } },
      [
        `${P}.predictive.timeZone: unknown time zone "Mars/Olympus_Mons" (an IANA time zone name such as "Europe/Berlin", "America/New_York" or "UTC")`,
      ],
    ],
    ["a misspelt field", { schedule: [] }, [`${P}.schedule: unknown field`]],
  ];
  for (const [name, standby, want] of bad) {
    test(name, () => assert.deepEqual(errorsOf(withStandby(standby)), want));
  }

  test("too many schedules", () => {
    const errors = errorsOf(withStandby({ schedules: Array.from({ length: 17 }, () => office) }));
    assert.deepEqual(errors, [`${P}.schedules: must have at most 16 entries (got 17)`]);
  });
});

describe("standby: defaults", () => {
  test("time zones default to UTC, predictive fields to percentile 75, 10 minutes, 4 weeks", () => {
    const o = applyDefaults(withStandby({ schedules: [office], predictive: {} }));
    const standby = o.spec.podsWithCapabilities[0].standby;
    assert.equal(standby.schedules[0].timeZone, "UTC");
    assert.equal(standby.schedules[0].days.length, 5);
    assert.deepEqual(standby.predictive, { percentile: 75, lookaheadMinutes: 10, historyWeeks: 4, timeZone: "UTC" });
  });
  test("omitted days stay omitted (every day)", () => {
    const o = applyDefaults(withStandby({ schedules: [{ from: "22:00", to: "06:00", minCount: 1 }] }));
    assert.equal(o.spec.podsWithCapabilities[0].standby.schedules[0].days, undefined);
  });
});

describe("isKnownTimeZone", () => {
  for (const [name, want] of [
    ["UTC", true],
    ["Europe/Berlin", true],
    ["europe/berlin", true],
    ["Europe/Berln", false],
    ["", false],
  ] as const) {
    test(`${JSON.stringify(name)}: ${want}`, () => assert.equal(isKnownTimeZone(name), want));
  }
});
