import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { findKind, LIMITS, validateDocument, type FieldError } from '../api/index.ts';
import { hasCode, redactUrlCredentialsDeep, type Logger } from '../lib/index.ts';
import type { ResourceStore, StoredObject } from '../store/index.ts';
import { admitObject, type AdmissionSettings } from './admission.ts';

/** A request body holds the objects of at most a few manifests, as JSON. */
const MAX_REQUEST_BYTES = 2 * LIMITS.manifestBytes;

export interface ApiServerOptions {
  store: ResourceStore;
  logger: Logger;
  version: string;
  /** Called by `POST /v1/shutdown`; the response is sent first. */
  onShutdown: () => void;
  admission: AdmissionSettings;
}

export type ApplyAction = 'created' | 'configured' | 'unchanged';

class HttpProblem extends Error {
  readonly status: number;
  readonly code: string;
  /** For a refused object: its position in the request (0-based) and the field, for the CLI to name its file. */
  readonly object: { index: number; field: FieldError } | undefined;

  constructor(status: number, code: string, message: string, object?: { index: number; field: FieldError }) {
    super(message);
    this.status = status;
    this.code = code;
    this.object = object;
  }
}

/**
 * The daemon's API on a Unix socket (owner-only): apply, get, list, watch (newline-delimited JSON),
 * delete, scale, events and shutdown. Errors answer `application/problem+json` with a stable code.
 * Secrets leave it with their values replaced.
 */
export function createApiServer(options: ApiServerOptions): Server {
  const { store, logger } = options;
  return createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      const problem =
        error instanceof HttpProblem
          ? error
          : hasCode(error, 'ERR_STORE_NOT_FOUND')
            ? new HttpProblem(404, 'ERR_NOT_FOUND', (error as Error).message)
            : hasCode(error, 'ERR_STORE_CONFLICT')
              ? new HttpProblem(409, 'ERR_CONFLICT', (error as Error).message)
              : new HttpProblem(500, 'ERR_INTERNAL', error instanceof Error ? error.message : String(error));
      if (problem.status >= 500) logger.error({ err: error }, 'API request failed');
      if (!response.headersSent) {
        response.writeHead(problem.status, {
          'content-type': 'application/problem+json',
          // The rest of a body too large to read is not waited for.
          ...(problem.status === 413 ? { connection: 'close' } : {}),
        });
      }
      response.end(
        JSON.stringify({
          status: problem.status,
          code: problem.code,
          detail: problem.message,
          ...(problem.object === undefined ? {} : { object: problem.object }),
        }),
      );
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://tide');
    const parts = url.pathname.split('/').filter(Boolean);
    const method = request.method ?? 'GET';
    if (parts[0] !== 'v1') throw new HttpProblem(404, 'ERR_NOT_FOUND', `no route ${url.pathname}`);
    const route = parts[1];
    if (route === 'health' && method === 'GET') {
      send(response, { ok: true, version: options.version, pid: process.pid });
      return;
    }
    if (route === 'shutdown' && method === 'POST') {
      send(response, { ok: true });
      setImmediate(options.onShutdown);
      return;
    }
    if (route === 'apply' && method === 'POST') {
      send(response, await apply(await readJson(request)));
      return;
    }
    if (route === 'resources' || route === 'watch' || route === 'scale') {
      const info = findKind(parts[2] ?? '');
      if (info === undefined)
        throw new HttpProblem(400, 'ERR_UNKNOWN_KIND', `unknown kind "${parts[2] ?? ''}"`);
      const namespace = parts[3] ?? url.searchParams.get('namespace') ?? undefined;
      const name = parts[4];
      if (route === 'watch')
        return watch(
          response,
          info.kind,
          namespace,
          name,
          url.searchParams.get('resourceVersion') ?? undefined,
        );
      if (route === 'scale' && method === 'POST') {
        send(response, await scale(info.kind, namespace ?? 'default', name ?? '', await readJson(request)));
        return;
      }
      if (method === 'GET' && name !== undefined) {
        const object = await store.get({ kind: info.kind, namespace: namespace ?? 'default', name });
        if (object === undefined)
          throw new HttpProblem(
            404,
            'ERR_NOT_FOUND',
            `${info.singular} "${name}" not found in namespace ${namespace ?? 'default'}`,
          );
        send(response, redact(object));
        return;
      }
      if (method === 'GET') {
        const list = await store.list(info.kind, namespace === undefined ? {} : { namespace });
        send(response, { items: list.items.map(redact), resourceVersion: list.resourceVersion });
        return;
      }
      if (method === 'DELETE' && name !== undefined) {
        await store.delete({ kind: info.kind, namespace: namespace ?? 'default', name });
        send(response, { deleted: true });
        return;
      }
    }
    if (route === 'events' && method === 'GET') {
      const namespace = url.searchParams.get('namespace') ?? 'default';
      const list = await store.list('Event', { namespace });
      const kind = url.searchParams.get('kind');
      const name = url.searchParams.get('name');
      const items = list.items.filter((event) => {
        const involved = event['involvedObject'] as { kind: string; name: string };
        return (kind === null || involved.kind === kind) && (name === null || involved.name === name);
      });
      send(response, { items: items.map((event) => redactUrlCredentialsDeep(event)) });
      return;
    }
    throw new HttpProblem(404, 'ERR_NOT_FOUND', `no route ${method} ${url.pathname}`);
  }

  /** Validates every object first, then writes them: a bad document changes nothing. */
  async function apply(body: unknown): Promise<{
    results: { kind: string; namespace: string; name: string; action: ApplyAction }[];
    warnings: { index: number; message: string }[];
  }> {
    const objects = (body as { objects?: unknown }).objects;
    if (!Array.isArray(objects)) throw new HttpProblem(400, 'ERR_BAD_REQUEST', 'expected {"objects": [...]}');
    const prepared: StoredObject[] = [];
    const warnings: { index: number; message: string }[] = [];
    for (const [index, object] of (objects as unknown[]).entries()) {
      const result = validateDocument(object);
      const admission = result.ok ? await admitObject(object as StoredObject, options.admission) : undefined;
      const first = result.ok ? admission?.errors[0] : result.errors[0];
      if (first !== undefined) {
        throw new HttpProblem(422, 'ERR_INVALID', `object ${index + 1}: ${first.path}: ${first.message}`, {
          index,
          field: first,
        });
      }
      warnings.push(...(admission?.warnings ?? []).map((message) => ({ index, message })));
      prepared.push(normalise(object as StoredObject));
    }
    const results = [];
    for (const object of prepared) {
      const key = { kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name };
      const current = await store.get(key);
      let action: ApplyAction;
      if (current === undefined) {
        await store.create(object);
        action = 'created';
      } else {
        const next: StoredObject = {
          ...object,
          metadata: {
            ...object.metadata,
            resourceVersion: current.metadata.resourceVersion ?? '',
            ...(current.metadata.finalizers === undefined ? {} : { finalizers: current.metadata.finalizers }),
            ...(current.metadata.ownerReferences === undefined
              ? {}
              : { ownerReferences: current.metadata.ownerReferences }),
          },
        };
        if (isDeepStrictEqual(withoutServerFields(current), withoutServerFields(next))) {
          action = 'unchanged';
        } else {
          await store.update(next);
          action = 'configured';
        }
      }
      results.push({ ...key, action });
    }
    return { results, warnings };
  }

  async function scale(kind: string, namespace: string, name: string, body: unknown): Promise<unknown> {
    const replicas = (body as { replicas?: unknown }).replicas;
    const max = options.admission.maxLocalWorkers;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0 || replicas > max) {
      throw new HttpProblem(
        422,
        'ERR_INVALID',
        `replicas must be a whole number from 0 to ${max} (each worker is a process on this machine), got ${JSON.stringify(replicas)}`,
      );
    }
    if (!findKind(kind)?.scalable)
      throw new HttpProblem(400, 'ERR_NOT_SCALABLE', `${kind} has no scale subresource`);
    const current = await store.get({ kind, namespace, name });
    if (current === undefined)
      throw new HttpProblem(404, 'ERR_NOT_FOUND', `${kind} "${name}" not found in namespace ${namespace}`);
    const spec = { ...(current.spec as Record<string, unknown>), replicas };
    const updated = await store.update({ ...current, spec });
    return redact(updated);
  }

  async function watch(
    response: ServerResponse,
    kind: string,
    namespace: string | undefined,
    name: string | undefined,
    resourceVersion: string | undefined,
  ): Promise<void> {
    const abort = new AbortController();
    response.on('close', () => {
      abort.abort();
    });
    response.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const events = store.watch(kind, {
      ...(namespace === undefined ? {} : { namespace }),
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
      signal: abort.signal,
    });
    for await (const event of events) {
      if (name !== undefined && event.object.metadata.name !== name) continue;
      response.write(`${JSON.stringify({ type: event.type, object: redact(event.object) })}\n`);
    }
    response.end();
  }
}

