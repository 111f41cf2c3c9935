import type { Level } from '../../api/index.ts';
import type { KubeObject } from '../../kube/index.ts';
import type { LoadPlan, RuntimePlan } from '../types.ts';
import {
  DATASET_ID_LABEL,
  LOAD_LABEL,
  MOUNT_TYPE,
  commonLabels,
  datasetIdValue,
  fluidPath,
  fuseNodeLabel,
  podSelector,
  versionsConfigMapName,
  workerNodeLabels,
  type RuntimeNames,
} from './names.ts';

/** How the Kubernetes platform lays runtimes out; the operator's flags and the Helm values set it. */
export interface KubePlatformSettings {
  /** Images of the cache worker, the FUSE mount and the DataLoad loader (images/README.md). */
  images: { worker: string; fuse: string; loader: string };
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** Name of the CSI driver the PersistentVolumes name (the node plugin that bind-mounts `fluid_path`). */
  csiDriver: string;
  /** Host directory under which FUSE pods mount datasets (Fluid's `runtime.mountRoot`). */
  mountRoot: string;
  /** Port of the cache workers in their pods. */
  workerPort: number;
  /** Directory of the Tide sources in the images (the working directory of every container). */
  appDir: string;
  /** `storageClassName` of the PersistentVolumes and claims (Fluid's is `fluid`). */
  storageClassName: string;
}

export const DEFAULT_SETTINGS: KubePlatformSettings = Object.freeze({
  images: Object.freeze({
    worker: 'ghcr.io/tide-dev/tide-worker:latest',
    fuse: 'ghcr.io/tide-dev/tide-worker:latest',
    loader: 'ghcr.io/tide-dev/tide-loader:latest',
  }),
  imagePullPolicy: 'IfNotPresent',
  csiDriver: 'fuse.csi.tide.io',
  mountRoot: '/runtime-mnt',
  workerPort: 29999,
  appDir: '/opt/tide',
  storageClassName: 'fluid',
});

/** Where the configuration Secret is mounted in every pod. */
export const CONFIG_DIR = '/etc/tide';
/** Kind of the FUSE source module `dataset-source.ts` registers. */
export const SOURCE_KIND = 'tide-kube-dataset';
/** Capacity of the PersistentVolume and its claim. Fluid announces 100Pi, which the API server warns about (its milli-value overflows int64). */
const CAPACITY = '100Ti';

/** The file FUSE pods and loader Jobs open their cache client from (`client.json` of the Secret). */
export interface KubeDatasetClientConfig {
  /** `namespace/name`. */
  datasetId: string;
  namespace: string;
  /** The headless Service whose EndpointSlices list the workers. */
  serviceName: string;
  /** The ConfigMap the loader writes a DataLoad's file versions to and FUSE pods watch. */
  versionsConfigMap: string;
  /** The Secret holding this file, which FUSE pods watch to follow mount changes. */
  configSecret?: string;
  /** The worker's tier directories when FUSE pods mount them too (all hostPath), else empty. */
  shortCircuitDirs?: string[];
  port: number;
  /** The runtime's bearer token. */
  token: string;
  blockSizeBytes: number;
  mounts: {
    path: string;
    mountPoint: string;
    options: Record<string, string>;
    secrets: Record<string, string>;
  }[];
}

/** The three documents of the configuration Secret, as text. */
export type RuntimeConfigFiles = Record<'worker.json' | 'client.json' | 'mount.json', string>;

interface TierLayout {
  volumes: Record<string, unknown>[];
  mounts: { name: string; mountPath: string }[];
  levels: Level[];
  /**
   * Whether every tier directory is a hostPath volume: then FUSE pods mount them read-only at the
   * worker's paths and read a same-node worker's block files directly (short-circuit).
   */
  sharedWithFuse: boolean;
}

/**
 * Volumes of the tiered store, one per directory of each level (Fluid's `tieredstore.levels`):
 * `volumeSource` as written when given; else `volumeType` (default emptyDir for MEM, with
 * `medium: Memory`, and hostPath under `<path>/tide/<ns>/<name>` for SSD and HDD), sized by the
 * level's quota. The worker sees them at `/var/lib/tide/tier-<level>-<dir>`.
 */
