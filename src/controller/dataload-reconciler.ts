import { Cron } from 'croner';
import {
  dataLoadOptionsOf,
  dataLoadScheduleError,
  type DataLoad,
  type DatasetStatus,
  type OperationStatus,
} from '../api/index.ts';
import { hasCode, type Logger } from '../lib/index.ts';
import type { LoadPodSettings, LoadProgress, Platform } from '../platform/index.ts';
import type { ResourceStore, StoredObject } from '../store/index.ts';
import { setCondition } from './conditions.ts';
import { ControllerError } from './errors.ts';
import type { EventRecorder } from './events.ts';
import { loadPodFieldsSet, loadPodSettings } from './pod-settings.ts';
import { findRuntime } from './runtimes.ts';
import type { ReconcileResult } from './work-queue.ts';

export const DATALOAD_FINALIZER = 'data.fluid.io/tide-dataload-controller';
const PROGRESS_WRITE_MS = 1000;

export interface DataLoadReconcilerOptions {
  store: ResourceStore;
  platform: Platform;
  events: EventRecorder;
  logger: Logger;
  /** Requeues a DataLoad (its job ended) or a dataset (its cache changed). */
  requeue: (kind: 'DataLoad' | 'Dataset', namespace: string, name: string) => void;
  now?: () => Date;
}

type DataLoadObject = DataLoad & StoredObject;
type DatasetObject = StoredObject & { status?: DatasetStatus };

interface RunningLoad {
  abort: AbortController;
  progress: LoadProgress;
  startedMs: number;
  lastWriteMs: number;
}

/**
 * DataLoad as Fluid defines it (Once, Cron, OnEvent as Once; runAfter; ttlSecondsAfterFinished),
 * with progress Fluid lacks. A load holds its dataset's operation lock (`status.operationRef`),
 * so two loads of one dataset queue instead of colliding. A load found Executing after a daemon
 * restart starts again from zero: blocks already cached are skipped, so nothing is counted twice.
 */
export class DataLoadReconciler {
  readonly #options: DataLoadReconcilerOptions;
  readonly #running = new Map<string, RunningLoad>();

  constructor(options: DataLoadReconcilerOptions) {
    this.#options = options;
  }

  stopAll(): void {
    for (const running of this.#running.values()) running.abort.abort();
    this.#running.clear();
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace = 'default', name = ''] = key.split('/');
    const { store } = this.#options;
    const load = await store.get<DataLoadObject>({ kind: 'DataLoad', namespace, name });
    if (load === undefined || load.metadata.deletionTimestamp !== undefined) {
      this.#running.get(key)?.abort.abort();
      this.#running.delete(key);
      if (load !== undefined) {
        await this.#releaseLock(load);
        await this.#removeFinalizer(load);
      }
      return undefined;
    }
    const current = await this.#ensureFinalizer(load);
    const running = this.#running.get(key);
    if (running !== undefined) {
      await this.#writeProgress(current, running);
      return { requeueAfterMs: PROGRESS_WRITE_MS };
    }
    const phase = current.status?.phase ?? '';
    const policy = current.spec.policy ?? 'Once';
    if (phase === '') {
      await this.#setStatus(current, { phase: 'Pending', duration: 'Unfinished' });
      return { requeueAfterMs: 0 };
    }
    // Refused at apply; a load written around the validation (kubectl) waits with the reason
    // instead of running on a made-up schedule. Changing the spec requeues it.
    const scheduleError = dataLoadScheduleError(current.spec);
    if (scheduleError !== undefined) {
      const message = `${scheduleError.path}: ${scheduleError.message}`;
      if (!hasWaitingReason(current, 'InvalidSchedule', message)) {
        await this.#options.events.record(current, 'Warning', 'InvalidSchedule', message);
      }
      await this.#waiting(current, 'InvalidSchedule', message);
      return {};
    }
    if (phase === 'Complete' || phase === 'Failed') {
      if (policy === 'Cron') return this.#scheduleNext(current);
      return this.#expire(current);
    }
    if (policy === 'Cron' && phase === 'Pending') {
      const dueInMs = this.#cronDueInMs(current);
      if (dueInMs > 0) return { requeueAfterMs: dueInMs };
    }
    return this.#start(key, current);
  }

