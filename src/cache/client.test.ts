import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { LocalUfs, UfsError, type ByteRange, type ReadOptions } from '../ufs/index.ts';
import { startWorker, type CacheWorker } from './worker.ts';
import { createCacheClient, type CacheClient, type CacheClientOptions } from './client.ts';
import { StaticMembership, type WorkerEndpoint } from './membership.ts';
import { rankByRendezvous } from './rendezvous.ts';
import { CacheError } from './errors.ts';

// For the memory test: a collection before each measure.
setFlagsFromString('--expose-gc');

const BLOCK = 64 * 1024;
const MOUNT = 'local:///origin';

async function tempDir(t: TestContext, base = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(base, 'tide-client-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

interface Cluster {
  origin: string;
  ufs: LocalUfs;
  workers: CacheWorker[];
  membership: StaticMembership;
  endpoints: WorkerEndpoint[];
  client(options?: Partial<CacheClientOptions>): CacheClient;
}

/** ArrayBuffer bytes still reachable after a full collection. */
function liveArrayBufferBytes(): number {
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().arrayBuffers;
}

async function cluster(t: TestContext, count = 3, blockBytes = BLOCK): Promise<Cluster> {
  const origin = await tempDir(t);
  const ufs = new LocalUfs({ root: origin, description: MOUNT });
  const workers: CacheWorker[] = [];
  for (let i = 0; i < count; i += 1) {
    const ssd = await tempDir(t);
    const worker = await startWorker({
      datasetId: 'default/demo',
      mounts: [{ id: MOUNT, ufs: new LocalUfs({ root: origin, description: MOUNT }) }],
      tiers: [
        {
          medium: 'SSD',
          dirs: [{ path: ssd, capacityBytes: 256 * blockBytes }],
          highRatio: 0.95,
          lowRatio: 0.7,
        },
      ],
      blockSizeBytes: blockBytes,
      workerId: `w${i}`,
      nodeName: 'node-a',
    });
    t.after(() => worker.close());
    workers.push(worker);
  }
  const endpoints = workers.map((worker) => ({
    id: worker.workerId,
    url: worker.url,
    nodeName: worker.nodeName,
  }));
  const membership = new StaticMembership(endpoints);
  return {
    origin,
    ufs,
    workers,
    membership,
    endpoints,
    client: (options = {}) => {
      const client = createCacheClient({
        datasetId: 'default/demo',
        membership,
        mounts: [{ id: MOUNT, path: '/', ufs }],
        blockSizeBytes: blockBytes,
        nodeName: 'node-b',
        ...options,
      });
      t.after(() => client.close());
      return client;
    },
  };
}

async function readWhole(
  client: CacheClient,
  path: string,
  chunkBytes: number,
  version?: string,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let offset = 0; ; offset += chunkBytes) {
    const part = await client.read(path, {
      offset,
      length: chunkBytes,
      ...(version === undefined ? {} : { version }),
    });
    if (part.length === 0) break;
    parts.push(Buffer.from(part));
    if (part.length < chunkBytes) break;
  }
  return Buffer.concat(parts);
}

test('rendezvous hashing moves only the departed worker’s blocks', () => {
  const workers = Array.from({ length: 5 }, (_, i) => ({ id: `w${i}` }));
  const blocks = Array.from({ length: 2000 }, (_, i) => `block-${i}`);
  const before = blocks.map((block) => rankByRendezvous(block, workers)[0]?.id);
  const after = blocks.map((block) => rankByRendezvous(block, workers.slice(0, 4))[0]?.id);
  let moved = 0;
  for (let i = 0; i < blocks.length; i += 1) {
    if (before[i] !== after[i]) {
      moved += 1;
      assert.equal(before[i], 'w4', 'only blocks of the departed worker move');
    }
  }
  assert.ok(moved > 300 && moved < 500, `about a fifth of the blocks moved (${moved})`);
  const counts = new Map<string, number>();
  for (const owner of before) counts.set(owner ?? '', (counts.get(owner ?? '') ?? 0) + 1);
  for (const count of counts.values())
    assert.ok(count > 300 && count < 500, `balanced: ${[...counts.values()].join(',')}`);
});

test('reads a file spread over three workers with each block fetched from the origin once', async (t) => {
  const c = await cluster(t);
  const content = randomBytes(40 * BLOCK + 123);
  await writeFile(join(c.origin, 'data.bin'), content);
  const client = c.client();
  assert.equal(sha256(await readWhole(client, 'data.bin', 100_000)), sha256(content));
  const second = c.client();
  assert.equal(sha256(await readWhole(second, '/data.bin', BLOCK)), sha256(content));

  const stats = c.workers.map((worker) => worker.stats());
  assert.equal(
    stats.reduce((sum, s) => sum + s.counters.originBytes, 0),
    content.length,
    'every byte came from the origin exactly once',
  );
  for (const s of stats)
    assert.ok(
      s.counters.originReads > 0,
      `${s.workerId} owns a share of the blocks (placement is random per file version)`,
    );
  assert.equal(client.counters().originBytes, 0);
  assert.equal(client.counters().shortCircuitBytes, 0, 'another node reads over HTTP');
  assert.ok(client.counters().readAheadBlocks > 10, 'a sequential reader reads ahead');
});

test('returns exact bytes for arbitrary ranges, across blocks and at the end of the file', async (t) => {
  const c = await cluster(t, 2);
  const content = randomBytes(7 * BLOCK + 999);
  await writeFile(join(c.origin, 'f'), content);
  const client = c.client({ maxBufferBytes: 3 * BLOCK });
  const { version } = await client.stat('f');
  const ranges: [number, number][] = [
    [0, 1],
    [BLOCK - 10, 20],
    [3 * BLOCK, 2 * BLOCK],
    [7 * BLOCK + 900, 5000],
    [content.length, 10],
    [content.length + BLOCK * 3, 10],
    [5, 7 * BLOCK],
  ];
  for (let i = 0; i < 40; i += 1) {
    const offset = Math.floor(Math.random() * content.length);
    ranges.push([offset, Math.floor(Math.random() * 3 * BLOCK)]);
  }
  for (const [offset, length] of ranges) {
    const got = await client.read('f', { version, offset, length });
    assert.ok(got.equals(content.subarray(offset, offset + length)), `range ${offset}+${length}`);
  }
  // A fresh client that never stat'ed the file finds its end from the short last block.
  const fresh = c.client();
  const tail = await fresh.read('f', { version, offset: 7 * BLOCK, length: 4 * BLOCK });
  assert.ok(tail.equals(content.subarray(7 * BLOCK)));
});

test('reads block files directly when the owner runs on the same node', async (t) => {
  const c = await cluster(t, 2);
  const content = randomBytes(10 * BLOCK);
  await writeFile(join(c.origin, 'f'), content);
  const client = c.client({ nodeName: 'node-a' });
  assert.equal(sha256(await readWhole(client, 'f', BLOCK)), sha256(content), 'cold');
  // Cold blocks come over HTTP and are written to a tier just after.
  const deadline = Date.now() + 5000;
  while (c.workers.reduce((sum, worker) => sum + worker.stats().tiers[0]!.blockCount, 0) < 10) {
    assert.ok(Date.now() < deadline, 'timed out waiting for the blocks to be cached');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const warm = c.client({ nodeName: 'node-a' });
  assert.equal(sha256(await readWhole(warm, 'f', BLOCK)), sha256(content), 'warm');
  assert.equal(warm.counters().shortCircuitBytes, content.length);
  assert.equal(warm.counters().workerBytes, 0);
  const served = c.workers.reduce((sum, worker) => sum + worker.stats().counters.servedLocalBytes, 0);
  assert.equal(served, content.length, 'workers count short-circuit reads as local');
  const located = c.workers.reduce((sum, worker) => sum + worker.stats().counters.locatedBytes, 0);
  assert.equal(located, content.length, 'and as read from the block files by the client');
});

test('random reads of warm blocks on this node read only their pieces, with no request to a worker', async (t) => {
  const c = await cluster(t, 2);
  const content = randomBytes(10 * BLOCK);
  await writeFile(join(c.origin, 'db'), content);
  await c.client({ nodeName: 'node-a' }).load('/db');
  // A budget of two blocks: the whole read below leaves most blocks out of the client's memory.
  const client = c.client({ nodeName: 'node-a', maxBufferBytes: 2 * BLOCK });
  assert.equal(sha256(await readWhole(client, 'db', BLOCK)), sha256(content));
  const hits = (): number => c.workers.reduce((sum, worker) => sum + worker.stats().counters.hits, 0);
  const before = { hits: hits(), shortCircuit: client.counters().shortCircuitBytes };
  for (const [index, at, length] of [
    // Each more than a block away from where every earlier read ended: random, not sequential.
    [1, 1000, 4096],
    [5, 7, 100],
    [7, BLOCK - 10, 10],
    [3, 500, 1],
  ] as const) {
    const offset = index * BLOCK + at;
    const bytes = await client.read('/db', { offset, length });
    assert.deepEqual(bytes, content.subarray(offset, offset + length), `block ${index} at ${at}`);
  }
  assert.equal(hits(), before.hits, 'the block files were read without asking the workers');
  assert.equal(client.counters().shortCircuitBytes - before.shortCircuit, 4096 + 100 + 10 + 1);
});

test('random reads a few pages apart inside one block are not taken for a sequential pass', async (t) => {
  const block = 1024 * 1024;
  const c = await cluster(t, 1, block);
  const content = randomBytes(4 * block);
  await writeFile(join(c.origin, 'db'), content);
  await c.client({ nodeName: 'node-a' }).load('/db');
  // Learns where the block files are; a budget of one block leaves block 1 out of its memory.
  const random = c.client({ nodeName: 'node-a', maxBufferBytes: block });
  assert.equal(sha256(await readWhole(random, 'db', block)), sha256(content));
  const hits = c.workers[0]!.stats().counters.hits;
  const before = random.counters();
  // A database's pages: each read starts 200 KiB past where the one before ended.
  for (const offset of [block + 1000, block + 209_000, block + 417_000, block + 625_000]) {
    const bytes = await random.read('/db', { offset, length: 4096 });
    assert.deepEqual(bytes, content.subarray(offset, offset + 4096));
  }
  const after = random.counters();
  assert.equal(after.readAheadBlocks - before.readAheadBlocks, 0, 'nothing read ahead');
  assert.equal(after.shortCircuitBytes - before.shortCircuitBytes, 4 * 4096, 'only the pieces read');
  assert.equal(c.workers[0]!.stats().counters.hits, hits, 'no whole block asked of the worker');
});

test('a buffered small file holds its own size of memory, not a shared slab', async (t) => {
  const c = await cluster(t, 1);
  await Promise.all(
    Array.from({ length: 1040 }, (_, i) => writeFile(join(c.origin, `s${i}`), randomBytes(16 * 1024))),
  );
  const client = c.client({ nodeName: 'node-a' });
  const readAll = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i += 1) {
      // Garbage of the same size beside each read, as a FUSE server's other work makes.
      Buffer.allocUnsafe(16 * 1024);
      assert.equal((await client.read(`/s${i}`, { offset: 0, length: 65536 })).length, 16 * 1024);
    }
  };
  await readAll(0, 40);
  const before = liveArrayBufferBytes();
  await readAll(40, 1040);
  const perFile = (liveArrayBufferBytes() - before) / 1000;
  // A slice of a 64 KiB slab held 49-81 KB per file.
  assert.ok(perFile < 32 * 1024, `${Math.round(perFile)} bytes held per buffered 16 KiB file`);
});

