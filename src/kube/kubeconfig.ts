import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KubeConfigError } from './errors.ts';

/**
 * Connection settings of one kubeconfig context, with every referenced file already read.
 * This is what `KubeClient` needs; it holds secrets, so never log it.
 */
export interface KubeConnection {
  /** `https://host:port` (or `http://` for a local insecure server), without trailing slash. */
  readonly server: string;
  readonly caPem?: string | undefined;
  readonly clientCertPem?: string | undefined;
  readonly clientKeyPem?: string | undefined;
  readonly token?: string | undefined;
  readonly insecureSkipTlsVerify?: boolean | undefined;
  /** SNI / certificate name to expect instead of the host of `server`. */
  readonly tlsServerName?: string | undefined;
  /** The context's namespace, `default` when unset. */
  readonly namespace: string;
}

export interface LoadKubeConfigOptions {
  /** Context to use instead of `current-context`. */
  context?: string | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Reads a kubeconfig file (YAML or JSON) and resolves one context.
 * Relative file references are resolved against the kubeconfig's directory, as kubectl does.
 * @throws {KubeConfigError} when the file cannot be read, the context is missing, or it uses an
 *   auth method this client does not implement (exec plugins, auth providers).
 */
export async function loadKubeConfig(
  path: string,
  options: LoadKubeConfigOptions = {},
): Promise<KubeConnection> {
  let text: string;
  try {
    text = await readFile(path, { encoding: 'utf8', signal: options.signal });
  } catch (error) {
    throw new KubeConfigError(`Cannot read kubeconfig ${path}`, { cause: error });
  }
  return parseKubeConfig(text, { ...options, baseDir: dirname(resolve(path)) });
}

export interface ParseKubeConfigOptions extends LoadKubeConfigOptions {
  /** Directory that relative paths in the kubeconfig are relative to; default the working directory. */
  baseDir?: string | undefined;
}

/** Like `loadKubeConfig`, from the text of a kubeconfig. */
export async function parseKubeConfig(
  text: string,
  options: ParseKubeConfigOptions = {},
): Promise<KubeConnection> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new KubeConfigError('Cannot parse kubeconfig as YAML', { cause: error });
  }
  const root = asRecord(doc, 'kubeconfig');
  const contextName = options.context ?? optionalString(root['current-context'], 'current-context');
  if (contextName === undefined || contextName === '') {
    throw new KubeConfigError(
      'Cannot pick a kubeconfig context as none was given and current-context is empty',
    );
  }
  const context = findNamed(root, 'contexts', 'context', contextName);
  const clusterName = requiredString(context['cluster'], `context ${contextName}: cluster`);
  const cluster = findNamed(root, 'clusters', 'cluster', clusterName);
  const userName = optionalString(context['user'], `context ${contextName}: user`);
  const user = userName === undefined || userName === '' ? {} : findNamed(root, 'users', 'user', userName);

  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) {
    throw new KubeConfigError(
      `Cannot use kubeconfig user ${String(userName)} as exec plugins and auth providers are not supported: use client certificates or a token`,
    );
  }
  const baseDir = options.baseDir ?? process.cwd();
  const read = async (dataKey: string, fileKey: string, from: Record<string, unknown>, what: string) => {
    const data = optionalString(from[dataKey], `${what}: ${dataKey}`);
    if (data !== undefined) return Buffer.from(data, 'base64').toString('utf8');
    const file = optionalString(from[fileKey], `${what}: ${fileKey}`);
    if (file === undefined) return undefined;
    const path = isAbsolute(file) ? file : resolve(baseDir, file);
    try {
      return await readFile(path, { encoding: 'utf8', signal: options.signal });
    } catch (error) {
      throw new KubeConfigError(`Cannot read ${fileKey} ${path} of kubeconfig ${what}`, { cause: error });
    }
  };

  const server = requiredString(cluster['server'], `cluster ${clusterName}: server`).replace(/\/+$/, '');
  if (!/^https?:\/\//.test(server)) {
    throw new KubeConfigError(
      `Cannot use cluster ${clusterName} as its server must be an http(s) URL: current value is ${server}`,
    );
  }
  let token = optionalString(user['token'], `user ${String(userName)}: token`);
  const tokenFile = optionalString(user['tokenFile'], `user ${String(userName)}: tokenFile`);
  if (token === undefined && tokenFile !== undefined) {
    const tokenText = await read('__none__', 'tokenFile', user, `user ${String(userName)}`);
    token = tokenText?.trim();
  }
  return Object.freeze({
    server,
    caPem: await read(
      'certificate-authority-data',
      'certificate-authority',
      cluster,
      `cluster ${clusterName}`,
    ),
    clientCertPem: await read(
      'client-certificate-data',
      'client-certificate',
      user,
      `user ${String(userName)}`,
    ),
    clientKeyPem: await read('client-key-data', 'client-key', user, `user ${String(userName)}`),
    token,
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: optionalString(cluster['tls-server-name'], `cluster ${clusterName}: tls-server-name`),
    namespace: optionalString(context['namespace'], `context ${contextName}: namespace`) ?? 'default',
  });
}

function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new KubeConfigError(`Cannot read kubeconfig as ${what} must be a mapping`);
  }
  return value as Record<string, unknown>;
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string')
    throw new KubeConfigError(`Cannot read kubeconfig as ${what} must be a string`);
  return value;
}

function requiredString(value: unknown, what: string): string {
  const s = optionalString(value, what);
  if (s === undefined || s === '') throw new KubeConfigError(`Cannot read kubeconfig as ${what} is missing`);
  return s;
}

/** Finds `{ name, <inner>: {...} }` in the list `root[listKey]`. */
function findNamed(
  root: Record<string, unknown>,
  listKey: string,
  inner: string,
  name: string,
): Record<string, unknown> {
  const list = root[listKey] ?? [];
  if (!Array.isArray(list)) throw new KubeConfigError(`Cannot read kubeconfig as ${listKey} must be a list`);
  for (const entry of list) {
    const named = asRecord(entry, `an entry of ${listKey}`);
    if (named['name'] === name) return asRecord(named[inner] ?? {}, `${listKey} ${name}: ${inner}`);
  }
  throw new KubeConfigError(`Cannot find ${inner} ${JSON.stringify(name)} in the kubeconfig's ${listKey}`);
}
