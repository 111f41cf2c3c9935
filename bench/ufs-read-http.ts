/**
 * Web connector read benchmark (not a test): one file read whole in parallel ranged GETs through
 * the web UFS connector from nginx, against the same ranges fetched by `curl --parallel`. The
 * connector runs twice per round, once per transport for its `http:` origin: Http1Client (the
 * default; bodies read into caller-owned buffers) and undici (a fresh 64 KiB buffer per socket
 * read). connector ÷ curl is the cost of the Node path; the CPU seconds per GiB of the connector's
 * process show the transport's share of it.
 *
 *   node bench/ufs-read-http.ts [--size-mib 1024] [--block-mib 8] [--concurrency 16] [--rounds 3] [--json out.json]
 *
 * The file is written once and read once unmeasured, so that every client reads from the page cache
 * and the numbers compare the clients, not the disk. Rounds alternate curl and the two transports;
 * medians are reported.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { silentLogger } from '../src/lib/index.ts';
import {
  DEFAULT_HTTP_TIMEOUTS,
  DEFAULT_RETRY_POLICY,
  HttpUfs,
  type UnderFileSystem,
} from '../src/ufs/index.ts';
import { startNginx } from '../test/helpers/nginx.ts';

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
const FILE = 'file.bin';

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

/** Reads every block, `concurrency` at a time; returns bytes per second and CPU seconds per GiB. */
async function readThroughConnector(
  ufs: UnderFileSystem,
  version: string,
): Promise<{ bytesPerSecond: number; cpuPerGiB: number }> {
  const queue = blocks();
  let total = 0;
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let block = queue.shift(); block !== undefined; block = queue.shift()) {
        for await (const chunk of await ufs.read(FILE, block, { version })) total += chunk.length;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  if (total !== sizeBytes) throw new Error(`connector read ${total} bytes, expected ${sizeBytes}`);
  return {
    bytesPerSecond: total / seconds,
    cpuPerGiB: ((cpu.user + cpu.system) / 1e6) * ((1024 * MiB) / sizeBytes),
  };
}

async function readThroughCurl(url: string, configPath: string): Promise<number> {
  const transfer = (range: { offset: number; length: number }) =>
    [
      `range = "${range.offset}-${range.offset + range.length - 1}"`,
      'output = "/dev/null"',
      'write-out = "%{size_download}\\n"',
      'fail',
      `url = "${url}"`,
    ].join('\n');
  await writeFile(configPath, blocks().map(transfer).join('\nnext\n'));
  const started = process.hrtime.bigint();
  const { code, stderr, stdout } = await run('curl', [
    '-sS',
    '--parallel',
    '--parallel-max',
    String(concurrency),
    '-K',
    configPath,
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

const work = await mkdtemp(join(tmpdir(), 'tide-bench-http-'));
await writeRandomFile(join(work, FILE), sizeBytes);
const nginx = await startNginx({ root: work });
try {
  const connector = (transport: 'http1' | 'undici'): HttpUfs =>
    new HttpUfs({
      mountPoint: nginx.url,
      logger: silentLogger(),
      retry: DEFAULT_RETRY_POLICY,
      timeouts: DEFAULT_HTTP_TIMEOUTS,
      transport,
    });
  const transports = { http1: connector('http1'), undici: connector('undici') };
  const { version } = await transports.http1.stat(FILE);
  const configPath = join(work, 'curl.conf');
  const url = `${nginx.url}${FILE}`;
  await readThroughCurl(url, configPath); // warm-up: page cache and connections
  for (const ufs of Object.values(transports)) await readThroughConnector(ufs, version);
  const curl: number[] = [];
  const measured = { http1: [] as number[], undici: [] as number[] };
  const cpu = { http1: [] as number[], undici: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    curl.push(await readThroughCurl(url, configPath));
    for (const name of ['http1', 'undici'] as const) {
      const result = await readThroughConnector(transports[name], version);
      measured[name].push(result.bytesPerSecond);
      cpu[name].push(result.cpuPerGiB);
    }
  }
  for (const ufs of Object.values(transports)) await ufs.close();
  const mbps = (value: number): number => Math.round(value / 1e6);
  const result = {
    sizeMiB: sizeBytes / MiB,
    blockMiB: blockBytes / MiB,
    concurrency,
    rounds,
    curlMBps: mbps(median(curl)),
    http1MBps: mbps(median(measured.http1)),
    undiciMBps: mbps(median(measured.undici)),
    http1ToCurl: Math.round((median(measured.http1) / median(curl)) * 1000) / 1000,
    undiciToCurl: Math.round((median(measured.undici) / median(curl)) * 1000) / 1000,
    http1CpuSecondsPerGiB: Math.round(median(cpu.http1) * 100) / 100,
    undiciCpuSecondsPerGiB: Math.round(median(cpu.undici) * 100) / 100,
    allCurlMBps: curl.map(mbps),
    allHttp1MBps: measured.http1.map(mbps),
    allUndiciMBps: measured.undici.map(mbps),
  };
  console.log(JSON.stringify(result, null, 2));
  if (values.json !== undefined) await writeFile(values.json, JSON.stringify(result, null, 2));
} finally {
  await nginx.stop();
  await rm(work, { recursive: true, force: true });
}
