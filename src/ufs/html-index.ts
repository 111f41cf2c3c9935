/** One child that a directory index page links to. */
export interface IndexLink {
  /** Decoded file or directory name, never containing `/`. */
  name: string;
  directory: boolean;
  /** Size in bytes when the page prints it exactly (nginx's default); absent when rounded ("1.2K"). */
  sizeBytes?: number;
  /**
   * Modification time the page prints, read as UTC, milliseconds since the epoch (minute precision
   * for HTML pages). Pages may print local time: the connector checks this against a HEAD.
   */
  mtimeMs?: number;
}

const ANCHOR = /<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))/gi;
/** What follows a link on its row is looked at up to this many characters. */
const ROW_TAIL_CHARS = 512;
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
/**
 * The date and size columns after a link: nginx `06-Mar-2024 09:13  1234`, Apache 2.4
 * `2024-03-06 09:13  1.2K`, lighttpd `2024-Mar-06 09:13:42  1.2K`; a size is digits (exact),
 * digits with a unit (rounded) or `-` (a directory).
 */
const DATE_AND_SIZE =
  /(?:^|\s)(?:(\d{1,2})-([A-Za-z]{3})-(\d{4})|(\d{4})-(\d{2}|[A-Za-z]{3})-(\d{2}))\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+(\d+(?:\.\d+)?\s?[KMGTPE]?i?B?|-)(?:\s|$)/;

/**
 * The direct children an HTML directory index links to: nginx `autoindex`, Apache `mod_autoindex`
 * (plain and fancy/table) or any page that is a list of links. A link counts when, resolved against
 * the page's own URL, it stays on the same origin, has no query (Apache's `?C=N;O=D` sort links),
 * and names exactly one path segment below the directory; a trailing `/` marks a directory. Parent
 * links (`../`, Apache's absolute "Parent Directory"), deeper links and off-site links drop out by
 * that rule rather than by matching their text.
 */
export function parseIndexLinks(html: string, directoryUrl: URL): IndexLink[] {
  const base = decodedPath(
    directoryUrl.pathname.endsWith('/') ? directoryUrl.pathname : `${directoryUrl.pathname}/`,
  );
  if (base === undefined) return [];
  const seen = new Map<string, IndexLink>();
  for (const match of html.matchAll(ANCHOR)) {
    const href = decodeEntities(match[1] ?? match[2] ?? match[3] ?? '').trim();
    if (href === '' || href.startsWith('#') || href.startsWith('?')) continue;
    let target: URL;
    try {
      target = new URL(href, directoryUrl);
    } catch {
      continue;
    }
    if (target.origin !== directoryUrl.origin || target.search !== '') continue;
    const path = decodedPath(target.pathname);
    if (path?.startsWith(base) !== true) continue;
    const rest = path.slice(base.length);
    const directory = rest.endsWith('/');
    const name = directory ? rest.slice(0, -1) : rest;
    if (name === '' || name === '.' || name === '..' || name.includes('/')) continue;
    if (!seen.has(name)) seen.set(name, { name, directory, ...rowDetails(html, match.index) });
  }
  return [...seen.values()];
}

/** Exact size and printed time from the text after the link that starts at `anchorAt`, if any. */
function rowDetails(html: string, anchorAt: number): Pick<IndexLink, 'sizeBytes' | 'mtimeMs'> {
  const lower = html.indexOf('</a>', anchorAt);
  const upper = html.indexOf('</A>', anchorAt);
  const close = lower < 0 ? upper : upper < 0 ? lower : Math.min(lower, upper);
  if (close < 0) return {};
  let tail = html.slice(close + 4, close + 4 + ROW_TAIL_CHARS);
  for (const stop of ['\n', '<a ', '<A ', '</tr>', '</TR>']) {
    const at = tail.indexOf(stop);
    if (at >= 0) tail = tail.slice(0, at);
  }
  const text = decodeEntities(tail.replace(/<[^>]*>/g, ' ')).replace(/\u00a0/g, ' ');
  const match = DATE_AND_SIZE.exec(text);
  if (match === null) return {};
  const [, day1, month1, year1, year2, month2, day2, hours, minutes, seconds, size] = match;
  const month = monthIndex(month1 ?? month2 ?? '');
  const mtimeMs = Date.UTC(
    Number(year1 ?? year2),
    month,
    Number(day1 ?? day2),
    Number(hours),
    Number(minutes),
    Number(seconds ?? 0),
  );
  const details: Pick<IndexLink, 'sizeBytes' | 'mtimeMs'> = {};
  if (month >= 0 && Number.isFinite(mtimeMs)) details.mtimeMs = mtimeMs;
  if (size !== undefined && /^\d+$/.test(size.trim())) details.sizeBytes = Number(size.trim());
  return details;
}

function monthIndex(text: string): number {
  if (/^\d+$/.test(text)) return Number(text) - 1;
  return MONTHS.indexOf(text.toLowerCase());
}

/** Decodes each segment, or undefined when a segment is malformed or hides a `/` (`%2F`). */
function decodedPath(pathname: string): string | undefined {
  const segments: string[] = [];
  for (const segment of pathname.split('/')) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return undefined;
    }
    if (decoded.includes('/')) return undefined;
    segments.push(decoded);
  }
  return segments.join('/');
}

const NAMED_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
};

/** Decodes HTML character references (named ones of the few kinds index pages use). */
export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, body: string) => {
    if (body.startsWith('#x') || body.startsWith('#X')) return codePoint(parseInt(body.slice(2), 16), whole);
    if (body.startsWith('#')) return codePoint(parseInt(body.slice(1), 10), whole);
    return NAMED_ENTITIES[body.toLowerCase()] ?? whole;
  });
}

function codePoint(value: number, fallback: string): string {
  return Number.isInteger(value) && value >= 0 && value <= 0x10ffff ? String.fromCodePoint(value) : fallback;
}
