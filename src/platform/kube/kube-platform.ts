import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { clearWorkerBlocks, fetchWorkerStats, type WorkerStats } from '../../cache/index.ts';
import { hasCode, SecretValue, toError, type Logger } from '../../lib/index.ts';
import { builtin, type KubeClient, type KubeObject, type ResourceType } from '../../kube/index.ts';
import type {
  CacheStatistics,
  DatasetRef,
  LoadPlan,
  LoadProgress,
  Platform,
  RuntimeObservation,
  RuntimePlan,
} from '../types.ts';
import {
  DEFAULT_SETTINGS,
  clientAccess,
  configFiles,
  configSecret,
  fuseDaemonSet,
  loadJob,
  persistentVolume,
  persistentVolumeClaim,
  versionsConfigMap,
  workerService,
  workerStatefulSet,
  type KubeDatasetClientConfig,
  type KubePlatformSettings,
} from './manifests.ts';
import {
  DATASET_ID_LABEL,
  DATASET_NUM_LABEL,
  datasetIdValue,
  digestOf,
  extraTypes,
  fluidPath,
  fuseNodeLabel,
  loadJobName,
  namesOf,
  podSelector,
  versionsConfigMapName,
  workerNodeLabels,
} from './names.ts';

export interface KubePlatformOptions {
  client: KubeClient;
  logger: Logger;
  /** Images, CSI driver, mount root … (defaults: DEFAULT_SETTINGS). */
  settings?: Partial<KubePlatformSettings>;
  /** Deadline of each worker's stats request; default 2000 ms. */
  statsTimeoutMs?: number;
  /** How long statistics are not asked again after no worker answered; default 30 000 ms. */
  statsBackoffMs?: number;
  /** How often a load's Job is looked at; default 1000 ms. */
  jobPollMs?: number;
  /** How long `remove` waits for an object to go before it drops the object's finalizers; default 10 000 ms. */
  removeWaitMs?: number;
  /**
   * Whether this replica may still write (the operator's lease). An aborted load deletes its Job
   * only then: after a lost lease the Job belongs to the new leader, which follows it by name.
   */
  fence?: () => boolean;
}

interface PodLike extends KubeObject {
  metadata: { name: string; deletionTimestamp?: string; labels?: Record<string, string> };
  spec?: {
    nodeName?: string;
    volumes?: { persistentVolumeClaim?: { claimName?: string } }[];
    containers?: { ports?: { name?: string; containerPort?: number }[] }[];
  };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: {
      state?: { terminated?: { message?: string; exitCode?: number; reason?: string } };
    }[];
  };
}

/** A worker pod's URL: its `http` container port (the runtime's `worker.port`, or the platform's). */
function workerUrl(pod: PodLike, settings: KubePlatformSettings): string {
  const port = pod.spec?.containers
    ?.flatMap((container) => container.ports ?? [])
    .find((candidate) => candidate.name === 'http')?.containerPort;
  return `http://${hostOf(pod.status?.podIP ?? '')}:${String(port ?? settings.workerPort)}`;
}

interface WorkloadStatus {
  desiredNumberScheduled?: number;
  numberReady?: number;
}

