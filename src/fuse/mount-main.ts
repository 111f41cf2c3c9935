/**
 * The process the platform starts for one FUSE mount:
 *
 *   node src/fuse/mount-main.ts <config.json>
 *
 * The JSON file is a MountConfig (config.ts): `{ "target": "/mnt/ds", "fuseArgs": ["-okernel_cache",
 * "-oattr_timeout=60"], "source": { "kind": "local", "dir": "/data" } }`; other source kinds load
 * through `source.module` (source-registry.ts). The process mounts, runs the supervised server and
 * writes one JSON line per SupervisorEvent to stdout (`{"event":"ready",…}` once the mount serves).
 * Logs go to stderr. SIGTERM or SIGINT unmount (lazily when busy) and exit 0. Exit 1: the mount
 * could not be made; 2: bad usage or configuration. Must run as root (mount(2), /dev/fuse).
 */
import { readFile } from 'node:fs/promises';
import { createLogger, toError } from '../lib/index.ts';
import { FuseError } from './errors.ts';
import { runSupervisor } from './supervisor.ts';
import { validateMountConfig } from './config.ts';

async function main(): Promise<number> {
  const configPath = process.argv[2];
  if (configPath === undefined) {
    process.stderr.write('usage: mount-main.ts <config.json>\n');
    return 2;
  }
  let config;
  try {
    config = validateMountConfig(JSON.parse(await readFile(configPath, 'utf8')));
  } catch (error) {
    process.stderr.write(`tide fuse: ${configPath}: ${toError(error).message}\n`);
    return 2;
  }
  const logger = createLogger({ level: config.logLevel ?? 'info' });
  const controller = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => {
      controller.abort();
    });
  }
  try {
    await runSupervisor({
      config,
      logger,
      signal: controller.signal,
      onEvent: (event) => process.stdout.write(`${JSON.stringify(event)}\n`),
    });
    return 0;
  } catch (error) {
    logger.error({ err: toError(error) }, 'mount failed');
    return error instanceof FuseError && error.code === 'ERR_FUSE_BAD_CONFIG' ? 2 : 1;
  }
}

process.exitCode = await main();
