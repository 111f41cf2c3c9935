/** Bytes between a large Node buffer's memory and the page it starts in: glibc's chunk header. */
const MALLOC_CHUNK_HEADER_BYTES = 16;
const PAGE_BYTES = 4096;

/**
 * A buffer of `sizeBytes` whose byte `headBytes` most likely starts a page, for memory that the
 * kernel copies to or from page-aligned pages (reads of tmpfs and the page cache, FUSE replies).
 *
 * Node's large buffers start 16 bytes past a page. A copy from a page into such memory runs into
 * 4K aliasing: each load has the same low 12 address bits as a store issued just before it and
 * waits for it. Reading tmpfs into one ran at 1.9 GB/s on this machine, into any other offset at
 * 6-7.5 GB/s. JavaScript cannot see addresses, so the start is where glibc puts the page; with
 * another allocator it is just another offset, which costs nothing.
 */
export function allocatePageStarted(sizeBytes: number, headBytes = 0): Buffer {
  if (
    !Number.isSafeInteger(headBytes) ||
    headBytes < 0 ||
    headBytes > PAGE_BYTES - MALLOC_CHUNK_HEADER_BYTES
  ) {
    throw new RangeError(`Cannot start a page ${headBytes} bytes into a buffer`);
  }
  const start = PAGE_BYTES - MALLOC_CHUNK_HEADER_BYTES - headBytes;
  return Buffer.allocUnsafeSlow(start + sizeBytes).subarray(start);
}