export function tierLayout(plan: RuntimePlan): TierLayout {
  const layout: TierLayout = { volumes: [], mounts: [], levels: [], sharedWithFuse: true };
  const levels: readonly Level[] =
    plan.tiers.length > 0 ? plan.tiers : [{ mediumtype: 'SSD', volumeType: 'emptyDir', quota: '10Gi' }];
  for (const [index, level] of levels.entries()) {
    const memory = level.mediumtype === 'MEM';
    const paths = (level.path ?? '')
      .split(',')
      .map((path) => path.trim())
      .filter((path) => path !== '');
    if (paths.length === 0) paths.push(memory ? '/dev/shm' : '/var/lib/tide/cache');
    const quotas = (level.quotaList ?? '').split(',').map((quota) => quota.trim());
    const containerPaths: string[] = [];
    const dirs = level.volumeSource === undefined ? paths : [paths[0] ?? ''];
    for (const [dir, hostPath] of dirs.entries()) {
      const name = `tier-${index}-${dir}`;
      const quota = quotas[dir] !== undefined && quotas[dir] !== '' ? quotas[dir] : level.quota;
      let source: Record<string, unknown>;
      if (level.volumeSource !== undefined) {
        source = { ...level.volumeSource };
      } else if ((level.volumeType ?? (memory ? 'emptyDir' : 'hostPath')) === 'emptyDir') {
        source = {
          emptyDir: {
            ...(memory ? { medium: 'Memory' } : {}),
            ...(quota === undefined ? {} : { sizeLimit: quota }),
          },
        };
      } else {
        source = {
          hostPath: {
            path: `${hostPath.replace(/\/+$/, '')}/tide/${plan.dataset.namespace}/${plan.dataset.name}`,
            type: 'DirectoryOrCreate',
          },
        };
      }
      const mountPath = `/var/lib/tide/${name}`;
      if (!('hostPath' in source)) layout.sharedWithFuse = false;
      layout.volumes.push({ name, ...source });
      layout.mounts.push({ name, mountPath });
      containerPaths.push(mountPath);
    }
    const workerLevel: Level = { mediumtype: level.mediumtype, path: containerPaths.join(',') };
    if (level.quota !== undefined) workerLevel.quota = level.quota;
    if (level.quotaList !== undefined && level.volumeSource === undefined)
      workerLevel.quotaList = level.quotaList;
    if (level.high !== undefined) workerLevel.high = level.high;
    if (level.low !== undefined) workerLevel.low = level.low;
    layout.levels.push(workerLevel);
  }
  return layout;
}

