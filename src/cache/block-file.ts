import { closeSync, constants, openSync, readSync, renameSync, unlinkSync, writevSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import type { BlockKey } from './block-key.ts';
import {
  areCrc32s,
  areXxh64Hexes,
  pieceCheckOf,
  piecesFit,
  wholeBlockMatches,
  type BlockChecksums,
} from './block-checksum.ts';
import {
  DIRECT_IO_ALIGN_BYTES,
  allocateAligned,
  directIoProbeOf,
  isDirectIoAligned,
  type DirectIoProbe,
} from './buffer-pool.ts';

/**
 * One block on disk is one file: the block's bytes, then a trailer that makes the file
 * self-describing, so that a restarted worker rebuilds its index from the files alone:
 *
 *   data (sizeBytes) | meta JSON (UTF-8) | meta length (u32 LE) | magic "TDB1"
 *
 * The bytes come first so that a client short-circuiting to the file reads `[0, sizeBytes)`.
 * Files are written under a temporary name and renamed into place, so a crash leaves either no
 * block or a whole one; bit rot and truncation are caught by the checksums and the length check.
 *
 * Checksums: the XXH64 of each piece (`format: 2`; 32 KiB, the size is in the trailer). Files of
 * `format: 1` hold the CRC-32 of the whole block and, when written by later versions, of each
 * piece; they are still read and checked, so a worker upgraded on its cache directory keeps its
 * blocks. A reader that meets a
 * format it does not know takes the file for no block file (an older Tide drops format 2 files).
 *
 * Direct I/O (`direct: true`): the block's whole 4 KiB units are written and read with O_DIRECT,
 * bypassing the page cache, whose first touch of fresh pages cost more kernel CPU than the rest of
 * a fill; the last partial unit and the trailer go through the page cache (O_DIRECT takes whole
 * units only), so the format is the same either way. Memory that is not aligned for it goes
 * through a small aligned bounce buffer. A file system that refuses O_DIRECT (EINVAL) gets the
 * buffered path, as do blocks under DIRECT_IO_MIN_BYTES.
 */
export type BlockFileMeta = BlockFileMetaV2 | BlockFileMetaV1;

interface BlockFileMetaBase extends BlockKey {
  /** The block size the block was cut with: index `i` means another range under another size. */
  blockSizeBytes: number;
  sizeBytes: number;
}

/** What this version writes. */
export interface BlockFileMetaV2 extends BlockFileMetaBase {
  format: 2;
  pieceBytes: number;
  /** XXH64 (seed 0) per piece of `pieceBytes`, as 16 lowercase hex digits. */
  pieceXxh64s: string[];
}

/** Files of earlier versions, read and checked but no longer written. */
export interface BlockFileMetaV1 extends BlockFileMetaBase {
  format: 1;
  crc32: number;
  /** CRC-32 per piece of `pieceBytes` (absent in the earliest files: then only `crc32`). */
  pieceBytes?: number;
  pieceCrc32s?: number[];
}

const MAGIC = Buffer.from('TDB1', 'latin1');
const FOOTER_BYTES = 8;
/** Longest trailer a reader accepts: paths and versions are short; a larger value means garbage. */
const MAX_META_BYTES = 64 * 1024;
/** The longest trailer a block file may end with. */
export const MAX_TRAILER_BYTES = MAX_META_BYTES + FOOTER_BYTES;

export function trailerOf(meta: BlockFileMeta): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const footer = Buffer.allocUnsafe(FOOTER_BYTES);
  footer.writeUInt32LE(json.length, 0);
  MAGIC.copy(footer, 4);
  return Buffer.concat([json, footer]);
}

/**
 * Blocks smaller than this go through the page cache: for a few pages, the second descriptor and
 * the alignment work of direct I/O cost more than the page cache does.
 */
export const DIRECT_IO_MIN_BYTES = 64 * 1024;

/**
 * Blocks up to this size are written with synchronous calls on the event loop: four thread-pool
 * round trips (open, write, close, rename) cost a small file's load more than the calls themselves,
 * which take tens of microseconds each on a local disk.
 */
export const SYNC_WRITE_MAX_BYTES = 64 * 1024;

