/**
 * The AutoScaledAgent API as one TypeBox schema: the source of the TypeScript types (Static<>), of runtime
 * validation and defaulting (validate.ts), and of the CRD (crd.ts).
 *
 * Compatibility with the original (Go) CRD: every field keeps its name, type, meaning and default. Stricter than
 * the original only where a resource could never have worked (the original operator dereferenced these without
 * checks): `poolName`, `organizationUrl`, `podsWithCapabilities` (at least one), `maxCount`, `podTemplateSpec`,
 * a cache volume's `name` and `requestedStorage`, and a PAT secret name unless `entraIdAuthentication` is given.
 * `minCount` defaults to 0. Everything added (`extraAgentContainers`, `entraIdAuthentication`, status) is optional.
 *
 * Keys starting with `x-azp-` are hints for runtime error messages and never reach the CRD.
 * `x-crd-format` becomes `format` in the CRD (TypeBox would otherwise refuse unknown string formats).
 */
import { type Static, type TString, Type } from "@sinclair/typebox";
import { CLIENT_SECRET_KEY } from "./constants.ts";
import { DURATION_PATTERN } from "./duration.ts";
import { podTemplateSpecSchema } from "./podtemplate.ts";
import {
  atLeastOneContainer,
  authenticationRequired,
  exactlyOneEntraCredential,
  minCountAtMostMaxCount,
  standbyAtMostMaxCount,
  standbyWindowNotEmpty,
  uniqueCapabilitySets,
} from "./rules.ts";
import { QUANTITY_PATTERN } from "./structural.ts";

const INT32_MAX = 2_147_483_647;
export const DNS_SUBDOMAIN_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
export const DNS_LABEL_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
export const HTTP_URL_PATTERN = "^https?://[^\\s/?#]+(/[^\\s?#]*)?$";
export const UNSIGNED_QUANTITY_PATTERN = QUANTITY_PATTERN.replace("^(\\+|-)?", "^");
export const GUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
export const RFC3339_PATTERN =
  "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";
export const CONDITION_TYPE_PATTERN =
  "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";
export const CONDITION_REASON_PATTERN = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

/** Limits that keep the CEL rules within the API server's cost budget (and catch runaway input). */
export const LIMITS = {
  podsWithCapabilities: 50,
  capabilities: 64,
  capabilityValueLength: 1024,
  reusableCacheVolumes: 32,
  allowedImages: 64,
  standbySchedules: 16,
} as const;

/** Every default of the spec, in one place (the schema below uses these). */
export const DEFAULTS = {
  maxTerminatedPodsToKeep: 5,
  agentMinIdlePeriod: "5m",
  dummyAgentGarbageCollectionInterval: "30m",
  dummyAgentDeletionMinAge: "2h",
  normalOfflineAgentDeletionMinAge: "5h",
  minCount: 0,
  capabilities: {} as Record<string, string>,
  clientSecretKey: CLIENT_SECRET_KEY,
  timeZone: "UTC",
  predictivePercentile: 75,
  predictiveLookaheadMinutes: 10,
  predictiveHistoryWeeks: 4,
} as const;

/** Days of the week as standby schedules name them (ISO order, Monday first). */
export const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;
export type Weekday = (typeof WEEKDAYS)[number];
/** "HH:MM", 00:00 to 23:59. */
export const TIME_OF_DAY_PATTERN = "^([01][0-9]|2[0-3]):[0-5][0-9]$";
/** "HH:MM", 00:00 to 24:00 (the end of a window). */
export const END_TIME_OF_DAY_PATTERN = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$";
/** The shape of an IANA time zone name ("UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"). */
export const TIME_ZONE_PATTERN = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$";

const int32 = (options: Record<string, unknown> = {}) =>
  Type.Integer({ format: "int32", minimum: 0, maximum: INT32_MAX, ...options });
const int64 = (options: Record<string, unknown> = {}) => Type.Integer({ format: "int64", minimum: 0, ...options });
const stringMap = (options: Record<string, unknown> = {}, value: TString = Type.String()) =>
  Type.Record(Type.String(), value, options);
