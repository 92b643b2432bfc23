/**
 * The AutoScaledAgent API (azurepipelines.k8s.scaler.io/v1): types, schemas, defaults, validation, the CRD and the
 * duration helpers. Imports nothing from the rest of src/ (the generator scripts aside).
 */
export {
  API_VERSION,
  CATEGORIES,
  CLIENT_SECRET_KEY,
  ConditionType,
  CRD_NAME,
  GROUP,
  KIND,
  LIST_KIND,
  PAT_SECRET_KEY,
  PLURAL,
  resourcePath,
  SHORT_NAMES,
  SINGULAR,
  VERSION,
} from "./constants.ts";
export { buildCrd, CRD_FILE, crdOpenApiSchema, crdYaml, PRINTER_COLUMNS, toCrdSchema } from "./crd.ts";
export {
  DURATION_PATTERN,
  DurationError,
  formatDuration,
  formatDurationNanoseconds,
  isCrdDuration,
  isDuration,
  parseDuration,
  parseDurationNanoseconds,
} from "./duration.ts";
export {
  controllerOwnerReference,
  FINALIZER,
  labels,
  MANAGED_BY_VALUE,
  podAnnotations,
  prePullKeys,
  pvcAnnotations,
  REPORTING_CONTROLLER,
  type ResourceRef,
  resourceRef,
} from "./keys.ts";
export type {
  Container,
  EnvVar,
  IntOrString,
  ObjectMetaTemplate,
  PodSpec,
  PodTemplateSpec,
  ResourceRequirements,
  Volume,
  VolumeMount,
} from "./podtemplate.ts";
export { POD_TEMPLATE_KUBERNETES_VERSION, podTemplateSpecSchema } from "./podtemplate.ts";
export { capabilitySetKey } from "./rules.ts";
export type {
  AutoScaledAgent,
  AutoScaledAgentSpec,
  AutoScaledAgentStatus,
  CacheVolumeStatus,
  Condition,
  DefaultedAutoScaledAgent,
  DefaultedAutoScaledAgentSpec,
  DefaultedPodsWithCapabilities,
  EntraIdAuthentication,
  ExtraAgentContainersPolicy,
  ImagePrePull,
  ImagePrePullStatus,
  ObjectMeta,
  PodCounts,
  PodsWithCapabilities,
  PredictiveStandby,
  ReusableCacheVolume,
  Standby,
  StandbyReason,
  StandbySchedule,
  StandbyStatus,
  TemplateStatus,
  Weekday,
} from "./schema.ts";
export {
  AutoScaledAgentSchema,
  AutoScaledAgentSpecSchema,
  AutoScaledAgentStatusSchema,
  ConditionSchema,
  ConditionStatusValues,
  DEFAULTS,
  EntraIdAuthenticationSchema,
  ExtraAgentContainersPolicySchema,
  ImagePrePullSchema,
  ImagePrePullStatusSchema,
  LIMITS,
  PodsWithCapabilitiesSchema,
  PREPULL_MAX_EXTRA_IMAGES,
  ReusableCacheVolumeSchema,
  StandbyReasonValues,
  StandbySchema,
  WEEKDAYS,
} from "./schema.ts";
export type { ValidateOptions, ValidationResult } from "./validate.ts";
export { applyDefaults, isKnownTimeZone, validateAutoScaledAgent, validatePodTemplateSpec } from "./validate.ts";
