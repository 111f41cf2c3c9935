import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../lib/index.ts';
import type {
  CacheStatistics,
  DatasetRef,
  LoadPlan,
  LoadProgress,
  Platform,
  RuntimeObservation,
  RuntimePlan,
} from '../platform/index.ts';
import { SqliteStore, type StoredObject } from '../store/index.ts';
import { createUnderFileSystem } from '../ufs/index.ts';
import type { DatasetStatus } from '../api/index.ts';
import { ControllerManager } from './manager.ts';

/**
 * A platform that records plans instead of starting processes: the reconciler's decisions are
 * checked here; the local platform with real workers and mounts is tested end to end elsewhere.
 */
class RecordingPlatform implements Platform {
  readonly schedulesPods = false;
  plans: RuntimePlan[] = [];
  removed: DatasetRef[] = [];
  users: string[] = [];

  apply(plan: RuntimePlan): Promise<RuntimeObservation> {
    this.plans.push(plan);
    return Promise.resolve({
      workers: { desired: plan.workers, current: plan.workers, ready: plan.workers },
      fuse: { desired: 1, ready: 1, mountPath: `/mnt/${plan.dataset.name}` },
    });
  }

  remove(dataset: DatasetRef): Promise<void> {
    this.removed.push(dataset);
    return Promise.resolve();
  }

  usersOf(): Promise<string[]> {
    return Promise.resolve(this.users);
  }

  loads: LoadPlan[] = [];
  /** Completes a load after `loadDelayMs`, or fails it when `loadError` is set. */
  loadDelayMs = 50;
  loadError: Error | undefined;

  async load(
    plan: LoadPlan,
    options: { signal: AbortSignal; onProgress: (progress: LoadProgress) => void },
  ): Promise<LoadProgress> {
    this.loads.push(plan);
    options.onProgress({ filesDone: 1, bytesDone: 1024, filesTotal: 2, bytesTotal: 2048 });
    await new Promise((resolve) => setTimeout(resolve, this.loadDelayMs));
    if (this.loadError !== undefined) throw this.loadError;
    return { filesDone: 2, bytesDone: 2048, filesTotal: 2, bytesTotal: 2048 };
  }

