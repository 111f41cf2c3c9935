// Reading requests from /dev/fuse: on the event loop through epoll, or by blocking reads in the threadpool.
import { read } from 'node:fs';
import { Socket } from 'node:net';
import type { SocketConstructorOpts } from 'node:net';
import type { Logger } from '../lib/index.ts';
import { toError } from '../lib/index.ts';
import { FuseError } from './errors.ts';
import { PAGE_SIZE } from './init.ts';
import { FUSE_MIN_READ_BUFFER, IN_HEADER_SIZE } from './protocol.ts';

/** The epoll reader's buffer: what libuv would allocate per read, max_write (32 KiB) plus headers. */
const EPOLL_READ_BUFFER_BYTES = 64 * 1024;

/** process.binding('pipe_wrap'): the libuv pipe handle net.Socket wraps. */
interface PipeWrapBinding {
  Pipe: new (type: number) => { open(fd: number): number };
  constants: { SOCKET: number };
}

export interface DeviceReaderOptions {
  fd: number;
  deviceIo: 'epoll' | 'threadpool';
  /** Blocking reads outstanding at once in `threadpool` mode. */
  readers: number;
  maxWriteBytes: number;
  logger: Logger;
  /** One request, `length` bytes of `buffer`; the buffer is reused for the next read as soon as this returns. */
  onRequest: (buffer: Buffer, length: number) => void;
  /** Checked before every threadpool read: true ends that reader. */
  isStopping: () => boolean;
  /** Every reader has ended (the device went away or the server stopped). */
  onEnd: () => void;
}

export class DeviceReader {
  readonly #options: DeviceReaderOptions;
  #activeReaders = 0;

  constructor(options: DeviceReaderOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#options.deviceIo === 'epoll') this.#startEpollReader();
    else this.#startThreadpoolReaders();
  }

  #startThreadpoolReaders(): void {
    const bufferBytes = Math.max(FUSE_MIN_READ_BUFFER, this.#options.maxWriteBytes + PAGE_SIZE);
    for (let index = 0; index < this.#options.readers; index += 1)
      this.#readLoop(Buffer.allocUnsafe(bufferBytes));
  }

  /**
   * Reads requests on the event loop: /dev/fuse supports poll(2), so libuv can watch it with epoll
   * like a pipe and read each request as it arrives, with no threadpool round trip. Every read(2)
   * returns exactly one request and the stream hands each chunk on as it came.
   */
  #startEpollReader(): void {
    const { fd, logger, onRequest } = this.#options;
    let binding: PipeWrapBinding;
    try {
      binding = (process as unknown as { binding(name: string): unknown }).binding(
        'pipe_wrap',
      ) as PipeWrapBinding;
    } catch (error) {
      // A Node without the pipe_wrap binding: nothing touched the descriptor yet, so the blocking
      // threadpool reader is a safe fallback.
      logger.warn({ err: toError(error) }, 'no libuv pipe binding; reading /dev/fuse in the threadpool');
      this.#startThreadpoolReaders();
      return;
    }
    const handle = new binding.Pipe(binding.constants.SOCKET);
    const status = handle.open(fd);
    if (status !== 0)
      throw new FuseError('ERR_FUSE_DEVICE', `Cannot watch /dev/fuse with epoll (uv error ${status})`);
    // One buffer for every read (`onread`): by default a stream allocates 64 KiB per read, so per
    // request. A request's body is copied out of it (dispatch), which for a READ is 40 bytes.
    const readBuffer = Buffer.allocUnsafeSlow(EPOLL_READ_BUFFER_BYTES);
    const socket = new Socket({
      handle,
      readable: true,
      writable: false,
      onread: {
        buffer: readBuffer,
        callback: (bytes: number) => {
          if (bytes >= IN_HEADER_SIZE) onRequest(readBuffer, bytes);
          return true;
        },
      },
    } as unknown as SocketConstructorOpts);
    this.#activeReaders += 1;
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENODEV') logger.error({ err: error }, 'reading /dev/fuse failed');
    });
    socket.on('close', () => {
      this.#readerDone();
    });
  }

  #readLoop(buffer: Buffer): void {
    const { fd, logger, onRequest, isStopping } = this.#options;
    this.#activeReaders += 1;
    const next = (): void => {
      if (isStopping()) {
        this.#readerDone();
        return;
      }
      read(fd, buffer, 0, buffer.length, null, (error, bytesRead) => {
        if (error) {
          const code = error.code;
          // ENOENT: the request was interrupted while being read; EINTR/EAGAIN: try again.
          if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') {
            next();
            return;
          }
          if (code !== 'ENODEV') logger.error({ err: error }, 'reading /dev/fuse failed');
          this.#readerDone();
          return;
        }
        if (bytesRead >= IN_HEADER_SIZE) onRequest(buffer, bytesRead);
        next();
      });
    };
    next();
  }

  #readerDone(): void {
    this.#activeReaders -= 1;
    if (this.#activeReaders === 0) this.#options.onEnd();
  }
}
