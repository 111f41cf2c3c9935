import type { Logger } from '../../lib/index.ts';
import { builtin, type KubeClient, type KubeObject } from '../../kube/index.ts';
import { decodeVersions, VERSIONS_KEY, type VersionsFile } from '../dataset-versions.ts';
import { followObject } from './object-watch.ts';

export interface FollowVersionsOptions {
  client: KubeClient;
  namespace: string;
  /** The runtime's versions ConfigMap (`versionsConfigMapName`). */
  name: string;
  logger: Logger;
  signal: AbortSignal;
  /** Called with each new set of versions a DataLoad wrote, not with the one found at start. */
  onVersions: (file: VersionsFile) => void;
}

type ConfigMapLike = KubeObject & { binaryData?: Record<string, string> };

/**
 * Follows the versions ConfigMap a loader Job writes after each DataLoad, so that a FUSE pod
 * invalidates what a cron DataLoad found changed, as the local platform's mount does from its
 * versions file. The value present at start is a load the pod's kernel has seen nothing of.
 * Resolves once the signal aborts.
 */
export async function followVersions(options: FollowVersionsOptions): Promise<void> {
  const { logger, name } = options;
  let last: string | undefined;
  await followObject<ConfigMapLike>({
    client: options.client,
    type: builtin.configMaps,
    namespace: options.namespace,
    name,
    logger,
    signal: options.signal,
    onObject: (object, first) => {
      const value = object.binaryData?.[VERSIONS_KEY] ?? '';
      if (value === last) return;
      last = value;
      if (first || value === '') return;
      const file = decodeVersions(value);
      if (file === undefined) logger.warn({ configMap: name }, 'the DataLoad versions do not parse; ignored');
      else options.onVersions(file);
    },
  });
}
