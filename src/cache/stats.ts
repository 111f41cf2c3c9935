import { request } from 'undici';
import { formatBytes, toError, type SecretValue } from '../lib/index.ts';
import { fileVersionIdOf } from './block-key.ts';
import { CacheError } from './errors.ts';
import type { WorkerEndpoint } from './membership.ts';
import type { PruneResult } from './prune.ts';
import { BLOCKS_PATH, STATS_PATH } from './protocol.ts';
import type { WorkerStats } from './worker-stats.ts';

/** Fluid's read counters (Alluxio `Cluster.BytesReadLocal`, `…Remote`, `…UfsAll`), summed over workers. */
export interface ReadCounters {
  localBytes: number;
  remoteBytes: number;
  ufsBytes: number;
}

export interface AggregateOptions {
  /** Stats of every worker, with `files` (asked with `files=1`) so that `cached` is exact. */
  workers: readonly WorkerStats[];
  /** Bytes of the dataset at the origin (`status.ufsTotal`); no percentage without it. */
  ufsTotalBytes?: number;
  /**
   * The current version of a file (from the metadata sync), or undefined when the file is gone.
   * Without it every cached version counts.
   */
  currentVersion?: (mount: string, path: string) => string | undefined;
  /** Counters of the previous collection: hit ratios then cover the interval, as Fluid's do. */
  previous?: ReadCounters;
}

export interface AggregateResult {
  /** Fluid's `status.cacheStates` map. */
  cacheStates: Record<string, string>;
  cachedBytes: number;
  capacityBytes: number;
  /** To pass as `previous` next time. */
  counters: ReadCounters;
}

/**
 * Combines the workers' stats into Fluid's `cacheStates` (fluid-inventory §1.1, §2.3):
 * - `cached`: bytes of blocks of the files' current versions, each block counted once however many
 *   workers hold a replica; `cacheCapacity`: sum of the tier quotas of all workers; both in binary
 *   units as Fluid prints them (`545.32MiB`).
 * - `cachedPercentage`: cached ÷ UFS total, `"%.1f%%"`.
 * - `cacheHitRatio` = (local + remote) ÷ all bytes read, `localHitRatio`, `remoteHitRatio`, from the
 *   workers' counters of bytes served from cache to same-node clients (local), to other nodes
 *   (remote) and fetched from the origin (UFS); `0.0%` when nothing was read. The throughput ratios
 *   are the same quotients: over one interval, ratios of throughputs are ratios of bytes.
 */
export function aggregateCacheStates(options: AggregateOptions): AggregateResult {
  let capacityBytes = 0;
  let fallbackCached = 0;
  let haveFiles = true;
  const blocks = new Map<string, Map<number, number>>();
  const counters: ReadCounters = { localBytes: 0, remoteBytes: 0, ufsBytes: 0 };
  for (const worker of options.workers) {
    capacityBytes += worker.capacityBytes;
    fallbackCached += worker.cachedBytes;
    counters.localBytes += worker.counters.servedLocalBytes;
    counters.remoteBytes += worker.counters.servedRemoteBytes;
    counters.ufsBytes += worker.counters.servedOriginBytes;
    if (worker.files === undefined) {
      haveFiles = false;
      continue;
    }
    for (const file of worker.files) {
      if (
        options.currentVersion !== undefined &&
        options.currentVersion(file.mount, file.path) !== file.version
      ) {
        continue;
      }
      const id = fileVersionIdOf(file);
      let indices = blocks.get(id);
      if (indices === undefined) {
        indices = new Map();
        blocks.set(id, indices);
      }
      for (const [index, sizeBytes] of file.blocks) indices.set(index, sizeBytes);
    }
  }
  let cachedBytes = 0;
  if (haveFiles) {
    for (const indices of blocks.values()) for (const sizeBytes of indices.values()) cachedBytes += sizeBytes;
  } else {
    // Without per-file lists replicas and old versions cannot be told apart: an upper bound.
    cachedBytes = fallbackCached;
  }

  const delta: ReadCounters =
    options.previous === undefined
      ? counters
      : {
          localBytes: Math.max(0, counters.localBytes - options.previous.localBytes),
          remoteBytes: Math.max(0, counters.remoteBytes - options.previous.remoteBytes),
          ufsBytes: Math.max(0, counters.ufsBytes - options.previous.ufsBytes),
        };
  const totalRead = delta.localBytes + delta.remoteBytes + delta.ufsBytes;
  const ratio = (part: number): string => percent(totalRead === 0 ? 0 : part / totalRead);

  const cacheStates: Record<string, string> = {
    cached: formatBytes(cachedBytes),
    cacheCapacity: formatBytes(capacityBytes),
    cacheHitRatio: ratio(delta.localBytes + delta.remoteBytes),
    localHitRatio: ratio(delta.localBytes),
    remoteHitRatio: ratio(delta.remoteBytes),
    cacheThroughputRatio: ratio(delta.localBytes + delta.remoteBytes),
    localThroughputRatio: ratio(delta.localBytes),
    remoteThroughputRatio: ratio(delta.remoteBytes),
  };
  if (options.ufsTotalBytes !== undefined) {
    cacheStates['cachedPercentage'] = percent(
      options.ufsTotalBytes <= 0 ? 0 : Math.min(1, cachedBytes / options.ufsTotalBytes),
    );
  }
  return { cacheStates, cachedBytes, capacityBytes, counters };
}

/** `"%.1f%%"` of a ratio, as Fluid formats percentages. */
function percent(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}

/**
 * Reads one worker's `/v1/stats`.
 * @throws {CacheError} ERR_CACHE_UNAVAILABLE when the worker does not answer with stats
 */
export async function fetchWorkerStats(
  worker: Pick<WorkerEndpoint, 'url' | 'id'>,
  options: WorkerCallOptions & { files?: boolean } = {},
): Promise<WorkerStats> {
  const path = `${STATS_PATH}${options.files === true ? '?files=1' : ''}`;
  return callWorker<WorkerStats>(worker, 'GET', path, options, 'read the stats of');
}

/**
 * Makes one worker drop every block it holds (`DELETE /v1/blocks`), before its runtime is removed.
 * @throws {CacheError} ERR_CACHE_UNAVAILABLE when the worker does not answer
 */
export async function clearWorkerBlocks(
  worker: Pick<WorkerEndpoint, 'url' | 'id'>,
  options: WorkerCallOptions = {},
): Promise<PruneResult> {
  return callWorker<PruneResult>(worker, 'DELETE', BLOCKS_PATH, options, 'clear the blocks of');
}

export interface WorkerCallOptions {
  token?: SecretValue;
  signal?: AbortSignal;
  /** Default 10 000 ms. */
  timeoutMs?: number;
}

async function callWorker<T>(
  worker: Pick<WorkerEndpoint, 'url' | 'id'>,
  method: 'GET' | 'DELETE',
  path: string,
  options: WorkerCallOptions,
  action: string,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token.reveal()}`;
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
  try {
    const { statusCode, body } = await request(`${worker.url}${path}`, { method, headers, signal });
    if (statusCode !== 200) {
      await body.dump();
      throw new Error(`it answered ${statusCode}`);
    }
    return (await body.json()) as T;
  } catch (error) {
    throw new CacheError(
      'ERR_CACHE_UNAVAILABLE',
      `Cannot ${action} worker ${worker.id}: ${toError(error).message}`,
      {
        cause: error,
      },
    );
  }
}
