import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, waitForPort } from '../test/helpers/nginx.ts';
import { startS3Server, type S3Server } from '../test/helpers/s3-server.ts';
import { killGroup } from './exec.ts';

export type OriginKind = 'http' | 's3';

/** One request as nginx logged it when it ended. */
export interface OriginRecord {
  origin: OriginKind;
  method: string;
  status: number;
  /** `$body_bytes_sent`: the data the origin sent. */
  bodyBytes: number;
  /** `$bytes_sent`: body and headers, what left the origin on the wire. */
  wireBytes: number;
  /** The data-set-relative path (decoded, without query string or bucket). */
  path: string;
}

export interface S3Access {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface Origin {
  /** The data set over HTTP (`autoindex` pages, ranges), through `limit_rate`. Ends with `/`. */
  httpUrl: string;
  /** The data set as an S3 bucket (versitygw behind an nginx proxy with the same `limit_rate`). */
  s3: S3Access | undefined;
  /** Why there is no S3 origin. */
  s3Unavailable: string | undefined;
  nginxPid: number;
  /** Creates a bucket on the S3 server (directly, not through the proxy). */
  createBucket(name: string): Promise<void>;
  /** Every request logged so far. nginx logs a request when its connection is done with it. */
  records(): Promise<OriginRecord[]>;
  stop(): Promise<void>;
}

export interface OriginOptions {
  /** The data set directory. */
  root: string;
  /** Scratch directory for nginx's prefix and the S3 server's bucket directory. */
  workDir: string;
  rateBytesPerSecond: number;
}

const BUCKET = 'bench';

/**
 * Starts the emulated remote store: Debian's nginx on 127.0.0.1 serving the data set over HTTP and
 * proxying S3 to versitygw, both behind a per-connection `limit_rate`, with an access log that counts
 * every byte the origin sends. versitygw serves the data set in place (its bucket directory is a
 * symbolic link to it).
 */
export async function startOrigin(options: OriginOptions): Promise<Origin> {
  const prefix = join(options.workDir, 'nginx');
  await rm(prefix, { recursive: true, force: true });
  await mkdir(prefix, { recursive: true });

  let s3: S3Server | undefined;
  let s3Unavailable: string | undefined;
  const s3Root = join(options.workDir, 's3-root');
  try {
    await rm(s3Root, { recursive: true, force: true });
    await mkdir(s3Root, { recursive: true });
    await symlink(options.root, join(s3Root, BUCKET));
    s3 = await startS3Server({
      dataDir: s3Root,
      accessKeyId: 'tide-bench',
      secretAccessKey: 'tide-bench-secret',
    });
  } catch (error) {
    s3Unavailable = (error as Error).message.split('\n')[0];
  }

  const httpPort = await freePort();
  const s3Port = await freePort();
  const accessLog = join(prefix, 'access.log');
  const s3Upstream = s3?.endpoint.replace('http://', '') ?? '127.0.0.1:9';
  const config = `
daemon off;
master_process off;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 1024; }
http {
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  client_max_body_size 0;
  client_body_temp_path ${join(prefix, 'client_body')};
  proxy_temp_path ${join(prefix, 'proxy')};
  fastcgi_temp_path ${join(prefix, 'fastcgi')};
  uwsgi_temp_path ${join(prefix, 'uwsgi')};
  scgi_temp_path ${join(prefix, 'scgi')};
  log_format bench '$server_name $request_method $status $body_bytes_sent $bytes_sent "$request_uri"';
  access_log ${accessLog} bench;
  limit_rate ${options.rateBytesPerSecond};
  server {
    listen 127.0.0.1:${httpPort};
    server_name http;
    root ${JSON.stringify(options.root)};
    autoindex on;
    autoindex_exact_size on;
  }
  server {
    listen 127.0.0.1:${s3Port};
    server_name s3;
    location / {
      proxy_pass http://${s3Upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # SigV4 signs the Host header: pass the client's, port included.
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
    }
  }
}
`;
  const configPath = join(prefix, 'nginx.conf');
  await writeFile(configPath, config);
  const child = spawn('nginx', ['-p', prefix, '-c', configPath, '-e', join(prefix, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let exited: string | undefined;
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.once('exit', (code, signal) => {
    exited = `nginx exited (${code ?? signal ?? '?'}): ${stderr.trim()}`;
  });
  child.once('error', (error) => {
    exited = `nginx could not run: ${error.message}`;
  });

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => {
        child.once('exit', () => {
          resolve();
        });
      });
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        killGroup(child);
      }, 5000);
      await gone;
      clearTimeout(timer);
    }
    await s3?.stop();
    await rm(s3Root, { recursive: true, force: true });
  };
  try {
    for (const port of [httpPort, s3Port]) {
      await waitForPort(port, { timeoutMs: 10_000, what: 'nginx', failed: () => exited });
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const records = async (): Promise<OriginRecord[]> => {
    const text = await readFile(accessLog, 'utf8').catch(() => '');
    const result: OriginRecord[] = [];
    for (const line of text.split('\n')) {
      const match = /^(\S+) (\S+) (\d+) (\d+) (\d+) "([^"]*)"$/.exec(line);
      if (match === null) continue;
      const origin = match[1] === 's3' ? 's3' : 'http';
      let path = (match[6] ?? '').split('?')[0] ?? '';
      try {
        path = decodeURIComponent(path);
      } catch {
        // keep it encoded
      }
      path = path.replace(/^\/+/, '');
      if (origin === 's3') path = path.startsWith(`${BUCKET}/`) ? path.slice(BUCKET.length + 1) : '';
      result.push({
        origin,
        method: match[2] ?? '',
        status: Number(match[3]),
        bodyBytes: Number(match[4]),
        wireBytes: Number(match[5]),
        path,
      });
    }
    return result;
  };

  return {
    httpUrl: `http://127.0.0.1:${httpPort}/`,
    s3:
      s3 === undefined
        ? undefined
        : {
            endpoint: `http://127.0.0.1:${s3Port}`,
            bucket: BUCKET,
            region: s3.region,
            accessKeyId: s3.accessKeyId,
            secretAccessKey: s3.secretAccessKey,
          },
    s3Unavailable,
    nginxPid: child.pid ?? 0,
    createBucket: async (name) => {
      if (s3 === undefined) throw new Error(`Cannot create bucket ${name}: no S3 server`);
      await s3.createBucket(name);
    },
    records,
    stop,
  };
}

/** Body bytes the origin sent for `path` in `records`. */
export function bytesFor(records: readonly OriginRecord[], path: string): number {
  return records.filter((record) => record.path === path).reduce((sum, record) => sum + record.bodyBytes, 0);
}
