import { Type, type Static } from '@sinclair/typebox';
import { Resource } from './common.ts';
import type { FieldError } from './errors.ts';
import { parseCronHpaSchedule, timeZoneProblem } from './cronhpa-schedule.ts';
import { RUNTIME_KINDS } from './runtime.ts';
import { API_VERSION } from './common.ts';

/** kubernetes-cronhpa-controller's group: Tide serves its kind so that Fluid's manifests apply unchanged. */
export const CRON_HPA_API_VERSION = 'autoscaling.alibabacloud.com/v1beta1';
export const CRON_HPA_KIND = 'CronHorizontalPodAutoscaler';

/**
 * The object's time zone (an IANA name), Tide's addition. An annotation rather than a spec field:
 * where the original's CRD is installed (Tide installs its own only where absent), the API
 * server would prune an unknown spec field silently; an annotation survives every schema.
 */
export const CRON_HPA_TIME_ZONE_ANNOTATION = 'tide.io/time-zone';

/** HorizontalPodAutoscaler as a target: the CronHPA moves its min/max instead of the replicas. */
export const HPA_KIND = 'HorizontalPodAutoscaler';

const ScaleTargetRef = Type.Object(
  {
    apiVersion: Type.String({ minLength: 1 }),
    kind: Type.String({ minLength: 1 }),
    name: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
);

export const CronHpaJob = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    schedule: Type.String({ minLength: 1 }),
    targetSize: Type.Integer({ minimum: 0 }),
    runOnce: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CronHpaJob = Static<typeof CronHpaJob>;

export const CronHpaSpec = Type.Object(
  {
    scaleTargetRef: ScaleTargetRef,
    excludeDates: Type.Optional(Type.Array(Type.String())),
    jobs: Type.Array(CronHpaJob),
  },
  { additionalProperties: false },
);

export const CronHpaJobState = Type.Union([
  Type.Literal('Submitted'),
  Type.Literal('Succeed'),
  Type.Literal('Failed'),
]);
export type CronHpaJobState = Static<typeof CronHpaJobState>;

/** One job's condition, with the original's field names (not a Kubernetes condition). */
export const CronHpaCondition = Type.Object({
  name: Type.String(),
  jobId: Type.String(),
  schedule: Type.String(),
  targetSize: Type.Integer(),
  runOnce: Type.Boolean(),
  state: CronHpaJobState,
  lastProbeTime: Type.String(),
  message: Type.String(),
});
export type CronHpaCondition = Static<typeof CronHpaCondition>;

export const CronHpaStatus = Type.Object({
  scaleTargetRef: Type.Optional(ScaleTargetRef),
  excludeDates: Type.Optional(Type.Array(Type.String())),
  conditions: Type.Optional(Type.Array(CronHpaCondition)),
});

export const CronHorizontalPodAutoscaler = Resource(
  CRON_HPA_KIND,
  CronHpaSpec,
  CronHpaStatus,
  CRON_HPA_API_VERSION,
);
export type CronHorizontalPodAutoscaler = Static<typeof CronHorizontalPodAutoscaler>;

/** The kinds a CronHPA may scale: Tide's runtimes (their scale) and HPAs (their min/max). */
export function scaleTargetProblem(ref: { apiVersion: string; kind: string }): FieldError | undefined {
  if ((RUNTIME_KINDS as readonly string[]).includes(ref.kind)) {
    if (ref.apiVersion === API_VERSION) return undefined;
    return {
      path: '/spec/scaleTargetRef/apiVersion',
      message: `must be "${API_VERSION}" for kind ${ref.kind}, got "${ref.apiVersion}"`,
    };
  }
  if (ref.kind === HPA_KIND) {
    if (/^autoscaling\/v(1|2|2beta1|2beta2)$/.test(ref.apiVersion)) return undefined;
    return {
      path: '/spec/scaleTargetRef/apiVersion',
      message: `must be "autoscaling/v2" for kind ${HPA_KIND}, got "${ref.apiVersion}"`,
    };
  }
  return {
    path: '/spec/scaleTargetRef/kind',
    message: `cannot scale kind "${ref.kind}": Tide scales ${[...RUNTIME_KINDS, HPA_KIND].join(', ')}`,
  };
}

/** Why a job cannot run (its schedule, its size), or undefined. `at` is its JSON-pointer path. */
export function cronHpaJobProblem(job: CronHpaJob, at: string, timeZone?: string): FieldError | undefined {
  if (!Number.isInteger(job.targetSize) || job.targetSize < 0)
    return {
      path: `${at}/targetSize`,
      message: `must be a whole number of at least 0, got ${job.targetSize}`,
    };
  const parsed = parseCronHpaSchedule(job.schedule, timeZone);
  return parsed.ok ? undefined : { path: `${at}/schedule`, message: parsed.problem };
}

/** The rules beyond the schema: target kind, schedules, excludeDates, unique job names, the time zone. */
export function cronHpaErrors(object: CronHorizontalPodAutoscaler): FieldError[] {
  const errors: FieldError[] = [];
  const timeZone = object.metadata.annotations?.[CRON_HPA_TIME_ZONE_ANNOTATION];
  const zoneProblem = timeZone === undefined ? undefined : timeZoneProblem(timeZone);
  if (zoneProblem !== undefined) {
    errors.push({
      path: `/metadata/annotations/${CRON_HPA_TIME_ZONE_ANNOTATION.replace('/', '~1')}`,
      message: zoneProblem,
    });
    return errors;
  }
  const target = scaleTargetProblem(object.spec.scaleTargetRef);
  if (target !== undefined) errors.push(target);
  const names = new Set<string>();
  object.spec.jobs.forEach((job, index) => {
    const problem = cronHpaJobProblem(job, `/spec/jobs/${index}`, timeZone);
    if (problem !== undefined) errors.push(problem);
    if (names.has(job.name))
      errors.push({ path: `/spec/jobs/${index}/name`, message: `"${job.name}" is used by another job` });
    names.add(job.name);
  });
  (object.spec.excludeDates ?? []).forEach((pattern, index) => {
    const parsed = parseCronHpaSchedule(pattern, timeZone);
    if (!parsed.ok) errors.push({ path: `/spec/excludeDates/${index}`, message: parsed.problem });
  });
  return errors;
}