const duration = (defaultValue: string, description: string) =>
  Type.String({
    pattern: DURATION_PATTERN,
    default: defaultValue,
    description: `${description} A Go duration such as "300ms", "1.5h" or "2h45m" (units ns, us, µs, ms, s, m, h).`,
    "x-azp-expected": 'a Go duration such as "5m", "1h30m" or "300ms" (units ns, us, µs, ms, s, m, h)',
  });
const quantity = (description: string) =>
  Type.Union([Type.Integer(), Type.String({ pattern: QUANTITY_PATTERN })], {
    "x-kubernetes-int-or-string": true,
    description,
    "x-azp-expected": 'an integer or a quantity string such as "500m" or "1Gi"',
  });
const dnsSubdomain = (description: string) =>
  Type.String({
    minLength: 1,
    maxLength: 253,
    pattern: DNS_SUBDOMAIN_PATTERN,
    description,
    "x-azp-expected":
      "a Kubernetes object name: lower-case letters, digits, '-' and '.', starting and ending alphanumeric",
  });

export const ReusableCacheVolumeSchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 63,
      pattern: DNS_LABEL_PATTERN,
      description:
        "Name of the cache volume. A container volumeMount with this name gets a PersistentVolumeClaim that no other running pod holds; the operator adds the pod volume itself.",
      "x-azp-expected": "a volume name: lower-case letters, digits and '-', starting and ending alphanumeric",
    }),
    storageClassName: Type.Optional(
      Type.String({
        description:
          'Storage class of the claims the operator creates. Omitted: the cluster\'s default storage class; "": no class (pre-provisioned volumes only).',
      }),
    ),
    requestedStorage: Type.String({
      pattern: UNSIGNED_QUANTITY_PATTERN,
      description: 'Size of each claim, a quantity such as "2Gi".',
      "x-azp-expected": 'a storage size such as "2Gi" or "500Mi"',
    }),
  },
  { description: "A reusable cache volume: PersistentVolumeClaims handed to one pod at a time." },
);

const timeZone = (description: string) =>
  Type.String({
    minLength: 1,
    maxLength: 64,
    pattern: TIME_ZONE_PATTERN,
    default: DEFAULTS.timeZone,
    description: `${description} An IANA time zone name such as "Europe/Berlin", "America/New_York" or "UTC".`,
    "x-azp-expected": 'an IANA time zone name such as "Europe/Berlin", "America/New_York" or "UTC"',
  });

export const StandbyScheduleSchema = Type.Object(
  {
    days: Type.Optional(
      Type.Array(Type.Unsafe<Weekday>(Type.String({ enum: [...WEEKDAYS] })), {
        minItems: 1,
        maxItems: 7,
        "x-kubernetes-list-type": "set",
        description:
          "Days on which the window starts (Mon, Tue, Wed, Thu, Fri, Sat, Sun), in the schedule's time zone. A window that crosses midnight (from 22:00 to 06:00) belongs to the day it starts on. Omitted: every day.",
      }),
    ),
    from: Type.String({
      maxLength: 5,
      pattern: TIME_OF_DAY_PATTERN,
      description: 'Local start of the window, "HH:MM" (00:00 to 23:59), inclusive.',
      "x-azp-expected": 'a time of day "HH:MM" from 00:00 to 23:59',
    }),
    to: Type.String({
      maxLength: 5,
      pattern: END_TIME_OF_DAY_PATTERN,
      description:
        'Local end of the window, "HH:MM" (00:00 to 24:00), exclusive. Earlier than `from`: the window ends on the next day.',
      "x-azp-expected": 'a time of day "HH:MM" from 00:00 to 24:00',
    }),
    timeZone: Type.Optional(timeZone("Time zone of `days`, `from` and `to` (daylight saving time is followed).")),
    minCount: int32({
      description:
        "Standby agents (idle, ready for a job) kept while the window is open, instead of the entry's minCount.",
    }),
  },
  {
    description: "A weekly window during which a different number of standby agents is kept.",
    "x-kubernetes-validations": [standbyWindowNotEmpty.cel],
  },
);

