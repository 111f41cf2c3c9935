import { hostname } from 'node:os';
import { API_VERSION } from '../api/index.ts';
import { builtin, resourceType, type KubeClient, type KubeObject } from '../kube/index.ts';
import { hasCode, toError, type Logger } from '../lib/index.ts';
import { CsiError } from './errors.ts';
import type { VolumeAttributes } from './volume-context.ts';

const DATASETS = resourceType(API_VERSION, 'Dataset', 'datasets', { namespaced: true });
const REQUEST_TIMEOUT_MS = 15_000;
const COMPONENT = 'tide-csi';

type DatasetRef = NonNullable<VolumeAttributes['dataset']>;

/**
 * What the plugin asks of the API server, for its own node only: the lazy-FUSE label, whether a
 * dataset exists, events on it, a volume's attributes from its PersistentVolume, and whether the
 * node's FUSE pod runs an older template than its DaemonSet (cleanPolicy OnFuseChanged).
 */
export class ClusterAccess {
  readonly #client: KubeClient;
  readonly #nodeName: string;
  readonly #logger: Logger;

  constructor(options: { client: KubeClient; nodeName: string; logger: Logger }) {
    this.#client = options.client;
    this.#nodeName = options.nodeName;
    this.#logger = options.logger;
  }

  /** Sets (`value` a string) or removes (`null`) one label of the plugin's node, by a merge patch. */
  async setNodeLabel(key: string, value: string | null, signal: AbortSignal): Promise<void> {
    try {
      await this.#client.patch(
        builtin.nodes,
        this.#nodeName,
        { metadata: { labels: { [key]: value } } },
        { patchType: 'merge', signal: AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]) },
      );
    } catch (error) {
      throw new CsiError(
        'ERR_CSI_INTERNAL',
        `Cannot ${value === null ? 'remove' : 'set'} label ${key} on node ${this.#nodeName}: ${toError(error).message}`,
        { cause: error },
      );
    }
  }

  /** The Dataset, or undefined when it does not exist. */
  async dataset(ref: DatasetRef, signal: AbortSignal): Promise<KubeObject | undefined> {
    try {
      return await this.#client.get(DATASETS, ref.name, {
        namespace: ref.namespace,
        signal: AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
      });
    } catch (error) {
      if (hasCode(error, 'ERR_KUBE_NOT_FOUND')) return undefined;
      throw new CsiError(
        'ERR_CSI_INTERNAL',
        `Cannot read dataset ${ref.namespace}/${ref.name}: ${toError(error).message}`,
        { cause: error },
      );
    }
  }

  /** The volume context of a PersistentVolume (Tide names a PV by its volume handle), if it exists. */
  async volumeContext(volumeId: string, signal: AbortSignal): Promise<Record<string, string> | undefined> {
    try {
      const pv = await this.#client.get(builtin.persistentVolumes, volumeId, {
        signal: AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
      });
      const csi = (pv['spec'] as { csi?: { volumeAttributes?: Record<string, string> } } | undefined)?.csi;
      return csi?.volumeAttributes;
    } catch (error) {
      if (hasCode(error, 'ERR_KUBE_NOT_FOUND')) return undefined;
      throw new CsiError(
        'ERR_CSI_INTERNAL',
        `Cannot read PersistentVolume ${volumeId}: ${toError(error).message}`,
        {
          cause: error,
        },
      );
    }
  }

  /**
   * Whether the FUSE pod on this node was made from an older template than the DaemonSet's current
   * one (its `pod-template-generation` label against the DaemonSet's `metadata.generation`). The
   * DaemonSet updates OnDelete, so such a pod keeps the old configuration until it is recreated.
   */
  async fuseChanged(namespace: string, daemonSetName: string, signal: AbortSignal): Promise<boolean> {
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
    let daemonSet: KubeObject;
    try {
      daemonSet = await this.#client.get(builtin.daemonSets, daemonSetName, { namespace, signal: timeout });
    } catch (error) {
      if (hasCode(error, 'ERR_KUBE_NOT_FOUND')) return true;
      throw new CsiError(
        'ERR_CSI_INTERNAL',
        `Cannot read DaemonSet ${namespace}/${daemonSetName}: ${toError(error).message}`,
        {
          cause: error,
        },
      );
    }
    const selector = (
      daemonSet['spec'] as { selector?: { matchLabels?: Record<string, string> } } | undefined
    )?.selector?.matchLabels;
    const labelSelector = Object.entries(selector ?? {})
      .map(([key, value]) => `${key}=${value}`)
      .join(',');
    const pods = await this.#client.list(builtin.pods, {
      namespace,
      labelSelector,
      fieldSelector: `spec.nodeName=${this.#nodeName}`,
      signal: timeout,
    });
    const generation = String(daemonSet.metadata?.generation ?? '');
    return pods.items.some((pod) => (pod.metadata?.labels ?? {})['pod-template-generation'] !== generation);
  }

  /** An event on the dataset (best effort: a failure is logged). */
  async datasetEvent(
    ref: DatasetRef,
    event: { type: 'Normal' | 'Warning'; reason: string; message: string },
    signal: AbortSignal,
  ): Promise<void> {
    const now = new Date().toISOString();
    try {
      const dataset = await this.dataset(ref, signal);
      await this.#client.create(
        builtin.events,
        {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { generateName: `${ref.name}.`, namespace: ref.namespace },
          involvedObject: {
            apiVersion: API_VERSION,
            kind: 'Dataset',
            name: ref.name,
            namespace: ref.namespace,
            ...(dataset?.metadata?.uid === undefined ? {} : { uid: dataset.metadata.uid }),
          },
          type: event.type,
          reason: event.reason,
          message: event.message,
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: COMPONENT, host: this.#nodeName || hostname() },
          reportingComponent: COMPONENT,
          reportingInstance: this.#nodeName,
        },
        {
          namespace: ref.namespace,
          signal: AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
        },
      );
    } catch (error) {
      this.#logger.warn(
        { reason: event.reason, dataset: `${ref.namespace}/${ref.name}`, err: toError(error) },
        'could not record an event',
      );
    }
  }
}
