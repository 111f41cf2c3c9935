/**
 * Seed 002 (Fluid on serverless Kubernetes) end to end on a real node, from nothing and back to
 * nothing: the chart without the CSI plugin (serverless nodes run no DaemonSets), the example's
 * Dataset and JindoRuntime, a Job of serverless pods that each load a 256 MiB model through the
 * FUSE sidecar the webhook injects, cold from an origin behind a link of known bandwidth, then warm
 * after a DataLoad; then everything is deleted and nothing of it is left on the API server or the node.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { builtin, type KubeObject } from '../../src/kube/index.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { createThrottledLink, type ThrottledLink } from '../helpers/throttled-link.ts';
import { LOCAL_IMAGE_VALUES, startClusterWithImages } from './on-node-setup.ts';
import { installChart, renderChart } from './chart.ts';
import { k8sSuiteSkipReason, waitFor, type TestCluster } from './cluster.ts';
import { tideObjects, tideType } from './tide-objects.ts';
import { describePod, podLogs, runPodToEnd } from './pods.ts';
import type { RealNode } from './real-node.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const SYSTEM = 'tide-system';
const NS = 'default';
const DATASET = 'models';
const skip = k8sSuiteSkipReason({ realNode: true });

/** Pods per Job: enough to share the origin and the cache, few enough for two cores. */
const PODS = 3;
const MODEL_BYTES = 256 << 20;
/** The origin's bandwidth as a whole (the article's OSS limit, scaled down): 80 Mbit/s, 27 s a model. */
const ORIGIN_BITS_PER_SECOND = 80_000_000;
/** The sidecar's image: the worker image under a name of the runtime's own, so it can only come from there. */
const FUSE_IMAGE = 'tide.local/tide-fuse-seed002';
const FUSE_TAG = 'dev';

type Obj = KubeObject & { metadata: { name: string }; status?: Record<string, unknown> };

/** Each pod prints when its application container started, when the model was read, and its digest. */
const LOAD_SCRIPT = (path: string): string =>
  [
    'set -eo pipefail',
    'echo "start $(date +%s.%N)"',
    `sum=$(sha256sum '${path}' | cut -d' ' -f1)`,
    'echo "end $(date +%s.%N)"',
    'echo "sum $sum"',
  ].join('\n');

interface PodLoad {
  pod: string;
  /** Seconds from the pod's creation to the end of the model read. */
  startSeconds: number;
  /** Seconds of the read itself (sha256sum of the whole file). */
  readSeconds: number;
  sum: string;
}

function parseLoad(pod: string, logs: string, createdMs: number): PodLoad {
  const field = (name: string): string => {
    const value = new RegExp(`^${name} (\\S+)$`, 'm').exec(logs)?.[1];
    assert.ok(value !== undefined, `pod ${pod} printed no "${name}" line: ${logs}`);
    return value;
  };
  const start = Number(field('start'));
  const end = Number(field('end'));
  return { pod, startSeconds: end - createdMs / 1000, readSeconds: end - start, sum: field('sum') };
}

function summary(values: readonly number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median =
    sorted.length % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return { median, min: sorted[0] ?? NaN, max: sorted.at(-1) ?? NaN };
}

function format(values: readonly number[]): string {
  const { median, min, max } = summary(values);
  return `median ${median.toFixed(2)} s, min ${min.toFixed(2)} s, max ${max.toFixed(2)} s`;
}

