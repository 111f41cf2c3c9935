/**
 * The CSI messages as `@grpc/proto-loader` decodes them (camelCase fields, enums as names, oneofs
 * named, defaults filled in: '' for strings, null for messages, {} for maps).
 */

export type AccessModeName =
  | 'UNKNOWN'
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fsType?: string; mountFlags?: string[] } | null;
  accessMode?: { mode?: AccessModeName | number } | null;
  accessType?: 'block' | 'mount';
}

export interface NodeStageVolumeRequest {
  volumeId?: string;
  stagingTargetPath?: string;
  volumeCapability?: VolumeCapability | null;
  volumeContext?: Record<string, string>;
}

export interface NodeUnstageVolumeRequest {
  volumeId?: string;
  stagingTargetPath?: string;
}

export interface NodePublishVolumeRequest {
  volumeId?: string;
  stagingTargetPath?: string;
  targetPath?: string;
  volumeCapability?: VolumeCapability | null;
  readonly?: boolean;
  volumeContext?: Record<string, string>;
}

export interface NodeUnpublishVolumeRequest {
  volumeId?: string;
  targetPath?: string;
}
