import type { AnyRuntime, Condition } from '../api/index.ts';
import type { Platform } from '../platform/index.ts';
import { ignoredFields, MASTER_NOTE } from './plan.ts';

type ConditionDraft = Omit<Condition, 'lastTransitionTime' | 'lastUpdateTime'>;

/**
 * The runtime's account of its fields. Fluid's kinds get `CompatibilityMode` (served by the Tide
 * engine; which fields are ignored, and what `master.replicas` becomes); a TideRuntime gets
 * `FieldsIgnored`, True when the platform cannot apply some of its fields (pod fields in embedded
 * mode). Nothing set is ever silently dropped.
 */
export function compatibilityCondition(
  runtime: AnyRuntime,
  platform: Pick<Platform, 'schedulesPods'>,
): ConditionDraft {
  const ignored = ignoredFields(runtime, platform);
  const where = platform.schedulesPods ? '' : ' (embedded mode runs no pods)';
  const list = ignored.length > 0 ? `ignored fields${where}: ${ignored.join(', ')}.` : '';
  const master = runtime.spec.master?.replicas === undefined ? '' : ` ${MASTER_NOTE}`;
  if (runtime.kind === 'TideRuntime') {
    return ignored.length > 0
      ? { type: 'FieldsIgnored', status: 'True', reason: 'NotApplicable', message: `${list}${master}` }
      : {
          type: 'FieldsIgnored',
          status: 'False',
          reason: 'AllFieldsHonoured',
          message: 'Every field is honoured.',
        };
  }
  const served = `${runtime.kind} is served by the Tide engine;`;
  return ignored.length > 0
    ? {
        type: 'CompatibilityMode',
        status: 'True',
        reason: 'EngineFieldsIgnored',
        message: `${served} ${list}${master}`,
      }
    : {
        type: 'CompatibilityMode',
        status: 'True',
        reason: 'AllFieldsHonoured',
        message: `${served} every field is honoured.`,
      };
}
