import { closeSync, constants, openSync } from 'node:fs';
import {
  copyFile,
  mkdir,
  open,
  opendir,
  rename,
  rm,
  stat,
  statfs,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { MediumType } from '../api/index.ts';
import { silentLogger, toError, type Logger } from '../lib/index.ts';
import { blockIdOf, type BlockKey } from './block-key.ts';
import {
  MAX_TRAILER_BYTES,
  readBlockMeta,
  readCheckedBlock,
  trailerOf,
  writeBlockFile,
  type BlockFileCheck,
  type BlockFileMeta,
} from './block-file.ts';
import {
  checksumsOf,
  parseXxh64Hexes,
  xxh64HexesOf,
  type BlockChecksums,
  type PieceChecksums,
} from './block-checksum.ts';
import { BufferPool, DIRECT_IO_ALIGN_BYTES, directIoProbeOf, type DirectIoProbe } from './buffer-pool.ts';
import { CacheError } from './errors.ts';
import type { TierConfig } from './tiers.ts';

/** Space is accounted in file-system blocks, so that `du` of a tier never exceeds its quota. */
const ALLOCATION_UNIT_BYTES = 4096;
const BLOCK_SUFFIX = '.blk';

export interface BlockStoreOptions {
  tiers: readonly TierConfig[];
  /** Blocks live under `<tier dir>/tide-cache/<datasetId>/`: one store per dataset. */
  datasetId: string;
  /** Size of every block but the last of a file; blocks kept from a run with another size are dropped. */
  blockSizeBytes: number;
  /** Share of a tier the protected segment of its segmented LRU may fill; default 0.8. */
  protectedRatio?: number;
  /**
   * Write and read SSD and HDD block files with O_DIRECT where the file system takes it (not on
   * tmpfs, never for MEM); default true. See block-file.ts.
   */
  directIo?: boolean;
  logger?: Logger;
}

/**
 * Where a cached block's file is, for a reader on the same host (short-circuit), with the checksums
 * it was written with: XXH64 per piece, or in files of earlier versions CRC-32s.
 */
export interface BlockLocation extends StoredChecksums {
  filePath: string;
  sizeBytes: number;
  medium: MediumType;
}

/** A block's checksums as its index keeps them: piece XXH64s parsed, not as hex. */
export interface StoredChecksums extends BlockChecksums {
  pieceXxh64s?: BigUint64Array | undefined;
}

export interface StoredBlock {
  data: Buffer;
  medium: MediumType;
}

export interface TierStats {
  medium: MediumType;
  capacityBytes: number;
  /** Space taken by block files, rounded to file-system blocks, plus space reserved for writes. */
  usedBytes: number;
  /** Bytes of block data held (what `cached` counts). */
  dataBytes: number;
  blockCount: number;
  /** True when every directory of the tier writes and reads its block files with O_DIRECT. */
  directIo: boolean;
}

export interface BlockStoreCounters {
  /** Blocks that left a tier to make room, whether demoted or dropped. */
  evictions: number;
  /** Evicted blocks moved down to the next tier instead of dropped. */
  demotions: number;
  /** Blocks whose file failed its length or checksum check and were dropped. */
  corruptBlocks: number;
  /** Blocks not cached because no tier could make room (every candidate was being read). */
  rejectedWrites: number;
}

export interface CachedBlockInfo {
  key: BlockKey;
  sizeBytes: number;
  medium: MediumType;
}

interface Dir {
  readonly root: string;
  readonly tmp: string;
  readonly capacityBytes: number;
  usedBytes: number;
  reservedBytes: number;
  /** Block files here are written and read with O_DIRECT (decided at open). */
  direct: boolean;
}

interface Tier {
  readonly index: number;
  readonly medium: MediumType;
  readonly dirs: readonly Dir[];
  readonly capacityBytes: number;
  readonly highBytes: number;
  readonly lowBytes: number;
  readonly protectedLimitBytes: number;
  /** Segmented LRU: Map iteration order is least recently used first. */
  readonly probation: Map<string, Entry>;
  readonly protected: Map<string, Entry>;
  protectedBytes: number;
  dataBytes: number;
  blockCount: number;
  /** Evictions under way, so that a writer finding no victim waits for one of them. */
  readonly evicting: Set<Promise<void>>;
  background: Promise<void> | undefined;
}

interface Entry {
  readonly id: string;
  readonly key: BlockKey;
  readonly sizeBytes: number;
  readonly allocBytes: number;
  readonly checksums: StoredChecksums;
  tier: Tier;
  dir: Dir;
  filePath: string;
  segment: 'probation' | 'protected' | 'none';
  /** Reads of the file under way in this process; such a block is not chosen for eviction. */
  readers: number;
}

/**
 * A tiered block store: MEM, SSD and HDD tiers of one-file-per-block directories with quotas.
 *
 * - Space is reserved before a block is written, so a tier never holds more than its quota, not
 *   even while writes and evictions run concurrently.
 * - Eviction is a segmented LRU per tier: new blocks enter the probation segment and move to the
 *   protected one (at most `protectedRatio` of the tier) on a second access, so a one-pass scan
 *   cannot flush the blocks that are read again and again. Victims come from the probation LRU
 *   end first, then from the protected one.
 * - A block evicted from a tier that has a tier below it is demoted there (the lower tiers are the
 *   capacity tiers: dropping would waste the space the user gave them); only the last tier drops.
 * - Past `high × quota` a tier evicts in the background down to `low × quota`.
 * - SSD and HDD tiers survive a restart (the index is rebuilt from the block files' trailers); the
 *   MEM tier is emptied at open and at close, as tmpfs holds RAM.
 */
export class BlockStore {
  readonly #tiers: readonly Tier[];
  readonly #blockSizeBytes: number;
  readonly #entries = new Map<string, Entry>();
  readonly #writing = new Map<string, Promise<BlockLocation | undefined>>();
  readonly #logger: Logger;
  /** Shard directories known to exist. */
  readonly #shards = new Set<string>();
  readonly #counters: BlockStoreCounters = {
    evictions: 0,
    demotions: 0,
    corruptBlocks: 0,
    rejectedWrites: 0,
  };
  readonly #directIo: boolean;
  /** O_DIRECT descriptors of a 4 KiB probe file per direct directory (see directIoProbe). */
  readonly #probeFds: number[] = [];
  /** Aligned buffers for demotions into direct directories (a whole file: block and trailer). */
  #copyBuffers: BufferPool | undefined;
  #closed = false;

  private constructor(tiers: readonly Tier[], blockSizeBytes: number, logger: Logger, directIo: boolean) {
    this.#tiers = tiers;
    this.#blockSizeBytes = blockSizeBytes;
    this.#logger = logger;
    this.#directIo = directIo;
  }

  /**
   * Opens the store: creates the directories, empties MEM tiers and indexes the blocks the SSD and
   * HDD tiers kept from an earlier run (dropping unreadable ones and evicting down to the quota).
   * @throws {CacheError} ERR_CACHE_BAD_CONFIG when a directory cannot be created
   */
  static async open(options: BlockStoreOptions): Promise<BlockStore> {
    if (options.tiers.length === 0) {
      throw new CacheError('ERR_CACHE_BAD_CONFIG', 'Cannot open a block store without tiers');
    }
    const protectedRatio = options.protectedRatio ?? 0.8;
    if (!(protectedRatio >= 0 && protectedRatio < 1)) {
      throw new RangeError(`Cannot use protectedRatio ${protectedRatio}: it must be in [0, 1)`);
    }
    const datasetDir = encodeURIComponent(options.datasetId);
    const tiers = options.tiers.map((config, index): Tier => {
      const dirs = config.dirs.map((dir): Dir => {
        const root = join(dir.path, 'tide-cache', datasetDir);
        return {
          root,
          tmp: join(root, 'tmp'),
          capacityBytes: dir.capacityBytes,
          usedBytes: 0,
          reservedBytes: 0,
          direct: false,
        };
      });
      const capacityBytes = dirs.reduce((sum, dir) => sum + dir.capacityBytes, 0);
      return {
        index,
        medium: config.medium,
        dirs,
        capacityBytes,
        highBytes: Math.floor(capacityBytes * config.highRatio),
        lowBytes: Math.floor(capacityBytes * config.lowRatio),
        protectedLimitBytes: Math.floor(capacityBytes * protectedRatio),
        probation: new Map(),
        protected: new Map(),
        protectedBytes: 0,
        dataBytes: 0,
        blockCount: 0,
        evicting: new Set(),
        background: undefined,
      };
    });
    const store = new BlockStore(
      tiers,
      options.blockSizeBytes,
      (options.logger ?? silentLogger()).child({ component: 'block-store' }),
      options.directIo ?? true,
    );
    await store.#prepare();
    return store;
  }

  /**
   * A probe that finds memory every direct directory of this store accepts for O_DIRECT, for a
   * BufferPool whose buffers are written here; undefined when no directory uses direct I/O.
   */
  directIoProbe(): DirectIoProbe | undefined {
    if (this.#probeFds.length === 0) return undefined;
    const probes = this.#probeFds.map((fd) => directIoProbeOf(fd));
    return (view) => !this.#closed && probes.every((probe) => probe(view));
  }

  /** The file of a cached block for a same-host reader, counting as an access; undefined on a miss. */
  locate(key: BlockKey): BlockLocation | undefined {
    const entry = this.#entries.get(blockIdOf(key));
    if (entry === undefined) return undefined;
    this.#touch(entry);
    return locationOf(entry);
  }

  /** True when the block is cached; not an access (loads use it, and must not look like reuse). */
  has(key: BlockKey): boolean {
    return this.#entries.has(blockIdOf(key));
  }

  /**
   * The verified bytes of a cached block (in `into` when given), or undefined on a miss. A file that
   * is missing, short or fails its checksums is dropped and reported as a miss, so the caller refetches.
   */
  async get(key: BlockKey, options: { into?: Buffer } = {}): Promise<StoredBlock | undefined> {
    if (options.into !== undefined && options.into.length < this.#blockSizeBytes) {
      throw new RangeError(`Cannot read blocks into ${options.into.length} bytes`);
    }
    const id = blockIdOf(key);
    // Two attempts: a demotion may move the file between the lookup and the open.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const entry = this.#entries.get(id);
      if (entry === undefined) return undefined;
      this.#touch(entry);
      const filePath = entry.filePath;
      entry.readers += 1;
      let data: Buffer | undefined;
      try {
        data = await readCheckedBlock(filePath, checkOf(entry), {
          into: options.into,
          memory: entry.tier.medium === 'MEM',
          direct: entry.dir.direct,
        });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && entry.filePath !== filePath) continue;
        this.#logger.warn({ err: toError(error), filePath }, 'dropping an unreadable block file');
        this.#counters.corruptBlocks += 1;
        await this.#drop(entry);
        return undefined;
      } finally {
        entry.readers -= 1;
      }
      if (data === undefined) {
        this.#logger.warn({ filePath }, 'dropping a corrupted block file');
        this.#counters.corruptBlocks += 1;
        await this.#drop(entry);
        return undefined;
      }
      return { data, medium: entry.tier.medium };
    }
    return undefined;
  }

  /**
   * Caches a block in the fastest tier that can make room for it. Returns where it is, or undefined
   * when no tier could take it (the caller still has the bytes; it just does not cache them).
   */
  async put(
    key: BlockKey,
    data: Uint8Array,
    checksums: PieceChecksums = checksumsOf(data),
  ): Promise<BlockLocation | undefined> {
    const id = blockIdOf(key);
    const existing = this.#entries.get(id);
    if (existing !== undefined) return locationOf(existing);
    const pending = this.#writing.get(id);
    if (pending !== undefined) return pending;
    const write = this.#write(id, key, data, checksums).finally(() => this.#writing.delete(id));
    this.#writing.set(id, write);
    return write;
  }

  /** Removes a block (for example one found corrupt by a short-circuit reader). */
  async delete(key: BlockKey): Promise<boolean> {
    const entry = this.#entries.get(blockIdOf(key));
    if (entry === undefined) return false;
    await this.#drop(entry);
    return true;
  }

  stats(): { tiers: TierStats[]; counters: BlockStoreCounters } {
    return {
      tiers: this.#tiers.map((tier) => ({
        medium: tier.medium,
        capacityBytes: tier.capacityBytes,
        usedBytes: usageOf(tier),
        dataBytes: tier.dataBytes,
        blockCount: tier.blockCount,
        directIo: tier.dirs.every((dir) => dir.direct),
      })),
      counters: { ...this.#counters },
    };
  }

  /** Every cached block, for statistics. */
  *blocks(): IterableIterator<CachedBlockInfo> {
    for (const entry of this.#entries.values()) {
      yield { key: entry.key, sizeBytes: entry.sizeBytes, medium: entry.tier.medium };
    }
  }

  /** Resolves once no write, eviction or demotion is under way (for tests and orderly shutdown). */
  async whenIdle(): Promise<void> {
    for (;;) {
      const pending: Promise<unknown>[] = [...this.#writing.values()];
      for (const tier of this.#tiers) {
        if (tier.background !== undefined) pending.push(tier.background);
        pending.push(...tier.evicting);
      }
      if (pending.length === 0) return;
      await Promise.allSettled(pending);
    }
  }

  /**
   * Waits for writes and evictions under way, then empties the MEM tiers. SSD and HDD blocks stay
   * for the next run.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.whenIdle();
    for (const fd of this.#probeFds.splice(0)) closeSync(fd);
    for (const tier of this.#tiers) {
      if (tier.medium !== 'MEM') continue;
      for (const dir of tier.dirs) await rm(dir.root, { recursive: true, force: true });
    }
  }

  async #prepare(): Promise<void> {
    for (const tier of this.#tiers) {
      for (const dir of tier.dirs) {
        try {
          if (tier.medium === 'MEM') await rm(dir.root, { recursive: true, force: true });
          else await rm(dir.tmp, { recursive: true, force: true });
          await mkdir(dir.tmp, { recursive: true, mode: 0o700 });
          if (this.#directIo && tier.medium !== 'MEM') await this.#probeDirectIo(dir);
        } catch (error) {
          throw new CacheError(
            'ERR_CACHE_BAD_CONFIG',
            `Cannot use the ${tier.medium} directory ${dir.root}`,
            {
              cause: error,
            },
          );
        }
      }
    }
    for (const tier of this.#tiers) {
      if (tier.medium === 'MEM') continue;
      const found: { entry: Entry; mtimeMs: number }[] = [];
      for (const dir of tier.dirs) found.push(...(await this.#scan(tier, dir)));
      // Oldest first, so the least recently written blocks are the first victims.
      found.sort((a, b) => a.mtimeMs - b.mtimeMs);
      for (const { entry } of found) {
        this.#entries.set(entry.id, entry);
        this.#insert(entry, 'probation');
      }
      if (found.length > 0) {
        this.#logger.info(
          { medium: tier.medium, blocks: found.length, bytes: tier.dataBytes },
          'reloaded cached blocks',
        );
      }
    }
    // A quota lowered since the last run: get back under the low watermark before serving.
    for (const tier of this.#tiers) {
      if (usageOf(tier) > tier.highBytes) await this.#evictDownTo(tier, tier.lowBytes);
    }
  }

  /**
   * Decides whether `dir` uses direct I/O: not on tmpfs or ramfs (their O_DIRECT is a memory copy,
   * if taken at all), and only where a file opened with O_DIRECT can be read. The probe file stays
   * open for directIoProbe and is unlinked at once, so it takes no quota and leaves nothing behind.
   */
  async #probeDirectIo(dir: Dir): Promise<void> {
    if (MEMORY_FS_TYPES.has((await statfs(dir.tmp)).type)) return;
    const probePath = join(dir.tmp, 'direct-io-probe');
    await writeFile(probePath, Buffer.alloc(DIRECT_IO_ALIGN_BYTES), { mode: 0o600 });
    try {
      this.#probeFds.push(openSync(probePath, constants.O_RDONLY | constants.O_DIRECT));
      dir.direct = true;
    } catch (error) {
      this.#logger.info({ err: toError(error), dir: dir.root }, 'no direct I/O in this directory');
    } finally {
      await unlink(probePath).catch(() => undefined);
    }
  }

  async #scan(tier: Tier, dir: Dir): Promise<{ entry: Entry; mtimeMs: number }[]> {
    const found: { entry: Entry; mtimeMs: number }[] = [];
    for await (const shard of await opendir(dir.root)) {
      if (!shard.isDirectory() || !/^[0-9a-f]{2}$/.test(shard.name)) continue;
      for await (const file of await opendir(join(dir.root, shard.name))) {
        const filePath = join(dir.root, shard.name, file.name);
        const id = file.name.endsWith(BLOCK_SUFFIX) ? file.name.slice(0, -BLOCK_SUFFIX.length) : '';
        let info: Awaited<ReturnType<typeof readBlockMeta>>;
        let mtimeMs = 0;
        try {
          info = await readBlockMeta(filePath);
          mtimeMs = (await stat(filePath)).mtimeMs;
        } catch (error) {
          this.#logger.warn({ err: toError(error), filePath }, 'cannot read a block file');
          info = undefined;
        }
        const valid =
          info !== undefined &&
          blockIdOf(info.meta) === id &&
          info.meta.blockSizeBytes === this.#blockSizeBytes &&
          !this.#entries.has(id) &&
          !found.some((f) => f.entry.id === id);
        if (!valid || info === undefined) {
          this.#counters.corruptBlocks += 1;
          await unlink(filePath).catch(() => undefined);
          continue;
        }
        const { meta, fileBytes } = info;
        const allocBytes = allocationOf(fileBytes);
        dir.usedBytes += allocBytes;
        found.push({
          mtimeMs,
          entry: {
            id,
            key: { mount: meta.mount, path: meta.path, version: meta.version, index: meta.index },
            sizeBytes: meta.sizeBytes,
            allocBytes,
            checksums: storedChecksumsOf(meta),
            tier,
            dir,
            filePath,
            segment: 'none',
            readers: 0,
          },
        });
      }
    }
    return found;
  }

  async #write(
    id: string,
    key: BlockKey,
    data: Uint8Array,
    checksums: PieceChecksums,
  ): Promise<BlockLocation | undefined> {
    if (data.length > this.#blockSizeBytes) {
      throw new RangeError(`Cannot store ${data.length} bytes as a ${this.#blockSizeBytes}-byte block`);
    }
    const trailer = trailerOf({
      format: 2,
      ...key,
      blockSizeBytes: this.#blockSizeBytes,
      sizeBytes: data.length,
      pieceBytes: checksums.pieceBytes,
      pieceXxh64s: xxh64HexesOf(checksums.pieceXxh64s),
    });
    const allocBytes = allocationOf(data.length + trailer.length);
    for (const tier of this.#tiers) {
      if (this.#closed) return undefined;
      const dir = await this.#reserve(tier, allocBytes);
      if (dir === undefined) continue;
      const filePath = blockPathOf(dir, id);
      try {
        await this.#ensureShard(dir, id);
        await writeBlockFile({
          tmpPath: tmpPathOf(dir, id),
          finalPath: filePath,
          data,
          trailer,
          direct: dir.direct,
        });
      } catch (error) {
        dir.reservedBytes -= allocBytes;
        this.#logger.warn({ err: toError(error), medium: tier.medium }, 'cannot write a block file');
        continue;
      }
      dir.reservedBytes -= allocBytes;
      dir.usedBytes += allocBytes;
      const entry: Entry = {
        id,
        key: { mount: key.mount, path: key.path, version: key.version, index: key.index },
        sizeBytes: data.length,
        allocBytes,
        checksums,
        tier,
        dir,
        filePath,
        segment: 'none',
        readers: 0,
      };
      this.#entries.set(id, entry);
      this.#insert(entry, 'probation');
      this.#maybeEvictInBackground(tier);
      return locationOf(entry);
    }
    this.#counters.rejectedWrites += 1;
    return undefined;
  }

  /**
   * Reserves `bytes` in the directory of `tier` with the most room, evicting until one has it.
   * Usage plus reservations never exceed a directory's capacity: that is the quota guarantee.
   */
  async #reserve(tier: Tier, bytes: number): Promise<Dir | undefined> {
    if (!tier.dirs.some((dir) => dir.capacityBytes >= bytes)) return undefined;
    for (;;) {
      let best: Dir | undefined;
      for (const dir of tier.dirs) {
        if (best === undefined || freeOf(dir) > freeOf(best)) best = dir;
      }
      if (best !== undefined && freeOf(best) >= bytes) {
        best.reservedBytes += bytes;
        return best;
      }
      if (this.#closed) return undefined;
      const victim = this.#victimOf(tier);
      if (victim !== undefined) {
        await this.#evict(victim);
      } else if (tier.evicting.size > 0) {
        await Promise.race(tier.evicting);
      } else {
        return undefined;
      }
    }
  }

  #victimOf(tier: Tier): Entry | undefined {
    for (const segment of [tier.probation, tier.protected]) {
      for (const entry of segment.values()) if (entry.readers === 0) return entry;
    }
    return undefined;
  }

  /** Demotes `entry` to the next tier when one takes it, else drops it. */
  #evict(entry: Entry): Promise<void> {
    const tier = entry.tier;
    const wasProtected = entry.segment === 'protected';
    this.#remove(entry);
    this.#counters.evictions += 1;
    const done = this.#demoteOrDrop(entry, wasProtected).finally(() => tier.evicting.delete(done));
    tier.evicting.add(done);
    return done;
  }

  async #demoteOrDrop(entry: Entry, wasProtected: boolean): Promise<void> {
    const from = entry.tier;
    const fromDir = entry.dir;
    const fromPath = entry.filePath;
    const below = this.#tiers[from.index + 1];
    const target =
      below === undefined || this.#closed ? undefined : await this.#reserve(below, entry.allocBytes);
    if (below !== undefined && target !== undefined && this.#entries.get(entry.id) === entry) {
      const toPath = blockPathOf(target, entry.id);
      const tmpPath = tmpPathOf(target, entry.id);
      try {
        await this.#ensureShard(target, entry.id);
        await this.#copyBlockFile(fromPath, tmpPath, toPath, target.direct);
        target.reservedBytes -= entry.allocBytes;
        target.usedBytes += entry.allocBytes;
        entry.tier = below;
        entry.dir = target;
        entry.filePath = toPath;
        this.#insert(entry, wasProtected ? 'protected' : 'probation');
        this.#counters.demotions += 1;
        await unlink(fromPath).catch(() => undefined);
        fromDir.usedBytes -= entry.allocBytes;
        this.#maybeEvictInBackground(below);
        return;
      } catch (error) {
        target.reservedBytes -= entry.allocBytes;
        this.#logger.warn({ err: toError(error), from: from.medium }, 'cannot demote a block; dropping it');
      }
    } else if (target !== undefined) {
      target.reservedBytes -= entry.allocBytes;
    }
    if (this.#entries.get(entry.id) === entry) this.#entries.delete(entry.id);
    await unlink(fromPath).catch(() => undefined);
    fromDir.usedBytes -= entry.allocBytes;
  }

  /**
   * Copies a block file for a demotion. Into a direct directory, the file is read into an aligned
   * buffer and written with O_DIRECT (writeBlockFile with the whole file as data): a plain copy
   * would allocate the page cache that direct writes avoid.
   */
  async #copyBlockFile(fromPath: string, tmpPath: string, toPath: string, direct: boolean): Promise<void> {
    if (direct) {
      this.#copyBuffers ??= new BufferPool(this.#blockSizeBytes + MAX_TRAILER_BYTES, 2, {
        directIo: this.directIoProbe(),
      });
      const buffer = this.#copyBuffers.acquire();
      try {
        const handle = await open(fromPath, 'r');
        let length = 0;
        try {
          for (;;) {
            const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
            if (bytesRead === 0) break;
            length += bytesRead;
            if (length === buffer.length) break;
          }
        } finally {
          await handle.close();
        }
        if (length < buffer.length) {
          const empty = buffer.subarray(0, 0);
          const data = buffer.subarray(0, length);
          await writeBlockFile({ tmpPath, finalPath: toPath, data, trailer: empty, direct: true });
          return;
        }
      } finally {
        this.#copyBuffers.release(buffer);
      }
    }
    await copyFile(fromPath, tmpPath);
    await renameInto(tmpPath, toPath);
  }

  /** Removes a block from the index and its tier, then deletes its file. */
  async #drop(entry: Entry): Promise<void> {
    if (this.#entries.get(entry.id) !== entry || entry.segment === 'none') return;
    this.#remove(entry);
    this.#entries.delete(entry.id);
    await unlink(entry.filePath).catch(() => undefined);
    entry.dir.usedBytes -= entry.allocBytes;
  }

  async #ensureShard(dir: Dir, id: string): Promise<void> {
    const shard = join(dir.root, id.slice(0, 2));
    if (this.#shards.has(shard)) return;
    await mkdir(shard, { recursive: true, mode: 0o700 });
    this.#shards.add(shard);
  }

  #maybeEvictInBackground(tier: Tier): void {
    if (tier.background !== undefined || this.#closed || usageOf(tier) <= tier.highBytes) return;
    tier.background = this.#evictDownTo(tier, tier.lowBytes)
      .catch((error: unknown) => {
        this.#logger.error({ err: toError(error), medium: tier.medium }, 'background eviction failed');
      })
      .finally(() => {
        tier.background = undefined;
      });
  }

  async #evictDownTo(tier: Tier, targetBytes: number): Promise<void> {
    while (usageOf(tier) > targetBytes && !this.#closed) {
      const victim = this.#victimOf(tier);
      if (victim === undefined) return;
      await this.#evict(victim);
    }
  }

  #insert(entry: Entry, segment: 'probation' | 'protected'): void {
    const tier = entry.tier;
    entry.segment = segment;
    tier.dataBytes += entry.sizeBytes;
    tier.blockCount += 1;
    if (segment === 'probation') {
      tier.probation.set(entry.id, entry);
    } else {
      tier.protected.set(entry.id, entry);
      tier.protectedBytes += entry.sizeBytes;
      this.#balance(tier);
    }
  }

  #remove(entry: Entry): void {
    const tier = entry.tier;
    if (entry.segment === 'probation') tier.probation.delete(entry.id);
    if (entry.segment === 'protected') {
      tier.protected.delete(entry.id);
      tier.protectedBytes -= entry.sizeBytes;
    }
    if (entry.segment !== 'none') {
      tier.dataBytes -= entry.sizeBytes;
      tier.blockCount -= 1;
    }
    entry.segment = 'none';
  }

  /** A hit: probation → protected; protected → its most recently used end. */
  #touch(entry: Entry): void {
    const tier = entry.tier;
    if (entry.segment === 'probation') {
      tier.probation.delete(entry.id);
      tier.protected.set(entry.id, entry);
      tier.protectedBytes += entry.sizeBytes;
      entry.segment = 'protected';
      this.#balance(tier);
    } else if (entry.segment === 'protected') {
      tier.protected.delete(entry.id);
      tier.protected.set(entry.id, entry);
    }
  }

  /** Keeps the protected segment within its share; its overflow goes back to probation as MRU. */
  #balance(tier: Tier): void {
    while (tier.protectedBytes > tier.protectedLimitBytes) {
      const oldest = tier.protected.values().next().value;
      if (oldest === undefined) return;
      tier.protected.delete(oldest.id);
      tier.protectedBytes -= oldest.sizeBytes;
      oldest.segment = 'probation';
      tier.probation.set(oldest.id, oldest);
    }
  }
}

