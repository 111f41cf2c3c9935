import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SecretValue } from '../lib/index.ts';
import {
  LocalUfs,
  UfsError,
  type ByteRange,
  type ReadOptions,
  type UfsEntry,
  type UnderFileSystem,
} from '../ufs/index.ts';
import { startWorker, type CacheWorker, type WorkerOptions } from './worker.ts';
import { blockQueryOf, type BlockLocationAnswer } from './protocol.ts';
import { checksumsOf, xxh64HexesOf } from './block-checksum.ts';
import { readCheckedBlock } from './block-file.ts';
import { clearWorkerBlocks, fetchWorkerStats } from './stats.ts';
import type { TierConfig } from './tiers.ts';

const BLOCK = 64 * 1024;

/** Wraps a connector to count what reaches the origin (dependency injection, not a mock). */
class CountingUfs implements UnderFileSystem {
  readonly description: string;
  readonly #inner: UnderFileSystem;
  reads = 0;
  bytes = 0;
  /** The next read sends this many bytes, waits for `cut.gate`, then fails. */
  cut: { afterBytes: number; gate: Promise<void> } | undefined;

  constructor(inner: UnderFileSystem) {
    this.#inner = inner;
    this.description = inner.description;
  }

  list(path: string, options?: { recursive?: boolean; signal?: AbortSignal }): AsyncIterable<UfsEntry> {
    return this.#inner.list(path, options);
  }

  stat(path: string, options?: { signal?: AbortSignal }): Promise<UfsEntry> {
    return this.#inner.stat(path, options);
  }

  async read(path: string, range: ByteRange, options?: ReadOptions): Promise<AsyncIterable<Uint8Array>> {
    this.reads += 1;
    const stream = await this.#inner.read(path, range, options);
    const cut = this.cut;
    this.cut = undefined;
    return this.#counted(cut === undefined ? stream : cutShort(stream, cut));
  }

  async *#counted(stream: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    for await (const chunk of stream) {
      this.bytes += chunk.byteLength;
      yield chunk;
    }
  }

  check(options?: { signal?: AbortSignal }): Promise<void> {
    return this.#inner.check(options);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** `stream` up to `afterBytes`, then an origin failure once `gate` opens. */
async function* cutShort(
  stream: AsyncIterable<Uint8Array>,
  cut: { afterBytes: number; gate: Promise<void> },
): AsyncIterable<Uint8Array> {
  let sent = 0;
  for await (const chunk of stream) {
    const part = chunk.subarray(0, Math.max(0, cut.afterBytes - sent));
    if (part.length > 0) yield part;
    sent += part.length;
    if (sent >= cut.afterBytes) break;
  }
  await cut.gate;
  throw new UfsError('ERR_UFS_UNREACHABLE', 'The origin went away half-way through the block');
}

async function tempDir(t: TestContext, base = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(base, 'tide-worker-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Fixture {
  worker: CacheWorker;
  ufs: CountingUfs;
  origin: string;
  ssd: string;
}

async function fixture(t: TestContext, overrides: Partial<WorkerOptions> = {}): Promise<Fixture> {
  const origin = await tempDir(t);
  const ssd = await tempDir(t);
  const shm = await tempDir(t, '/dev/shm');
  const tiers: TierConfig[] = [
    {
      medium: 'MEM',
      dirs: [{ path: shm, capacityBytes: 4 * BLOCK + 65536 }],
      highRatio: 0.95,
      lowRatio: 0.7,
    },
    { medium: 'SSD', dirs: [{ path: ssd, capacityBytes: 64 * BLOCK }], highRatio: 0.95, lowRatio: 0.7 },
  ];
  const ufs = new CountingUfs(new LocalUfs({ root: origin, description: 'local:///origin' }));
  const worker = await startWorker({
    datasetId: 'default/demo',
    mounts: [{ id: 'local:///origin', ufs }],
    tiers,
    blockSizeBytes: BLOCK,
    workerId: 'w0',
    ...overrides,
  });
  t.after(() => worker.close());
  return { worker, ufs, origin, ssd };
}

/** Blocks are written to a tier after their bytes went out: wait until `count` are. */
async function blocksCached(worker: CacheWorker, count: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (worker.stats().tiers.reduce((sum, tier) => sum + tier.blockCount, 0) < count) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${count} blocks to be cached`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function blockUrl(
  worker: CacheWorker,
  path: string,
  version: string,
  index: number,
  extra: Record<string, string> = {},
): string {
  const query = blockQueryOf(
    { datasetId: 'default/demo', mount: 'local:///origin', path, version, index, blockSizeBytes: BLOCK },
    extra,
  );
  return `${worker.url}/v1/blocks?${query}`;
}

test('fetches a block from the origin once for 16 concurrent requests and serves the right bytes', async (t) => {
  const { worker, ufs, origin } = await fixture(t);
  const content = randomBytes(3 * BLOCK + 1000);
  await writeFile(join(origin, 'file.bin'), content);
  const { version } = await ufs.stat('file.bin');

  for (let index = 0; index < 4; index += 1) {
    const bodies = await Promise.all(
      Array.from({ length: 16 }, async () => {
        const response = await fetch(blockUrl(worker, 'file.bin', version, index));
        assert.equal(response.status, 200);
        return Buffer.from(await response.arrayBuffer());
      }),
    );
    const expected = content.subarray(index * BLOCK, (index + 1) * BLOCK);
    for (const body of bodies) assert.ok(body.equals(expected), `block ${index} has the origin's bytes`);
  }
  assert.equal(ufs.reads, 4, 'one origin read per block');
  assert.equal(ufs.bytes, content.length, 'each byte read from the origin once');
  const { counters } = worker.stats();
  assert.equal(counters.misses, 4);
  assert.equal(counters.hits, 60);
  assert.equal(counters.originBytes, content.length);

  await blocksCached(worker, 4);
  const again = await fetch(blockUrl(worker, 'file.bin', version, 3));
  assert.equal(again.headers.get('x-tide-source'), 'mem');
  assert.equal((await again.arrayBuffer()).byteLength, 1000);
  assert.equal(ufs.reads, 4);
});

