import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import type { TSchema } from '@sinclair/typebox';
import { Cron } from 'croner';
import { parseQuantity } from '../lib/index.ts';
import type { FieldError } from './errors.ts';
import { KINDS, type KindInfo } from './registry.ts';
import { isDns1035Label, isDns1123Label, isDns1123Subdomain } from './names.ts';
import { mountPointProblem, namespacePathOf, schemeOf } from './mounts.ts';
import type { Dataset } from './dataset.ts';
import type { DataLoad } from './dataload.ts';
import type { AnyRuntime, Level } from './runtime.ts';
import { metadataSizeErrors, mountNameProblem, pathProblem, secretErrors } from './limits.ts';
import { dataLoadOptionsOf } from './dataload-options.ts';
import { cronHpaErrors, type CronHorizontalPodAutoscaler } from './cronhpa.ts';

const compiled = new Map<TSchema, TypeCheck<TSchema>>();

function checkerFor(schema: TSchema): TypeCheck<TSchema> {
  let checker = compiled.get(schema);
  if (checker === undefined) {
    checker = TypeCompiler.Compile(schema);
    compiled.set(schema, checker);
  }
  return checker;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Result of validating one document: the kind it is, or the problems that make it unacceptable. */
export type ValidationResult = { ok: true; info: KindInfo } | { ok: false; errors: FieldError[] };

/**
 * Validates one parsed document: apiVersion and kind, the schema (with JSON-pointer paths), then
 * the rules a schema cannot say (names, quotas, watermarks, cron, schemes, duplicates).
 */
export function validateDocument(doc: unknown): ValidationResult {
  if (!isRecord(doc)) return fail('', 'must be a mapping with apiVersion, kind, metadata and spec');
  const { kind, apiVersion } = doc;
  if (typeof kind !== 'string' || kind === '') return fail('/kind', 'is required');
  const info = KINDS.find((candidate) => candidate.kind === kind);
  if (info === undefined) {
    const known = KINDS.map((candidate) => candidate.kind).join(', ');
    return fail('/kind', `unknown kind "${kind}" (known kinds: ${known})`);
  }
  if (apiVersion !== info.apiVersion) {
    return fail(
      '/apiVersion',
      `must be "${info.apiVersion}" for kind ${kind}, got ${JSON.stringify(apiVersion)}`,
    );
  }
  const errors = schemaErrors(info.schema, doc);
  if (errors.length === 0) errors.push(...semanticErrors(info, doc));
  return errors.length === 0 ? { ok: true, info } : { ok: false, errors };
}

function fail(path: string, message: string): ValidationResult {
  return { ok: false, errors: [{ path, message }] };
}

function schemaErrors(schema: TSchema, doc: unknown): FieldError[] {
  const seen = new Set<string>();
  const errors: FieldError[] = [];
  for (const error of checkerFor(schema).Errors(doc)) {
    if (seen.has(error.path)) continue;
    if (isUnderReportedPath(error.path, seen)) continue;
    seen.add(error.path);
    errors.push({ path: error.path, message: describe(error) });
  }
  return errors;
}

/** A union reports its own error and then each member's; the first, the clearest, is kept. */
function isUnderReportedPath(path: string, seen: Set<string>): boolean {
  for (const reported of seen) if (path.startsWith(`${reported}/`)) return true;
  return false;
}

function describe(error: ValueError): string {
  const schema = error.schema as Record<string, unknown>;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
    case ValueErrorType.ObjectAdditionalProperties:
      return 'is not a known field';
    case ValueErrorType.String:
      return `must be a string, got ${typeName(error.value)}`;
    case ValueErrorType.Integer:
      return `must be an integer, got ${typeName(error.value)}`;
    case ValueErrorType.Number:
      return `must be a number, got ${typeName(error.value)}`;
    case ValueErrorType.Boolean:
      return `must be true or false, got ${typeName(error.value)}`;
    case ValueErrorType.Array:
      return `must be a list, got ${typeName(error.value)}`;
    case ValueErrorType.Object:
      return `must be a mapping, got ${typeName(error.value)}`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `must be at least ${String(schema['minimum'])}, got ${String(error.value)}`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `must be at most ${String(schema['maximum'])}, got ${String(error.value)}`;
    case ValueErrorType.StringPattern:
      if (error.path.endsWith('/mountPoint') && typeof error.value === 'string') {
        return mountPointProblem(error.value) ?? `must match ${String(schema['pattern'])}`;
      }
      return `must match ${String(schema['pattern'])}`;
    case ValueErrorType.StringMinLength:
      return `must be at least ${String(schema['minLength'])} characters long`;
    case ValueErrorType.StringMaxLength:
      return `must be at most ${String(schema['maxLength'])} characters long`;
    case ValueErrorType.Literal:
      return `must be ${JSON.stringify(schema['const'])}, got ${JSON.stringify(error.value)}`;
    case ValueErrorType.Union: {
      const choices = literalChoices(schema);
      if (choices !== undefined) return `must be one of ${choices}, got ${JSON.stringify(error.value)}`;
      if (schema['x-kubernetes-int-or-string'] === true)
        return `must be a quantity such as 2Gi, got ${typeName(error.value)}`;
      return error.message;
    }
    default:
      return error.message;
  }
}

