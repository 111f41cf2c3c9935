export type { FileSource, FileAttributes, DirectoryEntry, SourceReadOptions } from './source.ts';
export { childPath } from './source.ts';
export { createLocalDirectorySource, type LocalDirectorySourceOptions } from './local-source.ts';
export { FuseError, type FuseErrorCode } from './errors.ts';
export {
  parseFuseArgs,
  DEFAULT_FUSE_OPTIONS,
  type FuseMountOptions,
  type ParsedFuseArgs,
} from './options.ts';
export { FuseServer, type FuseServerOptions } from './server.ts';
export { negotiateInit, type NegotiatedInit, type InitOutcome, type InitSettings } from './init.ts';
export { InodeTable, type Inode } from './inode-table.ts';
export {
  openFuseDevice,
  mountFuse,
  unmount,
  clearStaleMount,
  findMount,
  setReadAhead,
  mountData,
} from './mount.ts';
export {
  runSupervisor,
  type SupervisorOptions,
  type SupervisorEvent,
  type ServerProcessConfig,
} from './supervisor.ts';
export { validateMountConfig, type MountConfig, type SourceConfig, type ValidMountConfig } from './config.ts';
export {
  registerFileSourceKind,
  createFileSource,
  type FileSourceFactory,
  type SourceFactoryContext,
} from './source-registry.ts';
