/**
 * The pod admission handler: an AdmissionReview in, an AdmissionReview out, never a thrown error.
 * Fluid's chains by kind of pod (serverful or serverless, with or without datasets) from the
 * plugins profile; the mutation goes back as a JSON patch of the fields the plugins changed.
 */
import { toError, type Logger } from '../lib/index.ts';
import type { KubeClient } from '../kube/index.ts';
import { datasetsOfPod } from './datasets-of-pod.ts';
import { WebhookError } from './errors.ts';
import {
  ENABLE_INJECTION,
  INJECT_DONE,
  INJECT_SERVERFUL,
  INJECT_UNPRIVILEGED,
  SKIP_PRECHECK,
  isServerless,
  isTrue,
} from './fluid-labels.ts';
import { runChain } from './plugins.ts';
import { podNameOf, type Pod } from './pod.ts';
import type { PluginName, PluginsProfile } from './profile.ts';
import type { SidecarOptions } from './sidecar.ts';

export interface AdmissionOptions {
  kube: KubeClient;
  profile: PluginsProfile;
  logger: Logger;
  /** The platform's mount root (`--mount-root`), where the FUSE container mounts datasets. */
  mountRoot: string;
  sidecar: SidecarOptions;
  /** Whether the cluster runs native sidecars (Kubernetes 1.29+); FuseSidecar needs them. */
  nativeSidecars: boolean;
  /** Deadline of the API reads of one review; default 10 000 ms (the webhook's timeout is 15 s). */
  timeoutMs?: number;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string };
  patchType?: 'JSONPatch';
  /** base64 of the JSON patch. */
  patch?: string;
  warnings?: string[];
}

export interface AdmissionReviewAnswer {
  /** HTTP status: 200 for every review, 400 for a body that is not one. */
  httpStatus: number;
  review: { apiVersion: string; kind: 'AdmissionReview'; response: AdmissionResponse };
}

interface JsonPatchOperation {
  op: 'add' | 'replace' | 'remove';
  path: string;
  value?: unknown;
}

