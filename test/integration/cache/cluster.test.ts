import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  StaticMembership,
  aggregateCacheStates,
  fetchWorkerStats,
  type CacheClient,
  type CacheClientOptions,
  type WorkerProcessConfig,
} from '../../../src/cache/index.ts';
import { startNginx, type NginxServer } from '../../helpers/nginx.ts';
import {
  readThrough,
  sha256,
  spawnWorker,
  tempDir,
  waitFor,
  type Cleanup,
  type WorkerProcess,
  webCacheClient,
} from './helpers.ts';

/**
 * Three worker processes on 127.0.0.1 in front of nginx (through the web connector), read by
 * cache clients in this process. Origin bytes are counted from nginx's access log.
 */
const MiB = 1024 * 1024;
const BLOCK = MiB;
const DATASET = 'default/it';
const cleanups: (() => Promise<void> | void)[] = [];
const cleanup: Cleanup = (fn) => {
  cleanups.push(fn);
};
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

let nginx: NginxServer;
let root: string;
let mountPoint: string;
const workers: WorkerProcess[] = [];
const configs: WorkerProcessConfig[] = [];
let membership: StaticMembership;
/** The file the first test reads cold and the second warm. */
const shared = randomBytes(24 * MiB + 4321);

before(async () => {
  root = await tempDir(cleanup);
  await mkdir(join(root, 'data'));
  nginx = await startNginx({ root });
  cleanup(() => nginx.stop());
  mountPoint = `${nginx.url}data/`;
  for (let i = 0; i < 3; i += 1) {
    const shm = await tempDir(cleanup, '/dev/shm');
    const ssd = await tempDir(cleanup);
    const config: WorkerProcessConfig = {
      datasetId: DATASET,
      workerId: `it-worker-${i}`,
      nodeName: 'node-a',
      blockSize: '1Mi',
      tieredstore: {
        levels: [
          { mediumtype: 'MEM', path: shm, quota: '8Mi' },
          { mediumtype: 'SSD', path: ssd, quota: '128Mi' },
        ],
      },
      mounts: [{ mountPoint }],
      logLevel: 'warn',
    };
    configs.push(config);
    workers.push(await spawnWorker(cleanup, config));
  }
  membership = new StaticMembership(workers.map((worker) => worker.endpoint));
});

function client(options: Partial<CacheClientOptions> = {}): CacheClient {
  return webCacheClient(cleanup, {
    datasetId: DATASET,
    mountPoint,
    membership,
    blockSizeBytes: BLOCK,
    nodeName: 'node-b',
    ...options,
  });
}

/** GETs of `/data/<name>` in nginx's access log, once every one of them has been logged. */
async function originGets(name: string, atLeastBytes = 0): Promise<{ requests: number; bytes: number }> {
  const read = async (): Promise<{ requests: number; bytes: number }> => {
    const records = (await nginx.accessLog()).filter(
      (record) => record.method === 'GET' && record.target === `/data/${name}`,
    );
    return { requests: records.length, bytes: records.reduce((sum, record) => sum + record.bodyBytes, 0) };
  };
  return waitFor(
    `nginx to log ${atLeastBytes} bytes of ${name}`,
    read,
    (value) => value.bytes >= atLeastBytes,
  );
}

async function writeOrigin(name: string, data: Uint8Array): Promise<void> {
  await writeFile(join(root, 'data', name), data);
}

test('reads each block from the origin once under 16 concurrent cold readers', async () => {
  const content = shared;
  await writeOrigin('shared.bin', content);
  const digests = await Promise.all(
    Array.from({ length: 16 }, async () =>
      sha256(await readThrough(client(), '/shared.bin', { chunkBytes: 256 * 1024 })),
    ),
  );
  for (const digest of digests) assert.equal(digest, sha256(content));
  const origin = await originGets('shared.bin', content.length);
  assert.equal(origin.bytes, content.length, 'origin bytes equal the file size');
  assert.equal(origin.requests, 25, 'one ranged GET per block');

  const stats = await waitFor(
    'the 25 blocks to be written to the tiers',
    () => Promise.all(workers.map((worker) => fetchWorkerStats(worker.endpoint, { files: true }))),
    (all) =>
      all.reduce((sum, s) => sum + s.tiers.reduce((blocks, tier) => blocks + tier.blockCount, 0), 0) === 25,
  );
  for (const s of stats)
    assert.ok(
      s.counters.originReads > 0,
      `${s.workerId} owns a share of the blocks (placement is random per file version)`,
    );
  const { cacheStates } = aggregateCacheStates({ workers: stats, ufsTotalBytes: content.length });
  assert.equal(cacheStates['cachedPercentage'], '100.0%');
  assert.equal(cacheStates['cached'], '24.00MiB');
  assert.equal(cacheStates['cacheCapacity'], '408.00MiB');
});

