import { createHash } from 'node:crypto';
import type { CacheClient, ClientReadOptions } from '../cache/index.ts';
import type {
  DirectoryEntry,
  FileAttributes,
  FileSource,
  LentRead,
  SourceReadOptions,
} from '../fuse/index.ts';
import { hasCode, raceAbort } from '../lib/index.ts';
import type { UfsEntry } from '../ufs/index.ts';

/** The metadata TTL when the mount gives none (the kernel's own caches come on top). */
const DEFAULT_METADATA_TTL_MS = 5000;
/**
 * Listed entries kept in memory, all directories together: about 220 bytes of heap each (measured),
 * so 250,000 take about 55 MB. Whole directories are evicted, least recently used first.
 */
const DEFAULT_MAX_LISTED_ENTRIES = 250_000;
/** Attributes of single paths learned by stat (those whose parent is not listed). */
const MAX_STATTED_PATHS = 100_000;

export interface DatasetFileSourceOptions {
  /** How long listings and attributes are answered from memory before the origin is asked again. */
  metadataTtlMs?: number;
  /** Bound of the listing cache in entries (directories are evicted whole). */
  maxListedEntries?: number;
}

/** One directory's children as the origin listed them, sorted by name. */
interface Listing {
  entries: readonly DirectoryEntry[];
  /** Changes when (and only when) the listed names, types or versions change. */
  version: string;
  expiresMs: number;
}

function attributesOf(entry: UfsEntry): FileAttributes {
  return {
    type: entry.type,
    sizeBytes: entry.sizeBytes,
    mtimeMs: entry.mtimeMs,
    version: entry.version,
    ...(entry.owner === undefined ? {} : { owner: entry.owner }),
  };
}

function isNotFound(error: unknown): boolean {
  return hasCode(error, 'ERR_CACHE_NOT_FOUND') || hasCode(error, 'ERR_UFS_NOT_FOUND');
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The entry named `name` in entries sorted by name (binary search: no second index to keep). */
function findEntry(entries: readonly DirectoryEntry[], name: string): DirectoryEntry | undefined {
  let low = 0;
  let high = entries.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const entry = entries[middle] as DirectoryEntry;
    const order = compareNames(entry.name, name);
    if (order === 0) return entry;
    if (order < 0) low = middle + 1;
    else high = middle - 1;
  }
  return undefined;
}

/** A digest of what the kernel caches of a listing: names, types and versions. */
function listingVersion(entries: readonly DirectoryEntry[]): string {
  const hash = createHash('sha1');
  for (const entry of entries) {
    hash.update(`${entry.name}\0${entry.type}\0${entry.attributes?.version ?? ''}\0`);
  }
  return `listing:${hash.digest('base64url')}`;
}

/**
 * A dataset as a FUSE mount serves it, on either platform: metadata from the dataset's connectors,
 * bytes through the cache client. The platform may swap the client (mounts changed) and tell it
 * which paths changed.
 *
 * Metadata is answered from memory for the mount's metadata TTL: each directory's listing is kept
 * whole (a LOOKUP of a child is a binary search in it, a missing name a negative answer) and a
 * stat of a path outside any kept listing is kept by path. Listing an HTTP origin costs a request
 * per file, so without this every `ls -lR` listed the origin again. A directory's version is the
 * digest of its listing, which lets the kernel keep the listing it cached (FOPEN_CACHE_DIR) until
 * the listing changes; an expired listing reports no version, so the next open asks again.
 */
export class DatasetFileSource implements FileSource {
  #client: CacheClient;
  readonly #onClose: () => Promise<void>;
  readonly #ttlMs: number;
  readonly #maxListedEntries: number;
  /** Listings by directory path, least recently used first. */
  readonly #listings = new Map<string, Listing>();
  #listedEntries = 0;
  /** Listings being fetched, so that concurrent READDIRs of a directory list the origin once. */
  readonly #listing = new Map<string, Promise<Listing>>();
  readonly #attributes = new Map<string, { value: FileAttributes | undefined; expiresMs: number }>();
  /** Bumped by every invalidation: a fetch that started before one must not be kept. */
  #generation = 0;
  /** Versions of the files the kernel has seen, to tell which ones changed. */
  readonly #known = new Map<string, string>();
  readonly #listeners = new Set<(path: string) => void>();

  constructor(client: CacheClient, onClose: () => Promise<void>, options: DatasetFileSourceOptions = {}) {
    this.#client = client;
    this.#onClose = onClose;
    this.#ttlMs = options.metadataTtlMs ?? DEFAULT_METADATA_TTL_MS;
    this.#maxListedEntries = options.maxListedEntries ?? DEFAULT_MAX_LISTED_ENTRIES;
  }

  /** Versions handed to the kernel so far, by dataset path. */
  get known(): ReadonlyMap<string, string> {
    return this.#known;
  }

  /** Whether the listing of the directory `path` is in memory (fresh or not). */
  isListed(path: string): boolean {
    return this.#listings.has(path);
  }