test('a read given the file size asks for no block past the end of the file', async (t) => {
  const c = await cluster(t, 1);
  await writeFile(join(c.origin, 'small'), 'x'.repeat(1000));
  const { version } = await c.ufs.stat('small');
  const sized = c.client({ nodeName: 'node-a' });
  const bytes = await sized.read('/small', { offset: 0, length: 4096, version, sizeBytes: 1000 });
  assert.equal(bytes.length, 1000);
  assert.equal(sized.counters().readAheadBlocks, 0);
  // Without it (and no stat before), the client reads ahead the block past the end, in vain.
  const unsized = c.client({ nodeName: 'node-a' });
  assert.equal((await unsized.read('/small', { offset: 0, length: 4096, version })).length, 1000);
  assert.equal(unsized.counters().readAheadBlocks, 1);
});

test('lends bytes inside one block without a copy, kept from reuse until released', async (t) => {
  const c = await cluster(t, 2);
  const content = randomBytes(8 * BLOCK);
  await writeFile(join(c.origin, 'lent'), content);
  // A budget of two blocks: the reads below push every other block through it.
  const client = c.client({ nodeName: 'node-a', maxBufferBytes: 2 * BLOCK });
  const lent = await client.readLent('/lent', { offset: 10, length: 1000 });
  const across = await client.readLent('/lent', { offset: BLOCK - 10, length: 20 });
  assert.deepEqual(across.data, content.subarray(BLOCK - 10, BLOCK + 10), 'a read across blocks is copied');
  across.release();
  assert.equal(sha256(await readWhole(client, 'lent', BLOCK)), sha256(content));
  assert.deepEqual(lent.data, content.subarray(10, 1010), 'the lent bytes were not overwritten');
  lent.release();
  lent.release();
  assert.equal(sha256(await readWhole(client, 'lent', BLOCK)), sha256(content), 'after the release');
  const tail = await client.readLent('/lent', { offset: 8 * BLOCK - 5, length: 100 });
  assert.deepEqual(tail.data, content.subarray(8 * BLOCK - 5), 'short at the end of the file');
  tail.release();
});

