import { spawn } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { access, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SecretValue } from '../../src/lib/index.ts';
import { freePort, waitForPort } from './nginx.ts';

/** The pinned versitygw that scripts/test-deps.d/30-s3-server.sh installs. */
export const VERSITYGW_VERSION = 'v1.8.0';

export interface S3ServerOptions {
  /** Buckets to create before returning. */
  buckets?: string[];
  /** Default `tide-test-access`. */
  accessKeyId?: string;
  /** Default `tide-test-secret-key`. */
  secretAccessKey?: string;
  /** Default `us-east-1`. */
  region?: string;
  /** Directory the gateway serves: `<dataDir>/<bucket>/<key>`. Default: a temporary one, removed by stop(). */
  dataDir?: string;
  /** The versitygw binary. Default `$TIDE_VERSITYGW`, else the one 30-s3-server.sh installs. */
  binary?: string;
  /** How long to wait for the port to open. Default 15 s. */
  startTimeoutMs?: number;
  /**
   * Put a byte-counting TCP relay in front of the server (`endpoint` is then the relay) so that
   * `bytesServed()` tells the origin's egress; versitygw's own access log records no byte counts.
   * `client` (set-up traffic) bypasses the relay. Costs CPU per byte: leave it off for throughput
   * benchmarks. Default false.
   */
  countBytes?: boolean;
  /**
   * The address to listen on; default 127.0.0.1. Pods of a test cluster's real nodes reach
   * `cluster.podReachableIp`. Not with `countBytes` (the relay listens on loopback).
   */
  host?: string;
}

export interface S3Server {
  /** `http://<host>:<port>`: path-style addressing only. */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Where the objects are, one file per key: useful to change an object behind the server's back. */
  dataDir: string;
  /** An SDK client with the server's credentials, for test set-up. */
  client: S3Client;
  /** Response bytes (headers included) sent through `endpoint` so far; 0 without `countBytes`. */
  bytesServed(): number;
  createBucket(name: string): Promise<void>;
  putObject(bucket: string, key: string, body: string | Uint8Array): Promise<void>;
  /**
   * Mount options and secrets for an `s3://` mount of this server, as a Dataset would resolve them
   * (`aws.accessKeyId`/`aws.secretKey` as secrets, endpoint, region and path style as options).
   */
  mountConfig(mountPoint: string): {
    mountPoint: string;
    options: Record<string, string>;
    secrets: Record<string, SecretValue>;
  };
  /** Stops the server and removes a temporary data directory; safe to call twice. */
  stop(): Promise<void>;
}

/** Where the pinned versitygw is installed, or the override. */
export function versitygwPath(): string {
  const peers = process.env.TIDE_PEERS_DIR ?? join(homedir(), '.cache', 'tide-peers');
  return process.env.TIDE_VERSITYGW ?? join(peers, `versitygw-${VERSITYGW_VERSION}`, 'versitygw');
}

/**
 * Starts an S3-compatible server on 127.0.0.1 (or `host`): versitygw (Apache-2.0) serving a POSIX directory,
 * with one root account. It signs and checks SigV4, pages ListObjectsV2, serves ranges and honours
 * If-Match. Call `stop()` in `t.after`.
 */
export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const binary = options.binary ?? versitygwPath();
  try {
    await access(binary);
  } catch {
    throw new Error(
      `Cannot start the S3 server: ${binary} is missing; run scripts/test-deps.d/30-s3-server.sh`,
    );
  }
  const accessKeyId = options.accessKeyId ?? 'tide-test-access';
  const secretAccessKey = options.secretAccessKey ?? 'tide-test-secret-key';
  const region = options.region ?? 'us-east-1';
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'tide-s3-')));
  await mkdir(dataDir, { recursive: true });
  if (options.host !== undefined && options.countBytes === true)
    throw new TypeError('startS3Server: host and countBytes cannot be combined');
  const host = options.host ?? '127.0.0.1';
  const port = await freePort();
  // Credentials go through the environment, not argv, so that `ps` does not show them.
  const child = spawn(
    binary,
    ['--port', `${host}:${port}`, '--region', region, '--quiet', '--keep-alive', 'posix', dataDir],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey },
    },
  );
  let stderr = '';
  let exited: string | undefined;
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.once('exit', (code, signal) => {
    exited = `versitygw exited (${code ?? signal ?? '?'}): ${stderr.trim()}`;
  });
  child.once('error', (error) => {
    exited = `versitygw could not run: ${error.message}`;
  });
  const client = new S3Client({
    endpoint: `http://${host}:${port}`,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
  });

  // A test process that dies without calling stop() (an uncaught error, process.exit) still takes
  // its versitygw with it.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', killOnExit);
    client.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => {
        child.once('exit', () => {
          resolve();
        });
      });
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
      }, 5000);
      await gone;
      clearTimeout(timer);
    }
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
  };

  try {
    await waitForPort(port, {
      host,
      timeoutMs: options.startTimeoutMs ?? 15_000,
      what: 'versitygw',
      failed: () => exited,
    });
  } catch (error) {
    await stop();
    throw error;
  }
  let served = 0;
  const relay =
    options.countBytes === true
      ? await startRelay(port, (bytes) => {
          served += bytes;
        })
      : undefined;
  const stopAll = async (): Promise<void> => {
    await relay?.close();
    await stop();
  };
  const endpoint = relay === undefined ? `http://${host}:${port}` : `http://127.0.0.1:${relay.port}`;

  const server: S3Server = {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    dataDir,
    client,
    bytesServed: () => served,
    createBucket: async (name) => {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    putObject: async (bucket, key, body) => {
      const bytes = typeof body === 'string' ? Buffer.from(body) : body;
      await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, ContentLength: bytes.length }),
      );
    },
    mountConfig: (mountPoint) => ({
      mountPoint,
      options: { 's3.endpoint': endpoint, 's3.region': region, 's3.pathStyle': 'true' },
      secrets: {
        'aws.accessKeyId': new SecretValue(accessKeyId),
        'aws.secretKey': new SecretValue(secretAccessKey),
      },
    }),
    stop: stopAll,
  };
  try {
    for (const bucket of options.buckets ?? []) await server.createBucket(bucket);
  } catch (error) {
    await stopAll();
    throw error;
  }
  return server;
}

/** A TCP relay on 127.0.0.1 to `targetPort` that reports every byte sent back to clients. */
async function startRelay(
  targetPort: number,
  onServed: (bytes: number) => void,
): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.on('data', (chunk: Buffer) => {
      onServed(chunk.length);
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object')
    throw new Error('Cannot start the byte-counting relay');
  return {
    port: address.port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}
