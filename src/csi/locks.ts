import { CsiError } from './errors.ts';

/**
 * Non-blocking per-key locks, as the CSI spec asks of a plugin that gets the same call twice at
 * once: the second one fails with ABORTED and the caller (the kubelet) retries it later, instead of
 * two mounts racing on one target.
 */
export class KeyedLocks {
  readonly #held = new Set<string>();

  /**
   * Runs `work` holding the lock of `key`.
   * @throws {CsiError} ERR_CSI_ABORTED when another call holds it
   */
  async with<T>(key: string, what: string, work: () => Promise<T>): Promise<T> {
    if (this.#held.has(key)) {
      throw new CsiError('ERR_CSI_ABORTED', `Cannot ${what} as another operation on ${key} is in progress`);
    }
    this.#held.add(key);
    try {
      return await work();
    } finally {
      this.#held.delete(key);
    }
  }

  isHeld(key: string): boolean {
    return this.#held.has(key);
  }
}
