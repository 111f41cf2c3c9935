import { close, open, read, constants, watch } from 'node:fs';
import { readdir, stat, statfs } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
import type { DirectoryEntry, FileAttributes, FileSource, SourceReadOptions } from './source.ts';
import { childPath } from './source.ts';

export interface LocalDirectorySourceOptions {
  /** Open file descriptors kept for reads; the least recently used is closed beyond it. Default 64. */
  maxOpenFiles?: number;
  /**
   * Watch the directory tree (inotify through fs.watch) and report changes to `subscribe`rs, so that
   * the mount drops its caches of a changed file at once. Default false: changes are still noticed
   * on the next open, or when the attribute timeout runs out.
   */
  watch?: boolean;
}

interface CachedDescriptor {
  fd: number;
  /** Reads in progress; the descriptor is closed only when none is. */
  users: number;
  evicted: boolean;
}

const isMissing = (error: unknown): boolean =>
  error instanceof Error && 'code' in error && (error.code === 'ENOENT' || error.code === 'ENOTDIR');

/** The version of a local file: inode, size and modification time in nanoseconds. */
function versionOf(stats: BigIntStats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeNs}`;
}

function attributesOf(stats: BigIntStats): FileAttributes | undefined {
  if (stats.isDirectory()) {
    return { type: 'directory', sizeBytes: 0, mtimeMs: Number(stats.mtimeNs / 1000n) / 1000, version: '' };
  }
  if (!stats.isFile()) return undefined;
  return {
    type: 'file',
    sizeBytes: Number(stats.size),
    mtimeMs: Number(stats.mtimeNs / 1000n) / 1000,
    version: versionOf(stats),
  };
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted)
    throw signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError');
}

/**
 * A FileSource that serves a directory of this machine, read-only. Symbolic links are followed;
 * sockets, FIFOs and devices are left out. Paths never leave `dir` through `..`.
 */
export function createLocalDirectorySource(
  dir: string,
  options: LocalDirectorySourceOptions = {},
): FileSource {
  const maxOpenFiles = options.maxOpenFiles ?? 64;
  // Insertion order of a Map is its LRU order: a hit is deleted and set again.
  const descriptors = new Map<string, CachedDescriptor>();

  const resolvePath = (path: string): string => {
    if (!path.startsWith('/') || path.split('/').some((part) => part === '..' || part === '.')) {
      throw new RangeError(`Cannot resolve "${path}" as a dataset path: it must be absolute without . or ..`);
    }
    return join(dir, path);
  };

  const release = (entry: CachedDescriptor): void => {
    entry.users -= 1;
    if (entry.users === 0 && entry.evicted) close(entry.fd, () => undefined);
  };

  const acquire = async (path: string, version: string): Promise<CachedDescriptor> => {
    const key = `${version}\0${path}`;
    const cached = descriptors.get(key);
    if (cached !== undefined) {
      descriptors.delete(key);
      descriptors.set(key, cached);
      cached.users += 1;
      return cached;
    }
    const fd = await new Promise<number>((resolve, reject) => {
      open(resolvePath(path), constants.O_RDONLY | constants.O_NOATIME, (error, result) => {
        // O_NOATIME is refused on files the process does not own unless it has CAP_FOWNER.
        if (error?.code === 'EPERM') {
          open(resolvePath(path), constants.O_RDONLY, (retryError, retryResult) => {
            if (retryError) reject(retryError);
            else resolve(retryResult);
          });
        } else if (error) reject(error);
        else resolve(result);
      });
    });
    const raced = descriptors.get(key);
    if (raced !== undefined) {
      close(fd, () => undefined);
      raced.users += 1;
      return raced;
    }
    const entry: CachedDescriptor = { fd, users: 1, evicted: false };
    descriptors.set(key, entry);
    while (descriptors.size > maxOpenFiles) {
      const [oldestKey, oldest] = descriptors.entries().next().value as [string, CachedDescriptor];
      descriptors.delete(oldestKey);
      oldest.evicted = true;
      oldest.users += 1;
      release(oldest);
    }
    return entry;
  };

  const readAt = (fd: number, target: Buffer, position: number): Promise<number> =>
    new Promise((resolve, reject) => {
      read(fd, target, 0, target.length, position, (error, bytesRead) => {
        if (error) reject(error);
        else resolve(bytesRead);
      });
    });

  return {
    async getattr(path: string, signal: AbortSignal): Promise<FileAttributes | undefined> {
      throwIfAborted(signal);
      try {
        return attributesOf(await stat(resolvePath(path), { bigint: true }));
      } catch (error) {
        if (isMissing(error)) return undefined;
        throw error;
      }
    },

    async readdir(path: string, signal: AbortSignal): Promise<readonly DirectoryEntry[]> {
      throwIfAborted(signal);
      const names = await readdir(resolvePath(path));
      names.sort();
      const entries = await Promise.all(
        names.map(async (name): Promise<DirectoryEntry | undefined> => {
          try {
            const attributes = attributesOf(await stat(resolvePath(childPath(path, name)), { bigint: true }));
            return attributes === undefined ? undefined : { name, type: attributes.type, attributes };
          } catch (error) {
            if (isMissing(error)) return undefined;
            throw error;
          }
        }),
      );
      return entries.filter((entry) => entry !== undefined);
    },

    async read(path: string, readOptions: SourceReadOptions): Promise<Uint8Array> {
      throwIfAborted(readOptions.signal);
      const descriptor = await acquire(path, readOptions.version);
      try {
        const given = readOptions.buffer;
        const target =
          given !== undefined && given.byteLength === readOptions.length
            ? Buffer.from(given.buffer, given.byteOffset, given.byteLength)
            : Buffer.allocUnsafe(readOptions.length);
        let filled = 0;
        while (filled < target.length) {
          const bytesRead = await readAt(descriptor.fd, target.subarray(filled), readOptions.offset + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return filled === target.length ? target : target.subarray(0, filled);
      } finally {
        release(descriptor);
      }
    },

    subscribe(onChange: (path: string) => void): () => void {
      if (options.watch !== true) return () => undefined;
      const watcher = watch(dir, { recursive: true, persistent: false }, (_event, filename) => {
        if (filename !== null) onChange(`/${filename}`);
      });
      watcher.on('error', () => undefined);
      return () => {
        watcher.close();
      };
    },

    async statfs(signal: AbortSignal): Promise<{ sizeBytes: number; files: number }> {
      throwIfAborted(signal);
      const stats = await statfs(dir);
      return { sizeBytes: stats.blocks * stats.bsize, files: stats.files };
    },

    close(): Promise<void> {
      for (const entry of descriptors.values()) {
        entry.evicted = true;
        entry.users += 1;
        release(entry);
      }
      descriptors.clear();
      return Promise.resolve();
    },
  };
}
