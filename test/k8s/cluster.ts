/**
 * A real, throw-away Kubernetes control plane for tests: etcd + kube-apiserver (fast tier), plus
 * kube-controller-manager, kube-scheduler and kwok-controller with fake Nodes (full tier).
 * Everything listens on 127.0.0.1 only, on free ports, with a fresh PKI in a temp dir.
 * Binaries come from hack/k8s-bins/build.sh (built once into ~/.cache/tide-k8s).
 *
 * Child processes run in their own process groups and get SIGKILL from the kernel if this
 * process dies (setpriv --pdeathsig), so nothing survives a crashed test run either.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, openSync, rmSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { networkInterfaces, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeClient, builtin, type KubeObject } from '../../src/kube/index.ts';
import { acquireSlot, NODES_PER_SLOT, setUpSlotNetwork, sweepSlot, type NodeSlot } from './node-slot.ts';
import { TestCa } from './pki.ts';
import { freePort, isAlive, tail } from './proc.ts';
import { startRealNode, type RealNode } from './real-node.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const BUILD_SCRIPT = join(REPO, 'hack', 'k8s-bins', 'build.sh');
const KWOK_STAGES = join(HERE, 'kwok-stages.yaml');
export const K8S_BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kwok',
  'kubelet',
] as const;
export type ComponentName = Exclude<(typeof K8S_BINARIES)[number], 'kubelet'>;

/** Annotation kwok-controller selects the Nodes it manages by. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';

export interface BinariesStatus {
  binDir: string;
  missing: (typeof K8S_BINARIES)[number][];
  goAvailable: boolean;
}

/** Where the binaries are and which are missing, without building. Synchronous, for `describe({ skip })`. */
export function k8sBinariesStatus(): BinariesStatus {
  const printed = spawnSync(BUILD_SCRIPT, ['--print'], { encoding: 'utf8' });
  if (printed.status !== 0) throw new Error(`${BUILD_SCRIPT} --print failed: ${printed.stderr}`);
  const binDir = printed.stdout.trim().split('\n').at(-1) ?? '';
  const missing = K8S_BINARIES.filter((b) => !existsSync(join(binDir, b)));
  const goAvailable = spawnSync('go', ['version'], { encoding: 'utf8' }).status === 0;
  return { binDir, missing, goAvailable };
}

/**
 * Why a Kubernetes suite cannot run on this machine, in one line, or false. In CI (`CI` set) it is
 * always false: .ci/run installs every part, so a missing one must fail the suite, not skip it.
 */
export function k8sSuiteSkipReason(needs: { realNode?: boolean } = {}): string | false {
  if (process.env['CI'] !== undefined && process.env['CI'] !== '') return false;
  const status = k8sBinariesStatus();
  if (status.missing.length > 0 && !status.goAvailable) {
    return `go is not installed, so the Kubernetes binaries (${status.missing.join(', ')}) cannot be built into ${status.binDir}`;
  }
  if (needs.realNode === true) {
    if (process.getuid?.() !== 0) return 'a real node (kubelet, containerd, mounts, bridges) needs root';
    const missing = ['containerd', 'runc', 'ctr', 'iptables', 'ip'].filter(
      (tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0,
    );
    if (missing.length > 0) {
      return `${missing.join(', ')} not installed (scripts/test-deps.d/10-debian.sh installs them; npm test runs it)`;
    }
  }
  return false;
}

/**
 * Runs hack/k8s-bins/build.sh (a no-op when the binaries are cached) and returns the bin dir.
 * Build progress goes to `<cache>/build.log`; its `build.sh:` lines (per-binary seconds) are echoed to stderr.
 */
export async function ensureK8sBinaries(options: { signal?: AbortSignal | undefined } = {}): Promise<string> {
  const status = k8sBinariesStatus();
  if (status.missing.length === 0) return status.binDir;
  const logPath = join(dirname(status.binDir), 'build.log');
  await mkdir(dirname(logPath), { recursive: true });
  const log = openSync(logPath, 'a');
  let stdout = '';
  try {
    const child = spawn(BUILD_SCRIPT, [], { stdio: ['ignore', 'pipe', 'pipe'], signal: options.signal });
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      safeWrite(log, s);
      for (const line of s.split('\n')) if (line.startsWith('build.sh:')) process.stderr.write(`${line}\n`);
    });
    const code = await new Promise<number | null>((res, rej) => child.once('error', rej).once('close', res));
    if (code !== 0) {
      throw new Error(
        `hack/k8s-bins/build.sh failed with exit code ${String(code)}; see ${logPath}:\n${tail(logPath, 30)}`,
      );
    }
  } finally {
    closeSync(log);
  }
  return stdout.trim().split('\n').at(-1) ?? status.binDir;
}