interface ReviewRequest {
  uid: string;
  kind?: { kind?: string };
  operation?: string;
  namespace?: string;
  dryRun?: boolean;
  object?: unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The fields plugins change; each changed one is patched whole. */
const PATCHED = [
  ['metadata', 'labels'],
  ['metadata', 'annotations'],
  ['spec', 'affinity'],
  ['spec', 'initContainers'],
  ['spec', 'containers'],
  ['spec', 'volumes'],
] as const;

/** RFC 6902 operations turning `before` into `after` on the PATCHED fields. */
export function patchOf(before: Pod, after: Pod): JsonPatchOperation[] {
  const operations: JsonPatchOperation[] = [];
  for (const [part, field] of PATCHED) {
    const old = (before[part] as Record<string, unknown>)[field];
    const now = (after[part] as Record<string, unknown>)[field];
    if (JSON.stringify(old) === JSON.stringify(now)) continue;
    const path = `/${part}/${field}`;
    if (now === undefined) operations.push({ op: 'remove', path });
    else operations.push({ op: old === undefined ? 'add' : 'replace', path, value: now });
  }
  return operations;
}

function podOf(value: unknown): Pod | undefined {
  if (!isRecord(value) || !isRecord(value['metadata'] ?? {}) || !isRecord(value['spec'])) return undefined;
  if (!Array.isArray(value['spec']['containers'])) return undefined;
  return { ...value, metadata: { ...(value['metadata'] as object) } } as Pod;
}

/** Handles one request body; the answer is always an AdmissionReview. */
export async function admit(body: unknown, options: AdmissionOptions): Promise<AdmissionReviewAnswer> {
  const started = performance.now();
  const apiVersion =
    isRecord(body) && typeof body['apiVersion'] === 'string' ? body['apiVersion'] : 'admission.k8s.io/v1';
  const request = isRecord(body) ? body['request'] : undefined;
  const answer = (response: AdmissionResponse, httpStatus = 200): AdmissionReviewAnswer => ({
    httpStatus,
    review: { apiVersion, kind: 'AdmissionReview', response },
  });
  const log = (fields: Record<string, unknown>, message: string, level: 'info' | 'warn' = 'info'): void => {
    options.logger[level]({ ...fields, ms: Math.round(performance.now() - started) }, message);
  };
  if (
    !isRecord(body) ||
    body['kind'] !== 'AdmissionReview' ||
    !isRecord(request) ||
    typeof request['uid'] !== 'string'
  ) {
    const message =
      'the request body is not an admission.k8s.io AdmissionReview with a request.uid: only the API server calls this endpoint';
    log({ kind: isRecord(body) ? body['kind'] : typeof body }, message, 'warn');
    return answer({ uid: '', allowed: false, status: { code: 400, message } }, 400);
  }
  const review = request as unknown as ReviewRequest;
  const uid = review.uid;
  const pod = podOf(review.object);
  if (review.kind?.kind !== 'Pod' || review.operation !== 'CREATE' || pod === undefined) {
    log(
      { uid, kind: review.kind?.kind, operation: review.operation },
      'allowed unchanged: only the creation of a Pod is mutated',
    );
    return answer({ uid, allowed: true });
  }
  const namespace = pod.metadata.namespace ?? review.namespace ?? '';
  const fields = { uid, namespace, pod: podNameOf(pod), dryRun: review.dryRun === true };
  const deny = (code: number, message: string): AdmissionReviewAnswer => {
    log({ ...fields, code }, `denied: ${message}`, 'warn');
    return answer({ uid, allowed: false, status: { code, message } });
  };
  if (namespace === '' || (review.namespace !== undefined && namespace !== review.namespace))
    return deny(400, 'metadata.namespace of the pod must be empty or the namespace of the request');
  const labels = pod.metadata.labels;
  if (labels?.[ENABLE_INJECTION] === 'false' || isTrue(labels, INJECT_DONE)) {
    log(
      fields,
      `allowed unchanged: ${labels?.[ENABLE_INJECTION] === 'false' ? ENABLE_INJECTION : INJECT_DONE}`,
    );
    return answer({ uid, allowed: true });
  }
  const serverless = isServerless(labels);
  if (!serverless && !isTrue(labels, INJECT_SERVERFUL)) {
    log(fields, 'allowed unchanged: the pod has no injection label');
    return answer({ uid, allowed: true });
  }
  const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  try {
    const datasets = await datasetsOfPod(pod, {
      kube: options.kube,
      namespace,
      withFuse: serverless,
      skipPrecheck: isTrue(pod.metadata.annotations, SKIP_PRECHECK),
      mountRoot: options.mountRoot,
      signal,
    });
    const kind = serverless ? 'serverless' : 'serverful';
    const chain: readonly PluginName[] =
      options.profile.plugins[kind][datasets.length > 0 ? 'withDataset' : 'withoutDataset'];
    if (serverless && datasets.length > 0 && chain.includes('FuseSidecar')) {
      if (isTrue(labels, INJECT_UNPRIVILEGED))
        return deny(
          403,
          `${INJECT_UNPRIVILEGED}: Tide injects privileged FUSE sidecars only; remove the label to get one`,
        );
      if (!options.nativeSidecars)
        return deny(
          403,
          'the FUSE sidecar needs native sidecar containers (Kubernetes 1.29 or later); this cluster is older',
        );
    }
    const {
      pod: mutated,
      warnings,
      ran,
    } = runChain(pod, datasets, { profile: options.profile, kind, sidecar: options.sidecar });
    const patch = patchOf(pod, mutated);
    log(
      {
        ...fields,
        kind,
        datasets: datasets.map((use) => use.dataset.name),
        plugins: ran,
        patched: patch.map((operation) => operation.path),
      },
      patch.length === 0 ? 'allowed unchanged' : 'allowed with a patch',
    );
    return answer({
      uid,
      allowed: true,
      ...(patch.length > 0 && {
        patchType: 'JSONPatch',
        patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
      }),
      ...(warnings.length > 0 && { warnings }),
    });
  } catch (error) {
    if (error instanceof WebhookError) return deny(403, error.message);
    // The API server could not be read in time: the client may simply retry.
    return deny(503, `the webhook could not read the pod's datasets: ${toError(error).message}; retry`);
  }
}
