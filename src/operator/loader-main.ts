/**
 * The process of a DataLoad Job (the loader image's entry point):
 *
 *   node src/operator/loader-main.ts --config /etc/tide/client.json --plan '<LoadPlan JSON>'
 *       [--kubeconfig FILE] [--termination-log /dev/termination-log]
 *
 * It opens the dataset's cache client (workers from the runtime's EndpointSlices, through the
 * pod's service account or `--kubeconfig`), warms the plan's targets, prints progress as JSON lines
 * on standard output and writes the final progress to the termination log, where the operator
 * reads it back from the pod's status. Exit 0: loaded; 1: the load failed; 2: bad usage.
 */
import { writeFile } from 'node:fs/promises';
import { Command, CommanderError } from 'commander';
import { createLogger, toError } from '../lib/index.ts';
import { KubeClient } from '../kube/index.ts';
import { runLoader, type LoadPlan, type LoadProgress } from '../platform/index.ts';

interface LoaderArgs {
  config: string;
  plan: string;
  kubeconfig?: string;
  terminationLog: string;
}

function parsePlan(text: string): LoadPlan {
  const plan = JSON.parse(text) as Partial<LoadPlan>;
  if (
    typeof plan.dataset?.namespace !== 'string' ||
    typeof plan.dataset.name !== 'string' ||
    !Array.isArray(plan.targets) ||
    typeof plan.parallelism !== 'number'
  ) {
    throw new TypeError(
      '--plan must be a LoadPlan: { dataset: { namespace, name }, targets: [...], parallelism, … }',
    );
  }
  return plan as LoadPlan;
}

async function main(): Promise<number> {
  let args: LoaderArgs;
  let plan: LoadPlan;
  try {
    const program = new Command('tide-loader')
      .exitOverride()
      .requiredOption('--config <path>', "the runtime's client configuration")
      .requiredOption('--plan <json>', 'the LoadPlan')
      .option('--kubeconfig <path>', 'kubeconfig (default the service account)')
      .option('--termination-log <path>', 'where the final progress goes', '/dev/termination-log');
    program.parse(process.argv.slice(2), { from: 'user' });
    args = program.opts<LoaderArgs>();
    plan = parsePlan(args.plan);
  } catch (error) {
    if (error instanceof CommanderError) return error.code === 'commander.helpDisplayed' ? 0 : 2;
    process.stderr.write(`tide loader: ${toError(error).message}\n`);
    return 2;
  }
  const logger = createLogger();
  const abort = new AbortController();
  process.once('SIGTERM', () => {
    abort.abort();
  });
  const kube = args.kubeconfig === undefined ? undefined : await KubeClient.fromKubeConfig(args.kubeconfig);
  let last = 0;
  const report = (progress: LoadProgress): void => {
    if (Date.now() - last < 1000) return;
    last = Date.now();
    process.stdout.write(`${JSON.stringify({ event: 'progress', ...progress })}\n`);
  };
  try {
    const nodeName = process.env['NODE_NAME'];
    const progress = await runLoader({
      configPath: args.config,
      plan,
      logger,
      signal: abort.signal,
      onProgress: report,
      ...(kube === undefined ? {} : { kube }),
      ...(nodeName === undefined || nodeName === '' ? {} : { nodeName }),
    });
    process.stdout.write(`${JSON.stringify({ event: 'done', ...progress })}\n`);
    await writeFile(args.terminationLog, JSON.stringify(progress)).catch((error: unknown) => {
      logger.warn({ err: toError(error) }, 'could not write the termination log');
    });
    return 0;
  } catch (error) {
    logger.error({ err: toError(error) }, 'load failed');
    await writeFile(args.terminationLog, toError(error).message.slice(0, 4000)).catch(() => undefined);
    return 1;
  } finally {
    kube?.close();
  }
}

process.exitCode = await main();
