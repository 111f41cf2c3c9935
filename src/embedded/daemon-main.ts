// The embedded daemon's process: `tide start` runs it detached, with its output going to
// $TIDE_HOME/logs/daemon.log. SIGTERM and SIGINT stop it the way `tide stop` does.
import { createLogger } from '../lib/index.ts';
import { LocalPlatform } from '../platform/index.ts';
import { embeddedConfigFrom } from './config.ts';
import { startDaemon } from './daemon.ts';
import { readFileSync } from 'node:fs';

const config = embeddedConfigFrom(process.env);
// Inherited by the workers and mounts this daemon starts, however the daemon itself was started.
process.env['NODE_COMPILE_CACHE'] ??= config.compileCacheDir;
const logger = createLogger({ level: process.env['TIDE_LOG_LEVEL'] === 'debug' ? 'debug' : 'info' });
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

try {
  const daemon = await startDaemon({
    config,
    logger,
    version,
    platform: (embedded, platformLogger) =>
      new LocalPlatform({
        runDir: embedded.runDir,
        cacheDir: embedded.cacheDir,
        mountRoot: embedded.mountRoot,
        pvcRoot: embedded.pvcRoot,
        logger: platformLogger,
      }),
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void daemon.shutdown();
    });
  }
  await daemon.closed;
  process.exit(0);
} catch (error) {
  logger.fatal({ err: error }, 'the daemon could not start');
  process.exit(1);
}
