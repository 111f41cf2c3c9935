import { TideError } from '../lib/index.ts';

export type FuseErrorCode =
  /** /dev/fuse could not be opened, read or written. */
  | 'ERR_FUSE_DEVICE'
  /** The kernel spoke a protocol version this server does not accept. */
  | 'ERR_FUSE_PROTOCOL'
  /** mount(2) or its helper failed, or the target is already served by a live mount. */
  | 'ERR_FUSE_MOUNT'
  /** The mount could not be removed. */
  | 'ERR_FUSE_UNMOUNT'
  /** A mount configuration or option that cannot be used. */
  | 'ERR_FUSE_BAD_CONFIG'
  /** The state a restarted server needs (INIT parameters, node table) is missing or corrupt. */
  | 'ERR_FUSE_STATE'
  /** A source failed for a reason that is not "no such file". */
  | 'ERR_FUSE_SOURCE';

/** A failure of the FUSE filesystem, its mount or its supervisor. */
export class FuseError extends TideError<FuseErrorCode> {}
