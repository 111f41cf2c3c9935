import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, open, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  StaticMembership,
  fetchWorkerStats,
  type CacheClient,
  type CacheClientOptions,
  type WorkerProcessConfig,
} from '../../../src/cache/index.ts';
import { startNginx, type NginxServer } from '../../helpers/nginx.ts';
import {
  blockFiles,
  diskUsage,
  readThrough,
  sha256,
  spawnWorker,
  tempDir,
  waitFor,
  type Cleanup,
  webCacheClient,
} from './helpers.ts';

const MiB = 1024 * 1024;
const DATASET = 'default/durable';

interface Origin {
  nginx: NginxServer;
  root: string;
  mountPoint: string;
  write(name: string, data: Uint8Array): Promise<void>;
  /** Body bytes of GETs of `/data/<name>` logged so far, waiting until at least `atLeast` are. */
  bytes(name: string, atLeast?: number): Promise<number>;
}

/** Block files holding a whole 1 MiB block, so that damaging one at a fixed offset hits its data. */
async function fullBlockFiles(dir: string): Promise<string[]> {
  const files = await blockFiles(dir);
  const sizes = await Promise.all(files.map(async (path) => (await stat(path)).size));
  return files.filter((_, index) => (sizes[index] ?? 0) >= MiB).sort();
}

async function origin(t: TestContext): Promise<Origin> {
  const cleanup: Cleanup = (fn) => {
    t.after(fn);
  };
  const root = await tempDir(cleanup);
  await mkdir(join(root, 'data'));
  const nginx = await startNginx({ root });
  t.after(() => nginx.stop());
  const bytes = (name: string, atLeast = 0): Promise<number> =>
    waitFor(
      `nginx to log ${atLeast} bytes of ${name}`,
      async () =>
        (await nginx.accessLog())
          .filter((record) => record.method === 'GET' && record.target === `/data/${name}`)
          .reduce((sum, record) => sum + record.bodyBytes, 0),
      (value) => value >= atLeast,
    );
  return {
    nginx,
    root,
    mountPoint: `${nginx.url}data/`,
    write: (name, data) => writeFile(join(root, 'data', name), data),
    bytes,
  };
}

function client(
  t: TestContext,
  o: Origin,
  membership: StaticMembership,
  options: Partial<CacheClientOptions>,
): CacheClient {
  return webCacheClient(
    (fn) => {
      t.after(fn);
    },
    {
      datasetId: DATASET,
      mountPoint: o.mountPoint,
      membership,
      nodeName: 'node-b',
      ...options,
    },
  );
}

test('a worker restarted after SIGKILL serves the blocks of its SSD tier, and refetches corrupted ones', async (t) => {
  const cleanup: Cleanup = (fn) => {
    t.after(fn);
  };
  const o = await origin(t);
  const ssd = await tempDir(cleanup);
  const config: WorkerProcessConfig = {
    datasetId: DATASET,
    workerId: 'durable-0',
    nodeName: 'node-a',
    blockSize: '1Mi',
    tieredstore: { levels: [{ mediumtype: 'SSD', path: ssd, quota: '64Mi' }] },
    mounts: [{ mountPoint: o.mountPoint }],
    logLevel: 'warn',
  };
  const content = randomBytes(12 * MiB + 5);
  await o.write('model.bin', content);
  const first = await spawnWorker(cleanup, config);
  const membership = new StaticMembership([first.endpoint]);
  const options = { blockSizeBytes: MiB };
  assert.equal(
    sha256(await readThrough(client(t, o, membership, options), '/model.bin', { chunkBytes: MiB })),
    sha256(content),
  );
  assert.equal(await o.bytes('model.bin', content.length), content.length);
  await waitFor(
    'the 13 blocks to be written to SSD',
    () => fetchWorkerStats(first.endpoint),
    (stats) => stats.tiers[0]?.blockCount === 13,
  );
  await first.kill('SIGKILL');

  const second = await spawnWorker(cleanup, config);
  membership.update([second.endpoint]);
  const reloaded = await fetchWorkerStats(second.endpoint);
  assert.equal(reloaded.tiers[0]?.blockCount, 13, 'every block was found again on SSD');
  assert.equal(
    sha256(await readThrough(client(t, o, membership, options), '/model.bin', { chunkBytes: MiB })),
    sha256(content),
  );
  assert.equal(await o.bytes('model.bin'), content.length, 'no byte fetched again after the restart');

  // Damage one block file behind the worker's back: it must be detected and refetched, never served.
  const [victim] = await fullBlockFiles(ssd);
  assert.ok(victim !== undefined);
  const handle = await open(victim, 'r+');
  await handle.write(Buffer.from('bit rot'), 0, 7, 4096);
  await handle.close();
  assert.equal(
    sha256(await readThrough(client(t, o, membership, options), '/model.bin', { chunkBytes: MiB })),
    sha256(content),
  );
  const afterRot = await o.bytes('model.bin', content.length + 1);
  assert.ok(afterRot - content.length <= MiB, `one block refetched (${afterRot - content.length} bytes)`);
  assert.equal((await fetchWorkerStats(second.endpoint)).counters.corruptBlocks, 1);

  // The same through short-circuit: the client's own check catches it and asks the worker again.
  const [another] = (await fullBlockFiles(ssd)).filter((path) => path !== victim);
  assert.ok(another !== undefined);
  const again = await open(another, 'r+');
  await again.write(Buffer.from('flip'), 0, 4, 100);
  await again.close();
  const local = client(t, o, membership, { ...options, nodeName: 'node-a' });
  assert.equal(sha256(await readThrough(local, '/model.bin', { chunkBytes: MiB })), sha256(content));
  assert.equal(local.counters().shortCircuitFallbacks, 1);
  assert.equal((await fetchWorkerStats(second.endpoint)).counters.corruptBlocks, 2);
});

