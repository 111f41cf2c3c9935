import { setTimeout as sleep } from 'node:timers/promises';
import { hasCode, toError, type Logger } from '../lib/index.ts';
import { builtin, type KubeClient, type KubeObject } from '../kube/index.ts';

export interface LeaderElectorOptions {
  client: KubeClient;
  /** Namespace and name of the `coordination.k8s.io/v1` Lease. */
  namespace: string;
  name: string;
  /** Unique per replica and per process start (client-go: hostname + UUID). */
  identity: string;
  /** How long a non-leader waits, after it last saw the lease change, before taking it; default 15 000 ms. */
  leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before it gives up leading; default 10 000 ms. */
  renewDeadlineMs?: number;
  /** Pause between attempts to acquire or renew; default 2000 ms. */
  retryPeriodMs?: number;
  logger: Logger;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: () => number;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

type Lease = KubeObject & { spec?: LeaseSpec };

/**
 * Leader election on a Lease, as client-go's `leaderelection` package does it:
 *
 * - a candidate takes the lease when it is free, or when its record has not changed for
 *   `leaseDuration` by the candidate's own clock (so clocks of different machines never compare);
 * - the leader renews every `retryPeriod` with an update guarded by `resourceVersion`, so two
 *   candidates never both win a round;
 * - the leader stops leading when it could not renew for `renewDeadline` (< `leaseDuration`), before
 *   any other candidate may take over; `isLeader()` turns false at that moment even if the process
 *   was paused and its timers have not run yet, so writes guarded by it stop in time.
 */
export class LeaderElector {
  readonly #options: LeaderElectorOptions;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #now: () => number;
  #observed: { record: string; atMs: number } | undefined;
  /** When the lease was last written by us (monotonic ms), while leading. */
  #renewedAtMs: number | undefined;
  #leading = false;

  constructor(options: LeaderElectorOptions) {
    this.#options = options;
    this.#leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.#now = options.now ?? (() => performance.now());
    if (this.#renewDeadlineMs >= this.#leaseDurationMs) {
      throw new RangeError(
        `Cannot elect a leader as renewDeadlineMs must be shorter than leaseDurationMs: ${this.#renewDeadlineMs} >= ${this.#leaseDurationMs}`,
      );
    }
    if (this.#retryPeriodMs >= this.#renewDeadlineMs) {
      throw new RangeError(
        `Cannot elect a leader as retryPeriodMs must be shorter than renewDeadlineMs: ${this.#retryPeriodMs} >= ${this.#renewDeadlineMs}`,
      );
    }
  }

  get identity(): string {
    return this.#options.identity;
  }

  /** True while this replica leads and its last renewal is younger than the renew deadline. */
  isLeader(): boolean {
    return (
      this.#leading &&
      this.#renewedAtMs !== undefined &&
      this.#now() - this.#renewedAtMs < this.#renewDeadlineMs
    );
  }

