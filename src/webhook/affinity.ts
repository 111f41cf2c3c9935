import type { NodeAffinity, NodeSelectorTerm, Pod, PreferredSchedulingTerm } from './pod.ts';

function nodeAffinityOf(pod: Pod): NodeAffinity {
  pod.spec.affinity ??= {};
  pod.spec.affinity.nodeAffinity ??= {};
  return pod.spec.affinity.nodeAffinity;
}

function constrains(term: NodeSelectorTerm): boolean {
  return (term.matchExpressions?.length ?? 0) > 0 || (term.matchFields?.length ?? 0) > 0;
}

/**
 * Appends preferred terms to the pod's node affinity (Fluid's InjectPreferredSchedulingTerms),
 * but not those it has already: a reinvoked webhook must not double the weights.
 */
export function addPreferredTerms(pod: Pod, terms: readonly PreferredSchedulingTerm[]): void {
  const existing = pod.spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  const known = new Set(existing.map((term) => JSON.stringify(term)));
  const added = terms.filter((term) => !known.has(JSON.stringify(term)));
  if (added.length === 0) return;
  const affinity = nodeAffinityOf(pod);
  affinity.preferredDuringSchedulingIgnoredDuringExecution = [...existing, ...added];
}

/** Whether every requirement of `term` is in `within` already. */
function implied(term: NodeSelectorTerm, within: NodeSelectorTerm): boolean {
  const has = (list: readonly unknown[] | undefined, item: unknown) =>
    (list ?? []).some((other) => JSON.stringify(other) === JSON.stringify(item));
  return (
    (term.matchExpressions ?? []).every((e) => has(within.matchExpressions, e)) &&
    (term.matchFields ?? []).every((f) => has(within.matchFields, f))
  );
}

/**
 * ANDs required terms into the pod's node affinity as Fluid's InjectNodeSelectorTerms does. Node
 * selector terms are ORed, so ANDing means a cross product: every existing term with constraints
 * gets the expressions and fields of every new one. Terms without constraints drop out.
 */
export function addRequiredTerms(pod: Pod, terms: readonly NodeSelectorTerm[]): void {
  if (terms.length === 0) return;
  const affinity = nodeAffinityOf(pod);
  const existing = affinity.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  if (existing.length === 0) {
    affinity.requiredDuringSchedulingIgnoredDuringExecution = { nodeSelectorTerms: [...terms] };
    return;
  }
  const current = existing.filter(constrains);
  // A term every existing term already requires changes nothing (a reinvoked webhook).
  const added = terms.filter(
    (term) => constrains(term) && !(current.length > 0 && current.every((left) => implied(term, left))),
  );
  if (added.length === 0) return;
  if (current.length === 0) {
    affinity.requiredDuringSchedulingIgnoredDuringExecution = { nodeSelectorTerms: added };
    return;
  }
  const combined: NodeSelectorTerm[] = [];
  for (const left of current) {
    for (const right of added) {
      const matchExpressions = [...(left.matchExpressions ?? []), ...(right.matchExpressions ?? [])];
      const matchFields = [...(left.matchFields ?? []), ...(right.matchFields ?? [])];
      // Empty lists are left out, as Go's `omitempty` leaves them out of Fluid's patch.
      combined.push({
        ...(matchExpressions.length > 0 && { matchExpressions }),
        ...(matchFields.length > 0 && { matchFields }),
      });
    }
  }
  affinity.requiredDuringSchedulingIgnoredDuringExecution = { nodeSelectorTerms: combined };
}

/** Node label keys the pod already schedules by (node affinity expressions and nodeSelector). */
export function schedulingKeysOf(pod: Pod): Set<string> {
  const keys = new Set<string>(Object.keys(pod.spec.nodeSelector ?? {}));
  const affinity = pod.spec.affinity?.nodeAffinity;
  for (const term of affinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [])
    for (const expression of term.preference.matchExpressions ?? []) keys.add(expression.key);
  for (const term of affinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [])
    for (const expression of term.matchExpressions ?? []) keys.add(expression.key);
  return keys;
}