interface JobLike extends KubeObject {
  metadata: { name: string; deletionTimestamp?: string };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

const TYPES: Record<string, ResourceType> = {
  Secret: builtin.secrets,
  ServiceAccount: builtin.serviceAccounts,
  Role: extraTypes.roles,
  RoleBinding: extraTypes.roleBindings,
  Service: builtin.services,
  StatefulSet: builtin.statefulSets,
  DaemonSet: builtin.daemonSets,
  PersistentVolume: builtin.persistentVolumes,
  PersistentVolumeClaim: builtin.persistentVolumeClaims,
  Job: builtin.jobs,
  ConfigMap: builtin.configMaps,
};

/**
 * The Platform of the operator: a runtime becomes Kubernetes workloads written by server-side apply
 * (field manager `tide`), so each reconcile states the whole intent and the API server merges it:
 *
 * - a Secret with the worker, client and mount configurations (they carry the origin credentials
 *   and the runtime's bearer token);
 * - a StatefulSet of cache workers with the tiered-store volumes, behind a headless Service whose
 *   EndpointSlices are the cache membership the clients hash over;
 * - a FUSE DaemonSet that only runs on nodes labelled `fluid.io/f-<ns>-<name>=true` (Fluid's lazy
 *   FUSE: the CSI node plugin labels a node when a pod there first mounts the dataset);
 * - Fluid's static PersistentVolume `<ns>-<name>` and PersistentVolumeClaim `<name>` for the CSI
 *   driver, and the node labels `fluid.io/s-<ns>-<name>=true` where workers run;
 * - per DataLoad run, a Job running `src/operator/loader-main.ts`.
 *
 * The observation comes from pod readiness (what kubelet, or kwok in tests, reports) and the
 * DaemonSet's status. Until some node is labelled for FUSE the DaemonSet wants no pod, so the
 * observation reports FUSE desired 0 and a dataset is Bound once its workers are ready.
 */
export class KubePlatform implements Platform {
  /** Runtimes and loads are pods: their pod fields apply. */
  readonly schedulesPods = true;
  readonly #client: KubeClient;
  readonly #logger: Logger;
  readonly #settings: KubePlatformSettings;
  readonly #options: KubePlatformOptions;
  readonly #tokens = new Map<string, string>();
  readonly #statsBackoffUntilMs = new Map<string, number>();

  constructor(options: KubePlatformOptions) {
    this.#client = options.client;
    this.#logger = options.logger.child({ component: 'kube-platform' });
    this.#settings = {
      ...DEFAULT_SETTINGS,
      ...options.settings,
      images: { ...DEFAULT_SETTINGS.images, ...options.settings?.images },
    };
    this.#options = options;
  }

  get settings(): Readonly<KubePlatformSettings> {
    return this.#settings;
  }

  async apply(plan: RuntimePlan, signal: AbortSignal): Promise<RuntimeObservation> {
    const names = namesOf(plan.dataset);
    const token = await this.#tokenOf(plan.dataset, signal);
    const files = configFiles(plan, this.#settings, names, token);
    const configDigest = digestOf(JSON.stringify(files)).slice(0, 16);
    await this.#apply(configSecret(plan, names, files), signal);
    for (const object of clientAccess(plan, names)) await this.#apply(object, signal);
    await this.#apply(workerService(plan, names, this.#settings), signal);
    await this.#apply(workerStatefulSet(plan, names, this.#settings, configDigest), signal);
    const daemonSet = await this.#apply(fuseDaemonSet(plan, names, this.#settings, configDigest), signal);
    // Created once, not applied: their specs are immutable, and the PV's `claimRef` is an atomic
    // struct the binder completes (uid), which an apply would take back every time.
    await this.#createIfAbsent(persistentVolume(plan, names, this.#settings), signal);
    await this.#createIfAbsent(persistentVolumeClaim(plan, names, this.#settings), signal);
    // Created once: the loader writes its data, which an apply would take back.
    await this.#createIfAbsent(versionsConfigMap(plan), signal);
    const pods = await this.#workerPods(plan.dataset, signal);
    await this.#syncWorkerNodeLabels(plan.dataset, pods, signal);
    const live = pods.filter((pod) => pod.metadata.deletionTimestamp === undefined);
    const ready = live.filter((pod) => ordinalOf(pod) < plan.workers && isReady(pod));
    const fuse = (daemonSet['status'] ?? {}) as WorkloadStatus;
    return {
      workers: { desired: plan.workers, current: live.length, ready: ready.length },
      fuse: {
        desired: fuse.desiredNumberScheduled ?? 0,
        ready: fuse.numberReady ?? 0,
        mountPath: fluidPath(this.#settings.mountRoot, plan.dataset),
      },
    };
  }

  /**
   * Deletes in Fluid's order (claim and volume, FUSE, workers, then the rest), dropping node labels
   * as it goes. Pods go in the background (the garbage collector); a claim or volume still held by
   * its protection finalizer after `removeWaitMs` loses it, so removal never hangs. hostPath tiers
   * keep their blocks on the nodes (emptyDir tiers go with the pods).
   */
  async remove(dataset: DatasetRef, options: { cleanCache: boolean; signal: AbortSignal }): Promise<void> {
    const { signal } = options;
    const names = namesOf(dataset);
    const namespace = dataset.namespace;
    const jobs = await this.#client.list<JobLike>(builtin.jobs, {
      namespace,
      labelSelector: selectorOf({
        [DATASET_ID_LABEL]: datasetIdValue(dataset),
        ...podSelector(dataset, 'loader'),
      }),
      signal,
    });
    for (const job of jobs.items) await this.#delete(builtin.jobs, job.metadata.name, namespace, signal);
    await this.#deleteAndWait(builtin.persistentVolumeClaims, names.persistentVolumeClaim, namespace, signal);
    await this.#deleteAndWait(builtin.persistentVolumes, names.persistentVolume, undefined, signal);
    await this.#delete(builtin.daemonSets, names.daemonSet, namespace, signal);
    await this.#dropNodeLabels([fuseNodeLabel(dataset)], new Set(), signal);
    if (options.cleanCache) await this.#clearWorkers(dataset, signal);
    await this.#delete(builtin.statefulSets, names.statefulSet, namespace, signal);
    const { dropped } = await this.#dropNodeLabels(workerNodeLabels(dataset), new Set(), signal);
    await this.#syncDatasetNum(dropped, dataset, signal);
    await this.#delete(builtin.services, names.service, namespace, signal);
    for (const name of [names.client, names.configReader]) {
      await this.#delete(extraTypes.roleBindings, name, namespace, signal);
      await this.#delete(extraTypes.roles, name, namespace, signal);
    }
    await this.#delete(builtin.serviceAccounts, names.client, namespace, signal);
    await this.#delete(builtin.secrets, names.config, namespace, signal);
    await this.#delete(builtin.configMaps, versionsConfigMapName(dataset), namespace, signal);
    this.#tokens.delete(keyOf(dataset));
    this.#statsBackoffUntilMs.delete(keyOf(dataset));
  }

