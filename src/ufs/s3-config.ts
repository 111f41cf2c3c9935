import { isIP } from 'node:net';
import { SecretValue } from '../lib/index.ts';
import { UfsError } from './errors.ts';
import type { UfsMountConfig } from './types.ts';

export type S3Flavour = 's3' | 'oss' | 'cos';

/** Everything needed to reach one bucket prefix, credentials kept as SecretValues. */
export interface S3Location {
  flavour: S3Flavour;
  bucket: string;
  /** Key prefix of the mount: `''` or `a/b/` (always with the trailing slash). */
  prefix: string;
  /** `https://host[:port]`; undefined for AWS S3, whose endpoint the SDK derives from the region. */
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /** Undefined when the mount has no credentials: requests then go unsigned (public buckets). */
  credentials:
    { accessKeyId: SecretValue; secretAccessKey: SecretValue; sessionToken?: SecretValue } | undefined;
  /** Every credential value, for scrubbing remote text. */
  secrets: SecretValue[];
  /** The mount point with no credentials in it, for messages. */
  description: string;
}

/**
 * Option names accepted per flavour, first match wins; each is looked up in the mount's resolved
 * `encryptOptions` (secrets) before its plain `options`. The names are the ones Fluid's runtimes
 * document (Alluxio `aws.*`/`alluxio.underfs.s3.*`, Hadoop S3A `fs.s3a.*`, Jindo `fs.oss.*`,
 * GooseFS/Hadoop-COS `fs.cosn.*`/`fs.cos.*`) plus short `s3.*`/`oss.*`/`cos.*` forms.
 */
export const S3_OPTION_NAMES = {
  s3: {
    accessKeyId: ['aws.accessKeyId', 'fs.s3a.access.key', 's3.accessKeyId'],
    secretAccessKey: ['aws.secretKey', 'aws.secretAccessKey', 'fs.s3a.secret.key', 's3.secretAccessKey'],
    sessionToken: ['aws.sessionToken', 'fs.s3a.session.token', 's3.sessionToken'],
    endpoint: ['alluxio.underfs.s3.endpoint', 'fs.s3a.endpoint', 's3.endpoint', 'aws.endpoint'],
    region: [
      'alluxio.underfs.s3.region',
      'alluxio.underfs.s3.endpoint.region',
      'fs.s3a.endpoint.region',
      's3.region',
      'aws.region',
    ],
  },
  oss: {
    accessKeyId: ['fs.oss.accessKeyId', 'oss.accessKeyId'],
    secretAccessKey: ['fs.oss.accessKeySecret', 'oss.accessKeySecret'],
    sessionToken: ['fs.oss.securityToken', 'oss.securityToken'],
    endpoint: ['fs.oss.endpoint', 'oss.endpoint'],
    region: ['fs.oss.region', 'oss.region'],
  },
  cos: {
    accessKeyId: ['fs.cosn.userinfo.secretId', 'fs.cos.access.key', 'cos.secretId'],
    secretAccessKey: ['fs.cosn.userinfo.secretKey', 'fs.cos.secret.key', 'cos.secretKey'],
    sessionToken: ['fs.cosn.userinfo.sessionToken', 'cos.sessionToken'],
    endpoint: ['fs.cosn.endpoint', 'fs.cos.endpoint', 'cos.endpoint'],
    region: ['fs.cosn.bucket.region', 'fs.cosn.region', 'fs.cos.region', 'cos.region'],
  },
} as const satisfies Record<S3Flavour, Record<string, readonly string[]>>;

/** Path-style addressing on (`true`) or off (`false`); the first one set wins. */
const PATH_STYLE_OPTIONS: ReadonlyArray<{ name: string; pathStyleWhen: string }> = [
  { name: 's3.pathStyle', pathStyleWhen: 'true' },
  { name: 'alluxio.underfs.s3.disable.dns.buckets', pathStyleWhen: 'true' },
  { name: 'fs.s3a.path.style.access', pathStyleWhen: 'true' },
  { name: 'oss.pathStyle', pathStyleWhen: 'true' },
  { name: 'cos.pathStyle', pathStyleWhen: 'true' },
];

/**
 * Reads an `s3://`, `oss://` or `cos://` mount. Endpoints without a scheme get `https://`
 * (`alluxio.underfs.s3.secure.http.enabled=false` asks for `http://`). Path-style addressing is
 * the default only for endpoints that are IP addresses or `localhost`, where virtual hosts cannot
 * resolve; OSS and COS need virtual-hosted style on their public endpoints.
 * @throws {UfsError} ERR_UFS_BAD_CONFIG
 */
