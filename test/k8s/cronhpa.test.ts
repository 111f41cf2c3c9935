/**
 * CronHorizontalPodAutoscaler on a real control plane (kwok nodes): the operator, as the chart's
 * ServiceAccount, keeps a CronHPA CRD it finds (kubernetes-cronhpa-controller's shape, without a
 * status subresource), scales a runtime's StatefulSet from a `*∕5 * * * * *` job, moves an HPA's
 * min/max, and fails an object written around `tide apply` with a condition naming the field.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { builtin, KubeClient, resourceType, type KubeObject } from '../../src/kube/index.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { ensureK8sBinaries, k8sSuiteSkipReason, startCluster, waitFor, type TestCluster } from './cluster.ts';
import { chartOperatorKubeconfig } from './chart-account.ts';
import { datasetType, tideRuntimeType } from './fixtures.ts';
import { helmSkipReason } from './helm.ts';
import { keepNodeLeases } from './node-leases.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const NS = 'default';
const RELEASE_NS = 'tide-system';
const CRD_NAME = 'cronhorizontalpodautoscalers.autoscaling.alibabacloud.com';
const cronHpaType = resourceType(
  'autoscaling.alibabacloud.com/v1beta1',
  'CronHorizontalPodAutoscaler',
  'cronhorizontalpodautoscalers',
  { namespaced: true },
);
const hpaType = resourceType('autoscaling/v2', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers', {
  namespaced: true,
});
const skip = k8sSuiteSkipReason() || helmSkipReason();
const RUNTIME_REF = { apiVersion: 'data.fluid.io/v1alpha1', kind: 'TideRuntime', name: 'clocked' };

interface Condition {
  name: string;
  state: string;
  message: string;
}
type CronHpa = KubeObject & { status?: { conditions?: Condition[] } };

/** The CRD as kubernetes-cronhpa-controller installs it: its field names, no status subresource. */
const ORIGINAL_CRD: KubeObject = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: CRD_NAME, annotations: { 'test.tide.io/installed-by': 'kubernetes-cronhpa-controller' } },
  spec: {
    group: 'autoscaling.alibabacloud.com',
    scope: 'Namespaced',
    names: {
      kind: 'CronHorizontalPodAutoscaler',
      listKind: 'CronHorizontalPodAutoscalerList',
      plural: 'cronhorizontalpodautoscalers',
      singular: 'cronhorizontalpodautoscaler',
      shortNames: ['cronhpa'],
    },
    versions: [
      {
        name: 'v1beta1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          },
        },
      },
    ],
  },
};