/** statfs f_type of tmpfs and ramfs (linux/magic.h). */
const MEMORY_FS_TYPES = new Set([0x01021994, 0x858458f6]);

function locationOf(entry: Entry): BlockLocation {
  return {
    filePath: entry.filePath,
    sizeBytes: entry.sizeBytes,
    ...entry.checksums,
    medium: entry.tier.medium,
  };
}

function checkOf(entry: Entry): BlockFileCheck {
  return { sizeBytes: entry.sizeBytes, ...entry.checksums };
}

/** The checksums of a trailer as the index keeps them (parsed piece XXH64s: 8 bytes each). */
function storedChecksumsOf(meta: BlockFileMeta): StoredChecksums {
  if (meta.format === 1) {
    const { crc32, pieceBytes, pieceCrc32s } = meta;
    return pieceBytes === undefined || pieceCrc32s === undefined
      ? { crc32 }
      : { crc32, pieceBytes, pieceCrc32s };
  }
  // readBlockMeta checked the hex (areXxh64Hexes).
  return { pieceBytes: meta.pieceBytes, pieceXxh64s: parseXxh64Hexes(meta.pieceXxh64s) };
}

function usageOf(tier: Tier): number {
  let bytes = 0;
  for (const dir of tier.dirs) bytes += dir.usedBytes + dir.reservedBytes;
  return bytes;
}

function freeOf(dir: Dir): number {
  return dir.capacityBytes - dir.usedBytes - dir.reservedBytes;
}

function allocationOf(fileBytes: number): number {
  return Math.ceil(fileBytes / ALLOCATION_UNIT_BYTES) * ALLOCATION_UNIT_BYTES;
}

function blockPathOf(dir: Dir, id: string): string {
  return join(dir.root, id.slice(0, 2), `${id}${BLOCK_SUFFIX}`);
}

/** Temporary names unique within this process; each worker has its own directories. */
let tmpCounter = 0;

function tmpPathOf(dir: Dir, id: string): string {
  tmpCounter += 1;
  return join(dir.tmp, `${id}.${process.pid}.${tmpCounter}.tmp`);
}

async function renameInto(tmpPath: string, finalPath: string): Promise<void> {
  try {
    await rename(tmpPath, finalPath);
  } catch (error) {
    await unlink(tmpPath).catch(() => undefined);
    throw error;
  }
}
