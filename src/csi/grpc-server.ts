import { lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type handleUnaryCall,
  type status,
} from '@grpc/grpc-js';
import { load } from '@grpc/proto-loader';
import { toError, type Logger } from '../lib/index.ts';
import { CsiError, GrpcStatus } from './errors.ts';

const PROTO_DIR = join(import.meta.dirname, 'proto');

/** How the messages reach the handlers (see requests.ts). */
export const PROTO_OPTIONS = Object.freeze({
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
});

/** The service definitions of csi.proto and pluginregistration.proto, by full name (`csi.v1.Node`). */
export async function loadServices(): Promise<Record<string, ServiceDefinition>> {
  const definition = await load(['csi.proto', 'pluginregistration.proto'], PROTO_OPTIONS);
  return definition as unknown as Record<string, ServiceDefinition>;
}

export type UnaryHandler = (request: never, signal: AbortSignal) => Promise<object>;

/** Failures the caller caused or will retry: logged as warnings, the rest as errors. */
const CALLER_CODES: ReadonlySet<status> = new Set([
  GrpcStatus.INVALID_ARGUMENT,
  GrpcStatus.NOT_FOUND,
  GrpcStatus.ALREADY_EXISTS,
  GrpcStatus.ABORTED,
  GrpcStatus.FAILED_PRECONDITION,
  GrpcStatus.UNAVAILABLE,
]);

/**
 * A gRPC unary handler around an async function: the call's cancellation aborts its signal, a
 * CsiError becomes its gRPC code with the message as details, anything else INTERNAL; each failure
 * is one log line.
 */
export function unary(rpc: string, logger: Logger, handler: UnaryHandler): handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const controller = new AbortController();
    call.on('cancelled', () => {
      controller.abort();
    });
    handler(call.request as never, controller.signal).then(
      (response) => {
        callback(null, response);
      },
      (error: unknown) => {
        const code = error instanceof CsiError ? error.grpcCode : GrpcStatus.INTERNAL;
        const message = toError(error).message;
        if (CALLER_CODES.has(code)) logger.warn({ rpc, grpcCode: code }, message);
        else logger.error({ rpc, grpcCode: code, err: toError(error) }, message);
        callback({ code, details: message });
      },
    );
  };
}

/** The socket path of a CSI endpoint (`unix:///path`, `unix:/path` or a bare absolute path). */
export function socketPathOf(endpoint: string): string {
  const path = endpoint.replace(/^unix:(\/\/)?/, '');
  if (!path.startsWith('/')) {
    throw new CsiError('ERR_CSI_BAD_FLAGS', `--endpoint must be unix:///absolute/path, got "${endpoint}"`);
  }
  return path;
}

/** Removes a socket left by an earlier run (bind fails on an existing file); refuses any other file. */
async function clearSocket(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const existing = await lstat(path).catch(() => undefined);
  if (existing === undefined) return;
  if (!existing.isSocket()) {
    throw new CsiError(
      'ERR_CSI_BAD_FLAGS',
      `Cannot listen on ${path} as a file that is not a socket is there`,
    );
  }
  await unlink(path);
}

/** Starts a gRPC server with `services` on each Unix socket in `paths`. */
export async function serveOnSockets(
  services: readonly {
    definition: ServiceDefinition;
    implementation: Record<string, handleUnaryCall<unknown, unknown>>;
  }[],
  paths: readonly string[],
): Promise<Server> {
  const server = new Server();
  for (const { definition, implementation } of services) server.addService(definition, implementation);
  try {
    for (const path of paths) {
      await clearSocket(path);
      await new Promise<void>((resolve, reject) => {
        server.bindAsync(`unix:${path}`, ServerCredentials.createInsecure(), (error) => {
          if (error === null) resolve();
          else
            reject(
              new CsiError('ERR_CSI_INTERNAL', `Cannot listen on ${path}: ${error.message}`, {
                cause: error,
              }),
            );
        });
      });
    }
  } catch (error) {
    server.forceShutdown();
    throw error;
  }
  return server;
}

/** Stops the server, letting calls in flight finish for up to `graceMs`, and removes the sockets. */
export async function stopServer(server: Server, paths: readonly string[], graceMs = 5_000): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  for (const path of paths) await unlink(path).catch(() => undefined);
}
