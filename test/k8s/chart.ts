/** Installs charts/tide into a test cluster as Helm would: `helm template`, then every object applied. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import {
  builtin,
  resourceType,
  type KubeClient,
  type KubeObject,
  type ResourceType,
} from '../../src/kube/index.ts';
import { waitFor } from './cluster.ts';
import { helmPath } from './helm.ts';

const run = promisify(execFile);
const CHART = join(import.meta.dirname, '..', '..', 'charts', 'tide');

const rbac = (kind: string, plural: string, namespaced: boolean): ResourceType =>
  resourceType('rbac.authorization.k8s.io/v1', kind, plural, { namespaced });

/** Every kind the chart renders. */
const CHART_KINDS = new Map<string, ResourceType>([
  ['CustomResourceDefinition', builtin.customResourceDefinitions],
  ['Namespace', builtin.namespaces],
  ['ServiceAccount', builtin.serviceAccounts],
  ['Secret', builtin.secrets],
  ['ConfigMap', builtin.configMaps],
  ['Service', builtin.services],
  ['Deployment', builtin.deployments],
  ['DaemonSet', builtin.daemonSets],
  ['CSIDriver', builtin.csiDrivers],
  ['StorageClass', builtin.storageClasses],
  ['MutatingWebhookConfiguration', builtin.mutatingWebhookConfigurations],
  ['ValidatingWebhookConfiguration', builtin.validatingWebhookConfigurations],
  ['ClusterRole', rbac('ClusterRole', 'clusterroles', false)],
  ['ClusterRoleBinding', rbac('ClusterRoleBinding', 'clusterrolebindings', false)],
  ['Role', rbac('Role', 'roles', true)],
  ['RoleBinding', rbac('RoleBinding', 'rolebindings', true)],
]);

/** `helm template tide charts/tide --include-crds` with `--set` values, as objects. */
export async function renderChart(namespace: string, values: readonly string[]): Promise<KubeObject[]> {
  const { stdout } = await run(
    helmPath(),
    [
      'template',
      'tide',
      CHART,
      '--namespace',
      namespace,
      '--include-crds',
      ...values.flatMap((value) => ['--set', value]),
    ],
    { timeout: 60_000, maxBuffer: 64 << 20 },
  );
  return parseAllDocuments(stdout)
    .map((document) => document.toJSON() as KubeObject | null)
    .filter((document): document is KubeObject => document !== null);
}

/**
 * Applies rendered objects in Helm's order: CRDs first (waiting until they are served), then the
 * release's namespace, then the rest. Objects without a namespace of a namespaced kind go into
 * `namespace`, as `helm install -n` puts them.
 */
export async function installChart(
  client: KubeClient,
  namespace: string,
  objects: readonly KubeObject[],
): Promise<void> {
  const typeOf = (object: KubeObject): ResourceType => {
    const type = CHART_KINDS.get(object.kind ?? '');
    if (type === undefined)
      throw new Error(
        `installChart: the chart renders a ${String(object.kind)}, which installChart does not know`,
      );
    return type;
  };
  const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
  for (const crd of crds) await client.apply(builtin.customResourceDefinitions, crd, { force: true });
  await waitFor(
    'the chart CRDs to be Established',
    async () => {
      for (const crd of crds) {
        const served = await client.get(builtin.customResourceDefinitions, crd.metadata?.name ?? '');
        const conditions =
          (served['status'] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ??
          [];
        if (!conditions.some((c) => c.type === 'Established' && c.status === 'True')) return undefined;
      }
      return true;
    },
    { timeoutMs: 60_000 },
  );
  await client.apply(
    builtin.namespaces,
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    { force: true },
  );
  for (const object of objects) {
    if (object.kind === 'CustomResourceDefinition') continue;
    const type = typeOf(object);
    const objectNamespace = type.namespaced ? (object.metadata?.namespace ?? namespace) : undefined;
    await client.apply(type, object, {
      force: true,
      ...(objectNamespace === undefined ? {} : { namespace: objectNamespace }),
    });
  }
  // As `helm install --wait` would: pods that opt in to the webhook are refused until it serves.
  for (const configuration of objects.filter((o) => o.kind === 'MutatingWebhookConfiguration')) {
    const webhooks = (configuration['webhooks'] ?? []) as {
      clientConfig?: { service?: { name: string; namespace: string } };
    }[];
    for (const service of webhooks.flatMap((w) =>
      w.clientConfig?.service === undefined ? [] : [w.clientConfig.service],
    )) {
      await waitFor(
        `ready endpoints of the webhook Service ${service.namespace}/${service.name}`,
        async () => {
          const endpoints = await client
            .get(builtin.endpoints, service.name, { namespace: service.namespace })
            .catch(() => undefined);
          const subsets = (endpoints?.['subsets'] ?? []) as { addresses?: unknown[] }[];
          return subsets.some((subset) => (subset.addresses?.length ?? 0) > 0) ? true : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 500 },
      );
    }
  }
}