/** The worker, client and mount configurations of a runtime. `token` is the runtime's bearer token. */
export function configFiles(
  plan: RuntimePlan,
  settings: KubePlatformSettings,
  names: RuntimeNames,
  token: string,
): RuntimeConfigFiles {
  const datasetId = `${plan.dataset.namespace}/${plan.dataset.name}`;
  const tiers = tierLayout(plan);
  const mounts = plan.mounts.map((mount) => ({
    path: mount.path,
    mountPoint: mount.mountPoint,
    options: { ...mount.options },
    secrets: Object.fromEntries(Object.entries(mount.secrets).map(([name, value]) => [name, value.reveal()])),
  }));
  const worker = {
    datasetId,
    // Any address but loopback requires the token (src/cache worker.ts).
    host: '0.0.0.0',
    port: workerPortOf(plan, settings),
    token,
    blockSize: plan.blockSizeBytes,
    tieredstore: { levels: tiers.levels },
    mounts: mounts.map(({ mountPoint, options, secrets }) => ({ mountPoint, options, secrets })),
  };
  const client: KubeDatasetClientConfig = {
    datasetId,
    namespace: plan.dataset.namespace,
    serviceName: names.service,
    versionsConfigMap: versionsConfigMapName(plan.dataset),
    configSecret: names.config,
    shortCircuitDirs: tiers.sharedWithFuse ? tiers.mounts.map((mount) => mount.mountPath) : [],
    port: workerPortOf(plan, settings),
    token,
    blockSizeBytes: plan.blockSizeBytes,
    mounts,
  };
  const fuseArgs = [...plan.fuseArgs];
  if (plan.readOnly && !fuseArgs.some((arg) => /(^|[-,=o])ro(,|$)/.test(arg))) fuseArgs.push('-oro');
  // Datasets carry no extended attributes (as the local platform mounts them).
  if (!fuseArgs.some((arg) => arg.includes('xattr'))) fuseArgs.push('-ono_xattr');
  // Applications run as other users than the FUSE pod's root.
  if (!fuseArgs.some((arg) => arg.includes('allow_other'))) fuseArgs.push('-oallow_other');
  const mount = {
    target: fluidPath(settings.mountRoot, plan.dataset),
    fuseArgs,
    source: {
      kind: SOURCE_KIND,
      module: `${settings.appDir}/src/platform/kube/dataset-source.ts`,
      options: { configPath: `${CONFIG_DIR}/client.json` },
    },
  };
  return {
    'worker.json': JSON.stringify(worker),
    'client.json': JSON.stringify(client),
    'mount.json': JSON.stringify(mount),
  };
}

/** The workers' port: the runtime's `worker.port`, or the platform's. */
function workerPortOf(plan: RuntimePlan, settings: KubePlatformSettings): number {
  return plan.pods.workerPort ?? settings.workerPort;
}

/** Pod spec fields every pod of the runtime gets: the dataset's tolerations, the runtime's pull secrets. */
function runtimePodFields(plan: RuntimePlan): Record<string, unknown> {
  const { tolerations, imagePullSecrets } = plan.pods;
  return {
    ...(tolerations !== undefined && { tolerations }),
    ...(imagePullSecrets !== undefined && { imagePullSecrets }),
  };
}

function meta(plan: { dataset: RuntimePlan['dataset'] }, name: string, extra: Record<string, string> = {}) {
  return { name, namespace: plan.dataset.namespace, labels: { ...commonLabels(plan.dataset), ...extra } };
}

export function configSecret(plan: RuntimePlan, names: RuntimeNames, files: RuntimeConfigFiles): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(plan, names.config),
    type: 'Opaque',
    // `data`, not the write-only `stringData`, so that server-side apply owns and compares the content.
    data: Object.fromEntries(
      Object.entries(files).map(([key, text]) => [key, Buffer.from(text, 'utf8').toString('base64')]),
    ),
  };
}

/** The ServiceAccount, Roles and RoleBindings that let FUSE, sidecar and loader pods read the membership and config. */
export function clientAccess(plan: RuntimePlan, names: RuntimeNames): KubeObject[] {
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(plan, names.client) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: meta(plan, names.client),
      rules: [
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
        // The loader writes the versions a DataLoad saw, FUSE pods watch them. Patching it lets a
        // pod of the namespace make mounts drop kernel caches, nothing more: reads check versions.
        {
          apiGroups: [''],
          resources: ['configmaps'],
          resourceNames: [versionsConfigMapName(plan.dataset)],
          verbs: ['get', 'list', 'watch', 'patch'],
        },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: meta(plan, names.client),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: names.client },
      // FUSE sidecars (the webhook's serverless pods) run as their pod's service account, whichever
      // it is: every service account of the namespace may read its workers' EndpointSlices.
      subjects: [
        { kind: 'ServiceAccount', name: names.client, namespace: plan.dataset.namespace },
        {
          kind: 'Group',
          apiGroup: 'rbac.authorization.k8s.io',
          name: `system:serviceaccounts:${plan.dataset.namespace}`,
        },
      ],
    },
    // The config Secret carries credentials: only the platform's own pods (FUSE DaemonSet, loader)
    // may watch it, to follow mount changes; a sidecar reads its mounted copy instead.
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: meta(plan, names.configReader),
      rules: [
        {
          apiGroups: [''],
          resources: ['secrets'],
          resourceNames: [names.config],
          verbs: ['get', 'list', 'watch'],
        },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: meta(plan, names.configReader),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: names.configReader },
      subjects: [{ kind: 'ServiceAccount', name: names.client, namespace: plan.dataset.namespace }],
    },
  ];
}

