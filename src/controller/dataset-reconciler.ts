import {
  type AnyRuntime,
  type Condition,
  type Dataset,
  type RuntimeStatus,
  type DatasetStatus,
} from '../api/index.ts';
import { formatBytes, hasCode, type Logger } from '../lib/index.ts';
import type { Platform, RuntimeObservation } from '../platform/index.ts';
import type { ResourceStore, StoredObject } from '../store/index.ts';
import { UfsError } from '../ufs/index.ts';
import { setCondition } from './conditions.ts';
import { ControllerError } from './errors.ts';
import type { EventRecorder } from './events.ts';
import type { MetadataSync, UfsFactory } from './metadata-sync.ts';
import { compatibilityCondition } from './compatibility.ts';
import { mountsSignature, planFor, resolveMounts } from './plan.ts';
import { findRuntime } from './runtimes.ts';
import { cacheStatesOf, componentPhase, parseFormattedBytes } from './status.ts';
import type { ReconcileResult } from './work-queue.ts';

export const DATASET_FINALIZER = 'data.fluid.io/tide-dataset-controller';
export const RUNTIME_FINALIZER = 'data.fluid.io/tide-runtime-controller';
const CALCULATING = '[Calculating]';
/** Requeue delay while workers start or the mount comes up: each step is seen within this time. */
const SETTLING_REQUEUE_MS = 200;
/** Origins that answered are not asked again within this time (a settling dataset requeues often). */
const ORIGIN_RECHECK_MS = 5000;

export interface DatasetReconcilerOptions {
  store: ResourceStore;
  platform: Platform;
  events: EventRecorder;
  metadata: MetadataSync;
  ufsFactory: UfsFactory;
  logger: Logger;
  /** How often a healthy dataset is reconciled again (statistics, origin health). */
  resyncMs?: number;
  /** Time allowed to reach an origin before the dataset shows Failed. */
  originCheckTimeoutMs?: number;
  now?: () => Date;
}

type DatasetObject = Dataset & StoredObject;
type RuntimeObject = AnyRuntime & StoredObject;

/**
 * Reconciles one dataset and the runtime of the same namespace and name (Fluid binds them 1:1 by
 * name): finalizers and ownership, origin checks, the platform's workers and mount, metadata sync,
 * statistics, phases and conditions, and ordered teardown on deletion. Level-triggered: every call
 * looks at the whole state and moves it one step closer to the desired one.
 */
export class DatasetReconciler {
  readonly #options: DatasetReconcilerOptions;
  readonly #setupStartedMs = new Map<string, number>();
  /** When each dataset's origins last answered, for which mounts: re-checked at most every few seconds. */
  readonly #originsCheckedMs = new Map<string, { signature: string; atMs: number }>();

  constructor(options: DatasetReconcilerOptions) {
    this.#options = options;
  }

  async reconcile(key: string, signal: AbortSignal): Promise<ReconcileResult> {
    const [namespace = 'default', name = ''] = key.split('/');
    const { store } = this.#options;
    const dataset = await store.get<DatasetObject>({ kind: 'Dataset', namespace, name });
    const runtime = await findRuntime(this.#options.store, namespace, name);
    if (dataset === undefined) {
      if (runtime === undefined) return undefined;
      if (runtime.metadata.deletionTimestamp !== undefined) {
        await this.#teardown(key, runtime, signal);
        return undefined;
      }
      await this.#options.events.record(
        runtime,
        'Warning',
        'NoDatasetToBind',
        'No dataset can be bound to the runtime, waiting.',
      );
      return { requeueAfterMs: 5000 };
    }
    if (dataset.metadata.deletionTimestamp !== undefined)
      return this.#deleteDataset(key, dataset, runtime, signal);
    const current = await this.#ensureFinalizer(dataset, DATASET_FINALIZER);
    if (runtime === undefined) {
      await this.#unbind(key, current, undefined, signal);
      return undefined;
    }
    if (runtime.metadata.deletionTimestamp !== undefined) {
      await this.#unbind(key, current, runtime, signal);
      return undefined;
    }
    return this.#bind(key, current, runtime, signal);
  }