test('falls back to the next owner, then to the origin, when workers go away', async (t) => {
  const c = await cluster(t, 3);
  const content = randomBytes(30 * BLOCK);
  await writeFile(join(c.origin, 'f'), content);
  const client = c.client({ readAheadBlocks: 0 });
  const { version } = await client.stat('f');
  assert.equal(sha256(await readWhole(client, 'f', BLOCK, version)), sha256(content));

  await c.workers[0]!.close();
  const afterOne = c.client({ readAheadBlocks: 0 });
  assert.equal(sha256(await readWhole(afterOne, 'f', BLOCK, version)), sha256(content));
  assert.ok(afterOne.counters().workerFailures >= 1);
  assert.equal(afterOne.counters().originBytes, 0, 'the next owners served the blocks of the stopped worker');

  await c.workers[1]!.close();
  await c.workers[2]!.close();
  const afterAll = c.client({ readAheadBlocks: 0 });
  assert.equal(sha256(await readWhole(afterAll, 'f', BLOCK, version)), sha256(content));
  assert.equal(afterAll.counters().originBytes, content.length, 'with no worker left the origin serves');
});

test('keeps its buffer within budget while reading ahead', async (t) => {
  const c = await cluster(t, 2);
  const content = randomBytes(64 * BLOCK);
  await writeFile(join(c.origin, 'f'), content);
  const client = c.client({ maxBufferBytes: 6 * BLOCK, readAheadBlocks: 16 });
  assert.equal(sha256(await readWhole(client, 'f', 32 * 1024)), sha256(content));
  assert.ok(client.counters().readAheadBlocks > 30);
  const fetched = client.counters().workerBytes;
  assert.equal(fetched, content.length, 'read ahead fetched each block once');
});

