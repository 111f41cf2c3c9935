/**
 * images/build: the OCI layouts it writes are valid (skopeo and umoci read them), each image is
 * configured as the chart and the platform's manifests expect, the node images hold Node 24 that
 * runs and production dependencies only, and a second build of the same inputs gives the same
 * digests. Builds run once per input hash (test/helpers/images.ts); a cold run takes minutes.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { IMAGE_NAMES, ensureImages, type BuiltImages, type ImageName } from '../helpers/images.ts';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');
const NODE_VERSION = (
  JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
    devDependencies: Record<string, string>;
  }
).devDependencies['node'];
/** Images rebuilt to compare digests: all five (about 2 minutes with the Debian packages cached; images/README.md). */
const REBUILT: readonly ImageName[] = IMAGE_NAMES;

const skip = process.getuid?.() === 0 ? false : 'images/build needs root (mmdebstrap --mode=root, chroot)';

interface ImageConfig {
  config: { User?: string; Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string };
  rootfs: { diff_ids: string[] };
}
interface Manifest {
  schemaVersion: number;
  config: { mediaType: string; digest: string };
  layers: { mediaType: string; digest: string }[];
}

async function skopeo(...args: string[]): Promise<string> {
  return (await run('skopeo', args, { maxBuffer: 16 << 20 })).stdout;
}
async function configOf(archive: string): Promise<ImageConfig> {
  return JSON.parse(await skopeo('inspect', '--config', `oci-archive:${archive}`)) as ImageConfig;
}
async function manifestOf(archive: string): Promise<Manifest> {
  return JSON.parse(await skopeo('inspect', '--raw', `oci-archive:${archive}`)) as Manifest;
}
/** `images.txt` of a build directory: name → [reference, archive, manifest digest, SOURCE_DATE_EPOCH]. */
function listing(dir: string): Map<string, string[]> {
  const lines = readFileSync(join(dir, 'images.txt'), 'utf8').trim().split('\n');
  return new Map(lines.map((line) => line.split(' ')).map(([name = '', ...rest]) => [name, rest]));
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe('images/build', { skip }, () => {
  let built: BuiltImages;
  let work: string | undefined;
  /** Root file systems unpacked with umoci, by image. */
  const rootfs = new Map<ImageName, string>();

  before(async () => {
    built = await ensureImages();
    work = await mkdtemp(join(tmpdir(), 'tide-images-test-'));
  });
  after(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  async function unpack(name: ImageName): Promise<string> {
    const known = rootfs.get(name);
    if (known !== undefined) return known;
    const image = built.images[name];
    assert.ok(work !== undefined);
    const layout = join(work, `${name}-layout`);
    const bundle = join(work, `${name}-bundle`);
    await run('mkdir', ['-p', layout]);
    await run('tar', ['-xf', image.archive, '-C', layout]);
    const tag = image.ref.slice(image.ref.lastIndexOf(':') + 1);
    await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
    rootfs.set(name, join(bundle, 'rootfs'));
    return join(bundle, 'rootfs');
  }
  /** Runs a command in an unpacked image as `user` in `cwd`, like the container would. */
  async function inImage(name: ImageName, user: string, cwd: string, ...command: string[]): Promise<string> {
    const root = await unpack(name);
    const inner = `cd ${cwd} && exec ${command.map((arg) => `'${arg}'`).join(' ')}`;
    const { stdout } = await run('chroot', [`--userspec=${user}`, root, '/bin/sh', '-c', inner], {
      env: { PATH: '/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', NODE_ENV: 'production' },
      timeout: 60_000,
    });
    return stdout;
  }

  it('writes one OCI layout tar per image, named as the chart and the tests expect', async () => {
    const refs = Object.values(built.images).map((image) => image.ref);
    assert.deepEqual(refs.sort(), [
      'tide.local/pause:3',
      'tide.local/tide-controller:dev',
      'tide.local/tide-loader:dev',
      'tide.local/tide-test:dev',
      'tide.local/tide-worker:dev',
    ]);
    for (const [name, image] of Object.entries(built.images)) {
      assert.equal(image.archive, join(built.dir, `${image.ref.split('/')[1]?.split(':')[0]}.tar`), name);
      const manifest = await manifestOf(image.archive);
      assert.equal(manifest.schemaVersion, 2, name);
      assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json', name);
      assert.ok(manifest.layers.length > 0, name);
      for (const layer of manifest.layers) {
        assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip', name);
      }
      assert.equal(
        listing(built.dir).get(name)?.[2],
        (await skopeo('inspect', '--format', '{{.Digest}}', `oci-archive:${image.archive}`)).trim(),
      );
    }
  });

  it('configures entrypoint, user, working directory and environment per image', async () => {
    const nodeEnv = ['NODE_ENV=production', 'NODE_COMPILE_CACHE=/tmp/tide-node-compile-cache'];
    const controller = await configOf(built.images.controller.archive);
    assert.deepEqual(controller.config.Entrypoint, ['node', 'src/operator/main.ts']);
    assert.equal(controller.config.User, '65532:65532');
    assert.equal(controller.config.WorkingDir, '/opt/tide');
    for (const variable of nodeEnv) assert.ok(controller.config.Env?.includes(variable), variable);

    const loader = await configOf(built.images.loader.archive);
    assert.deepEqual(loader.config.Entrypoint, ['node', 'src/operator/loader-main.ts']);
    assert.equal(loader.config.User, '65532:65532');
    assert.equal(loader.config.WorkingDir, '/opt/tide');

    const worker = await configOf(built.images.worker.archive);
    assert.equal(worker.config.User, '0:0');
    assert.equal(worker.config.WorkingDir, '/opt/tide');
    assert.deepEqual(worker.config.Cmd, [
      'node',
      'src/cache/worker-main.ts',
      '--config',
      '/etc/tide/worker.json',
    ]);
    for (const variable of nodeEnv) assert.ok(worker.config.Env?.includes(variable), variable);

    const pause = await configOf(built.images.pause.archive);
    assert.deepEqual(pause.config.Entrypoint, ['/pause', '-P']);
    assert.equal(pause.rootfs.diff_ids.length, 1);

    // The node images share their Debian, Node and app layers; the worker adds FUSE on top.
    assert.deepEqual(loader.rootfs.diff_ids, controller.rootfs.diff_ids);
    assert.deepEqual(worker.rootfs.diff_ids.slice(0, 3), controller.rootfs.diff_ids);
    assert.equal(worker.rootfs.diff_ids.length, 4);
    const test = await configOf(built.images.test.archive);
    assert.equal(test.rootfs.diff_ids[0], controller.rootfs.diff_ids[0]);
  });

  it('runs Node 24 and the operator as the unprivileged user of the controller image', async () => {
    const version = await inImage('controller', '65532:65532', '/opt/tide', 'node', '-p', 'process.version');
    assert.equal(version.trim(), `v${NODE_VERSION}`);
    const help = await inImage(
      'controller',
      '65532:65532',
      '/opt/tide',
      'node',
      'src/operator/main.ts',
      '--help',
    );
    assert.match(help, /--leader-election-namespace/);
    const loaderHelp = await inImage(
      'loader',
      '65532:65532',
      '/opt/tide',
      'node',
      'src/operator/loader-main.ts',
      '--help',
    );
    assert.match(loaderHelp, /--plan/);
  });

  it('holds src/ without tests and production dependencies only', async () => {
    const root = await unpack('controller');
    const app = join(root, 'opt', 'tide');
    const files = (await readdir(app, { recursive: true })).map(String);
    assert.ok(files.includes(join('src', 'operator', 'main.ts')));
    assert.deepEqual(
      files.filter((file) => file.endsWith('.test.ts')),
      [],
    );
    assert.deepEqual((await readdir(app)).sort(), [
      'node_modules',
      'package-lock.json',
      'package.json',
      'src',
    ]);
    const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages).filter(
      ([path, entry]) => path !== '' && entry.dev === true,
    );
    assert.ok(devOnly.length > 0);
    for (const [path] of devOnly)
      assert.equal(existsSync(join(app, path)), false, `${path} is a devDependency`);
    // (@types/node is not in the list: protobufjs, under @grpc/proto-loader, depends on it at run time.)
    for (const name of ['typescript', 'eslint', 'prettier', 'node']) {
      assert.equal(existsSync(join(app, 'node_modules', name)), false, name);
    }
    // No apt state, caches or logs of the build.
    for (const path of [
      'var/lib/apt',
      'var/cache/apt',
      'var/log/apt',
      'var/log/dpkg.log',
      'etc/resolv.conf',
    ]) {
      assert.equal(existsSync(join(root, path)), false, path);
    }
  });

  it('gives the worker image FUSE and mount tools', async () => {
    const fuse = await inImage('worker', '0:0', '/opt/tide', 'fusermount3', '--version');
    assert.match(fuse, /fusermount3 version/);
    const mount = await inImage('worker', '0:0', '/opt/tide', 'mount', '--version');
    assert.match(mount, /util-linux/);
    const version = await inImage('worker', '0:0', '/opt/tide', 'node', '-p', 'process.version');
    assert.equal(version.trim(), `v${NODE_VERSION}`);
  });

  it('gives the test image its clients and the pause image a static catatonit', async () => {
    const out = await inImage(
      'test',
      '0:0',
      '/',
      'bash',
      '-c',
      'python3 -c "import sqlite3; print(sqlite3.sqlite_version)" && sqlite3 --version && tar --version && find --version',
    );
    assert.match(out, /GNU tar/);
    assert.match(out, /GNU findutils/);
    const pause = await unpack('pause');
    assert.deepEqual((await readdir(pause)).sort(), ['pause']);
    const { stdout } = await run('chroot', [pause, '/pause', '-V']);
    assert.match(stdout, /catatonit/);
  });

  it('imports into containerd under the tide.local references', { timeout: 5 * 60_000 }, async () => {
    assert.ok(work !== undefined);
    const dir = join(work, 'containerd');
    await mkdir(dir);
    const socket = join(dir, 'containerd.sock');
    const config = [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      `[grpc]\n  address = "${socket}"`,
    ].join('\n');
    await writeFile(join(dir, 'config.toml'), `${config}\n`);
    const containerd = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: 'ignore' });
    try {
      await waitFor(() => existsSync(socket), 30_000);
      const ctr = async (...args: string[]): Promise<string> =>
        (await run('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args], { timeout: 120_000 }))
          .stdout;
      // The worker holds every layer of the controller and loader images too.
      for (const name of ['pause', 'worker'] as const) {
        const { ref, archive } = built.images[name];
        await ctr('images', 'import', '--base-name', ref.slice(0, ref.lastIndexOf(':')), archive);
        const listed = await ctr('images', 'ls', '--quiet');
        assert.ok(listed.split('\n').includes(ref), `${ref} in ${listed}`);
      }
    } finally {
      const exited = containerd.exitCode === null ? once(containerd, 'exit') : Promise.resolve();
      containerd.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives the same digests when the same inputs are built again', { timeout: 15 * 60_000 }, async () => {
    assert.ok(work !== undefined);
    const again = join(work, 'again');
    const first = listing(built.dir);
    const epochs = new Set(REBUILT.map((name) => first.get(name)?.[3]));
    assert.equal(epochs.size, 1, 'the images to rebuild were built from one commit time');
    await run('bash', [join(REPO, 'images', 'build'), again, '--only', REBUILT.join(',')], {
      env: { ...process.env, SOURCE_DATE_EPOCH: [...epochs][0] },
      maxBuffer: 64 << 20,
      timeout: 15 * 60_000,
    });
    const second = listing(again);
    for (const name of REBUILT) assert.deepEqual(second.get(name), first.get(name), name);
  });
});
