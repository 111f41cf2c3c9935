import { crc32 } from 'node:zlib';
import xxhash from 'xxhash-wasm';

/**
 * XXH64 (seed 0) from xxhash-wasm, instantiated once per process when this module loads, so that
 * hashing stays a synchronous call in the loops that check a block piece by piece. It runs at
 * 2–3× the speed of zlib's CRC-32 here, which was a quarter of a warm read's CPU.
 */
const { h64Raw } = await xxhash();

/**
 * 32 KiB: a random read of a database page (4 KiB) reads and checks one piece, 8 times its size
 * (256 KiB pieces held SQLite point queries to 0.75x the local disk's rate); a FUSE read of 1 MiB
 * checks 32, at a cost per piece well under a microsecond. Each file records its own piece size,
 * so files cut with another one stay readable.
 */
export const PIECE_BYTES = 32 * 1024;

/**
 * The checksums a block file is written with: the XXH64 of each piece of `pieceBytes`, so that a
 * reader can hand on the first piece of a block file once that piece is read and checked instead
 * of after reading and checking all 4 MiB (the time to first byte of a warm read).
 */
export interface PieceChecksums {
  pieceBytes: number;
  pieceXxh64s: BigUint64Array;
}

/**
 * The checksums a block file's trailer may hold, this version's or an earlier one's: XXH64 per
 * piece (format 2); the whole block's CRC-32 and, in later files of format 1, CRC-32 per piece.
 * Piece XXH64s come parsed (a block's index keeps them so) or as the hex a trailer or a location
 * answer holds.
 */
export interface BlockChecksums {
  pieceBytes?: number | undefined;
  pieceXxh64s?: BigUint64Array | readonly string[] | undefined;
  crc32?: number | undefined;
  pieceCrc32s?: readonly number[] | undefined;
}

/** The XXH64 of each piece of `data`. */
export function checksumsOf(data: Uint8Array, pieceBytes = PIECE_BYTES): PieceChecksums {
  const pieceXxh64s = new BigUint64Array(Math.ceil(data.length / pieceBytes));
  for (let piece = 0, start = 0; start < data.length; piece += 1, start += pieceBytes) {
    pieceXxh64s[piece] = h64Raw(data.subarray(start, Math.min(start + pieceBytes, data.length)));
  }
  return { pieceBytes, pieceXxh64s };
}

/** A check of a block's pieces one by one, whichever checksum its file was written with. */
export interface PieceCheck {
  readonly pieceBytes: number;
  /** True when `piece`, the piece at `index`, has the checksum the file was written with. */
  matches(piece: Uint8Array, index: number): boolean;
}

/** The piece check of `checksums`, or undefined when there are no piece checksums (an old file). */
export function pieceCheckOf(checksums: BlockChecksums): PieceCheck | undefined {
  const { pieceBytes, pieceXxh64s, pieceCrc32s } = checksums;
  if (pieceBytes === undefined) return undefined;
  if (pieceXxh64s !== undefined) {
    return { pieceBytes, matches: (piece, index) => xxh64Matches(h64Raw(piece), pieceXxh64s[index]) };
  }
  if (pieceCrc32s !== undefined) {
    return { pieceBytes, matches: (piece, index) => crc32(piece) === pieceCrc32s[index] };
  }
  return undefined;
}

/**
 * Hex is compared as hex: formatting the computed value costs less than parsing the expected one
 * (both well under 1% of hashing the piece).
 */
function xxh64Matches(actual: bigint, expected: bigint | string | undefined): boolean {
  return typeof expected === 'string' ? xxh64HexOf(actual) === expected : actual === expected;
}

/** The whole-block check of files of format 1 written without piece checksums. */
export function wholeBlockMatches(data: Uint8Array, checksums: BlockChecksums): boolean {
  return checksums.crc32 !== undefined && crc32(data) === checksums.crc32;
}

/** 16 lowercase hex digits: how a 64-bit checksum goes into JSON, which has no 64-bit integers. */
export function xxh64HexOf(value: bigint): string {
  return value.toString(16).padStart(16, '0');
}

export function xxh64HexesOf(values: BigUint64Array): string[] {
  return Array.from(values, xxh64HexOf);
}

const XXH64_HEX = /^[0-9a-f]{16}$/;

/** True when every value is a checksum as xxh64HexOf writes it. */
export function areXxh64Hexes(values: readonly unknown[]): values is readonly string[] {
  return values.every((value) => typeof value === 'string' && XXH64_HEX.test(value));
}

/** The values of 16-digit hex checksums (checked with areXxh64Hexes). */
export function parseXxh64Hexes(hexes: readonly string[]): BigUint64Array {
  return BigUint64Array.from(hexes, (hex) => BigInt(`0x${hex}`));
}

/** True when a trailer's piece checksums are as many as a block of `sizeBytes` has pieces. */
export function piecesFit(sizeBytes: number, pieceBytes: unknown, pieceCount: number): boolean {
  return (
    typeof pieceBytes === 'number' &&
    Number.isSafeInteger(pieceBytes) &&
    pieceBytes > 0 &&
    pieceCount === Math.ceil(sizeBytes / pieceBytes)
  );
}

/** True when every value is a CRC-32 (an unsigned 32-bit integer). */
export function areCrc32s(values: readonly unknown[]): boolean {
  return values.every(
    (value) => Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= 0xffffffff,
  );
}
