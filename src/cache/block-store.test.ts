import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, open, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { BlockStore } from './block-store.ts';
import { BufferPool, isDirectIoAligned } from './buffer-pool.ts';
import { tiersFromLevels, type TierConfig } from './tiers.ts';
import type { BlockKey } from './block-key.ts';
import { CacheError } from './errors.ts';

async function tempDir(t: TestContext, base = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(base, 'tide-block-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function key(index: number, path = 'data/file.bin'): BlockKey {
  return { mount: 'local:///origin', path, version: 'v1', index };
}

/**
 * Bytes of every file under `dir`, rounded up to 4 KiB blocks, as `du` would count them: a
 * synchronous walk (no queueing behind the store's own file operations), one count per inode (a
 * file renamed from tmp/ into its shard during the walk is one file).
 */
function diskUsage(dir: string): number {
  const inodes = new Map<number, number>();
  const pending = [dir];
  for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
    let entries;
    try {
      entries = readdirSync(current, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) {
        pending.push(path);
      } else if (entry.isFile()) {
        const stats = statSync(path, { throwIfNoEntry: false });
        if (stats !== undefined) inodes.set(stats.ino, Math.ceil(stats.size / 4096) * 4096);
      }
    }
  }
  let total = 0;
  for (const bytes of inodes.values()) total += bytes;
  return total;
}

test('tiersFromLevels splits quota over paths, honours quotaList and sorts MEM first', () => {
  const tiers = tiersFromLevels([
    { mediumtype: 'SSD', path: '/a,/b', quota: '2Gi', high: '0.9', low: '0.6' },
    { mediumtype: 'MEM', path: '/dev/shm/x', quota: '1Gi' },
    { mediumtype: 'HDD', path: '/c,/d', quotaList: '1Gi,3Gi' },
  ]);
  assert.deepEqual(
    tiers.map((tier) => [
      tier.medium,
      tier.dirs.map((dir) => [dir.path, dir.capacityBytes]),
      tier.highRatio,
      tier.lowRatio,
    ]),
    [
      ['MEM', [['/dev/shm/x', 2 ** 30]], 0.95, 0.7],
      [
        'SSD',
        [
          ['/a', 2 ** 30],
          ['/b', 2 ** 30],
        ],
        0.9,
        0.6,
      ],
      [
        'HDD',
        [
          ['/c', 2 ** 30],
          ['/d', 3 * 2 ** 30],
        ],
        0.95,
        0.7,
      ],
    ],
  );
});

test('tiersFromLevels refuses levels that cannot work, naming the field', () => {
  const cases: [Parameters<typeof tiersFromLevels>[0][number], RegExp][] = [
    [{ mediumtype: 'SSD', quota: '1Gi' }, /levels\[0\] \(SSD\): path is missing/],
    [{ mediumtype: 'SSD', path: 'relative', quota: '1Gi' }, /not absolute/],
    [{ mediumtype: 'SSD', path: '/a' }, /quota or quotaList is required/],
    [{ mediumtype: 'SSD', path: '/a,/b', quotaList: '1Gi' }, /1 quotas for 2 paths/],
    [{ mediumtype: 'SSD', path: '/a', quota: 'lots' }, /quota "lots" is not a quantity/],
    [
      { mediumtype: 'SSD', path: '/a', quota: '1Gi', high: '0.5', low: '0.7' },
      /low \(0.7\) must be below high/,
    ],
    [{ mediumtype: 'SSD', path: '/a', quota: '1Gi', high: '1.5' }, /high "1.5" is not a ratio/],
  ];
  for (const [level, message] of cases) {
    assert.throws(
      () => tiersFromLevels([level]),
      (error: unknown) =>
        error instanceof CacheError && error.code === 'ERR_CACHE_BAD_CONFIG' && message.test(error.message),
    );
  }
});

