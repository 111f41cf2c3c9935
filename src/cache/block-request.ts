import type { Dispatcher } from 'undici';

/** Longest non-block answer kept (problem details, a block location): they are small. */
const MAX_TEXT_BYTES = 64 * 1024;

export interface BlockAnswer {
  statusCode: number;
  contentType: string | undefined;
  /** For a 200 `application/octet-stream` answer: the bytes written to the buffer. */
  bytes: number;
  /** Any other answer's body as text. */
  text: string;
}

/**
 * GETs a block from a worker with undici's dispatch API, copying each chunk of a block answer
 * straight into `buffer` as it comes off the socket and reporting progress. Against `request()`
 * this spares a Readable per answer, the concatenation of chunks it buffers and the promise per
 * chunk of async iteration: on a 2-core machine the block path is CPU-bound, so that is throughput.
 *
 * Rejects when the connection fails before the answer is complete, including a chunked answer cut
 * before its last chunk (a worker whose origin fetch failed), or when a block answer would not fit
 * in `buffer` or falls short of its Content-Length.
 */
export function requestBlock(
  dispatcher: Dispatcher,
  request: { path: string; headers: Record<string, string> },
  buffer: Buffer,
  progress: (arrived: number) => void,
): Promise<BlockAnswer> {
  return new Promise((resolve, reject) => {
    const answer: BlockAnswer = { statusCode: 0, contentType: undefined, bytes: 0, text: '' };
    let block = false;
    let limit = buffer.length;
    let announced: number | undefined;
    const text: Buffer[] = [];
    let textBytes = 0;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {
        // Nothing to set up: required by undici all the same.
      },
      onResponseStart(controller, statusCode, headers) {
        answer.statusCode = statusCode;
        const type = headers['content-type'];
        answer.contentType = Array.isArray(type) ? type[0] : type;
        block = statusCode === 200 && answer.contentType === 'application/octet-stream';
        const length = headers['content-length'];
        if (block && typeof length === 'string') {
          announced = Number(length);
          if (!Number.isSafeInteger(announced) || announced < 0 || announced > buffer.length) {
            controller.abort(new RangeError(`The worker announced a block of ${length} bytes`));
            return;
          }
          limit = announced;
        }
      },
      onResponseData(controller, chunk) {
        if (!block) {
          if (textBytes + chunk.length <= MAX_TEXT_BYTES) text.push(Buffer.from(chunk));
          textBytes += chunk.length;
          return;
        }
        if (answer.bytes + chunk.length > limit) {
          controller.abort(new RangeError('The worker sent more than a block'));
          return;
        }
        // The chunk is a view of the socket's read buffer: copied before returning.
        buffer.set(chunk, answer.bytes);
        answer.bytes += chunk.length;
        progress(answer.bytes);
      },
      onResponseEnd() {
        if (block && announced !== undefined && answer.bytes !== announced) {
          reject(new RangeError(`The worker sent ${answer.bytes} of ${announced} bytes`));
          return;
        }
        answer.text = Buffer.concat(text).toString('utf8');
        resolve(answer);
      },
      onResponseError(_controller, error) {
        reject(error);
      },
    };
    try {
      dispatcher.dispatch({ path: request.path, method: 'GET', headers: request.headers }, handler);
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}
