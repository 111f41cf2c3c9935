/**
 * The plugins against the pods Fluid would write for the same input (Fluid's chart profile and
 * its plugins' documented behaviour, `pkg/webhook/plugins`), and Tide's cached-bytes weighting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DatasetUse, Pod, PluginsProfile } from './index.ts';
import { DEFAULT_PROFILE_YAML, WebhookError, parsePluginsProfile, patchOf, runChain } from './index.ts';

/** Fluid's chart default `pluginsProfile` (charts/fluid/fluid/values.yaml), as Fluid users have it. */
const FLUID_PROFILE = `plugins:
  serverful:
    withDataset: [FilePrefetcher, RequireNodeWithFuse, NodeAffinityWithCache, MountPropagationInjector, DatasetUsageInjector]
    withoutDataset: [PreferNodesWithoutCache]
  serverless:
    withDataset: [FilePrefetcher, FuseSidecar, DatasetUsageInjector]
    withoutDataset: []
pluginConfig:
  - name: NodeAffinityWithCache
    args: |
      preferred:
        - name: fluid.io/node
          weight: 100
        - name: topology.kubernetes.io/zone
          weight: 50
        - name: topology.kubernetes.io/region
          weight: 20
      required:
        - fluid.io/node
`;
const fluid = parsePluginsProfile(FLUID_PROFILE);
const tide = parsePluginsProfile(DEFAULT_PROFILE_YAML);
const sidecar = { mountType: 'fuse.tide' };

function use(name: string, extra: Partial<DatasetUse> = {}): DatasetUse {
  return {
    claimName: name,
    dataset: { namespace: 'ns', name },
    workerNodeLabel: `fluid.io/s-ns-${name}`,
    fuseNodeLabel: `fluid.io/f-ns-${name}`,
    fuseNodeSelector: {},
    cachedBytesByNode: {},
    ...extra,
  };
}

function appPod(labels: Record<string, string>, claims: string[] = ['demo']): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'app', namespace: 'ns', labels },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'busybox',
          volumeMounts: claims.map((claim) => ({ name: `data-${claim}`, mountPath: `/data/${claim}` })),
        },
      ],
      volumes: claims.map((claim) => ({
        name: `data-${claim}`,
        persistentVolumeClaim: { claimName: claim },
      })),
    },
  };
}

function run(
  pod: Pod,
  datasets: DatasetUse[],
  profile: PluginsProfile = fluid,
  kind: 'serverful' | 'serverless' = 'serverful',
) {
  return runChain(pod, datasets, { profile, kind, sidecar });
}

const serverful = { 'fuse.serverful.fluid.io/inject': 'true' };

test('a serverful pod with a dataset gets what Fluid writes: cache affinity, HostToContainer, datasets-in-use', () => {
  const pod = appPod(serverful);
  const result = run(pod, [use('demo', { fuseNodeSelector: { pool: 'gpu', 'disk-type': 'ssd' } })]);
  assert.deepEqual(result.ran, [
    'FilePrefetcher',
    'RequireNodeWithFuse',
    'NodeAffinityWithCache',
    'MountPropagationInjector',
    'DatasetUsageInjector',
  ]);
  const expected = structuredClone(pod);
  expected.metadata.annotations = { 'fluid.io/datasets-in-use': 'demo' };
  expected.spec.affinity = {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [
          {
            matchExpressions: [
              { key: 'disk-type', operator: 'In', values: ['ssd'] },
              { key: 'pool', operator: 'In', values: ['gpu'] },
            ],
          },
        ],
      },
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          preference: { matchExpressions: [{ key: 'fluid.io/s-ns-demo', operator: 'In', values: ['true'] }] },
        },
      ],
    },
  };
  const [mount] = expected.spec.containers[0]?.volumeMounts ?? [];
  if (mount !== undefined) mount.mountPropagation = 'HostToContainer';
  assert.deepEqual(result.pod, expected);
  assert.deepEqual(result.warnings, []);
});