function safeWrite(fd: number, s: string): void {
  try {
    writeSync(fd, s);
  } catch {
    // Logging must not break the build.
  }
}

export interface FakeNode {
  name: string;
  labels?: Record<string, string> | undefined;
  /** Default `{ cpu: '32', memory: '256Gi', pods: '110' }`. */
  capacity?: Record<string, string> | undefined;
  taints?:
    { key: string; value?: string; effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute' }[] | undefined;
}

export interface StartClusterOptions {
  /** `apiserver`: etcd + kube-apiserver (CRDs, validation, webhooks, watch). `full` adds kcm, scheduler and kwok. Default `full`. */
  components?: 'apiserver' | 'full' | undefined;
  /** Fake nodes kwok manages (full tier). Default: three nodes `kwok-node-{0,1,2}`. */
  nodes?: readonly FakeNode[] | undefined;
  /** Directory with the five binaries; default: `ensureK8sBinaries()`. */
  binDir?: string | undefined;
  /** Per-component readiness deadline; default 120 000 ms (2-core CI machines are slow). */
  startTimeoutMs?: number | undefined;
  /** Keep the temp dir (logs, kubeconfig) after stop(), for debugging. */
  keepDir?: boolean | undefined;
  extraApiServerArgs?: readonly string[] | undefined;
  /**
   * Real nodes (kubelet + containerd each, real-node.ts) beside the kwok nodes (full tier only), at
   * most NODES_PER_SLOT. The caller imports their images (`importImages` of each).
   */
  realNodes?: number | undefined;
  /** Labels of every real node. */
  realNodeLabels?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

export interface TestCluster {
  kubeconfigPath: string;
  /** `https://127.0.0.1:<port>` */
  server: string;
  caPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  /** Temp dir holding pki/, logs/, etcd data and the kubeconfig. */
  dir: string;
  binDir: string;
  /** An admin client (system:masters) on the cluster; closed by stop(). */
  client: KubeClient;
  /** The CA every certificate of the cluster is issued by. */
  ca: TestCa;
  /** The real nodes asked for with `realNodes`, `tide-node-0` first. */
  realNodes: RealNode[];
  /** An address on the real nodes' pod bridge that pods reach: serve an origin for them here. */
  podReachableIp: string | undefined;
  /** The `kubernetes` Service's ClusterIP (routed to the API server only on the real nodes). */
  apiServiceIp: string;
  /** Milliseconds from the call to a ready cluster. */
  startupMs: number;
  logPath(component: ComponentName): string;
  logTail(component: ComponentName, lines?: number): string;
  /** Kills every component (process groups) and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULT_NODES: readonly FakeNode[] = [
  { name: 'kwok-node-0', labels: { 'tide.io/pool': 'cache', 'topology.kubernetes.io/zone': 'zone-a' } },
  { name: 'kwok-node-1', labels: { 'tide.io/pool': 'cache', 'topology.kubernetes.io/zone': 'zone-b' } },
  { name: 'kwok-node-2', labels: { 'tide.io/pool': 'compute', 'topology.kubernetes.io/zone': 'zone-a' } },
];

interface Component {
  name: ComponentName;
  child: ChildProcess;
  logPath: string;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  exited: Promise<void>;
}

/** The first non-loopback IPv4 address; kube-apiserver's --advertise-address may not be loopback. */
function advertiseAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

const hasSetpriv = spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0;

interface HttpAnswer {
  statusCode: number;
  body: string;
}

/** GET for health probes; `tls` is omitted for plain http. */
async function probe(
  url: string,
  tls: { ca: string; cert?: string; key?: string } | undefined,
  timeoutMs = 5_000,
): Promise<HttpAnswer> {
  return new Promise((res, rej) => {
    const transport = url.startsWith('https:') ? https : http;
    const req = transport.get(url, { ...(tls ?? {}), timeout: timeoutMs, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (s: string) => (body += s));
      response.once('end', () => {
        res({ statusCode: response.statusCode ?? 0, body });
      });
      response.once('error', rej);
    });
    req.once('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.once('error', rej);
  });
}

/**
 * Starts a cluster. Rejects (after stopping what it started) with an error naming the component
 * that did not become ready and the tail of its log.
 */
export async function startCluster(options: StartClusterOptions = {}): Promise<TestCluster> {
  const t0 = performance.now();
  const full = (options.components ?? 'full') === 'full';
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  const signal = options.signal;
  const binDir = options.binDir ?? (await ensureK8sBinaries({ signal }));
  await sweepStaleDirs();
  const dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  await writeFile(join(dir, OWNER_FILE), String(process.pid));
  const components: Component[] = [];
  let stopped = false;
  let slot: NodeSlot | undefined;
  const realNodes: RealNode[] = [];

  const killAllSync = (): void => {
    for (const c of components) {
      if (c.exit === undefined && c.child.pid !== undefined) {
        try {
          process.kill(-c.child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    if (options.keepDir !== true) rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killAllSync);

  const stop = async (keep: 'nothing' | 'logs' = 'nothing'): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', killAllSync);
    // The node first: its pods talk to the API server until they are gone.
    await Promise.all(realNodes.map((node) => node.stop()));
    if (slot !== undefined) await sweepSlot(slot);
    client?.close();
    // Dependents first, etcd last, so nothing logs storms of connection errors.
    const order: ComponentName[][] = [
      ['kwok', 'kube-scheduler', 'kube-controller-manager'],
      ['kube-apiserver'],
      ['etcd'],
    ];
    for (const names of order) {
      await Promise.all(components.filter((c) => names.includes(c.name)).map((c) => terminate(c, 3_000)));
    }
    if (options.keepDir === true) return;
    if (keep === 'nothing') {
      await rm(dir, { recursive: true, force: true });
      return;
    }
    for (const entry of await readdir(dir)) {
      if (entry !== 'logs') await rm(join(dir, entry), { recursive: true, force: true });
    }
  };

  let client: KubeClient | undefined;
  try {
    const pkiDir = join(dir, 'pki');
    const logDir = join(dir, 'logs');
    await mkdir(pkiDir, { recursive: true });
    await mkdir(logDir, { recursive: true });

    const realNodeCount = full ? (options.realNodes ?? 0) : 0;
    if (realNodeCount > NODES_PER_SLOT) throw new RangeError(`At most ${NODES_PER_SLOT} real nodes`);
    if (realNodeCount > 0) slot = await acquireSlot();
    const apiServiceIp = slot?.apiServiceIp ?? '10.96.0.1';
    const ca = await TestCa.create(pkiDir, { name: 'ca', commonName: 'tide-test-ca', signal });
    const [serving, admin] = await Promise.all([
      ca.issue({
        name: 'serving',
        commonName: 'kube-apiserver',
        dnsNames: [
          'localhost',
          'kubernetes',
          'kubernetes.default',
          'kubernetes.default.svc',
          'kubernetes.default.svc.cluster.local',
        ],
        ipAddresses: ['127.0.0.1', apiServiceIp],
        usage: 'server',
        signal,
      }),
      ca.issue({
        name: 'admin',
        commonName: 'tide-admin',
        organization: 'system:masters',
        usage: 'client',
        signal,
      }),
    ]);
    const sa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const saKeyPath = join(pkiDir, 'sa.key');
    const saPubPath = join(pkiDir, 'sa.pub');
    await writeFile(saKeyPath, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await writeFile(saPubPath, sa.publicKey.export({ type: 'spki', format: 'pem' }));

    const [etcdPort, etcdPeerPort, apiPort, kcmPort, schedPort, kwokPort] = (await Promise.all(
      Array.from({ length: 6 }, () => freePort()),
    )) as [number, number, number, number, number, number];
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfigPath = join(dir, 'kubeconfig');
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    // JSON is YAML: kubectl, client-go and our own loader all read it.
    await writeFile(
      kubeconfigPath,
      JSON.stringify(
        {
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            { name: 'tide-test', cluster: { server, 'certificate-authority-data': b64(ca.files.certPem) } },
          ],
          users: [
            {
              name: 'admin',
              user: { 'client-certificate-data': b64(admin.certPem), 'client-key-data': b64(admin.keyPem) },
            },
          ],
          contexts: [
            { name: 'tide-test', context: { cluster: 'tide-test', user: 'admin', namespace: 'default' } },
          ],
          'current-context': 'tide-test',
        },
        null,
        2,
      ),
      { mode: 0o600 },
    );

    const launch = (name: ComponentName, args: readonly string[]): Component => {
      const logPath = join(logDir, `${name}.log`);
      const fd = openSync(logPath, 'a');
      const bin = join(binDir, name);
      const [cmd, argv] = hasSetpriv
        ? ['setpriv', ['--pdeathsig', 'KILL', '--', bin, ...args]]
        : [bin, [...args]];
      const child = spawn(cmd, argv, { detached: true, stdio: ['ignore', fd, fd], cwd: dir });
      closeSync(fd);
      const component: Component = { name, child, logPath, exit: undefined, exited: Promise.resolve() };
      component.exited = new Promise((res) => {
        child.once('exit', (code, sig) => {
          component.exit = { code, signal: sig };
          res();
        });
        child.once('error', (error) => {
          component.exit = { code: -1, signal: null };
          appendFileSync(logPath, `spawn failed: ${String(error)}\n`);
          res();
        });
      });
      components.push(component);
      return component;
    };

    const waitReady = async (
      component: Component,
      what: string,
      check: () => Promise<boolean>,
    ): Promise<void> => {
      const deadline = performance.now() + timeoutMs;
      let last = 'no answer yet';
      for (;;) {
        signal?.throwIfAborted();
        if (component.exit !== undefined) {
          throw new Error(
            `${component.name} exited (code ${String(component.exit.code)}, signal ${String(component.exit.signal)}) before ${what}; ` +
              `last lines of ${component.logPath}:\n${tail(component.logPath)}`,
          );
        }
        try {
          if (await check()) return;
        } catch (error) {
          last = error instanceof Error ? error.message : String(error);
        }
        if (performance.now() > deadline) {
          throw new Error(
            `${component.name} did not become ready (${what}) within ${timeoutMs} ms (last probe: ${last}); ` +
              `last lines of ${component.logPath}:\n${tail(component.logPath)}`,
          );
        }
        await sleep(150);
      }
    };

    const tlsProbe = { ca: ca.files.certPem, cert: admin.certPem, key: admin.keyPem };

    const etcd = launch('etcd', [
      '--name=tide-test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=tide-test=http://127.0.0.1:${etcdPeerPort}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitReady(etcd, `GET http://127.0.0.1:${etcdPort}/health`, async () => {
      const answer = await probe(`http://127.0.0.1:${etcdPort}/health`, undefined);
      return answer.statusCode === 200 && answer.body.includes('"true"');
    });

    const advertise = advertiseAddress();
    const apiserver = launch('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      ...(advertise === undefined ? [] : [`--advertise-address=${advertise}`]),
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${serving.certPath}`,
      `--tls-private-key-file=${serving.keyPath}`,
      `--client-ca-file=${ca.files.certPath}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${saPubPath}`,
      `--service-account-signing-key-file=${saKeyPath}`,
      `--service-cluster-ip-range=${slot?.serviceRange ?? '10.96.0.0/16'}`,
      // For logs and exec on the real node's pods.
      `--kubelet-client-certificate=${admin.certPath}`,
      `--kubelet-client-key=${admin.keyPath}`,
      // Node names resolve nowhere here; a real node's InternalIP is on its pod bridge.
      '--kubelet-preferred-address-types=InternalIP',
      // Webhook and aggregated-API Services resolve to their endpoints (pod addresses a real node
      // routes), as there is no kube-proxy for ClusterIPs.
      '--enable-aggregator-routing=true',
      '--authorization-mode=Node,RBAC',
      '--allow-privileged=true',
      // No kubelet or kube-proxy: the kubernetes Service endpoints would point nowhere.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      // Without kcm nobody creates the default ServiceAccount pods would need.
      ...(full ? [] : ['--disable-admission-plugins=ServiceAccount']),
      ...(options.extraApiServerArgs ?? []),
    ]);
    await waitReady(apiserver, `GET ${server}/readyz`, async () => {
      const answer = await probe(`${server}/readyz`, tlsProbe);
      if (answer.statusCode !== 200) throw new Error(`HTTP ${answer.statusCode}: ${answer.body.slice(-300)}`);
      return true;
    });
    client = new KubeClient({
      server,
      caPem: ca.files.certPem,
      clientCertPem: admin.certPem,
      clientKeyPem: admin.keyPem,
      namespace: 'default',
    });

    if (full) {
      const common = [
        `--kubeconfig=${kubeconfigPath}`,
        `--authentication-kubeconfig=${kubeconfigPath}`,
        `--authorization-kubeconfig=${kubeconfigPath}`,
        '--bind-address=127.0.0.1',
        `--tls-cert-file=${serving.certPath}`,
        `--tls-private-key-file=${serving.keyPath}`,
        '--leader-elect=false',
      ];
      const kcm = launch('kube-controller-manager', [
        ...common,
        `--secure-port=${kcmPort}`,
        `--root-ca-file=${ca.files.certPath}`,
        `--service-account-private-key-file=${saKeyPath}`,
        `--cluster-signing-cert-file=${ca.files.certPath}`,
        `--cluster-signing-key-file=${ca.files.keyPath}`,
        '--use-service-account-credentials=false',
      ]);
      const scheduler = launch('kube-scheduler', [...common, `--secure-port=${schedPort}`]);
      const kwok = launch('kwok', [
        `--kubeconfig=${kubeconfigPath}`,
        `--config=${KWOK_STAGES}`,
        '--manage-all-nodes=false',
        `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
        `--server-address=127.0.0.1:${kwokPort}`,
        '--cidr=10.244.0.0/16',
        '--node-ip=10.243.0.1',
      ]);
      await Promise.all([
        waitReady(
          kcm,
          `GET https://127.0.0.1:${kcmPort}/healthz`,
          async () => (await probe(`https://127.0.0.1:${kcmPort}/healthz`, tlsProbe)).statusCode === 200,
        ),
        waitReady(
          scheduler,
          `GET https://127.0.0.1:${schedPort}/healthz`,
          async () => (await probe(`https://127.0.0.1:${schedPort}/healthz`, tlsProbe)).statusCode === 200,
        ),
        waitReady(
          kwok,
          `GET http://127.0.0.1:${kwokPort}/healthz`,
          async () => (await probe(`http://127.0.0.1:${kwokPort}/healthz`, undefined)).statusCode === 200,
        ),
      ]);

      const nodes = options.nodes ?? DEFAULT_NODES;
      const api = client;
      await Promise.all(nodes.map((n) => api.create(builtin.nodes, fakeNodeObject(n), { signal })));
      await waitReady(kwok, `${nodes.length} fake nodes Ready`, async () => {
        const list = await api.list(builtin.nodes, { signal });
        const ready = list.items.filter((n) => isReady(n)).length;
        if (ready < nodes.length) throw new Error(`${ready}/${nodes.length} nodes Ready`);
        return true;
      });
      await waitReady(kcm, 'the default ServiceAccount exists in namespace default', async () => {
        await api.get(builtin.serviceAccounts, 'default', { namespace: 'default', signal });
        return true;
      });
      if (slot !== undefined) {
        await setUpSlotNetwork(slot, apiPort);
        const nodeSlot = slot;
        // One at a time: two kubelets registering at once on two cores only slow each other.
        for (let index = 0; index < realNodeCount; index++) {
          realNodes.push(
            await startRealNode({
              slot: nodeSlot,
              index,
              ca,
              server,
              client: api,
              kubeletBinary: join(binDir, 'kubelet'),
              labels: options.realNodeLabels,
              timeoutMs,
              signal,
            }),
          );
        }
      }
    }

    const readClient = client;
    return {
      kubeconfigPath,
      server,
      caPem: ca.files.certPem,
      clientCertPem: admin.certPem,
      clientKeyPem: admin.keyPem,
      dir,
      binDir,
      client: readClient,
      ca,
      realNodes,
      podReachableIp: slot?.hostIp,
      apiServiceIp,
      startupMs: Math.round(performance.now() - t0),
      logPath: (name) => join(logDir, `${name}.log`),
      logTail: (name, lines = 40) => tail(join(logDir, `${name}.log`), lines),
      stop: () => stop(),
      [Symbol.asyncDispose]: () => stop(),
    };
  } catch (error) {
    // Keep the logs a failed start points at; everything else goes.
    await stop('logs');
    throw error;
  }
}

const DIR_PREFIX = 'tide-k8s-';
const OWNER_FILE = 'owner.pid';

/**
 * Removes cluster dirs whose owning process died without stop() (SIGKILL, OOM). Their
 * components are already gone: they ran with a parent-death signal.
 */
async function sweepStaleDirs(): Promise<void> {
  const root = tmpdir();
  for (const entry of await readdir(root)) {
    if (!entry.startsWith(DIR_PREFIX)) continue;
    let owner: number;
    try {
      owner = Number(await readFile(join(root, entry, OWNER_FILE), 'utf8'));
    } catch {
      continue;
    }
    if (!Number.isInteger(owner) || owner <= 0 || isAlive(owner)) continue;
    await rm(join(root, entry), { recursive: true, force: true });
  }
}

function isReady(node: KubeObject): boolean {
  const conditions =
    (node['status'] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

function fakeNodeObject(node: FakeNode): KubeObject {
  const capacity = node.capacity ?? { cpu: '32', memory: '256Gi', pods: '110' };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: node.name,
      annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/hostname': node.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node-role.kubernetes.io/agent': '',
        type: 'kwok',
        ...node.labels,
      },
    },
    spec: { ...(node.taints !== undefined && { taints: node.taints }) },
    status: { capacity, allocatable: capacity },
  };
}

function isRunning(component: Component): boolean {
  return component.exit === undefined;
}

/** SIGTERM to the process group, SIGKILL after `graceMs`. */
async function terminate(component: Component, graceMs: number): Promise<void> {
  const pid = component.child.pid;
  if (component.exit !== undefined || pid === undefined) return;
  const signalGroup = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // group already gone
    }
  };
  signalGroup('SIGTERM');
  const cancel = new AbortController();
  await Promise.race([
    component.exited,
    sleep(graceMs, undefined, { signal: cancel.signal }).catch(() => undefined),
  ]);
  cancel.abort();
  if (isRunning(component)) {
    signalGroup('SIGKILL');
    await component.exited;
  }
}

/** Resolves with `value` once `probeFn` returns it (not undefined); rejects with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probeFn: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal | undefined },
): Promise<T> {
  const deadline = performance.now() + options.timeoutMs;
  let last = '';
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const value = await probeFn();
      if (value !== undefined) return value;
    } catch (error) {
      last = `; last error: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (performance.now() > deadline)
      throw new Error(`Timed out after ${options.timeoutMs} ms waiting for ${what}${last}`);
    await sleep(options.intervalMs ?? 200);
  }
}
