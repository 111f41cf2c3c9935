/**
 * The cache worker process the platform starts for one dataset:
 *
 *   node src/cache/worker-main.ts [--config <file>]
 *
 * The configuration (worker-config.ts, `WorkerProcessConfig`) is JSON read from standard input, or
 * from `<file>`: never from the command line or the environment, as it carries the runtime token
 * and the mounts' secrets. Once serving, the process writes one JSON line to standard output:
 * `{"event":"listening","url":"http://127.0.0.1:40123","port":40123,"workerId":"…","nodeName":"…"}`;
 * logs go to standard error. SIGTERM or SIGINT stop it (MEM tier emptied, SSD/HDD kept) and it
 * writes `{"event":"stopped"}` and exits 0. Exit 1: it could not start; 2: bad usage or
 * configuration.
 */
import { readFile } from 'node:fs/promises';
import { createLogger, toError } from '../lib/index.ts';
import { CacheError } from './errors.ts';
import { parseWorkerConfig, workerOptionsFromConfig } from './worker-config.ts';
import { startWorker } from './worker.ts';

async function readConfigText(args: readonly string[]): Promise<string> {
  if (args.length === 0 || (args[0] === '--config' && args[1] === '-')) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  if (args[0] === '--config' && args[1] !== undefined && args.length === 2) return readFile(args[1], 'utf8');
  throw new CacheError(
    'ERR_CACHE_BAD_CONFIG',
    'usage: worker-main.ts [--config <file>] (default: standard input)',
  );
}

async function main(): Promise<number> {
  let config;
  try {
    config = parseWorkerConfig(JSON.parse(await readConfigText(process.argv.slice(2))));
  } catch (error) {
    process.stderr.write(`tide cache worker: ${toError(error).message}\n`);
    return 2;
  }
  const logger = createLogger({ level: config.logLevel ?? 'info' });
  let worker;
  try {
    worker = await startWorker(workerOptionsFromConfig(config, { logger }));
  } catch (error) {
    logger.error({ err: toError(error) }, 'cache worker could not start');
    return error instanceof CacheError && error.code === 'ERR_CACHE_BAD_CONFIG' ? 2 : 1;
  }
  const started = worker;
  process.stdout.write(
    `${JSON.stringify({ event: 'listening', url: started.url, port: started.port, workerId: started.workerId, nodeName: started.nodeName })}\n`,
  );
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const)
      process.once(signal, () => {
        resolve();
      });
  });
  await started.close();
  process.stdout.write(`${JSON.stringify({ event: 'stopped' })}\n`);
  return 0;
}

process.exitCode = await main();
