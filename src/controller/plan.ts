import { namespacePathOf, type AnyRuntime, type Dataset, type EncryptOption } from '../api/index.ts';
import { parseQuantity, SecretValue } from '../lib/index.ts';
import type { FuseContainerPlan, ResolvedMount, RuntimePlan } from '../platform/index.ts';
import type { StoredObject } from '../store/index.ts';
import { ControllerError } from './errors.ts';
import { runtimePodSettings } from './pod-settings.ts';

export const DEFAULT_BLOCK_SIZE_BYTES = 4 * 1024 * 1024;

/** Looks up a Secret of the dataset's namespace by name. */
export type SecretLookup = (name: string) => Promise<StoredObject | undefined>;

/**
 * The dataset's mounts with `sharedOptions`/`sharedEncryptOptions` merged in and every
 * `encryptOptions` value read from its Secret.
 *
 * @throws {ControllerError} ERR_SECRET_NOT_FOUND, ERR_SECRET_KEY_NOT_FOUND
 */
export async function resolveMounts(dataset: Dataset, lookup: SecretLookup): Promise<ResolvedMount[]> {
  const mounts = dataset.spec.mounts ?? [];
  const resolved: ResolvedMount[] = [];
  for (const [index, mount] of mounts.entries()) {
    const secrets: Record<string, SecretValue> = {};
    for (const option of [...(dataset.spec.sharedEncryptOptions ?? []), ...(mount.encryptOptions ?? [])]) {
      secrets[option.name] = await secretValue(option, lookup, `/spec/mounts/${index}`);
    }
    resolved.push({
      mountPoint: mount.mountPoint,
      options: { ...(dataset.spec.sharedOptions ?? {}), ...(mount.options ?? {}) },
      secrets,
      path: namespacePathOf(mount, mounts.length) ?? `/${String(index)}`,
    });
  }
  return resolved;
}

async function secretValue(option: EncryptOption, lookup: SecretLookup, where: string): Promise<SecretValue> {
  const { name, key } = option.valueFrom.secretKeyRef;
  const secret = await lookup(name);
  if (secret === undefined) {
    throw new ControllerError(
      'ERR_SECRET_NOT_FOUND',
      `${where}: encryptOptions "${option.name}" names Secret "${name}", which does not exist`,
    );
  }
  const data = (secret['data'] ?? {}) as Record<string, string>;
  const encoded = data[key];
  if (encoded === undefined) {
    throw new ControllerError(
      'ERR_SECRET_KEY_NOT_FOUND',
      `${where}: Secret "${name}" has no key "${key}" (encryptOptions "${option.name}")`,
    );
  }
  return new SecretValue(Buffer.from(encoded, 'base64').toString('utf8'));
}

/** Changes when a dataset's mounts change where or how they reach their origins. */
export function mountsSignature(mounts: readonly ResolvedMount[]): string {
  return JSON.stringify(mounts.map((mount) => [mount.mountPoint, mount.path, mount.options]));
}

/**
 * What the Tide engine does with each field of a runtime: `true` honoured, a list for the honoured
 * fields of an object, `'pods'` honoured only where runtimes run as pods. Everything else is
 * reported as ignored.
 */
const HONOURED: Record<string, readonly string[] | true | 'pods'> = {
  replicas: true,
  tieredstore: true,
  imagePullSecrets: 'pods',
  // cleanCachePolicy: nothing reads it yet, so it is reported.
  management: ['metadataSyncPolicy'],
  // Tide has no master (see MASTER_NOTE): master.replicas is reported, not counted as honoured.
  master: [],
  fuse: ['args', 'cleanPolicy', 'nodeSelector', 'image', 'imageTag', 'imagePullPolicy', 'resources', 'env'],
  worker: ['blockSize', 'port', 'nodeSelector', 'resources'],
};

/** Fields honoured only by a platform that runs pods (`Platform.schedulesPods`). */
const POD_ONLY = new Set([
  'imagePullSecrets',
  'fuse.cleanPolicy',
  'fuse.nodeSelector',
  'fuse.image',
  'fuse.imageTag',
  'fuse.imagePullPolicy',
  'fuse.resources',
  'fuse.env',
  'worker.port',
  'worker.nodeSelector',
  'worker.resources',
]);

/** What `master.replicas` becomes: said in the CompatibilityMode condition whenever it is set. */
export const MASTER_NOTE =
  'Tide has no master: each FUSE client reads metadata from the origin (listings cached for the ' +
  "metadata TTL), so there is no metadata service to replicate; the control plane's availability " +
  "is the operator's replicas electing a leader on the Lease tide-controller " +
  '(kubectl get lease tide-controller -n <operator namespace>), one daemon in embedded mode.';

