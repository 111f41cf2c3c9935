/**
 * The FileSource of a dataset in a FUSE pod of the Kubernetes platform: metadata from the dataset's
 * connectors, bytes through the cache client whose workers come from the runtime's EndpointSlices.
 * The FUSE server process loads this module by path (mount config `source.module`).
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { builtin, inClusterConnection, KubeClient, type KubeObject } from '../../kube/index.ts';
import type { Logger } from '../../lib/index.ts';
import type { FileSource, SourceConfig, SourceFactoryContext } from '../../fuse/index.ts';
import { DatasetFileSource } from '../dataset-file-source.ts';
import { changedPaths } from '../dataset-versions.ts';
import { openKubeDatasetClient, type KubeDatasetClient } from './dataset-client.ts';
import type { KubeDatasetClientConfig } from './manifests.ts';
import { followObject } from './object-watch.ts';
import { followVersions } from './versions-watch.ts';

/** How long a replaced client keeps serving the reads that started on it. */
const REPLACED_CLIENT_GRACE_MS = 30_000;
/** How often the mounted `client.json` is read where the config Secret cannot be watched. */
const CONFIG_POLL_MS = 5_000;

export async function createFileSource(
  config: SourceConfig,
  context: SourceFactoryContext,
): Promise<FileSource> {
  const configPath = (config.options as { configPath?: unknown } | undefined)?.configPath;
  if (typeof configPath !== 'string')
    throw new TypeError('the tide-kube-dataset source needs options.configPath');
  // Outside a pod (development, tests) `options.kubeconfig` names the cluster; in a pod the
  // service account of the FUSE DaemonSet is used.
  const kubeconfig = (config.options as { kubeconfig?: unknown }).kubeconfig;
  // One API client for the source's life: a replaced cache client closes without taking the
  // watches below with it.
  const kube =
    typeof kubeconfig === 'string'
      ? await KubeClient.fromKubeConfig(kubeconfig)
      : new KubeClient(await inClusterConnection());
  const nodeName = process.env['NODE_NAME'];
  const open = (clientConfig: string | KubeDatasetClientConfig): Promise<KubeDatasetClient> =>
    openKubeDatasetClient({
      config: clientConfig,
      logger: context.logger,
      kube,
      ...(nodeName === undefined || nodeName === '' ? {} : { nodeName }),
    });
  let opened = await open(configPath);
  const first = opened;
  const stop = new AbortController();
  const source = new DatasetFileSource(
    opened.client,
    async () => {
      stop.abort();
      await Promise.all([followingVersions, followingConfig]);
      await opened.close();
      kube.close();
    },
    context.metadataTtlMs === undefined ? {} : { metadataTtlMs: context.metadataTtlMs },
  );
  // A DataLoad's changed and deleted files leave the kernel's caches at once (a cron DataLoad makes
  // new content visible through the mount), as on the local platform.
  const followingVersions = followVersions({
    client: kube,
    namespace: first.config.namespace,
    name: first.config.versionsConfigMap,
    logger: context.logger,
    signal: stop.signal,
    onVersions: (file) => {
      source.invalidate(changedPaths(file, source.known, (dir) => source.isListed(dir)));
    },
  });
  // Mounts added to or removed from the Dataset reach the running mount, as on the local platform:
  // the operator rewrites the config Secret, the source swaps its client and the kernel forgets
  // the tree. Reads already on the old client finish on it.
  let current = JSON.stringify(first.config);
  const replace = async (text: string): Promise<void> => {
    const next = JSON.parse(text) as KubeDatasetClientConfig;
    if (JSON.stringify(next) === current || stop.signal.aborted) return;
    current = JSON.stringify(next);
    const previous = opened;
    opened = await open(next);
    source.replaceClient(opened.client);
    context.logger.info(
      { mounts: next.mounts.map((mount) => mount.path) },
      'dataset mounts changed; the namespace was reloaded',
    );
    setTimeout(() => void previous.close(), REPLACED_CLIENT_GRACE_MS).unref();
  };
  const followingConfig = followConfig({
    kube,
    config: first.config,
    configPath,
    logger: context.logger,
    signal: stop.signal,
    onText: (text) => {
      replace(text).catch((error: unknown) => {
        context.logger.warn({ err: error }, 'the changed dataset configuration could not be opened');
      });
    },
  });
  return source;
}

type SecretLike = KubeObject & { data?: Record<string, string> };

/**
 * Calls `onText` with each `client.json` of the runtime's config Secret: watched through the API
 * with the DaemonSet's service account (seconds), else read from the mounted Secret, which the
 * kubelet refreshes on its own period (a sidecar runs as its pod's service account).
 */
async function followConfig(options: {
  kube: KubeClient;
  config: KubeDatasetClientConfig;
  configPath: string;
  logger: Logger;
  signal: AbortSignal;
  onText: (text: string) => void;
}): Promise<void> {
  const { config, signal } = options;
  let forbidden = config.configSecret === undefined;
  if (config.configSecret !== undefined)
    await followObject<SecretLike>({
      client: options.kube,
      type: builtin.secrets,
      namespace: config.namespace,
      name: config.configSecret,
      logger: options.logger,
      signal,
      onObject: (secret) => {
        const encoded = secret.data?.['client.json'];
        if (encoded !== undefined) options.onText(Buffer.from(encoded, 'base64').toString('utf8'));
      },
      onForbidden: () => {
        forbidden = true;
      },
    });
  if (!forbidden) return;
  const stopped = (): boolean => signal.aborted;
  while (!stopped()) {
    await sleep(CONFIG_POLL_MS, undefined, { signal, ref: false }).catch(() => undefined);
    const text = await readFile(options.configPath, 'utf8').catch(() => undefined);
    if (text !== undefined && !stopped()) options.onText(text);
  }
}