test('serves the same bytes warm over HTTP and short-circuited on the workers’ node', async () => {
  const before = await originGets('shared.bin', shared.length);
  const warm = client();
  assert.equal(sha256(await readThrough(warm, '/shared.bin', { chunkBytes: MiB })), sha256(shared));
  assert.equal(warm.counters().workerBytes, shared.length, 'a client on another node reads over HTTP');
  const local = client({ nodeName: 'node-a' });
  const data = await readThrough(local, '/shared.bin', { chunkBytes: 128 * 1024 });
  assert.equal(sha256(data), sha256(shared));
  assert.equal(local.counters().shortCircuitBytes, data.length, 'every block read from the workers’ files');
  assert.equal(local.counters().workerBytes, 0);
  assert.deepEqual(await originGets('shared.bin'), before, 'no new origin reads');
});

test('keeps returning the right bytes when a worker is killed with SIGKILL mid-read', async () => {
  const content = randomBytes(24 * MiB);
  await writeOrigin('killed.bin', content);
  // Read-ahead bounded to 4 blocks and the kill at 2 MiB: at least 18 of the 24 blocks are still to
  // be fetched when the worker dies, so the reader meets it (each block is its with odds 1/3).
  const reader = client({ workerRetryMs: 60_000, readAheadBlocks: 4 });
  const victim = workers[1]!;
  let killed = false;
  const data = await readThrough(reader, '/killed.bin', {
    chunkBytes: 512 * 1024,
    onChunk: async (offset) => {
      if (!killed && offset >= 2 * MiB) {
        killed = true;
        await victim.kill('SIGKILL');
      }
    },
  });
  assert.ok(killed);
  assert.equal(sha256(data), sha256(content));
  assert.ok(reader.counters().workerFailures >= 1, 'the client saw the worker fail');
  assert.equal(reader.counters().originBytes, 0, 'the next owners served what the dead worker owned');

  // Bring it back with its SSD tier for the tests that follow.
  workers[1] = await spawnWorker(cleanup, configs[1]!);
  membership.update(workers.map((worker) => worker.endpoint));
});

test('never serves stale bytes when the origin file is replaced between two reads', async () => {
  const first = randomBytes(5 * MiB + 17);
  await writeOrigin('replaced.bin', first);
  const reader = client({ readAheadBlocks: 0 });
  const { version } = await reader.stat('/replaced.bin');
  assert.equal(
    sha256(await readThrough(reader, '/replaced.bin', { chunkBytes: MiB, version })),
    sha256(first),
  );

  const second = randomBytes(6 * MiB + 99);
  await writeOrigin('replaced.bin', second);
  // nginx's ETag is mtime and size: move the mtime too, as a rewrite in the same second would not.
  const later = new Date(Date.now() + 5000);
  await utimes(join(root, 'data', 'replaced.bin'), later, later);

  const again = await readThrough(reader, '/replaced.bin', { chunkBytes: MiB });
  assert.equal(sha256(again), sha256(second), 'a fresh read sees the new file');
  const fresh = await readThrough(client(), '/replaced.bin', { chunkBytes: 2 * MiB });
  assert.equal(sha256(fresh), sha256(second), 'and so does another client');

  // A reader still holding the old version gets that version's bytes while they are cached, and an
  // error, never bytes of the new file, for a block that is not.
  const oldFile = randomBytes(4 * MiB);
  await writeOrigin('pinned.bin', oldFile);
  const pinned = client({ readAheadBlocks: 0 });
  const old = await pinned.stat('/pinned.bin');
  assert.ok(
    (await pinned.read('/pinned.bin', { version: old.version, offset: 0, length: 1000 })).equals(
      oldFile.subarray(0, 1000),
    ),
  );
  await writeOrigin('pinned.bin', randomBytes(4 * MiB + 1));
  await utimes(join(root, 'data', 'pinned.bin'), later, later);
  const cached = await client().read('/pinned.bin', { version: old.version, offset: 10, length: 100 });
  assert.ok(cached.equals(oldFile.subarray(10, 110)));
  await assert.rejects(pinned.read('/pinned.bin', { version: old.version, offset: 3 * MiB, length: 100 }), {
    code: 'ERR_CACHE_VERSION_CHANGED',
  });
});
