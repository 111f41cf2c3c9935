// Writing replies and notifications to /dev/fuse: one message per writev(2), small ones synchronously.
import { writev, writevSync } from 'node:fs';
import type { Logger } from '../lib/index.ts';
import { NotifyCode, OUT_HEADER_SIZE, encodeOutHeader } from './protocol.ts';

const SYNC_REPLY_MAX_BYTES = 64 * 1024;

export class ReplyWriter {
  readonly #fd: number;
  readonly #logger: Logger;

  constructor(fd: number, logger: Logger) {
    this.#fd = fd;
    this.#logger = logger;
  }

  /**
   * Writes one reply in one writev(2) (the kernel takes a message per write). A reply to /dev/fuse
   * never waits: the kernel copies it and wakes the caller. Small replies are written at once on the
   * event loop, which spares a threadpool round trip per request; large READ replies, whose copy
   * takes tens of microseconds, go through the threadpool. `written` runs once the kernel has the
   * bytes (or the write failed), for buffers to be reused.
   */
  write(buffers: Buffer[], length: number, what: string, written?: () => void): void {
    const onWritten = (error: NodeJS.ErrnoException | null): void => {
      written?.();
      // ENOENT: the request was interrupted and the kernel no longer waits for it.
      if (error && error.code !== 'ENOENT' && error.code !== 'ENODEV') {
        this.#logger.warn({ err: error, what }, 'writing to /dev/fuse failed');
      }
    };
    if (length > SYNC_REPLY_MAX_BYTES) {
      writev(this.#fd, buffers, onWritten);
      return;
    }
    try {
      writevSync(this.#fd, buffers);
    } catch (error) {
      onWritten(error as NodeJS.ErrnoException);
      return;
    }
    onWritten(null);
  }

  reply(unique: bigint, ...bodies: Buffer[]): void {
    let length = OUT_HEADER_SIZE;
    for (const body of bodies) length += body.length;
    this.write([encodeOutHeader({ length, error: 0, unique }), ...bodies], length, 'reply');
  }

  replyError(unique: bigint, errno: number): void {
    this.write(
      [encodeOutHeader({ length: OUT_HEADER_SIZE, error: -errno, unique })],
      OUT_HEADER_SIZE,
      'error reply',
    );
  }

  /**
   * Writes a READ reply whose bytes are lent by the source (header and bytes in one writev, no
   * copy into a reply buffer), and gives them back once the kernel has copied them.
   */
  replyLent(unique: bigint, bytes: Buffer, release: () => void): void {
    const length = OUT_HEADER_SIZE + bytes.length;
    this.write([encodeOutHeader({ length, error: 0, unique }), bytes], length, 'reply', release);
  }

  /** Sends a notification through the threadpool; a refusal is only logged. */
  notify(code: number, body: Buffer): void {
    writev(
      this.#fd,
      [encodeOutHeader({ length: OUT_HEADER_SIZE + body.length, error: code, unique: 0n }), body],
      (error) => {
        // ENOENT: the kernel has nothing cached for that node or name, which is the goal anyway.
        if (error && error.code !== 'ENOENT' && error.code !== 'ENODEV') {
          this.#logger.debug({ err: error, code }, 'notification refused');
        }
      },
    );
  }

  /** FUSE_NOTIFY_INVAL_INODE written like a reply: done before the caller's next write goes out. */
  notifyInvalInodeNow(body: Buffer): void {
    const length = OUT_HEADER_SIZE + body.length;
    this.write(
      [encodeOutHeader({ length, error: NotifyCode.INVAL_INODE, unique: 0n }), body],
      length,
      'notification',
    );
  }
}
