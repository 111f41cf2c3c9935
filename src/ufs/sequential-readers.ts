import { raceAbort } from '../lib/index.ts';
import { UfsError } from './errors.ts';

/** A whole-file response body that a connector opened and hands to the cache. */
export interface SequentialSource {
  /** Cache key: the file's URL. */
  key: string;
  /** Version of the file the body carries. */
  version: string;
  body: AsyncIterable<Uint8Array>;
  /** Drops the connection; the body may be half read. */
  destroy: () => void;
}

/**
 * A response body read front to back, with the position of its next byte. `take` and `skip` pull
 * from the body's iterator, keeping the unused tail of a chunk for the next caller.
 */
export class SequentialReader {
  readonly key: string;
  readonly version: string;
  /** Bytes of the file consumed so far: the offset of the next byte this reader gives. */
  position = 0;
  /** Where the current holder's read will leave `position`; equals it when idle. */
  reservedEnd = 0;
  busy = false;
  lastUsedMs = Date.now();
  idleTimer: NodeJS.Timeout | undefined;
  readonly #iterator: AsyncIterator<Uint8Array>;
  readonly #destroy: () => void;
  #leftover: Uint8Array | undefined;
  #ended = false;
  #destroyed = false;

  constructor(source: SequentialSource) {
    this.key = source.key;
    this.version = source.version;
    this.#iterator = source.body[Symbol.asyncIterator]();
    this.#destroy = source.destroy;
  }

  get usable(): boolean {
    return !this.#ended && !this.#destroyed;
  }

  /** Discards `count` bytes (fewer at end of file). */
  async skip(count: number, signal: AbortSignal | undefined): Promise<void> {
    let remaining = count;
    while (remaining > 0) {
      const chunk = await this.#next(remaining, signal);
      if (chunk === undefined) return;
      remaining -= chunk.length;
    }
  }

  /** Gives the next `count` bytes (fewer at end of file). */
  async *take(count: number, signal: AbortSignal | undefined): AsyncIterable<Uint8Array> {
    let remaining = count;
    while (remaining > 0) {
      const chunk = await this.#next(remaining, signal);
      if (chunk === undefined) return;
      remaining -= chunk.length;
      yield chunk;
    }
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    clearTimeout(this.idleTimer);
    this.#destroy();
  }

  async #next(max: number, signal: AbortSignal | undefined): Promise<Uint8Array | undefined> {
    let chunk = this.#leftover;
    this.#leftover = undefined;
    if (chunk === undefined) {
      if (this.#ended) return undefined;
      if (signal?.aborted === true) throw signal.reason;
      // The body itself is aborted by the signal its request was made with; this only makes a
      // waiting `next()` give up at once when the caller of this read aborts.
      const result = await raceAbort(this.#iterator.next(), signal, (aborted) => {
        this.destroy();
        return aborted.reason;
      });
      if (result.done === true) {
        this.#ended = true;
        return undefined;
      }
      chunk = result.value;
    }
    if (chunk.length > max) {
      this.#leftover = chunk.subarray(max);
      chunk = chunk.subarray(0, max);
    }
    this.position += chunk.length;
    return chunk;
  }
}

interface Waiter {
  offset: number;
  end: number;
  resolve: (reader: SequentialReader | undefined) => void;
}

export interface SequentialReaderCacheOptions {
  /** Open bodies kept at most (idle ones are closed first, least recently used first). Default 16. */
  maxReaders?: number;
  /** An idle body is closed after this long. Default 30 s. */
  idleTimeoutMs?: number;
}

/**
 * Serves ranged reads from an origin that ignores `Range` (answers 200 with the whole file) without
 * downloading the file again for every block.
 *
 * Each whole-file body becomes a SequentialReader kept here between reads. A read of
 * `[offset, offset+length)` takes the reader of that file whose next byte is at or before `offset`
 * (the furthest one), skips forward and takes its bytes; the reader then waits, idle, for the read
 * of the next block. A reader that is busy but will end at or before `offset` is waited for (bounded
 * by `waitMs`), so that parallel block reads of one file line up on one download instead of each
 * starting its own; on release the waiter with the lowest offset goes next. Only a read behind every
 * reader (a re-read of an earlier block) opens a new download. Memory: one paused response per
 * reader; the kernel's socket buffers hold the unread data.
 */
export class SequentialReaderCache {
  readonly #maxReaders: number;
  readonly #idleTimeoutMs: number;
  readonly #readers = new Map<string, Set<SequentialReader>>();
  readonly #waiters = new Map<SequentialReader, Waiter[]>();

