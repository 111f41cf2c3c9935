import { decodeEntities, type IndexLink } from './html-index.ts';

/**
 * The children of an nginx `autoindex_format json` page:
 * `[{ "name": "a b", "type": "file", "mtime": "Wed, 06 Mar 2024 09:13:42 GMT", "size": 612 }, …]`.
 * Names are raw (not URL-encoded), times GMT to the second, sizes exact. Undefined when the body is
 * not such a list (some other JSON document at a directory's URL).
 */
export function parseAutoindexJson(text: string): IndexLink[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  const links: IndexLink[] = [];
  for (const item of parsed as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined;
    const { name, type, mtime, size } = item as Record<string, unknown>;
    if (typeof name !== 'string' || typeof type !== 'string') return undefined;
    const link = linkOf(
      name,
      type === 'directory',
      typeof mtime === 'string' ? Date.parse(mtime) : NaN,
      size,
    );
    if (link !== undefined) links.push(link);
  }
  return links;
}

const XML_ENTRY = /<(directory|file|other)\b([^>]*)>([^<]*)<\/\1>/g;
const XML_ATTRIBUTE = /\b(mtime|size)="([^"]*)"/g;

/**
 * The children of an nginx `autoindex_format xml` page:
 * `<list><directory mtime="2024-03-06T09:13:42Z">d</directory><file mtime="…" size="612">f</file></list>`.
 * Undefined when the body is not such a list.
 */
export function parseAutoindexXml(text: string): IndexLink[] | undefined {
  if (!/<list\b/.test(text)) return undefined;
  const links: IndexLink[] = [];
  for (const [, kind, attributes, body] of text.matchAll(XML_ENTRY)) {
    const values = new Map<string, string>();
    for (const [, key, value] of (attributes ?? '').matchAll(XML_ATTRIBUTE))
      values.set(key ?? '', value ?? '');
    const size = values.get('size');
    const link = linkOf(
      decodeEntities(body ?? ''),
      kind === 'directory',
      Date.parse(values.get('mtime') ?? ''),
      size === undefined ? undefined : Number(size),
    );
    if (link !== undefined) links.push(link);
  }
  return links;
}

function linkOf(name: string, directory: boolean, mtimeMs: number, size: unknown): IndexLink | undefined {
  if (name === '' || name === '.' || name === '..' || name.includes('/')) return undefined;
  const link: IndexLink = { name, directory };
  if (!Number.isNaN(mtimeMs)) link.mtimeMs = mtimeMs;
  if (!directory && typeof size === 'number' && Number.isSafeInteger(size) && size >= 0)
    link.sizeBytes = size;
  return link;
}
