import { closeSync, constants, openSync } from 'node:fs';
import { hostname } from 'node:os';
import { raceAbort, silentLogger, toError, type Logger, type SecretValue } from '../lib/index.ts';
import { UfsError, type UfsEntry } from '../ufs/index.ts';
import { blockIdOf, fileVersionIdOf, type BlockKey } from './block-key.ts';
import { DIRECT_IO_MIN_BYTES, readCheckedBlock, readCheckedRange } from './block-file.ts';
import { CacheError, cacheAborted, throwIfAborted } from './errors.ts';
import type { Membership, WorkerEndpoint } from './membership.ts';
import { MountTable, normaliseDatasetPath, type ClientMount } from './mount-table.ts';
import { DEFAULT_BLOCK_SIZE_BYTES, type BlockLocationAnswer } from './protocol.ts';
import { rankByRendezvous } from './rendezvous.ts';
import { Semaphore } from './semaphore.ts';
import { BufferPool, directIoProbeOf } from './buffer-pool.ts';
import { pruneStaleBlocks, type PruneResult } from './prune.ts';
import { NotServed, WorkerFailure, WorkerTransport, type Progress } from './worker-transport.ts';

export interface CacheClientOptions {
  /** `namespace/name`; workers refuse blocks of other datasets. */
  datasetId: string;
  membership: Membership;
  mounts: readonly ClientMount[];
  /** Must match the workers' (`spec.worker.blockSize`); default 4 MiB. */
  blockSizeBytes?: number;
  /** The runtime's bearer token, when its workers require one. */
  token?: SecretValue;
  /** The node this client runs on; default the host name. */
  nodeName?: string;
  /** Read block files of workers on the same node directly; default true. */
  shortCircuit?: boolean;
  /**
   * Largest read-ahead window, in blocks, of a sequential reader; default 16: a remote store that
   * limits each connection (a block per connection) needs that many blocks in flight, 100 MiB/s per
   * connection six or more for 500 MB/s, with room for the jitter of a busy machine. 0 disables it.
   */
  readAheadBlocks?: number;
  /** Memory for buffered blocks (read, in flight and read ahead); default 256 MiB. */
  maxBufferBytes?: number;
  /**
   * Keep-alive connections per worker; default 16, so that a read-ahead window whose blocks all
   * rank one worker first does not queue behind its own cold blocks.
   */
  connectionsPerWorker?: number;
  /** How long a worker that failed is skipped; default 2 s. */
  workerRetryMs?: number;
  /** Longest wait for a worker's answer to start (a cold block waits for the origin); default 120 s. */
  requestTimeoutMs?: number;
  /** Ranged reads sent straight to the origin at once when no worker can serve; default 4. */
  originConcurrency?: number;
  logger?: Logger;
}

export interface ClientReadOptions {
  /** The file version to read (`UfsEntry.version`); looked up with a stat when absent. */
  version?: string;
  offset: number;
  /** Bytes wanted; fewer come back only at end of file. */
  length: number;
  /** Where to put the bytes (at least `length` long); the result is then a view of it. */
  into?: Uint8Array;
  signal?: AbortSignal;
  /**
   * The size of this version when the caller knows it (a FUSE server from the stat at open): reads
   * and read-ahead then stop at its end without asking for the block past it.
   */
  sizeBytes?: number;
}

/** Bytes on loan from the client's buffers (see CacheClient.readLent). */
export interface LentBytes {
  data: Buffer;
  release: () => void;
}

export interface LoadOptions {
  /** Workers that should each hold a copy of every block; default 1. */
  replicas?: number;
  /** Blocks loaded at once; default 8. */
  concurrency?: number;
  signal?: AbortSignal;
  /**
   * The entry of `path` as a listing of this client gave it (a file): loaded at that version and
   * size without asking the origin again, so that a DataLoad of many small files costs no request
   * per file besides the block fetch itself.
   */
  entry?: UfsEntry;
}

export interface LoadResult {
  files: number;
  blocks: number;
  /** Bytes of the files loaded (each counted once, whatever the replicas). */
  bytes: number;
}

export interface ClientCounters {
  /** Bytes returned to readers. */
  readBytes: number;
  /** Block bytes received from workers over HTTP. */
  workerBytes: number;
  /** Block bytes read directly from a local worker's files. */
  shortCircuitBytes: number;
  /** Block bytes read from the origin because no worker could serve them. */
  originBytes: number;
  /** Requests to a worker that failed (it was then skipped for a while). */
  workerFailures: number;
  /** Short-circuit reads that failed their check and were refetched through the worker. */
  shortCircuitFallbacks: number;
  /** Blocks fetched ahead of a sequential reader. */
  readAheadBlocks: number;
}