  /**
   * Best effort: a worker that does not answer keeps its hostPath blocks (a worker of the same
   * dataset made again later finds and serves them; nothing else reads them).
   */
  async #clearWorkers(dataset: DatasetRef, signal: AbortSignal): Promise<void> {
    // Workers whose stats did not answer lately are not reachable from here (kwok's pods, a
    // network policy): their blocks stay, and removal does not wait on them.
    if ((this.#statsBackoffUntilMs.get(keyOf(dataset)) ?? 0) > Date.now()) return;
    const pods = (await this.#workerPods(dataset, signal)).filter(
      (pod) => isReady(pod) && pod.status?.podIP !== undefined,
    );
    if (pods.length === 0) return;
    let token: SecretValue;
    try {
      token = new SecretValue(await this.#tokenOf(dataset, signal, false));
    } catch {
      return;
    }
    await Promise.all(
      pods.map(async (pod) => {
        const worker = {
          id: pod.metadata.name,
          url: workerUrl(pod, this.#settings),
        };
        try {
          const cleared = await clearWorkerBlocks(worker, { token, signal });
          this.#logger.info({ worker: worker.id, ...cleared }, 'worker dropped its blocks');
        } catch (error) {
          this.#logger.warn({ worker: worker.id, err: toError(error) }, 'worker kept its blocks');
        }
      }),
    );
  }

  /** Running pods that mount the dataset's claim, as Fluid's `ShouldDeleteDataset` counts them. */
  async usersOf(dataset: DatasetRef, signal: AbortSignal): Promise<string[]> {
    const claim = namesOf(dataset).persistentVolumeClaim;
    const pods = await this.#client.list<PodLike>(builtin.pods, { namespace: dataset.namespace, signal });
    return pods.items
      .filter(
        (pod) =>
          pod.status?.phase === 'Running' &&
          (pod.spec?.volumes ?? []).some((volume) => volume.persistentVolumeClaim?.claimName === claim),
      )
      .map((pod) => `pod ${dataset.namespace}/${pod.metadata.name}`);
  }

  /**
   * Sums the stats endpoints of the ready workers. Undefined when none answers (their pod IPs are
   * not reachable from the operator, as in kwok clusters), and then not asked again for a while.
   */
  async statistics(dataset: DatasetRef, signal: AbortSignal): Promise<CacheStatistics | undefined> {
    const key = keyOf(dataset);
    if ((this.#statsBackoffUntilMs.get(key) ?? 0) > Date.now()) return undefined;
    const pods = (await this.#workerPods(dataset, signal)).filter(
      (pod) => isReady(pod) && pod.status?.podIP !== undefined,
    );
    if (pods.length === 0) return undefined;
    let token: string;
    try {
      token = await this.#tokenOf(dataset, signal, false);
    } catch {
      return undefined;
    }
    const secret = new SecretValue(token);
    const results = await Promise.allSettled(
      pods.map((pod) =>
        fetchWorkerStats(
          {
            id: pod.metadata.name,
            url: workerUrl(pod, this.#settings),
          },
          { token: secret, signal, timeoutMs: this.#options.statsTimeoutMs ?? 2000 },
        ),
      ),
    );
    const answers: WorkerStats[] = [];
    const cachedBytesByNode: Record<string, number> = {};
    for (const [index, result] of results.entries()) {
      if (result.status !== 'fulfilled') continue;
      answers.push(result.value);
      const node = pods[index]?.spec?.nodeName;
      if (node !== undefined && node !== '')
        cachedBytesByNode[node] = (cachedBytesByNode[node] ?? 0) + result.value.cachedBytes;
    }
    if (answers.length === 0) {
      this.#statsBackoffUntilMs.set(key, Date.now() + (this.#options.statsBackoffMs ?? 30_000));
      return undefined;
    }
    const totals: CacheStatistics = {
      cachedBytes: 0,
      capacityBytes: 0,
      usedBytes: 0,
      bytesReadLocal: 0,
      bytesReadRemote: 0,
      bytesReadOrigin: 0,
      cachedBytesByNode,
    };
    for (const stats of answers) {
      totals.cachedBytes += stats.cachedBytes;
      totals.capacityBytes += stats.capacityBytes;
      totals.usedBytes += stats.usedBytes;
      totals.bytesReadLocal += stats.counters.servedLocalBytes;
      totals.bytesReadRemote += stats.counters.servedRemoteBytes;
      totals.bytesReadOrigin += stats.counters.servedOriginBytes;
    }
    return totals;
  }

  /**
   * Runs the load as a Job and follows it: Complete resolves with the progress the loader wrote as
   * its termination message, Failed rejects with the Job's reason. The Job's name derives from the
   * plan, so an operator that restarted while the Job ran follows the same Job; a finished Job of
   * an earlier run of the same plan is replaced. Aborting deletes the Job.
   */
  async load(
    plan: LoadPlan,
    options: { signal: AbortSignal; onProgress: (progress: LoadProgress) => void },
  ): Promise<LoadProgress> {
    const { signal } = options;
    const names = namesOf(plan.dataset);
    const planDigest = digestOf(JSON.stringify(plan));
    const jobName = loadJobName(plan.dataset, planDigest);
    const namespace = plan.dataset.namespace;
    const pollMs = this.#options.jobPollMs ?? 1000;
    try {
      await this.#ensureJob(plan, { jobName, planDigest, names, signal });
      options.onProgress({ filesDone: 0, bytesDone: 0 });
      for (;;) {
        let job: JobLike;
        try {
          job = await this.#client.get<JobLike>(builtin.jobs, jobName, { namespace, signal });
        } catch (error) {
          if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
          throw new Error(`loader Job ${namespace}/${jobName} was deleted before it finished`, {
            cause: error,
          });
        }
        const finished = finishedCondition(job);
        if (finished?.type === 'Complete') {
          const progress = await this.#loaderProgress(namespace, jobName, signal);
          options.onProgress(progress);
          return progress;
        }
        if (finished?.type === 'Failed') {
          throw new Error(
            `loader Job ${namespace}/${jobName} failed: ${finished.reason ?? 'Failed'}${finished.message === undefined ? '' : `: ${finished.message}`}`,
          );
        }
        await sleep(pollMs, undefined, { signal });
      }
    } catch (error) {
      if (signal.aborted && (this.#options.fence?.() ?? true)) {
        await this.#delete(builtin.jobs, jobName, namespace, AbortSignal.timeout(10_000)).catch(
          (cause: unknown) => {
            this.#logger.warn({ job: jobName, err: toError(cause) }, 'could not delete the loader Job');
          },
        );
        throw toError(signal.reason);
      }
      throw toError(signal.aborted ? signal.reason : error);
    }
  }

  async #ensureJob(
    plan: LoadPlan,
    options: { jobName: string; planDigest: string; names: ReturnType<typeof namesOf>; signal: AbortSignal },
  ): Promise<void> {
    const { jobName, signal } = options;
    const namespace = plan.dataset.namespace;
    const deadline = Date.now() + 60_000;
    for (;;) {
      let existing: JobLike | undefined;
      try {
        existing = await this.#client.get<JobLike>(builtin.jobs, jobName, { namespace, signal });
      } catch (error) {
        if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
      }
      if (existing === undefined) {
        const job = loadJob(plan, { ...options, settings: this.#settings });
        try {
          await this.#client.create(builtin.jobs, job, { namespace, signal });
          return;
        } catch (error) {
          if (!hasCode(error, 'ERR_KUBE_ALREADY_EXISTS')) throw error;
          continue;
        }
      }
      if (existing.metadata.deletionTimestamp === undefined) {
        if (finishedCondition(existing) === undefined) return;
        // A finished Job of an earlier run: this run needs a new one.
        await this.#delete(builtin.jobs, jobName, namespace, signal);
      }
      if (Date.now() > deadline)
        throw new Error(`the earlier loader Job ${namespace}/${jobName} did not go away`);
      await sleep(500, undefined, { signal });
    }
  }

  async #loaderProgress(namespace: string, jobName: string, signal: AbortSignal): Promise<LoadProgress> {
    const pods = await this.#client.list<PodLike>(builtin.pods, {
      namespace,
      labelSelector: `batch.kubernetes.io/job-name=${jobName}`,
      signal,
    });
    for (const pod of pods.items) {
      if (pod.status?.phase !== 'Succeeded') continue;
      const message = pod.status.containerStatuses?.[0]?.state?.terminated?.message;
      const progress = parseProgress(message);
      if (progress !== undefined) return progress;
    }
    // No message (kwok completes pods without running them): nothing is known of the work done.
    return { filesDone: 0, bytesDone: 0 };
  }

  async #apply(object: KubeObject, signal: AbortSignal): Promise<KubeObject> {
    const type = TYPES[object.kind ?? ''];
    if (type === undefined) throw new TypeError(`no resource type for kind ${String(object.kind)}`);
    return this.#client.apply(type, object, { force: true, signal });
  }

  async #createIfAbsent(object: KubeObject, signal: AbortSignal): Promise<void> {
    const type = TYPES[object.kind ?? ''];
    if (type === undefined) throw new TypeError(`no resource type for kind ${String(object.kind)}`);
    const namespace = object.metadata?.namespace;
    try {
      await this.#client.get(type, object.metadata?.name ?? '', { namespace, signal });
      return;
    } catch (error) {
      if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
    }
    try {
      await this.#client.create(type, object, { namespace, fieldManager: 'tide', signal });
    } catch (error) {
      if (!hasCode(error, 'ERR_KUBE_ALREADY_EXISTS')) throw error;
    }
  }

  /** The runtime's bearer token, from its configuration Secret or new. */
  async #tokenOf(dataset: DatasetRef, signal: AbortSignal, create = true): Promise<string> {
    const key = keyOf(dataset);
    const cached = this.#tokens.get(key);
    if (cached !== undefined) return cached;
    let token: string | undefined;
    try {
      const secret = await this.#client.get(builtin.secrets, namesOf(dataset).config, {
        namespace: dataset.namespace,
        signal,
      });
      const data = (secret['data'] ?? {}) as Record<string, string>;
      const client = JSON.parse(
        Buffer.from(data['client.json'] ?? '', 'base64').toString('utf8'),
      ) as Partial<KubeDatasetClientConfig>;
      token = client.token;
    } catch (error) {
      if (!hasCode(error, 'ERR_KUBE_NOT_FOUND') && !(error instanceof SyntaxError)) throw error;
    }
    if (token === undefined) {
      if (!create) throw new Error(`the runtime of ${key} has no configuration yet`);
      token = randomBytes(32).toString('base64url');
    }
    this.#tokens.set(key, token);
    return token;
  }