function literalChoices(schema: Record<string, unknown>): string | undefined {
  const members = schema['anyOf'];
  if (!Array.isArray(members)) return undefined;
  const values: string[] = [];
  for (const member of members as Record<string, unknown>[]) {
    if (!('const' in member)) return undefined;
    values.push(JSON.stringify(member['const']));
  }
  return values.join(', ');
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${JSON.stringify(value)}`;
}

function semanticErrors(info: KindInfo, doc: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  const metadata = doc['metadata'] as { name: string; namespace?: string };
  errors.push(...nameErrors(info, metadata));
  errors.push(...metadataSizeErrors(doc));
  switch (info.kind) {
    case 'Dataset':
      errors.push(...datasetErrors(doc as unknown as Dataset));
      break;
    case 'DataLoad':
      errors.push(...dataLoadErrors(doc as unknown as DataLoad));
      break;
    case 'TideRuntime':
    case 'AlluxioRuntime':
    case 'JindoRuntime':
    case 'GooseFSRuntime':
      errors.push(...runtimeErrors(doc as unknown as AnyRuntime));
      break;
    case 'Secret':
      errors.push(...secretErrors(doc));
      break;
    case 'CronHorizontalPodAutoscaler':
      errors.push(...cronHpaErrors(doc as unknown as CronHorizontalPodAutoscaler));
      break;
    default:
      break;
  }
  return errors;
}

function nameErrors(info: KindInfo, metadata: { name: string; namespace?: string }): FieldError[] {
  const errors: FieldError[] = [];
  if (info.nameRule === 'dns1035Label' && !isDns1035Label(metadata.name)) {
    errors.push({
      path: '/metadata/name',
      message: `"${metadata.name}" is not a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending with a letter or digit, at most 63 characters)`,
    });
  }
  if (info.nameRule === 'dns1123Subdomain' && !isDns1123Subdomain(metadata.name)) {
    errors.push({
      path: '/metadata/name',
      message: `"${metadata.name}" is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)`,
    });
  }
  if (metadata.namespace !== undefined && !isDns1123Label(metadata.namespace)) {
    errors.push({ path: '/metadata/namespace', message: `"${metadata.namespace}" is not a DNS-1123 label` });
  }
  return errors;
}

function datasetErrors(dataset: Dataset): FieldError[] {
  const errors: FieldError[] = [];
  const mounts = dataset.spec.mounts ?? [];
  const paths = new Map<string, number>();
  const shared = new Set((dataset.spec.sharedEncryptOptions ?? []).map((option) => option.name));
  mounts.forEach((mount, index) => {
    const at = `/spec/mounts/${index}`;
    const problem = mountPointProblem(mount.mountPoint);
    if (problem !== undefined) errors.push({ path: `${at}/mountPoint`, message: problem });
    const locationProblem = mountLocationProblem(mount.mountPoint);
    if (locationProblem !== undefined) errors.push({ path: `${at}/mountPoint`, message: locationProblem });
    const nameProblem = mount.name === undefined ? undefined : mountNameProblem(mount.name);
    const pathOfMountProblem = mount.path === undefined ? undefined : pathProblem(mount.path);
    if (nameProblem !== undefined) errors.push({ path: `${at}/name`, message: nameProblem });
    if (pathOfMountProblem !== undefined) errors.push({ path: `${at}/path`, message: pathOfMountProblem });
    const path = namespacePathOf(mount, mounts.length);
    if (nameProblem !== undefined || pathOfMountProblem !== undefined) {
      // Already reported: a path that could leave its place is not compared with the others.
    } else if (path === undefined) {
      errors.push({
        path: `${at}/name`,
        message: 'is required when a dataset has several mounts (or set path)',
      });
    } else if (!path.startsWith('/')) {
      errors.push({ path: `${at}/path`, message: `must be absolute, got "${path}"` });
    } else {
      const other = paths.get(path);
      if (other !== undefined) {
        errors.push({
          path: `${at}/${mount.path === undefined ? 'name' : 'path'}`,
          message: `"${path}" is already used by /spec/mounts/${other}`,
        });
      }
      paths.set(path, index);
    }
    const names = new Set<string>();
    (mount.encryptOptions ?? []).forEach((option, optionIndex) => {
      if (names.has(option.name) || shared.has(option.name)) {
        errors.push({
          path: `${at}/encryptOptions/${optionIndex}/name`,
          message: `"${option.name}" is set twice`,
        });
      }
      names.add(option.name);
    });
  });
  return errors;
}

function dataLoadErrors(load: DataLoad): FieldError[] {
  const errors: FieldError[] = [];
  const namespace = load.metadata.namespace ?? 'default';
  if (load.spec.dataset.namespace !== undefined && load.spec.dataset.namespace !== namespace) {
    errors.push({
      path: '/spec/dataset/namespace',
      message: `must equal the DataLoad's namespace "${namespace}", got "${load.spec.dataset.namespace}"`,
    });
  }
  (load.spec.target ?? []).forEach((target, index) => {
    const problem = target.path.startsWith('/')
      ? pathProblem(target.path)
      : `must be absolute, got "${target.path}"`;
    if (problem !== undefined) errors.push({ path: `/spec/target/${index}/path`, message: problem });
  });
  const options = dataLoadOptionsOf(load.spec.options);
  if (!options.ok) errors.push(...options.errors);
  const scheduleError = dataLoadScheduleError(load.spec);
  if (scheduleError !== undefined) errors.push(scheduleError);
  return errors;
}

