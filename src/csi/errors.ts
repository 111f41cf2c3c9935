import { status } from '@grpc/grpc-js';
import { TideError } from '../lib/index.ts';

export type CsiErrorCode =
  /** A request field is missing or wrong (gRPC INVALID_ARGUMENT). */
  | 'ERR_CSI_INVALID_ARGUMENT'
  /** The volume's dataset does not exist (gRPC NOT_FOUND). */
  | 'ERR_CSI_NOT_FOUND'
  /** Another call holds the volume's or the target's lock (gRPC ABORTED; the caller retries). */
  | 'ERR_CSI_ABORTED'
  /** The target is published already with other options (gRPC ALREADY_EXISTS). */
  | 'ERR_CSI_ALREADY_EXISTS'
  /** The FUSE mount did not become ready in time (gRPC UNAVAILABLE; the kubelet retries). */
  | 'ERR_CSI_UNAVAILABLE'
  /** The volume is still used on the node (gRPC FAILED_PRECONDITION). */
  | 'ERR_CSI_IN_USE'
  /** mount(8), umount(8), a file operation or the API server failed (gRPC INTERNAL). */
  | 'ERR_CSI_INTERNAL'
  /** Bad command-line flags of the plugin. */
  | 'ERR_CSI_BAD_FLAGS';

/** A failure of the CSI node plugin; `grpcCode` is what the caller receives. */
export class CsiError extends TideError<CsiErrorCode> {
  /** The gRPC status code of the CSI spec for this failure. */
  get grpcCode(): status {
    return GRPC_CODES[this.code];
  }
}

/** The gRPC status codes the plugin answers with (grpc/doc/statuscodes.md). */
export const GrpcStatus = Object.freeze({
  OK: status.OK,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  ABORTED: status.ABORTED,
  UNIMPLEMENTED: status.UNIMPLEMENTED,
  INTERNAL: status.INTERNAL,
  UNAVAILABLE: status.UNAVAILABLE,
});

const GRPC_CODES: Record<CsiErrorCode, status> = {
  ERR_CSI_INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  ERR_CSI_NOT_FOUND: GrpcStatus.NOT_FOUND,
  ERR_CSI_ABORTED: GrpcStatus.ABORTED,
  ERR_CSI_ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  ERR_CSI_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  ERR_CSI_IN_USE: GrpcStatus.FAILED_PRECONDITION,
  ERR_CSI_INTERNAL: GrpcStatus.INTERNAL,
  ERR_CSI_BAD_FLAGS: GrpcStatus.INVALID_ARGUMENT,
};
