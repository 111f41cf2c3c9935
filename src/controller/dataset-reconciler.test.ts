import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../lib/index.ts';
import type {
  CacheStatistics,
  DatasetRef,
  Platform,
  RuntimeObservation,
  RuntimePlan,
} from '../platform/index.ts';
import { SqliteStore, type StoredObject } from '../store/index.ts';
import { createUnderFileSystem } from '../ufs/index.ts';
import { ControllerManager } from './manager.ts';

/**
 * A platform that records plans instead of starting processes: the reconciler's decisions are
 * checked here; the local platform with real workers and mounts is tested end to end elsewhere.
 */
class RecordingPlatform implements Platform {
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

  statistics(): Promise<CacheStatistics> {
    return Promise.resolve({
      cachedBytes: 512,
      capacityBytes: 2048,
      usedBytes: 512,
      bytesReadLocal: 300,
      bytesReadRemote: 0,
      bytesReadOrigin: 100,
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
  await until('Bound after recovery', async () => {
    const current = (await store.get(key('Dataset')))?.status as Status | undefined;
    return current?.phase === 'Bound' ? current : undefined;
  });
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
  assert.match(condition.message ?? '', /spec\.properties, spec\.master\.jvmOptions/);
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
  assert.ok(await store.get(key('Dataset')), 'kept while in use');
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
