export { API_VERSION, GROUP, VERSION, Condition, ObjectMeta } from './common.ts';
export { Dataset, DatasetSpec, DatasetStatus, Mount, EncryptOption } from './dataset.ts';
export { DataLoad, DataLoadSpec, OperationStatus } from './dataload.ts';
export {
  TideRuntime,
  AlluxioRuntime,
  JindoRuntime,
  GooseFSRuntime,
  Level,
  TieredStore,
  RuntimeStatus,
  RUNTIME_KINDS,
  type AnyRuntime,
  type RuntimeKind,
  type MediumType,
} from './runtime.ts';
export { Secret } from './secret.ts';
export { KINDS, findKind, type KindInfo, type PrinterColumn } from './registry.ts';
export { validateDocument, cronProblem, dataLoadScheduleError, type ValidationResult } from './validate.ts';
export { parseManifests, type ManifestResource } from './manifest.ts';
export { ManifestError, type FieldError, type ApiErrorCode } from './errors.ts';
export {
  schemeOf,
  namespacePathOf,
  isSupportedScheme,
  mountPointProblem,
  MOUNT_POINT_PATTERN,
  SUPPORTED_SCHEMES,
  type MountScheme,
} from './mounts.ts';
export { crdFor, allCrds, isTideCrd } from './crd.ts';
export {
  CronHorizontalPodAutoscaler,
  CRON_HPA_API_VERSION,
  CRON_HPA_KIND,
  CRON_HPA_TIME_ZONE_ANNOTATION,
  HPA_KIND,
  cronHpaErrors,
  cronHpaJobProblem,
  scaleTargetProblem,
  type CronHpaCondition,
  type CronHpaJob,
  type CronHpaJobState,
} from './cronhpa.ts';
export {
  parseCronHpaSchedule,
  excludedBy,
  parseGoDurationMs,
  timeZoneProblem,
  type CronHpaSchedule,
} from './cronhpa-schedule.ts';
export { isDns1035Label, isDns1123Label, isDns1123Subdomain } from './names.ts';
export {
  DATASET_ID_LABEL,
  DATASET_NUM_LABEL,
  RUNTIME_TYPE,
  datasetIdValue,
  fitName,
  fluidPath,
  fuseNodeLabel,
  namespacedValue,
  namesOf,
  shortHash,
  workerNodeLabels,
  type DatasetKey,
  type RuntimeNames,
} from './fluid-names.ts';
export { LIMITS, formatSize, pathProblem } from './limits.ts';
export {
  dataLoadOptionsOf,
  parseBandwidth,
  DEFAULT_LOAD_PARALLELISM,
  type DataLoadOptions,
} from './dataload-options.ts';
