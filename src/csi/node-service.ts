import { rmdir, stat } from 'node:fs/promises';
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { Logger } from '../lib/index.ts';
import { bindFresh, bindMatches, detachAll, sourceOf, type ReadMounts } from './binds.ts';
import type { ClusterAccess } from './cluster.ts';
import { CsiError } from './errors.ts';
import { KeyedLocks } from './locks.ts';
import type { Mounter } from './mounter.ts';
import { isReadOnly, topMountAt, type MountEntry } from './mountinfo.ts';
import type {
  NodePublishVolumeRequest,
  NodeStageVolumeRequest,
  NodeUnpublishVolumeRequest,
  NodeUnstageVolumeRequest,
} from './requests.ts';
import type { PluginState } from './state.ts';
import { validatePublish, validateStage, validateUnpublish, validateUnstage } from './validate.ts';
import { parseVolumeContext, type VolumeAttributes } from './volume-context.ts';

export interface NodeServiceOptions {
  nodeId: string;
  /** The kubelet's directory: every path the plugin mounts or removes lies inside it. */
  kubeletDir: string;
  /** The FUSE pods' mount root: every fluid_path lies inside it. */
  mountRoot: string;
  state: PluginState;
  mounter: Mounter;
  readMounts: ReadMounts;
  logger: Logger;
  /** Absent outside a cluster: no node labels, no dataset checks, no events. */
  cluster?: ClusterAccess | undefined;
  /** How long NodePublishVolume waits for the FUSE mount; default 90 000 ms (the kubelet gives up at 120 s). */
  fuseWaitTimeoutMs?: number;
  /** Default 500 ms. */
  fusePollIntervalMs?: number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
}

/**
 * The CSI Node service of Tide (CSI spec "Node Service RPC"). Stage labels the node so that the
 * dataset's FUSE pod starts there; Publish waits for that FUSE mount at `fluid_path` and bind-mounts
 * it on the pod's target; Unpublish and Unstage undo both. Every call is idempotent.
 */
export class NodeService {
  readonly #options: NodeServiceOptions;
  readonly locks = new KeyedLocks();

  constructor(options: NodeServiceOptions) {
    this.#options = options;
  }

  get nodeId(): string {
    return this.#options.nodeId;
  }