test("fluid.io/dataset.<name>.sched: required makes the cache a required term, ANDed with the pod's own", () => {
  const pod = appPod({ ...serverful, 'fluid.io/dataset.demo.sched': 'required' }, ['demo', 'other']);
  pod.spec.affinity = {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [
          { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] },
          { matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] },
        ],
      },
    },
  };
  const result = run(pod, [use('demo'), use('other')]);
  const cache = { key: 'fluid.io/s-ns-demo', operator: 'In', values: ['true'] };
  assert.deepEqual(result.pod.spec.affinity?.nodeAffinity, {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [
        { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }, cache] },
        { matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }, cache] },
      ],
    },
    // The dataset not required stays preferred.
    preferredDuringSchedulingIgnoredDuringExecution: [
      {
        weight: 100,
        preference: { matchExpressions: [{ key: 'fluid.io/s-ns-other', operator: 'In', values: ['true'] }] },
      },
    ],
  });
  assert.equal(result.pod.metadata.annotations?.['fluid.io/datasets-in-use'], 'demo,other');
});

test('a serverful pod without a dataset prefers nodes without fluid.io/dataset-num, and the chain stops', () => {
  const pod = appPod(serverful, []);
  const result = run(pod, []);
  assert.deepEqual(result.ran, ['PreferNodesWithoutCache']);
  assert.deepEqual(result.pod.spec.affinity, {
    nodeAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          preference: { matchExpressions: [{ key: 'fluid.io/dataset-num', operator: 'DoesNotExist' }] },
        },
      ],
    },
  });
  assert.deepEqual(patchOf(pod, result.pod), [
    { op: 'add', path: '/spec/affinity', value: result.pod.spec.affinity },
  ]);
});

test("Tide's profile weights each node by the dataset's bytes its workers hold, the most at 100", () => {
  const gib = 1024 ** 3;
  const result = run(
    appPod(serverful),
    [
      use('demo', {
        cachedBytesByNode: { 'node-a': 1 * gib, 'node-b': 4 * gib, 'node-c': 2 * gib, 'node-d': 0 },
      }),
    ],
    tide,
  );
  const preferred = result.pod.spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
  const byName = (node: string, weight: number) => ({
    weight,
    preference: { matchFields: [{ key: 'metadata.name', operator: 'In' as const, values: [node] }] },
  });
  assert.deepEqual(preferred, [
    {
      weight: 100,
      preference: { matchExpressions: [{ key: 'fluid.io/s-ns-demo', operator: 'In', values: ['true'] }] },
    },
    byName('node-b', 100),
    byName('node-c', 50),
    byName('node-a', 25),
  ]);
});

test('a reinvoked webhook changes nothing more', () => {
  const datasets = [use('demo', { fuseNodeSelector: { pool: 'gpu' }, cachedBytesByNode: { 'node-a': 5 } })];
  for (const [labels, list] of [
    [{ ...serverful, 'fluid.io/dataset.demo.sched': 'required' }, datasets],
    [serverful, datasets],
    [serverful, []],
  ] as const) {
    const once = run(appPod(labels), [...list], tide).pod;
    assert.deepEqual(patchOf(once, run(once, [...list], tide).pod), []);
  }
});

test('a pod that already schedules by a cache locality keeps its affinity, with a warning', () => {
  const pod = appPod(serverful);
  pod.spec.nodeSelector = { 'topology.kubernetes.io/zone': 'a' };
  const result = run(pod, [use('demo')]);
  assert.equal(result.pod.spec.affinity, undefined);
  assert.match(result.warnings.join('\n'), /already has a cache locality affinity/);
});

test('a pod asking for the FilePrefetcher is told that Tide has none', () => {
  const pod = appPod(serverful);
  pod.metadata.annotations = { 'file-prefetcher.fluid.io/inject': 'true' };
  assert.match(run(pod, [use('demo')]).warnings.join('\n'), /Tide has no FilePrefetcher/);
});

