/**
 * The operator on a real control plane (etcd, kube-apiserver, kube-controller-manager, scheduler and
 * kwok nodes, from hack/k8s-bins/build.sh): `src/operator/main.ts` runs as a child process with the
 * cluster's kubeconfig, exactly as in a pod but with a kubeconfig instead of a service account. The
 * seed examples of examples/ are applied with their origins pointed at a local nginx and S3 server.
 *
 * kwok turns pods Running and Ready without running containers, and Job pods Succeeded, so no worker
 * serves here: the operator's view of workloads, volumes, labels, scaling, deletion, DataLoad Jobs
 * and leadership is what is tested; the data path is tested by the cache, fuse and e2e suites.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, afterEach, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { KINDS } from '../../src/api/index.ts';
import {
  builtin,
  KubeClient,
  resourceType,
  type KubeObject,
  type ResourceType,
} from '../../src/kube/index.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { startS3Server, versitygwPath, type S3Server } from '../helpers/s3-server.ts';
import { ensureK8sBinaries, k8sSuiteSkipReason, startCluster, waitFor, type TestCluster } from './cluster.ts';
import { chartOperatorKubeconfig } from './chart-account.ts';
import { helmSkipReason } from './helm.ts';
import { keepNodeLeases } from './node-leases.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const NS = 'default';
/** The chart's release namespace: the operator runs there with the chart's RBAC. */
const RELEASE_NS = 'tide-system';
const KUBECTL = '/usr/bin/kubectl';
const skip = k8sSuiteSkipReason();

const TYPES = new Map<string, ResourceType>([
  ...KINDS.filter((info) => info.apiVersion !== 'v1').map((info): [string, ResourceType] => [
    info.kind,
    resourceType(info.apiVersion, info.kind, info.plural, { namespaced: true }),
  ]),
  ['Secret', builtin.secrets],
]);

function typeOf(kind: string): ResourceType {
  const type = TYPES.get(kind);
  assert.ok(type !== undefined, `no type for ${kind}`);
  return type;
}

type Obj = KubeObject & {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
};

interface Operator {
  identity: string;
  child: ChildProcess;
  logPath: string;
  exited: Promise<number | null>;
  log(): Promise<string>;
}

