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
export { HttpUfs, type HttpUfsOptions } from './http-ufs.ts';
export { DEFAULT_HTTP_TIMEOUTS, type HttpTimeouts } from '../http/index.ts';
export { S3Ufs, type S3UfsOptions } from './s3-ufs.ts';
export { UndiciRequestHandler } from './undici-request-handler.ts';
export { parseS3Location, S3_OPTION_NAMES, type S3Location, type S3Flavour } from './s3-config.ts';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.ts';
export { normaliseUfsPath } from './paths.ts';
export {
  createDatasetNamespace,
  datasetMountPaths,
  type DatasetNamespace,
  type NamespaceMount,
  type ResolvedPath,
} from './dataset-namespace.ts';
