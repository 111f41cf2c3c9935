import { stat } from 'node:fs/promises';
import { hasCode, toError, type Logger } from '../lib/index.ts';
import { bindMatches, bindOnTop, type ReadMounts } from './binds.ts';
import type { ClusterAccess } from './cluster.ts';
import type { KeyedLocks } from './locks.ts';
import type { Mounter } from './mounter.ts';
import { topMountAt } from './mountinfo.ts';
import type { PluginState } from './state.ts';

export interface FuseRecoveryOptions {
  state: PluginState;
  /** The Node service's locks: a target being published or unpublished is left alone. */
  locks: KeyedLocks;
  mounter: Mounter;
  readMounts: ReadMounts;
  logger: Logger;
  cluster?: ClusterAccess | undefined;
  /** Default 3 000 ms, so that a pod reads again well within 10 s of its FUSE pod mounting again. */
  intervalMs?: number;
}

/**
 * Re-binds published targets after their FUSE pod restarted. The new FUSE server mounts a new
 * connection at `fluid_path`; the pods' binds still show the old one, which answers ENOTCONN. Each
 * round compares every published target's bind with the mount now at its `fluid_path` (device and
 * root in mountinfo) and, where they differ and the new mount answers, binds the new mount on top
 * of the stale one. A running container sees the new bind only through `mountPropagation:
 * HostToContainer`, and only because it goes on top (see `bindOnTop`).
 */
export class FuseRecovery {
  readonly #options: FuseRecoveryOptions;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<unknown> | undefined;
  readonly #stop = new AbortController();

  constructor(options: FuseRecoveryOptions) {
    this.#options = options;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#round ??= this.tick(this.#stop.signal).finally(() => {
        this.#round = undefined;
      });
    }, this.#options.intervalMs ?? 3_000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stop.abort();
    await this.#round?.catch(() => undefined);
  }

  /** One round over the published targets; returns the targets it re-bound. */
  async tick(signal: AbortSignal): Promise<string[]> {
    const { state, locks, mounter, readMounts, logger, cluster } = this.#options;
    const recovered: string[] = [];
    const mounts = await readMounts(signal);
    for (const [target, published] of state.targets()) {
      if (signal.aborted) break;
      const { attributes } = published;
      const fuse = topMountAt(mounts, attributes.fluidPath);
      if (fuse === undefined || fuse.fsType !== attributes.mountType) continue;
      const bind = topMountAt(mounts, target);
      if (bind !== undefined && bindMatches(bind, fuse, attributes)) continue;
      const key = `target:${target}`;
      if (locks.isHeld(key)) continue;
      try {
        await stat(attributes.fluidPath);
      } catch {
        continue; // Mounted but not serving yet.
      }
      const exists = await stat(target).then(
        () => true,
        (error: unknown) => (error as NodeJS.ErrnoException).code !== 'ENOENT',
      );
      if (!exists) {
        // The pod's directory went without an unpublish (the kubelet cleaned up): nothing to recover.
        await state.setTarget(target, undefined);
        continue;
      }
      const event = { dataset: attributes.dataset, target };
      try {
        const onTop = await locks.with(key, `recover ${target}`, () =>
          bindOnTop(target, { attributes, readOnly: published.readOnly }, { mounter, readMounts, signal }),
        );
        if (!onTop)
          logger.warn({ ...event }, 'too many binds at the target: cleared it; running containers lose it');
        recovered.push(target);
        logger.info({ ...event, fluidPath: attributes.fluidPath }, 'FUSE mount changed: target re-bound');
        if (attributes.dataset !== undefined) {
          await cluster?.datasetEvent(
            attributes.dataset,
            {
              type: 'Normal',
              reason: 'FuseRecoverSucceed',
              message: `Re-bound ${target} to the new FUSE mount at ${attributes.fluidPath}`,
            },
            signal,
          );
        }
      } catch (error) {
        // An unpublish or publish of the target began meanwhile: it decides, not recovery.
        if (hasCode(error, 'ERR_CSI_ABORTED')) continue;
        logger.error({ ...event, err: toError(error) }, 'FUSE mount changed: re-binding the target failed');
        if (attributes.dataset !== undefined) {
          await cluster?.datasetEvent(
            attributes.dataset,
            {
              type: 'Warning',
              reason: 'FuseRecoverFailed',
              message: `Cannot re-bind ${target}: ${toError(error).message}`,
            },
            signal,
          );
        }
      }
    }
    return recovered;
  }
}
