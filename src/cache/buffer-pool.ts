/**
 * Reusable block-sized buffers. A fresh multi-megabyte Buffer costs page faults (the kernel zeroes
 * each page on first touch) and pushes V8 towards full garbage collections through its external
 * memory accounting; on the read path that cost more than the copy itself. Buffers come back only
 * when their user is certain nothing still reads them.
 */
export class BufferPool {
  readonly #sizeBytes: number;
  readonly #maxPooled: number;
  readonly #free: Buffer[] = [];
  readonly #owned = new WeakSet<ArrayBufferLike>();

  constructor(sizeBytes: number, maxPooled: number) {
    this.#sizeBytes = sizeBytes;
    this.#maxPooled = maxPooled;
  }

  acquire(): Buffer {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    // Not from Node's shared slab (allocUnsafeSlow): the whole ArrayBuffer is this buffer.
    const buffer = Buffer.allocUnsafeSlow(this.#sizeBytes);
    this.#owned.add(buffer.buffer);
    return buffer;
  }

  /** Takes back a buffer from `acquire` (or any view of one); others are left to the collector. */
  release(view: Uint8Array): void {
    if (!this.#owned.has(view.buffer) || this.#free.length >= this.#maxPooled) return;
    const whole = Buffer.from(view.buffer, 0, this.#sizeBytes);
    if (this.#free.some((buffer) => buffer.buffer === whole.buffer)) return;
    this.#free.push(whole);
  }
}
