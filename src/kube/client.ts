import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import {
  KubeError,
  KubeResponseError,
  KubeTimeoutError,
  KubeTransportError,
  statusToError,
} from './errors.ts';
import { loadKubeConfig, type KubeConnection, type LoadKubeConfigOptions } from './kubeconfig.ts';
import type { KubeList, KubeObject, ResourceType, Scale, Status, WatchEvent } from './types.ts';
import { parseWatchStream } from './watch.ts';

/** The field manager Tide writes with (server-side apply and, when given, other writes). */
export const DEFAULT_FIELD_MANAGER = 'tide';

export interface KubeClientOptions extends KubeConnection {
  /** Deadline of each non-watch request; default 30 000 ms. */
  timeoutMs?: number | undefined;
  /** Field manager for server-side apply; default `tide`. */
  fieldManager?: string | undefined;
  userAgent?: string | undefined;
  /** Receives each `Warning` header the API server sends (deprecations, unknown fields with fieldValidation=Warn). */
  onWarning?: ((message: string) => void) | undefined;
}

interface SignalOption {
  signal?: AbortSignal | undefined;
}

export interface ReadOptions extends SignalOption {
  /** Default: the client's namespace. Ignored for cluster-scoped types. */
  namespace?: string | undefined;
  /** `status` or `scale` to read a subresource. */
  subresource?: string | undefined;
}

export interface ListOptions extends SignalOption {
  /** Default: the client's namespace; `null` lists across all namespaces. */
  namespace?: string | null | undefined;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  limit?: number | undefined;
  continue?: string | undefined;
  resourceVersion?: string | undefined;
  resourceVersionMatch?: 'Exact' | 'NotOlderThan' | undefined;
}

export interface WriteOptions extends SignalOption {
  /** Default: `metadata.namespace` of the body, else the client's namespace. */
  namespace?: string | undefined;
  subresource?: string | undefined;
  /** `dryRun=All`: validated and admitted (webhooks with sideEffects None are called) but not stored. */
  dryRun?: boolean | undefined;
  fieldManager?: string | undefined;
  fieldValidation?: 'Strict' | 'Warn' | 'Ignore' | undefined;
}

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

export interface PatchOptions extends WriteOptions {
  /** `merge` (RFC 7386), `json` (RFC 6902), `strategic` (built-in kinds only) or `apply` (server-side apply). */
  patchType: PatchType;
  /** Server-side apply only: take ownership of conflicting fields. */
  force?: boolean | undefined;
}

export interface ApplyOptions extends WriteOptions {
  /** Take ownership of fields another manager owns instead of failing with ERR_KUBE_CONFLICT. */
  force?: boolean | undefined;
}

export interface DeleteOptions extends SignalOption {
  namespace?: string | undefined;
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground' | undefined;
  gracePeriodSeconds?: number | undefined;
  preconditions?: { uid?: string; resourceVersion?: string } | undefined;
  dryRun?: boolean | undefined;
}

export interface WatchOptions extends SignalOption {
  /** Default: the client's namespace; `null` watches all namespaces. */
  namespace?: string | null | undefined;
  /** Usually the `metadata.resourceVersion` of a preceding list. */
  resourceVersion?: string | undefined;
  /** Default true: the server sends BOOKMARK events carrying a newer resourceVersion to resume from. */
  allowWatchBookmarks?: boolean | undefined;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  /** Server-side end of the watch; the iteration then simply ends. */
  timeoutSeconds?: number | undefined;
  /** Watch-list: replay the current state as ADDED events, then a BOOKMARK with `k8s.io/initial-events-end`. */
  sendInitialEvents?: boolean | undefined;
}

export interface RawRequestOptions extends SignalOption {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Absolute API path, e.g. `/version` or `/apis/apps/v1/namespaces/default/deployments`. */
  path: string;
  query?: Record<string, string | number | boolean | undefined> | undefined;
  body?: unknown;
  contentType?: string | undefined;
  /** Default: the client's `timeoutMs`. `0` disables the deadline. */
  timeoutMs?: number | undefined;
}

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
};

