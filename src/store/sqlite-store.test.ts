import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from './sqlite-store.ts';
import { StoreError } from './errors.ts';
import type { StoredObject, WatchEvent } from './types.ts';

function dataset(name: string, spec: unknown = { mounts: [] }): StoredObject {
  return {
    apiVersion: 'data.fluid.io/v1alpha1',
    kind: 'Dataset',
    metadata: { name, namespace: 'default' },
    spec,
  };
}

function isCode(code: string) {
  return (error: unknown) => error instanceof StoreError && error.code === code;
}

async function take<T>(iterator: AsyncIterator<T>, count: number, timeoutMs = 2000): Promise<T[]> {
  const out: T[] = [];
  const deadline = AbortSignal.timeout(timeoutMs);
  while (out.length < count) {
    const next = await Promise.race([
      iterator.next(),
      new Promise<never>((_, reject) => {
        deadline.addEventListener('abort', () => {
          reject(new Error(`waited ${timeoutMs} ms for ${count} watch events, got ${out.length}`));
        });
      }),
    ]);
    if (next.done === true) break;
    out.push(next.value);
  }
  return out;
}

test('update with a stale resourceVersion is a conflict; the fresh one wins', async () => {
  const store = new SqliteStore({ path: ':memory:' });
  const created = await store.create(dataset('a'));
  const first = await store.update({ ...created, spec: { mounts: [{ mountPoint: 'local:///x' }] } });
  assert.equal(first.metadata.generation, 2);
  await assert.rejects(store.update({ ...created, spec: { mounts: [] } }), isCode('ERR_STORE_CONFLICT'));
  await assert.rejects(store.create(dataset('a')), isCode('ERR_STORE_ALREADY_EXISTS'));
  store.close();
});

test('status is a subresource: update keeps it and updateStatus changes only it', async () => {
  const store = new SqliteStore({ path: ':memory:' });
  const created = await store.create(dataset('a'));
  const withStatus = await store.updateStatus({
    ...created,
    status: { phase: 'Bound' },
    spec: { ignored: true },
  });
  assert.deepEqual(withStatus.status, { phase: 'Bound' });
  assert.deepEqual(withStatus.spec, { mounts: [] });
  assert.equal(withStatus.metadata.generation, 1);
  const updated = await store.update({
    ...withStatus,
    status: { phase: 'Failed' },
    metadata: { ...withStatus.metadata, labels: { a: 'b' } },
  });
  assert.deepEqual(updated.status, { phase: 'Bound' });
  assert.equal(updated.metadata.generation, 1, 'a label change does not bump generation');
  store.close();
});

test('finalizers hold deletion until removed, then dependents are collected', async () => {
  const store = new SqliteStore({ path: ':memory:' });
  const withFinalizer: StoredObject = {
    ...dataset('owner'),
    metadata: { name: 'owner', namespace: 'default', finalizers: ['tide.io/x'] },
  };
  const owner = await store.create(withFinalizer);
  const uid = owner.metadata.uid ?? '';
  await store.create({
    apiVersion: 'data.fluid.io/v1alpha1',
    kind: 'TideRuntime',
    metadata: {
      name: 'owner',
      namespace: 'default',
      ownerReferences: [{ apiVersion: 'v', kind: 'Dataset', name: 'owner', uid }],
    },
    spec: {},
  });
  await store.delete({ kind: 'Dataset', namespace: 'default', name: 'owner' });
  const marked = await store.get({ kind: 'Dataset', namespace: 'default', name: 'owner' });
  assert.ok(marked?.metadata.deletionTimestamp !== undefined, 'marked for deletion, still present');
  assert.ok(
    await store.get({ kind: 'TideRuntime', namespace: 'default', name: 'owner' }),
    'dependent kept while owner exists',
  );
  await store.update({ ...marked, metadata: { ...marked.metadata, finalizers: [] } });
  assert.equal(await store.get({ kind: 'Dataset', namespace: 'default', name: 'owner' }), undefined);
  assert.equal(await store.get({ kind: 'TideRuntime', namespace: 'default', name: 'owner' }), undefined);
  await assert.rejects(
    store.delete({ kind: 'Dataset', namespace: 'default', name: 'owner' }),
    isCode('ERR_STORE_NOT_FOUND'),
  );
  store.close();
});