export interface CacheClient {
  /**
   * Bytes `[offset, offset + length)` of a dataset file, short only at end of file: a new Buffer, or
   * a view of `options.into` (pass one to spare an allocation per read on a hot path).
   * @throws {CacheError} ERR_CACHE_VERSION_CHANGED when the origin no longer has `version` and the
   *   bytes are not cached; ERR_CACHE_NOT_FOUND; ERR_CACHE_ABORTED when `signal` aborts
   */
  read(path: string, options: ClientReadOptions): Promise<Buffer>;
  /**
   * The same bytes as `read`, lent rather than copied where they lie in one buffered block: a view
   * of the block's buffer, kept from reuse until `release` is called (once, when the caller is done
   * with the bytes; a caller that forgets only leaves the buffer to the collector). `into` is used
   * only when the bytes must be copied.
   */
  readLent(path: string, options: ClientReadOptions): Promise<LentBytes>;
  /** Metadata of a dataset path, from its mount's connector. */
  stat(path: string, options?: { signal?: AbortSignal }): Promise<UfsEntry>;
  /** Entries under a dataset directory (paths are dataset paths, without a leading slash). */
  list(path: string, options?: { recursive?: boolean; signal?: AbortSignal }): AsyncIterable<UfsEntry>;
  /** Caches a file, or every file under a directory, on its owner workers (DataLoad). */
  load(path: string, options?: LoadOptions): Promise<LoadResult>;
  /**
   * Drops from the workers the blocks of files under `paths` whose version differs from `current`
   * (dataset path → version, from the listings of `paths`): files changed or gone at the origin.
   */
  prune(
    paths: readonly string[],
    current: ReadonlyMap<string, string>,
    options?: { signal?: AbortSignal },
  ): Promise<PruneResult>;
  counters(): ClientCounters;
  close(): Promise<void>;
}

const MAX_FILES_REMEMBERED = 4096;
/** Where the local workers keep blocks, remembered for random reads of a few pieces. */
const MAX_LOCATIONS_REMEMBERED = 16_384;
const MAX_STREAMS_PER_FILE = 4;
/** Live owners tried for a block before reading the origin directly. */
const OWNER_ATTEMPTS = 2;

interface BlockRef {
  id: string;
  key: BlockKey;
  mount: ClientMount;
}

/**
 * A block buffered or on its way, in a pooled buffer. Its bytes become readable as they arrive
 * (`arrived`, from the start of the block), so a read of the first kilobytes of a cold block does not
 * wait for the rest; bytes that need a whole-block check (a short-circuited block file) arrive all at
 * once, after the check.
 */
class Slot {
  /** The pooled block buffer, or after a short block settles, a buffer of the block's own size. */
  buffer: Buffer;
  promise: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  /** The whole block once fetched: a view of `buffer`. */
  data: Buffer | undefined;
  /** Bytes `[0, arrived)` of `buffer` are the block's. */
  arrived = 0;
  failure: Error | undefined;
  /** Bytes counted against the buffer budget: what the slot holds (its whole buffer). */
  chargedBytes: number;
  settled = false;
  /** A reader asked for it (a block read ahead is unused until then). */
  used = false;
  /** Reads copying out of it right now, and loans of its bytes (readLent) not yet returned. */
  pins = 0;
  /** Loans of its bytes not yet returned: its buffer is not reused while any is out. */
  lent = 0;
  #waiters: { need: number; resolve: () => void; reject: (error: Error) => void }[] = [];

  constructor(buffer: Buffer, chargedBytes: number) {
    this.buffer = buffer;
    this.chargedBytes = chargedBytes;
  }

  /** Resolves once `[0, need)` has arrived or the block is whole (it may be shorter: end of file). */
  until(need: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.settled || this.arrived >= need) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ need, resolve, reject }));
  }

  progress(arrived: number): void {
    if (arrived <= this.arrived) return;
    this.arrived = arrived;
    if (this.#waiters.length === 0) return;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.need > arrived) return true;
      waiter.resolve();
      return false;
    });
  }

  settle(data: Buffer): void {
    this.settled = true;
    this.data = data;
    this.arrived = data.length;
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters = [];
  }

  fail(error: Error): void {
    this.failure = error;
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters = [];
  }
}

/**
 * Bytes a settled slot is charged: its whole buffer, and at least the slab a small Buffer may pin,
 * so that the count of blocks kept stays bounded too.
 */
function chargeOf(buffer: Buffer): number {
  return Math.max(buffer.length, 8192);
}

interface Stream {
  /** Where the next sequential read would start. */
  next: number;
  window: number;
  /** The last block index this stream fetched ahead: reads inside the window start no lookups. */
  ahead: number;
}

interface FileState {
  sizeBytes: number | undefined;
  streams: Stream[];
}

/** How far a read may start from where a stream's last one ended and still continue it (at most a block). */
const CONTIGUOUS_SLACK_BYTES = 128 * 1024;

/**
 * The stream a read at `offset` continues, if any. One already reading ahead takes reads up to a
 * block away, as the kernel's read-ahead requests for several readers of one file arrive
 * interleaved; one that has not started only takes a read that begins where its last one ended, so
 * that random reads near each other (a database's pages) are not taken for a sequential pass.
 */
function streamAt(streams: readonly Stream[], offset: number, blockSize: number): Stream | undefined {
  return streams.find(
    (stream) =>
      Math.abs(offset - stream.next) <=
      (stream.window > 0 ? blockSize : Math.min(blockSize, CONTIGUOUS_SLACK_BYTES)),
  );
}

