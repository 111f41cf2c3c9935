/**
 * Facts of the kernel FUSE protocol (include/uapi/linux/fuse.h, protocol 7.31 to 7.45) and the
 * codecs for the few structures this filesystem reads and writes. All integers are little-endian
 * host order (x86-64 and arm64); every structure is padded to 8 bytes by the kernel header.
 */

export const FUSE_KERNEL_VERSION = 7;
/** The newest minor version whose structures this server knows. */
export const FUSE_MAX_MINOR = 45;
/** The oldest minor version this server accepts (Linux 5.4, FUSE_MAX_PAGES and friends present). */
export const FUSE_MIN_MINOR = 31;
export const FUSE_ROOT_ID = 1;
/** fuse.h: "The read buffer is required to be at least 8k". */
export const FUSE_MIN_READ_BUFFER = 8192;
/** The kernel marks resent requests with the high bit of `unique` (7.40, FUSE_UNIQUE_RESEND). */
export const FUSE_UNIQUE_RESEND = 1n << 63n;

export const Opcode = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
  COPY_FILE_RANGE_64: 53,
} as const;
export type OpcodeName = keyof typeof Opcode;

const OPCODE_NAMES = new Map<number, OpcodeName>(
  (Object.entries(Opcode) as [OpcodeName, number][]).map(([name, value]) => [value, name]),
);

/** The name of an opcode for logs, `OP_<n>` for one this server does not know. */
export function opcodeName(opcode: number): string {
  return OPCODE_NAMES.get(opcode) ?? `OP_${opcode}`;
}

/** fuse_notify_code: unsolicited messages, sent with unique 0 and the code in `error`. */
export const NotifyCode = {
  POLL: 1,
  INVAL_INODE: 2,
  INVAL_ENTRY: 3,
  STORE: 4,
  RETRIEVE: 5,
  DELETE: 6,
  /** 7.40: move every request the server has read but not answered back to the pending queue. */
  RESEND: 7,
  INC_EPOCH: 8,
} as const;

/** INIT flags; bits 32..63 travel in `flags2` when FUSE_INIT_EXT is set (7.36). */
export const InitFlag = {
  ASYNC_READ: 1n << 0n,
  POSIX_LOCKS: 1n << 1n,
  ATOMIC_O_TRUNC: 1n << 3n,
  EXPORT_SUPPORT: 1n << 4n,
  BIG_WRITES: 1n << 5n,
  DONT_MASK: 1n << 6n,
  SPLICE_WRITE: 1n << 7n,
  SPLICE_MOVE: 1n << 8n,
  SPLICE_READ: 1n << 9n,
  FLOCK_LOCKS: 1n << 10n,
  HAS_IOCTL_DIR: 1n << 11n,
  AUTO_INVAL_DATA: 1n << 12n,
  DO_READDIRPLUS: 1n << 13n,
  READDIRPLUS_AUTO: 1n << 14n,
  ASYNC_DIO: 1n << 15n,
  WRITEBACK_CACHE: 1n << 16n,
  NO_OPEN_SUPPORT: 1n << 17n,
  PARALLEL_DIROPS: 1n << 18n,
  HANDLE_KILLPRIV: 1n << 19n,
  POSIX_ACL: 1n << 20n,
  ABORT_ERROR: 1n << 21n,
  MAX_PAGES: 1n << 22n,
  CACHE_SYMLINKS: 1n << 23n,
  NO_OPENDIR_SUPPORT: 1n << 24n,
  EXPLICIT_INVAL_DATA: 1n << 25n,
  MAP_ALIGNMENT: 1n << 26n,
  SUBMOUNTS: 1n << 27n,
  HANDLE_KILLPRIV_V2: 1n << 28n,
  SETXATTR_EXT: 1n << 29n,
  INIT_EXT: 1n << 30n,
  SECURITY_CTX: 1n << 32n,
  HAS_INODE_DAX: 1n << 33n,
  CREATE_SUPP_GROUP: 1n << 34n,
  HAS_EXPIRE_ONLY: 1n << 35n,
  DIRECT_IO_ALLOW_MMAP: 1n << 36n,
  PASSTHROUGH: 1n << 37n,
  NO_EXPORT_SUPPORT: 1n << 38n,
  /** The kernel can resend the requests a dead server had read (NotifyCode.RESEND). */
  HAS_RESEND: 1n << 39n,
  ALLOW_IDMAP: 1n << 40n,
  OVER_IO_URING: 1n << 41n,
  REQUEST_TIMEOUT: 1n << 42n,
} as const;

export const OpenFlag = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
} as const;

/** Linux errno values the server answers with (asm-generic/errno*.h). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENODATA: 61,
  EPROTO: 71,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  ESTALE: 116,
} as const;

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
/** d_type values for fuse_dirent.type: the file-type bits of the mode, shifted down. */
export const DT_DIR = S_IFDIR >> 12;
export const DT_REG = S_IFREG >> 12;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
export const INIT_OUT_SIZE = 64;
export const OPEN_OUT_SIZE = 16;
export const STATFS_OUT_SIZE = 80;
/** fuse_dirent without its name: ino, off, namelen, type. */
export const DIRENT_BASE_SIZE = 24;