  async #workerPods(dataset: DatasetRef, signal: AbortSignal): Promise<PodLike[]> {
    const pods = await this.#client.list<PodLike>(builtin.pods, {
      namespace: dataset.namespace,
      labelSelector: selectorOf(podSelector(dataset, 'worker')),
      signal,
    });
    return pods.items;
  }

  /** Fluid's SyncScheduleInfoToCacheNodes: the nodes of the worker pods carry the dataset's labels, no others. */
  async #syncWorkerNodeLabels(
    dataset: DatasetRef,
    pods: readonly PodLike[],
    signal: AbortSignal,
  ): Promise<void> {
    const labels = workerNodeLabels(dataset);
    const wanted = new Set(
      pods
        .filter((pod) => pod.metadata.deletionTimestamp === undefined)
        .map((pod) => pod.spec?.nodeName)
        .filter((node): node is string => node !== undefined && node !== ''),
    );
    const { present, dropped, uncounted } = await this.#dropNodeLabels(labels, wanted, signal);
    const changed = [...dropped, ...uncounted];
    for (const node of wanted) {
      if (present.has(node)) continue;
      changed.push(node);
      await this.#client.patch(
        builtin.nodes,
        node,
        { metadata: { labels: Object.fromEntries(labels.map((label) => [label, 'true'])) } },
        { patchType: 'merge', signal },
      );
    }
    await this.#syncDatasetNum(changed, undefined, signal);
  }

  /**
   * Fluid's `fluid.io/dataset-num` on each of `nodes`: how many datasets' workers run there, counted
   * from the live worker pods of all namespaces (not from the node's labels, whose names hashing can
   * make ambiguous). Absent at 0, so PreferNodesWithoutCache's `DoesNotExist` matches the node.
   * `leaving` is a dataset being removed, whose pods may still be terminating: it does not count.
   */
  async #syncDatasetNum(
    nodes: readonly string[],
    leaving: DatasetRef | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const { app, role } = podSelector({ namespace: '', name: '' }, 'worker');
    const left = leaving === undefined ? undefined : datasetIdValue(leaving);
    for (const node of new Set(nodes)) {
      if (node === '') continue;
      const pods = await this.#client.list<PodLike>(builtin.pods, {
        namespace: null,
        labelSelector: `app=${app},role=${role}`,
        fieldSelector: `spec.nodeName=${node}`,
        signal,
      });
      const datasets = new Set(
        pods.items
          .filter((pod) => pod.metadata.deletionTimestamp === undefined)
          .map((pod) => pod.metadata.labels?.[DATASET_ID_LABEL])
          .filter((id): id is string => id !== undefined && id !== left),
      );
      const count = datasets.size;
      try {
        await this.#client.patch(
          builtin.nodes,
          node,
          { metadata: { labels: { [DATASET_NUM_LABEL]: count === 0 ? null : String(count) } } },
          { patchType: 'merge', signal },
        );
      } catch (error) {
        if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
      }
    }
  }

  /**
   * Removes `labels` from every node but those in `keep`. Returns the kept nodes that carry them,
   * the nodes they were dropped from, and the kept ones without `fluid.io/dataset-num` yet.
   */
  async #dropNodeLabels(
    labels: readonly string[],
    keep: ReadonlySet<string>,
    signal: AbortSignal,
  ): Promise<{ present: Set<string>; dropped: string[]; uncounted: string[] }> {
    const dropped: string[] = [];
    const uncounted: string[] = [];
    const [first] = labels;
    if (first === undefined) return { present: new Set(), dropped, uncounted };
    const nodes = await this.#client.list(builtin.nodes, { labelSelector: `${first}=true`, signal });
    const present = new Set<string>();
    for (const node of nodes.items) {
      const name = node.metadata?.name ?? '';
      if (keep.has(name)) {
        present.add(name);
        if (node.metadata?.labels?.[DATASET_NUM_LABEL] === undefined) uncounted.push(name);
        continue;
      }
      try {
        await this.#client.patch(
          builtin.nodes,
          name,
          { metadata: { labels: Object.fromEntries(labels.map((label) => [label, null])) } },
          { patchType: 'merge', signal },
        );
      } catch (error) {
        if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
      }
      dropped.push(name);
    }
    return { present, dropped, uncounted };
  }

  async #delete(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    try {
      await this.#client.delete(type, name, { namespace, propagationPolicy: 'Background', signal });
    } catch (error) {
      if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
    }
  }

  async #deleteAndWait(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    await this.#delete(type, name, namespace, signal);
    const deadline = Date.now() + (this.#options.removeWaitMs ?? 10_000);
    for (;;) {
      let current: KubeObject;
      try {
        current = await this.#client.get(type, name, { namespace, signal });
      } catch (error) {
        if (hasCode(error, 'ERR_KUBE_NOT_FOUND')) return;
        throw error;
      }
      if (Date.now() > deadline) {
        // The dataset has no running users (the reconciler checked), so the protection may go.
        this.#logger.warn(
          { kind: type.kind, name, finalizers: current.metadata?.finalizers },
          'removing the finalizers of an object that did not go away',
        );
        try {
          await this.#client.patch(
            type,
            name,
            { metadata: { finalizers: null } },
            { namespace, patchType: 'merge', signal },
          );
        } catch (error) {
          if (!hasCode(error, 'ERR_KUBE_NOT_FOUND')) throw error;
        }
        return;
      }
      await sleep(250, undefined, { signal });
    }
  }
}

