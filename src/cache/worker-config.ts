import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Level } from '../api/index.ts';
import { parseQuantity, SecretValue, type Logger } from '../lib/index.ts';
import { createUnderFileSystem, type UfsDependencies } from '../ufs/index.ts';
import { CacheError } from './errors.ts';
import { tiersFromLevels } from './tiers.ts';
import type { WorkerOptions } from './worker.ts';

/**
 * The JSON document `worker-main.ts` reads on standard input (or from the file named by
 * `--config`), so that credentials never appear on a command line or in the environment.
 */
export const WorkerProcessConfig = Type.Object(
  {
    /** `namespace/name` of the dataset. */
    datasetId: Type.String({ minLength: 1 }),
    /** Stable name for rendezvous hashing, e.g. the pod name `demo-worker-0`. */
    workerId: Type.Optional(Type.String({ minLength: 1 })),
    nodeName: Type.Optional(Type.String({ minLength: 1 })),
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    /** Bearer token of the runtime; required when `host` is not a loopback address. */
    token: Type.Optional(Type.String({ minLength: 1 })),
    /** `spec.worker.blockSize`: a quantity (`4Mi`) or a byte count. */
    blockSize: Type.Optional(Type.Union([Type.String(), Type.Integer({ minimum: 1 })])),
    originConcurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
    /** O_DIRECT for SSD/HDD block files where the file system takes it; default true. */
    directIo: Type.Optional(Type.Boolean()),
    tieredstore: Type.Object({ levels: Type.Array(Level, { minItems: 1 }) }),
    mounts: Type.Array(
      Type.Object(
        {
          /** Default: `mountIdOf(mountPoint)`. Clients must use the same id. */
          id: Type.Optional(Type.String({ minLength: 1 })),
          mountPoint: Type.String({ minLength: 1 }),
          options: Type.Optional(Type.Record(Type.String(), Type.String())),
          /** Resolved `encryptOptions`, by option name. */
          secrets: Type.Optional(Type.Record(Type.String(), Type.String())),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
    /** Where `pvc://` mounts resolve (see UfsDependencies). */
    pvcRoot: Type.Optional(Type.String()),
    logLevel: Type.Optional(
      Type.Union([
        Type.Literal('trace'),
        Type.Literal('debug'),
        Type.Literal('info'),
        Type.Literal('warn'),
        Type.Literal('error'),
        Type.Literal('fatal'),
        Type.Literal('silent'),
      ]),
    ),
  },
  { additionalProperties: false },
);
export type WorkerProcessConfig = Static<typeof WorkerProcessConfig>;

const checker = TypeCompiler.Compile(WorkerProcessConfig);

/**
 * Checks a parsed worker configuration.
 * @throws {CacheError} ERR_CACHE_BAD_CONFIG naming the first fields at fault (never their values)
 */
export function parseWorkerConfig(value: unknown): WorkerProcessConfig {
  if (checker.Check(value)) return value;
  const problems = [...checker.Errors(value)]
    .slice(0, 5)
    .map((error) => `${error.path || '/'}: ${error.message}`);
  throw new CacheError('ERR_CACHE_BAD_CONFIG', `Cannot use the worker configuration: ${problems.join('; ')}`);
}

/**
 * The id a mount has in block keys: its mount point without any user information, so that the
 * same mount gets the same id in every worker and client.
 */
export function mountIdOf(mountPoint: string): string {
  try {
    const url = new URL(mountPoint);
    if (url.username === '' && url.password === '') return mountPoint;
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return mountPoint;
  }
}

/**
 * Turns a configuration into `startWorker` options, building a connector for each mount.
 * @throws {CacheError} ERR_CACHE_BAD_CONFIG for tiers or a block size that cannot work
 * @throws {UfsError} for a mount that no connector takes
 */
export function workerOptionsFromConfig(
  config: WorkerProcessConfig,
  deps: { logger: Logger; ufs?: UfsDependencies },
): WorkerOptions {
  const blockSizeBytes =
    config.blockSize === undefined
      ? undefined
      : typeof config.blockSize === 'number'
        ? config.blockSize
        : parseQuantity(config.blockSize);
  if (config.blockSize !== undefined && blockSizeBytes === undefined) {
    throw new CacheError('ERR_CACHE_BAD_CONFIG', `Cannot use the block size "${String(config.blockSize)}"`);
  }
  const ufsDeps: UfsDependencies = { logger: deps.logger, ...deps.ufs };
  if (config.pvcRoot !== undefined) ufsDeps.pvcRoot = config.pvcRoot;
  const mounts = config.mounts.map((mount) => ({
    id: mount.id ?? mountIdOf(mount.mountPoint),
    ufs: createUnderFileSystem(
      {
        mountPoint: mount.mountPoint,
        options: mount.options ?? {},
        secrets: Object.fromEntries(
          Object.entries(mount.secrets ?? {}).map(([name, value]) => [name, new SecretValue(value)]),
        ),
      },
      ufsDeps,
    ),
  }));
  const options: WorkerOptions = {
    datasetId: config.datasetId,
    mounts,
    tiers: tiersFromLevels(config.tieredstore.levels),
    logger: deps.logger,
    processMetrics: true,
  };
  if (config.workerId !== undefined) options.workerId = config.workerId;
  if (config.nodeName !== undefined) options.nodeName = config.nodeName;
  if (config.host !== undefined) options.host = config.host;
  if (config.port !== undefined) options.port = config.port;
  if (config.token !== undefined) options.token = new SecretValue(config.token);
  if (blockSizeBytes !== undefined) options.blockSizeBytes = blockSizeBytes;
  if (config.originConcurrency !== undefined) options.originConcurrency = config.originConcurrency;
  if (config.directIo !== undefined) options.directIo = config.directIo;
  return options;
}