/** Every path under `dir` (relative), directories included. */
function listTree(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

describe(
  'seed 002: serverless pods load a model through FUSE sidecars, zero to zero',
  { skip, timeout: 600_000 },
  () => {
    let cluster: TestCluster;
    let node: RealNode;
    let link: ThrottledLink;
    let nginx: NginxServer;
    let docs: Obj[];
    const cleanups: (() => Promise<void>)[] = [];
    const digests = new Map<string, string>();
    const runtimeFuse = {
      image: FUSE_IMAGE,
      imageTag: FUSE_TAG,
      imagePullPolicy: 'Never',
      resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '2Gi' } },
    };

    const applyDoc = async (doc: KubeObject): Promise<void> => {
      await cluster.client.apply(tideType(doc.kind ?? ''), doc, { namespace: NS, force: true });
    };
    const jobPods = async (job: string): Promise<KubeObject[]> =>
      (
        await cluster.client.list(builtin.pods, {
          namespace: NS,
          labelSelector: `batch.kubernetes.io/job-name=${job}`,
        })
      ).items;

    /** Runs a Job of PODS serverless pods reading `path`; returns each pod's load and one pod as admitted. */
    const runJob = async (name: string, path: string): Promise<{ loads: PodLoad[]; pod: KubeObject }> => {
      const job: KubeObject = {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name, namespace: NS },
        spec: {
          completions: PODS,
          parallelism: PODS,
          backoffLimit: 0,
          template: {
            metadata: { labels: { 'serverless.fluid.io/inject': 'true' } },
            spec: {
              restartPolicy: 'Never',
              containers: [
                {
                  name: 'serve',
                  image: 'tide.local/tide-test:dev',
                  imagePullPolicy: 'Never',
                  command: ['bash', '-c', LOAD_SCRIPT(`/models/${path}`)],
                  volumeMounts: [{ name: 'models', mountPath: '/models', readOnly: true }],
                },
              ],
              volumes: [{ name: 'models', persistentVolumeClaim: { claimName: DATASET, readOnly: true } }],
            },
          },
        },
      };
      // Each pod's creation as seen by a watch opened before the Job (creationTimestamp has whole seconds).
      const selector = `batch.kubernetes.io/job-name=${name}`;
      const createdMs = new Map<string, number>();
      const stopWatch = new AbortController();
      const listed = await cluster.client.list(builtin.pods, { namespace: NS, labelSelector: selector });
      const watching = (async () => {
        for await (const event of cluster.client.watch(builtin.pods, {
          namespace: NS,
          labelSelector: selector,
          resourceVersion: listed.metadata.resourceVersion,
          signal: stopWatch.signal,
        })) {
          const podName = event.object.metadata?.name ?? '';
          if (event.type === 'ADDED' && !createdMs.has(podName)) createdMs.set(podName, Date.now());
        }
      })().catch(() => undefined);
      await cluster.client.create(builtin.jobs, job);
      let last: KubeObject | undefined;
      await waitFor(
        `Job ${name} to complete`,
        async () => {
          last = await cluster.client.get(builtin.jobs, name, { namespace: NS });
          const conditions = (
            last['status'] as { conditions?: { type: string; status: string }[] } | undefined
          )?.conditions;
          if (conditions?.some((c) => c.type === 'Failed' && c.status === 'True')) return 'failed';
          return conditions?.some((c) => c.type === 'Complete' && c.status === 'True')
            ? 'complete'
            : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 250 },
      )
        .then((outcome) => {
          assert.equal(outcome, 'complete');
        })
        .catch(async (error: unknown) => {
          const pods = await jobPods(name);
          throw new Error(
            `${(error as Error).message}; job status ${JSON.stringify(last?.['status'])}; pods: ${pods
              .map((p) => `${p.metadata?.name ?? ''}: ${describePod(p)}`)
              .join(' | ')}`,
            { cause: error },
          );
        });
      const pods = await jobPods(name);
      assert.equal(pods.length, PODS, `the Job ran ${PODS} pods, one each, none retried`);
      stopWatch.abort();
      await watching;
      const loads: PodLoad[] = [];
      for (const pod of pods) {
        const podName = pod.metadata?.name ?? '';
        const seenMs = createdMs.get(podName);
        assert.ok(seenMs !== undefined, `the watch saw pod ${podName} created`);
        const stampMs = Date.parse(pod.metadata?.creationTimestamp ?? '');
        assert.ok(seenMs - stampMs < 2_000, `the watch saw pod ${podName} within its creation second`);
        loads.push(parseLoad(podName, await podLogs(cluster, NS, podName, 'serve'), seenMs));
      }
      const [first] = pods;
      assert.ok(first !== undefined);
      return { loads, pod: first };
    };

    before(async () => {
      // The sidecar's image is the runtime's own: the worker image under a name only the runtime uses.
      ({ cluster } = await startClusterWithImages(1, (images) => [
        { ref: `${FUSE_IMAGE}:${FUSE_TAG}`, archive: images.images.worker.archive },
      ]));
      cleanups.push(() => cluster.stop());
      const [realNode] = cluster.realNodes;
      assert.ok(realNode !== undefined);
      node = realNode;
      const root = await mkdtemp(join(tmpdir(), 'tide-seed002-'));
      cleanups.push(() => rm(root, { recursive: true, force: true }));
      // Two model versions: the cold Job loads one nothing has cached, the warm Job the one the DataLoad loaded.
      for (const version of ['v1', 'v2']) {
        const bytes = randomBytes(MODEL_BYTES);
        await mkdir(join(root, 'models', version), { recursive: true });
        await writeFile(join(root, 'models', version, 'model.bin'), bytes);
        digests.set(version, createHash('sha256').update(bytes).digest('hex'));
      }
      link = await createThrottledLink({ rateBitsPerSecond: ORIGIN_BITS_PER_SECOND });
      cleanups.push(() => link.close());
      // Pods answer from the bridge's subnet: the namespace routes back through this host.
      const [command, ...args] = link.wrap(['ip', 'route', 'add', 'default', 'via', link.localAddress]);
      await run(command ?? '', args);
      nginx = await startNginx({ root, link });
      cleanups.push(() => nginx.stop());
      const objects = await renderChart(SYSTEM, [
        ...LOCAL_IMAGE_VALUES,
        'controller.replicas=1',
        'controller.resyncSeconds=5',
        `runtime.mountRoot=${join(node.hostDataDir, 'runtime-mnt')}`,
        'csi.enabled=false',
      ]);
      assert.ok(!objects.some((o) => o.kind === 'DaemonSet'), 'a serverless install has no DaemonSet');
      await installChart(cluster.client, SYSTEM, objects);
      const text = (await readFile(join(ROOT, 'examples', 'seed-002-serverless-jindo.yaml'), 'utf8')).replace(
        'http://127.0.0.1:18080/',
        nginx.url,
      );
      docs = parseAllDocuments(text).map((d) => d.toJSON() as Obj);
    });

    after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    });

    it('reaches the origin behind the throttled link from a pod', async () => {
      const url = new URL(nginx.url);
      const probe = await runPodToEnd(
        cluster,
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'origin-probe', namespace: NS },
          spec: {
            restartPolicy: 'Never',
            containers: [
              {
                name: 'probe',
                image: 'tide.local/tide-test:dev',
                imagePullPolicy: 'Never',
                command: ['bash', '-c', `exec 3<>/dev/tcp/${url.hostname}/${url.port} && echo reachable`],
              },
            ],
          },
        },
        60_000,
      );
      await cluster.client.delete(builtin.pods, 'origin-probe', { namespace: NS });
      assert.equal(probe.phase, 'Succeeded', `${describePod(probe.pod)}\n${probe.logs}`);
    });

    it('starts the pods cold from the origin and warm after a DataLoad, the sidecar being the runtime’s', async (t) => {
      const runtime = docs.find((d) => d.kind === 'JindoRuntime');
      assert.ok(runtime !== undefined);
      (runtime['spec'] as { fuse: unknown }).fuse = runtimeFuse;
      for (const doc of docs.filter((d) => d.kind !== 'DataLoad')) await applyDoc(doc);
      await tideObjects(cluster.client, NS).waitForPhase('Dataset', DATASET, 'Bound', 180_000);

      const cold = await runJob('model-cold', 'v1/model.bin');
      const coldOriginBytes = await nginx.accessLogBytes();
      const spec = cold.pod['spec'] as {
        initContainers?: { name: string; image?: string; resources?: unknown; restartPolicy?: string }[];
        volumes: { persistentVolumeClaim?: unknown }[];
      };
      const sidecar = spec.initContainers?.find((c) => c.name.startsWith('fluid-fuse'));
      assert.equal(sidecar?.restartPolicy, 'Always', 'a native sidecar');
      assert.equal(sidecar.image, `${FUSE_IMAGE}:${FUSE_TAG}`, "the sidecar's image is the runtime's");
      assert.deepEqual(sidecar.resources, runtimeFuse.resources, "the sidecar's resources are the runtime's");
      assert.ok(!spec.volumes.some((v) => v.persistentVolumeClaim !== undefined), 'no PVC volume is left');

      const load = docs.find((d) => d.kind === 'DataLoad');
      assert.ok(load !== undefined);
      const loadStartMs = Date.now();
      await applyDoc(load);
      await tideObjects(cluster.client, NS).waitForPhase('DataLoad', load.metadata.name, 'Complete', 180_000);
      const loadSeconds = (Date.now() - loadStartMs) / 1000;
      const loadedOriginBytes = await nginx.accessLogBytes();
      const warm = await runJob('model-warm', 'v2/model.bin');
      const warmOriginBytes = (await nginx.accessLogBytes()) - loadedOriginBytes;

      for (const entry of cold.loads)
        assert.equal(entry.sum, digests.get('v1'), `${entry.pod} read the model intact`);
      for (const entry of warm.loads)
        assert.equal(entry.sum, digests.get('v2'), `${entry.pod} read the model intact`);
      const coldStart = cold.loads.map((l) => l.startSeconds);
      const warmStart = warm.loads.map((l) => l.startSeconds);
      const linkSeconds = (MODEL_BYTES * 8) / ORIGIN_BITS_PER_SECOND;
      t.diagnostic(
        `${PODS} pods, ${MODEL_BYTES >> 20} MiB model, origin ${ORIGIN_BITS_PER_SECOND / 1e6} Mbit/s (${linkSeconds.toFixed(1)} s per model)`,
      );
      t.diagnostic(`cold start (pod creation to model read): ${format(coldStart)}`);
      t.diagnostic(`cold read alone: ${format(cold.loads.map((l) => l.readSeconds))}`);
      t.diagnostic(`DataLoad: ${loadSeconds.toFixed(2)} s`);
      t.diagnostic(`warm start (pod creation to model read): ${format(warmStart)}`);
      t.diagnostic(`warm read alone: ${format(warm.loads.map((l) => l.readSeconds))}`);
      const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
      t.diagnostic(
        `origin bytes: cold Job ${mib(coldOriginBytes)}, DataLoad ${mib(loadedOriginBytes - coldOriginBytes)}, warm Job ${mib(warmOriginBytes)}`,
      );
      // The cold pods shared one pass over the link (the worker fetches each block once for all readers)…
      assert.ok(
        coldOriginBytes < 1.05 * MODEL_BYTES,
        `one pass over the origin, not one per pod: ${mib(coldOriginBytes)}`,
      );
      // …the DataLoad fetched the model the warm pods read, and they read nothing from the origin.
      assert.ok(loadedOriginBytes - coldOriginBytes >= MODEL_BYTES, 'the DataLoad loaded the second model');
      assert.ok(
        warmOriginBytes < 1 << 20,
        `the warm Job read from the cache, not the origin: ${mib(warmOriginBytes)}`,
      );
      // Each cold pod waited at least for the one pass.
      assert.ok(
        summary(coldStart).min >= 0.9 * linkSeconds,
        `cold starts waited for the origin (${format(coldStart)})`,
      );
      // Medians: on two shared cores one warm pod can lag, but the warm Job as a whole must not.
      assert.ok(
        summary(warmStart).median < summary(coldStart).median,
        `warm starts (${format(warmStart)}) beat cold ones (${format(coldStart)})`,
      );
    });

    it('deletes everything and leaves no pod, claim, volume, node label, Secret or tier file of it', async () => {
      const leftovers = async (): Promise<string[]> => {
        const left: string[] = [];
        const names = (objects: { items: KubeObject[] }, kind: string): void => {
          for (const o of objects.items) left.push(`${kind} ${o.metadata?.name ?? ''}`);
        };
        for (const kind of ['Dataset', 'JindoRuntime', 'DataLoad'])
          names(await cluster.client.list(tideType(kind), { namespace: NS }), kind);
        names(await cluster.client.list(builtin.pods, { namespace: NS }), 'Pod');
        names(await cluster.client.list(builtin.jobs, { namespace: NS }), 'Job');
        names(await cluster.client.list(builtin.persistentVolumeClaims, { namespace: NS }), 'PVC');
        names(await cluster.client.list(builtin.persistentVolumes, {}), 'PV');
        names(await cluster.client.list(builtin.secrets, { namespace: NS }), 'Secret');
        names(await cluster.client.list(builtin.statefulSets, { namespace: NS }), 'StatefulSet');
        names(await cluster.client.list(builtin.daemonSets, { namespace: NS }), 'DaemonSet');
        for (const n of (await cluster.client.list(builtin.nodes, {})).items)
          for (const label of Object.keys(n.metadata?.labels ?? {}))
            if (label.startsWith('fluid.io/')) left.push(`node label ${label} on ${n.metadata?.name ?? ''}`);
        // The node: nothing of the dataset under its data dir, no pod directory or tmpfs tier of its pods.
        for (const path of listTree(node.hostDataDir))
          if (path.includes(DATASET)) left.push(`host file ${path}`);
        const operatorPods = new Set(
          (await cluster.client.list(builtin.pods, { namespace: SYSTEM })).items.map(
            (p) => p.metadata?.uid ?? '',
          ),
        );
        for (const uid of readdirSync(join(node.kubeletDir, 'pods')))
          if (!operatorPods.has(uid)) left.push(`kubelet pod dir ${uid}`);
        const mounts = await readFile('/proc/self/mountinfo', 'utf8');
        for (const line of mounts.split('\n'))
          if (
            line.includes(join(node.kubeletDir, 'pods')) &&
            ![...operatorPods].some((uid) => line.includes(uid))
          )
            left.push(`mount ${line.split(' ')[4] ?? ''}`);
        return left;
      };
      // The check sees what is there: before the deletion it finds the dataset's objects on both sides.
      const present = await leftovers();
      for (const expected of [
        /^PVC models$/,
        /^PV default-models$/,
        /^Secret /,
        /^StatefulSet /,
        /^node label fluid\.io\/s-default-models /,
        /^kubelet pod dir /,
        /^mount /,
      ])
        assert.ok(
          present.some((entry) => expected.test(entry)),
          `before the deletion, ${String(expected)} in ${present.join(', ')}`,
        );
      for (const job of ['model-cold', 'model-warm'])
        await cluster.client
          .delete(builtin.jobs, job, { namespace: NS, propagationPolicy: 'Background' })
          .catch(() => undefined);
      await waitFor(
        'the Jobs’ pods to be gone',
        async () => {
          const { items } = await cluster.client.list(builtin.pods, {
            namespace: NS,
            labelSelector: 'batch.kubernetes.io/job-name in (model-cold,model-warm)',
          });
          return items.length === 0 ? true : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 500 },
      );
      for (const doc of [...docs].reverse())
        await cluster.client
          .delete(tideType(doc.kind ?? ''), doc.metadata.name, { namespace: NS })
          .catch(() => undefined);
      let left: string[] = [];
      await waitFor(
        'nothing of the dataset to be left',
        async () => {
          left = await leftovers();
          return left.length === 0 ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; left: ${left.join(', ')}`, { cause: error });
      });
    });
  },
);