test('serves the bytes it stored and keeps SSD blocks, not MEM ones, across a reopen', async (t) => {
  const shm = await tempDir(t, '/dev/shm');
  const disk = await tempDir(t);
  const tiers: TierConfig[] = [
    { medium: 'MEM', dirs: [{ path: shm, capacityBytes: 1 << 20 }], highRatio: 0.95, lowRatio: 0.7 },
    { medium: 'SSD', dirs: [{ path: disk, capacityBytes: 1 << 20 }], highRatio: 0.95, lowRatio: 0.7 },
  ];
  const store = await BlockStore.open({ tiers, datasetId: 'default/demo', blockSizeBytes: 1 << 20 });
  const data = randomBytes(100_000);
  const location = await store.put(key(0), data);
  assert.equal(location?.medium, 'MEM');
  assert.equal(await store.get(key(1)), undefined);
  assert.equal(await store.get({ ...key(0), version: 'v2' }), undefined, 'another version is another block');

  // Fill MEM so that block 0 is demoted to the SSD tier.
  for (let index = 1; index <= 12; index += 1) await store.put(key(index), randomBytes(100_000));
  await store.whenIdle();
  const stats = store.stats();
  assert.ok(stats.counters.demotions > 0, 'blocks were demoted to SSD');
  assert.equal(store.locate(key(0))?.medium, 'SSD');
  assert.deepEqual((await store.get(key(0)))?.data, data);
  const onSsd = [...store.blocks()].filter((block) => block.medium === 'SSD').map((block) => block.key.index);
  await store.close();
  assert.deepEqual(await readdir(shm).then((names) => names.filter((name) => name === 'tide-cache')), [
    'tide-cache',
  ]);
  assert.equal(diskUsage(shm), 0, 'closing empties the MEM tier');

  const reopened = await BlockStore.open({ tiers, datasetId: 'default/demo', blockSizeBytes: 1 << 20 });
  t.after(() => reopened.close());
  assert.deepEqual(
    [...reopened.blocks()].map((block) => block.key.index).sort((a, b) => a - b),
    onSsd.sort((a, b) => a - b),
  );
  assert.deepEqual((await reopened.get(key(0)))?.data, data);
});

test('drops a corrupted or truncated block file instead of serving it', async (t) => {
  const disk = await tempDir(t);
  const tiers: TierConfig[] = [
    { medium: 'SSD', dirs: [{ path: disk, capacityBytes: 1 << 20 }], highRatio: 0.95, lowRatio: 0.7 },
  ];
  const store = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 1 << 20 });
  t.after(() => store.close());
  const first = await store.put(key(0), randomBytes(50_000));
  const second = await store.put(key(1), randomBytes(50_000));
  assert.ok(first !== undefined && second !== undefined);

  const handle = await open(first.filePath, 'r+');
  await handle.write(
    Buffer.from([0xff ^ (await handle.read(Buffer.alloc(1), 0, 1, 1234)).buffer[0]!]),
    0,
    1,
    1234,
  );
  await handle.close();
  assert.equal(await store.get(key(0)), undefined, 'a flipped byte is a miss');
  await assert.rejects(stat(first.filePath), { code: 'ENOENT' });

  await truncate(second.filePath, 10_000);
  assert.equal(await store.get(key(1)), undefined, 'a truncated file is a miss');
  assert.equal(store.stats().counters.corruptBlocks, 2);
  assert.equal(store.stats().tiers[0]?.usedBytes, 0);
});

test('a reopened store drops block files that lost their trailer', async (t) => {
  const disk = await tempDir(t);
  const tiers: TierConfig[] = [
    { medium: 'HDD', dirs: [{ path: disk, capacityBytes: 1 << 20 }], highRatio: 0.95, lowRatio: 0.7 },
  ];
  const store = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 1 << 20 });
  const location = await store.put(key(0), randomBytes(50_000));
  await store.put(key(1), randomBytes(50_000));
  await store.close();
  await truncate(location!.filePath, 49_000);

  const reopened = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 1 << 20 });
  t.after(() => reopened.close());
  assert.deepEqual(
    [...reopened.blocks()].map((block) => block.key.index),
    [1],
  );
  assert.equal(reopened.stats().counters.corruptBlocks, 1);
});

/** Block file `filePath` rewritten with the trailer of format 1 that earlier versions wrote. */
async function rewriteAsFormatOne(
  filePath: string,
  blockKey: BlockKey,
  data: Buffer,
  options: { blockSizeBytes: number; pieceBytes?: number },
): Promise<void> {
  const { blockSizeBytes, pieceBytes } = options;
  const pieceCrc32s: number[] = [];
  for (let start = 0; pieceBytes !== undefined && start < data.length; start += pieceBytes)
    pieceCrc32s.push(crc32(data.subarray(start, start + pieceBytes)));
  const json = Buffer.from(
    JSON.stringify({
      format: 1,
      ...blockKey,
      blockSizeBytes,
      sizeBytes: data.length,
      crc32: crc32(data),
      ...(pieceBytes === undefined ? {} : { pieceBytes, pieceCrc32s }),
    }),
  );
  const footer = Buffer.alloc(8);
  footer.writeUInt32LE(json.length, 0);
  footer.write('TDB1', 4, 'latin1');
  await writeFile(filePath, Buffer.concat([data, json, footer]));
}