describe('CronHPA on a real control plane', { timeout: 600_000 }, () => {
  if (skip !== false) {
    it('runs against real binaries and Helm', { skip }, () => undefined);
    return;
  }
  let cluster: TestCluster | undefined;
  let kube: KubeClient;
  let dir = '';
  let nginx: NginxServer | undefined;
  let operator: ChildProcess | undefined;
  let operatorExited: Promise<unknown> = Promise.resolve();
  const leases = new AbortController();
  let leasesKept: Promise<void> = Promise.resolve();

  let kubeconfig = '';
  let started = 0;

  /** The operator as a child process, with --install-crds; resolves once it reconciles. */
  const startOperator = async (): Promise<void> => {
    started += 1;
    const logPath = join(dir, 'operator.log');
    const fd = openSync(logPath, 'a');
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'src', 'operator', 'main.ts'),
        '--kubeconfig',
        kubeconfig,
        '--no-leader-elect',
        '--install-crds',
      ],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    operator = child;
    operatorExited = new Promise((resolve) => child.once('exit', resolve));
    await waitFor(
      'the operator to start its reconcilers',
      async () =>
        (await readFile(logPath, 'utf8')).split('reconcilers started').length > started ? true : undefined,
      { timeoutMs: 90_000 },
    );
  };

  const stopOperator = async (): Promise<void> => {
    operator?.kill('SIGTERM');
    await Promise.race([operatorExited, sleep(15_000).then(() => operator?.kill('SIGKILL'))]);
  };

  const replicasOf = async (statefulSet: string): Promise<number | undefined> => {
    const sts = await kube.get(builtin.statefulSets, statefulSet, { namespace: NS }).catch(() => undefined);
    return (sts?.['spec'] as { replicas?: number } | undefined)?.replicas;
  };

  /** Creates a CronHPA straight on the API server (no `tide apply` in between). */
  const createCronHpa = (
    name: string,
    target: { apiVersion: string; kind: string; name: string },
    jobs: { name: string; schedule: string; targetSize: number; runOnce?: boolean }[],
    annotations: Record<string, string> = {},
  ): Promise<KubeObject> =>
    kube.create(
      cronHpaType,
      {
        apiVersion: 'autoscaling.alibabacloud.com/v1beta1',
        kind: 'CronHorizontalPodAutoscaler',
        metadata: { name, annotations },
        spec: { scaleTargetRef: target, jobs },
      },
      { namespace: NS },
    );

  /** The first condition of a CronHPA once it is Succeed (its status follows the scale). */
  const succeeded = (name: string): Promise<Condition> =>
    waitFor(
      `CronHPA ${name} Succeed`,
      async () => (await conditionsOf(name)).find((condition) => condition.state === 'Succeed'),
      { timeoutMs: 30_000, intervalMs: 250 },
    );

  const conditionsOf = async (name: string): Promise<Condition[]> =>
    (await kube.get<CronHpa>(cronHpaType, name, { namespace: NS })).status?.conditions ?? [];

  before(
    async () => {
      const binDir = await ensureK8sBinaries();
      dir = await mkdtemp(join(tmpdir(), 'tide-cronhpa-k8s-'));
      cluster = await startCluster({ components: 'full', binDir });
      kube = await KubeClient.fromKubeConfig(cluster.kubeconfigPath);
      leasesKept = keepNodeLeases(kube, leases.signal);
      await mkdir(join(dir, 'origin', 'data'), { recursive: true });
      await writeFile(join(dir, 'origin', 'data', 'a.bin'), Buffer.alloc(1000, 1));
      nginx = await startNginx({ root: join(dir, 'origin') });
      await kube.create(builtin.customResourceDefinitions, ORIGINAL_CRD);
      kubeconfig = await chartOperatorKubeconfig({
        cluster,
        kube,
        namespace: RELEASE_NS,
        dir,
        values: ['controller.installCrds=true'],
      });
      await startOperator();
    },
    { timeout: 60 * 60_000 },
  );

  afterEach(async (t) => {
    // `passed` is there at run time (Node 24) but not in @types/node's TestContext.
    if ((t as { passed?: boolean }).passed !== false) return;
    const lines = (await readFile(join(dir, 'operator.log'), 'utf8').catch(() => '')).split('\n');
    process.stderr.write(
      `--- operator log:\n${lines
        .slice(-30)
        .map((line) => line.slice(0, 600))
        .join('\n')}\n`,
    );
  });

  after(async () => {
    await stopOperator();
    leases.abort();
    await leasesKept.catch(() => undefined);
    await nginx?.stop();
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the CronHPA CRD it finds (installed only where absent)', async () => {
    const crd = await kube.get(builtin.customResourceDefinitions, CRD_NAME);
    const annotations = crd.metadata?.annotations ?? {};
    assert.equal(annotations['test.tide.io/installed-by'], 'kubernetes-cronhpa-controller');
    const [version] = (crd['spec'] as { versions: { subresources?: unknown }[] }).versions;
    assert.equal(version?.subresources, undefined, 'the original has no status subresource, and keeps none');
  });

  it("scales the runtime's StatefulSet from a */5 seconds job", async () => {
    await kube.create(
      datasetType,
      {
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'Dataset',
        metadata: { name: 'clocked' },
        spec: {
          mounts: [
            { mountPoint: `http://${new URL(nginx?.url ?? 'http://127.0.0.1').host}/data/`, name: 'data' },
          ],
        },
      },
      { namespace: NS },
    );
    await kube.create(
      tideRuntimeType,
      {
        apiVersion: 'data.fluid.io/v1alpha1',
        kind: 'TideRuntime',
        metadata: { name: 'clocked' },
        spec: {
          replicas: 1,
          tieredstore: { levels: [{ mediumtype: 'MEM', path: '/dev/shm', quota: '64Mi' }] },
        },
      },
      { namespace: NS },
    );
    await createCronHpa('clock', RUNTIME_REF, [{ name: 'up', schedule: '*/5 * * * * *', targetSize: 3 }], {
      'tide.io/time-zone': 'UTC',
    });
    await waitFor(
      'StatefulSet clocked-worker at 3 replicas',
      async () => {
        const sts = await kube
          .get(builtin.statefulSets, 'clocked-worker', { namespace: NS })
          .catch(() => undefined);
        return (sts?.['spec'] as { replicas?: number } | undefined)?.replicas === 3 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const condition = await succeeded('clock');
    assert.match(
      condition.message,
      /^cron hpa job up executed successfully\. current replicas:1, desired replicas:3\./,
    );
    const events = await kube.list(builtin.events, { namespace: NS });
    assert.ok(
      events.items.some(
        (event) =>
          event['reason'] === 'Succeed' &&
          (event['involvedObject'] as { kind?: string }).kind === 'CronHorizontalPodAutoscaler',
      ),
      'a Succeed event on the CronHPA',
    );
    await kube.delete(cronHpaType, 'clock', { namespace: NS });
  });

  it("moves an HPA's min and max", async () => {
    await kube.create(
      hpaType,
      {
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: { name: 'clocked' },
        spec: {
          scaleTargetRef: RUNTIME_REF,
          minReplicas: 1,
          maxReplicas: 2,
          metrics: [
            {
              type: 'Resource',
              resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } },
            },
          ],
        },
      },
      { namespace: NS },
    );
    await createCronHpa(
      'clock-hpa',
      { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: 'clocked' },
      [{ name: 'peak', schedule: '*/5 * * * * *', targetSize: 4, runOnce: true }],
    );
    const spec = await waitFor(
      'the HPA moved to min 4, max 4',
      async () => {
        const hpa = await kube.get(hpaType, 'clocked', { namespace: NS });
        const got = hpa['spec'] as { minReplicas: number; maxReplicas: number };
        return got.minReplicas === 4 && got.maxReplicas === 4 ? got : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    assert.equal(spec.maxReplicas, 4);
    assert.match((await succeeded('clock-hpa')).message, /^cron hpa job peak executed successfully/);
  });

  it('fails an object written around tide apply with a condition naming the field', async () => {
    await createCronHpa('broken', RUNTIME_REF, [
      { name: 'five-fields', schedule: '0 8 * * *', targetSize: 1 },
    ]);
    const condition = await waitFor(
      'the broken job Failed',
      async () => (await conditionsOf('broken')).find((c) => c.state === 'Failed'),
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    assert.match(condition.message, /\/spec\/jobs\/0\/schedule: "0 8 \* \* \*" needs 6 fields/);
  });

  it('installs its own CRD where none is, and writes status through /status', async () => {
    await stopOperator();
    await kube.delete(builtin.customResourceDefinitions, CRD_NAME);
    await waitFor(
      'the original CRD gone',
      async () =>
        (await kube.get(builtin.customResourceDefinitions, CRD_NAME).catch(() => undefined)) === undefined
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    await kube.delete(hpaType, 'clocked', { namespace: NS });
    await startOperator();
    const crd = await kube.get(builtin.customResourceDefinitions, CRD_NAME);
    const [version] = (crd['spec'] as { versions: { subresources?: { status?: unknown } }[] }).versions;
    assert.deepEqual(version?.subresources?.status, {}, "Tide's CRD, with a status subresource");
    await createCronHpa('clock-own', RUNTIME_REF, [{ name: 'down', schedule: '@every 3s', targetSize: 2 }]);
    await waitFor(
      'StatefulSet clocked-worker at 2 replicas',
      async () => ((await replicasOf('clocked-worker')) === 2 ? true : undefined),
      {
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    );
    assert.equal((await succeeded('clock-own')).name, 'down');
  });
});
