import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../lib/index.ts';
import { SqliteStore, type StoredObject } from '../store/index.ts';
import type { CronHpaCondition } from '../api/index.ts';
import { CronHpaReconciler } from './cronhpa-reconciler.ts';
import type { EventRecorder } from './events.ts';

const NS = 'default';

interface Harness {
  store: SqliteStore;
  reconciler: CronHpaReconciler;
  events: { reason: string; message: string }[];
  /** Moves the fake clock to an ISO time. */
  at: (iso: string) => void;
  replicas: () => Promise<number | undefined>;
  conditions: () => Promise<CronHpaCondition[]>;
}

async function harness(t: TestContext, options: { hpaTargets?: boolean } = {}): Promise<Harness> {
  const store = new SqliteStore({ path: ':memory:' });
  t.after(() => {
    store.close();
  });
  let now = new Date('2026-12-07T00:00:00Z');
  const events: { reason: string; message: string }[] = [];
  const recorder: EventRecorder = {
    record: (_object, _type, reason, message) => {
      events.push({ reason, message });
      return Promise.resolve();
    },
  };
  const reconciler = new CronHpaReconciler({
    store,
    events: recorder,
    logger: silentLogger(),
    now: () => now,
    hpaTargets: options.hpaTargets ?? false,
  });
  await store.create({
    apiVersion: 'data.fluid.io/v1alpha1',
    kind: 'TideRuntime',
    metadata: { name: 'web', namespace: NS },
    spec: { replicas: 1 },
  });
  return {
    store,
    reconciler,
    events,
    at: (iso) => {
      now = new Date(iso);
    },
    replicas: async () =>
      (
        (await store.get({ kind: 'TideRuntime', namespace: NS, name: 'web' }))?.spec as
          { replicas?: number } | undefined
      )?.replicas,
    conditions: async () =>
      (
        (await store.get({ kind: 'CronHorizontalPodAutoscaler', namespace: NS, name: 'cron' }))?.status as {
          conditions: CronHpaCondition[];
        }
      ).conditions,
  };
}

function cronHpa(spec: Record<string, unknown>, annotations?: Record<string, string>): StoredObject {
  return {
    apiVersion: 'autoscaling.alibabacloud.com/v1beta1',
    kind: 'CronHorizontalPodAutoscaler',
    metadata: { name: 'cron', namespace: NS, ...(annotations === undefined ? {} : { annotations }) },
    spec: {
      scaleTargetRef: { apiVersion: 'data.fluid.io/v1alpha1', kind: 'TideRuntime', name: 'web' },
      ...spec,
    },
  };
}

const KEY = `${NS}/cron`;

test('a seconds schedule scales the runtime at its time and writes the condition and event', async (t) => {
  const h = await harness(t);
  await h.store.create(cronHpa({ jobs: [{ name: 'up', schedule: '*/5 * * * * *', targetSize: 3 }] }));
  const first = await h.reconciler.reconcile(KEY);
  assert.equal((await h.conditions())[0]?.state, 'Submitted');
  assert.equal(first?.requeueAfterMs, 5000);
  assert.equal(await h.replicas(), 1);
  h.at('2026-12-07T00:00:05Z');
  await h.reconciler.reconcile(KEY);
  assert.equal(await h.replicas(), 3);
  const [condition] = await h.conditions();
  assert.equal(condition?.state, 'Succeed');
  assert.equal(condition.lastProbeTime, '2026-12-07T00:00:05.000Z');
  assert.equal(
    condition.message,
    'cron hpa job up executed successfully. current replicas:1, desired replicas:3.',
  );
  assert.deepEqual(h.events.at(-1), { reason: 'Succeed', message: condition.message });
});

