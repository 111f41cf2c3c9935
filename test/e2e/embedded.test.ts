/**
 * Embedded mode end to end: the real daemon (`tide start`), real workers and FUSE mounts, real
 * origins (nginx for the web mounts, an S3-compatible server for the OSS mount of seed 004), driven
 * through the CLI exactly as a user would, with the manifests of examples/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { startS3Server, type S3Server } from '../helpers/s3-server.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const SECRET = 'tide-test-secret-key';

interface Env {
  home: string;
  mountRoot: string;
  origin: string;
  nginx: NginxServer;
  s3: S3Server;
}

let env: Env;

async function tide(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [join(root, 'src', 'cli', 'main.ts'), ...args], {
    env: { ...process.env, TIDE_HOME: env.home, TIDE_MOUNT_ROOT: env.mountRoot },
    timeout: 180_000,
  });
  return stdout;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface StatusView {
  phase?: string;
  fileNum?: string;
  ufsTotal?: string;
  workerNumberReady?: number;
  cacheStates?: Record<string, string>;
  conditions?: { type: string; reason: string; message: string }[];
}

async function getJson(kind: string, name: string): Promise<{ status?: StatusView }> {
  return JSON.parse(await tide('get', kind, name, '-o', 'json')) as { status?: StatusView };
}

async function phaseOf(kind: string, name: string): Promise<string | undefined> {
  return (await getJson(kind, name)).status?.phase;
}

/** Writes an example with its endpoints pointed at this run's servers, keeping only some kinds. */
async function example(file: string, keep: (kind: string) => boolean): Promise<string> {
  const text = (await readFile(join(root, 'examples', file), 'utf8'))
    .replaceAll('127.0.0.1:18080', new URL(env.nginx.url).host)
    .replaceAll('http://127.0.0.1:18333', env.s3.endpoint);
  const documents = text.split(/^---$/m).filter((document) => {
    const kind = /^kind: (\S+)/m.exec(document)?.[1];
    return kind !== undefined && keep(kind);
  });
  const path = join(env.home, `applied-${file}`);
  await writeFile(path, documents.join('\n---\n'));
  return path;
}

function sha256(path: string): string {
  return createHash('sha256')
    .update(spawnSync('cat', [path], { maxBuffer: 1 << 30 }).stdout)
    .digest('hex');
}

/** Files of a tree, relative paths, sorted. */
async function files(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const relative = join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await files(dir, relative)));
    else out.push(relative);
  }
  return out.sort();
}

async function assertSameTree(origin: string, mounted: string): Promise<void> {
  const expected = await files(origin);
  assert.deepEqual(await files(mounted), expected);
  for (const file of expected) assert.equal(sha256(join(mounted, file)), sha256(join(origin, file)), file);
}

