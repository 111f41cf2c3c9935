import { Type, type TSchema, type Static } from '@sinclair/typebox';

/** The API group and version every Tide kind shares with Fluid. */
export const GROUP = 'data.fluid.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A map of strings (labels, options). Emitted as `additionalProperties` in CRDs. */
export const StringMap = Type.Record(Type.String(), Type.String());

/** An object whose fields Tide does not interpret; kept as written (`x-kubernetes-preserve-unknown-fields`). */
export function Opaque(description: string): ReturnType<typeof Type.Object> {
  return Type.Object(
    {},
    { additionalProperties: true, description, 'x-kubernetes-preserve-unknown-fields': true },
  );
}

/** A Kubernetes resource quantity: `2Gi`, `500M` or a plain byte count. */
export const Quantity = Type.Union([Type.String(), Type.Integer({ minimum: 0 })], {
  'x-kubernetes-int-or-string': true,
  description: 'Kubernetes quantity, e.g. 2Gi',
});

export const ObjectMeta = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 253 }),
    namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    labels: Type.Optional(StringMap),
    annotations: Type.Optional(StringMap),
    uid: Type.Optional(Type.String()),
    resourceVersion: Type.Optional(Type.String()),
    generation: Type.Optional(Type.Integer()),
    creationTimestamp: Type.Optional(Type.String()),
    deletionTimestamp: Type.Optional(Type.String()),
    finalizers: Type.Optional(Type.Array(Type.String())),
    ownerReferences: Type.Optional(
      Type.Array(
        Type.Object({
          apiVersion: Type.String(),
          kind: Type.String(),
          name: Type.String(),
          uid: Type.String(),
          controller: Type.Optional(Type.Boolean()),
          blockOwnerDeletion: Type.Optional(Type.Boolean()),
        }),
      ),
    ),
    managedFields: Type.Optional(Type.Array(Type.Unknown())),
  },
  { additionalProperties: false },
);
export type ObjectMeta = Static<typeof ObjectMeta>;

/** A Kubernetes-style condition, as Fluid uses on datasets, runtimes and operations. */
export const Condition = Type.Object({
  type: Type.String(),
  status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]),
  reason: Type.Optional(Type.String()),
  message: Type.Optional(Type.String()),
  lastUpdateTime: Type.Optional(Type.String()),
  lastTransitionTime: Type.Optional(Type.String()),
  lastProbeTime: Type.Optional(Type.String()),
});
export type Condition = Static<typeof Condition>;

/** Builds the schema of a whole resource from its kind, spec and status schemas. */
export function Resource<K extends string, S extends TSchema, T extends TSchema>(
  kind: K,
  spec: S,
  status: T,
  apiVersion: string = API_VERSION,
) {
  return Type.Object(
    {
      apiVersion: Type.Literal(apiVersion),
      kind: Type.Literal(kind),
      metadata: ObjectMeta,
      spec,
      status: Type.Optional(status),
    },
    { additionalProperties: false },
  );
}

export const NodeSelectorRequirement = Type.Object({
  key: Type.String(),
  operator: Type.Union(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'].map((op) => Type.Literal(op))),
  values: Type.Optional(Type.Array(Type.String())),
});

export const NodeSelector = Type.Object({
  nodeSelectorTerms: Type.Array(
    Type.Object({
      matchExpressions: Type.Optional(Type.Array(NodeSelectorRequirement)),
      matchFields: Type.Optional(Type.Array(NodeSelectorRequirement)),
    }),
  ),
});

export const User = Type.Object({
  uid: Type.Optional(Type.Integer()),
  gid: Type.Optional(Type.Integer()),
  user: Type.Optional(Type.String()),
  group: Type.Optional(Type.String()),
});
