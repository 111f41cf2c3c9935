import { closeSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { FuseError } from './errors.ts';
import { FUSE_ROOT_ID } from './protocol.ts';

/** One node the kernel knows by its nodeid. */
export interface Inode {
  readonly nodeid: bigint;
  /** nodeid:generation is unique for the life of the mount (fuse.h); nodeids are never reused. */
  readonly generation: bigint;
  readonly path: string;
  /** A path whose type changes gets a new node: the kernel must not see a file turn into a directory. */
  readonly type: 'file' | 'directory';
  /** LOOKUP replies not yet forgotten by the kernel; restored nodes never drop to 0 (count unknown). */
  lookups: number;
  /** The version whose bytes may be in the kernel page cache; undefined = unknown. */
  cachedVersion: string | undefined;
}

const ROOT = BigInt(FUSE_ROOT_ID);
/** Restored nodes carry a count the server cannot know, so they stay until the mount ends. */
const UNKNOWN_LOOKUPS = Number.MAX_SAFE_INTEGER;

/**
 * The nodeid ↔ path table. When given a journal path it appends every change to it before the
 * kernel can learn of it, so that a restarted server (see supervisor.ts) answers for the nodeids the
 * kernel still holds. Appends are synchronous on a tmpfs file: a few microseconds each, and only
 * for nodes seen for the first time.
 */
export class InodeTable {
  readonly #byId = new Map<bigint, Inode>();
  readonly #byPath = new Map<string, Inode>();
  #nextNodeid = ROOT + 1n;
  #journalPath: string | undefined;
  #journalFd: number | undefined;
  #deadRecords = 0;

  constructor(options: { journalPath?: string; restore?: boolean } = {}) {
    this.#journalPath = options.journalPath;
    if (options.restore === true && this.#journalPath !== undefined) this.#replay(this.#journalPath);
    if (!this.#byId.has(ROOT))
      this.#insert({
        nodeid: ROOT,
        generation: 1n,
        path: '/',
        type: 'directory',
        lookups: UNKNOWN_LOOKUPS,
        cachedVersion: undefined,
      });
    if (this.#journalPath !== undefined) {
      this.#journalFd = openSync(this.#journalPath, options.restore === true ? 'a' : 'w');
      // A line cut short by a crash must not swallow the first record of this server.
      if (this.#endsMidLine) writeSync(this.#journalFd, '\n');
    }
  }

  #endsMidLine = false;

  get size(): number {
    return this.#byId.size;
  }

  get(nodeid: bigint): Inode | undefined {
    return this.#byId.get(nodeid);
  }

  byPath(path: string): Inode | undefined {
    return this.#byPath.get(path);
  }

  /** The node for `path`, created on first sight, with one more lookup counted for the kernel. */
  remember(path: string, type: 'file' | 'directory'): Inode {
    const existing = this.#byPath.get(path);
    if (existing !== undefined && (existing.type === type || existing.nodeid === ROOT)) {
      if (existing.lookups !== UNKNOWN_LOOKUPS) existing.lookups += 1;
      return existing;
    }
    const inode: Inode = {
      nodeid: this.#nextNodeid,
      generation: 1n,
      path,
      type,
      lookups: 1,
      cachedVersion: undefined,
    };
    this.#nextNodeid += 1n;
    this.#append(`+\t${inode.nodeid}\t${inode.generation}\t${type}\t${JSON.stringify(path)}\n`);
    this.#insert(inode);
    return inode;
  }

  /** FORGET: the kernel dropped `count` references; the node goes at zero (never the root). */
  forget(nodeid: bigint, count: number): void {
    const inode = this.#byId.get(nodeid);
    if (inode === undefined || nodeid === ROOT || inode.lookups === UNKNOWN_LOOKUPS) return;
    inode.lookups -= count;
    if (inode.lookups > 0) return;
    this.#byId.delete(nodeid);
    if (this.#byPath.get(inode.path) === inode) this.#byPath.delete(inode.path);
    this.#append(`-\t${nodeid}\n`);
    this.#deadRecords += 2;
    if (this.#deadRecords > 50_000 && this.#deadRecords > 2 * this.#byId.size) this.#compact();
  }

  /** Records which version's bytes the kernel may now cache for the node. */
  setCachedVersion(inode: Inode, version: string | undefined): void {
    if (inode.cachedVersion === version) return;
    inode.cachedVersion = version;
    this.#append(`v\t${inode.nodeid}\t${JSON.stringify(version ?? null)}\n`);
    this.#deadRecords += 1;
  }

  close(): void {
    if (this.#journalFd !== undefined) closeSync(this.#journalFd);
    this.#journalFd = undefined;
  }

  #insert(inode: Inode): void {
    this.#byId.set(inode.nodeid, inode);
    this.#byPath.set(inode.path, inode);
  }

  #append(line: string): void {
    if (this.#journalFd !== undefined) writeSync(this.#journalFd, line);
  }

  #replay(journalPath: string): void {
    let text: string;
    try {
      text = readFileSync(journalPath, 'utf8');
    } catch (error) {
      throw new FuseError('ERR_FUSE_STATE', `Cannot restore the node table from ${journalPath}`, {
        cause: error,
      });
    }
    this.#endsMidLine = text.length > 0 && !text.endsWith('\n');
    for (const line of text.split('\n')) {
      // A line cut short by a crash is the last one and describes a reply never sent: skip it.
      const fields = line.split('\t');
      try {
        if (fields[0] === '+' && fields.length === 5) {
          const nodeid = BigInt(fields[1] ?? '');
          const type = fields[3] === 'directory' ? 'directory' : 'file';
          const path = JSON.parse(fields[4] ?? '') as string;
          this.#insert({
            nodeid,
            generation: BigInt(fields[2] ?? ''),
            path,
            type,
            lookups: UNKNOWN_LOOKUPS,
            cachedVersion: undefined,
          });
          if (nodeid >= this.#nextNodeid) this.#nextNodeid = nodeid + 1n;
        } else if (fields[0] === '-' && fields.length === 2) {
          const inode = this.#byId.get(BigInt(fields[1] ?? ''));
          if (inode !== undefined) {
            this.#byId.delete(inode.nodeid);
            if (this.#byPath.get(inode.path) === inode) this.#byPath.delete(inode.path);
          }
        } else if (fields[0] === 'v' && fields.length === 3) {
          const inode = this.#byId.get(BigInt(fields[1] ?? ''));
          const version = JSON.parse(fields[2] ?? '') as string | null;
          if (inode !== undefined) inode.cachedVersion = version ?? undefined;
        } else if (fields[0] === 'N' && fields.length === 2) {
          const next = BigInt(fields[1] ?? '');
          if (next > this.#nextNodeid) this.#nextNodeid = next;
        }
      } catch {
        continue;
      }
    }
  }

  /** Rewrites the journal with the live nodes only, keeping the nodeid counter. */
  #compact(): void {
    if (this.#journalPath === undefined || this.#journalFd === undefined) return;
    const lines = [`N\t${this.#nextNodeid}\n`];
    for (const inode of this.#byId.values()) {
      if (inode.nodeid === ROOT) continue;
      lines.push(`+\t${inode.nodeid}\t${inode.generation}\t${inode.type}\t${JSON.stringify(inode.path)}\n`);
      if (inode.cachedVersion !== undefined)
        lines.push(`v\t${inode.nodeid}\t${JSON.stringify(inode.cachedVersion)}\n`);
    }
    const temporary = `${this.#journalPath}.tmp`;
    const fd = openSync(temporary, 'w');
    writeSync(fd, lines.join(''));
    closeSync(fd);
    renameSync(temporary, this.#journalPath);
    closeSync(this.#journalFd);
    this.#journalFd = openSync(this.#journalPath, 'a');
    this.#deadRecords = 0;
  }
}
