import { isAbsolute, resolve, sep } from 'node:path';
import { CsiError } from './errors.ts';
import type {
  NodePublishVolumeRequest,
  NodeStageVolumeRequest,
  NodeUnpublishVolumeRequest,
  NodeUnstageVolumeRequest,
  VolumeCapability,
} from './requests.ts';
import { parseVolumeContext, type VolumeAttributes } from './volume-context.ts';

/**
 * Request checks in the order the CSI spec's callers (and csi-sanity) expect: the volume id, then
 * the paths, then the capability, then the volume context. Every failure is INVALID_ARGUMENT and
 * names the field.
 */

/** The directories requests may name: the kubelet's, and the FUSE mounts' (`--mount-root`). */
export interface PathRoots {
  kubeletDir: string;
  mountRoot: string;
}

function invalid(message: string): CsiError {
  return new CsiError('ERR_CSI_INVALID_ARGUMENT', message);
}

function requireVolumeId(volumeId: string | undefined, call: string): string {
  if (volumeId === undefined || volumeId === '') throw invalid(`${call}: volume_id is required`);
  return volumeId;
}

/**
 * A path the kubelet gave, which must lie inside `root` (the kubelet's directory): the plugin runs
 * privileged and must not mount or remove directories anywhere else on the node.
 */
function requirePathUnder(path: string | undefined, field: string, call: string, root: string): string {
  if (path === undefined || path === '') throw invalid(`${call}: ${field} is required`);
  if (!isAbsolute(path)) throw invalid(`${call}: ${field} must be an absolute path, got "${path}"`);
  const resolved = resolve(path);
  if (!resolved.startsWith(root.endsWith(sep) ? root : root + sep)) {
    throw invalid(`${call}: ${field} "${path}" is outside the kubelet directory ${root}`);
  }
  return resolved;
}

/** The volume id, then the path: what every Node call checks first. */
function requireIdAndPath(
  call: string,
  request: { volumeId?: string | undefined },
  path: { value: string | undefined; field: string },
  kubeletDir: string,
): { volumeId: string; path: string } {
  const volumeId = requireVolumeId(request.volumeId, call);
  return { volumeId, path: requirePathUnder(path.value, path.field, call, kubeletDir) };
}

/** Whether the capability asks for a read-only volume. */
function checkCapability(
  capability: VolumeCapability | null | undefined,
  field: string,
  call: string,
): boolean {
  if (capability === undefined || capability === null) throw invalid(`${call}: ${field} is required`);
  if (capability.accessType === 'block' || (capability.block !== undefined && capability.block !== null)) {
    throw invalid(
      `${call}: ${field}.block is not supported: a dataset is a filesystem, use a mount capability`,
    );
  }
  const mode = capability.accessMode?.mode;
  if (mode === undefined || mode === 'UNKNOWN' || mode === 0) {
    throw invalid(`${call}: ${field}.access_mode is required`);
  }
  if (typeof mode === 'number') throw invalid(`${call}: ${field}.access_mode ${mode} is not a known mode`);
  return mode === 'MULTI_NODE_READER_ONLY' || mode === 'SINGLE_NODE_READER_ONLY';
}

export interface StageRequest {
  volumeId: string;
  stagingPath: string;
  attributes: VolumeAttributes;
}

export function validateStage(request: NodeStageVolumeRequest, roots: PathRoots): StageRequest {
  const call = 'NodeStageVolume';
  const { volumeId, path: stagingPath } = requireIdAndPath(
    call,
    request,
    { value: request.stagingTargetPath, field: 'staging_target_path' },
    roots.kubeletDir,
  );
  checkCapability(request.volumeCapability, 'volume_capability', call);
  const attributes = parseVolumeContext(request.volumeContext, {
    requireNodeLabel: true,
    mountRoot: roots.mountRoot,
  });
  return { volumeId, stagingPath, attributes };
}

export interface UnstageRequest {
  volumeId: string;
  stagingPath: string;
}

export function validateUnstage(request: NodeUnstageVolumeRequest, roots: PathRoots): UnstageRequest {
  const call = 'NodeUnstageVolume';
  const { volumeId, path: stagingPath } = requireIdAndPath(
    call,
    request,
    { value: request.stagingTargetPath, field: 'staging_target_path' },
    roots.kubeletDir,
  );
  return { volumeId, stagingPath };
}

export interface PublishRequest {
  volumeId: string;
  targetPath: string;
  readOnly: boolean;
  attributes: VolumeAttributes;
}

export function validatePublish(request: NodePublishVolumeRequest, roots: PathRoots): PublishRequest {
  const call = 'NodePublishVolume';
  const { volumeId, path: targetPath } = requireIdAndPath(
    call,
    request,
    { value: request.targetPath, field: 'target_path' },
    roots.kubeletDir,
  );
  const readOnlyMode = checkCapability(request.volumeCapability, 'volume_capability', call);
  const attributes = parseVolumeContext(request.volumeContext, {
    requireNodeLabel: false,
    mountRoot: roots.mountRoot,
  });
  return { volumeId, targetPath, readOnly: readOnlyMode || request.readonly === true, attributes };
}

export interface UnpublishRequest {
  volumeId: string;
  targetPath: string;
}

export function validateUnpublish(request: NodeUnpublishVolumeRequest, roots: PathRoots): UnpublishRequest {
  const call = 'NodeUnpublishVolume';
  const { volumeId, path: targetPath } = requireIdAndPath(
    call,
    request,
    { value: request.targetPath, field: 'target_path' },
    roots.kubeletDir,
  );
  return { volumeId, targetPath };
}