/**
 * Creates the client the FUSE server and DataLoad read a dataset through.
 *
 * - Each block has its owners: the workers ranked by rendezvous hashing over the membership, so all
 *   clients send a block to the same worker and the cluster reads it from the origin once. A worker
 *   that fails is skipped for `workerRetryMs`; its blocks go to their next owner, and when no owner
 *   answers, the client reads the origin itself: the reader never sees a worker failure.
 * - A worker on the same node is asked where its block file is and the file is read directly
 *   (short-circuit), checked piece by piece against its checksums; a file evicted or damaged in
 *   between is refetched through the worker.
 * - Blocks are kept in a bounded LRU of pooled buffers (blocks read but not yet asked for are
 *   evicted last, and never to make room for more read-ahead), and a reader found to be sequential
 *   gets the next blocks fetched in parallel ahead of it, its window doubling up to
 *   `readAheadBlocks`. Concurrent reads of one block share one fetch.
 */
export function createCacheClient(options: CacheClientOptions): CacheClient {
  return new Client(options);
}

class Client implements CacheClient {
  readonly #datasetId: string;
  readonly #membership: Membership;
  readonly #mounts: MountTable;
  readonly #blockSizeBytes: number;
  readonly #nodeName: string;
  readonly #shortCircuit: boolean;
  readonly #readAheadBlocks: number;
  readonly #maxBufferBytes: number;
  readonly #workerRetryMs: number;
  readonly #originLimit: Semaphore;
  readonly #logger: Logger;
  readonly #unsubscribe: () => void;
  readonly #transport: WorkerTransport;
  readonly #downUntil = new Map<string, number>();
  readonly #slots = new Map<string, Slot>();
  readonly #buffers: BufferPool;
  readonly #files = new Map<string, FileState>();
  /** Block files of workers on this node, by block id, learned when blocks were read whole. */
  readonly #locations = new Map<string, BlockLocationAnswer>();
  readonly #counters: ClientCounters = {
    readBytes: 0,
    workerBytes: 0,
    shortCircuitBytes: 0,
    originBytes: 0,
    workerFailures: 0,
    shortCircuitFallbacks: 0,
    readAheadBlocks: 0,
  };
  #bufferedBytes = 0;
  #closed = false;
  /** A block file opened with O_DIRECT, which probes the alignment of new block buffers. */
  #directProbeFd: number | undefined;

  constructor(options: CacheClientOptions) {
    this.#datasetId = options.datasetId;
    this.#membership = options.membership;
    this.#mounts = new MountTable(options.mounts);
    this.#blockSizeBytes = options.blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES;
    this.#nodeName = options.nodeName ?? hostname();
    this.#shortCircuit = options.shortCircuit ?? true;
    this.#readAheadBlocks = options.readAheadBlocks ?? 16;
    this.#maxBufferBytes = options.maxBufferBytes ?? 256 * 1024 * 1024;
    this.#workerRetryMs = options.workerRetryMs ?? 2000;
    this.#originLimit = new Semaphore(options.originConcurrency ?? 4);
    this.#buffers = new BufferPool(
      this.#blockSizeBytes,
      Math.ceil(this.#maxBufferBytes / this.#blockSizeBytes),
    );
    this.#logger = (options.logger ?? silentLogger()).child({
      component: 'cache-client',
      dataset: options.datasetId,
    });
    this.#transport = new WorkerTransport({
      datasetId: this.#datasetId,
      blockSizeBytes: this.#blockSizeBytes,
      nodeName: this.#nodeName,
      token: options.token,
      connectionsPerWorker: options.connectionsPerWorker ?? 16,
      requestTimeoutMs: options.requestTimeoutMs ?? 120_000,
      logger: this.#logger,
    });
    if (!Number.isSafeInteger(this.#readAheadBlocks) || this.#readAheadBlocks < 0) {
      throw new RangeError(`Cannot read ahead ${this.#readAheadBlocks} blocks`);
    }
    this.#unsubscribe = this.#membership.subscribe((workers) => {
      this.#forgetGoneWorkers(workers);
    });
  }

  counters(): ClientCounters {
    return { ...this.#counters };
  }

  async read(path: string, options: ClientReadOptions): Promise<Buffer> {
    return (await this.#read(path, options, false)).data;
  }

  readLent(path: string, options: ClientReadOptions): Promise<LentBytes> {
    return this.#read(path, options, true);
  }

  async #read(path: string, options: ClientReadOptions, lend: boolean): Promise<LentBytes> {
    const { offset, length, signal } = options;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`Cannot read at offset ${offset}`);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`Cannot read ${length} bytes`);
    throwIfAborted(signal, `the read of ${path}`);
    const resolved = this.#resolve(path);
    let version = options.version;
    if (version === undefined) {
      const entry = await this.stat(path, signal === undefined ? {} : { signal });
      version = entry.version;
    }
    const file = this.#fileState(resolved.mount, resolved.relative, version);
    if (options.sizeBytes !== undefined) file.sizeBytes = options.sizeBytes;
    let end = offset + length;
    if (file.sizeBytes !== undefined) end = Math.min(end, file.sizeBytes);
    if (end <= offset) return { data: Buffer.alloc(0), release: noop };

    const blockSize = this.#blockSizeBytes;
    const first = Math.floor(offset / blockSize);
    const last = Math.floor((end - 1) / blockSize);
    const refOf = (index: number): BlockRef => {
      const key: BlockKey = { mount: resolved.mount.id, path: resolved.relative, version, index };
      return { id: blockIdOf(key), key, mount: resolved.mount };
    };
    if (first === last) {
      const direct = await this.#readPieces(file, refOf(first), offset, end, options.into);
      if (direct !== undefined) return { data: direct, release: noop };
    }
    const slots: Slot[] = [];
    const reading = new Set<string>();
    let missed = false;
    /** The slot whose pin the caller now holds, with the bytes lent from it. */
    let lentFrom: Slot | undefined;
    for (let index = first; index <= last; index += 1) {
      const ref = refOf(index);
      reading.add(ref.id);
      missed ||= !this.#slots.has(ref.id);
      const slot = this.#slotOf(ref);
      // Pinned: neither evicted nor its buffer reused until the bytes are copied out.
      slot.pins += 1;
      slots.push(slot);
    }
    try {
      this.#readAhead(file, { offset, end, last, refOf, reading, missed });
      const what = `the read of ${path}`;
      const needOf = (i: number): number => Math.min(end - (first + i) * blockSize, blockSize);
      await Promise.all(
        slots.map((slot, i) =>
          raceAbort(slot.until(needOf(i)), signal, (aborted) => cacheAborted(aborted, what)),
        ),
      );
      const pieces: { buffer: Buffer; from: number; to: number }[] = [];
      let total = 0;
      for (let i = 0; i < slots.length; i += 1) {
        const slot = slots[i] as Slot;
        // Not whole yet: at least the bytes wanted have arrived, so the file goes on past them.
        const available = slot.data?.length ?? slot.arrived;
        const blockStart = (first + i) * blockSize;
        const from = Math.max(offset, blockStart) - blockStart;
        const to = Math.min(end - blockStart, available);
        if (to > from) {
          pieces.push({ buffer: slot.buffer, from, to });
          total += to - from;
        }
        // A short block is the end of the file.
        if (slot.data !== undefined && slot.data.length < blockSize) {
          file.sizeBytes ??= blockStart + slot.data.length;
          break;
        }
      }
      this.#counters.readBytes += total;
      const only = pieces.length === 1 ? slots.find((slot) => slot.buffer === pieces[0]?.buffer) : undefined;
      if (lend && only !== undefined) {
        lentFrom = only;
        only.lent += 1;
        const { buffer, from, to } = pieces[0] as { buffer: Buffer; from: number; to: number };
        return { data: buffer.subarray(from, to), release: this.#releaseOnce(only) };
      }
      const into = options.into;
      if (into !== undefined && into.length < total) {
        throw new RangeError(`Cannot read ${total} bytes into a ${into.length}-byte buffer`);
      }
      // Copied out, as block buffers are reused once evicted.
      const result =
        into === undefined ? Buffer.allocUnsafe(total) : Buffer.from(into.buffer, into.byteOffset, total);
      let at = 0;
      for (const piece of pieces) at += piece.buffer.copy(result, at, piece.from, piece.to);
      return { data: result, release: noop };
    } finally {
      for (const slot of slots) if (slot !== lentFrom) slot.pins -= 1;
      this.#trim(this.#maxBufferBytes, true);
    }
  }

  /** Unpins `slot` the first time it is called: the end of a loan of its bytes. */
  #releaseOnce(slot: Slot): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      slot.pins -= 1;
      slot.lent -= 1;
      this.#trim(this.#maxBufferBytes, true);
    };
  }

  async stat(path: string, options: { signal?: AbortSignal } = {}): Promise<UfsEntry> {
    const normal = normaliseDatasetPath(path);
    const resolved = this.#mounts.resolve(normal);
    if (resolved !== undefined) {
      try {
        const entry = await resolved.mount.ufs.stat(resolved.relative, options);
        this.#remember(resolved.mount, entry);
        return MountTable.toDataset(entry, resolved.mount);
      } catch (error) {
        const virtual = this.#mounts.virtualChildren(normal).length > 0;
        if (!(virtual && error instanceof UfsError && error.code === 'ERR_UFS_NOT_FOUND'))
          throw mapUfsError(error);
      }
    } else if (this.#mounts.virtualChildren(normal).length === 0) {
      throw new CacheError('ERR_CACHE_NOT_FOUND', `Cannot find "/${normal}" in dataset ${this.#datasetId}`);
    }
    return { path: normal, type: 'directory', sizeBytes: 0, mtimeMs: 0, version: '' };
  }

  async *list(
    path: string,
    options: { recursive?: boolean; signal?: AbortSignal } = {},
  ): AsyncIterable<UfsEntry> {
    const normal = normaliseDatasetPath(path);
    const resolved = this.#mounts.resolve(normal);
    const yieldedDirs = new Set<string>();
    if (resolved !== undefined) {
      try {
        for await (const entry of resolved.mount.ufs.list(resolved.relative, options)) {
          this.#remember(resolved.mount, entry);
          const mapped = MountTable.toDataset(entry, resolved.mount);
          if (mapped.type === 'directory') yieldedDirs.add(mapped.path);
          yield mapped;
        }
      } catch (error) {
        const virtual = this.#mounts.virtualChildren(normal).length > 0;
        if (!(virtual && error instanceof UfsError && error.code === 'ERR_UFS_NOT_FOUND'))
          throw mapUfsError(error);
      }
    }
    const prefix = normal === '' ? '' : `${normal}/`;
    for (const name of this.#mounts.virtualChildren(normal)) {
      const child = `${prefix}${name}`;
      if (yieldedDirs.has(child)) continue;
      yieldedDirs.add(child);
      yield { path: child, type: 'directory', sizeBytes: 0, mtimeMs: 0, version: '' };
    }
    if (options.recursive === true) {
      for (const below of this.#mounts.mountsBelow(normal)) {
        // Intermediate virtual directories between `path` and the mount.
        const segments = below.prefix.split('/');
        for (let depth = 1; depth <= segments.length; depth += 1) {
          const dir = segments.slice(0, depth).join('/');
          if (dir.length <= normal.length || yieldedDirs.has(dir)) continue;
          yieldedDirs.add(dir);
          yield { path: dir, type: 'directory', sizeBytes: 0, mtimeMs: 0, version: '' };
        }
        for await (const entry of below.mount.ufs.list('', { ...options, recursive: true })) {
          this.#remember(below.mount, entry);
          yield MountTable.toDataset(entry, below.mount);
        }
      }
    }
  }

  async load(path: string, options: LoadOptions = {}): Promise<LoadResult> {
    const replicas = options.replicas ?? 1;
    if (!Number.isSafeInteger(replicas) || replicas < 1)
      throw new RangeError(`Cannot load ${replicas} replicas`);
    const signal = options.signal;
    const limit = new Semaphore(options.concurrency ?? 8);
    const top =
      options.entry?.type === 'file'
        ? options.entry
        : await this.stat(path, signal === undefined ? {} : { signal });
    const result: LoadResult = { files: 0, blocks: 0, bytes: 0 };
    const tasks: Promise<void>[] = [];
    let failure: unknown;
    const loadFile = async (entry: UfsEntry): Promise<void> => {
      const resolved = this.#resolve(entry.path);
      const blockCount = Math.ceil(entry.sizeBytes / this.#blockSizeBytes);
      result.files += 1;
      result.bytes += entry.sizeBytes;
      for (let index = 0; index < blockCount; index += 1) {
        const key: BlockKey = {
          mount: resolved.mount.id,
          path: resolved.relative,
          version: entry.version,
          index,
        };
        const release = await limit.acquire(signal);
        if (failure !== undefined) {
          release();
          return;
        }
        const task = this.#loadBlock({ id: blockIdOf(key), key, mount: resolved.mount }, replicas, signal)
          .then(() => {
            result.blocks += 1;
          })
          .catch((error: unknown) => {
            failure ??= error;
          })
          .finally(release);
        tasks.push(task);
      }
    };
    try {
      if (top.type === 'file') {
        await loadFile(top);
      } else {
        for await (const entry of this.list(path, {
          recursive: true,
          ...(signal === undefined ? {} : { signal }),
        })) {
          if (failure !== undefined) break;
          if (entry.type === 'file') await loadFile(entry);
        }
      }
    } finally {
      await Promise.allSettled(tasks);
    }
    if (failure !== undefined) throw failure instanceof Error ? failure : toError(failure);
    return result;
  }

  prune(
    paths: readonly string[],
    current: ReadonlyMap<string, string>,
    options: { signal?: AbortSignal } = {},
  ): Promise<PruneResult> {
    return pruneStaleBlocks(
      {
        workers: this.#membership.workers(),
        mounts: this.#mounts,
        dispatcher: (worker) => this.#transport.pool(worker),
        headers: this.#transport.headers(),
        logger: this.#logger,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
      paths,
      current,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    const transport = this.#transport.close();
    this.#slots.clear();
    this.#bufferedBytes = 0;
    if (this.#directProbeFd !== undefined) closeSync(this.#directProbeFd);
    this.#directProbeFd = undefined;
    await transport;
  }

  // ---- blocks ----

  /** The slot of a block: buffered, in flight, or a fetch started now, shared by every reader. */
  #slotOf(ref: BlockRef): Slot {
    let slot = this.#slots.get(ref.id);
    if (slot !== undefined) {
      // Most recently used: to the end of the Map's order.
      this.#slots.delete(ref.id);
      this.#slots.set(ref.id, slot);
    } else {
      slot = this.#startFetch(ref);
    }
    slot.used = true;
    return slot;
  }

  #startFetch(ref: BlockRef, readAhead = false): Slot {
    const slot = new Slot(this.#buffers.acquire(), this.#blockSizeBytes);
    slot.promise = this.#fetchBlock(ref, slot);
    this.#slots.set(ref.id, slot);
    this.#bufferedBytes += slot.chargedBytes;
    slot.promise.then(
      (buffer) => {
        const held = this.#shrink(slot, buffer);
        slot.settle(held);
        if (this.#slots.get(ref.id) === slot) {
          const charged = chargeOf(slot.buffer);
          this.#bufferedBytes += charged - slot.chargedBytes;
          slot.chargedBytes = charged;
          this.#trim(this.#maxBufferBytes, true);
        }
      },
      (error: unknown) => {
        slot.fail(toError(error));
        if (this.#slots.get(ref.id) === slot) {
          this.#slots.delete(ref.id);
          this.#bufferedBytes -= slot.chargedBytes;
        }
        // A reader may still be copying bytes that arrived before the failure: then the collector
        // takes the buffer, not the pool.
        if (slot.pins === 0) this.#buffers.release(slot.buffer);
      },
    );
    this.#trim(this.#maxBufferBytes, readAhead);
    return slot;
  }

  /**
   * A short block (the last of a file, or a small file) moves into a buffer of its own size and its
   * pooled block buffer goes back to the pool: kept, 10,000 one-byte files would hold 40 GB. Safe
   * while readers are pinned: a reader takes `slot.buffer` only once its wait is over, which is after
   * this swap, and no fetch writes into the slot any more.
   */
  #shrink(slot: Slot, data: Buffer): Buffer {
    if (data.length > this.#blockSizeBytes / 2 || data.buffer !== slot.buffer.buffer) return data;
    // Its own memory: a small allocUnsafe is a slice of a shared 64 KiB slab, which one kept block
    // would hold whole (small files held 3 times their size: 49 KB each for 16 KiB).
    const exact = Buffer.allocUnsafeSlow(data.length);
    data.copy(exact);
    // A loan taken before the block was whole may still be written out of the old buffer.
    if (slot.lent === 0) this.#buffers.release(slot.buffer);
    slot.buffer = exact;
    return exact;
  }

  /**
   * Drops arrived blocks until the buffer holds at most `targetBytes`: least recently used blocks a
   * reader has had first, then, unless `keepUnused`, read-ahead blocks no reader has asked for yet.
   */
  #trim(targetBytes = this.#maxBufferBytes, keepUnused = false, keep?: ReadonlySet<string>): void {
    for (const usedOnly of keepUnused ? [true] : [true, false]) {
      for (const [id, slot] of this.#slots) {
        if (this.#bufferedBytes <= targetBytes) return;
        if (!slot.settled || slot.pins > 0 || (usedOnly && !slot.used) || keep?.has(id) === true) continue;
        this.#slots.delete(id);
        this.#bufferedBytes -= slot.chargedBytes;
        this.#buffers.release(slot.buffer);
      }
    }
  }

  /**
   * A random read inside one block whose file a local worker holds (learned earlier): only the
   * pieces that hold the bytes are read from the block file and checked, and nothing is buffered, so
   * random point reads (a database) cost a piece each instead of the whole block. Undefined when the
   * read is not random, the block is buffered or unknown, or its file is gone or fails its check:
   * the caller then reads through the block's slot.
   */
  async #readPieces(
    file: FileState,
    ref: BlockRef,
    offset: number,
    end: number,
    into: Uint8Array | undefined,
  ): Promise<Buffer | undefined> {
    const location = this.#locations.get(ref.id);
    if (location === undefined || this.#slots.has(ref.id)) return undefined;
    const blockSize = this.#blockSizeBytes;
    // A read that starts a file or follows an earlier one is sequential: read-ahead serves it.
    if (offset === 0 || streamAt(file.streams, offset, blockSize) !== undefined) {
      return undefined;
    }
    // Remembered, so that a sequential pass starting here is recognised by its next read.
    file.streams.push({ next: end, window: 0, ahead: -1 });
    if (file.streams.length > MAX_STREAMS_PER_FILE) file.streams.shift();
    const blockStart = ref.key.index * blockSize;
    const to = Math.min(end - blockStart, location.sizeBytes);
    const data = await readCheckedRange(location.filePath, location, offset - blockStart, to).catch(
      () => undefined,
    );
    if (data === undefined) {
      this.#locations.delete(ref.id);
      return undefined;
    }
    if (into !== undefined && into.length < data.length) {
      throw new RangeError(`Cannot read ${data.length} bytes into a ${into.length}-byte buffer`);
    }
    let result = data;
    if (into !== undefined) {
      result = Buffer.from(into.buffer, into.byteOffset, data.length);
      data.copy(result);
    }
    this.#counters.shortCircuitBytes += data.length;
    this.#counters.readBytes += data.length;
    return result;
  }

  #rememberLocation(id: string, location: BlockLocationAnswer): void {
    this.#locations.delete(id);
    this.#locations.set(id, location);
    if (this.#locations.size > MAX_LOCATIONS_REMEMBERED) {
      const oldest = this.#locations.keys().next().value;
      if (oldest !== undefined) this.#locations.delete(oldest);
    }
  }

  #readAhead(
    file: FileState,
    read: {
      offset: number;
      end: number;
      last: number;
      refOf: (index: number) => BlockRef;
      reading: ReadonlySet<string>;
      /** A block of this read was neither buffered nor on its way. */
      missed: boolean;
    },
  ): void {
    if (this.#readAheadBlocks === 0) return;
    const blockSize = this.#blockSizeBytes;
    let stream = streamAt(file.streams, read.offset, blockSize);
    if (stream === undefined) {
      // A read from the start of a file is most likely the first of a sequential pass.
      stream = { next: read.end, window: read.offset === 0 ? 1 : 0, ahead: -1 };
      file.streams.push(stream);
      if (file.streams.length > MAX_STREAMS_PER_FILE) file.streams.shift();
    } else {
      stream.window = Math.min(Math.max(1, stream.window * 2), this.#readAheadBlocks);
      stream.next = Math.max(stream.next, read.end);
      // What was read ahead is gone (evicted, or its fetch failed): fetch the window again.
      if (read.missed) stream.ahead = Math.min(stream.ahead, read.last);
    }
    const lastBlock = file.sizeBytes === undefined ? Infinity : Math.ceil(file.sizeBytes / blockSize) - 1;
    // Blocks up to `ahead` were started by earlier reads of this stream (a block id is a hash).
    const from = Math.max(read.last + 1, stream.ahead + 1);
    for (let index = from; index <= Math.min(read.last + stream.window, lastBlock); index += 1) {
      const ref = read.refOf(index);
      if (this.#slots.has(ref.id)) {
        stream.ahead = index;
        continue;
      }
      // Reading ahead never pushes the buffer past its budget (a later read tries again).
      if (this.#bufferedBytes + blockSize > this.#maxBufferBytes) {
        // The blocks of the current read stay: a reader of small pieces comes back for them.
        this.#trim(this.#maxBufferBytes - blockSize, true, read.reading);
        if (this.#bufferedBytes + blockSize > this.#maxBufferBytes) return;
      }
      stream.ahead = index;
      this.#counters.readAheadBlocks += 1;
      this.#startFetch(ref, true).promise.catch((error: unknown) => {
        this.#logger.debug({ err: toError(error) }, 'read-ahead failed');
      });
    }
  }

  /** From the block's owners in rank order, then from the origin, into the slot's buffer. */
  async #fetchBlock(ref: BlockRef, slot: Slot): Promise<Buffer> {
    for (const owner of this.#liveOwners(ref.id).slice(0, OWNER_ATTEMPTS)) {
      try {
        return await this.#attempt(slot, (buffer, progress) =>
          this.#fetchFromWorker(owner, ref, buffer, progress),
        );
      } catch (error) {
        if (error instanceof NotServed) break;
        if (!(error instanceof WorkerFailure)) throw error;
        this.#markDown(owner, error);
      }
    }
    return await this.#attempt(slot, (buffer, progress) => this.#fetchFromOrigin(ref, buffer, progress));
  }

  /**
   * One attempt at a block. The first writes straight into the slot's buffer. A retry after bytes
   * were already handed to readers writes into a scratch buffer instead and only appends to the
   * slot what lies past them: bytes readers may be copying are never overwritten, not even by a
   * block file that then fails its check.
   */
  async #attempt(
    slot: Slot,
    fetch: (buffer: Buffer, progress: Progress) => Promise<Buffer>,
  ): Promise<Buffer> {
    if (slot.arrived === 0)
      return fetch(slot.buffer, (arrived) => {
        slot.progress(arrived);
      });
    const scratch = this.#buffers.acquire();
    const append = (arrived: number): void => {
      if (arrived <= slot.arrived) return;
      scratch.copy(slot.buffer, slot.arrived, slot.arrived, arrived);
      slot.progress(arrived);
    };
    try {
      const data = await fetch(scratch, append);
      append(data.length);
      return slot.buffer.subarray(0, data.length);
    } finally {
      this.#buffers.release(scratch);
    }
  }

  /** Owners by rendezvous rank, skipping workers that failed recently (all of them if all did). */
  #liveOwners(blockId: string): WorkerEndpoint[] {
    const ranked = rankByRendezvous(blockId, this.#membership.workers());
    const now = Date.now();
    return ranked.filter((worker) => (this.#downUntil.get(worker.id) ?? 0) <= now);
  }

  #markDown(worker: WorkerEndpoint, error: Error): void {
    this.#counters.workerFailures += 1;
    this.#downUntil.set(worker.id, Date.now() + this.#workerRetryMs);
    this.#logger.warn(
      { worker: worker.id, url: worker.url, err: error },
      'cache worker failed; using the next owner',
    );
  }

  async #fetchFromWorker(
    worker: WorkerEndpoint,
    ref: BlockRef,
    buffer: Buffer,
    progress: Progress,
  ): Promise<Buffer> {
    const local = this.#shortCircuit && worker.nodeName === this.#nodeName;
    if (local) {
      const answer = await this.#request(worker, ref, { locate: '1' }, buffer, progress);
      if (!('filePath' in answer)) return answer.data;
      this.#alignBuffersFor(answer);
      let counted = 0;
      // Counted piece by piece: a reader may have its bytes (and return) before the block is read.
      const data = await readLocalBlock(answer, buffer, (verified) => {
        this.#counters.shortCircuitBytes += verified - counted;
        counted = verified;
        progress(verified);
      });
      if (data !== undefined) {
        this.#counters.shortCircuitBytes += data.length - counted;
        this.#rememberLocation(ref.id, answer);
        return data;
      }
      this.#locations.delete(ref.id);
      // Evicted or damaged since the worker answered: the worker checks its copy and refetches.
      this.#counters.shortCircuitFallbacks += 1;
    }
    const answer = await this.#request(worker, ref, {}, buffer, progress);
    if ('filePath' in answer) throw new WorkerFailure('The worker sent a location for a data request');
    return answer.data;
  }

  /**
   * On the first block file of a disk tier (SSD, HDD) seen, makes the block buffers aligned for
   * direct I/O, so that its O_DIRECT reads land in them without a bounce buffer and a copy. The
   * probe needs a file opened with O_DIRECT: this one is kept open until the client closes (if the
   * worker evicts it meanwhile, its blocks' space is held until then).
   */
  #alignBuffersFor(location: BlockLocationAnswer): void {
    if (this.#directProbeFd !== undefined || location.medium === 'MEM') return;
    if (location.sizeBytes < DIRECT_IO_MIN_BYTES) return;
    try {
      this.#directProbeFd = openSync(location.filePath, constants.O_RDONLY | constants.O_DIRECT);
    } catch {
      // No direct I/O there (or the file is gone): the next block file is tried.
      return;
    }
    this.#buffers.useDirectIo(directIoProbeOf(this.#directProbeFd));
  }

  /** A block GET through the transport, its bytes counted as they arrive. */
  async #request(
    worker: WorkerEndpoint,
    ref: BlockRef,
    extra: Record<string, string>,
    buffer: Buffer,
    progress: Progress,
  ): Promise<{ data: Buffer } | BlockLocationAnswer> {
    let counted = 0;
    // Counted as they arrive: a reader may have its bytes (and return) before the body ends.
    return this.#transport.block(worker, ref.key, extra, buffer, (arrived) => {
      this.#counters.workerBytes += arrived - counted;
      counted = arrived;
      progress(arrived);
    });
  }

  async #fetchFromOrigin(ref: BlockRef, buffer: Buffer, progress: Progress): Promise<Buffer> {
    const release = await this.#originLimit.acquire();
    try {
      let length = 0;
      const stream = await ref.mount.ufs.read(
        ref.key.path,
        { offset: ref.key.index * this.#blockSizeBytes, length: this.#blockSizeBytes },
        { version: ref.key.version },
      );
      for await (const chunk of stream) {
        if (length + chunk.byteLength > buffer.length) {
          throw new CacheError('ERR_CACHE_PROTOCOL', `The origin sent more than a block of ${ref.key.path}`);
        }
        buffer.set(chunk, length);
        length += chunk.byteLength;
        this.#counters.originBytes += chunk.byteLength;
        progress(length);
      }
      return buffer.subarray(0, length);
    } catch (error) {
      throw mapUfsError(error);
    } finally {
      release();
    }
  }

  async #loadBlock(ref: BlockRef, replicas: number, signal: AbortSignal | undefined): Promise<void> {
    let placed = 0;
    for (const owner of this.#liveOwners(ref.id)) {
      if (placed === replicas) return;
      throwIfAborted(signal, 'the load');
      try {
        const outcome = await this.#transport.load(owner, ref.key, signal);
        if (outcome === 'placed') {
          placed += 1;
          continue;
        }
        if (outcome === 'past-end') return;
        this.#markDown(owner, outcome.failed);
      } catch (error) {
        if (error instanceof CacheError) throw error;
        if (signal?.aborted === true) throw cacheAborted(signal, 'the load');
        this.#markDown(owner, toError(error));
      }
    }
    if (placed === 0) {
      throw new CacheError(
        'ERR_CACHE_UNAVAILABLE',
        `Cannot load block ${ref.key.index} of ${ref.key.path}: no worker took it`,
      );
    }
  }

  #forgetGoneWorkers(workers: readonly WorkerEndpoint[]): void {
    this.#transport.forgetGone(workers);
    const ids = new Set(workers.map((worker) => worker.id));
    for (const id of this.#downUntil.keys()) if (!ids.has(id)) this.#downUntil.delete(id);
  }

  // ---- files ----

  #resolve(path: string): { mount: ClientMount; relative: string } {
    const resolved = this.#mounts.resolve(path);
    if (resolved === undefined) {
      throw new CacheError('ERR_CACHE_NOT_FOUND', `Cannot find "${path}" in dataset ${this.#datasetId}`);
    }
    return resolved;
  }

  #fileState(mount: ClientMount, relative: string, version: string): FileState {
    const id = fileVersionIdOf({ mount: mount.id, path: relative, version });
    let file = this.#files.get(id);
    if (file === undefined) {
      file = { sizeBytes: undefined, streams: [] };
      this.#files.set(id, file);
      if (this.#files.size > MAX_FILES_REMEMBERED) {
        const oldest = this.#files.keys().next().value;
        if (oldest !== undefined) this.#files.delete(oldest);
      }
    }
    return file;
  }

  /** Keeps the size of a file version seen in a stat or listing: reads then stop at its end. */
  #remember(mount: ClientMount, entry: UfsEntry): void {
    if (entry.type !== 'file') return;
    this.#fileState(mount, entry.path, entry.version).sizeBytes = entry.sizeBytes;
  }
}

