import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createUnderFileSystem, type UnderFileSystem, type UfsEntry } from '../../../src/ufs/index.ts';
import { SecretValue } from '../../../src/lib/index.ts';
import { startNginx, type NginxServer } from '../../helpers/nginx.ts';
import { createThrottledLink } from '../../helpers/throttled-link.ts';

const MiB = 1024 * 1024;
const run = promisify(execFile);

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

async function readRange(
  ufs: UnderFileSystem,
  path: string,
  offset: number,
  length: number,
  version?: string,
) {
  const stream = await ufs.read(path, { offset, length }, version === undefined ? {} : { version });
  return Buffer.concat(await collect(stream));
}

/** Polls `probe` until it returns true; nginx writes a log line only when a request ends. */
async function eventually(probe: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

function webWith(url: string, options: Record<string, string> = {}): UnderFileSystem {
  return createUnderFileSystem({ mountPoint: url, options, secrets: {} }, { retry: { baseDelayMs: 10 } });
}

const web = webWith;

/** A node:http server scripted per test, for behaviour nginx cannot be made to show. */
async function scriptedServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    url: `http://127.0.0.1:${address.port}/`,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}

const EPOCH_VALIDATORS: Readonly<Record<string, string>> = {
  etag: '"v1"',
  'last-modified': new Date(0).toUTCString(),
};

