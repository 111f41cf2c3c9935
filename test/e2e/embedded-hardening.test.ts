/**
 * Embedded mode against a careless or hostile local user: the real daemon, workers and FUSE mount,
 * an nginx origin, the CLI as a user runs it, and another user (uid 65534 through `setpriv`)
 * trying the workers' endpoints and the state files.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const PASSWORD = 'pw-hardening-4711';
/** Written in a mount point's URL, which is stored as written but never shown or logged. */
const URL_PASSWORD = 'url-pw-0815';
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
/** A namespace of its own, so that tier directories in /dev/shm do not meet other tests'. */
const NAMESPACE = 'hardening';

let home = '';
let mountRoot = '';
let nginx: NginxServer;

async function tide(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(root, 'src', 'cli', 'main.ts'), ...args], {
      env: { ...process.env, TIDE_HOME: home, TIDE_MOUNT_ROOT: mountRoot },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function manifest(name: string, text: string): Promise<string> {
  // Beside TIDE_HOME, not in it: these files are the test's, written with its umask.
  const path = join(home, '..', name);
  await writeFile(path, `apiVersion: data.fluid.io/v1alpha1\n${text}`);
  return path;
}

/** A runtime of one worker with a small memory tier, as a manifest's YAML after `apiVersion`. */
function memoryRuntime(name: string): string {
  return (
    `apiVersion: data.fluid.io/v1alpha1\nkind: TideRuntime\nmetadata: {name: ${name}, namespace: hardening}\n` +
    `spec:\n  replicas: 1\n  tieredstore:\n    levels: [{mediumtype: MEM, path: /dev/shm, quota: 64Mi}]\n`
  );
}

/** `tide apply -f` of a manifest written from `text`. */
async function applyText(
  name: string,
  text: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return tide('apply', '-f', await manifest(name, text));
}

async function statusOf(kind: string, name: string): Promise<Record<string, unknown> | undefined> {
  const result = await tide('get', kind, name, '-n', NAMESPACE, '-o', 'json');
  if (result.code !== 0) return undefined;
  return (JSON.parse(result.stdout) as { status?: Record<string, unknown> }).status;
}

function asNobody(command: string, ...args: string[]): { status: number | null; stdout: string } {
  const result = spawnSync('setpriv', [...NOBODY, command, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stdout: result.stdout };
}

/** Every file under a directory, without entering FUSE mounts (there are none after `tide stop`). */
async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await allFiles(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

describe('embedded mode against hostile local users and manifests', { timeout: 300_000 }, () => {
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'tide-hardening-'));
    // A home another tool made world-readable: the daemon must close it.
    await mkdir(join(home, 'state'), { mode: 0o755 });
    spawnSync('chmod', ['0755', home]);
    const origin = join(home, 'origin');
    await mkdir(join(origin, 'data'), { recursive: true });
    await writeFile(join(origin, 'data', 'a.txt'), 'alpha\n');
    nginx = await startNginx({ root: origin });
    home = join(home, 'state');
    mountRoot = join(home, 'mnt');
    const started = await tide('start');
    assert.equal(started.code, 0, started.stderr);
  });

  after(async () => {
    // Deleting the datasets removes their tiers (a stop keeps them for the next start).
    await tide('delete', 'dataset', 'web', '-n', NAMESPACE);
    await tide('stop');
    for (const line of readFileLines('/proc/mounts'))
      if (line.split(' ')[1]?.startsWith(mountRoot) === true)
        spawnSync('umount', ['-l', line.split(' ')[1] ?? '']);
    await nginx.stop();
    await rm(join(home, '..'), { recursive: true, force: true });
  });

  it('binds a dataset whose workers refuse another user without the token and show /metrics alone', async () => {
    const applied = await applyText(
      'web.yaml',
      `kind: Dataset\nmetadata: {name: web, namespace: hardening}\nspec:\n  mounts: [{mountPoint: "${nginx.url.replace('http://', `http://reader:${URL_PASSWORD}@`)}data/"}]\n---\n` +
        `${memoryRuntime('web')}---\n` +
        `apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: hardening}\nstringData: {password: ${PASSWORD}}\n`,
    );
    assert.equal(applied.code, 0, applied.stderr);
    await until('web Bound', async () =>
      (await statusOf('dataset', 'web'))?.['phase'] === 'Bound' ? true : undefined,
    );
    const members = JSON.parse(
      await readFile(join(home, 'run', NAMESPACE, 'web', 'members.json'), 'utf8'),
    ) as {
      workers: { url: string }[];
    };
    const url = members.workers[0]?.url ?? '';
    assert.notEqual(url, '');
    assert.equal(
      asNobody('cat', join(home, 'run', NAMESPACE, 'web', 'token')).status,
      1,
      'the token is owner-only',
    );
    for (const path of [
      '/v1/stats?files=1',
      '/v1/blocks?dataset=default%2Fweb&mount=x&path=a.txt&version=v&index=0',
    ]) {
      const answer = asNobody('curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `${url}${path}`);
      assert.equal(answer.stdout, '401', `GET ${path} without a token`);
    }
    const wrong = asNobody(
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-X',
      'POST',
      '-H',
      'Authorization: Bearer guess',
      `${url}/v1/blocks/forget`,
    );
    assert.equal(wrong.stdout, '401', 'POST /v1/blocks/forget with a wrong token');
    for (const shown of [
      await tide('get', 'dataset', 'web', '-n', NAMESPACE, '-o', 'yaml'),
      await tide('get', 'dataset', 'web', '-n', NAMESPACE, '-o', 'json'),
      await tide('describe', 'dataset', 'web', '-n', NAMESPACE),
    ]) {
      assert.equal(shown.code, 0, shown.stderr);
      assert.ok(!shown.stdout.includes(URL_PASSWORD), `the URL's password is shown:\n${shown.stdout}`);
      assert.match(shown.stdout, /http:\/\/\[REDACTED\]@127\.0\.0\.1/);
    }
    const metrics = asNobody('curl', '-s', `${url}/metrics`);
    assert.equal(metrics.status, 0);
    assert.match(metrics.stdout, /tide_cache_capacity_bytes/);
    assert.ok(!metrics.stdout.includes('a.txt'), 'metrics name no file');
  });

  it('refuses a quota larger than its file system and allow_other, naming file and field, and applies nothing', async () => {
    const huge = await manifest(
      'huge.yaml',
      'kind: TideRuntime\nmetadata: {name: huge, namespace: hardening}\nspec:\n  tieredstore:\n    levels: [{mediumtype: SSD, path: /var/tmp/tide-huge, quota: 1Ei}]\n',
    );
    const refused = await tide('apply', '-f', huge);
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      new RegExp(
        `^tide: ${huge}: document 1 \\(TideRuntime "huge"\\): /spec/tieredstore/levels/0/quota: \\S+ MiB does not fit in the file system of /var/tmp/tide-huge`,
      ),
    );
    const other = await manifest(
      'other.yaml',
      'kind: TideRuntime\nmetadata: {name: other, namespace: hardening}\nspec:\n  fuse: {args: ["-oallow_other"]}\n',
    );
    const refusedOther = await tide('apply', '-f', other);
    assert.equal(refusedOther.code, 2);
    assert.match(
      refusedOther.stderr,
      new RegExp(
        `^tide: ${other}: document 1 \\(TideRuntime "other"\\): /spec/fuse/args: allow_other is refused in embedded mode`,
      ),
    );
    assert.equal((await tide('get', 'tideruntime', 'huge', '-n', NAMESPACE)).code, 3, 'nothing was applied');
    assert.equal((await tide('get', 'tideruntime', 'other', '-n', NAMESPACE)).code, 3, 'nothing was applied');
  });

  it('refuses a request body over the limit from its length, before reading it', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const outgoing = request(
        {
          socketPath: join(home, 'tide.sock'),
          path: '/v1/apply',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': String(64 * 1024 * 1024) },
        },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      outgoing.on('error', reject);
      outgoing.write('{"objects": [');
    });
    assert.equal(status, 413);
  });

  it('shows a worker that cannot start in the runtime status and conditions, not Ready', async () => {
    // A tier "directory" that is a file: the worker cannot create its tier in it.
    const notADirectory = join(home, '..', 'not-a-directory');
    await writeFile(notADirectory, '');
    const applied = await applyText(
      'broken.yaml',
      `kind: Dataset\nmetadata: {name: broken, namespace: hardening}\nspec:\n  mounts: [{mountPoint: "${nginx.url}data/"}]\n---\n` +
        `apiVersion: data.fluid.io/v1alpha1\nkind: TideRuntime\nmetadata: {name: broken, namespace: hardening}\nspec:\n` +
        `  tieredstore:\n    levels: [{mediumtype: SSD, path: ${notADirectory}, quota: 64Mi}]\n`,
    );
    assert.equal(applied.code, 0, applied.stderr);
    const status = await until(
      'the worker failure in the runtime status',
      async () => {
        const current = await statusOf('tideruntime', 'broken');
        return typeof current?.['workerReason'] === 'string' && current['workerReason'] !== ''
          ? current
          : undefined;
      },
      90_000,
    );
    assert.equal(status['workerPhase'], 'NotReady');
    assert.match(String(status['workerReason']), /worker-0 exited with code \d/);
    const conditions = status['conditions'] as { type: string; status: string; message: string }[];
    const ready = conditions.find((condition) => condition.type === 'Ready');
    assert.equal(ready?.status, 'False');
    assert.match(ready.message, /0 of 1 workers are ready: .*exited/);
    assert.equal((await tide('delete', 'dataset', 'broken', '-n', NAMESPACE)).code, 0);
  });

  it('shows a symbolic link out of a local origin neither in a listing nor to a read', async () => {
    const origin = join(home, '..', 'local-origin');
    await mkdir(origin);
    await writeFile(join(origin, 'in.txt'), 'inside\n');
    await writeFile(join(home, '..', 'secret.txt'), 'outside\n');
    await symlink('../secret.txt', join(origin, 'out'));
    await symlink('in.txt', join(origin, 'also-in'));
    await symlink('.', join(origin, 'loop'));
    const applied = await applyText(
      'local.yaml',
      `kind: Dataset\nmetadata: {name: local, namespace: hardening}\nspec:\n  mounts: [{mountPoint: "local://${origin}"}]\n---\n` +
        memoryRuntime('local'),
    );
    assert.equal(applied.code, 0, applied.stderr);
    const status = await until('local Bound and synced', async () => {
      const current = await statusOf('dataset', 'local');
      return current?.['phase'] === 'Bound' && current['fileNum'] !== undefined ? current : undefined;
    });
    // in.txt, also-in and loop's in.txt once (the loop is not walked again).
    assert.equal(String(status['fileNum']), '2');
    const mounted = join(mountRoot, NAMESPACE, 'local');
    // Looked up before its directory is listed, the link is statted at the origin: refused.
    await assert.rejects(readFile(join(mounted, 'out'), 'utf8'), { code: 'EACCES' });
    assert.deepEqual((await readdir(mounted)).sort(), ['also-in', 'in.txt', 'loop']);
    // Once listed, the mount answers from the listing, where it is not.
    await assert.rejects(readFile(join(mounted, 'out'), 'utf8'), { code: 'ENOENT' });
    assert.equal(await readFile(join(mounted, 'also-in'), 'utf8'), 'inside\n');
    assert.equal(await readFile(join(mounted, 'loop', 'in.txt'), 'utf8'), 'inside\n');
    assert.equal((await tide('delete', 'dataset', 'local', '-n', NAMESPACE)).code, 0);
  });

  it('leaves nothing readable by others under TIDE_HOME and no Secret value in any state file', async () => {
    assert.equal((await tide('delete', 'secret', 'creds', '-n', NAMESPACE)).code, 0);
    assert.equal((await tide('stop')).code, 0);
    const found = spawnSync('find', [home, '-perm', '-o+r'], { encoding: 'utf8' });
    assert.equal(found.stdout, '', 'find $TIDE_HOME -perm -o+r');
    assert.equal(((await stat(home)).mode & 0o777).toString(8), '700');
    const log = await readFile(join(home, 'logs', 'daemon.log'), 'utf8');
    assert.match(log, /TIDE_HOME was open to other users/);
    for (const file of (await allFiles(home)).filter((path) => path.endsWith('.log'))) {
      assert.ok(!(await readFile(file, 'utf8')).includes(URL_PASSWORD), `${file} holds the URL's password`);
    }
    const encoded = Buffer.from(PASSWORD).toString('base64');
    for (const file of await allFiles(home)) {
      const text = await readFile(file, 'latin1');
      assert.ok(!text.includes(PASSWORD) && !text.includes(encoded), `${file} holds the Secret's value`);
    }
    assert.equal((await tide('start')).code, 0);
  });
});

function readFileLines(path: string): string[] {
  return spawnSync('cat', [path], { encoding: 'utf8' }).stdout.split('\n');
}
