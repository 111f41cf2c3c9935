/**
 * The Helm chart charts/tide: `helm lint --strict`, and `helm template` rendering what the operator
 * needs (images, flags its parser accepts, RBAC without wildcards, CRDs). Whether that RBAC suffices
 * is tested by test/k8s/operator.test.ts, which runs the operator with the chart's ServiceAccount.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseCsiArgs } from '../../src/csi/index.ts';
import { parseOperatorArgs } from '../../src/operator/index.ts';
import { DEFAULT_PROFILE_YAML, parsePluginsProfile, webhookConfiguration } from '../../src/webhook/index.ts';
import { helmPath, helmSkipReason } from './helm.ts';

const run = promisify(execFile);
const CHART = join(import.meta.dirname, '..', '..', 'charts', 'tide');
const skip = helmSkipReason();

interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

interface PluginPodSpec {
  hostNetwork: boolean;
  serviceAccountName: string;
  containers: {
    image: string;
    command: string[];
    args: string[];
    env: Record<string, unknown>[];
    securityContext: { privileged: boolean };
    volumeMounts: { name: string; mountPath: string; mountPropagation?: string }[];
  }[];
  volumes: Record<string, unknown>[];
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

async function render(...set: string[]): Promise<Doc[]> {
  const { stdout } = await run(
    helmPath(),
    ['template', 'tide', CHART, '--namespace', 'tide-system', ...set.flatMap((value) => ['--set', value])],
    { timeout: 60_000 },
  );
  return parseAllDocuments(stdout)
    .map((document) => document.toJSON() as Doc | null)
    .filter((document): document is Doc => document !== null);
}

function controllerOf(docs: Doc[]): { image: string; args: string[] } {
  const deployment = docs.find((doc) => doc.kind === 'Deployment');
  assert.ok(deployment !== undefined, 'a Deployment');
  const spec = deployment['spec'] as {
    template: { spec: { containers: { image: string; args: string[] }[] } };
  };
  const container = spec.template.spec.containers[0];
  assert.ok(container !== undefined);
  return container;
}

function rulesOf(docs: Doc[], kind: 'ClusterRole' | 'Role'): Rule[] {
  return docs.filter((doc) => doc.kind === kind).flatMap((doc) => doc['rules'] as Rule[]);
}

describe('the Helm chart', () => {
  if (skip !== false) {
    it('lints and renders', { skip }, () => undefined);
    return;
  }

  it('passes helm lint --strict', async () => {
    const { stdout } = await run(helmPath(), ['lint', '--strict', CHART], { timeout: 60_000 });
    assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('renders a controller Deployment whose flags the operator accepts, with the images of the values', async () => {
    const docs = await render();
    assert.deepEqual(docs.map((doc) => doc.kind).sort(), [
      'CSIDriver',
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'ClusterRoleBinding',
      'ConfigMap',
      'DaemonSet',
      'Deployment',
      'MutatingWebhookConfiguration',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
      'ServiceAccount',
    ]);
    const controller = controllerOf(docs);
    assert.equal(controller.image, 'ghcr.io/tide-dev/tide-controller:0.1.0');
    const config = parseOperatorArgs(controller.args, {});
    assert.deepEqual(config.platform.images, {
      worker: 'ghcr.io/tide-dev/tide-worker:0.1.0',
      fuse: 'ghcr.io/tide-dev/tide-worker:0.1.0',
      loader: 'ghcr.io/tide-dev/tide-loader:0.1.0',
    });
    assert.equal(config.leaderElection.enabled, true);
    assert.equal(config.leaderElection.namespace, 'tide-system');
    assert.equal(config.leaderElection.leaseDurationMs, 15_000);
    assert.equal(config.installCrds, false);
    assert.equal(config.platform.csiDriver, 'fuse.csi.tide.io');

    const custom = controllerOf(
      await render(
        'image.prefix=registry.example.com/ml',
        'image.tag=v9',
        'controller.leaderElection.enabled=false',
        'controller.installCrds=true',
        'runtime.mountRoot=/mnt/tide',
      ),
    );
    assert.equal(custom.image, 'registry.example.com/ml/tide-controller:v9');
    const customConfig = parseOperatorArgs(custom.args, {});
    assert.equal(customConfig.platform.images.loader, 'registry.example.com/ml/tide-loader:v9');
    assert.equal(customConfig.leaderElection.enabled, false);
    assert.equal(customConfig.installCrds, true);
    assert.equal(customConfig.platform.mountRoot, '/mnt/tide');
  });

  it('grants no wildcard, and CustomResourceDefinitions only when the operator installs them', async () => {
    const docs = await render();
    const rules = [...rulesOf(docs, 'ClusterRole'), ...rulesOf(docs, 'Role')];
    for (const rule of rules) {
      for (const value of [...rule.apiGroups, ...rule.resources, ...rule.verbs]) assert.notEqual(value, '*');
    }
    assert.ok(!rules.some((rule) => rule.resources.includes('customresourcedefinitions')));
    assert.deepEqual(rulesOf(docs, 'Role'), [
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
    ]);
    const installing = await render('controller.installCrds=true', 'controller.leaderElection.enabled=false');
    assert.ok(
      rulesOf(installing, 'ClusterRole').some((rule) => rule.resources.includes('customresourcedefinitions')),
    );
    assert.deepEqual(rulesOf(installing, 'Role'), []);
  });

  it('renders the CSI driver and its node plugin: privileged, on the host network, propagating mounts', async () => {
    const docs = await render();
    const driver = docs.find((doc) => doc.kind === 'CSIDriver');
    assert.equal(driver?.metadata.name, 'fuse.csi.tide.io');
    assert.deepEqual(driver['spec'], {
      attachRequired: false,
      podInfoOnMount: true,
      fsGroupPolicy: 'None',
      volumeLifecycleModes: ['Persistent'],
    });
    const daemonSet = docs.find((doc) => doc.kind === 'DaemonSet');
    assert.equal(daemonSet?.metadata.name, 'tide-csi-nodeplugin');
    const pod = (daemonSet['spec'] as { template: { spec: PluginPodSpec } }).template.spec;
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.serviceAccountName, 'tide-csi');
    const [container] = pod.containers;
    assert.ok(container !== undefined);
    assert.equal(container.image, 'ghcr.io/tide-dev/tide-worker:0.1.0');
    assert.deepEqual(container.command, ['node', 'src/csi/main.ts']);
    assert.equal(container.securityContext.privileged, true);
    assert.deepEqual(container.env, [
      { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    ]);
    // The kubelet expands $(NODE_NAME); the plugin's own parser accepts the rest.
    const config = parseCsiArgs(
      container.args.map((arg) => arg.replace('$(NODE_NAME)', 'node-a')),
      {},
    );
    assert.equal(config.endpoint, 'unix:///var/lib/kubelet/plugins/fuse.csi.tide.io/csi.sock');
    assert.equal(config.nodeId, 'node-a');
    assert.equal(config.registrationDir, '/var/lib/kubelet/plugins_registry');
    assert.equal(config.kubeletDir, '/var/lib/kubelet');
    assert.equal(config.mountRoot, '/runtime-mnt');
    assert.equal(config.recoveryIntervalMs, 3_000);
    assert.equal(config.fuseWaitTimeoutMs, 90_000);
    assert.deepEqual(container.volumeMounts, [
      { name: 'kubelet-dir', mountPath: '/var/lib/kubelet', mountPropagation: 'Bidirectional' },
      { name: 'mount-root', mountPath: '/runtime-mnt', mountPropagation: 'Bidirectional' },
    ]);
    assert.deepEqual(pod.volumes, [
      { name: 'kubelet-dir', hostPath: { path: '/var/lib/kubelet', type: 'Directory' } },
      { name: 'mount-root', hostPath: { path: '/runtime-mnt', type: 'DirectoryOrCreate' } },
    ]);

    const custom = await render(
      'csi.kubeletDir=/data/kubelet',
      'runtime.mountRoot=/mnt/tide',
      'csi.apiServer.host=10.0.0.1',
      'csi.apiServer.port=6443',
    );
    const customPod = (
      custom.find((doc) => doc.kind === 'DaemonSet')?.['spec'] as { template: { spec: PluginPodSpec } }
    ).template.spec;
    const customContainer = customPod.containers[0];
    assert.ok(customContainer !== undefined);
    assert.equal(parseCsiArgs(customContainer.args, { NODE_NAME: 'n' }).kubeletDir, '/data/kubelet');
    assert.deepEqual(customContainer.env.slice(1), [
      { name: 'KUBERNETES_SERVICE_HOST', value: '10.0.0.1' },
      { name: 'KUBERNETES_SERVICE_PORT', value: '6443' },
    ]);
    assert.equal(customContainer.volumeMounts[1]?.mountPath, '/mnt/tide');
    assert.equal(parseCsiArgs(customContainer.args, { NODE_NAME: 'n' }).mountRoot, '/mnt/tide');

    const disabled = await render('csi.enabled=false');
    assert.ok(!disabled.some((doc) => ['CSIDriver', 'DaemonSet'].includes(doc.kind)));
  });

  it('grants the node plugin only what it uses', async () => {
    const docs = await render();
    const role = docs.find((doc) => doc.kind === 'ClusterRole' && doc.metadata.name === 'tide-csi');
    assert.deepEqual(role?.['rules'], [
      { apiGroups: [''], resources: ['nodes'], verbs: ['patch'] },
      { apiGroups: ['data.fluid.io'], resources: ['datasets'], verbs: ['get'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
      { apiGroups: [''], resources: ['persistentvolumes'], verbs: ['get'] },
      { apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['get'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
    ]);
    const binding = docs.find((doc) => doc.kind === 'ClusterRoleBinding' && doc.metadata.name === 'tide-csi');
    assert.deepEqual(binding?.['subjects'], [
      { kind: 'ServiceAccount', name: 'tide-csi', namespace: 'tide-system' },
    ]);
  });

  it('renders the webhook configuration src/webhook writes, its plugins profile and its flags', async () => {
    const docs = await render();
    const configuration = docs.find((doc) => doc.kind === 'MutatingWebhookConfiguration');
    const expected = webhookConfiguration({
      name: 'tide-pod-admission-webhook',
      clientConfig: { service: { namespace: 'tide-system', name: 'tide-webhook', port: 443 } },
      tideNamespace: 'tide-system',
    });
    assert.equal(configuration?.metadata.name, expected.metadata?.name);
    assert.deepEqual(configuration?.['webhooks'], expected['webhooks']);
    const profile = docs.find((doc) => doc.kind === 'ConfigMap' && doc.metadata.name === 'webhook-plugins');
    const text = (profile?.['data'] as { pluginsProfile: string }).pluginsProfile;
    assert.deepEqual(parsePluginsProfile(text), parsePluginsProfile(DEFAULT_PROFILE_YAML));
    const config = parseOperatorArgs(controllerOf(docs).args, {});
    assert.deepEqual(config.webhook, {
      port: 9443,
      address: undefined,
      namespace: 'tide-system',
      serviceName: 'tide-webhook',
      secretName: 'tide-webhook-certs',
      configurationName: 'tide-pod-admission-webhook',
      certificates: 'self',
      profilePath: '/etc/tide-webhook/pluginsProfile',
      checkIntervalMs: 60_000,
    });

    const certManager = await render('webhook.certificates=cert-manager');
    assert.ok(certManager.some((doc) => doc.kind === 'Certificate'));
    assert.ok(certManager.some((doc) => doc.kind === 'Issuer'));
    const injected = certManager.find((doc) => doc.kind === 'MutatingWebhookConfiguration');
    assert.deepEqual((injected?.metadata as { annotations?: object }).annotations, {
      'cert-manager.io/inject-ca-from': 'tide-system/tide-webhook',
    });
    assert.equal(parseOperatorArgs(controllerOf(certManager).args, {}).webhook?.certificates, 'cert-manager');
    const off = await render('webhook.enabled=false');
    assert.ok(!off.some((doc) => doc.kind === 'MutatingWebhookConfiguration'));
    assert.equal(parseOperatorArgs(controllerOf(off).args, {}).webhook, undefined);
  });

  it('ships the generated CRDs', async () => {
    const { stdout } = await run(helmPath(), ['template', 'tide', CHART, '--include-crds'], {
      timeout: 60_000,
    });
    const crds = parseAllDocuments(stdout)
      .map((document) => document.toJSON() as Doc | null)
      .filter((doc): doc is Doc => doc?.kind === 'CustomResourceDefinition')
      .map((doc) => doc.metadata.name)
      .sort();
    assert.deepEqual(crds, [
      'alluxioruntimes.data.fluid.io',
      // Helm creates what crds/ holds only where it is absent: an existing CronHPA CRD stays.
      'cronhorizontalpodautoscalers.autoscaling.alibabacloud.com',
      'dataloads.data.fluid.io',
      'datasets.data.fluid.io',
      'goosefsruntimes.data.fluid.io',
      'jindoruntimes.data.fluid.io',
      'tideruntimes.data.fluid.io',
    ]);
  });
});
