import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { killGroup, peerEnv, run, unmount, waitForMount } from './exec.ts';
import type { Origin, OriginKind } from './origin.ts';
import { processTreeOf } from './procstat.ts';

/** One mounted, ready instance of a system, with empty caches. */
export interface Instance {
  /** Where the data set appears. */
  root: string;
  /** Seconds from the start command to a usable mount. */
  readySeconds: number;
  /** The processes that serve the mount (daemons), for CPU and peak memory. */
  pids(): Promise<number[]>;
  /** Unmounts, stops every process and removes the caches. */
  stop(): Promise<void>;
}

export interface System {
  id: string;
  label: string;
  role: 'tide' | 'peer' | 'local';
  origin: OriginKind | 'local';
  /** The options it runs with, for the report. */
  options: string;
  /**
   * Count origin bytes by time window rather than by file path: for systems whose origin objects are
   * not the data set's files (JuiceFS chunks).
   */
  amplificationByWindow?: boolean;
  /** Why it cannot run here, or undefined. */
  unavailable(): Promise<string | undefined>;
  start(round: number): Promise<Instance>;
}

/** The data set on local disk: the cold-disk and page-cache references. */
export function localSystem(root: string): System {
  return {
    id: 'local',
    label: 'local disk (reference)',
    role: 'local',
    origin: 'local',
    options: 'the generated files on the local ext4 disk, read directly',
    unavailable: () => Promise.resolve(undefined),
    start: () =>
      Promise.resolve({
        root,
        readySeconds: 0,
        pids: () => Promise.resolve([]),
        stop: () => Promise.resolve(),
      }),
  };
}

export interface FuseDaemonOptions {
  what: string;
  command: string;
  args: (mountPoint: string, cacheDir: string) => string[];
  env: NodeJS.ProcessEnv;
  workDir: string;
}

/** Starts a foreground FUSE daemon in its own process group and waits for its mount. */
export async function startFuseDaemon(options: FuseDaemonOptions): Promise<Instance> {
  const mountPoint = join(options.workDir, 'mnt');
  const cacheDir = join(options.workDir, 'cache');
  await rm(options.workDir, { recursive: true, force: true });
  await mkdir(mountPoint, { recursive: true });
  await mkdir(cacheDir, { recursive: true });
  const log = await open(join(options.workDir, 'daemon.log'), 'a');
  const started = process.hrtime.bigint();
  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args(mountPoint, cacheDir), {
      detached: true,
      env: options.env,
      stdio: ['ignore', log.fd, log.fd],
    });
  } finally {
    await log.close();
  }
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = `${options.what} exited (${code ?? signal ?? '?'}); see ${join(options.workDir, 'daemon.log')}`;
  });
  child.once('error', (error) => {
    exited = `${options.what} could not run: ${error.message}`;
  });
  const stop = async (): Promise<void> => {
    await unmount(mountPoint);
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => {
        child.once('exit', () => {
          resolve();
        });
      });
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => {
        killGroup(child);
      }, 10_000);
      await gone;
      clearTimeout(timer);
    }
    await unmount(mountPoint);
    await rm(cacheDir, { recursive: true, force: true });
  };
  try {
    await waitForMount(mountPoint, { timeoutMs: 60_000, what: options.what, failed: () => exited });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    root: mountPoint,
    readySeconds: Number(process.hrtime.bigint() - started) / 1e9,
    pids: () =>
      child.pid === undefined || exited !== undefined ? Promise.resolve([]) : processTreeOf(child.pid),
    stop,
  };
}

async function executable(path: string): Promise<string | undefined> {
  try {
    await access(path);
    return undefined;
  } catch {
    return `${path} is not installed (scripts/bench-deps.sh installs it)`;
  }
}

export interface RcloneOptions {
  id: string;
  binary: string;
  version: string;
  origin: OriginKind;
  /** Flags only newer versions have. */
  extraFlags: readonly string[];
}

/**
 * `rclone mount` with the full VFS cache, tuned for read-only sequential and random reads as rclone's
 * documentation advises: long attribute and directory caches, a large read-ahead and read chunks,
 * and no modification-time or checksum work. (HTTP keeps its HEAD per file: --http-no-head would leave every size unknown, so files read as empty.)
 */
