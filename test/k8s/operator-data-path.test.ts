/**
 * The Kubernetes data path that kwok cannot run: real cache workers (as the worker pods run them,
 * from the `worker.json` the platform writes) listed in EndpointSlices of a real kube-apiserver,
 * followed by the membership of FUSE pods and loader Jobs through the Role the platform grants
 * them; the loader (`loader-main.ts`) warming the workers; and a real FUSE mount
 * (`mount-main.ts` with the Kubernetes dataset source) reading through them.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  parseWorkerConfig,
  startWorker,
  workerOptionsFromConfig,
  type CacheWorker,
} from '../../src/cache/index.ts';
import { SecretValue, silentLogger } from '../../src/lib/index.ts';
import { builtin, inClusterConnection, KubeClient } from '../../src/kube/index.ts';
import { EndpointSliceMembership, runLoader, type RuntimePlan } from '../../src/platform/index.ts';
import { clientAccess, configFiles, DEFAULT_SETTINGS } from '../../src/platform/kube/manifests.ts';
import { extraTypes, namesOf } from '../../src/platform/kube/names.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { ensureK8sBinaries, k8sSuiteSkipReason, startCluster, waitFor, type TestCluster } from './cluster.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const NS = 'data-path';
const skip = k8sSuiteSkipReason();

/** EndpointSlices refuse loopback addresses, so workers listen on the machine's own address. */
function hostAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? [])
      if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return undefined;
}

const FILES = 5;

