import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_KUBE_SETTINGS, type KubePlatformSettings } from '../platform/index.ts';
import { OperatorError } from './errors.ts';

/** Everything the operator runs with, parsed once from its flags and frozen. */
export interface OperatorConfig {
  /** A kubeconfig file; undefined inside a pod (service account). */
  kubeconfig: string | undefined;
  context: string | undefined;
  leaderElection: {
    enabled: boolean;
    /** Namespace of the Lease; default the pod's namespace, else the kubeconfig context's. */
    namespace: string | undefined;
    leaseName: string;
    identity: string;
    leaseDurationMs: number;
    renewDeadlineMs: number;
    retryPeriodMs: number;
  };
  /** Apply the CRDs generated from the API schemas at start (off when Helm installs them). */
  installCrds: boolean;
  /** Run CronHPAs (off where kubernetes-cronhpa-controller runs them). */
  cronHpa: boolean;
  platform: KubePlatformSettings;
  /** Period of the reconcile of a settled dataset (statistics, origin health). */
  resyncMs: number;
  statsTimeoutMs: number;
  /** The pod admission webhook, served by every replica; undefined when off. */
  webhook: WebhookConfig | undefined;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
}

export interface WebhookConfig {
  port: number;
  /** Address to listen on; undefined: all. An IP address is also put in the certificate. */
  address: string | undefined;
  /** Namespace of the Service, the Secret and the operator (left out by the webhook's namespaceSelector). */
  namespace: string | undefined;
  /** The Service in front of the replicas; the serving certificate is for its DNS names. */
  serviceName: string;
  secretName: string;
  configurationName: string;
  /** `self`: the operator makes and renews the certificate; `cert-manager`: it serves cert-manager's. */
  certificates: 'self' | 'cert-manager';
  /** The `pluginsProfile` file of the `webhook-plugins` ConfigMap; undefined: Tide's default. */
  profilePath: string | undefined;
  checkIntervalMs: number;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;

function positive(name: string, text: string, integer = false): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new OperatorError(
      'ERR_OPERATOR_CONFIG',
      `Cannot use --${name} as it must be a positive ${integer ? 'integer' : 'number'}: current value is ${text}`,
    );
  }
  return value;
}

function port(name: string, text: string): number {
  const value = positive(name, text, true);
  if (value > 65_535) throw new OperatorError('ERR_OPERATOR_CONFIG', `--${name} ${value} is not a port`);
  return value;
}

interface RawOptions {
  kubeconfig?: string;
  context?: string;
  leaderElect: boolean;
  leaderElectionNamespace?: string;
  leaseName: string;
  identity?: string;
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
  installCrds: boolean;
  cronhpa: boolean;
  workerImage: string;
  fuseImage: string;
  loaderImage: string;
  imagePullPolicy: KubePlatformSettings['imagePullPolicy'];
  csiDriver: string;
  mountRoot: string;
  workerPort: string;
  storageClass: string;
  appDir: string;
  resyncSeconds: string;
  statsTimeoutMs: string;
  webhook: boolean;
  webhookPort: string;
  webhookAddress?: string;
  webhookNamespace?: string;
  webhookService: string;
  webhookSecret: string;
  webhookConfiguration: string;
  webhookCertificates: WebhookConfig['certificates'];
  webhookPluginsProfile?: string;
  webhookCheckSeconds: string;
  logLevel: OperatorConfig['logLevel'];
}

/**
 * Parses the operator's command line (`node src/operator/main.ts --help` lists it).
 * @throws {OperatorError} ERR_OPERATOR_CONFIG for a value it cannot run with
 * @throws {CommanderError} for unknown flags and `--help` (code `commander.helpDisplayed`)
 */
