// The pool of page-aligned buffers READ replies are built in, header room included.
import { allocatePageStarted } from '../lib/index.ts';
import { MAX_PAGES, PAGE_SIZE } from './init.ts';
import { OUT_HEADER_SIZE } from './protocol.ts';

/** READ replies are built in pooled buffers: 1 MiB (max_pages) plus the reply header. */
const READ_BUFFER_BYTES = OUT_HEADER_SIZE + MAX_PAGES * PAGE_SIZE;
/** Idle pooled buffers kept; more are allocated under load and left to the GC afterwards. */
const READ_BUFFER_POOL_SIZE = 32;

export class ReadBufferPool {
  readonly #idle: Buffer[] = [];

  /** A buffer with header room for a READ reply of `size` bytes, from the pool when one fits. */
  take(size: number): Buffer | undefined {
    if (size > READ_BUFFER_BYTES - OUT_HEADER_SIZE) return undefined;
    // The data after the reply header starts a page: sources copy page-cache pages into it.
    return this.#idle.pop() ?? allocatePageStarted(READ_BUFFER_BYTES, OUT_HEADER_SIZE);
  }

  give(buffer: Buffer | undefined): void {
    if (buffer !== undefined && this.#idle.length < READ_BUFFER_POOL_SIZE) this.#idle.push(buffer);
  }
}
