/**
 * FUSE read benchmark (not a test): a 1 GiB file and a tree of many entries in a local directory,
 * served through a supervised mount (src/fuse/mount-main.ts).
 *
 *   node bench/fuse-read.ts [--size-mib 1024] [--entries 20000] [--source local|http] [--workers 1]
 *     [--medium SSD|MEM] [--origin-rate-mib N] [--json out.json]
 *
 * `--source http` serves the same files through nginx and the local platform's dataset source
 * (metadata from the HTTP connector, bytes through the cache client: from the origin with
 * `--workers 0`, else through that many real workers), with the fuse args of seed 004; it measures
 * the metadata path, the read path's throughput and the FUSE server's CPU per GiB, and the
 * server's peak RSS, and skips the page-cache comparisons of the local source.
 * `--origin-rate-mib N` serves the origin through nginx's `limit_rate` of N MiB/s per connection,
 * as the full benchmark's remote store does (then only enough blocks in flight reach its speed).
 *
 * Measures: the first read through the mount with every page cache dropped (disk → daemon →
 * kernel), the first read with only the mount's cache cold (source in memory: the daemon's own
 * speed), the re-read from the kept page cache, and the rate of `stat` over many entries, cold and
 * warm. Needs root (mount, drop_caches). Targets: ≥ 1 GB/s through the daemon, ≥ 5 GB/s re-read,
 * ≥ 50,000 entries/s warm stat.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startHttpDatasetMount } from '../test/integration/fuse/dataset-harness.ts';
import { makeTempDir, run, sh, startMount } from '../test/integration/fuse/harness.ts';
import { peakRssBytesOf } from './procstat.ts';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    entries: { type: 'string', default: '20000' },
    source: { type: 'string', default: 'local' },
    workers: { type: 'string', default: '1' },
    /** With --source http: the workers' tier, SSD (a temporary directory) or MEM (/dev/shm). */
    medium: { type: 'string', default: 'SSD' },
    'origin-rate-mib': { type: 'string' },
    json: { type: 'string' },
    /** With --source http: `perf record -g` of the FUSE server during the warm read, into this file. */
    perf: { type: 'string' },
  },
});
const sizeBytes = Number(values['size-mib']) * 1024 * 1024;
const entryCount = Number(values.entries);

async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const cipher = createCipheriv(
    'aes-256-ctr',
    createHash('sha256').update('bench').digest(),
    Buffer.alloc(16),
  );
  const zeros = Buffer.alloc(8 * 1024 * 1024);
  const handle = await open(path, 'w');
  for (let written = 0; written < bytes; written += zeros.length) {
    await handle.write(cipher.update(zeros.subarray(0, Math.min(zeros.length, bytes - written))));
  }
  await handle.close();
}

async function dropCaches(): Promise<void> {
  await sh('sync && echo 3 > /proc/sys/vm/drop_caches');
}

/** Reads `path` with dd and 1 MiB reads; returns bytes per second. */
async function readThrough(path: string): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await sh(`dd if=${JSON.stringify(path)} of=/dev/null bs=1M status=none`, {
    timeoutMs: 600_000,
  });
  if (result.code !== 0) throw new Error(result.stderr);
  return (await stat(path)).size / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** `perf record -g` of process `pid` into `output` until stopped. */
function startPerf(pid: number, output: string): { stop: () => Promise<void> } {
  const child = spawn('perf', ['record', '-g', '-F', '999', '-o', output, '-p', String(pid)], {
    stdio: 'ignore',
  });
  const exited = once(child, 'exit');
  return {
    stop: async () => {
      child.kill('SIGINT');
      await exited;
    },
  };
}

/** lstat(2) of every entry under `root` from Python (two passes: cold, then warm); entries per second. */
async function statRates(root: string): Promise<[number, number]> {
  const script = `
import os, sys, time
root = sys.argv[1]
paths = [os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files]
rates = []
for _ in range(2):
    started = time.perf_counter()
    for p in paths:
        os.lstat(p)
    rates.append(len(paths) / (time.perf_counter() - started))
print(rates[0], rates[1])
`;
  const result = await run('python3', ['-c', script, root], { timeoutMs: 600_000 });
  const [cold, warm] = result.stdout.trim().split(' ').map(Number);
  return [cold ?? 0, warm ?? 0];
}

/**
 * The full benchmark's "stat of every tree entry, warm": readdir + lstat of every entry, eight
 * directories at a time (one Python process per directory batch would cost more than the work).
 */
async function readdirStatRate(root: string): Promise<number> {
  const script = `
import os, sys, time
from concurrent.futures import ThreadPoolExecutor
root = sys.argv[1]
dirs = [d for d, _, _ in os.walk(root)]
def visit(d):
    n = 0
    for e in os.scandir(d):
        os.lstat(e.path)
        n += 1
    return n
started = time.perf_counter()
with ThreadPoolExecutor(8) as pool:
    total = sum(pool.map(visit, dirs))
print(total / (time.perf_counter() - started))
`;
  const result = await run('python3', ['-c', script, root], { timeoutMs: 600_000 });
  return Number(result.stdout.trim());
}

