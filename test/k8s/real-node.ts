/**
 * A real node for the test cluster: containerd, runc and the CNI plugins from Debian, and the
 * kubelet built from the Go module proxy with the other components. Pods run for real, with the
 * images of images/build imported into containerd (no registry).
 *
 * Networking stays on this machine: pods sit on a bridge of the node's slot (node-slot.ts) with
 * addresses in a private /24, the kubelet and servers the pods must reach listen on the bridge's
 * address, and a NAT chain does for the `kubernetes` Service what kube-proxy would: it sends
 * `<apiServiceIp>:443` to the API server on loopback.
 *
 * What this machine needs and why (kubernetes-data-path.md §1): containerd clamps sandboxes'
 * oom_score_adj to its own (`restrict_oom_score_adj`; the VM lacks CAP_SYS_RESOURCE, so -998 fails
 * in runc with "can't get final child's PID from pipe: EOF"), the kubelet keeps oomScoreAdj 0, `/` is
 * made rshared for Bidirectional/HostToContainer mounts, and cgroups are cgroupfs (no systemd).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { builtin, type KubeClient, type KubeObject } from '../../src/kube/index.ts';
import type { TestCa } from './pki.ts';
import {
  createCgroup,
  killCgroup,
  nodeIp,
  podRange,
  recordSlotDir,
  unmountBelow,
  type NodeSlot,
} from './node-slot.ts';
import { freePort, tail } from './proc.ts';

const run = promisify(execFile);

export interface RealNodeOptions {
  /** The cluster's slot; its network is set up (`setUpSlotNetwork`). */
  slot: NodeSlot;
  /** Which of the slot's nodes this is (0 … NODES_PER_SLOT-1). */
  index: number;
  ca: TestCa;
  /** The API server on loopback, `https://127.0.0.1:<port>`. */
  server: string;
  /** Admin client of the cluster, to wait for the Node. */
  client: KubeClient;
  kubeletBinary: string;
  /** Node name; default `tide-node-<index>`. */
  name?: string | undefined;
  labels?: Record<string, string> | undefined;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface RealNode {
  name: string;
  /** The node's address on the pod bridge (its kubelet and host-network pods). */
  ip: string;
  /** The kubelet's `--root-dir` (CSI registration lives in its `plugins_registry/`). */
  kubeletDir: string;
  /** A directory under the node's own directory for FUSE mounts (`runtime.mountRoot`) and tiers. */
  hostDataDir: string;
  dir: string;
  containerdSocket: string;
  logPath(component: 'containerd' | 'kubelet'): string;
  logTail(component: 'containerd' | 'kubelet', lines?: number): string;
  /** `ctr -n k8s.io ARGS` against the node's containerd. */
  ctr(args: readonly string[]): Promise<string>;
  /** Imports OCI layout archives into containerd as `ref` (e.g. `tide.local/tide-worker:dev`). */
  importImages(images: readonly { ref: string; archive: string }[]): Promise<void>;
  stop(): Promise<void>;
}

/** Makes `/` a shared mount (once per boot), so that Bidirectional and HostToContainer mounts work. */
async function ensureSharedRoot(): Promise<void> {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === '/');
  if (line !== undefined && / shared:\d+/.test(line)) return;
  await run('mount', ['--make-rshared', '/']);
}

function containerdConfig(dir: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
[grpc]
  address = "${dir}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "tide.local/pause:3"
  # The VM lacks CAP_SYS_RESOURCE: sandboxes' -998 would fail in runc.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni"
    max_conf_num = 1
`;
}

function cniConfig(dir: string, slot: NodeSlot, index: number): string {
  const [rangeStart, rangeEnd] = podRange(slot, index);
  return JSON.stringify({
    cniVersion: '0.4.0',
    name: 'tide-test',
    plugins: [
      {
        type: 'bridge',
        bridge: slot.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: slot.podSubnet, rangeStart, rangeEnd, gateway: slot.hostIp }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: join(dir, 'cni-ipam'),
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  });
}

function kubeletConfig(o: {
  dir: string;
  ip: string;
  cgroup: string;
  port: number;
  healthzPort: number;
  caPath: string;
  certPath: string;
  keyPath: string;
}): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: o.ip,
    port: o.port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: o.healthzPort,
    tlsCertFile: o.certPath,
    tlsPrivateKeyFile: o.keyPath,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: false },
      x509: { clientCAFile: o.caPath },
    },
    // Only holders of the test CA's certificates reach the kubelet at all.
    authorization: { mode: 'AlwaysAllow' },
    containerRuntimeEndpoint: `unix://${o.dir}/containerd.sock`,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${o.cgroup}`,
    failCgroupV1: false,
    failSwapOn: false,
    // Lowering it needs CAP_SYS_RESOURCE, which this VM lacks.
    oomScoreAdj: 0,
    podLogsDir: join(o.dir, 'pod-logs'),
    resolvConf: '/etc/resolv.conf',
    staticPodPath: '',
    registerNode: true,
    serializeImagePulls: false,
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'nodefs.available': '2%', 'imagefs.available': '2%', 'memory.available': '100Mi' },
    // Pods come and go in seconds in tests; the defaults are tuned for minutes.
    syncFrequency: '5s',
    nodeStatusUpdateFrequency: '5s',
    volumeStatsAggPeriod: '10s',
    shutdownGracePeriod: '0s',
  });
}