  async #start(key: string, load: DataLoadObject): Promise<ReconcileResult> {
    const { store, platform, events } = this.#options;
    const namespace = load.metadata.namespace;
    const datasetName = load.spec.dataset.name;
    // Refused at apply; a DataLoad written around the validation (straight to the API server)
    // waits here with the reason rather than run with options it does not have.
    const options = dataLoadOptionsOf(load.spec.options);
    if (!options.ok) {
      const message = options.errors.map((error) => `${error.path}: ${error.message}`).join('; ');
      await this.#waiting(load, 'InvalidOptions', message);
      return {};
    }
    const dataset = await store.get<DatasetObject>({ kind: 'Dataset', namespace, name: datasetName });
    if (dataset?.status?.phase !== 'Bound') {
      await this.#waiting(load, 'DatasetNotBound', `waiting for dataset "${datasetName}" to be Bound`);
      return { requeueAfterMs: 3000 };
    }
    const after = load.spec.runAfter;
    if (after !== undefined) {
      const previous = await store.get({
        kind: after.kind,
        namespace: after.namespace ?? namespace,
        name: after.name,
      });
      const previousStatus = previous?.status as OperationStatus | undefined;
      // A Cron predecessor is Complete only between its runs: one successful run is what counts.
      const completed =
        previousStatus?.phase === 'Complete' || previousStatus?.lastSuccessfulTime !== undefined;
      if (!completed) {
        // As in Fluid: `operationComplete: true` means waiting for the runAfter operation.
        await this.#setStatus(load, { waitingFor: { operationComplete: true } });
        await this.#waiting(
          load,
          'WaitingForRunAfter',
          `waiting for ${after.kind} "${after.name}" to complete`,
        );
        return { requeueAfterMs: 3000 };
      }
    }
    let pod: LoadPodSettings;
    try {
      pod = await this.#podSettings(load, namespace, datasetName);
    } catch (error) {
      if (!(error instanceof ControllerError)) throw error;
      await this.#waiting(load, 'InvalidPodSettings', error.message);
      return {};
    }
    const holder = dataset.status.operationRef?.['DataLoad'];
    if (holder !== undefined && holder !== '' && holder !== load.metadata.name) {
      await this.#waiting(
        load,
        'DataOperationCollision',
        `dataset "${datasetName}" is busy with DataLoad "${holder}"; queued`,
      );
      return { requeueAfterMs: 3000 };
    }
    if (holder !== load.metadata.name) {
      try {
        await store.updateStatus({
          ...dataset,
          status: {
            ...dataset.status,
            operationRef: { ...dataset.status.operationRef, DataLoad: load.metadata.name },
          },
        });
      } catch (error) {
        if (hasCode(error, 'ERR_STORE_CONFLICT')) return { requeueAfterMs: 100 };
        throw error;
      }
    }
    const now = this.#now();
    const running: RunningLoad = {
      abort: new AbortController(),
      progress: { filesDone: 0, bytesDone: 0 },
      startedMs: Date.now(),
      lastWriteMs: 0,
    };
    this.#running.set(key, running);
    const status: OperationStatus = {
      phase: 'Executing',
      duration: 'Unfinished',
      progress: { filesDone: 0, bytesDone: 0 },
      waitingFor: { operationComplete: false },
      conditions: [],
    };
    if ((load.spec.policy ?? 'Once') === 'Cron') status.lastScheduleTime = now.toISOString();
    await this.#setStatus(load, status, true);
    await events.record(
      load,
      'Normal',
      'DataLoadJobStarted',
      `Loading ${describeTargets(load)} of dataset "${datasetName}"`,
    );
    const job = platform.load(
      {
        dataset: { namespace, name: datasetName },
        targets: (load.spec.target ?? [{ path: '/' }]).map((target) => ({
          path: target.path,
          replicas: target.replicas ?? 1,
        })),
        loadMetadata: load.spec.loadMetadata ?? false,
        ...options.value,
        ...(Object.keys(pod).length > 0 && { pod }),
      },
      {
        signal: running.abort.signal,
        onProgress: (progress) => {
          running.progress = progress;
        },
      },
    );
    job.then(
      (progress) => this.#finish(key, load, running, progress, undefined),
      (error: unknown) =>
        this.#finish(
          key,
          load,
          running,
          running.progress,
          error instanceof Error ? error : new Error(String(error)),
        ),
    );
    return { requeueAfterMs: PROGRESS_WRITE_MS };
  }

  /**
   * The loader pod's fields. A platform that runs no pods (embedded mode) cannot place the load:
   * it says so in a Warning event rather than drop the fields silently.
   */
  async #podSettings(load: DataLoadObject, namespace: string, datasetName: string): Promise<LoadPodSettings> {
    const { store, platform, events } = this.#options;
    if (!platform.schedulesPods) {
      const ignored = loadPodFieldsSet(load);
      if (ignored.length > 0) {
        await events.record(
          load,
          'Warning',
          'FieldsIgnored',
          `embedded mode runs the load in the daemon, not in a pod: ${ignored.join(', ')} have no effect`,
        );
      }
      return {};
    }
    return loadPodSettings(load, await findRuntime(store, namespace, datasetName));
  }

  async #finish(
    key: string,
    load: DataLoadObject,
    running: RunningLoad,
    progress: LoadProgress,
    error: Error | undefined,
  ): Promise<void> {
    if (this.#running.get(key) !== running) return;
    this.#running.delete(key);
    if (running.abort.signal.aborted) return;
    const { store, events, logger, requeue } = this.#options;
    try {
      const fresh = await store.get<DataLoadObject>({
        kind: 'DataLoad',
        namespace: load.metadata.namespace,
        name: load.metadata.name,
      });
      if (fresh === undefined) return;
      const now = this.#now();
      const seconds = (Date.now() - running.startedMs) / 1000;
      const complete = error === undefined;
      const message = complete
        ? `Loaded ${progress.filesDone} files (${progress.bytesDone} bytes) in ${formatDuration(seconds)}${
            progress.staleBytesReleased === undefined
              ? ''
              : `; released ${progress.staleBytesReleased} cached bytes of files changed or gone at the origin`
          }`
        : `Failed after ${progress.filesDone} files (${progress.bytesDone} bytes): ${error.message}`;
      const status: OperationStatus = {
        ...fresh.status,
        phase: complete ? 'Complete' : 'Failed',
        duration: formatDuration(seconds),
        progress: progressStatus(progress, seconds),
        conditions: setCondition(
          [],
          complete
            ? { type: 'Complete', status: 'True', reason: 'DataLoadJobComplete', message }
            : { type: 'Failed', status: 'True', reason: 'DataLoadJobFailed', message },
          now,
        ),
      };
      if (complete && (fresh.spec.policy ?? 'Once') === 'Cron') status.lastSuccessfulTime = now.toISOString();
      await store.updateStatus({ ...fresh, status });
      await events.record(
        fresh,
        complete ? 'Normal' : 'Warning',
        complete ? 'DataLoadJobComplete' : 'DataLoadJobFailed',
        message,
      );
      await this.#releaseLock(fresh);
    } catch (finishError) {
      logger.error({ dataload: key, err: finishError }, 'could not record the end of a DataLoad');
    } finally {
      requeue('DataLoad', load.metadata.namespace, load.metadata.name);
      requeue('Dataset', load.metadata.namespace, load.spec.dataset.name);
      await this.#requeueFollowers(load).catch(() => undefined);
    }
  }

  /** The DataLoads that run after `load` look again at once instead of at their next poll. */
  async #requeueFollowers(load: DataLoadObject): Promise<void> {
    const { namespace, name } = load.metadata;
    const loads = await this.#options.store.list<DataLoadObject>('DataLoad', { namespace });
    for (const other of loads.items) {
      const after = other.spec.runAfter;
      if (after?.kind === 'DataLoad' && after.name === name && (after.namespace ?? namespace) === namespace) {
        this.#options.requeue('DataLoad', namespace, other.metadata.name);
      }
    }
  }

  async #writeProgress(load: DataLoadObject, running: RunningLoad): Promise<void> {
    if (Date.now() - running.lastWriteMs < PROGRESS_WRITE_MS) return;
    running.lastWriteMs = Date.now();
    const seconds = (Date.now() - running.startedMs) / 1000;
    await this.#setStatus(load, { progress: progressStatus(running.progress, seconds) });
    this.#options.requeue('Dataset', load.metadata.namespace, load.spec.dataset.name);
  }

  #cronDueInMs(load: DataLoadObject): number {
    // dataLoadScheduleError has checked that a Cron load has one.
    const schedule = load.spec.schedule ?? '';
    const from = new Date(
      load.status?.lastScheduleTime ?? load.metadata.creationTimestamp ?? this.#now().toISOString(),
    );
    const next = new Cron(schedule, { paused: true }).nextRun(from);
    return next === null ? Number.POSITIVE_INFINITY : next.getTime() - this.#now().getTime();
  }

  /** A finished cron run waits for its next time, then starts again (a failed run keeps the schedule). */
  async #scheduleNext(load: DataLoadObject): Promise<ReconcileResult> {
    const dueInMs = this.#cronDueInMs(load);
    if (dueInMs > 0) return { requeueAfterMs: Math.min(dueInMs, 60_000) };
    await this.#setStatus(load, { phase: 'Pending', duration: '-' });
    return { requeueAfterMs: 0 };
  }

  async #expire(load: DataLoadObject): Promise<ReconcileResult> {
    const ttlSeconds = load.spec.ttlSecondsAfterFinished;
    if (ttlSeconds === undefined) return undefined;
    const finished = load.status?.conditions?.[0]?.lastTransitionTime;
    const finishedMs = finished === undefined ? this.#now().getTime() : Date.parse(finished);
    const remainingMs = finishedMs + ttlSeconds * 1000 - this.#now().getTime();
    if (remainingMs > 0) return { requeueAfterMs: remainingMs };
    await this.#options.store.delete({
      kind: 'DataLoad',
      namespace: load.metadata.namespace,
      name: load.metadata.name,
    });
    return undefined;
  }

  async #waiting(load: DataLoadObject, reason: string, message: string): Promise<void> {
    const conditions = setCondition(
      load.status?.conditions,
      { type: 'Waiting', status: 'True', reason, message },
      this.#now(),
    );
    await this.#setStatus(load, { conditions });
  }

  async #setStatus(load: DataLoadObject, patch: Partial<OperationStatus>, replace = false): Promise<void> {
    const { store } = this.#options;
    for (let attempt = 0; ; attempt += 1) {
      const fresh =
        attempt === 0
          ? load
          : await store.get<DataLoadObject>({
              kind: 'DataLoad',
              namespace: load.metadata.namespace,
              name: load.metadata.name,
            });
      if (fresh === undefined) return;
      try {
        await store.updateStatus({
          ...fresh,
          status: replace ? { ...patch } : { ...fresh.status, ...patch },
        });
        return;
      } catch (error) {
        if (!hasCode(error, 'ERR_STORE_CONFLICT') || attempt >= 5) throw error;
      }
    }
  }

  async #releaseLock(load: DataLoadObject): Promise<void> {
    const { store } = this.#options;
    const dataset = await store.get<DatasetObject>({
      kind: 'Dataset',
      namespace: load.metadata.namespace,
      name: load.spec.dataset.name,
    });
    if (dataset?.status?.operationRef?.['DataLoad'] !== load.metadata.name) return;
    const operationRef = { ...dataset.status.operationRef };
    delete operationRef['DataLoad'];
    await store.updateStatus({ ...dataset, status: { ...dataset.status, operationRef } });
  }

  async #ensureFinalizer(load: DataLoadObject): Promise<DataLoadObject> {
    const finalizers = load.metadata.finalizers ?? [];
    if (finalizers.includes(DATALOAD_FINALIZER)) return load;
    return this.#options.store.update({
      ...load,
      metadata: { ...load.metadata, finalizers: [...finalizers, DATALOAD_FINALIZER] },
    });
  }

  async #removeFinalizer(load: DataLoadObject): Promise<void> {
    const finalizers = load.metadata.finalizers ?? [];
    if (!finalizers.includes(DATALOAD_FINALIZER)) return;
    try {
      await this.#options.store.update({
        ...load,
        metadata: { ...load.metadata, finalizers: finalizers.filter((item) => item !== DATALOAD_FINALIZER) },
      });
    } catch (error) {
      if (!hasCode(error, 'ERR_STORE_NOT_FOUND')) throw error;
    }
  }

  #now(): Date {
    return (this.#options.now ?? (() => new Date()))();
  }
}

