import { closeSync, openSync, readSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import type { BlockKey } from './block-key.ts';
import { piecesFit } from './block-checksum.ts';

/**
 * One block on disk is one file: the block's bytes, then a trailer that makes the file
 * self-describing, so that a restarted worker rebuilds its index from the files alone:
 *
 *   data (sizeBytes) | meta JSON (UTF-8) | meta length (u32 LE) | magic "TDB1"
 *
 * The bytes come first so that a client short-circuiting to the file reads `[0, sizeBytes)`.
 * Files are written under a temporary name and renamed into place, so a crash leaves either no
 * block or a whole one; bit rot and truncation are caught by the CRC-32 and the length check.
 */
export interface BlockFileMeta extends BlockKey {
  format: 1;
  /** The block size the block was cut with: index `i` means another range under another size. */
  blockSizeBytes: number;
  sizeBytes: number;
  crc32: number;
  /** CRC-32 per piece of `pieceBytes` (absent in files of earlier versions: then only `crc32`). */
  pieceBytes?: number;
  pieceCrc32s?: number[];
}

const MAGIC = Buffer.from('TDB1', 'latin1');
const FOOTER_BYTES = 8;
/** Longest trailer a reader accepts: paths and versions are short; a larger value means garbage. */
const MAX_META_BYTES = 64 * 1024;

export function trailerOf(meta: BlockFileMeta): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const footer = Buffer.allocUnsafe(FOOTER_BYTES);
  footer.writeUInt32LE(json.length, 0);
  MAGIC.copy(footer, 4);
  return Buffer.concat([json, footer]);
}

/** Writes `data` and `trailer` to `tmpPath`, then renames it to `finalPath`. */
export async function writeBlockFile(options: {
  tmpPath: string;
  finalPath: string;
  data: Uint8Array;
  trailer: Uint8Array;
}): Promise<void> {
  const handle = await open(options.tmpPath, 'w', 0o600);
  try {
    // One writev for data and trailer (one thread-pool trip less per block: small files are many
    // blocks); it may write part of the vector, and the rest is written piece by piece.
    const chunks = [options.data, options.trailer];
    const total = options.data.length + options.trailer.length;
    let position = (await handle.writev(chunks, 0)).bytesWritten;
    let start = 0;
    for (const chunk of chunks) {
      let written = Math.max(0, Math.min(chunk.length, position - start));
      start += chunk.length;
      while (written < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, written, chunk.length - written, position);
        written += bytesWritten;
        position += bytesWritten;
      }
    }
    if (position !== total) throw new Error(`Wrote ${position} of ${total} bytes of a block file`);
  } catch (error) {
    await handle.close();
    await unlink(options.tmpPath).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await rename(options.tmpPath, options.finalPath);
  } catch (error) {
    await unlink(options.tmpPath).catch(() => undefined);
    throw error;
  }
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
    meta['format'] === 1 &&
    typeof meta['mount'] === 'string' &&
    typeof meta['path'] === 'string' &&
    typeof meta['version'] === 'string' &&
    Number.isSafeInteger(meta['index']) &&
    Number.isSafeInteger(meta['blockSizeBytes']) &&
    Number.isSafeInteger(meta['sizeBytes']) &&
    Number.isSafeInteger(meta['crc32']);
  if (!ok) return undefined;
  const pieceBytes = meta['pieceBytes'];
  const pieceCrc32s = meta['pieceCrc32s'];
  if (pieceBytes === undefined && pieceCrc32s === undefined) return value as BlockFileMeta;
  const piecesOk =
    typeof pieceBytes === 'number' &&
    Array.isArray(pieceCrc32s) &&
    piecesFit(meta['sizeBytes'] as number, pieceBytes, pieceCrc32s as number[]);
  return piecesOk ? (value as BlockFileMeta) : undefined;
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
  const { sizeBytes, pieceBytes, pieceCrc32s } = check;
  if (pieceBytes === undefined || pieceCrc32s === undefined || from < 0 || to > sizeBytes || from >= to)
    return undefined;
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
    if (crc32(data.subarray(at, Math.min(at + pieceBytes, data.length))) !== pieceCrc32s[piece])
      return undefined;
  }
  return data.subarray(from - start, to - start);
}

/** What a reader needs to check a block file: its length and checksums. */
export interface BlockFileCheck {
  sizeBytes: number;
  crc32: number;
  pieceBytes?: number | undefined;
  pieceCrc32s?: readonly number[] | undefined;
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
  options: { into?: Buffer | undefined; memory?: boolean; onVerified?: (bytes: number) => void } = {},
): Promise<Buffer | undefined> {
  const { sizeBytes, pieceBytes, pieceCrc32s } = check;
  if (pieceBytes === undefined || pieceCrc32s === undefined) {
    const data = await readBlockData(filePath, sizeBytes, options);
    return crc32(data) === check.crc32 ? data : undefined;
  }
  const into = options.into;
  if (into !== undefined && into.length < sizeBytes) {
    throw new RangeError(`Cannot read a ${sizeBytes}-byte block into ${into.length} bytes`);
  }
  const data = into === undefined ? Buffer.allocUnsafe(sizeBytes) : into.subarray(0, sizeBytes);
  const file = options.memory === true ? syncFile(filePath) : await asyncFile(filePath);
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
        if (crc32(data.subarray(checked, end)) !== pieceCrc32s[checked / pieceBytes]) return undefined;
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
