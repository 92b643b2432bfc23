/**
 * Validation rules that span fields. Each rule has two faces from one definition: the CEL expression the API
 * server evaluates (`x-kubernetes-validations` in the CRD) and the same check in TypeScript for runtime validation,
 * with the same message. The CEL side is kept cheap enough for the API server's cost budget (bounded lists and maps).
 */
import { compareStrings } from "../../runtime/compare.ts";

export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  /** JSON path, relative to the node, of the field the message is about. */
  fieldPath?: string;
  reason?: "FieldValueInvalid" | "FieldValueRequired" | "FieldValueForbidden" | "FieldValueDuplicate";
}

/**
 * A failed check: `field` is relative to the node the rule sits on ("" for the node itself, ".x", "[2].y").
 * Runtime validation prints `<path>: <message>`, with "required: " in front for FieldValueRequired rules, as the
 * API server prints "Required value: ".
 */
export interface Violation {
  field: string;
  message: string;
}

export interface Rule<T> {
  cel: CelRule;
  check(self: T): Violation[];
}

type Caps = Record<string, string> | undefined;

/** Canonical text of a capability set (order-independent), for equality checks. */
export function capabilitySetKey(capabilities: Caps, caseInsensitive = false): string {
  const entries = Object.entries(capabilities ?? {}).map(([k, v]): [string, string] =>
    caseInsensitive ? [k.toLowerCase(), v.toLowerCase()] : [k, v],
  );
  entries.sort(([a], [b]) => compareStrings(a, b));
  return JSON.stringify(entries);
}

export const AUTH_REQUIRED_MESSAGE =
  'the name of a Secret whose key "pat" holds the Azure DevOps personal access token (or set entraIdAuthentication)';

/** On spec: a way to authenticate to Azure DevOps. */
export const authenticationRequired: Rule<{ personalAccessTokenSecretName?: string; entraIdAuthentication?: unknown }> =
  {
    cel: {
      rule: "has(self.personalAccessTokenSecretName) || has(self.entraIdAuthentication)",
      message: AUTH_REQUIRED_MESSAGE,
      fieldPath: ".personalAccessTokenSecretName",
      reason: "FieldValueRequired",
    },
    check: (spec) =>
      spec.personalAccessTokenSecretName === undefined && spec.entraIdAuthentication === undefined
        ? [{ field: ".personalAccessTokenSecretName", message: AUTH_REQUIRED_MESSAGE }]
        : [],
  };

export const UNIQUE_CAPABILITIES_MESSAGE =
  "every entry must have a different set of capabilities (a job goes to the best-fitting entry, so an entry with the same set as another is never used)";

/** On spec.podsWithCapabilities: no two entries with the same capability set. */
export const uniqueCapabilitySets: Rule<{ capabilities?: Caps }[]> = {
  cel: {
    // `capabilities` defaults to {} so it is always present when rules run.
    rule: "self.all(a, self.exists_one(b, b.capabilities == a.capabilities))",
    message: UNIQUE_CAPABILITIES_MESSAGE,
    // Not FieldValueDuplicate: the API server prints no message for that reason.
    reason: "FieldValueInvalid",
  },
  check: (entries) => {
    const violations: Violation[] = [];
    const first = new Map<string, number>();
    entries.forEach((entry, i) => {
      const key = capabilitySetKey(entry.capabilities);
      const earlier = first.get(key);
      if (earlier === undefined) first.set(key, i);
      else {
        violations.push({
          field: `[${i}].capabilities`,
          message: `${UNIQUE_CAPABILITIES_MESSAGE}; the same as podsWithCapabilities[${earlier}]`,
        });
      }
    });
    return violations;
  },
};

/** On each podsWithCapabilities entry: minCount <= maxCount. */
export const minCountAtMostMaxCount: Rule<{ minCount?: number; maxCount: number }> = {
  cel: {
    rule: "self.minCount <= self.maxCount",
    // format() (CEL strings library v2, Kubernetes 1.29+): string concatenation would blow the cost budget.
    messageExpression: "'must be >= minCount (%d > %d)'.format([self.minCount, self.maxCount])",
    fieldPath: ".maxCount",
    reason: "FieldValueInvalid",
  },
  check: (entry) => {
    const min = entry.minCount ?? 0;
    return min <= entry.maxCount
      ? []
      : [{ field: ".maxCount", message: `must be >= minCount (${min} > ${entry.maxCount})` }];
  },
};

export const CONTAINER_REQUIRED_MESSAGE = "at least one container: the first container runs the Azure Pipelines agent";

/** On each podTemplateSpec: at least one container. */
export const atLeastOneContainer: Rule<{ spec?: { containers?: unknown[] } }> = {
  cel: {
    rule: "has(self.spec) && size(self.spec.containers) > 0",
    message: CONTAINER_REQUIRED_MESSAGE,
    fieldPath: ".spec.containers",
    reason: "FieldValueRequired",
  },
  check: (template) =>
    (template.spec?.containers?.length ?? 0) > 0
      ? []
      : [{ field: ".spec.containers", message: CONTAINER_REQUIRED_MESSAGE }],
};

export const ONE_CREDENTIAL_MESSAGE =
  "set exactly one of clientSecretRef (a service principal's secret) and workloadIdentity (a federated token)";

/** On entraIdAuthentication: exactly one kind of credential. */
export const exactlyOneEntraCredential: Rule<{ clientSecretRef?: unknown; workloadIdentity?: unknown }> = {
  cel: {
    rule: "has(self.clientSecretRef) != has(self.workloadIdentity)",
    message: ONE_CREDENTIAL_MESSAGE,
    reason: "FieldValueInvalid",
  },
  check: (auth) =>
    (auth.clientSecretRef === undefined) !== (auth.workloadIdentity === undefined)
      ? []
      : [{ field: "", message: ONE_CREDENTIAL_MESSAGE }],
};

export const STANDBY_WINDOW_MESSAGE =
  "must differ from `from`: a window needs a length (the whole day is from 00:00 to 24:00)";

/** On each standby schedule: the window is not empty. */
export const standbyWindowNotEmpty: Rule<{ from: string; to: string }> = {
  cel: {
    rule: "self.from != self.to",
    message: STANDBY_WINDOW_MESSAGE,
    fieldPath: ".to",
    reason: "FieldValueInvalid",
  },
  check: (schedule) => (schedule.from !== schedule.to ? [] : [{ field: ".to", message: STANDBY_WINDOW_MESSAGE }]),
};

export const STANDBY_MAX_COUNT_MESSAGE = "the minCount of every standby schedule must be <= maxCount";

/** On each podsWithCapabilities entry: every standby schedule's minCount <= maxCount. */
export const standbyAtMostMaxCount: Rule<{ maxCount: number; standby?: { schedules?: { minCount: number }[] } }> = {
  cel: {
    // The schedules list is bounded (LIMITS.standbySchedules), so this stays cheap.
    rule: "!has(self.standby) || !has(self.standby.schedules) || self.standby.schedules.all(s, s.minCount <= self.maxCount)",
    message: STANDBY_MAX_COUNT_MESSAGE,
    fieldPath: ".standby.schedules",
    reason: "FieldValueInvalid",
  },
  check: (entry) =>
    (entry.standby?.schedules ?? []).flatMap((s, i) =>
      s.minCount <= entry.maxCount
        ? []
        : [
            {
              field: `.standby.schedules[${i}].minCount`,
              message: `must be <= maxCount (${s.minCount} > ${entry.maxCount})`,
            },
          ],
    ),
};
