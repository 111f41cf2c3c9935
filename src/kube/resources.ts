import type { ResourceType } from './types.ts';

/** Declares where a kind is served. `apiVersion` is `v1` for the core group or `group/version`. */
export function resourceType(
  apiVersion: string,
  kind: string,
  plural: string,
  options: { namespaced: boolean },
): ResourceType {
  const slash = apiVersion.indexOf('/');
  const group = slash === -1 ? '' : apiVersion.slice(0, slash);
  const version = slash === -1 ? apiVersion : apiVersion.slice(slash + 1);
  if (version === '' || plural === '' || kind === '') {
    throw new TypeError(
      `Cannot declare resource type as apiVersion, kind and plural must be non-empty: got ${JSON.stringify({ apiVersion, kind, plural })}`,
    );
  }
  return Object.freeze({ group, version, plural, kind, namespaced: options.namespaced });
}

/** `v1` or `group/version`, as written in an object's `apiVersion`. */
export function apiVersionOf(type: ResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

/** Built-in kinds Tide and its tests touch. */
export const builtin = Object.freeze({
  namespaces: resourceType('v1', 'Namespace', 'namespaces', { namespaced: false }),
  nodes: resourceType('v1', 'Node', 'nodes', { namespaced: false }),
  pods: resourceType('v1', 'Pod', 'pods', { namespaced: true }),
  services: resourceType('v1', 'Service', 'services', { namespaced: true }),
  endpoints: resourceType('v1', 'Endpoints', 'endpoints', { namespaced: true }),
  configMaps: resourceType('v1', 'ConfigMap', 'configmaps', { namespaced: true }),
  secrets: resourceType('v1', 'Secret', 'secrets', { namespaced: true }),
  serviceAccounts: resourceType('v1', 'ServiceAccount', 'serviceaccounts', { namespaced: true }),
  events: resourceType('v1', 'Event', 'events', { namespaced: true }),
  persistentVolumes: resourceType('v1', 'PersistentVolume', 'persistentvolumes', { namespaced: false }),
  persistentVolumeClaims: resourceType('v1', 'PersistentVolumeClaim', 'persistentvolumeclaims', {
    namespaced: true,
  }),
  deployments: resourceType('apps/v1', 'Deployment', 'deployments', { namespaced: true }),
  replicaSets: resourceType('apps/v1', 'ReplicaSet', 'replicasets', { namespaced: true }),
  statefulSets: resourceType('apps/v1', 'StatefulSet', 'statefulsets', { namespaced: true }),
  daemonSets: resourceType('apps/v1', 'DaemonSet', 'daemonsets', { namespaced: true }),
  jobs: resourceType('batch/v1', 'Job', 'jobs', { namespaced: true }),
  cronJobs: resourceType('batch/v1', 'CronJob', 'cronjobs', { namespaced: true }),
  leases: resourceType('coordination.k8s.io/v1', 'Lease', 'leases', { namespaced: true }),
  customResourceDefinitions: resourceType(
    'apiextensions.k8s.io/v1',
    'CustomResourceDefinition',
    'customresourcedefinitions',
    { namespaced: false },
  ),
  mutatingWebhookConfigurations: resourceType(
    'admissionregistration.k8s.io/v1',
    'MutatingWebhookConfiguration',
    'mutatingwebhookconfigurations',
    { namespaced: false },
  ),
  validatingWebhookConfigurations: resourceType(
    'admissionregistration.k8s.io/v1',
    'ValidatingWebhookConfiguration',
    'validatingwebhookconfigurations',
    { namespaced: false },
  ),
  csiDrivers: resourceType('storage.k8s.io/v1', 'CSIDriver', 'csidrivers', { namespaced: false }),
  storageClasses: resourceType('storage.k8s.io/v1', 'StorageClass', 'storageclasses', { namespaced: false }),
});
