/**
 * The CSI data path's life cycle on a real node: a FUSE pod deleted under a running reader, and a
 * dataset deleted while a pod uses it. One cluster, one real node, the chart installed as in
 * csi-on-node.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KINDS } from '../../src/api/index.ts';
import { builtin, resourceType, type KubeObject, type ResourceType } from '../../src/kube/index.ts';
import { ensureImages } from '../helpers/images.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { installChart, renderChart } from './chart.ts';
import { k8sSuiteSkipReason, startCluster, waitFor, type TestCluster } from './cluster.ts';
import type { RealNode } from './real-node.ts';
import { describePod, podLogs, waitForPod } from './pods.ts';

const SYSTEM = 'tide-system';
const NS = 'default';
const DATASET = 'big';
const FILE = 'big.bin';
const FILE_MIB = 200;
const skip = k8sSuiteSkipReason({ realNode: true });

const TYPES = new Map<string, ResourceType>(
  KINDS.filter((info) => info.apiVersion !== 'v1').map((info) => [
    info.kind,
    resourceType(info.apiVersion, info.kind, info.plural, { namespaced: true }),
  ]),
);
function typeOf(kind: string): ResourceType {
  const type = TYPES.get(kind);
  assert.ok(type !== undefined, `no type for ${kind}`);
  return type;
}

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
        return await cluster.client.get<Obj>(typeOf(kind), name, { namespace: NS });
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
      const images = await ensureImages();
      cluster = await startCluster({ realNodes: 1, nodes: [] });
      cleanups.push(() => cluster.stop());
      const [first] = cluster.realNodes;
      assert.ok(first !== undefined);
      node = first;
      await node.importImages(Object.values(images.images));
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
        'image.prefix=tide.local',
        'image.tag=dev',
        'image.pullPolicy=Never',
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
        await cluster.client.apply(typeOf(doc.kind), doc, { namespace: NS, force: true });
      await waitFor(
        'the dataset to be Bound',
        async () => ((await get('Dataset', DATASET))?.status?.['phase'] === 'Bound' ? true : undefined),
        { timeoutMs: 240_000, intervalMs: 500 },
      );
    });

    after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    it('a reader whose FUSE pod is deleted mid-read fails once with ENOTCONN; the re-bound mount reads right in the same container', async (t) => {
      await cluster.client.create(builtin.pods, {
        apiVersion: 'v1',
        kind: 'Pod',
        // A serverful pod: the webhook gives its dataset mounts HostToContainer propagation.
        metadata: { name: 'reader', namespace: NS, labels: { 'fuse.serverful.fluid.io/inject': 'true' } },
        spec: {
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'reader',
              image: 'tide.local/tide-test:dev',
              imagePullPolicy: 'Never',
              command: ['bash', '-c', READER_SCRIPT],
              volumeMounts: [{ name: 'data', mountPath: '/data', readOnly: true }],
            },
          ],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: DATASET, readOnly: true } }],
        },
      });
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
      assert.match(
        logs,
        /^first failed: sha256sum: \/data\/big\/big\.bin: Transport endpoint is not connected$/m,
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

    it('deleting the dataset waits for the pod that uses it, naming it; then nothing of it stays on the node', async () => {
      const tierFiles = async (): Promise<string[]> =>
        (
          await readdir(join(tierDir, 'tide', NS, DATASET), { recursive: true, withFileTypes: true }).catch(
            () => [],
          )
        )
          .filter((entry) => entry.isFile())
          .map((entry) => join(entry.parentPath, entry.name));
      assert.ok((await tierFiles()).length > 0, 'the hostPath tier holds block files of the reads');
      await cluster.client.delete(typeOf('Dataset'), DATASET, { namespace: NS });
      const waiting = await waitFor(
        'an event saying whom the deletion waits for',
        async () => (await datasetEvents()).find((event) => event.reason === 'ErrorDeleteDataset'),
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      assert.match(waiting.message ?? '', /in use by pod default\/reader/);
      const held = await get('Dataset', DATASET);
      assert.ok(held?.metadata.deletionTimestamp !== undefined, 'the dataset waits, deleting');
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
  },
);
