import { isIP } from 'node:net';
import { ControllerManager, type EventRecorder } from '../controller/index.ts';
import { toError, type Logger } from '../lib/index.ts';
import { inClusterConnection, KubeClient, loadKubeConfig, type KubeConnection } from '../kube/index.ts';
import { KubePlatform, MOUNT_TYPE } from '../platform/index.ts';
import { KubeStore } from '../store/index.ts';
import { createUnderFileSystem } from '../ufs/index.ts';
import { runWebhook, type RunningWebhook } from '../webhook/index.ts';
import type { OperatorConfig } from './config.ts';
import { installCrds } from './crds.ts';
import { KubeEventRecorder } from './events.ts';
import { FencedPlatform, FencedStore, type Fence } from './fence.ts';
import { LeaderElector } from './leader-election.ts';

/** Why `runOperator` returned: its signal aborted, or this replica lost the lease (then restart it). */
export type OperatorExit = 'stopped' | 'lost-leadership';

/** The connection from `--kubeconfig` or, inside a pod, the service account. */
export async function connectionOf(config: OperatorConfig, signal: AbortSignal): Promise<KubeConnection> {
  if (config.kubeconfig !== undefined)
    return loadKubeConfig(config.kubeconfig, { context: config.context, signal });
  return inClusterConnection({ signal });
}

/**
 * The operator: the same ControllerManager as the embedded daemon, on the Kubernetes store and
 * platform, run by the replica that holds the Lease. Writes go through a fence on the lease, so a
 * replica that lost it (or was paused past its renew deadline) writes nothing more.
 */
export async function runOperator(
  config: OperatorConfig,
  options: { logger: Logger; signal: AbortSignal },
): Promise<OperatorExit> {
  const { logger, signal } = options;
  const identity = config.leaderElection.identity;
  const connection = await connectionOf(config, signal);
  const client = new KubeClient({
    ...connection,
    fieldManager: 'tide',
    userAgent: `tide-operator (${identity})`,
    onWarning: (message) => {
      logger.warn({ apiWarning: message }, 'API server warning');
    },
  });
  const webhookStop = new AbortController();
  const stopWebhook = (): void => {
    webhookStop.abort();
  };
  signal.addEventListener('abort', stopWebhook, { once: true });
  let webhook: RunningWebhook | undefined;
  try {
    if (config.installCrds) await installCrds(client, { logger, signal });
    if (config.webhook !== undefined)
      webhook = await startWebhook(config, client, connection, logger, webhookStop.signal);
    const elector = config.leaderElection.enabled
      ? new LeaderElector({
          client,
          namespace: config.leaderElection.namespace ?? connection.namespace,
          name: config.leaderElection.leaseName,
          identity,
          leaseDurationMs: config.leaderElection.leaseDurationMs,
          renewDeadlineMs: config.leaderElection.renewDeadlineMs,
          retryPeriodMs: config.leaderElection.retryPeriodMs,
          logger,
        })
      : undefined;
    const fence: Fence = elector === undefined ? () => true : () => elector.isLeader();
    const store = new FencedStore(new KubeStore({ client }), fence);
    const platform = new FencedPlatform(
      new KubePlatform({
        client,
        logger,
        settings: config.platform,
        statsTimeoutMs: config.statsTimeoutMs,
        fence,
      }),
      fence,
    );
    const recorder = new KubeEventRecorder({ client, logger, instance: identity });
    const events: EventRecorder = {
      record: (object, type, reason, message) =>
        fence() ? recorder.record(object, type, reason, message) : Promise.resolve(),
    };
    const start = (): ControllerManager => {
      const manager = new ControllerManager({
        store,
        platform,
        events,
        logger,
        resyncMs: config.resyncMs,
        cronHpa: config.cronHpa,
        hpaTargets: true,
        ufsFactory: (mount) => createUnderFileSystem(mount, { logger }),
      });
      manager.start();
      logger.info({ identity }, 'reconcilers started');
      return manager;
    };
    if (elector === undefined) {
      const manager = start();
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener(
          'abort',
          () => {
            resolve();
          },
          { once: true },
        );
      });
      await manager.stop();
      return 'stopped';
    }
    let manager: ControllerManager | undefined;
    const ended = await elector.run({
      signal,
      onStartedLeading: () => {
        manager = start();
      },
      onStoppedLeading: async () => {
        await manager?.stop();
        logger.info({ identity }, 'reconcilers stopped');
      },
    });
    return ended === 'lost' ? 'lost-leadership' : 'stopped';
  } catch (error) {
    if (signal.aborted) return 'stopped';
    throw toError(error);
  } finally {
    signal.removeEventListener('abort', stopWebhook);
    webhookStop.abort();
    await webhook?.done;
    client.close();
  }
}

/** The pod webhook on this replica: every replica serves it, leader or not (admission only reads). */
async function startWebhook(
  config: OperatorConfig,
  client: KubeClient,
  connection: KubeConnection,
  logger: Logger,
  signal: AbortSignal,
): Promise<RunningWebhook> {
  const settings = config.webhook;
  if (settings === undefined) throw new TypeError('the webhook is off');
  const namespace = settings.namespace ?? connection.namespace;
  const service = settings.serviceName;
  return runWebhook({
    kube: client,
    logger,
    port: settings.port,
    ...(settings.address !== undefined && { host: settings.address }),
    profilePath: settings.profilePath,
    mountRoot: config.platform.mountRoot,
    mountType: MOUNT_TYPE,
    certificates: {
      namespace,
      secretName: settings.secretName,
      configurationName: settings.configurationName,
      dnsNames: [
        service,
        `${service}.${namespace}`,
        `${service}.${namespace}.svc`,
        `${service}.${namespace}.svc.cluster.local`,
      ],
      ipAddresses: settings.address !== undefined && isIP(settings.address) !== 0 ? [settings.address] : [],
      manage: settings.certificates === 'self',
      checkIntervalMs: settings.checkIntervalMs,
    },
    signal,
  });
}
