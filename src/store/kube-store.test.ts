/**
 * KubeStore against a real kube-apiserver (etcd + kube-apiserver from hack/k8s-bins/build.sh, with
 * Tide's generated CRDs). Skipped only when the binaries are missing and Go is not installed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { allCrds } from '../api/index.ts';
import { builtin, KubeClient } from '../kube/index.ts';
import {
  ensureK8sBinaries,
  k8sBinariesStatus,
  startCluster,
  waitFor,
  type TestCluster,
} from '../../test/k8s/cluster.ts';
import { KubeStore } from './kube-store.ts';
import { StoreError } from './errors.ts';
import type { StoredObject, WatchEvent } from './types.ts';

const NS = 'store-test';
const binaries = k8sBinariesStatus();
const skip =
  binaries.missing.length > 0 && !binaries.goAvailable
    ? `go is not installed, so the Kubernetes binaries (${binaries.missing.join(', ')}) cannot be built`
    : false;

function dataset(name: string, extra: Partial<StoredObject> = {}): StoredObject {
  return {
    apiVersion: 'data.fluid.io/v1alpha1',
    kind: 'Dataset',
    metadata: { name, namespace: NS },
    spec: { mounts: [{ mountPoint: 'local:///data', name: 'data' }] },
    ...extra,
  };
}

function isCode(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof StoreError, `expected a StoreError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  };
}

describe('KubeStore on a real API server', () => {
  if (skip !== false) {
    it('runs against real binaries', { skip }, () => undefined);
    return;
  }
  let cluster: TestCluster | undefined;
  let client: KubeClient;
  let store: KubeStore;

  before(
    async () => {
      const binDir = await ensureK8sBinaries();
      cluster = await startCluster({ components: 'apiserver', binDir });
      client = await KubeClient.fromKubeConfig(cluster.kubeconfigPath);
      await client.create(builtin.namespaces, { metadata: { name: NS } });
      for (const crd of allCrds()) {
        await client.apply(builtin.customResourceDefinitions, crd, { force: true });
      }
      store = new KubeStore({ client, pageSize: 2 });
      await waitFor(
        'the Tide resources to be served',
        async () => {
          for (const kind of ['Dataset', 'DataLoad', 'TideRuntime', 'AlluxioRuntime']) await store.list(kind);
          return true;
        },
        { timeoutMs: 30_000 },
      );
    },
    { timeout: 60 * 60_000 },
  );

  after(async () => {
    (client as KubeClient | undefined)?.close();
    await cluster?.stop();
  });

  it('creates, reads and lists objects of every page, returning undefined for a missing one', async () => {
    for (const name of ['page-a', 'page-b', 'page-c']) {
      const created = await store.create(
        dataset(name, { metadata: { name, namespace: NS, labels: { page: 'yes' } } }),
      );
      assert.equal(created.kind, 'Dataset');
      assert.ok(created.metadata.uid !== undefined && created.metadata.uid !== '');
      assert.equal(created.metadata.generation, 1);
      assert.equal(created.metadata.managedFields, undefined);
    }
    const got = await store.get({ kind: 'Dataset', namespace: NS, name: 'page-b' });
    assert.equal(got?.metadata.name, 'page-b');
    assert.equal(await store.get({ kind: 'Dataset', namespace: NS, name: 'missing' }), undefined);
    // pageSize 2: three items come in two pages.
    const list = await store.list('Dataset', { namespace: NS, labelSelector: 'page=yes' });
    assert.deepEqual(
      list.items.map((item) => item.metadata.name),
      ['page-a', 'page-b', 'page-c'],
    );
    assert.ok(list.items.every((item) => item.apiVersion === 'data.fluid.io/v1alpha1'));
    assert.match(list.resourceVersion, /^\d+$/);
    await assert.rejects(store.create(dataset('page-a')), isCode('ERR_STORE_ALREADY_EXISTS'));
  });

  it('maps a stale resourceVersion to ERR_STORE_CONFLICT and bumps generation on spec changes only', async () => {
    const created = await store.create(dataset('conflict'));
    const first = await store.update({
      ...created,
      spec: { mounts: [{ mountPoint: 'local:///other', name: 'other' }] },
    });
    assert.equal(first.metadata.generation, 2);
    const labelled = await store.update({ ...first, metadata: { ...first.metadata, labels: { a: 'b' } } });
    assert.equal(labelled.metadata.generation, 2);
    await assert.rejects(store.update({ ...created, spec: { mounts: [] } }), isCode('ERR_STORE_CONFLICT'));
    await assert.rejects(
      store.update(dataset('never-created', { metadata: { name: 'never-created', namespace: NS } })),
      isCode('ERR_STORE_NOT_FOUND'),
    );
  });

  it('writes status through the status subresource only', async () => {
    const created = await store.create(dataset('status'));
    const ignored = await store.update({ ...created, status: { phase: 'Bound' } });
    assert.equal(ignored.status, undefined);
    const withStatus = await store.updateStatus({ ...ignored, status: { phase: 'Bound' } });
    assert.deepEqual(withStatus.status, { phase: 'Bound' });
    const kept = await store.update({
      ...withStatus,
      metadata: { ...withStatus.metadata, annotations: { note: 'x' } },
      status: { phase: 'Failed' },
    });
    assert.deepEqual(kept.status, { phase: 'Bound' });
    await assert.rejects(
      store.updateStatus({ ...withStatus, status: { phase: 'NotBound' } }),
      isCode('ERR_STORE_CONFLICT'),
    );
  });

  it('deletes at once without finalizers and marks deletionTimestamp with them', async () => {
    await store.create(dataset('plain'));
    await store.delete({ kind: 'Dataset', namespace: NS, name: 'plain' });
    assert.equal(await store.get({ kind: 'Dataset', namespace: NS, name: 'plain' }), undefined);
    await assert.rejects(
      store.delete({ kind: 'Dataset', namespace: NS, name: 'plain' }),
      isCode('ERR_STORE_NOT_FOUND'),
    );

    await store.create(
      dataset('held', { metadata: { name: 'held', namespace: NS, finalizers: ['tide.io/test'] } }),
    );
    await store.delete({ kind: 'Dataset', namespace: NS, name: 'held' });
    const marked = await store.get({ kind: 'Dataset', namespace: NS, name: 'held' });
    assert.ok(marked?.metadata.deletionTimestamp !== undefined);
    await store.update({ ...marked, metadata: { ...marked.metadata, finalizers: [] } });
    assert.equal(await store.get({ kind: 'Dataset', namespace: NS, name: 'held' }), undefined);
  });

  it('watches from a list version, across namespaces, and ends when the signal aborts', async () => {
    const list = await store.list('DataLoad');
    const abort = new AbortController();
    const seen: WatchEvent[] = [];
    const done = (async () => {
      for await (const event of store.watch('DataLoad', {
        resourceVersion: list.resourceVersion,
        signal: abort.signal,
      })) {
        if (event.type === 'BOOKMARK') continue;
        seen.push(event);
        if (event.type === 'DELETED') abort.abort();
      }
    })();
    const load: StoredObject = {
      apiVersion: 'data.fluid.io/v1alpha1',
      kind: 'DataLoad',
      metadata: { name: 'watched', namespace: NS },
      spec: { dataset: { name: 'page-a', namespace: NS } },
    };
    const created = await store.create(load);
    await store.updateStatus({ ...created, status: { phase: 'Pending' } });
    await store.delete({ kind: 'DataLoad', namespace: NS, name: 'watched' });
    await Promise.race([
      done,
      new Promise((_, reject) =>
        setTimeout(() => {
          reject(new Error('watch did not see the DELETED event in 10 s'));
        }, 10_000).unref(),
      ),
    ]);
    assert.deepEqual(
      seen.map((event) => [event.type, event.object.kind, event.object.metadata.name]),
      [
        ['ADDED', 'DataLoad', 'watched'],
        ['MODIFIED', 'DataLoad', 'watched'],
        ['DELETED', 'DataLoad', 'watched'],
      ],
    );
  });

  it('replays the current objects as ADDED when watching without a version', async () => {
    const abort = new AbortController();
    const names: string[] = [];
    for await (const event of store.watch('Dataset', { namespace: NS, signal: abort.signal })) {
      names.push(event.object.metadata.name);
      if (names.includes('page-c')) abort.abort();
    }
    assert.ok(names.includes('page-a') && names.includes('page-c'), names.join(','));
  });

  it('maps 410 Gone of an expired version to ERR_STORE_GONE', async () => {
    const iterate = async (): Promise<void> => {
      for await (const event of store.watch('Dataset', {
        resourceVersion: '1',
        signal: AbortSignal.timeout(20_000),
      })) {
        assert.fail(`expected 410 Gone, got a ${event.type} event`);
      }
    };
    await assert.rejects(iterate(), isCode('ERR_STORE_GONE'));
  });

  it('holds core Secrets and Events, refuses kinds it does not know and status of kinds without one', async () => {
    const secret = await store.create({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'keys', namespace: NS },
      data: { key: Buffer.from('value').toString('base64') },
    });
    const got = await store.get({ kind: 'Secret', namespace: NS, name: 'keys' });
    assert.deepEqual(got?.['data'], secret['data']);
    const secrets = await store.list('Secret', { namespace: NS });
    assert.ok(secrets.items.every((item) => item.kind === 'Secret' && item.apiVersion === 'v1'));
    await assert.rejects(store.updateStatus(secret), isCode('ERR_STORE_INVALID'));
    await assert.rejects(store.list('Pod'), isCode('ERR_STORE_INVALID'));
    const event = await store.create({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'page-a.1', namespace: NS },
      involvedObject: { kind: 'Dataset', name: 'page-a', namespace: NS },
      type: 'Normal',
      reason: 'DatasetReady',
      message: 'ready',
      count: 1,
    });
    assert.equal(event['reason'], 'DatasetReady');
  });
});
