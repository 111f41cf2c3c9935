import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SequentialReaderCache, type SequentialSource } from './sequential-readers.ts';

/** A whole-file body of `size` bytes where byte i is i % 251, in chunks of `chunkBytes`. */
function source(
  key: string,
  size: number,
  chunkBytes = 1000,
): SequentialSource & { destroyed: () => boolean } {
  let destroyed = false;
  return {
    key,
    version: 'v1',
    body: (async function* () {
      for (let offset = 0; offset < size; offset += chunkBytes) {
        yield Uint8Array.from(
          { length: Math.min(chunkBytes, size - offset) },
          (_, index) => (offset + index) % 251,
        );
        await Promise.resolve();
      }
    })(),
    destroy: () => {
      destroyed = true;
    },
    destroyed: () => destroyed,
  };
}

async function take(reader: { take: (n: number, s: undefined) => AsyncIterable<Uint8Array> }, count: number) {
  const chunks: Uint8Array[] = [];
  for await (const chunk of reader.take(count, undefined)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const expected = (offset: number, length: number) =>
  Buffer.from(Uint8Array.from({ length }, (_, index) => (offset + index) % 251));

test('consecutive blocks continue one body from where the previous read stopped', async (t) => {
  const cache = new SequentialReaderCache();
  t.after(() => {
    cache.closeAll();
  });
  const first = cache.add(source('f', 10_000), 3000);
  assert.ok((await take(first, 3000)).equals(expected(0, 3000)));
  cache.release(first);
  const again = await cache.acquire({
    key: 'f',
    version: 'v1',
    offset: 5000,
    length: 2500,
    waitMs: 100,
    signal: undefined,
  });
  assert.equal(again, first);
  await again.skip(5000 - again.position, undefined);
  assert.ok((await take(again, 2500)).equals(expected(5000, 2500)));
  cache.release(again);
  assert.equal(
    await cache.acquire({ key: 'f', version: 'v1', offset: 100, length: 10, waitMs: 100, signal: undefined }),
    undefined,
    'a read behind the body needs a new download',
  );
  assert.equal(
    await cache.acquire({
      key: 'f',
      version: 'v2',
      offset: 9000,
      length: 10,
      waitMs: 100,
      signal: undefined,
    }),
    undefined,
    'another version never shares a body',
  );
});

test('waiters behind a busy body are served lowest offset first, and give up after waitMs', async (t) => {
  const cache = new SequentialReaderCache();
  t.after(() => {
    cache.closeAll();
  });
  const reader = cache.add(source('f', 10_000), 1000);
  const order: number[] = [];
  const waiting = [3000, 1000, 2000].map(async (offset) => {
    const got = await cache.acquire({
      key: 'f',
      version: undefined,
      offset,
      length: 1000,
      waitMs: 2000,
      signal: undefined,
    });
    assert.equal(got, reader);
    order.push(offset);
    await got.skip(offset - got.position, undefined);
    assert.ok((await take(got, 1000)).equals(expected(offset, 1000)));
    cache.release(got);
  });
  await take(reader, 1000);
  cache.release(reader);
  await Promise.all(waiting);
  assert.deepEqual(order, [1000, 2000, 3000]);

  const busy = cache.add(source('g', 5000), 5000);
  const started = Date.now();
  assert.equal(
    await cache.acquire({
      key: 'g',
      version: undefined,
      offset: 5000,
      length: 10,
      waitMs: 50,
      signal: undefined,
    }),
    undefined,
  );
  assert.ok(Date.now() - started < 1000);
  cache.release(busy);
});

test('idle bodies beyond maxReaders are closed, least recently used first', (t) => {
  const cache = new SequentialReaderCache({ maxReaders: 2 });
  t.after(() => {
    cache.closeAll();
  });
  const sources = ['a', 'b', 'c'].map((key) => source(key, 100));
  const [a, b] = sources.slice(0, 2).map((item) => cache.add(item, 10));
  assert.ok(a !== undefined && b !== undefined);
  cache.release(a);
  cache.release(b);
  cache.add(sources[2] ?? source('c', 100), 10);
  assert.equal(sources[0]?.destroyed(), true);
  assert.equal(sources[1]?.destroyed(), false);
  assert.equal(cache.has('a'), false);
  assert.equal(cache.has('b'), true);
});
