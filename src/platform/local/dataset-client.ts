import { readFile, watch } from 'node:fs/promises';
import {
  createCacheClient,
  mountIdOf,
  StaticMembership,
  type CacheClient,
  type WorkerEndpoint,
} from '../../cache/index.ts';
import { SecretValue, type Logger } from '../../lib/index.ts';
import { createUnderFileSystem } from '../../ufs/index.ts';
import type { DatasetSourceFile, MembershipFile } from './local-platform.ts';

/** A cache client for a dataset of the local platform, following its membership file. */
export interface DatasetClient {
  client: CacheClient;
  close(): Promise<void>;
}

/**
 * Opens the cache client described by a dataset file the local platform wrote: one connector per
 * mount (for metadata and origin fallback), the dataset's block size, and a membership that
 * follows `members.json` as the daemon starts and stops workers.
 */
export async function openDatasetClient(configPath: string, logger: Logger): Promise<DatasetClient> {
  const file = JSON.parse(await readFile(configPath, 'utf8')) as DatasetSourceFile;
  const membership = new StaticMembership(await readMembers(file.membershipPath));
  const stop = new AbortController();
  void followMembership(file.membershipPath, membership, stop.signal, logger);
  const client = createCacheClient({
    datasetId: file.datasetId,
    membership,
    blockSizeBytes: file.blockSizeBytes,
    logger,
    mounts: file.mounts.map((mount) => ({
      id: mountIdOf(mount.mountPoint),
      path: mount.path,
      ufs: createUnderFileSystem(
        {
          mountPoint: mount.mountPoint,
          options: mount.options,
          secrets: Object.fromEntries(
            Object.entries(mount.secrets).map(([name, value]) => [name, new SecretValue(value)]),
          ),
        },
        { pvcRoot: file.pvcRoot, logger },
      ),
    })),
  });
  return {
    client,
    close: async () => {
      stop.abort();
      await client.close();
    },
  };
}

async function readMembers(path: string): Promise<WorkerEndpoint[]> {
  try {
    return (JSON.parse(await readFile(path, 'utf8')) as MembershipFile).workers;
  } catch {
    return [];
  }
}

/** The daemon replaces the file atomically (rename), so the directory is watched, with a slow poll as a fallback. */
async function followMembership(
  path: string,
  membership: StaticMembership,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  let last = JSON.stringify(membership.workers());
  const refresh = async (): Promise<void> => {
    const workers = await readMembers(path);
    const text = JSON.stringify(workers);
    if (text !== last) {
      last = text;
      membership.update(workers);
      logger.info({ workers: workers.map((worker) => worker.id) }, 'membership changed');
    }
  };
  const poll = setInterval(() => {
    void refresh();
  }, 2000);
  poll.unref();
  signal.addEventListener('abort', () => {
    clearInterval(poll);
  });
  try {
    for await (const _event of watch(path.slice(0, path.lastIndexOf('/')), { signal })) await refresh();
  } catch {
    // Aborted, or the directory went away with the dataset; the poll covers the rest.
  }
}