test('after downtime only the latest missed run of each job is caught up, in time order', async (t) => {
  const h = await harness(t);
  // Fluid's seed 001: to 0 at 08:00 Monday to Saturday, back to 3 at 21:30 Monday to Friday.
  await h.store.create(
    cronHpa(
      {
        jobs: [
          { name: 'scale-down', schedule: '0 0 8 ? * 1-6', targetSize: 0 },
          { name: 'scale-up', schedule: '0 30 21 ? * 1-5', targetSize: 3 },
        ],
      },
      { 'tide.io/time-zone': 'Asia/Shanghai' },
    ),
  );
  await h.reconciler.reconcile(KEY); // Monday 08:00 Shanghai, submitted
  // Down from then until Tuesday 23:00 Shanghai (15:00 UTC): Monday's and Tuesday's runs missed.
  h.at('2026-12-08T15:00:00Z');
  h.events.length = 0;
  await h.reconciler.reconcile(KEY);
  assert.equal(await h.replicas(), 3, 'the last missed run (Tuesday 21:30, to 3) wins');
  const conditions = await h.conditions();
  assert.deepEqual(
    conditions.map((c) => [c.name, c.state, c.lastProbeTime]),
    [
      ['scale-down', 'Succeed', '2026-12-08T00:00:00.000Z'],
      ['scale-up', 'Succeed', '2026-12-08T13:30:00.000Z'],
    ],
  );
  assert.match(conditions[1]?.message ?? '', /caught up at 2026-12-08T15:00:00.000Z/);
  assert.equal(h.events.length, 2, 'one run per job, not one per missed day');
  // Nothing more until Wednesday 08:00 Shanghai, 9 h away: looked at again within the hour.
  h.events.length = 0;
  const next = await h.reconciler.reconcile(KEY);
  assert.equal(h.events.length, 0);
  assert.equal(next?.requeueAfterMs, 3_600_000);
  h.at('2026-12-09T00:00:00Z');
  await h.reconciler.reconcile(KEY);
  assert.equal(await h.replicas(), 0, 'Wednesday 08:00 on time');
});

test('a run missed by more than the catch-up window is skipped, not acted on', async (t) => {
  const h = await harness(t);
  await h.store.create(
    cronHpa({ jobs: [{ name: 'once', schedule: '@date 2026-12-07 00:00:10', targetSize: 2 }] }),
  );
  await h.reconciler.reconcile(KEY);
  h.at('2026-12-09T00:00:00Z');
  await h.reconciler.reconcile(KEY);
  assert.equal(await h.replicas(), 1);
  assert.match((await h.conditions())[0]?.message ?? '', /skipped the run of 2026-12-07T00:00:10.000Z/);
});

test('excludeDates skips the runs of those days in the object time zone, and only those', async (t) => {
  const h = await harness(t);
  await h.store.create(
    cronHpa(
      { excludeDates: ['* * * 8 12 *'], jobs: [{ name: 'up', schedule: '0 0 1 * * *', targetSize: 4 }] },
      { 'tide.io/time-zone': 'Europe/Berlin' },
    ),
  );
  await h.reconciler.reconcile(KEY);
  // 01:00 Berlin on 8 December is 00:00 UTC on the 8th: excluded.
  h.at('2026-12-08T00:00:00Z');
  await h.reconciler.reconcile(KEY);
  assert.equal(await h.replicas(), 1);
  assert.equal(
    (await h.conditions())[0]?.message,
    'cron hpa job up executed successfully. skip scaling activity,because of excludeDate (* * * 8 12 *).',
  );
  // The 9th is another date (the original's layout string made all days compare equal).
  h.at('2026-12-09T00:00:00Z');
  await h.reconciler.reconcile(KEY);
  assert.equal(await h.replicas(), 4);
});

test('a runOnce job runs once; @every counts from the submission', async (t) => {
  const h = await harness(t);
  await h.store.create(
    cronHpa({ jobs: [{ name: 'once', schedule: '@every 1m30s', targetSize: 2, runOnce: true }] }),
  );
  await h.reconciler.reconcile(KEY);
  h.at('2026-12-07T00:01:29Z');
  await h.reconciler.reconcile(KEY);
  assert.equal(await h.replicas(), 1);
  h.at('2026-12-07T00:01:30Z');
  await h.reconciler.reconcile(KEY);
  assert.equal(await h.replicas(), 2);
  const runtime = await h.store.get({ kind: 'TideRuntime', namespace: NS, name: 'web' });
  await h.store.update({ ...(runtime as StoredObject), spec: { replicas: 1 } });
  h.at('2026-12-07T00:10:00Z');
  await h.reconciler.reconcile(KEY);
  assert.equal(await h.replicas(), 1, 'not again');
  assert.equal((await h.conditions())[0]?.state, 'Succeed');
});

