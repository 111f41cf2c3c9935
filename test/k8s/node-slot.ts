/**
 * The machine-wide resources of one test cluster's real nodes: a slot number that names their bridge,
 * pod subnet, service range, NAT chain and cgroup, so that two test files running real nodes at once
 * never share one. The nodes of a slot share its bridge (pods of different nodes are neighbours on
 * it, so no forwarding is needed); node `i` has address `.1+i` and pod addresses `.64(i+1)…+63`. A slot is held by an owner file `/run/tide-test-nodes/slot-<n>.json`; a slot whose owner died
 * (SIGKILL, OOM) is swept, with everything it names, before it is handed out again.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isAlive } from './proc.ts';

const run = promisify(execFile);
const SLOT_DIR = '/run/tide-test-nodes';
const SLOTS = 24;
const CGROUP_ROOT = '/sys/fs/cgroup';

export interface NodeSlot {
  index: number;
  /** The Linux bridge the pods are attached to; the node's address is on it. */
  bridge: string;
  /** Node 0's address on the bridge; servers the pods must reach (an origin) listen here. */
  hostIp: string;
  /** The bridge's subnet: every node's and pod's address. */
  podSubnet: string;
  /** `--service-cluster-ip-range` of the cluster; its first address is the `kubernetes` Service. */
  serviceRange: string;
  /** The `kubernetes` Service's ClusterIP, NATed to the API server on loopback (no kube-proxy here). */
  apiServiceIp: string;
  /** The NAT chain that stands in for kube-proxy's rule for the `kubernetes` Service. */
  natChain: string;
  /** cgroup (under every v1 hierarchy) holding each node's pods (its kubelet `cgroupRoot`) and runtimes. */
  cgroup: string;
  /** The nodes' directories (containerd, kubelet, logs), recorded once created. */
  dirs: string[];
}

/** Most real nodes one slot holds. */
export const NODES_PER_SLOT = 3;

/** Node `i`'s address on the slot's bridge. */
export function nodeIp(slot: NodeSlot, i: number): string {
  return `10.245.${slot.index}.${1 + i}`;
}

/** Node `i`'s pod addresses, for CNI host-local: `[first, last]`. */
export function podRange(slot: NodeSlot, i: number): [string, string] {
  return [
    `10.245.${slot.index}.${64 * (i + 1)}`,
    `10.245.${slot.index}.${64 * (i + 1) + 63 - (i === 2 ? 1 : 0)}`,
  ];
}

interface SlotRecord extends NodeSlot {
  owner: number;
}

function slotOf(index: number): NodeSlot {
  return {
    index,
    bridge: `tide-br${index}`,
    hostIp: `10.245.${index}.1`,
    podSubnet: `10.245.${index}.0/24`,
    serviceRange: `10.97.${index}.0/24`,
    apiServiceIp: `10.97.${index}.1`,
    natChain: `TIDE-NODE-${index}`,
    cgroup: `tide-node-${index}`,
    dirs: [],
  };
}

/** Takes a free slot (sweeping those of dead owners first). */
export async function acquireSlot(): Promise<NodeSlot> {
  await mkdir(SLOT_DIR, { recursive: true });
  for (let index = 1; index <= SLOTS; index++) {
    const path = join(SLOT_DIR, `slot-${index}.json`);
    if (existsSync(path)) {
      let record: SlotRecord | undefined;
      try {
        record = JSON.parse(await readFile(path, 'utf8')) as SlotRecord;
      } catch {
        record = undefined;
      }
      if (record !== undefined && isAlive(record.owner)) continue;
      await sweepSlot(record ?? { ...slotOf(index), owner: 0 });
    }
    const slot = slotOf(index);
    try {
      await writeFile(path, JSON.stringify({ ...slot, owner: process.pid }), { flag: 'wx' });
      return slot;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw error;
    }
  }
  throw new Error(`No free real-node slot in ${SLOT_DIR} (${SLOTS} in use by live test processes)`);
}

/** Records a node's directory in the slot, so that a sweep after a crash finds its mounts. */
export async function recordSlotDir(slot: NodeSlot, dir: string): Promise<void> {
  slot.dirs.push(dir);
  await writeFile(join(SLOT_DIR, `slot-${slot.index}.json`), JSON.stringify({ ...slot, owner: process.pid }));
}

async function quiet(command: string, args: readonly string[]): Promise<void> {
  try {
    await run(command, args);
  } catch {
    // Already gone: sweeping is idempotent.
  }
}

