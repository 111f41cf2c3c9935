import { join } from 'node:path';
import { schemeOf } from '../api/index.ts';
import { DEFAULT_HTTP_TIMEOUTS, type HttpTimeouts } from '../http/index.ts';
import { silentLogger, type Logger } from '../lib/index.ts';
import { UfsError } from './errors.ts';
import { HttpUfs, type HttpUfsOptions } from './http-ufs.ts';
import { LocalUfs } from './local-ufs.ts';
import { DEFAULT_RETRY_POLICY, positiveInteger, retryPolicyFrom, type RetryPolicy } from './retry.ts';
import { normaliseUfsPath } from './paths.ts';
import { parseS3Location } from './s3-config.ts';
import { S3Ufs } from './s3-ufs.ts';
import type { UfsMountConfig, UnderFileSystem } from './types.ts';

/** What connectors get from the process that creates them, instead of reading the environment. */
export interface UfsDependencies {
  /** Parent logger; connectors log through `logger.child({ component: 'ufs', ... })`. */
  logger?: Logger;
  /**
   * Directory under which `pvc://name/sub` resolves to `<pvcRoot>/name/sub` (embedded mode:
   * `$TIDE_HOME/pvc`; in Kubernetes the PVC's mount directory in the pod). Without it a `pvc://`
   * mount fails with ERR_UFS_BAD_CONFIG.
   */
  pvcRoot?: string;
  /** Retry and deadline defaults for remote connectors; mount options `tide.ufs.*` override them. */
  retry?: Partial<RetryPolicy>;
  /** Socket-level timeouts of the web and S3 connectors; mount options `tide.ufs.*TimeoutMs` override them. */
  httpTimeouts?: Partial<HttpTimeouts>;
}

/**
 * Builds the connector for one Dataset mount, by the scheme of its mount point. Does no I/O: call
 * `check()` to find out whether the origin is reachable.
 * @throws {UfsError} ERR_UFS_UNSUPPORTED for an unknown scheme, ERR_UFS_BAD_CONFIG for a malformed
 *   mount point or options
 */
export function createUnderFileSystem(config: UfsMountConfig, deps: UfsDependencies = {}): UnderFileSystem {
  const scheme = schemeOf(config.mountPoint);

  switch (scheme) {
    case 'local':
      return createLocal(config.mountPoint);
    case 'pvc':
      return createPvc(config.mountPoint, deps.pvcRoot);
    case 'http':
    case 'https':
      return new HttpUfs({
        mountPoint: config.mountPoint,
        logger: loggerOf(deps),
        retry: retryPolicyFrom(config.options, { ...DEFAULT_RETRY_POLICY, ...deps.retry }),
        timeouts: httpTimeoutsFrom(config.options, { ...DEFAULT_HTTP_TIMEOUTS, ...deps.httpTimeouts }),
        transport: httpTransportFrom(config.options),
        ...httpCredentialsFrom(config),
        crossOriginRedirects: booleanOption(config.options, 'tide.ufs.http.crossOriginRedirects'),
        allowLinkLocal: booleanOption(config.options, 'tide.ufs.http.allowLinkLocal'),
        ...listRateFrom(config.options),
      });
    case 's3':
    case 'oss':
    case 'cos':
      return new S3Ufs({
        location: parseS3Location(config),
        logger: loggerOf(deps),
        retry: retryPolicyFrom(config.options, { ...DEFAULT_RETRY_POLICY, ...deps.retry }),
        timeouts: httpTimeoutsFrom(config.options, { ...DEFAULT_HTTP_TIMEOUTS, ...deps.httpTimeouts }),
      });
    default:
      throw new UfsError(
        'ERR_UFS_UNSUPPORTED',
        `Cannot mount "${config.mountPoint.replace(/\/\/[^/@]*@/, '//')}" as its scheme "${scheme ?? ''}" is not supported`,
      );
  }
}

function createLocal(mountPoint: string): UnderFileSystem {
  const path = mountPoint.slice('local://'.length);
  if (!path.startsWith('/')) {
    throw new UfsError('ERR_UFS_BAD_CONFIG', `Cannot mount "${mountPoint}": write local:///absolute/path`);
  }
  const root = path.length > 1 ? path.replace(/\/+$/, '') : path;
  return new LocalUfs({ root, description: mountPoint });
}

