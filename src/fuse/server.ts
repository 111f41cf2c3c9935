// The FUSE session: its lifecycle (INIT, resume, stop), the dispatch of requests and invalidation.
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../lib/index.ts';
import { toError } from '../lib/index.ts';
import { DeviceReader } from './device-reader.ts';
import { errnoOf } from './errno.ts';
import { FuseError } from './errors.ts';
import { PAGE_SIZE, negotiateInit } from './init.ts';
import type { NegotiatedInit } from './init.ts';
import { InodeTable } from './inode-table.ts';
import { KernelNodes } from './kernel-nodes.ts';
import { createOperationHandlers } from './operations.ts';
import type { FuseMountOptions } from './options.ts';
import {
  Errno,
  FUSE_MIN_MINOR,
  IN_HEADER_SIZE,
  NotifyCode,
  Opcode,
  decodeInHeader,
  decodeInitIn,
  encodeInitOut,
  encodeNotifyInvalEntry,
  encodeNotifyInvalInode,
  opcodeName,
} from './protocol.ts';
import { ReplyWriter } from './reply-writer.ts';
import { InFlightRequests } from './request.ts';
import type { Handler, Request } from './request.ts';
import { loadInit, requestResend, saveInit } from './resume-state.ts';
import type { FileSource } from './source.ts';

export interface FuseServerOptions {
  /** An open /dev/fuse descriptor, already mounted. */
  fd: number;
  source: FileSource;
  options: FuseMountOptions;
  logger: Logger;
  /** A tmpfs directory for the INIT parameters and the node journal; none = no crash recovery. */
  stateDir?: string;
  /** Restarted after a crash: restore from `stateDir`, expect no INIT, ask the kernel to resend. */
  resume?: boolean;
  /** Reads of /dev/fuse outstanding at once; each holds a libuv threadpool thread. Default 4. */
  readers?: number;
  /** max_write offered in INIT; the read buffers are this plus a page. Default 1 MiB (32 KiB with epoll). */
  maxWriteBytes?: number;
  /**
   * How the device is read. `epoll` (default): on the event loop, through a libuv pipe handle,
   * whose 64 KiB read buffer caps max_write at 32 KiB — enough for a read-only filesystem.
   * `threadpool`: `readers` blocking reads in the libuv threadpool.
   */
  deviceIo?: 'epoll' | 'threadpool';
}

/**
 * A FUSE filesystem server speaking the kernel protocol on an open /dev/fuse descriptor. Requests
 * are served concurrently: `readers` reads of the device are outstanding at any time and every
 * request runs as its own promise, so a slow READ never holds back a LOOKUP or a READ of a cached
 * file. Replies go out through the libuv threadpool (writev), never blocking the event loop.
 */
export class FuseServer {
  readonly #source: FileSource;
  readonly #options: FuseMountOptions;
  readonly #logger: Logger;
  readonly #stateDir: string | undefined;
  readonly #maxWriteBytes: number;
  readonly #table: InodeTable;
  readonly #writer: ReplyWriter;
  readonly #reader: DeviceReader;
  readonly #handlers: Map<number, Handler>;
  readonly #inFlight = new InFlightRequests();
  #nextHandle = 1n;
  #init: NegotiatedInit | undefined;
  #stopping = false;
  #unsubscribe: (() => void) | undefined;
  readonly #ready: PromiseWithResolvers<void> = Promise.withResolvers();
  readonly #closed: PromiseWithResolvers<void> = Promise.withResolvers();