/**
 * The bytes of a worker's block file in `buffer`, or undefined when it is gone, short or damaged.
 * Pieces are handed on as they pass their check (`progress`), so the first bytes of a warm block do
 * not wait for the rest of it.
 */
async function readLocalBlock(
  location: BlockLocationAnswer,
  buffer: Buffer,
  progress: Progress,
): Promise<Buffer | undefined> {
  if (location.sizeBytes > buffer.length) return undefined;
  try {
    return await readCheckedBlock(location.filePath, location, {
      into: buffer,
      memory: location.medium === 'MEM',
      onVerified: progress,
    });
  } catch {
    return undefined;
  }
}

function noop(): void {
  // Nothing was lent.
}

function mapUfsError(error: unknown): Error {
  if (!(error instanceof UfsError)) return toError(error);
  switch (error.code) {
    case 'ERR_UFS_NOT_FOUND':
    case 'ERR_UFS_NOT_A_DIRECTORY':
    case 'ERR_UFS_IS_A_DIRECTORY':
      return new CacheError('ERR_CACHE_NOT_FOUND', error.message, { cause: error });
    case 'ERR_UFS_VERSION_CHANGED':
      return new CacheError('ERR_CACHE_VERSION_CHANGED', error.message, { cause: error });
    default:
      return error;
  }
}
