import { KubeResponseError, statusToError } from './errors.ts';
import type { KubeObject, Status, WatchEvent } from './types.ts';

const EVENT_TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

/**
 * Turns the body of a watch response (newline-delimited JSON `{ type, object }`, see the
 * API concepts page "Efficient detection of changes") into events. An ERROR event is thrown:
 * its object is a Status, and 410 / reason Expired becomes `KubeGoneError`.
 */
export async function* parseWatchStream<T extends KubeObject>(
  chunks: AsyncIterable<string | Buffer>,
): AsyncGenerator<WatchEvent<T>, void, undefined> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of chunks) {
    buffered += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line !== '') yield toEvent<T>(line);
    }
  }
  buffered += decoder.decode();
  if (buffered.trim() !== '') yield toEvent<T>(buffered.trim());
}

function toEvent<T extends KubeObject>(line: string): WatchEvent<T> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    throw new KubeResponseError(`Cannot parse watch event as JSON: ${line.slice(0, 200)}`, 200, {
      cause: error,
    });
  }
  const event = parsed as { type?: unknown; object?: unknown };
  if (
    typeof event.type !== 'string' ||
    !EVENT_TYPES.has(event.type) ||
    typeof event.object !== 'object' ||
    event.object === null
  ) {
    throw new KubeResponseError(
      `Cannot use watch event as it has no known type or no object: ${line.slice(0, 200)}`,
      200,
    );
  }
  if (event.type === 'ERROR') {
    const status = event.object as Status;
    throw statusToError(status, status.code ?? 500);
  }
  return { type: event.type as WatchEvent['type'], object: event.object as T };
}
