/**
 * The node plugin against a real kube-apiserver: NodeStageVolume puts the lazy-FUSE label on its
 * Node object, NodeUnstageVolume removes it per the runtime's fuse.cleanPolicy and only when no
 * other pod's target of the volume is still mounted; a missing dataset is NOT_FOUND; recovery
 * writes events on the Dataset.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClusterAccess, startNodePlugin, type NodePlugin } from '../../src/csi/index.ts';
import { KubeClient, builtin, type KubeObject } from '../../src/kube/index.ts';
import { silentLogger } from '../../src/lib/index.ts';
import { startMount } from '../integration/fuse/harness.ts';
import { helmPath, helmSkipReason } from '../k8s/helm.ts';
import { k8sSuiteSkipReason, startCluster, waitFor, type TestCluster } from '../k8s/cluster.ts';
import { CHART_RBAC_TYPES, DATASET_CRD, datasetType, validDataset } from '../k8s/fixtures.ts';
import { csiClient, type CsiClient } from './client.ts';
import {
  mountCapability,
  mountDataset,
  mountSkipReason,
  nodeLayout,
  volumeContext,
  type NodeLayout,
} from './helpers.ts';

const NODE = 'node-a';
const CHART = join(import.meta.dirname, '..', '..', 'charts', 'tide');
const run = promisify(execFile);

/**
 * A client with a token of the chart's node-plugin ServiceAccount and its RBAC as `helm template`
 * renders them, so that these tests also prove the chart grants what the plugin uses; undefined
 * without Helm (the plugin then runs as cluster admin).
 */