export const PredictiveStandbySchema = Type.Object(
  {
    percentile: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        default: DEFAULTS.predictivePercentile,
        description:
          "Which percentile of the past weeks' demand to keep ready: 50 follows a typical week, 90 covers all but the busiest.",
      }),
    ),
    max: Type.Optional(
      int32({ description: "Upper bound of the standby agents the prediction may ask for. Omitted: maxCount." }),
    ),
    lookaheadMinutes: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1440,
        default: DEFAULTS.predictiveLookaheadMinutes,
        description:
          "How far ahead the prediction looks: standby agents are kept for the busiest 5 minutes of this coming window, as the same window of past weeks saw it. At least the time a pod needs to start.",
      }),
    ),
    historyWeeks: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 12,
        default: DEFAULTS.predictiveHistoryWeeks,
        description: "How many past weeks of this entry's jobs the prediction reads (and the history keeps).",
      }),
    ),
    timeZone: Type.Optional(
      timeZone(
        'Time zone in which "the same time last week" is taken, so that a rhythm of local office hours survives daylight saving time changes.',
      ),
    ),
  },
  {
    description:
      "Predictive standby: keep the number of standby agents that this entry's jobs of past weeks (counted per 5 minutes of the week) say the coming minutes will need. The history is kept in a ConfigMap owned by the resource.",
  },
);

export const StandbySchema = Type.Object(
  {
    schedules: Type.Optional(
      Type.Array(StandbyScheduleSchema, {
        maxItems: LIMITS.standbySchedules,
        description:
          "Weekly windows with their own number of standby agents; where windows overlap, the largest minCount wins. Outside every window, the entry's minCount applies.",
      }),
    ),
    predictive: Type.Optional(PredictiveStandbySchema),
  },
  {
    description:
      "Standby agents: with this block, minCount and the schedules' minCount count idle agents ready for a job, kept in addition to busy ones (a job that takes a standby agent gets it replaced at once). Without it, minCount counts agent pods, busy ones included, as in the original operator.",
  },
);

export const PodsWithCapabilitiesSchema = Type.Object(
  {
    capabilities: Type.Optional(
      stringMap(
        {
          default: DEFAULTS.capabilities,
          maxProperties: LIMITS.capabilities,
          description:
            "Azure Pipelines capabilities of the agents of this template. A job goes to the template whose capabilities satisfy its demands with the fewest extra capabilities. Each is also set as an environment variable of the agent container.",
        },
        Type.String({ maxLength: LIMITS.capabilityValueLength }),
      ),
    ),
    minCount: Type.Optional(
      int32({
        default: DEFAULTS.minCount,
        description:
          "Agent pods kept running (idle) even without jobs. With a standby block: standby agents (idle, ready for a job) kept in addition to busy ones, outside the standby schedules.",
      }),
    ),
    maxCount: int32({ description: "Upper bound of agent pods of this template, busy or not." }),
    standby: Type.Optional(StandbySchema),
    podLabels: Type.Optional(stringMap({ description: "Labels added to the agent pods." })),
    podAnnotations: Type.Optional(stringMap({ description: "Annotations added to the agent pods." })),
    podTemplateSpec: podTemplateSpecSchema({
      description:
        "Template of the agent pods. The first container runs the Azure Pipelines agent; further containers and init containers with restartPolicy Always (native sidecars) run beside it.",
      "x-kubernetes-validations": [atLeastOneContainer.cel],
    }),
  },
  {
    description: "A kind of agent pod: its capabilities, how many, and its pod template.",
    "x-kubernetes-validations": [minCountAtMostMaxCount.cel, standbyAtMostMaxCount.cel],
  },
);

