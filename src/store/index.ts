export type {
  ResourceStore,
  StoredObject,
  ObjectKey,
  ObjectList,
  WatchEvent,
  WatchEventType,
  ListOptions,
  WatchOptions,
} from './types.ts';
export { StoreError, type StoreErrorCode } from './errors.ts';
export { SqliteStore, keyOf, describeKey, type SqliteStoreOptions } from './sqlite-store.ts';
export { AsyncQueue } from './async-queue.ts';
export { matchesSelector } from './labels.ts';
export { KubeStore, type KubeStoreOptions } from './kube-store.ts';
