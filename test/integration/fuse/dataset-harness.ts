import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNginx } from '../../helpers/nginx.ts';
import { spawnWorker, tempDir } from '../cache/helpers.ts';
import type { WorkerEndpoint } from '../../../src/cache/index.ts';
import type { NginxServer } from '../../helpers/nginx.ts';
import { makeTempDir, startMount } from './harness.ts';
import type { MountedDataset } from './harness.ts';

/** The dataset source module the local platform's mounts load. */
export const DATASET_SOURCE = join(
  import.meta.dirname,
  '..',
  '..',
  '..',
  'src',
  'platform',
  'local',
  'dataset-source.ts',
);

/** A mount of the local platform's dataset source over nginx serving `root`, without workers. */
export interface MountedHttpDataset {
  mount: MountedDataset;
  nginx: NginxServer;
  /** The dataset's run directory: `versions.json` written here reaches the mount. */
  runDir: string;
  /** Replaces `versions.json` atomically, as a DataLoad does. */
  writeVersions(file: { targets: string[]; entries: [string, string][] }): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts nginx on `root` and mounts it through `src/platform/local/dataset-source.ts` (the cache
 * client with no workers reads from the origin), as the local platform does.
 */
export async function startHttpDatasetMount(options: {
  root: string;
  fuseArgs?: string[];
  /** Cache workers (one tier each, in a temporary directory) the mount reads through. */
  workers?: number;
  /** The workers' tier: SSD in the temporary directory (the default), or MEM in /dev/shm. */
  medium?: 'SSD' | 'MEM';
  /** Serve the origin through nginx's `limit_rate` (bytes per second per connection), as a remote store. */
  originRateBytesPerSecond?: number;
}): Promise<MountedHttpDataset> {
  const nginx = await startNginx({
    root: options.root,
    ...(options.originRateBytesPerSecond === undefined
      ? {}
      : { rateLimitBytesPerSecond: options.originRateBytesPerSecond }),
  });
  const originUrl = nginx.slowUrl ?? nginx.url;
  const runDir = await makeTempDir('tide-fuse-dataset-');
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step();
    await nginx.stop();
    await rm(runDir, { recursive: true, force: true });
  };
  // The local platform's workers require the runtime's token; the harness's do too.
  const token = randomBytes(32).toString('base64url');
  try {
    const workers: WorkerEndpoint[] = [];
    for (let index = 0; index < (options.workers ?? 0); index += 1) {
      const medium = options.medium ?? 'SSD';
      const tierPath = await tempDir((step) => cleanups.push(step), medium === 'MEM' ? '/dev/shm' : tmpdir());
      const worker = await spawnWorker((step) => cleanups.push(step), {
        datasetId: 'default/bench',
        workerId: `bench-worker-${index}`,
        nodeName: hostname(),
        blockSize: '4Mi',
        tieredstore: { levels: [{ mediumtype: medium, path: tierPath, quota: '4Gi' }] },
        mounts: [{ mountPoint: originUrl }],
        token,
        logLevel: 'warn',
      });
      workers.push(worker.endpoint);
    }
    const membershipPath = join(runDir, 'members.json');
    await writeFile(membershipPath, JSON.stringify({ workers }));
    const configPath = join(runDir, 'dataset.json');
    await writeFile(
      configPath,
      JSON.stringify({
        datasetId: 'default/bench',
        token,
        blockSizeBytes: 4 * 1024 * 1024,
        membershipPath,
        pvcRoot: runDir,
        mounts: [{ path: '/', mountPoint: originUrl, options: {}, secrets: {} }],
      }),
    );
    const mount = await startMount({
      sourceDir: options.root,
      fuseArgs: options.fuseArgs ?? [],
      source: { kind: 'tide-dataset', module: DATASET_SOURCE, options: { configPath } },
    });
    return {
      mount,
      nginx,
      runDir,
      writeVersions: async (file) => {
        const path = join(runDir, 'versions.json');
        await writeFile(`${path}.tmp`, JSON.stringify(file));
        await rename(`${path}.tmp`, path);
      },
      stop: async () => {
        await mount.stop();
        await cleanup();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
