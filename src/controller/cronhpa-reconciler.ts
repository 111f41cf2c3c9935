import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  CRON_HPA_KIND,
  CRON_HPA_TIME_ZONE_ANNOTATION,
  HPA_KIND,
  cronHpaJobProblem,
  excludedBy,
  parseCronHpaSchedule,
  scaleTargetProblem,
  timeZoneProblem,
  type CronHorizontalPodAutoscaler,
  type CronHpaCondition,
  type CronHpaJob,
  type CronHpaSchedule,
} from '../api/index.ts';
import { hasCode, type Logger } from '../lib/index.ts';
import type { ResourceStore, StoredObject } from '../store/index.ts';
import type { EventRecorder } from './events.ts';
import { scaleHpa, scaleRuntime } from './cronhpa-targets.ts';
import type { ReconcileResult } from './work-queue.ts';

export interface CronHpaReconcilerOptions {
  store: ResourceStore;
  events: EventRecorder;
  logger: Logger;
  now?: () => Date;
  /**
   * Whether HorizontalPodAutoscalers exist where this runs (always on Kubernetes; in embedded mode
   * only when the daemon serves the kind). Without them an HPA target fails with the reason.
   */
  hpaTargets: boolean;
  /** A run missed while nothing reconciled is caught up when it is at most this old; default 24 h. */
  catchUpWindowMs?: number;
  /** Longest wait before the object is looked at again (clock changes, resync); default 1 h. */
  maxRequeueMs?: number;
}

type CronHpaObject = CronHorizontalPodAutoscaler & StoredObject;

interface DueRun {
  job: CronHpaJob;
  condition: CronHpaCondition;
  at: Date;
}

const DAY_MS = 24 * 3_600_000;

function keyOf(object: CronHpaObject): { kind: string; namespace: string; name: string } {
  return { kind: CRON_HPA_KIND, namespace: object.metadata.namespace, name: object.metadata.name };
}

/**
 * CronHorizontalPodAutoscaler as kubernetes-cronhpa-controller runs it (one condition per job,
 * Submitted → Succeed | Failed, events `Succeed`/`Failed` with its messages, an HPA target has its
 * min/max moved), but level-triggered on the store instead of timers in memory: each job's last
 * run is its condition's `lastProbeTime`, so after a restart the latest run missed since then is
 * caught up once (within `catchUpWindowMs`), in time order across jobs, so the last one wins.
 */
export class CronHpaReconciler {
  readonly #options: CronHpaReconcilerOptions;
  readonly #now: () => Date;

