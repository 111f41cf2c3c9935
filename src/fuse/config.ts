import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { FuseError } from './errors.ts';

/**
 * How to build the FileSource a mount serves. `local` serves a directory of this machine. Any other
 * kind names a factory registered with `registerFileSourceKind`, usually by the module given in
 * `module` (imported by the server process before it builds the source).
 */
export interface SourceConfig {
  kind: string;
  /** The directory of kind `local`. */
  dir?: string;
  /** A module to import before the factory of `kind` is looked up. */
  module?: string;
  /** Free-form settings for the factory. */
  options?: unknown;
}

/** The JSON document `mount-main.ts` takes (see its contract there). */
export interface MountConfig {
  /** Absolute directory to mount on; created if missing. */
  target: string;
  /** libfuse-style options: `-okernel_cache`, `-o a,b`, `--fuse-opts=a,b`. */
  fuseArgs: string[];
  source: SourceConfig;
  /** tmpfs directory for the crash-recovery state; default /dev/shm/tide-fuse-<hash of target>. */
  stateDir?: string;
  /**
   * How the server reads /dev/fuse: `epoll` (default) on its event loop, or `threadpool` with
   * `readers` blocking reads (see FuseServerOptions.deviceIo).
   */
  deviceIo?: 'epoll' | 'threadpool';
  /** Concurrent reads of /dev/fuse with deviceIo `threadpool` (default 4). */
  readers?: number;
  /** UV_THREADPOOL_SIZE of the server process (default 16); must exceed `readers`. */
  threadpoolSize?: number;
  /** pino level of the server and supervisor logs (default info). */
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

function bad(message: string): FuseError {
  return new FuseError('ERR_FUSE_BAD_CONFIG', `Cannot use the mount configuration: ${message}`);
}

/**
 * Checks a parsed JSON mount configuration and fills in defaults.
 * @throws {FuseError} ERR_FUSE_BAD_CONFIG naming the field at fault.
 */
export type ValidMountConfig = Required<Omit<MountConfig, 'logLevel'>> & {
  logLevel: MountConfig['logLevel'] | undefined;
};

export function validateMountConfig(value: unknown): ValidMountConfig {
  if (typeof value !== 'object' || value === null) throw bad('it must be a JSON object');
  const config = value as Record<string, unknown>;
  if (typeof config.target !== 'string' || config.target === '')
    throw bad('/target must be a directory path');
  const fuseArgs = config.fuseArgs ?? [];
  if (!Array.isArray(fuseArgs) || !fuseArgs.every((arg) => typeof arg === 'string'))
    throw bad('/fuseArgs must be an array of strings');
  const source = config.source as Record<string, unknown> | undefined;
  if (typeof source !== 'object' || typeof source.kind !== 'string')
    throw bad('/source/kind must be a string');
  if (source.kind === 'local' && typeof source.dir !== 'string')
    throw bad('/source/dir must be a directory path for kind local');
  if (source.module !== undefined && typeof source.module !== 'string')
    throw bad('/source/module must be a module path');
  const deviceIo = config.deviceIo ?? 'epoll';
  if (deviceIo !== 'epoll' && deviceIo !== 'threadpool')
    throw bad('/deviceIo must be "epoll" or "threadpool"');
  const readers = config.readers ?? 4;
  if (typeof readers !== 'number' || !Number.isInteger(readers) || readers < 1 || readers > 64)
    throw bad('/readers must be an integer from 1 to 64');
  const threadpoolSize = config.threadpoolSize ?? Math.max(16, readers + 8);
  if (
    typeof threadpoolSize !== 'number' ||
    !Number.isInteger(threadpoolSize) ||
    threadpoolSize < readers + 2 ||
    threadpoolSize > 1024
  ) {
    throw bad('/threadpoolSize must be an integer at least readers + 2');
  }
  if (config.logLevel !== undefined && (typeof config.logLevel !== 'string' || !LEVELS.has(config.logLevel)))
    throw bad('/logLevel is not a pino level');
  const target = resolve(config.target);
  const stateDir =
    config.stateDir ?? `/dev/shm/tide-fuse-${createHash('sha256').update(target).digest('hex').slice(0, 16)}`;
  if (typeof stateDir !== 'string') throw bad('/stateDir must be a directory path');
  return {
    target,
    fuseArgs,
    source: source as unknown as SourceConfig,
    stateDir,
    deviceIo,
    readers,
    threadpoolSize,
    logLevel: config.logLevel as MountConfig['logLevel'],
  };
}
