/**
 * The node plugin on this machine as root, without a kubelet: real gRPC over its socket, real
 * Tide FUSE mounts at fluid_path, real bind mounts under a temporary kubelet directory.
 */
import { access, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { silentLogger } from '../../src/lib/index.ts';
import { readMountInfo, startNodePlugin, topMountAt, type NodePlugin } from '../../src/csi/index.ts';
import { csiClient, type CsiClient } from './client.ts';
import {
  mountCapability,
  mountDataset,
  mountSkipReason,
  nodeLayout,
  volumeContext,
  waitFor,
  type NodeLayout,
} from './helpers.ts';
import { startMount } from '../integration/fuse/harness.ts';

const skip = mountSkipReason();
const INVALID_ARGUMENT = 3;
const ABORTED = 10;
const UNAVAILABLE = 14;

async function mountsUnder(dir: string): Promise<string[]> {
  return (await readMountInfo())
    .map((entry) => entry.mountPoint)
    .filter((path) => path.startsWith(`${dir}/`));
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

interface Setup {
  layout: NodeLayout;
  plugin: NodePlugin;
  client: CsiClient;
}

async function setup(t: TestContext, options: { fuseWaitTimeoutMs?: number } = {}): Promise<Setup> {
  const layout = await nodeLayout('tide-csi-node-');
  t.after(() => layout.remove());
  const plugin = await startNodePlugin({
    endpoint: `unix://${join(layout.work, 'csi.sock')}`,
    nodeId: 'node-a',
    vendorVersion: 'test',
    kubeletDir: layout.kubeletDir,
    mountRoot: layout.mountRoot,
    stateDir: layout.stateDir,
    logger: silentLogger(),
    recoveryIntervalMs: 1_000,
    fuseWaitTimeoutMs: options.fuseWaitTimeoutMs ?? 5_000,
  });
  t.after(() => plugin.close());
  const client = await csiClient(plugin.socketPath);
  t.after(() => {
    client.close();
  });
  return { layout, plugin, client };
}

function publishRequest(
  layout: NodeLayout,
  target: string,
  mode: string,
  extra: Record<string, string> = {},
) {
  return {
    volumeId: 'default-demo',
    targetPath: target,
    volumeCapability: mountCapability(mode),
    volumeContext: volumeContext(layout, extra),
  };
}

test(
  'NodePublishVolume binds the FUSE mount on the target, read-only for ReadOnlyMany, and is idempotent',
  { skip, timeout: 120_000 },
  async (t) => {
    const { layout, client } = await setup(t);
    const mount = await mountDataset(layout);
    t.after(() => mount.stop());

    const reader = layout.podTarget('pod-1', 'default-demo');
    await client.call('Node', 'NodeStageVolume', {
      volumeId: 'default-demo',
      stagingTargetPath: join(layout.kubeletDir, 'plugins', 'staging'),
      volumeCapability: mountCapability('MULTI_NODE_READER_ONLY'),
      volumeContext: volumeContext(layout),
    });
    await client.call('Node', 'NodePublishVolume', publishRequest(layout, reader, 'MULTI_NODE_READER_ONLY'));
    assert.equal(await readFile(join(reader, 'hello.txt'), 'utf8'), 'hello from the dataset\n');
    const bind = topMountAt(await readMountInfo(), reader);
    assert.ok(bind?.options.includes('ro'), `the target is read-only: ${bind?.options.join(',')}`);
    await assert.rejects(writeFile(join(reader, 'new.txt'), 'x'), /EROFS/);

    // The same call again: OK, and still one mount at the target.
    await client.call('Node', 'NodePublishVolume', publishRequest(layout, reader, 'MULTI_NODE_READER_ONLY'));
    assert.equal((await readMountInfo()).filter((entry) => entry.mountPoint === reader).length, 1);

    // A sub path of the dataset.
    const sub = layout.podTarget('pod-2', 'default-demo');
    await client.call(
      'Node',
      'NodePublishVolume',
      publishRequest(layout, sub, 'MULTI_NODE_READER_ONLY', { fluid_sub_path: 'sub' }),
    );
    assert.equal(await readFile(join(sub, 'inner.txt'), 'utf8'), 'inner\n');

    for (const target of [reader, sub]) {
      await client.call('Node', 'NodeUnpublishVolume', { volumeId: 'default-demo', targetPath: target });
      await client.call('Node', 'NodeUnpublishVolume', { volumeId: 'default-demo', targetPath: target });
      assert.equal(await exists(target), false, `${target} is removed`);
    }
    await client.call('Node', 'NodeUnstageVolume', {
      volumeId: 'default-demo',
      stagingTargetPath: join(layout.kubeletDir, 'plugins', 'staging'),
    });
    assert.deepEqual(await mountsUnder(layout.kubeletDir), []);
  },
);

test(
  'NodeUnpublishVolume removes every mount stacked on the target, then the directory',
  { skip, timeout: 60_000 },
  async (t) => {
    const { layout, client } = await setup(t);
    const target = layout.podTarget('pod-1', 'default-demo');
    await mkdir(target, { recursive: true });
    for (let i = 0; i < 3; i += 1) spawnSync('mount', ['--bind', layout.sourceDir, target]);
    // Three or more: where / is shared (a node's is), each bind also propagates to its peers.
    assert.ok((await mountsUnder(layout.kubeletDir)).length >= 3);
    await client.call('Node', 'NodeUnpublishVolume', { volumeId: 'default-demo', targetPath: target });
    assert.deepEqual(await mountsUnder(layout.kubeletDir), []);
    assert.equal(await exists(target), false);
  },
);

test(
  'bad requests get the CSI spec codes and leave nothing mounted or created',
  { skip, timeout: 60_000 },
  async (t) => {
    const { layout, client } = await setup(t, { fuseWaitTimeoutMs: 1_500 });
    const target = layout.podTarget('pod-1', 'default-demo');
    const ok = publishRequest(layout, target, 'MULTI_NODE_READER_ONLY');
    const cases: [string, object, number][] = [
      ['no volume id', { ...ok, volumeId: '' }, INVALID_ARGUMENT],
      ['no target path', { ...ok, targetPath: '' }, INVALID_ARGUMENT],
      [
        'a target outside the kubelet directory',
        { ...ok, targetPath: join(layout.work, 'elsewhere') },
        INVALID_ARGUMENT,
      ],
      ['a relative target', { ...ok, targetPath: 'pods/x/mount' }, INVALID_ARGUMENT],
      ['no capability', { ...ok, volumeCapability: null }, INVALID_ARGUMENT],
      [
        'a block capability',
        { ...ok, volumeCapability: { block: {}, accessMode: { mode: 'MULTI_NODE_READER_ONLY' } } },
        INVALID_ARGUMENT,
      ],
      ['no volume context', { ...ok, volumeContext: {} }, INVALID_ARGUMENT],
      [
        'a sub path leaving the dataset',
        publishRequest(layout, target, 'MULTI_NODE_READER_ONLY', { fluid_sub_path: '../..' }),
        INVALID_ARGUMENT,
      ],
      [
        'a fluid_path outside the mount root',
        publishRequest(layout, target, 'MULTI_NODE_READER_ONLY', { fluid_path: layout.sourceDir }),
        INVALID_ARGUMENT,
      ],
      ['no FUSE mount at fluid_path', ok, UNAVAILABLE],
    ];
    for (const [what, request, code] of cases) {
      assert.equal(await client.codeOf('Node', 'NodePublishVolume', request), code, what);
    }
    assert.equal(
      await client.codeOf('Node', 'NodeStageVolume', {
        volumeId: 'default-demo',
        stagingTargetPath: join(layout.kubeletDir, 'staging'),
        volumeCapability: mountCapability('MULTI_NODE_READER_ONLY'),
        volumeContext: volumeContext(layout, { mount_pod_node_selector_key: '' }),
      }),
      INVALID_ARGUMENT,
      'stage without the node label key',
    );
    assert.equal(
      await client.codeOf('Node', 'NodeUnpublishVolume', { volumeId: 'default-demo', targetPath: '/etc' }),
      INVALID_ARGUMENT,
    );

    // A second publish of a target while the first waits for the FUSE mount: ABORTED.
    const first = client.codeOf('Node', 'NodePublishVolume', ok);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await client.codeOf('Node', 'NodePublishVolume', ok), ABORTED);
    assert.equal(await first, UNAVAILABLE);

    assert.deepEqual(await mountsUnder(layout.work), []);
    assert.equal(await exists(target), false, 'no target directory was made');
    assert.equal(await exists(join(layout.work, 'elsewhere')), false);
  },
);

test(
  'a published target reads again within 10 s after its FUSE mount is killed and mounted again',
  { skip, timeout: 120_000 },
  async (t) => {
    const { layout, client } = await setup(t);
    const first = await mountDataset(layout);
    t.after(() => first.stop());
    const target = layout.podTarget('pod-1', 'default-demo');
    await client.call('Node', 'NodePublishVolume', publishRequest(layout, target, 'MULTI_NODE_READER_ONLY'));
    assert.equal(await readFile(join(target, 'hello.txt'), 'utf8'), 'hello from the dataset\n');
    // A running container with `mountPropagation: HostToContainer`: its copy of the target is a
    // slave of the target's mount, in a mount namespace of its own.
    const container = join(layout.work, 'container');
    const seen = join(layout.work, 'container-read');
    await mkdir(container);
    const reader = spawn(
      'unshare',
      [
        '-m',
        '--propagation',
        'slave',
        'sh',
        '-c',
        `mount --rbind ${target} ${container} && while :; do cat ${container}/hello.txt >${seen}.tmp 2>&1; mv ${seen}.tmp ${seen}; sleep 0.2; done`,
      ],
      { stdio: 'ignore' },
    );
    t.after(() => {
      reader.kill('SIGKILL');
    });

    // The FUSE pod dies: its server and supervisor are killed, its mount at fluid_path goes.
    spawnSync('kill', ['-9', String(first.serverPid()), String(first.supervisorPid)]);
    spawnSync('umount', ['-l', layout.fluidPath]);
    await waitFor(
      async () =>
        await stat(join(target, 'hello.txt')).then(
          () => false,
          (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOTCONN',
        ),
      'the old bind to answer ENOTCONN',
    );

    // The next FUSE pod mounts again at fluid_path.
    const second = await startMount({
      sourceDir: layout.sourceDir,
      target: layout.fluidPath,
      fuseArgs: ['-oro'],
    });
    t.after(() => second.stop());
    const recoveredMs = await waitFor(
      async () => (await readFile(join(target, 'hello.txt'), 'utf8')) === 'hello from the dataset\n',
      'the target to read again',
      10_000,
    );
    t.diagnostic(`target read again ${recoveredMs} ms after the new FUSE mount`);
    await waitFor(
      async () => (await readFile(seen, 'utf8').catch(() => '')) === 'hello from the dataset\n',
      'the running container to read again (the new bind propagated to its slave copy)',
      10_000,
    );
    const top = topMountAt(await readMountInfo(), target);
    assert.ok(top?.options.includes('ro'), 'still read-only');
    assert.equal(
      (await readMountInfo()).filter((entry) => entry.mountPoint === target).length,
      2,
      'the new bind is on top of the stale one, which a detach would have hidden from the container',
    );

    await client.call('Node', 'NodeUnpublishVolume', { volumeId: 'default-demo', targetPath: target });
    assert.deepEqual(await mountsUnder(layout.kubeletDir), []);
  },
);
