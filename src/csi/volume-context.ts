import { isAbsolute, normalize } from 'node:path';
import { CsiError } from './errors.ts';

/** The policies of a runtime's `spec.fuse.cleanPolicy` (Fluid's); '' is Fluid's default, OnRuntimeDeleted. */
export type FuseCleanPolicy = 'OnDemand' | 'OnRuntimeDeleted' | 'OnFuseChanged';
const CLEAN_POLICIES: readonly string[] = ['OnDemand', 'OnRuntimeDeleted', 'OnFuseChanged'];

/**
 * The attribute names of a Tide PersistentVolume's `csi.volumeAttributes`, which the kubelet passes
 * as the volume context (written by src/platform/kube/manifests.ts; Fluid's names where Fluid has one).
 */
export const VolumeAttribute = Object.freeze({
  fluidPath: 'fluid_path',
  subPath: 'fluid_sub_path',
  mountType: 'mount_type',
  runtimeNamespace: 'runtime_namespace',
  runtimeName: 'runtime_name',
  nodeSelectorKey: 'mount_pod_node_selector_key',
  nodeSelectorValue: 'mount_pod_node_selector_value',
  cleanPolicy: 'fuse_clean_policy',
  fuseDaemonSet: 'fuse_daemonset',
});

/** The FUSE filesystem type Tide's mounts have (`fuse.<subtype>`). */
export const DEFAULT_MOUNT_TYPE = 'fuse.tide';

/** What the plugin needs to know of a volume, parsed once from its volume context. */
export interface VolumeAttributes {
  /** Where the node's FUSE pod mounts the dataset. */
  fluidPath: string;
  /** A directory of the dataset to publish instead of its root ('' for the root). */
  subPath: string;
  mountType: string;
  /** The dataset (and its runtime, Fluid binds them by name); absent outside a cluster. */
  dataset?: { namespace: string; name: string };
  /** The lazy-FUSE node label and its value. */
  nodeLabel?: { key: string; value: string };
  cleanPolicy: FuseCleanPolicy;
  /** The runtime's FUSE DaemonSet (for OnFuseChanged). */
  fuseDaemonSet?: string;
}

function invalid(message: string): CsiError {
  return new CsiError('ERR_CSI_INVALID_ARGUMENT', message);
}

/**
 * Parses the volume context of a Stage or Publish request.
 * @throws {CsiError} ERR_CSI_INVALID_ARGUMENT naming the first attribute that is missing or wrong
 */
export function parseVolumeContext(
  context: Readonly<Record<string, string>> | undefined,
  options: { requireNodeLabel: boolean; mountRoot?: string },
): VolumeAttributes {
  const get = (name: string): string => context?.[name] ?? '';
  const fluidPath = get(VolumeAttribute.fluidPath);
  if (fluidPath === '') {
    throw invalid(
      `volume_context.${VolumeAttribute.fluidPath} is required: the PersistentVolume is not Tide's`,
    );
  }
  const trimmed = fluidPath.replace(/(.)\/+$/, '$1');
  if (!isAbsolute(fluidPath) || normalize(trimmed) !== trimmed) {
    throw invalid(
      `volume_context.${VolumeAttribute.fluidPath} must be a normalized absolute path, got "${fluidPath}"`,
    );
  }
  // The plugin bind-mounts fluid_path into pods: only FUSE mounts under the runtimes' mount root.
  if (options.mountRoot !== undefined && !trimmed.startsWith(`${options.mountRoot.replace(/\/+$/, '')}/`)) {
    throw invalid(
      `volume_context.${VolumeAttribute.fluidPath} "${fluidPath}" is outside the FUSE mount root ${options.mountRoot}`,
    );
  }
  const subPath = get(VolumeAttribute.subPath).replace(/^\/+|\/+$/g, '');
  if (subPath.split('/').some((segment) => segment === '..')) {
    throw invalid(`volume_context.${VolumeAttribute.subPath} must stay inside the dataset, got "${subPath}"`);
  }
  const cleanPolicy = get(VolumeAttribute.cleanPolicy) || 'OnRuntimeDeleted';
  if (!CLEAN_POLICIES.includes(cleanPolicy)) {
    throw invalid(
      `volume_context.${VolumeAttribute.cleanPolicy} must be one of ${CLEAN_POLICIES.join(', ')}, got "${cleanPolicy}"`,
    );
  }
  const attributes: VolumeAttributes = {
    fluidPath: trimmed,
    subPath,
    mountType: get(VolumeAttribute.mountType) || DEFAULT_MOUNT_TYPE,
    cleanPolicy: cleanPolicy as FuseCleanPolicy,
  };
  const namespace = get(VolumeAttribute.runtimeNamespace);
  const name = get(VolumeAttribute.runtimeName);
  if (namespace !== '' && name !== '') attributes.dataset = { namespace, name };
  const key = get(VolumeAttribute.nodeSelectorKey);
  if (key !== '') {
    attributes.nodeLabel = { key, value: get(VolumeAttribute.nodeSelectorValue) || 'true' };
  } else if (options.requireNodeLabel) {
    throw invalid(
      `volume_context.${VolumeAttribute.nodeSelectorKey} is required to start the FUSE pod on the node`,
    );
  }
  const daemonSet = get(VolumeAttribute.fuseDaemonSet);
  if (daemonSet !== '') attributes.fuseDaemonSet = daemonSet;
  return attributes;
}
