/**
 * Keeps the webhook's serving certificate: a self-managed CA and serving certificate in a Secret
 * (`ca.crt`, `ca.key`, `tls.crt`, `tls.key`), renewed when a third of its lifetime is left, and
 * the CA in the `caBundle` of every entry of the MutatingWebhookConfiguration, patched again when
 * someone resets it (checked every `checkIntervalMs`). All replicas run a keeper: the Secret is
 * the one source, created by whichever replica comes first (the others read the winner's) and
 * updated with resourceVersion preconditions, so replicas never serve different certificates for
 * longer than one check. With cert-manager (`manage: false`) the keeper only reads the Secret
 * cert-manager writes and serves what it finds; cert-manager's CA injector patches the caBundle.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { hasCode, toError, type Logger } from '../lib/index.ts';
import { builtin, type KubeClient, type KubeObject } from '../kube/index.ts';
import { certificateFacts, isSignedBy, issueCa, issueServing, type KeyPairPem } from './certificates.ts';
import { WebhookError } from './errors.ts';

const DAY_MS = 86_400_000;

export interface CertificateKeeperOptions {
  kube: KubeClient;
  logger: Logger;
  /** Namespace and name of the Secret. */
  namespace: string;
  secretName: string;
  /** The MutatingWebhookConfiguration whose caBundle is kept. */
  configurationName: string;
  /** Names the serving certificate is for: the Service's DNS names (and IPs in tests). */
  dnsNames: readonly string[];
  ipAddresses?: readonly string[];
  /** false: the Secret is cert-manager's; read and serve it, write nothing. Default true. */
  manage?: boolean;
  /** Called with the certificate to serve, at start and whenever it changes. */
  onCertificate: (pair: KeyPairPem) => void;
  /** Default 60 000 ms. */
  checkIntervalMs?: number;
  /** Default 10 years and 1 year. */
  caValidityMs?: number;
  servingValidityMs?: number;
  /** The clock renewal is decided and certificates are dated by; default Date.now. */
  nowMs?: () => number;
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

interface Material {
  ca: KeyPairPem;
  serving: KeyPairPem;
}

function decode(data: Record<string, string> | undefined, key: string): string {
  return Buffer.from(data?.[key] ?? '', 'base64').toString('utf8');
}

