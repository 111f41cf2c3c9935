/** One child that a directory index page links to. */
export interface IndexLink {
  /** Decoded file or directory name, never containing `/`. */
  name: string;
  directory: boolean;
}

const ANCHOR = /<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))/gi;

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
    if (!seen.has(name)) seen.set(name, { name, directory });
  }
  return [...seen.values()];
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

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, body: string) => {
    if (body.startsWith('#x') || body.startsWith('#X')) return codePoint(parseInt(body.slice(2), 16), whole);
    if (body.startsWith('#')) return codePoint(parseInt(body.slice(1), 10), whole);
    return NAMED_ENTITIES[body.toLowerCase()] ?? whole;
  });
}

function codePoint(value: number, fallback: string): string {
  return Number.isInteger(value) && value >= 0 && value <= 0x10ffff ? String.fromCodePoint(value) : fallback;
}