  statistics(): Promise<CacheStatistics> {
    return Promise.resolve({
      cachedBytes: 512,
      capacityBytes: 2048,
      usedBytes: 512,
      bytesReadLocal: 300,
      bytesReadRemote: 0,
      bytesReadOrigin: 100,
      cachedBytesByNode: { 'node-a': 384, 'node-b': 128 },
    });
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function setup(t: { after: (fn: () => Promise<void> | void) => void }) {
  const origin = await mkdtemp(join(tmpdir(), 'tide-origin-'));
  await writeFile(join(origin, 'a.bin'), Buffer.alloc(1024, 1));
  await writeFile(join(origin, 'b.bin'), Buffer.alloc(1024, 2));
  const store = new SqliteStore({ path: ':memory:' });
  const platform = new RecordingPlatform();
  const manager = new ControllerManager({
    store,
    platform,
    logger: silentLogger(),
    ufsFactory: (mount) => createUnderFileSystem(mount),
    resyncMs: 100,
    originCheckTimeoutMs: 2000,
  });
  manager.start();
  t.after(async () => {
    await manager.stop();
    store.close();
    await rm(origin, { recursive: true, force: true });
  });
  return { origin, store, platform };
}

function dataset(mountPoint: string): StoredObject {
  return {
    apiVersion: 'data.fluid.io/v1alpha1',
    kind: 'Dataset',
    metadata: { name: 'demo', namespace: 'default' },
    spec: { mounts: [{ mountPoint, name: 'data' }] },
  };
}

function runtime(kind: string, spec: Record<string, unknown>): StoredObject {
  return {
    apiVersion: 'data.fluid.io/v1alpha1',
    kind,
    metadata: { name: 'demo', namespace: 'default' },
    spec,
  };
}

const key = (kind: string) => ({ kind, namespace: 'default', name: 'demo' });
type Status = Record<string, unknown> & {
  phase?: string;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
};

test('a dataset with a runtime binds, counts its files and reports cache states as Fluid does', async (t) => {
  const { origin, store, platform } = await setup(t);
  await store.create(dataset(`local://${origin}`));
  await store.create(runtime('TideRuntime', { replicas: 2 }));
  const status = await until('Bound with a file count', async () => {
    const current = (await store.get(key('Dataset')))?.status as Status | undefined;
    return current?.phase === 'Bound' && current['fileNum'] === '2' ? current : undefined;
  });
  assert.equal(status['ufsTotal'], '2.00KiB');
  assert.deepEqual(status['cacheStates'], {
    cached: '512.00B',
    cacheCapacity: '2.00KiB',
    cachedPercentage: '25.0%',
    cacheHitRatio: '75.0%',
    localHitRatio: '75.0%',
    remoteHitRatio: '0.0%',
  });
  assert.equal(status['mountPath'], '/mnt/demo');
  assert.deepEqual(status['cachedBytesByNode'], { 'node-a': 384, 'node-b': 128 });
  assert.equal(platform.plans.at(-1)?.workers, 2);
  const stored = await store.get(key('TideRuntime'));
  assert.equal(stored?.metadata.ownerReferences?.[0]?.kind, 'Dataset', 'the dataset owns its runtime');
  assert.equal((stored.status as Status).workerPhase, 'Ready');
});

test('an unreachable origin fails the dataset with a reason, and it binds again once the origin is back', async (t) => {
  const { origin, store } = await setup(t);
  const missing = join(origin, 'later');
  await store.create(dataset(`local://${missing}`));
  await store.create(runtime('TideRuntime', { replicas: 1 }));
  const failed = await until('Failed', async () => {
    const current = (await store.get(key('Dataset')))?.status as Status | undefined;
    return current?.phase === 'Failed' ? current : undefined;
  });
  const ready = failed.conditions?.find((condition) => condition.type === 'Ready');
  assert.equal(ready?.status, 'False');
  assert.equal(ready.reason, 'NotFound');
  assert.match(ready.message ?? '', /mount \/data/);
  await import('node:fs/promises').then((fs) => fs.mkdir(missing));
  await until(
    'Bound after recovery',
    async () => {
      const current = (await store.get(key('Dataset')))?.status as Status | undefined;
      return current?.phase === 'Bound' ? current : undefined;
    },
    15_000,
  );
});

test('a seed runtime kind is served in compatibility mode and names the fields it ignores', async (t) => {
  const { origin, store } = await setup(t);
  await store.create(dataset(`local://${origin}`));
  await store.create(
    runtime('AlluxioRuntime', {
      replicas: 1,
      properties: { a: 'b' },
      master: { replicas: 3, jvmOptions: ['-Xmx1g'] },
    }),
  );
  const condition = await until('the CompatibilityMode condition', async () => {
    const current = (await store.get(key('AlluxioRuntime')))?.status as Status | undefined;
    return current?.conditions?.find((item) => item.type === 'CompatibilityMode');
  });
  assert.equal(condition.reason, 'EngineFieldsIgnored');
  assert.match(
    condition.message ?? '',
    /spec\.properties, spec\.master\.replicas, spec\.master\.jvmOptions\./,
  );
  assert.match(condition.message ?? '', /Tide has no master/);
});

test('deleting a dataset in use waits and says why; then everything is removed', async (t) => {
  const { origin, store, platform } = await setup(t);
  await store.create(dataset(`local://${origin}`));
  await store.create(runtime('TideRuntime', { replicas: 1 }));
  await until(
    'Bound',
    async () =>
      ((await store.get(key('Dataset')))?.status as Status | undefined)?.phase === 'Bound' || undefined,
  );
  platform.users = ['pid 42 (cat)'];
  await store.delete(key('Dataset'));
  const event = await until('an ErrorDeleteDataset event', async () => {
    const events = await store.list('Event', { namespace: 'default' });
    return events.items.find((item) => item['reason'] === 'ErrorDeleteDataset');
  });
  assert.match(String(event['message']), /in use by pid 42 \(cat\)/);
  const blocked = await until('a DeletionBlocked condition', async () => {
    const status = (await store.get(key('Dataset')))?.status as Status | undefined;
    return status?.conditions?.find((condition) => condition.type === 'DeletionBlocked');
  });
  assert.equal(blocked.reason, 'DatasetInUse');
  assert.match(blocked.message ?? '', /in use by pid 42 \(cat\)/);
  platform.users = [];
  await until('the dataset gone', async () =>
    (await store.get(key('Dataset'))) === undefined ? true : undefined,
  );
  await until('the runtime gone', async () =>
    (await store.get(key('TideRuntime'))) === undefined ? true : undefined,
  );
  assert.ok(platform.removed.some((ref) => ref.name === 'demo'));
});

test('deleting only the runtime tears it down and leaves the dataset NotBound', async (t) => {
  const { origin, store, platform } = await setup(t);
  await store.create(dataset(`local://${origin}`));
  await store.create(runtime('TideRuntime', { replicas: 1 }));
  await until(
    'Bound',
    async () =>
      ((await store.get(key('Dataset')))?.status as Status | undefined)?.phase === 'Bound' || undefined,
  );
  await store.delete(key('TideRuntime'));
  await until(
    'NotBound',
    async () =>
      ((await store.get(key('Dataset')))?.status as Status | undefined)?.phase === 'NotBound' || undefined,
  );
  assert.equal(await store.get(key('TideRuntime')), undefined);
  assert.ok(platform.removed.length > 0);
});

function dataLoad(name: string, spec: Record<string, unknown>): StoredObject {
  return {
    apiVersion: 'data.fluid.io/v1alpha1',
    kind: 'DataLoad',
    metadata: { name, namespace: 'default' },
    spec: { dataset: { name: 'demo', namespace: 'default' }, ...spec },
  };
}

async function boundDataset(store: SqliteStore, origin: string): Promise<void> {
  await store.create(dataset(`local://${origin}`));
  await store.create(runtime('TideRuntime', { replicas: 1 }));
  await until(
    'Bound',
    async () =>
      ((await store.get(key('Dataset')))?.status as Status | undefined)?.phase === 'Bound' || undefined,
  );
}

const phaseOf = async (store: SqliteStore, name: string) =>
  ((await store.get({ kind: 'DataLoad', namespace: 'default', name }))?.status as Status | undefined)?.phase;

test('a DataLoad runs once with its targets and replicas, reports progress and completes', async (t) => {
  const { origin, store, platform } = await setup(t);
  await boundDataset(store, origin);
  await store.create(
    dataLoad('warm', {
      target: [{ path: '/data', replicas: 2 }, { path: '/data/a.bin' }],
      options: { parallelism: '4' },
    }),
  );
  const status = await until('Complete', async () => {
    const current = (await store.get({ kind: 'DataLoad', namespace: 'default', name: 'warm' }))?.status as
      Status | undefined;
    return current?.phase === 'Complete' ? current : undefined;
  });
  assert.deepEqual(platform.loads[0]?.targets, [
    { path: '/data', replicas: 2 },
    { path: '/data/a.bin', replicas: 1 },
  ]);
  assert.equal(platform.loads[0].parallelism, 4);
  assert.deepEqual(
    { ...(status['progress'] as object), throughputBytesPerSecond: 0, etaSeconds: 0 },
    {
      filesDone: 2,
      bytesDone: 2048,
      filesTotal: 2,
      bytesTotal: 2048,
      throughputBytesPerSecond: 0,
      etaSeconds: 0,
    },
  );
  const dataset = (await store.get(key('Dataset')))?.status as DatasetStatus;
  assert.equal(dataset.operationRef?.['DataLoad'], undefined, 'the lock is released');
});

test('two DataLoads of one dataset queue on its lock, and runAfter waits for the first', async (t) => {
  const { origin, store, platform } = await setup(t);
  await boundDataset(store, origin);
  platform.loadDelayMs = 400;
  await store.create(dataLoad('first', {}));
  await until('first Executing', async () =>
    (await phaseOf(store, 'first')) === 'Executing' ? true : undefined,
  );
  await store.create(dataLoad('second', {}));
  await store.create(dataLoad('third', { runAfter: { kind: 'DataLoad', name: 'second' } }));
  const holder = ((await store.get(key('Dataset')))?.status as DatasetStatus).operationRef?.['DataLoad'];
  assert.equal(holder, 'first');
  await until('first Complete', async () =>
    (await phaseOf(store, 'first')) === 'Complete' ? true : undefined,
  );
  assert.notEqual(await phaseOf(store, 'third'), 'Executing', 'third waits for second');
  await until('second Complete', async () =>
    (await phaseOf(store, 'second')) === 'Complete' ? true : undefined,
  );
  await until(
    'third Complete',
    async () => ((await phaseOf(store, 'third')) === 'Complete' ? true : undefined),
    15_000,
  );
  assert.equal(platform.loads.length, 3);
});

test('a failed load reports why, and a finished one is deleted after its TTL', async (t) => {
  const { origin, store, platform } = await setup(t);
  await boundDataset(store, origin);
  platform.loadError = new Error('origin refused the connection');
  await store.create(dataLoad('broken', {}));
  const failed = await until('Failed', async () => {
    const current = (await store.get({ kind: 'DataLoad', namespace: 'default', name: 'broken' }))?.status as
      Status | undefined;
    return current?.phase === 'Failed' ? current : undefined;
  });
  assert.match(failed.conditions?.[0]?.message ?? '', /origin refused the connection/);
  platform.loadError = undefined;
  await store.create(dataLoad('shortlived', { ttlSecondsAfterFinished: 1 }));
  await until('Complete', async () =>
    (await phaseOf(store, 'shortlived')) === 'Complete' ? true : undefined,
  );
  await until(
    'deleted after its TTL',
    async () =>
      (await phaseOf(store, 'shortlived')) === undefined &&
      !(await store.get({ kind: 'DataLoad', namespace: 'default', name: 'shortlived' }))
        ? true
        : undefined,
    5000,
  );
});

test('a cron DataLoad runs on schedule again after a failed run', async (t) => {
  const { origin, store, platform } = await setup(t);
  await boundDataset(store, origin);
  platform.loadError = new Error('first run fails');
  await store.create(dataLoad('cron', { policy: 'Cron', schedule: '* * * * * *' }));
  await until(
    'a failed run',
    async () => ((await phaseOf(store, 'cron')) === 'Failed' ? true : undefined),
    5000,
  );
  platform.loadError = undefined;
  const status = await until(
    'a successful run',
    async () => {
      const current = (await store.get({ kind: 'DataLoad', namespace: 'default', name: 'cron' }))?.status as
        Status | undefined;
      return current?.['lastSuccessfulTime'] !== undefined ? current : undefined;
    },
    8000,
  );
  assert.ok(status['lastScheduleTime'] !== undefined);
  assert.ok(platform.loads.length >= 2);
});

test('a Cron DataLoad written without a schedule (around the validation) waits with the reason and never runs', async (t) => {
  const { origin, store, platform } = await setup(t);
  await boundDataset(store, origin);
  await store.create(dataLoad('unscheduled', { policy: 'Cron' }));
  const status = await until(
    'the InvalidSchedule condition',
    async () => {
      const current = (await store.get({ kind: 'DataLoad', namespace: 'default', name: 'unscheduled' }))
        ?.status as { conditions?: { type: string; reason?: string; message?: string }[] } | undefined;
      return current?.conditions?.some((c) => c.reason === 'InvalidSchedule') === true ? current : undefined;
    },
    5000,
  );
  assert.match(
    status.conditions?.find((c) => c.reason === 'InvalidSchedule')?.message ?? '',
    /\/spec\/schedule: is required when policy is Cron/,
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(platform.loads.length, 0, 'no load ran');
});

test('runAfter a cron DataLoad goes ahead once the cron load has succeeded, between runs or not', async (t) => {
  const { origin, store, platform } = await setup(t);
  await boundDataset(store, origin);
  // Runs every second and takes most of it: Complete only briefly between runs.
  platform.loadDelayMs = 700;
  await store.create(dataLoad('cron', { policy: 'Cron', schedule: '* * * * * *' }));
  await store.create(dataLoad('after', { runAfter: { kind: 'DataLoad', name: 'cron' } }));
  await until(
    'after Complete',
    async () => ((await phaseOf(store, 'after')) === 'Complete' ? true : undefined),
    15_000,
  );
  const cron = (await store.get({ kind: 'DataLoad', namespace: 'default', name: 'cron' }))?.status as
    Status | undefined;
  assert.ok(cron?.['lastSuccessfulTime'] !== undefined, 'after ran only once cron had succeeded');
});
