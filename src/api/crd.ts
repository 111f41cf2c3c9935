import { GROUP } from './common.ts';
import { KINDS, type KindInfo } from './registry.ts';

type JsonSchema = Record<string, unknown>;

/**
 * The CustomResourceDefinition of a Tide kind, generated from its TypeBox schema so that the
 * API server and `tide apply --dry-run` validate the same thing. The schema is made structural as
 * Kubernetes requires: no `const`, no `$schema`/`$id`, no `properties` beside `additionalProperties`,
 * maps as `additionalProperties`, enums instead of unions of literals.
 */
export function crdFor(info: KindInfo): Record<string, unknown> {
  const slash = info.apiVersion.indexOf('/');
  if (slash < 0) throw new RangeError(`${info.kind} is a core kind: it has no CustomResourceDefinition`);
  const group = info.apiVersion.slice(0, slash);
  const version = info.apiVersion.slice(slash + 1);
  const schema = structural(info.schema);
  const properties = schema['properties'] as Record<string, JsonSchema>;
  properties['metadata'] = { type: 'object' };
  properties['apiVersion'] = { type: 'string' };
  properties['kind'] = { type: 'string' };
  const subresources: Record<string, unknown> = { status: {} };
  if (info.scalable) {
    subresources['scale'] = {
      specReplicasPath: '.spec.replicas',
      statusReplicasPath: '.status.currentWorkerNumberScheduled',
      labelSelectorPath: '.status.selector',
    };
  }
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${info.plural}.${group}` },
    spec: {
      group,
      scope: 'Namespaced',
      names: {
        kind: info.kind,
        listKind: `${info.kind}List`,
        plural: info.plural,
        singular: info.singular,
        shortNames: [...info.shortNames],
        ...(group === GROUP ? { categories: ['fluid', 'tide'] } : {}),
      },
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: schema },
          subresources,
          additionalPrinterColumns: info.printerColumns.map((column) => ({ ...column })),
        },
      ],
    },
  };
}

/** The CRDs of every kind Tide serves: the data.fluid.io kinds and the CronHPA. */
export function allCrds(): Record<string, unknown>[] {
  return KINDS.filter((info) => info.apiVersion.includes('/')).map(crdFor);
}

/** Whether Tide owns the CRD (its group) or serves another project's kind, whose CRD it installs only where absent. */
export function isTideCrd(crd: Record<string, unknown>): boolean {
  return (crd['spec'] as { group?: string } | undefined)?.group === GROUP;
}

function structural(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  if (typeof node['description'] === 'string') out['description'] = node['description'];
  if (Array.isArray(node['x-kubernetes-validations']))
    out['x-kubernetes-validations'] = node['x-kubernetes-validations'];
  if (node['x-kubernetes-int-or-string'] === true) return { ...out, 'x-kubernetes-int-or-string': true };
  const anyOf = node['anyOf'];
  if (Array.isArray(anyOf)) {
    const members = anyOf as JsonSchema[];
    if (members.every((member) => 'const' in member)) {
      return { ...out, type: typeof members[0]?.['const'], enum: members.map((member) => member['const']) };
    }
    return { ...out, 'x-kubernetes-preserve-unknown-fields': true };
  }
  if ('const' in node) return { ...out, type: typeof node['const'], enum: [node['const']] };
  switch (node['type']) {
    case 'object':
      return { ...out, ...objectSchema(node) };
    case 'array':
      return {
        ...out,
        type: 'array',
        ...copy(node, ['maxItems', 'minItems']),
        items: structural((node['items'] ?? {}) as JsonSchema),
      };
    case 'string':
    case 'integer':
    case 'number':
    case 'boolean':
      return {
        ...out,
        ...copy(node, ['type', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'default']),
      };
    default:
      return { ...out, 'x-kubernetes-preserve-unknown-fields': true };
  }
}

function objectSchema(node: JsonSchema): JsonSchema {
  if (node['x-kubernetes-preserve-unknown-fields'] === true) {
    const properties = node['properties'] as Record<string, JsonSchema> | undefined;
    const typed = properties === undefined ? {} : mapValues(properties, structural);
    return { type: 'object', properties: typed, 'x-kubernetes-preserve-unknown-fields': true };
  }
  const patterns = node['patternProperties'] as Record<string, JsonSchema> | undefined;
  if (patterns !== undefined) {
    const [valueSchema] = Object.values(patterns);
    return { type: 'object', additionalProperties: structural(valueSchema ?? {}) };
  }
  const out: JsonSchema = {
    type: 'object',
    properties: mapValues((node['properties'] ?? {}) as Record<string, JsonSchema>, structural),
  };
  const required = node['required'];
  if (Array.isArray(required) && required.length > 0) out['required'] = required;
  return out;
}

function mapValues(
  record: Record<string, JsonSchema>,
  fn: (value: JsonSchema) => JsonSchema,
): Record<string, JsonSchema> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, fn(value)]));
}

function copy(node: JsonSchema, keys: readonly string[]): JsonSchema {
  return Object.fromEntries(keys.filter((key) => key in node).map((key) => [key, node[key]]));
}