  constructor(options: SequentialReaderCacheOptions = {}) {
    this.#maxReaders = options.maxReaders ?? 16;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  }

  /** True when some body of `key` is open, busy or idle. */
  has(key: string): boolean {
    return (this.#readers.get(key)?.size ?? 0) > 0;
  }

  /**
   * A reader of `key` (and `version`, when given) positioned at or before `offset`, reserved for
   * the caller until `release`; undefined when none is or becomes free within `waitMs`.
   */
  async acquire(request: {
    key: string;
    version: string | undefined;
    offset: number;
    length: number;
    waitMs: number;
    signal: AbortSignal | undefined;
  }): Promise<SequentialReader | undefined> {
    let best: SequentialReader | undefined;
    for (const reader of this.#readers.get(request.key) ?? []) {
      if (!reader.usable || (request.version !== undefined && reader.version !== request.version)) continue;
      if (
        reader.reservedEnd <= request.offset &&
        (best === undefined || reader.reservedEnd > best.reservedEnd)
      ) {
        best = reader;
      }
    }
    if (best === undefined) return undefined;
    if (!best.busy) {
      this.#reserve(best, request.offset + request.length);
      return best;
    }
    const reader = best;
    return new Promise<SequentialReader | undefined>((resolve, reject) => {
      const waiter: Waiter = {
        offset: request.offset,
        end: request.offset + request.length,
        resolve: (value) => {
          clearTimeout(timer);
          request.signal?.removeEventListener('abort', onAbort);
          resolve(value);
        },
      };
      const remove = (): void => {
        const list = this.#waiters.get(reader);
        const index = list?.indexOf(waiter) ?? -1;
        if (list !== undefined && index >= 0) list.splice(index, 1);
      };
      const timer = setTimeout(() => {
        remove();
        waiter.resolve(undefined);
      }, request.waitMs);
      const onAbort = (): void => {
        remove();
        clearTimeout(timer);
        reject(
          new UfsError('ERR_UFS_ABORTED', 'Cannot finish a read as it was aborted', {
            cause: request.signal?.reason,
          }),
        );
      };
      request.signal?.addEventListener('abort', onAbort, { once: true });
      const list = this.#waiters.get(reader) ?? [];
      list.push(waiter);
      this.#waiters.set(reader, list);
    });
  }

  /** Registers a body the caller just opened, reserved for the caller's read that ends at `end`. */
  add(source: SequentialSource, end: number): SequentialReader {
    const reader = new SequentialReader(source);
    this.#reserve(reader, end);
    const set = this.#readers.get(reader.key) ?? new Set();
    set.add(reader);
    this.#readers.set(reader.key, set);
    this.#evict();
    return reader;
  }

  /** Hands the reader to the next waiter, or keeps it idle; a spent or broken one is closed. */
  release(reader: SequentialReader): void {
    reader.busy = false;
    reader.reservedEnd = reader.position;
    reader.lastUsedMs = Date.now();
    const waiters = this.#waiters.get(reader) ?? [];
    if (!reader.usable) {
      this.#remove(reader);
      for (const waiter of waiters) waiter.resolve(undefined);
      return;
    }
    let next: Waiter | undefined;
    for (const waiter of waiters) {
      if (waiter.offset >= reader.position && (next === undefined || waiter.offset < next.offset))
        next = waiter;
    }
    // Waiters behind the position can never be served by this reader any more.
    const stale = waiters.filter((waiter) => waiter !== next && waiter.offset < reader.position);
    const rest = waiters.filter((waiter) => waiter !== next && waiter.offset >= reader.position);
    if (rest.length > 0) this.#waiters.set(reader, rest);
    else this.#waiters.delete(reader);
    for (const waiter of stale) waiter.resolve(undefined);
    if (next !== undefined) {
      this.#reserve(reader, next.end);
      next.resolve(reader);
      return;
    }
    reader.idleTimer = setTimeout(() => {
      this.#remove(reader);
    }, this.#idleTimeoutMs);
    reader.idleTimer.unref();
  }

  /** Closes every body; busy readers fail their holders. */
  closeAll(): void {
    for (const set of this.#readers.values()) for (const reader of set) reader.destroy();
    for (const list of this.#waiters.values()) for (const waiter of list) waiter.resolve(undefined);
    this.#readers.clear();
    this.#waiters.clear();
  }

  #reserve(reader: SequentialReader, end: number): void {
    clearTimeout(reader.idleTimer);
    reader.busy = true;
    reader.reservedEnd = end;
    reader.lastUsedMs = Date.now();
  }

  #remove(reader: SequentialReader): void {
    reader.destroy();
    const set = this.#readers.get(reader.key);
    set?.delete(reader);
    if (set?.size === 0) this.#readers.delete(reader.key);
  }

  #evict(): void {
    const all = [...this.#readers.values()].flatMap((set) => [...set]);
    let excess = all.length - this.#maxReaders;
    if (excess <= 0) return;
    const idle = all.filter((reader) => !reader.busy).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
    for (const reader of idle) {
      if (excess-- <= 0) break;
      for (const waiter of this.#waiters.get(reader) ?? []) waiter.resolve(undefined);
      this.#waiters.delete(reader);
      this.#remove(reader);
    }
  }
}
