import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { decodeChunked } from './framing.ts';
import { Http1Client } from './pool.ts';

const timeouts = { connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyIdleTimeoutMs: 2000 };

async function listen(t: TestContext, server: Server | ReturnType<typeof createHttpServer>): Promise<URL> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return new URL(`http://127.0.0.1:${address.port}`);
}

function client(t: TestContext, origin: URL, connections = 4, overrides = {}): Http1Client {
  const http1 = new Http1Client({ origin, connections, timeouts: { ...timeouts, ...overrides } });
  t.after(() => {
    http1.close();
  });
  return http1;
}

async function bodyOf(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

test('reads Content-Length bodies whole, chunks kept valid, over one kept-alive connection', async (t) => {
  const data = randomBytes(5 * 1024 * 1024 + 17);
  let connections = 0;
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-length': data.length, etag: '"v1"', 'x-path': req.url ?? '' });
    res.end(data);
  });
  server.on('connection', () => connections++);
  const origin = await listen(t, server);
  const http1 = client(t, origin);
  for (let round = 0; round < 3; round++) {
    const response = await http1.request({ method: 'GET', path: `/a%20b?x=${round}`, headers: {} });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers.etag, '"v1"');
    assert.equal(response.headers['x-path'], `/a%20b?x=${round}`);
    // Collected first, compared after: a chunk must not change once handed out.
    assert.ok((await bodyOf(response.body)).equals(data));
  }
  assert.equal(connections, 1);
});

test('decodes chunked and close-delimited bodies, and answers without a body', async (t) => {
  const server = createHttpServer((req, res) => {
    if (req.url === '/chunked') {
      res.write('<Error><Code>');
      res.end('SlowDown</Code></Error>');
    } else if (req.url === '/close') {
      res.socket?.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end');
    } else {
      res.writeHead(204);
      res.end();
    }
  });
  const origin = await listen(t, server);
  const http1 = client(t, origin);
  const chunked = await http1.request({ method: 'GET', path: '/chunked', headers: {} });
  assert.equal(await chunked.body.text(1000), '<Error><Code>SlowDown</Code></Error>');
  const closed = await http1.request({ method: 'GET', path: '/close', headers: {} });
  assert.equal((await bodyOf(closed.body)).toString(), 'until the end');
  const empty = await http1.request({ method: 'GET', path: '/none', headers: {} });
  assert.equal(empty.statusCode, 204);
  assert.equal((await bodyOf(empty.body)).length, 0);
});

test('decodeChunked handles sizes, extensions and trailers split anywhere', () => {
  const wire = Buffer.from('5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\ntrailer: x\r\n\r\n');
  for (let split = 1; split < wire.length; split++) {
    const state = { remaining: -1, skipCrlf: 0, line: '', inTrailer: false };
    const first = decodeChunked(state, wire.subarray(0, split));
    const second = decodeChunked(state, wire.subarray(split));
    assert.ok(first !== undefined && second !== undefined);
    assert.equal(
      Buffer.concat([...first.chunks, ...second.chunks]).toString(),
      'hello world',
      `split ${split}`,
    );
    assert.equal(second.done, true);
  }
  assert.equal(
    decodeChunked({ remaining: -1, skipCrlf: 0, line: '', inTrailer: false }, Buffer.from('zz\r\n')),
    undefined,
  );
});