test('a reopened store keeps block files of format 1 (CRC-32) and checks them', async (t) => {
  const disk = await tempDir(t);
  const blockSizeBytes = 1 << 20;
  const store = await BlockStore.open({ tiers: ssdTier(disk), datasetId: 'd', blockSizeBytes });
  const blocks = [randomBytes(blockSizeBytes), randomBytes(300_000), randomBytes(blockSizeBytes)];
  const paths: string[] = [];
  for (const [index, data] of blocks.entries()) paths.push((await store.put(key(index), data))!.filePath);
  await store.close();
  // Block 0 with CRC-32 per piece, block 1 with only the whole block's, block 2 damaged after.
  const pieceBytes = 256 * 1024;
  await rewriteAsFormatOne(paths[0]!, key(0), blocks[0]!, { blockSizeBytes, pieceBytes });
  await rewriteAsFormatOne(paths[1]!, key(1), blocks[1]!, { blockSizeBytes });
  await rewriteAsFormatOne(paths[2]!, key(2), blocks[2]!, { blockSizeBytes, pieceBytes });
  const handle = await open(paths[2]!, 'r+');
  await handle.write(Buffer.from('garbage'), 0, 7, 3 * pieceBytes);
  await handle.close();

  const reopened = await BlockStore.open({ tiers: ssdTier(disk), datasetId: 'd', blockSizeBytes });
  t.after(() => reopened.close());
  assert.deepEqual(
    [...reopened.blocks()].map((block) => block.key.index).sort(),
    [0, 1, 2],
    'the old files are indexed',
  );
  const location = reopened.locate(key(0));
  assert.equal(location?.crc32, crc32(blocks[0]!));
  assert.equal(location.pieceCrc32s?.length, 4, 'with their piece checksums');
  assert.equal(location.pieceXxh64s, undefined);
  assert.ok((await reopened.get(key(0)))?.data.equals(blocks[0]!), 'checked piece by piece');
  assert.ok((await reopened.get(key(1)))?.data.equals(blocks[1]!), 'checked as a whole');
  assert.equal(reopened.stats().counters.corruptBlocks, 0);
  assert.equal(await reopened.get(key(2)), undefined, 'a damaged old file is a miss');
  assert.equal(reopened.stats().counters.corruptBlocks, 1);
  await assert.rejects(stat(paths[2]!), { code: 'ENOENT' });
});

test('evicts to the low watermark when the high one is crossed', async (t) => {
  const disk = await tempDir(t);
  const tiers: TierConfig[] = [
    { medium: 'SSD', dirs: [{ path: disk, capacityBytes: 10 * 16384 }], highRatio: 0.8, lowRatio: 0.5 },
  ];
  const store = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 1 << 20 });
  t.after(() => store.close());
  for (let index = 0; index < 8; index += 1) await store.put(key(index), randomBytes(16000));
  assert.equal(store.stats().tiers[0]?.blockCount, 8, 'at the high watermark nothing is evicted yet');
  await store.put(key(8), randomBytes(16000));
  await store.whenIdle();
  const tier = store.stats().tiers[0]!;
  assert.equal(tier.blockCount, 5);
  assert.equal(tier.usedBytes, 5 * 16384);
  assert.deepEqual(
    [...store.blocks()].map((block) => block.key.index).sort((a, b) => a - b),
    [4, 5, 6, 7, 8],
    'the least recently used blocks went first',
  );
});

test('keeps blocks read twice through a scan that would flush a plain LRU', async (t) => {
  const disk = await tempDir(t);
  const tiers: TierConfig[] = [
    { medium: 'SSD', dirs: [{ path: disk, capacityBytes: 20 * 16384 }], highRatio: 0.95, lowRatio: 0.9 },
  ];
  const store = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 1 << 20 });
  t.after(() => store.close());
  const hot = [0, 1, 2, 3, 4].map((index) => key(index, 'hot.bin'));
  for (const block of hot) await store.put(block, randomBytes(16000));
  for (const block of hot) assert.ok(await store.get(block));
  for (let index = 0; index < 100; index += 1) await store.put(key(index, 'scan.bin'), randomBytes(16000));
  await store.whenIdle();
  for (const block of hot) assert.ok(store.has(block), `hot block ${block.index} survived the scan`);
});