export const ExtraAgentContainersPolicySchema = Type.Object(
  {
    allowedImages: Type.Optional(
      Type.Array(
        Type.String({
          minLength: 1,
          maxLength: 512,
          pattern: "^\\S+$",
          "x-azp-expected": "an image pattern without spaces",
        }),
        {
          minItems: 1,
          maxItems: LIMITS.allowedImages,
          description:
            'Image patterns an extra container may use, matched against the whole image reference: "*" matches any characters except "/", "**" any characters. Omitted: any image.',
        },
      ),
    ),
    maxContainers: Type.Optional(
      int32({ description: "Most extra containers one job may ask for; 0 refuses ExtraAgentContainers demands." }),
    ),
    maxCpuPerContainer: Type.Optional(quantity("Highest CPU limit an extra container may ask for.")),
    maxMemoryPerContainer: Type.Optional(quantity("Highest memory limit an extra container may ask for.")),
  },
  {
    description:
      "Limits on the extra containers that jobs ask for with an ExtraAgentContainers demand. Omitted: no limits (as in the original).",
  },
);

export const SecretKeyRefSchema = Type.Object({
  name: dnsSubdomain("Name of a Secret in the resource's namespace."),
  key: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: "^[-._a-zA-Z0-9]+$",
      default: DEFAULTS.clientSecretKey,
      description: "Key in the Secret.",
    }),
  ),
});

export const EntraIdAuthenticationSchema = Type.Object(
  {
    tenantId: Type.String({
      minLength: 1,
      maxLength: 256,
      pattern: "^[A-Za-z0-9][A-Za-z0-9.-]*$",
      description: "Microsoft Entra tenant: its ID (a GUID) or a verified domain.",
      "x-azp-expected": "a tenant ID (GUID) or domain name",
    }),
    clientId: Type.String({
      pattern: GUID_PATTERN,
      description: "Application (client) ID of the service principal or managed identity.",
      "x-azp-expected": "a GUID such as 00000000-0000-0000-0000-000000000000",
    }),
    clientSecretRef: Type.Optional(
      Type.Unsafe<Static<typeof SecretKeyRefSchema>>({
        ...SecretKeyRefSchema,
        description: "Service principal with a client secret, read from this Secret key.",
      }),
    ),
    workloadIdentity: Type.Optional(
      Type.Object(
        {
          serviceAccountName: Type.Optional(
            dnsSubdomain(
              "ServiceAccount in the resource's namespace whose token (audience api://AzureADTokenExchange) the operator exchanges. Omitted: the operator's own federated token.",
            ),
          ),
        },
        {
          description: "Workload identity federation: a Kubernetes service account token exchanged for an Entra token.",
        },
      ),
    ),
    authorityHost: Type.Optional(
      Type.String({
        pattern: HTTP_URL_PATTERN,
        maxLength: 2048,
        description: "Entra authority host. Omitted: https://login.microsoftonline.com (the public cloud).",
        "x-azp-expected": "an http(s) URL",
      }),
    ),
  },
  {
    description:
      "Authenticate the operator to Azure DevOps with Microsoft Entra ID instead of the PAT. The identity must be a member of the organization and an administrator of the pool.",
    "x-kubernetes-validations": [exactlyOneEntraCredential.cel],
  },
);

// ---------------------------------------------------------------------------------------------------------------
// Image pre-pull (optional; spec.imagePrePull and status.imagePrePull). See src/prepull/README.md.

/** Most extra images one resource may ask to pre-pull. */
export const PREPULL_MAX_EXTRA_IMAGES = 32;

export const ImagePrePullSchema = Type.Object(
  {
    enabled: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          "Keep the images of every template (agent, sidecars, init containers) on the nodes the template's pods can land on, through a DaemonSet per distinct placement whose pods pull them and then sleep. The operator must run with --image-prepull.",
      }),
    ),
    extraImages: Type.Optional(
      Type.Array(
        Type.String({
          minLength: 1,
          maxLength: 512,
          pattern: "^\\S+$",
          "x-azp-expected": "an image reference without spaces",
        }),
        {
          maxItems: PREPULL_MAX_EXTRA_IMAGES,
          description:
            "More images to pre-pull on the same nodes, e.g. the images jobs ask for through ExtraAgentContainers.",
        },
      ),
    ),
  },
  {
    description:
      "Image pre-pull: agent pods start without waiting for image pulls on nodes that have been up a while. Costs a small pod per node and registry traffic for every node.",
  },
);

