export type {
  UnderFileSystem,
  UfsEntry,
  UfsMountConfig,
  ListOptions,
  ReadOptions,
  ByteRange,
} from './types.ts';
export { UfsError, type UfsErrorCode } from './errors.ts';
export { createUnderFileSystem, type UfsDependencies } from './create-under-file-system.ts';
export { LocalUfs, type LocalUfsOptions } from './local-ufs.ts';
export { normaliseUfsPath } from './paths.ts';