test('never holds more than its quota on disk under concurrent churn', async (t) => {
  const shm = await tempDir(t, '/dev/shm');
  const disk = await tempDir(t);
  const memQuota = 6 * 16384;
  const ssdQuota = 10 * 16384;
  const tiers: TierConfig[] = [
    { medium: 'MEM', dirs: [{ path: shm, capacityBytes: memQuota }], highRatio: 0.9, lowRatio: 0.5 },
    { medium: 'SSD', dirs: [{ path: disk, capacityBytes: ssdQuota }], highRatio: 0.9, lowRatio: 0.5 },
  ];
  const store = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 1 << 20 });
  t.after(() => store.close());

  let maxMem = 0;
  let maxSsd = 0;
  let maxAccounted = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxMem = Math.max(maxMem, diskUsage(shm));
      maxSsd = Math.max(maxSsd, diskUsage(disk));
      await new Promise((resolve) => setImmediate(resolve));
      for (const tier of store.stats().tiers)
        maxAccounted = Math.max(maxAccounted, tier.usedBytes / tier.capacityBytes);
    }
  })();

  // 16 writers and readers over 400 distinct blocks of 16,000 bytes (16 KiB with the trailer).
  const payloads = new Map<number, Buffer>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < 400) {
        const index = next++;
        const data = randomBytes(16000);
        payloads.set(index, data);
        await store.put(key(index), data);
        const recent = await store.get(key(Math.max(0, index - 3)));
        if (recent !== undefined) assert.deepEqual(recent.data, payloads.get(Math.max(0, index - 3)));
      }
    }),
  );
  await store.whenIdle();
  sampling = false;
  await sampler;
  // A walk is not a snapshot (the store's file operations run on other threads meanwhile): a block
  // evicted and another written into its room during one walk may both be seen. Hence one block of
  // slack on disk; the accounting itself, checked below, never passes the quota.
  assert.ok(maxMem <= memQuota + 16384, `MEM held ${maxMem} bytes on disk, quota ${memQuota}`);
  assert.ok(maxSsd <= ssdQuota + 16384, `SSD held ${maxSsd} bytes on disk, quota ${ssdQuota}`);
  assert.ok(maxMem > 0 && maxSsd > 0, 'the sampler saw both tiers in use');
  assert.ok(maxAccounted <= 1, `accounted usage reached ${maxAccounted} of a quota`);
  const { tiers: after, counters } = store.stats();
  assert.ok(counters.evictions > 300 && counters.demotions > 0, JSON.stringify(counters));
  assert.ok(after.every((tier) => tier.usedBytes <= tier.capacityBytes));
  assert.equal(diskUsage(disk), after[1]!.usedBytes, 'accounting matches the files on disk');
});

test('waits on concurrent writes of one block instead of writing it twice', async (t) => {
  const disk = await tempDir(t);
  const tiers: TierConfig[] = [
    { medium: 'SSD', dirs: [{ path: disk, capacityBytes: 1 << 20 }], highRatio: 0.95, lowRatio: 0.7 },
  ];
  const store = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 1 << 20 });
  t.after(() => store.close());
  const data = randomBytes(1000);
  const locations = await Promise.all(Array.from({ length: 8 }, () => store.put(key(0), data)));
  assert.equal(new Set(locations.map((location) => location?.filePath)).size, 1);
  assert.equal(store.stats().tiers[0]?.blockCount, 1);
});

test('a reopened store with a smaller quota evicts down to its low watermark', async (t) => {
  const disk = await tempDir(t);
  const big: TierConfig[] = [
    { medium: 'SSD', dirs: [{ path: disk, capacityBytes: 20 * 16384 }], highRatio: 0.95, lowRatio: 0.7 },
  ];
  const store = await BlockStore.open({ tiers: big, datasetId: 'd', blockSizeBytes: 1 << 20 });
  for (let index = 0; index < 15; index += 1) await store.put(key(index), randomBytes(16000));
  await store.close();
  const small: TierConfig[] = [
    { medium: 'SSD', dirs: [{ path: disk, capacityBytes: 10 * 16384 }], highRatio: 0.9, lowRatio: 0.5 },
  ];
  const reopened = await BlockStore.open({ tiers: small, datasetId: 'd', blockSizeBytes: 1 << 20 });
  t.after(() => reopened.close());
  assert.equal(reopened.stats().tiers[0]?.blockCount, 5);
  assert.equal(diskUsage(disk), 5 * 16384);
});