/** Serves `data` with Range support, like a static server, for scripted tests. */
function serveBytes(
  req: IncomingMessage,
  res: ServerResponse,
  data: Buffer,
  validators: Readonly<Record<string, string>> = EPOCH_VALIDATORS,
): void {
  const match = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  const headers = { ...validators, 'accept-ranges': 'bytes' };
  if (match === null) {
    res.writeHead(200, { ...headers, 'content-length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
    return;
  }
  const start = Number(match[1]);
  const end = Math.min(Number(match[2]), data.length - 1);
  res.writeHead(206, {
    ...headers,
    'content-length': end - start + 1,
    'content-range': `bytes ${start}-${end}/${data.length}`,
  });
  res.end(req.method === 'HEAD' ? undefined : data.subarray(start, end + 1));
}

describe('web UFS against nginx', () => {
  let root = '';
  let nginx: NginxServer;
  const big = randomBytes(8 * MiB);
  const big2 = randomBytes(6 * MiB + 123);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tide-ufs-http-'));
    const site = join(root, 'site');
    await mkdir(join(site, 'dir', 'sub'), { recursive: true });
    await writeFile(join(site, 'hello.txt'), 'hello world');
    await writeFile(join(site, 'empty'), '');
    await writeFile(join(site, 'space name.txt'), 'space');
    await writeFile(join(site, 'ü unicode.txt'), 'unicode');
    await writeFile(join(site, 'plus+sign.txt'), 'plus');
    await writeFile(join(site, '100%.txt'), 'percent');
    await writeFile(join(site, 'big.bin'), big);
    await writeFile(join(site, 'big2.bin'), big2);
    await writeFile(join(site, 'dir', 'a.txt'), 'a');
    await writeFile(join(site, 'dir', 'sub', 'deep.bin'), randomBytes(1000));
    // An Apache mod_autoindex page (captured shape) served as the index of a directory.
    const apache = join(root, 'apache', 'pub', 'data');
    await mkdir(join(apache, 'images'), { recursive: true });
    await copyFile(
      join(import.meta.dirname, 'fixtures', 'apache-plain-list.html.txt'),
      join(apache, 'index.html'),
    );
    for (const name of ['train-00000-of-00002.parquet', 'train-00001-of-00002.parquet', 'a&b.txt']) {
      await writeFile(join(apache, name), name);
    }
    nginx = await startNginx({ root, rateLimitBytesPerSecond: 512 * 1024, noRange: true });
  });

  after(async () => {
    await nginx.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('lists an autoindex directory with the sizes and versions that stat reports', async (t) => {
    const ufs = web(`${nginx.url}site`);
    t.after(() => ufs.close());
    await ufs.check();
    const entries = await collect(ufs.list(''));
    const byPath = new Map(entries.map((entry) => [entry.path, entry]));
    assert.deepEqual([...byPath.keys()].sort(), [
      '100%.txt',
      'big.bin',
      'big2.bin',
      'dir',
      'empty',
      'hello.txt',
      'plus+sign.txt',
      'space name.txt',
      'ü unicode.txt',
    ]);
    assert.equal(byPath.get('dir')?.type, 'directory');
    assert.equal(byPath.get('big.bin')?.sizeBytes, 8 * MiB);
    assert.equal(byPath.get('empty')?.sizeBytes, 0);
    const stat = await ufs.stat('ü unicode.txt');
    assert.deepEqual(byPath.get('ü unicode.txt'), stat);
    assert.match(stat.version, /^lm-min:\d+:7$/);
    assert.ok(stat.mtimeMs > 0);
  });

  test('walks a directory tree recursively', async (t) => {
    const ufs = web(`${nginx.url}site/`);
    t.after(() => ufs.close());
    const paths = (await collect(ufs.list('dir', { recursive: true }))).map((entry: UfsEntry) => entry.path);
    assert.deepEqual(paths.sort(), ['dir/a.txt', 'dir/sub', 'dir/sub/deep.bin']);
  });

  test('lists an Apache-style index page and ignores its parent and sort links', async (t) => {
    const ufs = web(`${nginx.url}apache/pub/data/`);
    t.after(() => ufs.close());
    const entries = await collect(ufs.list(''));
    assert.deepEqual(entries.map((entry) => `${entry.type}:${entry.path}:${entry.sizeBytes}`).sort(), [
      'directory:images:0',
      'file:a&b.txt:7',
      'file:train-00000-of-00002.parquet:28',
      'file:train-00001-of-00002.parquet:28',
    ]);
  });

  test('stats files and directories and maps missing paths and wrong types to codes', async (t) => {
    const ufs = web(`${nginx.url}site`);
    t.after(() => ufs.close());
    assert.equal((await ufs.stat('dir')).type, 'directory');
    assert.equal((await ufs.stat('/dir/sub/')).type, 'directory');
    assert.deepEqual(
      { ...(await ufs.stat('100%.txt')), version: '', mtimeMs: 0 },
      { path: '100%.txt', type: 'file', sizeBytes: 7, mtimeMs: 0, version: '' },
    );
    await assert.rejects(ufs.stat('missing.txt'), { code: 'ERR_UFS_NOT_FOUND', reason: 'NotFound' });
    await assert.rejects(collect(ufs.list('hello.txt')), { code: 'ERR_UFS_NOT_A_DIRECTORY' });
    await assert.rejects(collect(ufs.list('nope')), { code: 'ERR_UFS_NOT_FOUND' });
    await assert.rejects(readRange(ufs, 'missing.txt', 0, 1), { code: 'ERR_UFS_NOT_FOUND' });
  });

  test('reads exact byte ranges, names with special characters, empty files and past the end', async (t) => {
    const ufs = web(`${nginx.url}site`);
    t.after(() => ufs.close());
    assert.equal((await readRange(ufs, 'hello.txt', 6, 5)).toString(), 'world');
    assert.equal((await readRange(ufs, 'hello.txt', 6, 500)).toString(), 'world');
    assert.equal((await readRange(ufs, 'hello.txt', 11, 5)).length, 0);
    assert.equal((await readRange(ufs, 'empty', 0, 10)).length, 0);
    assert.equal((await readRange(ufs, 'hello.txt', 0, 0)).length, 0);
    for (const [name, text] of [
      ['space name.txt', 'space'],
      ['ü unicode.txt', 'unicode'],
      ['plus+sign.txt', 'plus'],
      ['100%.txt', 'percent'],
    ] as const) {
      assert.equal((await readRange(ufs, name, 0, 100)).toString(), text, name);
    }
    const version = (await ufs.stat('big.bin')).version;
    const middle = await readRange(ufs, 'big.bin', 3 * MiB + 17, 2 * MiB, version);
    assert.ok(middle.equals(big.subarray(3 * MiB + 17, 5 * MiB + 17)));
  });

  test('a file replaced between two block reads fails the second with ERR_UFS_VERSION_CHANGED', async (t) => {
    const ufs = web(`${nginx.url}site`);
    t.after(() => ufs.close());
    const path = join(root, 'site', 'changing.bin');
    await writeFile(path, Buffer.alloc(2 * MiB, 1));
    t.after(() => rm(path, { force: true }));
    const { version } = await ufs.stat('changing.bin');
    assert.equal((await readRange(ufs, 'changing.bin', 0, MiB, version)).length, MiB);
    await writeFile(path, Buffer.alloc(2 * MiB + 1, 2));
    await assert.rejects(readRange(ufs, 'changing.bin', MiB, MiB, version), {
      code: 'ERR_UFS_VERSION_CHANGED',
      reason: 'FileChanged',
    });
    const fresh = await ufs.stat('changing.bin');
    assert.notEqual(fresh.version, version);
    assert.ok((await readRange(ufs, 'changing.bin', MiB, MiB, fresh.version)).every((byte) => byte === 2));
  });

  test('a range-less origin is read once front to back when blocks come in order', async (t) => {
    assert.ok(nginx.rangeLessUrl !== undefined);
    const ufs = web(`${nginx.rangeLessUrl}site`);
    t.after(() => ufs.close());
    const { version, sizeBytes } = await ufs.stat('big.bin');
    const blocks: Buffer[] = [];
    for (let offset = 0; offset < sizeBytes; offset += MiB) {
      blocks.push(await readRange(ufs, 'big.bin', offset, MiB, version));
    }
    assert.ok(Buffer.concat(blocks).equals(big));
    const gets = async () =>
      (await nginx.accessLog()).filter(
        (r) => r.server === 'rangeless' && r.method === 'GET' && r.target.endsWith('/big.bin'),
      );
    await eventually(async () => (await gets()).length === 1, 'the one GET of big.bin in the access log');
    assert.equal((await gets())[0]?.bodyBytes, big.length);
  });

  test('parallel block reads of a range-less file line up on one download', async (t) => {
    assert.ok(nginx.rangeLessUrl !== undefined);
    const ufs = web(`${nginx.rangeLessUrl}site`);
    t.after(() => ufs.close());
    // One small read teaches the connector that this origin ignores Range.
    assert.equal((await readRange(ufs, 'hello.txt', 0, 5)).toString(), 'hello');
    const { version, sizeBytes } = await ufs.stat('big2.bin');
    const offsets = Array.from({ length: Math.ceil(sizeBytes / MiB) }, (_, index) => index * MiB);
    const streams = await Promise.all(
      offsets.map((offset) => ufs.read('big2.bin', { offset, length: MiB }, { version })),
    );
    const blocks = await Promise.all(streams.map(async (stream) => Buffer.concat(await collect(stream))));
    assert.ok(Buffer.concat(blocks).equals(big2));
    const gets = async () =>
      (await nginx.accessLog()).filter(
        (r) => r.server === 'rangeless' && r.method === 'GET' && r.target.endsWith('/big2.bin'),
      );
    await eventually(async () => (await gets()).length >= 1, 'the GET of big2.bin in the access log');
    assert.equal((await gets()).length, 1);
    assert.equal((await gets())[0]?.bodyBytes, big2.length);
    assert.ok((await nginx.accessLogBytes('rangeless')) >= big.length + big2.length);
  });

  test('a range-less file replaced between block reads fails with ERR_UFS_VERSION_CHANGED', async (t) => {
    assert.ok(nginx.rangeLessUrl !== undefined);
    const ufs = web(`${nginx.rangeLessUrl}site`);
    t.after(() => ufs.close());
    const path = join(root, 'site', 'rangeless-changing.bin');
    await writeFile(path, Buffer.alloc(3 * MiB, 1));
    t.after(() => rm(path, { force: true }));
    const { version } = await ufs.stat('rangeless-changing.bin');
    assert.ok((await readRange(ufs, 'rangeless-changing.bin', 0, MiB, version)).every((byte) => byte === 1));
    // Re-reading an earlier block needs a new download, which must see the new version.
    await writeFile(path, Buffer.alloc(3 * MiB + 1, 2));
    await assert.rejects(readRange(ufs, 'rangeless-changing.bin', 0, MiB, version), {
      code: 'ERR_UFS_VERSION_CHANGED',
    });
  });

  test('an abort stops a read from a slow origin promptly', async (t) => {
    assert.ok(nginx.slowUrl !== undefined);
    const ufs = web(`${nginx.slowUrl}site`);
    t.after(() => ufs.close());
    const controller = new AbortController();
    const stream = await ufs.read('big.bin', { offset: 0, length: 8 * MiB }, { signal: controller.signal });
    const started = Date.now();
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) {
          assert.ok(chunk.length > 0);
          controller.abort();
        }
      })(),
      { code: 'ERR_UFS_ABORTED' },
    );
    assert.ok(Date.now() - started < 2000, 'the aborted read ended within 2 s');
  });
});

