import { createHash } from 'node:crypto';

/**
 * Identity of one block: a fixed-size range of one version of one file of one dataset mount. The
 * version is part of the key, so a file changed at the origin gets new keys and no stale byte is
 * ever served; blocks of old versions just age out of the tiers.
 */
export interface BlockKey {
  /** The mount's id (its mount point without credentials), the same in workers and clients. */
  mount: string;
  /** Path inside the mount, as the under file system names it (no leading slash). */
  path: string;
  /** `UfsEntry.version` of the file. */
  version: string;
  /** Block number: the block covers `[index × blockSize, (index + 1) × blockSize)`. */
  index: number;
}

/**
 * A stable, fixed-length name for a block: the hex SHA-256 of its key fields (128 bits kept). Used
 * as the file name in the tiers and as the input of rendezvous hashing, so every client and worker
 * computes the same one.
 */
export function blockIdOf(key: BlockKey): string {
  return createHash('sha256')
    .update(`${key.mount}\0${key.path}\0${key.version}\0${key.index}`)
    .digest('hex')
    .slice(0, 32);
}

/** `mount\0path\0version`: groups the blocks of one file version. */
export function fileVersionIdOf(key: Pick<BlockKey, 'mount' | 'path' | 'version'>): string {
  return `${key.mount}\0${key.path}\0${key.version}`;
}
