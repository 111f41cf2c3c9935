import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startMount, type MountedDataset } from '../integration/fuse/harness.ts';

export const MAIN = join(import.meta.dirname, '..', '..', 'src', 'csi', 'main.ts');

/** Why the tests that mount cannot run here, or false. */
export function mountSkipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (mount(8), FUSE)';
  if (!existsSync('/dev/fuse')) return 'needs /dev/fuse';
  return false;
}

/** A layout like a node's: a kubelet directory and a FUSE mount root, in a temporary directory. */
export interface NodeLayout {
  work: string;
  kubeletDir: string;
  /** The FUSE mount root (`--mount-root`), the parent of fluid_path. */
  mountRoot: string;
  /** Where the dataset's FUSE mount lives (the volume context's fluid_path). */
  fluidPath: string;
  /** The dataset's files. */
  sourceDir: string;
  stateDir: string;
  /** The pod target the kubelet would pass: `<kubelet>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount`. */
  podTarget(uid: string, pv: string): string;
  remove(): Promise<void>;
}

export async function nodeLayout(prefix: string): Promise<NodeLayout> {
  const work = await mkdtemp(join(tmpdir(), prefix));
  const kubeletDir = join(work, 'kubelet');
  const mountRoot = join(work, 'runtime-mnt');
  const fluidPath = join(mountRoot, 'tide', 'default', 'demo', 'tide-fuse');
  const sourceDir = join(work, 'origin');
  await mkdir(kubeletDir, { recursive: true });
  await mkdir(fluidPath, { recursive: true });
  await mkdir(join(sourceDir, 'sub'), { recursive: true });
  await writeFile(join(sourceDir, 'hello.txt'), 'hello from the dataset\n');
  await writeFile(join(sourceDir, 'sub', 'inner.txt'), 'inner\n');
  return {
    work,
    kubeletDir,
    mountRoot,
    fluidPath,
    sourceDir,
    stateDir: join(work, 'state'),
    podTarget: (uid, pv) => join(kubeletDir, 'pods', uid, 'volumes', 'kubernetes.io~csi', pv, 'mount'),
    async remove() {
      // Anything a failed test left mounted under the work directory goes first (deepest first).
      const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
        .split('\n')
        .map((line) => line.split(' ')[4] ?? '')
        .filter((path) => path.startsWith(`${work}/`))
        .sort((a, b) => b.length - a.length);
      for (const path of mounts) spawnSync('umount', ['-l', path]);
      await rm(work, { recursive: true, force: true });
    },
  };
}

/** A real Tide FUSE mount (local source) of the layout's origin at its fluid_path. */
export function mountDataset(layout: NodeLayout): Promise<MountedDataset> {
  return startMount({ sourceDir: layout.sourceDir, target: layout.fluidPath, fuseArgs: ['-oro'] });
}

/** Volume context as a Tide PersistentVolume gives it (src/platform/kube/manifests.ts). */
export function volumeContext(
  layout: NodeLayout,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    fluid_path: layout.fluidPath,
    mount_type: 'fuse.tide',
    runtime_namespace: 'default',
    runtime_name: 'demo',
    mount_pod_node_selector_key: 'fluid.io/f-default-demo',
    mount_pod_node_selector_value: 'true',
    ...extra,
  };
}

export function mountCapability(mode: string): object {
  return { mount: {}, accessMode: { mode } };
}

/** The plugin as a process (`node src/csi/main.ts`), as the DaemonSet and csi-sanity run it. */
export interface PluginProcess {
  socketPath: string;
  logs(): string;
  stop(): Promise<void>;
}

export async function spawnPlugin(args: string[], socketPath: string): Promise<PluginProcess> {
  const env = { ...process.env };
  delete env['KUBERNETES_SERVICE_HOST'];
  delete env['KUBERNETES_SERVICE_PORT'];
  const child: ChildProcess = spawn(process.execPath, [MAIN, '--endpoint', `unix://${socketPath}`, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  let logs = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    logs += chunk;
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      resolve();
    }),
  );
  const deadline = Date.now() + 20_000;
  while (!logs.includes('CSI node plugin serving')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the plugin did not start serving; its log:\n${logs}`);
    }
    await sleep(50);
  }
  return {
    socketPath,
    logs: () => logs,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The csi-sanity binary of scripts/test-deps.d/50-csi-sanity.sh. */
export function csiSanityPath(): string {
  const peers = process.env['TIDE_PEERS_DIR'] ?? join(homedir(), '.cache', 'tide-peers');
  return process.env['TIDE_CSI_SANITY'] ?? join(peers, 'csi-sanity-v5.6.0', 'csi-sanity');
}

/** Polls `check` every 100 ms until it holds, failing after `timeoutMs` with `what`. */
export async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - started;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}
