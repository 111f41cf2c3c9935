import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { createCacheClient, mountIdOf, type CacheClient } from '../../cache/index.ts';
import { SecretValue, type Logger } from '../../lib/index.ts';
import { inClusterConnection, KubeClient } from '../../kube/index.ts';
import { createUnderFileSystem } from '../../ufs/index.ts';
import { EndpointSliceMembership } from './endpoint-membership.ts';
import type { KubeDatasetClientConfig } from './manifests.ts';

export interface KubeDatasetClient {
  client: CacheClient;
  membership: EndpointSliceMembership;
  config: KubeDatasetClientConfig;
  /** The client's API connection (the service account's unless one was passed in). */
  kube: KubeClient;
  close(): Promise<void>;
}

export interface OpenKubeDatasetClientOptions {
  /** The `client.json` the platform wrote into the runtime's Secret. */
  configPath: string;
  logger: Logger;
  /** Default: a client from the pod's service account (`inClusterConnection`). */
  kube?: KubeClient;
  /** The node this client runs on (`NODE_NAME` from the downward API); default the host name. */
  nodeName?: string;
}

/**
 * Opens the cache client of a dataset in a FUSE pod or a loader Job: the dataset's connectors (for
 * metadata and origin fallback), its block size and token, and the workers from the EndpointSlices
 * of its headless Service. Short-circuit reads are off: the worker's block files are on volumes of
 * the worker pod, not of this one.
 */
export async function openKubeDatasetClient(
  options: OpenKubeDatasetClientOptions,
): Promise<KubeDatasetClient> {
  const config = JSON.parse(await readFile(options.configPath, 'utf8')) as KubeDatasetClientConfig;
  const ownKube = options.kube === undefined;
  const kube = options.kube ?? new KubeClient(await inClusterConnection());
  const stop = new AbortController();
  const membership = await EndpointSliceMembership.start({
    client: kube,
    namespace: config.namespace,
    serviceName: config.serviceName,
    logger: options.logger,
    signal: stop.signal,
  });
  // The connectors are this function's, not the cache client's: close() closes them, so that no
  // kept-alive origin connection holds a finished loader's process open until the origin drops it.
  const connectors = config.mounts.map((mount) =>
    createUnderFileSystem(
      {
        mountPoint: mount.mountPoint,
        options: mount.options,
        secrets: Object.fromEntries(
          Object.entries(mount.secrets).map(([name, value]) => [name, new SecretValue(value)]),
        ),
      },
      { logger: options.logger },
    ),
  );
  const client = createCacheClient({
    datasetId: config.datasetId,
    membership,
    blockSizeBytes: config.blockSizeBytes,
    token: new SecretValue(config.token),
    nodeName: options.nodeName ?? hostname(),
    shortCircuit: false,
    logger: options.logger,
    mounts: config.mounts.map((mount, index) => ({
      id: mountIdOf(mount.mountPoint),
      path: mount.path,
      ufs: connectors[index] as (typeof connectors)[number],
    })),
  });
  return {
    client,
    membership,
    config,
    kube,
    close: async () => {
      stop.abort();
      await membership.closed();
      await client.close();
      await Promise.allSettled(connectors.map((connector) => connector.close()));
      if (ownKube) kube.close();
    },
  };
}
