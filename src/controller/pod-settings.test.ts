import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AnyRuntime, Dataset, DataLoad } from '../api/index.ts';
import { compatibilityCondition } from './compatibility.ts';
import { ControllerError } from './errors.ts';
import { MASTER_NOTE } from './plan.ts';
import { loadPodFieldsSet, loadPodSettings, runtimePodSettings } from './pod-settings.ts';

function runtime(kind: AnyRuntime['kind'], spec: Record<string, unknown>): AnyRuntime {
  return {
    apiVersion: 'data.fluid.io/v1alpha1',
    kind,
    metadata: { name: 'hbase', namespace: 'default' },
    spec,
  };
}

const dataset: Dataset = {
  apiVersion: 'data.fluid.io/v1alpha1',
  kind: 'Dataset',
  metadata: { name: 'hbase', namespace: 'default' },
  spec: {
    nodeAffinity: {
      required: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: 'cache', operator: 'In', values: ['true'] }] }],
      },
    },
    tolerations: [{ key: 'dedicated', operator: 'Exists' }],
  },
};

// Seed 003's GooseFSRuntime, as the article writes it.
const seed003 = runtime('GooseFSRuntime', {
  replicas: 3,
  tieredstore: { levels: [{ mediumtype: 'MEM', path: '/dev/shm', quota: '2G', high: '0.8', low: '0.7' }] },
  master: { replicas: 3 },
});

test("seed 003's GooseFSRuntime is told that master.replicas is not honoured, and what it becomes", () => {
  for (const schedulesPods of [true, false]) {
    const condition = compatibilityCondition(seed003, { schedulesPods });
    assert.equal(condition.type, 'CompatibilityMode');
    assert.equal(condition.reason, 'EngineFieldsIgnored');
    assert.match(condition.message ?? '', /ignored fields.*: spec\.master\.replicas\./);
    assert.ok((condition.message ?? '').includes(MASTER_NOTE));
    assert.ok((condition.message ?? '').includes('tide-controller'));
  }
});

test('pod fields count as honoured where runtimes run as pods, and as ignored in embedded mode', () => {
  const withPods = runtime('AlluxioRuntime', {
    replicas: 2,
    worker: {
      nodeSelector: { pool: 'cache' },
      resources: { requests: { cpu: '1' } },
      jvmOptions: ['-Xmx4G'],
    },
    fuse: { nodeSelector: { gpu: 'a100' }, cleanPolicy: 'OnDemand' },
    imagePullSecrets: [{ name: 'registry' }],
    management: { cleanCachePolicy: { gracePeriodSeconds: 60 } },
  });
  const kube = compatibilityCondition(withPods, { schedulesPods: true });
  assert.equal(
    kube.message,
    'AlluxioRuntime is served by the Tide engine; ignored fields: spec.worker.jvmOptions, spec.management.cleanCachePolicy.',
  );
  const embedded = compatibilityCondition(withPods, { schedulesPods: false });
  for (const path of [
    'spec.worker.nodeSelector',
    'spec.worker.resources',
    'spec.fuse.nodeSelector',
    'spec.fuse.cleanPolicy',
    'spec.imagePullSecrets',
    'spec.worker.jvmOptions',
  ])
    assert.ok((embedded.message ?? '').includes(path), `${path} in ${embedded.message ?? ''}`);
  assert.match(embedded.message ?? '', /embedded mode runs no pods/);

  const tide = runtime('TideRuntime', { replicas: 1, worker: { nodeSelector: { pool: 'cache' } } });
  assert.equal(compatibilityCondition(tide, { schedulesPods: true }).status, 'False');
  const tideEmbedded = compatibilityCondition(tide, { schedulesPods: false });
  assert.deepEqual([tideEmbedded.type, tideEmbedded.status], ['FieldsIgnored', 'True']);
});

test("the runtime's and the dataset's pod fields are gathered; a wrong shape names its field", () => {
  const settings = runtimePodSettings(
    runtime('JindoRuntime', {
      worker: { nodeSelector: { pool: 'cache' }, port: 30001, resources: { limits: { memory: '8Gi' } } },
      fuse: { nodeSelector: { gpu: 'a100' } },
      imagePullSecrets: [{ name: 'registry' }],
    }),
    dataset,
  );
  assert.deepEqual(settings, {
    workerNodeSelector: { pool: 'cache' },
    workerResources: { limits: { memory: '8Gi' } },
    workerPort: 30001,
    workerNodeAffinity: dataset.spec.nodeAffinity?.required,
    fuseNodeSelector: { gpu: 'a100' },
    tolerations: dataset.spec.tolerations,
    imagePullSecrets: [{ name: 'registry' }],
  });
  assert.throws(
    () => runtimePodSettings(runtime('JindoRuntime', { worker: { nodeSelector: { pool: 3 } } }), dataset),
    (error: unknown) =>
      error instanceof ControllerError &&
      error.code === 'ERR_INVALID_RUNTIME' &&
      error.message === 'spec.worker.nodeSelector must be a map of strings, got {"pool":3}',
  );
  assert.throws(
    () => runtimePodSettings(runtime('JindoRuntime', { imagePullSecrets: ['registry'] }), dataset),
    /spec\.imagePullSecrets must be a list of \{name\} references/,
  );
});

test("a DataLoad's pod fields are gathered with the runtime's pull secrets", () => {
  const load: DataLoad = {
    apiVersion: 'data.fluid.io/v1alpha1',
    kind: 'DataLoad',
    metadata: { name: 'warm', namespace: 'default' },
    spec: {
      dataset: { name: 'hbase' },
      nodeSelector: { zone: 'a' },
      schedulerName: '',
      podMetadata: { labels: { team: 'ml' } },
    },
  };
  assert.deepEqual(loadPodSettings(load, runtime('JindoRuntime', { imagePullSecrets: [{ name: 'r' }] })), {
    nodeSelector: { zone: 'a' },
    labels: { team: 'ml' },
    imagePullSecrets: [{ name: 'r' }],
  });
  assert.deepEqual(loadPodFieldsSet(load), ['spec.nodeSelector', 'spec.podMetadata']);
  assert.throws(
    () =>
      loadPodSettings({ ...load, spec: { ...load.spec, podMetadata: { labels: { team: 1 } } } }, undefined),
    (error: unknown) => error instanceof ControllerError && error.code === 'ERR_INVALID_DATALOAD',
  );
});