function normalise(object: StoredObject): StoredObject {
  const copy = structuredClone(object);
  copy.metadata.namespace ||= 'default';
  if (copy.kind === 'Secret') {
    const data = { ...((copy['data'] ?? {}) as Record<string, string>) };
    for (const [key, value] of Object.entries((copy['stringData'] ?? {}) as Record<string, string>)) {
      data[key] = Buffer.from(value, 'utf8').toString('base64');
    }
    copy['data'] = data;
    delete copy['stringData'];
  }
  delete copy.status;
  return copy;
}

function withoutServerFields(object: StoredObject): unknown {
  const {
    resourceVersion: _rv,
    uid: _uid,
    generation: _generation,
    creationTimestamp: _created,
    ...metadata
  } = object.metadata;
  const { status: _status, ...rest } = object;
  return { ...rest, metadata };
}

/** Secret values never leave the daemon, nor the user info of URLs (a mount point's password). */
function redact(object: StoredObject): StoredObject {
  if (object.kind !== 'Secret') return redactUrlCredentialsDeep(object);
  const data = (object['data'] ?? {}) as Record<string, string>;
  return { ...object, data: Object.fromEntries(Object.keys(data).map((key) => [key, '[REDACTED]'])) };
}

function send(response: ServerResponse, body: unknown): void {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const tooLarge = new HttpProblem(
    413,
    'ERR_TOO_LARGE',
    `the request is larger than the ${MAX_REQUEST_BYTES / 1024 / 1024} MiB the daemon accepts`,
  );
  // Refused before a byte of the body is read when its length is announced.
  if (Number(request.headers['content-length'] ?? 0) > MAX_REQUEST_BYTES) throw tooLarge;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) throw tooLarge;
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new HttpProblem(400, 'ERR_BAD_REQUEST', 'the request body is not JSON');
  }
}
