export type {
  Platform,
  RuntimePlan,
  RuntimeObservation,
  WorkerObservation,
  ResolvedMount,
  DatasetRef,
  CacheStatistics,
  LoadPlan,
  LoadProgress,
} from './types.ts';
export {
  LocalPlatform,
  type LocalPlatformOptions,
  type MembershipFile,
  type DatasetSourceFile,
} from './local/local-platform.ts';
export {
  ProcessSupervisor,
  type ProcessSpec,
  type ProcessSupervisorOptions,
} from './local/process-supervisor.ts';
export { isFuseMounted, processesUsing } from './local/proc-scan.ts';