function fuseMounts(): string[] {
  return spawnSync('awk', ['$3 ~ /^fuse/ {print $2}', '/proc/mounts'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((line) => line.startsWith(env.mountRoot));
}

function tideProcesses(): string[] {
  return spawnSync('pgrep', ['-af', `worker-main|mount-main|server-main|daemon-main`], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((line) => line.includes(env.home) && !line.includes('pgrep'));
}

async function generate(dir: string, count: number, sizeBytes: number, seed: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  let total = 0;
  for (let index = 0; index < count; index += 1) {
    const size = sizeBytes + index * 997;
    const block = createHash('sha256').update(`${seed}-${index}`).digest();
    const data = Buffer.alloc(size);
    for (let offset = 0; offset < size; offset += block.length) block.copy(data, offset);
    const sub = index % 3 === 0 ? 'lib' : index % 3 === 1 ? 'conf' : '';
    await mkdir(join(dir, sub), { recursive: true });
    await writeFile(join(dir, sub, `file-${index}.bin`), data);
    total += size;
  }
  return total;
}

describe('embedded mode end to end', { timeout: 900_000 }, () => {
  before(async () => {
    const home = await mkdtemp(join(tmpdir(), 'tide-e2e-'));
    const origin = join(home, 'origin');
    const nginx = await startNginx({ root: origin });
    const s3 = await startS3Server({ buckets: ['tide-demo'] });
    env = { home, mountRoot: join(home, 'mnt'), origin, nginx, s3 };
    await tide('start');
  });

  after(async () => {
    await tide('stop').catch(() => undefined);
    for (const mount of fuseMounts()) spawnSync('umount', ['-l', mount]);
    await env.nginx.stop();
    await env.s3.stop();
    await rm(env.home, { recursive: true, force: true });
  });

  it('seed 003: a web UFS dataset binds, reads byte for byte and is fully cached after a DataLoad', async () => {
    const origin = join(env.origin, 'apache', 'hbase', 'stable');
    const total = await generate(origin, 12, 1_500_000, 'hbase');
    await tide('apply', '-f', await example('seed-003-hbase-goosefs.yaml', (kind) => kind !== 'DataLoad'));
    await until('hbase Bound', async () =>
      (await phaseOf('dataset', 'hbase')) === 'Bound' ? true : undefined,
    );
    const mount = join(env.mountRoot, 'default', 'hbase');
    await assertSameTree(origin, join(mount, 'hbase'));
    const status = await until('ufsTotal computed', async () => {
      const current = (await getJson('dataset', 'hbase')).status ?? {};
      return current.fileNum === '12' ? current : undefined;
    });
    assert.equal(status.ufsTotal, `${(total / 2 ** 20).toFixed(2)}MiB`);
    const runtime = (await getJson('goosefsruntime', 'hbase')).status ?? {};
    assert.equal(runtime.workerNumberReady, 3);
    assert.ok(
      (runtime.conditions ?? []).some(
        (condition) => condition.type === 'CompatibilityMode' && condition.message.includes('GooseFSRuntime'),
      ),
    );
    await tide('apply', '-f', await example('seed-003-hbase-goosefs.yaml', (kind) => kind === 'DataLoad'));
    await until('DataLoad Complete', async () =>
      (await phaseOf('dataload', 'hbase-dataload')) === 'Complete' ? true : undefined,
    );
    const cached = await until('100% cached', async () => {
      const current = (await getJson('dataset', 'hbase')).status ?? {};
      return current.cacheStates?.['cachedPercentage'] === '100.0%' ? current : undefined;
    });
    assert.equal(cached.cacheStates?.['cached'], status.ufsTotal);
    const table = await tide('get', 'dataset', 'hbase');
    assert.match(table, /NAME\s+UFS TOTAL SIZE\s+CACHED\s+CACHE CAPACITY\s+CACHED PERCENTAGE\s+PHASE\s+AGE/);
    assert.match(table, /hbase\s+\S+MiB\s+\S+MiB\s+\S+GiB\s+100\.0%\s+Bound/);
  });

  it('seed 004: an OSS dataset with credentials from a Secret binds, and no secret reaches a log or the API', async () => {
    const bucketDir = join(env.s3.dataDir, 'tide-demo', 'hbase');
    await generate(bucketDir, 6, 300_000, 'oss');
    await writeFile(join(bucketDir, 'RELEASENOTES.md'), 'release 1\n');
    await tide('apply', '-f', await example('seed-004-cron-oss.yaml', (kind) => kind !== 'DataLoad'));
    await until('demo Bound', async () =>
      (await phaseOf('dataset', 'demo')) === 'Bound' ? true : undefined,
    );
    const mount = join(env.mountRoot, 'default', 'demo');
    await assertSameTree(bucketDir, mount);
    const secret = await tide('get', 'secret', 'mysecret', '-o', 'json');
    assert.ok(!secret.includes(SECRET), 'the API never returns secret values');
    const describe = await tide('describe', 'dataset', 'demo');
    assert.ok(!describe.includes(SECRET));
    const logs = await logFiles(env.home);
    assert.ok(logs.length >= 3, `expected daemon, worker and FUSE logs, found ${logs.join(', ')}`);
    for (const log of logs)
      assert.ok(!(await readFile(log, 'utf8')).includes(SECRET), `${log} contains the secret`);
  });

  it('a file changed at the origin is seen through the mount after the next load', async () => {
    const mounted = join(env.mountRoot, 'default', 'demo', 'RELEASENOTES.md');
    assert.equal(await readFile(mounted, 'utf8'), 'release 1\n');
    await env.s3.putObject('tide-demo', 'hbase/RELEASENOTES.md', 'release 1\nrelease 2\n');
    await tide(
      'apply',
      '-f',
      await writeManifest(
        'reload.yaml',
        `apiVersion: data.fluid.io/v1alpha1\nkind: DataLoad\nmetadata: {name: reload}\nspec:\n  dataset: {name: demo, namespace: default}\n  loadMetadata: true\n  target: [{path: /}]\n`,
      ),
    );
    await until('reload Complete', async () =>
      (await phaseOf('dataload', 'reload')) === 'Complete' ? true : undefined,
    );
    await until('the new content through the mount', async () =>
      (await readFile(mounted, 'utf8')) === 'release 1\nrelease 2\n' ? true : undefined,
    );
  });

  it('survives tide stop / tide start and a kill -9 of the daemon', async () => {
    await tide('stop');
    assert.deepEqual(fuseMounts(), [], 'tide stop unmounts everything');
    assert.deepEqual(tideProcesses(), [], 'tide stop stops every process');
    await tide('start');
    await until('hbase mounted again with the same bytes', async () => {
      await assertSameTree(
        join(env.origin, 'apache', 'hbase', 'stable'),
        join(env.mountRoot, 'default', 'hbase', 'hbase'),
      );
      return (await phaseOf('dataset', 'hbase')) === 'Bound' ? true : undefined;
    });
    const pid = Number((await readFile(join(env.home, 'tide.pid'), 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    await until('the daemon gone', () => Promise.resolve(existsSync(`/proc/${pid}`) ? undefined : true));
    // The mounts and workers outlive the daemon.
    await assertSameTree(
      join(env.origin, 'apache', 'hbase', 'stable'),
      join(env.mountRoot, 'default', 'hbase', 'hbase'),
    );
    await tide('start');
    await until('demo Bound after the restart', async () =>
      (await phaseOf('dataset', 'demo')) === 'Bound' ? true : undefined,
    );
  });

  it('an unreachable origin fails the dataset with a readable reason and starts nothing', async () => {
    await tide(
      'apply',
      '-f',
      await writeManifest(
        'down.yaml',
        `apiVersion: data.fluid.io/v1alpha1\nkind: Dataset\nmetadata: {name: down}\nspec:\n  mounts: [{mountPoint: "http://127.0.0.1:9/nothing/", name: x}]\n---\napiVersion: data.fluid.io/v1alpha1\nkind: TideRuntime\nmetadata: {name: down}\nspec: {replicas: 1}\n`,
      ),
    );
    const status = await until('down Failed', async () => {
      const current = (await getJson('dataset', 'down')).status ?? {};
      return current.phase === 'Failed' ? current : undefined;
    });
    const ready = (status.conditions ?? []).find((condition) => condition.type === 'Ready');
    assert.equal(ready?.reason, 'OriginUnreachable');
    assert.match(ready.message, /127\.0\.0\.1:9/);
    assert.ok(
      !tideProcesses().some((line) => line.includes('default/down')),
      'no worker for a failed dataset',
    );
    await tide('delete', 'dataset', 'down');
  });

  it('deleting the datasets leaves no mount, process or cache file', async () => {
    await tide('delete', 'dataset', 'hbase');
    await tide('delete', 'dataset', 'demo');
    assert.deepEqual(fuseMounts(), []);
    assert.deepEqual(tideProcesses(), []);
    const shm = (await readdir('/dev/shm')).filter((name) => name.startsWith('tide-default-'));
    assert.deepEqual(shm, []);
    assert.equal(await tide('get', 'dataset'), 'No datasets found in namespace default.\n');
  });
});

async function writeManifest(name: string, text: string): Promise<string> {
  const path = join(env.home, name);
  await writeFile(path, text);
  return path;
}

async function logFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.log')) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}
