import { readFile, watch } from 'node:fs/promises';
import { dirname } from 'node:path';
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
  /** The dataset's run directory, where the daemon writes membership and versions. */
  runDir: string;
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
  // The connectors are this function's, not the cache client's: close() closes them too.
  const connectors = file.mounts.map((mount) =>
    createUnderFileSystem(
      {
        mountPoint: mount.mountPoint,
        options: mount.options,
        secrets: Object.fromEntries(
          Object.entries(mount.secrets).map(([name, value]) => [name, new SecretValue(value)]),
        ),
      },
      { pvcRoot: file.pvcRoot, logger },
    ),
  );
  const client = createCacheClient({
    datasetId: file.datasetId,
    token: new SecretValue(file.token),
    membership,
    blockSizeBytes: file.blockSizeBytes,
    logger,
    mounts: file.mounts.map((mount, index) => ({
      id: mountIdOf(mount.mountPoint),
      path: mount.path,
      ufs: connectors[index] as (typeof connectors)[number],
    })),
  });
  return {
    client,
    runDir: dirname(configPath),
    close: async () => {
      stop.abort();
      await client.close();
      await Promise.allSettled(connectors.map((connector) => connector.close()));
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

async function followMembership(
  path: string,
  membership: StaticMembership,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  let last = JSON.stringify(membership.workers());
  await followFile(path, signal, async () => {
    const workers = await readMembers(path);
    const text = JSON.stringify(workers);
    if (text !== last) {
      last = text;
      membership.update(workers);
      logger.info({ workers: workers.map((worker) => worker.id) }, 'membership changed');
    }
  });
}

/**
 * Calls `onChange` when a file the daemon replaces atomically (by rename) may have changed: the
 * directory is watched, with a slow poll as a fallback. Runs until `signal` aborts.
 */
export async function followFile(
  path: string,
  signal: AbortSignal,
  onChange: () => Promise<void>,
): Promise<void> {
  const refresh = (): void => {
    void onChange().catch(() => undefined);
  };
  const poll = setInterval(refresh, 2000);
  poll.unref();
  signal.addEventListener('abort', () => {
    clearInterval(poll);
  });
  try {
    for await (const event of watch(dirname(path), { signal })) {
      if (event.filename === null || path.endsWith(`/${event.filename}`)) refresh();
    }
  } catch {
    // Aborted, or the directory went away with the dataset; the poll covers the rest.
  }
}
