/**
 * The Tide operator process (the controller image's entry point):
 *
 *   node src/operator/main.ts [--kubeconfig FILE] [--install-crds] [--worker-image IMAGE] …
 *
 * `--help` lists the flags. Inside a pod it uses the service account; leader election on a Lease
 * is on by default, so several replicas may run and one reconciles. Logs are JSON lines on standard
 * error. SIGTERM or SIGINT stop the reconcilers, release the lease and exit 0. Exit 1: it lost the
 * lease (the Deployment restarts it as a candidate) or could not run; 2: bad flags.
 */
import { createLogger, toError } from '../lib/index.ts';
import { CommanderError, parseOperatorArgs } from './config.ts';
import { OperatorError } from './errors.ts';
import { runOperator } from './operator.ts';

async function main(): Promise<number> {
  let config;
  try {
    config = parseOperatorArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof CommanderError) return error.code === 'commander.helpDisplayed' ? 0 : 2;
    process.stderr.write(`tide operator: ${toError(error).message}\n`);
    return error instanceof OperatorError ? 2 : 1;
  }
  const logger = createLogger({ level: config.logLevel });
  const abort = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'stopping');
      abort.abort();
    });
  }
  try {
    const exit = await runOperator(config, { logger, signal: abort.signal });
    logger.info({ exit }, 'operator stopped');
    return exit === 'stopped' ? 0 : 1;
  } catch (error) {
    logger.error({ err: toError(error) }, 'operator failed');
    return 1;
  }
}

process.exitCode = await main();