/**
 * A thin typed client of the Kubernetes REST API over node:https, with one keep-alive agent
 * holding the client certificate and CA. Each call takes an options object with an
 * `AbortSignal`; failures are `KubeError`s with a stable `code`.
 */
export class KubeClient {
  readonly server: string;
  readonly namespace: string;
  readonly fieldManager: string;
  readonly #agent: http.Agent;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;
  readonly #onWarning: ((message: string) => void) | undefined;
  readonly #secure: boolean;

  constructor(options: KubeClientOptions) {
    const url = new URL(options.server);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new TypeError(
        `Cannot create KubeClient as server must be an http(s) URL: current value is ${options.server}`,
      );
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new RangeError(
        `Cannot create KubeClient as timeoutMs must be a finite number >= 0: current value is ${timeoutMs}`,
      );
    }
    this.server = options.server.replace(/\/+$/, '');
    this.namespace = options.namespace;
    this.fieldManager = options.fieldManager ?? DEFAULT_FIELD_MANAGER;
    this.#timeoutMs = timeoutMs;
    this.#onWarning = options.onWarning;
    this.#secure = url.protocol === 'https:';
    this.#headers = { 'user-agent': options.userAgent ?? 'tide', accept: 'application/json' };
    if (options.token !== undefined) this.#headers['authorization'] = `Bearer ${options.token}`;
    this.#agent = this.#secure
      ? new https.Agent({
          keepAlive: true,
          ...(options.caPem !== undefined && { ca: options.caPem }),
          ...(options.clientCertPem !== undefined && { cert: options.clientCertPem }),
          ...(options.clientKeyPem !== undefined && { key: options.clientKeyPem }),
          ...(options.tlsServerName !== undefined && { servername: options.tlsServerName }),
          rejectUnauthorized: options.insecureSkipTlsVerify !== true,
        })
      : new http.Agent({ keepAlive: true });
  }

  /** Builds a client from a kubeconfig file (current context unless `context` is given). */
  static async fromKubeConfig(
    path: string,
    options: LoadKubeConfigOptions & Omit<KubeClientOptions, keyof KubeConnection> = {},
  ): Promise<KubeClient> {
    const connection = await loadKubeConfig(path, options);
    return new KubeClient({ ...connection, ...options });
  }

  /** Closes idle keep-alive sockets. Requests in flight finish; watches should be aborted first. */
  close(): void {
    this.#agent.destroy();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Path of a collection or, with `name`, of one object (and optionally its subresource). */
  resourcePath(
    type: ResourceType,
    target: {
      namespace?: string | null | undefined;
      name?: string | undefined;
      subresource?: string | undefined;
    },
  ): string {
    const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
    let path = base;
    if (type.namespaced && target.namespace !== null) {
      path += `/namespaces/${encodeURIComponent(target.namespace ?? this.namespace)}`;
    }
    path += `/${type.plural}`;
    if (target.name !== undefined) {
      if (target.name === '') throw new TypeError(`Cannot address a ${type.kind} as its name is empty`);
      path += `/${encodeURIComponent(target.name)}`;
      if (target.subresource !== undefined) path += `/${target.subresource}`;
    } else if (target.subresource !== undefined) {
      throw new TypeError(
        `Cannot address subresource ${target.subresource} of a ${type.kind} without a name`,
      );
    }
    return path;
  }

  /** Reads one object (or its `status`/`scale` subresource). @throws {KubeNotFoundError} ERR_KUBE_NOT_FOUND */
  async get<T extends KubeObject = KubeObject>(
    type: ResourceType,
    name: string,
    options: ReadOptions = {},
  ): Promise<T> {
    return this.request<T>({
      method: 'GET',
      path: this.resourcePath(type, { namespace: options.namespace, name, subresource: options.subresource }),
      signal: options.signal,
    });
  }

  /** Lists one page of objects; follow `metadata.continue` for more when `limit` is set. */
  async list<T extends KubeObject = KubeObject>(
    type: ResourceType,
    options: ListOptions = {},
  ): Promise<KubeList<T>> {
    return this.request<KubeList<T>>({
      method: 'GET',
      path: this.resourcePath(type, { namespace: options.namespace }),
      query: {
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        limit: options.limit,
        continue: options.continue,
        resourceVersion: options.resourceVersion,
        resourceVersionMatch: options.resourceVersionMatch,
      },
      signal: options.signal,
    });
  }

  /** Creates an object. @throws {KubeAlreadyExistsError} ERR_KUBE_ALREADY_EXISTS @throws {KubeInvalidError} ERR_KUBE_INVALID */
  async create<T extends KubeObject>(type: ResourceType, body: T, options: WriteOptions = {}): Promise<T> {
    return this.request<T>({
      method: 'POST',
      path: this.resourcePath(type, {
        namespace: options.namespace ?? body.metadata?.namespace,
        subresource: options.subresource,
      }),
      query: this.#writeQuery(options),
      body: withTypeMeta(type, body, options.subresource),
      signal: options.signal,
    });
  }

  /**
   * Replaces an object (PUT), guarded by `metadata.resourceVersion` when the body has one.
   * With `subresource: 'status'` only the status is written (CRDs with a status subresource ignore it otherwise).
   * @throws {KubeConflictError} ERR_KUBE_CONFLICT when the resourceVersion is stale
   */
  async update<T extends KubeObject>(type: ResourceType, body: T, options: WriteOptions = {}): Promise<T> {
    const name = body.metadata?.name;
    if (name === undefined) throw new TypeError(`Cannot update a ${type.kind} as metadata.name is missing`);
    return this.request<T>({
      method: 'PUT',
      path: this.resourcePath(type, {
        namespace: options.namespace ?? body.metadata?.namespace,
        name,
        subresource: options.subresource,
      }),
      query: this.#writeQuery(options),
      body: withTypeMeta(type, body, options.subresource),
      signal: options.signal,
    });
  }

  /** `update(type, body, { subresource: 'status' })`. */
  async updateStatus<T extends KubeObject>(
    type: ResourceType,
    body: T,
    options: Omit<WriteOptions, 'subresource'> = {},
  ): Promise<T> {
    return this.update(type, body, { ...options, subresource: 'status' });
  }

  /**
   * Patches an object. `patch` is an object for merge/strategic/apply patches and an array of
   * operations for JSON patches. Apply patches need a field manager (default `tide`).
   */
  async patch<T extends KubeObject = KubeObject>(
    type: ResourceType,
    name: string,
    patch: unknown,
    options: PatchOptions,
  ): Promise<T> {
    if (options.patchType === 'json' && !Array.isArray(patch)) {
      throw new TypeError(
        `Cannot send a JSON patch to ${type.kind} ${name} as it must be an array of operations`,
      );
    }
    const isApply = options.patchType === 'apply';
    return this.request<T>({
      method: 'PATCH',
      path: this.resourcePath(type, { namespace: options.namespace, name, subresource: options.subresource }),
      query: {
        ...this.#writeQuery(
          isApply ? { ...options, fieldManager: options.fieldManager ?? this.fieldManager } : options,
        ),
        force: isApply && options.force === true ? true : undefined,
      },
      body: patch,
      contentType: PATCH_CONTENT_TYPES[options.patchType],
      signal: options.signal,
    });
  }

  /**
   * Server-side apply of a complete intent (`apiVersion`, `kind`, `metadata.name` and the fields
   * Tide owns). @throws {KubeConflictError} ERR_KUBE_CONFLICT when another manager owns a field and `force` is not set
   */
  async apply<T extends KubeObject>(type: ResourceType, body: T, options: ApplyOptions = {}): Promise<T> {
    const name = body.metadata?.name;
    if (name === undefined) throw new TypeError(`Cannot apply a ${type.kind} as metadata.name is missing`);
    return this.patch<T>(type, name, withTypeMeta(type, body, options.subresource), {
      ...options,
      namespace: options.namespace ?? body.metadata?.namespace,
      patchType: 'apply',
    });
  }

  /**
   * Deletes an object. Returns the object (when finalizers or graceful deletion keep it around)
   * or a Success Status. @throws {KubeNotFoundError} ERR_KUBE_NOT_FOUND
   */
  async delete<T extends KubeObject = KubeObject>(
    type: ResourceType,
    name: string,
    options: DeleteOptions = {},
  ): Promise<T | Status> {
    return this.request<T | Status>({
      method: 'DELETE',
      path: this.resourcePath(type, { namespace: options.namespace, name }),
      query: { dryRun: options.dryRun === true ? 'All' : undefined },
      body: {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        ...(options.propagationPolicy !== undefined && { propagationPolicy: options.propagationPolicy }),
        ...(options.gracePeriodSeconds !== undefined && { gracePeriodSeconds: options.gracePeriodSeconds }),
        ...(options.preconditions !== undefined && { preconditions: options.preconditions }),
      },
      signal: options.signal,
    });
  }

  /** Reads the `scale` subresource (`autoscaling/v1` Scale). */
  async getScale(
    type: ResourceType,
    name: string,
    options: Omit<ReadOptions, 'subresource'> = {},
  ): Promise<Scale> {
    return this.get<Scale>(type, name, { ...options, subresource: 'scale' });
  }

  /** Sets `spec.replicas` through the `scale` subresource (a merge patch, so no resourceVersion is needed). */
  async scale(
    type: ResourceType,
    name: string,
    replicas: number,
    options: Omit<WriteOptions, 'subresource'> = {},
  ): Promise<Scale> {
    if (!Number.isInteger(replicas) || replicas < 0) {
      throw new RangeError(
        `Cannot scale ${type.kind} ${name} as replicas must be an integer >= 0: current value is ${replicas}`,
      );
    }
    return this.patch<Scale>(
      type,
      name,
      { spec: { replicas } },
      { ...options, subresource: 'scale', patchType: 'merge' },
    );
  }

  /**
   * Watches a collection. Iterate with `for await`; `break` or aborting `signal` closes the stream.
   * The iteration ends when the server ends the watch (`timeoutSeconds`). ERROR events are thrown:
   * resuming from a resourceVersion the server no longer has throws `KubeGoneError` (ERR_KUBE_GONE);
   * then list again and watch from the list's resourceVersion.
   */
  async *watch<T extends KubeObject = KubeObject>(
    type: ResourceType,
    options: WatchOptions = {},
  ): AsyncGenerator<WatchEvent<T>, void, undefined> {
    const response = await this.#send({
      method: 'GET',
      path: this.resourcePath(type, { namespace: options.namespace }),
      query: {
        watch: true,
        allowWatchBookmarks: options.allowWatchBookmarks ?? true,
        resourceVersion: options.resourceVersion,
        resourceVersionMatch: options.sendInitialEvents === true ? 'NotOlderThan' : undefined,
        sendInitialEvents: options.sendInitialEvents,
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
        timeoutSeconds: options.timeoutSeconds,
      },
      signal: options.signal,
      timeoutMs: 0,
      stream: true,
    });
    try {
      yield* parseWatchStream<T>(response);
      // An aborted response may just end instead of failing.
      options.signal?.throwIfAborted();
    } catch (error) {
      throw this.#mapStreamError(error, options.signal, `watch ${type.plural}`);
    } finally {
      response.destroy();
    }
  }

  /**
   * Sends one request and returns the parsed JSON answer (undefined for an empty body).
   * @throws {KubeStatusError} (or a subclass) for non-2xx answers
   * @throws {KubeTransportError} ERR_KUBE_TRANSPORT @throws {KubeTimeoutError} ERR_KUBE_TIMEOUT
   * @throws the signal's reason when `signal` aborts
   */
  async request<T>(options: RawRequestOptions): Promise<T> {
    const response = await this.#send({ ...options, stream: false });
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response) chunks.push(chunk as Buffer);
      options.signal?.throwIfAborted();
    } catch (error) {
      throw this.#mapStreamError(error, options.signal, `${options.method} ${options.path}`);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new KubeResponseError(
        `Cannot parse the answer to ${options.method} ${options.path} as JSON: ${text.slice(0, 200)}`,
        response.statusCode ?? 0,
        { cause: error },
      );
    }
  }

  #writeQuery(options: WriteOptions): Record<string, string | undefined> {
    return {
      dryRun: options.dryRun === true ? 'All' : undefined,
      fieldManager: options.fieldManager,
      fieldValidation: options.fieldValidation,
    };
  }

  #mapStreamError(error: unknown, signal: AbortSignal | undefined, what: string): unknown {
    if (signal?.aborted === true) return signal.reason;
    if (error instanceof KubeError) return error;
    return new KubeTransportError(`Cannot read the answer to ${what}: ${String(error)}`, { cause: error });
  }

  /**
   * Sends a request; resolves with the response once a 2xx head arrived. Non-2xx answers are read
   * and thrown as typed errors. With `stream` the body is left unread for the caller.
   */
  async #send(options: RawRequestOptions & { stream: boolean }): Promise<IncomingMessage> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const timeoutSignal = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined;
    const signals = [options.signal, timeoutSignal].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length === 0 ? undefined : AbortSignal.any(signals);
    options.signal?.throwIfAborted();

    const url = new URL(this.server + options.path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { ...this.#headers };
    let payload: Buffer | undefined;
    if (options.body !== undefined) {
      payload = Buffer.from(JSON.stringify(options.body), 'utf8');
      headers['content-type'] = options.contentType ?? 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const what = `${options.method} ${url.pathname}`;
    const transport = this.#secure ? https : http;

    let response: IncomingMessage;
    try {
      response = await new Promise<IncomingMessage>((resolvePromise, reject) => {
        const req = transport.request(
          url,
          { method: options.method, headers, agent: this.#agent, ...(signal && { signal }) },
          resolvePromise,
        );
        req.once('error', reject);
        req.end(payload);
      });
    } catch (error) {
      if (options.signal?.aborted === true) throw options.signal.reason;
      if (timeoutSignal?.aborted === true) {
        throw new KubeTimeoutError(
          `Cannot ${what} as the API server did not answer within ${timeoutMs} ms`,
          timeoutMs,
          { cause: error },
        );
      }
      throw new KubeTransportError(
        `Cannot ${what} on ${this.server}: ${error instanceof Error ? error.message : String(error)}`,
        {
          cause: error,
        },
      );
    }

    const warning = response.headers['warning'] as string | string[] | undefined;
    if (warning !== undefined && this.#onWarning !== undefined) {
      for (const w of Array.isArray(warning) ? warning : [warning])
        this.#onWarning(w.replace(/^\d{3} [^ ]+ /, ''));
    }
    const statusCode = response.statusCode ?? 0;
    if (statusCode >= 200 && statusCode < 300) return response;

    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response) chunks.push(chunk as Buffer);
    } catch (error) {
      throw this.#mapStreamError(error, options.signal, what);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let status: Status | undefined;
    try {
      const parsed = JSON.parse(text) as Status;
      if (parsed.kind === 'Status') status = parsed;
    } catch {
      // Not a Status (proxies, /readyz text): described below from the raw body.
    }
    throw statusToError(
      status ?? {
        kind: 'Status',
        status: 'Failure',
        code: statusCode,
        message: `${what}: HTTP ${statusCode}: ${text.slice(0, 500)}`,
      },
      statusCode,
    );
  }
}

/** Fills `apiVersion`/`kind` from the resource type when the caller left them out. */
function withTypeMeta<T extends KubeObject>(type: ResourceType, body: T, subresource: string | undefined): T {
  if (subresource === 'scale') return body;
  return {
    ...body,
    apiVersion: body.apiVersion ?? (type.group === '' ? type.version : `${type.group}/${type.version}`),
    kind: body.kind ?? type.kind,
  };
}
