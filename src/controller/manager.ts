import { CRON_HPA_KIND, RUNTIME_KINDS } from '../api/index.ts';
import { CronHpaReconciler } from './cronhpa-reconciler.ts';
import type { Logger } from '../lib/index.ts';
import type { Platform } from '../platform/index.ts';
import { hasCode } from '../lib/index.ts';
import type { ResourceStore, StoredObject, WatchEventType } from '../store/index.ts';
import { DatasetReconciler } from './dataset-reconciler.ts';
import { DataLoadReconciler } from './dataload-reconciler.ts';
import { StoreEventRecorder, type EventRecorder } from './events.ts';
import { MetadataSync, type UfsFactory } from './metadata-sync.ts';
import { WorkQueue } from './work-queue.ts';

export interface ControllerManagerOptions {
  store: ResourceStore;
  platform: Platform;
  ufsFactory: UfsFactory;
  logger: Logger;
  events?: EventRecorder;
  resyncMs?: number;
  originCheckTimeoutMs?: number;
  /** Whether this manager runs CronHPAs (off where kubernetes-cronhpa-controller does); default on. */
  cronHpa?: boolean;
  /** Whether HorizontalPodAutoscalers exist, for CronHPAs that target one. */
  hpaTargets?: boolean;
  now?: () => Date;
}

/**
 * Runs the reconcilers: watches the store (list, then watch from the list's version, relisting
 * when the version is gone), maps every change to the dataset key it concerns and feeds the
 * work queue. The same manager runs embedded and, on the Kubernetes store, in the operator.
 */
export class ControllerManager {
  readonly #options: ControllerManagerOptions;
  readonly #queue: WorkQueue;
  readonly #loadQueue: WorkQueue;
  readonly #loads: DataLoadReconciler;
  readonly #cronHpaQueue: WorkQueue;
  readonly #metadata: MetadataSync;
  readonly #abort = new AbortController();
  readonly #watches: Promise<void>[] = [];

  constructor(options: ControllerManagerOptions) {
    this.#options = options;
    const logger = options.logger.child({ component: 'controller' });
    this.#metadata = new MetadataSync({
      ufsFactory: options.ufsFactory,
      onChange: (key) => {
        this.#queue.add(key);
      },
      logger,
    });
    const events = options.events ?? new StoreEventRecorder(options.store);
    this.#loads = new DataLoadReconciler({
      store: options.store,
      platform: options.platform,
      events,
      logger,
      requeue: (kind, namespace, name) => {
        if (kind === 'Dataset') this.enqueue(namespace, name);
        else this.#loadQueue.add(`${namespace}/${name}`);
      },
    });
    this.#loadQueue = new WorkQueue({
      reconcile: (key) => this.#loads.reconcile(key),
      logger,
      concurrency: 4,
    });
    const cronHpa = new CronHpaReconciler({
      store: options.store,
      events,
      logger,
      hpaTargets: options.hpaTargets ?? false,
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    this.#cronHpaQueue = new WorkQueue({ reconcile: (key) => cronHpa.reconcile(key), logger });
    const reconciler = new DatasetReconciler({
      store: options.store,
      platform: options.platform,
      events,
      metadata: this.#metadata,
      ufsFactory: options.ufsFactory,
      logger,
      ...(options.resyncMs === undefined ? {} : { resyncMs: options.resyncMs }),
      ...(options.originCheckTimeoutMs === undefined
        ? {}
        : { originCheckTimeoutMs: options.originCheckTimeoutMs }),
    });
    this.#queue = new WorkQueue({ reconcile: (key, signal) => reconciler.reconcile(key, signal), logger });
  }

  /** Requeues a dataset (for example after its DataLoad changed the cache). */
  enqueue(namespace: string, name: string): void {
    this.#queue.add(`${namespace}/${name}`);
  }

  start(): void {
    const seen = new Map<string, string>();
    // Status-only changes (most of them our own writes) do not need a reconcile: the periodic
    // resync picks up statistics. Spec (generation), deletion, finalizers and owners do.
    const byName = (object: StoredObject, type: WatchEventType): void => {
      const id = `${object.kind}/${object.metadata.namespace}/${object.metadata.name}`;
      const { generation, deletionTimestamp, finalizers, ownerReferences, labels, annotations } =
        object.metadata;
      const fingerprint = JSON.stringify([
        generation,
        deletionTimestamp,
        finalizers,
        ownerReferences,
        labels,
        annotations,
      ]);
      if (type === 'DELETED') seen.delete(id);
      else if (seen.get(id) === fingerprint) return;
      else seen.set(id, fingerprint);
      this.enqueue(object.metadata.namespace, object.metadata.name);
    };
    this.#watch('Dataset', byName);
    for (const kind of RUNTIME_KINDS) this.#watch(kind, byName);
    this.#watch('Secret', (secret) => {
      void this.#requeueNamespace(secret.metadata.namespace);
    });
    this.#watch('DataLoad', (load, type) => {
      if (type !== 'DELETED' || (load.metadata.finalizers ?? []).length > 0)
        this.#loadQueue.add(`${load.metadata.namespace}/${load.metadata.name}`);
    });
    if (this.#options.cronHpa ?? true) {
      this.#watch(CRON_HPA_KIND, (object, type) => {
        if (type !== 'DELETED')
          this.#cronHpaQueue.add(`${object.metadata.namespace}/${object.metadata.name}`);
      });
    }
  }

  /** Resolves when no reconcile is queued or running. */
  async idle(): Promise<void> {
    await this.#queue.idle();
    await this.#loadQueue.idle();
    await this.#cronHpaQueue.idle();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.all([this.#queue.stop(), this.#loadQueue.stop(), this.#cronHpaQueue.stop()]);
    this.#loads.stopAll();
    this.#metadata.stopAll();
    await Promise.allSettled(this.#watches);
  }

  async #requeueNamespace(namespace: string): Promise<void> {
    const datasets = await this.#options.store.list('Dataset', { namespace });
    for (const dataset of datasets.items) this.enqueue(namespace, dataset.metadata.name);
  }

  #watch(kind: string, onChange: (object: StoredObject, type: WatchEventType) => void): void {
    const { store, logger } = this.#options;
    const signal = this.#abort.signal;
    const loop = async (): Promise<void> => {
      let resourceVersion: string | undefined;
      while (!signal.aborted) {
        try {
          if (resourceVersion === undefined) {
            const list = await store.list(kind, { signal });
            for (const object of list.items) onChange(object, 'ADDED');
            resourceVersion = list.resourceVersion;
          }
          for await (const event of store.watch(kind, { resourceVersion, signal })) {
            if (event.object.metadata.resourceVersion !== undefined)
              resourceVersion = event.object.metadata.resourceVersion;
            if (event.type !== 'BOOKMARK') onChange(event.object, event.type);
          }
        } catch (error) {
          if (this.#abort.signal.aborted) return;
          if (hasCode(error, 'ERR_STORE_GONE')) resourceVersion = undefined;
          else logger.warn({ kind, err: error }, 'watch failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        if (!this.#abort.signal.aborted) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    this.#watches.push(loop());
  }
}