export const ImagePrePullStatusSchema = Type.Object(
  {
    desiredNodes: int32({
      description:
        "Nodes the pre-pull DaemonSets run on (summed over the DaemonSets: a node that several placements cover counts once per placement).",
    }),
    readyNodes: int32({ description: "Of those, nodes where every image of the placement has been pulled." }),
    images: int32({ description: "Distinct images pre-pulled." }),
    daemonSets: Type.Optional(
      Type.Array(Type.String(), { maxItems: LIMITS.podsWithCapabilities, description: "The pre-pull DaemonSets." }),
    ),
    message: Type.Optional(Type.String({ maxLength: 4096, description: "What stands in the way, if anything." })),
  },
  { description: "Image pre-pull progress (spec.imagePrePull)." },
);

// ---------------------------------------------------------------------------------------------------------------

export const AutoScaledAgentSpecSchema = Type.Object(
  {
    poolName: Type.String({ minLength: 1, maxLength: 256, description: "Name of the Azure DevOps agent pool." }),
    organizationUrl: Type.String({
      pattern: HTTP_URL_PATTERN,
      maxLength: 2048,
      description: "URL of the Azure DevOps organization, e.g. https://dev.azure.com/my-org.",
      "x-azp-expected": "an http(s) URL such as https://dev.azure.com/my-org",
    }),
    personalAccessTokenSecretName: Type.Optional(
      dnsSubdomain('Name of a Secret in this namespace whose key "pat" holds the Azure DevOps personal access token.'),
    ),
    maxTerminatedPodsToKeep: Type.Optional(
      int32({
        default: DEFAULTS.maxTerminatedPodsToKeep,
        description:
          "How many of the most recently started agent pods that have terminated are kept (for debugging); older ones are deleted.",
      }),
    ),
    agentMinIdlePeriod: Type.Optional(
      duration(
        DEFAULTS.agentMinIdlePeriod,
        "How long an agent must have been idle before its pod may be removed because it is not needed.",
      ),
    ),
    dummyAgentGarbageCollectionInterval: Type.Optional(
      duration(DEFAULTS.dummyAgentGarbageCollectionInterval, "How often offline agents are garbage-collected."),
    ),
    dummyAgentDeletionMinAge: Type.Optional(
      duration(
        DEFAULTS.dummyAgentDeletionMinAge,
        "Minimum age of an offline placeholder (dummy) agent, including those the registrator CLI registered, before it is deleted.",
      ),
    ),
    normalOfflineAgentDeletionMinAge: Type.Optional(
      duration(
        DEFAULTS.normalOfflineAgentDeletionMinAge,
        "Minimum age of an offline agent that once ran in a pod of this resource (and was not unregistered) before it is deleted.",
      ),
    ),
    reusableCacheVolumes: Type.Optional(
      Type.Array(ReusableCacheVolumeSchema, {
        maxItems: LIMITS.reusableCacheVolumes,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
      }),
    ),
    podsWithCapabilities: Type.Array(PodsWithCapabilitiesSchema, {
      minItems: 1,
      maxItems: LIMITS.podsWithCapabilities,
      "x-kubernetes-validations": [uniqueCapabilitySets.cel],
    }),
    extraAgentContainers: Type.Optional(ExtraAgentContainersPolicySchema),
    entraIdAuthentication: Type.Optional(EntraIdAuthenticationSchema),
    // Image pre-pull (optional, see ImagePrePullSchema).
    imagePrePull: Type.Optional(ImagePrePullSchema),
  },
  {
    description: "Desired state: the Azure DevOps pool to serve and the agent pods to run for it.",
    "x-kubernetes-validations": [authenticationRequired.cel],
  },
);

