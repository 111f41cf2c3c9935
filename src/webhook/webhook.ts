/**
 * The webhook as the operator runs it: the plugins profile, the certificate keeper and the HTTPS
 * server, on every replica (admission needs no leader: it only reads).
 */
import { readFile } from 'node:fs/promises';
import { toError, type Logger } from '../lib/index.ts';
import type { KubeClient } from '../kube/index.ts';
import { CertificateKeeper, type CertificateKeeperOptions } from './certificate-keeper.ts';
import type { KeyPairPem } from './certificates.ts';
import { WebhookError } from './errors.ts';
import { DEFAULT_PROFILE_YAML, parsePluginsProfile, type PluginsProfile } from './profile.ts';
import { startWebhookServer, type WebhookServer } from './server.ts';

export interface RunWebhookOptions {
  kube: KubeClient;
  logger: Logger;
  port: number;
  host?: string;
  /** The mounted `pluginsProfile` of the `webhook-plugins` ConfigMap; undefined: Tide's default. */
  profilePath?: string | undefined;
  mountRoot: string;
  mountType: string;
  certificates: Omit<CertificateKeeperOptions, 'kube' | 'logger' | 'onCertificate'>;
  signal: AbortSignal;
}

export interface RunningWebhook {
  server: WebhookServer;
  /** Resolves once stopped (`signal` aborted). */
  done: Promise<void>;
}

/**
 * Reads the plugins profile file, or Tide's default when none is given.
 * @throws {WebhookError} ERR_WEBHOOK_PROFILE
 */
export async function loadPluginsProfile(path: string | undefined): Promise<PluginsProfile> {
  if (path === undefined) return parsePluginsProfile(DEFAULT_PROFILE_YAML);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new WebhookError('ERR_WEBHOOK_PROFILE', `Cannot read the plugins profile ${path}`, {
      cause: toError(error),
    });
  }
  return parsePluginsProfile(text);
}

/** Native sidecars (init containers with restartPolicy Always) are on by default from 1.29. */
async function hasNativeSidecars(kube: KubeClient, signal: AbortSignal): Promise<boolean> {
  const version = await kube.request<{ major: string; minor: string }>({
    method: 'GET',
    path: '/version',
    signal,
  });
  const major = Number.parseInt(version.major, 10);
  const minor = Number.parseInt(version.minor, 10);
  return major > 1 || (major === 1 && minor >= 29);
}

/**
 * Starts the webhook: the first certificate check must succeed (nothing to serve otherwise), then
 * the server listens and the keeper checks periodically until `signal` aborts.
 */
export async function runWebhook(options: RunWebhookOptions): Promise<RunningWebhook> {
  const { kube, logger, signal } = options;
  const profile = await loadPluginsProfile(options.profilePath);
  const nativeSidecars = await hasNativeSidecars(kube, signal);
  // The keeper's first certificate starts the server; later ones replace it in the running server.
  const serving: { server?: WebhookServer; first?: KeyPairPem } = {};
  const keeper = new CertificateKeeper({
    ...options.certificates,
    kube,
    logger,
    onCertificate: (pair) => {
      if (serving.server === undefined) serving.first = pair;
      else serving.server.setCertificate(pair);
    },
  });
  await keeper.check(signal);
  const first = serving.first;
  if (first === undefined) throw new WebhookError('ERR_WEBHOOK_CERT', 'no webhook certificate to serve');
  const server = await startWebhookServer({
    kube,
    logger,
    profile,
    mountRoot: options.mountRoot,
    sidecar: { mountType: options.mountType },
    nativeSidecars,
    certificate: first,
    port: options.port,
    ...(options.host !== undefined && { host: options.host }),
  });
  serving.server = server;
  const done = (async () => {
    await keeper.run(signal);
    await server.close();
  })();
  return { server, done };
}