test('streams a block as the origin sends it, and cuts the answer without caching when the origin fails half-way', async (t) => {
  const { worker, ufs, origin } = await fixture(t);
  const content = randomBytes(2 * BLOCK);
  await writeFile(join(origin, 'f'), content);
  const { version } = await ufs.stat('f');
  let open = (): void => undefined;
  ufs.cut = { afterBytes: BLOCK / 2, gate: new Promise((resolve) => (open = resolve)) };

  const response = await fetch(blockUrl(worker, 'f', version, 0));
  assert.equal(response.status, 200, 'the answer starts before the block is whole');
  assert.equal(response.headers.get('content-length'), null, 'a block on its way is sent chunked');
  const chunks = (response.body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  let received = 0;
  while (received < BLOCK / 2) {
    const next = await chunks.next();
    assert.equal(next.done, false, 'the first half arrives while the origin is still sending');
    received += next.value.byteLength;
  }
  open();
  await assert.rejects(async () => {
    while ((await chunks.next()).done !== true);
  }, 'the client sees a broken body, never a short block');
  await worker.close();
  assert.equal(
    worker.stats().tiers.reduce((sum, tier) => sum + tier.blockCount, 0),
    0,
    'nothing cached',
  );
  assert.equal(worker.stats().counters.originReads, 0, 'no origin read completed');
});

test('serves a block again after a failed fetch of it, from a new origin read', async (t) => {
  const { worker, ufs, origin } = await fixture(t);
  const content = randomBytes(2 * BLOCK);
  await writeFile(join(origin, 'f'), content);
  const { version } = await ufs.stat('f');
  ufs.cut = { afterBytes: BLOCK / 4, gate: Promise.resolve() };
  // An error answer if the failure came before the first bytes went out, else a broken body.
  const failed = await (async () => {
    try {
      const response = await fetch(blockUrl(worker, 'f', version, 1));
      if (response.status !== 200) return 'error';
      await response.arrayBuffer();
      return 'whole';
    } catch {
      return 'broken';
    }
  })();
  assert.notEqual(failed, 'whole');
  const again = await fetch(blockUrl(worker, 'f', version, 1));
  assert.ok(Buffer.from(await again.arrayBuffer()).equals(content.subarray(BLOCK)));
  await blocksCached(worker, 1);
  assert.equal(ufs.reads, 2);
});

test('tells a client where a cached block file is, and those bytes are the block', async (t) => {
  const { worker, ufs, origin } = await fixture(t);
  const content = randomBytes(2 * BLOCK);
  await writeFile(join(origin, 'f'), content);
  const { version } = await ufs.stat('f');
  const miss = await fetch(blockUrl(worker, 'f', version, 1, { locate: '1' }));
  assert.equal(miss.headers.get('content-type'), 'application/octet-stream', 'a miss answers with the bytes');
  assert.ok(Buffer.from(await miss.arrayBuffer()).equals(content.subarray(BLOCK)));
  await blocksCached(worker, 1);
  const response = await fetch(blockUrl(worker, 'f', version, 1, { locate: '1' }));
  assert.equal(response.headers.get('content-type'), 'application/vnd.tide.block-location+json');
  const location = (await response.json()) as BlockLocationAnswer;
  const file = await readFile(location.filePath);
  assert.ok(file.subarray(0, location.sizeBytes).equals(content.subarray(BLOCK)));
  assert.equal(location.crc32, undefined, 'new files have no CRC-32');
  assert.deepEqual(
    location.pieceXxh64s,
    xxh64HexesOf(checksumsOf(content.subarray(BLOCK)).pieceXxh64s),
    'the answer carries the XXH64 of each piece as hex',
  );
  assert.ok((await readCheckedBlock(location.filePath, location))?.equals(content.subarray(BLOCK)));
});

test('answers 409 when the origin file changed since the version the client asked for', async (t) => {
  const { worker, ufs, origin } = await fixture(t);
  await writeFile(join(origin, 'f'), randomBytes(1000));
  const { version } = await ufs.stat('f');
  await writeFile(join(origin, 'f'), randomBytes(2000));
  const response = await fetch(blockUrl(worker, 'f', version, 0));
  assert.equal(response.status, 409);
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  assert.equal(((await response.json()) as { code: string }).code, 'ERR_CACHE_VERSION_CHANGED');
});

test('refetches a block whose file was corrupted on disk instead of serving it', async (t) => {
  const { worker, ufs, origin } = await fixture(t);
  const content = randomBytes(BLOCK);
  await writeFile(join(origin, 'f'), content);
  const { version } = await ufs.stat('f');
  await (await fetch(blockUrl(worker, 'f', version, 0))).arrayBuffer();
  await blocksCached(worker, 1);
  const located = (await (await fetch(blockUrl(worker, 'f', version, 0, { locate: '1' }))).json()) as {
    filePath: string;
  };
  const handle = await open(located.filePath, 'r+');
  await handle.write(Buffer.from('garbage'), 0, 7, 100);
  await handle.close();
  const body = Buffer.from(await (await fetch(blockUrl(worker, 'f', version, 0))).arrayBuffer());
  assert.ok(body.equals(content));
  assert.equal(ufs.reads, 2);
  assert.equal(worker.stats().counters.corruptBlocks, 1);
});

test('refuses blocks of another dataset and requests without the runtime token', async (t) => {
  const { worker, ufs, origin } = await fixture(t, { token: new SecretValue('s3cret') });
  await writeFile(join(origin, 'f'), randomBytes(10));
  const { version } = await ufs.stat('f');
  const url = blockUrl(worker, 'f', version, 0);
  assert.equal((await fetch(url)).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: 'Bearer wrong' } })).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: 'Bearer s3cret' } })).status, 200);
  const other = url.replace('dataset=default%2Fdemo', 'dataset=default%2Fother');
  const refused = await fetch(other, { headers: { authorization: 'Bearer s3cret' } });
  assert.equal(refused.status, 403);
  assert.equal(((await refused.json()) as { code: string }).code, 'ERR_CACHE_FORBIDDEN');
  assert.equal((await fetch(`${worker.url}/healthz`)).status, 200, 'the health check needs no token');
  for (const [method, path] of [
    ['GET', '/v1/stats?files=1'],
    ['POST', '/v1/blocks/forget'],
    ['DELETE', '/v1/blocks'],
    ['POST', url.slice(worker.url.length).replace('/v1/blocks?', '/v1/blocks/load?')],
  ] as const) {
    const answer = await fetch(`${worker.url}${path}`, {
      method,
      headers: { authorization: 'Bearer s3creT' },
    });
    assert.equal(answer.status, 401, `${method} ${path} with a wrong token`);
  }
  const metrics = await fetch(`${worker.url}/metrics`);
  assert.equal(metrics.status, 200, 'metrics need no token');
  assert.ok(!(await metrics.text()).includes('"f"'), 'metrics name no file');
  assert.equal(ufs.reads, 1);
  await blocksCached(worker, 1);
  const endpoint = { id: worker.workerId, url: worker.url };
  const stats = await fetchWorkerStats(endpoint, { token: new SecretValue('s3cret'), files: true });
  assert.equal(stats.files?.[0]?.path, 'f');
  await assert.rejects(fetchWorkerStats(endpoint), { code: 'ERR_CACHE_UNAVAILABLE' });
});

