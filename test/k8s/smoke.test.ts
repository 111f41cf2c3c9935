/**
 * Smoke test of the real control plane and of src/kube against it. Needs the binaries from
 * hack/k8s-bins/build.sh (built here on first use: ~20+ min cold on 2 cores); skipped only when
 * they are missing and `go` is not installed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  KubeClient,
  KubeConflictError,
  KubeGoneError,
  KubeInvalidError,
  KubeNotFoundError,
  builtin,
  type KubeObject,
  type Scale,
  type WatchEvent,
} from '../../src/kube/index.ts';
import { ensureK8sBinaries, k8sSuiteSkipReason, startCluster, waitFor, type TestCluster } from './cluster.ts';
import {
  DATASET_CRD,
  MOUNT_PATH_MESSAGE,
  MOUNT_POINT_MESSAGE,
  TIDE_RUNTIME_CRD,
  datasetType,
  invalidDataset,
  tideRuntimeType,
  validDataset,
} from './fixtures.ts';

const NS = 'tide-smoke';
const skip = k8sSuiteSkipReason();

type Labeled = KubeObject & {
  metadata: { labels?: Record<string, string>; resourceVersion?: string; generation?: number };
};

describe('real Kubernetes control plane (etcd, kube-apiserver, kcm, scheduler, kwok)', () => {
  if (skip !== false) {
    // A skipped test (rather than a skipped suite) so that the runner's summary counts it.
    it('runs against real binaries', { skip }, () => undefined);
    return;
  }
  let cluster: TestCluster | undefined;
  let kube: KubeClient;

  before(
    async () => {
      const binDir = await ensureK8sBinaries();
      cluster = await startCluster({ components: 'full', binDir });
      process.stderr.write(`k8s smoke: cluster ready in ${cluster.startupMs} ms (${cluster.dir})\n`);
      kube = await KubeClient.fromKubeConfig(cluster.kubeconfigPath);
      await kube.create(builtin.namespaces, { metadata: { name: NS } });
      for (const crd of [DATASET_CRD, TIDE_RUNTIME_CRD])
        await kube.create(builtin.customResourceDefinitions, crd);
      for (const crd of [DATASET_CRD, TIDE_RUNTIME_CRD]) {
        const name = crd.metadata?.name ?? '';
        await waitFor(
          `CRD ${name} to be Established`,
          async () => {
            const got = await kube.get(builtin.customResourceDefinitions, name);
            const conditions =
              (got['status'] as { conditions?: { type: string; status: string }[] }).conditions ?? [];
            return conditions.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
          },
          { timeoutMs: 30_000 },
        );
      }
      await waitFor(
        'the datasets and tideruntimes resources to be served',
        async () => {
          await kube.list(datasetType, { namespace: NS });
          await kube.list(tideRuntimeType, { namespace: NS });
          return true;
        },
        { timeoutMs: 30_000 },
      );
    },
    { timeout: 60 * 60_000 },
  );

  after(async () => {
    (kube as KubeClient | undefined)?.close();
    await cluster?.stop();
  });

  it('reports the pinned Kubernetes version through /version', async () => {
    const version = await kube.request<{ gitVersion: string; major: string; minor: string }>({
      method: 'GET',
      path: '/version',
    });
    assert.match(version.gitVersion, /^v1\.33\.\d+$/);
    assert.equal(version.major, '1');
    assert.equal(version.minor, '33');
  });

  it('throws ERR_KUBE_NOT_FOUND for a missing object', async () => {
    await assert.rejects(kube.get(datasetType, 'does-not-exist', { namespace: NS }), (error: unknown) => {
      assert.ok(error instanceof KubeNotFoundError);
      assert.equal(error.code, 'ERR_KUBE_NOT_FOUND');
      assert.equal(error.statusCode, 404);
      return true;
    });
  });

  it('accepts a valid Dataset and rejects an invalid one with the schema messages', async () => {
    const created = await kube.create(datasetType, validDataset('valid', NS));
    assert.equal(created.metadata?.name, 'valid');
    await assert.rejects(kube.create(datasetType, invalidDataset('invalid', NS)), (error: unknown) => {
      assert.ok(error instanceof KubeInvalidError, `expected KubeInvalidError, got ${String(error)}`);
      assert.equal(error.code, 'ERR_KUBE_INVALID');
      assert.equal(error.statusCode, 422);
      assert.ok(error.message.includes(MOUNT_POINT_MESSAGE), error.message);
      assert.ok(error.message.includes(MOUNT_PATH_MESSAGE), error.message);
      assert.ok(
        error.causes.some((c) => (c.field ?? '').startsWith('spec.mounts[0]')),
        JSON.stringify(error.causes),
      );
      return true;
    });
  });

  it('lists Datasets and watches changes from the list resourceVersion', async () => {
    const list = await kube.list(datasetType, { namespace: NS });
    const rv = list.metadata.resourceVersion;
    assert.ok(rv !== undefined && rv !== '');
    const abort = new AbortController();
    const seen: WatchEvent<Labeled>[] = [];
    const watching = (async () => {
      for await (const event of kube.watch<Labeled>(datasetType, {
        namespace: NS,
        resourceVersion: rv,
        signal: abort.signal,
      })) {
        if (event.type === 'BOOKMARK') continue;
        if (event.object.metadata.name !== 'watched') continue;
        seen.push(event);
        if (event.type === 'DELETED') return;
      }
    })();
    await kube.create(datasetType, validDataset('watched', NS));
    await kube.patch(
      datasetType,
      'watched',
      { metadata: { labels: { stage: 'two' } } },
      { namespace: NS, patchType: 'merge' },
    );
    await kube.delete(datasetType, 'watched', { namespace: NS });
    const timer = setTimeout(() => {
      abort.abort(new Error('watch did not deliver ADDED, MODIFIED, DELETED within 20 s'));
    }, 20_000);
    try {
      await watching;
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    assert.deepEqual(
      seen.map((e) => e.type),
      ['ADDED', 'MODIFIED', 'DELETED'],
    );
    assert.equal(seen[1]?.object.metadata.labels?.['stage'], 'two');
  });

  it('sends a BOOKMARK before the server-side watch timeout, then ends the iteration', async () => {
    const list = await kube.list(datasetType, { namespace: NS });
    const events: WatchEvent<Labeled>[] = [];
    // The watch cache sends a bookmark ~2 s before the watch deadline (cacheWatcher.nextBookmarkTime),
    // provided the resourceVersion moved since the watch started, hence the create.
    const watching = (async () => {
      for await (const event of kube.watch<Labeled>(datasetType, {
        namespace: NS,
        resourceVersion: list.metadata.resourceVersion,
        timeoutSeconds: 5,
        signal: AbortSignal.timeout(20_000),
      })) {
        events.push(event);
      }
    })();
    await kube.create(datasetType, validDataset('bookmarked', NS));
    await watching;
    // One bookmark is due before the deadline; a slow machine may see the periodic one as well.
    const types = events.map((e) => e.type);
    assert.equal(types[0], 'ADDED');
    assert.ok(types.length >= 2 && types.slice(1).every((type) => type === 'BOOKMARK'), types.join(','));
    const [added, bookmark] = events as [WatchEvent<Labeled>, WatchEvent<Labeled>];
    assert.ok(
      Number(bookmark.object.metadata.resourceVersion) >= Number(added.object.metadata.resourceVersion),
    );
  });

  it('throws ERR_KUBE_GONE when watching from a resourceVersion the server no longer has', async () => {
    const iterate = async (): Promise<void> => {
      for await (const event of kube.watch(datasetType, {
        namespace: NS,
        resourceVersion: '1',
        signal: AbortSignal.timeout(20_000),
      })) {
        assert.fail(`expected 410 Gone, got a ${event.type} event`);
      }
    };
    await assert.rejects(iterate(), (error: unknown) => {
      assert.ok(error instanceof KubeGoneError, `expected KubeGoneError, got ${String(error)}`);
      assert.equal(error.code, 'ERR_KUBE_GONE');
      assert.equal(error.statusCode, 410);
      return true;
    });
  });

  it('writes status only through the status subresource', async () => {
    const created = (await kube.create(datasetType, validDataset('with-status', NS))) as Labeled;
    // A plain update ignores .status when the CRD has a status subresource.
    const ignored = await kube.update<Labeled>(datasetType, { ...created, status: { phase: 'Bound' } });
    assert.equal(ignored['status'], undefined);
    const updated = await kube.updateStatus<Labeled>(datasetType, {
      ...ignored,
      status: { phase: 'Bound', ufsTotal: '1.00GiB' },
    });
    assert.deepEqual(updated['status'], { phase: 'Bound', ufsTotal: '1.00GiB' });
    assert.equal(
      updated.metadata.generation,
      created.metadata.generation,
      'a status write must not bump generation',
    );
    // And the stale resourceVersion of `created` now conflicts.
    await assert.rejects(
      kube.update(datasetType, { ...created, spec: { ...(created['spec'] as object), placement: 'Shared' } }),
      (error: unknown) => {
        assert.ok(error instanceof KubeConflictError, String(error));
        assert.equal(error.code, 'ERR_KUBE_CONFLICT');
        return true;
      },
    );
  });

  it('applies server-side as field manager tide and reports conflicts with other managers', async () => {
    const intent = {
      apiVersion: 'data.fluid.io/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'applied', namespace: NS },
      spec: { mounts: [{ mountPoint: 's3://b/x' }], placement: 'Exclusive' },
    };
    const applied = await kube.apply<Labeled>(datasetType, intent);
    assert.ok(applied.metadata.managedFields?.some((f) => f.manager === 'tide' && f.operation === 'Apply'));
    const other = { ...intent, spec: { ...intent.spec, placement: 'Shared' } };
    await assert.rejects(
      kube.apply(datasetType, other, { fieldManager: 'someone-else' }),
      (error: unknown) => {
        assert.ok(error instanceof KubeConflictError, String(error));
        assert.match(error.message, /conflict/i);
        return true;
      },
    );
    const forced = await kube.apply<Labeled>(datasetType, other, {
      fieldManager: 'someone-else',
      force: true,
    });
    assert.equal((forced['spec'] as { placement: string }).placement, 'Shared');
    const jsonPatched = await kube.patch<Labeled>(
      datasetType,
      'applied',
      [{ op: 'add', path: '/metadata/labels', value: { via: 'json-patch' } }],
      { namespace: NS, patchType: 'json' },
    );
    assert.equal(jsonPatched.metadata.labels?.['via'], 'json-patch');
  });

  it('scales a TideRuntime through its scale subresource', async () => {
    await kube.create(tideRuntimeType, { metadata: { name: 'rt', namespace: NS }, spec: { replicas: 1 } });
    await kube.patch(
      tideRuntimeType,
      'rt',
      { status: { currentWorkerNumberScheduled: 1, selector: 'app=rt-worker' } },
      { namespace: NS, patchType: 'merge', subresource: 'status' },
    );
    const before = await kube.getScale(tideRuntimeType, 'rt', { namespace: NS });
    assert.equal(before.spec.replicas, 1);
    assert.deepEqual(before.status, { replicas: 1, selector: 'app=rt-worker' });
    const scaled: Scale = await kube.scale(tideRuntimeType, 'rt', 3, { namespace: NS });
    assert.equal(scaled.spec.replicas, 3);
    const rt = await kube.get(tideRuntimeType, 'rt', { namespace: NS });
    assert.equal((rt['spec'] as { replicas: number }).replicas, 3);
  });

  it('schedules Deployment pods by node affinity onto the labelled kwok nodes, where they run', async () => {
    const cacheNodes = (await kube.list(builtin.nodes, { labelSelector: 'tide.io/pool=cache' })).items.map(
      (n) => n.metadata?.name,
    );
    assert.equal(cacheNodes.length, 2);
    await kube.create(builtin.deployments, {
      metadata: { name: 'cache-workers', namespace: NS },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'cache-workers' } },
        template: {
          metadata: { labels: { app: 'cache-workers' } },
          spec: {
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [
                    { matchExpressions: [{ key: 'tide.io/pool', operator: 'In', values: ['cache'] }] },
                  ],
                },
              },
            },
            containers: [{ name: 'worker', image: 'registry.invalid/tide/worker:test' }],
          },
        },
      },
    });
    type Pod = KubeObject & {
      spec: { nodeName?: string };
      status?: { phase?: string; conditions?: { type: string; status: string }[] };
    };
    const pods = await waitFor(
      '3 cache-workers pods Running and Ready on cache nodes',
      async () => {
        const list = await kube.list<Pod>(builtin.pods, {
          namespace: NS,
          labelSelector: 'app=cache-workers',
        });
        const running = list.items.filter(
          (p) =>
            p.status?.phase === 'Running' &&
            p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        if (running.length !== 3)
          throw new Error(
            `${running.length}/3 running: ${list.items.map((p) => `${p.metadata?.name}@${p.spec.nodeName}:${p.status?.phase}`).join(', ')}`,
          );
        return running;
      },
      { timeoutMs: 90_000 },
    );
    for (const pod of pods)
      assert.ok(
        cacheNodes.includes(pod.spec.nodeName),
        `${pod.metadata?.name} is on ${String(pod.spec.nodeName)}`,
      );
    await waitFor(
      'Deployment cache-workers to report 3 ready replicas',
      async () => {
        const d = await kube.get(builtin.deployments, 'cache-workers', { namespace: NS });
        return (d['status'] as { readyReplicas?: number } | undefined)?.readyReplicas === 3
          ? true
          : undefined;
      },
      { timeoutMs: 60_000 },
    );
  });
});
