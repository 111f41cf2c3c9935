import type { SecretValue } from '../lib/index.ts';

/** One file or directory of an under file system, as listing and stat report it. */
export interface UfsEntry {
  /** Path relative to the connector's root: no leading slash, `/`-separated, `''` for the root. */
  path: string;
  type: 'file' | 'directory';
  /** 0 for directories. */
  sizeBytes: number;
  /** Last modification, milliseconds since the epoch; 0 when the origin does not say. */
  mtimeMs: number;
  /**
   * Identity of this version of the file (ETag, or size and mtime). Two reads with the same version
   * return the same bytes; a changed file gets a new version. `''` for directories.
   */
  version: string;
  /**
   * Owner and permission bits (`mode & 0o7777`) at origins that have them (local and pvc), so
   * that a mount can show them and the kernel check them; absent for web and object stores.
   */
  owner?: FileOwner;
}

/** Who owns a file at its origin, and its permission bits. */
export interface FileOwner {
  uid: number;
  gid: number;
  mode: number;
}

export interface ListOptions {
  /** Walk the whole subtree (streaming, page by page), not just the direct children. */
  recursive?: boolean;
  signal?: AbortSignal;
}

export interface ReadOptions {
  /** Fail with ERR_UFS_VERSION_CHANGED instead of returning bytes of another version. */
  version?: string;
  signal?: AbortSignal;
  /**
   * A buffer of at least `range.length` bytes the connector may read the bytes straight into (the
   * web and S3 connectors do on `http:` origins), saving a copy: a chunk that is a view of it at its
   * own place in the range (same `buffer`, `byteOffset` = `into.byteOffset` + bytes before it) is
   * already there; any other chunk the caller copies. Leave it alone until the stream has ended.
   */
  into?: Uint8Array;
}

export interface ByteRange {
  offset: number;
  /** Bytes wanted; the stream ends early only at end of file. */
  length: number;
}

/**
 * A connector to one storage location (one `spec.mounts[]` entry). Used by the cache workers, the
 * metadata sync and DataLoad. Every method honours its AbortSignal and fails with a UfsError.
 */
export interface UnderFileSystem {
  /** The mount point it serves, with credentials removed, for messages. */
  readonly description: string;
  /** Entries under `path` (a directory), in no particular order, with bounded memory. */
  list(path: string, options?: ListOptions): AsyncIterable<UfsEntry>;
  /** @throws {UfsError} ERR_UFS_NOT_FOUND when nothing is at `path` */
  stat(path: string, options?: { signal?: AbortSignal }): Promise<UfsEntry>;
  /** The bytes of `range` of the file at `path`, as a stream of chunks. */
  read(path: string, range: ByteRange, options?: ReadOptions): Promise<AsyncIterable<Uint8Array>>;
  /** Checks that the location is reachable with the given credentials; for Dataset conditions. */
  check(options?: { signal?: AbortSignal }): Promise<void>;
  close(): Promise<void>;
}

/** What a connector is built from: a Dataset mount with its secrets resolved. */
export interface UfsMountConfig {
  mountPoint: string;
  /** `spec.mounts[].options` merged over `spec.sharedOptions`. */
  options: Readonly<Record<string, string>>;
  /** `encryptOptions` resolved from Secrets, by option name. */
  secrets: Readonly<Record<string, SecretValue>>;
}
