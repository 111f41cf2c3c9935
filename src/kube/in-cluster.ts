import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfigError } from './errors.ts';
import type { KubeConnection } from './kubeconfig.ts';

/** Where kubelet projects a pod's service account token, CA bundle and namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The connection of a process running in a pod, as client-go's `rest.InClusterConfig`: the API
 * server from `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`, the service account token and CA
 * from `SERVICE_ACCOUNT_DIR`. The token is read once: bound tokens are valid for a year by default
 * (kube-apiserver `--service-account-extend-token-expiration`), and a restarted pod reads a new one.
 * @throws {KubeConfigError} when not in a pod (no environment or no token)
 */
export async function inClusterConnection(
  options: { env?: NodeJS.ProcessEnv; dir?: string; signal?: AbortSignal } = {},
): Promise<KubeConnection> {
  const env = options.env ?? process.env;
  const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (host === undefined || host === '' || port === undefined || port === '') {
    throw new KubeConfigError(
      'Cannot use the in-cluster configuration as KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: pass a kubeconfig outside a pod',
    );
  }
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(join(dir, file), { encoding: 'utf8', signal: options.signal });
    } catch (error) {
      throw new KubeConfigError(`Cannot read the service account's ${file} in ${dir}`, { cause: error });
    }
  };
  const token = (await read('token')).trim();
  const caPem = await read('ca.crt');
  let namespace = 'default';
  try {
    namespace = (await read('namespace')).trim() || 'default';
  } catch {
    // Older clusters project no namespace file.
  }
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return Object.freeze({ server: `https://${hostPart}:${port}`, token, caPem, namespace });
}