function encode(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

export class CertificateKeeper {
  readonly #options: CertificateKeeperOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  #servedFingerprint = '';
  #missingConfigurationLogged = false;

  constructor(options: CertificateKeeperOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'webhook-certificates' });
    this.#now = options.nowMs ?? Date.now;
  }

  /**
   * One round: the Secret made or renewed if needed, the certificate handed to `onCertificate` if
   * it changed, the caBundle patched if it differs. Returns the CA certificate in use.
   * @throws {WebhookError} ERR_WEBHOOK_CERT when there is no usable certificate to serve
   */
  async check(signal: AbortSignal): Promise<string> {
    const material = await this.#material(signal);
    const facts = certificateFacts(material.serving.certPem);
    if (facts !== undefined && facts.fingerprint256 !== this.#servedFingerprint) {
      this.#options.onCertificate(material.serving);
      this.#servedFingerprint = facts.fingerprint256;
      this.#logger.info(
        { secret: this.#options.secretName, notAfter: new Date(facts.notAfterMs).toISOString() },
        'serving a new webhook certificate',
      );
    }
    if (this.#options.manage !== false) await this.#patchCaBundle(material.ca.certPem, signal);
    return material.ca.certPem;
  }

  /** Checks now and then every `checkIntervalMs` until `signal` aborts; a failed round is logged and retried. */
  async run(signal: AbortSignal): Promise<void> {
    const interval = this.#options.checkIntervalMs ?? 60_000;
    for (;;) {
      try {
        await sleep(interval, undefined, { signal });
        await this.check(signal);
      } catch (error) {
        if (signal.aborted) return;
        this.#logger.warn({ err: toError(error) }, 'webhook certificate check failed; retrying');
      }
    }
  }

  #due(pem: string, validityMs: number): boolean {
    const facts = certificateFacts(pem);
    if (facts === undefined) return true;
    const lifetime = Math.min(validityMs, facts.notAfterMs - facts.notBeforeMs);
    return facts.notAfterMs - this.#now() < lifetime / 3;
  }

  #servingFitsNames(pem: string): boolean {
    const names = certificateFacts(pem)?.names ?? [];
    return [...this.#options.dnsNames, ...(this.#options.ipAddresses ?? [])].every((name) =>
      names.includes(name),
    );
  }

  async #material(signal: AbortSignal): Promise<Material> {
    const { kube, namespace, secretName } = this.#options;
    for (let attempt = 0; ; attempt += 1) {
      let secret: SecretObject | undefined;
      try {
        secret = await kube.get<SecretObject>(builtin.secrets, secretName, { namespace, signal });
      } catch (error) {
        if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
      }
      const found: Material = {
        ca: { certPem: decode(secret?.data, 'ca.crt'), keyPem: decode(secret?.data, 'ca.key') },
        serving: { certPem: decode(secret?.data, 'tls.crt'), keyPem: decode(secret?.data, 'tls.key') },
      };
      if (this.#options.manage === false) {
        if (certificateFacts(found.serving.certPem) === undefined)
          throw new WebhookError(
            'ERR_WEBHOOK_CERT',
            `Secret ${namespace}/${secretName} has no tls.crt to serve yet (is cert-manager's Certificate Ready?)`,
          );
        return found;
      }
      const renewed = this.#renewed(found);
      if (renewed === undefined) return found;
      try {
        await this.#store(secret, renewed, signal);
        return renewed;
      } catch (error) {
        // Another replica wrote first: use what it wrote.
        if ((hasCode(error, 'ERR_KUBE_CONFLICT') || hasCode(error, 'ERR_KUBE_ALREADY_EXISTS')) && attempt < 3)
          continue;
        throw new WebhookError(
          'ERR_WEBHOOK_CERT',
          `Cannot store the webhook certificate in Secret ${namespace}/${secretName}`,
          {
            cause: toError(error),
          },
        );
      }
    }
  }

  /** The material to store instead of `found`, or undefined when `found` is good. */
  #renewed(found: Material): Material | undefined {
    const caValidityMs = this.#options.caValidityMs ?? 3650 * DAY_MS;
    const servingValidityMs = this.#options.servingValidityMs ?? 365 * DAY_MS;
    const nowMs = this.#now();
    const names = { dnsNames: this.#options.dnsNames, ipAddresses: this.#options.ipAddresses ?? [] };
    let ca = found.ca;
    let reason: string | undefined;
    if (found.ca.keyPem === '' || this.#due(found.ca.certPem, caValidityMs)) {
      ca = issueCa({ commonName: `${this.#options.secretName}-ca`, nowMs, validityMs: caValidityMs });
      reason = found.ca.certPem === '' ? 'no certificate yet' : 'the CA is due for renewal';
    } else if (!isSignedBy(found.serving.certPem, ca.certPem))
      reason = 'the serving certificate is not signed by the CA';
    else if (this.#due(found.serving.certPem, servingValidityMs))
      reason = 'the serving certificate is due for renewal';
    else if (!this.#servingFitsNames(found.serving.certPem))
      reason = 'the serving certificate names other hosts';
    if (reason === undefined) return undefined;
    this.#logger.info({ secret: this.#options.secretName, reason }, 'issuing a webhook certificate');
    return { ca, serving: issueServing(ca, { ...names, nowMs, validityMs: servingValidityMs }) };
  }

  async #store(existing: SecretObject | undefined, material: Material, signal: AbortSignal): Promise<void> {
    const { kube, namespace, secretName } = this.#options;
    const data = {
      'ca.crt': encode(material.ca.certPem),
      'ca.key': encode(material.ca.keyPem),
      'tls.crt': encode(material.serving.certPem),
      'tls.key': encode(material.serving.keyPem),
    };
    if (existing === undefined) {
      await kube.create(
        builtin.secrets,
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: secretName, namespace, labels: { 'app.kubernetes.io/managed-by': 'tide' } },
          type: 'kubernetes.io/tls',
          data,
        },
        { namespace, signal },
      );
      return;
    }
    await kube.update(
      builtin.secrets,
      { ...existing, data: { ...existing.data, ...data } },
      { namespace, signal },
    );
  }

  async #patchCaBundle(caPem: string, signal: AbortSignal): Promise<void> {
    const { kube, configurationName } = this.#options;
    let configuration: KubeObject;
    try {
      configuration = await kube.get(builtin.mutatingWebhookConfigurations, configurationName, { signal });
    } catch (error) {
      if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
      if (!this.#missingConfigurationLogged)
        this.#logger.warn(
          { configuration: configurationName },
          'no MutatingWebhookConfiguration to put the CA into yet',
        );
      this.#missingConfigurationLogged = true;
      return;
    }
    this.#missingConfigurationLogged = false;
    const bundle = encode(caPem);
    const webhooks = (configuration['webhooks'] ?? []) as { clientConfig?: { caBundle?: string } }[];
    const changes = webhooks.flatMap((webhook, index) =>
      webhook.clientConfig?.caBundle === bundle
        ? []
        : [{ op: 'add', path: `/webhooks/${index}/clientConfig/caBundle`, value: bundle }],
    );
    if (changes.length === 0) return;
    // Only onto the version read, so that an entry added or removed meanwhile is not patched blindly.
    const test = {
      op: 'test',
      path: '/metadata/resourceVersion',
      value: configuration.metadata?.resourceVersion,
    };
    await kube.patch(builtin.mutatingWebhookConfigurations, configurationName, [test, ...changes], {
      patchType: 'json',
      signal,
    });
    this.#logger.info(
      { configuration: configurationName },
      'patched the CA bundle of the webhook configuration',
    );
  }
}
