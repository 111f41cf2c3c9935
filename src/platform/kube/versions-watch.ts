import { hasCode, toError, type Logger } from '../../lib/index.ts';
import { builtin, type KubeClient, type KubeObject } from '../../kube/index.ts';
import { decodeVersions, VERSIONS_KEY, type VersionsFile } from '../dataset-versions.ts';

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
 * Follows the versions ConfigMap a loader Job writes after each DataLoad (get, then watch by name
 * from its resourceVersion, and again after 410 Gone or a broken stream), so that a FUSE pod
 * invalidates what a cron DataLoad found changed, as the local platform's mount does from its
 * versions file. The value present at start is a load the pod's kernel has seen nothing of.
 * Resolves once the signal aborts.
 */
export async function followVersions(options: FollowVersionsOptions): Promise<void> {
  const { client, namespace, name, logger, signal } = options;
  let last: string | undefined;
  let first = true;
  const take = (object: ConfigMapLike): void => {
    const value = object.binaryData?.[VERSIONS_KEY] ?? '';
    if (value === last) return;
    const start = first;
    first = false;
    last = value;
    if (start || value === '') return;
    const file = decodeVersions(value);
    if (file === undefined) logger.warn({ configMap: name }, 'the DataLoad versions do not parse; ignored');
    else options.onVersions(file);
  };
  const stopped = (): boolean => signal.aborted;
  while (!stopped()) {
    try {
      const current = await client.get<ConfigMapLike>(builtin.configMaps, name, { namespace, signal });
      take(current);
      for await (const event of client.watch<ConfigMapLike>(builtin.configMaps, {
        namespace,
        fieldSelector: `metadata.name=${name}`,
        resourceVersion: current.metadata?.resourceVersion,
        signal,
      })) {
        if (event.type === 'ADDED' || event.type === 'MODIFIED') take(event.object);
      }
    } catch (error) {
      if (stopped()) return;
      if (hasCode(error, 'ERR_KUBE_NOT_FOUND'))
        first = false; // Loads written later are all new.
      else if (!hasCode(error, 'ERR_KUBE_GONE'))
        logger.warn({ err: toError(error) }, 'watching the DataLoad versions failed; retrying');
      await new Promise((resolve) => setTimeout(resolve, 1000).unref());
    }
  }
}