test('a kept-alive connection the server closed meanwhile is replaced, once, without an error', async (t) => {
  // Answers one request per connection, then closes it without saying so.
  const server = createTcpServer((socket) => {
    socket.once('data', () => {
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
  });
  const origin = await listen(t, server);
  const http1 = client(t, origin, 1);
  for (let round = 0; round < 3; round++) {
    const response = await http1.request({ method: 'GET', path: '/', headers: {} });
    assert.equal((await bodyOf(response.body)).toString(), 'ok');
    // Let the FIN arrive, so that the next request finds the connection closed.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
});

test('a body cut short fails with ERR_HTTP1_EARLY_END, stalls with the timeouts', async (t) => {
  const server = createTcpServer((socket) => {
    socket.once('data', (request: Buffer) => {
      const path = request.toString('latin1').split(' ')[1];
      if (path === '/cut') socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly a part');
      if (path === '/stall-body') socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome');
      // /stall-head: nothing at all.
    });
  });
  const origin = await listen(t, server);
  const http1 = client(t, origin, 4, { headersTimeoutMs: 100, bodyIdleTimeoutMs: 100 });
  const cut = await http1.request({ method: 'GET', path: '/cut', headers: {} });
  await assert.rejects(bodyOf(cut.body), { code: 'ERR_HTTP1_EARLY_END' });
  await assert.rejects(http1.request({ method: 'GET', path: '/stall-head', headers: {} }), {
    code: 'ERR_HTTP1_HEADERS_TIMEOUT',
  });
  const stalled = await http1.request({ method: 'GET', path: '/stall-body', headers: {} });
  await assert.rejects(bodyOf(stalled.body), { code: 'ERR_HTTP1_BODY_TIMEOUT' });
});

test('an abort fails the request or its body with the reason, and frees the connection', async (t) => {
  const server = createTcpServer((socket) => {
    socket.on('data', (request: Buffer) => {
      if (request.toString('latin1').startsWith('GET /body ')) {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome');
      } else if (request.toString('latin1').startsWith('GET /ok ')) {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
  });
  const origin = await listen(t, server);
  const http1 = client(t, origin, 1);
  const beforeHead = new AbortController();
  const pending = http1.request({ method: 'GET', path: '/never', headers: {}, signal: beforeHead.signal });
  beforeHead.abort(new Error('stop before the head'));
  await assert.rejects(pending, { message: 'stop before the head' });
  const duringBody = new AbortController();
  const response = await http1.request({
    method: 'GET',
    path: '/body',
    headers: {},
    signal: duringBody.signal,
  });
  const reading = bodyOf(response.body);
  duringBody.abort(new Error('stop in the body'));
  await assert.rejects(reading, { message: 'stop in the body' });
  // The one connection allowed was given back (closed), so a next request goes through.
  const next = await http1.request({ method: 'GET', path: '/ok', headers: {} });
  assert.equal((await bodyOf(next.body)).toString(), 'ok');
});

test('a slow reader gets every byte of a large body, and more requests than connections queue', async (t) => {
  const data = randomBytes(12 * 1024 * 1024);
  const server = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-length': data.length });
    res.end(data);
  });
  const origin = await listen(t, server);
  const http1 = client(t, origin, 2);
  const read = async (slow: boolean): Promise<Buffer> => {
    const response = await http1.request({ method: 'GET', path: '/', headers: {} });
    const chunks: Uint8Array[] = [];
    for await (const chunk of response.body) {
      chunks.push(chunk);
      if (slow) await new Promise((resolve) => setImmediate(resolve));
    }
    return Buffer.concat(chunks);
  };
  const bodies = await Promise.all([read(true), read(false), read(true), read(false)]);
  for (const body of bodies) assert.ok(body.equals(data));
});

test('refuses origins other than http: and a refused connection carries ECONNREFUSED', async (t) => {
  assert.throws(
    () => new Http1Client({ origin: new URL('https://example.com'), connections: 1, timeouts }),
    TypeError,
  );
  const server = createTcpServer();
  const origin = await listen(t, server);
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  const http1 = client(t, origin, 1);
  await assert.rejects(http1.request({ method: 'GET', path: '/', headers: {} }), { code: 'ECONNREFUSED' });
});

test('a 206 body that fits lands in the caller buffer; other answers leave it alone', async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 5);
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/whole') {
      res.writeHead(200, { 'content-length': data.length });
    } else {
      res.writeHead(206, { 'content-length': data.length, 'content-range': `bytes 0-${data.length - 1}/*` });
    }
    res.end(data);
  });
  const http1 = client(t, await listen(t, server), 1);

  const into = Buffer.alloc(data.length + 100);
  const ranged = await http1.request({ method: 'GET', path: '/ranged', headers: {}, into });
  let position = 0;
  for await (const chunk of ranged.body) {
    assert.equal(chunk.buffer, into.buffer, 'each chunk is a view of the caller buffer');
    assert.equal(chunk.byteOffset, into.byteOffset + position);
    position += chunk.length;
  }
  assert.equal(position, data.length);
  assert.deepEqual(into.subarray(0, data.length), data);

  const small = Buffer.alloc(data.length - 1);
  const tooLong = await http1.request({ method: 'GET', path: '/ranged', headers: {}, into: small });
  assert.deepEqual(await bodyOf(tooLong.body), data);
  assert.ok(
    small.every((byte) => byte === 0),
    'a body that does not fit is not written',
  );

  const spare = Buffer.alloc(data.length);
  const whole = await http1.request({ method: 'GET', path: '/whole', headers: {}, into: spare });
  assert.deepEqual(await bodyOf(whole.body), data);
  assert.ok(
    spare.every((byte) => byte === 0),
    'a 200 body is not written',
  );
});

