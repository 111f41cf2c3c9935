import { FuseError } from './errors.ts';

/** How a mount behaves, from libfuse-style options (`-o name[=value],…`). */
export interface FuseMountOptions {
  /**
   * `auto`: keep a file's kernel page cache across opens while its version is unchanged (libfuse's
   * auto_cache, the default). `always` (kernel_cache): keep it on every open; a version change that
   * the server learns of still drops it.
   */
  keepCache: 'auto' | 'always';
  /**
   * ro (default): mount with MS_RDONLY, so the VFS refuses writes before they reach the server. rw
   * leaves the flag off; the server still answers every write-type request EROFS today.
   */
  readOnlyMount: boolean;
  /**
   * no_xattr (the default): answer GETXATTR and LISTXATTR with ENOSYS once, after which the kernel
   * stops asking and returns EOPNOTSUPP itself (fs/fuse/xattr.c sets fc->no_getxattr and
   * fc->no_listxattr), as any filesystem without extended attributes does; `ls -l`, `cp -a` and
   * `tar` treat that as "no xattrs". `xattr` answers every call instead (ENODATA, an empty list),
   * which costs a round trip per call — `ls -l` makes two per entry — and gains nothing while no
   * source has extended attributes.
   */
  noXattr: boolean;
  /** direct_io: bypass the kernel page cache altogether. */
  directIo: boolean;
  attrTimeoutSeconds: number;
  entryTimeoutSeconds: number;
  negativeTimeoutSeconds: number;
  /**
   * metadata_ttl (Tide's own, like rclone's --dir-cache-time): how long the source may answer
   * listings and attributes from memory before asking the origin again. Undefined = the larger of
   * attr_timeout and entry_timeout, at least 5 s (see `metadataTtlSecondsOf`).
   */
  metadataTtlSeconds: number | undefined;
  allowOther: boolean;
  defaultPermissions: boolean;
  /** max_read: the largest READ the kernel sends (a mount option); undefined = 1 MiB (max_pages). */
  maxReadBytes: number | undefined;
  /** max_readahead: offered to the kernel in the INIT reply. */
  maxReadaheadBytes: number;
  /** read_ahead_kb written to the mount's /sys/class/bdi entry after mounting; undefined = leave it. */
  readAheadKb: number | undefined;
  maxBackground: number;
  congestionThreshold: number;
  fsname: string;
  subtype: string;
  /** Owner reported for every node; default the server's own. */
  uid: number | undefined;
  gid: number | undefined;
  /** Permission bits masked out of 0444 (files) and 0555 (directories). */
  umask: number;
}

export interface ParsedFuseArgs {
  options: FuseMountOptions;
  /** Options and arguments this server does not know; reported, never fatal. */
  unknown: string[];
  /** Known options that change nothing here (nonempty, big_writes, auto_unmount…). */
  ignored: string[];
}

export const DEFAULT_FUSE_OPTIONS: Readonly<FuseMountOptions> = Object.freeze({
  keepCache: 'auto',
  readOnlyMount: true,
  noXattr: true,
  directIo: false,
  attrTimeoutSeconds: 1,
  entryTimeoutSeconds: 1,
  negativeTimeoutSeconds: 0,
  metadataTtlSeconds: undefined,
  allowOther: false,
  defaultPermissions: false,
  maxReadBytes: undefined,
  maxReadaheadBytes: 4 * 1024 * 1024,
  readAheadKb: 4096,
  maxBackground: 64,
  congestionThreshold: 48,
  fsname: 'tide',
  subtype: 'tide',
  uid: undefined,
  gid: undefined,
  umask: 0o022,
});

/** libfuse options that are accepted for compatibility and change nothing in this server. */
const IGNORED = new Set([
  'nonempty',
  'big_writes',
  'large_read',
  'use_ino',
  'readdir_ino',
  'hard_remove',
  'auto_unmount',
  'async_read',
  'sync_read',
  'allow_root',
  'atomic_o_trunc',
  'splice_read',
  'splice_write',
  'splice_move',
  'no_remote_lock',
  'intr',
  'dev',
  'nodev',
  'suid',
  'nosuid',
  'exec',
  'noexec',
  'noatime',
  'atime',
  'relatime',
  'writeback_cache',
  'no_writeback_cache',
  'parallel_dirops',
  'blkdev',
  'debug',
]);

/** Splits one `-o` value at commas not escaped with a backslash (libfuse's fuse_opt rules). */
function splitOptions(value: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let index = 0; index < value.length; index += 1) {
    const char = value[index];
    if (char === '\\' && index + 1 < value.length) {
      current += value[index + 1] ?? '';
      index += 1;
    } else if (char === ',') {
      parts.push(current);
      current = '';
    } else {
      current += char ?? '';
    }
  }
  parts.push(current);
  return parts.filter((part) => part.length > 0);
}

function badValue(name: string, value: string | undefined, expected: string): FuseError {
  return new FuseError(
    'ERR_FUSE_BAD_CONFIG',
    `Cannot use FUSE option ${name} as its value must be ${expected}: current value is ${value === undefined ? 'missing' : JSON.stringify(value)}`,
  );
}

function seconds(name: string, value: string | undefined): number {
  const parsed = value === undefined || value.trim() === '' ? Number.NaN : Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) throw badValue(name, value, 'a number of seconds ≥ 0');
  return parsed;
}

