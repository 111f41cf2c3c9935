import type { TierStats } from './block-store.ts';

/** What one worker counted since it started. */
export interface WorkerCounters {
  /** Block reads served from a tier (or from a fetch already under way). */
  hits: number;
  /** Block reads that had to go to the origin. */
  misses: number;
  /** Bytes served from cache to clients on the worker's node (HTTP or short-circuit). */
  servedLocalBytes: number;
  /** Of those, bytes a client read from the block files itself (short-circuit, by location). */
  locatedBytes: number;
  /** Bytes served from cache to clients on other nodes. */
  servedRemoteBytes: number;
  /** Bytes served to clients that the worker had to read from the origin for them. */
  servedOriginBytes: number;
  /** Bytes read from the origin (misses and loads). */
  originBytes: number;
  originReads: number;
  /** Bytes cached by load requests (DataLoad) from the origin. */
  loadedBytes: number;
  evictions: number;
  demotions: number;
  corruptBlocks: number;
  rejectedWrites: number;
  /** Blocks dropped because a DataLoad found their file version changed or gone at the origin. */
  forgottenBlocks: number;
}

/** The blocks of one file version held by a worker: `[index, sizeBytes]` pairs. */
export interface CachedFileBlocks {
  mount: string;
  path: string;
  version: string;
  blocks: [number, number][];
}

/** `GET /v1/stats`: one worker's view, which `aggregateCacheStates` combines. */
export interface WorkerStats {
  datasetId: string;
  workerId: string;
  nodeName: string;
  blockSizeBytes: number;
  capacityBytes: number;
  usedBytes: number;
  /** Bytes of block data held, every version. */
  cachedBytes: number;
  tiers: TierStats[];
  counters: WorkerCounters;
  /** Present when asked for (`files=1`): what is cached, per file version. */
  files?: CachedFileBlocks[];
}

export function emptyCounters(): WorkerCounters {
  return {
    hits: 0,
    misses: 0,
    servedLocalBytes: 0,
    locatedBytes: 0,
    servedRemoteBytes: 0,
    servedOriginBytes: 0,
    originBytes: 0,
    originReads: 0,
    loadedBytes: 0,
    evictions: 0,
    demotions: 0,
    corruptBlocks: 0,
    rejectedWrites: 0,
    forgottenBlocks: 0,
  };
}
