export type {
  Platform,
  RuntimePlan,
  FuseContainerPlan,
  RuntimeObservation,
  WorkerObservation,
  ResolvedMount,
  DatasetRef,
  CacheStatistics,
  LoadPlan,
  LoadProgress,
  RuntimePodSettings,
  LoadPodSettings,
  KubeFields,
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
export { KubePlatform, type KubePlatformOptions } from './kube/kube-platform.ts';
export {
  DEFAULT_SETTINGS as DEFAULT_KUBE_SETTINGS,
  type KubePlatformSettings,
  type KubeDatasetClientConfig,
} from './kube/manifests.ts';
export {
  namesOf,
  fuseNodeLabel,
  workerNodeLabels,
  fluidPath,
  MOUNT_TYPE,
  type RuntimeNames,
} from './kube/names.ts';
export { runLoader, type RunLoaderOptions } from './kube/loader.ts';
export { EndpointSliceMembership, workersFromSlices } from './kube/endpoint-membership.ts';
