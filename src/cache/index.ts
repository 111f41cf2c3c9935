export { CacheError, type CacheErrorCode } from './errors.ts';
export { blockIdOf, type BlockKey } from './block-key.ts';
export {
  tiersFromLevels,
  DEFAULT_HIGH_RATIO,
  DEFAULT_LOW_RATIO,
  DEFAULT_MEM_PATH,
  type TierConfig,
  type TierDirConfig,
} from './tiers.ts';
export {
  BlockStore,
  type BlockStoreOptions,
  type BlockLocation,
  type StoredBlock,
  type TierStats,
  type BlockStoreCounters,
  type CachedBlockInfo,
} from './block-store.ts';
export { rankByRendezvous } from './rendezvous.ts';
export { startWorker, type WorkerOptions, type WorkerMount, type CacheWorker } from './worker.ts';
export {
  WorkerProcessConfig,
  parseWorkerConfig,
  workerOptionsFromConfig,
  mountIdOf,
} from './worker-config.ts';
export type { WorkerStats, WorkerCounters, CachedFileBlocks } from './worker-stats.ts';
export type { PruneResult } from './prune.ts';
export { DEFAULT_BLOCK_SIZE_BYTES } from './protocol.ts';
export { StaticMembership, type Membership, type WorkerEndpoint } from './membership.ts';
export { normaliseDatasetPath, type ClientMount } from './mount-table.ts';
export {
  createCacheClient,
  type CacheClient,
  type CacheClientOptions,
  type ClientReadOptions,
  type ClientCounters,
  type LoadOptions,
  type LoadResult,
} from './client.ts';
export {
  aggregateCacheStates,
  clearWorkerBlocks,
  fetchWorkerStats,
  type AggregateOptions,
  type AggregateResult,
  type ReadCounters,
} from './stats.ts';