function keyOf(dataset: DatasetRef): string {
  return `${dataset.namespace}/${dataset.name}`;
}

function selectorOf(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

function isReady(pod: PodLike): boolean {
  return (
    pod.metadata.deletionTimestamp === undefined &&
    (pod.status?.conditions ?? []).some(
      (condition) => condition.type === 'Ready' && condition.status === 'True',
    )
  );
}

/** The ordinal of a StatefulSet pod (`demo-worker-2` → 2). */
function ordinalOf(pod: PodLike): number {
  const match = /-(\d+)$/.exec(pod.metadata.name);
  return match === null ? Number.POSITIVE_INFINITY : Number(match[1]);
}

function hostOf(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

function finishedCondition(
  job: JobLike,
): { type: 'Complete' | 'Failed'; reason?: string; message?: string } | undefined {
  for (const condition of job.status?.conditions ?? []) {
    if (condition.status !== 'True') continue;
    if (condition.type === 'Complete' || condition.type === 'Failed') {
      return {
        type: condition.type,
        ...(condition.reason === undefined ? {} : { reason: condition.reason }),
        ...(condition.message === undefined ? {} : { message: condition.message }),
      };
    }
  }
  return undefined;
}

function parseProgress(message: string | undefined): LoadProgress | undefined {
  if (message === undefined || message === '') return undefined;
  try {
    const value = JSON.parse(message) as Partial<LoadProgress>;
    if (typeof value.filesDone !== 'number' || typeof value.bytesDone !== 'number') return undefined;
    const progress: LoadProgress = { filesDone: value.filesDone, bytesDone: value.bytesDone };
    if (typeof value.filesTotal === 'number') progress.filesTotal = value.filesTotal;
    if (typeof value.bytesTotal === 'number') progress.bytesTotal = value.bytesTotal;
    return progress;
  } catch {
    return undefined;
  }
}