test('a serverless pod gets the FUSE DaemonSet container as a native sidecar on an emptyDir', () => {
  const pod = appPod({ 'serverless.fluid.io/inject': 'true' });
  const template = {
    mountPath: '/runtime-mnt/tide/ns/demo/tide-fuse',
    container: {
      name: 'fuse',
      image: 'tide-worker:1',
      command: ['node', 'src/fuse/mount-main.ts', '/etc/tide/mount.json'],
      env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
      securityContext: { privileged: true },
      resources: { limits: { memory: '2Gi' } },
      volumeMounts: [
        { name: 'config', mountPath: '/etc/tide', readOnly: true },
        {
          name: 'mount-dir',
          mountPath: '/runtime-mnt/tide/ns/demo',
          mountPropagation: 'Bidirectional' as const,
        },
        { name: 'dev-fuse', mountPath: '/dev/fuse' },
      ],
    },
    volumes: [
      { name: 'config', secret: { secretName: 'demo-tide-config' } },
      { name: 'mount-dir', hostPath: { path: '/runtime-mnt/tide/ns/demo' } },
      { name: 'dev-fuse', hostPath: { path: '/dev/fuse', type: 'CharDevice' } },
    ],
  };
  const result = run(pod, [use('demo', { fuse: template })], tide, 'serverless');
  assert.deepEqual(result.ran, ['FuseSidecar', 'DatasetUsageInjector']);
  const [sidecarContainer, ...others] = result.pod.spec.initContainers ?? [];
  assert.equal(others.length, 0);
  assert.deepEqual(sidecarContainer, {
    ...template.container,
    name: 'fluid-fuse-0',
    restartPolicy: 'Always',
    volumeMounts: [
      { name: 'fluid-fuse-0-config', mountPath: '/etc/tide', readOnly: true },
      {
        name: 'data-demo',
        mountPath: '/runtime-mnt/tide/ns/demo/tide-fuse',
        mountPropagation: 'Bidirectional',
      },
    ],
    startupProbe: {
      exec: {
        command: [
          'sh',
          '-c',
          "grep -q ' /runtime-mnt/tide/ns/demo/tide-fuse .* - fuse\\.tide ' /proc/self/mountinfo && ls '/runtime-mnt/tide/ns/demo/tide-fuse' >/dev/null",
        ],
      },
      periodSeconds: 1,
      timeoutSeconds: 5,
      failureThreshold: 120,
    },
  });
  assert.deepEqual(result.pod.spec.volumes, [
    { name: 'data-demo', emptyDir: {} },
    { name: 'fluid-fuse-0-config', secret: { secretName: 'demo-tide-config' } },
  ]);
  assert.deepEqual(result.pod.spec.containers[0]?.volumeMounts, [
    { name: 'data-demo', mountPath: '/data/demo', mountPropagation: 'HostToContainer' },
  ]);
  assert.deepEqual(result.pod.metadata.labels, {
    'serverless.fluid.io/inject': 'true',
    'dataset-namespace.sidecar.fluid.io/fluid-fuse-0': 'ns',
    'dataset-name.sidecar.fluid.io/fluid-fuse-0': 'demo',
    'done.sidecar.fluid.io/inject': 'true',
    'fluid.io/managed-by': 'fluid',
  });
  assert.equal(result.pod.metadata.annotations?.['fluid.io/datasets-in-use'], 'demo');
});

test('a profile naming an unknown plugin or a bad weight is refused with the field', () => {
  const refuse = (text: string, field: RegExp) => {
    assert.throws(
      () => parsePluginsProfile(text),
      (error: unknown) =>
        error instanceof WebhookError && error.code === 'ERR_WEBHOOK_PROFILE' && field.test(error.message),
    );
  };
  refuse(
    'plugins:\n  serverful:\n    withDataset: [NodeAffinityWithCache, Prefetch]\n',
    /plugins\.serverful\.withDataset\[1\].*"Prefetch"/,
  );
  refuse(
    'pluginConfig:\n  - name: NodeAffinityWithCache\n    args: |\n      preferred:\n        - name: fluid.io/node\n          weight: 300\n',
    /pluginConfig\[0\]\.args\.preferred\[0\]\.weight.*300/,
  );
  refuse('plugins: [', /not YAML/);
});