export function parseOperatorArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): OperatorConfig {
  const defaults = DEFAULT_KUBE_SETTINGS;
  const program = new Command('tide-operator')
    .description('The Tide operator: Fluid-compatible dataset reconcilers on Kubernetes')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
    })
    .option(
      '--kubeconfig <path>',
      'kubeconfig file (default $KUBECONFIG, else the in-cluster service account)',
    )
    .option('--context <name>', 'kubeconfig context (default the current one)')
    .option('--no-leader-elect', 'reconcile without a Lease (only ever run one replica so)')
    .option('--leader-election-namespace <ns>', "namespace of the Lease (default the pod's namespace)")
    .option('--lease-name <name>', 'name of the coordination.k8s.io Lease', 'tide-controller')
    .option('--identity <id>', 'this replica in the Lease (default <hostname>_<uuid>)')
    .option('--lease-duration <seconds>', 'how long others wait before taking a silent lease', '15')
    .option('--renew-deadline <seconds>', 'how long the leader retries renewing before it stops', '10')
    .option('--retry-period <seconds>', 'pause between attempts to acquire or renew', '2')
    .option('--install-crds', 'apply the CustomResourceDefinitions at start', false)
    .option('--no-cronhpa', 'leave CronHorizontalPodAutoscalers to kubernetes-cronhpa-controller')
    .option('--worker-image <image>', 'image of the cache workers', defaults.images.worker)
    .option('--fuse-image <image>', 'image of the FUSE pods', defaults.images.fuse)
    .option('--loader-image <image>', 'image of the DataLoad Jobs', defaults.images.loader)
    .addOption(
      new Option('--image-pull-policy <policy>', 'pull policy of those images')
        .choices(PULL_POLICIES)
        .default(defaults.imagePullPolicy),
    )
    .option('--csi-driver <name>', 'CSI driver named by the PersistentVolumes', defaults.csiDriver)
    .option('--mount-root <dir>', 'host directory of the FUSE mounts', defaults.mountRoot)
    .option('--worker-port <port>', 'port of the cache workers', String(defaults.workerPort))
    .option('--storage-class <name>', 'storageClassName of the volumes and claims', defaults.storageClassName)
    .option('--app-dir <dir>', 'directory of the Tide sources in the images', defaults.appDir)
    .option('--resync-seconds <seconds>', 'how often a settled dataset is reconciled again', '30')
    .option('--stats-timeout-ms <ms>', "deadline of each worker's stats request", '2000')
    .option('--webhook', 'serve the pod admission webhook (HTTPS) on this replica', false)
    .option('--webhook-port <port>', 'port of the webhook', '9443')
    .option(
      '--webhook-address <ip>',
      'address the webhook listens on, also named in its certificate (default all)',
    )
    .option('--webhook-namespace <ns>', "namespace of the webhook's Service and Secret (default the pod's)")
    .option('--webhook-service <name>', 'Service in front of the webhook', 'tide-webhook')
    .option('--webhook-secret <name>', 'Secret of the serving certificate', 'tide-webhook-certs')
    .option(
      '--webhook-configuration <name>',
      'MutatingWebhookConfiguration whose caBundle is kept',
      'tide-pod-admission-webhook',
    )
    .addOption(
      new Option('--webhook-certificates <source>', 'who makes the certificate: self, or cert-manager')
        .choices(['self', 'cert-manager'])
        .default('self'),
    )
    .option('--webhook-plugins-profile <file>', "Fluid's pluginsProfile (default Tide's profile)")
    .option('--webhook-check-seconds <seconds>', 'how often the certificate and caBundle are checked', '60')
    .addOption(new Option('--log-level <level>', 'pino log level').choices(LEVELS).default('info'));
  program.parse([...argv], { from: 'user' });
  const raw = program.opts<RawOptions>();
  const leaseDurationMs = positive('lease-duration', raw.leaseDuration) * 1000;
  const renewDeadlineMs = positive('renew-deadline', raw.renewDeadline) * 1000;
  const retryPeriodMs = positive('retry-period', raw.retryPeriod) * 1000;
  if (!(retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
    throw new OperatorError(
      'ERR_OPERATOR_CONFIG',
      'Cannot elect a leader as --retry-period < --renew-deadline < --lease-duration must hold',
    );
  }
  const workerPort = port('worker-port', raw.workerPort);
  const kubeconfig = raw.kubeconfig ?? (env['KUBECONFIG'] === '' ? undefined : env['KUBECONFIG']);
  return Object.freeze({
    kubeconfig,
    context: raw.context,
    leaderElection: Object.freeze({
      enabled: raw.leaderElect,
      namespace: raw.leaderElectionNamespace,
      leaseName: raw.leaseName,
      identity: raw.identity ?? `${hostname()}_${randomUUID()}`,
      leaseDurationMs,
      renewDeadlineMs,
      retryPeriodMs,
    }),
    installCrds: raw.installCrds,
    cronHpa: raw.cronhpa,
    platform: Object.freeze({
      images: Object.freeze({ worker: raw.workerImage, fuse: raw.fuseImage, loader: raw.loaderImage }),
      imagePullPolicy: raw.imagePullPolicy,
      csiDriver: raw.csiDriver,
      mountRoot: raw.mountRoot.replace(/\/+$/, ''),
      workerPort,
      appDir: raw.appDir.replace(/\/+$/, ''),
      storageClassName: raw.storageClass,
    }),
    resyncMs: positive('resync-seconds', raw.resyncSeconds) * 1000,
    statsTimeoutMs: positive('stats-timeout-ms', raw.statsTimeoutMs, true),
    webhook: raw.webhook
      ? Object.freeze({
          port: port('webhook-port', raw.webhookPort),
          address: raw.webhookAddress,
          namespace: raw.webhookNamespace ?? (env['POD_NAMESPACE'] === '' ? undefined : env['POD_NAMESPACE']),
          serviceName: raw.webhookService,
          secretName: raw.webhookSecret,
          configurationName: raw.webhookConfiguration,
          certificates: raw.webhookCertificates,
          profilePath: raw.webhookPluginsProfile,
          checkIntervalMs: positive('webhook-check-seconds', raw.webhookCheckSeconds) * 1000,
        })
      : undefined,
    logLevel: raw.logLevel,
  });
}

export { CommanderError };
