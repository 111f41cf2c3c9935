import { parseAllDocuments, LineCounter } from 'yaml';
import { ManifestError, type FieldError } from './errors.ts';
import { validateDocument } from './validate.ts';
import { formatSize, LIMITS } from './limits.ts';
import type { KindInfo } from './registry.ts';

/** A document that passed validation, with where it came from. */
export interface ManifestResource {
  info: KindInfo;
  /** The object as written, with `metadata.namespace` defaulted to `default`. */
  object: { apiVersion: string; kind: string; metadata: { name: string; namespace: string } } & Record<
    string,
    unknown
  >;
  source: string;
  /** 1-based index of the document in its file. */
  documentIndex: number;
}

/**
 * Parses and validates every document of a YAML (or JSON) stream. Nothing is returned unless every
 * document is valid: the error lists each problem on its own line as
 * `file: document N (Kind "name"): /field/path: message`.
 *
 * @throws {ManifestError} ERR_MANIFEST_INVALID
 */
export function parseManifests(text: string, source: string): ManifestResource[] {
  const size = Buffer.byteLength(text);
  if (size > LIMITS.manifestBytes) {
    throw new ManifestError('ERR_MANIFEST_INVALID', [
      `${source}: takes ${formatSize(size)}; manifests over ${formatSize(LIMITS.manifestBytes)} are refused`,
    ]);
  }
  const lineCounter = new LineCounter();
  let documents: ReturnType<typeof parseAllDocuments>;
  try {
    documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  } catch (error) {
    // The parser recurses per nesting level: a document nested thousands deep overflows the stack.
    throw new ManifestError(
      'ERR_MANIFEST_INVALID',
      [`${source}: cannot be parsed: ${describeFailure(error)}`],
      {
        cause: error,
      },
    );
  }
  const problems: string[] = [];
  const resources: ManifestResource[] = [];
  const seen = new Map<string, number>();
  const list = Array.isArray(documents) ? documents : [];
  if (!Array.isArray(documents)) problems.push(`${source}: is empty or not YAML`);
  list.forEach((document, position) => {
    const documentIndex = position + 1;
    const where = `${source}: document ${documentIndex}`;
    const firstError = document.errors[0];
    if (firstError !== undefined) {
      const at = lineCounter.linePos(firstError.pos[0]);
      const reason = /call stack/i.test(firstError.message)
        ? 'it is nested too deeply'
        : firstLine(firstError.message);
      problems.push(`${where}: YAML syntax error at line ${at.line}, column ${at.col}: ${reason}`);
      return;
    }
    let value: unknown;
    try {
      value = document.toJS({ maxAliasCount: LIMITS.yamlAliases });
    } catch (error) {
      problems.push(`${where}: cannot be read: ${describeFailure(error)}`);
      return;
    }
    if (value === null || value === undefined) return; // an empty document between separators
    const result = validateDocument(value);
    const label = describeDocument(value);
    if (!result.ok) {
      for (const error of result.errors) problems.push(formatProblem(`${where}${label}`, error));
      return;
    }
    const object = value as ManifestResource['object'];
    object.metadata.namespace ||= 'default';
    const key = `${object.kind}/${object.metadata.namespace}/${object.metadata.name}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      problems.push(
        formatProblem(`${where}${label}`, {
          path: '/metadata/name',
          message: `duplicates document ${earlier} (same kind, namespace and name)`,
        }),
      );
      return;
    }
    seen.set(key, documentIndex);
    resources.push({ info: result.info, object, source, documentIndex });
  });
  if (problems.length === 0 && resources.length === 0) problems.push(`${source}: contains no resources`);
  if (problems.length > 0) throw new ManifestError('ERR_MANIFEST_INVALID', problems);
  return resources;
}

function describeDocument(value: unknown): string {
  if (typeof value !== 'object' || value === null) return '';
  const { kind, metadata } = value as { kind?: unknown; metadata?: { name?: unknown } };
  const name = typeof metadata === 'object' ? metadata.name : undefined;
  if (typeof kind !== 'string') return '';
  return typeof name === 'string' ? ` (${kind} "${name}")` : ` (${kind})`;
}

function formatProblem(where: string, error: FieldError): string {
  return `${where}: ${error.path === '' ? '(document)' : error.path}: ${error.message}`;
}

function describeFailure(error: unknown): string {
  if (error instanceof ReferenceError && /alias/i.test(error.message)) {
    return `its aliases expand too far (more than ${LIMITS.yamlAliases} uses of an anchor, as in an alias bomb)`;
  }
  if (error instanceof RangeError) return 'it is nested too deeply';
  return firstLine(error instanceof Error ? error.message : String(error));
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}
