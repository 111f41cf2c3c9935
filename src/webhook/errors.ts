import { TideError } from '../lib/index.ts';

export type WebhookErrorCode =
  /** The plugins profile (Fluid's `webhook-plugins` ConfigMap) cannot be used. */
  | 'ERR_WEBHOOK_PROFILE'
  /** A request body that is not an admission.k8s.io AdmissionReview with a Pod. */
  | 'ERR_WEBHOOK_BAD_REVIEW'
  /** A pod uses a dataset that does not exist, is not Bound, or has no runtime: the user must fix it. */
  | 'ERR_WEBHOOK_DATASET'
  /** The serving certificate or its Secret cannot be made, read or stored. */
  | 'ERR_WEBHOOK_CERT'
  /** The FUSE sidecar cannot be built from the runtime's FUSE DaemonSet. */
  | 'ERR_WEBHOOK_SIDECAR';

export class WebhookError extends TideError<WebhookErrorCode> {}
