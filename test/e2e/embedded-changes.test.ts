/**
 * Embedded mode: changing a running dataset without recreating it — scaling workers while a
 * reader reads, adding a mount, a DataLoad larger than the cache — on a local origin.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
let home = '';
let mountRoot = '';
let origin = '';

async function tide(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [join(root, 'src', 'cli', 'main.ts'), ...args], {
    env: { ...process.env, TIDE_HOME: home, TIDE_MOUNT_ROOT: mountRoot },
    timeout: 180_000,
  });
  return stdout;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Events of `tide get KIND NAME -o json --watch` until one's status satisfies `done`. */
async function watchUntil(
  what: readonly [string, string],
  done: (status: Status) => boolean,
  timeoutMs = 60_000,
): Promise<{ type: string; status: Status }[]> {
  const child = spawn(
    process.execPath,
    [join(root, 'src', 'cli', 'main.ts'), 'get', ...what, '-o', 'json', '--watch'],
    {
      env: { ...process.env, TIDE_HOME: home, TIDE_MOUNT_ROOT: mountRoot },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const events: { type: string; status: Status }[] = [];
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      const event = JSON.parse(line) as { type: string; object: { status?: Status } };
      events.push({ type: event.type, status: event.object.status ?? {} });
      if (done(event.object.status ?? {})) return events;
    }
    throw new Error(`tide get --watch ended before the condition held (${String(events.length)} events)`);
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
  }
}

interface Status {
  phase?: string;
  progress?: { filesDone?: number; filesTotal?: number; bytesDone?: number };
  workerNumberReady?: number;
  conditions?: { type: string; message: string }[];
}

async function status(kind: string, name: string): Promise<Status> {
  return (JSON.parse(await tide('get', kind, name, '-o', 'json')) as { status?: Status }).status ?? {};
}

async function manifest(name: string, text: string): Promise<string> {
  const path = join(home, name);
  await writeFile(path, text);
  return path;
}

function datasetYaml(mounts: string[]): string {
  const list = mounts
    .map((mount) => `    - {mountPoint: "local://${join(origin, mount)}", name: ${mount}}`)
    .join('\n');
  return `apiVersion: data.fluid.io/v1alpha1\nkind: Dataset\nmetadata: {name: live}\nspec:\n  mounts:\n${list}\n`;
}

function runtimeYaml(replicas: number, quota = '256Mi'): string {
  return `apiVersion: data.fluid.io/v1alpha1\nkind: TideRuntime\nmetadata: {name: live}\nspec:\n  replicas: ${replicas}\n  worker: {blockSize: 256Ki}\n  tieredstore:\n    levels: [{mediumtype: SSD, path: ${join(home, 'cache')}, quota: ${quota}}]\n`;
}

function digest(path: string): string {
  return createHash('sha256')
    .update(spawnSync('cat', [path], { maxBuffer: 1 << 28 }).stdout)
    .digest('hex');
}

