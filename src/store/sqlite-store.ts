import { DatabaseSync } from 'node:sqlite';
import { chmodSync, closeSync, openSync, statSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { StoreError } from './errors.ts';
import { AsyncQueue } from './async-queue.ts';
import { matchesSelector } from './labels.ts';
import type {
  ListOptions,
  ObjectKey,
  ObjectList,
  ResourceStore,
  StoredObject,
  WatchEvent,
  WatchEventType,
  WatchOptions,
} from './types.ts';

export interface SqliteStoreOptions {
  /** Database file, or `:memory:`. */
  path: string;
  /** Changes kept for watchers that resume from an older version; older ones get ERR_STORE_GONE. */
  historyLimit?: number;
  now?: () => Date;
}

interface Row {
  body: string;
}

interface ChangeRow {
  rv: number;
  type: string;
  body: string;
}

interface Watcher {
  kind: string;
  namespace: string | undefined;
  queue: AsyncQueue<WatchEvent>;
}

/**
 * The embedded ResourceStore on Node's built-in SQLite. Each write is one transaction that stores
 * the object and appends the change to a history table, so watchers can resume from a version after
 * a restart. WAL mode keeps every committed change across a crash of the daemon.
 */
export class SqliteStore implements ResourceStore {
  readonly #db: DatabaseSync;
  readonly #historyLimit: number;
  readonly #now: () => Date;
  readonly #watchers = new Set<Watcher>();
  #closed = false;

  constructor(options: SqliteStoreOptions) {
    if (options.path !== ':memory:') makeOwnerOnly(options.path);
    this.#db = new DatabaseSync(options.path);
    this.#historyLimit = options.historyLimit ?? 10_000;
    this.#now = options.now ?? (() => new Date());
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA secure_delete = ON;
      CREATE TABLE IF NOT EXISTS objects (
        kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (kind, namespace, name));
      CREATE TABLE IF NOT EXISTS changes (
        rv INTEGER PRIMARY KEY, kind TEXT NOT NULL, namespace TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT OR IGNORE INTO counters VALUES ('rv', 0);
    `);
    this.#scrubSecretHistory();
  }

  /** Secret values written to the history by an earlier Tide are dropped there, keys kept. */
  #scrubSecretHistory(): void {
    const rows = this.#db.prepare("SELECT rv, body FROM changes WHERE kind = 'Secret'").all() as unknown as {
      rv: number;
      body: string;
    }[];
    const update = this.#db.prepare('UPDATE changes SET body = ? WHERE rv = ?');
    for (const row of rows) {
      const scrubbed = historyBodyOf(JSON.parse(row.body) as StoredObject);
      if (scrubbed !== row.body) update.run(scrubbed, row.rv);
    }
  }

  /** The version of the latest change. */
  get resourceVersion(): string {
    return String(this.#currentRv());
  }

  get<T extends StoredObject>(key: ObjectKey): Promise<T | undefined> {
    return settle(() => {
      this.#assertOpen();
      return this.#read(key) as T | undefined;
    });
  }

  list<T extends StoredObject>(kind: string, options: ListOptions = {}): Promise<ObjectList<T>> {
    return settle(() => {
      this.#assertOpen();
      const rows =
        options.namespace === undefined
          ? (this.#db
              .prepare('SELECT body FROM objects WHERE kind = ? ORDER BY namespace, name')
              .all(kind) as unknown as Row[])
          : (this.#db
              .prepare('SELECT body FROM objects WHERE kind = ? AND namespace = ? ORDER BY name')
              .all(kind, options.namespace) as unknown as Row[]);
      const items = rows
        .map((row) => JSON.parse(row.body) as T)
        .filter((item) => matchesSelector(item.metadata.labels, options.labelSelector));
      return { items, resourceVersion: this.resourceVersion };
    });
  }

  watch<T extends StoredObject>(kind: string, options: WatchOptions = {}): AsyncIterable<WatchEvent<T>> {
    this.#assertOpen();
    const queue = new AsyncQueue<WatchEvent>();
    const watcher: Watcher = { kind, namespace: options.namespace, queue };
    // Replay and subscription happen in one synchronous step, so no change falls between them.
    if (options.resourceVersion === undefined || options.resourceVersion === '') {
      for (const object of this.#listSync(kind, options.namespace)) queue.push({ type: 'ADDED', object });
    } else {
      const since = Number(options.resourceVersion);
      const oldest = this.#oldestRetainedRv();
      if (!Number.isInteger(since) || since < oldest - 1) {
        queue.fail(
          new StoreError(
            'ERR_STORE_GONE',
            `resource version ${options.resourceVersion} is too old (oldest kept: ${oldest})`,
          ),
        );
        return queue as unknown as AsyncIterable<WatchEvent<T>>;
      }
      const rows = this.#db
        .prepare('SELECT rv, type, body FROM changes WHERE rv > ? AND kind = ? ORDER BY rv')
        .all(since, kind) as unknown as ChangeRow[];
      for (const row of rows) {
        const object = JSON.parse(row.body) as StoredObject;
        if (options.namespace === undefined || object.metadata.namespace === options.namespace) {
          queue.push({ type: row.type as WatchEventType, object });
        }
      }
    }
    this.#watchers.add(watcher);
    const stop = (): void => {
      this.#watchers.delete(watcher);
      queue.close();
    };
    options.signal?.addEventListener('abort', stop, { once: true });
    const originalReturn = queue.return.bind(queue);
    queue.return = () => {
      this.#watchers.delete(watcher);
      return originalReturn();
    };
    return queue as unknown as AsyncIterable<WatchEvent<T>>;
  }

  create<T extends StoredObject>(object: T): Promise<T> {
    return settle(() => {
      this.#assertOpen();
      const key = keyOf(object);
      if (this.#read(key) !== undefined) {
        throw new StoreError('ERR_STORE_ALREADY_EXISTS', `${describeKey(key)} already exists`);
      }
      const stored = structuredClone(object);
      const { metadata } = stored;
      metadata.uid = randomUUID();
      metadata.generation = 1;
      metadata.creationTimestamp = this.#now().toISOString();
      delete metadata.deletionTimestamp;
      return this.#write(stored, 'ADDED') as T;
    });
  }

  update<T extends StoredObject>(object: T): Promise<T> {
    return settle(() => {
      this.#assertOpen();
      const current = this.#readForWrite(object);
      const next = structuredClone(object);
      next.metadata.uid = current.metadata.uid ?? randomUUID();
      next.metadata.creationTimestamp = current.metadata.creationTimestamp ?? this.#now().toISOString();
      next.metadata.generation = current.metadata.generation ?? 1;
      if (current.metadata.deletionTimestamp !== undefined)
        next.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
      else delete next.metadata.deletionTimestamp;
      if ('status' in current) next.status = current.status;
      else delete next.status;
      if (!isDeepStrictEqual(specOf(current), specOf(next)))
        next.metadata.generation = (current.metadata.generation ?? 0) + 1;
      if (next.metadata.deletionTimestamp !== undefined && (next.metadata.finalizers ?? []).length === 0) {
        this.#remove(next);
        return next;
      }
      return this.#write(next, 'MODIFIED') as T;
    });
  }

  updateStatus<T extends StoredObject>(object: T): Promise<T> {
    return settle(() => {
      this.#assertOpen();
      const current = this.#readForWrite(object);
      const next = structuredClone(current);
      if (object.status === undefined) delete next.status;
      else next.status = structuredClone(object.status);
      return this.#write(next, 'MODIFIED') as T;
    });
  }

  delete(key: ObjectKey): Promise<void> {
    return settle(() => {
      this.#assertOpen();
      const current = this.#read(key);
      if (current === undefined) throw new StoreError('ERR_STORE_NOT_FOUND', `${describeKey(key)} not found`);
      if ((current.metadata.finalizers ?? []).length > 0) {
        if (current.metadata.deletionTimestamp === undefined) {
          current.metadata.deletionTimestamp = this.#now().toISOString();
          this.#write(current, 'MODIFIED');
        }
        return;
      }
      this.#remove(current);
      return;
    });
  }

  /** Ends every watch and closes the database. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const watcher of this.#watchers) watcher.queue.close();
    this.#watchers.clear();
    this.#db.close();
  }

  #remove(object: StoredObject): void {
    const key = keyOf(object);
    this.#transaction(() => {
      const rv = this.#nextRv();
      this.#db
        .prepare('DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?')
        .run(key.kind, key.namespace, key.name);
      object.metadata.resourceVersion = String(rv);
      this.#appendChange(rv, object, 'DELETED');
    });
    this.#notify({ type: 'DELETED', object });
    this.#collectDependents(object);
  }

  /** Background garbage collection: dependents whose owner references name a deleted object. */
  #collectDependents(owner: StoredObject): void {
    const uid = owner.metadata.uid;
    if (uid === undefined) return;
    const rows = this.#db
      .prepare('SELECT body FROM objects WHERE namespace = ? AND body LIKE ?')
      .all(owner.metadata.namespace, `%${uid}%`) as unknown as Row[];
    for (const row of rows) {
      const dependent = JSON.parse(row.body) as StoredObject;
      const owned = (dependent.metadata.ownerReferences ?? []).some((reference) => reference.uid === uid);
      if (owned) void this.delete(keyOf(dependent)).catch(() => undefined);
    }
  }

  #readForWrite(object: StoredObject): StoredObject {
    const key = keyOf(object);
    const current = this.#read(key);
    if (current === undefined) throw new StoreError('ERR_STORE_NOT_FOUND', `${describeKey(key)} not found`);
    const expected = object.metadata.resourceVersion;
    if (expected !== undefined && expected !== '' && expected !== current.metadata.resourceVersion) {
      throw new StoreError(
        'ERR_STORE_CONFLICT',
        `${describeKey(key)} was modified (resourceVersion ${expected} is stale, current ${String(current.metadata.resourceVersion)}): read it again and retry`,
      );
    }
    return current;
  }

  #write(object: StoredObject, type: WatchEventType): StoredObject {
    const key = keyOf(object);
    if (type === 'MODIFIED') {
      // As the API server does, a write that changes nothing keeps the version and tells no watcher.
      const current = this.#read(key);
      if (
        current !== undefined &&
        isDeepStrictEqual(
          { ...current, metadata: { ...current.metadata, resourceVersion: '' } },
          { ...object, metadata: { ...object.metadata, resourceVersion: '' } },
        )
      ) {
        return current;
      }
    }
    this.#transaction(() => {
      const rv = this.#nextRv();
      object.metadata.resourceVersion = String(rv);
      this.#db
        .prepare('INSERT OR REPLACE INTO objects (kind, namespace, name, body) VALUES (?, ?, ?, ?)')
        .run(key.kind, key.namespace, key.name, JSON.stringify(object));
      this.#appendChange(rv, object, type);
    });
    this.#notify({ type, object });
    return structuredClone(object);
  }

  #appendChange(rv: number, object: StoredObject, type: WatchEventType): void {
    this.#db
      .prepare('INSERT INTO changes (rv, kind, namespace, type, body) VALUES (?, ?, ?, ?, ?)')
      .run(rv, object.kind, object.metadata.namespace, type, historyBodyOf(object));
    if (rv % 256 === 0) this.#db.prepare('DELETE FROM changes WHERE rv <= ?').run(rv - this.#historyLimit);
  }

  #notify(event: WatchEvent): void {
    for (const watcher of this.#watchers) {
      if (watcher.kind !== event.object.kind) continue;
      if (watcher.namespace !== undefined && watcher.namespace !== event.object.metadata.namespace) continue;
      watcher.queue.push({ type: event.type, object: structuredClone(event.object) });
    }
  }

  #transaction(body: () => void): void {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      body();
      this.#db.exec('COMMIT');
    } catch (error) {
      this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  #nextRv(): number {
    this.#db.prepare("UPDATE counters SET value = value + 1 WHERE name = 'rv'").run();
    return this.#currentRv();
  }

  #currentRv(): number {
    const row = this.#db.prepare("SELECT value FROM counters WHERE name = 'rv'").get() as { value: number };
    return row.value;
  }

  #oldestRetainedRv(): number {
    const row = this.#db.prepare('SELECT MIN(rv) AS rv FROM changes').get() as { rv: number | null };
    return row.rv ?? this.#currentRv() + 1;
  }

  #read(key: ObjectKey): StoredObject | undefined {
    const row = this.#db
      .prepare('SELECT body FROM objects WHERE kind = ? AND namespace = ? AND name = ?')
      .get(key.kind, key.namespace, key.name) as Row | undefined;
    return row === undefined ? undefined : (JSON.parse(row.body) as StoredObject);
  }

  #listSync(kind: string, namespace: string | undefined): StoredObject[] {
    const rows = this.#db.prepare('SELECT body FROM objects WHERE kind = ?').all(kind) as unknown as Row[];
    return rows
      .map((row) => JSON.parse(row.body) as StoredObject)
      .filter((object) => namespace === undefined || object.metadata.namespace === namespace);
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  }
}

/**
 * What the history keeps of a change. A Secret's values are not kept there (they would outlive
 * the Secret by up to `historyLimit` changes): its keys are, with empty values, which is all the
 * watchers of Secrets use; the values are read from the object itself.
 */
function historyBodyOf(object: StoredObject): string {
  if (object.kind !== 'Secret') return JSON.stringify(object);
  const { stringData: _plain, ...rest } = object as StoredObject & { stringData?: unknown };
  const data = (object['data'] ?? {}) as Record<string, string>;
  return JSON.stringify({ ...rest, data: Object.fromEntries(Object.keys(data).map((key) => [key, ''])) });
}

/**
 * Creates the database file owner-only before SQLite opens it, and takes group and world access
 * from an existing one and its log files: SQLite gives the `-wal` and `-shm` files the database
 * file's mode, and they hold recent rows, Secrets included.
 */
function makeOwnerOnly(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    } catch {
      // not there yet: SQLite will create it with the database file's mode
    }
  }
}

export function keyOf(object: StoredObject): ObjectKey {
  return { kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name };
}

export function describeKey(key: ObjectKey): string {
  return `${key.kind} ${key.namespace}/${key.name}`;
}

/** What counts as the desired state for `generation`: everything but metadata and status. */
function specOf(object: StoredObject): unknown {
  return Object.fromEntries(
    Object.entries(object).filter(([field]) => field !== 'metadata' && field !== 'status'),
  );
}

/** Runs synchronous store work as a promise, so that callers see failures as rejections. */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