/** fuse_in_header, decoded. `unique` keeps the resend bit so that the reply echoes it. */
export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

export function decodeInHeader(buffer: Buffer): InHeader {
  return {
    len: buffer.readUInt32LE(0),
    opcode: buffer.readUInt32LE(4),
    unique: buffer.readBigUInt64LE(8),
    nodeid: buffer.readBigUInt64LE(16),
    uid: buffer.readUInt32LE(24),
    gid: buffer.readUInt32LE(28),
    pid: buffer.readUInt32LE(32),
  };
}

export function encodeOutHeader(options: { length: number; error: number; unique: bigint }): Buffer {
  const header = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  header.writeUInt32LE(options.length, 0);
  // The kernel wants the negated errno (0 for success, a positive notify code for notifications).
  header.writeInt32LE(options.error, 4);
  header.writeBigUInt64LE(options.unique, 8);
  return header;
}

/** The attributes of one node as the kernel wants them in fuse_attr. */
export interface NodeAttributes {
  ino: bigint;
  sizeBytes: number;
  mtimeMs: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  blockSizeBytes: number;
}

export function writeAttr(target: Buffer, offset: number, attr: NodeAttributes): void {
  const seconds = Math.floor(attr.mtimeMs / 1000);
  const nanos = Math.floor((attr.mtimeMs - seconds * 1000) * 1e6);
  target.writeBigUInt64LE(attr.ino, offset);
  target.writeBigUInt64LE(BigInt(attr.sizeBytes), offset + 8);
  target.writeBigUInt64LE(BigInt(Math.ceil(attr.sizeBytes / 512)), offset + 16);
  for (const field of [24, 32, 40]) target.writeBigUInt64LE(BigInt(Math.max(0, seconds)), offset + field);
  for (const field of [48, 52, 56])
    target.writeUInt32LE(Math.max(0, Math.min(999_999_999, nanos)), offset + field);
  target.writeUInt32LE(attr.mode, offset + 60);
  target.writeUInt32LE(attr.nlink, offset + 64);
  target.writeUInt32LE(attr.uid, offset + 68);
  target.writeUInt32LE(attr.gid, offset + 72);
  target.writeUInt32LE(0, offset + 76); // rdev
  target.writeUInt32LE(attr.blockSizeBytes, offset + 80);
  target.writeUInt32LE(0, offset + 84); // flags (FUSE_ATTR_SUBMOUNT, FUSE_ATTR_DAX): none
}

/** A cache timeout as the kernel's (seconds, nanoseconds) pair. */
export function splitSeconds(seconds: number): [bigint, number] {
  const whole = Math.floor(seconds);
  return [BigInt(whole), Math.floor((seconds - whole) * 1e9)];
}

export interface EntryReply {
  nodeid: bigint;
  generation: bigint;
  entryTimeoutSeconds: number;
  attrTimeoutSeconds: number;
  attr: NodeAttributes;
}

export function writeEntryOut(target: Buffer, offset: number, entry: EntryReply): void {
  const [entrySeconds, entryNanos] = splitSeconds(entry.entryTimeoutSeconds);
  const [attrSeconds, attrNanos] = splitSeconds(entry.attrTimeoutSeconds);
  target.writeBigUInt64LE(entry.nodeid, offset);
  target.writeBigUInt64LE(entry.generation, offset + 8);
  target.writeBigUInt64LE(entrySeconds, offset + 16);
  target.writeBigUInt64LE(attrSeconds, offset + 24);
  target.writeUInt32LE(entryNanos, offset + 32);
  target.writeUInt32LE(attrNanos, offset + 36);
  writeAttr(target, offset + 40, entry.attr);
}

export function encodeEntryOut(entry: EntryReply): Buffer {
  const body = Buffer.alloc(ENTRY_OUT_SIZE);
  writeEntryOut(body, 0, entry);
  return body;
}

/** A negative entry: nodeid 0 with a timeout makes the kernel cache "does not exist" (fuse.h). */
export function encodeNegativeEntryOut(timeoutSeconds: number): Buffer {
  const body = Buffer.alloc(ENTRY_OUT_SIZE);
  const [seconds, nanos] = splitSeconds(timeoutSeconds);
  body.writeBigUInt64LE(seconds, 16);
  body.writeUInt32LE(nanos, 32);
  return body;
}

export function encodeAttrOut(attr: NodeAttributes, timeoutSeconds: number): Buffer {
  const body = Buffer.alloc(ATTR_OUT_SIZE);
  const [seconds, nanos] = splitSeconds(timeoutSeconds);
  body.writeBigUInt64LE(seconds, 0);
  body.writeUInt32LE(nanos, 8);
  writeAttr(body, 16, attr);
  return body;
}