export function rcloneSystem(origin: Origin, runDir: string, options: RcloneOptions): System {
  const common = [
    '--read-only',
    '--vfs-cache-mode',
    'full',
    '--vfs-cache-max-size',
    '100G',
    '--vfs-read-ahead',
    '256M',
    '--buffer-size',
    '64M',
    '--vfs-read-chunk-size',
    '16M',
    '--dir-cache-time',
    '1h',
    '--attr-timeout',
    '1h',
    '--no-checksum',
    '--no-modtime',
    '--log-level',
    'ERROR',
    ...options.extraFlags,
  ];
  const remoteFlags = options.origin === 'http' ? ['--http-url', origin.httpUrl] : ['--s3-provider', 'Other'];
  return {
    id: options.id,
    label: `rclone ${options.version} (${options.origin})`,
    role: 'peer',
    origin: options.origin,
    options: `rclone mount ${options.origin === 'http' ? ':http:' : ':s3:bench'} ${[...remoteFlags, ...common].join(' ').replace(origin.httpUrl, 'URL')}`,
    unavailable: async () => {
      if (options.origin === 's3' && origin.s3 === undefined)
        return `no S3 origin: ${origin.s3Unavailable ?? '?'}`;
      return executable(options.binary);
    },
    start: (round) => {
      const s3 = origin.s3;
      const env =
        options.origin === 's3' && s3 !== undefined
          ? peerEnv({
              RCLONE_S3_ENDPOINT: s3.endpoint,
              RCLONE_S3_REGION: s3.region,
              RCLONE_S3_FORCE_PATH_STYLE: 'true',
              RCLONE_S3_ACCESS_KEY_ID: s3.accessKeyId,
              RCLONE_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
              RCLONE_CONFIG: '/dev/null',
            })
          : peerEnv({ RCLONE_CONFIG: '/dev/null' });
      return startFuseDaemon({
        what: options.id,
        command: options.binary,
        env,
        workDir: join(runDir, `${options.id}-r${round}`),
        args: (mountPoint, cacheDir) => [
          'mount',
          options.origin === 'http' ? ':http:' : `:s3:${s3?.bucket ?? 'bench'}`,
          mountPoint,
          ...remoteFlags,
          ...common,
          '--cache-dir',
          cacheDir,
        ],
      });
    },
  };
}

/**
 * s3fs with its local file cache (`use_cache`), read-only, with parallel ranged downloads and the
 * stat cache sized for the tree, as its documentation and wiki advise for read-mostly data.
 */
export function s3fsSystem(origin: Origin, runDir: string, version: string): System {
  const tuning = [
    'ro',
    'use_path_request_style',
    'parallel_count=8',
    'multipart_size=16',
    'max_stat_cache_size=200000',
    'stat_cache_expire=3600',
    'enable_noobj_cache',
    'kernel_cache',
    'max_background=64',
    'readwrite_timeout=120',
  ];
  return {
    id: 's3fs',
    label: `s3fs ${version} (s3)`,
    role: 'peer',
    origin: 's3',
    options: `s3fs bench MOUNT -o url=URL,use_cache=DIR,${tuning.join(',')}`,
    unavailable: async () => {
      if (origin.s3 === undefined) return `no S3 origin: ${origin.s3Unavailable ?? '?'}`;
      return executable('/usr/bin/s3fs');
    },
    start: async (round) => {
      const s3 = origin.s3!;
      const workDir = join(runDir, `s3fs-r${round}`);
      const passwd = join(runDir, 's3fs.passwd');
      await mkdir(runDir, { recursive: true });
      await writeFile(passwd, `${s3.accessKeyId}:${s3.secretAccessKey}\n`, { mode: 0o600 });
      return startFuseDaemon({
        what: 's3fs',
        command: 's3fs',
        env: peerEnv(),
        workDir,
        args: (mountPoint, cacheDir) => [
          s3.bucket,
          mountPoint,
          '-f',
          '-o',
          [
            `url=${s3.endpoint}`,
            `endpoint=${s3.region}`,
            `passwd_file=${passwd}`,
            `use_cache=${cacheDir}`,
            'dbglevel=err',
            ...tuning,
          ].join(','),
        ],
      });
    },
  };
}

/** First line of `command --version`-like output, or a note that it did not run. */
export async function versionOf(command: string, args: readonly string[]): Promise<string> {
  try {
    const result = await run(command, args, { timeoutMs: 10_000, env: peerEnv() });
    const text = `${result.stdout}\n${result.stderr}`.trim();
    return text.split('\n')[0]?.trim() ?? '?';
  } catch (error) {
    return `not available (${(error as Error).message})`;
  }
}
