import { FUSE_KERNEL_VERSION, FUSE_MAX_MINOR, FUSE_MIN_MINOR, InitFlag } from './protocol.ts';
import type { InitIn, InitOut } from './protocol.ts';

/** What INIT settled, kept in the state directory so that a restarted server needs no new INIT. */
export interface NegotiatedInit {
  minor: number;
  /** Flags the kernel offered, as a decimal bigint (HAS_RESEND tells whether NOTIFY_RESEND works). */
  kernelFlags: string;
  /** Flags both sides use, as a decimal bigint. */
  flags: string;
  maxWriteBytes: number;
  maxPages: number;
  maxReadaheadBytes: number;
}

export interface InitSettings {
  maxWriteBytes: number;
  /** The max_read mount option; undefined = as large as max_pages allows. */
  maxReadBytes: number | undefined;
  maxReadaheadBytes: number;
  maxBackground: number;
  congestionThreshold: number;
}

export type InitOutcome =
  /** fuse.h: the kernel speaks a newer major; answer with ours only and wait for a new INIT. */
  | { kind: 'other-major'; reply: { major: number; minor: number } }
  /** Older than 7.31 (or major < 7): answer EPROTO. */
  | { kind: 'refuse'; major: number; minor: number }
  | { kind: 'accept'; init: NegotiatedInit; reply: InitOut };

/** The page the kernel counts in: the unit of max_pages, of read buffers and of statfs blocks. */
export const PAGE_SIZE = 4096;
/** FUSE_MAX_MAX_PAGES: 256 pages, so a READ carries up to 1 MiB. */
export const MAX_PAGES = 256;

/** The INIT flags this server asks for, when the kernel offers them. */
export const WANTED_INIT_FLAGS =
  InitFlag.ASYNC_READ |
  InitFlag.BIG_WRITES |
  InitFlag.AUTO_INVAL_DATA |
  InitFlag.DO_READDIRPLUS |
  InitFlag.READDIRPLUS_AUTO |
  InitFlag.ASYNC_DIO |
  InitFlag.PARALLEL_DIROPS |
  InitFlag.MAX_PAGES |
  InitFlag.INIT_EXT |
  InitFlag.HAS_RESEND;

/**
 * Negotiates FUSE INIT (fuse.h "Version negotiation"): with major 7 both sides use the smaller
 * minor, so a 7.45 kernel gets 7.45 and a 7.31 kernel (Linux 5.4) gets 7.31. Flags are those this
 * server wants among those the kernel offers; flags2 (bits 32..63) only exist with INIT_EXT (7.36).
 */
export function negotiateInit(offered: InitIn, settings: InitSettings): InitOutcome {
  if (offered.major > FUSE_KERNEL_VERSION) {
    return { kind: 'other-major', reply: { major: FUSE_KERNEL_VERSION, minor: FUSE_MAX_MINOR } };
  }
  if (offered.major < FUSE_KERNEL_VERSION || offered.minor < FUSE_MIN_MINOR) {
    return { kind: 'refuse', major: offered.major, minor: offered.minor };
  }
  const minor = Math.min(offered.minor, FUSE_MAX_MINOR);
  const flags = offered.flags & WANTED_INIT_FLAGS;
  const requestedPages =
    settings.maxReadBytes === undefined ? MAX_PAGES : Math.ceil(settings.maxReadBytes / PAGE_SIZE);
  const maxPages = Math.max(1, Math.min(MAX_PAGES, requestedPages));
  // The kernel never raises readahead above what it offered; read_ahead_kb in sysfs can (mount.ts).
  const maxReadaheadBytes = Math.min(offered.maxReadaheadBytes, settings.maxReadaheadBytes);
  return {
    kind: 'accept',
    init: {
      minor,
      kernelFlags: offered.flags.toString(),
      flags: flags.toString(),
      maxWriteBytes: settings.maxWriteBytes,
      maxPages,
      maxReadaheadBytes,
    },
    reply: {
      major: FUSE_KERNEL_VERSION,
      minor,
      maxReadaheadBytes,
      flags,
      maxBackground: settings.maxBackground,
      congestionThreshold: Math.min(settings.congestionThreshold, settings.maxBackground),
      maxWriteBytes: settings.maxWriteBytes,
      timeGranularityNs: 1,
      maxPages,
    },
  };
}
