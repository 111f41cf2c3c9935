/**
 * The CSI data path's life cycle on a real node: a FUSE pod deleted under a running reader, a
 * dataset deleted while a pod uses it, and seed 004 (an OSS object a pod tails, and a line appended
 * at the origin that a cron DataLoad brings through the mount). One cluster, one real node, the
 * chart installed as in csi-on-node.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { gunzipSync } from 'node:zlib';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { fluidPath, namesOf } from '../../src/api/index.ts';
import { builtin, type KubeObject } from '../../src/kube/index.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { startS3Server } from '../helpers/s3-server.ts';
import { LOCAL_IMAGE_VALUES, startClusterWithImages } from './on-node-setup.ts';
import { installChart, renderChart } from './chart.ts';
import { exampleKindType } from './fixtures.ts';
import { k8sSuiteSkipReason, waitFor, type TestCluster } from './cluster.ts';
import type { RealNode } from './real-node.ts';
import { describePod, podLogs, waitForPod } from './pods.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SYSTEM = 'tide-system';
const NS = 'default';
const DATASET = 'big';
const FILE = 'big.bin';
const FILE_MIB = 200;
/** A file loaded by a DataLoad and read once through the mount, from the worker's block files. */
const WARM_MIB = 24;
const skip = k8sSuiteSkipReason({ realNode: true });

type Obj = KubeObject & { metadata: { name: string }; status?: Record<string, unknown> };
interface EventLike {
  reason?: string;
  message?: string;
  involvedObject?: { kind?: string; name?: string };
}

/**
 * The reader: `sha256sum` of the file; when that fails, it waits for the file to answer again
 * (the CSI plugin re-binds the new FUSE mount) and reads once more. Then it keeps the claim in use.
 */
const READER_SCRIPT = [
  `f=/data/${DATASET}/${FILE}`,
  'echo reading',
  'if out=$(sha256sum "$f" 2>&1); then echo "first ok $out"; else echo "first failed: $out"; fi',
  'start=$(date +%s)',
  'until head -c 1 "$f" >/dev/null 2>&1; do sleep 0.5; [ $(( $(date +%s) - start )) -lt 120 ] || break; done',
  'echo "mount answered after $(( $(date +%s) - start )) s"',
  'if out=$(sha256sum "$f" 2>&1); then echo "second ok $out"; else echo "second failed: $out"; fi',
  'echo finished',
  "trap 'exit 0' TERM",
  'sleep 100000 & wait',
].join('\n');

/**
 * A serverful pod of the test image running `script` with the dataset's claim at /data: the
 * webhook gives its dataset mounts HostToContainer propagation.
 */
function datasetPod(name: string, claim: string, script: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { 'fuse.serverful.fluid.io/inject': 'true' } },
    spec: {
      terminationGracePeriodSeconds: 2,
      containers: [
        {
          name,
          image: 'tide.local/tide-test:dev',
          imagePullPolicy: 'Never',
          command: ['bash', '-c', script],
          volumeMounts: [{ name: 'data', mountPath: '/data', readOnly: true }],
        },
      ],
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim, readOnly: true } }],
    },
  };
}

/** Mount points in this machine's mountinfo (the real node shares its mount namespace). */
async function mountPointsUnder(dirs: readonly string[]): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => dirs.some((dir) => point === dir || point.startsWith(`${dir}/`)));
}

