/**
 * The CRDs the k8s tests install: generated from Tide's TypeBox schemas (src/api/crd.ts), the same
 * ones `tide apply --dry-run` validates with.
 */
import { crdFor, findKind, MOUNT_POINT_PATTERN, type KindInfo } from '../../src/api/index.ts';
import { builtin, resourceType, type KubeObject, type ResourceType } from '../../src/kube/index.ts';

export const GROUP = 'data.fluid.io';

export const datasetType = resourceType(`${GROUP}/v1alpha1`, 'Dataset', 'datasets', { namespaced: true });
export const tideRuntimeType = resourceType(`${GROUP}/v1alpha1`, 'TideRuntime', 'tideruntimes', {
  namespaced: true,
});

/** The schema's own messages (Mount in src/api/dataset.ts: a pattern and a CEL rule), asserted by the tests. */
export const MOUNT_POINT_MESSAGE = `should match '${MOUNT_POINT_PATTERN}'`;
export const MOUNT_PATH_MESSAGE = 'path must be absolute';

function generated(kind: string): KubeObject {
  return crdFor(findKind(kind) as KindInfo);
}

export const DATASET_CRD: KubeObject = generated('Dataset');
export const TIDE_RUNTIME_CRD: KubeObject = generated('TideRuntime');

/** A Dataset the schema accepts. */
export function validDataset(name: string, namespace: string): KubeObject {
  return {
    apiVersion: `${GROUP}/v1alpha1`,
    kind: 'Dataset',
    metadata: { name, namespace },
    spec: {
      mounts: [{ name: 'imagenet', mountPoint: 's3://bucket/imagenet', path: '/imagenet', readOnly: true }],
      placement: 'Exclusive',
    },
  };
}

/** A Dataset that breaks the CEL rules on `mountPoint` and `path`. */
export function invalidDataset(name: string, namespace: string): KubeObject {
  return {
    apiVersion: `${GROUP}/v1alpha1`,
    kind: 'Dataset',
    metadata: { name, namespace },
    spec: { mounts: [{ name: 'bad', mountPoint: 'ftp://example.com/data', path: 'relative/dir' }] },
  };
}

/** The kinds of the chart's RBAC objects (`helm template` output), to create them in a test cluster. */
export const CHART_RBAC_TYPES: ReadonlyMap<string, ResourceType> = new Map([
  ['ServiceAccount', builtin.serviceAccounts],
  [
    'ClusterRole',
    resourceType('rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', { namespaced: false }),
  ],
  [
    'ClusterRoleBinding',
    resourceType('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', 'clusterrolebindings', {
      namespaced: false,
    }),
  ],
  ['Role', resourceType('rbac.authorization.k8s.io/v1', 'Role', 'roles', { namespaced: true })],
  [
    'RoleBinding',
    resourceType('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings', { namespaced: true }),
  ],
]);

/**
 * The resource type of one of Tide's kinds (Dataset, DataLoad, the runtimes), and of `Secret`,
 * so that a test can apply the documents of an example as they come.
 * @throws {Error} for any other kind
 */
export function exampleKindType(kind: string): ResourceType {
  if (kind === 'Secret') return builtin.secrets;
  const info = findKind(kind);
  if (info === undefined || info.apiVersion === 'v1') throw new Error(`no resource type for kind ${kind}`);
  return resourceType(info.apiVersion, info.kind, info.plural, { namespaced: true });
}
