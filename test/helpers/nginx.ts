import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ThrottledLink } from './throttled-link.ts';

export interface NginxOptions {
  /** Directory served (read-only) by every server block. */
  root: string;
  /** Adds a server block limited to this many bytes per second per connection (`limit_rate`). */
  rateLimitBytesPerSecond?: number;
  /** Adds a server block without byte ranges (`max_ranges 0`): every ranged GET gets the whole file. */
  noRange?: boolean;
  /** `autoindex` on every block (default true). */
  autoindex?: boolean;
  /** `autoindex_format` (default html). */
  autoindexFormat?: 'html' | 'json' | 'xml';
  /** `autoindex_localtime on`: index pages print local time instead of GMT. */
  autoindexLocaltime?: boolean;
  /** nginx binary; default `nginx` from PATH (Debian's /usr/sbin/nginx). */
  binary?: string;
  /**
   * Serve over this link (its network namespace and address) instead of 127.0.0.1, so that all
   * responses together share the link's bandwidth.
   */
  link?: ThrottledLink;
  /** Listen on this local address instead of 127.0.0.1 (a real test node's bridge, for pods). */
  host?: string;
  /** How long to wait for the ports to open. Default 10 s. */
  startTimeoutMs?: number;
}

/** One line of the access log. */
export interface AccessLogRecord {
  server: 'main' | 'slow' | 'rangeless';
  method: string;
  /** Request target as sent (still percent-encoded). */
  target: string;
  status: number;
  /** Body bytes sent (`$body_bytes_sent`), so the exact origin egress of the data. */
  bodyBytes: number;
  range: string;
}