export function parseS3Location(config: UfsMountConfig): S3Location {
  const match = /^(s3|oss|cos):\/\/([^/]*)(\/.*)?$/i.exec(config.mountPoint);
  const flavour = match?.[1]?.toLowerCase() as S3Flavour | undefined;
  const bucket = match?.[2] ?? '';
  if (flavour === undefined || bucket === '' || bucket.includes('@')) {
    throw new UfsError(
      'ERR_UFS_BAD_CONFIG',
      `Cannot mount "${redact(config.mountPoint)}": write ${flavour ?? 's3'}://bucket/prefix`,
    );
  }
  const segments = (match?.[3] ?? '').split('/').filter((segment) => segment !== '');
  if (segments.some((segment) => segment === '.' || segment === '..')) {
    throw new UfsError(
      'ERR_UFS_BAD_CONFIG',
      `Cannot mount "${config.mountPoint}" as its path has "." or ".." segments`,
    );
  }
  const prefix = segments.length === 0 ? '' : `${segments.join('/')}/`;
  const names = S3_OPTION_NAMES[flavour];
  const secrets: SecretValue[] = [];
  const secret = (candidates: readonly string[]): SecretValue | undefined => {
    for (const name of candidates) {
      const value =
        config.secrets[name] ??
        (config.options[name] === undefined ? undefined : new SecretValue(config.options[name]));
      if (value !== undefined && value.reveal() !== '') {
        secrets.push(value);
        return value;
      }
    }
    return undefined;
  };
  const plain = (candidates: readonly string[]): string | undefined => {
    for (const name of candidates) {
      const value = config.options[name] ?? config.secrets[name]?.reveal();
      if (value !== undefined && value.trim() !== '') return value.trim();
    }
    return undefined;
  };
  const accessKeyId = secret(names.accessKeyId);
  const secretAccessKey = secret(names.secretAccessKey);
  const sessionToken = secret(names.sessionToken);
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new UfsError(
      'ERR_UFS_BAD_CONFIG',
      `Cannot mount "${config.mountPoint}" with only one of the access key id and the secret key (options ${names.accessKeyId[0]} and ${names.secretAccessKey[0]})`,
    );
  }
  const insecure = config.options['alluxio.underfs.s3.secure.http.enabled'] === 'false';
  const endpoint = endpointUrl(plain(names.endpoint), insecure, config.mountPoint);
  const host = endpoint === undefined ? undefined : new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
  const region = plain(names.region) ?? regionFromEndpoint(flavour, host) ?? 'us-east-1';
  if (flavour !== 's3' && endpoint === undefined) {
    throw new UfsError(
      'ERR_UFS_BAD_CONFIG',
      `Cannot mount "${config.mountPoint}" without an endpoint (option ${names.endpoint[0]})`,
    );
  }
  let forcePathStyle = host !== undefined && (isIP(host) !== 0 || host === 'localhost');
  for (const option of PATH_STYLE_OPTIONS) {
    const value = config.options[option.name];
    if (value === undefined) continue;
    forcePathStyle = value.trim().toLowerCase() === option.pathStyleWhen;
    break;
  }
  return {
    flavour,
    bucket,
    prefix,
    endpoint,
    region,
    forcePathStyle,
    credentials:
      accessKeyId === undefined || secretAccessKey === undefined
        ? undefined
        : { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) },
    secrets,
    description: `${flavour}://${bucket}/${prefix}`,
  };
}

function endpointUrl(value: string | undefined, insecure: boolean, mountPoint: string): string | undefined {
  if (value === undefined) return undefined;
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value)
    ? value
    : `${insecure ? 'http' : 'https'}://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch (error) {
    throw new UfsError(
      'ERR_UFS_BAD_CONFIG',
      `Cannot mount "${mountPoint}": the endpoint "${value}" is not a host or URL`,
      {
        cause: error,
      },
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UfsError(
      'ERR_UFS_BAD_CONFIG',
      `Cannot mount "${mountPoint}": the endpoint must be http(s), not ${url.protocol}`,
    );
  }
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '')}`;
}

/**
 * The signing region implied by well-known endpoints: `oss-cn-hangzhou[-internal].aliyuncs.com`
 * → `oss-cn-hangzhou`, `cos.ap-guangzhou.myqcloud.com` → `ap-guangzhou`,
 * `s3.eu-west-1.amazonaws.com` → `eu-west-1`.
 */
function regionFromEndpoint(flavour: S3Flavour, host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  if (flavour === 'oss') return /^(oss-[a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$/.exec(host)?.[1];
  if (flavour === 'cos') return /^cos\.([a-z0-9-]+)\.myqcloud\.com$/.exec(host)?.[1];
  return /^s3[.-]([a-z0-9-]+)\.amazonaws\.com$/.exec(host)?.[1];
}

function redact(mountPoint: string): string {
  return mountPoint.replace(/\/\/[^/@]*@/, '//');
}

/**
 * A credential provider for the signers: a function, so that the secrets are revealed only while a
 * request is signed and never held in plain text by the SDK or the signer.
 */
export function revealedCredentials(
  credentials: NonNullable<S3Location['credentials']>,
): () => Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }> {
  return () =>
    Promise.resolve({
      accessKeyId: credentials.accessKeyId.reveal(),
      secretAccessKey: credentials.secretAccessKey.reveal(),
      ...(credentials.sessionToken === undefined ? {} : { sessionToken: credentials.sessionToken.reveal() }),
    });
}