test('worker processes never hold more than their tier quotas under churn', async (t) => {
  const cleanup: Cleanup = (fn) => {
    t.after(fn);
  };
  const o = await origin(t);
  const memQuota = 3 * MiB;
  const ssdQuota = 6 * MiB;
  const dirs: { path: string; quota: number }[] = [];
  const endpoints = [];
  for (let i = 0; i < 2; i += 1) {
    const shm = await tempDir(cleanup, '/dev/shm');
    const ssd = await tempDir(cleanup);
    dirs.push({ path: shm, quota: memQuota }, { path: ssd, quota: ssdQuota });
    const worker = await spawnWorker(cleanup, {
      datasetId: DATASET,
      workerId: `churn-${i}`,
      nodeName: 'node-a',
      blockSize: '256Ki',
      originConcurrency: 16,
      tieredstore: {
        levels: [
          { mediumtype: 'MEM', path: shm, quota: '3Mi', high: '0.9', low: '0.6' },
          { mediumtype: 'SSD', path: ssd, quota: '6Mi', high: '0.9', low: '0.6' },
        ],
      },
      mounts: [{ mountPoint: o.mountPoint }],
      logLevel: 'warn',
    });
    endpoints.push(worker.endpoint);
  }
  const membership = new StaticMembership(endpoints);
  const files = Array.from({ length: 8 }, (_, i) => ({ name: `churn-${i}.bin`, data: randomBytes(8 * MiB) }));
  for (const file of files) await o.write(file.name, file.data);

  const peak = new Map<string, number>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const dir of dirs) peak.set(dir.path, Math.max(peak.get(dir.path) ?? 0, diskUsage(dir.path)));
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  try {
    // 64 MiB of distinct data through 18 MiB of cache, eight readers at once, twice over.
    for (let pass = 0; pass < 2; pass += 1) {
      await Promise.all(
        files.map(async (file) => {
          const reader = client(t, o, membership, { blockSizeBytes: 256 * 1024, readAheadBlocks: 4 });
          assert.equal(
            sha256(await readThrough(reader, `/${file.name}`, { chunkBytes: 128 * 1024 })),
            sha256(file.data),
          );
        }),
      );
    }
  } finally {
    sampling = false;
    await sampler;
  }
  // The store never lets files plus reservations pass the quota. A walk of a directory is not a
  // snapshot, though: a block evicted and another written into its room during one walk may both be
  // seen, so the measurement may read one block (256 KiB and its trailer) high.
  const oneBlockBytes = 256 * 1024 + 4096;
  for (const dir of dirs) {
    const used = peak.get(dir.path) ?? 0;
    assert.ok(
      used <= dir.quota + oneBlockBytes,
      `${dir.path} peaked at ${used} bytes on disk, quota ${dir.quota} (+ one block in flight)`,
    );
    // The sampler only proves the tier was written to; how full it got between two samples depends on
    // the machine's load. That the churn really filled the tiers is shown by the evictions below.
    assert.ok(used > 0, `${dir.path} was used (${used} bytes)`);
  }
  const stats = await Promise.all(endpoints.map((endpoint) => fetchWorkerStats(endpoint)));
  for (const s of stats) {
    assert.ok(s.counters.evictions > 20, `${s.workerId} evicted (${s.counters.evictions})`);
    assert.ok(s.usedBytes <= s.capacityBytes);
  }
});
