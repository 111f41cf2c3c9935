/**
 * S3 connector read benchmark (not a test): one object read whole in parallel ranged GETs through
 * the S3 UFS connector, against the same ranges fetched by `curl` (SigV4, `--parallel`) from the
 * same server, and by the bare AWS SDK client (`GetObject` on an undici transport, no retry, resume
 * or version logic). connector ÷ curl is the cost of the whole Node path. The connector signs
 * GetObject itself and reads it through Http1Client (src/ufs/s3-get.ts), so connector ÷ SDK is what
 * leaving the SDK and undici's per-read buffers off the hot path gains.
 *
 *   node bench/ufs-read.ts [--size-mib 1024] [--block-mib 8] [--concurrency 16] [--rounds 3] [--json out.json]
 *
 * The server is versitygw on 127.0.0.1 (test/helpers/s3-server.ts) over a temporary directory; the
 * object is written once and read once unmeasured so that both clients read from the page cache and
 * the numbers compare the clients, not the disk. Rounds alternate curl and connector; the medians are
 * reported. Target: connector ≥ 0.9 × curl. The connector reads into a reused buffer per lane, as the
 * cache workers do (`connectorMBps`); `connectorChunksMBps` is the same read with the connector's
 * own chunks. The connector's process CPU per GiB is reported too: on two busy cores it, not the
 * network, bounds a Node client.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Agent } from 'undici';
import {
  createUnderFileSystem,
  DEFAULT_HTTP_TIMEOUTS,
  UndiciRequestHandler,
  type UnderFileSystem,
} from '../src/ufs/index.ts';

import { startS3Server } from '../test/helpers/s3-server.ts';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    'block-mib': { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const MiB = 1024 * 1024;
const sizeBytes = Number(values['size-mib']) * MiB;
const blockBytes = Number(values['block-mib']) * MiB;
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
const BUCKET = 'bench';
const KEY = 'data/object.bin';

async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const cipher = createCipheriv(
    'aes-256-ctr',
    createHash('sha256').update('bench').digest(),
    Buffer.alloc(16),
  );
  const zeros = Buffer.alloc(8 * MiB);
  const handle = await open(path, 'w');
  for (let written = 0; written < bytes; written += zeros.length) {
    await handle.write(cipher.update(zeros.subarray(0, Math.min(zeros.length, bytes - written))));
  }
  await handle.close();
}

function blocks(): Array<{ offset: number; length: number }> {
  const list = [];
  for (let offset = 0; offset < sizeBytes; offset += blockBytes) {
    list.push({ offset, length: Math.min(blockBytes, sizeBytes - offset) });
  }
  return list;
}

/**
 * Reads every block through the connector, `concurrency` at a time; returns bytes per second. With
 * `into`, each lane reads into one buffer of its own, reused for every block, as the cache workers
 * read into their pooled block buffers; without it the connector hands out chunks of its own.
 */