test('load places each block on as many workers as replicas asks', async (t) => {
  const c = await cluster(t, 3);
  await mkdir(join(c.origin, 'dir/sub'), { recursive: true });
  await writeFile(join(c.origin, 'dir/a'), randomBytes(5 * BLOCK));
  await writeFile(join(c.origin, 'dir/sub/b'), randomBytes(3 * BLOCK + 1));
  const client = c.client();
  const result = await client.load('/dir', { replicas: 2 });
  assert.deepEqual(result, { files: 2, blocks: 9, bytes: 8 * BLOCK + 1 });
  const held = c.workers.reduce((sum, worker) => sum + worker.stats().tiers[0]!.blockCount, 0);
  assert.equal(held, 18);
  const again = await client.load('/dir/a');
  assert.equal(again.blocks, 5);
  assert.equal(
    c.workers.reduce((sum, worker) => sum + worker.stats().counters.originReads, 0),
    18,
  );
});

test('load of a listed entry asks the origin nothing but the blocks', async (t) => {
  const c = await cluster(t, 2);
  await writeFile(join(c.origin, 'listed'), randomBytes(3 * BLOCK));
  const client = c.client();
  let entry;
  for await (const listed of client.list('/')) entry = listed;
  assert.equal(entry?.path, 'listed');
  let stats = 0;
  const stat = c.ufs.stat.bind(c.ufs);
  c.ufs.stat = (...args) => {
    stats += 1;
    return stat(...args);
  };
  const result = await client.load('/listed', { entry });
  assert.deepEqual(result, { files: 1, blocks: 3, bytes: 3 * BLOCK });
  assert.equal(stats, 0);
  await client.load('/listed');
  assert.equal(stats, 1, 'without the entry the client stats the file first');
});

