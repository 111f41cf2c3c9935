import { TideError } from '../lib/index.ts';
import type { Status } from './types.ts';

/** Every code a `KubeError` can carry; callers branch on these, never on messages. */
export type KubeErrorCode =
  | 'ERR_KUBE_BAD_REQUEST'
  | 'ERR_KUBE_UNAUTHORIZED'
  | 'ERR_KUBE_FORBIDDEN'
  | 'ERR_KUBE_NOT_FOUND'
  | 'ERR_KUBE_METHOD_NOT_ALLOWED'
  | 'ERR_KUBE_ALREADY_EXISTS'
  | 'ERR_KUBE_CONFLICT'
  | 'ERR_KUBE_GONE'
  | 'ERR_KUBE_INVALID'
  | 'ERR_KUBE_TOO_MANY_REQUESTS'
  | 'ERR_KUBE_SERVER'
  | 'ERR_KUBE_SERVER_TIMEOUT'
  | 'ERR_KUBE_STATUS'
  | 'ERR_KUBE_TIMEOUT'
  | 'ERR_KUBE_TRANSPORT'
  | 'ERR_KUBE_RESPONSE'
  | 'ERR_KUBE_CONFIG';

/** Base of all errors thrown by `src/kube`. */
export class KubeError extends TideError<KubeErrorCode> {}

/** The kubeconfig is unreadable, incomplete or uses a feature this client does not implement. */
export class KubeConfigError extends KubeError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_KUBE_CONFIG', message, options);
  }
}

/** The request never got an HTTP answer (connection refused, TLS failure, reset). `cause` is the socket error. */
export class KubeTransportError extends KubeError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_KUBE_TRANSPORT', message, options);
  }
}

/** The client-side deadline (`timeoutMs`) passed before the API server answered. */
export class KubeTimeoutError extends KubeError {
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, options?: ErrorOptions) {
    super('ERR_KUBE_TIMEOUT', message, options);
    this.timeoutMs = timeoutMs;
  }
}

/** The API server answered with something that is not the JSON it documents. */
export class KubeResponseError extends KubeError {
  readonly statusCode: number;
  constructor(message: string, statusCode: number, options?: ErrorOptions) {
    super('ERR_KUBE_RESPONSE', message, options);
    this.statusCode = statusCode;
  }
}

/**
 * The API server refused the request with a `metav1.Status`. `message` is the server's own
 * message (for ERR_KUBE_INVALID it lists every failed field, e.g. the CRD schema's message);
 * `status` is the whole Status object and also the `cause`.
 */
export class KubeStatusError extends KubeError {
  readonly statusCode: number;
  readonly reason: string;
  readonly status: Status;

  constructor(code: KubeErrorCode, status: Status, statusCode: number, options?: ErrorOptions) {
    super(code, status.message ?? `API server answered HTTP ${statusCode}`, { cause: status, ...options });
    this.statusCode = statusCode;
    this.reason = status.reason ?? '';
    this.status = status;
  }

  /** Field-level causes (`details.causes`), e.g. `{ field: 'spec.mounts[0].mountPoint', message }` for ERR_KUBE_INVALID. */
  get causes(): readonly { reason?: string; message?: string; field?: string }[] {
    return this.status.details?.causes ?? [];
  }
}

/** 404, or a Status with reason NotFound. */
export class KubeNotFoundError extends KubeStatusError {
  constructor(status: Status, statusCode = 404) {
    super('ERR_KUBE_NOT_FOUND', status, statusCode);
  }
}

/** 409 with reason AlreadyExists: a create hit an existing name. */
export class KubeAlreadyExistsError extends KubeStatusError {
  constructor(status: Status, statusCode = 409) {
    super('ERR_KUBE_ALREADY_EXISTS', status, statusCode);
  }
}

/** 409 Conflict: stale resourceVersion on update, or a server-side-apply field conflict. Re-read and retry. */
export class KubeConflictError extends KubeStatusError {
  constructor(status: Status, statusCode = 409) {
    super('ERR_KUBE_CONFLICT', status, statusCode);
  }
}

/**
 * 410 Gone / reason Expired: the requested resourceVersion is older than the server keeps
 * ("too old resource version"). A watcher must re-list and watch from the new list's resourceVersion.
 */
export class KubeGoneError extends KubeStatusError {
  constructor(status: Status, statusCode = 410) {
    super('ERR_KUBE_GONE', status, statusCode);
  }
}

/** 422 Invalid: the object failed validation (schema, CEL rule, admission). `causes` lists the fields. */
export class KubeInvalidError extends KubeStatusError {
  constructor(status: Status, statusCode = 422) {
    super('ERR_KUBE_INVALID', status, statusCode);
  }
}

/** Builds the most specific error class for a Status the API server returned. */
export function statusToError(status: Status, statusCode: number): KubeStatusError {
  const code = status.code ?? statusCode;
  switch (status.reason) {
    case 'NotFound':
      return new KubeNotFoundError(status, code);
    case 'AlreadyExists':
      return new KubeAlreadyExistsError(status, code);
    case 'Conflict':
      return new KubeConflictError(status, code);
    case 'Expired':
    case 'Gone':
      return new KubeGoneError(status, code);
    case 'Invalid':
      return new KubeInvalidError(status, code);
    default:
      break;
  }
  switch (code) {
    case 400:
      return new KubeStatusError('ERR_KUBE_BAD_REQUEST', status, code);
    case 401:
      return new KubeStatusError('ERR_KUBE_UNAUTHORIZED', status, code);
    case 403:
      return new KubeStatusError('ERR_KUBE_FORBIDDEN', status, code);
    case 404:
      return new KubeNotFoundError(status, code);
    case 405:
      return new KubeStatusError('ERR_KUBE_METHOD_NOT_ALLOWED', status, code);
    case 409:
      return new KubeConflictError(status, code);
    case 410:
      return new KubeGoneError(status, code);
    case 422:
      return new KubeInvalidError(status, code);
    case 429:
      return new KubeStatusError('ERR_KUBE_TOO_MANY_REQUESTS', status, code);
    case 504:
      return new KubeStatusError('ERR_KUBE_SERVER_TIMEOUT', status, code);
    default:
      return new KubeStatusError(code >= 500 ? 'ERR_KUBE_SERVER' : 'ERR_KUBE_STATUS', status, code);
  }
}
