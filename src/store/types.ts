import type { ObjectMeta } from '../api/index.ts';

/** Any stored resource: the API fields plus whatever its kind has (spec, status, data …). */
export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta & { name: string; namespace: string };
  spec?: unknown;
  status?: unknown;
  [field: string]: unknown;
}

/** Identifies one object of a kind. */
export interface ObjectKey {
  kind: string;
  namespace: string;
  name: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchEvent<T extends StoredObject = StoredObject> {
  type: WatchEventType;
  object: T;
}

export interface ListOptions {
  namespace?: string;
  /** Equality selector `a=b,c=d`. */
  labelSelector?: string;
  signal?: AbortSignal;
}

export interface WatchOptions {
  namespace?: string;
  /**
   * Deliver changes after this version. A version older than the store keeps fails with
   * ERR_STORE_GONE (HTTP 410 in Kubernetes): list again and watch from the list's version.
   */
  resourceVersion?: string;
  signal?: AbortSignal;
}

/** A list and the store version it was read at, to watch from. */
export interface ObjectList<T extends StoredObject = StoredObject> {
  items: T[];
  resourceVersion: string;
}

/**
 * The resource store the reconcilers use, with Kubernetes semantics: optimistic concurrency on
 * `metadata.resourceVersion`, a status subresource, finalizers with `deletionTimestamp`, and
 * garbage collection of dependents by owner references. Implemented on an embedded database here
 * and on the API server in Kubernetes mode.
 */
export interface ResourceStore {
  get<T extends StoredObject>(key: ObjectKey, options?: { signal?: AbortSignal }): Promise<T | undefined>;
  list<T extends StoredObject>(kind: string, options?: ListOptions): Promise<ObjectList<T>>;
  watch<T extends StoredObject>(kind: string, options?: WatchOptions): AsyncIterable<WatchEvent<T>>;
  /** @throws {StoreError} ERR_STORE_ALREADY_EXISTS */
  create<T extends StoredObject>(object: T, options?: { signal?: AbortSignal }): Promise<T>;
  /**
   * Replaces metadata (labels, annotations, finalizers, owners) and spec; status is kept.
   * @throws {StoreError} ERR_STORE_CONFLICT when `metadata.resourceVersion` is stale; ERR_STORE_NOT_FOUND
   */
  update<T extends StoredObject>(object: T, options?: { signal?: AbortSignal }): Promise<T>;
  /** Replaces status only. @throws {StoreError} ERR_STORE_CONFLICT, ERR_STORE_NOT_FOUND */
  updateStatus<T extends StoredObject>(object: T, options?: { signal?: AbortSignal }): Promise<T>;
  /**
   * Deletes at once when the object has no finalizers, else marks it with `deletionTimestamp`;
   * dependents (owner references) are deleted in the background.
   * @throws {StoreError} ERR_STORE_NOT_FOUND
   */
  delete(key: ObjectKey, options?: { signal?: AbortSignal }): Promise<void>;
}