/**
 * Paths of the spec fields Tide does not act on, e.g. `spec.properties`, `spec.master.jvmOptions`;
 * with `schedulesPods` false (embedded mode) also the pod fields (`spec.worker.nodeSelector`, …).
 */
export function ignoredFields(runtime: AnyRuntime, options: { schedulesPods: boolean }): string[] {
  const ignored: string[] = [];
  const applies = (path: string): boolean => options.schedulesPods || !POD_ONLY.has(path);
  for (const [field, value] of Object.entries(runtime.spec)) {
    const honoured = HONOURED[field];
    if (honoured === undefined || (honoured === 'pods' && !applies(field))) {
      ignored.push(`spec.${field}`);
    } else if (Array.isArray(honoured) && typeof value === 'object' && value !== null) {
      for (const inner of Object.keys(value)) {
        if (!honoured.includes(inner) || !applies(`${field}.${inner}`))
          ignored.push(`spec.${field}.${inner}`);
      }
    }
  }
  return ignored;
}

/** The schema admits '' and Fluid's three policies; '' is Fluid's default, OnRuntimeDeleted. */
function fuseCleanPolicyOf(policy: string | undefined): RuntimePlan['fuseCleanPolicy'] {
  return policy === 'OnDemand' || policy === 'OnFuseChanged' ? policy : 'OnRuntimeDeleted';
}

/** The platform plan for a dataset and its runtime. */
export function planFor(dataset: Dataset, runtime: AnyRuntime, mounts: ResolvedMount[]): RuntimePlan {
  const blockSize = runtime.spec.worker?.blockSize;
  const blockSizeBytes =
    blockSize === undefined ? DEFAULT_BLOCK_SIZE_BYTES : parseQuantity(String(blockSize));
  if (blockSizeBytes === undefined || blockSizeBytes < 64 * 1024) {
    throw new ControllerError(
      'ERR_INVALID_RUNTIME',
      `spec.worker.blockSize must be at least 64Ki, got ${String(blockSize)}`,
    );
  }
  const accessModes = dataset.spec.accessModes ?? ['ReadOnlyMany'];
  return {
    dataset: { namespace: dataset.metadata.namespace ?? 'default', name: dataset.metadata.name },
    mounts,
    tiers: runtime.spec.tieredstore?.levels ?? [],
    blockSizeBytes,
    workers: runtime.spec.replicas ?? 1,
    fuseArgs: runtime.spec.fuse?.args ?? [],
    ...fuseContainerOf(runtime),
    readOnly: accessModes.every((mode) => mode.startsWith('ReadOnly')),
    fuseCleanPolicy: fuseCleanPolicyOf(runtime.spec.fuse?.cleanPolicy),
    pods: runtimePodSettings(runtime, dataset),
  };
}

/** `spec.fuse`'s container fields; the seed kinds keep them unchecked, so their shapes are checked here. */
function fuseContainerOf(runtime: AnyRuntime): { fuseContainer?: FuseContainerPlan } {
  const fuse = (runtime.spec.fuse ?? {}) as Record<string, unknown>;
  const bad = (field: string, what: string): ControllerError =>
    new ControllerError(
      'ERR_INVALID_RUNTIME',
      `spec.fuse.${field} must be ${what}, got ${JSON.stringify(fuse[field])}`,
    );
  const plan: FuseContainerPlan = {};
  const { image, imageTag, imagePullPolicy, resources, env } = fuse;
  if (image !== undefined) {
    if (typeof image !== 'string' || image === '') throw bad('image', 'an image name');
    if (imageTag !== undefined && (typeof imageTag !== 'string' || imageTag === ''))
      throw bad('imageTag', 'a tag');
    plan.image = imageTag === undefined ? image : `${image}:${imageTag}`;
  }
  if (imagePullPolicy !== undefined) {
    if (imagePullPolicy !== 'Always' && imagePullPolicy !== 'IfNotPresent' && imagePullPolicy !== 'Never')
      throw bad('imagePullPolicy', 'Always, IfNotPresent or Never');
    plan.imagePullPolicy = imagePullPolicy;
  }
  if (resources !== undefined) {
    if (typeof resources !== 'object' || resources === null || Array.isArray(resources))
      throw bad('resources', 'a ResourceRequirements object');
    plan.resources = resources as Record<string, unknown>;
  }
  if (env !== undefined) {
    if (!Array.isArray(env) || env.some((entry) => typeof entry !== 'object' || entry === null))
      throw bad('env', 'a list of EnvVar objects');
    plan.env = env as Record<string, unknown>[];
  }
  return Object.keys(plan).length === 0 ? {} : { fuseContainer: plan };
}
