/**
 * Benchmarks of the cache engine's read path (not a test; run once and read the numbers):
 *
 *   node bench/cache-read.ts [--size-mib 256] [--rate-mib 24] [--origin-connections 4] [--link-mbit 2000]
 *
 * 1. Cold read: one worker process in front of nginx throttled with `limit_rate` per connection;
 *    the worker reads the origin over `--origin-connections` connections, so the origin grants
 *    `rate × connections`. Also measured: a direct parallel ranged GET of the same file over the
 *    same number of connections (Fluid-peers' M2: cache cold read ÷ direct parallel GET).
 *    Then the time to the first 4 KiB of a block, cold and warm, against a direct ranged GET.
 *    Since `limit_rate` caps each request and not the origin as a whole, the cold read is measured
 *    again against nginx behind a link of known bandwidth (`--link-mbit`, a veth pair into a
 *    network namespace shaped with `tc tbf`; 0 skips it): the issue's "cold read ≥ 0.9× the
 *    origin's bandwidth", with the direct parallel GET over the same link as the reference.
 * 2. Warm read through the client from a worker on the same node (short-circuit to the MEM tier's
 *    block files), and through HTTP from another node, for comparison.
 * 3. Origin amplification: 8 clients read one cold file at once through 3 workers; origin bytes
 *    (nginx access log) ÷ file size.
 *
 * Results go to standard output and to bench/out/cache-read.json.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import {
  StaticMembership,
  type CacheClient,
  type CacheClientOptions,
  type WorkerEndpoint,
  type WorkerProcessConfig,
} from '../src/cache/index.ts';
import { createThrottledLink } from '../test/helpers/throttled-link.ts';
import { startNginx, type NginxServer } from '../test/helpers/nginx.ts';
import {
  readThrough,
  sha256,
  spawnWorker,
  tempDir,
  type Cleanup,
  webCacheClient,
} from '../test/integration/cache/helpers.ts';

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;
const DATASET = 'bench/cache';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    'rate-mib': { type: 'string', default: '24' },
    'origin-connections': { type: 'string', default: '4' },
    'link-mbit': { type: 'string', default: '2000' },
  },
});
const sizeBytes = Number(values['size-mib']) * MiB;
const rateBytes = Number(values['rate-mib']) * MiB;
const originConnections = Number(values['origin-connections']);
const linkBitsPerSecond = Number(values['link-mbit']) * 1e6;

const cleanups: (() => Promise<void> | void)[] = [];
const cleanup: Cleanup = (fn) => {
  cleanups.push(fn);
};

interface Result {
  name: string;
  value: number;
  unit: string;
  target?: string;
  ok?: boolean;
}
const results: Result[] = [];

function record(result: Result): void {
  results.push(result);
  const verdict = result.ok === undefined ? '' : result.ok ? '  ok' : '  BELOW TARGET';
  const target = result.target === undefined ? '' : `  (target ${result.target})`;
  process.stdout.write(
    `${result.name.padEnd(58)} ${result.value.toFixed(3).padStart(10)} ${result.unit}${target}${verdict}\n`,
  );
}

async function workerConfig(
  id: string,
  mountPoint: string,
  extra: Partial<WorkerProcessConfig> = {},
): Promise<WorkerProcessConfig> {
  const shm = await tempDir(cleanup, '/dev/shm', 'tide-bench-');
  const ssd = await tempDir(cleanup, undefined, 'tide-bench-');
  return {
    datasetId: DATASET,
    workerId: id,
    nodeName: 'bench-node',
    blockSize: '4Mi',
    tieredstore: {
      levels: [
        { mediumtype: 'MEM', path: shm, quota: `${Math.ceil((sizeBytes * 1.5) / MiB)}Mi` },
        { mediumtype: 'SSD', path: ssd, quota: `${Math.ceil((sizeBytes * 3) / MiB)}Mi` },
      ],
    },
    mounts: [{ mountPoint }],
    logLevel: 'warn',
    ...extra,
  };
}

function client(
  mountPoint: string,
  workers: readonly WorkerEndpoint[],
  nodeName: string,
  options: Partial<CacheClientOptions> = {},
): CacheClient {
  return webCacheClient(cleanup, {
    datasetId: DATASET,
    mountPoint,
    membership: new StaticMembership(workers),
    blockSizeBytes: BLOCK,
    nodeName,
    ...options,
  });
}

/** CPU seconds used so far by a process of ours (utime + stime from /proc, 100 ticks a second). */
async function cpuSecondsOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** Reads a whole file into `whole` (no copy but the client's own), returning the bytes read. */
async function readInto(
  reader: CacheClient,
  path: string,
  whole: Buffer,
  chunkBytes: number,
): Promise<number> {
  const { version } = await reader.stat(path);
  let offset = 0;
  for (;;) {
    const part = await reader.read(path, {
      offset,
      length: chunkBytes,
      version,
      into: whole.subarray(offset, offset + chunkBytes),
    });
    offset += part.length;
    if (part.length < chunkBytes) return offset;
  }
}

/** SHA-256 of a whole file read in `chunkBytes` pieces into one reused buffer. */
async function digestOf(reader: CacheClient, path: string, chunkBytes: number): Promise<string> {
  const { version } = await reader.stat(path);
  const hash = createHash('sha256');
  const into = Buffer.allocUnsafe(chunkBytes);
  for (let offset = 0; ; offset += chunkBytes) {
    const part = await reader.read(path, { offset, length: chunkBytes, version, into });
    hash.update(part);
    if (part.length < chunkBytes) return hash.digest('hex');
  }
}

async function originBytes(nginx: NginxServer, name: string): Promise<number> {
  // nginx logs a request when it ends: give the last ones a moment.
  await new Promise((resolve) => setTimeout(resolve, 300));
  return (await nginx.accessLog())
    .filter((entry) => entry.method === 'GET' && entry.target === `/data/${name}`)
    .reduce((sum, entry) => sum + entry.bodyBytes, 0);
}

/** Reads `[0, size)` of `url` over `connections` parallel ranged GETs of one block each. */
async function directParallelGet(url: string, size: number, connections: number): Promise<number> {
  const target = new URL(url);
  const pool = new Pool(target.origin, { connections });
  let next = 0;
  let received = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next * BLOCK < size) {
        const start = next++ * BLOCK;
        const end = Math.min(size, start + BLOCK) - 1;
        const { body } = await pool.request({
          path: target.pathname,
          method: 'GET',
          headers: { range: `bytes=${start}-${end}` },
        });
        for await (const chunk of body) received += (chunk as Buffer).length;
      }
    }),
  );
  await pool.close();
  return received;
}