async function lsRate(root: string): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await sh(`ls -lR ${JSON.stringify(root)} | wc -l`, { timeoutMs: 600_000 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return Number(result.stdout.trim()) / seconds;
}

/** User plus system CPU seconds a process has used (/proc/PID/stat, clock ticks of 1/100 s). */
async function cpuSecondsOf(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const origin = await makeTempDir('tide-fuse-bench-');
const results: Record<string, number> = {};
try {
  await writeRandomFile(join(origin, 'big.bin'), sizeBytes);
  const perDir = 200;
  for (let dir = 0; dir * perDir < entryCount; dir += 1) {
    await mkdir(join(origin, 'tree', `d${dir}`), { recursive: true });
    await Promise.all(
      Array.from({ length: Math.min(perDir, entryCount - dir * perDir) }, (_, file) =>
        writeFile(join(origin, 'tree', `d${dir}`, `f${file}`), 'x'),
      ),
    );
  }
  if (values.source === 'http') await benchHttp(origin);
  else await benchLocal(origin);
} finally {
  await rm(origin, { recursive: true, force: true });
}

async function benchHttp(origin: string): Promise<void> {
  const dataset = await startHttpDatasetMount({
    root: origin,
    fuseArgs: ['-okernel_cache', '-oattr_timeout=60', '-oentry_timeout=60', '-onegative_timeout=60', '-oro'],
    workers: Number(values.workers),
    medium: values.medium === 'MEM' ? 'MEM' : 'SSD',
    ...(values['origin-rate-mib'] === undefined
      ? {}
      : { originRateBytesPerSecond: Number(values['origin-rate-mib']) * 1024 * 1024 }),
  });
  try {
    const tree = join(dataset.mount.target, 'tree');
    results.lsLRColdLinesPerSecond = await lsRate(tree);
    results.readdirStatWarmPerSecond = await readdirStatRate(tree);
    results.lsLRWarmLinesPerSecond = await lsRate(tree);
    const requestsBefore = (await dataset.nginx.accessLog()).length;
    results.lsLRWarm2LinesPerSecond = await lsRate(tree);
    results.warmLsOriginRequests = (await dataset.nginx.accessLog()).length - requestsBefore;
    const rssBefore = (await peakRssBytesOf(dataset.mount.serverPid())) ?? 0;
    results.serverPeakRssBeforeReadMB = rssBefore / 1e6;
    const coldCpuBefore = await cpuSecondsOf(dataset.mount.serverPid());
    results.coldOriginReadMBps = (await readThrough(join(dataset.mount.target, 'big.bin'))) / 1e6;
    results.coldServerCpuSecondsPerGiB =
      ((await cpuSecondsOf(dataset.mount.serverPid())) - coldCpuBefore) / (sizeBytes / 2 ** 30);
    await dropCaches();
    const cpuBefore = await cpuSecondsOf(dataset.mount.serverPid());
    const profiler =
      values.perf === undefined ? undefined : startPerf(dataset.mount.serverPid(), values.perf);
    results.warmCacheReadMBps = (await readThrough(join(dataset.mount.target, 'big.bin'))) / 1e6;
    results.warmServerCpuSecondsPerGiB =
      ((await cpuSecondsOf(dataset.mount.serverPid())) - cpuBefore) / (sizeBytes / 2 ** 30);
    await profiler?.stop();
    results.serverPeakRssMB = ((await peakRssBytesOf(dataset.mount.serverPid())) ?? 0) / 1e6;
    // Many small files: each is a block of its own in the cache client's buffer.
    const started = process.hrtime.bigint();
    const small = await sh(
      `find ${JSON.stringify(tree)} -type f -print0 | xargs -0 -P 8 -n 100 cat | wc -c`,
      {
        timeoutMs: 600_000,
      },
    );
    if (small.code !== 0) throw new Error(`reading the small files failed: ${small.stderr}`);
    results.smallFilesPerSecond = entryCount / (Number(process.hrtime.bigint() - started) / 1e9);
    results.serverPeakRssAfterSmallFilesMB = ((await peakRssBytesOf(dataset.mount.serverPid())) ?? 0) / 1e6;
    // The reference of the same run, last so as to change nothing before it: the same bytes
    // straight from this machine's disk.
    await dropCaches();
    results.sourceDiskMBps = (await readThrough(join(origin, 'big.bin'))) / 1e6;
  } finally {
    await dataset.stop();
  }
}

async function benchLocal(origin: string): Promise<void> {
  const mount = await startMount({
    sourceDir: origin,
    fuseArgs: ['-oattr_timeout=60,entry_timeout=60,negative_timeout=60'],
  });
  try {
    const big = join(mount.target, 'big.bin');
    await dropCaches();
    results.coldAllCachesMBps = (await readThrough(big)) / 1e6;
    results.rereadMBps = (await readThrough(big)) / 1e6;
    results.reread2MBps = (await readThrough(big)) / 1e6;
    await dropCaches();
    // Reading the source straight from disk also leaves it in memory for the next step.
    results.sourceDiskMBps = (await readThrough(join(origin, 'big.bin'))) / 1e6;
    // The ceiling of any re-read: the source file itself from the page cache.
    results.sourcePageCacheMBps = (await readThrough(join(origin, 'big.bin'))) / 1e6;
    results.coldMountSourceInMemoryMBps = (await readThrough(big)) / 1e6;
    await dropCaches();
    [results.statAfterReaddirPerSecond, results.statWarmPerSecond] = await statRates(
      join(mount.target, 'tree'),
    );
    results.lsLRWarmLinesPerSecond = await lsRate(join(mount.target, 'tree'));
  } finally {
    await mount.stop();
  }
  await lsRate(join(origin, 'tree'));
  results.lsLROriginLinesPerSecond = await lsRate(join(origin, 'tree'));
  const withXattr = await startMount({
    sourceDir: origin,
    fuseArgs: ['-oattr_timeout=60,entry_timeout=60,xattr'],
  });
  try {
    await lsRate(join(withXattr.target, 'tree'));
    results.lsLRXattrWarmLinesPerSecond = await lsRate(join(withXattr.target, 'tree'));
  } finally {
    await withXattr.stop();
  }
}

const fmt = (value: number | undefined): string => (value ?? Number.NaN).toFixed(0);
const localRows = [
  ['first read, every cache dropped (disk → daemon)', `${fmt(results.coldAllCachesMBps)} MB/s`],
  ['the source file itself from disk, cache dropped', `${fmt(results.sourceDiskMBps)} MB/s`],
  ['first read through the daemon, source in memory', `${fmt(results.coldMountSourceInMemoryMBps)} MB/s`],
  [
    're-read from the kept page cache',
    `${fmt(results.rereadMBps)} MB/s, then ${fmt(results.reread2MBps)} MB/s`,
  ],
  ['(ceiling) the source file from the page cache', `${fmt(results.sourcePageCacheMBps)} MB/s`],
  [
    `lstat of ${entryCount} entries after os.walk (attributes from READDIRPLUS)`,
    `${fmt(results.statAfterReaddirPerSecond)} /s`,
  ],
  [`lstat of ${entryCount} entries, warm`, `${fmt(results.statWarmPerSecond)} /s`],
  ['ls -lR, warm (xattr: ENOSYS once, the default)', `${fmt(results.lsLRWarmLinesPerSecond)} lines/s`],
  [
    'ls -lR, warm, -oxattr (two xattr round trips per entry)',
    `${fmt(results.lsLRXattrWarmLinesPerSecond)} lines/s`,
  ],
  ['(reference) ls -lR of the origin directory', `${fmt(results.lsLROriginLinesPerSecond)} lines/s`],
];
const httpRows = [
  [`ls -lR of ${entryCount} entries, cold (nginx origin)`, `${fmt(results.lsLRColdLinesPerSecond)} lines/s`],
  ['readdir + lstat of every entry, 8 dirs at a time, warm', `${fmt(results.readdirStatWarmPerSecond)} /s`],
  [
    'ls -lR, warm (twice)',
    `${fmt(results.lsLRWarmLinesPerSecond)} then ${fmt(results.lsLRWarm2LinesPerSecond)} lines/s`,
  ],
  ['origin requests during the second warm ls -lR', fmt(results.warmLsOriginRequests)],
  [
    `first read of the big file (origin${values['origin-rate-mib'] === undefined ? '' : ` at ${values['origin-rate-mib']} MiB/s per connection`}, ${values.workers} workers)`,
    `${fmt(results.coldOriginReadMBps)} MB/s, server CPU ${(results.coldServerCpuSecondsPerGiB ?? Number.NaN).toFixed(2)} s/GiB`,
  ],
  [
    // The client keeps 256 MiB of blocks: a smaller file is then read from its memory, not the SSD.
    `read again, page cache dropped (from the cache${sizeBytes <= 256 * 2 ** 20 ? "; the client's buffer" : ''})`,
    `${fmt(results.warmCacheReadMBps)} MB/s, server CPU ${(results.warmServerCpuSecondsPerGiB ?? Number.NaN).toFixed(2)} s/GiB`,
  ],
  ['(reference) the same file from the local disk, cache dropped', `${fmt(results.sourceDiskMBps)} MB/s`],
  [
    'FUSE server peak RSS, before / after reading the big file twice',
    `${fmt(results.serverPeakRssBeforeReadMB)} / ${fmt(results.serverPeakRssMB)} MB`,
  ],
  [
    `cat of the ${entryCount} one-byte tree files, 8 at a time`,
    `${fmt(results.smallFilesPerSecond)} files/s`,
  ],
  ['FUSE server peak RSS after the small files', `${fmt(results.serverPeakRssAfterSmallFilesMB)} MB`],
];
const rows = values.source === 'http' ? httpRows : localRows;
process.stdout.write(
  `| FUSE read (${values['size-mib']} MiB file, ${values.source} source) | result |\n| --- | --- |\n`,
);
for (const [name, value] of rows) process.stdout.write(`| ${name} | ${value} |\n`);
if (values.json !== undefined) await writeFile(values.json, JSON.stringify(results, null, 2));
