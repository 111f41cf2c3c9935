import { createHash } from 'node:crypto';

/**
 * Rendezvous (highest random weight) hashing: each block goes to the workers with the highest
 * `hash(worker, block)`. When a worker joins or leaves only the blocks it wins or held move (about
 * 1/n of them), every client ranks alike with no coordination, and the second-ranked worker is the
 * natural fallback and replica owner (Thaler & Ravishankar, "Using name-based mappings to increase
 * hit rates", 1998).
 */
export function rankByRendezvous<T extends { readonly id: string }>(
  blockId: string,
  workers: readonly T[],
): T[] {
  const scored = workers.map((worker) => ({ worker, score: scoreOf(worker.id, blockId) }));
  // Ties (astronomically rare with 48 bits) are broken by id so that every client agrees.
  scored.sort((a, b) => b.score - a.score || (a.worker.id < b.worker.id ? -1 : 1));
  return scored.map((entry) => entry.worker);
}

function scoreOf(workerId: string, blockId: string): number {
  return createHash('sha256').update(`${workerId}\0${blockId}`).digest().readUIntBE(0, 6);
}