/**
 * What is wrong with a DataLoad's schedule, or undefined: a Cron load needs a schedule that parses.
 * Also checked at reconcile, for objects written straight to the Kubernetes API.
 */
export function dataLoadScheduleError(spec: {
  policy?: string | undefined;
  schedule?: string | undefined;
}): FieldError | undefined {
  if ((spec.policy ?? 'Once') !== 'Cron') return undefined;
  if (spec.schedule === undefined || spec.schedule.trim() === '') {
    return { path: '/spec/schedule', message: 'is required when policy is Cron' };
  }
  const problem = cronProblem(spec.schedule);
  return problem === undefined ? undefined : { path: '/spec/schedule', message: problem };
}

/** Why a cron expression is unusable, or undefined when it is fine (5 fields, or 6 with seconds). */
export function cronProblem(schedule: string): string | undefined {
  const fields = schedule.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    return `"${schedule}" is not a cron schedule: expected 5 fields (minute hour day-of-month month day-of-week), got ${fields}`;
  }
  try {
    new Cron(schedule, { paused: true });
    return undefined;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return `"${schedule}" is not a valid cron schedule: ${reason}`;
  }
}

function runtimeErrors(runtime: AnyRuntime): FieldError[] {
  const errors: FieldError[] = [];
  const blockSize = runtime.spec.worker?.blockSize;
  let blockSizeBytes = DEFAULT_BLOCK_SIZE_BYTES;
  if (blockSize !== undefined) {
    const bytes = parseQuantity(String(blockSize));
    if (bytes === undefined || bytes < 64 * 1024 || bytes > 1024 ** 3) {
      errors.push({
        path: '/spec/worker/blockSize',
        message: `must be a quantity from 64Ki to 1Gi, got ${JSON.stringify(blockSize)}`,
      });
    } else {
      blockSizeBytes = bytes;
    }
  }
  (runtime.spec.tieredstore?.levels ?? []).forEach((level, index) => {
    errors.push(...levelErrors(level, `/spec/tieredstore/levels/${index}`, blockSizeBytes));
  });
  return errors;
}

