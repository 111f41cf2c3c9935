import { Agent, request } from 'undici';
import { CliError, type RefusedObject } from './errors.ts';
import { ExitCode } from './exit-codes.ts';

interface Problem {
  code?: string;
  detail?: string;
  object?: RefusedObject;
}

/** Talks to the embedded daemon's API on its Unix socket. */
export class DaemonClient {
  readonly #dispatcher: Agent;

  constructor(socketPath: string) {
    this.#dispatcher = new Agent({ connect: { socketPath } });
  }

  async call<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<T> {
    const response = await this.#send(method, path, body, signal);
    const text = await response.body.text();
    if (response.statusCode >= 400) {
      let problem: Problem;
      try {
        problem = JSON.parse(text) as Problem;
      } catch {
        problem = { detail: text };
      }
      const exitCode =
        response.statusCode === 404
          ? ExitCode.notFound
          : response.statusCode === 422 || response.statusCode === 413
            ? ExitCode.invalid
            : ExitCode.failed;
      throw new CliError(
        'ERR_DAEMON_REQUEST',
        problem.detail ?? `the daemon answered ${response.statusCode}`,
        exitCode,
        problem.object === undefined ? {} : { refusedObject: problem.object },
      );
    }
    return JSON.parse(text) as T;
  }

  /** Streams newline-delimited JSON values until the daemon ends the response or `signal` aborts. */
  async *stream<T>(path: string, signal?: AbortSignal): AsyncGenerator<T> {
    const response = await this.#send('GET', path, undefined, signal);
    if (response.statusCode >= 400)
      throw new CliError('ERR_DAEMON_REQUEST', await response.body.text(), ExitCode.failed);
    let buffered = '';
    for await (const chunk of response.body) {
      buffered += (chunk as Buffer).toString('utf8');
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim() !== '') yield JSON.parse(line) as T;
        newline = buffered.indexOf('\n');
      }
    }
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  async #send(method: string, path: string, body: unknown, signal: AbortSignal | undefined) {
    try {
      return await request(`http://tide${path}`, {
        method: method as 'GET',
        dispatcher: this.#dispatcher,
        ...(body === undefined
          ? {}
          : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED') {
        throw new CliError(
          'ERR_DAEMON_UNAVAILABLE',
          'the Tide control plane is not running: start it with `tide start`',
          ExitCode.unreachable,
          {
            cause: error,
          },
        );
      }
      throw error;
    }
  }
}