test('drops every block and its file on DELETE /v1/blocks, so a removed runtime leaves no tier files', async (t) => {
  const { worker, ufs, origin, ssd } = await fixture(t, { token: new SecretValue('s3cret') });
  const token = new SecretValue('s3cret');
  const headers = { authorization: `Bearer ${token.reveal()}` };
  for (const name of ['a', 'b']) await writeFile(join(origin, name), randomBytes(2 * BLOCK));
  for (const name of ['a', 'b']) {
    const { version } = await ufs.stat(name);
    for (const index of [0, 1])
      await (await fetch(blockUrl(worker, name, version, index), { headers })).arrayBuffer();
  }
  await blocksCached(worker, 4);
  const endpoint = { id: worker.workerId, url: worker.url };
  assert.deepEqual(await clearWorkerBlocks(endpoint, { token }), { blocks: 4, bytes: 4 * BLOCK });
  assert.equal(
    worker.stats().tiers.reduce((sum, tier) => sum + tier.blockCount, 0),
    0,
  );
  const files = (await readdir(ssd, { recursive: true, withFileTypes: true })).filter((entry) =>
    entry.isFile(),
  );
  assert.deepEqual(
    files.map((entry) => entry.name),
    [],
    'no block file is left in the SSD tier',
  );
  await assert.rejects(clearWorkerBlocks(endpoint), { code: 'ERR_CACHE_UNAVAILABLE' });
});

