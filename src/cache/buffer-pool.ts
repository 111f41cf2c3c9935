import { readSync, writeSync } from 'node:fs';
import { allocatePageStarted } from '../lib/index.ts';

/**
 * Direct I/O (O_DIRECT) needs the memory, the file offset and the length aligned: 4 KiB covers
 * devices with 512-byte and with 4 KiB logical blocks.
 */
export const DIRECT_IO_ALIGN_BYTES = 4096;

/** malloc's alignment on 64-bit: the step between candidate starts of an aligned view. */
const MALLOC_ALIGN_BYTES = 16;

/** Where the aligned views of each aligned allocation start (its byte offset), by ArrayBuffer. */
const alignedStarts = new WeakMap<ArrayBufferLike, number>();

/**
 * Tries one 4 KiB direct transfer from or into `view` (a read or write on a descriptor opened with
 * O_DIRECT): true when the kernel took it, false when it refused the memory's alignment (EINVAL).
 * @throws {Error} for any other failure, which ends the search for an aligned view
 */
export type DirectIoProbe = (view: Buffer) => boolean;

/**
 * A buffer of `sizeBytes` whose memory direct I/O accepts, or undefined when no start is accepted.
 * JavaScript cannot see addresses, and Node's buffers start 16 bytes past malloc's page: 4 KiB
 * more is allocated and `probe` tried at each 16-byte step until the kernel takes one (misaligned
 * memory fails with EINVAL before any I/O, so only the accepted probe costs a transfer). The view
 * is aligned to what the probed file system requires, which is what the kernel checks.
 */
export function allocateAligned(sizeBytes: number, probe: DirectIoProbe): Buffer | undefined {
  if (sizeBytes < DIRECT_IO_ALIGN_BYTES) return undefined;
  return alignedViewOf(Buffer.allocUnsafeSlow(sizeBytes + DIRECT_IO_ALIGN_BYTES), sizeBytes, probe);
}

/** An aligned view of `sizeBytes` inside `whole` (at least 4 KiB longer), as allocateAligned finds it. */
function alignedViewOf(whole: Buffer, sizeBytes: number, probe: DirectIoProbe): Buffer | undefined {
  if (sizeBytes < DIRECT_IO_ALIGN_BYTES || whole.length < sizeBytes + DIRECT_IO_ALIGN_BYTES) return undefined;
  try {
    for (let start = 0; start < DIRECT_IO_ALIGN_BYTES; start += MALLOC_ALIGN_BYTES) {
      if (probe(whole.subarray(start, start + DIRECT_IO_ALIGN_BYTES))) {
        alignedStarts.set(whole.buffer, start);
        return whole.subarray(start, start + sizeBytes);
      }
    }
  } catch {
    // A failure other than the alignment's (EIO, a closed descriptor): no aligned buffer.
  }
  return undefined;
}

/** True when `view` starts where direct I/O accepts it: 4 KiB steps into a buffer of allocateAligned. */
export function isDirectIoAligned(view: Uint8Array): boolean {
  const start = alignedStarts.get(view.buffer);
  return start !== undefined && (view.byteOffset - start) % DIRECT_IO_ALIGN_BYTES === 0;
}

/**
 * The probe of a descriptor opened with O_DIRECT: a 4 KiB read at offset 0 (the file must hold that
 * much written data: reads of holes and past the end are not checked), or with `write`, a 4 KiB
 * write there (for a file about to be overwritten).
 */
export function directIoProbeOf(fd: number, mode: 'read' | 'write' = 'read'): DirectIoProbe {
  return (view) => {
    try {
      if (mode === 'read') readSync(fd, view, 0, DIRECT_IO_ALIGN_BYTES, 0);
      else writeSync(fd, view, 0, DIRECT_IO_ALIGN_BYTES, 0);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EINVAL') return false;
      throw error;
    }
  };
}

/**
 * Reusable block-sized buffers. A fresh multi-megabyte Buffer costs page faults (the kernel zeroes
 * each page on first touch) and pushes V8 towards full garbage collections through its external
 * memory accounting; on the read path that cost more than the copy itself. Buffers come back only
 * when their user is certain nothing still reads them. With `directIo`, buffers are aligned for
 * direct I/O (see allocateAligned), so the probe is paid once per buffer, not per block.
 */
export class BufferPool {
  readonly #sizeBytes: number;
  readonly #maxPooled: number;
  #probe: DirectIoProbe | undefined;
  readonly #free: Buffer[] = [];
  /** The pooled view of each buffer this pool made, by its ArrayBuffer. */
  readonly #owned = new WeakMap<ArrayBufferLike, Buffer>();

  constructor(sizeBytes: number, maxPooled: number, options: { directIo?: DirectIoProbe | undefined } = {}) {
    this.#sizeBytes = sizeBytes;
    this.#maxPooled = maxPooled;
    this.#probe = options.directIo;
  }

  /**
   * Aligns the pool's buffers with `probe` from now on: for a user that learns where its files are
   * only after creating the pool, such as a client that finds a worker's block files when it first
   * reads one. Buffers made before are realigned within their own memory (the free ones now, the
   * others when released): no new allocation.
   */
  useDirectIo(probe: DirectIoProbe): void {
    this.#probe = probe;
    for (let i = 0; i < this.#free.length; i += 1) this.#free[i] = this.#aligned(this.#free[i] as Buffer);
  }

  acquire(): Buffer {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    // Not from Node's shared slab: the whole ArrayBuffer is this buffer, 4 KiB longer than a block
    // (allocatePageStarted adds 4080 bytes before it), so that a pool told to align later
    // (useDirectIo) realigns it in place. Until then it starts at a page, for the copies of
    // buffered and tmpfs reads.
    const buffer =
      (this.#probe === undefined ? undefined : allocateAligned(this.#sizeBytes, this.#probe)) ??
      allocatePageStarted(this.#sizeBytes + MALLOC_ALIGN_BYTES).subarray(0, this.#sizeBytes);
    this.#owned.set(buffer.buffer, buffer);
    return buffer;
  }

  /** Takes back a buffer from `acquire` (or any view of one); others are left to the collector. */
  release(view: Uint8Array): void {
    const whole = this.#owned.get(view.buffer);
    if (whole === undefined || this.#free.length >= this.#maxPooled) return;
    if (this.#free.includes(whole)) return;
    this.#free.push(this.#aligned(whole));
  }

  /** `buffer`, or once the pool aligns, the aligned view of its memory (the same memory: no copy). */
  #aligned(buffer: Buffer): Buffer {
    if (this.#probe === undefined || isDirectIoAligned(buffer)) return buffer;
    const memory = Buffer.from(buffer.buffer, 0, buffer.buffer.byteLength);
    const aligned = alignedViewOf(memory, this.#sizeBytes, this.#probe);
    if (aligned === undefined) return buffer;
    this.#owned.set(aligned.buffer, aligned);
    return aligned;
  }
}