test('prune drops the blocks of files changed or deleted at the origin and keeps the rest', async (t) => {
  const c = await cluster(t, 2);
  await mkdir(join(c.origin, 'dir'), { recursive: true });
  await writeFile(join(c.origin, 'dir/kept'), randomBytes(2 * BLOCK));
  await writeFile(join(c.origin, 'dir/changed'), randomBytes(3 * BLOCK));
  await writeFile(join(c.origin, 'dir/deleted'), randomBytes(BLOCK + 1));
  await writeFile(join(c.origin, 'outside'), randomBytes(BLOCK));
  const client = c.client();
  await client.load('/dir');
  await client.load('/outside');
  const held = (): number => c.workers.reduce((sum, worker) => sum + worker.stats().tiers[0]!.blockCount, 0);
  assert.equal(held(), 2 + 3 + 2 + 1);

  await writeFile(join(c.origin, 'dir/changed'), randomBytes(3 * BLOCK + 5));
  await rm(join(c.origin, 'dir/deleted'));
  const current = new Map<string, string>();
  for await (const entry of client.list('/dir', { recursive: true })) current.set(entry.path, entry.version);
  await client.load('/dir');
  assert.equal(held(), 2 + 3 + 2 + 1 + 4, 'the new version is cached beside the old one');

  const released = await client.prune(['/dir'], current);
  assert.equal(released.blocks, 3 + 2);
  assert.equal(released.bytes, 3 * BLOCK + BLOCK + 1);
  assert.equal(held(), 2 + 4 + 1, 'kept, the new version of changed, and the file outside the target');
  assert.equal(
    c.workers.reduce((sum, worker) => sum + worker.stats().counters.forgottenBlocks, 0),
    5,
  );
  const again = await client.prune(['/dir'], current);
  assert.deepEqual(again, { blocks: 0, bytes: 0 });
});

test('serves several mounts as one namespace with virtual directories above them', async (t) => {
  const c = await cluster(t, 1);
  const other = await tempDir(t);
  await writeFile(join(c.origin, 'top.txt'), 'top');
  await mkdir(join(other, 'x'));
  await writeFile(join(other, 'x/deep.txt'), 'deep');
  const client = c.client({
    mounts: [
      { id: MOUNT, path: '/', ufs: c.ufs },
      {
        id: 'local:///other',
        path: '/models/llm',
        ufs: new LocalUfs({ root: other, description: 'local:///other' }),
      },
    ],
  });
  const names = async (path: string, recursive = false): Promise<string[]> => {
    const found: string[] = [];
    for await (const entry of client.list(path, { recursive })) found.push(`${entry.path}:${entry.type}`);
    return found.sort();
  };
  assert.deepEqual(await names('/'), ['models:directory', 'top.txt:file']);
  assert.deepEqual(await names('/models'), ['models/llm:directory']);
  assert.deepEqual(await names('/', true), [
    'models/llm/x/deep.txt:file',
    'models/llm/x:directory',
    'models/llm:directory',
    'models:directory',
    'top.txt:file',
  ]);
  assert.equal((await client.stat('/models')).type, 'directory');
  assert.equal((await client.stat('/models/llm/x/deep.txt')).sizeBytes, 4);
  await assert.rejects(client.stat('/nope'), { code: 'ERR_CACHE_NOT_FOUND' });
  // The other mount is not on the worker: the client reads it from its origin.
  assert.equal((await client.read('/models/llm/x/deep.txt', { offset: 0, length: 100 })).toString(), 'deep');
});