test('a store reopened with another block size drops the blocks cut with the old one', async (t) => {
  const disk = await tempDir(t);
  const tiers: TierConfig[] = [
    { medium: 'SSD', dirs: [{ path: disk, capacityBytes: 1 << 20 }], highRatio: 0.95, lowRatio: 0.7 },
  ];
  const store = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 65536 });
  await store.put(key(1), randomBytes(65536));
  await store.close();
  const reopened = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 131072 });
  t.after(() => reopened.close());
  assert.equal(reopened.has(key(1)), false, 'block 1 of 64 KiB is not block 1 of 128 KiB');
  assert.equal(diskUsage(disk), 0);
});

function ssdTier(path: string, capacityBytes = 64 << 20): TierConfig[] {
  return [{ medium: 'SSD', dirs: [{ path, capacityBytes }], highRatio: 0.95, lowRatio: 0.7 }];
}

test('writes SSD blocks with direct I/O; they survive a reopen, with or without direct I/O', async (t) => {
  const disk = await tempDir(t);
  const blockSizeBytes = 4 << 20;
  const store = await BlockStore.open({ tiers: ssdTier(disk), datasetId: 'd', blockSizeBytes });
  if (store.stats().tiers[0]?.directIo !== true) {
    await store.close();
    t.skip('no file system with O_DIRECT under the temporary directory');
    return;
  }
  const probe = store.directIoProbe();
  assert.ok(probe !== undefined, 'a direct store offers a probe for aligned buffers');
  const pool = new BufferPool(blockSizeBytes, 1, { directIo: probe });
  const aligned = pool.acquire();
  assert.ok(isDirectIoAligned(aligned), 'the probe finds memory the tier takes');
  randomBytes(blockSizeBytes).copy(aligned);
  // Whole blocks from aligned memory (as the worker fills them), the short last block of a file,
  // plain memory (copied through a bounce buffer) and a tiny block (buffered).
  const blocks = [
    aligned,
    aligned.subarray(0, 3 * 1024 * 1024 + 999),
    randomBytes(1 << 20),
    randomBytes(2000),
  ];
  for (const [index, data] of blocks.entries()) assert.ok(await store.put(key(index), data));
  for (const [index, data] of blocks.entries()) {
    const into = Buffer.alloc(blockSizeBytes);
    const stored = await store.get(key(index), { into });
    assert.ok(stored?.data.equals(data), `block ${index} reads back`);
  }
  await store.close();

  const buffered = await BlockStore.open({
    tiers: ssdTier(disk),
    datasetId: 'd',
    blockSizeBytes,
    directIo: false,
  });
  assert.equal(buffered.stats().tiers[0]?.directIo, false);
  assert.equal(buffered.directIoProbe(), undefined);
  for (const [index, data] of blocks.entries()) {
    assert.ok((await buffered.get(key(index)))?.data.equals(data), `block ${index} reads back buffered`);
  }
  const later = randomBytes(1 << 20);
  await buffered.put(key(9), later);
  await buffered.close();

  const direct = await BlockStore.open({ tiers: ssdTier(disk), datasetId: 'd', blockSizeBytes });
  t.after(() => direct.close());
  assert.equal(direct.stats().counters.corruptBlocks, 0);
  assert.ok((await direct.get(key(9)))?.data.equals(later), 'a block written buffered reads back directly');
  assert.ok((await direct.get(key(0)))?.data.equals(blocks[0] ?? Buffer.alloc(0)));
});

test('MEM tiers and tiers on tmpfs keep to the page cache', async (t) => {
  const shm = await tempDir(t, '/dev/shm');
  const shmAsSsd = await tempDir(t, '/dev/shm');
  const tiers: TierConfig[] = [
    { medium: 'MEM', dirs: [{ path: shm, capacityBytes: 8 << 20 }], highRatio: 0.95, lowRatio: 0.7 },
    ...ssdTier(shmAsSsd),
  ];
  const store = await BlockStore.open({ tiers, datasetId: 'd', blockSizeBytes: 1 << 20 });
  t.after(() => store.close());
  assert.deepEqual(
    store.stats().tiers.map((tier) => tier.directIo),
    [false, false],
  );
  assert.equal(store.directIoProbe(), undefined);
  const data = randomBytes(1 << 20);
  assert.equal((await store.put(key(0), data))?.medium, 'MEM');
  assert.ok((await store.get(key(0)))?.data.equals(data));
});