function integer(name: string, value: string | undefined, radix = 10): number {
  const pattern = radix === 8 ? /^[0-7]+$/ : /^\d+$/;
  if (value === undefined || !pattern.test(value)) {
    throw badValue(name, value, radix === 8 ? 'an octal number' : 'a non-negative integer');
  }
  return Number.parseInt(value, radix);
}

/**
 * Parses mount options the way libfuse and the engines Fluid starts write them:
 * `-okernel_cache -oro -oattr_timeout=60`, `-o a,b`, `--fuse-opts=kernel_cache,max_read=131072`
 * (Alluxio), `--fuse-opts a,b`. Foreground and debug flags (`-f`, `-d`, `-s`) are ignored.
 * Unknown options are returned in `unknown`; a known option with a malformed value throws.
 * @throws {FuseError} ERR_FUSE_BAD_CONFIG for a malformed value.
 */
export function parseFuseArgs(args: readonly string[]): ParsedFuseArgs {
  const options: FuseMountOptions = { ...DEFAULT_FUSE_OPTIONS };
  const unknown: string[] = [];
  const ignored: string[] = [];
  const values: string[] = [];

  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index] ?? '';
    if (arg === '-o' || arg === '--fuse-opts' || arg === '--fuse-options') {
      const next = args[index + 1];
      if (next === undefined) {
        unknown.push(arg);
      } else {
        values.push(...splitOptions(next));
        index += 1;
      }
    } else if (arg.startsWith('-o')) {
      values.push(...splitOptions(arg.slice(2)));
    } else if (arg.startsWith('--fuse-opts=') || arg.startsWith('--fuse-options=')) {
      values.push(...splitOptions(arg.slice(arg.indexOf('=') + 1)));
    } else if (arg === '-f' || arg === '-d' || arg === '-s' || arg === '--foreground') {
      ignored.push(arg);
    } else {
      unknown.push(arg);
    }
  }

  for (const option of values) {
    const equals = option.indexOf('=');
    const name = equals === -1 ? option : option.slice(0, equals);
    const value = equals === -1 ? undefined : option.slice(equals + 1);
    switch (name) {
      case 'kernel_cache':
        options.keepCache = 'always';
        break;
      case 'auto_cache':
        options.keepCache = 'auto';
        break;
      case 'ro':
        options.readOnlyMount = true;
        break;
      case 'rw':
        options.readOnlyMount = false;
        break;
      case 'no_xattr':
        options.noXattr = true;
        break;
      case 'xattr':
        options.noXattr = false;
        break;
      case 'direct_io':
        options.directIo = true;
        break;
      case 'attr_timeout':
      case 'ac_attr_timeout':
        options.attrTimeoutSeconds = seconds(name, value);
        break;
      case 'entry_timeout':
        options.entryTimeoutSeconds = seconds(name, value);
        break;
      case 'negative_timeout':
        options.negativeTimeoutSeconds = seconds(name, value);
        break;
      case 'metadata_ttl':
        options.metadataTtlSeconds = seconds(name, value);
        break;
      case 'allow_other':
        options.allowOther = true;
        break;
      case 'default_permissions':
        options.defaultPermissions = true;
        break;
      case 'max_read': {
        const bytes = integer(name, value);
        if (bytes < 4096) throw badValue(name, value, 'at least 4096');
        options.maxReadBytes = bytes;
        break;
      }
      case 'max_readahead':
        options.maxReadaheadBytes = integer(name, value);
        break;
      case 'read_ahead_kb':
        options.readAheadKb = integer(name, value);
        break;
      case 'max_background': {
        const count = integer(name, value);
        if (count < 1 || count > 65535) throw badValue(name, value, 'between 1 and 65535');
        options.maxBackground = count;
        break;
      }
      case 'congestion_threshold': {
        const count = integer(name, value);
        if (count < 1 || count > 65535) throw badValue(name, value, 'between 1 and 65535');
        options.congestionThreshold = count;
        break;
      }
      case 'fsname':
        if (value === undefined || value === '') throw badValue(name, value, 'a name');
        options.fsname = value;
        break;
      case 'subtype':
        if (value === undefined || !/^[A-Za-z0-9_.-]+$/.test(value)) throw badValue(name, value, 'a word');
        options.subtype = value;
        break;
      case 'uid':
        options.uid = integer(name, value);
        break;
      case 'gid':
        options.gid = integer(name, value);
        break;
      case 'umask':
        options.umask = integer(name, value, 8) & 0o777;
        break;
      default:
        if (IGNORED.has(name) || name.startsWith('x-')) ignored.push(option);
        else unknown.push(option);
    }
  }
  options.congestionThreshold = Math.min(options.congestionThreshold, options.maxBackground);
  return { options, unknown, ignored };
}

/** The least time the source keeps metadata in memory when no metadata_ttl is given. */
const MIN_DEFAULT_METADATA_TTL_SECONDS = 5;

/**
 * How long a mount's source may serve listings and attributes from memory: metadata_ttl, else the
 * longer of the kernel's attribute and entry timeouts (a user who lets the kernel cache an entry
 * for 60 s accepts that staleness), and never under 5 s, so that `ls -lR` does not list the origin
 * twice. A change the platform learns of (a DataLoad's versions, new mounts) is dropped at once.
 */
export function metadataTtlSecondsOf(options: FuseMountOptions): number {
  return (
    options.metadataTtlSeconds ??
    Math.max(MIN_DEFAULT_METADATA_TTL_SECONDS, options.attrTimeoutSeconds, options.entryTimeoutSeconds)
  );
}
