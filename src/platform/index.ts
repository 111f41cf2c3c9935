export type {
  Platform,
  RuntimePlan,
  RuntimeObservation,
  WorkerObservation,
  ResolvedMount,
  DatasetRef,
  CacheStatistics,
} from './types.ts';