/** Bytes per second of a sequential read of the whole of `path` (1 MiB reads), checked against `content`. */
async function coldReadRate(reader: CacheClient, path: string, content: Buffer): Promise<number> {
  const into = Buffer.allocUnsafe(content.length + MiB);
  const started = performance.now();
  const bytes = await readInto(reader, path, into, MiB);
  const seconds = (performance.now() - started) / 1000;
  if (bytes !== content.length || sha256(into.subarray(0, bytes)) !== sha256(content)) {
    throw new Error(`the cold read of ${path} returned wrong bytes`);
  }
  return bytes / seconds;
}

/**
 * 1c. The cold read against an origin whose bandwidth is known as a whole: nginx behind a shaped
 * link, read by one worker over 8 origin connections and, for the reference, directly by 8
 * parallel ranged GETs over the same link.
 */
async function coldOverLink(root: string, content: Buffer): Promise<void> {
  const link = await createThrottledLink({ rateBitsPerSecond: linkBitsPerSecond });
  cleanup(() => link.close());
  const server = await startNginx({ root, link });
  cleanup(() => server.stop());
  const mount = `${server.url}data/`;
  await writeFile(join(root, 'data', 'link-direct.bin'), content);
  await writeFile(join(root, 'data', 'link-cold.bin'), content);
  const connections = 8;
  const started = performance.now();
  const direct = await directParallelGet(`${mount}link-direct.bin`, sizeBytes, connections);
  const directRate = sizeBytes / ((performance.now() - started) / 1000);
  if (direct !== sizeBytes) throw new Error(`direct GET over the link read ${direct} bytes`);
  const worker = await spawnWorker(
    cleanup,
    await workerConfig('link-0', mount, { originConcurrency: connections }),
  );
  const coldRate = await coldReadRate(
    client(mount, [worker.endpoint], 'bench-node'),
    '/link-cold.bin',
    content,
  );
  await worker.kill('SIGTERM');
  await server.stop();
  await link.close();
  record({
    name: `link of ${linkBitsPerSecond / 1e6} Mbit/s (tc tbf), nominal`,
    value: linkBitsPerSecond / 8 / MiB,
    unit: 'MiB/s',
  });
  record({ name: 'direct parallel ranged GET over the link', value: directRate / MiB, unit: 'MiB/s' });
  record({ name: 'cold read through the cache over the link', value: coldRate / MiB, unit: 'MiB/s' });
  record({
    name: 'cold read ÷ direct GET over the link',
    value: coldRate / directRate,
    unit: '',
    target: '≥ 0.9',
    ok: coldRate >= 0.9 * directRate,
  });
}

