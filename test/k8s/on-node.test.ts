/**
 * Tide's Kubernetes mode with containers that run: the chart installed from `helm template` with
 * the images of images/build, on three real nodes (kubelet + containerd). The operator runs as pods
 * and elects a leader; seed 003's GooseFSRuntime gets worker pods that serve blocks; DataLoads run
 * their Jobs as pods; and deleting the operator's or a worker's pod midway converges.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { builtin, type KubeObject } from '../../src/kube/index.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { LOCAL_IMAGE_VALUES, startClusterWithImages, writeStampedFiles } from './on-node-setup.ts';
import { installChart, renderChart } from './chart.ts';
import { k8sSuiteSkipReason, waitFor, type TestCluster } from './cluster.ts';
import { tideObjects, tideType, type TideObject, type TideObjects } from './tide-objects.ts';
import { describePod, podLogs, podStatus, runPodToEnd } from './pods.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SYSTEM = 'tide-system';
const NS = 'default';
const skip = k8sSuiteSkipReason({ realNode: true });

/** An HBase release tree, as seed 003 mirrors it: two archives of several blocks and small files. */
const RELEASE: Record<string, number> = {
  '2.5.10/hbase-2.5.10-bin.tar.gz': 9 * 1024 * 1024 + 12_345,
  '2.5.10/hbase-2.5.10-src.tar.gz': 5 * 1024 * 1024 + 777,
  '2.5.10/hbase-2.5.10-bin.tar.gz.asc': 833,
  '2.5.10/hbase-2.5.10-bin.tar.gz.sha512': 210,
  '2.5.10/CHANGES.md': 180_000,
  '2.5.10/RELEASENOTES.md': 95_000,
  KEYS: 64_000,
};
const RELEASE_BYTES = Object.values(RELEASE).reduce((a, b) => a + b, 0);