function createPvc(mountPoint: string, pvcRoot: string | undefined): UnderFileSystem {
  if (pvcRoot === undefined) {
    throw new UfsError('ERR_UFS_BAD_CONFIG', `Cannot mount "${mountPoint}" as no directory holds PVCs here`);
  }
  let relative: string;
  try {
    relative = normaliseUfsPath(mountPoint.slice('pvc://'.length));
  } catch (error) {
    throw new UfsError('ERR_UFS_BAD_CONFIG', `Cannot mount "${mountPoint}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (relative === '') {
    throw new UfsError(
      'ERR_UFS_BAD_CONFIG',
      `Cannot mount "${mountPoint}": write pvc://<claim name>[/sub/path]`,
    );
  }
  return new LocalUfs({ root: join(pvcRoot, relative), description: mountPoint });
}

function loggerOf(deps: UfsDependencies): Logger {
  return (deps.logger ?? silentLogger()).child({ component: 'ufs' });
}

/** `tide.ufs.httpTransport`: `http1` (default) or `undici`, for `http:` web origins (see HttpUfs). */
function httpTransportFrom(options: Readonly<Record<string, string>>): 'http1' | 'undici' {
  const value = options['tide.ufs.httpTransport'] ?? 'http1';
  if (value === 'http1' || value === 'undici') return value;
  throw new UfsError(
    'ERR_UFS_BAD_CONFIG',
    `Cannot use tide.ufs.httpTransport "${value}": write http1 or undici`,
  );
}

/**
 * Credentials of a web origin, as mount options, the secret ones from `encryptOptions`:
 * `http.username` with `http.password` (Basic), or `http.bearerToken`. A password or token in the
 * plain `options` is refused: those are shown to anyone who can read the Dataset.
 */
function httpCredentialsFrom(config: UfsMountConfig): Pick<HttpUfsOptions, 'credentials'> {
  for (const name of ['http.password', 'http.bearerToken']) {
    if (config.options[name] !== undefined) {
      throw new UfsError(
        'ERR_UFS_BAD_CONFIG',
        `Cannot take ${name} from options, where anyone who reads the Dataset sees it: give it in encryptOptions (from a Secret)`,
      );
    }
  }
  const username = config.options['http.username'] ?? config.secrets['http.username']?.reveal();
  const password = config.secrets['http.password'];
  const bearerToken = config.secrets['http.bearerToken'];
  if (bearerToken !== undefined) {
    if (username !== undefined || password !== undefined) {
      throw new UfsError(
        'ERR_UFS_BAD_CONFIG',
        'Cannot use http.bearerToken together with http.username or http.password',
      );
    }
    return { credentials: { bearerToken } };
  }
  if (password === undefined && username === undefined) return {};
  if (password === undefined || username === undefined) {
    throw new UfsError(
      'ERR_UFS_BAD_CONFIG',
      'Cannot use http.username without http.password, or the other way round',
    );
  }
  return { credentials: { username, password } };
}

/** `tide.ufs.http.listRequestsPerSecond`: the web listing's request rate (see HttpUfsOptions). */
function listRateFrom(
  options: Readonly<Record<string, string>>,
): Pick<HttpUfsOptions, 'listRequestsPerSecond'> {
  const rate = positiveInteger(options, 'tide.ufs.http.listRequestsPerSecond');
  return rate === undefined ? {} : { listRequestsPerSecond: rate };
}

function booleanOption(options: Readonly<Record<string, string>>, name: string): boolean {
  const value = options[name];
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw new UfsError('ERR_UFS_BAD_CONFIG', `Cannot use ${name} "${value}": write true or false`);
}

function httpTimeoutsFrom(options: Readonly<Record<string, string>>, base: HttpTimeouts): HttpTimeouts {
  return {
    connectTimeoutMs: positiveInteger(options, 'tide.ufs.connectTimeoutMs') ?? base.connectTimeoutMs,
    headersTimeoutMs: positiveInteger(options, 'tide.ufs.headersTimeoutMs') ?? base.headersTimeoutMs,
    bodyIdleTimeoutMs: positiveInteger(options, 'tide.ufs.bodyIdleTimeoutMs') ?? base.bodyIdleTimeoutMs,
  };
}
