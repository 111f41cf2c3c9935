import { access, readFile } from 'node:fs/promises';
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
  /** The `client.json` the platform wrote into the runtime's Secret: its path, or its parsed text. */
  config: string | KubeDatasetClientConfig;
  logger: Logger;
  /** Default: a client from the pod's service account (`inClusterConnection`). */
  kube?: KubeClient;
  /** The node this client runs on (`NODE_NAME` from the downward API); default the host name. */
  nodeName?: string;
}

/**
 * Whether this pod sees the worker's block files where the worker does: the hostPath tiers
 * (`shortCircuitDirs`) are mounted at the same paths in the FUSE DaemonSet's pods, not in a loader
 * Job or a serverless pod's sidecar, which therefore read every block over HTTP.
 */
async function seesBlockFiles(config: KubeDatasetClientConfig): Promise<boolean> {
  const dirs = config.shortCircuitDirs ?? [];
  if (dirs.length === 0) return false;
  const seen = await Promise.all(
    dirs.map((dir) =>
      access(dir).then(
        () => true,
        () => false,
      ),
    ),
  );
  return seen.every(Boolean);
}

/**
 * Opens the cache client of a dataset in a FUSE pod or a loader Job: the dataset's connectors (for
 * metadata and origin fallback), its block size and token, and the workers from the EndpointSlices
 * of its headless Service. A FUSE pod on a worker's node reads that worker's blocks from its
 * hostPath tier files (short-circuit) when every tier is on hostPath volumes it mounts too.
 */
export async function openKubeDatasetClient(
  options: OpenKubeDatasetClientOptions,
): Promise<KubeDatasetClient> {
  const config =
    typeof options.config === 'string'
      ? (JSON.parse(await readFile(options.config, 'utf8')) as KubeDatasetClientConfig)
      : options.config;
  const shortCircuit = await seesBlockFiles(config);
  options.logger.info(
    { dataset: config.datasetId, shortCircuit, node: options.nodeName ?? hostname() },
    shortCircuit ? "cache client: reads a same-node worker's block files" : 'cache client: reads over HTTP',
  );
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
    shortCircuit,
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