function describeTargets(load: DataLoad): string {
  const targets = load.spec.target ?? [{ path: '/' }];
  return targets.map((target) => target.path).join(', ');
}

function progressStatus(progress: LoadProgress, seconds: number): NonNullable<OperationStatus['progress']> {
  const throughput = seconds > 0 ? progress.bytesDone / seconds : 0;
  const status: NonNullable<OperationStatus['progress']> = {
    filesDone: progress.filesDone,
    bytesDone: progress.bytesDone,
    throughputBytesPerSecond: Math.round(throughput),
  };
  if (progress.filesTotal !== undefined) status.filesTotal = progress.filesTotal;
  if (progress.bytesTotal !== undefined) {
    status.bytesTotal = progress.bytesTotal;
    if (throughput > 0)
      status.etaSeconds = Math.max(0, Math.round((progress.bytesTotal - progress.bytesDone) / throughput));
  }
  return status;
}

/** Go-style durations as Fluid prints them: `45s`, `1m5s`, `2h3m`. */
export function formatDuration(seconds: number): string {
  const whole = Math.round(seconds);
  if (whole < 60) return `${seconds < 10 ? seconds.toFixed(1) : String(whole)}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m${whole % 60}s`;
  return `${Math.floor(minutes / 60)}h${minutes % 60}m`;
}

/** Whether the load already waits for this reason with this message (one event per cause, not per pass). */
function hasWaitingReason(load: DataLoadObject, reason: string, message: string): boolean {
  return (load.status?.conditions ?? []).some(
    (c) => c.type === 'Waiting' && c.status === 'True' && c.reason === reason && c.message === message,
  );
}