describe(
  'Tide on real nodes: the chart, seed 003 and DataLoads with running containers',
  { skip, timeout: 1_200_000 },
  () => {
    let cluster: TestCluster;
    let nginx: NginxServer;
    let root: string;
    const cleanups: (() => Promise<void>)[] = [];
    /** sha256 of each file of RELEASE, by path. */
    let sums: Map<string, string>;

    const objects = (): TideObjects =>
      tideObjects(cluster.client, NS, async () => `; operator pods:\n${await operatorLog()}`);
    const get = (kind: string, name: string): Promise<TideObject | undefined> => objects().get(kind, name);
    const applyDoc = (doc: KubeObject): Promise<void> => objects().apply(doc);
    const podsOf = async (selector: string, namespace = NS): Promise<KubeObject[]> =>
      (await cluster.client.list(builtin.pods, { namespace, labelSelector: selector })).items;
    const operatorLog = async (): Promise<string> => {
      const pods = await podsOf('app.kubernetes.io/component=controller', SYSTEM).catch(() => []);
      return pods.map((p) => `${p.metadata?.name ?? ''}: ${describePod(p)}`).join('\n');
    };
    const waitForPhase = (
      kind: string,
      name: string,
      phase: string,
      timeoutMs?: number,
    ): Promise<TideObject> => objects().waitForPhase(kind, name, phase, timeoutMs);

    before(async () => {
      ({ cluster } = await startClusterWithImages(3));
      cleanups.push(() => cluster.stop());
      root = await mkdtemp(join(tmpdir(), 'tide-on-node-'));
      cleanups.push(() => rm(root, { recursive: true, force: true }));
      sums = await writeStampedFiles(join(root, 'apache', 'hbase', 'stable'), RELEASE);
      // The slow block (per-connection limit) keeps loads running long enough to break things midway.
      nginx = await startNginx({
        root,
        host: cluster.podReachableIp ?? '',
        rateLimitBytesPerSecond: 1 << 20,
      });
      cleanups.push(() => nginx.stop());
      const hostDir = join(cluster.dir, 'host');
      const objects = await renderChart(SYSTEM, [
        ...LOCAL_IMAGE_VALUES,
        'controller.replicas=2',
        // Short leases, so that a handover fits in a test.
        'controller.leaderElection.leaseDurationSeconds=8',
        'controller.leaderElection.renewDeadlineSeconds=6',
        'controller.leaderElection.retryPeriodSeconds=1',
        'controller.resyncSeconds=5',
        'controller.logLevel=debug',
        // CSI has a test of its own (csi-on-node.test.ts), on a node whose kubelet directory it is given.
        'csi.enabled=false',
        `runtime.mountRoot=${join(hostDir, 'runtime-mnt')}`,
      ]);
      await installChart(cluster.client, SYSTEM, objects);
    });

    after(async () => {
      // What `before` got to start, newest first, even when it failed half-way.
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    it('runs the operator as pods of the built image; one of them holds the Lease and reconciles', async () => {
      const lease = await waitFor(
        'a leader in the tide-controller Lease',
        async () => {
          const found = await cluster.client
            .get(builtin.leases, 'tide-controller', { namespace: SYSTEM })
            .catch(() => undefined);
          const holder = (found?.['spec'] as { holderIdentity?: string } | undefined)?.holderIdentity;
          return holder === undefined || holder === '' ? undefined : holder;
        },
        { timeoutMs: 180_000, intervalMs: 1000 },
      ).catch(async (error: unknown) => {
        throw new Error(`${(error as Error).message}; operator pods:\n${await operatorLog()}`, {
          cause: error,
        });
      });
      const running = await waitFor(
        'both operator pods running',
        async () => {
          const pods = await podsOf('app.kubernetes.io/component=controller', SYSTEM);
          const up = pods.filter((p) => podStatus(p).phase === 'Running');
          return up.length === 2 ? up : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      assert.ok(
        running.some((p) => lease.startsWith(p.metadata?.name ?? '?')),
        `the Lease holder ${lease} is one of the operator pods`,
      );
      assert.ok(
        running.every((p) => (p['spec'] as { nodeName?: string }).nodeName?.startsWith('tide-node-')),
      );
    });

    it("brings seed 003's GooseFSRuntime up: three worker pods serve, and the dataset shows their capacity", async () => {
      const text = (await readFile(join(ROOT, 'examples', 'seed-003-hbase-goosefs.yaml'), 'utf8')).replace(
        'http://127.0.0.1:18080/',
        nginx.url,
      );
      const docs = parseAllDocuments(text).map((d) => d.toJSON() as KubeObject);
      for (const doc of docs.filter((d) => d.kind !== 'DataLoad')) await applyDoc(doc);
      await waitForPhase('Dataset', 'hbase', 'Bound');
      const workers = await waitFor(
        'three ready hbase workers',
        async () => {
          const pods = await podsOf('app=tide,role=tide-worker,release=hbase');
          const ready = pods.filter((p) =>
            podStatus(p).containerStatuses?.some((c) => c.name === 'worker' && c.ready),
          );
          return ready.length === 3 ? pods : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 1000 },
      );
      const dataset = await waitFor(
        'the capacity of three workers in the dataset status',
        async () => {
          const found = await get('Dataset', 'hbase');
          const states = found?.status?.['cacheStates'] as Record<string, string> | undefined;
          return states?.['cacheCapacity'] !== undefined && states['cacheCapacity'] !== '0B'
            ? found
            : undefined;
        },
        { timeoutMs: 60_000 },
      );
      const ready = workers.filter((p) =>
        podStatus(p).containerStatuses?.some((c) => c.name === 'worker' && c.ready),
      );
      assert.equal(ready.length, 3, workers.map(describePod).join('\n'));
      const nodes = new Set(ready.map((p) => (p['spec'] as { nodeName: string }).nodeName));
      assert.equal(nodes.size, 3, 'one worker per real node');
      const cacheStates = dataset.status?.['cacheStates'] as Record<string, string> | undefined;
      assert.ok(cacheStates !== undefined, JSON.stringify(dataset.status));
      assert.notEqual(
        cacheStates['cacheCapacity'],
        '0B',
        `CACHE CAPACITY from the workers: ${JSON.stringify(cacheStates)}`,
      );
      assert.equal(dataset.status?.['fileNum'], String(Object.keys(RELEASE).length));
    });

    it('runs the DataLoad as a Job pod that loads every file, each byte fetched from the origin once', async (t) => {
      const text = await readFile(join(ROOT, 'examples', 'seed-003-hbase-goosefs.yaml'), 'utf8');
      const load = parseAllDocuments(text)
        .map((d) => d.toJSON() as KubeObject)
        .find((d) => d.kind === 'DataLoad');
      assert.ok(load !== undefined);
      const before = await nginx.accessLog();
      const appliedAt = new Date().toISOString();
      await applyDoc(load);
      const done = await waitForPhase('DataLoad', 'hbase-dataload', 'Complete');
      const progress = done.status?.['progress'] as { filesDone: number; bytesDone: number };
      assert.equal(progress.filesDone, Object.keys(RELEASE).length);
      assert.equal(progress.bytesDone, RELEASE_BYTES);
      const jobPods = await podsOf('app=tide,role=tide-loader,release=hbase');
      for (const pod of jobPods) {
        const status = podStatus(pod) as {
          startTime?: string;
          containerStatuses?: { state?: { terminated?: { startedAt: string; finishedAt: string } } }[];
        };
        const terminated = status.containerStatuses?.[0]?.state?.terminated;
        t.diagnostic(
          `loader pod ${pod.metadata?.name ?? ''}: created ${pod.metadata?.creationTimestamp ?? '?'}, started ${terminated?.startedAt ?? '?'}, finished ${terminated?.finishedAt ?? '?'}; DataLoad applied ${appliedAt}, Complete seen ${new Date().toISOString()}`,
        );
        const logs = await podLogs(cluster, NS, pod.metadata?.name ?? '').catch((e: unknown) => String(e));
        t.diagnostic(logs.split('\n').slice(-25).join('\n'));
      }
      assert.ok(
        jobPods.some((p) => podStatus(p).phase === 'Succeeded'),
        `a loader pod ran to completion: ${jobPods.map(describePod).join('; ')}`,
      );
      const fetched = new Map<string, number>();
      for (const record of (await nginx.accessLog()).slice(before.length)) {
        if (record.method !== 'GET' || record.target.endsWith('/')) continue;
        fetched.set(record.target, (fetched.get(record.target) ?? 0) + record.bodyBytes);
      }
      for (const [path, size] of Object.entries(RELEASE)) {
        assert.equal(fetched.get(`/apache/hbase/stable/${path}`), size, `${path} fetched once, whole`);
      }
      // The bytes each node's workers hold, as the webhook weighs its cache affinity by them: from
      // the live workers, one entry per real node, adding up to the dataset (one replica).
      const byNode = await waitFor(
        'the bytes per node in the dataset status',
        async () => {
          const found = (await get('Dataset', 'hbase'))?.status?.['cachedBytesByNode'] as
            Record<string, number> | undefined;
          const total = Object.values(found ?? {}).reduce((a, b) => a + b, 0);
          return found !== undefined && total === RELEASE_BYTES ? found : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      );
      assert.deepEqual(Object.keys(byNode).sort(), ['tide-node-0', 'tide-node-1', 'tide-node-2']);
    });
    it('runs a Cron DataLoad at least twice', async () => {
      await applyDoc({
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'DataLoad',
        metadata: { name: 'hbase-cron', namespace: NS },
        spec: {
          dataset: { name: 'hbase', namespace: NS },
          policy: 'Cron',
          schedule: '*/10 * * * * *',
          // Paths are the dataset's: its mount `hbase` is the top directory.
          target: [{ path: '/hbase/2.5.10/CHANGES.md' }],
        },
      });
      const seen = new Set<string>();
      let last: Record<string, unknown> | undefined;
      await waitFor(
        'two successful runs of the cron DataLoad',
        async () => {
          const load = await get('DataLoad', 'hbase-cron');
          last = load?.status;
          const time = load?.status?.['lastSuccessfulTime'];
          if (typeof time === 'string') seen.add(time);
          return seen.size >= 2 ? true : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 1000 },
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; status: ${JSON.stringify(last)}`, { cause: error });
      });
      await cluster.client.delete(tideType('DataLoad'), 'hbase-cron', { namespace: NS });
    });

    it('converges when the leading operator pod is deleted while a dataset is being set up', async () => {
      const leaseHolder = async (): Promise<string> => {
        const lease = await cluster.client.get(builtin.leases, 'tide-controller', { namespace: SYSTEM });
        return (lease['spec'] as { holderIdentity?: string }).holderIdentity ?? '';
      };
      const leader = await leaseHolder();
      const leaderPod = (await podsOf('app.kubernetes.io/component=controller', SYSTEM)).find((p) =>
        leader.startsWith(`${p.metadata?.name ?? '?'}_`),
      );
      assert.ok(leaderPod !== undefined, `the pod of ${leader}`);
      await applyDoc({
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'Dataset',
        metadata: { name: 'failover', namespace: NS },
        spec: { mounts: [{ mountPoint: `${nginx.url}apache/hbase/stable/2.5.10/`, name: 'release' }] },
      });
      await applyDoc({
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'TideRuntime',
        metadata: { name: 'failover', namespace: NS },
        spec: {
          replicas: 1,
          tieredstore: { levels: [{ mediumtype: 'MEM', path: '/dev/shm', quota: '256Mi' }] },
        },
      });
      await waitFor(
        'the failover workers StatefulSet (set-up under way)',
        async () => {
          const sets = await cluster.client.list(builtin.statefulSets, { namespace: NS });
          return sets.items.some((x) => x.metadata?.name?.startsWith('failover') === true) ? true : undefined;
        },
        { timeoutMs: 60_000 },
      );
      await cluster.client.delete(builtin.pods, leaderPod.metadata?.name ?? '', { namespace: SYSTEM });
      await waitForPhase('Dataset', 'failover', 'Bound');
      const next = await leaseHolder();
      assert.notEqual(next, leader, 'another replica took the Lease');
    });

    it('completes a DataLoad whose worker pod is deleted midway, and the cache holds the whole dataset', async () => {
      await applyDoc({
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'Dataset',
        metadata: { name: 'churn', namespace: NS },
        spec: { mounts: [{ mountPoint: `${nginx.slowUrl ?? ''}apache/hbase/stable/`, name: 'release' }] },
      });
      await applyDoc({
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'TideRuntime',
        metadata: { name: 'churn', namespace: NS },
        spec: {
          replicas: 2,
          tieredstore: { levels: [{ mediumtype: 'MEM', path: '/dev/shm', quota: '256Mi' }] },
        },
      });
      await waitForPhase('Dataset', 'churn', 'Bound');
      await applyDoc({
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'DataLoad',
        metadata: { name: 'churn-load', namespace: NS },
        spec: { dataset: { name: 'churn', namespace: NS }, target: [{ path: '/' }] },
      });
      // Once the loader pod runs, the load is midway: the slow origin takes about a second per MiB.
      await waitFor(
        'the loader pod running',
        async () => {
          const pods = await podsOf('app=tide,role=tide-loader,release=churn');
          return pods.some((p) => podStatus(p).phase === 'Running') ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 250 },
      );
      const [victim] = await podsOf('app=tide,role=tide-worker,release=churn');
      assert.ok(victim !== undefined);
      await cluster.client.delete(builtin.pods, victim.metadata?.name ?? '', { namespace: NS });
      const done = await waitForPhase('DataLoad', 'churn-load', 'Complete', 600_000);
      const progress = done.status?.['progress'] as { filesDone: number; bytesDone: number };
      assert.equal(progress.bytesDone, RELEASE_BYTES);
      // Blocks the deleted worker had taken are gone with its memory tier; a second load (what a
      // cron DataLoad does) fetches what is missing and skips the rest.
      await applyDoc({
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'DataLoad',
        metadata: { name: 'churn-reload', namespace: NS },
        spec: { dataset: { name: 'churn', namespace: NS }, target: [{ path: '/' }] },
      });
      await waitForPhase('DataLoad', 'churn-reload', 'Complete', 300_000);
      await waitFor(
        'the churn dataset to show the whole dataset cached',
        async () => {
          const found = await get('Dataset', 'churn');
          const states = found?.status?.['cacheStates'] as Record<string, string> | undefined;
          return states?.['cachedPercentage'] === '100.0%' ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      ).catch(async (error: unknown) => {
        const states = (await get('Dataset', 'churn'))?.status?.['cacheStates'];
        throw new Error(`${(error as Error).message}: ${JSON.stringify(states)}`, { cause: error });
      });
      // And the bytes are right: a pod (with the FUSE client as its sidecar) hashes every file.
      const read = await runPodToEnd(
        cluster,
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'churn-check', namespace: NS, labels: { 'serverless.fluid.io/inject': 'true' } },
          spec: {
            restartPolicy: 'Never',
            containers: [
              {
                name: 'check',
                image: 'tide.local/tide-test:dev',
                imagePullPolicy: 'Never',
                command: ['bash', '-c', 'cd /data/release && find . -type f | sort | xargs sha256sum'],
                volumeMounts: [{ name: 'churn', mountPath: '/data', readOnly: true }],
              },
            ],
            volumes: [{ name: 'churn', persistentVolumeClaim: { claimName: 'churn', readOnly: true } }],
          },
        },
        300_000,
      );
      assert.equal(read.phase, 'Succeeded', `${describePod(read.pod)}\n${read.logs}`);
      const seen = new Map(
        [...read.logs.matchAll(/^([0-9a-f]{64}) {2}\.\/(.+)$/gm)].map((m) => [m[2] ?? '', m[1] ?? '']),
      );
      assert.deepEqual(seen, sums);
    });
  },
);
