/**
 * The DataLoad path on one machine: two worker processes in front of nginx limited per connection
 * (`limit_rate`) or behind a link of known bandwidth (`--link-mbit`: a veth pair into a network
 * namespace shaped with `tc tbf`, all connections together), and the DataLoad loader (`loadTargets`, 16 files at once) of one file or of a
 * directory (the small-files case) through them. Prints the load's MB/s and the CPU
 * seconds each worker spent (from /proc/<pid>/stat), the figure that bounds cold reads when the
 * workers share the machine's cores.
 *
 * Over a link, a file's load is compared with 8 parallel ranged curls of it over the same link,
 * measured just before: the "DataLoad ≥ 0.9× the origin's bandwidth".
 *
 * usage: node bench/load-path.ts <file or directory> [--rate-mib 100] [--link-mbit 0]
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import {
  StaticMembership,
  createCacheClient,
  mountIdOf,
  type WorkerProcessConfig,
} from '../src/cache/index.ts';
import { loadTargets } from '../src/platform/local/loader.ts';
import { createUnderFileSystem } from '../src/ufs/index.ts';
import { startNginx } from '../test/helpers/nginx.ts';
import { createThrottledLink } from '../test/helpers/throttled-link.ts';
import { spawnWorker, type WorkerProcess } from '../test/integration/cache/helpers.ts';

const MiB = 1024 * 1024;
const run = promisify(execFile);
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'rate-mib': { type: 'string', default: '100' },
    'link-mbit': { type: 'string', default: '0' },
  },
});
const [file] = positionals;
if (file === undefined) {
  console.error('usage: node bench/load-path.ts <file or directory> [--rate-mib 100] [--link-mbit 0]');
  process.exit(2);
}
const linkBitsPerSecond = Number(values['link-mbit']) * 1e6;

/** Seconds for `streams` parallel ranged curls that together read the whole of `url`. */
async function parallelCurlSeconds(url: string, sizeBytes: number, streams: number): Promise<number> {
  const part = Math.ceil(sizeBytes / streams);
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: streams }, (_, index) =>
      run('curl', [
        '-sS',
        '--fail',
        '-o',
        '/dev/null',
        '-r',
        `${index * part}-${Math.min(sizeBytes, (index + 1) * part) - 1}`,
        url,
      ]),
    ),
  );
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** CPU seconds of a process so far: user plus system, or system (kernel) only. */
function cpuSeconds(pid: number, which: 'all' | 'system' = 'all'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = (which === 'all' ? Number(fields[11]) : 0) + Number(fields[12]);
  return ticks / 100;
}

const cleanups: (() => Promise<void> | void)[] = [];
try {
  const root = await mkdtemp(join(tmpdir(), 'tide-load-'));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const name = basename(file);
  await symlink(resolve(file), join(root, name));
  const link =
    linkBitsPerSecond > 0 ? await createThrottledLink({ rateBitsPerSecond: linkBitsPerSecond }) : undefined;
  if (link !== undefined) cleanups.push(() => link.close());
  const nginx = await startNginx(
    link === undefined ? { root, rateLimitBytesPerSecond: Number(values['rate-mib']) * MiB } : { root, link },
  );
  cleanups.push(() => nginx.stop());
  const mountPoint = nginx.slowUrl ?? nginx.url;
  let curlSeconds: number | undefined;
  const source = await stat(file);
  if (link !== undefined && source.isFile()) {
    curlSeconds = await parallelCurlSeconds(`${mountPoint}${encodeURIComponent(name)}`, source.size, 8);
  }
  const workers: WorkerProcess[] = [];
  for (let i = 0; i < 2; i++) {
    const ssd = await mkdtemp(join(tmpdir(), 'tide-load-ssd-'));
    cleanups.push(() => rm(ssd, { recursive: true, force: true }));
    const config: WorkerProcessConfig = {
      datasetId: 'default/bench',
      workerId: `bench-${i}`,
      nodeName: 'node-a',
      blockSize: '4Mi',
      tieredstore: { levels: [{ mediumtype: 'SSD', path: ssd, quota: '4Gi' }] },
      mounts: [{ mountPoint }],
      logLevel: 'warn',
    };
    workers.push(await spawnWorker((fn) => cleanups.push(fn), config));
  }
  const ufs = createUnderFileSystem({ mountPoint, options: {}, secrets: {} });
  const client = createCacheClient({
    datasetId: 'default/bench',
    membership: new StaticMembership(workers.map((worker) => worker.endpoint)),
    mounts: [{ id: mountIdOf(mountPoint), path: '/', ufs }],
    blockSizeBytes: 4 * MiB,
    nodeName: 'node-b',
  });
  cleanups.push(async () => {
    await client.close();
    await ufs.close();
  });
  const pids = workers.map((worker) => worker.child.pid ?? 0);
  const before = pids.map((pid) => cpuSeconds(pid));
  const beforeSystem = pids.map((pid) => cpuSeconds(pid, 'system'));
  const started = process.hrtime.bigint();
  const result = await loadTargets(
    client,
    {
      dataset: { namespace: 'default', name: 'bench' },
      targets: [{ path: `/${name}`, replicas: 1 }],
      loadMetadata: false,
      parallelism: 16,
    },
    { signal: AbortSignal.timeout(600_000), onProgress: () => undefined },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = pids.map((pid, i) => cpuSeconds(pid) - (before[i] ?? 0));
  const system = pids.map((pid, i) => cpuSeconds(pid, 'system') - (beforeSystem[i] ?? 0));
  const bytes = result.bytesDone;
  console.log(JSON.stringify({ seconds: +seconds.toFixed(2), result }));
  if (link !== undefined && curlSeconds !== undefined) {
    const curlRate = source.size / curlSeconds;
    console.log(
      `link ${linkBitsPerSecond / 1e6} Mbit/s (${(linkBitsPerSecond / 8e6).toFixed(0)} MB/s nominal): 8 parallel ranged curls ${(curlRate / 1e6).toFixed(0)} MB/s; DataLoad ${(bytes / seconds / 1e6).toFixed(0)} MB/s = ${(bytes / seconds / curlRate).toFixed(2)}x curl (target 0.9x)`,
    );
  }
  const total = cpu.reduce((a, b) => a + b, 0);
  console.log(
    `load: ${seconds.toFixed(2)} s; worker CPU ${cpu.map((c) => c.toFixed(2)).join(' + ')} = ${total.toFixed(2)} s (kernel ${system.reduce((a, b) => a + b, 0).toFixed(2)} s)` +
      `; ${(bytes / seconds / 1e6).toFixed(0)} MB/s, ${((total / bytes) * 2 ** 30).toFixed(2)} CPU-s/GiB` +
      (result.filesDone > 1
        ? `; ${(result.filesDone / seconds).toFixed(0)} files/s, ${((total / result.filesDone) * 1000).toFixed(2)} worker CPU-ms/file`
        : ''),
  );
  // A graceful stop, so that a worker run with --cpu-prof (in NODE_OPTIONS) writes its profile.
  await Promise.all(workers.map((worker) => worker.kill('SIGTERM')));
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
