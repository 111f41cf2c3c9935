import { read, writev, writevSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { Socket } from 'node:net';
import type { SocketConstructorOpts } from 'node:net';
import type { Logger } from '../lib/index.ts';
import { allocatePageStarted, toError } from '../lib/index.ts';
import { FuseError } from './errors.ts';
import { InodeTable } from './inode-table.ts';
import { MAX_PAGES, negotiateInit } from './init.ts';
import type { NegotiatedInit } from './init.ts';
import type { Inode } from './inode-table.ts';
import type { FuseMountOptions } from './options.ts';
import {
  DT_DIR,
  DT_REG,
  Errno,
  FUSE_MIN_MINOR,
  FUSE_MIN_READ_BUFFER,
  FUSE_ROOT_ID,
  IN_HEADER_SIZE,
  InitFlag,
  NotifyCode,
  OUT_HEADER_SIZE,
  Opcode,
  OpenFlag,
  S_IFDIR,
  S_IFREG,
  decodeInHeader,
  decodeInitIn,
  direntPlusSize,
  direntSize,
  encodeAttrOut,
  encodeEntryOut,
  encodeInitOut,
  encodeNegativeEntryOut,
  encodeNotifyInvalEntry,
  encodeNotifyInvalInode,
  encodeOpenOut,
  encodeOutHeader,
  encodeStatfsOut,
  opcodeName,
  readName,
  writeDirent,
  writeEntryOut,
  ENTRY_OUT_SIZE,
} from './protocol.ts';
import type { InHeader, NodeAttributes } from './protocol.ts';
import type { DirectoryEntry, FileAttributes, FileSource } from './source.ts';
import { childPath } from './source.ts';

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

/** process.binding('pipe_wrap'): the libuv pipe handle net.Socket wraps. */
interface PipeWrapBinding {
  Pipe: new (type: number) => { open(fd: number): number };
  constants: { SOCKET: number };
}

interface FileHandle {
  inode: Inode;
  version: string;
  /** The size at open; unknown for a handle rebuilt after a crash from the cached version. */
  sizeBytes?: number;
}

interface DirectoryHandle {
  inode: Inode;
  entries: readonly DirectoryEntry[] | undefined;
  /** `entries` were listed at open: the first read from offset 0 uses them. */
  listedAtOpen?: boolean;
}

interface Request {
  header: InHeader;
  body: Buffer;
  signal: AbortSignal;
}

type Handler = (request: Request) => Promise<void> | void;

/** Replied and thrown by handlers to answer with an errno. */
class Errnum extends Error {
  readonly errno: number;
  constructor(errno: number) {
    super(`errno ${errno}`);
    this.errno = errno;
  }
}

const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;
const W_OK = 2;
const PAGE_SIZE = 4096;
const SYNC_REPLY_MAX_BYTES = 64 * 1024;
/** READ replies are built in pooled buffers: 1 MiB (max_pages) plus the reply header. */
const READ_BUFFER_BYTES = OUT_HEADER_SIZE + MAX_PAGES * PAGE_SIZE;
/** The epoll reader's buffer: what libuv would allocate per read, max_write (32 KiB) plus headers. */
const EPOLL_READ_BUFFER_BYTES = 64 * 1024;
/** Idle pooled buffers kept; more are allocated under load and left to the GC afterwards. */
const READ_BUFFER_POOL_SIZE = 32;

/** Write-type operations: a read-only filesystem answers them EROFS (dispatch table below). */
const WRITE_OPCODES = [
  Opcode.SETATTR,
  Opcode.SYMLINK,
  Opcode.MKNOD,
  Opcode.MKDIR,
  Opcode.UNLINK,
  Opcode.RMDIR,
  Opcode.RENAME,
  Opcode.LINK,
  Opcode.WRITE,
  Opcode.SETXATTR,
  Opcode.REMOVEXATTR,
  Opcode.CREATE,
  Opcode.FALLOCATE,
  Opcode.RENAME2,
  Opcode.COPY_FILE_RANGE,
  Opcode.TMPFILE,
  Opcode.COPY_FILE_RANGE_64,
] as const;

function errnoOf(error: unknown): number {
  if (error instanceof Errnum) return error.errno;
  if (error instanceof Error) {
    if (error.name === 'AbortError') return Errno.EINTR;
    const code = (error as { code?: unknown }).code;
    switch (code) {
      case 'ENOENT':
      case 'ERR_UFS_NOT_FOUND':
      case 'ERR_CACHE_NOT_FOUND':
        return Errno.ENOENT;
      case 'ENOTDIR':
      case 'ERR_UFS_NOT_A_DIRECTORY':
        return Errno.ENOTDIR;
      case 'EACCES':
      case 'EPERM':
      case 'ERR_UFS_ACCESS_DENIED':
        return Errno.EACCES;
      case 'ERR_UFS_TIMEOUT':
      case 'ETIMEDOUT':
        return Errno.ETIMEDOUT;
      case 'ERR_UFS_VERSION_CHANGED':
      case 'ERR_CACHE_VERSION_CHANGED':
        return Errno.ESTALE;
      case 'ERR_UFS_ABORTED':
      case 'ERR_CACHE_ABORTED':
        return Errno.EINTR;
      default:
        return Errno.EIO;
    }
  }
  return Errno.EIO;
}

/**
 * A FUSE filesystem server speaking the kernel protocol on an open /dev/fuse descriptor. Requests
 * are served concurrently: `readers` reads of the device are outstanding at any time and every
 * request runs as its own promise, so a slow READ never holds back a LOOKUP or a READ of a cached
 * file. Replies go out through the libuv threadpool (writev), never blocking the event loop.
 */
export class FuseServer {
  readonly #fd: number;
  readonly #source: FileSource;
  readonly #options: FuseMountOptions;
  readonly #logger: Logger;
  readonly #stateDir: string | undefined;
  readonly #readers: number;
  readonly #maxWriteBytes: number;
  readonly #deviceIo: 'epoll' | 'threadpool';
  readonly #table: InodeTable;
  readonly #handlers = new Map<number, Handler>();
  readonly #inFlight = new Map<bigint, AbortController>();
  readonly #files = new Map<bigint, FileHandle>();
  readonly #directories = new Map<bigint, DirectoryHandle>();
  readonly #readBuffers: Buffer[] = [];
  readonly #uid: number;
  readonly #gid: number;
  #nextHandle = 1n;
  #init: NegotiatedInit | undefined;
  #stopping = false;
  #activeReaders = 0;
  #unsubscribe: (() => void) | undefined;
  readonly #ready: PromiseWithResolvers<void> = Promise.withResolvers();
  readonly #closed: PromiseWithResolvers<void> = Promise.withResolvers();

  constructor(options: FuseServerOptions) {
    this.#fd = options.fd;
    this.#source = options.source;
    this.#options = options.options;
    this.#logger = options.logger;
    this.#stateDir = options.stateDir;
    this.#readers = Math.max(1, options.readers ?? 4);
    this.#deviceIo = options.deviceIo ?? 'epoll';
    // With epoll libuv reads into 64 KiB buffers, and the kernel wants max_write plus headers to fit.
    const defaultMaxWrite = this.#deviceIo === 'epoll' ? 32 * 1024 : 1024 * 1024;
    this.#maxWriteBytes = Math.max(
      PAGE_SIZE,
      Math.min(options.maxWriteBytes ?? defaultMaxWrite, this.#deviceIo === 'epoll' ? 32 * 1024 : Infinity),
    );
    this.#uid = options.options.uid ?? process.getuid?.() ?? 0;
    this.#gid = options.options.gid ?? process.getgid?.() ?? 0;
    const journalPath = this.#stateDir === undefined ? undefined : join(this.#stateDir, 'nodes.journal');
    const resume = options.resume === true && this.#stateDir !== undefined;
    this.#table = new InodeTable({ ...(journalPath === undefined ? {} : { journalPath }), restore: resume });
    if (resume) this.#init = this.#loadInit();
    this.#registerHandlers();
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
    if (this.#deviceIo === 'epoll') {
      this.#startEpollReader();
    } else {
      const bufferBytes = Math.max(FUSE_MIN_READ_BUFFER, this.#maxWriteBytes + PAGE_SIZE);
      for (let index = 0; index < this.#readers; index += 1) this.#readLoop(Buffer.allocUnsafe(bufferBytes));
    }
    this.#unsubscribe = this.#source.subscribe?.((path) => {
      this.invalidatePath(path);
    });
    if (this.#init !== undefined) {
      this.#ready.resolve();
      this.#sendResend();
    }
  }

  /** Stops answering; outstanding reads of the device end when the mount goes away. */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#unsubscribe?.();
    for (const controller of this.#inFlight.values()) controller.abort();
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
      this.#notify(NotifyCode.INVAL_INODE, encodeNotifyInvalInode(inode.nodeid, 0n, 0n));
    }
    if (path !== '/') {
      const parent = this.#table.byPath(dirname(path));
      if (parent !== undefined) {
        // The parent's cached listing (FOPEN_CACHE_DIR) may name or miss the changed entry.
        this.#table.setCachedVersion(parent, undefined);
        this.#notify(NotifyCode.INVAL_INODE, encodeNotifyInvalInode(parent.nodeid, 0n, 0n));
        this.#notify(
          NotifyCode.INVAL_ENTRY,
          encodeNotifyInvalEntry(parent.nodeid, Buffer.from(basename(path))),
        );
      }
    }
  }

  #loadInit(): NegotiatedInit | undefined {
    if (this.#stateDir === undefined) return undefined;
    try {
      return JSON.parse(readFileSync(join(this.#stateDir, 'init.json'), 'utf8')) as NegotiatedInit;
    } catch (error) {
      // Died before INIT was answered: the kernel resends INIT itself (it is still in processing).
      this.#logger.warn({ err: toError(error) }, 'no INIT state to resume from; waiting for INIT');
      return undefined;
    }
  }

  #saveInit(init: NegotiatedInit): void {
    if (this.#stateDir === undefined) return;
    const path = join(this.#stateDir, 'init.json');
    writeFileSync(`${path}.tmp`, JSON.stringify(init));
    renameSync(`${path}.tmp`, path);
  }

  #sendResend(): void {
    const kernelFlags = this.#init === undefined ? undefined : BigInt(this.#init.kernelFlags);
    if (kernelFlags !== undefined && (kernelFlags & InitFlag.HAS_RESEND) === 0n) {
      this.#logger.warn(
        'kernel cannot resend requests (protocol < 7.40): requests in flight at the crash stay stuck',
      );
      return;
    }
    // fuse.h 7.40: FUSE_NOTIFY_RESEND moves every request read but not answered back to pending.
    this.#notify(NotifyCode.RESEND, Buffer.alloc(0));
  }

  /**
   * Reads requests on the event loop: /dev/fuse supports poll(2), so libuv can watch it with epoll
   * like a pipe and read each request as it arrives, with no threadpool round trip. Every read(2)
   * returns exactly one request and the stream hands each chunk on as it came.
   */
  #startEpollReader(): void {
    let binding: PipeWrapBinding;
    try {
      binding = (process as unknown as { binding(name: string): unknown }).binding(
        'pipe_wrap',
      ) as PipeWrapBinding;
    } catch (error) {
      // A Node without the pipe_wrap binding: nothing touched the descriptor yet, so the blocking
      // threadpool reader is a safe fallback.
      this.#logger.warn(
        { err: toError(error) },
        'no libuv pipe binding; reading /dev/fuse in the threadpool',
      );
      const bufferBytes = Math.max(FUSE_MIN_READ_BUFFER, this.#maxWriteBytes + PAGE_SIZE);
      for (let index = 0; index < this.#readers; index += 1) this.#readLoop(Buffer.allocUnsafe(bufferBytes));
      return;
    }
    const handle = new binding.Pipe(binding.constants.SOCKET);
    const status = handle.open(this.#fd);
    if (status !== 0)
      throw new FuseError('ERR_FUSE_DEVICE', `Cannot watch /dev/fuse with epoll (uv error ${status})`);
    // One buffer for every read (`onread`): by default a stream allocates 64 KiB per read, so per
    // request. A request's body is copied out of it (#dispatch), which for a READ is 40 bytes.
    const readBuffer = Buffer.allocUnsafeSlow(EPOLL_READ_BUFFER_BYTES);
    const socket = new Socket({
      handle,
      readable: true,
      writable: false,
      onread: {
        buffer: readBuffer,
        callback: (bytes: number) => {
          if (bytes >= IN_HEADER_SIZE) this.#dispatch(readBuffer, bytes);
          return true;
        },
      },
    } as unknown as SocketConstructorOpts);
    this.#activeReaders += 1;
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENODEV') this.#logger.error({ err: error }, 'reading /dev/fuse failed');
    });
    socket.on('close', () => {
      this.#readerDone();
    });
  }

  #readLoop(buffer: Buffer): void {
    this.#activeReaders += 1;
    const next = (): void => {
      if (this.#stopping) {
        this.#readerDone();
        return;
      }
      read(this.#fd, buffer, 0, buffer.length, null, (error, bytesRead) => {
        if (error) {
          const code = error.code;
          // ENOENT: the request was interrupted while being read; EINTR/EAGAIN: try again.
          if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') {
            next();
            return;
          }
          if (code !== 'ENODEV') this.#logger.error({ err: error }, 'reading /dev/fuse failed');
          this.#readerDone();
          return;
        }
        if (bytesRead >= IN_HEADER_SIZE) this.#dispatch(buffer, bytesRead);
        next();
      });
    };
    next();
  }

  #readerDone(): void {
    this.#activeReaders -= 1;
    if (this.#activeReaders === 0) this.stop();
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
      this.#inFlight.get(view.readBigUInt64LE(0))?.abort();
      return;
    }
    const handler = this.#handlers.get(header.opcode);
    if (handler === undefined) {
      this.#replyError(header.unique, Errno.ENOSYS);
      return;
    }
    // The read buffer takes the next request at once: a handler's body is copied out of it.
    const body = Buffer.from(view);
    const controller = new AbortController();
    this.#inFlight.set(header.unique, controller);
    const request: Request = { header, body, signal: controller.signal };
    let result: Promise<void> | void;
    try {
      result = handler(request);
    } catch (error) {
      this.#fail(request, error);
      this.#inFlight.delete(header.unique);
      return;
    }
    if (result === undefined) {
      this.#inFlight.delete(header.unique);
      return;
    }
    result.then(
      () => this.#inFlight.delete(header.unique),
      (error: unknown) => {
        this.#inFlight.delete(header.unique);
        this.#fail(request, error);
      },
    );
  }

  #fail(request: Request, error: unknown): void {
    const errno = errnoOf(error);
    if (errno === Errno.EIO) {
      this.#logger.warn({ err: toError(error), op: opcodeName(request.header.opcode) }, 'request failed');
    }
    this.#replyError(request.header.unique, errno);
  }

  /**
   * Writes one reply in one writev(2) (the kernel takes a message per write). A reply to /dev/fuse
   * never waits: the kernel copies it and wakes the caller. Small replies are written at once on the
   * event loop, which spares a threadpool round trip per request; large READ replies, whose copy
   * takes tens of microseconds, go through the threadpool. `written` runs once the kernel has the
   * bytes (or the write failed), for buffers to be reused.
   */
  #write(buffers: Buffer[], length: number, what: string, written?: () => void): void {
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

  #reply(unique: bigint, ...bodies: Buffer[]): void {
    let length = OUT_HEADER_SIZE;
    for (const body of bodies) length += body.length;
    this.#write([encodeOutHeader({ length, error: 0, unique }), ...bodies], length, 'reply');
  }

  #replyError(unique: bigint, errno: number): void {
    this.#write(
      [encodeOutHeader({ length: OUT_HEADER_SIZE, error: -errno, unique })],
      OUT_HEADER_SIZE,
      'error reply',
    );
  }

  #notify(code: number, body: Buffer): void {
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

  #inode(nodeid: bigint): Inode {
    const inode = this.#table.get(nodeid);
    // A nodeid the kernel holds but the table lost (state gone): ESTALE makes the VFS look it up again.
    if (inode === undefined) throw new Errnum(Errno.ESTALE);
    return inode;
  }

  #nodeAttributes(nodeid: bigint, attributes: FileAttributes): NodeAttributes {
    const isDirectory = attributes.type === 'directory';
    const owner = attributes.owner;
    // An origin's own owners and modes (a local directory) are kept, so that with
    // default_permissions the kernel refuses what the origin would; the mount options uid=, gid=
    // and umask= still win when given.
    const permissions = owner === undefined ? (isDirectory ? 0o555 : 0o444) : owner.mode & 0o7777 & ~0o222;
    return {
      ino: nodeid,
      sizeBytes: isDirectory ? 4096 : attributes.sizeBytes,
      mtimeMs: attributes.mtimeMs,
      mode: (isDirectory ? S_IFDIR : S_IFREG) | (permissions & ~this.#options.umask),
      nlink: isDirectory ? 2 : 1,
      uid: owner === undefined || this.#options.uid !== undefined ? this.#uid : owner.uid,
      gid: owner === undefined || this.#options.gid !== undefined ? this.#gid : owner.gid,
      blockSizeBytes: 128 * 1024,
    };
  }

  /** Notes the version the source reports; a change drops the kernel's pages of the old one. */
  #observeVersion(inode: Inode, attributes: FileAttributes): void {
    if (attributes.type !== 'file') return;
    if (inode.cachedVersion !== undefined && inode.cachedVersion !== attributes.version) {
      this.#table.setCachedVersion(inode, undefined);
      this.#notify(NotifyCode.INVAL_INODE, encodeNotifyInvalInode(inode.nodeid, 0n, 0n));
    }
  }

  #entryOut(path: string, attributes: FileAttributes): Buffer {
    const inode = this.#table.remember(path, attributes.type);
    this.#observeVersion(inode, attributes);
    return encodeEntryOut({
      nodeid: inode.nodeid,
      generation: inode.generation,
      entryTimeoutSeconds: this.#options.entryTimeoutSeconds,
      attrTimeoutSeconds: this.#options.attrTimeoutSeconds,
      attr: this.#nodeAttributes(inode.nodeid, attributes),
    });
  }

  #registerHandlers(): void {
    const on = (opcode: number, handler: Handler): void => {
      this.#handlers.set(opcode, handler);
    };
    on(Opcode.INIT, (request) => {
      this.#handleInit(request);
    });
    on(Opcode.DESTROY, (request) => {
      this.#reply(request.header.unique);
    });
    on(Opcode.LOOKUP, (request) => this.#lookup(request));
    on(Opcode.GETATTR, (request) => this.#getattr(request));
    on(Opcode.OPEN, (request) => this.#open(request));
    on(Opcode.READ, (request) => this.#read(request));
    on(Opcode.RELEASE, (request) => {
      this.#files.delete(request.body.readBigUInt64LE(0));
      this.#reply(request.header.unique);
    });
    on(Opcode.FLUSH, (request) => {
      this.#reply(request.header.unique);
    });
    on(Opcode.FSYNC, (request) => {
      this.#reply(request.header.unique);
    });
    on(Opcode.OPENDIR, (request) => this.#opendir(request));
    on(Opcode.READDIR, (request) => this.#readdir(request, false));
    on(Opcode.READDIRPLUS, (request) => this.#readdir(request, true));
    on(Opcode.RELEASEDIR, (request) => {
      this.#directories.delete(request.body.readBigUInt64LE(0));
      this.#reply(request.header.unique);
    });
    on(Opcode.FSYNCDIR, (request) => {
      this.#reply(request.header.unique);
    });
    on(Opcode.STATFS, (request) => this.#statfs(request));
    on(Opcode.ACCESS, (request) => {
      // Without default_permissions the kernel asks; with a read-only tree only writing is refused.
      if ((request.body.readUInt32LE(0) & W_OK) !== 0) throw new Errnum(Errno.EROFS);
      this.#inode(request.header.nodeid);
      this.#reply(request.header.unique);
    });
    // No source has extended attributes, so by default (no_xattr) the first GETXATTR/LISTXATTR is
    // answered ENOSYS: fs/fuse/xattr.c then sets fc->no_getxattr / no_listxattr and answers every
    // later call EOPNOTSUPP itself, which ls, cp -a and tar take as "no xattrs" (as on vfat or tmpfs
    // without user xattrs). ENODATA would be asked again per file: two round trips per `ls -l` entry.
    on(Opcode.GETXATTR, () => {
      throw new Errnum(this.#options.noXattr ? Errno.ENOSYS : Errno.ENODATA);
    });
    on(Opcode.LISTXATTR, (request) => {
      if (this.#options.noXattr) throw new Errnum(Errno.ENOSYS);
      // fuse.h: with size 0 the reply is fuse_getxattr_out giving the size of the (empty) list.
      if (request.body.readUInt32LE(0) === 0) this.#reply(request.header.unique, Buffer.alloc(8));
      else this.#reply(request.header.unique);
    });
    on(Opcode.READLINK, () => {
      throw new Errnum(Errno.EINVAL);
    });
    for (const opcode of WRITE_OPCODES) {
      on(opcode, () => {
        throw new Errnum(Errno.EROFS);
      });
    }
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
        this.#reply(request.header.unique, body);
        return;
      }
      case 'refuse':
        this.#logger.error(
          { major: outcome.major, minor: outcome.minor },
          `kernel FUSE protocol older than 7.${FUSE_MIN_MINOR}`,
        );
        this.#replyError(request.header.unique, Errno.EPROTO);
        this.#ready.reject(
          new FuseError(
            'ERR_FUSE_PROTOCOL',
            `Cannot serve FUSE protocol ${outcome.major}.${outcome.minor}: 7.${FUSE_MIN_MINOR} or newer is needed`,
          ),
        );
        return;
      case 'accept':
        // Saved before the reply: a server killed after replying must still find it.
        this.#saveInit(outcome.init);
        this.#init = outcome.init;
        this.#reply(request.header.unique, encodeInitOut(outcome.reply));
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

  async #lookup(request: Request): Promise<void> {
    const parent = this.#inode(request.header.nodeid);
    if (parent.type !== 'directory') throw new Errnum(Errno.ENOTDIR);
    const name = readName(request.body);
    if (Buffer.byteLength(name) > 255) throw new Errnum(Errno.ENAMETOOLONG);
    const path = childPath(parent.path, name);
    const attributes = await this.#source.getattr(path, request.signal);
    if (attributes === undefined) {
      if (this.#options.negativeTimeoutSeconds > 0) {
        this.#reply(request.header.unique, encodeNegativeEntryOut(this.#options.negativeTimeoutSeconds));
        return;
      }
      throw new Errnum(Errno.ENOENT);
    }
    this.#reply(request.header.unique, this.#entryOut(path, attributes));
  }

  async #getattr(request: Request): Promise<void> {
    const inode = this.#inode(request.header.nodeid);
    const attributes = await this.#source.getattr(inode.path, request.signal);
    if (attributes === undefined) throw new Errnum(Errno.ENOENT);
    // The path now names something of another type: this node is gone for good.
    if (attributes.type !== inode.type) throw new Errnum(Errno.ESTALE);
    this.#observeVersion(inode, attributes);
    this.#reply(
      request.header.unique,
      encodeAttrOut(this.#nodeAttributes(inode.nodeid, attributes), this.#options.attrTimeoutSeconds),
    );
  }

  async #open(request: Request): Promise<void> {
    const inode = this.#inode(request.header.nodeid);
    const flags = request.body.readUInt32LE(0);
    if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0) throw new Errnum(Errno.EROFS);
    if (inode.type === 'directory') throw new Errnum(Errno.EISDIR);
    const attributes = await this.#source.getattr(inode.path, request.signal);
    if (attributes === undefined) throw new Errnum(Errno.ENOENT);
    if (attributes.type !== 'file') throw new Errnum(Errno.ESTALE);
    let openFlags = 0;
    if (this.#options.directIo) {
      openFlags |= OpenFlag.DIRECT_IO;
    } else {
      const cached = inode.cachedVersion;
      // FOPEN_KEEP_CACHE keeps the pages of an earlier open; without it the kernel drops them.
      const keep =
        cached === attributes.version || (cached === undefined && this.#options.keepCache === 'always');
      if (keep) openFlags |= OpenFlag.KEEP_CACHE;
      else if (cached !== undefined) {
        // The size the kernel caches may be the old one until attr_timeout: drop the attributes now,
        // and before the OPEN reply, so that the caller's next fstat() cannot see the old size.
        // Attributes only (offset -1): the kernel takes no page lock, so a synchronous write is safe.
        const body = encodeNotifyInvalInode(inode.nodeid, -1n, 0n);
        const length = OUT_HEADER_SIZE + body.length;
        this.#write(
          [encodeOutHeader({ length, error: NotifyCode.INVAL_INODE, unique: 0n }), body],
          length,
          'notification',
        );
      }
      this.#table.setCachedVersion(inode, attributes.version);
    }
    const fh = this.#nextHandle;
    this.#nextHandle += 1n;
    this.#files.set(fh, { inode, version: attributes.version, sizeBytes: attributes.sizeBytes });
    this.#reply(request.header.unique, encodeOpenOut(fh, openFlags));
  }

  async #read(request: Request): Promise<void> {
    const fh = request.body.readBigUInt64LE(0);
    const offset = Number(request.body.readBigUInt64LE(8));
    const size = request.body.readUInt32LE(16);
    let handle = this.#files.get(fh);
    if (handle === undefined) {
      // A handle opened by a server that crashed: rebuild it from the node and its cached version.
      const inode = this.#inode(request.header.nodeid);
      const version = inode.cachedVersion;
      if (version === undefined) {
        const attributes = await this.#source.getattr(inode.path, request.signal);
        if (attributes === undefined) throw new Errnum(Errno.ENOENT);
        handle = { inode, version: attributes.version, sizeBytes: attributes.sizeBytes };
      } else {
        handle = { inode, version };
      }
      this.#files.set(fh, handle);
    }
    const pooled = this.#takeReadBuffer(size);
    const options = {
      version: handle.version,
      ...(handle.sizeBytes === undefined ? {} : { sizeBytes: handle.sizeBytes }),
      offset,
      length: size,
      signal: request.signal,
      ...(pooled === undefined ? {} : { buffer: pooled.subarray(OUT_HEADER_SIZE, OUT_HEADER_SIZE + size) }),
    };
    let data: Uint8Array;
    let release: (() => void) | undefined;
    try {
      if (this.#source.readLent === undefined) data = await this.#source.read(handle.inode.path, options);
      else ({ data, release } = await this.#source.readLent(handle.inode.path, options));
    } catch (error) {
      this.#returnReadBuffer(pooled);
      throw error;
    }
    const length = Math.min(size, data.byteLength);
    if (
      pooled !== undefined &&
      data.buffer === pooled.buffer &&
      data.byteOffset === pooled.byteOffset + OUT_HEADER_SIZE
    ) {
      // The source filled the pooled buffer: the header goes into its headroom, one contiguous write.
      encodeOutHeader({ length: OUT_HEADER_SIZE + length, error: 0, unique: request.header.unique }).copy(
        pooled,
        0,
      );
      this.#writeOwned(pooled.subarray(0, OUT_HEADER_SIZE + length), pooled);
      release?.();
      return;
    }
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.#returnReadBuffer(pooled);
    if (release !== undefined) {
      this.#writeLent(request.header.unique, bytes.subarray(0, length), release);
      return;
    }
    this.#reply(request.header.unique, bytes.subarray(0, length));
  }

  /**
   * Writes a READ reply whose bytes are lent by the source (header and bytes in one writev, no
   * copy into a reply buffer), and gives them back once the kernel has copied them.
   */
  #writeLent(unique: bigint, bytes: Buffer, release: () => void): void {
    const length = OUT_HEADER_SIZE + bytes.length;
    this.#write([encodeOutHeader({ length, error: 0, unique }), bytes], length, 'reply', release);
  }

  /** A buffer with header room for a READ reply of `size` bytes, from the pool when one fits. */
  #takeReadBuffer(size: number): Buffer | undefined {
    if (size > READ_BUFFER_BYTES - OUT_HEADER_SIZE) return undefined;
    // The data after the reply header starts a page: sources copy page-cache pages into it.
    return this.#readBuffers.pop() ?? allocatePageStarted(READ_BUFFER_BYTES, OUT_HEADER_SIZE);
  }

  #returnReadBuffer(buffer: Buffer | undefined): void {
    if (buffer !== undefined && this.#readBuffers.length < READ_BUFFER_POOL_SIZE)
      this.#readBuffers.push(buffer);
  }

  /** Writes a READ reply that lives in a pooled buffer, and pools the buffer again once written. */
  #writeOwned(reply: Buffer, owner: Buffer): void {
    this.#write([reply], reply.length, 'reply', () => {
      this.#returnReadBuffer(owner);
    });
  }

  async #opendir(request: Request): Promise<void> {
    const inode = this.#inode(request.header.nodeid);
    if (inode.type !== 'directory') throw new Errnum(Errno.ENOTDIR);
    let attributes = await this.#source.getattr(inode.path, request.signal);
    if (attributes === undefined) throw new Errnum(Errno.ENOENT);
    if (attributes.type !== 'directory') throw new Errnum(Errno.ESTALE);
    let entries: readonly DirectoryEntry[] | undefined;
    if (attributes.version === '' && attributes.mtimeMs <= 0 && !this.#options.directIo) {
      // A directory not listed yet has no version (web and object-store directories have no
      // mtime): list it now, as its READDIR follows anyway, so that the listing this open reads is
      // cached and the next open keeps it (else only the third open, `find` after `ls -lR`, would).
      entries = await this.#source.readdir(inode.path, request.signal);
      attributes = (await this.#source.getattr(inode.path, request.signal)) ?? attributes;
    }
    // FOPEN_CACHE_DIR lets the kernel keep the listing in the directory's page cache, and
    // FOPEN_KEEP_CACHE keeps it across opens while the directory's version (or mtime) is unchanged.
    const version =
      attributes.version !== ''
        ? attributes.version
        : attributes.mtimeMs > 0
          ? `mtime:${attributes.mtimeMs}`
          : undefined;
    let openFlags = 0;
    if (version !== undefined && !this.#options.directIo) {
      openFlags = OpenFlag.CACHE_DIR | (inode.cachedVersion === version ? OpenFlag.KEEP_CACHE : 0);
    }
    this.#table.setCachedVersion(inode, version);
    const fh = this.#nextHandle;
    this.#nextHandle += 1n;
    this.#directories.set(fh, { inode, entries, listedAtOpen: entries !== undefined });
    this.#reply(request.header.unique, encodeOpenOut(fh, openFlags));
  }

  async #readdir(request: Request, plus: boolean): Promise<void> {
    const fh = request.body.readBigUInt64LE(0);
    const offset = Number(request.body.readBigUInt64LE(8));
    const size = request.body.readUInt32LE(16);
    let handle = this.#directories.get(fh);
    if (handle === undefined) {
      handle = { inode: this.#inode(request.header.nodeid), entries: undefined };
      this.#directories.set(fh, handle);
    }
    // Offset 0 is a fresh listing (opendir or rewinddir); later offsets continue the same snapshot.
    if (handle.entries === undefined || (offset === 0 && handle.listedAtOpen !== true)) {
      handle.entries = await this.#source.readdir(handle.inode.path, request.signal);
    }
    handle.listedAtOpen = false;
    const directory = handle.inode;
    const parentNodeid =
      directory.nodeid === BigInt(FUSE_ROOT_ID)
        ? directory.nodeid
        : (this.#table.byPath(dirname(directory.path))?.nodeid ?? 1n);
    const total = handle.entries.length + 2;
    const output = Buffer.alloc(size);
    let used = 0;
    for (let index = offset; index < total; index += 1) {
      const entry = index >= 2 ? handle.entries[index - 2] : undefined;
      const name = Buffer.from(index === 0 ? '.' : index === 1 ? '..' : (entry?.name ?? ''));
      const recordSize = plus ? direntPlusSize(name.length) : direntSize(name.length);
      if (used + recordSize > size) break;
      let ino = index === 0 ? directory.nodeid : parentNodeid;
      const type = entry === undefined || entry.type === 'directory' ? DT_DIR : DT_REG;
      if (plus) {
        if (entry !== undefined) {
          const path = childPath(directory.path, entry.name);
          const attributes = entry.attributes ?? (await this.#source.getattr(path, request.signal));
          if (attributes !== undefined) {
            // Every entry with a nodeid counts as a lookup for the kernel (it FORGETs it later).
            const inode = this.#table.remember(path, attributes.type);
            this.#observeVersion(inode, attributes);
            ino = inode.nodeid;
            writeEntryOut(output, used, {
              nodeid: inode.nodeid,
              generation: inode.generation,
              entryTimeoutSeconds: this.#options.entryTimeoutSeconds,
              attrTimeoutSeconds: this.#options.attrTimeoutSeconds,
              attr: this.#nodeAttributes(inode.nodeid, attributes),
            });
          }
        } else {
          // "." and "..": nodeid 0 in entry_out, the kernel does not link them.
          output.fill(0, used, used + ENTRY_OUT_SIZE);
        }
        writeDirent(output, used + ENTRY_OUT_SIZE, { ino, nextOffset: index + 1, type, name });
      } else {
        if (entry !== undefined)
          ino =
            this.#table.byPath(childPath(directory.path, entry.name))?.nodeid ??
            BigInt(index + 0x1_0000_0000);
        writeDirent(output, used, { ino, nextOffset: index + 1, type, name });
      }
      used += recordSize;
    }
    this.#reply(request.header.unique, output.subarray(0, used));
  }

  async #statfs(request: Request): Promise<void> {
    const totals = (await this.#source.statfs?.(request.signal)) ?? { sizeBytes: 0, files: 0 };
    this.#reply(
      request.header.unique,
      encodeStatfsOut({
        blocks: Math.ceil(totals.sizeBytes / PAGE_SIZE),
        files: totals.files,
        blockSizeBytes: PAGE_SIZE,
      }),
    );
  }
}