test('reports a file changed at the origin instead of mixing versions', async (t) => {
  const c = await cluster(t, 2);
  await writeFile(join(c.origin, 'f'), randomBytes(3 * BLOCK));
  const client = c.client();
  const { version } = await client.stat('f');
  await writeFile(join(c.origin, 'f'), randomBytes(3 * BLOCK));
  await assert.rejects(
    client.read('f', { version, offset: 0, length: BLOCK }),
    (error: unknown) => error instanceof CacheError && error.code === 'ERR_CACHE_VERSION_CHANGED',
  );
});

/** A local origin whose next read sends `afterBytes`, waits for `gate`, then fails. */
class CutOnceUfs extends LocalUfs {
  cut: { afterBytes: number; gate: Promise<void> } | undefined;

  override async read(
    path: string,
    range: ByteRange,
    options?: ReadOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    const stream = await super.read(path, range, options);
    const cut = this.cut;
    this.cut = undefined;
    if (cut === undefined) return stream;
    return (async function* () {
      let sent = 0;
      for await (const chunk of stream) {
        const part = chunk.subarray(0, Math.max(0, cut.afterBytes - sent));
        if (part.length > 0) yield part;
        sent += part.length;
        if (sent >= cut.afterBytes) break;
      }
      await cut.gate;
      throw new UfsError('ERR_UFS_UNREACHABLE', 'The origin went away half-way through the block');
    })();
  }
}

test('returns the first bytes of a cold block before the rest, and whole bytes from a retry when the stream breaks', async (t) => {
  const origin = await tempDir(t);
  const content = randomBytes(2 * BLOCK);
  await writeFile(join(origin, 'f'), content);
  const flaky = new CutOnceUfs({ root: origin, description: MOUNT });
  const worker = await startWorker({
    datasetId: 'default/demo',
    mounts: [{ id: MOUNT, ufs: flaky }],
    tiers: [
      {
        medium: 'SSD',
        dirs: [{ path: await tempDir(t), capacityBytes: 16 * BLOCK }],
        highRatio: 0.95,
        lowRatio: 0.7,
      },
    ],
    blockSizeBytes: BLOCK,
    workerId: 'w0',
    nodeName: 'node-a',
  });
  t.after(() => worker.close());
  const client = createCacheClient({
    datasetId: 'default/demo',
    membership: new StaticMembership([{ id: worker.workerId, url: worker.url, nodeName: 'node-a' }]),
    mounts: [{ id: MOUNT, path: '/', ufs: new LocalUfs({ root: origin, description: MOUNT }) }],
    blockSizeBytes: BLOCK,
    nodeName: 'node-b',
    readAheadBlocks: 0,
  });
  t.after(() => client.close());
  const { version } = await client.stat('f');
  let open = (): void => undefined;
  flaky.cut = { afterBytes: BLOCK / 2, gate: new Promise((resolve) => (open = resolve)) };

  // The origin holds back the second half until the first half has reached the reader.
  const head = await client.read('f', { offset: 0, length: 4096, version });
  assert.ok(head.equals(content.subarray(0, 4096)), 'the first bytes arrive while the block is incomplete');
  open();
  const rest = await client.read('f', { offset: 4096, length: BLOCK - 4096, version });
  assert.ok(rest.equals(content.subarray(4096, BLOCK)), 'the rest comes whole from a retry, not mixed');
  assert.equal(client.counters().workerFailures, 1, 'the broken stream counts as a failed worker');
  assert.equal(client.counters().originBytes, BLOCK, 'the retry went to the origin (no other owner)');
  assert.equal(worker.stats().tiers[0]?.blockCount, 0, 'the worker cached nothing of the broken fetch');
});

