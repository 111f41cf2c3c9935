/**
 * The FileSource of a dataset in a FUSE pod of the Kubernetes platform: metadata from the dataset's
 * connectors, bytes through the cache client whose workers come from the runtime's EndpointSlices.
 * The FUSE server process loads this module by path (mount config `source.module`).
 */
import { hasCode } from '../../lib/index.ts';
import { KubeClient } from '../../kube/index.ts';
import type {
  DirectoryEntry,
  FileAttributes,
  FileSource,
  SourceConfig,
  SourceFactoryContext,
} from '../../fuse/index.ts';
import type { UfsEntry } from '../../ufs/index.ts';
import { openKubeDatasetClient } from './dataset-client.ts';

/** How long attributes learned from a listing or a stat are reused before asking again. */
const ATTRIBUTE_TTL_MS = 5000;

function attributesOf(entry: UfsEntry): FileAttributes {
  return { type: entry.type, sizeBytes: entry.sizeBytes, mtimeMs: entry.mtimeMs, version: entry.version };
}

function isNotFound(error: unknown): boolean {
  return hasCode(error, 'ERR_CACHE_NOT_FOUND') || hasCode(error, 'ERR_UFS_NOT_FOUND');
}

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
  const client = opened.client;
  const close = async (): Promise<void> => {
    await opened.close();
    kube?.close();
  };
  const attributes = new Map<string, { value: FileAttributes | undefined; expiresMs: number }>();
  const remember = (path: string, value: FileAttributes | undefined): void => {
    if (attributes.size > 200_000) attributes.clear();
    attributes.set(path, { value, expiresMs: Date.now() + ATTRIBUTE_TTL_MS });
  };
  return {
    async getattr(path, signal) {
      const cached = attributes.get(path);
      if (cached !== undefined && cached.expiresMs > Date.now()) return cached.value;
      try {
        const value = attributesOf(await client.stat(path, { signal }));
        remember(path, value);
        return value;
      } catch (error) {
        if (!isNotFound(error)) throw error;
        remember(path, undefined);
        return undefined;
      }
    },
    async readdir(path, signal) {
      const entries: DirectoryEntry[] = [];
      const prefix = path === '/' ? '/' : `${path}/`;
      for await (const entry of client.list(path, { signal })) {
        const name = entry.path.slice(entry.path.lastIndexOf('/') + 1);
        const value = attributesOf(entry);
        remember(`${prefix}${name}`, value);
        entries.push({ name, type: entry.type, attributes: value });
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return entries;
    },
    read(path, options) {
      return client.read(path, options);
    },
    close,
  };
}
