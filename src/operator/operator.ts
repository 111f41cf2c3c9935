import { ControllerManager, type EventRecorder } from '../controller/index.ts';
import { toError, type Logger } from '../lib/index.ts';
import { inClusterConnection, KubeClient, loadKubeConfig, type KubeConnection } from '../kube/index.ts';
import { KubePlatform } from '../platform/index.ts';
import { KubeStore } from '../store/index.ts';
import { createUnderFileSystem } from '../ufs/index.ts';
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
  try {
    if (config.installCrds) await installCrds(client, { logger, signal });
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
    client.close();
  }
}