/** The headless Service of the workers: no virtual IP, one DNS name and endpoint per ready worker. */
export function workerService(
  plan: RuntimePlan,
  names: RuntimeNames,
  settings: KubePlatformSettings,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(plan, names.service),
    spec: {
      clusterIP: 'None',
      selector: podSelector(plan.dataset, 'worker'),
      ports: [{ name: 'http', port: settings.workerPort, targetPort: 'http', protocol: 'TCP' }],
      publishNotReadyAddresses: false,
    },
  };
}

export function workerStatefulSet(
  plan: RuntimePlan,
  names: RuntimeNames,
  settings: KubePlatformSettings,
  configDigest: string,
): KubeObject {
  const selector = podSelector(plan.dataset, 'worker');
  const tiers = tierLayout(plan);
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(plan, names.statefulSet, selector),
    spec: {
      replicas: plan.workers,
      serviceName: names.service,
      // Workers are independent (no quorum), so they start and stop together.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selector },
      template: {
        metadata: {
          labels: { ...commonLabels(plan.dataset), ...selector },
          // A new configuration (credentials, tiers, block size) rolls the workers.
          annotations: { 'tide.io/config-digest': configDigest },
        },
        spec: {
          automountServiceAccountToken: false,
          ...runtimePodFields(plan),
          ...(plan.pods.workerNodeSelector !== undefined && { nodeSelector: plan.pods.workerNodeSelector }),
          affinity: {
            // The dataset's `nodeAffinity.required`: where its cache may live.
            ...(plan.pods.workerNodeAffinity !== undefined && {
              nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: plan.pods.workerNodeAffinity },
            }),
            // One worker of a dataset per node, as Fluid places them: hostPath tiers are per node.
            podAntiAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: [
                { labelSelector: { matchLabels: selector }, topologyKey: 'kubernetes.io/hostname' },
              ],
            },
          },
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'worker',
              image: settings.images.worker,
              imagePullPolicy: settings.imagePullPolicy,
              workingDir: settings.appDir,
              command: ['node', 'src/cache/worker-main.ts', '--config', `${CONFIG_DIR}/worker.json`],
              ports: [{ name: 'http', containerPort: workerPortOf(plan, settings), protocol: 'TCP' }],
              ...(plan.pods.workerResources !== undefined && { resources: plan.pods.workerResources }),
              readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 5 },
              volumeMounts: [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }, ...tiers.mounts],
            },
          ],
          volumes: [
            {
              name: 'config',
              secret: {
                secretName: names.config,
                defaultMode: 0o400,
                items: [{ key: 'worker.json', path: 'worker.json' }],
              },
            },
            ...tiers.volumes,
          ],
        },
      },
    },
  };
}

/**
 * The FUSE DaemonSet. Its node selector is Fluid's lazy-FUSE label `fluid.io/f-<ns>-<name>=true`,
 * which the CSI node plugin puts on a node when a pod there first uses the dataset's volume, so
 * FUSE pods run only where the dataset is used.
 */
