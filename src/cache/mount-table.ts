import type { UfsEntry, UnderFileSystem } from '../ufs/index.ts';
import { CacheError } from './errors.ts';

/** A dataset mount as a client sees it. */
export interface ClientMount {
  /** The id workers know the mount by (`mountIdOf(mountPoint)`). */
  id: string;
  /** Where the mount appears in the dataset (`namespacePathOf`): `/` or `/train`. */
  path: string;
  /** Connector for metadata and for reading the origin when no worker can. */
  ufs: UnderFileSystem;
}

export interface ResolvedPath {
  mount: ClientMount;
  /** The path inside the mount. */
  relative: string;
}

/** Dataset paths: no leading or trailing slash, `''` for the root. */
export function normaliseDatasetPath(path: string): string {
  return path
    .split('/')
    .filter((segment) => segment !== '' && segment !== '.')
    .join('/');
}

/**
 * Maps dataset paths to mounts (Fluid's unified namespace: each mount at its `path`). The deepest
 * mount containing a path serves it; directories above mounts that no mount serves are virtual.
 */
export class MountTable {
  readonly #mounts: { mount: ClientMount; prefix: string }[];

  constructor(mounts: readonly ClientMount[]) {
    if (mounts.length === 0)
      throw new CacheError('ERR_CACHE_BAD_CONFIG', 'Cannot serve a dataset without mounts');
    const seen = new Set<string>();
    this.#mounts = mounts
      .map((mount) => ({ mount, prefix: normaliseDatasetPath(mount.path) }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
    for (const { prefix } of this.#mounts) {
      if (seen.has(prefix)) {
        throw new CacheError('ERR_CACHE_BAD_CONFIG', `Cannot put two mounts at /${prefix}`);
      }
      seen.add(prefix);
    }
  }

  get mounts(): readonly ClientMount[] {
    return this.#mounts.map((entry) => entry.mount);
  }

  resolve(path: string): ResolvedPath | undefined {
    const normal = normaliseDatasetPath(path);
    for (const { mount, prefix } of this.#mounts) {
      if (prefix === '' || normal === prefix) return { mount, relative: normal.slice(prefix.length) };
      if (normal.startsWith(`${prefix}/`)) return { mount, relative: normal.slice(prefix.length + 1) };
    }
    return undefined;
  }

  /** The mount with this id. */
  byId(id: string): ClientMount | undefined {
    return this.#mounts.find((entry) => entry.mount.id === id)?.mount;
  }

  /** Names of the mount-point segments directly under `path` (virtual directories). */
  virtualChildren(path: string): string[] {
    const normal = normaliseDatasetPath(path);
    const names = new Set<string>();
    for (const { prefix } of this.#mounts) {
      if (prefix === '' || prefix === normal) continue;
      const rest =
        normal === ''
          ? prefix
          : prefix.startsWith(`${normal}/`)
            ? prefix.slice(normal.length + 1)
            : undefined;
      const name = rest?.split('/')[0];
      if (name !== undefined && name !== '') names.add(name);
    }
    return [...names];
  }

  /** Mounts strictly below `path`, with where they sit. */
  mountsBelow(path: string): { mount: ClientMount; prefix: string }[] {
    const normal = normaliseDatasetPath(path);
    return this.#mounts.filter(
      ({ prefix }) =>
        prefix !== normal && prefix !== '' && (normal === '' || prefix.startsWith(`${normal}/`)),
    );
  }

  /** A connector's entry with its path turned into a dataset path. */
  static toDataset(entry: UfsEntry, mount: ClientMount): UfsEntry {
    return { ...entry, path: MountTable.datasetPathOf(entry.path, mount) };
  }

  /** The dataset path of a path inside `mount`. */
  static datasetPathOf(relative: string, mount: ClientMount): string {
    const prefix = normaliseDatasetPath(mount.path);
    return prefix === '' ? relative : relative === '' ? prefix : `${prefix}/${relative}`;
  }
}
