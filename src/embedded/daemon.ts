import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ControllerManager } from '../controller/index.ts';
import type { Logger } from '../lib/index.ts';
import type { Platform } from '../platform/index.ts';
import { SqliteStore } from '../store/index.ts';
import { createUnderFileSystem } from '../ufs/index.ts';
import { createApiServer } from './api-server.ts';
import { socketAnswers, type EmbeddedConfig } from './config.ts';
import { servesHpas } from './admission.ts';
import { makeHomeOwnerOnly } from './owner-only.ts';

/** Workers of one runtime on this machine: each is a process with tiers of its own. */
const MAX_LOCAL_WORKERS = 32;

export interface DaemonOptions {
  config: EmbeddedConfig;
  logger: Logger;
  version: string;
  /** Builds the platform; the local-process platform in production. */
  platform: (config: EmbeddedConfig, logger: Logger) => Platform & { stopAll(): Promise<void> };
}

export interface RunningDaemon {
  /** Unmounts every dataset, stops every worker, closes the store and the socket. */
  shutdown(): Promise<void>;
  closed: Promise<void>;
}

/**
 * Starts the embedded control plane: the store, the reconcilers, the platform and the API socket.
 * A second daemon on the same `$TIDE_HOME` refuses to start while the first answers on the socket.
 */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const { config, logger } = options;
  // Before anything is created: the database (and its -wal and -shm), run files, logs, block
  // files and the processes started from here are owner-only; they hold Secrets and tokens.
  process.umask(0o077);
  await mkdir(config.home, { recursive: true, mode: 0o700 });
  await makeHomeOwnerOnly(config.home, [config.mountRoot], logger);
  await mkdir(dirname(config.logPath), { recursive: true });
  if (await socketAnswers(config.socketPath)) {
    throw new Error(`a Tide daemon is already running on ${config.socketPath}`);
  }
  await rm(config.socketPath, { force: true });
  const store = new SqliteStore({ path: config.databasePath });
  const platform = options.platform(config, logger.child({ component: 'platform' }));
  const manager = new ControllerManager({
    store,
    platform,
    logger,
    ufsFactory: (mount) => createUnderFileSystem(mount, { pvcRoot: config.pvcRoot, logger }),
    hpaTargets: servesHpas(),
  });
  let resolveClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('shutting down: unmounting datasets and stopping workers');
      server.close();
      await manager.stop();
      await platform.stopAll();
      store.close();
      await rm(config.socketPath, { force: true });
      await rm(config.pidPath, { force: true });
      logger.info('stopped');
      resolveClosed();
    })();
    return stopping;
  };
  const server = createApiServer({
    store,
    logger: logger.child({ component: 'api' }),
    version: options.version,
    admission: {
      cacheDir: config.cacheDir,
      allowOther: config.allowOther,
      maxLocalWorkers: MAX_LOCAL_WORKERS,
    },
    onShutdown: () => {
      void shutdown();
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(config.socketPath, 0o600);
  await writeFile(config.pidPath, `${process.pid}\n`);
  manager.start();
  logger.info(
    { home: config.home, socket: config.socketPath, mountRoot: config.mountRoot },
    'Tide control plane started',
  );
  return { shutdown, closed };
}
