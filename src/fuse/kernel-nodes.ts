// How the source's nodes appear to the kernel: nodeids resolved, attributes and entries encoded, versions watched.
import type { Inode, InodeTable } from './inode-table.ts';
import type { FuseMountOptions } from './options.ts';
import { Errnum } from './errno.ts';
import { Errno, NotifyCode, S_IFDIR, S_IFREG, encodeEntryOut, encodeNotifyInvalInode } from './protocol.ts';
import type { EntryReply, NodeAttributes } from './protocol.ts';
import type { ReplyWriter } from './reply-writer.ts';
import type { FileAttributes } from './source.ts';

export class KernelNodes {
  readonly table: InodeTable;
  readonly #options: FuseMountOptions;
  readonly #writer: ReplyWriter;
  readonly #uid: number;
  readonly #gid: number;

  constructor(table: InodeTable, options: FuseMountOptions, writer: ReplyWriter) {
    this.table = table;
    this.#options = options;
    this.#writer = writer;
    this.#uid = options.uid ?? process.getuid?.() ?? 0;
    this.#gid = options.gid ?? process.getgid?.() ?? 0;
  }

  inode(nodeid: bigint): Inode {
    const inode = this.table.get(nodeid);
    // A nodeid the kernel holds but the table lost (state gone): ESTALE makes the VFS look it up again.
    if (inode === undefined) throw new Errnum(Errno.ESTALE);
    return inode;
  }

  attributes(nodeid: bigint, attributes: FileAttributes): NodeAttributes {
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
  observeVersion(inode: Inode, attributes: FileAttributes): void {
    if (attributes.type !== 'file') return;
    if (inode.cachedVersion !== undefined && inode.cachedVersion !== attributes.version) {
      this.table.setCachedVersion(inode, undefined);
      this.#writer.notify(NotifyCode.INVAL_INODE, encodeNotifyInvalInode(inode.nodeid, 0n, 0n));
    }
  }

  /** Remembers `path` (a lookup the kernel will FORGET) and gives its entry_out fields. */
  entry(path: string, attributes: FileAttributes): EntryReply {
    const inode = this.table.remember(path, attributes.type);
    this.observeVersion(inode, attributes);
    return {
      nodeid: inode.nodeid,
      generation: inode.generation,
      entryTimeoutSeconds: this.#options.entryTimeoutSeconds,
      attrTimeoutSeconds: this.#options.attrTimeoutSeconds,
      attr: this.attributes(inode.nodeid, attributes),
    };
  }

  entryOut(path: string, attributes: FileAttributes): Buffer {
    return encodeEntryOut(this.entry(path, attributes));
  }
}
