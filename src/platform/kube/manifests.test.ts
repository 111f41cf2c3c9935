import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseVolumeContext } from '../../csi/index.ts';
import { SecretValue } from '../../lib/index.ts';
import type { RuntimePlan } from '../types.ts';
import { workersFromSlices } from './endpoint-membership.ts';
import {
  DEFAULT_SETTINGS,
  configFiles,
  fuseDaemonSet,
  persistentVolume,
  tierLayout,
  workerStatefulSet,
} from './manifests.ts';
import { fuseNodeLabel, namesOf, workerNodeLabels } from './names.ts';

function plan(overrides: Partial<RuntimePlan> = {}): RuntimePlan {
  return {
    dataset: { namespace: 'default', name: 'demo' },
    mounts: [
      {
        mountPoint: 'oss://bucket/data',
        options: { 'fs.oss.endpoint': 'http://oss' },
        secrets: { 'fs.oss.accessKeySecret': new SecretValue('s3cr3t') },
        path: '/',
      },
    ],
    tiers: [],
    blockSizeBytes: 4 * 1024 * 1024,
    workers: 2,
    pods: {},
    fuseArgs: ['-okernel_cache'],
    readOnly: true,
    fuseCleanPolicy: 'OnRuntimeDeleted',
    ...overrides,
  };
}

test('a MEM level becomes a memory emptyDir and an SSD level a hostPath per directory, sized by quotaList', () => {
  const layout = tierLayout(
    plan({
      tiers: [
        { mediumtype: 'MEM', path: '/dev/shm', quota: '2Gi', high: '0.95', low: '0.7' },
        { mediumtype: 'SSD', path: '/mnt/a,/mnt/b', quotaList: '100Gi,50Gi' },
        { mediumtype: 'HDD', volumeType: 'emptyDir', quota: '1Ti' },
      ],
    }),
  );
  assert.deepEqual(layout.volumes, [
    { name: 'tier-0-0', emptyDir: { medium: 'Memory', sizeLimit: '2Gi' } },
    { name: 'tier-1-0', hostPath: { path: '/mnt/a/tide/default/demo', type: 'DirectoryOrCreate' } },
    { name: 'tier-1-1', hostPath: { path: '/mnt/b/tide/default/demo', type: 'DirectoryOrCreate' } },
    { name: 'tier-2-0', emptyDir: { sizeLimit: '1Ti' } },
  ]);
  assert.deepEqual(layout.levels, [
    { mediumtype: 'MEM', path: '/var/lib/tide/tier-0-0', quota: '2Gi', high: '0.95', low: '0.7' },
    { mediumtype: 'SSD', path: '/var/lib/tide/tier-1-0,/var/lib/tide/tier-1-1', quotaList: '100Gi,50Gi' },
    { mediumtype: 'HDD', path: '/var/lib/tide/tier-2-0', quota: '1Ti' },
  ]);
});

test('a level with a volumeSource uses it as written', () => {
  const layout = tierLayout(
    plan({
      tiers: [
        { mediumtype: 'SSD', volumeSource: { persistentVolumeClaim: { claimName: 'cache' } }, quota: '9Gi' },
      ],
    }),
  );
  assert.deepEqual(layout.volumes, [{ name: 'tier-0-0', persistentVolumeClaim: { claimName: 'cache' } }]);
});

test('the worker listens on all addresses with the token; FUSE mounts read-only for other users', () => {
  const files = configFiles(plan(), DEFAULT_SETTINGS, namesOf(plan().dataset), 'tok');
  const worker = JSON.parse(files['worker.json']) as Record<string, unknown>;
  assert.equal(worker['host'], '0.0.0.0');
  assert.equal(worker['token'], 'tok');
  assert.deepEqual(worker['mounts'], [
    {
      mountPoint: 'oss://bucket/data',
      options: { 'fs.oss.endpoint': 'http://oss' },
      secrets: { 'fs.oss.accessKeySecret': 's3cr3t' },
    },
  ]);
  const mount = JSON.parse(files['mount.json']) as { target: string; fuseArgs: string[] };
  assert.equal(mount.target, '/runtime-mnt/tide/default/demo/tide-fuse');
  assert.deepEqual(mount.fuseArgs, ['-okernel_cache', '-oro', '-ono_xattr', '-oallow_other']);
  const client = JSON.parse(files['client.json']) as Record<string, unknown>;
  assert.equal(client['serviceName'], 'demo-worker');
});

test('names and labels stay within the Kubernetes limits', () => {
  const long = { namespace: 'n'.repeat(40), name: 'd'.repeat(63) };
  const names = namesOf(long);
  for (const name of [names.config, names.service, names.statefulSet, names.daemonSet, names.client])
    assert.ok(name.length <= 52, name);
  assert.ok(fuseNodeLabel(long).split('/')[1]!.length <= 63);
  assert.deepEqual(workerNodeLabels({ namespace: 'default', name: 'demo' }), [
    'fluid.io/s-default-demo',
    'fluid.io/s-tide-default-demo',
  ]);
  assert.equal(fuseNodeLabel({ namespace: 'default', name: 'demo' }), 'fluid.io/f-default-demo');
});

