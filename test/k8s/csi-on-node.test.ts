/**
 * Seed 003 end to end as its article shows it, on a real node: the chart's CSI node plugin
 * registers with the kubelet, a pod of the test image mounts the dataset's PersistentVolumeClaim,
 * `time cp -r` reads the release tree cold from a bandwidth-limited origin, a DataLoad warms the
 * cache, and the same copy again is many times faster, with every byte identical.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { builtin, resourceType, type KubeObject } from '../../src/kube/index.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { LOCAL_IMAGE_VALUES, startClusterWithImages, writeStampedFiles } from './on-node-setup.ts';
import { installChart, renderChart } from './chart.ts';
import { k8sSuiteSkipReason, waitFor, type TestCluster } from './cluster.ts';
import { tideObjects, type TideObject, type TideObjects } from './tide-objects.ts';
import { describePod, runPodToEnd } from './pods.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SYSTEM = 'tide-system';
const NS = 'default';
const skip = k8sSuiteSkipReason({ realNode: true });

/** A release tree: an archive of several blocks, a smaller one and small files. */
const RELEASE: Record<string, number> = {
  '2.5.10/hbase-2.5.10-bin.tar.gz': 6 * 1024 * 1024 + 4321,
  '2.5.10/hbase-2.5.10-src.tar.gz': 3 * 1024 * 1024 + 99,
  '2.5.10/hbase-2.5.10-bin.tar.gz.sha512': 210,
  '2.5.10/CHANGES.md': 150_000,
  KEYS: 64_000,
};

/** The pod's `time cp -r` of the dataset and the sha256 of every copied file, as its log prints them. */
const COPY_SCRIPT = [
  'set -e',
  'TIMEFORMAT=%R',
  'elapsed=$( { time cp -r /data/hbase /tmp/copy >/dev/null; } 2>&1 )',
  'echo "elapsed $elapsed"',
  'cd /tmp/copy && find . -type f | sort | xargs sha256sum',
].join('\n');

function parseCopy(logs: string): { seconds: number; sums: Map<string, string> } {
  const seconds = Number(/^elapsed ([\d.]+)$/m.exec(logs)?.[1] ?? 'NaN');
  const sums = new Map<string, string>();
  for (const match of logs.matchAll(/^([0-9a-f]{64}) {2}\.\/(.+)$/gm))
    sums.set(match[2] ?? '', match[1] ?? '');
  return { seconds, sums };
}