export async function startRealNode(options: RealNodeOptions): Promise<RealNode> {
  const { slot, ca, client, signal } = options;
  const name = options.name ?? `tide-node-${options.index}`;
  const ip = nodeIp(slot, options.index);
  // The node's pods (the kubelet's cgroupRoot) and its runtime, kubelet and shims (`runtime/`).
  const cgroup = `${slot.cgroup}/node-${options.index}`;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const dir = await mkdtemp(join(tmpdir(), 'tide-node-'));
  await recordSlotDir(slot, dir);
  const children: { name: string; child: ChildProcess; exited: Promise<void>; done: boolean }[] = [];
  const logDir = join(dir, 'logs');
  const kubeletDir = join(dir, 'kubelet');
  const hostDataDir = join(dir, 'host');
  const socket = join(dir, 'containerd.sock');
  const logPath = (component: 'containerd' | 'kubelet'): string => join(logDir, `${component}.log`);

  const launch = (component: 'containerd' | 'kubelet', argv: readonly string[], cgroup?: string): void => {
    const fd = openSync(logPath(component), 'a');
    // The runtime joins a cgroup of the slot, so its shims (and thus every container) can be found and killed.
    const join = cgroup === undefined ? '' : `echo $$ > /sys/fs/cgroup/pids/${cgroup}/cgroup.procs && `;
    const child = spawn(
      'setpriv',
      ['--pdeathsig', 'KILL', '--', 'sh', '-c', `${join}exec "$@"`, 'sh', ...argv],
      {
        detached: true,
        stdio: ['ignore', fd, fd],
        cwd: dir,
      },
    );
    closeSync(fd);
    const entry = { name: component, child, exited: Promise.resolve(), done: false };
    entry.exited = new Promise((resolve) => {
      child.once('exit', () => {
        entry.done = true;
        resolve();
      });
    });
    children.push(entry);
  };

  const ctr = async (args: readonly string[]): Promise<string> => {
    const { stdout } = await run('ctr', ['--address', socket, '-n', 'k8s.io', ...args], {
      maxBuffer: 16 << 20,
    });
    return stdout;
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const kubelet = children.find((c) => c.name === 'kubelet');
    if (kubelet !== undefined && !kubelet.done) {
      process.kill(-(kubelet.child.pid ?? 0), 'SIGTERM');
      await Promise.race([kubelet.exited, sleep(3_000)]);
    }
    // Everything in the node's cgroups: containers, shims, containerd, the kubelet if it lingers.
    await killCgroup(cgroup);
    for (const c of children) {
      if (!c.done) {
        try {
          process.kill(-(c.child.pid ?? 0), 'SIGKILL');
        } catch {
          // gone
        }
        await c.exited;
      }
    }
    await unmountBelow(dir);
    await rm(dir, { recursive: true, force: true });
  };

  const waitFor = async (
    what: string,
    check: () => Promise<boolean>,
    component: 'containerd' | 'kubelet',
  ): Promise<void> => {
    const deadline = performance.now() + timeoutMs;
    let last = '';
    for (;;) {
      signal?.throwIfAborted();
      const entry = children.find((c) => c.name === component);
      if (entry?.done === true)
        throw new Error(
          `${component} exited before ${what}; last lines of ${logPath(component)}:\n${tail(logPath(component))}`,
        );
      try {
        if (await check()) return;
      } catch (error) {
        last = error instanceof Error ? error.message : String(error);
      }
      if (performance.now() > deadline) {
        throw new Error(
          `${what} within ${timeoutMs} ms failed (last: ${last}); last lines of ${logPath(component)}:\n${tail(logPath(component))}`,
        );
      }
      await sleep(250);
    }
  };

  try {
    await Promise.all(
      [logDir, kubeletDir, hostDataDir, join(dir, 'cni'), join(dir, 'pod-logs')].map((d) =>
        mkdir(d, { recursive: true }),
      ),
    );
    await ensureSharedRoot();
    if (options.index > 0) await run('ip', ['addr', 'add', `${ip}/24`, 'dev', slot.bridge]);
    await createCgroup(cgroup);
    await mkdir(`/sys/fs/cgroup/pids/${cgroup}/runtime`, { recursive: true });

    const pkiDir = join(dir, 'pki');
    await mkdir(pkiDir);
    const [clientCert, servingCert] = await Promise.all([
      ca.issue({
        name: 'kubelet-client',
        commonName: `system:node:${name}`,
        organization: 'system:nodes',
        usage: 'client',
        signal,
      }),
      ca.issue({
        name: 'kubelet-serving',
        commonName: name,
        dnsNames: [name],
        ipAddresses: [ip],
        usage: 'server',
        signal,
      }),
    ]);
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const kubeconfig = join(dir, 'kubelet.kubeconfig');
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'tide-test',
            cluster: { server: options.server, 'certificate-authority-data': b64(ca.files.certPem) },
          },
        ],
        users: [
          {
            name: 'kubelet',
            user: {
              'client-certificate-data': b64(clientCert.certPem),
              'client-key-data': b64(clientCert.keyPem),
            },
          },
        ],
        contexts: [{ name: 'tide-test', context: { cluster: 'tide-test', user: 'kubelet' } }],
        'current-context': 'tide-test',
      }),
      { mode: 0o600 },
    );

    await writeFile(join(dir, 'containerd.toml'), containerdConfig(dir));
    await writeFile(join(dir, 'cni', '10-tide.conflist'), cniConfig(dir, slot, options.index));
    launch('containerd', ['containerd', '--config', join(dir, 'containerd.toml')], `${cgroup}/runtime`);
    await waitFor(
      'containerd answering on its socket',
      async () => existsSync(socket) && (await ctr(['version'])) !== '',
      'containerd',
    );

    const [port, healthzPort] = await Promise.all([freePort(), freePort()]);
    await writeFile(
      join(dir, 'kubelet.json'),
      kubeletConfig({
        dir,
        ip,
        cgroup,
        port,
        healthzPort,
        caPath: ca.files.certPath,
        certPath: servingCert.certPath,
        keyPath: servingCert.keyPath,
      }),
    );
    const labels = Object.entries({ 'tide.io/node': 'real', ...options.labels })
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    launch(
      'kubelet',
      [
        options.kubeletBinary,
        `--config=${join(dir, 'kubelet.json')}`,
        `--kubeconfig=${kubeconfig}`,
        `--root-dir=${kubeletDir}`,
        `--hostname-override=${name}`,
        `--node-ip=${ip}`,
        `--node-labels=${labels}`,
        '--v=2',
      ],
      `${cgroup}/runtime`,
    );
    await waitFor(
      `Node ${name} Ready`,
      async () => {
        const node = await client.get(builtin.nodes, name, { signal });
        const ready = isReady(node);
        if (!ready) throw new Error(`Node ${name} not Ready yet: ${conditionSummary(node)}`);
        return true;
      },
      'kubelet',
    );
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    name,
    ip,
    kubeletDir,
    hostDataDir,
    dir,
    containerdSocket: socket,
    logPath,
    logTail: (component, lines) => tail(logPath(component), lines),
    ctr,
    importImages: async (images) => {
      for (const image of images) {
        const base = image.ref.replace(/:[^:/]+$/, '');
        await ctr(['images', 'import', '--base-name', base, image.archive]);
        const listed = (await ctr(['images', 'ls', '-q'])).split('\n');
        if (!listed.includes(image.ref))
          throw new Error(
            `importing ${image.archive} did not give ${image.ref}; containerd has: ${listed.join(' ')}`,
          );
      }
    },
    stop,
  };
}

function isReady(node: KubeObject): boolean {
  const conditions =
    (node['status'] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

function conditionSummary(node: KubeObject): string {
  const conditions =
    (node['status'] as { conditions?: { type: string; status: string; message?: string }[] } | undefined)
      ?.conditions ?? [];
  return conditions
    .map((c) => `${c.type}=${c.status}${c.message === undefined ? '' : ` (${c.message})`}`)
    .join('; ');
}
