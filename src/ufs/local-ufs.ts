import { opendir, open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { throwIfAborted, toError } from '../lib/index.ts';
import { abortedError } from './abort.ts';
import { checkRootIsDirectory } from './check-root.ts';
import { UfsError, type UfsErrorCode } from './errors.ts';
import { checkRange, joinUfsPath, normaliseUfsPath } from './paths.ts';
import type { ByteRange, ListOptions, ReadOptions, UfsEntry, UnderFileSystem } from './types.ts';

/** Bytes read from disk per chunk of a read stream. */
const CHUNK_BYTES = 1024 * 1024;

export interface LocalUfsOptions {
  /** Absolute directory that is the connector's root. */
  root: string;
  /** For messages: the mount point as the user wrote it. */
  description: string;
}

/**
 * A directory of this machine (`local:///abs/path`, and `pvc://name/sub` once resolved to a
 * directory). The version of a file is `size-mtimeNs-ino`: the inode number catches a file replaced
 * by a rename that kept size and mtime. Symbolic links are followed only while they lead to a place
 * inside the root: one that leads out (to /etc/shadow, say) is neither listed nor read.
 */
export class LocalUfs implements UnderFileSystem {
  readonly description: string;
  readonly #root: string;
  /** The root's device: the tree ends where another file system is mounted. */
  #rootDevice: Promise<bigint> | undefined;
  /** The root with its own symbolic links resolved: what "inside the origin" means. */
  #realRoot: Promise<string> | undefined;

  constructor(options: LocalUfsOptions) {
    if (!options.root.startsWith('/')) {
      throw new UfsError(
        'ERR_UFS_BAD_CONFIG',
        `Cannot use "${options.description}" as its path is not absolute`,
      );
    }
    this.#root = options.root;
    this.description = options.description;
  }

  async *list(path: string, options: ListOptions = {}): AsyncIterable<UfsEntry> {
    const start = normaliseUfsPath(path);
    const top = await this.stat(start, options.signal === undefined ? {} : { signal: options.signal });
    if (top.type !== 'directory') {
      throw new UfsError(
        'ERR_UFS_NOT_A_DIRECTORY',
        `Cannot list "${start}" of ${this.description} as it is a file`,
      );
    }
    // Depth-first with an explicit stack: memory grows with depth and one open directory, not size.
    // Each directory knows the real paths above it, so a link back up (a loop) is not walked again.
    const pending: WalkedDirectory[] = [{ path: start, real: await this.#realPathInside(start) }];
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      throwIfAborted(options.signal, abortedError(`listing ${this.description}`));
      let handle;
      try {
        handle = await opendir(this.#absolute(dir.path), { bufferSize: 256 });
      } catch (error) {
        // A directory removed while walking is not an error of the walk.
        if (dir.path !== start && (error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw this.#mapError(error, 'list', dir.path);
      }
      for await (const dirent of handle) {
        throwIfAborted(options.signal, abortedError(`listing ${this.description}`));
        const child = joinUfsPath(dir.path, dirent.name);
        let stats: BigIntStats;
        let real = join(dir.real, dirent.name);
        try {
          stats = await stat(this.#absolute(child), { bigint: true });
          if (dirent.isSymbolicLink()) real = await realpath(this.#absolute(child));
        } catch (error) {
          // Gone since readdir, or a dangling symbolic link: neither is part of the tree.
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' || code === 'ELOOP') continue;
          throw this.#mapError(error, 'stat', child);
        }
        if (!stats.isFile() && !stats.isDirectory()) continue;
        // /proc, /sys, other disks and FUSE mounts (Tide's own included) are not part of the tree.
        if (stats.dev !== (await this.#device())) continue;
        if (!isInside(await this.#realRootPath(), real)) continue;
        const entry = entryOf(child, stats);
        yield entry;
        if (options.recursive === true && entry.type === 'directory' && !isWalking(dir, real)) {
          pending.push({ path: child, real, parent: dir });
        }
      }
    }
  }

  async stat(path: string, options: { signal?: AbortSignal } = {}): Promise<UfsEntry> {
    const relative = normaliseUfsPath(path);
    throwIfAborted(options.signal, abortedError(`stat of ${this.description}`));
    try {
      const stats = await stat(this.#absolute(relative), { bigint: true });
      await this.#realPathInside(relative);
      if (!stats.isFile() && !stats.isDirectory()) {
        throw new UfsError(
          'ERR_UFS_NOT_FOUND',
          `Cannot stat "${relative}" of ${this.description}: not a file or directory`,
        );
      }
      if (relative !== '' && stats.dev !== (await this.#device())) throw this.#elsewhere(relative);
      return entryOf(relative, stats);
    } catch (error) {
      throw this.#mapError(error, 'stat', relative);
    }
  }

  async read(path: string, range: ByteRange, options: ReadOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    checkRange(range);
    const relative = normaliseUfsPath(path);
    throwIfAborted(options.signal, abortedError(`read of ${this.description}`));
    let handle: FileHandle;
    try {
      handle = await open(this.#absolute(relative), 'r');
    } catch (error) {
      throw this.#mapError(error, 'read', relative);
    }
    try {
      // The file opened, not its path (a link may change after a check): where did the open land?
      if (!isInside(await this.#realRootPath(), await readlink(`/proc/self/fd/${handle.fd}`))) {
        throw this.#outside(relative);
      }
      const stats = await handle.stat({ bigint: true });
      if (stats.dev !== (await this.#device())) throw this.#elsewhere(relative);
      if (stats.isDirectory()) {
        throw new UfsError(
          'ERR_UFS_IS_A_DIRECTORY',
          `Cannot read "${relative}" of ${this.description} as it is a directory`,
        );
      }
      const version = versionOf(stats);
      if (options.version !== undefined && options.version !== version) {
        throw versionChanged(this.description, relative);
      }
      return this.#stream(handle, { relative, range, version, signal: options.signal });
    } catch (error) {
      await handle.close();
      throw this.#mapError(error, 'read', relative);
    }
  }

  #device(): Promise<bigint> {
    this.#rootDevice ??= stat(this.#root, { bigint: true }).then((stats) => stats.dev);
    // A root that cannot be statted now is tried again next time (and fails the call with its reason).
    this.#rootDevice.catch(() => {
      this.#rootDevice = undefined;
    });
    return this.#rootDevice;
  }

  #realRootPath(): Promise<string> {
    this.#realRoot ??= realpath(this.#root);
    this.#realRoot.catch(() => {
      this.#realRoot = undefined;
    });
    return this.#realRoot;
  }

  /** The real path of `relative`, refused when a symbolic link on the way leads out of the root. */
  async #realPathInside(relative: string): Promise<string> {
    const real = await realpath(this.#absolute(relative));
    if (!isInside(await this.#realRootPath(), real)) throw this.#outside(relative);
    return real;
  }

  #outside(relative: string): UfsError {
    return new UfsError(
      'ERR_UFS_ACCESS_DENIED',
      `Cannot use "${relative}" of ${this.description}: a symbolic link leads outside the origin`,
    );
  }

  #elsewhere(relative: string): UfsError {
    return new UfsError(
      'ERR_UFS_NOT_FOUND',
      `Cannot use "${relative}" of ${this.description}: it is on another file system than the origin`,
    );
  }

  async *#stream(
    handle: FileHandle,
    read: { relative: string; range: ByteRange; version: string; signal: AbortSignal | undefined },
  ): AsyncIterable<Uint8Array> {
    try {
      let position = read.range.offset;
      let remaining = read.range.length;
      while (remaining > 0) {
        throwIfAborted(read.signal, abortedError(`read of ${this.description}`));
        const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, remaining));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        // Checked after each chunk and before handing it out, so that a file rewritten in place
        // during the read fails instead of yielding bytes of two versions.
        if (versionOf(await handle.stat({ bigint: true })) !== read.version) {
          throw versionChanged(this.description, read.relative);
        }
        if (bytesRead === 0) break;
        position += bytesRead;
        remaining -= bytesRead;
        yield buffer.subarray(0, bytesRead);
      }
    } catch (error) {
      throw this.#mapError(error, 'read', read.relative);
    } finally {
      await handle.close();
    }
  }

  async check(options: { signal?: AbortSignal } = {}): Promise<void> {
    await checkRootIsDirectory(this, options);
  }

  async close(): Promise<void> {
    // Nothing is held open between calls.
  }

  #absolute(relative: string): string {
    return relative === '' ? this.#root : join(this.#root, relative);
  }

  #mapError(error: unknown, action: string, relative: string): UfsError {
    if (error instanceof UfsError) return error;
    const code = (error as NodeJS.ErrnoException).code;
    const where = `"${relative}" of ${this.description}`;
    const mapped: UfsErrorCode =
      code === 'ENOENT'
        ? 'ERR_UFS_NOT_FOUND'
        : code === 'ENOTDIR'
          ? 'ERR_UFS_NOT_A_DIRECTORY'
          : code === 'EISDIR'
            ? 'ERR_UFS_IS_A_DIRECTORY'
            : code === 'EACCES' || code === 'EPERM'
              ? 'ERR_UFS_ACCESS_DENIED'
              : 'ERR_UFS_REMOTE';
    const reason = mapped === 'ERR_UFS_NOT_FOUND' ? 'nothing is there' : (code ?? toError(error).message);
    return new UfsError(mapped, `Cannot ${action} ${where}: ${reason}`, { cause: error });
  }
}

interface WalkedDirectory {
  path: string;
  /** Its real path (links resolved). */
  real: string;
  parent?: WalkedDirectory;
}

/** Whether `real` is the directory `dir` or one above it on the walk: a link loop. */
function isWalking(dir: WalkedDirectory | undefined, real: string): boolean {
  for (let at = dir; at !== undefined; at = at.parent) if (at.real === real) return true;
  return false;
}

function isInside(realRoot: string, real: string): boolean {
  return real === realRoot || real.startsWith(realRoot === '/' ? '/' : `${realRoot}/`);
}

function versionOf(stats: BigIntStats): string {
  return `${stats.size}-${stats.mtimeNs}-${stats.ino}`;
}

function entryOf(path: string, stats: BigIntStats): UfsEntry {
  const isFile = stats.isFile();
  return {
    path,
    type: isFile ? 'file' : 'directory',
    sizeBytes: isFile ? Number(stats.size) : 0,
    mtimeMs: Number(stats.mtimeMs),
    version: isFile ? versionOf(stats) : '',
    owner: { uid: Number(stats.uid), gid: Number(stats.gid), mode: Number(stats.mode) & 0o7777 },
  };
}

function versionChanged(description: string, relative: string): UfsError {
  return new UfsError(
    'ERR_UFS_VERSION_CHANGED',
    `Cannot read "${relative}" of ${description} as the file changed since it was listed`,
  );
}
