import { createHash } from 'node:crypto';
import { datasetIdValue, DATASET_ID_LABEL, fitName } from '../../api/index.ts';
import { resourceType } from '../../kube/index.ts';
import type { DatasetRef } from '../types.ts';

export {
  DATASET_ID_LABEL,
  DATASET_NUM_LABEL,
  RUNTIME_TYPE,
  datasetIdValue,
  fluidPath,
  fuseNodeLabel,
  namespacedValue,
  namesOf,
  workerNodeLabels,
  type RuntimeNames,
} from '../../api/index.ts';

/** Kinds the Kubernetes platform writes that `builtin` of src/kube does not list. */
export const extraTypes = Object.freeze({
  endpointSlices: resourceType('discovery.k8s.io/v1', 'EndpointSlice', 'endpointslices', {
    namespaced: true,
  }),
  roles: resourceType('rbac.authorization.k8s.io/v1', 'Role', 'roles', { namespaced: true }),
  roleBindings: resourceType('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings', {
    namespaced: true,
  }),
});

/** The filesystem type Tide's FUSE server mounts with (`fuse.<subtype>`), Fluid's `mount_type`. */
export const MOUNT_TYPE = 'fuse.tide';
/** Label of every object the platform creates, so that `remove` finds them all. */
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'tide' } as const;
/** Label of the Jobs that run DataLoads. */
export const LOAD_LABEL = 'tide.io/load';

/** Labels of every object of the dataset's runtime. */
export function commonLabels(dataset: DatasetRef): Record<string, string> {
  return { ...MANAGED_BY, [DATASET_ID_LABEL]: datasetIdValue(dataset) };
}

/** Labels selecting the pods of one role; `app=tide,role=tide-worker,release=<name>` is the runtime's `status.selector`. */
export function podSelector(dataset: DatasetRef, role: 'worker' | 'fuse' | 'loader'): Record<string, string> {
  return { app: 'tide', role: `tide-${role}`, release: dataset.name };
}

/** Job name of a load: the same plan gets the same name, so a restarted operator finds its Job. */
export function loadJobName(dataset: DatasetRef, planDigest: string): string {
  return fitName(dataset.name, `-load-${planDigest.slice(0, 8)}`);
}

export function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The ConfigMap of the file versions the last DataLoad saw. */
export function versionsConfigMapName(dataset: DatasetRef): string {
  return fitName(dataset.name, '-load-versions');
}
