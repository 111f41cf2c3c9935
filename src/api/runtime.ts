import { Type, type Static, type TObject } from '@sinclair/typebox';
import { Condition, Opaque, Quantity, Resource, StringMap } from './common.ts';
import { CacheStates } from './dataset.ts';
import { LIMITS } from './limits.ts';

export const MediumType = Type.Union([Type.Literal('MEM'), Type.Literal('SSD'), Type.Literal('HDD')]);
export type MediumType = Static<typeof MediumType>;

/** One cache tier: where it keeps blocks, how much and when to evict (Fluid's `Level`). */
export const Level = Type.Object(
  {
    mediumtype: MediumType,
    volumeType: Type.Optional(Type.Union([Type.Literal('hostPath'), Type.Literal('emptyDir')])),
    volumeSource: Type.Optional(Opaque('corev1.VolumeSource')),
    path: Type.Optional(Type.String({ description: 'Comma-separated directories' })),
    quota: Type.Optional(Quantity),
    quotaList: Type.Optional(Type.String({ description: 'Comma-separated quota per path, e.g. 100Gi,50Gi' })),
    high: Type.Optional(Type.String({ description: 'High watermark ratio, e.g. "0.95"' })),
    low: Type.Optional(Type.String({ description: 'Low watermark ratio, e.g. "0.7"' })),
  },
  { additionalProperties: false },
);
export type Level = Static<typeof Level>;

export const TieredStore = Type.Object(
  { levels: Type.Optional(Type.Array(Level)) },
  { additionalProperties: false },
);
export type TieredStore = Static<typeof TieredStore>;

export const Management = Type.Object(
  {
    cleanCachePolicy: Type.Optional(
      Type.Object({
        gracePeriodSeconds: Type.Optional(Type.Integer({ minimum: 0 })),
        maxRetryAttempts: Type.Optional(Type.Integer({ minimum: 0 })),
      }),
    ),
    metadataSyncPolicy: Type.Optional(
      Type.Object({
        autoSync: Type.Optional(Type.Boolean()),
        intervalSeconds: Type.Optional(
          Type.Integer({ minimum: 1, description: 'Tide: period of the automatic metadata sync' }),
        ),
      }),
    ),
  },
  { additionalProperties: false },
);

export const FuseCleanPolicy = Type.Union(
  ['', 'OnDemand', 'OnRuntimeDeleted', 'OnFuseChanged'].map((p) => Type.Literal(p)),
);

const Replicas = Type.Integer({ minimum: 0, maximum: LIMITS.replicas });

export const RuntimePhase = Type.Union(['', 'NotReady', 'PartialReady', 'Ready'].map((p) => Type.Literal(p)));

export const RuntimeStatus = Type.Object({
  masterPhase: Type.Optional(RuntimePhase),
  masterReason: Type.Optional(Type.String()),
  workerPhase: Type.Optional(RuntimePhase),
  workerReason: Type.Optional(Type.String()),
  fusePhase: Type.Optional(RuntimePhase),
  fuseReason: Type.Optional(Type.String()),
  desiredWorkerNumberScheduled: Type.Optional(Type.Integer()),
  currentWorkerNumberScheduled: Type.Optional(Type.Integer()),
  workerNumberReady: Type.Optional(Type.Integer()),
  workerNumberAvailable: Type.Optional(Type.Integer()),
  workerNumberUnavailable: Type.Optional(Type.Integer()),
  desiredMasterNumberScheduled: Type.Optional(Type.Integer()),
  currentMasterNumberScheduled: Type.Optional(Type.Integer()),
  masterNumberReady: Type.Optional(Type.Integer()),
  desiredFuseNumberScheduled: Type.Optional(Type.Integer()),
  currentFuseNumberScheduled: Type.Optional(Type.Integer()),
  fuseNumberReady: Type.Optional(Type.Integer()),
  fuseNumberAvailable: Type.Optional(Type.Integer()),
  fuseNumberUnavailable: Type.Optional(Type.Integer()),
  setupDuration: Type.Optional(Type.String()),
  conditions: Type.Optional(Type.Array(Condition)),
  cacheStates: Type.Optional(CacheStates),
  selector: Type.Optional(Type.String()),
  mountTime: Type.Optional(Type.String()),
  valueFile: Type.Optional(Type.String()),
  observedGeneration: Type.Optional(Type.Integer()),
});
export type RuntimeStatus = Static<typeof RuntimeStatus>;