export function fuseDaemonSet(
  plan: RuntimePlan,
  names: RuntimeNames,
  settings: KubePlatformSettings,
  configDigest: string,
): KubeObject {
  const selector = podSelector(plan.dataset, 'fuse');
  const mountDir = fluidPath(settings.mountRoot, plan.dataset).replace(/\/[^/]+$/, '');
  // The worker's hostPath tiers, read-only at its paths, for short-circuit reads on its node.
  const tiers = tierLayout(plan);
  const tierVolumes = tiers.sharedWithFuse ? tiers.volumes : [];
  const tierMounts = tiers.sharedWithFuse ? tiers.mounts.map((mount) => ({ ...mount, readOnly: true })) : [];
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: meta(plan, names.daemonSet, selector),
    spec: {
      selector: { matchLabels: selector },
      updateStrategy: { type: 'OnDelete' },
      template: {
        metadata: {
          labels: { ...commonLabels(plan.dataset), ...selector },
          annotations: { 'tide.io/config-digest': configDigest },
        },
        spec: {
          serviceAccountName: names.client,
          ...runtimePodFields(plan),
          // The runtime's `fuse.nodeSelector` narrows the nodes; the lazy label picks those in use.
          nodeSelector: { ...plan.pods.fuseNodeSelector, [fuseNodeLabel(plan.dataset)]: 'true' },
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'fuse',
              // The runtime's `spec.fuse` container fields win; the webhook's sidecars copy this container.
              image: plan.fuseContainer?.image ?? settings.images.fuse,
              imagePullPolicy: plan.fuseContainer?.imagePullPolicy ?? settings.imagePullPolicy,
              workingDir: settings.appDir,
              command: ['node', 'src/fuse/mount-main.ts', `${CONFIG_DIR}/mount.json`],
              env: [
                { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                ...(plan.fuseContainer?.env ?? []),
              ],
              ...(plan.fuseContainer?.resources !== undefined && { resources: plan.fuseContainer.resources }),
              // mount(2) and /dev/fuse; Bidirectional propagation makes the mount visible on the node.
              securityContext: { privileged: true },
              volumeMounts: [
                { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                { name: 'mount-dir', mountPath: mountDir, mountPropagation: 'Bidirectional' },
                { name: 'dev-fuse', mountPath: '/dev/fuse' },
                ...tierMounts,
              ],
            },
          ],
          volumes: [
            {
              name: 'config',
              secret: {
                secretName: names.config,
                defaultMode: 0o400,
                items: [
                  { key: 'client.json', path: 'client.json' },
                  { key: 'mount.json', path: 'mount.json' },
                ],
              },
            },
            { name: 'mount-dir', hostPath: { path: mountDir, type: 'DirectoryOrCreate' } },
            { name: 'dev-fuse', hostPath: { path: '/dev/fuse', type: 'CharDevice' } },
            ...tierVolumes,
          ],
        },
      },
    },
  };
}

function accessModesOf(plan: RuntimePlan): string[] {
  return [plan.readOnly ? 'ReadOnlyMany' : 'ReadWriteMany'];
}

/** Fluid's static PersistentVolume `<ns>-<name>` (fluid-inventory §4) with Fluid's volume attributes. */
export function persistentVolume(
  plan: RuntimePlan,
  names: RuntimeNames,
  settings: KubePlatformSettings,
): KubeObject {
  const [workerLabel] = workerNodeLabels(plan.dataset);
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: {
      name: names.persistentVolume,
      labels: { ...commonLabels(plan.dataset), [workerLabel]: 'true' },
      annotations: { CreatedBy: 'fluid' },
    },
    spec: {
      capacity: { storage: CAPACITY },
      accessModes: accessModesOf(plan),
      persistentVolumeReclaimPolicy: 'Retain',
      storageClassName: settings.storageClassName,
      // As Fluid: pods using the volume go only where the runtime's FUSE may run.
      ...(plan.pods.fuseNodeSelector !== undefined && {
        nodeAffinity: {
          required: {
            nodeSelectorTerms: [
              {
                matchExpressions: Object.entries(plan.pods.fuseNodeSelector).map(([key, value]) => ({
                  key,
                  operator: 'In',
                  values: [value],
                })),
              },
            ],
          },
        },
      }),
      claimRef: { namespace: plan.dataset.namespace, name: names.persistentVolumeClaim },
      csi: {
        driver: settings.csiDriver,
        volumeHandle: names.persistentVolume,
        readOnly: plan.readOnly,
        volumeAttributes: {
          fluid_path: fluidPath(settings.mountRoot, plan.dataset),
          mount_type: MOUNT_TYPE,
          runtime_namespace: plan.dataset.namespace,
          runtime_name: plan.dataset.name,
          mount_pod_node_selector_key: fuseNodeLabel(plan.dataset),
          mount_pod_node_selector_value: 'true',
          // Read by the CSI node plugin at NodeUnstageVolume (src/csi/volume-context.ts).
          fuse_clean_policy: plan.fuseCleanPolicy,
          fuse_daemonset: names.daemonSet,
          [DATASET_ID_LABEL]: datasetIdValue(plan.dataset),
        },
      },
    },
  };
}

