import { HPA_KIND, KINDS } from '../api/index.ts';
import {
  KubeError,
  apiVersionOf,
  builtin,
  resourceType,
  type KubeClient,
  type KubeObject,
  type ResourceType,
} from '../kube/index.ts';
import { StoreError, type StoreErrorCode } from './errors.ts';
import type {
  ListOptions,
  ObjectKey,
  ObjectList,
  ResourceStore,
  StoredObject,
  WatchEvent,
  WatchOptions,
} from './types.ts';

export interface KubeStoreOptions {
  client: KubeClient;
  /** Page size of lists; default 500, as client-go's pager. */
  pageSize?: number;
  /**
   * Server-side end of each watch request; default 300 s plus jitter (as client-go's reflector),
   * after which the caller resumes from the last version it saw.
   */
  watchTimeoutSeconds?: number;
}

interface KindType {
  type: ResourceType;
  /** Whether status is written through the `/status` subresource (Tide's CRDs) or not at all. */
  hasStatus: boolean;
}

/**
 * Where each kind the reconcilers use lives in the API: Tide's CRDs (with the CronHPA's), the core
 * Secret and Event, and the HorizontalPodAutoscalers a CronHPA may adjust.
 */
function kindTypes(): ReadonlyMap<string, KindType> {
  const types = new Map<string, KindType>();
  for (const info of KINDS) {
    if (!info.apiVersion.includes('/')) continue;
    types.set(info.kind, {
      type: resourceType(info.apiVersion, info.kind, info.plural, { namespaced: true }),
      hasStatus: true,
    });
  }
  types.set('Secret', { type: builtin.secrets, hasStatus: false });
  types.set('Event', { type: builtin.events, hasStatus: false });
  types.set(HPA_KIND, {
    type: resourceType('autoscaling/v2', HPA_KIND, 'horizontalpodautoscalers', { namespaced: true }),
    hasStatus: true,
  });
  return types;
}

const KUBE_TO_STORE: Partial<Record<string, StoreErrorCode>> = {
  ERR_KUBE_NOT_FOUND: 'ERR_STORE_NOT_FOUND',
  ERR_KUBE_ALREADY_EXISTS: 'ERR_STORE_ALREADY_EXISTS',
  ERR_KUBE_CONFLICT: 'ERR_STORE_CONFLICT',
  ERR_KUBE_GONE: 'ERR_STORE_GONE',
  ERR_KUBE_INVALID: 'ERR_STORE_INVALID',
  ERR_KUBE_BAD_REQUEST: 'ERR_STORE_INVALID',
};

/**
 * The ResourceStore on the Kubernetes API server, for the operator. Everything the embedded store
 * emulates is the API server's own here: optimistic concurrency on `resourceVersion`, the status
 * subresource, finalizers with `deletionTimestamp`, and the garbage collector of
 * kube-controller-manager for owner references. Watches follow the API concepts page "Efficient
 * detection of changes": resume from a version, BOOKMARK events, and 410 Gone (ERR_STORE_GONE)
 * when the version is no longer kept, after which the caller lists again.
 *
 * Errors of the API that have a store meaning become StoreErrors (404 → ERR_STORE_NOT_FOUND,
 * AlreadyExists → ERR_STORE_ALREADY_EXISTS, 409 Conflict → ERR_STORE_CONFLICT, 410 → ERR_STORE_GONE,
 * 400/422 → ERR_STORE_INVALID, with the KubeError as `cause`); the others (transport, timeouts,
 * 403, 5xx) pass through as KubeErrors.
 */
export class KubeStore implements ResourceStore {
  readonly #client: KubeClient;
  readonly #types = kindTypes();
  readonly #pageSize: number;
  readonly #watchTimeoutSeconds: number | undefined;

  constructor(options: KubeStoreOptions) {
    this.#client = options.client;
    this.#pageSize = options.pageSize ?? 500;
    this.#watchTimeoutSeconds = options.watchTimeoutSeconds;
  }

  /** The API resource of a kind. @throws {StoreError} ERR_STORE_INVALID for a kind the store does not hold */
  typeOf(kind: string): ResourceType {
    return this.#kind(kind).type;
  }

