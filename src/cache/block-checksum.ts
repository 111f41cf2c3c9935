import { crc32 } from 'node:zlib';

/**
 * A block's checksums: the CRC-32 of the whole block, and one per piece of `pieceBytes`, so that a
 * reader can hand on the first piece of a block file once that piece is read and checked instead
 * of after reading and checking all 4 MiB (the time to first byte of a warm read).
 */
export interface BlockChecksums {
  crc32: number;
  pieceBytes: number;
  pieceCrc32s: number[];
}

/** 256 KiB: a FUSE read (128 KiB–1 MiB) needs one to four pieces. */
export const PIECE_BYTES = 256 * 1024;

/**
 * The checksums of `data`, in one pass: the whole block's CRC-32 is combined from the pieces'
 * (zlib's crc32_combine), not computed over the bytes a second time.
 */
export function checksumsOf(data: Uint8Array, pieceBytes = PIECE_BYTES): BlockChecksums {
  const pieceCrc32s: number[] = [];
  let whole = 0;
  for (let start = 0; start < data.length; start += pieceBytes) {
    const piece = data.subarray(start, Math.min(start + pieceBytes, data.length));
    const checksum = crc32(piece);
    pieceCrc32s.push(checksum);
    whole = crc32Combine(whole, checksum, piece.length);
  }
  return { crc32: whole, pieceBytes, pieceCrc32s };
}

/** True when `pieceCrc32s` has the right count for a block of `sizeBytes` cut in `pieceBytes`. */
export function piecesFit(sizeBytes: number, pieceBytes: number, pieceCrc32s: readonly number[]): boolean {
  return (
    Number.isSafeInteger(pieceBytes) &&
    pieceBytes > 0 &&
    pieceCrc32s.length === Math.ceil(sizeBytes / pieceBytes) &&
    pieceCrc32s.every((value) => Number.isSafeInteger(value) && value >= 0 && value <= 0xffffffff)
  );
}

/** Operators that append a given number of zero bytes to a CRC, by length (pieces repeat lengths). */
const zeroOperators = new Map<number, Uint32Array>();

/**
 * CRC-32 of the concatenation A‖B from crc(A), crc(B) and B's length: zlib's crc32_combine (the
 * GF(2) matrix method). The operator that appends `len2` zero bytes is built once per length.
 */
export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  if (len2 <= 0) return crc1 >>> 0;
  let operator = zeroOperators.get(len2);
  if (operator === undefined) {
    operator = zeroBytesOperator(len2);
    if (zeroOperators.size < 64) zeroOperators.set(len2, operator);
  }
  return (times(operator, crc1 >>> 0) ^ crc2) >>> 0;
}

/** The matrix that appends `length` zero bytes: the one-zero-bit operator squared and multiplied. */
function zeroBytesOperator(length: number): Uint32Array {
  // One zero bit: the CRC-32 polynomial (reflected) in row 0, a shift below it.
  let power: Uint32Array = new Uint32Array(32);
  power[0] = 0xedb88320;
  for (let n = 1; n < 32; n += 1) power[n] = (1 << (n - 1)) >>> 0;
  // Three squarings: one zero byte.
  for (let i = 0; i < 3; i += 1) power = product(power, power);
  let result: Uint32Array | undefined;
  for (let rest = length; rest > 0; rest = Math.floor(rest / 2)) {
    if (rest % 2 === 1) result = result === undefined ? power : product(power, result);
    if (rest > 1) power = product(power, power);
  }
  return result ?? identity();
}

/** The matrix applying `second` after `first`. */
function product(second: Uint32Array, first: Uint32Array): Uint32Array {
  const out = new Uint32Array(32);
  for (let n = 0; n < 32; n += 1) out[n] = times(second, first[n] as number);
  return out;
}

function identity(): Uint32Array {
  const out = new Uint32Array(32);
  for (let n = 0; n < 32; n += 1) out[n] = (1 << n) >>> 0;
  return out;
}

function times(matrix: Uint32Array, vector: number): number {
  let sum = 0;
  let rest = vector >>> 0;
  for (let i = 0; rest !== 0; i += 1, rest >>>= 1) if ((rest & 1) === 1) sum ^= matrix[i] as number;
  return sum >>> 0;
}
