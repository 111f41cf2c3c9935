import type { Logger } from '../lib/index.ts';
import type { ResolvedMount } from '../platform/index.ts';
import { UfsError, type UnderFileSystem } from '../ufs/index.ts';
import { mountsSignature } from './plan.ts';

export type UfsFactory = (mount: ResolvedMount) => UnderFileSystem;

export interface MetadataTotals {
  files: number;
  bytes: number;
}

export interface MetadataState {
  running: boolean;
  /** Counted so far by the running sync. */
  progress: MetadataTotals;
  /** The last completed sync. */
  result?: MetadataTotals & { finishedAtMs: number };
  error?: Error;
}

export interface MetadataSyncOptions {
  ufsFactory: UfsFactory;
  /** Called (throttled) when a sync makes progress or ends, to requeue the dataset. */
  onChange: (key: string) => void;
  logger: Logger;
  now?: () => number;
  progressIntervalMs?: number;
  /**
   * Entries (files and directories, all mounts together) a walk may count before it stops with
   * ERR_UFS_TOO_MANY_ENTRIES: an origin that never ends (a loop, a huge mount) fails the sync
   * instead of walking forever. Default 10,000,000.
   */
  maxEntries?: number;
}

const DEFAULT_MAX_ENTRIES = 10_000_000;
/** How long a walk that failed (an origin outage, a bad credential) waits before the next one. */
const FAILED_RETRY_MS = 30_000;

function waitAfter(entry: { state: MetadataState }, policy: { intervalMs: number }): number {
  const error = entry.state.error as (Error & { code?: string }) | undefined;
  if (error === undefined || error.code === 'ERR_UFS_TOO_MANY_ENTRIES') return policy.intervalMs;
  return Math.min(FAILED_RETRY_MS, policy.intervalMs);
}

interface Entry {
  state: MetadataState;
  signature: string;
  abort: AbortController;
  /** When the walk ended, successfully or not. */
  endedAtMs?: number;
}

/**
 * Walks each dataset's under file systems in the background to count files and bytes (Fluid's
 * `ufsTotal` and `fileNum`), so that binding never waits for a listing, and again periodically when
 * `metadataSyncPolicy.autoSync` is on. Results live in memory; after a daemon restart the next
 * reconcile starts a new walk while the previous totals stay in the Dataset status.
 */
export class MetadataSync {
  readonly #options: MetadataSyncOptions;
  readonly #entries = new Map<string, Entry>();

  constructor(options: MetadataSyncOptions) {
    this.#options = options;
  }

  state(key: string): MetadataState | undefined {
    return this.#entries.get(key)?.state;
  }

  /** Starts a walk unless one is running or a recent one (for these mounts) is fresh enough. */
  ensure(
    key: string,
    mounts: readonly ResolvedMount[],
    policy: { autoSync: boolean; intervalMs: number },
  ): void {
    const signature = mountsSignature(mounts);
    const entry = this.#entries.get(key);
    const now = (this.#options.now ?? Date.now)();
    if (entry !== undefined && entry.signature === signature) {
      if (entry.state.running) return;
      // A failed walk waits too: one retried at once after an origin outage would hammer it, and
      // one that failed at its bound of entries would walk forever (it waits the whole interval).
      if (
        entry.endedAtMs !== undefined &&
        (!policy.autoSync || now - entry.endedAtMs < waitAfter(entry, policy))
      ) {
        return;
      }
    }
    entry?.abort.abort();
    const next: Entry = {
      state: {
        running: true,
        progress: { files: 0, bytes: 0 },
        ...(entry?.state.result === undefined ? {} : { result: entry.state.result }),
      },
      signature,
      abort: new AbortController(),
    };
    this.#entries.set(key, next);
    void this.#walk(key, next, mounts);
  }

  forget(key: string): void {
    this.#entries.get(key)?.abort.abort();
    this.#entries.delete(key);
  }

  stopAll(): void {
    for (const key of [...this.#entries.keys()]) this.forget(key);
  }

  async #walk(key: string, entry: Entry, mounts: readonly ResolvedMount[]): Promise<void> {
    const { logger, onChange } = this.#options;
    const intervalMs = this.#options.progressIntervalMs ?? 2000;
    let lastReport = Date.now();
    const signal = entry.abort.signal;
    const maxEntries = this.#options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    let entries = 0;
    try {
      for (const mount of mounts) {
        const ufs = this.#options.ufsFactory(mount);
        try {
          for await (const item of ufs.list('', { recursive: true, signal })) {
            entries += 1;
            if (entries > maxEntries) {
              throw new UfsError(
                'ERR_UFS_TOO_MANY_ENTRIES',
                `Cannot count the files of ${ufs.description}: the dataset has more than ${maxEntries} entries`,
              );
            }
            if (item.type !== 'file') continue;
            entry.state.progress.files += 1;
            entry.state.progress.bytes += item.sizeBytes;
            if (Date.now() - lastReport > intervalMs) {
              lastReport = Date.now();
              onChange(key);
            }
          }
        } finally {
          await ufs.close();
        }
      }
      entry.state.result = { ...entry.state.progress, finishedAtMs: (this.#options.now ?? Date.now)() };
      delete entry.state.error;
      logger.info({ dataset: key, ...entry.state.progress }, 'metadata sync finished');
    } catch (error) {
      if (signal.aborted) return;
      entry.state.error = error instanceof Error ? error : new Error(String(error));
      logger.warn({ dataset: key, err: entry.state.error }, 'metadata sync failed');
    } finally {
      entry.state.running = false;
      entry.endedAtMs = (this.#options.now ?? Date.now)();
      if (!signal.aborted) onChange(key);
    }
  }
}
