import type { CacheClient } from '../cache/index.ts';
import type { DirectoryEntry, FileAttributes, FileSource, SourceReadOptions } from '../fuse/index.ts';
import { hasCode } from '../lib/index.ts';
import type { UfsEntry } from '../ufs/index.ts';

/** How long attributes learned from a listing or a stat are reused before asking the origin again. */
const ATTRIBUTE_TTL_MS = 5000;

function attributesOf(entry: UfsEntry): FileAttributes {
  return { type: entry.type, sizeBytes: entry.sizeBytes, mtimeMs: entry.mtimeMs, version: entry.version };
}

function isNotFound(error: unknown): boolean {
  return hasCode(error, 'ERR_CACHE_NOT_FOUND') || hasCode(error, 'ERR_UFS_NOT_FOUND');
}

/**
 * A dataset as a FUSE mount serves it, on either platform: metadata from the dataset's connectors
 * (with a short attribute cache on top of the kernel's), bytes through the cache client. The
 * platform may swap the client (mounts changed) and tell it which paths changed.
 */
export class DatasetFileSource implements FileSource {
  #client: CacheClient;
  readonly #onClose: () => Promise<void>;
  readonly #attributes = new Map<string, { value: FileAttributes | undefined; expiresMs: number }>();
  /** Versions of the files the kernel has seen, to tell which ones changed. */
  readonly #known = new Map<string, string>();
  readonly #listeners = new Set<(path: string) => void>();

  constructor(client: CacheClient, onClose: () => Promise<void>) {
    this.#client = client;
    this.#onClose = onClose;
  }

  /** Versions handed to the kernel so far, by dataset path. */
  get known(): ReadonlyMap<string, string> {
    return this.#known;
  }

  /** Serves from another client from now on (the dataset's mounts changed); the tree is forgotten. */
  replaceClient(client: CacheClient): void {
    this.#client = client;
    this.invalidate(['/', ...this.#known.keys()]);
  }

  /** Drops what this source and the kernel know of `paths`. */
  invalidate(paths: Iterable<string>): void {
    for (const path of paths) {
      this.#attributes.delete(path);
      this.#known.delete(path);
      for (const listener of this.#listeners) listener(path);
    }
  }

  async getattr(path: string, signal: AbortSignal): Promise<FileAttributes | undefined> {
    const cached = this.#attributes.get(path);
    if (cached !== undefined && cached.expiresMs > Date.now()) return cached.value;
    try {
      const value = attributesOf(await this.#client.stat(path, { signal }));
      this.#remember(path, value);
      return value;
    } catch (error) {
      if (!isNotFound(error)) throw error;
      this.#remember(path, undefined);
      return undefined;
    }
  }

  async readdir(path: string, signal: AbortSignal): Promise<readonly DirectoryEntry[]> {
    const entries: DirectoryEntry[] = [];
    const prefix = path === '/' ? '/' : `${path}/`;
    for await (const entry of this.#client.list(path, { signal })) {
      const name = entry.path.slice(entry.path.lastIndexOf('/') + 1);
      const value = attributesOf(entry);
      this.#remember(`${prefix}${name}`, value);
      entries.push({ name, type: entry.type, attributes: value });
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return entries;
  }

  read(path: string, options: SourceReadOptions): Promise<Uint8Array> {
    return this.#client.read(path, options);
  }

  subscribe(onChange: (path: string) => void): () => void {
    this.#listeners.add(onChange);
    return () => this.#listeners.delete(onChange);
  }

  close(): Promise<void> {
    return this.#onClose();
  }

  #remember(path: string, value: FileAttributes | undefined): void {
    if (this.#attributes.size > 200_000) this.#attributes.clear();
    this.#attributes.set(path, { value, expiresMs: Date.now() + ATTRIBUTE_TTL_MS });
    if (value?.type === 'file') this.#known.set(path, value.version);
  }
}
