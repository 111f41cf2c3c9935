/**
 * Benchmarks of the cache engine's read path (not a test; run once and read the numbers):
 *
 *   node bench/cache-read.ts [--size-mib 256] [--rate-mib 24] [--origin-connections 4]
 *
 * 1. Cold read: one worker process in front of nginx throttled with `limit_rate` per connection;
 *    the worker reads the origin over `--origin-connections` connections, so the origin grants
 *    `rate × connections`. Also measured: a direct parallel ranged GET of the same file over the
 *    same number of connections (Fluid-peers' M2: cache cold read ÷ direct parallel GET).
 * 2. Warm read through the client from a worker on the same node (short-circuit to the MEM tier's
 *    block files), and through HTTP from another node, for comparison.
 * 3. Origin amplification: 8 clients read one cold file at once through 3 workers; origin bytes
 *    (nginx access log) ÷ file size.
 *
 * Results go to standard output and to bench/out/cache-read.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import {
  StaticMembership,
  createCacheClient,
  mountIdOf,
  type CacheClient,
  type WorkerEndpoint,
  type WorkerProcessConfig,
} from '../src/cache/index.ts';
import { createUnderFileSystem } from '../src/ufs/index.ts';
import { startNginx, type NginxServer } from '../test/helpers/nginx.ts';
import {
  readThrough,
  sha256,
  spawnWorker,
  tempDir,
  type Cleanup,
} from '../test/integration/cache/helpers.ts';

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;
const DATASET = 'bench/cache';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    'rate-mib': { type: 'string', default: '24' },
    'origin-connections': { type: 'string', default: '4' },
  },
});
const sizeBytes = Number(values['size-mib']) * MiB;
const rateBytes = Number(values['rate-mib']) * MiB;
const originConnections = Number(values['origin-connections']);

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

function client(mountPoint: string, workers: readonly WorkerEndpoint[], nodeName: string): CacheClient {
  const ufs = createUnderFileSystem({ mountPoint, options: {}, secrets: {} });
  const created = createCacheClient({
    datasetId: DATASET,
    membership: new StaticMembership(workers),
    mounts: [{ id: mountIdOf(mountPoint), path: '/', ufs }],
    blockSizeBytes: BLOCK,
    nodeName,
  });
  cleanup(async () => {
    await created.close();
    await ufs.close();
  });
  return created;
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

async function main(): Promise<void> {
  const root = await tempDir(cleanup, undefined, 'tide-bench-origin-');
  await mkdir(join(root, 'data'));
  const nginx = await startNginx({ root, rateLimitBytesPerSecond: rateBytes });
  cleanup(() => nginx.stop());
  const slowMount = `${nginx.slowUrl ?? ''}data/`;
  const fastMount = `${nginx.url}data/`;
  process.stdout.write(
    `file ${sizeBytes / MiB} MiB, blocks ${BLOCK / MiB} MiB, origin limit_rate ${rateBytes / MiB} MiB/s × ${originConnections} connections\n\n`,
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
  started = performance.now();
  const coldData = await readThrough(cold, '/cold.bin', { chunkBytes: MiB });
  const coldSeconds = (performance.now() - started) / 1000;
  if (sha256(coldData) !== sha256(content)) throw new Error('cold read returned wrong bytes');
  const coldRate = sizeBytes / coldSeconds;
  record({
    name: 'cold read through the cache (1 MiB reads)',
    value: coldRate / MiB,
    unit: 'MiB/s',
    target: '≥ 0.9 × nominal',
    ok: coldRate >= 0.9 * nominal,
  });
  record({ name: 'cold read ÷ nominal origin bandwidth', value: coldRate / nominal, unit: '' });
  record({
    name: 'cold read ÷ direct parallel GET (M2)',
    value: coldRate / (sizeBytes / directSeconds),
    unit: '',
  });

  // 2. Warm reads: the blocks are in the worker's MEM tier now.
  for (const [label, chunk] of [
    ['1 MiB', MiB],
    ['4 MiB', 4 * MiB],
  ] as const) {
    let best = 0;
    for (let round = 0; round < 3; round += 1) {
      const warm = client(slowMount, [slowWorker.endpoint], 'bench-node');
      started = performance.now();
      const data = await readThrough(warm, '/cold.bin', { chunkBytes: chunk });
      const seconds = (performance.now() - started) / 1000;
      if (data.length !== sizeBytes || warm.counters().shortCircuitBytes !== sizeBytes) {
        throw new Error('warm read did not short-circuit every block');
      }
      best = Math.max(best, sizeBytes / seconds);
      await warm.close();
    }
    record({
      name: `warm read, local worker, short-circuit (${label} reads, best of 3)`,
      value: best / 1e9,
      unit: 'GB/s',
      target: '≥ 1 GB/s',
      ok: best >= 1e9,
    });
  }
  {
    let best = 0;
    for (let round = 0; round < 3; round += 1) {
      const remote = client(slowMount, [slowWorker.endpoint], 'another-node');
      started = performance.now();
      await readThrough(remote, '/cold.bin', { chunkBytes: 4 * MiB });
      best = Math.max(best, sizeBytes / ((performance.now() - started) / 1000));
      await remote.close();
    }
    record({
      name: 'warm read over HTTP from the worker (4 MiB reads, best of 3)',
      value: best / 1e9,
      unit: 'GB/s',
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
    Array.from({ length: 8 }, async (_, i) =>
      sha256(
        await readThrough(client(fastMount, endpoints, `reader-node-${i}`), '/fanout.bin', {
          chunkBytes: MiB,
        }),
      ),
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
    `${JSON.stringify({ sizeBytes, blockBytes: BLOCK, rateBytes, originConnections, results }, null, 2)}\n`,
  );
}

try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