/** A worker that answers every block request with `answer` (a misbehaving or dying worker). */
async function fakeWorker(
  t: TestContext,
  answer: (socket: Socket, query: URLSearchParams) => void,
): Promise<WorkerEndpoint> {
  const server = createNetServer((socket) => {
    socket.once('data', (head) => {
      const target = /^GET (\S+)/.exec(head.toString('latin1'))?.[1] ?? '/';
      answer(socket, new URL(target, 'http://worker').searchParams);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      ),
  );
  const { port } = server.address() as AddressInfo;
  return { id: 'fake', url: `http://127.0.0.1:${port}`, nodeName: 'node-a' };
}

test('every read settles with the origin bytes when a worker answers badly or breaks its stream', async (t) => {
  const origin = await tempDir(t);
  const content = randomBytes(BLOCK + 1);
  await writeFile(join(origin, 'f'), content);
  await writeFile(join(origin, 'tiny'), 'x');
  const ufs = new LocalUfs({ root: origin, description: MOUNT });
  const octets = 'HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n';
  const behaviours: Record<string, (socket: Socket, query: URLSearchParams) => void> = {
    'a body cut short of its length': (socket) => {
      socket.end(`${octets}content-length: 100\r\n\r\n`);
    },
    'a chunked body cut before its last chunk': (socket) => {
      socket.write(`${octets}transfer-encoding: chunked\r\n\r\n`);
      setTimeout(() => socket.destroy(), 20);
    },
    'a block longer than a block': (socket) => {
      socket.end(`${octets}content-length: ${BLOCK + 10}\r\n\r\n`);
    },
    'a location of a file that is not there, then a reset': (socket, query) => {
      if (query.get('locate') !== '1') {
        socket.destroy();
        return;
      }
      const body = JSON.stringify({
        filePath: join(origin, 'missing'),
        sizeBytes: 1,
        crc32: 0,
        medium: 'SSD',
      });
      socket.end(
        `HTTP/1.1 200 OK\r\ncontent-type: application/vnd.tide.block-location+json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );
    },
    'a connection closed without an answer': (socket) => {
      socket.destroy();
    },
  };
  for (const [name, behaviour] of Object.entries(behaviours)) {
    const worker = await fakeWorker(t, behaviour);
    for (const nodeName of ['node-a', 'node-b']) {
      const client = createCacheClient({
        datasetId: 'default/demo',
        membership: new StaticMembership([worker]),
        mounts: [{ id: MOUNT, path: '/', ufs }],
        blockSizeBytes: BLOCK,
        nodeName,
        // Retried at once: each read meets the broken worker again.
        workerRetryMs: 0,
      });
      t.after(() => client.close());
      const { version } = await client.stat('f');
      const tiny = await client.stat('tiny');
      const reads = await Promise.all([
        ...Array.from({ length: 16 }, () =>
          client.read('tiny', { offset: 0, length: 4096, version: tiny.version }),
        ),
        client.read('f', { offset: 0, length: BLOCK + 1, version }),
        client.read('f', { offset: BLOCK - 1, length: 4096, version }),
      ]);
      for (const read of reads.slice(0, 16)) assert.equal(read.toString(), 'x', `${name}: the small file`);
      assert.ok(reads[16]?.equals(content), `${name}: the whole file`);
      assert.ok(reads[17]?.equals(content.subarray(BLOCK - 1)), `${name}: across the last block`);
      assert.ok(client.counters().workerFailures > 0, `${name}: counted as a failed worker`);
    }
  }
});

test('holds no block-sized buffer per small file it keeps', async (t) => {
  const c = await cluster(t, 1);
  const count = 400;
  await Promise.all(Array.from({ length: count }, (_, i) => writeFile(join(c.origin, `s${i}`), `${i}`)));
  // Room for every small file, but not for a block-sized buffer each.
  const client = c.client({ maxBufferBytes: 16 * BLOCK });
  // The worker runs in this process: its buffer pool and both sides' connections are made by a
  // first round of reads, so that the growth measured is what the client keeps.
  for (let i = 0; i < 32; i += 1) await client.read(`s${i}`, { offset: 0, length: 100 });
  const before = liveArrayBufferBytes();
  for (let i = 0; i < count; i += 1) {
    assert.equal((await client.read(`s${i}`, { offset: 0, length: 100 })).toString(), `${i}`);
  }
  const grown = liveArrayBufferBytes() - before;
  assert.ok(
    grown < (count * BLOCK) / 4,
    `the client holds ${grown} bytes of buffers for ${count} tiny files`,
  );
});
