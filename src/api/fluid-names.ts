/**
 * Fluid's names for a dataset's Kubernetes objects and node labels, shared by the platform (which
 * writes them) and the admission webhook (which reads them), so both spell them the same way.
 */
import { createHash } from 'node:crypto';

/** A dataset by namespace and name (Fluid binds a runtime to the dataset of the same name). */
export interface DatasetKey {
  namespace: string;
  name: string;
}

/** Fluid's runtime type in label keys and paths (`fluid.io/s-<type>-<ns>-<name>`, `/runtime-mnt/<type>/…`). */
export const RUNTIME_TYPE = 'tide';
export const DATASET_ID_LABEL = 'fluid.io/dataset-id';
/** Node label: how many datasets have a cache worker on the node (Fluid's `fluid.io/dataset-num`). */
export const DATASET_NUM_LABEL = 'fluid.io/dataset-num';

/** Label values and name segments are at most 63 characters (Kubernetes object-meta rules). */
const MAX_LABEL = 63;

export function shortHash(text: string, length = 10): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/**
 * `<prefix><ns>-<name>` when it fits in 63 characters, else `<prefix>` and a hash of it. Fluid falls
 * back to the dataset's UID (`utils.GetNamespacedNameValueWithPrefix`); the plan carries no UID,
 * and a hash is as stable and as unique for our purpose.
 */
export function namespacedValue(prefix: string, dataset: DatasetKey): string {
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
  /** Role and RoleBinding letting the client ServiceAccount alone watch the config Secret. */
  configReader: string;
  /** Cluster-scoped PersistentVolume `<ns>-<name>`, as Fluid names it. */
  persistentVolume: string;
  persistentVolumeClaim: string;
}

/**
 * Names of at most 52 characters: a StatefulSet's `controller-revision-hash` label is its name and
 * 11 more characters, and label values stop at 63.
 */
const MAX_NAME = MAX_LABEL - 11;

export function fitName(base: string, suffix: string): string {
  if (base.length + suffix.length <= MAX_NAME) return `${base}${suffix}`;
  return `${base.slice(0, MAX_NAME - suffix.length - 11)}-${shortHash(base)}${suffix}`;
}

export function namesOf(dataset: DatasetKey): RuntimeNames {
  const { name } = dataset;
  return {
    config: fitName(name, '-tide-config'),
    service: fitName(name, '-worker'),
    statefulSet: fitName(name, '-worker'),
    daemonSet: fitName(name, '-fuse'),
    client: fitName(name, '-tide-client'),
    configReader: fitName(name, '-tide-config-reader'),
    persistentVolume: `${dataset.namespace}-${name}`,
    persistentVolumeClaim: name,
  };
}

/** Node label of Fluid's lazy FUSE: the DaemonSet's pods run only on nodes carrying it. */
export function fuseNodeLabel(dataset: DatasetKey): string {
  return `fluid.io/${namespacedValue('f-', dataset)}`;
}

/**
 * Node labels of the nodes that run a worker of the dataset (fluid-inventory §3.4/§3.5): the
 * common one `fluid.io/s-<ns>-<name>` first, then the runtime type's `fluid.io/s-tide-<ns>-<name>`.
 */
export function workerNodeLabels(dataset: DatasetKey): [common: string, runtime: string] {
  return [
    `fluid.io/${namespacedValue('s-', dataset)}`,
    `fluid.io/${namespacedValue(`s-${RUNTIME_TYPE}-`, dataset)}`,
  ];
}

/** Value of `fluid.io/dataset-id`: `<ns>-<name>`, hashed when longer than a label value may be. */
export function datasetIdValue(dataset: DatasetKey): string {
  return namespacedValue('', dataset);
}

/** Where the FUSE pod mounts the dataset on its node (Fluid's `fluid_path`). */
export function fluidPath(mountRoot: string, dataset: DatasetKey): string {
  return `${mountRoot}/${RUNTIME_TYPE}/${dataset.namespace}/${dataset.name}/${RUNTIME_TYPE}-fuse`;
}