async function chartPluginClient(cluster: TestCluster): Promise<KubeClient | undefined> {
  if (helmSkipReason() !== false) return undefined;
  const { stdout } = await run(helmPath(), ['template', 'tide', CHART, '--namespace', 'tide-system'], {
    timeout: 60_000,
  });
  await cluster.client.create(builtin.namespaces, { metadata: { name: 'tide-system' } });
  for (const document of parseAllDocuments(stdout)) {
    const object = document.toJSON() as KubeObject | null;
    const type = CHART_RBAC_TYPES.get(object?.kind ?? '');
    if (object === null || type === undefined || object.metadata?.name !== 'tide-csi') continue;
    await cluster.client.create(type, object, { namespace: 'tide-system' });
  }
  const { status } = await cluster.client.request<{ status: { token: string } }>({
    method: 'POST',
    path: '/api/v1/namespaces/tide-system/serviceaccounts/tide-csi/token',
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  return new KubeClient({
    server: cluster.server,
    caPem: cluster.caPem,
    token: status.token,
    namespace: 'default',
  });
}
const LABEL = 'fluid.io/f-default-demo';
const NOT_FOUND = 5;
const skip = mountSkipReason() || k8sSuiteSkipReason();

describe('the node plugin with a kube-apiserver', { skip, timeout: 600_000 }, () => {
  let cluster: TestCluster;
  let kube: KubeClient;
  let layout: NodeLayout;
  let plugin: NodePlugin;
  let client: CsiClient;
  let pluginCluster: ClusterAccess;
  /** What `before` started, stopped by `after` even when `before` failed half-way. */
  const stops: (() => Promise<void> | void)[] = [];
  const staging = () =>
    join(layout.kubeletDir, 'plugins', 'kubernetes.io', 'csi', 'fuse.csi.tide.io', 'x', 'globalmount');

  before(async () => {
    cluster = await startCluster({ components: 'apiserver' });
    stops.push(() => cluster.stop());
    kube = cluster.client;
    await kube.create(builtin.customResourceDefinitions, DATASET_CRD);
    await waitFor(
      'the datasets resource to be served',
      () => kube.list(datasetType, { namespace: 'default' }).then(() => true),
      {
        timeoutMs: 60_000,
      },
    );
    await kube.create(builtin.nodes, { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE } });
    await kube.create(builtin.serviceAccounts, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'default', namespace: 'default' },
    });
    layout = await nodeLayout('tide-csi-kube-');
    stops.push(() => layout.remove());
    const pluginKube =
      (await chartPluginClient(cluster)) ?? (await KubeClient.fromKubeConfig(cluster.kubeconfigPath));
    stops.push(() => {
      pluginKube.close();
    });
    pluginCluster = new ClusterAccess({ client: pluginKube, nodeName: NODE, logger: silentLogger() });
    plugin = await startNodePlugin({
      endpoint: `unix://${join(layout.work, 'csi.sock')}`,
      nodeId: NODE,
      vendorVersion: 'test',
      kubeletDir: layout.kubeletDir,
      mountRoot: layout.mountRoot,
      stateDir: layout.stateDir,
      logger: silentLogger(),
      cluster: pluginCluster,
      recoveryIntervalMs: 1_000,
      fuseWaitTimeoutMs: 5_000,
    });
    stops.push(() => plugin.close());
    client = await csiClient(plugin.socketPath);
    stops.push(() => {
      client.close();
    });
  });

  after(async () => {
    // Reversed: the client before the plugin before the layout before the cluster.
    for (const stop of stops.reverse()) await stop();
  });

  async function nodeLabels(): Promise<Record<string, string>> {
    return (await kube.get(builtin.nodes, NODE)).metadata?.labels ?? {};
  }
  async function createDataset(): Promise<void> {
    await kube.create(datasetType, validDataset('demo', 'default'));
  }
  async function deleteDataset(): Promise<void> {
    await kube.delete(datasetType, 'demo', { namespace: 'default' });
    await waitFor(
      'the dataset to go',
      () =>
        kube.get(datasetType, 'demo', { namespace: 'default' }).then(
          () => undefined,
          () => true,
        ),
      { timeoutMs: 20_000 },
    );
  }
  const stage = (extra: Record<string, string> = {}) =>
    client.call('Node', 'NodeStageVolume', {
      volumeId: 'default-demo',
      stagingTargetPath: staging(),
      volumeCapability: mountCapability('MULTI_NODE_READER_ONLY'),
      volumeContext: volumeContext(layout, extra),
    });
  const unstage = () =>
    client.call('Node', 'NodeUnstageVolume', { volumeId: 'default-demo', stagingTargetPath: staging() });

  it('stage labels the node; unstage removes the label with cleanPolicy OnDemand', async () => {
    await createDataset();
    await stage({ fuse_clean_policy: 'OnDemand' });
    assert.equal((await nodeLabels())[LABEL], 'true');
    await unstage();
    assert.equal((await nodeLabels())[LABEL], undefined);
  });

  it("keeps the label with Fluid's default OnRuntimeDeleted until the dataset is gone", async () => {
    await stage();
    await unstage();
    assert.equal((await nodeLabels())[LABEL], 'true', 'kept while the dataset exists');
    await stage();
    await deleteDataset();
    await unstage();
    assert.equal((await nodeLabels())[LABEL], undefined, 'removed once the dataset is gone');
  });

  it("keeps the label while another pod's target of the volume is mounted on the node", async () => {
    await createDataset();
    await stage({ fuse_clean_policy: 'OnDemand' });
    const other = layout.podTarget('other-pod', 'default-demo');
    await mkdir(other, { recursive: true });
    spawnSync('mount', ['--bind', layout.sourceDir, other]);
    try {
      await unstage();
      assert.equal((await nodeLabels())[LABEL], 'true');
    } finally {
      spawnSync('umount', [other]);
    }
    await stage({ fuse_clean_policy: 'OnDemand' });
    await unstage();
    assert.equal((await nodeLabels())[LABEL], undefined);
  });

  it('OnFuseChanged removes the label only when the FUSE pod runs an older template than its DaemonSet', async () => {
    const selector = { app: 'tide', role: 'tide-fuse', release: 'demo' };
    const daemonSet: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'demo-fuse', namespace: 'default' },
      spec: {
        selector: { matchLabels: selector },
        updateStrategy: { type: 'OnDelete' },
        template: {
          metadata: { labels: selector },
          spec: { containers: [{ name: 'fuse', image: 'tide:1' }] },
        },
      },
    };
    const created = await kube.create(builtin.daemonSets, daemonSet);
    await kube.create(builtin.pods, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'demo-fuse-x',
        namespace: 'default',
        labels: { ...selector, 'pod-template-generation': String(created.metadata?.generation) },
      },
      spec: { nodeName: NODE, containers: [{ name: 'fuse', image: 'tide:1' }] },
    });
    const context = { fuse_clean_policy: 'OnFuseChanged', fuse_daemonset: 'demo-fuse' };
    await stage(context);
    await unstage();
    assert.equal((await nodeLabels())[LABEL], 'true', 'same template: kept');
    await kube.patch(
      builtin.daemonSets,
      'demo-fuse',
      { spec: { template: { spec: { containers: [{ name: 'fuse', image: 'tide:2' }] } } } },
      { namespace: 'default', patchType: 'strategic' },
    );
    await stage(context);
    await unstage();
    assert.equal(
      (await nodeLabels())[LABEL],
      undefined,
      'new template: removed, so the FUSE pod is recreated',
    );
  });

  it("a restarted plugin without its state unstages by the PersistentVolume's attributes", async () => {
    await kube.create(builtin.persistentVolumes, {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'default-demo' },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadOnlyMany'],
        csi: {
          driver: 'fuse.csi.tide.io',
          volumeHandle: 'default-demo',
          volumeAttributes: volumeContext(layout, { fuse_clean_policy: 'OnDemand' }),
        },
      },
    });
    await stage({ fuse_clean_policy: 'OnDemand' });
    assert.equal((await nodeLabels())[LABEL], 'true');
    const restarted = await startNodePlugin({
      endpoint: `unix://${join(layout.work, 'restarted.sock')}`,
      nodeId: NODE,
      vendorVersion: 'test',
      kubeletDir: layout.kubeletDir,
      mountRoot: layout.mountRoot,
      stateDir: join(layout.work, 'fresh-state'),
      logger: silentLogger(),
      cluster: pluginCluster,
    });
    const restartedClient = await csiClient(restarted.socketPath);
    try {
      await restartedClient.call('Node', 'NodeUnstageVolume', {
        volumeId: 'default-demo',
        stagingTargetPath: staging(),
      });
      assert.equal((await nodeLabels())[LABEL], undefined);
    } finally {
      restartedClient.close();
      await restarted.close();
    }
    // The first plugin still remembers the volume as staged: unstage there too, as the kubelet would have.
    await unstage();
  });

  it('a dataset that does not exist is NOT_FOUND and labels nothing', async () => {
    assert.equal(
      await client.codeOf('Node', 'NodeStageVolume', {
        volumeId: 'default-missing',
        stagingTargetPath: staging(),
        volumeCapability: mountCapability('MULTI_NODE_READER_ONLY'),
        volumeContext: volumeContext(layout, {
          runtime_name: 'missing',
          mount_pod_node_selector_key: 'fluid.io/f-default-missing',
        }),
      }),
      NOT_FOUND,
    );
    assert.equal((await nodeLabels())['fluid.io/f-default-missing'], undefined);
  });

  it('recovery re-binds the target and records FuseRecoverSucceed on the dataset', async () => {
    const first = await mountDataset(layout);
    const target = layout.podTarget('pod-1', 'default-demo');
    await client.call('Node', 'NodePublishVolume', {
      volumeId: 'default-demo',
      targetPath: target,
      volumeCapability: mountCapability('MULTI_NODE_READER_ONLY'),
      volumeContext: volumeContext(layout),
    });
    spawnSync('kill', ['-9', String(first.serverPid()), String(first.supervisorPid)]);
    spawnSync('umount', ['-l', layout.fluidPath]);
    await first.stop();
    const second = await startMount({
      sourceDir: layout.sourceDir,
      target: layout.fluidPath,
      fuseArgs: ['-oro'],
    });
    try {
      await waitFor(
        'the target to read again',
        () => readFile(join(target, 'hello.txt'), 'utf8').then((text) => text.length > 0 || undefined),
        {
          timeoutMs: 10_000,
        },
      );
      const event = await waitFor(
        'a FuseRecoverSucceed event on the dataset',
        async () =>
          (await kube.list(builtin.events, { namespace: 'default' })).items.find(
            (item) =>
              item['reason'] === 'FuseRecoverSucceed' &&
              (item['involvedObject'] as { kind: string }).kind === 'Dataset',
          ),
        { timeoutMs: 10_000 },
      );
      assert.equal((event['involvedObject'] as { name: string }).name, 'demo');
      await client.call('Node', 'NodeUnpublishVolume', { volumeId: 'default-demo', targetPath: target });
    } finally {
      await second.stop();
    }
  });
});