/** Writes `data` and `trailer` to `tmpPath`, then renames it to `finalPath`. */
export async function writeBlockFile(options: {
  tmpPath: string;
  finalPath: string;
  data: Uint8Array;
  trailer: Uint8Array;
  /** Write the data's whole 4 KiB units with O_DIRECT where the file system takes it; default false. */
  direct?: boolean;
}): Promise<void> {
  const { tmpPath, data, trailer } = options;
  if (data.length <= SYNC_WRITE_MAX_BYTES) {
    writeSmallBlockFile(tmpPath, options.finalPath, data, trailer);
    return;
  }
  try {
    const direct = options.direct === true && data.length >= DIRECT_IO_MIN_BYTES;
    if (!direct || !(await writeDirect(tmpPath, data, trailer))) {
      await writeBuffered(tmpPath, [data, trailer], 0, 'w');
    }
  } catch (error) {
    await unlink(tmpPath).catch(() => undefined);
    throw error;
  }
  try {
    await rename(tmpPath, options.finalPath);
  } catch (error) {
    await unlink(tmpPath).catch(() => undefined);
    throw error;
  }
}

function writeSmallBlockFile(
  tmpPath: string,
  finalPath: string,
  data: Uint8Array,
  trailer: Uint8Array,
): void {
  try {
    const fd = openSync(tmpPath, 'w', 0o600);
    try {
      const total = data.length + trailer.length;
      const written = writevSync(fd, [data, trailer], 0);
      // A regular file takes a short write whole; a partial one means the disk is full or failing.
      if (written !== total) throw new Error(`Wrote ${written} of ${total} bytes of a block file`);
    } finally {
      closeSync(fd);
    }
    renameSync(tmpPath, finalPath);
  } catch (error) {
    try {
      unlinkSync(tmpPath);
    } catch {
      // never created, or already renamed
    }
    throw error;
  }
}

/**
 * Writes `chunks` at `position` through the page cache: one writev for all (one thread-pool trip
 * less per block: small files are many blocks); it may write part of the vector, and the rest is
 * written piece by piece.
 */
async function writeBuffered(
  filePath: string,
  chunks: readonly Uint8Array[],
  position: number,
  flags: 'w' | 'r+',
): Promise<void> {
  const handle = await open(filePath, flags, 0o600);
  try {
    const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    let written = (await handle.writev(chunks, position)).bytesWritten;
    let start = 0;
    for (const chunk of chunks) {
      let done = Math.max(0, Math.min(chunk.length, written - start));
      start += chunk.length;
      while (done < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, position + written);
        done += bytesWritten;
        written += bytesWritten;
      }
    }
    if (written !== total) throw new Error(`Wrote ${written} of ${total} bytes of a block file`);
  } finally {
    await handle.close();
  }
}

/**
 * Writes the whole 4 KiB units of `data` with O_DIRECT, then the rest and the trailer through the
 * page cache. False when the file system refuses direct I/O (nothing to keep: the caller rewrites
 * the file buffered).
 */
async function writeDirect(tmpPath: string, data: Uint8Array, trailer: Uint8Array): Promise<boolean> {
  const alignedBytes = data.length - (data.length % DIRECT_IO_ALIGN_BYTES);
  let handle: FileHandle;
  try {
    handle = await open(
      tmpPath,
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_DIRECT,
      0o600,
    );
  } catch (error) {
    if (isEinval(error)) return false;
    throw error;
  }
  try {
    if (!(await writeAligned(handle, data.subarray(0, alignedBytes)))) return false;
  } catch (error) {
    if (isEinval(error)) return false;
    throw error;
  } finally {
    await handle.close();
  }
  await writeBuffered(tmpPath, [data.subarray(alignedBytes), trailer], alignedBytes, 'r+');
  return true;
}

/** Writes `data` (a multiple of 4 KiB) at 0 with a direct descriptor; false without aligned memory. */
async function writeAligned(handle: FileHandle, data: Uint8Array): Promise<boolean> {
  if (isDirectIoAligned(data)) {
    await writeFully(handle, data, 0);
    return true;
  }
  const bounce = acquireBounce(directIoProbeOf(handle.fd, 'write'));
  if (bounce === undefined) return false;
  try {
    for (let position = 0; position < data.length; position += bounce.length) {
      const length = Math.min(bounce.length, data.length - position);
      bounce.set(data.subarray(position, position + length));
      await writeFully(handle, bounce.subarray(0, length), position);
    }
  } finally {
    releaseBounce(bounce);
  }
  return true;
}

async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  for (let written = 0; written < data.length;) {
    const { bytesWritten } = await handle.write(data, written, data.length - written, position + written);
    if (bytesWritten === 0) throw new Error(`Wrote 0 of ${data.length - written} bytes of a block file`);
    written += bytesWritten;
  }
}

