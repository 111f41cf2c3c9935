import { Type, type Static } from '@sinclair/typebox';
import { ObjectMeta, StringMap } from './common.ts';

/** A core/v1 Secret, accepted in embedded mode so that `encryptOptions` can name it. */
export const Secret = Type.Object(
  {
    apiVersion: Type.Literal('v1'),
    kind: Type.Literal('Secret'),
    metadata: ObjectMeta,
    type: Type.Optional(Type.String()),
    data: Type.Optional(StringMap),
    stringData: Type.Optional(StringMap),
    immutable: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type Secret = Static<typeof Secret>;