for (const transport of ['http1', 'undici'] as const) {
  describe(`web UFS robustness against scripted servers (${transport})`, () => {
    const web = (url: string, options: Record<string, string> = {}): UnderFileSystem =>
      webWith(url, { ...options, 'tide.ufs.httpTransport': transport });

    test('retries 503 answers with backoff and then succeeds', async (t) => {
      let requests = 0;
      const server = await scriptedServer((req, res) => {
        requests++;
        if (requests <= 2) {
          res.writeHead(503).end('busy');
          return;
        }
        serveBytes(req, res, Buffer.from('payload'));
      });
      t.after(() => server.stop());
      const ufs = web(server.url);
      t.after(() => ufs.close());
      assert.equal((await ufs.stat('f')).sizeBytes, 7);
      assert.equal(requests, 3);
    });

    test('gives up after maxAttempts on 500 and does not retry 403 or 400', async (t) => {
      const counts = new Map<string, number>();
      const server = await scriptedServer((req, res) => {
        const path = req.url ?? '';
        counts.set(path, (counts.get(path) ?? 0) + 1);
        res.writeHead(path === '/forbidden' ? 403 : path === '/bad' ? 400 : 500).end();
      });
      t.after(() => server.stop());
      const ufs = web(server.url, { 'tide.ufs.maxAttempts': '3' });
      t.after(() => ufs.close());
      await assert.rejects(ufs.stat('broken'), { code: 'ERR_UFS_REMOTE' });
      assert.equal(counts.get('/broken'), 3);
      await assert.rejects(ufs.stat('forbidden'), { code: 'ERR_UFS_ACCESS_DENIED' });
      assert.equal(counts.get('/forbidden'), 1);
      await assert.rejects(ufs.stat('bad'), { code: 'ERR_UFS_REMOTE' });
      assert.equal(counts.get('/bad'), 1);
    });

    test('falls back to a one-byte ranged GET when HEAD is refused', async (t) => {
      const data = Buffer.from('0123456789');
      const server = await scriptedServer((req, res) => {
        if (req.method === 'HEAD') {
          res.writeHead(405).end();
          return;
        }
        serveBytes(req, res, data);
      });
      t.after(() => server.stop());
      const ufs = web(server.url);
      t.after(() => ufs.close());
      const entry = await ufs.stat('file.bin');
      assert.equal(entry.sizeBytes, 10);
      assert.equal(entry.version, 'lm-min:0:10');
    });

    test('follows a bounded number of redirects', async (t) => {
      const server = await scriptedServer((req, res) => {
        const path = req.url ?? '';
        if (path === '/one') res.writeHead(302, { location: '/two' }).end();
        else if (path === '/two')
          res.writeHead(307, { location: `http://127.0.0.1:${req.socket.localPort}/three` }).end();
        else if (path === '/three') serveBytes(req, res, Buffer.from('redirected'));
        else if (path.startsWith('/loop')) res.writeHead(301, { location: `/loop${path.length}` }).end();
        else res.writeHead(404).end();
      });
      t.after(() => server.stop());
      const ufs = web(server.url);
      t.after(() => ufs.close());
      assert.equal((await readRange(ufs, 'one', 0, 100)).toString(), 'redirected');
      await assert.rejects(ufs.stat('loop'), (error: Error) => /redirects/.test(error.message));
    });

    test('refuses redirects to another origin and to link-local or metadata addresses unless a mount option allows them', async (t) => {
      const cdn = await scriptedServer((req, res) => {
        serveBytes(req, res, Buffer.from('from the other origin'));
      });
      t.after(() => cdn.stop());
      const server = await scriptedServer((req, res) => {
        if (req.url === '/metadata')
          res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
        else res.writeHead(302, { location: new URL(req.url ?? '/', cdn.url).href }).end();
      });
      t.after(() => server.stop());
      const ufs = web(server.url, { 'tide.ufs.maxAttempts': '1' });
      t.after(() => ufs.close());
      await assert.rejects(ufs.stat('file'), (error: Error) =>
        /Cannot follow a redirect from http:\/\/127\.0\.0\.1:\d+ to another origin, http:\/\/127\.0\.0\.1:\d+ \(set tide\.ufs\.http\.crossOriginRedirects=true/.test(
          error.message,
        ),
      );
      const open = web(server.url, {
        'tide.ufs.maxAttempts': '1',
        'tide.ufs.http.crossOriginRedirects': 'true',
      });
      t.after(() => open.close());
      await assert.rejects(open.stat('metadata'), (error: Error) =>
        /link-local or metadata address/.test(error.message),
      );
      assert.throws(() => web('http://169.254.169.254/latest/'), { code: 'ERR_UFS_BAD_CONFIG' });
      assert.throws(() => web('http://metadata.google.internal/'), { code: 'ERR_UFS_BAD_CONFIG' });
    });

    test('lists a tree whose links loop back up once, and stops at 64 levels', async (t) => {
      let requests = 0;
      const server = await scriptedServer((req, res) => {
        requests += 1;
        const path = req.url ?? '/';
        // Every directory links to "again/", which redirects back to the root's page.
        if (path.endsWith('/again/')) {
          res.writeHead(302, { location: '/' });
          res.end();
          return;
        }
        res.writeHead(200, { 'content-type': 'text/html' });
        if (path.startsWith('/deep/')) res.end('<a href="d/">d/</a>');
        else res.end('<a href="again/">again/</a> <a href="deep/">deep/</a>');
      });
      t.after(() => server.stop());
      const ufs = web(server.url);
      t.after(() => ufs.close());
      const entries = await collect(ufs.list('', { recursive: true }));
      assert.ok(entries.length < 80, `listed ${entries.length} entries`);
      assert.ok(requests < 80, `${requests} requests`);
      assert.ok(!entries.some((entry) => entry.path.startsWith('again/again/')), 'the loop is not followed');
    });

    test('lists at most tide.ufs.http.listRequestsPerSecond requests a second, one second of them at once', async (t) => {
      let requests = 0;
      const server = await scriptedServer((req, res) => {
        requests += 1;
        res.writeHead(200, { 'content-type': 'text/html' });
        // The root links 40 directories (each empty) and 20 files without sizes (HEADed).
        if (req.url === '/') {
          const dirs = Array.from({ length: 40 }, (_, i) => `<a href="d${i}/">d${i}/</a>`);
          const files = Array.from({ length: 20 }, (_, i) => `<a href="f${i}">f${i}</a>`);
          res.end([...dirs, ...files].join(' '));
        } else res.end(req.method === 'HEAD' ? undefined : '');
      });
      t.after(() => server.stop());
      const ufs = web(server.url, { 'tide.ufs.http.listRequestsPerSecond': '30' });
      t.after(() => ufs.close());
      const started = Date.now();
      const entries = await collect(ufs.list('', { recursive: true }));
      const elapsed = Date.now() - started;
      assert.equal(entries.length, 60);
      assert.equal(requests, 61);
      // 30 at once, then 31 more at 30 a second.
      assert.ok(elapsed >= 950, `61 requests in ${elapsed} ms`);
      assert.throws(() => web(server.url, { 'tide.ufs.http.listRequestsPerSecond': 'fast' }), {
        code: 'ERR_UFS_BAD_CONFIG',
      });
    });

    test('follows a redirect to another origin without sending it the credentials', async (t) => {
      const seen: string[] = [];
      const cdn = await scriptedServer((req, res) => {
        seen.push(req.headers.authorization ?? '');
        serveBytes(req, res, Buffer.from('from the other origin'));
      });
      t.after(() => cdn.stop());
      const server = await scriptedServer((req, res) => {
        res.writeHead(302, { location: new URL(req.url ?? '/', cdn.url).href }).end();
      });
      t.after(() => server.stop());
      const ufs = web(server.url.replace('http://', 'http://reader:pw@'), {
        'tide.ufs.http.crossOriginRedirects': 'true',
      });
      t.after(() => ufs.close());
      const { version } = await ufs.stat('file');
      assert.equal((await readRange(ufs, 'file', 5, 5, version)).toString(), 'the o');
      assert.deepEqual(seen, ['', '']);
    });

    test('resumes a body cut mid-way from where it stopped, for the same ETag version', async (t) => {
      const data = randomBytes(3 * MiB);
      let cut = false;
      const ranges: string[] = [];
      const server = await scriptedServer((req, res) => {
        ranges.push(req.headers.range ?? '');
        if (!cut && req.method === 'GET') {
          cut = true;
          res.writeHead(206, {
            etag: '"v1"',
            'content-length': data.length,
            'content-range': `bytes 0-${data.length - 1}/${data.length}`,
          });
          res.write(data.subarray(0, MiB), () => res.destroy());
          return;
        }
        // No Last-Modified: the version is the strong ETag, sent as If-Match.
        assert.equal(req.headers['if-match'], '"v1"');
        serveBytes(req, res, data, { etag: '"v1"' });
      });
      t.after(() => server.stop());
      const ufs = web(server.url);
      t.after(() => ufs.close());
      const read = await readRange(ufs, 'f', 0, data.length);
      assert.ok(read.equals(data));
      assert.equal(ranges.length, 2);
      assert.match(ranges[1] ?? '', /^bytes=\d+-3145727$/);
    });

    test('reads into the caller buffer (in place with http1), across a resumed cut', async (t) => {
      const data = randomBytes(3 * MiB);
      let cut = false;
      const server = await scriptedServer((req, res) => {
        if (!cut && req.method === 'GET') {
          cut = true;
          const [first = 0, last = 0] =
            /bytes=(\d+)-(\d+)/
              .exec(req.headers.range ?? '')
              ?.slice(1)
              .map(Number) ?? [];
          res.writeHead(206, {
            etag: '"v1"',
            'content-length': last - first + 1,
            'content-range': `bytes ${first}-${last}/${data.length}`,
          });
          res.write(data.subarray(first, first + MiB + 333), () => res.destroy());
          return;
        }
        serveBytes(req, res, data, { etag: '"v1"' });
      });
      t.after(() => server.stop());
      const ufs = web(server.url);
      t.after(() => ufs.close());
      const offset = 1000;
      const length = data.length - offset - 7;
      const into = Buffer.alloc(length + 10);
      const stream = await ufs.read('f', { offset, length }, { into });
      let position = 0;
      for await (const chunk of stream) {
        // Http1Client reads in place; undici's chunks are its own, for the caller to copy.
        if (transport === 'undici') into.set(chunk, position);
        else assert.equal(chunk.buffer, into.buffer, 'the chunk was read into the caller buffer');
        if (transport === 'http1') assert.equal(chunk.byteOffset, into.byteOffset + position, 'in its place');
        position += chunk.length;
      }
      assert.equal(position, length);
      assert.ok(cut);
      assert.ok(into.subarray(0, length).equals(data.subarray(offset, offset + length)));
    });

    test('a server that never answers fails the operation at its deadline', async (t) => {
      const server = await scriptedServer(() => {
        // Never answers.
      });
      t.after(() => server.stop());
      const ufs = web(server.url, { 'tide.ufs.deadlineMs': '300' });
      t.after(() => ufs.close());
      const started = Date.now();
      await assert.rejects(ufs.stat('f'), { code: 'ERR_UFS_TIMEOUT', reason: 'OriginTimeout' });
      assert.ok(Date.now() - started < 2000);
    });

    test('a body that stalls is cut at the idle timeout and resumed', async (t) => {
      const data = randomBytes(512 * 1024);
      let stalled = false;
      const server = await scriptedServer((req, res) => {
        if (!stalled && req.method === 'GET') {
          stalled = true;
          res.writeHead(206, {
            ...EPOCH_VALIDATORS,
            'content-length': data.length,
            'content-range': `bytes 0-${data.length - 1}/${data.length}`,
          });
          res.write(data.subarray(0, 1000)); // and then nothing more
          return;
        }
        serveBytes(req, res, data);
      });
      t.after(() => server.stop());
      const ufs = web(server.url, { 'tide.ufs.bodyIdleTimeoutMs': '300' });
      t.after(() => ufs.close());
      const started = Date.now();
      assert.ok((await readRange(ufs, 'f', 0, data.length)).equals(data));
      assert.ok(Date.now() - started < 5000);
    });

    test('a closed port and an unresolvable host are ERR_UFS_UNREACHABLE without waiting out retries', async (t) => {
      const server = await scriptedServer(() => undefined);
      const closedUrl = server.url;
      await server.stop();
      const closed = web(closedUrl);
      const unknown = web('http://tide-no-such-host.invalid/data/');
      t.after(async () => {
        await closed.close();
        await unknown.close();
      });
      const started = Date.now();
      await assert.rejects(closed.check(), { code: 'ERR_UFS_UNREACHABLE', reason: 'OriginUnreachable' });
      await assert.rejects(unknown.stat('x'), { code: 'ERR_UFS_UNREACHABLE' });
      assert.ok(Date.now() - started < 3000);
    });

    test('credentials in the mount URL are sent as basic auth and kept out of descriptions and errors', async (t) => {
      const seen: string[] = [];
      const server = await scriptedServer((req, res) => {
        seen.push(req.headers.authorization ?? '');
        res.writeHead(500).end('s3cr3t-pass echoed back');
      });
      t.after(() => server.stop());
      const url = server.url.replace('http://', 'http://reader:s3cr3t-pass@');
      const ufs = web(url, { 'tide.ufs.maxAttempts': '1' });
      t.after(() => ufs.close());
      assert.ok(!ufs.description.includes('s3cr3t'));
      const error = await ufs.stat('f').catch((caught: unknown) => caught as Error);
      assert.ok(error instanceof Error);
      assert.ok(!JSON.stringify({ message: error.message, stack: error.stack }).includes('s3cr3t'));
      assert.equal(seen[0], `Basic ${Buffer.from('reader:s3cr3t-pass').toString('base64')}`);
    });

    test('credentials from encryptOptions are sent as basic or bearer auth; a password in plain options is refused', async (t) => {
      const seen: string[] = [];
      const server = await scriptedServer((req, res) => {
        seen.push(req.headers.authorization ?? '');
        serveBytes(req, res, Buffer.from('guarded'));
      });
      t.after(() => server.stop());
      const basic = createUnderFileSystem(
        {
          mountPoint: server.url,
          options: { 'http.username': 'reader' },
          secrets: { 'http.password': new SecretValue('s3cr3t-pass') },
        },
        {},
      );
      t.after(() => basic.close());
      await basic.stat('f');
      assert.equal(seen.at(-1), `Basic ${Buffer.from('reader:s3cr3t-pass').toString('base64')}`);
      assert.ok(!basic.description.includes('s3cr3t'));
      const bearer = createUnderFileSystem(
        { mountPoint: server.url, options: {}, secrets: { 'http.bearerToken': new SecretValue('t0ken') } },
        {},
      );
      t.after(() => bearer.close());
      await bearer.stat('f');
      assert.equal(seen.at(-1), 'Bearer t0ken');
      assert.throws(
        () =>
          createUnderFileSystem({
            mountPoint: server.url,
            options: { 'http.username': 'r', 'http.password': 'p' },
            secrets: {},
          }),
        (error: Error) => /Cannot take http\.password from options/.test(error.message),
      );
    });
  });
}

describe('web UFS listing from index pages', () => {
  let root = '';
  let nginx: NginxServer;
  const at = (iso: string): Date => new Date(iso);

  /** Requests nginx logged under `prefix` (still percent-encoded), by method. */
  async function requestsUnder(prefix: string): Promise<{ gets: number; heads: number }> {
    const records = (await nginx.accessLog()).filter((record) => record.target.startsWith(prefix));
    return {
      gets: records.filter((record) => record.method === 'GET').length,
      heads: records.filter((record) => record.method === 'HEAD').length,
    };
  }

  /** Lists, then waits until nginx has logged `expected` requests under `prefix` (it logs at the end). */
  async function settled(prefix: string, expected: number): Promise<{ gets: number; heads: number }> {
    await eventually(async () => {
      const { gets, heads } = await requestsUnder(prefix);
      return gets + heads >= expected;
    }, `${expected} requests under ${prefix} in the access log`);
    return requestsUnder(prefix);
  }

  /** An Apache 2.4 fancy <pre> index of `rows` ([name, printed time, printed size]). */
  function apachePage(rows: [string, string, string][]): string {
    const lines = rows.map(
      ([name, time, size]) =>
        `<img src="/icons/unknown.gif" alt="[   ]"> <a href="${encodeURIComponent(name)}">${name}</a>   ${time}  ${size}  `,
    );
    return [
      '<html><head><title>Index of /x</title></head><body><h1>Index of /x</h1>',
      '<pre><img src="/icons/blank.gif" alt="Icon "> <a href="?C=N;O=D">Name</a> <a href="?C=M;O=A">Last modified</a> <a href="?C=S;O=A">Size</a><hr><img src="/icons/back.gif" alt="[PARENTDIR]"> <a href="/">Parent Directory</a>   -',
      ...lines,
      '<hr></pre></body></html>',
    ].join('\n');
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tide-ufs-index-'));
    await mkdir(join(root, 'many', 'sub'), { recursive: true });
    for (let index = 0; index < 40; index++) {
      await writeFile(join(root, 'many', `f${index}.bin`), Buffer.alloc(index * 100, index));
    }
    await writeFile(join(root, 'many', 'sub', 'deep.bin'), 'deep');
    // Apache pages served as index.html, over files with known sizes and times.
    for (const [dir, hours] of [
      ['apache-utc', 21],
      ['apache-local', 23],
    ] as const) {
      const path = join(root, dir);
      await mkdir(path);
      await writeFile(join(path, 'small.txt'), Buffer.alloc(833, 1));
      await writeFile(join(path, 'README.txt'), Buffer.alloc(1234, 2));
      await writeFile(join(path, 'big.bin'), Buffer.alloc(150_000, 3));
      for (const name of ['small.txt', 'README.txt', 'big.bin']) {
        await utimes(join(path, name), at('2024-03-14T21:40:17Z'), at('2024-03-14T21:40:17Z'));
      }
      // apache-local prints local time two hours ahead of UTC, as a server in UTC+2 does.
      await writeFile(
        join(path, 'index.html'),
        apachePage([
          ['small.txt', `2024-03-14 ${hours}:40`, '833'],
          ['README.txt', `2024-03-14 ${hours}:40`, '1.2K'],
          ['big.bin', `2024-03-14 ${hours}:40`, '146K'],
        ]),
      );
    }
    nginx = await startNginx({ root, noRange: true });
  });

  after(async () => {
    await nginx.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('listing a directory sends one GET for its index page and no HEAD per file', async (t) => {
    const ufs = web(`${nginx.url}many/`);
    t.after(() => ufs.close());
    const entries = await collect(ufs.list(''));
    assert.equal(entries.length, 41);
    assert.equal(entries.find((entry) => entry.path === 'f7.bin')?.sizeBytes, 700);
    // One HEAD per origin checks that the page's times are UTC.
    const first = await settled('/many/', 2);
    assert.deepEqual(first, { gets: 1, heads: 1 });
    // The recursive walk: one more GET per directory, no HEAD.
    const walked = await collect(ufs.list('', { recursive: true }));
    assert.equal(walked.length, 42);
    assert.deepEqual(await settled('/many/', 4), { gets: 3, heads: 1 });
  });

  test('a file gets the same version from a listing, a stat and the headers of ranged and whole GETs', async (t) => {
    const ufs = web(`${nginx.url}many/`);
    t.after(() => ufs.close());
    assert.ok(nginx.rangeLessUrl !== undefined);
    const rangeless = web(`${nginx.rangeLessUrl}many/`);
    t.after(() => rangeless.close());
    const listed = (await collect(ufs.list(''))).find((entry) => entry.path === 'f39.bin');
    assert.ok(listed !== undefined);
    assert.deepEqual(await ufs.stat('f39.bin'), listed);
    assert.deepEqual(await rangeless.stat('f39.bin'), listed);
    assert.equal(listed.mtimeMs % 60_000, 0, 'mtimes are to the minute everywhere');
    // A read pinned to the listed version checks it against each response's own validators.
    const expected = Buffer.alloc(3900, 39);
    assert.ok((await readRange(ufs, 'f39.bin', 0, 3900, listed.version)).equals(expected));
    assert.ok((await readRange(ufs, 'f39.bin', 1000, 100, listed.version)).equals(expected.subarray(0, 100)));
    assert.ok(
      (await readRange(rangeless, 'f39.bin', 1000, 100, listed.version)).equals(expected.subarray(0, 100)),
    );
  });

  test('a file changed in size, or in mtime to another minute, shows a new version everywhere', async (t) => {
    const ufs = web(`${nginx.url}many/`);
    t.after(() => ufs.close());
    const path = join(root, 'many', 'changing.bin');
    t.after(() => rm(path, { force: true }));
    const versionListed = async (): Promise<string> => {
      const entry = (await collect(ufs.list(''))).find((candidate) => candidate.path === 'changing.bin');
      assert.ok(entry !== undefined);
      assert.equal((await ufs.stat('changing.bin')).version, entry.version);
      return entry.version;
    };
    await writeFile(path, Buffer.alloc(1000, 1));
    await utimes(path, at('2024-01-01T00:00:30Z'), at('2024-01-01T00:00:30Z'));
    const first = await versionListed();

    await writeFile(path, Buffer.alloc(1001, 2));
    await utimes(path, at('2024-01-01T00:00:30Z'), at('2024-01-01T00:00:30Z'));
    const resized = await versionListed();
    assert.notEqual(resized, first);
    await assert.rejects(readRange(ufs, 'changing.bin', 0, 10, first), { code: 'ERR_UFS_VERSION_CHANGED' });

    // Same size, a later minute: If-Unmodified-Since fails (412) and so does the validator check.
    await writeFile(path, Buffer.alloc(1001, 3));
    await utimes(path, at('2024-01-01T00:01:05Z'), at('2024-01-01T00:01:05Z'));
    const touched = await versionListed();
    assert.notEqual(touched, resized);
    await assert.rejects(readRange(ufs, 'changing.bin', 0, 10, resized), { code: 'ERR_UFS_VERSION_CHANGED' });
    assert.ok((await readRange(ufs, 'changing.bin', 0, 10, touched)).every((byte) => byte === 3));
  });

  test('an Apache page with rounded sizes gets exact sizes by HEAD for those files only', async (t) => {
    const ufs = web(`${nginx.url}apache-utc/`);
    t.after(() => ufs.close());
    const entries = await collect(ufs.list(''));
    assert.deepEqual(entries.map((entry) => `${entry.path}:${entry.sizeBytes}`).sort(), [
      'README.txt:1234',
      'big.bin:150000',
      'small.txt:833',
    ]);
    for (const entry of entries) assert.deepEqual(await ufs.stat(entry.path), entry);
    // The index page, the HEAD that checks its times (small.txt), the two rounded sizes, 3 stats.
    assert.deepEqual(await settled('/apache-utc/', 7), { gets: 1, heads: 6 });
  });

  test('a page printing local time is not trusted: every file is HEADed and versions still agree', async (t) => {
    const ufs = web(`${nginx.url}apache-local/`);
    t.after(() => ufs.close());
    const entries = await collect(ufs.list(''));
    assert.deepEqual(entries.map((entry) => `${entry.path}:${entry.sizeBytes}`).sort(), [
      'README.txt:1234',
      'big.bin:150000',
      'small.txt:833',
    ]);
    for (const entry of entries) {
      assert.deepEqual(await ufs.stat(entry.path), entry);
      assert.equal(entry.mtimeMs, Date.parse('2024-03-14T21:40:00Z'));
    }
    // The page, the HEAD that finds the two-hour offset, then a HEAD per file (and 3 stats).
    assert.deepEqual(await settled('/apache-local/', 8), { gets: 1, heads: 7 });
  });

  test('nginx json and xml autoindex formats list with the versions stat gives, without HEADs', async (t) => {
    for (const format of ['json', 'xml'] as const) {
      const server = await startNginx({ root, autoindexFormat: format });
      t.after(() => server.stop());
      const ufs = web(`${server.url}many/`);
      t.after(() => ufs.close());
      const entries = await collect(ufs.list('', { recursive: true }));
      assert.equal(entries.length, 42, format);
      assert.deepEqual(
        entries.find((entry) => entry.path === 'sub'),
        {
          path: 'sub',
          type: 'directory',
          sizeBytes: 0,
          mtimeMs: 0,
          version: '',
        },
      );
      const deep = entries.find((entry) => entry.path === 'sub/deep.bin');
      assert.deepEqual(await ufs.stat('sub/deep.bin'), deep, format);
      const heads = (await server.accessLog()).filter((record) => record.method === 'HEAD').length;
      // The origin check and the stat above.
      assert.ok(heads <= 2, `${format}: ${heads} HEADs`);
    }
  });
});

describe('web origin behind a throttled link (its own network namespace)', () => {
  test('reads the right bytes over the link, and closing it removes the namespace', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'tide-link-'));
    t.after(() => rm(root, { recursive: true, force: true }));
    const content = randomBytes(3 * MiB + 17);
    await writeFile(join(root, 'file.bin'), content);
    const link = await createThrottledLink({ rateBitsPerSecond: 400_000_000 });
    t.after(() => link.close());
    const server = await startNginx({ root, link });
    t.after(() => server.stop());
    assert.ok(server.url.startsWith(`http://${link.remoteAddress}:`), server.url);

    const ufs = webWith(server.url);
    t.after(() => ufs.close());
    const entry = await ufs.stat('file.bin');
    assert.equal(entry.sizeBytes, content.length);
    assert.deepEqual(await readRange(ufs, 'file.bin', 0, content.length), content);
    assert.deepEqual(await readRange(ufs, 'file.bin', MiB + 5, 1000), content.subarray(MiB + 5, MiB + 1005));

    await server.stop();
    await link.close();
    const { stdout } = await run('ip', ['netns', 'list']);
    assert.ok(!stdout.includes(link.namespace), `namespace ${link.namespace} left behind`);
  });
});