  /** Serves from another client from now on (the dataset's mounts changed); the tree is forgotten. */
  replaceClient(client: CacheClient): void {
    this.#client = client;
    const listed = [...this.#listings.keys()];
    this.#forgetAll();
    this.invalidate(['/', ...listed, ...this.#known.keys()]);
  }

  /** Drops what this source and the kernel know of `paths` (and of the listings naming them). */
  invalidate(paths: Iterable<string>): void {
    this.#generation += 1;
    for (const path of paths) {
      this.#attributes.delete(path);
      this.#known.delete(path);
      this.#dropListing(path);
      if (path !== '/') this.#dropListing(parentOf(path));
      for (const listener of this.#listeners) listener(path);
    }
  }

  async getattr(path: string, signal: AbortSignal): Promise<FileAttributes | undefined> {
    const now = Date.now();
    let value: FileAttributes | undefined;
    const parentPath = parentOf(path);
    let parent = path === '/' ? undefined : this.#freshListing(parentPath, now);
    // A directory listed before is listed again rather than statted child by child: the READDIR
    // that usually follows needs the listing anyway, and an object store lists 1,000 names a request.
    if (parent === undefined && path !== '/' && this.#listings.has(parentPath))
      parent = await this.#list(parentPath, signal);
    if (parent !== undefined) {
      value = findEntry(parent.entries, path.slice(path.lastIndexOf('/') + 1))?.attributes;
    } else {
      const cached = this.#attributes.get(path);
      if (cached !== undefined && cached.expiresMs > now) value = cached.value;
      else value = await this.#stat(path, signal);
    }
    if (value?.type !== 'directory') return value;
    // A directory's version is that of its listing while the listing is fresh, none otherwise.
    const own = this.#freshListing(path, now);
    return { ...value, version: own?.version ?? '' };
  }

  async readdir(path: string, signal: AbortSignal): Promise<readonly DirectoryEntry[]> {
    const listing = this.#freshListing(path, Date.now()) ?? (await this.#list(path, signal));
    return listing.entries;
  }

  read(path: string, options: SourceReadOptions): Promise<Uint8Array> {
    // The cache client copies the blocks into the server's reply buffer: no allocation per read.
    return this.#client.read(path, clientReadOptionsOf(options));
  }

  readLent(path: string, options: SourceReadOptions): Promise<LentRead> {
    // A READ inside one buffered block is written to the kernel from the block's buffer.
    return this.#client.readLent(path, clientReadOptionsOf(options));
  }

  subscribe(onChange: (path: string) => void): () => void {
    this.#listeners.add(onChange);
    return () => this.#listeners.delete(onChange);
  }

  close(): Promise<void> {
    return this.#onClose();
  }

  async #stat(path: string, signal: AbortSignal): Promise<FileAttributes | undefined> {
    const generation = this.#generation;
    let value: FileAttributes | undefined;
    try {
      value = attributesOf(await this.#client.stat(path, { signal }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    if (generation === this.#generation) {
      if (this.#attributes.size >= MAX_STATTED_PATHS) this.#attributes.clear();
      this.#attributes.set(path, { value, expiresMs: Date.now() + this.#ttlMs });
      if (value?.type === 'file') this.#known.set(path, value.version);
    }
    return value;
  }

  /** Lists `path` at the origin, once for all callers that ask meanwhile. */
  #list(path: string, signal: AbortSignal): Promise<Listing> {
    let pending = this.#listing.get(path);
    if (pending === undefined) {
      // Not tied to the first caller's signal: other requests may wait on the same listing.
      pending = this.#fetchListing(path).finally(() => this.#listing.delete(path));
      this.#listing.set(path, pending);
    }
    return raceAbort(pending, signal);
  }

  async #fetchListing(path: string): Promise<Listing> {
    const generation = this.#generation;
    const entries: DirectoryEntry[] = [];
    for await (const entry of this.#client.list(path)) {
      const name = entry.path.slice(entry.path.lastIndexOf('/') + 1);
      entries.push({ name, type: entry.type, attributes: attributesOf(entry) });
    }
    entries.sort((a, b) => compareNames(a.name, b.name));
    const listing: Listing = {
      entries,
      version: listingVersion(entries),
      expiresMs: Date.now() + this.#ttlMs,
    };
    if (generation === this.#generation) this.#keepListing(path, listing);
    return listing;
  }

  #keepListing(path: string, listing: Listing): void {
    this.#dropListing(path);
    this.#listings.set(path, listing);
    this.#listedEntries += listing.entries.length;
    const prefix = path === '/' ? '/' : `${path}/`;
    for (const entry of listing.entries) {
      const version = entry.attributes?.version;
      if (entry.type === 'file' && version !== undefined) this.#known.set(`${prefix}${entry.name}`, version);
    }
    // Whole directories, least recently used first; the one just listed stays even when alone too big.
    for (const [oldest, evicted] of this.#listings) {
      if (this.#listedEntries <= this.#maxListedEntries || oldest === path) break;
      this.#listings.delete(oldest);
      this.#listedEntries -= evicted.entries.length;
    }
  }

  /** The listing of `path` when it is still fresh, marked as the most recently used. */
  #freshListing(path: string, now: number): Listing | undefined {
    const listing = this.#listings.get(path);
    if (listing === undefined || listing.expiresMs <= now) return undefined;
    this.#listings.delete(path);
    this.#listings.set(path, listing);
    return listing;
  }

  #dropListing(path: string): void {
    const listing = this.#listings.get(path);
    if (listing === undefined) return;
    this.#listings.delete(path);
    this.#listedEntries -= listing.entries.length;
  }

  #forgetAll(): void {
    this.#generation += 1;
    this.#listings.clear();
    this.#listedEntries = 0;
    this.#attributes.clear();
  }
}

/** A FUSE read's options as the cache client takes them: the reply buffer is where bytes go. */
function clientReadOptionsOf(options: SourceReadOptions): ClientReadOptions {
  const { buffer, ...rest } = options;
  return buffer === undefined ? rest : { ...rest, into: buffer };
}
