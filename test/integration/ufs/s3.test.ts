import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger, SecretValue } from '../../../src/lib/index.ts';
import {
  createUnderFileSystem,
  DEFAULT_HTTP_TIMEOUTS,
  DEFAULT_RETRY_POLICY,
  parseS3Location,
  S3Ufs,
  type UfsDependencies,
  type UfsEntry,
  type UfsMountConfig,
  type UnderFileSystem,
} from '../../../src/ufs/index.ts';
import { startS3Server, type S3Server } from '../../helpers/s3-server.ts';

const MiB = 1024 * 1024;
const BUCKET = 'tide-data';
const SPECIAL_KEYS = [
  'space name.txt',
  'ü unicode 模型.txt',
  'plus+sign.txt',
  '100%.txt',
  'a&b=c?d#e.txt',
  "quote'd (1).txt",
];

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

const fastRetries: UfsDependencies = { retry: { baseDelayMs: 10, maxDelayMs: 50 } };

/**
 * An HTTP proxy in front of the S3 server that injects faults: answers 503 SlowDown to the next
 * `failNext` requests, cuts the next GetObject body after `cutNextBodyAfterBytes`, or never answers
 * while `hang` is set. Everything else is forwarded unchanged (the Host header too, so SigV4 holds).
 */
async function faultProxy(target: string) {
  const faults: {
    failNext: number;
    cutNextBodyAfterBytes: number;
    /** Runs before the cut reaches the client. */
    beforeCut: (() => Promise<void>) | undefined;
    hang: boolean;
    requests: number;
  } = { failNext: 0, cutNextBodyAfterBytes: 0, beforeCut: undefined, hang: false, requests: 0 };
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    faults.requests++;
    if (faults.hang) return;
    if (faults.failNext > 0) {
      faults.failNext--;
      res.writeHead(503, { 'content-type': 'application/xml' });
      res.end(
        '<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
      );
      return;
    }
    const cutAfter =
      req.method === 'GET' && req.headers.range !== undefined ? faults.cutNextBodyAfterBytes : 0;
    if (cutAfter > 0) faults.cutNextBodyAfterBytes = 0;
    const forward = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (cutAfter === 0) {
          answer.pipe(res);
          return;
        }
        let sent = 0;
        answer.on('data', (chunk: Buffer) => {
          if (sent >= cutAfter) return;
          const part = chunk.subarray(0, cutAfter - sent);
          sent += part.length;
          res.write(part);
          if (sent >= cutAfter) {
            answer.destroy();
            const hook = faults.beforeCut ?? (() => Promise.resolve());
            faults.beforeCut = undefined;
            void hook().finally(() => res.destroy());
          }
        });
        answer.on('end', () => res.end());
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    faults,
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

describe('S3 UFS against a real S3-compatible server', () => {
  let s3: S3Server;
  const big = randomBytes(8 * MiB);

  const mount = (mountPoint: string, overrides: Partial<UfsMountConfig> = {}): UnderFileSystem => {
    const config = s3.mountConfig(mountPoint);
    return createUnderFileSystem(
      {
        mountPoint,
        options: { ...config.options, ...overrides.options },
        secrets: { ...config.secrets, ...overrides.secrets },
      },
      fastRetries,
    );
  };

  before(async () => {
    s3 = await startS3Server({ buckets: [BUCKET], secretAccessKey: 'tide-S3cret/Value+xyz' });
    const puts: Array<[string, string | Uint8Array]> = [
      ['ds/hello.txt', 'hello world'],
      ['ds/empty', ''],
      ['ds/dir/', ''],
      ['ds/dir/a.txt', 'a'],
      ['ds/dir/sub/deep.bin', randomBytes(1000)],
      ['ds/big.bin', big],
      ...SPECIAL_KEYS.map((key): [string, string] => [`ds/special/${key}`, `content of ${key}`]),
      ...Array.from({ length: 1100 }, (_, index): [string, string] => [
        `paged/${index % 10 === 0 ? `d${index}/` : ''}f${String(index).padStart(4, '0')}`,
        String(index),
      ]),
    ];
    // A few at a time: enough to be quick, few enough for two cores.
    for (let index = 0; index < puts.length; index += 16) {
      await Promise.all(puts.slice(index, index + 16).map(([key, body]) => s3.putObject(BUCKET, key, body)));
    }
  });

  after(async () => {
    await s3.stop();
  });

  test('lists a prefix: files with sizes and ETags, directories as common prefixes, markers not as files', async (t) => {
    const ufs = mount(`s3://${BUCKET}/ds`);
    t.after(() => ufs.close());
    await ufs.check();
    const entries = await collect(ufs.list(''));
    assert.deepEqual(entries.map((entry) => `${entry.type}:${entry.path}:${entry.sizeBytes}`).sort(), [
      'directory:dir:0',
      'directory:special:0',
      'file:big.bin:8388608',
      'file:empty:0',
      'file:hello.txt:11',
    ]);
    const hello = entries.find((entry) => entry.path === 'hello.txt');
    assert.match(hello?.version ?? '', /^"[0-9a-f]{32}"$/);
    assert.deepEqual(await ufs.stat('hello.txt'), { ...hello, mtimeMs: hello?.mtimeMs });
    assert.deepEqual((await collect(ufs.list('dir'))).map((entry) => `${entry.type}:${entry.path}`).sort(), [
      'directory:dir/sub',
      'file:dir/a.txt',
    ]);
  });

  test('walks a prefix recursively and makes up each directory once from the keys', async (t) => {
    const ufs = mount(`s3://${BUCKET}/ds/`);
    t.after(() => ufs.close());
    const paths = (await collect(ufs.list('dir', { recursive: true }))).map(
      (entry: UfsEntry) => `${entry.type}:${entry.path}`,
    );
    assert.deepEqual(paths.sort(), ['directory:dir/sub', 'file:dir/a.txt', 'file:dir/sub/deep.bin']);
    const all = await collect(ufs.list('', { recursive: true }));
    assert.equal(all.filter((entry) => entry.type === 'file').length, 5 + SPECIAL_KEYS.length);
    assert.deepEqual(
      all
        .filter((entry) => entry.type === 'directory')
        .map((entry) => entry.path)
        .sort(),
      ['dir', 'dir/sub', 'special'],
    );
  });

  test('pages through more than 1,000 keys with and without a delimiter', async (t) => {
    const ufs = mount(`s3://${BUCKET}/paged`);
    t.after(() => ufs.close());
    const flat = await collect(ufs.list(''));
    assert.equal(flat.filter((entry) => entry.type === 'file').length, 990);
    assert.equal(flat.filter((entry) => entry.type === 'directory').length, 110);
    const deep = await collect(ufs.list('', { recursive: true }));
    assert.equal(deep.filter((entry) => entry.type === 'file').length, 1100);
    assert.equal(new Set(deep.map((entry) => entry.path)).size, deep.length);
  });

  test('stats files and directories and maps missing keys and wrong types to codes', async (t) => {
    const ufs = mount(`s3://${BUCKET}/ds`);
    t.after(() => ufs.close());
    assert.equal((await ufs.stat('dir')).type, 'directory');
    assert.equal((await ufs.stat('dir/sub')).type, 'directory');
    assert.equal((await ufs.stat('')).type, 'directory');
    assert.equal((await ufs.stat('empty')).sizeBytes, 0);
    await assert.rejects(ufs.stat('missing'), { code: 'ERR_UFS_NOT_FOUND' });
    await assert.rejects(collect(ufs.list('hello.txt')), { code: 'ERR_UFS_NOT_A_DIRECTORY' });
    await assert.rejects(collect(ufs.list('nothing-here')), { code: 'ERR_UFS_NOT_FOUND' });
    await assert.rejects(readRange(ufs, 'missing', 0, 1), { code: 'ERR_UFS_NOT_FOUND' });
  });

  test('keys with spaces, unicode, +, %, & and quotes round-trip through list, stat and read', async (t) => {
    const ufs = mount(`s3://${BUCKET}/ds/special`);
    t.after(() => ufs.close());
    const listed = (await collect(ufs.list(''))).map((entry) => entry.path).sort();
    assert.deepEqual(listed, [...SPECIAL_KEYS].sort());
    for (const key of SPECIAL_KEYS) {
      const entry = await ufs.stat(key);
      assert.equal((await readRange(ufs, key, 0, 1000, entry.version)).toString(), `content of ${key}`, key);
    }
  });

  test('reads exact ranges, empty objects and past the end', async (t) => {
    const ufs = mount(`s3://${BUCKET}/ds`);
    t.after(() => ufs.close());
    assert.equal((await readRange(ufs, 'hello.txt', 6, 5)).toString(), 'world');
    assert.equal((await readRange(ufs, 'hello.txt', 6, 50)).toString(), 'world');
    assert.equal((await readRange(ufs, 'hello.txt', 11, 5)).length, 0);
    assert.equal((await readRange(ufs, 'empty', 0, 10)).length, 0);
    const { version } = await ufs.stat('big.bin');
    const parts = await Promise.all(
      [0, 1, 2, 3].map((index) => readRange(ufs, 'big.bin', index * 2 * MiB, 2 * MiB, version)),
    );
    assert.ok(Buffer.concat(parts).equals(big));
  });

  test('reads a range straight into the caller buffer on http: endpoints', async (t) => {
    const ufs = mount(`s3://${BUCKET}/ds`);
    t.after(() => ufs.close());
    const { version } = await ufs.stat('big.bin');
    const offset = 3 * MiB + 5;
    const length = 2 * MiB;
    const into = Buffer.alloc(length);
    let position = 0;
    for await (const chunk of await ufs.read('big.bin', { offset, length }, { version, into })) {
      assert.equal(chunk.buffer, into.buffer);
      assert.equal(chunk.byteOffset, into.byteOffset + position);
      position += chunk.length;
    }
    assert.equal(position, length);
    assert.ok(into.equals(big.subarray(offset, offset + length)));
  });

  test('reads the same bytes and checks versions through undici, the transport of https endpoints', async (t) => {
    const config = s3.mountConfig(`s3://${BUCKET}/ds`);
    const ufs = new S3Ufs({
      location: parseS3Location(config),
      logger: createLogger({ level: 'silent' }),
      retry: { ...DEFAULT_RETRY_POLICY, baseDelayMs: 10, maxDelayMs: 50 },
      timeouts: DEFAULT_HTTP_TIMEOUTS,
      readTransport: 'undici',
    });
    t.after(() => ufs.close());
    assert.equal((await readRange(ufs, 'hello.txt', 6, 50)).toString(), 'world');
    assert.equal((await readRange(ufs, 'hello.txt', 11, 5)).length, 0);
    const { version } = await ufs.stat('big.bin');
    const parts = await Promise.all(
      [0, 1].map((index) => readRange(ufs, 'big.bin', index * 4 * MiB, 4 * MiB, version)),
    );
    assert.ok(Buffer.concat(parts).equals(big));
    const key = SPECIAL_KEYS[1] ?? '';
    assert.equal((await readRange(ufs, `special/${key}`, 0, 100)).toString(), `content of ${key}`);
    await assert.rejects(readRange(ufs, 'hello.txt', 0, 5, '"0123456789abcdef0123456789abcdef"'), {
      code: 'ERR_UFS_VERSION_CHANGED',
    });
    await assert.rejects(readRange(ufs, 'missing.txt', 0, 5), { code: 'ERR_UFS_NOT_FOUND' });
  });

  test('an object replaced between two block reads fails the second with ERR_UFS_VERSION_CHANGED', async (t) => {
    const ufs = mount(`s3://${BUCKET}/ds`);
    t.after(() => ufs.close());
    await s3.putObject(BUCKET, 'ds/changing.bin', Buffer.alloc(2 * MiB, 1));
    const { version } = await ufs.stat('changing.bin');
    assert.equal((await readRange(ufs, 'changing.bin', 0, MiB, version)).length, MiB);
    await s3.putObject(BUCKET, 'ds/changing.bin', Buffer.alloc(2 * MiB, 2));
    await assert.rejects(readRange(ufs, 'changing.bin', MiB, MiB, version), {
      code: 'ERR_UFS_VERSION_CHANGED',
    });
  });

  test('a cut body is resumed for the same ETag, and fails when the object changed meanwhile', async (t) => {
    const proxy = await faultProxy(s3.endpoint);
    t.after(() => proxy.stop());
    const ufs = mount(`s3://${BUCKET}/ds`, { options: { 's3.endpoint': proxy.endpoint } });
    t.after(() => ufs.close());
    proxy.faults.cutNextBodyAfterBytes = MiB + 5;
    assert.ok((await readRange(ufs, 'big.bin', 0, big.length)).equals(big));

    await s3.putObject(BUCKET, 'ds/cut.bin', Buffer.alloc(4 * MiB, 1));
    const { version } = await ufs.stat('cut.bin');
    proxy.faults.cutNextBodyAfterBytes = MiB;
    proxy.faults.beforeCut = () => s3.putObject(BUCKET, 'ds/cut.bin', Buffer.alloc(4 * MiB, 2));
    const stream = await ufs.read('cut.bin', { offset: 0, length: 4 * MiB }, { version });
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) {
          assert.ok(
            Buffer.from(chunk).every((byte) => byte === 1),
            'only bytes of the first version',
          );
        }
      })(),
      { code: 'ERR_UFS_VERSION_CHANGED' },
    );
  });

  test('an abort stops an S3 read and a listing promptly', async (t) => {
    const ufs = mount(`s3://${BUCKET}/`);
    t.after(() => ufs.close());
    const controller = new AbortController();
    const stream = await ufs.read(
      'ds/big.bin',
      { offset: 0, length: big.length },
      { signal: controller.signal },
    );
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) {
          assert.ok(chunk.length > 0);
          controller.abort();
        }
      })(),
      { code: 'ERR_UFS_ABORTED' },
    );
    const listing = new AbortController();
    listing.abort();
    await assert.rejects(collect(ufs.list('paged', { signal: listing.signal })), { code: 'ERR_UFS_ABORTED' });
  });

  test('retries injected 503 SlowDown answers and gives up after maxAttempts', async (t) => {
    const proxy = await faultProxy(s3.endpoint);
    t.after(() => proxy.stop());
    const ufs = mount(`s3://${BUCKET}/ds`, {
      options: { 's3.endpoint': proxy.endpoint, 'tide.ufs.maxAttempts': '4' },
    });
    t.after(() => ufs.close());
    proxy.faults.failNext = 3;
    assert.equal((await ufs.stat('hello.txt')).sizeBytes, 11);
    assert.equal(proxy.faults.requests, 4);
    proxy.faults.failNext = 10;
    const before = proxy.faults.requests;
    await assert.rejects(readRange(ufs, 'hello.txt', 0, 5), { code: 'ERR_UFS_REMOTE' });
    assert.equal(proxy.faults.requests - before, 4);
    proxy.faults.failNext = 0;
  });

  test('a store that does not answer fails at the deadline with ERR_UFS_TIMEOUT', async (t) => {
    const proxy = await faultProxy(s3.endpoint);
    t.after(() => proxy.stop());
    proxy.faults.hang = true;
    const ufs = mount(`s3://${BUCKET}/ds`, {
      options: { 's3.endpoint': proxy.endpoint, 'tide.ufs.deadlineMs': '400' },
    });
    t.after(() => ufs.close());
    const started = Date.now();
    await assert.rejects(ufs.stat('hello.txt'), { code: 'ERR_UFS_TIMEOUT' });
    assert.ok(Date.now() - started < 3000);
  });

  test('a wrong secret key is ERR_UFS_ACCESS_DENIED and a missing bucket ERR_UFS_BUCKET_NOT_FOUND', async (t) => {
    const wrong = mount(`s3://${BUCKET}/ds`, {
      secrets: { 'aws.secretKey': new SecretValue('not-the-secret') },
    });
    const missing = mount('s3://no-such-bucket/ds');
    t.after(async () => {
      await wrong.close();
      await missing.close();
    });
    await assert.rejects(wrong.check(), { code: 'ERR_UFS_ACCESS_DENIED', reason: 'AccessDenied' });
    await assert.rejects(wrong.stat('hello.txt'), { code: 'ERR_UFS_ACCESS_DENIED' });
    await assert.rejects(readRange(wrong, 'hello.txt', 0, 1), { code: 'ERR_UFS_ACCESS_DENIED' });
    await assert.rejects(missing.check(), { code: 'ERR_UFS_BUCKET_NOT_FOUND', reason: 'BucketNotFound' });
    await assert.rejects(missing.stat('x'), { code: 'ERR_UFS_BUCKET_NOT_FOUND' });
    await assert.rejects(collect(missing.list('')), { code: 'ERR_UFS_BUCKET_NOT_FOUND' });
  });

  test('a closed port and an unresolvable endpoint are ERR_UFS_UNREACHABLE, quickly', async (t) => {
    const proxy = await faultProxy(s3.endpoint);
    const closedEndpoint = proxy.endpoint;
    await proxy.stop();
    const closed = mount(`s3://${BUCKET}/ds`, { options: { 's3.endpoint': closedEndpoint } });
    const unknown = mount(`s3://${BUCKET}/ds`, {
      options: { 's3.endpoint': 'tide-no-such-host.invalid:9000' },
    });
    t.after(async () => {
      await closed.close();
      await unknown.close();
    });
    const started = Date.now();
    await assert.rejects(closed.check(), { code: 'ERR_UFS_UNREACHABLE', reason: 'OriginUnreachable' });
    await assert.rejects(unknown.check(), { code: 'ERR_UFS_UNREACHABLE' });
    assert.ok(Date.now() - started < 3000);
  });

  test('oss:// and cos:// mounts take their own option names and reach the same store', async (t) => {
    const oss = createUnderFileSystem(
      {
        mountPoint: `oss://${BUCKET}/ds`,
        options: { 'fs.oss.endpoint': s3.endpoint },
        secrets: {
          'fs.oss.accessKeyId': new SecretValue(s3.accessKeyId),
          'fs.oss.accessKeySecret': new SecretValue(s3.secretAccessKey),
        },
      },
      fastRetries,
    );
    const endpointWithoutScheme = s3.endpoint.replace('http://', '');
    const cos = createUnderFileSystem(
      {
        mountPoint: `cos://${BUCKET}/ds/dir`,
        options: {
          'fs.cosn.endpoint': endpointWithoutScheme,
          'alluxio.underfs.s3.secure.http.enabled': 'false',
          'fs.cosn.userinfo.secretId': s3.accessKeyId,
        },
        secrets: { 'fs.cosn.userinfo.secretKey': new SecretValue(s3.secretAccessKey) },
      },
      fastRetries,
    );
    t.after(async () => {
      await oss.close();
      await cos.close();
    });
    assert.equal((await readRange(oss, 'hello.txt', 0, 5)).toString(), 'hello');
    assert.equal((await readRange(cos, 'a.txt', 0, 5)).toString(), 'a');
  });

  test('no log line and no error text of a run carries a secret value', async (t) => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(
          ...chunk
            .toString()
            .split('\n')
            .filter((line) => line !== ''),
        );
        callback();
      },
    });
    const logger = createLogger({ level: 'trace', destination });
    const proxy = await faultProxy(s3.endpoint);
    t.after(() => proxy.stop());
    const wrongSecret = 'wrong-S3cret/Value+abc';
    const config = s3.mountConfig(`s3://${BUCKET}/ds`);
    const deps = { logger, retry: { baseDelayMs: 5, maxDelayMs: 10 } };
    const good = createUnderFileSystem(
      { ...config, options: { ...config.options, 's3.endpoint': proxy.endpoint } },
      deps,
    );
    const bad = createUnderFileSystem(
      {
        ...config,
        options: { ...config.options, 'aws.secretKey': wrongSecret },
        secrets: { 'aws.accessKeyId': new SecretValue(s3.accessKeyId) },
      },
      deps,
    );
    t.after(async () => {
      await good.close();
      await bad.close();
    });
    const texts: string[] = [];
    const record = async (operation: Promise<unknown>) => {
      try {
        await operation;
      } catch (error) {
        const caught = error as Error & { cause?: Error };
        texts.push(
          caught.message,
          caught.stack ?? '',
          String(caught.cause?.message),
          String(caught.cause?.stack),
        );
        texts.push(JSON.stringify(caught));
      }
    };
    proxy.faults.failNext = 2;
    await record(good.stat('hello.txt'));
    proxy.faults.cutNextBodyAfterBytes = MiB;
    await record(readRange(good, 'big.bin', 0, 4 * MiB));
    proxy.faults.failNext = 100;
    await record(collect(good.list('')));
    proxy.faults.failNext = 0;
    await record(bad.check());
    await record(bad.stat('hello.txt'));
    await record(readRange(bad, 'hello.txt', 0, 1));
    assert.ok(
      lines.some((line) => line.includes('retrying')),
      'the run logged its retries',
    );
    assert.ok(texts.length >= 4, 'the run recorded its failures');
    for (const secret of [s3.secretAccessKey, wrongSecret]) {
      for (const text of [...lines, ...texts])
        assert.ok(!text.includes(secret), `a secret leaked into: ${text}`);
    }
  });

  test('the byte-counting endpoint of the test server accounts for the origin egress of block reads', async (t) => {
    const counted = await startS3Server({ buckets: ['counted'], countBytes: true });
    t.after(() => counted.stop());
    const data = randomBytes(3 * MiB);
    await counted.putObject('counted', 'obj.bin', data);
    assert.equal(counted.bytesServed(), 0, 'set-up traffic bypasses the counter');
    const ufs = createUnderFileSystem(counted.mountConfig('s3://counted/'), fastRetries);
    t.after(() => ufs.close());
    const { version } = await ufs.stat('obj.bin');
    const blocks = [];
    for (let offset = 0; offset < data.length; offset += MiB)
      blocks.push(await readRange(ufs, 'obj.bin', offset, MiB, version));
    assert.ok(Buffer.concat(blocks).equals(data));
    const served = counted.bytesServed();
    assert.ok(
      served >= data.length && served < data.length + 16 * 1024,
      `served ${served} bytes for ${data.length}`,
    );
  });
});