describe(
  'the CSI data path on a real node: FUSE pod loss and dataset deletion',
  { skip, timeout: 900_000 },
  () => {
    let cluster: TestCluster;
    let node: RealNode;
    let nginx: NginxServer;
    let root: string;
    let tierDir: string;
    let mountRoot: string;
    let expectedSum = '';
    const cleanups: (() => Promise<void>)[] = [];

    const get = async (kind: string, name: string): Promise<Obj | undefined> => {
      try {
        return await cluster.client.get<Obj>(exampleKindType(kind), name, { namespace: NS });
      } catch (error) {
        if ((error as { code?: string }).code === 'ERR_KUBE_NOT_FOUND') return undefined;
        throw error;
      }
    };
    const datasetEvents = async (): Promise<EventLike[]> => {
      const list = await cluster.client.list<EventLike & KubeObject>(builtin.events, {
        namespace: NS,
        fieldSelector: `involvedObject.name=${DATASET}`,
      });
      return list.items.filter((event) => event.involvedObject?.kind === 'Dataset');
    };
    const fusePods = async (): Promise<Obj[]> => {
      const list = await cluster.client.list<Obj>(builtin.pods, {
        namespace: NS,
        labelSelector: `app=tide,role=tide-fuse,release=${DATASET}`,
      });
      return list.items;
    };
    const readerLogs = (): Promise<string> => podLogs(cluster, NS, 'reader', 'reader');

    before(async () => {
      ({ cluster } = await startClusterWithImages(1));
      cleanups.push(() => cluster.stop());
      const [first] = cluster.realNodes;
      assert.ok(first !== undefined);
      node = first;
      root = await mkdtemp(join(tmpdir(), 'tide-csi-life-'));
      cleanups.push(() => rm(root, { recursive: true, force: true }));
      const hash = createHash('sha256');
      const out = createWriteStream(join(root, FILE));
      for (let i = 0; i < FILE_MIB; i++) {
        const chunk = randomBytes(1 << 20);
        hash.update(chunk);
        if (!out.write(chunk)) await once(out, 'drain');
      }
      out.end();
      await once(out, 'finish');
      expectedSum = hash.digest('hex');
      // 1 MiB/s per connection: with 16 blocks read ahead the cold read takes about 13 s, time
      // enough to pull the FUSE pod from under it.
      nginx = await startNginx({
        root,
        host: cluster.podReachableIp ?? '',
        rateLimitBytesPerSecond: 1 << 20,
      });
      cleanups.push(() => nginx.stop());
      mountRoot = join(node.hostDataDir, 'runtime-mnt');
      tierDir = join(node.hostDataDir, 'tiers');
      const objects = await renderChart(SYSTEM, [
        ...LOCAL_IMAGE_VALUES,
        'controller.replicas=1',
        'controller.resyncSeconds=5',
        `runtime.mountRoot=${mountRoot}`,
        `csi.kubeletDir=${node.kubeletDir}`,
        'csi.recoveryIntervalSeconds=1',
      ]);
      await installChart(cluster.client, SYSTEM, objects);
      const dataset = {
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'Dataset',
        metadata: { name: DATASET, namespace: NS },
        spec: { mounts: [{ mountPoint: nginx.slowUrl ?? '', name: DATASET }] },
      };
      const runtime = {
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'GooseFSRuntime',
        metadata: { name: DATASET, namespace: NS },
        spec: {
          replicas: 1,
          // A hostPath tier on the node, so that what deletion leaves behind can be seen.
          tieredstore: {
            levels: [{ mediumtype: 'SSD', volumeType: 'hostPath', path: tierDir, quota: '1Gi' }],
          },
        },
      };
      for (const doc of [dataset, runtime])
        await cluster.client.apply(exampleKindType(doc.kind), doc, { namespace: NS, force: true });
      await waitFor(
        'the dataset to be Bound',
        async () => ((await get('Dataset', DATASET))?.status?.['phase'] === 'Bound' ? true : undefined),
        { timeoutMs: 240_000, intervalMs: 500 },
      );
    });

    after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    it('a reader whose FUSE pod is deleted mid-read fails once (ENOTCONN or ECONNABORTED); the re-bound mount reads right in the same container', async (t) => {
      await cluster.client.create(builtin.pods, datasetPod('reader', DATASET, READER_SCRIPT));
      const running = await waitForPod(
        cluster.client,
        NS,
        'reader',
        'to run',
        (pod) => (pod['status'] as { phase?: string } | undefined)?.phase === 'Running',
        240_000,
      );
      const mounts = (running['spec'] as { containers: { volumeMounts: { mountPropagation?: string }[] }[] })
        .containers[0]?.volumeMounts;
      assert.equal(mounts?.[0]?.mountPropagation, 'HostToContainer', 'the webhook set HostToContainer');
      await waitFor(
        'the reader to start reading',
        async () => ((await readerLogs()).includes('reading') ? true : undefined),
        {
          timeoutMs: 60_000,
          intervalMs: 250,
        },
      );
      // A few seconds into the cold read, the FUSE pod goes; its DaemonSet starts another.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const [fuse] = await fusePods();
      assert.ok(fuse !== undefined, 'a FUSE pod serves the node');
      await cluster.client.delete(builtin.pods, fuse.metadata.name, { namespace: NS });
      const logs = await waitFor(
        'the reader to finish',
        async () => {
          const text = await readerLogs();
          return text.includes('finished') ? text : undefined;
        },
        { timeoutMs: 240_000, intervalMs: 1000 },
      ).catch(async (error: unknown) => {
        const pod = await cluster.client.get(builtin.pods, 'reader', { namespace: NS });
        throw new Error(`${(error as Error).message}; ${describePod(pod)}\n${await readerLogs()}`, {
          cause: error,
        });
      });
      t.diagnostic(logs.trim().replaceAll('\n', ' | '));
      // A read in flight when the connection is aborted ends with ECONNABORTED, one sent after it
      // with ENOTCONN (the kernel's fuse_abort_conn): which one depends on the moment of the delete.
      assert.match(
        logs,
        /^first failed: sha256sum: \/data\/big\/big\.bin: (Transport endpoint is not connected|Software caused connection abort)$/m,
      );
      assert.match(logs, new RegExp(`^second ok ${expectedSum} {2}/data/${DATASET}/${FILE}$`, 'm'));
      const replaced = await fusePods();
      assert.ok(
        replaced.some((pod) => pod.metadata.name !== fuse.metadata.name),
        'the DaemonSet started a new FUSE pod',
      );
      const recovered = (await datasetEvents()).find((event) => event.reason === 'FuseRecoverSucceed');
      assert.ok(recovered !== undefined, 'a FuseRecoverSucceed event on the Dataset');
      assert.match(recovered.message ?? '', /Re-bound .* to the new FUSE mount/);
    });

    it("reads the same-node worker's blocks from its hostPath files, and follows a mount added to the running dataset", async (t) => {
      const fuseDir = fluidPath(mountRoot, { namespace: NS, name: DATASET });
      const secret = await cluster.client.get(
        builtin.secrets,
        namesOf({ namespace: NS, name: DATASET }).config,
        {
          namespace: NS,
        },
      );
      const workerJson = (secret['data'] as Record<string, string>)['worker.json'] ?? '';
      const { token } = JSON.parse(Buffer.from(workerJson, 'base64').toString('utf8')) as { token: string };
      const located = async (): Promise<number> => {
        const list = await cluster.client.list<Obj>(builtin.pods, {
          namespace: NS,
          labelSelector: `app=tide,role=tide-worker,release=${DATASET}`,
        });
        const pod = list.items[0];
        const ip = (pod?.status as { podIP?: string } | undefined)?.podIP;
        const spec = pod?.['spec'] as { containers: { ports?: { name: string; containerPort: number }[] }[] };
        const port = spec.containers[0]?.ports?.find((p) => p.name === 'http')?.containerPort;
        const response = await fetch(`http://${ip}:${port}/v1/stats`, {
          headers: { authorization: `Bearer ${token}` },
        });
        assert.equal(response.status, 200);
        return ((await response.json()) as { counters: { locatedBytes: number } }).counters.locatedBytes;
      };
      // A file the FUSE pod has never read (its client keeps recently read blocks in memory), put
      // in the worker's tier by a DataLoad; the DataLoad's versions make the mount list it.
      const warm = randomBytes(WARM_MIB << 20);
      await writeFile(join(root, 'warm.bin'), warm);
      await cluster.client.apply(
        exampleKindType('DataLoad'),
        {
          apiVersion: 'data.fluid.io/v1alpha1',
          kind: 'DataLoad',
          metadata: { name: 'warm', namespace: NS },
          spec: { dataset: { name: DATASET, namespace: NS } },
        },
        { namespace: NS, force: true },
      );
      await waitFor(
        'the DataLoad to complete',
        async () => ((await get('DataLoad', 'warm'))?.status?.['phase'] === 'Complete' ? true : undefined),
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      const warmPath = join(fuseDir, DATASET, 'warm.bin');
      await waitFor(
        'the loaded file in the mount',
        () =>
          stat(warmPath)
            .then(() => true)
            .catch(() => undefined),
        {
          timeoutMs: 30_000,
          intervalMs: 500,
        },
      );
      await writeFile('/proc/sys/vm/drop_caches', '1');
      const before = await located();
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(warmPath)) hash.update(chunk as Buffer);
      assert.equal(hash.digest('hex'), createHash('sha256').update(warm).digest('hex'));
      const shortCircuited = (await located()) - before;
      if (shortCircuited === 0) {
        const [fuse] = await fusePods();
        const spec = fuse?.['spec'] as { containers: { volumeMounts: unknown[] }[] } | undefined;
        t.diagnostic(`FUSE pod mounts: ${JSON.stringify(spec?.containers[0]?.volumeMounts)}`);
        t.diagnostic(await podLogs(cluster, NS, fuse?.metadata.name ?? '', 'fuse').catch(String));
      }
      t.diagnostic(
        `short-circuit: ${(shortCircuited / 2 ** 20).toFixed(1)} MiB of ${WARM_MIB} MiB from the block files`,
      );
      assert.ok(
        shortCircuited >= (WARM_MIB << 20) * 0.9,
        `${shortCircuited} bytes read from the block files`,
      );

      await mkdir(join(root, 'extra'));
      await writeFile(join(root, 'extra', 'hello.txt'), 'hello from a new mount\n');
      const dataset = await get('Dataset', DATASET);
      assert.ok(dataset !== undefined);
      const spec = dataset['spec'] as { mounts: { mountPoint: string; name: string }[] };
      const servingPods = (await fusePods()).map((pod) => pod.metadata.name);
      const added = Date.now();
      await cluster.client.apply(
        exampleKindType('Dataset'),
        {
          apiVersion: 'data.fluid.io/v1alpha1',
          kind: 'Dataset',
          metadata: { name: DATASET, namespace: NS },
          spec: { mounts: [...spec.mounts, { mountPoint: `${nginx.url}extra/`, name: 'extra' }] },
        },
        { namespace: NS, force: true },
      );
      const text = await waitFor(
        'the new mount in the running FUSE mount',
        () => readFile(join(fuseDir, 'extra', 'hello.txt'), 'utf8').catch(() => undefined),
        { timeoutMs: 90_000, intervalMs: 500 },
      );
      t.diagnostic(`the added mount served ${Date.now() - added} ms after the Dataset changed`);
      assert.equal(text, 'hello from a new mount\n');
      assert.ok((await readdir(join(fuseDir, DATASET))).includes(FILE), 'the first mount still serves');
      assert.deepEqual(
        (await fusePods()).map((pod) => pod.metadata.name),
        servingPods,
        'the same FUSE pod: the mount was not restarted',
      );
      // The workers take the new mount by a rolling restart; the next test starts once it is done.
      await waitFor(
        'the worker StatefulSet rolled and ready',
        async () => {
          const set = await cluster.client.get(builtin.statefulSets, `${DATASET}-worker`, { namespace: NS });
          const status = set['status'] as
            | {
                readyReplicas?: number;
                updatedReplicas?: number;
                currentRevision?: string;
                updateRevision?: string;
              }
            | undefined;
          const rolled =
            status?.readyReplicas === 1 &&
            status.updatedReplicas === 1 &&
            status.currentRevision === status.updateRevision;
          return rolled ? true : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 1000 },
      );
    });

    it('deleting the dataset waits for the pod that uses it, naming it in an event and a condition; then nothing of it stays on the node', async () => {
      const tierFiles = async (): Promise<string[]> =>
        (
          await readdir(join(tierDir, 'tide', NS, DATASET), { recursive: true, withFileTypes: true }).catch(
            () => [],
          )
        )
          .filter((entry) => entry.isFile())
          .map((entry) => join(entry.parentPath, entry.name));
      assert.ok((await tierFiles()).length > 0, 'the hostPath tier holds block files of the reads');
      await cluster.client.delete(exampleKindType('Dataset'), DATASET, { namespace: NS });
      const waiting = await waitFor(
        'an event saying whom the deletion waits for',
        async () => (await datasetEvents()).find((event) => event.reason === 'ErrorDeleteDataset'),
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      assert.match(waiting.message ?? '', /in use by pod default\/reader/);
      const held = await waitFor(
        'a DeletionBlocked condition naming the pod',
        async () => {
          const found = await get('Dataset', DATASET);
          const conditions = (found?.status?.['conditions'] ?? []) as { type: string; message?: string }[];
          const blocked = conditions.find((condition) => condition.type === 'DeletionBlocked');
          return blocked?.message?.includes('pod default/reader') === true ? found : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      assert.ok(held.metadata.deletionTimestamp !== undefined, 'the dataset waits, deleting');
      assert.equal((await fusePods()).length > 0, true, 'the FUSE pod still serves the reader');

      await cluster.client.delete(builtin.pods, 'reader', { namespace: NS });
      await waitFor(
        'the dataset to go',
        async () => ((await get('Dataset', DATASET)) === undefined ? true : undefined),
        {
          timeoutMs: 120_000,
          intervalMs: 500,
        },
      );
      const label = `fluid.io/f-${NS}-${DATASET}`;
      let lastLeft: unknown;
      await waitFor(
        'the node label, the FUSE pod, the mounts and the tier files to go',
        async () => {
          const nodeObject = await cluster.client.get(builtin.nodes, node.name);
          const left = {
            label: nodeObject.metadata?.labels?.[label],
            fusePods: (await fusePods()).map((pod) => pod.metadata.name),
            mounts: (await mountPointsUnder([node.kubeletDir, mountRoot])).filter(
              (point) => point.includes(`${NS}-${DATASET}`) || point.startsWith(mountRoot),
            ),
            tierFiles: await tierFiles(),
          };
          lastLeft = left;
          const gone =
            left.label === undefined &&
            left.fusePods.length === 0 &&
            left.mounts.length === 0 &&
            left.tierFiles.length === 0;
          return gone ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; left: ${JSON.stringify(lastLeft)}`, { cause: error });
      });
    });

    it('seed 004: a pod tails the OSS object, and a line appended at the origin shows after the next cron DataLoad', async (t) => {
      const s3 = await startS3Server({ host: cluster.podReachableIp ?? '', buckets: ['tide-demo'] });
      cleanups.push(() => s3.stop());
      const lines = (count: number): string =>
        Array.from({ length: count }, (_, i) => `release note ${i + 1}\n`).join('');
      await s3.putObject('tide-demo', 'hbase/CHANGES.md', lines(3));
      const text = (await readFile(join(ROOT, 'examples', 'seed-004-cron-oss.yaml'), 'utf8')).replaceAll(
        'http://127.0.0.1:18333',
        s3.endpoint,
      );
      const docs = parseAllDocuments(text).map((d) => d.toJSON() as Obj);
      const load = docs.find((d) => d.kind === 'DataLoad');
      assert.ok(load !== undefined);
      // Every 20 s instead of every two minutes, to keep the test short.
      (load['spec'] as { schedule: string }).schedule = '*/20 * * * * *';
      // The seed keeps attributes for 60 s; ten minutes here, so that nothing but the DataLoad's
      // versions can bring the new line within the test.
      const runtime = docs.find((d) => d.kind === 'JindoRuntime');
      const fuse = (runtime?.['spec'] as { fuse: { args: string[] } } | undefined)?.fuse;
      assert.ok(fuse !== undefined);
      fuse.args = [
        ...fuse.args.filter((arg) => !/_timeout=/.test(arg)),
        '-oattr_timeout=600',
        '-oentry_timeout=600',
        '-onegative_timeout=600',
      ];
      for (const doc of docs) {
        const type = exampleKindType(doc.kind ?? '');
        await cluster.client.apply(
          type,
          { ...doc, metadata: { ...doc.metadata, namespace: NS } },
          {
            namespace: NS,
            force: true,
          },
        );
      }
      await waitFor(
        'the seed 004 dataset to be Bound',
        async () => ((await get('Dataset', 'demo'))?.status?.['phase'] === 'Bound' ? true : undefined),
        { timeoutMs: 240_000, intervalMs: 500 },
      );
      await cluster.client.create(
        builtin.pods,
        datasetPod(
          'tail',
          'demo',
          'while :; do echo "$(date +%s.%N) $(tail -n 1 /data/CHANGES.md 2>&1)"; sleep 0.5; done',
        ),
      );
      const tailed = async (line: string): Promise<number | undefined> => {
        const logs = await podLogs(cluster, NS, 'tail', 'tail').catch(() => '');
        const match = new RegExp(`^([\\d.]+) ${line}$`, 'm').exec(logs);
        return match === null ? undefined : Number(match[1]) * 1000;
      };
      await waitFor('the pod to tail the object', () => tailed('release note 3'), {
        timeoutMs: 240_000,
        intervalMs: 1000,
      });
      // The versions the loader Jobs publish for the FUSE pods: CHANGES.md's, as the last load saw it.
      const publishedVersion = async (): Promise<string | undefined> => {
        const configMap = await cluster.client
          .get(builtin.configMaps, 'demo-load-versions', { namespace: NS })
          .catch(() => undefined);
        const value = (configMap?.['binaryData'] as Record<string, string> | undefined)?.['versions.json.gz'];
        if (value === undefined) return undefined;
        const file = JSON.parse(gunzipSync(Buffer.from(value, 'base64')).toString('utf8')) as {
          entries: [string, string][];
        };
        return file.entries.find(([path]) => path === 'CHANGES.md')?.[1];
      };
      const before = await waitFor('a cron DataLoad to publish the versions it saw', publishedVersion, {
        timeoutMs: 90_000,
        intervalMs: 500,
      });
      await s3.putObject('tide-demo', 'hbase/CHANGES.md', lines(4));
      const appendedMs = Date.now();
      let publishedMs: number | undefined;
      const seenMs = await waitFor(
        'the appended line through the mount',
        async () => {
          if (publishedMs === undefined && (await publishedVersion()) !== before) publishedMs = Date.now();
          return tailed('release note 4');
        },
        { timeoutMs: 90_000, intervalMs: 250 },
      );
      for (let i = 0; publishedMs === undefined && i < 20; i++) {
        if ((await publishedVersion()) !== before) publishedMs = Date.now();
        else await new Promise((resolve) => setTimeout(resolve, 250));
      }
      assert.ok(publishedMs !== undefined, 'a cron DataLoad published the new version of CHANGES.md');
      t.diagnostic(
        `appended line seen ${Math.round(seenMs - appendedMs)} ms after the append; the DataLoad's new version noticed ${Math.round(publishedMs - appendedMs)} ms after it`,
      );
      // The mount keeps attributes for 600 s (attr_timeout, entry_timeout, hence the metadata TTL),
      // so the line shows only once a DataLoad has published the file's new version. The test sees
      // that version up to a poll (250 ms) and a request after the loader wrote it.
      assert.ok(seenMs >= publishedMs - 1500, 'the line showed after the DataLoad published the new version');
      assert.ok(seenMs - appendedMs < 60_000, 'the line shows within a cron period or two');
    });
  },
);
