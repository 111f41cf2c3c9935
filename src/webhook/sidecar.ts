/**
 * FuseSidecar: a serverless pod (no FUSE DaemonSet and no CSI plugin on its node) gets the
 * runtime's FUSE container as a native sidecar, an init container with `restartPolicy: Always`
 * (Kubernetes 1.29+). Its startup probe passes once the dataset is mounted and serves, so the
 * application containers start after it, and a Job's pod completes when they end.
 *
 * The dataset's PVC volume becomes an emptyDir: the sidecar mounts the dataset on it with
 * Bidirectional propagation, the application containers see the mount through HostToContainer.
 * The container is the one of the runtime's FUSE DaemonSet (image, command, configuration Secret,
 * environment, resources), so the pod runs what the platform runs on nodes; its hostPath volumes
 * (the node's mount directory and /dev/fuse) are left out: a privileged container has /dev/fuse.
 */
import { WebhookError } from './errors.ts';
import type { DatasetUse, FuseTemplate } from './dataset-use.ts';
import {
  FUSE_CONTAINER_NAME,
  INJECT_DONE,
  MANAGED_BY,
  MANAGED_BY_VALUE,
  SIDECAR_DATASET_NAME_PREFIX,
  SIDECAR_DATASET_NAMESPACE_PREFIX,
} from './fluid-labels.ts';
import type { Container, Pod, Volume } from './pod.ts';

export interface SidecarOptions {
  /** The mount's filesystem type, which the startup probe looks for (`fuse.tide`). */
  mountType: string;
  /** Seconds the startup probe allows the mount to come up; default 120. */
  startupTimeoutSeconds?: number;
}

const FUSE_NAME = new RegExp(`^${FUSE_CONTAINER_NAME}-(\\d+)$`);

/** Sidecars injected in an earlier round (a reinvocation), so that names go on from there. */
function injectedCount(pod: Pod): number {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers].filter((c) => FUSE_NAME.test(c.name))
    .length;
}

/** A shell test that the FUSE mount of `target` is in this container's mount table and answers. */
function mountServes(target: string, mountType: string): string[] {
  const pattern = ` ${target.replace(/[.[\]\\^$*]/g, '\\$&')} .* - ${mountType.replace(/\./g, '\\.')} `;
  return ['sh', '-c', `grep -q '${pattern}' /proc/self/mountinfo && ls '${target}' >/dev/null`];
}

function sidecarOf(
  template: FuseTemplate,
  options: { name: string; volume: string; rename: ReadonlyMap<string, string>; sidecar: SidecarOptions },
): Container {
  const container = structuredClone(template.container);
  const periodSeconds = 1;
  container.name = options.name;
  container.restartPolicy = 'Always';
  container.volumeMounts = [
    ...(container.volumeMounts ?? [])
      .filter((mount) => options.rename.has(mount.name))
      .map((mount) => ({ ...mount, name: options.rename.get(mount.name) ?? mount.name })),
    { name: options.volume, mountPath: template.mountPath, mountPropagation: 'Bidirectional' },
  ];
  container.startupProbe = {
    exec: { command: mountServes(template.mountPath, options.sidecar.mountType) },
    periodSeconds,
    timeoutSeconds: 5,
    failureThreshold: Math.ceil((options.sidecar.startupTimeoutSeconds ?? 120) / periodSeconds),
  };
  return container;
}

/**
 * Injects one FUSE sidecar per dataset the pod uses, in claim order, each prepended to the init
 * containers (as Fluid does), named `fluid-fuse-<n>`.
 * @throws {WebhookError} ERR_WEBHOOK_SIDECAR when a dataset's FUSE template is missing
 */
export function injectFuseSidecars(pod: Pod, datasets: readonly DatasetUse[], options: SidecarOptions): void {
  let index = injectedCount(pod);
  const labels = { ...pod.metadata.labels };
  for (const use of datasets) {
    const template = use.fuse;
    if (template === undefined)
      throw new WebhookError(
        'ERR_WEBHOOK_SIDECAR',
        `dataset ${use.dataset.namespace}/${use.dataset.name} has no FUSE DaemonSet to make the sidecar of`,
      );
    const name = `${FUSE_CONTAINER_NAME}-${index}`;
    index += 1;
    const volumes = pod.spec.volumes ?? [];
    const claimed = volumes.filter((volume) => volume.persistentVolumeClaim?.claimName === use.claimName);
    const [first] = claimed;
    if (first === undefined) continue;
    // Every volume of the claim becomes the one emptyDir the sidecar mounts the dataset on.
    const replaced = new Set(claimed.map((volume) => volume.name));
    const kept: Volume[] = volumes.filter((volume) => volume === first || !replaced.has(volume.name));
    const emptyDir: Volume = { name: first.name, emptyDir: {} };
    const rename = new Map<string, string>();
    const added: Volume[] = [];
    for (const volume of template.volumes) {
      // hostPath volumes are the node's: a serverless pod has none (and a privileged container has /dev/fuse).
      if ('hostPath' in volume) continue;
      const renamed = `${name}-${volume.name}`;
      rename.set(volume.name, renamed);
      added.push({ ...structuredClone(volume), name: renamed });
    }
    pod.spec.volumes = [...kept.map((volume) => (volume === first ? emptyDir : volume)), ...added];
    for (const container of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
      for (const mount of container.volumeMounts ?? []) {
        if (!replaced.has(mount.name)) continue;
        mount.name = first.name;
        mount.mountPropagation = 'HostToContainer';
      }
    }
    const sidecar = sidecarOf(template, { name, volume: first.name, rename, sidecar: options });
    pod.spec.initContainers = [sidecar, ...(pod.spec.initContainers ?? [])];
    labels[`${SIDECAR_DATASET_NAMESPACE_PREFIX}${name}`] = use.dataset.namespace;
    labels[`${SIDECAR_DATASET_NAME_PREFIX}${name}`] = use.dataset.name;
  }
  labels[INJECT_DONE] = 'true';
  labels[MANAGED_BY] = MANAGED_BY_VALUE;
  pod.metadata.labels = labels;
}
