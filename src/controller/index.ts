export { ControllerManager, type ControllerManagerOptions } from './manager.ts';
export {
  DatasetReconciler,
  DATASET_FINALIZER,
  RUNTIME_FINALIZER,
  type DatasetReconcilerOptions,
} from './dataset-reconciler.ts';
export { WorkQueue, type WorkQueueOptions, type ReconcileResult } from './work-queue.ts';
export { MetadataSync, type UfsFactory, type MetadataState } from './metadata-sync.ts';
export { StoreEventRecorder, type EventRecorder, type EventType } from './events.ts';
export { setCondition, findCondition } from './conditions.ts';
export { cacheStatesOf, componentPhase, parseFormattedBytes } from './status.ts';
export { resolveMounts, planFor, ignoredFields, DEFAULT_BLOCK_SIZE_BYTES } from './plan.ts';
export { ControllerError, type ControllerErrorCode } from './errors.ts';
export {
  DataLoadReconciler,
  DATALOAD_FINALIZER,
  formatDuration,
  type DataLoadReconcilerOptions,
} from './dataload-reconciler.ts';
export { CronHpaReconciler, type CronHpaReconcilerOptions } from './cronhpa-reconciler.ts';