describe('seed 003 through the CSI node plugin on a real node', { skip, timeout: 1_200_000 }, () => {
  let cluster: TestCluster;
  let nginx: NginxServer;
  let root: string;
  const cleanups: (() => Promise<void>)[] = [];
  let expected: Map<string, string>;

  const objects = (): TideObjects => tideObjects(cluster.client, NS);
  const applyDoc = (doc: KubeObject): Promise<void> => objects().apply(doc);
  const waitForPhase = (kind: string, name: string, phase: string, timeoutMs?: number): Promise<TideObject> =>
    objects().waitForPhase(kind, name, phase, timeoutMs);
  const copyPod = (name: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS },
    spec: {
      restartPolicy: 'Never',
      containers: [
        {
          name: 'copy',
          image: 'tide.local/tide-test:dev',
          imagePullPolicy: 'Never',
          command: ['bash', '-c', COPY_SCRIPT],
          volumeMounts: [{ name: 'hbase', mountPath: '/data', readOnly: true }],
        },
      ],
      volumes: [{ name: 'hbase', persistentVolumeClaim: { claimName: 'hbase', readOnly: true } }],
    },
  });

  before(async () => {
    ({ cluster } = await startClusterWithImages(1));
    cleanups.push(() => cluster.stop());
    const [node] = cluster.realNodes;
    assert.ok(node !== undefined);
    root = await mkdtemp(join(tmpdir(), 'tide-csi-node-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    expected = await writeStampedFiles(join(root, 'apache', 'hbase', 'stable'), RELEASE);
    // Seed 003's origin is far away: 512 KiB/s per connection.
    nginx = await startNginx({
      root,
      host: cluster.podReachableIp ?? '',
      rateLimitBytesPerSecond: 512 << 10,
    });
    cleanups.push(() => nginx.stop());
    const objects = await renderChart(SYSTEM, [
      ...LOCAL_IMAGE_VALUES,
      'controller.replicas=1',
      'controller.resyncSeconds=5',
      `runtime.mountRoot=${join(node.hostDataDir, 'runtime-mnt')}`,
      `csi.kubeletDir=${node.kubeletDir}`,
      'csi.recoveryIntervalSeconds=1',
    ]);
    await installChart(cluster.client, SYSTEM, objects);
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('registers the node plugin with the kubelet: the CSINode lists fuse.csi.tide.io', async () => {
    const csiNodes = resourceType('storage.k8s.io/v1', 'CSINode', 'csinodes', { namespaced: false });
    await waitFor(
      'the CSINode of the real node to list the driver',
      async () => {
        const csiNode = await cluster.client
          .get(csiNodes, cluster.realNodes[0]?.name ?? '')
          .catch(() => undefined);
        const drivers = (csiNode?.['spec'] as { drivers?: { name: string }[] } | undefined)?.drivers ?? [];
        return drivers.some((d) => d.name === 'fuse.csi.tide.io') ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
  });

  it('copies the dataset cold, then, after a DataLoad, warm at least 20 times faster, every byte identical', async (t) => {
    const text = (await readFile(join(ROOT, 'examples', 'seed-003-hbase-goosefs.yaml'), 'utf8')).replace(
      'http://127.0.0.1:18080/',
      nginx.slowUrl ?? '',
    );
    const docs = parseAllDocuments(text).map((d) => d.toJSON() as TideObject);
    const runtime = docs.find((d) => d.kind === 'GooseFSRuntime');
    assert.ok(runtime !== undefined);
    // One real node holds one worker (workers of a dataset are one per node).
    (runtime['spec'] as { replicas: number }).replicas = 1;
    for (const doc of docs.filter((d) => d.kind !== 'DataLoad')) await applyDoc(doc);
    await waitForPhase('Dataset', 'hbase', 'Bound');

    const cold = await runPodToEnd(cluster, copyPod('copy-cold'), 300_000);
    assert.equal(cold.phase, 'Succeeded', `${describePod(cold.pod)}\n${cold.logs}`);
    const load = docs.find((d) => d.kind === 'DataLoad');
    assert.ok(load !== undefined);
    await applyDoc(load);
    await waitForPhase('DataLoad', 'hbase-dataload', 'Complete');
    const warm = await runPodToEnd(cluster, copyPod('copy-warm'), 300_000);
    assert.equal(warm.phase, 'Succeeded', `${describePod(warm.pod)}\n${warm.logs}`);

    const coldCopy = parseCopy(cold.logs);
    const warmCopy = parseCopy(warm.logs);
    t.diagnostic(`time cp -r: cold ${coldCopy.seconds} s, warm ${warmCopy.seconds} s`);
    assert.deepEqual(coldCopy.sums, expected, 'the cold copy is byte for byte the origin');
    assert.deepEqual(warmCopy.sums, expected, 'the warm copy is byte for byte the origin');
    assert.ok(
      coldCopy.seconds >= 20 * warmCopy.seconds,
      `warm (${warmCopy.seconds} s) at least 20 times faster than cold (${coldCopy.seconds} s)`,
    );
    const pv = await cluster.client.get(builtin.persistentVolumes, 'default-hbase');
    assert.equal((pv['spec'] as { csi: { driver: string } }).csi.driver, 'fuse.csi.tide.io');
  });

  it('gives a serverless pod the FUSE client as a native sidecar: it reads the dataset without the CSI plugin', async () => {
    const pod = copyPod('copy-serverless');
    pod.metadata = { ...pod.metadata, labels: { 'serverless.fluid.io/inject': 'true' } };
    const result = await runPodToEnd(cluster, pod, 300_000);
    assert.equal(result.phase, 'Succeeded', `${describePod(result.pod)}\n${result.logs}`);
    const spec = result.pod['spec'] as {
      initContainers?: { name: string; restartPolicy?: string }[];
      volumes: { name: string; persistentVolumeClaim?: unknown }[];
    };
    const sidecar = spec.initContainers?.find((c) => c.name.startsWith('fluid-fuse'));
    assert.equal(sidecar?.restartPolicy, 'Always', 'a native sidecar');
    assert.ok(
      !spec.volumes.some((v) => v.persistentVolumeClaim !== undefined),
      'the PVC volume is replaced by the sidecar mount',
    );
    assert.deepEqual(parseCopy(result.logs).sums, expected);
  });
});
