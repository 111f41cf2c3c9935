import { Type, type Static } from '@sinclair/typebox';
import { Condition, Opaque, Resource, StringMap } from './common.ts';
import { LIMITS } from './limits.ts';

export const OperationPolicy = Type.Union([
  Type.Literal('Once'),
  Type.Literal('Cron'),
  Type.Literal('OnEvent'),
]);

export const OperationRef = Type.Object({
  apiVersion: Type.Optional(Type.String()),
  kind: Type.Union(['DataLoad', 'DataBackup', 'DataMigrate', 'DataProcess'].map((k) => Type.Literal(k))),
  name: Type.String({ minLength: 1 }),
  namespace: Type.Optional(Type.String()),
  affinityStrategy: Type.Optional(Opaque('dataflow affinity strategy')),
});

export const DataLoadSpec = Type.Object(
  {
    dataset: Type.Object({ name: Type.String({ minLength: 1 }), namespace: Type.Optional(Type.String()) }),
    loadMetadata: Type.Optional(Type.Boolean()),
    target: Type.Optional(
      Type.Array(
        Type.Object(
          {
            path: Type.String({ minLength: 1 }),
            replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.loadReplicas })),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    options: Type.Optional(StringMap),
    policy: Type.Optional(OperationPolicy),
    schedule: Type.Optional(Type.String()),
    runAfter: Type.Optional(OperationRef),
    ttlSecondsAfterFinished: Type.Optional(Type.Integer({ minimum: 0 })),
    podMetadata: Type.Optional(Opaque('pod metadata')),
    affinity: Type.Optional(Opaque('corev1.Affinity')),
    tolerations: Type.Optional(Type.Array(Opaque('corev1.Toleration'))),
    nodeSelector: Type.Optional(StringMap),
    schedulerName: Type.Optional(Type.String()),
    resources: Type.Optional(Opaque('corev1.ResourceRequirements')),
  },
  { additionalProperties: false },
);
export type DataLoadSpec = Static<typeof DataLoadSpec>;

export const OperationPhase = Type.Union(
  ['', 'Pending', 'Executing', 'Complete', 'Failed'].map((p) => Type.Literal(p)),
);

export const OperationStatus = Type.Object({
  phase: Type.Optional(OperationPhase),
  duration: Type.Optional(Type.String()),
  conditions: Type.Optional(Type.Array(Condition)),
  infos: Type.Optional(StringMap),
  lastScheduleTime: Type.Optional(Type.String()),
  lastSuccessfulTime: Type.Optional(Type.String()),
  waitingFor: Type.Optional(Type.Object({ operationComplete: Type.Optional(Type.Boolean()) })),
  progress: Type.Optional(
    Type.Object({
      filesDone: Type.Integer(),
      filesTotal: Type.Optional(Type.Integer()),
      bytesDone: Type.Integer(),
      bytesTotal: Type.Optional(Type.Integer()),
      throughputBytesPerSecond: Type.Optional(Type.Number()),
      etaSeconds: Type.Optional(Type.Number()),
    }),
  ),
});
export type OperationStatus = Static<typeof OperationStatus>;

export const DataLoad = Resource('DataLoad', DataLoadSpec, OperationStatus);
export type DataLoad = Static<typeof DataLoad>;