describe('the Kubernetes data path: EndpointSlice membership, loader and FUSE', { timeout: 300_000 }, () => {
  const host = hostAddress();
  if (skip !== false || host === undefined) {
    it(
      'runs against real binaries',
      { skip: skip === false ? 'no non-loopback IPv4 address' : skip },
      () => undefined,
    );
    return;
  }
  let cluster: TestCluster | undefined;
  let admin: KubeClient;
  let pod: KubeClient;
  let dir: string;
  let nginx: NginxServer | undefined;
  const workers: CacheWorker[] = [];
  let clientConfig: string;
  let totalBytes = 0;
  const plan: RuntimePlan = {
    dataset: { namespace: NS, name: 'demo' },
    mounts: [],
    tiers: [],
    blockSizeBytes: 256 * 1024,
    workers: 2,
    pods: {},
    fuseArgs: [],
    readOnly: true,
    fuseCleanPolicy: 'OnRuntimeDeleted',
  };
  const names = namesOf(plan.dataset);

  before(
    async () => {
      const binDir = await ensureK8sBinaries();
      cluster = await startCluster({ components: 'apiserver', binDir });
      admin = await KubeClient.fromKubeConfig(cluster.kubeconfigPath);
      dir = await mkdtemp(join(tmpdir(), 'tide-data-path-'));
      const origin = join(dir, 'origin', 'data');
      await mkdir(origin, { recursive: true });
      for (let index = 0; index < FILES; index += 1) {
        const bytes = Buffer.alloc(300_000 + index * 1000, `file ${index} `);
        totalBytes += bytes.length;
        await writeFile(join(origin, `file-${index}.bin`), bytes);
      }
      nginx = await startNginx({ root: join(dir, 'origin') });
      plan.mounts = [{ mountPoint: `${nginx.url}data/`, options: {}, secrets: {}, path: '/' }];

      // What the platform writes into the runtime's Secret, as the pods see it.
      const files = configFiles(plan, DEFAULT_SETTINGS, names, 'runtime-token');
      clientConfig = join(dir, 'client.json');
      await writeFile(clientConfig, files['client.json'], { mode: 0o600 });
      for (let index = 0; index < 2; index += 1) {
        const config = JSON.parse(files['worker.json']) as Record<string, unknown>;
        const tier = join(dir, `worker-${index}`);
        const worker = await startWorker(
          workerOptionsFromConfig(
            parseWorkerConfig({
              ...config,
              host,
              port: 0,
              workerId: `demo-worker-${index}`,
              tieredstore: { levels: [{ mediumtype: 'SSD', path: tier, quota: '64Mi' }] },
            }),
            { logger: silentLogger() },
          ),
        );
        workers.push(worker);
      }

      // The pods' identity: the ServiceAccount, Role and RoleBinding the platform creates.
      await admin.create(builtin.namespaces, { metadata: { name: NS } });
      for (const object of clientAccess(plan, names)) {
        const type =
          object.kind === 'ServiceAccount'
            ? builtin.serviceAccounts
            : object.kind === 'Role'
              ? extraTypes.roles
              : extraTypes.roleBindings;
        await admin.create(type, object, { namespace: NS });
      }
      const token = await admin.request<{ status: { token: string } }>({
        method: 'POST',
        path: `/api/v1/namespaces/${NS}/serviceaccounts/${names.client}/token`,
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds: 3600 },
        },
      });
      const serviceAccount = join(dir, 'serviceaccount');
      await mkdir(serviceAccount);
      await writeFile(join(serviceAccount, 'token'), token.status.token);
      await writeFile(join(serviceAccount, 'ca.crt'), cluster.caPem);
      await writeFile(join(serviceAccount, 'namespace'), NS);
      const server = new URL(cluster.server);
      pod = new KubeClient(
        await inClusterConnection({
          env: { KUBERNETES_SERVICE_HOST: server.hostname, KUBERNETES_SERVICE_PORT: server.port },
          dir: serviceAccount,
        }),
      );

      // As the EndpointSlice controller would list the two ready worker pods (one slice each here,
      // as their ports differ).
      for (const [index, worker] of workers.entries()) {
        await admin.create(
          extraTypes.endpointSlices,
          {
            metadata: {
              name: `${names.service}-${index}`,
              namespace: NS,
              labels: { 'kubernetes.io/service-name': names.service },
            },
            addressType: 'IPv4',
            ports: [{ name: 'http', port: worker.port, protocol: 'TCP' }],
            endpoints: [
              {
                addresses: [host],
                conditions: { ready: true },
                nodeName: `node-${index}`,
                targetRef: { kind: 'Pod', name: `demo-worker-${index}`, namespace: NS },
              },
            ],
          },
          { namespace: NS },
        );
      }
    },
    { timeout: 60 * 60_000 },
  );

  after(async () => {
    for (const worker of workers) await worker.close();
    (pod as KubeClient | undefined)?.close();
    (admin as KubeClient | undefined)?.close();
    await nginx?.stop();
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("follows the workers' EndpointSlices with the pods' service account, as they come and go", async () => {
    const stop = new AbortController();
    const membership = await EndpointSliceMembership.start({
      client: pod,
      namespace: NS,
      serviceName: names.service,
      logger: silentLogger(),
      signal: stop.signal,
    });
    try {
      assert.deepEqual(
        membership.workers().map((worker) => [worker.id, worker.nodeName]),
        [
          [`demo-worker-0:${workers[0]?.port ?? 0}`, 'node-0'],
          [`demo-worker-1:${workers[1]?.port ?? 0}`, 'node-1'],
        ],
      );
      const slice = await admin.get(extraTypes.endpointSlices, `${names.service}-1`, { namespace: NS });
      const endpoints = slice['endpoints'] as { conditions: { ready: boolean } }[];
      await admin.update(
        extraTypes.endpointSlices,
        { ...slice, endpoints: endpoints.map((endpoint) => ({ ...endpoint, conditions: { ready: false } })) },
        { namespace: NS },
      );
      await waitFor(
        'the not-ready worker to leave the membership',
        () => Promise.resolve(membership.workers().length === 1 ? true : undefined),
        { timeoutMs: 10_000 },
      );
      await admin.update(
        extraTypes.endpointSlices,
        {
          ...(await admin.get(extraTypes.endpointSlices, `${names.service}-1`, { namespace: NS })),
          endpoints,
        },
        { namespace: NS },
      );
      await waitFor(
        'the worker to come back',
        () => Promise.resolve(membership.workers().length === 2 ? true : undefined),
        { timeoutMs: 10_000 },
      );
    } finally {
      stop.abort();
      await membership.closed();
    }
  });

  it('loads every file once into the workers and writes the progress to the termination log', async () => {
    const loadPlan = {
      dataset: plan.dataset,
      targets: [{ path: '/', replicas: 1 }],
      loadMetadata: false,
      parallelism: 4,
    };
    const progress = await runLoader({
      configPath: clientConfig,
      plan: loadPlan,
      logger: silentLogger(),
      signal: AbortSignal.timeout(60_000),
      onProgress: () => undefined,
      kube: pod,
    });
    assert.equal(progress.filesDone, FILES);
    assert.equal(progress.bytesDone, totalBytes);
    const cached = await Promise.all(
      workers.map(async (worker) => {
        const response = await fetch(`${worker.url}/v1/stats`, {
          headers: { authorization: `Bearer ${new SecretValue('runtime-token').reveal()}` },
        });
        return ((await response.json()) as { cachedBytes: number }).cachedBytes;
      }),
    );
    assert.equal(
      cached.reduce((sum, bytes) => sum + bytes, 0),
      totalBytes,
    );
    assert.ok(
      cached.every((bytes) => bytes > 0),
      `both workers hold blocks: ${cached.join(', ')}`,
    );

    // The Job's process, as the platform starts it (with a kubeconfig instead of a service account).
    const terminationLog = join(dir, 'termination-log');
    const { stdout } = await run(
      process.execPath,
      [
        join(ROOT, 'src', 'operator', 'loader-main.ts'),
        '--config',
        clientConfig,
        '--plan',
        JSON.stringify(loadPlan),
        '--kubeconfig',
        cluster?.kubeconfigPath ?? '',
        '--termination-log',
        terminationLog,
      ],
      { timeout: 60_000 },
    );
    assert.match(stdout, /"event":"done"/);
    assert.deepEqual(JSON.parse(await readFile(terminationLog, 'utf8')), {
      filesDone: FILES,
      bytesDone: totalBytes,
      filesTotal: FILES,
      bytesTotal: totalBytes,
    });
    const failing = run(
      process.execPath,
      [
        join(ROOT, 'src', 'operator', 'loader-main.ts'),
        '--config',
        clientConfig,
        '--plan',
        JSON.stringify({ ...loadPlan, targets: [{ path: '/missing', replicas: 1 }] }),
        '--kubeconfig',
        cluster?.kubeconfigPath ?? '',
        '--termination-log',
        terminationLog,
      ],
      { timeout: 60_000 },
    );
    await assert.rejects(failing, (error: { code?: number }) => error.code === 1);
    assert.notEqual(await readFile(terminationLog, 'utf8'), '');
  });

  it('mounts the dataset with FUSE and reads it through the workers', async () => {
    const target = join(dir, 'mnt');
    const mountConfig = join(dir, 'mount.json');
    await writeFile(
      mountConfig,
      JSON.stringify({
        target,
        fuseArgs: ['-oro'],
        source: {
          kind: 'tide-kube-dataset',
          module: join(ROOT, 'src', 'platform', 'kube', 'dataset-source.ts'),
          options: { configPath: clientConfig, kubeconfig: cluster?.kubeconfigPath },
        },
      }),
    );
    const child = spawn(process.execPath, [join(ROOT, 'src', 'fuse', 'mount-main.ts'), mountConfig], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<void>((resolve) =>
      child.once('exit', () => {
        resolve();
      }),
    );
    try {
      await waitFor(
        'the mount to be ready',
        () => Promise.resolve(output.includes('"event":"ready"') ? true : undefined),
        {
          timeoutMs: 30_000,
        },
      );
      const nginxServer = nginx;
      assert.ok(nginxServer !== undefined);
      const fileGets = async (): Promise<number> =>
        (await nginxServer.accessLog()).filter(
          (record) => record.target.startsWith('/data/file-') && record.method === 'GET',
        ).length;
      const before = await fileGets();
      for (let index = 0; index < FILES; index += 1) {
        const [mounted, original] = await Promise.all([
          readFile(join(target, `file-${index}.bin`)),
          readFile(join(dir, 'origin', 'data', `file-${index}.bin`)),
        ]);
        assert.ok(mounted.equals(original), `file-${index}.bin reads as at the origin`);
      }
      // The loader cached every block: reading sent the origin no GET of file data (only stats).
      assert.equal(await fileGets(), before);
    } finally {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(20_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
      await run('umount', ['-l', target]).catch(() => undefined);
    }
  });
});