export const PodCountsSchema = Type.Object({
  starting: int32({ description: "Pods created whose agent is not yet registered and idle." }),
  idle: int32({ description: "Pods whose agent waits for a job." }),
  busy: int32({ description: "Pods whose agent runs a job." }),
  finished: int32({ description: "Terminated pods kept for debugging." }),
});

export const ConditionStatusValues = ["True", "False", "Unknown"] as const;

export const ConditionSchema = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 316, pattern: CONDITION_TYPE_PATTERN }),
  status: Type.Unsafe<(typeof ConditionStatusValues)[number]>(Type.String({ enum: [...ConditionStatusValues] })),
  observedGeneration: Type.Optional(int64()),
  lastTransitionTime: Type.String({ pattern: RFC3339_PATTERN, "x-crd-format": "date-time" }),
  reason: Type.String({ minLength: 1, maxLength: 1024, pattern: CONDITION_REASON_PATTERN }),
  message: Type.String({ maxLength: 32768 }),
});

export const StandbyReasonValues = ["Baseline", "Schedule", "Prediction"] as const;
export type StandbyReason = (typeof StandbyReasonValues)[number];

export const StandbyStatusSchema = Type.Object(
  {
    minCount: int32({ description: "Standby agents (idle, ready for a job) the operator keeps now." }),
    reason: Type.Unsafe<StandbyReason>(
      Type.String({
        enum: [...StandbyReasonValues],
        description:
          "Why: Baseline (the entry's minCount, no schedule in force), Schedule (the schedule at index `schedule`), Prediction (the history asks for more).",
      }),
    ),
    schedule: Type.Optional(int32({ description: "Index of the schedule in force, if any." })),
    predicted: Type.Optional(
      int32({ description: "What the history predicts for the coming window (predictive standby only)." }),
    ),
    message: Type.String({ maxLength: 1024, description: "The reason in words." }),
  },
  { description: "The standby agents in force (entries with a standby block)." },
);

export const TemplateStatusSchema = Type.Object({
  index: int32({ description: "Position of the template in spec.podsWithCapabilities." }),
  capabilities: Type.Optional(stringMap({ description: "The template's capabilities." })),
  pendingJobs: int32({ description: "Queued jobs this template is the best fit for." }),
  pods: PodCountsSchema,
  standby: Type.Optional(StandbyStatusSchema),
});

export const CacheVolumeStatusSchema = Type.Object({
  name: Type.String({ description: "The reusableCacheVolumes entry." }),
  claimName: Type.String({ description: "The PersistentVolumeClaim." }),
  holderPod: Type.Optional(Type.String({ description: "The pod that holds the claim, if any." })),
});

export const AutoScaledAgentStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(int64({ description: "The metadata.generation this status describes." })),
    poolId: Type.Optional(int32({ description: "ID of the Azure DevOps agent pool." })),
    conditions: Type.Optional(
      Type.Array(ConditionSchema, {
        maxItems: 16,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        description: "Ready, AzureDevOpsReachable, Degraded.",
      }),
    ),
    pendingJobs: Type.Optional(int32({ description: "Queued jobs that one of the templates can serve." })),
    pods: Type.Optional(
      Type.Unsafe<Static<typeof PodCountsSchema>>({
        ...PodCountsSchema,
        description: "Agent pods of all templates.",
      }),
    ),
    templates: Type.Optional(
      Type.Array(TemplateStatusSchema, {
        maxItems: LIMITS.podsWithCapabilities,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["index"],
        description: "Per entry of spec.podsWithCapabilities.",
      }),
    ),
    cacheVolumes: Type.Optional(
      Type.Array(CacheVolumeStatusSchema, {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["claimName"],
        description: "The cache volume claims and who holds them.",
      }),
    ),
    // Image pre-pull progress (optional, written by the pre-pull controller).
    imagePrePull: Type.Optional(ImagePrePullStatusSchema),
  },
  { description: "Observed state, written by the operator." },
);