describe('embedded mode: changes to a running dataset', { timeout: 600_000 }, () => {
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'tide-changes-'));
    mountRoot = join(home, 'mnt');
    origin = join(home, 'origin');
    for (const mount of ['alpha', 'beta']) {
      await mkdir(join(origin, mount), { recursive: true });
      for (let index = 0; index < 4; index += 1) {
        const data = Buffer.alloc(3_000_000 + index, `${mount}-${index}`);
        await writeFile(join(origin, mount, `part-${index}.bin`), data);
      }
    }
    await tide('start');
    await tide('apply', '-f', await manifest('live.yaml', `${datasetYaml(['alpha'])}---\n${runtimeYaml(1)}`));
    await until('live Bound', async () =>
      (await status('dataset', 'live')).phase === 'Bound' ? true : undefined,
    );
  });

  after(async () => {
    await tide('stop').catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  });

  it('scales workers up and down while a reader reads, without a read error', async () => {
    const file = join(mountRoot, 'default', 'live', 'alpha', 'part-1.bin');
    const expected = digest(join(origin, 'alpha', 'part-1.bin'));
    let reading = true;
    let reads = 0;
    const reader = (async () => {
      while (reading) {
        spawnSync('sh', ['-c', 'echo 1 > /proc/sys/vm/drop_caches']);
        assert.equal(digest(file), expected, 'a read during scaling returned wrong bytes');
        reads += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    await tide('scale', 'tideruntime', 'live', '--replicas', '3');
    await until('3 workers ready', async () =>
      (await status('tideruntime', 'live')).workerNumberReady === 3 ? true : undefined,
    );
    await tide('scale', 'tideruntime', 'live', '--replicas', '1');
    await until('1 worker ready', async () =>
      (await status('tideruntime', 'live')).workerNumberReady === 1 ? true : undefined,
    );
    reading = false;
    await reader;
    assert.ok(reads >= 3, `the reader read ${reads} times`);
    const workers = spawnSync('pgrep', ['-f', `${home}/run/default/live/worker-`], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n');
    assert.equal(workers.filter((line) => line !== '').length, 1, 'scaled-in workers are stopped');
  });

  it('adds a mount to the running dataset without recreating it', async () => {
    await tide('apply', '-f', await manifest('live.yaml', datasetYaml(['alpha', 'beta'])));
    const mounted = join(mountRoot, 'default', 'live');
    await until('beta visible through the mount', async () =>
      (await readdir(mounted)).includes('beta') ? true : undefined,
    );
    assert.equal(digest(join(mounted, 'beta', 'part-2.bin')), digest(join(origin, 'beta', 'part-2.bin')));
    assert.deepEqual((await readdir(mounted)).sort(), ['alpha', 'beta']);
    assert.equal((await status('dataset', 'live')).phase, 'Bound');
  });

  it('a cron DataLoad brings a file changed at the origin to the mount; runAfter and TTL hold', async () => {
    const mounted = join(mountRoot, 'default', 'live', 'beta', 'part-3.bin');
    assert.equal(digest(mounted), digest(join(origin, 'beta', 'part-3.bin')));
    await writeFile(join(origin, 'beta', 'part-3.bin'), Buffer.alloc(1_000_000, 'changed'));
    await tide(
      'apply',
      '-f',
      await manifest(
        'cron.yaml',
        `apiVersion: data.fluid.io/v1alpha1\nkind: DataLoad\nmetadata: {name: every-few-seconds}\nspec:\n  dataset: {name: live, namespace: default}\n  policy: Cron\n  schedule: "*/4 * * * * *"\n  loadMetadata: true\n  target: [{path: /beta}]\n---\napiVersion: data.fluid.io/v1alpha1\nkind: DataLoad\nmetadata: {name: after-cron}\nspec:\n  dataset: {name: live, namespace: default}\n  target: [{path: /beta/part-0.bin}]\n  runAfter: {kind: DataLoad, name: every-few-seconds}\n  ttlSecondsAfterFinished: 2\n`,
      ),
    );
    // Followed from now on: its TTL deletes it two seconds after it completes.
    const afterCronComplete = watchUntil(
      ['dataload', 'after-cron'],
      (current) => current.phase === 'Complete',
      90_000,
    );
    afterCronComplete.catch(() => undefined);
    await until('the changed bytes through the mount', () =>
      Promise.resolve(digest(mounted) === digest(join(origin, 'beta', 'part-3.bin')) ? true : undefined),
    );
    const cron = (
      JSON.parse(await tide('get', 'dataload', 'every-few-seconds', '-o', 'json')) as {
        status?: Record<string, unknown>;
      }
    ).status;
    assert.ok(typeof cron?.['lastSuccessfulTime'] === 'string', 'the cron load records its last success');
    // The run that loaded the new version dropped the blocks of the old one.
    await until('an event of the cron load releasing the old version', async () =>
      (await tide('describe', 'dataload', 'every-few-seconds')).includes('released') ? true : undefined,
    );
    // after-cron must really run (after the cron load) before its TTL deletes it.
    await afterCronComplete;
    await until('after-cron deleted after its TTL', async () => {
      const list = await tide('get', 'dataload');
      return list.includes('after-cron') ? undefined : true;
    });
    await tide('delete', 'dataload', 'every-few-seconds');
  });

  it('a DataLoad interrupted by kill -9 of the daemon runs again after tide start, counting each file once', async () => {
    await tide(
      'apply',
      '-f',
      await manifest(
        'slow-load.yaml',
        `apiVersion: data.fluid.io/v1alpha1\nkind: DataLoad\nmetadata: {name: slow}\nspec:\n  dataset: {name: live, namespace: default}\n  target: [{path: /alpha}]\n  options: {bandwidth: 2Mi}\n`,
      ),
    );
    // Followed live, as a user would with `tide get dataload slow --watch`.
    const seen = await watchUntil(
      ['dataload', 'slow'],
      (current) => current.phase === 'Executing' && (current.progress?.filesDone ?? 0) >= 1,
    );
    assert.equal(seen[0]?.type, 'ADDED', 'the watch starts with the load as it is');
    const pid = Number((await readFile(join(home, 'tide.pid'), 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    await until('the daemon gone', () => {
      try {
        process.kill(pid, 0);
        return Promise.resolve(undefined);
      } catch {
        return Promise.resolve(true);
      }
    });
    await tide('start');
    const done = await until('slow Complete after the restart', async () => {
      const current = await status('dataload', 'slow');
      return current.phase === 'Complete' ? current : undefined;
    });
    const alphaBytes = [0, 1, 2, 3].reduce((sum, index) => sum + 3_000_000 + index, 0);
    const progress = done.progress ?? {};
    assert.equal(progress.filesDone, 4);
    assert.equal(progress.filesTotal, 4);
    assert.equal(progress.bytesDone, alphaBytes);
    assert.equal(
      digest(join(mountRoot, 'default', 'live', 'alpha', 'part-2.bin')),
      digest(join(origin, 'alpha', 'part-2.bin')),
    );
  });

  it('fails a DataLoad whose targets do not fit the cache, saying so', async () => {
    await tide('apply', '-f', await manifest('small.yaml', runtimeYaml(1, '4Mi')));
    await until('the smaller quota applied', async () => {
      const stats = JSON.parse(await tide('get', 'dataset', 'live', '-o', 'json')) as {
        status?: { cacheStates?: Record<string, string> };
      };
      return stats.status?.cacheStates?.['cacheCapacity'] === '4.00MiB' ? true : undefined;
    });
    await tide(
      'apply',
      '-f',
      await manifest(
        'big-load.yaml',
        `apiVersion: data.fluid.io/v1alpha1\nkind: DataLoad\nmetadata: {name: too-big}\nspec:\n  dataset: {name: live, namespace: default}\n  target: [{path: /alpha}]\n`,
      ),
    );
    const failed = await until('too-big Failed', async () => {
      const current = await status('dataload', 'too-big');
      return current.phase === 'Failed' ? current : undefined;
    });
    assert.match(failed.conditions?.[0]?.message ?? '', /need more than the cache holds/);
    const log = await readFile(join(home, 'logs', 'daemon.log'), 'utf8');
    assert.ok(log.length > 0);
  });
});
