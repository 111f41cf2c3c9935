/** What an S3 failure means: the store's error codes and statuses mapped to UfsError codes, retryable or not. */
import { S3ServiceException } from '@aws-sdk/client-s3';
import { UfsError } from './errors.ts';
import { classifyNetworkError, scrubbedCause, transientError } from './failures.ts';
import type { ClassifiedFailure } from './retry.ts';
import type { S3Location } from './s3-config.ts';

/** S3 error codes (the `Code` of an error response, the SDK's error `name`) by meaning. */
const ACCESS_DENIED = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'InvalidSecurity',
  'AllAccessDisabled',
  'AccountProblem',
]);
const NOT_FOUND = new Set(['NoSuchKey', 'NotFound', 'NoSuchVersion']);
const RETRYABLE = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequests',
]);
/** The bucket is elsewhere or the region is wrong: a configuration problem, not a transient one. */
const WRONG_REGION = new Set([
  'PermanentRedirect',
  'AuthorizationHeaderMalformed',
  'IllegalLocationConstraintException',
]);

/** A GetObject answered with an error status (the SDK's S3ServiceException, for the direct path). */
export class S3AnswerError extends Error {
  readonly s3Code: string | undefined;
  readonly statusCode: number;
  constructor(s3Code: string | undefined, statusCode: number) {
    super(`the store answered ${s3Code ?? 'HTTP'} ${statusCode}`);
    this.name = 'S3AnswerError';
    this.s3Code = s3Code;
    this.statusCode = statusCode;
  }
}

export function versionChanged(what: string): UfsError {
  return new UfsError('ERR_UFS_VERSION_CHANGED', `Cannot ${what} as the object changed since it was listed`);
}

/**
 * What a failure of an SDK call or a direct GetObject means for `what`, and whether to retry it.
 * Network failures (no S3 code, no status) are classified as for every connector.
 */
export function classifyS3Failure(
  error: unknown,
  what: string,
  location: Pick<S3Location, 'bucket' | 'region'>,
  scrub: (text: string) => string,
): ClassifiedFailure {
  if (error instanceof UfsError) return classifyNetworkError(error, what, scrub);
  const code = error instanceof S3AnswerError ? error.s3Code : s3CodeOf(error);
  const status =
    error instanceof S3AnswerError
      ? error.statusCode
      : error instanceof S3ServiceException
        ? error.$metadata.httpStatusCode
        : undefined;
  if (code === undefined && status === undefined) {
    return classifyNetworkError(error, what, scrub);
  }
  const detail = scrub(`${code ?? 'HTTP'} ${status ?? ''}`.trim());
  const options = { cause: scrubbedCause(error, scrub) };
  const bucket = location.bucket;
  if (code === 'NoSuchBucket') {
    return {
      error: new UfsError(
        'ERR_UFS_BUCKET_NOT_FOUND',
        `Cannot ${what}: bucket "${bucket}" does not exist`,
        options,
      ),
      retryable: false,
    };
  }
  if ((code !== undefined && ACCESS_DENIED.has(code)) || status === 401 || status === 403) {
    return {
      error: new UfsError(
        'ERR_UFS_ACCESS_DENIED',
        `Cannot ${what}: access denied (${detail}); check the credentials`,
        options,
      ),
      retryable: false,
    };
  }
  if (code === 'PreconditionFailed' || status === 412)
    return { error: versionChanged(what), retryable: false };
  if ((code !== undefined && NOT_FOUND.has(code)) || status === 404) {
    return {
      error: new UfsError('ERR_UFS_NOT_FOUND', `Cannot ${what}: nothing there`, options),
      retryable: false,
    };
  }
  if (code !== undefined && WRONG_REGION.has(code)) {
    return {
      error: new UfsError(
        'ERR_UFS_BAD_CONFIG',
        `Cannot ${what}: the endpoint or region does not match the bucket (${detail}); region is "${location.region}"`,
        options,
      ),
      retryable: false,
    };
  }
  if (
    (code !== undefined && RETRYABLE.has(code)) ||
    status === 429 ||
    (status !== undefined && status >= 500)
  ) {
    return {
      error: transientError('ERR_UFS_REMOTE', `Cannot ${what}: the store answered ${detail}`, options),
      retryable: true,
    };
  }
  return {
    error: new UfsError('ERR_UFS_REMOTE', `Cannot ${what}: the store answered ${detail}`, options),
    retryable: false,
  };
}

/** The S3 error code of an SDK error (`NoSuchBucket`, `SlowDown`…), also for HEAD errors without a body. */
function s3CodeOf(error: unknown): string | undefined {
  if (error instanceof S3ServiceException) {
    const code = (error as { Code?: unknown }).Code;
    if (typeof code === 'string') return code;
    return error.name === 'Unknown' || error.name === '' ? undefined : error.name;
  }
  return undefined;
}