async function main(): Promise<void> {
  const root = await tempDir(cleanup, undefined, 'tide-bench-origin-');
  await mkdir(join(root, 'data'));
  const nginx = await startNginx({ root, rateLimitBytesPerSecond: rateBytes });
  cleanup(() => nginx.stop());
  const slowMount = `${nginx.slowUrl ?? ''}data/`;
  const fastMount = `${nginx.url}data/`;
  process.stdout.write(
    `file ${sizeBytes / MiB} MiB, blocks ${BLOCK / MiB} MiB, origin limit_rate ${rateBytes / MiB} MiB/s × ${originConnections} connections, load average ${loadavg()[0]?.toFixed(2) ?? '?'}\n\n`,
  );

  // 1. Cold read against the throttled origin.
  const content = randomBytes(sizeBytes);
  await writeFile(join(root, 'data', 'cold.bin'), content);
  await writeFile(join(root, 'data', 'direct.bin'), content);
  const nominal = rateBytes * originConnections;
  let started = performance.now();
  const direct = await directParallelGet(`${slowMount}direct.bin`, sizeBytes, originConnections);
  const directSeconds = (performance.now() - started) / 1000;
  if (direct !== sizeBytes) throw new Error(`direct GET read ${direct} bytes`);
  record({
    name: 'origin nominal bandwidth (limit_rate × connections)',
    value: nominal / MiB,
    unit: 'MiB/s',
  });
  record({ name: 'direct parallel ranged GET', value: sizeBytes / directSeconds / MiB, unit: 'MiB/s' });

  const slowWorker = await spawnWorker(
    cleanup,
    await workerConfig('slow-0', slowMount, { originConcurrency: originConnections }),
  );
  const cold = client(slowMount, [slowWorker.endpoint], 'bench-node');
  const coldRate = await coldReadRate(cold, '/cold.bin', content);
  const directRate = sizeBytes / directSeconds;
  record({ name: 'cold read through the cache (1 MiB reads)', value: coldRate / MiB, unit: 'MiB/s' });
  record({ name: 'cold read ÷ nominal origin bandwidth', value: coldRate / nominal, unit: '' });
  // nginx's limit_rate lets a 4 MiB range through faster than the rate (it delays after each send),
  // so the bandwidth the origin really grants is what a direct reader measures.
  record({
    name: 'cold read ÷ direct parallel GET (M2)',
    value: coldRate / directRate,
    unit: '',
    target: '≥ 0.9',
    ok: coldRate >= 0.9 * directRate,
  });

  // 1b. Time to the first 4 KiB of a block: cold (the worker streams what the origin sends), and
  // warm from the block file (checked piece by piece), each through a long-lived client as a FUSE
  // server has; against a direct ranged GET of the same 4 KiB from the throttled origin. Medians of
  // 8 files, as single reads on a busy machine scatter.
  const ttfbFiles = 8;
  for (let i = 0; i < ttfbFiles; i += 1)
    await writeFile(join(root, 'data', `ttfb-${i}.bin`), randomBytes(BLOCK));
  const directPool = new Pool(new URL(slowMount).origin, { connections: 1 });
  const warmReader = client(slowMount, [slowWorker.endpoint], 'bench-node');
  const directMs: number[] = [];
  const coldMs: number[] = [];
  const warmMs: number[] = [];
  const timed = async (action: () => Promise<unknown>): Promise<number> => {
    const start = performance.now();
    await action();
    return performance.now() - start;
  };
  for (let i = 0; i < ttfbFiles; i += 1) {
    const path = `/ttfb-${i}.bin`;
    directMs.push(
      await timed(async () => {
        const { body } = await directPool.request({
          path: `${new URL(slowMount).pathname}ttfb-${i}.bin`,
          method: 'GET',
          headers: { range: 'bytes=0-4095' },
        });
        await body.arrayBuffer();
      }),
    );
    const { version } = await cold.stat(path);
    coldMs.push(await timed(() => cold.read(path, { offset: 0, length: 4096, version })));
  }
  // Written to the worker's tier just after the bytes went out: give the writes a moment.
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (let i = 0; i < ttfbFiles; i += 1) {
    const path = `/ttfb-${i}.bin`;
    const { version } = await warmReader.stat(path);
    warmMs.push(await timed(() => warmReader.read(path, { offset: 0, length: 4096, version })));
  }
  await directPool.close();
  const median = (values: number[]): number => values.sort((a, b) => a - b)[values.length >> 1] ?? NaN;
  record({
    name: 'first 4 KiB, direct ranged GET from the origin (median)',
    value: median(directMs),
    unit: 'ms',
  });
  record({
    name: 'first 4 KiB of a cold block through the cache (median)',
    value: median(coldMs),
    unit: 'ms',
  });
  record({
    name: 'first 4 KiB of a warm block, short-circuit (median)',
    value: median(warmMs),
    unit: 'ms',
  });
  if (warmReader.counters().shortCircuitBytes === 0)
    throw new Error('the warm first reads took the wrong path');

  if (linkBitsPerSecond > 0) await coldOverLink(root, content);

  // 2. Warm reads: the blocks are in the worker's MEM tier now. One long-lived client per path, as a
  // FUSE server has, whose own buffer (64 MiB, at most a quarter of the file) is smaller than the
  // file, so every round reads every block from the worker again; the bytes go into one reused
  // buffer and are counted, not kept (the bytes themselves were checked above and are by the tests).
  // Besides the wall-clock rate: bytes per CPU-second of client and worker together, which a busy
  // machine distorts less.
  const workerPid = slowWorker.child.pid;
  const expectedDigest = sha256(content);
  for (const [label, chunk, nodeName] of [
    ['short-circuit, 1 MiB reads', MiB, 'bench-node'],
    ['short-circuit, 4 MiB reads', 4 * MiB, 'bench-node'],
    ['over HTTP, 4 MiB reads', 4 * MiB, 'another-node'],
  ] as const) {
    const warm = client(slowMount, [slowWorker.endpoint], nodeName, {
      maxBufferBytes: Math.min(64 * MiB, Math.max(2 * BLOCK, sizeBytes / 4)),
    });
    const { version } = await warm.stat('/cold.bin');
    if (sha256(await readThrough(warm, '/cold.bin', { chunkBytes: chunk, version })) !== expectedDigest) {
      throw new Error(`warm read (${label}) returned wrong bytes`);
    }
    const into = Buffer.allocUnsafe(chunk);
    let best = 0;
    let bestPerCpu = 0;
    for (let round = 0; round < 5; round += 1) {
      const before = warm.counters();
      const cpuBefore = ownCpuSeconds() + (await cpuSecondsOf(workerPid));
      started = performance.now();
      let bytes = 0;
      for (let offset = 0; offset < sizeBytes; offset += chunk) {
        bytes += (await warm.read('/cold.bin', { offset, length: chunk, version, into })).length;
      }
      const seconds = (performance.now() - started) / 1000;
      const cpu = ownCpuSeconds() + (await cpuSecondsOf(workerPid)) - cpuBefore;
      const after = warm.counters();
      const fetched =
        after.shortCircuitBytes - before.shortCircuitBytes + (after.workerBytes - before.workerBytes);
      if (bytes !== sizeBytes || fetched < sizeBytes * 0.99) {
        throw new Error(`warm read (${label}) fetched ${fetched} bytes from the worker for ${bytes}`);
      }
      best = Math.max(best, sizeBytes / seconds);
      bestPerCpu = Math.max(bestPerCpu, sizeBytes / cpu);
    }
    const local = nodeName === 'bench-node';
    if (local !== warm.counters().shortCircuitBytes > 0)
      throw new Error(`warm read (${label}) took the wrong path`);
    record({
      name: `warm read from a local worker, ${label} (best of 5)`,
      value: best / 1e9,
      unit: 'GB/s',
      ...(local ? { target: '≥ 1 GB/s', ok: best >= 1e9 } : {}),
    });
    record({
      name: '  same, bytes per CPU-second of client + worker',
      value: bestPerCpu / 1e9,
      unit: 'GB/cpu-s',
    });
  }
  if ((await originBytes(nginx, 'cold.bin')) !== sizeBytes) throw new Error('warm reads went to the origin');
  await slowWorker.kill('SIGTERM');

  // 3. Origin amplification: 8 concurrent readers of one cold file through 3 workers.
  const fanout = randomBytes(sizeBytes);
  await writeFile(join(root, 'data', 'fanout.bin'), fanout);
  const workers = [];
  for (let i = 0; i < 3; i += 1)
    workers.push(await spawnWorker(cleanup, await workerConfig(`fan-${i}`, fastMount)));
  const endpoints = workers.map((worker) => worker.endpoint);
  started = performance.now();
  const digests = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      digestOf(client(fastMount, endpoints, `reader-node-${i}`), '/fanout.bin', MiB),
    ),
  );
  const fanoutSeconds = (performance.now() - started) / 1000;
  if (digests.some((digest) => digest !== sha256(fanout)))
    throw new Error('a fan-out reader got wrong bytes');
  const amplification = (await originBytes(nginx, 'fanout.bin')) / sizeBytes;
  record({
    name: 'origin bytes ÷ unique bytes, 8 concurrent readers (M4)',
    value: amplification,
    unit: '',
    target: '≤ 1.01',
    ok: amplification <= 1.01,
  });
  record({
    name: 'fan-out: bytes served to 8 readers per second',
    value: (8 * sizeBytes) / fanoutSeconds / MiB,
    unit: 'MiB/s',
  });

  await mkdir(join(import.meta.dirname, 'out'), { recursive: true });
  await writeFile(
    join(import.meta.dirname, 'out', 'cache-read.json'),
    `${JSON.stringify({ sizeBytes, blockBytes: BLOCK, rateBytes, originConnections, loadAverage: loadavg(), results }, null, 2)}\n`,
  );
}

try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