/** Every cgroup directory of `name` in each v1 hierarchy (and the unified one), deepest first. */
function cgroupDirs(name: string): string[] {
  const dirs: string[] = [];
  const walk = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const entry of entries) walk(join(dir, entry));
    dirs.push(dir);
  };
  let hierarchies: string[] = [];
  try {
    hierarchies = readdirSync(CGROUP_ROOT);
  } catch {
    // no cgroup file system
  }
  for (const hierarchy of hierarchies) walk(join(CGROUP_ROOT, hierarchy, name));
  return dirs;
}

/** SIGKILLs every process in the cgroup tree `name` (pods, shims, the runtime) until none is left. */
export async function killCgroup(name: string): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = new Set<number>();
    for (const dir of cgroupDirs(name)) {
      try {
        for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) {
          const pid = Number(line);
          if (pid > 0 && pid !== process.pid) pids.add(pid);
        }
      } catch {
        // removed meanwhile
      }
    }
    if (pids.size === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Creates the cgroup `name` in every v1 hierarchy (the kubelet wants its `cgroupRoot` to exist). */
export async function createCgroup(name: string): Promise<void> {
  for (const hierarchy of readdirSync(CGROUP_ROOT)) {
    if (hierarchy === 'unified') continue;
    await mkdir(join(CGROUP_ROOT, hierarchy, name), { recursive: true });
  }
}

/** Unmounts every mount at or below `dir` (deepest first, lazily: a busy FUSE mount still goes). */
export async function unmountBelow(dir: string): Promise<void> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  for (let round = 0; round < 5; round++) {
    const targets = mountPoints().filter((m) => m === dir || m.startsWith(prefix));
    if (targets.length === 0) return;
    targets.sort((a, b) => b.length - a.length);
    for (const target of targets) await quiet('umount', ['-l', target]);
  }
}

function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) =>
      (line.split(' ')[4] ?? '').replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
    );
}

/**
 * The slot's bridge, and the NAT rule that stands in for kube-proxy: `<apiServiceIp>:443` goes to the
 * API server on loopback, from pods (through the bridge) and from host-network pods alike.
 */
export async function setUpSlotNetwork(slot: NodeSlot, apiPort: number): Promise<void> {
  await run('ip', ['link', 'add', slot.bridge, 'type', 'bridge']);
  await run('ip', ['addr', 'add', `${slot.hostIp}/24`, 'dev', slot.bridge]);
  await run('ip', ['link', 'set', slot.bridge, 'up']);
  // Pods may reach loopback through the NAT rule below, and only that rule sends them there.
  await writeFile(`/proc/sys/net/ipv4/conf/${slot.bridge}/route_localnet`, '1');
  const nat = (args: readonly string[]): Promise<unknown> => run('iptables', ['-t', 'nat', ...args]);
  await nat(['-N', slot.natChain]);
  await nat([
    '-A',
    slot.natChain,
    '-p',
    'tcp',
    '-d',
    `${slot.apiServiceIp}/32`,
    '--dport',
    '443',
    '-j',
    'DNAT',
    '--to-destination',
    `127.0.0.1:${apiPort}`,
  ]);
  await nat(['-I', 'PREROUTING', '-i', slot.bridge, '-j', slot.natChain]);
  await nat(['-I', 'OUTPUT', '-d', `${slot.apiServiceIp}/32`, '-j', slot.natChain]);
}

/** Removes the NAT chain standing in for kube-proxy and its jumps. */
export async function removeNat(slot: NodeSlot): Promise<void> {
  await quiet('iptables', ['-t', 'nat', '-D', 'PREROUTING', '-i', slot.bridge, '-j', slot.natChain]);
  await quiet('iptables', [
    '-t',
    'nat',
    '-D',
    'OUTPUT',
    '-d',
    `${slot.apiServiceIp}/32`,
    '-j',
    slot.natChain,
  ]);
  await quiet('iptables', ['-t', 'nat', '-F', slot.natChain]);
  await quiet('iptables', ['-t', 'nat', '-X', slot.natChain]);
}

/** Removes everything a slot names: processes, mounts, NAT rules, the bridge, cgroups, the directory. */
export async function sweepSlot(slot: NodeSlot): Promise<void> {
  await killCgroup(slot.cgroup);
  for (const dir of slot.dirs) await unmountBelow(dir);
  await removeNat(slot);
  await quiet('ip', ['link', 'delete', slot.bridge]);
  for (const dir of cgroupDirs(slot.cgroup)) {
    try {
      await rmdir(dir);
    } catch {
      // a cgroup with a process left; the next sweep tries again
    }
  }
  for (const dir of slot.dirs) await rm(dir, { recursive: true, force: true });
  await rm(join(SLOT_DIR, `slot-${slot.index}.json`), { force: true });
}
