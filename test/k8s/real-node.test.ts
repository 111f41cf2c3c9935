/**
 * The test cluster's real node: pods of Tide's own images run under the kubelet and containerd,
 * reach the API server through the `kubernetes` Service and an origin on the node's bridge, their
 * logs come back through the API server, and stopping the cluster leaves nothing on the machine.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ensureImages, type BuiltImages } from '../helpers/images.ts';
import { startNginx, type NginxServer } from '../helpers/nginx.ts';
import { k8sSuiteSkipReason, startCluster, type TestCluster } from './cluster.ts';
import { runPodToEnd } from './pods.ts';

const run = promisify(execFile);
const skip = k8sSuiteSkipReason({ realNode: true });

describe('a real node in the test cluster', { skip, timeout: 600_000 }, () => {
  let cluster: TestCluster;
  let images: BuiltImages;
  let nginx: NginxServer;
  let root: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    images = await ensureImages({ only: ['pause', 'test'] });
    cluster = await startCluster({ realNodes: 1, nodes: [] });
    cleanups.push(() => cluster.stop());
    const node = cluster.realNodes[0];
    assert.ok(node !== undefined);
    await node.importImages([images.images.pause, images.images.test]);
    root = await mkdtemp(join(tmpdir(), 'tide-node-origin-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    await writeFile(join(root, 'hello.txt'), 'hello from the origin\n');
    nginx = await startNginx({ root, host: cluster.podReachableIp ?? '' });
    cleanups.push(() => nginx.stop());
  });

  after(async () => {
    // What `before` got to start, newest first, even when it failed half-way.
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('runs a pod of the test image to completion and returns its logs through the API server', async () => {
    const result = await runPodToEnd(cluster, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'hello', namespace: 'default' },
      spec: {
        restartPolicy: 'Never',
        containers: [
          {
            name: 'main',
            image: images.images.test.ref,
            imagePullPolicy: 'Never',
            command: [
              'sh',
              '-c',
              'echo "hello from $(hostname)"; sqlite3 --version >/dev/null && echo sqlite ok',
            ],
          },
        ],
      },
    });
    assert.equal(result.phase, 'Succeeded', result.logs);
    assert.match(result.logs, /^hello from hello$/m);
    assert.match(result.logs, /^sqlite ok$/m);
  });

  it('lets a pod reach the API server through the kubernetes Service and an origin on the node bridge', async () => {
    const script = [
      'import os, ssl, urllib.request, json',
      "sa = '/var/run/secrets/kubernetes.io/serviceaccount'",
      "ctx = ssl.create_default_context(cafile=sa + '/ca.crt')",
      "token = open(sa + '/token').read()",
      "url = 'https://%s:%s/version' % (os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT'])",
      "req = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + token})",
      "print('api', json.load(urllib.request.urlopen(req, context=ctx, timeout=10))['gitVersion'])",
      `print('origin', urllib.request.urlopen('${nginx.url}hello.txt', timeout=10).read().decode().strip())`,
    ].join('\n');
    const result = await runPodToEnd(cluster, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'network', namespace: 'default' },
      spec: {
        restartPolicy: 'Never',
        containers: [
          {
            name: 'main',
            image: images.images.test.ref,
            imagePullPolicy: 'Never',
            command: ['python3', '-c', script],
          },
        ],
      },
    });
    assert.equal(result.phase, 'Succeeded', result.logs);
    assert.match(result.logs, /^api v1\.33\.\d+$/m);
    assert.match(result.logs, /^origin hello from the origin$/m);
  });

  it('leaves no process, mount, bridge, NAT rule or cgroup behind once stopped', async () => {
    const node = cluster.realNodes[0];
    assert.ok(node !== undefined);
    const { dir } = node;
    const bridge = (
      await run('ip', ['-o', 'addr', 'show', 'to', `${cluster.podReachableIp ?? ''}/32`])
    ).stdout
      .split(':')[1]
      ?.trim();
    assert.ok(
      bridge !== undefined && bridge.startsWith('tide-br'),
      `the node's bridge carries ${cluster.podReachableIp}`,
    );
    const cgroups = (await readdir('/sys/fs/cgroup/pids')).filter((d) => d.startsWith('tide-node-'));
    assert.ok(cgroups.length > 0);
    await nginx.stop();
    await cluster.stop();
    assert.equal(existsSync(dir), false, `${dir} is removed`);
    assert.ok(
      !readFileSync('/proc/self/mountinfo', 'utf8').includes(dir),
      'no mount below the node directory',
    );
    await assert.rejects(run('ip', ['link', 'show', bridge]), 'the bridge is deleted');
    const nat = (await run('iptables', ['-t', 'nat', '-S'])).stdout;
    assert.ok(!nat.includes(`TIDE-NODE-${bridge.slice('tide-br'.length)}`), 'the NAT chain is deleted');
    const left = (await readdir('/sys/fs/cgroup/pids')).filter(
      (d) => cgroups.includes(d) && d === `tide-node-${bridge.slice('tide-br'.length)}`,
    );
    assert.deepEqual(left, [], 'the cgroups are removed');
  });
});
