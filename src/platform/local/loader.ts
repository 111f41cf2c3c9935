import type { CacheClient } from '../../cache/index.ts';
import { formatBytes, TokenBucket } from '../../lib/index.ts';
import type { UfsEntry } from '../../ufs/index.ts';
import type { LoadPlan, LoadProgress } from '../types.ts';

/** Blocks of one file loaded at once. */
const BLOCKS_PER_FILE = 16;

/**
 * Loads every file of the plan's targets through the cache client: listing streams while files
 * load, at most `parallelism` at once, with the bandwidth cap applied per file. Progress counts
 * each file once, whatever its replicas.
 */
export async function loadTargets(
  client: CacheClient,
  plan: LoadPlan,
  options: {
    signal: AbortSignal;
    onProgress: (progress: LoadProgress) => void;
    /** Receives every file listed, with its current version, for the mounts to invalidate changes. */
    onListed?: (entry: UfsEntry) => void;
    /** What the workers can hold in all; a load that cannot fit fails instead of evicting itself. */
    capacityBytes?: number;
  },
): Promise<LoadProgress> {
  const { signal, onProgress } = options;
  const progress: LoadProgress = { filesDone: 0, bytesDone: 0 };
  const bandwidth =
    plan.bandwidthBytesPerSecond === undefined ? undefined : new TokenBucket(plan.bandwidthBytesPerSecond);
  const running = new Set<Promise<void>>();
  let failure: Error | undefined;
  let filesTotal = 0;
  let bytesTotal = 0;
  let neededBytes = 0;
  /** What the targets' listings found, for dropping the blocks of other versions afterwards. */
  const listed = new Map<string, string>();

  const loadFile = async (entry: UfsEntry, replicas: number): Promise<void> => {
    await bandwidth?.take(entry.sizeBytes, signal);
    // The listed entry goes along: no stat per file. A large file keeps many blocks in flight (the
    // workers bound their own origin fetches); a small one is a single block anyway.
    await client.load(entry.path, { entry, replicas, signal, concurrency: BLOCKS_PER_FILE });
    progress.filesDone += 1;
    progress.bytesDone += entry.sizeBytes;
    onProgress({ ...progress });
  };

  for (const target of plan.targets) {
    const top = await client.stat(target.path, { signal });
    const files: AsyncIterable<UfsEntry> =
      top.type === 'file' ? single(top) : client.list(target.path, { recursive: true, signal });
    for await (const entry of files) {
      if (failure !== undefined) break;
      if (entry.type !== 'file') continue;
      options.onListed?.(entry);
      listed.set(entry.path, entry.version);
      filesTotal += 1;
      bytesTotal += entry.sizeBytes;
      neededBytes += entry.sizeBytes * target.replicas;
      if (options.capacityBytes !== undefined && neededBytes > options.capacityBytes) {
        failure ??= new Error(
          `the targets need more than the cache holds: at least ${formatBytes(neededBytes)} with replicas, capacity ${formatBytes(options.capacityBytes)}; add workers or quota, or load less`,
        );
        break;
      }
      while (running.size >= plan.parallelism) await Promise.race(running);
      const task = loadFile(entry, target.replicas)
        .catch((error: unknown) => {
          failure ??= error instanceof Error ? error : new Error(String(error));
        })
        .finally(() => running.delete(task));
      running.add(task);
    }
    if (failure !== undefined) break;
  }
  progress.filesTotal = filesTotal;
  progress.bytesTotal = bytesTotal;
  onProgress({ ...progress });
  await Promise.all(running);
  if (failure !== undefined) throw failure;
  // Blocks of versions no listing names any more (changed or deleted at the origin) free their
  // space now, and a file deleted at the origin leaves nothing behind in the cache.
  const released = (
    await client.prune(
      plan.targets.map((target) => target.path),
      listed,
      { signal },
    )
  ).bytes;
  if (released > 0) progress.staleBytesReleased = released;
  onProgress({ ...progress });
  return progress;
}

async function* single(entry: UfsEntry): AsyncIterable<UfsEntry> {
  await Promise.resolve();
  yield entry;
}