export interface NginxServer {
  /** `http://127.0.0.1:<port>/` (or the link's address), ranges on. */
  url: string;
  /** The same root through `limit_rate`, when `rateLimitBytesPerSecond` was given. */
  slowUrl?: string;
  /** The same root without range support, when `noRange` was given. */
  rangeLessUrl?: string;
  /** Every access log line so far, of all blocks. */
  accessLog(): Promise<AccessLogRecord[]>;
  /** Body bytes served so far, of all blocks or of one. nginx logs a request when it ends. */
  accessLogBytes(server?: AccessLogRecord['server']): Promise<number>;
  /** Stops nginx and removes its prefix directory; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts Debian's nginx on 127.0.0.1 with its own configuration in a temporary prefix, in the
 * foreground (`daemon off`, `master_process off`: one process, our child, that runs as the calling
 * user and so reads what the caller can read). Call `stop()` in `t.after`.
 */
export async function startNginx(options: NginxOptions): Promise<NginxServer> {
  const prefix = await mkdtemp(join(tmpdir(), 'tide-nginx-'));
  const host = options.link?.remoteAddress ?? options.host ?? '127.0.0.1';
  const ports = {
    main: await freePort(),
    slow: options.rateLimitBytesPerSecond === undefined ? undefined : await freePort(),
    rangeless: options.noRange === true ? await freePort() : undefined,
  };
  const autoindex = options.autoindex === false ? 'off' : 'on';
  const autoindexFormat = options.autoindexFormat ?? 'html';
  const autoindexLocaltime = options.autoindexLocaltime === true ? 'on' : 'off';
  const block = (name: string, port: number, extra: string): string => `
    server {
      listen ${host}:${port};
      server_name ${name};
      root ${JSON.stringify(options.root)};
      autoindex ${autoindex};
      autoindex_format ${autoindexFormat};
      autoindex_localtime ${autoindexLocaltime};
      access_log ${join(prefix, 'access.log')} tide;
      ${extra}
    }`;
  const config = `
daemon off;
master_process off;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 256; }
http {
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path ${join(prefix, 'client_body')};
  proxy_temp_path ${join(prefix, 'proxy')};
  fastcgi_temp_path ${join(prefix, 'fastcgi')};
  uwsgi_temp_path ${join(prefix, 'uwsgi')};
  scgi_temp_path ${join(prefix, 'scgi')};
  log_format tide '$server_name $request_method $status $body_bytes_sent "$http_range" "$request_uri"';
  ${block('main', ports.main, '')}
  ${ports.slow === undefined ? '' : block('slow', ports.slow, `limit_rate ${options.rateLimitBytesPerSecond ?? 0};`)}
  ${ports.rangeless === undefined ? '' : block('rangeless', ports.rangeless, 'max_ranges 0;')}
}
`;
  const configPath = join(prefix, 'nginx.conf');
  await writeFile(configPath, config);
  const argv = [options.binary ?? 'nginx', '-p', prefix, '-c', configPath, '-e', join(prefix, 'error.log')];
  // `ip netns exec` execs nginx in place: the child is nginx itself, and signals reach it.
  const [command = 'nginx', ...args] = options.link?.wrap(argv) ?? argv;
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exited: string | undefined;
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.once('exit', (code, signal) => {
    exited = `nginx exited (${code ?? signal ?? '?'}): ${stderr.trim()}`;
  });
  child.once('error', (error) => {
    exited = `nginx could not run: ${error.message}`;
  });

  // A test process that dies without calling stop() (an uncaught error, process.exit) still takes
  // its nginx with it.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) =>
        child.once('exit', () => {
          resolve();
        }),
      );
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
      }, 5000);
      await gone;
      clearTimeout(timer);
    }
    await rm(prefix, { recursive: true, force: true });
  };

  try {
    for (const port of Object.values(ports)) {
      if (port === undefined) continue;
      await waitForPort(port, {
        host,
        timeoutMs: options.startTimeoutMs ?? 10_000,
        what: 'nginx',
        failed: () => exited,
      });
    }
  } catch (error) {
    const log = await readFile(join(prefix, 'error.log'), 'utf8').catch(() => '');
    await stop();
    throw new Error(`${(error as Error).message}\n${log}`, { cause: error });
  }

  const accessLog = async (): Promise<AccessLogRecord[]> => {
    const text = await readFile(join(prefix, 'access.log'), 'utf8').catch(() => '');
    const records: AccessLogRecord[] = [];
    for (const line of text.split('\n')) {
      const match = /^(\S+) (\S+) (\d+) (\d+) "([^"]*)" "([^"]*)"$/.exec(line);
      if (match === null) continue;
      records.push({
        server: match[1] as AccessLogRecord['server'],
        method: match[2] ?? '',
        status: Number(match[3]),
        bodyBytes: Number(match[4]),
        range: match[5] === '-' ? '' : (match[5] ?? ''),
        target: match[6] ?? '',
      });
    }
    return records;
  };

  return {
    url: `http://${host}:${ports.main}/`,
    ...(ports.slow === undefined ? {} : { slowUrl: `http://${host}:${ports.slow}/` }),
    ...(ports.rangeless === undefined ? {} : { rangeLessUrl: `http://${host}:${ports.rangeless}/` }),
    accessLog,
    accessLogBytes: async (server) =>
      (await accessLog())
        .filter((record) => server === undefined || record.server === server)
        .reduce((sum, record) => sum + record.bodyBytes, 0),
    stop,
  };
}

// ---- ports (also used by s3-server.ts) ----

/**
 * A TCP port free on 127.0.0.1 right now, for servers that cannot report the port they bound
 * (nginx, Go servers). Another process may take it before the server binds it; the helpers that use
 * this fail fast with the server's own error when that happens.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('Cannot find a free port: the probe server had no address'));
      });
    });
  });
}

/** Resolves once `host` (default 127.0.0.1):`port` accepts connections; rejects after `timeoutMs` or when `failed()` says so. */
export async function waitForPort(
  port: number,
  options: { host?: string; timeoutMs: number; what: string; failed?: () => string | undefined },
): Promise<void> {
  const host = options.host ?? '127.0.0.1';
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const failure = options.failed?.();
    if (failure !== undefined) throw new Error(`${options.what} did not start: ${failure}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => {
        resolve(false);
      });
    });
    if (open) return;
    if (Date.now() > deadline) {
      throw new Error(`${options.what} did not listen on ${host}:${port} within ${options.timeoutMs} ms`);
    }
    await sleep(50);
  }
}