test('watch resumes from a resourceVersion across a reopen and reports 410-style gone versions', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tide-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'state.db');
  const store = new SqliteStore({ path, historyLimit: 300 });
  const a = await store.create(dataset('a'));
  const since = a.metadata.resourceVersion;
  await store.create(dataset('b'));
  await store.delete({ kind: 'Dataset', namespace: 'default', name: 'a' });
  store.close();

  const reopened = new SqliteStore({ path, historyLimit: 300 });
  t.after(() => {
    reopened.close();
  });
  const watchable = reopened.watch('Dataset', since === undefined ? {} : { resourceVersion: since });
  const watch = watchable[Symbol.asyncIterator]();
  const replayed = await take(watch, 2);
  assert.deepEqual(
    replayed.map((event) => `${event.type} ${event.object.metadata.name}`),
    ['ADDED b', 'DELETED a'],
  );
  await reopened.create(dataset('c'));
  const [live] = await take(watch, 1);
  assert.equal(`${live?.type} ${live?.object.metadata.name}`, 'ADDED c');
  await watch.return?.();

  for (let index = 0; index < 600; index += 1) await reopened.create(dataset(`n${index}`));
  const stale = reopened.watch('Dataset', { resourceVersion: '1' })[Symbol.asyncIterator]();
  await assert.rejects(stale.next(), isCode('ERR_STORE_GONE'));
});

test('a watch without a version lists current objects as ADDED first', async () => {
  const store = new SqliteStore({ path: ':memory:' });
  await store.create(dataset('x'));
  const controller = new AbortController();
  const events: WatchEvent[] = await take(
    store.watch('Dataset', { signal: controller.signal })[Symbol.asyncIterator](),
    1,
  );
  assert.equal(events[0]?.object.metadata.name, 'x');
  controller.abort();
  store.close();
});

test('the database and its -wal and -shm files are owner-only from the start, whatever the umask', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tide-store-'));
  const previous = process.umask(0o022);
  t.after(async () => {
    process.umask(previous);
    await rm(dir, { recursive: true, force: true });
  });
  const path = join(dir, 'state.db');
  const store = new SqliteStore({ path });
  t.after(() => {
    store.close();
  });
  await store.create(dataset('modes'));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    assert.equal((await stat(file)).mode & 0o777, 0o600, file);
  }
});

test('Secret values stay out of the change history, also for Secrets written before and deleted since', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tide-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'state.db');
  const secret: StoredObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'creds', namespace: 'default' },
    data: { password: Buffer.from('hunter2-hunter2').toString('base64') },
  };
  const store = new SqliteStore({ path });
  const since = store.resourceVersion;
  await store.create(secret);
  assert.deepEqual(
    (
      (await store.get({ kind: 'Secret', namespace: 'default', name: 'creds' })) as unknown as {
        data: unknown;
      }
    ).data,
    secret['data'],
    'the object itself keeps its values',
  );
  const [replayed] = await take(store.watch('Secret', { resourceVersion: since })[Symbol.asyncIterator](), 1);
  assert.deepEqual((replayed?.object as { data?: unknown }).data, { password: '' });
  await store.delete({ kind: 'Secret', namespace: 'default', name: 'creds' });
  // A history row as an earlier Tide wrote it, with the values.
  const raw = new DatabaseSync(path);
  raw
    .prepare('INSERT INTO changes (rv, kind, namespace, type, body) VALUES (?, ?, ?, ?, ?)')
    .run(999_999, 'Secret', 'default', 'ADDED', JSON.stringify(secret));
  raw.close();
  store.close();
  new SqliteStore({ path }).close();
  const check = new DatabaseSync(path);
  const bodies = check.prepare("SELECT body FROM changes WHERE kind = 'Secret'").all() as { body: string }[];
  check.close();
  assert.ok(bodies.length >= 3);
  for (const { body } of bodies) assert.ok(!body.includes('aHVudGVy'), body);
  const files = await readdir(dir);
  for (const file of files) {
    assert.ok(!(await readFile(join(dir, file))).includes('aHVudGVyMi1odW50ZXIy'), `${file} holds the value`);
  }
});