test('an HPA target has its min and max moved as the original does', async (t) => {
  const h = await harness(t, { hpaTargets: true });
  await h.store.create({
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: 'hpa', namespace: NS },
    spec: {
      scaleTargetRef: { apiVersion: 'data.fluid.io/v1alpha1', kind: 'TideRuntime', name: 'web' },
      minReplicas: 1,
      maxReplicas: 4,
    },
    status: { currentReplicas: 1 },
  });
  await h.store.create({
    ...cronHpa({
      jobs: [
        { name: 'up', schedule: '0 0 9 * * *', targetSize: 6 },
        { name: 'down', schedule: '0 0 18 * * *', targetSize: 0 },
      ],
    }),
    spec: {
      scaleTargetRef: { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: 'hpa' },
      jobs: [
        { name: 'up', schedule: '0 0 9 * * *', targetSize: 6 },
        { name: 'down', schedule: '0 0 18 * * *', targetSize: 0 },
      ],
    },
    metadata: { name: 'cron', namespace: NS, annotations: { 'tide.io/time-zone': 'UTC' } },
  });
  const hpa = async (): Promise<{ minReplicas: number; maxReplicas: number }> =>
    (await h.store.get({ kind: 'HorizontalPodAutoscaler', namespace: NS, name: 'hpa' }))?.spec as {
      minReplicas: number;
      maxReplicas: number;
    };
  await h.reconciler.reconcile(KEY);
  h.at('2026-12-07T09:00:00Z');
  await h.reconciler.reconcile(KEY);
  assert.deepEqual(await hpa(), { ...(await hpa()), minReplicas: 6, maxReplicas: 6 });
  assert.equal(await h.replicas(), 6, "the HPA's runtime is scaled up to the new minimum at once");
  h.at('2026-12-07T18:00:00Z');
  await h.reconciler.reconcile(KEY);
  assert.equal((await hpa()).minReplicas, 0);
  assert.equal((await hpa()).maxReplicas, 6);
  assert.match((await h.conditions())[1]?.message ?? '', /Skip scale replicas because HPA hpa/);
});

test('objects written around tide apply fail with a condition naming the field', async (t) => {
  const h = await harness(t);
  await h.store.create(
    cronHpa({
      jobs: [
        { name: 'bad', schedule: '0 8 * * *', targetSize: 1 },
        { name: 'negative', schedule: '0 0 8 * * *', targetSize: -1 },
      ],
    }),
  );
  await h.reconciler.reconcile(KEY);
  const conditions = await h.conditions();
  assert.deepEqual(
    conditions.map((c) => c.state),
    ['Failed', 'Failed'],
  );
  assert.match(conditions[0]?.message ?? '', /\/spec\/jobs\/0\/schedule: "0 8 \* \* \*" needs 6 fields/);
  assert.match(conditions[1]?.message ?? '', /\/spec\/jobs\/1\/targetSize: must be a whole number/);
  assert.deepEqual(
    h.events.map((e) => e.reason),
    ['Failed', 'Failed'],
  );
  await h.reconciler.reconcile(KEY);
  assert.equal(h.events.length, 2, 'a failure already reported is not reported again');
});

test('an HPA target is refused where no HPAs are served', async (t) => {
  const h = await harness(t, { hpaTargets: false });
  await h.store.create({
    ...cronHpa({ jobs: [{ name: 'up', schedule: '@hourly', targetSize: 2 }] }),
    spec: {
      scaleTargetRef: { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: 'hpa' },
      jobs: [{ name: 'up', schedule: '@hourly', targetSize: 2 }],
    },
  });
  await h.reconciler.reconcile(KEY);
  assert.match(
    (await h.conditions())[0]?.message ?? '',
    /\/spec\/scaleTargetRef\/kind: HorizontalPodAutoscaler targets need/,
  );
});
