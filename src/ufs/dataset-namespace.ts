import { namespacePathOf, type Mount } from '../api/index.ts';
import { UfsError } from './errors.ts';
import { normaliseUfsPath } from './paths.ts';
import type { ByteRange, ListOptions, ReadOptions, UfsEntry, UnderFileSystem } from './types.ts';

/** One mount of a Dataset at its place in the dataset's namespace. */
export interface NamespaceMount {
  /** Dataset-absolute path: `/`, `/imagenet`, `/data/coco`. */
  path: string;
  ufs: UnderFileSystem;
}

/** Where a dataset path leads: the mount that serves it and the path inside that mount. */
export interface ResolvedPath {
  mount: NamespaceMount;
  /** Path relative to the mount's root (`''` for the mount point itself). */
  path: string;
}

/**
 * The unified namespace of a Dataset: every mount under its path (Fluid's rule, see
 * `namespacePathOf`), with the directories above the mount points made up. It is itself an
 * UnderFileSystem over dataset paths (`a/b` or `/a/b`; entries come back without the leading slash),
 * so the FUSE layer and the cache can treat a dataset like one origin, and `resolve` tells which
 * mount serves a path.
 */
export interface DatasetNamespace extends UnderFileSystem {
  readonly mounts: readonly NamespaceMount[];
  /** The mount serving `path`, or undefined for made-up directories and paths outside every mount. */
  resolve(path: string): ResolvedPath | undefined;
}

/**
 * Builds the namespace of one Dataset's mounts. A mount at `/` must be the only one, and mount
 * paths may not nest (a mount inside another's tree would hide part of it).
 * @throws {UfsError} ERR_UFS_BAD_CONFIG
 */
export function createDatasetNamespace(mounts: readonly NamespaceMount[]): DatasetNamespace {
  return new Namespace(mounts);
}

/**
 * The namespace paths of a Dataset's `spec.mounts`, in order, by Fluid's rule.
 * @throws {UfsError} ERR_UFS_BAD_CONFIG for a mount without path or name among several
 */
export function datasetMountPaths(mounts: readonly Mount[]): string[] {
  return mounts.map((mount, index) => {
    const path = namespacePathOf(mount, mounts.length);
    if (path === undefined) {
      throw new UfsError(
        'ERR_UFS_BAD_CONFIG',
        `Cannot place mount ${index} ("${mount.mountPoint}") in the dataset: give it a name or a path`,
      );
    }
    return path;
  });
}

class Namespace implements DatasetNamespace {
  readonly description: string;
  readonly mounts: readonly NamespaceMount[];
  /** Normalised mount path (no slashes at the ends; `''` for `/`) → mount. */
  readonly #byPath = new Map<string, NamespaceMount>();
  /** Made-up directory → names of its children (made-up directories and mount points). */
  readonly #synthetic = new Map<string, Set<string>>();