  constructor(options: FuseServerOptions) {
    this.#source = options.source;
    this.#options = options.options;
    this.#logger = options.logger;
    this.#stateDir = options.stateDir;
    const deviceIo = options.deviceIo ?? 'epoll';
    // With epoll libuv reads into 64 KiB buffers, and the kernel wants max_write plus headers to fit.
    const defaultMaxWrite = deviceIo === 'epoll' ? 32 * 1024 : 1024 * 1024;
    this.#maxWriteBytes = Math.max(
      PAGE_SIZE,
      Math.min(options.maxWriteBytes ?? defaultMaxWrite, deviceIo === 'epoll' ? 32 * 1024 : Infinity),
    );
    const journalPath = this.#stateDir === undefined ? undefined : join(this.#stateDir, 'nodes.journal');
    const resume = options.resume === true && this.#stateDir !== undefined;
    this.#table = new InodeTable({ ...(journalPath === undefined ? {} : { journalPath }), restore: resume });
    if (resume) this.#init = loadInit(this.#stateDir, this.#logger);
    this.#writer = new ReplyWriter(options.fd, this.#logger);
    this.#reader = new DeviceReader({
      fd: options.fd,
      deviceIo,
      readers: Math.max(1, options.readers ?? 4),
      maxWriteBytes: this.#maxWriteBytes,
      logger: this.#logger,
      onRequest: (buffer, length) => {
        this.#dispatch(buffer, length);
      },
      isStopping: () => this.#stopping,
      onEnd: () => {
        this.stop();
      },
    });
    this.#handlers = createOperationHandlers({
      source: this.#source,
      options: this.#options,
      nodes: new KernelNodes(this.#table, this.#options, this.#writer),
      writer: this.#writer,
      nextHandle: () => {
        const fh = this.#nextHandle;
        this.#nextHandle += 1n;
        return fh;
      },
    });
    this.#handlers.set(Opcode.INIT, (request) => {
      this.#handleInit(request);
    });
  }

  /** Resolves once INIT is answered, or at once when a restarted server restored it. */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }

  /** Resolves when the kernel ends the connection (unmount) or the server is stopped. */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /** The INIT parameters in force, once known. */
  get negotiated(): NegotiatedInit | undefined {
    return this.#init;
  }

  /** Starts reading requests. A resumed server asks the kernel to resend what its predecessor lost. */
  start(): void {
    this.#reader.start();
    this.#unsubscribe = this.#source.subscribe?.((path) => {
      this.invalidatePath(path);
    });
    if (this.#init !== undefined) {
      this.#ready.resolve();
      requestResend(this.#init, this.#writer, this.#logger);
    }
  }

  /** Stops answering; outstanding reads of the device end when the mount goes away. */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#unsubscribe?.();
    this.#inFlight.abortAll();
    this.#table.close();
    this.#closed.resolve();
  }

  /**
   * Drops the kernel's caches of `path` (its pages, attributes and directory entry) so that the next
   * access asks the source again. Call it when the source's content at `path` changed.
   */
  invalidatePath(path: string): void {
    const inode = this.#table.byPath(path);
    if (inode !== undefined) {
      this.#table.setCachedVersion(inode, undefined);
      // FUSE_NOTIFY_INVAL_INODE with offset 0 and length 0 drops every cached page and the attributes.
      this.#writer.notify(NotifyCode.INVAL_INODE, encodeNotifyInvalInode(inode.nodeid, 0n, 0n));
    }
    if (path !== '/') {
      const parent = this.#table.byPath(dirname(path));
      if (parent !== undefined) {
        // The parent's cached listing (FOPEN_CACHE_DIR) may name or miss the changed entry.
        this.#table.setCachedVersion(parent, undefined);
        this.#writer.notify(NotifyCode.INVAL_INODE, encodeNotifyInvalInode(parent.nodeid, 0n, 0n));
        this.#writer.notify(
          NotifyCode.INVAL_ENTRY,
          encodeNotifyInvalEntry(parent.nodeid, Buffer.from(basename(path))),
        );
      }
    }
  }

  /** `buffer` is reused for the next read as soon as this returns. */
  #dispatch(buffer: Buffer, length: number): void {
    const header = decodeInHeader(buffer);
    const view = buffer.subarray(IN_HEADER_SIZE, Math.min(length, header.len));
    if (header.opcode === Opcode.FORGET) {
      this.#table.forget(header.nodeid, Number(view.readBigUInt64LE(0)));
      return;
    }
    if (header.opcode === Opcode.BATCH_FORGET) {
      const count = view.readUInt32LE(0);
      for (let index = 0; index < count; index += 1) {
        const offset = 8 + index * 16;
        if (offset + 16 > view.length) break;
        this.#table.forget(view.readBigUInt64LE(offset), Number(view.readBigUInt64LE(offset + 8)));
      }
      return;
    }
    if (header.opcode === Opcode.INTERRUPT) {
      this.#inFlight.interrupt(view.readBigUInt64LE(0));
      return;
    }
    const handler = this.#handlers.get(header.opcode);
    if (handler === undefined) {
      this.#writer.replyError(header.unique, Errno.ENOSYS);
      return;
    }
    // The read buffer takes the next request at once: a handler's body is copied out of it.
    const body = Buffer.from(view);
    const signal = this.#inFlight.begin(header.unique);
    const request: Request = { header, body, signal };
    let result: Promise<void> | void;
    try {
      result = handler(request);
    } catch (error) {
      this.#fail(request, error);
      this.#inFlight.end(header.unique);
      return;
    }
    if (result === undefined) {
      this.#inFlight.end(header.unique);
      return;
    }
    result.then(
      () => {
        this.#inFlight.end(header.unique);
      },
      (error: unknown) => {
        this.#inFlight.end(header.unique);
        this.#fail(request, error);
      },
    );
  }

  #fail(request: Request, error: unknown): void {
    const errno = errnoOf(error);
    if (errno === Errno.EIO) {
      this.#logger.warn({ err: toError(error), op: opcodeName(request.header.opcode) }, 'request failed');
    }
    this.#writer.replyError(request.header.unique, errno);
  }

  #handleInit(request: Request): void {
    const outcome = negotiateInit(decodeInitIn(request.body), {
      maxWriteBytes: this.#maxWriteBytes,
      maxReadBytes: this.#options.maxReadBytes,
      maxReadaheadBytes: this.#options.maxReadaheadBytes,
      maxBackground: this.#options.maxBackground,
      congestionThreshold: this.#options.congestionThreshold,
    });
    switch (outcome.kind) {
      case 'other-major': {
        const body = Buffer.alloc(8);
        body.writeUInt32LE(outcome.reply.major, 0);
        body.writeUInt32LE(outcome.reply.minor, 4);
        this.#writer.reply(request.header.unique, body);
        return;
      }
      case 'refuse':
        this.#logger.error(
          { major: outcome.major, minor: outcome.minor },
          `kernel FUSE protocol older than 7.${FUSE_MIN_MINOR}`,
        );
        this.#writer.replyError(request.header.unique, Errno.EPROTO);
        this.#ready.reject(
          new FuseError(
            'ERR_FUSE_PROTOCOL',
            `Cannot serve FUSE protocol ${outcome.major}.${outcome.minor}: 7.${FUSE_MIN_MINOR} or newer is needed`,
          ),
        );
        return;
      case 'accept':
        // Saved before the reply: a server killed after replying must still find it.
        saveInit(this.#stateDir, outcome.init);
        this.#init = outcome.init;
        this.#writer.reply(request.header.unique, encodeInitOut(outcome.reply));
        this.#logger.info(
          {
            minor: outcome.init.minor,
            flags: `0x${outcome.reply.flags.toString(16)}`,
            maxPages: outcome.init.maxPages,
          },
          'FUSE INIT negotiated',
        );
        this.#ready.resolve();
    }
  }
}