test('the volume carries Fluid attributes and the workers spread one per node', () => {
  const p = plan();
  const pv = persistentVolume(p, namesOf(p.dataset), DEFAULT_SETTINGS) as {
    metadata: { name: string };
    spec: { csi: { volumeAttributes: Record<string, string> }; accessModes: string[] };
  };
  assert.equal(pv.metadata.name, 'default-demo');
  assert.deepEqual(pv.spec.accessModes, ['ReadOnlyMany']);
  assert.equal(pv.spec.csi.volumeAttributes['fluid_path'], '/runtime-mnt/tide/default/demo/tide-fuse');
  assert.equal(pv.spec.csi.volumeAttributes['mount_pod_node_selector_key'], 'fluid.io/f-default-demo');
  // What the CSI node plugin reads: the context it parses, the cleanPolicy and the FUSE DaemonSet.
  const attributes = parseVolumeContext(pv.spec.csi.volumeAttributes, { requireNodeLabel: true });
  assert.deepEqual(attributes, {
    fluidPath: '/runtime-mnt/tide/default/demo/tide-fuse',
    subPath: '',
    mountType: 'fuse.tide',
    cleanPolicy: 'OnRuntimeDeleted',
    dataset: { namespace: 'default', name: 'demo' },
    nodeLabel: { key: 'fluid.io/f-default-demo', value: 'true' },
    fuseDaemonSet: 'demo-fuse',
  });
  const onDemand = persistentVolume(
    plan({ fuseCleanPolicy: 'OnDemand' }),
    namesOf(p.dataset),
    DEFAULT_SETTINGS,
  ) as typeof pv;
  assert.equal(onDemand.spec.csi.volumeAttributes['fuse_clean_policy'], 'OnDemand');
  const sts = workerStatefulSet(p, namesOf(p.dataset), DEFAULT_SETTINGS, 'digest') as {
    spec: {
      template: {
        spec: {
          affinity: {
            podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { topologyKey: string }[] };
          };
        };
      };
    };
  };
  assert.equal(
    sts.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]
      ?.topologyKey,
    'kubernetes.io/hostname',
  );
});

test('membership lists the ready endpoints of every slice once, sorted, named after their pods', () => {
  const workers = workersFromSlices([
    {
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 29999 }],
      endpoints: [
        {
          addresses: ['10.0.0.2'],
          conditions: { ready: true },
          nodeName: 'n2',
          targetRef: { kind: 'Pod', name: 'demo-worker-1' },
        },
        {
          addresses: ['10.0.0.3'],
          conditions: { ready: false },
          nodeName: 'n3',
          targetRef: { kind: 'Pod', name: 'demo-worker-2' },
        },
      ],
    },
    {
      addressType: 'IPv6',
      ports: [{ name: 'http', port: 29999 }],
      endpoints: [
        { addresses: ['fd00::1'], nodeName: 'n1', targetRef: { kind: 'Pod', name: 'demo-worker-0' } },
      ],
    },
  ]);
  assert.deepEqual(workers, [
    { id: 'demo-worker-0:29999', url: 'http://[fd00::1]:29999', nodeName: 'n1' },
    { id: 'demo-worker-1:29999', url: 'http://10.0.0.2:29999', nodeName: 'n2' },
  ]);
});

test("the FUSE container takes the runtime's image, pull policy, resources and environment", () => {
  const names = namesOf(plan().dataset);
  const containerOf = (daemonSet: ReturnType<typeof fuseDaemonSet>) =>
    (daemonSet['spec'] as { template: { spec: { containers: Record<string, unknown>[] } } }).template.spec
      .containers[0];
  const plain = containerOf(fuseDaemonSet(plan(), names, DEFAULT_SETTINGS, 'digest'));
  assert.equal(plain?.['image'], DEFAULT_SETTINGS.images.fuse);
  assert.equal(plain['resources'], undefined);
  const resources = { requests: { cpu: '500m' }, limits: { memory: '2Gi' } };
  const custom = containerOf(
    fuseDaemonSet(
      plan({
        fuseContainer: {
          image: 'registry.example.com/tide-worker:v2',
          imagePullPolicy: 'Always',
          resources,
          env: [{ name: 'TIDE_LOG', value: 'debug' }],
        },
      }),
      names,
      DEFAULT_SETTINGS,
      'digest',
    ),
  );
  assert.equal(custom?.['image'], 'registry.example.com/tide-worker:v2');
  assert.equal(custom['imagePullPolicy'], 'Always');
  assert.deepEqual(custom['resources'], resources);
  assert.deepEqual(custom['env'], [
    { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    { name: 'TIDE_LOG', value: 'debug' },
  ]);
});