/** Aligned buffers for direct I/O of memory that is not aligned (a copy costs less than the page cache). */
const BOUNCE_BYTES = 1024 * 1024;
const MAX_FREE_BOUNCES = 4;
const freeBounces: Buffer[] = [];

function acquireBounce(probe: DirectIoProbe): Buffer | undefined {
  return freeBounces.pop() ?? allocateAligned(BOUNCE_BYTES, probe);
}

function releaseBounce(bounce: Buffer): void {
  if (freeBounces.length < MAX_FREE_BOUNCES) freeBounces.push(bounce);
}

function isEinval(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'EINVAL';
}

/** The trailer of a block file, or undefined when the file is not a whole block file. */
export async function readBlockMeta(
  filePath: string,
): Promise<{ meta: BlockFileMeta; fileBytes: number } | undefined> {
  const handle = await open(filePath, 'r');
  try {
    const { size } = await handle.stat();
    if (size < FOOTER_BYTES) return undefined;
    const footer = Buffer.alloc(FOOTER_BYTES);
    await handle.read(footer, 0, FOOTER_BYTES, size - FOOTER_BYTES);
    if (!footer.subarray(4).equals(MAGIC)) return undefined;
    const metaBytes = footer.readUInt32LE(0);
    if (metaBytes > MAX_META_BYTES || metaBytes + FOOTER_BYTES > size) return undefined;
    const json = Buffer.alloc(metaBytes);
    await handle.read(json, 0, metaBytes, size - FOOTER_BYTES - metaBytes);
    const meta = parseMeta(json.toString('utf8'));
    if (meta?.sizeBytes !== size - FOOTER_BYTES - metaBytes) return undefined;
    return { meta, fileBytes: size };
  } finally {
    await handle.close();
  }
}

