/**
 * The CRDs the k8s tests install: generated from Tide's TypeBox schemas (src/api/crd.ts), the same
 * ones `tide apply --dry-run` validates with.
 */
import { crdFor, findKind, MOUNT_POINT_PATTERN, type KindInfo } from '../../src/api/index.ts';
import { resourceType, type KubeObject } from '../../src/kube/index.ts';

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