  constructor(mounts: readonly NamespaceMount[]) {
    if (mounts.length === 0)
      throw new UfsError('ERR_UFS_BAD_CONFIG', 'Cannot build a dataset namespace without mounts');
    this.mounts = [...mounts];
    for (const mount of mounts) {
      let path: string;
      try {
        path = normaliseUfsPath(mount.path);
      } catch (error) {
        throw new UfsError(
          'ERR_UFS_BAD_CONFIG',
          `Cannot place a mount at "${mount.path}": ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
      if (path === '' && mounts.length > 1) {
        throw new UfsError('ERR_UFS_BAD_CONFIG', 'Cannot place a mount at "/" beside other mounts');
      }
      if (this.#byPath.has(path)) {
        throw new UfsError('ERR_UFS_BAD_CONFIG', `Cannot place two mounts at "/${path}"`);
      }
      this.#byPath.set(path, mount);
    }
    for (const path of this.#byPath.keys()) {
      if (path === '') continue;
      const segments = path.split('/');
      for (let depth = 0; depth < segments.length; depth++) {
        const parent = segments.slice(0, depth).join('/');
        if (this.#byPath.has(parent) && parent !== path) {
          throw new UfsError(
            'ERR_UFS_BAD_CONFIG',
            `Cannot place a mount at "/${path}" inside the mount at "/${parent}"`,
          );
        }
        const children = this.#synthetic.get(parent) ?? new Set<string>();
        children.add(segments[depth] ?? '');
        this.#synthetic.set(parent, children);
      }
    }
    this.description = `dataset namespace of ${mounts.map((mount) => mount.ufs.description).join(', ')}`;
  }

  resolve(path: string): ResolvedPath | undefined {
    const normalised = normaliseUfsPath(path);
    const root = this.#byPath.get('');
    if (root !== undefined) return { mount: root, path: normalised };
    const segments = normalised.split('/');
    for (let depth = segments.length; depth > 0; depth--) {
      const mount = this.#byPath.get(segments.slice(0, depth).join('/'));
      if (mount !== undefined) return { mount, path: segments.slice(depth).join('/') };
    }
    return undefined;
  }

  async *list(path: string, options: ListOptions = {}): AsyncIterable<UfsEntry> {
    const normalised = normaliseUfsPath(path);
    const resolved = this.resolve(normalised);
    if (resolved !== undefined) {
      const prefix = normalised.slice(0, normalised.length - resolved.path.length).replace(/\/$/, '');
      for await (const entry of resolved.mount.ufs.list(resolved.path, options)) yield rebase(entry, prefix);
      return;
    }
    if (!this.#synthetic.has(normalised)) throw notFound(normalised);
    const pending = [normalised];
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      for (const name of this.#synthetic.get(dir) ?? []) {
        const child = dir === '' ? name : `${dir}/${name}`;
        yield directory(child);
        if (options.recursive !== true) continue;
        const mount = this.#byPath.get(child);
        if (mount === undefined) {
          pending.push(child);
          continue;
        }
        for await (const entry of mount.ufs.list('', options)) yield rebase(entry, child);
      }
    }
  }

  async stat(path: string, options: { signal?: AbortSignal } = {}): Promise<UfsEntry> {
    const normalised = normaliseUfsPath(path);
    const resolved = this.resolve(normalised);
    if (resolved === undefined) {
      if (this.#synthetic.has(normalised)) return directory(normalised);
      throw notFound(normalised);
    }
    const prefix = normalised.slice(0, normalised.length - resolved.path.length).replace(/\/$/, '');
    return rebase(await resolved.mount.ufs.stat(resolved.path, options), prefix);
  }

  async read(path: string, range: ByteRange, options: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    const normalised = normaliseUfsPath(path);
    const resolved = this.resolve(normalised);
    if (resolved === undefined) {
      if (this.#synthetic.has(normalised)) {
        throw new UfsError(
          'ERR_UFS_IS_A_DIRECTORY',
          `Cannot read "/${normalised}" of the dataset as it is a directory`,
        );
      }
      throw notFound(normalised);
    }
    return resolved.mount.ufs.read(resolved.path, range, options);
  }

  /** Checks every mount; the first failure (in mount order) is thrown. */
  async check(options: { signal?: AbortSignal } = {}): Promise<void> {
    const results = await Promise.allSettled(this.mounts.map((mount) => mount.ufs.check(options)));
    for (const result of results) if (result.status === 'rejected') throw result.reason as Error;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.mounts.map((mount) => mount.ufs.close()));
  }
}

function rebase(entry: UfsEntry, prefix: string): UfsEntry {
  if (prefix === '') return entry;
  return { ...entry, path: entry.path === '' ? prefix : `${prefix}/${entry.path}` };
}

function directory(path: string): UfsEntry {
  return { path, type: 'directory', sizeBytes: 0, mtimeMs: 0, version: '' };
}

function notFound(path: string): UfsError {
  return new UfsError('ERR_UFS_NOT_FOUND', `Cannot find "/${path}" in the dataset: no mount is there`);
}
