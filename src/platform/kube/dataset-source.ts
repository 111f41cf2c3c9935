/**
 * The FileSource of a dataset in a FUSE pod of the Kubernetes platform: metadata from the dataset's
 * connectors, bytes through the cache client whose workers come from the runtime's EndpointSlices.
 * The FUSE server process loads this module by path (mount config `source.module`).
 */
import { KubeClient } from '../../kube/index.ts';
import type { FileSource, SourceConfig, SourceFactoryContext } from '../../fuse/index.ts';
import { DatasetFileSource } from '../dataset-file-source.ts';
import { changedPaths } from '../dataset-versions.ts';
import { openKubeDatasetClient } from './dataset-client.ts';
import { followVersions } from './versions-watch.ts';

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
  const kube = typeof kubeconfig === 'string' ? await KubeClient.fromKubeConfig(kubeconfig) : undefined;
  const nodeName = process.env['NODE_NAME'];
  const opened = await openKubeDatasetClient({
    configPath,
    logger: context.logger,
    ...(kube === undefined ? {} : { kube }),
    ...(nodeName === undefined || nodeName === '' ? {} : { nodeName }),
  });
  const stop = new AbortController();
  const source = new DatasetFileSource(
    opened.client,
    async () => {
      stop.abort();
      await following;
      await opened.close();
      kube?.close();
    },
    context.metadataTtlMs === undefined ? {} : { metadataTtlMs: context.metadataTtlMs },
  );
  // A DataLoad's changed and deleted files leave the kernel's caches at once (a cron DataLoad makes
  // new content visible through the mount), as on the local platform.
  const following = followVersions({
    client: opened.kube,
    namespace: opened.config.namespace,
    name: opened.config.versionsConfigMap,
    logger: context.logger,
    signal: stop.signal,
    onVersions: (file) => {
      source.invalidate(changedPaths(file, source.known, (dir) => source.isListed(dir)));
    },
  });
  return source;
}