export function encodeOpenOut(fh: bigint, openFlags: number): Buffer {
  const body = Buffer.alloc(OPEN_OUT_SIZE);
  body.writeBigUInt64LE(fh, 0);
  body.writeUInt32LE(openFlags, 8);
  return body;
}

/** fuse_init_in: flags2 exists only when the kernel sets FUSE_INIT_EXT (7.36). */
export interface InitIn {
  major: number;
  minor: number;
  maxReadaheadBytes: number;
  flags: bigint;
}

export function decodeInitIn(body: Buffer): InitIn {
  const low = BigInt(body.readUInt32LE(12));
  const flags2 = (low & InitFlag.INIT_EXT) !== 0n && body.length >= 20 ? BigInt(body.readUInt32LE(16)) : 0n;
  return {
    major: body.readUInt32LE(0),
    minor: body.readUInt32LE(4),
    maxReadaheadBytes: body.readUInt32LE(8),
    flags: low | (flags2 << 32n),
  };
}

export interface InitOut {
  major: number;
  minor: number;
  maxReadaheadBytes: number;
  flags: bigint;
  maxBackground: number;
  congestionThreshold: number;
  maxWriteBytes: number;
  timeGranularityNs: number;
  maxPages: number;
}

export function encodeInitOut(init: InitOut): Buffer {
  const body = Buffer.alloc(INIT_OUT_SIZE);
  body.writeUInt32LE(init.major, 0);
  body.writeUInt32LE(init.minor, 4);
  body.writeUInt32LE(init.maxReadaheadBytes, 8);
  body.writeUInt32LE(Number(init.flags & 0xffff_ffffn), 12);
  body.writeUInt16LE(init.maxBackground, 16);
  body.writeUInt16LE(init.congestionThreshold, 18);
  body.writeUInt32LE(init.maxWriteBytes, 20);
  body.writeUInt32LE(init.timeGranularityNs, 24);
  body.writeUInt16LE(init.maxPages, 28);
  body.writeUInt16LE(0, 30); // map_alignment: DAX only
  body.writeUInt32LE(Number((init.flags >> 32n) & 0xffff_ffffn), 32);
  return body;
}

export function encodeStatfsOut(options: { blocks: number; files: number; blockSizeBytes: number }): Buffer {
  const body = Buffer.alloc(STATFS_OUT_SIZE);
  body.writeBigUInt64LE(BigInt(options.blocks), 0); // blocks
  body.writeBigUInt64LE(0n, 8); // bfree: read-only, nothing free
  body.writeBigUInt64LE(0n, 16); // bavail
  body.writeBigUInt64LE(BigInt(options.files), 24);
  body.writeBigUInt64LE(0n, 32); // ffree
  body.writeUInt32LE(options.blockSizeBytes, 40); // bsize
  body.writeUInt32LE(255, 44); // namelen
  body.writeUInt32LE(options.blockSizeBytes, 48); // frsize
  return body;
}

const align8 = (value: number): number => (value + 7) & ~7;

/** Bytes one fuse_dirent takes for a name of `nameBytes`, padded to 8. */
export function direntSize(nameBytes: number): number {
  return align8(DIRENT_BASE_SIZE + nameBytes);
}

/** Bytes one fuse_direntplus takes: an entry_out, then a dirent. */
export function direntPlusSize(nameBytes: number): number {
  return align8(ENTRY_OUT_SIZE + DIRENT_BASE_SIZE + nameBytes);
}

export function writeDirent(
  target: Buffer,
  offset: number,
  dirent: { ino: bigint; nextOffset: number; type: number; name: Buffer },
): number {
  target.writeBigUInt64LE(dirent.ino, offset);
  target.writeBigUInt64LE(BigInt(dirent.nextOffset), offset + 8);
  target.writeUInt32LE(dirent.name.length, offset + 16);
  target.writeUInt32LE(dirent.type, offset + 20);
  dirent.name.copy(target, offset + DIRENT_BASE_SIZE);
  const size = direntSize(dirent.name.length);
  target.fill(0, offset + DIRENT_BASE_SIZE + dirent.name.length, offset + size);
  return size;
}

export function encodeNotifyInvalInode(nodeid: bigint, offset: bigint, length: bigint): Buffer {
  const body = Buffer.alloc(24);
  body.writeBigUInt64LE(nodeid, 0);
  body.writeBigInt64LE(offset, 8);
  body.writeBigInt64LE(length, 16);
  return body;
}

export function encodeNotifyInvalEntry(parent: bigint, name: Buffer): Buffer {
  // fuse_notify_inval_entry_out, then the name and its terminating NUL (fuse_notify_inval_entry).
  const body = Buffer.alloc(16 + name.length + 1);
  body.writeBigUInt64LE(parent, 0);
  body.writeUInt32LE(name.length, 8);
  body.writeUInt32LE(0, 12);
  name.copy(body, 16);
  return body;
}

/** Reads the NUL-terminated name that LOOKUP and friends carry. */
export function readName(body: Buffer, offset = 0): string {
  const end = body.indexOf(0, offset);
  return body.toString('utf8', offset, end === -1 ? body.length : end);
}
