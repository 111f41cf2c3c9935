import type { KubeObject } from '../kube/index.ts';
import { INJECT_SERVERFUL, INJECT_SERVERLESS } from './fluid-labels.ts';
import { MUTATE_PODS_PATH } from './server.ts';

export type WebhookClientConfig =
  { service: { namespace: string; name: string; port: number; path?: string } } | { url: string };

export interface WebhookConfigurationOptions {
  /** Fluid's is `fluid-pod-admission-webhook`. */
  name: string;
  clientConfig: WebhookClientConfig;
  /** base64 of the CA; the certificate keeper (or cert-manager's CA injector) fills it in. */
  caBundle?: string;
  /** Tide's own namespace: its pods are never sent to the webhook. */
  tideNamespace: string;
  /** Default 15 (Fluid's). */
  timeoutSeconds?: number;
}

/**
 * The MutatingWebhookConfiguration of the pod webhook, as the chart writes it: Fluid's two entries
 * (`serverless.fluid.io/inject` and `fuse.serverful.fluid.io/inject` objectSelectors, Pod CREATE,
 * `failurePolicy: Fail`, no side effects, reinvoked when later webhooks change the pod), plus a
 * namespaceSelector leaving out `kube-system` and Tide's namespace. Only pods that opted in wait on
 * the webhook, so a webhook that is down blocks nothing else.
 */
export function webhookConfiguration(options: WebhookConfigurationOptions): KubeObject {
  const clientConfig = {
    ...('url' in options.clientConfig
      ? { url: options.clientConfig.url }
      : { service: { path: MUTATE_PODS_PATH, ...options.clientConfig.service } }),
    ...(options.caBundle !== undefined && { caBundle: options.caBundle }),
  };
  const entry = (name: string, label: string) => ({
    name,
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
    clientConfig,
    timeoutSeconds: options.timeoutSeconds ?? 15,
    failurePolicy: 'Fail',
    reinvocationPolicy: 'IfNeeded',
    sideEffects: 'None',
    admissionReviewVersions: ['v1', 'v1beta1'],
    namespaceSelector: {
      matchExpressions: [
        {
          key: 'kubernetes.io/metadata.name',
          operator: 'NotIn',
          values: [...new Set(['kube-system', options.tideNamespace])],
        },
      ],
    },
    objectSelector: { matchLabels: { [label]: 'true' } },
  });
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: options.name },
    webhooks: [
      entry('sidecar.fuse.fluid.io', INJECT_SERVERLESS),
      entry('fuse.serverful.fluid.io', INJECT_SERVERFUL),
    ],
  };
}