function levelErrors(level: Level, at: string, blockSizeBytes: number): FieldError[] {
  const errors: FieldError[] = [];
  const paths = (level.path ?? '').split(',').filter((path) => path.trim() !== '');
  if (level.quota === undefined && level.quotaList === undefined) {
    errors.push({ path: `${at}/quota`, message: 'is required (or quotaList)' });
  }
  const quotaBytes = level.quota === undefined ? undefined : parseQuantity(String(level.quota));
  if (level.quota !== undefined && quotaBytes === undefined) {
    errors.push({
      path: `${at}/quota`,
      message: `"${String(level.quota)}" is not a quantity such as 2Gi or 500M`,
    });
  } else if (quotaBytes !== undefined && quotaBytes < blockSizeBytes) {
    errors.push({
      path: `${at}/quota`,
      message: `must hold at least one block (${formatBlockSize(blockSizeBytes)}), got ${JSON.stringify(level.quota)}`,
    });
  }
  if (level.quotaList !== undefined) {
    const quotas = level.quotaList.split(',');
    const bad = quotas.find((quota) => parseQuantity(quota) === undefined);
    const tooSmall = quotas.find((quota) => (parseQuantity(quota) ?? 0) < blockSizeBytes);
    if (bad !== undefined) {
      errors.push({ path: `${at}/quotaList`, message: `"${bad}" is not a quantity such as 2Gi or 500M` });
    } else if (tooSmall !== undefined) {
      errors.push({
        path: `${at}/quotaList`,
        message: `each quota must hold at least one block (${formatBlockSize(blockSizeBytes)}), got "${tooSmall}"`,
      });
    } else if (quotas.length !== paths.length) {
      errors.push({
        path: `${at}/quotaList`,
        message: `has ${quotas.length} quotas for ${paths.length} paths; give one per path`,
      });
    }
  }
  const high = watermark(level.high, `${at}/high`, errors);
  const low = watermark(level.low, `${at}/low`, errors);
  // Eviction runs from high down to low: with low at or above high it would never free anything.
  if (high !== undefined && low !== undefined && low >= high) {
    errors.push({ path: `${at}/low`, message: `must be below high (${String(high)}), got ${String(low)}` });
  }
  paths.forEach((path) => {
    const problem = path.trim().startsWith('/')
      ? pathProblem(path.trim())
      : `"${path}" must be an absolute path`;
    if (problem !== undefined) errors.push({ path: `${at}/path`, message: problem });
  });
  return errors;
}

/** The workers' block size when `spec.worker.blockSize` names none (the cache engine's default). */
const DEFAULT_BLOCK_SIZE_BYTES = 4 * 1024 * 1024;

function formatBlockSize(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024}Mi` : `${bytes / 1024}Ki`;
}

/** `local://` and `pvc://` locations with `..` segments could leave the directory they name. */
function mountLocationProblem(mountPoint: string): string | undefined {
  const scheme = schemeOf(mountPoint);
  if (scheme !== 'local' && scheme !== 'pvc') return undefined;
  return pathProblem(mountPoint.slice(`${scheme}://`.length));
}

function watermark(text: string | undefined, path: string, errors: FieldError[]): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0 || value > 1) {
    errors.push({ path, message: `must be a ratio in (0, 1] such as "0.95", got "${text}"` });
    return undefined;
  }
  return value;
}
