// The FUSE operations on open files: OPEN, READ and RELEASE, and the file handles they share.
import type { Inode } from './inode-table.ts';
import { Errnum } from './errno.ts';
import type { OperationContext } from './operation-context.ts';
import {
  Errno,
  OUT_HEADER_SIZE,
  OpenFlag,
  encodeNotifyInvalInode,
  encodeOpenOut,
  encodeOutHeader,
} from './protocol.ts';
import { ReadBufferPool } from './read-buffer-pool.ts';
import type { Request } from './request.ts';

const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;

interface FileHandle {
  inode: Inode;
  version: string;
  /** The size at open; unknown for a handle rebuilt after a crash from the cached version. */
  sizeBytes?: number;
}

export class FileOperations {
  readonly #context: OperationContext;
  readonly #files = new Map<bigint, FileHandle>();
  readonly #readBuffers = new ReadBufferPool();

  constructor(context: OperationContext) {
    this.#context = context;
  }

  async open(request: Request): Promise<void> {
    const { source, options, nodes, writer } = this.#context;
    const inode = nodes.inode(request.header.nodeid);
    const flags = request.body.readUInt32LE(0);
    if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0) throw new Errnum(Errno.EROFS);
    if (inode.type === 'directory') throw new Errnum(Errno.EISDIR);
    const attributes = await source.getattr(inode.path, request.signal);
    if (attributes === undefined) throw new Errnum(Errno.ENOENT);
    if (attributes.type !== 'file') throw new Errnum(Errno.ESTALE);
    let openFlags = 0;
    if (options.directIo) {
      openFlags |= OpenFlag.DIRECT_IO;
    } else {
      const cached = inode.cachedVersion;
      // FOPEN_KEEP_CACHE keeps the pages of an earlier open; without it the kernel drops them.
      const keep = cached === attributes.version || (cached === undefined && options.keepCache === 'always');
      if (keep) openFlags |= OpenFlag.KEEP_CACHE;
      else if (cached !== undefined) {
        // The size the kernel caches may be the old one until attr_timeout: drop the attributes now,
        // and before the OPEN reply, so that the caller's next fstat() cannot see the old size.
        // Attributes only (offset -1): the kernel takes no page lock, so a synchronous write is safe.
        writer.notifyInvalInodeNow(encodeNotifyInvalInode(inode.nodeid, -1n, 0n));
      }
      nodes.table.setCachedVersion(inode, attributes.version);
    }
    const fh = this.#context.nextHandle();
    this.#files.set(fh, { inode, version: attributes.version, sizeBytes: attributes.sizeBytes });
    writer.reply(request.header.unique, encodeOpenOut(fh, openFlags));
  }

  async read(request: Request): Promise<void> {
    const { source, writer } = this.#context;
    const fh = request.body.readBigUInt64LE(0);
    const offset = Number(request.body.readBigUInt64LE(8));
    const size = request.body.readUInt32LE(16);
    const handle = this.#files.get(fh) ?? (await this.#rebuildHandle(request, fh));
    const pooled = this.#readBuffers.take(size);
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
      if (source.readLent === undefined) data = await source.read(handle.inode.path, options);
      else ({ data, release } = await source.readLent(handle.inode.path, options));
    } catch (error) {
      this.#readBuffers.give(pooled);
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
      // The buffer goes back to the pool once the kernel has copied the reply.
      const reply = pooled.subarray(0, OUT_HEADER_SIZE + length);
      writer.write([reply], reply.length, 'reply', () => {
        this.#readBuffers.give(pooled);
      });
      release?.();
      return;
    }
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.#readBuffers.give(pooled);
    if (release !== undefined) {
      writer.replyLent(request.header.unique, bytes.subarray(0, length), release);
      return;
    }
    writer.reply(request.header.unique, bytes.subarray(0, length));
  }

  release(request: Request): void {
    this.#files.delete(request.body.readBigUInt64LE(0));
    this.#context.writer.reply(request.header.unique);
  }

  /** A handle opened by a server that crashed: rebuilt from the node and its cached version. */
  async #rebuildHandle(request: Request, fh: bigint): Promise<FileHandle> {
    const inode = this.#context.nodes.inode(request.header.nodeid);
    const version = inode.cachedVersion;
    let handle: FileHandle;
    if (version === undefined) {
      const attributes = await this.#context.source.getattr(inode.path, request.signal);
      if (attributes === undefined) throw new Errnum(Errno.ENOENT);
      handle = { inode, version: attributes.version, sizeBytes: attributes.sizeBytes };
    } else {
      handle = { inode, version };
    }
    this.#files.set(fh, handle);
    return handle;
  }
}
