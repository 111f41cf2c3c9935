// The handlers of the FUSE opcodes a read-only filesystem answers, by opcode (INIT is the session's).
import { DirectoryOperations } from './directory-operations.ts';
import { Errnum } from './errno.ts';
import { FileOperations } from './file-operations.ts';
import { PAGE_SIZE } from './init.ts';
import type { OperationContext } from './operation-context.ts';
import {
  Errno,
  Opcode,
  encodeAttrOut,
  encodeNegativeEntryOut,
  encodeStatfsOut,
  readName,
} from './protocol.ts';
import type { Handler, Request } from './request.ts';
import { childPath } from './source.ts';

const W_OK = 2;

/** Write-type operations: a read-only filesystem answers them EROFS. */
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

/** The dispatch table: every opcode answered here; any other is ENOSYS. */
export function createOperationHandlers(context: OperationContext): Map<number, Handler> {
  const { options, nodes, writer } = context;
  const files = new FileOperations(context);
  const directories = new DirectoryOperations(context);
  const handlers = new Map<number, Handler>();
  const on = (opcode: number, handler: Handler): void => {
    handlers.set(opcode, handler);
  };
  const replyEmpty = (request: Request): void => {
    writer.reply(request.header.unique);
  };
  on(Opcode.DESTROY, replyEmpty);
  on(Opcode.LOOKUP, (request) => lookup(context, request));
  on(Opcode.GETATTR, (request) => getattr(context, request));
  on(Opcode.OPEN, (request) => files.open(request));
  on(Opcode.READ, (request) => files.read(request));
  on(Opcode.RELEASE, (request) => {
    files.release(request);
  });
  on(Opcode.FLUSH, replyEmpty);
  on(Opcode.FSYNC, replyEmpty);
  on(Opcode.OPENDIR, (request) => directories.opendir(request));
  on(Opcode.READDIR, (request) => directories.readdir(request, false));
  on(Opcode.READDIRPLUS, (request) => directories.readdir(request, true));
  on(Opcode.RELEASEDIR, (request) => {
    directories.releasedir(request);
  });
  on(Opcode.FSYNCDIR, replyEmpty);
  on(Opcode.STATFS, (request) => statfs(context, request));
  on(Opcode.ACCESS, (request) => {
    // Without default_permissions the kernel asks; with a read-only tree only writing is refused.
    if ((request.body.readUInt32LE(0) & W_OK) !== 0) throw new Errnum(Errno.EROFS);
    nodes.inode(request.header.nodeid);
    writer.reply(request.header.unique);
  });
  // No source has extended attributes, so by default (no_xattr) the first GETXATTR/LISTXATTR is
  // answered ENOSYS: fs/fuse/xattr.c then sets fc->no_getxattr / no_listxattr and answers every
  // later call EOPNOTSUPP itself, which ls, cp -a and tar take as "no xattrs" (as on vfat or tmpfs
  // without user xattrs). ENODATA would be asked again per file: two round trips per `ls -l` entry.
  on(Opcode.GETXATTR, () => {
    throw new Errnum(options.noXattr ? Errno.ENOSYS : Errno.ENODATA);
  });
  on(Opcode.LISTXATTR, (request) => {
    if (options.noXattr) throw new Errnum(Errno.ENOSYS);
    // fuse.h: with size 0 the reply is fuse_getxattr_out giving the size of the (empty) list.
    if (request.body.readUInt32LE(0) === 0) writer.reply(request.header.unique, Buffer.alloc(8));
    else writer.reply(request.header.unique);
  });
  on(Opcode.READLINK, () => {
    throw new Errnum(Errno.EINVAL);
  });
  for (const opcode of WRITE_OPCODES) {
    on(opcode, () => {
      throw new Errnum(Errno.EROFS);
    });
  }
  return handlers;
}

async function lookup({ source, options, nodes, writer }: OperationContext, request: Request): Promise<void> {
  const parent = nodes.inode(request.header.nodeid);
  if (parent.type !== 'directory') throw new Errnum(Errno.ENOTDIR);
  const name = readName(request.body);
  if (Buffer.byteLength(name) > 255) throw new Errnum(Errno.ENAMETOOLONG);
  const path = childPath(parent.path, name);
  const attributes = await source.getattr(path, request.signal);
  if (attributes === undefined) {
    if (options.negativeTimeoutSeconds > 0) {
      writer.reply(request.header.unique, encodeNegativeEntryOut(options.negativeTimeoutSeconds));
      return;
    }
    throw new Errnum(Errno.ENOENT);
  }
  writer.reply(request.header.unique, nodes.entryOut(path, attributes));
}

async function getattr(
  { source, options, nodes, writer }: OperationContext,
  request: Request,
): Promise<void> {
  const inode = nodes.inode(request.header.nodeid);
  const attributes = await source.getattr(inode.path, request.signal);
  if (attributes === undefined) throw new Errnum(Errno.ENOENT);
  // The path now names something of another type: this node is gone for good.
  if (attributes.type !== inode.type) throw new Errnum(Errno.ESTALE);
  nodes.observeVersion(inode, attributes);
  writer.reply(
    request.header.unique,
    encodeAttrOut(nodes.attributes(inode.nodeid, attributes), options.attrTimeoutSeconds),
  );
}

async function statfs({ source, writer }: OperationContext, request: Request): Promise<void> {
  const totals = (await source.statfs?.(request.signal)) ?? { sizeBytes: 0, files: 0 };
  writer.reply(
    request.header.unique,
    encodeStatfsOut({
      blocks: Math.ceil(totals.sizeBytes / PAGE_SIZE),
      files: totals.files,
      blockSizeBytes: PAGE_SIZE,
    }),
  );
}