  async get<T extends StoredObject>(
    key: ObjectKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<T | undefined> {
    const { type } = this.#kind(key.kind);
    try {
      const object = await this.#client.get(type, key.name, {
        namespace: key.namespace,
        signal: options.signal,
      });
      return toStored(object, type) as T;
    } catch (error) {
      if (error instanceof KubeError && error.code === 'ERR_KUBE_NOT_FOUND') return undefined;
      throw mapError(error, `get ${describe(key)}`);
    }
  }

  async list<T extends StoredObject>(kind: string, options: ListOptions = {}): Promise<ObjectList<T>> {
    const { type } = this.#kind(kind);
    const items: T[] = [];
    let resourceVersion = '';
    let next: string | undefined;
    try {
      // Pages of one list share the first page's snapshot, so its version is the list's.
      do {
        const page = await this.#client.list(type, {
          namespace: options.namespace ?? null,
          labelSelector: emptyToUndefined(options.labelSelector),
          limit: this.#pageSize,
          continue: next,
          signal: options.signal,
        });
        if (resourceVersion === '') resourceVersion = page.metadata.resourceVersion ?? '';
        for (const item of page.items) items.push(toStored(item, type) as T);
        next = emptyToUndefined(page.metadata.continue);
      } while (next !== undefined);
    } catch (error) {
      throw mapError(error, `list ${kind}`);
    }
    return { items, resourceVersion };
  }

  watch<T extends StoredObject>(kind: string, options: WatchOptions = {}): AsyncIterable<WatchEvent<T>> {
    const { type } = this.#kind(kind);
    const client = this.#client;
    const timeoutSeconds = this.#watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
    return (async function* watchKind(): AsyncGenerator<WatchEvent<T>, void, undefined> {
      try {
        for await (const event of client.watch(type, {
          namespace: options.namespace ?? null,
          resourceVersion: emptyToUndefined(options.resourceVersion),
          allowWatchBookmarks: true,
          timeoutSeconds,
          signal: options.signal,
        })) {
          yield { type: event.type, object: toStored(event.object, type) as T };
        }
      } catch (error) {
        // As the embedded store's watch, an aborted watch simply ends.
        if (options.signal?.aborted === true) return;
        throw mapError(error, `watch ${kind}`);
      }
    })();
  }

  async create<T extends StoredObject>(object: T, options: { signal?: AbortSignal } = {}): Promise<T> {
    const { type } = this.#kind(object.kind);
    // The server assigns these; a create that carries a resourceVersion is refused.
    const metadata = { ...object.metadata };
    delete metadata.resourceVersion;
    delete metadata.uid;
    delete metadata.creationTimestamp;
    delete metadata.deletionTimestamp;
    delete metadata.generation;
    delete metadata.managedFields;
    try {
      const created = await this.#client.create(type, { ...object, metadata } as KubeObject, {
        namespace: object.metadata.namespace,
        signal: options.signal,
      });
      return toStored(created, type) as T;
    } catch (error) {
      throw mapError(error, `create ${describe(keyOf(object))}`);
    }
  }

  async update<T extends StoredObject>(object: T, options: { signal?: AbortSignal } = {}): Promise<T> {
    const { type } = this.#kind(object.kind);
    try {
      const updated = await this.#client.update(type, forWrite(object), {
        namespace: object.metadata.namespace,
        signal: options.signal,
      });
      return toStored(updated, type) as T;
    } catch (error) {
      throw mapError(error, `update ${describe(keyOf(object))}`);
    }
  }

  async updateStatus<T extends StoredObject>(object: T, options: { signal?: AbortSignal } = {}): Promise<T> {
    const { type, hasStatus } = this.#kind(object.kind);
    if (!hasStatus) {
      throw new StoreError('ERR_STORE_INVALID', `Cannot write the status of a ${object.kind}: it has none`);
    }
    try {
      const updated = await this.#client.updateStatus(type, forWrite(object), {
        namespace: object.metadata.namespace,
        signal: options.signal,
      });
      return toStored(updated, type) as T;
    } catch (error) {
      throw mapError(error, `update the status of ${describe(keyOf(object))}`);
    }
  }

  async delete(key: ObjectKey, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { type } = this.#kind(key.kind);
    try {
      // Background: the garbage collector of kube-controller-manager deletes the dependents.
      await this.#client.delete(type, key.name, {
        namespace: key.namespace,
        propagationPolicy: 'Background',
        signal: options.signal,
      });
    } catch (error) {
      throw mapError(error, `delete ${describe(key)}`);
    }
  }

  #kind(kind: string): KindType {
    const found = this.#types.get(kind);
    if (found === undefined) {
      throw new StoreError(
        'ERR_STORE_INVALID',
        `Cannot use kind "${kind}" with the Kubernetes store: it holds ${[...this.#types.keys()].join(', ')}`,
      );
    }
    return found;
  }
}

/**
 * The object as the reconcilers see it: `apiVersion` and `kind` always set (list items of core
 * kinds come without them) and no `managedFields`, which are the server's bookkeeping and would
 * only be echoed back (an update that omits them leaves them as they are).
 */
function toStored(object: KubeObject, type: ResourceType): StoredObject {
  const metadata = { ...object.metadata };
  delete metadata.managedFields;
  return {
    ...object,
    apiVersion: object.apiVersion ?? apiVersionOf(type),
    kind: object.kind ?? type.kind,
    metadata,
  } as StoredObject;
}

function forWrite(object: StoredObject): KubeObject {
  const metadata: Record<string, unknown> = { ...object.metadata };
  delete metadata['managedFields'];
  if (metadata['resourceVersion'] === '') delete metadata['resourceVersion'];
  return { ...object, metadata };
}

function mapError(error: unknown, what: string): unknown {
  if (!(error instanceof KubeError)) return error;
  const code = KUBE_TO_STORE[error.code];
  if (code === undefined) return error;
  return new StoreError(code, `Cannot ${what}: ${error.message}`, { cause: error });
}

function keyOf(object: StoredObject): ObjectKey {
  return { kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name };
}

function describe(key: ObjectKey): string {
  return `${key.kind} ${key.namespace}/${key.name}`;
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
