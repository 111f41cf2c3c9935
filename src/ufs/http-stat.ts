/** The web connector's stat, and what a response's headers say about the size of its file. */
import { discard, type HttpOrigin, type Response } from './http-origin.ts';
import { fileEntry } from './http-version.ts';
import type { UfsEntry } from './types.ts';

/**
 * One attempt at a stat (HttpOrigin.retrying runs it): HEAD, or a one-byte GET where HEAD is
 * refused; a path that redirects to itself with a trailing slash, or only exists with one, is a
 * directory.
 */
export async function statOnce(origin: HttpOrigin, relative: string, signal: AbortSignal): Promise<UfsEntry> {
  const what = `stat "${relative}" at ${origin.description}`;
  if (relative === '') {
    const response = await probe(origin, origin.base, signal);
    if (response.statusCode >= 200 && response.statusCode < 300) return directoryEntry('');
    throw origin.statusError(response, what);
  }
  const response = await probe(origin, origin.fileUrl(relative), signal);
  if (response.statusCode === 404 || response.statusCode === 410) {
    // Some servers know a directory only by its trailing slash.
    const asDirectory = await probe(origin, origin.dirUrl(relative), signal);
    if (asDirectory.statusCode >= 200 && asDirectory.statusCode < 300) return directoryEntry(relative);
    throw origin.statusError(response, what);
  }
  if (response.statusCode === 416) return fileEntry(relative, response.headers, 0);
  if (response.statusCode < 200 || response.statusCode >= 300) throw origin.statusError(response, what);
  if (response.url.pathname.endsWith('/')) return directoryEntry(relative);
  return fileEntry(relative, response.headers, sizeOf(response));
}

/** HEAD, or a one-byte GET where the server refuses HEAD. Bodies are drained. */
async function probe(origin: HttpOrigin, url: URL, signal: AbortSignal): Promise<Response> {
  const head = await origin.request({ method: 'HEAD', url, signal });
  await discard(head);
  if (head.statusCode !== 405 && head.statusCode !== 501) return head;
  const get = await origin.request({ method: 'GET', url, signal, headers: { range: 'bytes=0-0' } });
  // Reading on would download a range-less file whole; the headers say all that is needed.
  get.body.destroy();
  return get;
}

export function directoryEntry(path: string): UfsEntry {
  return { path, type: 'directory', sizeBytes: 0, mtimeMs: 0, version: '' };
}

/** Size of the file a response is about: the total of Content-Range, else Content-Length. */
export function sizeOf(response: Response): number {
  const contentRange = parseContentRange(response.headers['content-range']);
  if (contentRange !== undefined) return contentRange.total;
  const unsatisfied = /^bytes \*\/(\d+)$/.exec(response.headers['content-range'] ?? '');
  if (unsatisfied?.[1] !== undefined) return Number(unsatisfied[1]);
  const length = Number(response.headers['content-length']);
  return Number.isSafeInteger(length) && length >= 0 ? length : 0;
}

/** `bytes 0-99/1234` (RFC 9110 §14.4). */
export function parseContentRange(
  value: string | undefined,
): { start: number; end: number; total: number } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec((value ?? '').trim());
  if (match === null) return undefined;
  return { start: Number(match[1]), end: Number(match[2]), total: Number(match[3]) };
}
