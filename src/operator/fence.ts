import type {
  CacheStatistics,
  DatasetRef,
  LoadPlan,
  LoadProgress,
  Platform,
  RuntimeObservation,
  RuntimePlan,
} from '../platform/index.ts';
import type {
  ListOptions,
  ObjectKey,
  ObjectList,
  ResourceStore,
  StoredObject,
  WatchEvent,
  WatchOptions,
} from '../store/index.ts';
import { OperatorError } from './errors.ts';

/** Whether this replica may write now (the leader elector's `isLeader`). */
export type Fence = () => boolean;

function check(fence: Fence, what: string): void {
  if (!fence()) {
    throw new OperatorError('ERR_NOT_LEADER', `Cannot ${what} as this replica does not hold the lease`);
  }
}

/**
 * A ResourceStore whose writes fail with ERR_NOT_LEADER unless the fence allows them. The reconcilers
 * stop when leadership ends, but a replica paused (GC, SIGSTOP, a stalled node) may wake up with
 * reconciles in flight after another replica took over; the fence, checked against the monotonic
 * clock right before each write, keeps those from landing. Reads pass through.
 */
export class FencedStore implements ResourceStore {
  readonly #inner: ResourceStore;
  readonly #fence: Fence;

  constructor(inner: ResourceStore, fence: Fence) {
    this.#inner = inner;
    this.#fence = fence;
  }

  get<T extends StoredObject>(key: ObjectKey, options?: { signal?: AbortSignal }): Promise<T | undefined> {
    return this.#inner.get<T>(key, options);
  }

  list<T extends StoredObject>(kind: string, options?: ListOptions): Promise<ObjectList<T>> {
    return this.#inner.list<T>(kind, options);
  }

  watch<T extends StoredObject>(kind: string, options?: WatchOptions): AsyncIterable<WatchEvent<T>> {
    return this.#inner.watch<T>(kind, options);
  }

  async create<T extends StoredObject>(object: T, options?: { signal?: AbortSignal }): Promise<T> {
    check(this.#fence, `create ${object.kind} ${object.metadata.name}`);
    return this.#inner.create(object, options);
  }

  async update<T extends StoredObject>(object: T, options?: { signal?: AbortSignal }): Promise<T> {
    check(this.#fence, `update ${object.kind} ${object.metadata.name}`);
    return this.#inner.update(object, options);
  }

  async updateStatus<T extends StoredObject>(object: T, options?: { signal?: AbortSignal }): Promise<T> {
    check(this.#fence, `update the status of ${object.kind} ${object.metadata.name}`);
    return this.#inner.updateStatus(object, options);
  }

  async delete(key: ObjectKey, options?: { signal?: AbortSignal }): Promise<void> {
    check(this.#fence, `delete ${key.kind} ${key.name}`);
    return this.#inner.delete(key, options);
  }
}

/** A Platform whose changes (apply, remove, load) fail with ERR_NOT_LEADER unless the fence allows them. */
export class FencedPlatform implements Platform {
  readonly #inner: Platform;
  readonly #fence: Fence;

  constructor(inner: Platform, fence: Fence) {
    this.#inner = inner;
    this.#fence = fence;
  }

  get schedulesPods(): boolean {
    return this.#inner.schedulesPods;
  }

  async apply(plan: RuntimePlan, signal: AbortSignal): Promise<RuntimeObservation> {
    check(this.#fence, `apply the runtime of ${plan.dataset.namespace}/${plan.dataset.name}`);
    return this.#inner.apply(plan, signal);
  }

  async remove(dataset: DatasetRef, options: { cleanCache: boolean; signal: AbortSignal }): Promise<void> {
    check(this.#fence, `remove the runtime of ${dataset.namespace}/${dataset.name}`);
    return this.#inner.remove(dataset, options);
  }

  usersOf(dataset: DatasetRef, signal: AbortSignal): Promise<string[]> {
    return this.#inner.usersOf(dataset, signal);
  }

  statistics(dataset: DatasetRef, signal: AbortSignal): Promise<CacheStatistics | undefined> {
    return this.#inner.statistics(dataset, signal);
  }

  async load(
    plan: LoadPlan,
    options: { signal: AbortSignal; onProgress: (progress: LoadProgress) => void },
  ): Promise<LoadProgress> {
    check(this.#fence, `load dataset ${plan.dataset.namespace}/${plan.dataset.name}`);
    return this.#inner.load(plan, options);
  }
}