  async #bind(
    key: string,
    dataset: DatasetObject,
    runtimeIn: RuntimeObject,
    signal: AbortSignal,
  ): Promise<ReconcileResult> {
    const { store, platform, metadata } = this.#options;
    const runtime = await this.#adopt(dataset, runtimeIn);
    if (!this.#setupStartedMs.has(key)) this.#setupStartedMs.set(key, Date.now());
    let observation: RuntimeObservation;
    try {
      const mounts = await resolveMounts(dataset, (secretName) =>
        store.get({ kind: 'Secret', namespace: dataset.metadata.namespace, name: secretName }),
      );
      await this.#checkOriginsOf(key, mounts, signal);
      const plan = planFor(dataset, runtime, mounts);
      observation = await platform.apply(plan, signal);
      const policy = runtime.spec.management?.metadataSyncPolicy;
      metadata.ensure(key, mounts, {
        autoSync: policy?.autoSync ?? true,
        intervalMs: (policy?.intervalSeconds ?? 600) * 1000,
      });
    } catch (error) {
      if (error instanceof UfsError || error instanceof ControllerError) {
        await this.#fail(dataset, runtime, error.reason, error.message);
        return { requeueAfterMs: 5000 };
      }
      throw error;
    }
    const updatedRuntime = await this.#writeRuntimeStatus(key, runtime, observation);
    await this.#writeBoundStatus(key, dataset, updatedRuntime, observation, signal);
    const settled =
      observation.workers.ready >= observation.workers.desired &&
      observation.fuse.ready >= observation.fuse.desired;
    // While workers start or the mount comes up, look again soon; once settled, at the resync pace.
    return { requeueAfterMs: settled ? (this.#options.resyncMs ?? 10_000) : SETTLING_REQUEUE_MS };
  }

  /** Checks the origins unless they answered for the same mounts moments ago (a start-up requeues fast). */
  async #checkOriginsOf(
    key: string,
    mounts: Awaited<ReturnType<typeof resolveMounts>>,
    signal: AbortSignal,
  ): Promise<void> {
    const signature = mountsSignature(mounts);
    const last = this.#originsCheckedMs.get(key);
    if (last?.signature === signature && Date.now() - last.atMs < ORIGIN_RECHECK_MS) return;
    this.#originsCheckedMs.delete(key);
    await this.#checkOrigins(mounts, signal);
    this.#originsCheckedMs.set(key, { signature, atMs: Date.now() });
  }

  async #checkOrigins(mounts: Awaited<ReturnType<typeof resolveMounts>>, signal: AbortSignal): Promise<void> {
    const timeout = AbortSignal.any([
      signal,
      AbortSignal.timeout(this.#options.originCheckTimeoutMs ?? 15_000),
    ]);
    for (const mount of mounts) {
      const ufs = this.#options.ufsFactory(mount);
      try {
        await ufs.check({ signal: timeout });
      } catch (error) {
        if (error instanceof UfsError) {
          throw new UfsError(error.code, `mount ${mount.path}: ${error.message}`, { cause: error });
        }
        if (timeout.aborted && !signal.aborted) {
          throw new UfsError('ERR_UFS_TIMEOUT', `mount ${mount.path}: the origin did not answer in time`, {
            cause: error,
          });
        }
        throw error;
      } finally {
        await ufs.close();
      }
    }
  }

  async #fail(
    dataset: DatasetObject,
    runtime: RuntimeObject,
    reason: string,
    message: string,
  ): Promise<void> {
    const now = this.#now();
    const previous = dataset.status?.phase;
    const status: DatasetStatus = {
      ...dataset.status,
      phase: 'Failed',
      conditions: setCondition(
        dataset.status?.conditions,
        { type: 'Ready', status: 'False', reason, message },
        now,
      ),
    };
    await this.#options.store.updateStatus({ ...dataset, status });
    if (previous !== 'Failed') await this.#options.events.record(dataset, 'Warning', reason, message);
    const runtimeStatus: RuntimeStatus = {
      ...runtime.status,
      conditions: setCondition(
        runtime.status?.conditions,
        { type: 'Ready', status: 'False', reason, message },
        now,
      ),
    };
    await this.#options.store.updateStatus({ ...runtime, status: runtimeStatus });
  }

  async #writeRuntimeStatus(
    key: string,
    runtime: RuntimeObject,
    observation: RuntimeObservation,
  ): Promise<RuntimeObject> {
    const now = this.#now();
    const { workers, fuse } = observation;
    let conditions = runtime.status?.conditions;
    conditions = setCondition(
      conditions,
      {
        type: 'WorkersInitialized',
        status: 'True',
        reason: 'WorkersInitialized',
        message: 'The workers are initialized.',
      },
      now,
    );
    conditions = setCondition(
      conditions,
      workers.ready >= workers.desired
        ? {
            type: 'WorkersReady',
            status: 'True',
            reason: 'WorkersReady',
            message: `${workers.ready} of ${workers.desired} workers are ready.`,
          }
        : {
            type: 'WorkersReady',
            status: 'False',
            reason: 'WorkersNotReady',
            message: `${workers.ready} of ${workers.desired} workers are ready${workers.problem === undefined ? '.' : `: ${workers.problem}`}`,
          },
      now,
    );
    conditions = setCondition(
      conditions,
      fuse.ready >= fuse.desired
        ? {
            type: 'FusesReady',
            status: 'True',
            reason: 'FusesReady',
            message: `The dataset is mounted at ${fuse.mountPath ?? '(none)'}.`,
          }
        : {
            type: 'FusesReady',
            status: 'False',
            reason: 'FusesNotReady',
            message: 'The dataset is not mounted yet.',
          },
      now,
    );
    const workersReady = workers.ready >= workers.desired;
    const fuseReady = fuse.ready >= fuse.desired;
    conditions = setCondition(
      conditions,
      workersReady && fuseReady
        ? { type: 'Ready', status: 'True', reason: 'RuntimeReady', message: 'The runtime is ready.' }
        : {
            type: 'Ready',
            status: 'False',
            reason: workersReady ? 'FusesNotReady' : 'WorkersNotReady',
            message: workersReady
              ? 'The dataset is not mounted yet.'
              : `${workers.ready} of ${workers.desired} workers are ready${workers.problem === undefined ? '.' : `: ${workers.problem}`}`,
          },
      now,
    );
    conditions = setCondition(conditions, compatibilityCondition(runtime, this.#options.platform), now);
    const started = this.#setupStartedMs.get(key) ?? Date.now();
    const ready = workers.ready >= Math.min(1, workers.desired) && fuse.ready >= fuse.desired;
    const status: RuntimeStatus = {
      ...runtime.status,
      // Tide has no master (MASTER_NOTE): none is wanted, so the master component is complete.
      masterPhase: 'Ready',
      masterReason: 'NoMaster',
      desiredMasterNumberScheduled: 0,
      currentMasterNumberScheduled: 0,
      masterNumberReady: 0,
      workerPhase: componentPhase(workers.ready, workers.desired),
      workerReason: workers.problem ?? '',
      desiredWorkerNumberScheduled: workers.desired,
      currentWorkerNumberScheduled: workers.current,
      workerNumberReady: workers.ready,
      workerNumberAvailable: workers.ready,
      workerNumberUnavailable: Math.max(0, workers.current - workers.ready),
      fusePhase: componentPhase(fuse.ready, fuse.desired),
      desiredFuseNumberScheduled: fuse.desired,
      currentFuseNumberScheduled: fuse.ready,
      fuseNumberReady: fuse.ready,
      fuseNumberAvailable: fuse.ready,
      fuseNumberUnavailable: Math.max(0, fuse.desired - fuse.ready),
      selector: `app=tide,role=tide-worker,release=${runtime.metadata.name}`,
      conditions,
      observedGeneration: runtime.metadata.generation ?? 1,
    };
    if (ready && runtime.status?.setupDuration === undefined)
      status.setupDuration = `${((Date.now() - started) / 1000).toFixed(1)}s`;
    return this.#options.store.updateStatus({ ...runtime, status });
  }

  async #writeBoundStatus(
    key: string,
    dataset: DatasetObject,
    runtime: RuntimeObject,
    observation: RuntimeObservation,
    signal: AbortSignal,
  ): Promise<void> {
    const { store, platform, metadata, events } = this.#options;
    const now = this.#now();
    const sync = metadata.state(key);
    let ufsTotal = dataset.status?.ufsTotal ?? CALCULATING;
    let fileNum = dataset.status?.fileNum ?? CALCULATING;
    if (sync?.result !== undefined) {
      ufsTotal = formatBytes(sync.result.bytes);
      fileNum = String(sync.result.files);
    }
    const ufsTotalBytes = sync?.result?.bytes ?? parseFormattedBytes(ufsTotal);
    const stats = await platform.statistics(
      { namespace: dataset.metadata.namespace, name: dataset.metadata.name },
      signal,
    );
    const ready =
      observation.workers.ready >= Math.min(1, observation.workers.desired) &&
      observation.fuse.ready >= observation.fuse.desired;
    let conditions: Condition[] = dataset.status?.conditions ?? [];
    conditions = setCondition(
      conditions,
      ready
        ? { type: 'Ready', status: 'True', reason: 'DatasetReady', message: 'The ddc runtime is ready.' }
        : {
            type: 'Ready',
            status: 'False',
            reason: 'DatasetNotReady',
            message: 'Waiting for the workers and the mount.',
          },
      now,
    );
    conditions = setCondition(
      conditions,
      sync?.running === true
        ? {
            type: 'MetadataSynced',
            status: 'False',
            reason: 'Syncing',
            message: `listed ${sync.progress.files} files (${formatBytes(sync.progress.bytes)}) so far`,
          }
        : sync?.error !== undefined
          ? {
              type: 'MetadataSynced',
              status: 'False',
              reason: sync.error instanceof UfsError ? sync.error.reason : 'SyncFailed',
              message: sync.error.message,
            }
          : {
              type: 'MetadataSynced',
              status: 'True',
              reason: 'Synced',
              message: `${fileNum} files, ${ufsTotal}`,
            },
      now,
    );
    const phase = ready ? 'Bound' : 'NotBound';
    const status: DatasetStatus = {
      ...dataset.status,
      phase,
      conditions,
      ufsTotal,
      fileNum,
      cacheStates: cacheStatesOf(stats, ufsTotalBytes),
      ...(stats?.cachedBytesByNode !== undefined && { cachedBytesByNode: stats.cachedBytesByNode }),
      mounts: dataset.spec.mounts ?? [],
      runtimes: [
        {
          name: runtime.metadata.name,
          namespace: runtime.metadata.namespace,
          category: 'Accelerate',
          type: runtime.kind.replace(/Runtime$/, '').toLowerCase(),
          masterReplicas: 0,
        },
      ],
      observedGeneration: dataset.metadata.generation ?? 1,
    };
    if (observation.fuse.mountPath !== undefined) status.mountPath = observation.fuse.mountPath;
    await store.updateStatus({ ...dataset, status });
    if (dataset.status?.phase !== phase && phase === 'Bound') {
      await events.record(
        dataset,
        'Normal',
        'DatasetReady',
        `Bound to ${runtime.kind} ${runtime.metadata.name}; mounted at ${observation.fuse.mountPath ?? '-'}`,
      );
    }
  }

  async #deleteDataset(
    key: string,
    dataset: DatasetObject,
    runtime: RuntimeObject | undefined,
    signal: AbortSignal,
  ): Promise<ReconcileResult> {
    const { platform, events, store } = this.#options;
    const ref = { namespace: dataset.metadata.namespace, name: dataset.metadata.name };
    const users = await platform.usersOf(ref, signal);
    if (users.length > 0) {
      const message = `Waiting to delete: the dataset is in use by ${users.slice(0, 5).join(', ')}${users.length > 5 ? ` and ${users.length - 5} more` : ''}`;
      await events.record(dataset, 'Warning', 'ErrorDeleteDataset', message);
      // The condition says it where `get -o yaml` and `describe` look, after the event is gone.
      const blocked = dataset.status?.conditions?.find((condition) => condition.type === 'DeletionBlocked');
      if (blocked?.message !== message)
        await store.updateStatus({
          ...dataset,
          status: {
            ...dataset.status,
            conditions: setCondition(
              dataset.status?.conditions,
              { type: 'DeletionBlocked', status: 'True', reason: 'DatasetInUse', message },
              this.#now(),
            ),
          },
        });
      return { requeueAfterMs: 3000 };
    }
    if (runtime !== undefined) await this.#teardown(key, runtime, signal);
    else await platform.remove(ref, { cleanCache: true, signal });
    const fresh = await store.get<DatasetObject>({
      kind: 'Dataset',
      namespace: ref.namespace,
      name: ref.name,
    });
    if (fresh !== undefined) await this.#removeFinalizer(fresh, DATASET_FINALIZER);
    this.#options.metadata.forget(key);
    return undefined;
  }

  /** The runtime is gone or going: stop everything it ran and mark the dataset NotBound. */
  async #unbind(
    key: string,
    dataset: DatasetObject,
    runtime: RuntimeObject | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    if (runtime !== undefined) await this.#teardown(key, runtime, signal);
    else if ((dataset.status?.runtimes ?? []).length > 0) {
      await this.#options.platform.remove(
        { namespace: dataset.metadata.namespace, name: dataset.metadata.name },
        { cleanCache: true, signal },
      );
    }
    const phase = dataset.status?.phase;
    if (phase === 'NotBound' && dataset.status?.runtimes === undefined) return;
    const status: DatasetStatus = { ...dataset.status, phase: 'NotBound' };
    delete status.runtimes;
    delete status.cacheStates;
    delete status.cachedBytesByNode;
    delete status.mountPath;
    status.conditions = setCondition(
      status.conditions,
      { type: 'Ready', status: 'False', reason: 'NoRuntime', message: 'No runtime is bound to the dataset.' },
      this.#now(),
    );
    await this.#options.store.updateStatus({ ...dataset, status });
  }

  async #teardown(key: string, runtime: RuntimeObject, signal: AbortSignal): Promise<void> {
    const ref = { namespace: runtime.metadata.namespace, name: runtime.metadata.name };
    await this.#options.platform.remove(ref, { cleanCache: true, signal });
    this.#options.metadata.forget(key);
    this.#setupStartedMs.delete(key);
    this.#originsCheckedMs.delete(key);
    await this.#removeFinalizer(runtime, RUNTIME_FINALIZER);
  }

  /** Adds the runtime finalizer and makes the dataset its owner, so that deleting the dataset deletes it. */
  async #adopt(dataset: DatasetObject, runtime: RuntimeObject): Promise<RuntimeObject> {
    const uid = dataset.metadata.uid ?? '';
    const owners = runtime.metadata.ownerReferences ?? [];
    const finalizers = runtime.metadata.finalizers ?? [];
    if (owners.some((owner) => owner.uid === uid) && finalizers.includes(RUNTIME_FINALIZER)) return runtime;
    return this.#options.store.update<RuntimeObject>({
      ...runtime,
      metadata: {
        ...runtime.metadata,
        finalizers: finalizers.includes(RUNTIME_FINALIZER) ? finalizers : [...finalizers, RUNTIME_FINALIZER],
        ownerReferences: [
          ...owners.filter((owner) => owner.kind !== 'Dataset'),
          {
            apiVersion: dataset.apiVersion,
            kind: 'Dataset',
            name: dataset.metadata.name,
            uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
    });
  }

  async #ensureFinalizer<T extends StoredObject>(object: T, finalizer: string): Promise<T> {
    const finalizers = object.metadata.finalizers ?? [];
    let current = object;
    if (!finalizers.includes(finalizer)) {
      current = await this.#options.store.update({
        ...object,
        metadata: { ...object.metadata, finalizers: [...finalizers, finalizer] },
      });
    }
    const status = current.status as DatasetStatus | undefined;
    if (status?.phase === undefined || status.phase === '') {
      current = await this.#options.store.updateStatus({
        ...current,
        status: { ...status, phase: 'NotBound' },
      });
    }
    return current;
  }

  async #removeFinalizer(object: StoredObject, finalizer: string): Promise<void> {
    const finalizers = object.metadata.finalizers ?? [];
    if (!finalizers.includes(finalizer)) return;
    try {
      await this.#options.store.update({
        ...object,
        metadata: { ...object.metadata, finalizers: finalizers.filter((item) => item !== finalizer) },
      });
    } catch (error) {
      if (!hasCode(error, 'ERR_STORE_NOT_FOUND')) throw error;
    }
  }

  #now(): Date {
    return (this.#options.now ?? (() => new Date()))();
  }
}