  constructor(options: CronHpaReconcilerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace = 'default', name = ''] = key.split('/');
    const object = await this.#options.store.get<CronHpaObject>({ kind: CRON_HPA_KIND, namespace, name });
    if (object === undefined || object.metadata.deletionTimestamp !== undefined) return undefined;
    const now = this.#now();
    const previous = object.status?.conditions ?? [];
    const timeZone = object.metadata.annotations?.[CRON_HPA_TIME_ZONE_ANNOTATION];
    const objectProblem = this.#objectProblem(object, timeZone);
    const conditions: CronHpaCondition[] = [];
    const due: DueRun[] = [];
    const schedules = new Map<string, CronHpaSchedule>();
    for (const [index, job] of object.spec.jobs.entries()) {
      const condition = this.#conditionFor(job, previous, now);
      conditions.push(condition);
      const problem = objectProblem ?? cronHpaJobProblem(job, `/spec/jobs/${index}`, timeZone);
      if (problem !== undefined) {
        const message = `Failed to create cron hpa job ${job.name} in namespace ${namespace}, because of ${problem.path}: ${problem.message}`;
        await this.#settle(object, condition, 'Failed', message, condition.lastProbeTime);
        continue;
      }
      const parsed = parseCronHpaSchedule(job.schedule, timeZone);
      if (!parsed.ok) continue;
      // A runOnce job runs once; the original then forgets it, its condition stays.
      if (job.runOnce === true && condition.state !== 'Submitted') continue;
      schedules.set(job.name, parsed.schedule);
      const since = new Date(condition.lastProbeTime);
      const at = parsed.schedule.latestIn(since, now);
      if (at === undefined) continue;
      const windowMs = this.#options.catchUpWindowMs ?? DAY_MS;
      if (now.getTime() - at.getTime() > windowMs) {
        // Too old to act on: recorded, and counted from there.
        condition.message = `skipped the run of ${at.toISOString()}: missed by more than ${Math.round(windowMs / 1000)}s`;
        condition.lastProbeTime = at.toISOString();
        continue;
      }
      due.push({ job, condition, at });
    }
    due.sort((a, b) => a.at.getTime() - b.at.getTime());
    for (const run of due) await this.#run(object, run, now, timeZone);
    await this.#writeStatus(object, conditions);
    return this.#requeue(conditions, schedules, now);
  }

  #objectProblem(
    object: CronHpaObject,
    timeZone: string | undefined,
  ): { path: string; message: string } | undefined {
    if (timeZone !== undefined) {
      const problem = timeZoneProblem(timeZone);
      if (problem !== undefined)
        return {
          path: `/metadata/annotations/${CRON_HPA_TIME_ZONE_ANNOTATION.replace('/', '~1')}`,
          message: problem,
        };
    }
    const target = scaleTargetProblem(object.spec.scaleTargetRef);
    if (target !== undefined) return target;
    if (object.spec.scaleTargetRef.kind === HPA_KIND && !this.#options.hpaTargets) {
      return {
        path: '/spec/scaleTargetRef/kind',
        message: `${HPA_KIND} targets need HorizontalPodAutoscalers, which this Tide daemon does not serve`,
      };
    }
    return undefined;
  }

  /** The job's condition, or a new one (Submitted, a new jobId) when the job is new or changed. */
  #conditionFor(job: CronHpaJob, previous: readonly CronHpaCondition[], now: Date): CronHpaCondition {
    const runOnce = job.runOnce ?? false;
    const found = previous.find((condition) => condition.name === job.name);
    if (
      found !== undefined &&
      found.schedule === job.schedule &&
      found.targetSize === job.targetSize &&
      found.runOnce === runOnce
    )
      return { ...found };
    return {
      name: job.name,
      jobId: randomUUID(),
      schedule: job.schedule,
      targetSize: job.targetSize,
      runOnce,
      state: 'Submitted',
      lastProbeTime: now.toISOString(),
      message: '',
    };
  }

  async #run(object: CronHpaObject, run: DueRun, now: Date, timeZone: string | undefined): Promise<void> {
    const { job, condition, at } = run;
    const lateMs = now.getTime() - at.getTime();
    // Runs found more than a few seconds late are the ones missed while nothing reconciled.
    const caughtUp = lateMs > 5000 ? ` (caught up at ${now.toISOString()}: the run was missed)` : '';
    const excluded = excludedBy(object.spec.excludeDates ?? [], at, timeZone);
    if (excluded !== undefined) {
      const message = `cron hpa job ${job.name} executed successfully. skip scaling activity,because of excludeDate (${excluded}).`;
      await this.#settle(object, condition, 'Succeed', message, at.toISOString());
      return;
    }
    try {
      const detail = await this.#scale(object, job.targetSize);
      const message = `cron hpa job ${job.name} executed successfully. ${detail}${caughtUp}`;
      await this.#settle(object, condition, 'Succeed', message, at.toISOString(), true);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      const message = `cron hpa failed to execute, because of ${reason}${caughtUp}`;
      this.#options.logger.warn(
        { cronhpa: object.metadata.name, job: job.name, err: error },
        'cron hpa job failed',
      );
      await this.#settle(object, condition, 'Failed', message, at.toISOString(), true);
    }
  }

  async #scale(object: CronHpaObject, targetSize: number): Promise<string> {
    const { store } = this.#options;
    const ref = object.spec.scaleTargetRef;
    const namespace = object.metadata.namespace;
    for (let attempt = 1; ; attempt += 1) {
      try {
        return ref.kind === HPA_KIND
          ? await scaleHpa(store, namespace, ref.name, targetSize)
          : await scaleRuntime(store, { kind: ref.kind, namespace, name: ref.name }, targetSize);
      } catch (error) {
        // Someone else wrote the target in between: read it again.
        if (!hasCode(error, 'ERR_STORE_CONFLICT') || attempt >= 3) throw error;
      }
    }
  }

  /** Sets a job's outcome; an event goes out when it runs, or when a failure is new. */
  async #settle(
    object: CronHpaObject,
    condition: CronHpaCondition,
    state: CronHpaCondition['state'],
    message: string,
    lastProbeTime: string,
    ran = false,
  ): Promise<void> {
    const changed = condition.state !== state || condition.message !== message;
    condition.state = state;
    condition.message = message;
    condition.lastProbeTime = lastProbeTime;
    if (ran || changed)
      await this.#options.events.record(object, state === 'Failed' ? 'Warning' : 'Normal', state, message);
  }

  async #writeStatus(object: CronHpaObject, conditions: CronHpaCondition[]): Promise<void> {
    const status = {
      scaleTargetRef: object.spec.scaleTargetRef,
      ...(object.spec.excludeDates === undefined ? {} : { excludeDates: object.spec.excludeDates }),
      conditions,
    };
    if (isDeepStrictEqual(object.status, status)) return;
    const { store } = this.#options;
    try {
      await store.updateStatus({ ...object, status });
    } catch (error) {
      // The spec moved on meanwhile; its reconcile writes the status again.
      if (hasCode(error, 'ERR_STORE_CONFLICT')) return;
      if (!hasCode(error, 'ERR_STORE_NOT_FOUND')) throw error;
      // kubernetes-cronhpa-controller's CRD, kept where it was installed, has no status
      // subresource (`/status` answers 404): there the status is written with the object.
      if ((await store.get(keyOf(object))) === undefined) return;
      await store.update({ ...object, status }).catch((retry: unknown) => {
        if (!hasCode(retry, 'ERR_STORE_CONFLICT')) throw retry;
      });
    }
  }

  #requeue(
    conditions: readonly CronHpaCondition[],
    schedules: ReadonlyMap<string, CronHpaSchedule>,
    now: Date,
  ): ReconcileResult {
    let waitMs = this.#options.maxRequeueMs ?? 3_600_000;
    for (const condition of conditions) {
      const schedule = schedules.get(condition.name);
      if (schedule === undefined || (condition.runOnce && condition.state !== 'Submitted')) continue;
      const next = schedule.nextAfter(new Date(condition.lastProbeTime), now);
      if (next !== undefined) waitMs = Math.min(waitMs, Math.max(0, next.getTime() - now.getTime()));
    }
    return { requeueAfterMs: waitMs };
  }
}
