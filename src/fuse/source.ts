/** What a FileSource says about one file or directory. */
export interface FileAttributes {
  type: 'file' | 'directory';
  /** 0 for directories. */
  sizeBytes: number;
  /** Last modification, milliseconds since the epoch. */
  mtimeMs: number;
  /**
   * Identity of the content: two reads with the same version return the same bytes, and a changed
   * file gets a new version. The kernel page cache of a file is kept across opens while its version
   * stays the same and dropped when it changes. `''` for directories.
   */
  version: string;
  /**
   * Owner and permission bits at the origin, when it has them: shown instead of the mount's
   * (0444/0555, the mount's user), without write bits, as mounts are read-only.
   */
  owner?: { uid: number; gid: number; mode: number };
}

/** One child of a directory. `attributes`, when the source has them at hand, saves a lookup. */
export interface DirectoryEntry {
  name: string;
  type: 'file' | 'directory';
  attributes?: FileAttributes;
}

export interface SourceReadOptions {
  /** The version the file had when it was opened. */
  version: string;
  /** The size that version had when it was opened, when known: nothing past it is read ahead. */
  sizeBytes?: number;
  offset: number;
  /** Bytes wanted; fewer come back only at end of file. */
  length: number;
  signal: AbortSignal;
  /**
   * A buffer of exactly `length` bytes the source may fill and return (a view from its start), which
   * spares an allocation per read; the server reuses it once the reply is written. A source may
   * ignore it and return bytes of its own.
   */
  buffer?: Uint8Array;
}

/** Bytes lent by a source (see FileSource.readLent): valid until `release` is called. */
export interface LentRead {
  data: Uint8Array;
  release: () => void;
}

/**
 * The read-only dataset a FUSE mount serves. Paths are absolute within the dataset: `/` is the root,
 * `/a/b.bin` a file. Methods reject with an AbortError when their signal aborts; any other rejection
 * reaches the application as EIO (ENOENT when the error is a `SourceNotFoundError`).
 */
export interface FileSource {
  /** Attributes of `path`, or undefined when nothing is there. */
  getattr(path: string, signal: AbortSignal): Promise<FileAttributes | undefined>;
  /** The children of the directory `path`, in a stable order, without `.` and `..`. */
  readdir(path: string, signal: AbortSignal): Promise<readonly DirectoryEntry[]>;
  /** Bytes of the file `path` at `[offset, offset + length)`, short only at end of file. */
  read(path: string, options: SourceReadOptions): Promise<Uint8Array>;
  /**
   * The same bytes as `read`, possibly lent from the source's own buffers rather than copied: the
   * server writes them to the kernel straight from there and calls `release` once written. A
   * source whose bytes already sit in memory (a block cache) spares a copy per READ this way.
   */
  readLent?(path: string, options: SourceReadOptions): Promise<LentRead>;
  /**
   * Calls `onChange(path)` whenever the source learns that `path` changed or disappeared, so that
   * the kernel's caches of it are dropped at once rather than when their timeouts run out.
   * Returns the function that stops the subscription.
   */
  subscribe?(onChange: (path: string) => void): () => void;
  /** Totals for statfs(2); zeros when absent. */
  statfs?(signal: AbortSignal): Promise<{ sizeBytes: number; files: number }>;
  /** Releases what the source holds (descriptors, connections). */
  close?(): Promise<void>;
}

/** Joins a directory path and a child name into a dataset path. */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}
