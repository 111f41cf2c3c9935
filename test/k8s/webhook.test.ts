/**
 * The pod admission webhook on a real control plane (kube-apiserver, kube-scheduler, kwok nodes):
 * the operator process serves it (`--webhook`) with its own certificate, which it keeps in a
 * Secret and in the configuration's caBundle. The runtime objects, node labels and
 * `fluid.io/dataset-num` are the operator's; only `status.cachedBytesByNode` is written by the
 * test, as the reconciler writes it from worker statistics that kwok pods cannot serve.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { builtin, type KubeClient, type KubeObject } from '../../src/kube/index.ts';
import { silentLogger } from '../../src/lib/index.ts';
import {
  CertificateKeeper,
  MUTATE_PODS_PATH,
  certificateFacts,
  webhookConfiguration,
  type KeyPairPem,
  type Pod,
} from '../../src/webhook/index.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { ensureK8sBinaries, k8sBinariesStatus, startCluster, waitFor, type TestCluster } from './cluster.ts';
import { datasetType, tideRuntimeType } from './fixtures.ts';
import { keepNodeLeases } from './node-leases.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const NS = 'wh';
const TIDE_NS = 'tide-system';
const CONFIGURATION = 'tide-test-webhook';
const NODES = ['node-a', 'node-b', 'node-c', 'node-d'];
const GIB = 1024 ** 3;
const binaries = k8sBinariesStatus();
const skip =
  binaries.missing.length > 0 && !binaries.goAvailable
    ? `go is not installed, so the Kubernetes binaries (${binaries.missing.join(', ')}) cannot be built`
    : false;

const datasets = datasetType;
const tideRuntimes = tideRuntimeType;

type PodObject = KubeObject & {
  spec: Pod['spec'] & { nodeName?: string };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
};

const SERVERFUL = { 'fuse.serverful.fluid.io/inject': 'true' };
/** The runtime's FUSE container fields, which the sidecar must carry. */
const FUSE = {
  image: 'registry.example.com/tide-worker',
  imageTag: 'v2',
  resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '2Gi' } },
  env: [{ name: 'TIDE_FUSE_TEST', value: 'yes' }],
};

function podManifest(name: string, labels: Record<string, string>, claims: string[] = []): PodObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'registry.invalid/app:1',
          volumeMounts: claims.map((claim) => ({ name: claim, mountPath: `/data/${claim}` })),
        },
      ],
      volumes: claims.map((claim) => ({ name: claim, persistentVolumeClaim: { claimName: claim } })),
    },
  };
}

/** POSTs a raw body to the webhook, trusting `caPem`. */
async function post(port: number, caPem: string, body: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      { host: '127.0.0.1', port, path: MUTATE_PODS_PATH, method: 'POST', ca: caPem, agent: false },
      (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        response.once('end', () => {
          resolve({ status: response.statusCode ?? 0, json: JSON.parse(text) as unknown });
        });
      },
    );
    request.once('error', reject);
    request.end(body);
  });
}

/** The fingerprint of the certificate a TLS server at 127.0.0.1:`port` presents now. */
async function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      { host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, agent: false },
      (response) => {
        const socket = response.socket;
        if (socket instanceof TLSSocket) resolve(socket.getPeerCertificate().fingerprint256);
        else reject(new Error('not a TLS connection'));
        response.resume();
      },
    );
    request.once('error', reject);
    request.end();
  });
}

