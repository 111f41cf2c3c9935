import { createHash } from 'node:crypto';
import { resourceType } from '../../kube/index.ts';
import type { DatasetRef } from '../types.ts';

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

/** Fluid's runtime type in label keys and paths (`fluid.io/s-<type>-<ns>-<name>`, `/runtime-mnt/<type>/…`). */
export const RUNTIME_TYPE = 'tide';
/** The filesystem type Tide's FUSE server mounts with (`fuse.<subtype>`), Fluid's `mount_type`. */
export const MOUNT_TYPE = 'fuse.tide';
/** Label of every object the platform creates, so that `remove` finds them all. */
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'tide' } as const;
export const DATASET_ID_LABEL = 'fluid.io/dataset-id';
/** Label of the Jobs that run DataLoads. */
export const LOAD_LABEL = 'tide.io/load';

/** Label values and name segments are at most 63 characters (Kubernetes object-meta rules). */
const MAX_LABEL = 63;

function shortHash(text: string, length = 10): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/**
 * `<prefix><ns>-<name>` when it fits in 63 characters, else `<prefix>` and a hash of it. Fluid falls
 * back to the dataset's UID (`utils.GetNamespacedNameValueWithPrefix`); the plan carries no UID,
 * and a hash is as stable and as unique for our purpose.
 */
export function namespacedValue(prefix: string, dataset: DatasetRef): string {
  const value = `${prefix}${dataset.namespace}-${dataset.name}`;
  return value.length <= MAX_LABEL ? value : `${prefix}${shortHash(value, 20)}`;
}

/** Resource names of one dataset's runtime (namespace scoped unless said otherwise). */
export interface RuntimeNames {
  /** Secret holding the worker, client and mount configurations (they carry credentials). */
  config: string;
  /** Headless Service; its EndpointSlices are the workers' membership. */
  service: string;
  statefulSet: string;
  daemonSet: string;
  /** ServiceAccount, Role and RoleBinding of the pods that read the membership (FUSE, loader). */
  client: string;
  /** Cluster-scoped PersistentVolume `<ns>-<name>`, as Fluid names it. */
  persistentVolume: string;
  persistentVolumeClaim: string;
}

/**
 * Names of at most 52 characters: a StatefulSet's `controller-revision-hash` label is its name and
 * 11 more characters, and label values stop at 63.
 */
const MAX_NAME = MAX_LABEL - 11;

function fit(base: string, suffix: string): string {
  if (base.length + suffix.length <= MAX_NAME) return `${base}${suffix}`;
  return `${base.slice(0, MAX_NAME - suffix.length - 11)}-${shortHash(base)}${suffix}`;
}

export function namesOf(dataset: DatasetRef): RuntimeNames {
  const { name } = dataset;
  return {
    config: fit(name, '-tide-config'),
    service: fit(name, '-worker'),
    statefulSet: fit(name, '-worker'),
    daemonSet: fit(name, '-fuse'),
    client: fit(name, '-tide-client'),
    persistentVolume: `${dataset.namespace}-${name}`,
    persistentVolumeClaim: name,
  };
}

/** Node label of Fluid's lazy FUSE: the DaemonSet's pods run only on nodes carrying it. */
export function fuseNodeLabel(dataset: DatasetRef): string {
  return `fluid.io/${namespacedValue('f-', dataset)}`;
}

/** Node labels of the nodes that run a worker of the dataset (fluid-inventory §3.4/§3.5). */
export function workerNodeLabels(dataset: DatasetRef): string[] {
  return [
    `fluid.io/${namespacedValue('s-', dataset)}`,
    `fluid.io/${namespacedValue(`s-${RUNTIME_TYPE}-`, dataset)}`,
  ];
}

/** Value of `fluid.io/dataset-id`: `<ns>-<name>`, hashed when longer than a label value may be. */
export function datasetIdValue(dataset: DatasetRef): string {
  return namespacedValue('', dataset);
}

/** Labels of every object of the dataset's runtime. */
export function commonLabels(dataset: DatasetRef): Record<string, string> {
  return { ...MANAGED_BY, [DATASET_ID_LABEL]: datasetIdValue(dataset) };
}

/** Labels selecting the pods of one role; `app=tide,role=tide-worker,release=<name>` is the runtime's `status.selector`. */
export function podSelector(dataset: DatasetRef, role: 'worker' | 'fuse' | 'loader'): Record<string, string> {
  return { app: 'tide', role: `tide-${role}`, release: dataset.name };
}

/** Where the FUSE pod mounts the dataset on its node (Fluid's `fluid_path`). */
export function fluidPath(mountRoot: string, dataset: DatasetRef): string {
  return `${mountRoot}/${RUNTIME_TYPE}/${dataset.namespace}/${dataset.name}/${RUNTIME_TYPE}-fuse`;
}

/** Job name of a load: the same plan gets the same name, so a restarted operator finds its Job. */
export function loadJobName(dataset: DatasetRef, planDigest: string): string {
  return fit(dataset.name, `-load-${planDigest.slice(0, 8)}`);
}

export function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
