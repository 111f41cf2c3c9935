import { mkdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { CsiError } from './errors.ts';
import type { Mounter } from './mounter.ts';
import { mountsAt, topMountAt, type MountEntry } from './mountinfo.ts';
import type { VolumeAttributes } from './volume-context.ts';

/**
 * More mounts than this at one target means something else stacks there; the plugin stops, not
 * loops. Recovery stacks one bind per FUSE restart, and starts the target afresh at this depth.
 */
export const MAX_STACKED_MOUNTS = 16;

export type ReadMounts = (signal?: AbortSignal) => Promise<MountEntry[]>;

/** The directory of the dataset a target shows: `fluid_path` or its sub path. */
export function sourceOf(attributes: VolumeAttributes): string {
  return attributes.subPath === '' ? attributes.fluidPath : `${attributes.fluidPath}/${attributes.subPath}`;
}

/**
 * Whether `bind` (the top mount at a target) shows the current FUSE mount `fuse` at the right
 * directory. Every bind of one FUSE connection has its `major:minor`; a FUSE pod that mounts again
 * gets a new connection, so a bind made before shows a different device (and answers ENOTCONN).
 */
export function bindMatches(bind: MountEntry, fuse: MountEntry, attributes: VolumeAttributes): boolean {
  const expectedRoot = posix.normalize(`${fuse.root}/${attributes.subPath}`).replace(/(.)\/$/, '$1');
  return bind.device === fuse.device && bind.root === expectedRoot;
}

/**
 * Unmounts everything mounted at `target`, top first, until it is no longer a mount point. Lazy
 * (MNT_DETACH): a stale bind of a dead FUSE connection may still have open files.
 * @throws {CsiError} ERR_CSI_INTERNAL when unmounting fails or more than MAX_STACKED_MOUNTS are there
 */
export async function detachAll(
  target: string,
  deps: { mounter: Mounter; readMounts: ReadMounts; signal?: AbortSignal },
): Promise<number> {
  let detached = 0;
  for (;;) {
    const stacked = mountsAt(await deps.readMounts(deps.signal), target).length;
    if (stacked === 0) return detached;
    if (detached >= MAX_STACKED_MOUNTS) {
      throw new CsiError(
        'ERR_CSI_INTERNAL',
        `Cannot clear ${target} as ${stacked} mounts remain after ${detached} unmounts`,
      );
    }
    await deps.mounter.unmount(target, {
      lazy: true,
      ...(deps.signal === undefined ? {} : { signal: deps.signal }),
    });
    detached += 1;
  }
}

/**
 * Makes `target` show the current FUSE mount: stale mounts there are detached first, so binds never
 * stack up, then the source is bind-mounted (read-only when asked). Leaves nothing mounted when it
 * fails.
 */
export async function bindFresh(
  target: string,
  options: { attributes: VolumeAttributes; readOnly: boolean },
  deps: { mounter: Mounter; readMounts: ReadMounts; signal?: AbortSignal },
): Promise<void> {
  await detachAll(target, deps);
  await mkdir(target, { recursive: true, mode: 0o750 });
  const signal = deps.signal === undefined ? {} : { signal: deps.signal };
  await deps.mounter.bind(sourceOf(options.attributes), target, { readOnly: options.readOnly, ...signal });
  const top = topMountAt(await deps.readMounts(deps.signal), target);
  if (top === undefined)
    throw new CsiError(
      'ERR_CSI_INTERNAL',
      `mount --bind reported success but ${target} is not a mount point`,
    );
}

/**
 * Recovery's re-bind: the new FUSE mount is bound on top of the stale bind, not in its place. Only a
 * mount made on top of the target's mount propagates to the containers that have the target with
 * `mountPropagation: HostToContainer` (their copy is a slave of that mount); after a detach, a
 * bind at the host path would reach no running container. The stale binds below stay until
 * NodeUnpublishVolume detaches them all; at MAX_STACKED_MOUNTS the target starts afresh.
 * @returns whether the bind went on top (false: the target was cleared first)
 */
export async function bindOnTop(
  target: string,
  options: { attributes: VolumeAttributes; readOnly: boolean },
  deps: { mounter: Mounter; readMounts: ReadMounts; signal?: AbortSignal },
): Promise<boolean> {
  const stacked = mountsAt(await deps.readMounts(deps.signal), target).length;
  if (stacked === 0 || stacked >= MAX_STACKED_MOUNTS - 1) {
    await bindFresh(target, options, deps);
    return stacked === 0;
  }
  const signal = deps.signal === undefined ? {} : { signal: deps.signal };
  await deps.mounter.bind(sourceOf(options.attributes), target, { readOnly: options.readOnly, ...signal });
  return true;
}