function parseMeta(text: string): BlockFileMeta | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const meta = value as Record<string, unknown>;
  const ok =
    typeof meta['mount'] === 'string' &&
    typeof meta['path'] === 'string' &&
    typeof meta['version'] === 'string' &&
    Number.isSafeInteger(meta['index']) &&
    Number.isSafeInteger(meta['blockSizeBytes']) &&
    Number.isSafeInteger(meta['sizeBytes']);
  if (!ok) return undefined;
  const sizeBytes = meta['sizeBytes'] as number;
  const pieceBytes = meta['pieceBytes'];
  switch (meta['format']) {
    case 2: {
      const hexes = meta['pieceXxh64s'];
      const piecesOk =
        Array.isArray(hexes) && piecesFit(sizeBytes, pieceBytes, hexes.length) && areXxh64Hexes(hexes);
      return piecesOk ? (value as BlockFileMetaV2) : undefined;
    }
    case 1: {
      if (!Number.isSafeInteger(meta['crc32'])) return undefined;
      const crc32s = meta['pieceCrc32s'];
      if (pieceBytes === undefined && crc32s === undefined) return value as BlockFileMetaV1;
      const piecesOk =
        Array.isArray(crc32s) && piecesFit(sizeBytes, pieceBytes, crc32s.length) && areCrc32s(crc32s);
      return piecesOk ? (value as BlockFileMetaV1) : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The first `sizeBytes` bytes of a block file, in `into` when given (a view of it is returned).
 * `memory: true` for a file in tmpfs: reading it is a memory copy that never waits for a device, so
 * it is done synchronously, sparing three thread-pool round trips (open, read, close) that cost far
 * more than the copy when the machine is busy.
 * @throws {Error} with code `ERR_BLOCK_SHORT` when the file holds fewer bytes (truncated)
 */
export async function readBlockData(
  filePath: string,
  sizeBytes: number,
  options: { into?: Buffer | undefined; memory?: boolean } = {},
): Promise<Buffer> {
  const into = options.into;
  if (into !== undefined && into.length < sizeBytes) {
    throw new RangeError(`Cannot read a ${sizeBytes}-byte block into ${into.length} bytes`);
  }
  const data = into === undefined ? Buffer.allocUnsafe(sizeBytes) : into.subarray(0, sizeBytes);
  const short = (filled: number): Error =>
    Object.assign(new Error(`Block file ${filePath} holds ${filled} of ${sizeBytes} bytes`), {
      code: 'ERR_BLOCK_SHORT',
    });
  if (options.memory === true) {
    const fd = openSync(filePath, 'r');
    try {
      let filled = 0;
      while (filled < sizeBytes) {
        const bytesRead = readSync(fd, data, filled, sizeBytes - filled, filled);
        if (bytesRead === 0) throw short(filled);
        filled += bytesRead;
      }
      return data;
    } finally {
      closeSync(fd);
    }
  }
  const handle = await open(filePath, 'r');
  try {
    let filled = 0;
    while (filled < sizeBytes) {
      const { bytesRead } = await handle.read(data, filled, sizeBytes - filled, filled);
      if (bytesRead === 0) throw short(filled);
      filled += bytesRead;
    }
    return data;
  } finally {
    await handle.close();
  }
}

/**
 * The checked bytes `[from, to)` of a block file with piece checksums, reading only the pieces
 * that hold them: a random read of a few KiB costs one piece, not the whole block. Undefined when
 * the file has no piece checksums (an older file), or a piece fails its check.
 * @throws {Error} when the file cannot be read or is short (code `ERR_BLOCK_SHORT`)
 */
export async function readCheckedRange(
  filePath: string,
  check: BlockFileCheck,
  from: number,
  to: number,
): Promise<Buffer | undefined> {
  const pieces = pieceCheckOf(check);
  const { sizeBytes } = check;
  if (pieces === undefined || from < 0 || to > sizeBytes || from >= to) return undefined;
  const { pieceBytes } = pieces;
  const firstPiece = Math.floor(from / pieceBytes);
  const start = firstPiece * pieceBytes;
  const end = Math.min(Math.ceil(to / pieceBytes) * pieceBytes, sizeBytes);
  const data = Buffer.allocUnsafe(end - start);
  const handle = await open(filePath, 'r');
  try {
    let filled = 0;
    while (filled < data.length) {
      const { bytesRead } = await handle.read(data, filled, data.length - filled, start + filled);
      if (bytesRead === 0) {
        throw Object.assign(new Error(`Block file ${filePath} is shorter than ${start + filled + 1} bytes`), {
          code: 'ERR_BLOCK_SHORT',
        });
      }
      filled += bytesRead;
    }
  } finally {
    await handle.close();
  }
  for (let at = 0, piece = firstPiece; at < data.length; at += pieceBytes, piece += 1) {
    if (!pieces.matches(data.subarray(at, Math.min(at + pieceBytes, data.length)), piece)) return undefined;
  }
  return data.subarray(from - start, to - start);
}

/** What a reader needs to check a block file: its length and checksums. */
export interface BlockFileCheck extends BlockChecksums {
  sizeBytes: number;
}

/**
 * The checked bytes of a block file, in `into` when given, or undefined when they fail their
 * checksum. With piece checksums the file is read and checked piece by piece, and `onVerified`
 * hears of each checked prefix, so a reader of the first bytes need not wait for the whole block;
 * without them (files of earlier versions) the whole block is read, then checked.
 * @throws {Error} when the file cannot be read or is short (code `ERR_BLOCK_SHORT`)
 */
export async function readCheckedBlock(
  filePath: string,
  check: BlockFileCheck,
  options: {
    into?: Buffer | undefined;
    memory?: boolean;
    /** Read the whole 4 KiB units with O_DIRECT (not for MEM files); default true. */
    direct?: boolean;
    onVerified?: (bytes: number) => void;
  } = {},
): Promise<Buffer | undefined> {
  const { sizeBytes } = check;
  const pieces = pieceCheckOf(check);
  if (pieces === undefined) {
    const data = await readBlockData(filePath, sizeBytes, options);
    return wholeBlockMatches(data, check) ? data : undefined;
  }
  const { pieceBytes } = pieces;
  const into = options.into;
  if (into !== undefined && into.length < sizeBytes) {
    throw new RangeError(`Cannot read a ${sizeBytes}-byte block into ${into.length} bytes`);
  }
  const data = into === undefined ? Buffer.allocUnsafe(sizeBytes) : into.subarray(0, sizeBytes);
  const direct =
    options.direct !== false && sizeBytes >= DIRECT_IO_MIN_BYTES && pieceBytes % DIRECT_IO_ALIGN_BYTES === 0;
  const file =
    options.memory === true
      ? syncFile(filePath)
      : direct
        ? await directFile(filePath)
        : await asyncFile(filePath);
  try {
    // Two reads: the first piece alone (what a reader of the first bytes waits for), then the rest
    // at once, as one read of the remainder costs less than one per piece.
    let filled = 0;
    let checked = 0;
    for (const until of [Math.min(pieceBytes, sizeBytes), sizeBytes]) {
      while (filled < until) {
        const bytesRead = await file.read(data, filled, until - filled);
        if (bytesRead === 0) {
          throw Object.assign(new Error(`Block file ${filePath} holds ${filled} of ${sizeBytes} bytes`), {
            code: 'ERR_BLOCK_SHORT',
          });
        }
        filled += bytesRead;
      }
      for (; checked < filled; checked = Math.min(checked + pieceBytes, sizeBytes)) {
        const end = Math.min(checked + pieceBytes, sizeBytes);
        if (!pieces.matches(data.subarray(checked, end), checked / pieceBytes)) return undefined;
        options.onVerified?.(end);
      }
      // A synchronous (tmpfs) read of the rest would run before the reader of the first piece
      // resumes: let it go first.
      if (file.sync && options.onVerified !== undefined && filled < sizeBytes) await setImmediatePromise();
    }
    return data;
  } finally {
    await file.close();
  }
}

interface OpenBlockFile {
  readonly sync: boolean;
  read(into: Buffer, offset: number, length: number): Promise<number> | number;
  close(): Promise<void> | void;
}

/** tmpfs: reads are memory copies, done synchronously (see readBlockData). */
function syncFile(filePath: string): OpenBlockFile {
  const fd = openSync(filePath, 'r');
  return {
    sync: true,
    read: (into, offset, length) => readSync(fd, into, offset, length, offset),
    close: () => {
      closeSync(fd);
    },
  };
}

async function asyncFile(filePath: string): Promise<OpenBlockFile> {
  const handle = await open(filePath, 'r');
  return {
    sync: false,
    read: async (into, offset, length) => (await handle.read(into, offset, length, offset)).bytesRead,
    close: () => handle.close(),
  };
}

/**
 * A block file read with O_DIRECT, at offsets that are multiples of 4 KiB (0 and piece bounds):
 * straight into aligned memory, else through a bounce buffer and a copy. A read the kernel refuses
 * (EINVAL: no direct I/O on this file system, or memory aligned for another one) is done buffered.
 */
async function directFile(filePath: string): Promise<OpenBlockFile> {
  let handle: FileHandle;
  try {
    handle = await open(filePath, constants.O_RDONLY | constants.O_DIRECT);
  } catch (error) {
    if (isEinval(error)) return asyncFile(filePath);
    throw error;
  }
  let buffered: FileHandle | undefined;
  return {
    sync: false,
    read: async (into, offset, length) => {
      if (buffered === undefined) {
        try {
          return await readDirect(handle, into, offset, length);
        } catch (error) {
          if (!isEinval(error)) throw error;
          buffered = await open(filePath, 'r');
        }
      }
      return (await buffered.read(into, offset, length, offset)).bytesRead;
    },
    close: async () => {
      await handle.close();
      await buffered?.close();
    },
  };
}

/**
 * Reads `[offset, offset + length)` of the file (offset a multiple of 4 KiB) into the same range of
 * `into`; fewer bytes only at the end of the file.
 */
async function readDirect(handle: FileHandle, into: Buffer, offset: number, length: number): Promise<number> {
  const alignedBytes = length - (length % DIRECT_IO_ALIGN_BYTES);
  let filled = 0;
  if (alignedBytes > 0 && isDirectIoAligned(into.subarray(offset))) {
    while (filled < alignedBytes) {
      const { bytesRead } = await handle.read(into, offset + filled, alignedBytes - filled, offset + filled);
      if (bytesRead === 0) return filled;
      filled += bytesRead;
    }
  }
  if (filled === length) return filled;
  // The rest (memory not aligned, or the last partial 4 KiB): whole units into a bounce buffer.
  const bounce = acquireBounce(directIoProbeOf(handle.fd, 'read'));
  if (bounce === undefined)
    throw Object.assign(new Error('No aligned memory for direct I/O'), { code: 'EINVAL' });
  try {
    while (filled < length) {
      const wanted = Math.min(bounce.length, length - filled);
      const unitBytes = Math.ceil(wanted / DIRECT_IO_ALIGN_BYTES) * DIRECT_IO_ALIGN_BYTES;
      const { bytesRead } = await handle.read(bounce, 0, unitBytes, offset + filled);
      const useful = Math.min(bytesRead, wanted);
      bounce.copy(into, offset + filled, 0, useful);
      filled += useful;
      if (bytesRead < unitBytes) return filled;
    }
    return filled;
  } finally {
    releaseBounce(bounce);
  }
}
