import { TideError } from '../lib/index.ts';

export type UfsErrorCode =
  | 'ERR_UFS_NOT_FOUND'
  | 'ERR_UFS_NOT_A_DIRECTORY'
  | 'ERR_UFS_IS_A_DIRECTORY'
  | 'ERR_UFS_ACCESS_DENIED'
  | 'ERR_UFS_BUCKET_NOT_FOUND'
  | 'ERR_UFS_UNREACHABLE'
  | 'ERR_UFS_TIMEOUT'
  | 'ERR_UFS_VERSION_CHANGED'
  | 'ERR_UFS_BAD_CONFIG'
  | 'ERR_UFS_UNSUPPORTED'
  | 'ERR_UFS_REMOTE'
  | 'ERR_UFS_TOO_MANY_ENTRIES'
  | 'ERR_UFS_ABORTED';

/** A failure of an under file system. `reason` is the CamelCase condition reason the Dataset shows. */
export class UfsError extends TideError<UfsErrorCode> {
  get reason(): string {
    return REASONS[this.code];
  }
}

const REASONS: Record<UfsErrorCode, string> = {
  ERR_UFS_NOT_FOUND: 'NotFound',
  ERR_UFS_NOT_A_DIRECTORY: 'NotADirectory',
  ERR_UFS_IS_A_DIRECTORY: 'IsADirectory',
  ERR_UFS_ACCESS_DENIED: 'AccessDenied',
  ERR_UFS_BUCKET_NOT_FOUND: 'BucketNotFound',
  ERR_UFS_UNREACHABLE: 'OriginUnreachable',
  ERR_UFS_TIMEOUT: 'OriginTimeout',
  ERR_UFS_VERSION_CHANGED: 'FileChanged',
  ERR_UFS_BAD_CONFIG: 'InvalidMountOptions',
  ERR_UFS_UNSUPPORTED: 'UnsupportedScheme',
  ERR_UFS_REMOTE: 'OriginError',
  ERR_UFS_TOO_MANY_ENTRIES: 'TooManyEntries',
  ERR_UFS_ABORTED: 'Aborted',
};