describe('the operator on a real control plane', { timeout: 600_000 }, () => {
  if (skip !== false) {
    it('runs against real binaries', { skip }, () => undefined);
    return;
  }
  let cluster: TestCluster | undefined;
  let kube: KubeClient;
  let dir: string;
  let nginx: NginxServer | undefined;
  let s3: S3Server | undefined;
  const operators: Operator[] = [];
  /** The operator's kubeconfig: the chart's ServiceAccount when Helm is there, else the admin's. */
  let operatorKubeconfig = '';
  let leaseNamespace = NS;
  const leases = new AbortController();
  let leasesKept: Promise<void> = Promise.resolve();

  const startOperator = (identity: string, extra: string[] = []): Operator => {
    const logPath = join(dir, `operator-${identity}.log`);
    const fd = openSync(logPath, 'a');
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'src', 'operator', 'main.ts'),
        '--kubeconfig',
        operatorKubeconfig,
        '--identity',
        identity,
        '--leader-election-namespace',
        leaseNamespace,
        // A short lease so that handovers fit in a test (client-go's defaults are 15/10/2 s), with
        // room for a slow API server on a busy CI machine.
        '--lease-duration',
        '8',
        '--renew-deadline',
        '6',
        '--retry-period',
        '0.5',
        '--resync-seconds',
        '5',
        '--stats-timeout-ms',
        '200',
        '--log-level',
        'debug',
        ...extra,
      ],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => {
        resolve(code);
      });
    });
    const operator: Operator = { identity, child, logPath, exited, log: () => readFile(logPath, 'utf8') };
    operators.push(operator);
    return operator;
  };

  const stopOperator = async (
    operator: Operator,
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<number | null> => {
    if (operator.child.exitCode === null && operator.child.signalCode === null) operator.child.kill(signal);
    return Promise.race([
      operator.exited,
      sleep(15_000).then(() => {
        operator.child.kill('SIGKILL');
        return operator.exited;
      }),
    ]);
  };

  const get = async (kind: string, name: string): Promise<Obj | undefined> => {
    try {
      return await kube.get<Obj>(typeOf(kind), name, { namespace: NS });
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_KUBE_NOT_FOUND') return undefined;
      throw error;
    }
  };

  const getBuiltin = async (
    type: ResourceType,
    name: string,
    namespace?: string,
  ): Promise<Obj | undefined> => {
    try {
      return await kube.get<Obj>(type, name, { namespace });
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_KUBE_NOT_FOUND') return undefined;
      throw error;
    }
  };

  const phaseIs = (kind: string, name: string, phase: string, timeoutMs = 60_000): Promise<Obj> =>
    waitFor(
      `${kind} ${name} to be ${phase}`,
      async () => {
        const object = await get(kind, name);
        return object?.status?.['phase'] === phase ? object : undefined;
      },
      { timeoutMs, intervalMs: 250 },
    );

  const leaseHolder = async (): Promise<string | undefined> => {
    const lease = await getBuiltin(builtin.leases, 'tide-controller', leaseNamespace);
    return (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
  };

  const kubectl = async (...args: string[]): Promise<string> => {
    const { stdout } = await run(KUBECTL, ['--kubeconfig', cluster?.kubeconfigPath ?? '', ...args], {
      timeout: 30_000,
    });
    return stdout;
  };

  /** The documents of an example, with its origins pointed at this run's servers. */
  const example = async (file: string): Promise<Obj[]> => {
    let text = await readFile(join(ROOT, 'examples', file), 'utf8');
    if (nginx !== undefined) text = text.replaceAll('127.0.0.1:18080', new URL(nginx.url).host);
    if (s3 !== undefined) text = text.replaceAll('http://127.0.0.1:18333', s3.endpoint);
    return parseAllDocuments(text).map((document) => document.toJSON() as Obj);
  };

  const create = async (object: Obj): Promise<void> => {
    await kube.create(typeOf(object.kind ?? ''), {
      ...object,
      metadata: { ...object.metadata, namespace: NS },
    });
  };

  const nodeLabels = async (): Promise<Map<string, Record<string, string>>> => {
    const nodes = await kube.list(builtin.nodes);
    return new Map(nodes.items.map((node) => [node.metadata?.name ?? '', node.metadata?.labels ?? {}]));
  };

  before(
    async () => {
      const binDir = await ensureK8sBinaries();
      dir = await mkdtemp(join(tmpdir(), 'tide-operator-test-'));
      cluster = await startCluster({ components: 'full', binDir });
      process.stderr.write(`operator test: cluster ready in ${cluster.startupMs} ms (${cluster.dir})\n`);
      kube = await KubeClient.fromKubeConfig(cluster.kubeconfigPath);
      leasesKept = keepNodeLeases(kube, leases.signal);
      const origin = join(dir, 'origin');
      for (const [sub, files] of [
        ['data', 3],
        ['spark', 2],
        ['apache/hbase/stable', 4],
      ] as const) {
        await mkdir(join(origin, sub), { recursive: true });
        for (let index = 0; index < files; index += 1)
          await writeFile(join(origin, sub, `file-${index}.bin`), Buffer.alloc(1000 + index, index));
      }
      operatorKubeconfig = cluster.kubeconfigPath;
      if (helmSkipReason() === false) {
        operatorKubeconfig = await chartOperatorKubeconfig({
          cluster,
          kube,
          namespace: RELEASE_NS,
          dir,
          values: ['controller.installCrds=true'],
        });
        leaseNamespace = RELEASE_NS;
      } else {
        process.stderr.write(
          `operator test: ${String(helmSkipReason())}; the operator runs as cluster admin\n`,
        );
      }
      nginx = await startNginx({ root: origin });
      try {
        await readFile(versitygwPath());
        s3 = await startS3Server({ buckets: ['tide-demo'] });
        await s3.putObject('tide-demo', 'hbase/RELEASENOTES.md', 'release 1\n');
      } catch {
        s3 = undefined;
      }
    },
    { timeout: 60 * 60_000 },
  );

  afterEach(async (t) => {
    // `passed` is there at run time (Node 24) but not in @types/node's TestContext.
    if ((t as { passed?: boolean }).passed !== false) return;
    // What the operators said, to see why; the whole logs are kept (the temporary directory goes).
    const kept = join(tmpdir(), 'tide-operator-test-logs');
    await mkdir(kept, { recursive: true });
    process.stderr.write(`operator logs kept in ${kept}\n`);
    for (const operator of operators) {
      await writeFile(join(kept, `${operator.identity}.log`), await operator.log().catch(() => ''));
      const lines = (await operator.log().catch(() => ''))
        .split('\n')
        .filter((line) => line !== '' && !line.includes('"level":20'))
        .slice(-25);
      process.stderr.write(
        `--- operator ${operator.identity}:\n${lines.map((line) => line.slice(0, 400)).join('\n')}\n`,
      );
    }
  });

  after(async () => {
    for (const operator of operators) await stopOperator(operator, 'SIGKILL');
    leases.abort();
    await leasesKept;
    (kube as KubeClient | undefined)?.close();
    await cluster?.stop();
    await nginx?.stop();
    await s3?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('installs the CRDs at start and takes the Lease', async () => {
    const operator = startOperator('replica-a', ['--install-crds']);
    await waitFor(
      'replica-a to hold the Lease',
      async () => ((await leaseHolder()) === 'replica-a' ? true : undefined),
      {
        timeoutMs: 30_000,
      },
    );
    const crds = await kube.list(builtin.customResourceDefinitions);
    const names = crds.items.map((crd) => crd.metadata?.name).sort();
    assert.deepEqual(names, [
      'alluxioruntimes.data.fluid.io',
      'cronhorizontalpodautoscalers.autoscaling.alibabacloud.com',
      'dataloads.data.fluid.io',
      'datasets.data.fluid.io',
      'goosefsruntimes.data.fluid.io',
      'jindoruntimes.data.fluid.io',
      'tideruntimes.data.fluid.io',
    ]);
    const managers = (crds.items[0]?.metadata?.managedFields ?? []).map((entry) => entry.manager);
    assert.ok(managers.includes('tide'), `field managers: ${managers.join(', ')}`);
    assert.match(await operator.log(), /reconcilers started/);
  });

  it('turns the seed examples into StatefulSets, headless Services, FUSE DaemonSets, PVs and PVCs and binds the datasets', async () => {
    const documents = [
      ...(await example('quickstart.yaml')),
      ...(await example('seed-000-autoscaling.yaml')),
      ...(await example('seed-003-hbase-goosefs.yaml')),
      ...(s3 === undefined ? [] : await example('seed-004-cron-oss.yaml')),
    ];
    // Secrets first, so the OSS dataset finds its credentials on the first reconcile.
    for (const object of documents.filter((document) => document.kind === 'Secret')) await create(object);
    for (const object of documents.filter((document) => document.kind !== 'Secret')) await create(object);

    const expected: [string, string, number][] = [
      ['quickstart', 'TideRuntime', 2],
      ['spark', 'AlluxioRuntime', 1],
      ['hbase', 'GooseFSRuntime', 3],
      ...(s3 === undefined ? [] : [['demo', 'JindoRuntime', 1] as [string, string, number]]),
    ];
    for (const [name, kind, workers] of expected) {
      const dataset = await phaseIs('Dataset', name, 'Bound', 90_000);
      assert.equal(
        (dataset.status?.['runtimes'] as { type: string }[])[0]?.type,
        kind.replace('Runtime', '').toLowerCase(),
      );
      const runtime = await waitFor(
        `${kind} ${name} to report ${workers} ready workers`,
        async () => {
          const object = await get(kind, name);
          return object?.status?.['workerNumberReady'] === workers ? object : undefined;
        },
        { timeoutMs: 30_000 },
      );
      const status = runtime.status ?? {};
      assert.equal(status['workerPhase'], 'Ready');
      // No node is labelled for FUSE yet: the DaemonSet wants no pod (Fluid's lazy FUSE).
      assert.equal(status['desiredFuseNumberScheduled'], 0);
      assert.equal(status['fusePhase'], 'Ready');
      assert.equal(status['selector'], `app=tide,role=tide-worker,release=${name}`);

      const sts = await getBuiltin(builtin.statefulSets, `${name}-worker`, NS);
      assert.ok(sts !== undefined, `StatefulSet ${name}-worker`);
      const stsSpec = sts.spec as {
        replicas: number;
        serviceName: string;
        template: {
          spec: {
            affinity: {
              podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { topologyKey: string }[] };
            };
            containers: { image: string; command: string[] }[];
            volumes: Record<string, unknown>[];
          };
        };
      };
      assert.equal(stsSpec.replicas, workers);
      assert.equal(stsSpec.serviceName, `${name}-worker`);
      assert.equal(sts.metadata.labels?.['fluid.io/dataset-id'], `default-${name}`);
      assert.deepEqual(stsSpec.template.spec.containers[0]?.command, [
        'node',
        'src/cache/worker-main.ts',
        '--config',
        '/etc/tide/worker.json',
      ]);
      assert.equal(
        stsSpec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]
          ?.topologyKey,
        'kubernetes.io/hostname',
      );
      // Every seed runtime has a MEM tier: a memory-backed emptyDir sized by its quota.
      const tier = stsSpec.template.spec.volumes.find((volume) => volume['name'] === 'tier-0-0');
      assert.equal((tier?.['emptyDir'] as { medium?: string } | undefined)?.medium, 'Memory');

      const service = await getBuiltin(builtin.services, `${name}-worker`, NS);
      assert.equal((service?.spec as { clusterIP?: string }).clusterIP, 'None');
      const ds = await getBuiltin(builtin.daemonSets, `${name}-fuse`, NS);
      assert.deepEqual(
        (ds?.spec as { template: { spec: { nodeSelector: Record<string, string> } } }).template.spec
          .nodeSelector,
        { [`fluid.io/f-default-${name}`]: 'true' },
      );
      const pv = await getBuiltin(builtin.persistentVolumes, `default-${name}`);
      const csi = (pv?.spec as { csi: { driver: string; volumeAttributes: Record<string, string> } }).csi;
      assert.equal(csi.driver, 'fuse.csi.tide.io');
      assert.equal(csi.volumeAttributes['fluid_path'], `/runtime-mnt/tide/default/${name}/tide-fuse`);
      assert.equal(csi.volumeAttributes['mount_type'], 'fuse.tide');
      assert.equal(pv?.metadata.labels?.[`fluid.io/s-default-${name}`], 'true');
      await waitFor(
        `PVC ${name} to be Bound to its PV`,
        async () => {
          const pvc = await getBuiltin(builtin.persistentVolumeClaims, name, NS);
          return (pvc?.status as { phase?: string } | undefined)?.phase === 'Bound' ? true : undefined;
        },
        { timeoutMs: 30_000 },
      );
      // Nodes running a worker carry Fluid's scheduling labels, one node per worker.
      const labelled = [...(await nodeLabels()).values()].filter(
        (labels) =>
          labels[`fluid.io/s-default-${name}`] === 'true' &&
          labels[`fluid.io/s-tide-default-${name}`] === 'true',
      );
      assert.equal(labelled.length, workers);
    }
    const secret = await getBuiltin(builtin.secrets, 'quickstart-tide-config', NS);
    assert.deepEqual(Object.keys(secret?.['data'] ?? {}).sort(), [
      'client.json',
      'mount.json',
      'worker.json',
    ]);
  });

  it('shows Fluid columns in kubectl get dataset', async () => {
    const table = await kubectl('get', 'dataset', '-n', NS);
    assert.match(table, /NAME\s+UFS TOTAL SIZE\s+CACHED\s+CACHE CAPACITY\s+CACHED PERCENTAGE\s+PHASE\s+AGE/);
    assert.match(table, /quickstart\s+\S+\s+\S+\s+\S+\s+\S*\s*Bound/);
    const runtimes = await kubectl('get', 'goosefsruntime', 'hbase', '-n', NS);
    assert.match(
      runtimes,
      /MASTER PHASE\s+READY WORKERS\s+DESIRED WORKERS\s+WORKER PHASE\s+FUSE PHASE\s+AGE/,
    );
    assert.match(runtimes, /hbase\s+Ready\s+3\s+3\s+Ready\s+Ready/);
  });

  it('runs a Once DataLoad as a Job whose completion completes the DataLoad; Cron waits for its time', async () => {
    const load = await phaseIs('DataLoad', 'quickstart-warmup', 'Complete', 60_000);
    assert.match(String(load.status?.['duration']), /s$/);
    const jobs = await kube.list(builtin.jobs, {
      namespace: NS,
      labelSelector: 'role=tide-loader,release=quickstart',
    });
    assert.equal(jobs.items.length, 1);
    const job = jobs.items[0] as Obj;
    const container = (job.spec as { template: { spec: { containers: { command: string[] }[] } } }).template
      .spec.containers[0];
    assert.deepEqual(container?.command.slice(0, 4), [
      'node',
      'src/operator/loader-main.ts',
      '--config',
      '/etc/tide/client.json',
    ]);
    const plan = JSON.parse(container.command[5] ?? '{}') as { targets: { path: string }[] };
    assert.deepEqual(plan.targets, [{ path: '/data', replicas: 1 }]);
    await phaseIs('DataLoad', 'hbase-dataload', 'Complete', 60_000);
    const events = await kube.list(builtin.events, {
      namespace: NS,
      fieldSelector: 'involvedObject.name=quickstart-warmup',
    });
    const reasons = events.items.map((event) => event['reason']);
    assert.ok(
      reasons.includes('DataLoadJobStarted') && reasons.includes('DataLoadJobComplete'),
      reasons.join(','),
    );
    if (s3 !== undefined) {
      // Every two minutes: Pending until then; a run that happened started on its schedule.
      const cron = await get('DataLoad', 'cron-dataload');
      const scheduled = cron?.status?.['lastScheduleTime'] as string | undefined;
      if (scheduled === undefined) assert.equal(cron?.status?.['phase'], 'Pending');
      else assert.equal(new Date(scheduled).getUTCMinutes() % 2, 0, scheduled);
    }
    // The dataset's operation lock is released.
    const dataset = await get('Dataset', 'quickstart');
    assert.equal(
      (dataset?.status?.['operationRef'] as Record<string, string> | undefined)?.['DataLoad'],
      undefined,
    );
  });

  it('runs FUSE only on nodes labelled for the dataset', async () => {
    await kube.patch(
      builtin.nodes,
      'kwok-node-2',
      { metadata: { labels: { 'fluid.io/f-default-quickstart': 'true' } } },
      {
        patchType: 'merge',
      },
    );
    const runtime = await waitFor(
      'one FUSE pod ready for quickstart',
      async () => {
        const object = await get('TideRuntime', 'quickstart');
        return object?.status?.['fuseNumberReady'] === 1 && object.status['desiredFuseNumberScheduled'] === 1
          ? object
          : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.equal(runtime.status?.['fusePhase'], 'Ready');
    const pods = await kube.list(builtin.pods, {
      namespace: NS,
      labelSelector: 'role=tide-fuse,release=quickstart',
    });
    assert.deepEqual(
      pods.items.map((pod) => (pod['spec'] as { nodeName?: string }).nodeName),
      ['kwok-node-2'],
    );
    await kube.patch(
      builtin.nodes,
      'kwok-node-2',
      { metadata: { labels: { 'fluid.io/f-default-quickstart': null } } },
      {
        patchType: 'merge',
      },
    );
    await waitFor(
      'the FUSE pod to go with the label',
      async () => {
        const object = await get('TideRuntime', 'quickstart');
        return object?.status?.['desiredFuseNumberScheduled'] === 0 ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
  });

  it('scales the workers through the runtime scale subresource (kubectl scale)', async () => {
    await kubectl('scale', 'tideruntime', 'quickstart', '-n', NS, '--replicas=3');
    await waitFor(
      'the StatefulSet and the runtime at 3 workers',
      async () => {
        const sts = await getBuiltin(builtin.statefulSets, 'quickstart-worker', NS);
        const runtime = await get('TideRuntime', 'quickstart');
        return (sts?.spec as { replicas?: number }).replicas === 3 &&
          runtime?.status?.['workerNumberReady'] === 3
          ? true
          : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const scale = await kube.getScale(typeOf('TideRuntime'), 'quickstart', { namespace: NS });
    assert.equal(scale.status?.replicas, 3);
    assert.equal(scale.status.selector, 'app=tide,role=tide-worker,release=quickstart');
    await kubectl('scale', 'tideruntime', 'quickstart', '-n', NS, '--replicas=1');
    await waitFor(
      'the worker labels on one node only',
      async () => {
        const labelled = [...(await nodeLabels()).values()].filter(
          (labels) => labels['fluid.io/s-default-quickstart'] === 'true',
        );
        return labelled.length === 1 ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
  });

  it('waits while a running pod uses the dataset, then deleting it removes everything it owned', async () => {
    await kube.create(builtin.pods, {
      metadata: { name: 'spark-reader', namespace: NS },
      spec: {
        containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'spark' } }],
      },
    });
    await waitFor(
      'the reader pod to run',
      async () => {
        const pod = await getBuiltin(builtin.pods, 'spark-reader', NS);
        return (pod?.status as { phase?: string } | undefined)?.phase === 'Running' ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
    await kube.delete(typeOf('Dataset'), 'spark', { namespace: NS });
    const event = await waitFor(
      'an ErrorDeleteDataset event naming the reader',
      async () => {
        const events = await kube.list(builtin.events, {
          namespace: NS,
          fieldSelector: 'involvedObject.name=spark',
        });
        return events.items.find((item) => item['reason'] === 'ErrorDeleteDataset');
      },
      { timeoutMs: 30_000 },
    );
    assert.match(String(event['message']), /in use by pod default\/spark-reader/);
    assert.equal((event['involvedObject'] as { kind: string }).kind, 'Dataset');
    assert.equal((await get('Dataset', 'spark'))?.metadata.deletionTimestamp !== undefined, true);
    assert.ok((await getBuiltin(builtin.statefulSets, 'spark-worker', NS)) !== undefined);

    await kube.delete(builtin.pods, 'spark-reader', { namespace: NS, gracePeriodSeconds: 0 });
    await waitFor(
      'the dataset to go',
      async () => ((await get('Dataset', 'spark')) === undefined ? true : undefined),
      {
        timeoutMs: 60_000,
      },
    );
    await waitFor(
      'everything of spark to go',
      async () => {
        const left = [
          await get('AlluxioRuntime', 'spark'),
          await getBuiltin(builtin.statefulSets, 'spark-worker', NS),
          await getBuiltin(builtin.services, 'spark-worker', NS),
          await getBuiltin(builtin.daemonSets, 'spark-fuse', NS),
          await getBuiltin(builtin.persistentVolumeClaims, 'spark', NS),
          await getBuiltin(builtin.persistentVolumes, 'default-spark'),
          await getBuiltin(builtin.secrets, 'spark-tide-config', NS),
          await getBuiltin(builtin.serviceAccounts, 'spark-tide-client', NS),
        ].filter((object) => object !== undefined);
        const labelled = [...(await nodeLabels()).values()].filter((labels) =>
          Object.keys(labels).some((key) => key.endsWith('-default-spark')),
        );
        return left.length === 0 && labelled.length === 0 ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
  });

  it('converges after the controller is killed mid-setup and another replica starts', async () => {
    const [leader] = operators;
    assert.ok(leader !== undefined);
    await create({
      apiVersion: 'data.fluid.io/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'restart' },
      spec: { mounts: [{ name: 'data', mountPoint: `${nginx?.url ?? ''}data/` }] },
    });
    await create({
      apiVersion: 'data.fluid.io/v1alpha1',
      kind: 'TideRuntime',
      metadata: { name: 'restart' },
      spec: {
        replicas: 2,
        tieredstore: { levels: [{ mediumtype: 'SSD', path: '/var/cache/tide', quota: '1Gi' }] },
      },
    });
    await waitFor(
      'the StatefulSet of restart',
      async () =>
        (await getBuiltin(builtin.statefulSets, 'restart-worker', NS)) === undefined ? undefined : true,
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    await stopOperator(leader, 'SIGKILL');
    const next = startOperator('replica-b');
    await phaseIs('Dataset', 'restart', 'Bound', 60_000);
    assert.equal(await leaseHolder(), 'replica-b');
    const sts = await getBuiltin(builtin.statefulSets, 'restart-worker', NS);
    const volumes = (sts?.spec as { template: { spec: { volumes: Record<string, unknown>[] } } }).template
      .spec.volumes;
    assert.deepEqual(
      volumes.find((volume) => volume['name'] === 'tier-0-0'),
      {
        name: 'tier-0-0',
        hostPath: { path: '/var/cache/tide/tide/default/restart', type: 'DirectoryOrCreate' },
      },
    );
    assert.match(await next.log(), /started leading/);
  });

  it('never lets two replicas reconcile: a paused leader loses the lease and writes nothing after', async () => {
    const leader = operators.find((operator) => operator.identity === 'replica-b');
    assert.ok(leader !== undefined);
    const standby = startOperator('replica-c');
    await sleep(2000);
    assert.equal(await leaseHolder(), 'replica-b');
    assert.doesNotMatch(await standby.log(), /reconcilers started/);

    leader.child.kill('SIGSTOP');
    const pausedAt = new Date();
    await waitFor(
      'replica-c to take the Lease',
      async () => ((await leaseHolder()) === 'replica-c' ? true : undefined),
      {
        timeoutMs: 20_000,
      },
    );
    await create({
      apiVersion: 'data.fluid.io/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'handover' },
      spec: { mounts: [{ name: 'data', mountPoint: `${nginx?.url ?? ''}data/` }] },
    });
    await create({
      apiVersion: 'data.fluid.io/v1alpha1',
      kind: 'TideRuntime',
      metadata: { name: 'handover' },
      spec: { replicas: 1 },
    });
    await phaseIs('Dataset', 'handover', 'Bound', 60_000);

    // The old leader wakes up with its timers and queue as they were: it must stop, not write.
    leader.child.kill('SIGCONT');
    const code = await Promise.race([leader.exited, sleep(20_000).then(() => 'still running')]);
    assert.equal(code, 1, 'the old leader exits with 1 after losing the lease');
    const log = await leader.log();
    assert.match(log, /"why":"lost"/);
    const events = await kube.list(builtin.events, { namespace: NS });
    const late = events.items.filter(
      (event) =>
        event['reportingInstance'] === 'replica-b' &&
        Date.parse(String(event['lastTimestamp'])) > pausedAt.getTime() + 1000,
    );
    assert.deepEqual(
      late.map((event) => `${String(event['reason'])}: ${String(event['message'])}`),
      [],
      'events written by the paused leader after it was paused',
    );
    const handoverEvents = events.items.filter(
      (event) => (event['involvedObject'] as { name?: string }).name === 'handover',
    );
    assert.ok(handoverEvents.length > 0);
    assert.ok(handoverEvents.every((event) => event['reportingInstance'] === 'replica-c'));
    assert.equal(await leaseHolder(), 'replica-c');
    const lease = await getBuiltin(builtin.leases, 'tide-controller', leaseNamespace);
    assert.ok(((lease?.spec as { leaseTransitions?: number }).leaseTransitions ?? 0) >= 2);
  });

  it('releases the Lease on SIGTERM so a standby takes over at once', async () => {
    const leader = operators.find((operator) => operator.identity === 'replica-c');
    assert.ok(leader !== undefined);
    const standby = startOperator('replica-d');
    await sleep(1000);
    assert.equal(await stopOperator(leader, 'SIGTERM'), 0);
    // Released on the way out: the stopped leader no longer holds the Lease, so the standby need
    // not wait out its duration (checked on the object, not by timing, which a busy machine skews).
    assert.notEqual(await leaseHolder(), 'replica-c');
    await waitFor(
      'replica-d to take the Lease',
      async () => ((await leaseHolder()) === 'replica-d' ? true : undefined),
      {
        timeoutMs: 10_000,
      },
    );
    await waitFor(
      'replica-d to start its reconcilers',
      async () => ((await standby.log()).includes('reconcilers started') ? true : undefined),
      { timeoutMs: 5000 },
    );
    await stopOperator(standby);
  });
});
