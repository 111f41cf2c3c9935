// The FUSE operations on open directories: OPENDIR, READDIR(PLUS) and RELEASEDIR, and their handles.
import { dirname } from 'node:path';
import type { Inode } from './inode-table.ts';
import { Errnum } from './errno.ts';
import type { OperationContext } from './operation-context.ts';
import {
  DT_DIR,
  DT_REG,
  ENTRY_OUT_SIZE,
  Errno,
  FUSE_ROOT_ID,
  OpenFlag,
  direntPlusSize,
  direntSize,
  encodeOpenOut,
  writeDirent,
  writeEntryOut,
} from './protocol.ts';
import type { Request } from './request.ts';
import type { DirectoryEntry } from './source.ts';
import { childPath } from './source.ts';

interface DirectoryHandle {
  inode: Inode;
  entries: readonly DirectoryEntry[] | undefined;
  /** `entries` were listed at open: the first read from offset 0 uses them. */
  listedAtOpen?: boolean;
}

export class DirectoryOperations {
  readonly #context: OperationContext;
  readonly #directories = new Map<bigint, DirectoryHandle>();

  constructor(context: OperationContext) {
    this.#context = context;
  }

  async opendir(request: Request): Promise<void> {
    const { source, options, nodes, writer } = this.#context;
    const inode = nodes.inode(request.header.nodeid);
    if (inode.type !== 'directory') throw new Errnum(Errno.ENOTDIR);
    let attributes = await source.getattr(inode.path, request.signal);
    if (attributes === undefined) throw new Errnum(Errno.ENOENT);
    if (attributes.type !== 'directory') throw new Errnum(Errno.ESTALE);
    let entries: readonly DirectoryEntry[] | undefined;
    if (attributes.version === '' && attributes.mtimeMs <= 0 && !options.directIo) {
      // A directory not listed yet has no version (web and object-store directories have no
      // mtime): list it now, as its READDIR follows anyway, so that the listing this open reads is
      // cached and the next open keeps it (else only the third open, `find` after `ls -lR`, would).
      entries = await source.readdir(inode.path, request.signal);
      attributes = (await source.getattr(inode.path, request.signal)) ?? attributes;
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
    if (version !== undefined && !options.directIo) {
      openFlags = OpenFlag.CACHE_DIR | (inode.cachedVersion === version ? OpenFlag.KEEP_CACHE : 0);
    }
    nodes.table.setCachedVersion(inode, version);
    const fh = this.#context.nextHandle();
    this.#directories.set(fh, { inode, entries, listedAtOpen: entries !== undefined });
    writer.reply(request.header.unique, encodeOpenOut(fh, openFlags));
  }

  async readdir(request: Request, plus: boolean): Promise<void> {
    const { source, nodes, writer } = this.#context;
    const fh = request.body.readBigUInt64LE(0);
    const offset = Number(request.body.readBigUInt64LE(8));
    const size = request.body.readUInt32LE(16);
    let handle = this.#directories.get(fh);
    if (handle === undefined) {
      handle = { inode: nodes.inode(request.header.nodeid), entries: undefined };
      this.#directories.set(fh, handle);
    }
    // Offset 0 is a fresh listing (opendir or rewinddir); later offsets continue the same snapshot.
    if (handle.entries === undefined || (offset === 0 && handle.listedAtOpen !== true)) {
      handle.entries = await source.readdir(handle.inode.path, request.signal);
    }
    handle.listedAtOpen = false;
    const directory = handle.inode;
    const parentNodeid =
      directory.nodeid === BigInt(FUSE_ROOT_ID)
        ? directory.nodeid
        : (nodes.table.byPath(dirname(directory.path))?.nodeid ?? 1n);
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
          const attributes = entry.attributes ?? (await source.getattr(path, request.signal));
          if (attributes !== undefined) {
            // Every entry with a nodeid counts as a lookup for the kernel (it FORGETs it later).
            const entryOut = nodes.entry(path, attributes);
            ino = entryOut.nodeid;
            writeEntryOut(output, used, entryOut);
          }
        } else {
          // "." and "..": nodeid 0 in entry_out, the kernel does not link them.
          output.fill(0, used, used + ENTRY_OUT_SIZE);
        }
        writeDirent(output, used + ENTRY_OUT_SIZE, { ino, nextOffset: index + 1, type, name });
      } else {
        if (entry !== undefined)
          ino =
            nodes.table.byPath(childPath(directory.path, entry.name))?.nodeid ??
            BigInt(index + 0x1_0000_0000);
        writeDirent(output, used, { ino, nextOffset: index + 1, type, name });
      }
      used += recordSize;
    }
    writer.reply(request.header.unique, output.subarray(0, used));
  }

  releasedir(request: Request): void {
    this.#directories.delete(request.body.readBigUInt64LE(0));
    this.#context.writer.reply(request.header.unique);
  }
}
