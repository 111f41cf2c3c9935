/**
 * The FUSE component: a read-only dataset filesystem speaking the kernel protocol directly on
 * /dev/fuse (protocol 7.31–7.45, no libfuse), and the supervisor that keeps a mount alive across
 * server crashes.
 *
 * - `FileSource` (source.ts) is what a mount serves; `createLocalDirectorySource` serves a
 *   directory, other kinds load through `source.module` (source-registry.ts).
 * - `FuseServer` (server.ts) answers requests concurrently; the kernel page cache is kept while a
 *   file's version is unchanged and dropped by notification when it changes. The session reads
 *   requests through device-reader.ts, answers through reply-writer.ts and dispatches them to the
 *   opcode handlers of operations.ts (files: file-operations.ts, directories:
 *   directory-operations.ts); errno.ts maps failures to errnos, resume-state.ts restarts a session.
 * - `runSupervisor` (supervisor.ts) holds the device and the mount and restarts the server process
 *   (server-main.ts) on the same connection; `mount-main.ts` is the process the platform starts.
 */
export type { FileSource, FileAttributes, DirectoryEntry, LentRead, SourceReadOptions } from './source.ts';
export { childPath } from './source.ts';
export { createLocalDirectorySource, type LocalDirectorySourceOptions } from './local-source.ts';
export { FuseError, type FuseErrorCode } from './errors.ts';
export {
  parseFuseArgs,
  metadataTtlSecondsOf,
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
