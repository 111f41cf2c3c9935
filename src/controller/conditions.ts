import type { Condition } from '../api/index.ts';

/**
 * Sets a condition of `type`, keeping `lastTransitionTime` when the status does not change, as the
 * Kubernetes API conventions ask. Returns a new list.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime' | 'lastUpdateTime'>,
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((condition) => condition.type === next.type);
  const previous = index >= 0 ? list[index] : undefined;
  const timestamp = now.toISOString();
  const transitioned = previous === undefined || previous.status !== next.status;
  const condition: Condition = {
    ...next,
    lastUpdateTime:
      transitioned || previous.reason !== next.reason || previous.message !== next.message
        ? timestamp
        : (previous.lastUpdateTime ?? timestamp),
    lastTransitionTime: transitioned ? timestamp : (previous.lastTransitionTime ?? timestamp),
  };
  if (index >= 0) list[index] = condition;
  else list.push(condition);
  return list;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((condition) => condition.type === type);
}
