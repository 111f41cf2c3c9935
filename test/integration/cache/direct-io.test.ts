import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  StaticMembership,
  fetchWorkerStats,
  type CacheClient,
  type WorkerProcessConfig,
} from '../../../src/cache/index.ts';
import { startNginx } from '../../helpers/nginx.ts';
import {
  readThrough,
  sha256,
  spawnWorker,
  tempDir,
  waitFor,
  webCacheClient,
  type Cleanup,
} from './helpers.ts';

const MiB = 1024 * 1024;
const DATASET = 'default/direct';

function client(
  t: TestContext,
  mountPoint: string,
  membership: StaticMembership,
  nodeName: string,
): CacheClient {
  return webCacheClient(
    (fn) => {
      t.after(fn);
    },
    {
      datasetId: DATASET,
      mountPoint,
      membership,
      blockSizeBytes: 4 * MiB,
      nodeName,
    },
  );
}

test('blocks a worker wrote with direct I/O are served after a SIGKILL restart, also by a worker without it', async (t) => {
  const cleanup: Cleanup = (fn) => {
    t.after(fn);
  };
  const root = await tempDir(cleanup);
  await mkdir(join(root, 'data'));
  // Whole 4 MiB blocks and a short last block whose length is no multiple of 4 KiB.
  const content = randomBytes(3 * 4 * MiB + 123_457);
  await writeFile(join(root, 'data', 'model.bin'), content);
  const nginx = await startNginx({ root });
  t.after(() => nginx.stop());
  const mountPoint = `${nginx.url}data/`;
  const originBytes = async (): Promise<number> =>
    (await nginx.accessLog())
      .filter((record) => record.method === 'GET' && record.target === '/data/model.bin')
      .reduce((sum, record) => sum + record.bodyBytes, 0);
  const ssd = await tempDir(cleanup);
  const config: WorkerProcessConfig = {
    datasetId: DATASET,
    workerId: 'direct-0',
    nodeName: 'node-a',
    blockSize: '4Mi',
    tieredstore: { levels: [{ mediumtype: 'SSD', path: ssd, quota: '256Mi' }] },
    mounts: [{ mountPoint }],
    logLevel: 'warn',
  };
  const first = await spawnWorker(cleanup, config);
  const membership = new StaticMembership([first.endpoint]);
  const written = await fetchWorkerStats(first.endpoint);
  if (written.tiers[0]?.directIo !== true) {
    t.skip('no file system with O_DIRECT under the temporary directory');
    return;
  }
  const digest = sha256(content);
  assert.equal(
    sha256(await readThrough(client(t, mountPoint, membership, 'node-b'), '/model.bin', { chunkBytes: MiB })),
    digest,
  );
  await waitFor(
    'the 4 blocks to be written to SSD',
    () => fetchWorkerStats(first.endpoint),
    (stats) => stats.tiers[0]?.blockCount === 4,
  );
  // Read back from the files: through the worker (its store reads them) and short-circuit.
  assert.equal(
    sha256(await readThrough(client(t, mountPoint, membership, 'node-b'), '/model.bin', { chunkBytes: MiB })),
    digest,
  );
  const local = client(t, mountPoint, membership, 'node-a');
  assert.equal(sha256(await readThrough(local, '/model.bin', { chunkBytes: MiB })), digest);
  assert.ok(local.counters().shortCircuitBytes > 0, 'the same-node client read the block files');
  await first.kill('SIGKILL');

  const second = await spawnWorker(cleanup, { ...config, directIo: false });
  membership.update([second.endpoint]);
  const reloaded = await fetchWorkerStats(second.endpoint);
  assert.equal(reloaded.tiers[0]?.directIo, false, 'direct I/O is off as configured');
  assert.equal(reloaded.tiers[0].blockCount, 4, 'every block was found again');
  assert.equal(reloaded.counters.corruptBlocks, 0);
  assert.equal(
    sha256(await readThrough(client(t, mountPoint, membership, 'node-b'), '/model.bin', { chunkBytes: MiB })),
    digest,
  );
  assert.equal(await originBytes(), content.length, 'no byte was fetched from the origin again');
});