export function persistentVolumeClaim(
  plan: RuntimePlan,
  names: RuntimeNames,
  settings: KubePlatformSettings,
): KubeObject {
  const [workerLabel] = workerNodeLabels(plan.dataset);
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      ...meta(plan, names.persistentVolumeClaim, { [workerLabel]: 'true' }),
      annotations: { CreatedBy: 'fluid' },
    },
    spec: {
      accessModes: accessModesOf(plan),
      resources: { requests: { storage: CAPACITY } },
      storageClassName: settings.storageClassName,
      volumeName: names.persistentVolume,
    },
  };
}

/** The Job of one load: `loader-main.ts` with the dataset's client configuration and the plan. */
export function loadJob(
  plan: LoadPlan,
  options: { names: RuntimeNames; settings: KubePlatformSettings; jobName: string; planDigest: string },
): KubeObject {
  const { names, settings, jobName, planDigest } = options;
  const selector = podSelector(plan.dataset, 'loader');
  const { pod = {}, ...loaderPlan } = plan;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      ...meta(plan, jobName, selector),
      labels: { ...commonLabels(plan.dataset), ...selector, [LOAD_LABEL]: planDigest.slice(0, 16) },
    },
    spec: {
      backoffLimit: 3,
      // Finished Jobs go after a day even when the operator is away; it reads them long before.
      ttlSecondsAfterFinished: 86_400,
      template: {
        metadata: {
          // The DataLoad's `podMetadata`; Tide's own labels win, as the Job selects by them.
          labels: { ...pod.labels, ...commonLabels(plan.dataset), ...selector },
          ...(pod.annotations !== undefined && { annotations: pod.annotations }),
        },
        spec: {
          restartPolicy: 'Never',
          serviceAccountName: names.client,
          ...(pod.affinity !== undefined && { affinity: pod.affinity }),
          ...(pod.tolerations !== undefined && { tolerations: pod.tolerations }),
          ...(pod.nodeSelector !== undefined && { nodeSelector: pod.nodeSelector }),
          ...(pod.schedulerName !== undefined && { schedulerName: pod.schedulerName }),
          ...(pod.imagePullSecrets !== undefined && { imagePullSecrets: pod.imagePullSecrets }),
          // The loader image runs as an unprivileged user; fsGroup lets it read the config Secret.
          securityContext: { runAsNonRoot: true, runAsUser: 65_532, runAsGroup: 65_532, fsGroup: 65_532 },
          containers: [
            {
              name: 'loader',
              image: settings.images.loader,
              imagePullPolicy: settings.imagePullPolicy,
              workingDir: settings.appDir,
              command: [
                'node',
                'src/operator/loader-main.ts',
                '--config',
                `${CONFIG_DIR}/client.json`,
                '--plan',
                JSON.stringify(loaderPlan),
              ],
              env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
              ...(pod.resources !== undefined && { resources: pod.resources }),
              // The loader writes its final progress there; the platform reads it back.
              terminationMessagePath: '/dev/termination-log',
              terminationMessagePolicy: 'FallbackToLogsOnError',
              volumeMounts: [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }],
            },
          ],
          volumes: [
            {
              name: 'config',
              secret: {
                secretName: names.config,
                defaultMode: 0o440,
                items: [{ key: 'client.json', path: 'client.json' }],
              },
            },
          ],
        },
      },
    },
  };
}

/** The (empty) ConfigMap of a DataLoad's file versions; the loader fills it (`dataset-versions.ts`). */
export function versionsConfigMap(plan: RuntimePlan): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(plan, versionsConfigMapName(plan.dataset)),
  };
}
