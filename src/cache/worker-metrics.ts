import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { WorkerStats } from './worker-stats.ts';

export interface WorkerMetrics {
  readonly registry: Registry;
  readonly requestSeconds: Histogram<'route' | 'status'>;
}

/**
 * The worker's Prometheus metrics, in a registry of its own (several workers may share a process
 * in tests). Values are read from the worker's stats at scrape time, so the data path only bumps
 * plain counters. `Cluster_CapacityUsed` / `Cluster_CapacityTotal` keep Alluxio's names so that
 * Fluid's autoscaling recipe works unchanged:
 * `capacity_used_rate = ceil(sum(Cluster_CapacityUsed) * 100 / sum(Cluster_CapacityTotal))`.
 */
export function createWorkerMetrics(options: {
  stats: () => WorkerStats;
  labels: Record<string, string>;
  processMetrics: boolean;
}): WorkerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels(options.labels);
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'tide_worker_' });
  const registers = [registry];
  const stats = options.stats;

  const perTier = (
    name: string,
    help: string,
    pick: (tier: WorkerStats['tiers'][number]) => number,
  ): void => {
    new Gauge({
      name,
      help,
      labelNames: ['tier'],
      registers,
      collect() {
        for (const tier of stats().tiers) this.set({ tier: tier.medium }, pick(tier));
      },
    });
  };
  perTier('tide_cache_capacity_bytes', 'Quota of each tier', (tier) => tier.capacityBytes);
  perTier(
    'tide_cache_used_bytes',
    'Space taken in each tier (files and reservations)',
    (tier) => tier.usedBytes,
  );
  perTier('tide_cache_cached_bytes', 'Bytes of block data held in each tier', (tier) => tier.dataBytes);
  perTier('tide_cache_blocks', 'Blocks held in each tier', (tier) => tier.blockCount);

  new Gauge({
    name: 'Cluster_CapacityTotal',
    help: 'Sum of the tier quotas (Alluxio name, for Fluid autoscaling)',
    registers,
    collect() {
      this.set(stats().capacityBytes);
    },
  });
  new Gauge({
    name: 'Cluster_CapacityUsed',
    help: 'Space used in the tiers (Alluxio name, for Fluid autoscaling)',
    registers,
    collect() {
      this.set(stats().usedBytes);
    },
  });

  const total = (name: string, help: string, value: (s: WorkerStats) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        // The source of truth is the worker's counter; a scrape copies it.
        this.reset();
        this.inc(value(stats()));
      },
    });
  };
  new Counter({
    name: 'tide_cache_served_bytes_total',
    help: 'Bytes served to clients, by where they came from: local (cache, same node), remote (cache, other node), origin',
    labelNames: ['source'],
    registers,
    collect() {
      const { counters } = stats();
      this.reset();
      this.inc({ source: 'local' }, counters.servedLocalBytes);
      this.inc({ source: 'remote' }, counters.servedRemoteBytes);
      this.inc({ source: 'origin' }, counters.servedOriginBytes);
    },
  });
  total(
    'tide_cache_short_circuit_bytes_total',
    'Bytes of local clients that read the block files themselves (part of served local)',
    (s) => s.counters.locatedBytes,
  );
  total('tide_cache_hits_total', 'Block reads served from cache', (s) => s.counters.hits);
  total('tide_cache_misses_total', 'Block reads that went to the origin', (s) => s.counters.misses);
  total('tide_cache_origin_bytes_total', 'Bytes read from the origin', (s) => s.counters.originBytes);
  total('tide_cache_origin_reads_total', 'Ranged reads sent to the origin', (s) => s.counters.originReads);
  total('tide_cache_loaded_bytes_total', 'Bytes cached by load requests', (s) => s.counters.loadedBytes);
  total('tide_cache_evictions_total', 'Blocks evicted from a tier', (s) => s.counters.evictions);
  total('tide_cache_demotions_total', 'Evicted blocks moved to a lower tier', (s) => s.counters.demotions);
  total(
    'tide_cache_corrupt_blocks_total',
    'Block files dropped for a failed check',
    (s) => s.counters.corruptBlocks,
  );
  total(
    'tide_cache_rejected_writes_total',
    'Blocks not cached for lack of room',
    (s) => s.counters.rejectedWrites,
  );

  const requestSeconds = new Histogram({
    name: 'tide_cache_request_duration_seconds',
    help: 'Time to answer a request, by route and status',
    labelNames: ['route', 'status'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  return { registry, requestSeconds };
}
