import { parse } from 'yaml';
import { toError } from '../lib/index.ts';
import { WebhookError } from './errors.ts';

/** Fluid's plugin names, and what each does (plugins.ts). */
export const PLUGIN_NAMES = [
  'PreferNodesWithoutCache',
  'RequireNodeWithFuse',
  'NodeAffinityWithCache',
  'MountPropagationInjector',
  'DatasetUsageInjector',
  'FuseSidecar',
  'FilePrefetcher',
] as const;
export type PluginName = (typeof PLUGIN_NAMES)[number];

/** One preferred locality of NodeAffinityWithCache and its weight (1–100). */
export interface PreferredLocality {
  name: string;
  weight: number;
}

/**
 * NodeAffinityWithCache's arguments (Fluid's TieredLocality). Locality names: `fluid.io/node`
 * (nodes with a cache worker), `fluid.io/fuse` (nodes with the FUSE pod), and Tide's
 * `tide.io/cached-bytes` (each node in proportion to the dataset's bytes its workers hold, its
 * weight the largest). Other names (zone, region) come from a runtime's `status.cacheAffinity`
 * in Fluid, which Tide does not write; they are accepted and produce no term.
 */
export interface TieredLocality {
  preferred: PreferredLocality[];
  required: string[];
}

/** Fluid's PluginsProfile: the plugin chain of each kind of pod, and the plugins' arguments. */
export interface PluginsProfile {
  plugins: {
    serverful: { withDataset: PluginName[]; withoutDataset: PluginName[] };
    serverless: { withDataset: PluginName[]; withoutDataset: PluginName[] };
  };
  nodeAffinityWithCache: TieredLocality;
}

/** Tide's default: Fluid's chart default, with the cached-bytes weighting and without FilePrefetcher. */
export const DEFAULT_PROFILE_YAML = `plugins:
  serverful:
    withDataset:
      - RequireNodeWithFuse
      - NodeAffinityWithCache
      - MountPropagationInjector
      - DatasetUsageInjector
    withoutDataset:
      - PreferNodesWithoutCache
  serverless:
    withDataset:
      - FuseSidecar
      - DatasetUsageInjector
    withoutDataset: []
pluginConfig:
  - name: NodeAffinityWithCache
    args: |
      preferred:
        - name: fluid.io/node
          weight: 100
        - name: tide.io/cached-bytes
          weight: 100
        - name: topology.kubernetes.io/zone
          weight: 50
        - name: topology.kubernetes.io/region
          weight: 20
      required:
        - fluid.io/node
`;

function bad(path: string, problem: string, value: unknown): WebhookError {
  return new WebhookError(
    'ERR_WEBHOOK_PROFILE',
    `Cannot load the plugins profile as ${path} ${problem}: current value is ${JSON.stringify(value)}`,
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function pluginList(value: unknown, path: string): PluginName[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw bad(path, 'must be a list of plugin names', value);
  return value.map((name: unknown, index) => {
    if (typeof name !== 'string' || !(PLUGIN_NAMES as readonly string[]).includes(name))
      throw bad(`${path}[${index}]`, `must be one of ${PLUGIN_NAMES.join(', ')}`, name);
    return name as PluginName;
  });
}

function tieredLocality(args: unknown, path: string): TieredLocality {
  let parsed: unknown = args;
  if (typeof args === 'string') {
    try {
      parsed = parse(args) as unknown;
    } catch (error) {
      throw bad(path, `is not YAML (${toError(error).message})`, args);
    }
  }
  if (parsed === undefined || parsed === null) return { preferred: [], required: [] };
  if (!isRecord(parsed)) throw bad(path, 'must map preferred and required', parsed);
  const preferredRaw = parsed['preferred'] ?? [];
  if (!Array.isArray(preferredRaw)) throw bad(`${path}.preferred`, 'must be a list', preferredRaw);
  const preferred = preferredRaw.map((entry: unknown, index): PreferredLocality => {
    const at = `${path}.preferred[${index}]`;
    if (!isRecord(entry) || typeof entry['name'] !== 'string' || entry['name'] === '')
      throw bad(at, 'must have a name', entry);
    const weight = entry['weight'];
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 1 || weight > 100)
      throw bad(`${at}.weight`, 'must be an integer from 1 to 100', weight);
    return { name: entry['name'], weight };
  });
  const requiredRaw = parsed['required'] ?? [];
  if (!Array.isArray(requiredRaw) || requiredRaw.some((name) => typeof name !== 'string'))
    throw bad(`${path}.required`, 'must be a list of names', requiredRaw);
  return { preferred, required: requiredRaw as string[] };
}

/**
 * Parses the `pluginsProfile` document of Fluid's `webhook-plugins` ConfigMap.
 * @throws {WebhookError} ERR_WEBHOOK_PROFILE naming the field that is wrong
 */
export function parsePluginsProfile(text: string): PluginsProfile {
  let document: unknown;
  try {
    document = parse(text) as unknown;
  } catch (error) {
    throw new WebhookError('ERR_WEBHOOK_PROFILE', `Cannot load the plugins profile as it is not YAML`, {
      cause: toError(error),
    });
  }
  if (!isRecord(document)) throw bad('the document', 'must be a mapping', document);
  const plugins = document['plugins'] ?? {};
  if (!isRecord(plugins)) throw bad('plugins', 'must be a mapping', plugins);
  const chains = (kind: 'serverful' | 'serverless') => {
    const value = plugins[kind] ?? {};
    if (!isRecord(value)) throw bad(`plugins.${kind}`, 'must be a mapping', value);
    return {
      withDataset: pluginList(value['withDataset'], `plugins.${kind}.withDataset`),
      withoutDataset: pluginList(value['withoutDataset'], `plugins.${kind}.withoutDataset`),
    };
  };
  const configs = document['pluginConfig'] ?? [];
  if (!Array.isArray(configs)) throw bad('pluginConfig', 'must be a list', configs);
  let nodeAffinityWithCache: TieredLocality = { preferred: [], required: [] };
  for (const [index, config] of configs.entries()) {
    if (!isRecord(config) || typeof config['name'] !== 'string')
      throw bad(`pluginConfig[${index}]`, 'must have a name', config);
    const name = config['name'];
    if (!(PLUGIN_NAMES as readonly string[]).includes(name))
      throw bad(`pluginConfig[${index}].name`, `must be one of ${PLUGIN_NAMES.join(', ')}`, name);
    // Fluid, too, keeps the last of repeated configurations.
    if (name === 'NodeAffinityWithCache')
      nodeAffinityWithCache = tieredLocality(config['args'], `pluginConfig[${index}].args`);
  }
  return {
    plugins: { serverful: chains('serverful'), serverless: chains('serverless') },
    nodeAffinityWithCache,
  };
}
