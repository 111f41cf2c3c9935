/**
 * The demo's "remote" web origin: serves a directory over HTTP on 127.0.0.1 with directory index
 * pages, HEAD, byte ranges and ETags, and one bandwidth cap shared by all connections, like a far
 * object store or mirror (nginx's `limit_rate` caps each connection, not the total).
 *
 *   node scripts/demo-origin.ts <dir> <bytesPerSecond> <portFile>
 */
import { createReadStream } from 'node:fs';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import { join, normalize } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const [dir = '.', rateText = '20971520', portFile = ''] = process.argv.slice(2);
const bytesPerSecond = Number(rateText);
let available = bytesPerSecond / 10;
let lastRefillMs = Date.now();

/** Waits until `bytes` fit in the shared budget. */
async function spend(bytes: number): Promise<void> {
  for (;;) {
    const now = Date.now();
    available = Math.min(bytesPerSecond / 10, available + ((now - lastRefillMs) / 1000) * bytesPerSecond);
    lastRefillMs = now;
    if (available >= bytes) {
      available -= bytes;
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function throttle(): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      spend(chunk.length).then(
        () => {
          done(null, chunk);
        },
        (error: unknown) => {
          done(error as Error);
        },
      );
    },
  });
}

async function index(response: ServerResponse, path: string, urlPath: string): Promise<void> {
  const entries = await readdir(path, { withFileTypes: true });
  const links = entries
    .map((entry) => (entry.isDirectory() ? `${entry.name}/` : entry.name))
    .sort()
    .map((name) => `<a href="${encodeURI(name)}">${name}</a>`);
  response.writeHead(200, { 'content-type': 'text/html' });
  response.end(
    `<html><head><title>Index of ${urlPath}</title></head><body><pre><a href="../">../</a>\n${links.join('\n')}</pre></body></html>`,
  );
}

const server = createServer((request, response) => {
  void (async () => {
    const urlPath = decodeURIComponent(new URL(request.url ?? '/', 'http://origin').pathname);
    const path = join(dir, normalize(urlPath));
    try {
      const info = await stat(path);
      if (info.isDirectory()) {
        await index(response, path, urlPath);
        return;
      }
      const etag = `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
      const headers = { etag, 'last-modified': info.mtime.toUTCString(), 'accept-ranges': 'bytes' };
      const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
      const start = range === null ? 0 : Number(range[1]);
      const end =
        range === null || range[2] === '' ? info.size - 1 : Math.min(Number(range[2]), info.size - 1);
      if (range !== null && start >= info.size) {
        response.writeHead(416, { 'content-range': `bytes */${info.size}` });
        response.end();
        return;
      }
      response.writeHead(range === null ? 200 : 206, {
        ...headers,
        'content-length': String(end - start + 1),
        ...(range === null ? {} : { 'content-range': `bytes ${start}-${end}/${info.size}` }),
      });
      if (request.method === 'HEAD' || info.size === 0) {
        response.end();
        return;
      }
      await pipeline(createReadStream(path, { start, end }), throttle(), response);
    } catch {
      if (!response.headersSent) response.writeHead(404);
      response.end();
    }
  })();
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  void writeFile(portFile, String(port));
});
process.once('SIGTERM', () => {
  server.close();
  process.exit(0);
});
