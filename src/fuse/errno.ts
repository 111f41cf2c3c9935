// The mapping from a handler's failure to the POSIX errno its FUSE reply carries.
import { Errno } from './protocol.ts';

/** Replied and thrown by handlers to answer with an errno. */
export class Errnum extends Error {
  readonly errno: number;
  constructor(errno: number) {
    super(`errno ${errno}`);
    this.errno = errno;
  }
}

export function errnoOf(error: unknown): number {
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