async function readThroughConnector(
  ufs: UnderFileSystem,
  version: string,
  mode: 'into' | 'chunks',
): Promise<number> {
  const queue = blocks();
  let total = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      const into = mode === 'into' ? Buffer.allocUnsafe(blockBytes) : undefined;
      for (let block = queue.shift(); block !== undefined; block = queue.shift()) {
        const options = into === undefined ? { version } : { version, into };
        for await (const chunk of await ufs.read('object.bin', block, options)) total += chunk.length;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (total !== sizeBytes) throw new Error(`connector read ${total} bytes, expected ${sizeBytes}`);
  return total / seconds;
}

/** The same ranges with the SDK alone, on the connector's transport. */
async function readThroughSdk(client: S3Client): Promise<number> {
  const queue = blocks();
  let total = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let block = queue.shift(); block !== undefined; block = queue.shift()) {
        const output = await client.send(
          new GetObjectCommand({
            Bucket: BUCKET,
            Key: KEY,
            Range: `bytes=${block.offset}-${block.offset + block.length - 1}`,
          }),
        );
        for await (const chunk of output.Body as AsyncIterable<Uint8Array>) total += chunk.length;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (total !== sizeBytes) throw new Error(`SDK read ${total} bytes, expected ${sizeBytes}`);
  return total / seconds;
}

/** The same ranges with curl: one process, `--parallel`, SigV4 by curl itself. */
async function readThroughCurl(options: {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  configPath: string;
}): Promise<number> {
  const url = `${options.endpoint}/${BUCKET}/${KEY}`;
  // A config file keeps the credentials out of the process list.
  const transfer = (range: { offset: number; length: number }) =>
    [
      `aws-sigv4 = "aws:amz:${options.region}:s3"`,
      `user = "${options.accessKeyId}:${options.secretAccessKey}"`,
      // S3 wants the payload hash header, which curl 7.88 does not add by itself.
      'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"',
      `range = "${range.offset}-${range.offset + range.length - 1}"`,
      'output = "/dev/null"',
      'write-out = "%{size_download}\\n"',
      'fail',
      `url = "${url}"`,
    ].join('\n');
  await writeFile(options.configPath, blocks().map(transfer).join('\nnext\n'));
  const started = process.hrtime.bigint();
  const { code, stderr, stdout } = await run('curl', [
    '-sS',
    '--parallel',
    '--parallel-max',
    String(concurrency),
    '-K',
    options.configPath,
  ]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`curl failed (${code}): ${stderr}`);
  const total = stdout
    .split('\n')
    .filter((line) => line !== '')
    .reduce((sum, line) => sum + Number(line), 0);
  if (total !== sizeBytes) throw new Error(`curl read ${total} bytes, expected ${sizeBytes}`);
  return total / seconds;
}

function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

const work = await mkdtemp(join(tmpdir(), 'tide-bench-ufs-'));
const server = await startS3Server({ buckets: [BUCKET], dataDir: join(work, 's3') });
try {
  const source = join(work, 'object.bin');
  await writeRandomFile(source, sizeBytes);
  await server.client.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: KEY,
      Body: createReadStream(source),
      ContentLength: sizeBytes,
    }),
  );
  await rm(source);
  const config = server.mountConfig(`s3://${BUCKET}/data`);
  const ufs = createUnderFileSystem(config);
  const { version } = await ufs.stat('object.bin');
  const curlOptions = { ...server, configPath: join(work, 'curl.conf') };
  const dispatcher = new Agent({ connections: 64 });
  const sdk = new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    maxAttempts: 1,
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestHandler: new UndiciRequestHandler(dispatcher, DEFAULT_HTTP_TIMEOUTS),
  });
  await readThroughCurl(curlOptions); // warm-up: page cache and connections
  await readThroughSdk(sdk);
  await readThroughConnector(ufs, version, 'into');
  const curl: number[] = [];
  const bare: number[] = [];
  const connector: number[] = [];
  const chunks: number[] = [];
  const cpuPerGiB: number[] = [];
  for (let round = 0; round < rounds; round++) {
    curl.push(await readThroughCurl(curlOptions));
    bare.push(await readThroughSdk(sdk));
    const cpuBefore = cpuSeconds();
    connector.push(await readThroughConnector(ufs, version, 'into'));
    cpuPerGiB.push(((cpuSeconds() - cpuBefore) * 1024 * MiB) / sizeBytes);
    chunks.push(await readThroughConnector(ufs, version, 'chunks'));
  }
  await ufs.close();
  sdk.destroy();
  await dispatcher.close();
  const result = {
    sizeMiB: sizeBytes / MiB,
    blockMiB: blockBytes / MiB,
    concurrency,
    rounds,
    curlMBps: Math.round(median(curl) / 1e6),
    sdkMBps: Math.round(median(bare) / 1e6),
    connectorMBps: Math.round(median(connector) / 1e6),
    connectorToCurl: Math.round((median(connector) / median(curl)) * 1000) / 1000,
    connectorToSdk: Math.round((median(connector) / median(bare)) * 1000) / 1000,
    connectorCpuSecondsPerGiB: Math.round(median(cpuPerGiB) * 100) / 100,
    connectorChunksMBps: Math.round(median(chunks) / 1e6),
    allCurlMBps: curl.map((value) => Math.round(value / 1e6)),
    allSdkMBps: bare.map((value) => Math.round(value / 1e6)),
    allConnectorMBps: connector.map((value) => Math.round(value / 1e6)),
    allConnectorChunksMBps: chunks.map((value) => Math.round(value / 1e6)),
  };
  console.log(JSON.stringify(result, null, 2));
  if (values.json !== undefined) await writeFile(values.json, JSON.stringify(result, null, 2));
} finally {
  await server.stop();
  await rm(work, { recursive: true, force: true });
}