  /**
   * Waits to acquire the lease, calls `onStartedLeading` with a signal that aborts when leadership
   * ends, renews until the signal of the call aborts or renewal fails, then calls
   * `onStoppedLeading` and resolves with why it ended. Like client-go it does not try again: a
   * replica that lost the lease exits and starts afresh.
   */
  async run(options: {
    signal: AbortSignal;
    onStartedLeading: (leading: AbortSignal) => void | Promise<void>;
    onStoppedLeading: () => void | Promise<void>;
  }): Promise<'stopped' | 'lost'> {
    const { signal } = options;
    const { logger } = this.#options;
    while (!(await this.#tryAcquireOrRenew(signal))) {
      if (isAborted(signal)) return 'stopped';
      await this.#pause(jittered(this.#retryPeriodMs), signal);
      if (isAborted(signal)) return 'stopped';
    }
    logger.info({ lease: this.#leaseName(), identity: this.identity }, 'started leading');
    const leading = new AbortController();
    let ended: 'stopped' | 'lost' = 'stopped';
    try {
      await options.onStartedLeading(leading.signal);
      ended = await this.#renewLoop(signal);
    } finally {
      this.#leading = false;
      leading.abort();
      logger.info({ lease: this.#leaseName(), identity: this.identity, why: ended }, 'stopped leading');
      await options.onStoppedLeading();
      if (ended === 'stopped') await this.release();
    }
    return ended;
  }

  /** Gives the lease up (holder cleared, as client-go's ReleaseOnCancel), so another replica takes over at once. */
  async release(): Promise<void> {
    const { client, namespace, name, logger } = this.#options;
    try {
      const lease = await client.get<Lease>(builtin.leases, name, {
        namespace,
        signal: AbortSignal.timeout(5000),
      });
      if (lease.spec?.holderIdentity !== this.identity) return;
      const now = microTime(new Date());
      await client.update(
        builtin.leases,
        {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: now,
            acquireTime: now,
          },
        },
        { namespace, signal: AbortSignal.timeout(5000) },
      );
    } catch (error) {
      logger.warn({ err: toError(error) }, 'could not release the lease');
    }
  }

  async #renewLoop(signal: AbortSignal): Promise<'stopped' | 'lost'> {
    for (;;) {
      await this.#pause(this.#retryPeriodMs, signal);
      if (isAborted(signal)) return 'stopped';
      const deadline = (this.#renewedAtMs ?? this.#now()) + this.#renewDeadlineMs;
      let renewed = false;
      while (!renewed && this.#now() < deadline && !isAborted(signal)) {
        renewed = await this.#tryAcquireOrRenew(signal, deadline - this.#now());
        if (!renewed)
          await this.#pause(Math.min(this.#retryPeriodMs / 2, Math.max(0, deadline - this.#now())), signal);
      }
      if (isAborted(signal)) return 'stopped';
      if (!renewed) return 'lost';
    }
  }

  async #tryAcquireOrRenew(signal: AbortSignal, budgetMs = this.#renewDeadlineMs): Promise<boolean> {
    const { client, namespace, name, logger } = this.#options;
    const attemptSignal = AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, Math.ceil(budgetMs)))]);
    const startedMs = this.#now();
    const nowText = microTime(new Date());
    const leaseDurationSeconds = Math.ceil(this.#leaseDurationMs / 1000);
    try {
      let lease: Lease;
      try {
        lease = await client.get<Lease>(builtin.leases, name, { namespace, signal: attemptSignal });
      } catch (error) {
        if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
        await client.create(
          builtin.leases,
          {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: {
              holderIdentity: this.identity,
              leaseDurationSeconds,
              acquireTime: nowText,
              renewTime: nowText,
              leaseTransitions: 0,
            },
          },
          { namespace, signal: attemptSignal },
        );
        this.#won(startedMs);
        return true;
      }
      const spec = lease.spec ?? {};
      const record = JSON.stringify([
        spec.holderIdentity,
        spec.renewTime,
        spec.acquireTime,
        spec.leaseTransitions,
      ]);
      if (this.#observed?.record !== record) this.#observed = { record, atMs: this.#now() };
      const holder = spec.holderIdentity ?? '';
      const heldByOther = holder !== '' && holder !== this.identity;
      const observedDurationMs = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
      if (heldByOther && this.#observed.atMs + observedDurationMs > this.#now()) return false;
      const next: LeaseSpec = {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds,
        renewTime: nowText,
        acquireTime: holder === this.identity ? (spec.acquireTime ?? nowText) : nowText,
        leaseTransitions:
          holder === this.identity ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      };
      // Guarded by resourceVersion: of two candidates updating the same record, one gets a conflict.
      const updated = await client.update<Lease>(
        builtin.leases,
        { ...lease, spec: next },
        { namespace, signal: attemptSignal },
      );
      const updatedSpec = updated.spec ?? {};
      this.#observed = {
        record: JSON.stringify([
          updatedSpec.holderIdentity,
          updatedSpec.renewTime,
          updatedSpec.acquireTime,
          updatedSpec.leaseTransitions,
        ]),
        atMs: this.#now(),
      };
      this.#won(startedMs);
      return true;
    } catch (error) {
      if (
        !signal.aborted &&
        !hasCode(error, 'ERR_KUBE_CONFLICT') &&
        !hasCode(error, 'ERR_KUBE_ALREADY_EXISTS')
      ) {
        logger.warn({ err: toError(error) }, 'could not acquire or renew the lease');
      }
      return false;
    }
  }

  /** Counts the renewal from when the attempt started: the lease was valid no longer than that. */
  #won(startedMs: number): void {
    this.#leading = true;
    this.#renewedAtMs = startedMs;
  }

  #leaseName(): string {
    return `${this.#options.namespace}/${this.#options.name}`;
  }

  async #pause(ms: number, signal: AbortSignal): Promise<void> {
    try {
      await sleep(ms, undefined, { signal });
    } catch {
      // aborted: the caller looks at the signal
    }
  }
}

/** Read through a call, so that the compiler does not assume an earlier check still holds after an await. */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

function jittered(ms: number): number {
  return ms * (1 + Math.random() * 0.2);
}

/** `metav1.MicroTime`: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
