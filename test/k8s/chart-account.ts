/**
 * The chart's RBAC in a test cluster and a kubeconfig of its operator ServiceAccount, so that an
 * operator started with it proves the chart grants what the operator uses.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { builtin, type KubeClient, type KubeObject } from '../../src/kube/index.ts';
import type { TestCluster } from './cluster.ts';
import { CHART_RBAC_TYPES } from './fixtures.ts';
import { helmPath } from './helm.ts';

const run = promisify(execFile);
const CHART = join(import.meta.dirname, '..', '..', 'charts', 'tide');

/**
 * Renders the chart with `values`, creates its ServiceAccounts and RBAC in `namespace` (created
 * here), and writes `<dir>/operator-kubeconfig` with an hour's token of the operator's account.
 * @returns the kubeconfig's path
 */
export async function chartOperatorKubeconfig(options: {
  cluster: TestCluster;
  kube: KubeClient;
  namespace: string;
  dir: string;
  values: readonly string[];
}): Promise<string> {
  const { cluster, kube, namespace } = options;
  const { stdout } = await run(
    helmPath(),
    ['template', 'tide', CHART, '-n', namespace, ...options.values.flatMap((value) => ['--set', value])],
    { timeout: 60_000 },
  );
  await kube.create(builtin.namespaces, { metadata: { name: namespace } });
  let account = '';
  for (const document of parseAllDocuments(stdout)) {
    const object = document.toJSON() as (KubeObject & { metadata: { name: string } }) | null;
    const type = CHART_RBAC_TYPES.get(object?.kind ?? '');
    if (object === null || type === undefined) continue;
    await kube.create(type, object, { namespace });
    // The operator's account; the CSI node plugin has its own (`<fullname>-csi`).
    if (object.kind === 'ServiceAccount' && !object.metadata.name.endsWith('-csi'))
      account = object.metadata.name;
  }
  const token = await kube.request<{ status: { token: string } }>({
    method: 'POST',
    path: `/api/v1/namespaces/${namespace}/serviceaccounts/${account}/token`,
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  const path = join(options.dir, 'operator-kubeconfig');
  const ca = Buffer.from(cluster.caPem).toString('base64');
  await writeFile(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: cluster.server, 'certificate-authority-data': ca } }],
      users: [{ name: account, user: { token: token.status.token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: account, namespace } }],
      'current-context': 'test',
    }),
    { mode: 0o600 },
  );
  return path;
}
