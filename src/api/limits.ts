import type { FieldError } from './errors.ts';

/**
 * Size limits a manifest must respect. The object and annotation limits are Kubernetes' own
 * (etcd's default request limit, `TotalAnnotationSizeLimitB`, `MaxSecretSize`), so that what
 * embedded mode accepts the API server accepts too; the input limit keeps the YAML parser, which
 * holds a whole stream in memory many times over, from being fed more than any real manifest needs.
 */
export const LIMITS = Object.freeze({
  /** One `-f` input, or one request body to the daemon (in JSON). */
  manifestBytes: 8 * 1024 * 1024,
  /** One object, as JSON: etcd's default `--max-request-bytes`. */
  objectBytes: 1.5 * 1024 * 1024,
  /** Keys and values of all annotations of one object. */
  annotationBytes: 256 * 1024,
  /** All values of one Secret, decoded. */
  secretBytes: 1024 * 1024,
  /** Alias uses in one YAML document before it is taken for an alias bomb. */
  yamlAliases: 100,
  /** Workers of one runtime (the schema's maximum, also in the CRDs). */
  replicas: 1000,
  /** Copies of a block a DataLoad may ask for. */
  loadReplicas: 16,
  /** Files a DataLoad may load at once (`options.parallelism`). */
  loadParallelism: 1024,
  /** Bytes of one path in a dataset (Linux's PATH_MAX). */
  pathBytes: 4096,
});

const QUALIFIED_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why a label or annotation key is not a Kubernetes qualified name (`prefix/name`), or undefined. */
export function qualifiedNameProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)))
    return `key "${truncate(key)}" has a prefix that is not a DNS-1123 subdomain`;
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name))
    return `key "${truncate(key)}" is not a qualified name (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)`;
  return undefined;
}

/** Labels, annotations and the size of the whole object, as the API server checks them. */
export function metadataSizeErrors(doc: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  const metadata = doc['metadata'] as {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  for (const [key, value] of Object.entries(metadata.labels ?? {})) {
    const problem = qualifiedNameProblem(key);
    if (problem !== undefined) errors.push({ path: '/metadata/labels', message: problem });
    else if (value.length > 63 || (value !== '' && !QUALIFIED_NAME.test(value)))
      errors.push({
        path: `/metadata/labels/${escapePointer(key)}`,
        message: `"${truncate(value)}" is not a label value (at most 63 letters, digits, '-', '_' or '.')`,
      });
  }
  let annotationBytes = 0;
  for (const [key, value] of Object.entries(metadata.annotations ?? {})) {
    const problem = qualifiedNameProblem(key);
    if (problem !== undefined) errors.push({ path: '/metadata/annotations', message: problem });
    annotationBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (annotationBytes > LIMITS.annotationBytes)
    errors.push({
      path: '/metadata/annotations',
      message: `take ${formatSize(annotationBytes)}; Kubernetes allows at most ${formatSize(LIMITS.annotationBytes)}`,
    });
  const objectBytes = Buffer.byteLength(JSON.stringify(doc));
  if (objectBytes > LIMITS.objectBytes)
    errors.push({
      path: '',
      message: `the object takes ${formatSize(objectBytes)} as JSON; Kubernetes stores at most ${formatSize(LIMITS.objectBytes)} per object`,
    });
  return errors;
}

/** A Secret's keys, its `data` values (base64, as in Kubernetes) and its decoded size. */
export function secretErrors(secret: {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}): FieldError[] {
  const errors: FieldError[] = [];
  let bytes = 0;
  for (const [field, values] of [
    ['data', secret.data],
    ['stringData', secret.stringData],
  ] as const) {
    for (const [key, value] of Object.entries(values ?? {})) {
      const at = `/${field}/${escapePointer(key)}`;
      if (key.length > 253 || !SECRET_KEY.test(key)) {
        errors.push({
          path: at,
          message: `"${truncate(key)}" is not a Secret key (letters, digits, '-', '_' or '.')`,
        });
        continue;
      }
      if (field === 'data' && !BASE64.test(value)) {
        // The value itself is never printed: it is meant to be secret.
        errors.push({ path: at, message: 'is not base64 (use stringData for plain text)' });
        continue;
      }
      bytes += field === 'data' ? Buffer.from(value, 'base64').length : Buffer.byteLength(value);
    }
  }
  if (bytes > LIMITS.secretBytes)
    errors.push({
      path: '/data',
      message: `holds ${formatSize(bytes)}; a Secret holds at most ${formatSize(LIMITS.secretBytes)}`,
    });
  return errors;
}

/**
 * Why a path in a dataset (a mount's `path`, a DataLoad target) could leave its place, or
 * undefined: `.` and `..` segments, control characters, backslashes, or more than PATH_MAX bytes.
 */
export function pathProblem(path: string): string | undefined {
  if (CONTROL.test(path)) return 'must not contain control characters';
  if (path.includes('\\')) return `must not contain backslashes, got "${truncate(path)}"`;
  if (Buffer.byteLength(path) > LIMITS.pathBytes) return `must be at most ${LIMITS.pathBytes} bytes long`;
  if (path.split('/').some((segment) => segment === '.' || segment === '..'))
    return `must not contain "." or ".." segments, got "${truncate(path)}"`;
  return undefined;
}

/** Why a mount `name` cannot be one segment of the dataset's namespace, or undefined. */
export function mountNameProblem(name: string): string | undefined {
  if (name.includes('/')) return `must be one path segment (no "/"), got "${truncate(name)}"`;
  if (name === '.' || name === '..') return `must not be "${name}"`;
  if (Buffer.byteLength(name) > 255) return 'must be at most 255 bytes long';
  return pathProblem(name);
}

function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** `1.5 MiB`, `256 KiB`, `12 bytes`. */
export function formatSize(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${Number((bytes / 1024 / 1024).toFixed(1))} MiB`;
  if (bytes >= 1024) return `${Number((bytes / 1024).toFixed(1))} KiB`;
  return `${bytes} bytes`;
}
