import { setTimeout as sleep } from 'node:timers/promises';
import { toError, type Logger } from '../../lib/index.ts';
import { builtin, type KubeClient } from '../../kube/index.ts';
import { encodeVersions, VERSIONS_KEY, type VersionsFile } from '../dataset-versions.ts';
import { loadTargets } from '../local/loader.ts';
import type { LoadPlan, LoadProgress } from '../types.ts';
import { openKubeDatasetClient } from './dataset-client.ts';

export interface RunLoaderOptions {
  /** The runtime's `client.json`. */
  configPath: string;
  plan: LoadPlan;
  logger: Logger;
  signal: AbortSignal;
  onProgress: (progress: LoadProgress) => void;
  /** Default: the pod's service account. */
  kube?: KubeClient;
  nodeName?: string;
  /** How long to wait for a first ready worker; default 120 000 ms. */
  workersTimeoutMs?: number;
}

/**
 * What a loader Job runs: the dataset's cache client (workers from the EndpointSlices) warming the
 * plan's targets with the embedded platform's `loadTargets`, so both modes load alike.
 * @throws {Error} when no worker is ready in time or a file cannot be loaded
 */
export async function runLoader(options: RunLoaderOptions): Promise<LoadProgress> {
  const { client, membership, config, kube, close } = await openKubeDatasetClient({
    config: options.configPath,
    logger: options.logger,
    ...(options.kube === undefined ? {} : { kube: options.kube }),
    ...(options.nodeName === undefined ? {} : { nodeName: options.nodeName }),
  });
  try {
    const deadline = Date.now() + (options.workersTimeoutMs ?? 120_000);
    while (membership.workers().length === 0) {
      if (Date.now() > deadline) throw new Error('no cache worker of the dataset became ready in time');
      await sleep(500, undefined, { signal: options.signal });
    }
    const entries: [string, string][] = [];
    const progress = await loadTargets(client, options.plan, {
      signal: options.signal,
      onProgress: options.onProgress,
      onListed: (entry) => entries.push([entry.path, entry.version]),
    });
    // The FUSE pods watch this ConfigMap and drop the kernel's caches of files that changed. The
    // load is done either way: without it, mounts see the changes after their metadata TTL.
    const versions: VersionsFile = { targets: options.plan.targets.map((target) => target.path), entries };
    try {
      await kube.patch(
        builtin.configMaps,
        config.versionsConfigMap,
        { binaryData: { [VERSIONS_KEY]: encodeVersions(versions) } },
        { namespace: config.namespace, patchType: 'merge', signal: options.signal },
      );
    } catch (error) {
      if (options.signal.aborted) throw error;
      options.logger.warn(
        { configMap: config.versionsConfigMap, err: toError(error) },
        'cannot publish the versions this load saw; mounts see changed files after their metadata TTL',
      );
    }
    return progress;
  } finally {
    await close();
  }
}