test('will not listen beyond loopback without a token', async (t) => {
  await assert.rejects(fixture(t, { host: '0.0.0.0' }), { code: 'ERR_CACHE_BAD_CONFIG' });
});

test('exposes tier capacity, usage, hits, misses and origin bytes to Prometheus', async (t) => {
  const { worker, ufs, origin } = await fixture(t);
  await writeFile(join(origin, 'f'), randomBytes(BLOCK + 5));
  const { version } = await ufs.stat('f');
  await (await fetch(blockUrl(worker, 'f', version, 0))).arrayBuffer();
  await (
    await fetch(blockUrl(worker, 'f', version, 0), { headers: { 'x-tide-client-node': worker.nodeName } })
  ).arrayBuffer();
  const load = await fetch(blockUrl(worker, 'f', version, 1).replace('/v1/blocks?', '/v1/blocks/load?'), {
    method: 'POST',
  });
  assert.deepEqual(await load.json(), { cached: true, source: 'origin', sizeBytes: 5 });
  await blocksCached(worker, 2);
  const text = await (await fetch(`${worker.url}/metrics`)).text();
  for (const line of [
    'tide_cache_capacity_bytes{tier="MEM",dataset="default/demo"} 327680',
    'tide_cache_hits_total{dataset="default/demo"} 1',
    'tide_cache_misses_total{dataset="default/demo"} 1',
    `tide_cache_origin_bytes_total{dataset="default/demo"} ${BLOCK + 5}`,
    `tide_cache_served_bytes_total{source="local",dataset="default/demo"} ${BLOCK}`,
    `tide_cache_served_bytes_total{source="origin",dataset="default/demo"} ${BLOCK}`,
    'tide_cache_loaded_bytes_total{dataset="default/demo"} 5',
    'Cluster_CapacityTotal{dataset="default/demo"} 4521984',
  ]) {
    assert.ok(text.includes(line), `metrics include ${line}`);
  }
  assert.match(
    text,
    /tide_cache_request_duration_seconds_count\{dataset="default\/demo",route="block",status="200"\} 2/,
  );
  const stats = worker.stats({ files: true });
  assert.deepEqual(stats.files, [
    {
      mount: 'local:///origin',
      path: 'f',
      version,
      blocks: [
        [0, BLOCK],
        [1, 5],
      ],
    },
  ]);
});
