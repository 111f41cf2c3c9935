/**
 * HTTP/1.1 message framing (RFC 9112): the request head written, the response head parsed, and
 * how a response body ends — by Content-Length, by chunks, or by the close of the connection.
 * Pure functions of bytes and text; the connection (connection.ts) drives them.
 */
import type { Http1Request } from './types.ts';

export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; remaining: number }
  | { kind: 'chunked'; state: ChunkedState }
  | { kind: 'close' };

export interface ChunkedState {
  /** Bytes left of the current chunk's data; -1 while reading a size line. */
  remaining: number;
  /** The CRLF after chunk data still to skip. */
  skipCrlf: number;
  /** Partial size line, or the trailer section once the last chunk was seen. */
  line: string;
  inTrailer: boolean;
}

/**
 * The head of a GET or HEAD request to `origin`, with `host` added when the caller gave none.
 * @throws {TypeError} a header value with a line break (it would split the head)
 */
export function requestHead(origin: URL, request: Http1Request): string {
  let head = `${request.method} ${request.path} HTTP/1.1\r\n`;
  if (request.headers.host === undefined) head += `host: ${origin.host}\r\n`;
  for (const [name, value] of Object.entries(request.headers)) {
    if (/[\r\n]/.test(value)) throw new TypeError(`Cannot send header ${name} with a line break in it`);
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}

export interface ParsedHead {
  statusCode: number;
  headers: Record<string, string>;
  keepAlive: boolean;
}

export function parseHead(text: string): ParsedHead | undefined {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (status === null) return undefined;
  const headers: Record<string, string> = {};
  for (let index = 1; index < lines.length; index++) {
    const line = lines[index] ?? '';
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = headers[name];
    headers[name] = previous === undefined ? value : `${previous}, ${value}`;
  }
  const connection = (headers.connection ?? '').toLowerCase();
  const keepAlive = status[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
  return { statusCode: Number(status[2]), headers, keepAlive };
}

/** How the body of an answer ends (RFC 9112 §6.3). */
export function framingOf(method: string, statusCode: number, headers: Record<string, string>): BodyFraming {
  if (method === 'HEAD' || statusCode === 204 || statusCode === 304) return { kind: 'none' };
  const transferEncoding = headers['transfer-encoding'];
  if (transferEncoding !== undefined) {
    return /(?:^|,)\s*chunked\s*$/i.test(transferEncoding)
      ? { kind: 'chunked', state: { remaining: -1, skipCrlf: 0, line: '', inTrailer: false } }
      : { kind: 'close' };
  }
  const length = headers['content-length'];
  if (length !== undefined) {
    const remaining = Number(length);
    if (!/^\d+$/.test(length) || !Number.isSafeInteger(remaining)) return { kind: 'close' };
    return { kind: 'length', remaining };
  }
  return { kind: 'close' };
}

/** Decodes what `bytes` holds of a chunked body; undefined when it is malformed. */
export function decodeChunked(
  state: ChunkedState,
  bytes: Buffer,
): { chunks: Buffer[]; done: boolean } | undefined {
  const ranges: number[] = [];
  const result = decodeChunkedRanges(state, bytes, ranges);
  if (result === undefined) return undefined;
  const chunks: Buffer[] = [];
  for (let index = 0; index < ranges.length; index += 2) {
    chunks.push(Buffer.from(bytes.subarray(ranges[index], ranges[index + 1])));
  }
  return { chunks, done: result === 'done' };
}

/**
 * Decodes what `bytes` holds of a chunked body (RFC 9112 §7.1): appends the `[from, to)` offsets of
 * its data in `bytes` to `ranges`. 'done' after the last chunk and its trailer section, undefined
 * when it is malformed.
 */
export function decodeChunkedRanges(
  state: ChunkedState,
  bytes: Buffer,
  ranges: number[],
): 'more' | 'done' | undefined {
  let at = 0;
  while (at < bytes.length) {
    if (state.skipCrlf > 0) {
      const skip = Math.min(state.skipCrlf, bytes.length - at);
      state.skipCrlf -= skip;
      at += skip;
      continue;
    }
    if (state.remaining > 0) {
      const take = Math.min(state.remaining, bytes.length - at);
      ranges.push(at, at + take);
      state.remaining -= take;
      at += take;
      if (state.remaining === 0) {
        state.remaining = -1;
        state.skipCrlf = 2;
      }
      continue;
    }
    const newline = bytes.indexOf(0x0a, at);
    if (newline === -1) {
      state.line += bytes.toString('latin1', at);
      if (state.line.length > 4096) return undefined;
      return 'more';
    }
    const line = (state.line + bytes.toString('latin1', at, newline)).replace(/\r$/, '');
    state.line = '';
    at = newline + 1;
    if (state.inTrailer) {
      if (line === '') return 'done';
      continue;
    }
    const size = /^([0-9a-fA-F]+)(?:;.*)?$/.exec(line.trim());
    if (size?.[1] === undefined) return undefined;
    const length = parseInt(size[1], 16);
    if (!Number.isSafeInteger(length)) return undefined;
    if (length === 0) state.inTrailer = true;
    else state.remaining = length;
  }
  return 'more';
}