describe('the pod admission webhook on a real API server and scheduler', { timeout: 600_000 }, () => {
  if (skip !== false) {
    it('runs against real binaries', { skip }, () => undefined);
    return;
  }
  let cluster: TestCluster | undefined;
  let kube: KubeClient;
  let dir: string;
  let nginx: NginxServer | undefined;
  let operator: ChildProcess | undefined;
  let operatorExited: Promise<unknown> = Promise.resolve();
  let logPath = '';
  let port = 0;
  let cacheNodes: string[] = [];
  const leases = new AbortController();
  let leasesKept: Promise<void> = Promise.resolve();

  const pod = (name: string) => kube.get<PodObject>(builtin.pods, name, { namespace: NS });
  const scheduledNode = (name: string) =>
    waitFor(
      `pod ${name} to be scheduled`,
      async () => {
        const nodeName = (await pod(name)).spec.nodeName;
        return nodeName === undefined || nodeName === '' ? undefined : nodeName;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  const caPem = async (): Promise<string> => {
    const secret = await kube.get(builtin.secrets, 'tide-webhook-certs', { namespace: TIDE_NS });
    return Buffer.from((secret['data'] as Record<string, string>)['ca.crt'] ?? '', 'base64').toString('utf8');
  };
  const operatorLog = () => readFile(logPath, 'utf8');
  const bound = (name: string) =>
    waitFor(
      `dataset ${name} and its claim to be Bound`,
      async () => {
        const dataset = await kube.get(datasets, name, { namespace: NS });
        const claim = await kube.get(builtin.persistentVolumeClaims, name, { namespace: NS });
        const phase = (object: KubeObject) => (object['status'] as { phase?: string } | undefined)?.phase;
        return phase(dataset) === 'Bound' && phase(claim) === 'Bound' ? dataset : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );

  before(
    async () => {
      dir = await mkdtemp(join(tmpdir(), 'tide-webhook-test-'));
      await mkdir(join(dir, 'origin', 'data'), { recursive: true });
      await writeFile(join(dir, 'origin', 'data', 'model.bin'), 'weights');
      nginx = await startNginx({ root: join(dir, 'origin') });
      cluster = await startCluster({
        binDir: await ensureK8sBinaries(),
        nodes: NODES.map((name) => ({ name })),
      });
      kube = cluster.client;
      leasesKept = keepNodeLeases(kube, leases.signal);
      for (const name of [NS, TIDE_NS]) await kube.create(builtin.namespaces, { metadata: { name } });
      const free = (await import('node:net')).createServer();
      port = await new Promise<number>((resolve) => {
        free.listen(0, '127.0.0.1', () => {
          const address = free.address();
          free.close(() => {
            resolve(typeof address === 'object' && address !== null ? address.port : 0);
          });
        });
      });
      logPath = join(dir, 'operator.log');
      const fd = openSync(logPath, 'a');
      operator = spawn(
        process.execPath,
        [
          join(ROOT, 'src', 'operator', 'main.ts'),
          ...['--kubeconfig', cluster.kubeconfigPath, '--install-crds', '--no-leader-elect'],
          ...['--resync-seconds', '2', '--stats-timeout-ms', '200'],
          ...['--webhook', '--webhook-port', String(port), '--webhook-address', '127.0.0.1'],
          ...['--webhook-namespace', TIDE_NS, '--webhook-configuration', CONFIGURATION],
          ...['--webhook-check-seconds', '1'],
        ],
        { stdio: ['ignore', fd, fd] },
      );
      closeSync(fd);
      const child = operator;
      operatorExited = new Promise((resolve) => child.once('exit', resolve));
      // The chart's configuration, but calling the operator process by URL (no Service here).
      await kube.create(
        builtin.mutatingWebhookConfigurations,
        webhookConfiguration({
          name: CONFIGURATION,
          clientConfig: { url: `https://127.0.0.1:${port}${MUTATE_PODS_PATH}` },
          tideNamespace: TIDE_NS,
        }),
      );
      await waitFor(
        'the datasets resource to be served',
        async () => {
          await kube.list(datasets, { namespace: NS });
          await kube.list(tideRuntimes, { namespace: NS });
          return true;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      const mounts = [{ name: 'data', mountPoint: `${nginx.url}data/` }];
      for (const [name, replicas] of [
        ['demo', 3],
        ['empty', 0],
      ] as const) {
        await kube.create(datasets, { metadata: { name, namespace: NS }, spec: { mounts } });
        await kube.create(tideRuntimes, {
          metadata: { name, namespace: NS },
          spec: { replicas, fuse: FUSE },
        });
      }
      // A dataset without a runtime stays NotBound.
      await kube.create(datasets, { metadata: { name: 'pending', namespace: NS }, spec: { mounts } });
      await bound('demo');
      await bound('empty');
      cacheNodes = await waitFor(
        'three nodes labelled for the cache of wh/demo, with fluid.io/dataset-num',
        async () => {
          const nodes = await kube.list(builtin.nodes, { labelSelector: 'fluid.io/s-wh-demo=true' });
          const named = nodes.items.filter((n) => n.metadata?.labels?.['fluid.io/dataset-num'] === '1');
          return named.length === 3 ? named.map((n) => n.metadata?.name ?? '').sort() : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      await waitFor(
        'the operator to put its CA into the configuration and serve pods',
        async () => {
          const dry = await kube.create<PodObject>(builtin.pods, podManifest('probe', SERVERFUL), {
            namespace: NS,
            dryRun: true,
          });
          return dry.spec.affinity === undefined ? undefined : true;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
    },
    { timeout: 60 * 60_000 },
  );

  after(async () => {
    leases.abort();
    await leasesKept;
    if (operator?.exitCode === null) operator.kill('SIGTERM');
    await Promise.race([operatorExited, sleep(10_000)]);
    if (operator?.exitCode === null) operator.kill('SIGKILL');
    await cluster?.stop();
    await nginx?.stop();
    if (process.env['TIDE_KEEP_TEST_DIR'] === undefined) await rm(dir, { recursive: true, force: true });
  });

  it('schedules a pod that requires the cache only onto cache nodes, and leaves it Pending when there is none', async () => {
    await kube.create(
      builtin.pods,
      podManifest('required', { ...SERVERFUL, 'fluid.io/dataset.demo.sched': 'required' }, ['demo']),
      { namespace: NS },
    );
    assert.ok(cacheNodes.includes(await scheduledNode('required')));
    const created = await pod('required');
    assert.deepEqual(created.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution, {
      nodeSelectorTerms: [
        { matchExpressions: [{ key: 'fluid.io/s-wh-demo', operator: 'In', values: ['true'] }] },
      ],
    });
    assert.equal(created.metadata?.annotations?.['fluid.io/datasets-in-use'], 'demo');

    await kube.create(
      builtin.pods,
      podManifest('nowhere', { ...SERVERFUL, 'fluid.io/dataset.empty.sched': 'required' }, ['empty']),
      { namespace: NS },
    );
    const message = await waitFor(
      'a FailedScheduling event of pod nowhere',
      async () => {
        const events = await kube.list(builtin.events, {
          namespace: NS,
          fieldSelector: 'involvedObject.name=nowhere,reason=FailedScheduling',
        });
        const [event] = events.items;
        const message = event?.['message'];
        return typeof message === 'string' ? message : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.match(message, /0\/4 nodes are available: 4 node\(s\) didn't match Pod's node affinity\/selector/);
    assert.equal((await pod('nowhere')).spec.nodeName, undefined);
  });

  it('places a pod on the node holding most of the dataset, and another after the bytes moved', async () => {
    const [first, second, third] = cacheNodes as [string, string, string];
    const setBytes = (bytes: Record<string, number>) =>
      kube.patch(
        datasets,
        'demo',
        { status: { cachedBytesByNode: bytes } },
        { namespace: NS, patchType: 'merge', subresource: 'status' },
      );
    await setBytes({ [first]: 1 * GIB, [second]: 6 * GIB, [third]: 3 * GIB });
    await kube.create(builtin.pods, podManifest('most-bytes-1', SERVERFUL, ['demo']), { namespace: NS });
    assert.equal(await scheduledNode('most-bytes-1'), second);
    const preferred = (await pod('most-bytes-1')).spec.affinity?.nodeAffinity
      ?.preferredDuringSchedulingIgnoredDuringExecution;
    assert.deepEqual(
      preferred?.map((term) => [
        term.weight,
        term.preference.matchFields?.[0]?.values?.[0] ?? term.preference.matchExpressions?.[0]?.key,
      ]),
      [
        [100, 'fluid.io/s-wh-demo'],
        [100, second],
        [50, third],
        [17, first],
      ],
    );
    await setBytes({ [first]: 8 * GIB, [second]: 2 * GIB, [third]: 5 * GIB });
    await kube.create(builtin.pods, podManifest('most-bytes-2', SERVERFUL, ['demo']), { namespace: NS });
    assert.equal(await scheduledNode('most-bytes-2'), first);
  });

  it('steers a pod without a dataset away from the cache nodes', async () => {
    await kube.create(builtin.pods, podManifest('no-dataset', SERVERFUL), { namespace: NS });
    const [elsewhere] = NODES.filter((node) => !cacheNodes.includes(node));
    assert.equal(await scheduledNode('no-dataset'), elsewhere);
  });

  it('injects the FUSE sidecar into a serverless pod, which the API server accepts and kwok runs', async () => {
    await kube.create(
      builtin.pods,
      podManifest('serverless', { 'serverless.fluid.io/inject': 'true' }, ['demo']),
      {
        namespace: NS,
      },
    );
    const daemonSet = await kube.get(builtin.daemonSets, 'demo-fuse', { namespace: NS });
    const fuse = (daemonSet['spec'] as { template: { spec: Pod['spec'] } }).template.spec.containers[0];
    const created = await pod('serverless');
    const [sidecar] = created.spec.initContainers ?? [];
    assert.equal(sidecar?.name, 'fluid-fuse-0');
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(fuse?.image, 'registry.example.com/tide-worker:v2');
    assert.equal(sidecar.image, fuse.image);
    assert.deepEqual(sidecar.resources, FUSE.resources);
    assert.deepEqual(sidecar.env?.at(-1), FUSE.env[0]);
    assert.deepEqual(sidecar.command, fuse.command);
    assert.deepEqual(sidecar.securityContext, { privileged: true });
    // The ServiceAccount admission plugin adds its token mount after the webhook.
    assert.deepEqual(
      sidecar.volumeMounts?.find((mount) => mount.name === 'demo'),
      { name: 'demo', mountPath: '/runtime-mnt/tide/wh/demo/tide-fuse', mountPropagation: 'Bidirectional' },
    );
    assert.ok(sidecar.startupProbe !== undefined);
    const volumes = created.spec.volumes ?? [];
    assert.deepEqual(
      volumes.find((v) => v.name === 'demo'),
      { name: 'demo', emptyDir: {} },
    );
    assert.ok(volumes.every((v) => v['hostPath'] === undefined && v.persistentVolumeClaim === undefined));
    assert.equal(created.spec.containers[0]?.volumeMounts?.[0]?.mountPropagation, 'HostToContainer');
    assert.equal(created.metadata?.labels?.['done.sidecar.fluid.io/inject'], 'true');
    await waitFor(
      'the serverless pod to run',
      async () => ((await pod('serverless')).status?.phase === 'Running' ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  });

  it('answers bad input with a clear denial or an unchanged pod, and logs one line for each', async () => {
    const ca = await caPem();
    const garbage = await post(port, ca, 'not json');
    assert.equal(garbage.status, 400);
    assert.match(JSON.stringify(garbage.json), /not an admission\.k8s\.io AdmissionReview/);
    const noRequest = await post(
      port,
      ca,
      JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1' }),
    );
    assert.equal(noRequest.status, 400);
    const notPod = await post(
      port,
      ca,
      JSON.stringify({
        kind: 'AdmissionReview',
        apiVersion: 'admission.k8s.io/v1',
        request: { uid: 'u-1', kind: { kind: 'ConfigMap' }, operation: 'CREATE', object: {} },
      }),
    );
    assert.deepEqual(notPod, {
      status: 200,
      json: {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: { uid: 'u-1', allowed: true },
      },
    });
    await assert.rejects(
      kube.create(builtin.pods, podManifest('not-bound', SERVERFUL, ['pending']), { namespace: NS }),
      /dataset wh\/pending is not Bound \(phase .*\): create its runtime or wait until it is Bound/,
    );
    await kube.create(builtin.namespaces, { metadata: { name: 'plain' } });
    await kube.create(
      builtin.persistentVolumeClaims,
      {
        metadata: { name: 'scratch', namespace: 'plain' },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
      { namespace: 'plain' },
    );
    const plain = await kube.create<PodObject>(
      builtin.pods,
      {
        ...podManifest('plain', SERVERFUL, ['scratch']),
        metadata: { name: 'plain', namespace: 'plain', labels: SERVERFUL },
      },
      { namespace: 'plain' },
    );
    // No dataset: PreferNodesWithoutCache only.
    assert.deepEqual(plain.spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution, [
      {
        weight: 100,
        preference: { matchExpressions: [{ key: 'fluid.io/dataset-num', operator: 'DoesNotExist' }] },
      },
    ]);
    const log = await operatorLog();
    const lines = (pattern: RegExp) => log.split('\n').filter((line) => pattern.test(line));
    assert.equal(lines(/not an admission\.k8s\.io AdmissionReview/).length, 2);
    assert.equal(lines(/"uid":"u-1".*only the creation of a Pod/).length, 1);
    assert.equal(lines(/"pod":"not-bound".*denied: dataset wh\/pending is not Bound/).length, 1);
    assert.equal(lines(/"namespace":"plain","pod":"plain".*allowed with a patch/).length, 1);
  });

  it('puts the CA back into the configuration after it is reset', async () => {
    const ca = Buffer.from(await caPem()).toString('base64');
    await kube.patch(
      builtin.mutatingWebhookConfigurations,
      CONFIGURATION,
      [
        {
          op: 'replace',
          path: '/webhooks/0/clientConfig/caBundle',
          value: Buffer.from('reset').toString('base64'),
        },
      ],
      { patchType: 'json' },
    );
    await waitFor(
      'the caBundle to be patched again',
      async () => {
        const configuration = await kube.get(builtin.mutatingWebhookConfigurations, CONFIGURATION);
        const webhooks = configuration['webhooks'] as { clientConfig: { caBundle?: string } }[];
        return webhooks.every((webhook) => webhook.clientConfig.caBundle === ca) ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    assert.match(await operatorLog(), /patched the CA bundle of the webhook configuration/);
  });

  it('renews the serving certificate when the clock says a third of its life is left', async () => {
    const nowMs = { value: Date.now() };
    const served: KeyPairPem[] = [];
    const keeper = new CertificateKeeper({
      kube,
      logger: silentLogger(),
      namespace: TIDE_NS,
      secretName: 'renewal-test',
      configurationName: 'renewal-test',
      dnsNames: ['renewal.test'],
      manage: true,
      onCertificate: (pair) => served.push(pair),
      servingValidityMs: 90 * 86_400_000,
      nowMs: () => nowMs.value,
    });
    const controller = new AbortController();
    const firstCa = await keeper.check(controller.signal);
    assert.equal(served.length, 1);
    nowMs.value += 50 * 86_400_000;
    await keeper.check(controller.signal);
    assert.equal(served.length, 1, 'renewed too early');
    nowMs.value += 15 * 86_400_000;
    assert.equal(await keeper.check(controller.signal), firstCa, 'the CA stays');
    assert.equal(served.length, 2);
    const [before, renewed] = served.map((pair) => certificateFacts(pair.certPem));
    assert.ok(before !== undefined && renewed !== undefined);
    assert.ok(renewed.notAfterMs > before.notAfterMs + 60 * 86_400_000);
    const secret = await kube.get(builtin.secrets, 'renewal-test', { namespace: TIDE_NS });
    const stored = Buffer.from(
      (secret['data'] as Record<string, string>)['tls.crt'] ?? '',
      'base64',
    ).toString();
    assert.equal(certificateFacts(stored)?.fingerprint256, renewed.fingerprint256);
    await kube.delete(builtin.secrets, 'renewal-test', { namespace: TIDE_NS });
  });

  it('serves a renewed certificate to new connections without a restart', async () => {
    const before = await servedFingerprint(port);
    const secret = await kube.get(builtin.secrets, 'tide-webhook-certs', { namespace: TIDE_NS });
    // A serving certificate for other names is replaced at the next check.
    const data = secret['data'] as Record<string, string>;
    const other = await import('../../src/webhook/index.ts').then((webhook) =>
      webhook.issueServing(
        {
          certPem: Buffer.from(data['ca.crt'] ?? '', 'base64').toString(),
          keyPem: Buffer.from(data['ca.key'] ?? '', 'base64').toString(),
        },
        { dnsNames: ['elsewhere.test'], ipAddresses: [], nowMs: Date.now(), validityMs: 86_400_000 },
      ),
    );
    await kube.update(builtin.secrets, {
      ...secret,
      data: {
        ...data,
        'tls.crt': Buffer.from(other.certPem).toString('base64'),
        'tls.key': Buffer.from(other.keyPem).toString('base64'),
      },
    });
    const after = await waitFor(
      'a new certificate on the webhook port',
      async () => {
        const fingerprint = await servedFingerprint(port);
        return fingerprint !== before && fingerprint !== certificateFacts(other.certPem)?.fingerprint256
          ? fingerprint
          : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    assert.notEqual(after, before);
    const dry = await kube.create<PodObject>(builtin.pods, podManifest('after-renewal', SERVERFUL), {
      namespace: NS,
      dryRun: true,
    });
    assert.ok(dry.spec.affinity !== undefined, 'the API server still trusts the webhook');
  });

  it('lets ordinary pods be created while the webhook is down, and refuses opted-in ones', async () => {
    operator?.kill('SIGTERM');
    await operatorExited;
    const ordinary = await kube.create<PodObject>(builtin.pods, podManifest('ordinary', {}), {
      namespace: NS,
    });
    assert.equal(ordinary.metadata?.name, 'ordinary');
    await assert.rejects(
      kube.create(builtin.pods, podManifest('opted-in', SERVERFUL), { namespace: NS }),
      /failed calling webhook "fuse\.serverful\.fluid\.io"/,
    );
  });
});
