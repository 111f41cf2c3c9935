export { KubeClient, DEFAULT_FIELD_MANAGER } from './client.ts';
export type {
  KubeClientOptions,
  ReadOptions,
  ListOptions,
  WriteOptions,
  PatchOptions,
  PatchType,
  ApplyOptions,
  DeleteOptions,
  WatchOptions,
  RawRequestOptions,
} from './client.ts';
export { loadKubeConfig, parseKubeConfig } from './kubeconfig.ts';
export { inClusterConnection, SERVICE_ACCOUNT_DIR } from './in-cluster.ts';
export type { KubeConnection, LoadKubeConfigOptions, ParseKubeConfigOptions } from './kubeconfig.ts';
export {
  KubeError,
  KubeConfigError,
  KubeTransportError,
  KubeTimeoutError,
  KubeResponseError,
  KubeStatusError,
  KubeNotFoundError,
  KubeAlreadyExistsError,
  KubeConflictError,
  KubeGoneError,
  KubeInvalidError,
  statusToError,
} from './errors.ts';
export type { KubeErrorCode } from './errors.ts';
export { resourceType, apiVersionOf, builtin } from './resources.ts';
export { parseWatchStream } from './watch.ts';
export type {
  KubeObject,
  KubeList,
  ObjectMeta,
  OwnerReference,
  ManagedFieldsEntry,
  ListMeta,
  Status,
  StatusCause,
  Scale,
  WatchEvent,
  WatchEventType,
  ResourceType,
} from './types.ts';
