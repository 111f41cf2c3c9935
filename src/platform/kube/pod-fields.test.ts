import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LoadPlan, RuntimePlan, RuntimePodSettings } from '../types.ts';
import {
  DEFAULT_SETTINGS,
  configFiles,
  fuseDaemonSet,
  loadJob,
  persistentVolume,
  workerStatefulSet,
} from './manifests.ts';
import { fuseNodeLabel, namesOf } from './names.ts';

/** The pod fields of a runtime, its dataset and a DataLoad reach the pods the operator writes. */

const dataset = { namespace: 'default', name: 'demo' };
const names = namesOf(dataset);

function plan(pods: RuntimePodSettings): RuntimePlan {
  return {
    dataset,
    mounts: [],
    tiers: [],
    blockSizeBytes: 4 * 1024 * 1024,
    workers: 2,
    fuseArgs: [],
    readOnly: true,
    fuseCleanPolicy: 'OnRuntimeDeleted',
    pods,
  };
}

type PodSpec = Record<string, unknown> & { containers: Record<string, unknown>[] };
function podSpecOf(workload: Record<string, unknown>): PodSpec {
  return (workload['spec'] as { template: { spec: PodSpec } }).template.spec;
}
function podMetadataOf(workload: Record<string, unknown>): Record<string, unknown> {
  return (workload['spec'] as { template: { metadata: Record<string, unknown> } }).template.metadata;
}

const tolerations = [{ key: 'dedicated', operator: 'Equal', value: 'cache', effect: 'NoSchedule' }];
const imagePullSecrets = [{ name: 'registry' }];
const required = {
  nodeSelectorTerms: [{ matchExpressions: [{ key: 'cache', operator: 'In', values: ['true'] }] }],
};

test('workers get the node selector, node affinity, tolerations, resources, pull secrets and port', () => {
  const resources = { requests: { cpu: '1', memory: '4Gi' } };
  const full = plan({
    workerNodeSelector: { pool: 'cache' },
    workerNodeAffinity: required,
    workerResources: resources,
    workerPort: 30001,
    tolerations,
    imagePullSecrets,
  });
  const spec = podSpecOf(workerStatefulSet(full, names, DEFAULT_SETTINGS, 'digest'));
  assert.deepEqual(spec['nodeSelector'], { pool: 'cache' });
  assert.deepEqual(spec['tolerations'], tolerations);
  assert.deepEqual(spec['imagePullSecrets'], imagePullSecrets);
  const affinity = spec['affinity'] as Record<string, unknown>;
  assert.deepEqual(affinity['nodeAffinity'], { requiredDuringSchedulingIgnoredDuringExecution: required });
  assert.ok(affinity['podAntiAffinity'], 'one worker per node stays');
  const container = spec.containers[0] ?? {};
  assert.deepEqual(container['resources'], resources);
  assert.deepEqual(container['ports'], [{ name: 'http', containerPort: 30001, protocol: 'TCP' }]);
  const files = configFiles(full, DEFAULT_SETTINGS, names, 'tok');
  assert.equal((JSON.parse(files['worker.json']) as { port: number }).port, 30001);
  assert.equal((JSON.parse(files['client.json']) as { port: number }).port, 30001);

  const bare = podSpecOf(workerStatefulSet(plan({}), names, DEFAULT_SETTINGS, 'digest'));
  for (const field of ['nodeSelector', 'tolerations', 'imagePullSecrets'])
    assert.equal(bare[field], undefined);
  assert.equal((bare['affinity'] as Record<string, unknown>)['nodeAffinity'], undefined);
  assert.equal(bare.containers[0]?.['resources'], undefined);
});

test("FUSE pods keep the lazy label and add the runtime's fuse.nodeSelector, tolerations and pull secrets", () => {
  const full = plan({ fuseNodeSelector: { gpu: 'a100' }, tolerations, imagePullSecrets });
  const spec = podSpecOf(fuseDaemonSet(full, names, DEFAULT_SETTINGS, 'digest'));
  assert.deepEqual(spec['nodeSelector'], { gpu: 'a100', [fuseNodeLabel(dataset)]: 'true' });
  assert.deepEqual(spec['tolerations'], tolerations);
  assert.deepEqual(spec['imagePullSecrets'], imagePullSecrets);
  // Fluid's PV node affinity: pods that use the claim go only where its FUSE may run.
  const pv = persistentVolume(full, names, DEFAULT_SETTINGS);
  assert.deepEqual((pv['spec'] as Record<string, unknown>)['nodeAffinity'], {
    required: {
      nodeSelectorTerms: [{ matchExpressions: [{ key: 'gpu', operator: 'In', values: ['a100'] }] }],
    },
  });
  assert.equal(
    (persistentVolume(plan({}), names, DEFAULT_SETTINGS)['spec'] as Record<string, unknown>)['nodeAffinity'],
    undefined,
  );
});

test("a DataLoad's pod fields reach its loader pod, and stay out of the loader's plan argument", () => {
  const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } };
  const resources = { limits: { cpu: '2' } };
  const load: LoadPlan = {
    dataset,
    targets: [{ path: '/', replicas: 1 }],
    loadMetadata: false,
    parallelism: 16,
    pod: {
      affinity,
      tolerations,
      nodeSelector: { zone: 'a' },
      schedulerName: 'volcano',
      resources,
      labels: { team: 'ml', app: 'spoofed' },
      annotations: { 'example.com/owner': 'ml' },
      imagePullSecrets,
    },
  };
  const job = loadJob(load, {
    names,
    settings: DEFAULT_SETTINGS,
    jobName: 'demo-load',
    planDigest: 'f'.repeat(64),
  });
  const spec = podSpecOf(job);
  assert.deepEqual(spec['affinity'], affinity);
  assert.deepEqual(spec['tolerations'], tolerations);
  assert.deepEqual(spec['nodeSelector'], { zone: 'a' });
  assert.equal(spec['schedulerName'], 'volcano');
  assert.deepEqual(spec['imagePullSecrets'], imagePullSecrets);
  const container = spec.containers[0] ?? {};
  assert.deepEqual(container['resources'], resources);
  const metadata = podMetadataOf(job);
  const labels = metadata['labels'] as Record<string, string>;
  assert.equal(labels['team'], 'ml');
  assert.notEqual(labels['app'], 'spoofed', "Tide's own labels win: the Job selects its pods by them");
  assert.deepEqual(metadata['annotations'], { 'example.com/owner': 'ml' });
  const command = container['command'] as string[];
  const argument = JSON.parse(command[command.indexOf('--plan') + 1] ?? '{}') as Record<string, unknown>;
  assert.equal(argument['pod'], undefined);
  assert.deepEqual(argument['targets'], [{ path: '/', replicas: 1 }]);
});
