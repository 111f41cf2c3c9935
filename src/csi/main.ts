/**
 * Tide's CSI node plugin (the node-plugin DaemonSet's entry point, and a standalone process for
 * csi-sanity):
 *
 *   node src/csi/main.ts --endpoint unix:///SOCKET --node-id NAME [--kubeconfig FILE]
 *                        [--kubelet-dir /var/lib/kubelet] [--registration-dir DIR]
 *
 * Without a kubeconfig it uses the service account when in a pod (KUBERNETES_SERVICE_HOST/_PORT),
 * else it runs without a cluster: no node labels, dataset checks or events. Logs are JSON lines on
 * standard error. SIGTERM or SIGINT stop it (exit 0); 1: it could not run; 2: bad flags.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeClient, inClusterConnection } from '../kube/index.ts';
import { createLogger, toError } from '../lib/index.ts';
import { ClusterAccess } from './cluster.ts';
import { CommanderError, parseCsiArgs, type CsiConfig } from './config.ts';
import { CsiError } from './errors.ts';
import { startNodePlugin } from './plugin.ts';

function version(): string {
  const text = readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

async function kubeClient(config: CsiConfig): Promise<KubeClient | undefined> {
  if (config.kubeconfig !== undefined) {
    return KubeClient.fromKubeConfig(config.kubeconfig, { userAgent: 'tide-csi' });
  }
  const host = process.env['KUBERNETES_SERVICE_HOST'];
  if (host === undefined || host === '') return undefined;
  return new KubeClient({ ...(await inClusterConnection()), userAgent: 'tide-csi' });
}

async function main(): Promise<number> {
  let config: CsiConfig;
  try {
    config = parseCsiArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof CommanderError) return error.code === 'commander.helpDisplayed' ? 0 : 2;
    process.stderr.write(`tide csi: ${toError(error).message}\n`);
    return error instanceof CsiError ? 2 : 1;
  }
  const logger = createLogger({ level: config.logLevel });
  try {
    const client = await kubeClient(config);
    if (client === undefined) {
      logger.info(
        'no kubeconfig and not in a pod: running without a cluster (no node labels, dataset checks or events)',
      );
    }
    const plugin = await startNodePlugin({
      endpoint: config.endpoint,
      nodeId: config.nodeId,
      driverName: config.driverName,
      vendorVersion: version(),
      kubeletDir: config.kubeletDir,
      mountRoot: config.mountRoot,
      registrationDir: config.registrationDir,
      stateDir: config.stateDir,
      logger,
      cluster:
        client === undefined ? undefined : new ClusterAccess({ client, nodeName: config.nodeId, logger }),
      recoveryIntervalMs: config.recoveryIntervalMs,
      fuseWaitTimeoutMs: config.fuseWaitTimeoutMs,
    });
    await new Promise<void>((resolve) => {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        process.once(signal, () => {
          logger.info({ signal }, 'stopping');
          resolve();
        });
      }
    });
    await plugin.close();
    client?.close();
    return 0;
  } catch (error) {
    logger.error({ err: toError(error) }, 'CSI node plugin failed');
    return 1;
  }
}

process.exitCode = await main();