  async stage(request: NodeStageVolumeRequest, signal: AbortSignal): Promise<void> {
    const { volumeId, attributes } = validateStage(request, this.#options);
    await this.locks.with(`volume:${volumeId}`, `stage volume ${volumeId}`, async () => {
      await this.#cleanBrokenMount(attributes.fluidPath, signal);
      const { cluster, logger } = this.#options;
      if (cluster !== undefined) await this.#requireDataset(cluster, attributes, signal);
      await this.#options.state.setVolume(volumeId, attributes);
      if (cluster !== undefined && attributes.nodeLabel !== undefined) {
        await cluster.setNodeLabel(attributes.nodeLabel.key, attributes.nodeLabel.value, signal);
      }
      logger.info(
        { volumeId, label: attributes.nodeLabel?.key, labelled: cluster !== undefined },
        'volume staged',
      );
    });
  }

  async unstage(request: NodeUnstageVolumeRequest, signal: AbortSignal): Promise<void> {
    const { volumeId } = validateUnstage(request, this.#options);
    await this.locks.with(`volume:${volumeId}`, `unstage volume ${volumeId}`, async () => {
      const { cluster, logger, state } = this.#options;
      const attributes = state.volume(volumeId) ?? (await this.#attributesFromCluster(volumeId, signal));
      if (cluster !== undefined && attributes?.nodeLabel !== undefined) {
        const reason = await this.#labelRemovalReason(cluster, attributes, signal);
        const users = reason === undefined ? [] : await this.#otherUsers(volumeId, signal);
        if (reason !== undefined && users.length === 0) {
          await cluster.setNodeLabel(attributes.nodeLabel.key, null, signal);
          logger.info(
            { volumeId, label: attributes.nodeLabel.key, reason },
            'volume unstaged, node label removed',
          );
        } else {
          logger.info(
            { volumeId, label: attributes.nodeLabel.key, cleanPolicy: attributes.cleanPolicy, users },
            'volume unstaged, node label kept',
          );
        }
      } else {
        logger.info({ volumeId }, 'volume unstaged');
      }
      await state.setVolume(volumeId, undefined);
    });
  }

  async publish(request: NodePublishVolumeRequest, signal: AbortSignal): Promise<void> {
    const { volumeId, targetPath, readOnly, attributes } = validatePublish(request, this.#options);
    await this.locks.with(`target:${targetPath}`, `publish volume ${volumeId} at ${targetPath}`, async () => {
      const { cluster, logger, state, readMounts } = this.#options;
      if (cluster !== undefined) await this.#requireDataset(cluster, attributes, signal);
      const fuse = await this.#waitForFuse(attributes, signal);
      const top = topMountAt(await readMounts(signal), targetPath);
      if (top !== undefined && bindMatches(top, fuse, attributes)) {
        // A bind of a read-only FUSE mount is read-only whatever was asked.
        const expectReadOnly = readOnly || isReadOnly(fuse);
        if (isReadOnly(top) !== expectReadOnly) {
          const shown = isReadOnly(top) ? 'read-only' : 'read-write';
          throw new CsiError(
            'ERR_CSI_ALREADY_EXISTS',
            `NodePublishVolume: ${targetPath} is published ${shown} already, not ${expectReadOnly ? 'read-only' : 'read-write'}`,
          );
        }
        await state.setTarget(targetPath, { volumeId, readOnly, attributes });
        logger.debug({ volumeId, targetPath }, 'volume published already');
        return;
      }
      await bindFresh(
        targetPath,
        { attributes, readOnly },
        { mounter: this.#options.mounter, readMounts, signal },
      );
      await state.setTarget(targetPath, { volumeId, readOnly, attributes });
      logger.info({ volumeId, targetPath, source: sourceOf(attributes), readOnly }, 'volume published');
    });
  }

  async unpublish(request: NodeUnpublishVolumeRequest, signal: AbortSignal): Promise<void> {
    const { volumeId, targetPath } = validateUnpublish(request, this.#options);
    await this.locks.with(
      `target:${targetPath}`,
      `unpublish volume ${volumeId} at ${targetPath}`,
      async () => {
        const { mounter, readMounts, state, logger } = this.#options;
        const detached = await detachAll(targetPath, { mounter, readMounts, signal });
        try {
          await rmdir(targetPath);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT') {
            throw new CsiError(
              'ERR_CSI_INTERNAL',
              `NodeUnpublishVolume: cannot remove ${targetPath}: ${code ?? String(error)}`,
              {
                cause: error,
              },
            );
          }
        }
        await state.setTarget(targetPath, undefined);
        logger.info({ volumeId, targetPath, unmounted: detached }, 'volume unpublished');
      },
    );
  }

  /** A FUSE mount whose server is gone answers ENOTCONN; the next FUSE pod cannot mount over it. */
  async #cleanBrokenMount(fluidPath: string, signal: AbortSignal): Promise<void> {
    try {
      await stat(fluidPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOTCONN') return;
      this.#options.logger.warn({ fluidPath }, 'unmounting a broken FUSE mount (ENOTCONN)');
      await this.#options.mounter.unmount(fluidPath, { lazy: true, signal });
    }
  }

  async #requireDataset(
    cluster: ClusterAccess,
    attributes: VolumeAttributes,
    signal: AbortSignal,
  ): Promise<void> {
    if (attributes.dataset === undefined) return;
    const found = await cluster.dataset(attributes.dataset, signal);
    if (found === undefined) {
      throw new CsiError(
        'ERR_CSI_NOT_FOUND',
        `dataset ${attributes.dataset.namespace}/${attributes.dataset.name} does not exist`,
      );
    }
  }

  /**
   * Waits until `fluid_path` is a mount of the volume's FUSE type that answers `stat` and holds the
   * sub path. The FUSE pod is started by the label Stage set, which takes its time (image pull).
   */
  async #waitForFuse(attributes: VolumeAttributes, signal: AbortSignal): Promise<MountEntry> {
    const timeoutMs = this.#options.fuseWaitTimeoutMs ?? 90_000;
    const pollMs = this.#options.fusePollIntervalMs ?? 500;
    const now = this.#options.now ?? Date.now;
    const sleep =
      this.#options.sleep ?? ((ms: number, s: AbortSignal) => sleepFor(ms, undefined, { signal: s }));
    const deadline = now() + timeoutMs;
    let problem: string;
    for (;;) {
      const fuse = topMountAt(await this.#options.readMounts(signal), attributes.fluidPath);
      if (fuse === undefined) {
        problem = 'nothing is mounted there';
      } else if (fuse.fsType !== attributes.mountType) {
        problem = `the mount there is ${fuse.fsType}`;
      } else {
        try {
          const source = await stat(sourceOf(attributes));
          if (source.isDirectory()) return fuse;
          problem = `${sourceOf(attributes)} is not a directory`;
        } catch (error) {
          problem = `stat ${sourceOf(attributes)}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
        }
      }
      if (now() >= deadline) break;
      await sleep(Math.min(pollMs, Math.max(0, deadline - now())), signal);
    }
    throw new CsiError(
      'ERR_CSI_UNAVAILABLE',
      `NodePublishVolume: the ${attributes.mountType} mount at ${attributes.fluidPath} is not ready after ${Math.round(timeoutMs / 1000)} s (${problem}); is the dataset's FUSE pod running on node ${this.#options.nodeId}?`,
    );
  }

  async #attributesFromCluster(volumeId: string, signal: AbortSignal): Promise<VolumeAttributes | undefined> {
    const context = await this.#options.cluster?.volumeContext(volumeId, signal);
    return context === undefined ? undefined : parseVolumeContext(context, { requireNodeLabel: false });
  }

  /** Why the lazy-FUSE label should go at unstage (the runtime's `fuse.cleanPolicy`), or undefined to keep it. */
  async #labelRemovalReason(
    cluster: ClusterAccess,
    attributes: VolumeAttributes,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    const datasetGone =
      attributes.dataset !== undefined && (await cluster.dataset(attributes.dataset, signal)) === undefined;
    if (datasetGone) return 'the dataset is gone';
    switch (attributes.cleanPolicy) {
      case 'OnDemand':
        return 'cleanPolicy OnDemand';
      case 'OnRuntimeDeleted':
        return undefined;
      case 'OnFuseChanged':
        if (attributes.dataset === undefined || attributes.fuseDaemonSet === undefined) return undefined;
        return (await cluster.fuseChanged(attributes.dataset.namespace, attributes.fuseDaemonSet, signal))
          ? 'cleanPolicy OnFuseChanged and the FUSE pod runs an older template'
          : undefined;
    }
  }

  /**
   * Other pods' targets of the volume still mounted on the node: the kubelet's
   * `<kubelet-dir>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount` (Tide names the PV by its volume handle).
   */
  async #otherUsers(volumeId: string, signal: AbortSignal): Promise<string[]> {
    const prefix = `${this.#options.kubeletDir}/pods/`;
    const suffix = `/volumes/kubernetes.io~csi/${volumeId}/mount`;
    const mountPoints = new Set((await this.#options.readMounts(signal)).map((entry) => entry.mountPoint));
    const fromMounts = [...mountPoints].filter((path) => path.startsWith(prefix) && path.endsWith(suffix));
    // Targets this plugin published elsewhere (csi-sanity's directories) and still mounted.
    const fromState = this.#options.state
      .targets()
      .filter(([path, target]) => target.volumeId === volumeId && mountPoints.has(path))
      .map(([path]) => path);
    return [...new Set([...fromMounts, ...fromState])];
  }
}
