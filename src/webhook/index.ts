export {
  admit,
  patchOf,
  type AdmissionOptions,
  type AdmissionResponse,
  type AdmissionReviewAnswer,
} from './admission.ts';
export { CertificateKeeper, type CertificateKeeperOptions } from './certificate-keeper.ts';
export {
  certificateFacts,
  issueCa,
  issueServing,
  isSignedBy,
  type CertificateFacts,
  type KeyPairPem,
} from './certificates.ts';
export {
  webhookConfiguration,
  type WebhookConfigurationOptions,
  type WebhookClientConfig,
} from './configuration.ts';
export type { DatasetUse, FuseTemplate } from './dataset-use.ts';
export { datasetsOfPod, type DatasetsOfPodOptions } from './datasets-of-pod.ts';
export { WebhookError, type WebhookErrorCode } from './errors.ts';
export * as fluidLabels from './fluid-labels.ts';
export {
  pluginsOf,
  runChain,
  cachedBytesTerms,
  type ChainResult,
  type Plugin,
  type MutationContext,
} from './plugins.ts';
export type {
  Pod,
  PodSpec,
  Container,
  Volume,
  VolumeMount,
  NodeSelectorTerm,
  PreferredSchedulingTerm,
} from './pod.ts';
export {
  DEFAULT_PROFILE_YAML,
  PLUGIN_NAMES,
  parsePluginsProfile,
  type PluginName,
  type PluginsProfile,
  type TieredLocality,
} from './profile.ts';
export { injectFuseSidecars, type SidecarOptions } from './sidecar.ts';
export {
  MUTATE_PODS_PATH,
  startWebhookServer,
  type WebhookServer,
  type WebhookServerOptions,
} from './server.ts';
export { loadPluginsProfile, runWebhook, type RunWebhookOptions, type RunningWebhook } from './webhook.ts';