export const ObjectMetaSchema = Type.Object(
  {
    name: Type.Optional(Type.String()),
    generateName: Type.Optional(Type.String()),
    namespace: Type.Optional(Type.String()),
    uid: Type.Optional(Type.String()),
    resourceVersion: Type.Optional(Type.String()),
    generation: Type.Optional(Type.Integer()),
    creationTimestamp: Type.Optional(Type.String()),
    deletionTimestamp: Type.Optional(Type.String()),
    labels: Type.Optional(stringMap()),
    annotations: Type.Optional(stringMap()),
    finalizers: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: true },
);

export const AutoScaledAgentSchema = Type.Object(
  {
    apiVersion: Type.Optional(Type.String()),
    kind: Type.Optional(Type.String()),
    metadata: Type.Optional(ObjectMetaSchema),
    spec: AutoScaledAgentSpecSchema,
    status: Type.Optional(AutoScaledAgentStatusSchema),
  },
  {
    description:
      "AutoScaledAgent runs ephemeral Azure Pipelines agents as pods for one agent pool, scaled to its queued jobs.",
  },
);

export type ReusableCacheVolume = Static<typeof ReusableCacheVolumeSchema>;
export type PodsWithCapabilities = Static<typeof PodsWithCapabilitiesSchema>;
export type StandbySchedule = Static<typeof StandbyScheduleSchema>;
export type PredictiveStandby = Static<typeof PredictiveStandbySchema>;
export type Standby = Static<typeof StandbySchema>;
export type StandbyStatus = Static<typeof StandbyStatusSchema>;
export type ExtraAgentContainersPolicy = Static<typeof ExtraAgentContainersPolicySchema>;
export type EntraIdAuthentication = Static<typeof EntraIdAuthenticationSchema>;
export type ImagePrePull = Static<typeof ImagePrePullSchema>;
export type ImagePrePullStatus = Static<typeof ImagePrePullStatusSchema>;
export type AutoScaledAgentSpec = Static<typeof AutoScaledAgentSpecSchema>;
export type PodCounts = Static<typeof PodCountsSchema>;
export type Condition = Static<typeof ConditionSchema>;
export type TemplateStatus = Static<typeof TemplateStatusSchema>;
export type CacheVolumeStatus = Static<typeof CacheVolumeStatusSchema>;
export type AutoScaledAgentStatus = Static<typeof AutoScaledAgentStatusSchema>;
export type ObjectMeta = Static<typeof ObjectMetaSchema>;
export type AutoScaledAgent = Static<typeof AutoScaledAgentSchema>;

type WithDefaults<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: Exclude<T[P], undefined> };

/** The spec keys that always have a value once defaults are applied. */
export const DEFAULTED_SPEC_KEYS = [
  "maxTerminatedPodsToKeep",
  "agentMinIdlePeriod",
  "dummyAgentGarbageCollectionInterval",
  "dummyAgentDeletionMinAge",
  "normalOfflineAgentDeletionMinAge",
] as const;
/** The podsWithCapabilities keys that always have a value once defaults are applied. */
export const DEFAULTED_TEMPLATE_KEYS = ["capabilities", "minCount"] as const;

export type DefaultedPodsWithCapabilities = WithDefaults<
  PodsWithCapabilities,
  (typeof DEFAULTED_TEMPLATE_KEYS)[number]
>;
export type DefaultedAutoScaledAgentSpec = WithDefaults<
  Omit<AutoScaledAgentSpec, "podsWithCapabilities">,
  (typeof DEFAULTED_SPEC_KEYS)[number]
> & { podsWithCapabilities: DefaultedPodsWithCapabilities[] };
/** An AutoScaledAgent as the API server stores it (and as validateAutoScaledAgent returns it): defaults applied. */
export type DefaultedAutoScaledAgent = Omit<AutoScaledAgent, "spec"> & { spec: DefaultedAutoScaledAgentSpec };