/**
 * Fluid's FUSE container fields: they go into the FUSE DaemonSet and so into the webhook's FUSE
 * sidecars. `image` (with `imageTag`) replaces the operator's `--fuse-image`; it must run Tide's
 * FUSE server (the tide-worker image).
 */
function fuseContainerFields() {
  return {
    image: Type.Optional(Type.String()),
    imageTag: Type.Optional(Type.String()),
    imagePullPolicy: Type.Optional(
      Type.Union([Type.Literal('Always'), Type.Literal('IfNotPresent'), Type.Literal('Never')]),
    ),
    resources: Type.Optional(Opaque('corev1.ResourceRequirements')),
    env: Type.Optional(Type.Array(Opaque('corev1.EnvVar'))),
  };
}

/** The fields every runtime kind shares and the Tide engine honours. */
function sharedRuntimeFields() {
  return {
    replicas: Type.Optional(Replicas),
    tieredstore: Type.Optional(TieredStore),
    management: Type.Optional(Management),
    imagePullSecrets: Type.Optional(
      Type.Array(Type.Object({ name: Type.String({ minLength: 1 }) }), {
        description: 'Secrets for pulling the images of every pod of the runtime and its loads',
      }),
    ),
  };
}

export const TideRuntimeSpec = Type.Object(
  {
    ...sharedRuntimeFields(),
    master: Type.Optional(
      Type.Object({ replicas: Type.Optional(Replicas) }, { additionalProperties: false }),
    ),
    worker: Type.Optional(
      Type.Object(
        {
          blockSize: Type.Optional(Quantity),
          port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
          nodeSelector: Type.Optional(StringMap),
          resources: Type.Optional(Opaque('corev1.ResourceRequirements')),
        },
        { additionalProperties: false },
      ),
    ),
    fuse: Type.Optional(
      Type.Object(
        {
          args: Type.Optional(Type.Array(Type.String())),
          cleanPolicy: Type.Optional(FuseCleanPolicy),
          nodeSelector: Type.Optional(StringMap),
          ...fuseContainerFields(),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type TideRuntimeSpec = Static<typeof TideRuntimeSpec>;

export const TideRuntime = Resource('TideRuntime', TideRuntimeSpec, RuntimeStatus);
export type TideRuntime = Static<typeof TideRuntime>;

/**
 * A seed engine's runtime (AlluxioRuntime, JindoRuntime, GooseFSRuntime) in compatibility mode:
 * the shared fields are typed and honoured; the engine-specific ones are accepted as written and
 * reported as ignored in a condition.
 */
function compatRuntimeSpec(): TObject {
  return Type.Object(
    {
      ...sharedRuntimeFields(),
      master: Type.Optional(
        Type.Object(
          { replicas: Type.Optional(Replicas) },
          { additionalProperties: true, 'x-kubernetes-preserve-unknown-fields': true },
        ),
      ),
      fuse: Type.Optional(
        Type.Object(
          {
            args: Type.Optional(Type.Array(Type.String())),
            cleanPolicy: Type.Optional(FuseCleanPolicy),
            ...fuseContainerFields(),
          },
          { additionalProperties: true, 'x-kubernetes-preserve-unknown-fields': true },
        ),
      ),
    },
    { additionalProperties: true, 'x-kubernetes-preserve-unknown-fields': true },
  );
}

export const AlluxioRuntime = Resource('AlluxioRuntime', compatRuntimeSpec(), RuntimeStatus);
export const JindoRuntime = Resource('JindoRuntime', compatRuntimeSpec(), RuntimeStatus);
export const GooseFSRuntime = Resource('GooseFSRuntime', compatRuntimeSpec(), RuntimeStatus);

/** The shape the engine reads from any runtime kind. */
export interface AnyRuntime {
  apiVersion: string;
  kind: RuntimeKind;
  metadata: TideRuntime['metadata'];
  spec: TideRuntimeSpec & Record<string, unknown>;
  status?: RuntimeStatus;
}

export const RUNTIME_KINDS = ['TideRuntime', 'AlluxioRuntime', 'JindoRuntime', 'GooseFSRuntime'] as const;
export type RuntimeKind = (typeof RUNTIME_KINDS)[number];