test('with intoAnyAnswer a chunked or 200 body lands in the caller buffer, decoded in place', async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 7);
  // Pieces of many sizes, so that socket reads straddle chunk framing anywhere.
  const pieces: Buffer[] = [];
  for (let at = 0, step = 1; at < data.length; step = (step * 7 + 13) % 300_000) {
    pieces.push(data.subarray(at, Math.min(data.length, at + step + 1)));
    at += step + 1;
  }
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/length') {
      res.writeHead(200, { 'content-length': data.length });
      res.end(data);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    void (async () => {
      for (const [index, piece] of pieces.entries()) {
        res.write(piece);
        if (index % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      if (req.url === '/cut') res.destroy();
      else res.end();
    })();
  });
  const http1 = client(t, await listen(t, server), 1);

  for (const path of ['/chunked', '/length', '/chunked']) {
    const into = Buffer.alloc(data.length + 10);
    const response = await http1.request({ method: 'GET', path, headers: {}, into, intoAnyAnswer: true });
    let position = 0;
    for await (const chunk of response.body) {
      assert.equal(chunk.buffer, into.buffer, `${path}: each chunk is a view of the caller buffer`);
      assert.equal(chunk.byteOffset, into.byteOffset + position);
      position += chunk.length;
    }
    assert.equal(position, data.length);
    assert.ok(into.subarray(0, data.length).equals(data), `${path}: the bytes are the body`);
  }

  const small = Buffer.alloc(data.length - 1);
  const chunked = await http1.request({
    method: 'GET',
    path: '/chunked',
    headers: {},
    into: small,
    intoAnyAnswer: true,
  });
  await assert.rejects(bodyOf(chunked.body), { code: 'ERR_HTTP1_BAD_RESPONSE' });
  await assert.rejects(
    http1.request({ method: 'GET', path: '/length', headers: {}, into: small, intoAnyAnswer: true }),
    { code: 'ERR_HTTP1_BAD_RESPONSE' },
  );
  const cut = await http1.request({
    method: 'GET',
    path: '/cut',
    headers: {},
    into: Buffer.alloc(data.length),
    intoAnyAnswer: true,
  });
  await assert.rejects(bodyOf(cut.body), { code: 'ERR_HTTP1_EARLY_END' });
});

test('a connection whose last answer arrived faster than it was read serves the next request', async (t) => {
  // Exactly what the client queues before it pauses the socket (4 MiB), sent at once: the whole
  // answer is in before the reader takes a byte, the last socket read fills the queue to its high
  // water mark and hands the connection back to the pool, which must not leave it paused.
  const data = randomBytes(4 * 1024 * 1024);
  const server = createHttpServer((_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(206, { 'content-length': data.length, 'content-range': `bytes 0-${data.length - 1}/*` });
    res.end(data);
  });
  const http1 = client(t, await listen(t, server), 1);
  for (const into of [Buffer.alloc(data.length), undefined]) {
    const first = await http1.request({ method: 'GET', path: '/a', headers: {}, ...(into ? { into } : {}) });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(await bodyOf(first.body), data);
    const second = await http1.request({
      method: 'GET',
      path: '/b',
      headers: {},
      signal: AbortSignal.timeout(1500),
    });
    assert.deepEqual(await bodyOf(second.body), data);
  }
});
