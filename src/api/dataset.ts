import { Type, type Static } from '@sinclair/typebox';
import { Condition, NodeSelector, Opaque, Resource, StringMap, User } from './common.ts';
import { MOUNT_POINT_PATTERN } from './mounts.ts';

export const SecretKeySelector = Type.Object({
  name: Type.String({ minLength: 1 }),
  key: Type.String({ minLength: 1 }),
});

/** An option whose value comes from a Secret, so that it never sits in the Dataset itself. */
export const EncryptOption = Type.Object({
  name: Type.String({ minLength: 1 }),
  valueFrom: Type.Object({ secretKeyRef: SecretKeySelector }),
});
export type EncryptOption = Static<typeof EncryptOption>;

export const Mount = Type.Object(
  {
    mountPoint: Type.String({
      minLength: 5,
      maxLength: 4096,
      pattern: MOUNT_POINT_PATTERN,
      description: 'Where the data lives: local://, pvc://, http(s)://, s3://, oss://, cos://',
    }),
    options: Type.Optional(StringMap),
    name: Type.Optional(Type.String()),
    path: Type.Optional(
      Type.String({ maxLength: 4096, description: 'Path in the dataset namespace; default /<name>' }),
    ),
    readOnly: Type.Optional(Type.Boolean()),
    shared: Type.Optional(Type.Boolean()),
    encryptOptions: Type.Optional(Type.Array(EncryptOption)),
  },
  {
    additionalProperties: false,
    // The same rules validate.ts applies, for the API server (CEL in the generated CRD).
    'x-kubernetes-validations': [
      { rule: "!has(self.path) || self.path.startsWith('/')", message: 'path must be absolute' },
    ],
  },
);
export type Mount = Static<typeof Mount>;

export const AccessMode = Type.Union(
  ['ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOnce', 'ReadOnlyOnce', 'ReadWriteOncePod'].map((m) =>
    Type.Literal(m),
  ),
);

export const DatasetSpec = Type.Object(
  {
    mounts: Type.Optional(Type.Array(Mount, { maxItems: 64 })),
    owner: Type.Optional(User),
    nodeAffinity: Type.Optional(Type.Object({ required: Type.Optional(NodeSelector) })),
    tolerations: Type.Optional(Type.Array(Opaque('corev1.Toleration'))),
    accessModes: Type.Optional(Type.Array(AccessMode)),
    runtimes: Type.Optional(Type.Array(Opaque('legacy runtime reference'))),
    placement: Type.Optional(
      Type.Union([Type.Literal('Exclusive'), Type.Literal('Shared'), Type.Literal('')]),
    ),
    dataRestoreLocation: Type.Optional(Opaque('restore location (not used by Tide)')),
    sharedOptions: Type.Optional(StringMap),
    sharedEncryptOptions: Type.Optional(Type.Array(EncryptOption)),
  },
  { additionalProperties: false },
);
export type DatasetSpec = Static<typeof DatasetSpec>;

export const DatasetPhase = Type.Union(
  ['', 'NotBound', 'Bound', 'Failed', 'Updating', 'DataMigrating', 'Pending'].map((p) => Type.Literal(p)),
);

export const CacheStates = Type.Record(Type.String(), Type.String());

export const DatasetStatus = Type.Object({
  phase: Type.Optional(DatasetPhase),
  conditions: Type.Optional(Type.Array(Condition)),
  ufsTotal: Type.Optional(Type.String()),
  fileNum: Type.Optional(Type.String()),
  cacheStates: Type.Optional(CacheStates),
  cachedBytesByNode: Type.Optional(
    Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
      description:
        "Tide: bytes of the dataset each node's cache workers hold, by node name (Kubernetes); the admission webhook weights its node affinity by them",
    }),
  ),
  runtimes: Type.Optional(Type.Array(Opaque('bound runtime'))),
  mounts: Type.Optional(Type.Array(Mount)),
  mountPath: Type.Optional(
    Type.String({ description: 'Tide: where the dataset is mounted (embedded mode)' }),
  ),
  operationRef: Type.Optional(StringMap),
  datasetRef: Type.Optional(Type.Array(Type.String())),
  hcfs: Type.Optional(Opaque('HCFS endpoint')),
  observedGeneration: Type.Optional(Type.Integer()),
});
export type DatasetStatus = Static<typeof DatasetStatus>;

export const Dataset = Resource('Dataset', DatasetSpec, DatasetStatus);
export type Dataset = Static<typeof Dataset>;
