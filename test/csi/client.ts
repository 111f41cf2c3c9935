import { join } from 'node:path';
import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { load } from '@grpc/proto-loader';
import { PROTO_OPTIONS } from '../../src/csi/index.ts';

const PROTO_DIR = join(import.meta.dirname, '..', '..', 'src', 'csi', 'proto');

type Call = (request: object) => Promise<Record<string, unknown>>;

/** A CSI client over a Unix socket: `call('Node', 'NodePublishVolume', request)`. */
export interface CsiClient {
  call(
    service: 'Identity' | 'Node' | 'Registration',
    method: string,
    request?: object,
  ): Promise<Record<string, unknown>>;
  /** The gRPC code a call fails with (0 when it succeeds). */
  codeOf(service: 'Identity' | 'Node' | 'Registration', method: string, request?: object): Promise<number>;
  close(): void;
}

type ClientConstructor = new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => Client;

export async function csiClient(socketPath: string): Promise<CsiClient> {
  const definition = await load(
    [join(PROTO_DIR, 'csi.proto'), join(PROTO_DIR, 'pluginregistration.proto')],
    PROTO_OPTIONS,
  );
  const root = loadPackageDefinition(definition) as unknown as {
    csi: { v1: Record<string, ClientConstructor> };
    pluginregistration: Record<string, ClientConstructor>;
  };
  const address = `unix:${socketPath}`;
  const make = (constructor: ClientConstructor | undefined): Client => {
    if (constructor === undefined) throw new Error('service missing from the protos');
    return new constructor(address, credentials.createInsecure());
  };
  const clients = {
    Identity: make(root.csi.v1['Identity']),
    Node: make(root.csi.v1['Node']),
    Registration: make(root.pluginregistration['Registration']),
  };
  const call = (service: keyof typeof clients, method: string, request: object = {}) => {
    const client = clients[service] as unknown as Record<string, unknown>;
    const fn = client[method];
    if (typeof fn !== 'function') throw new Error(`${service} has no method ${method}`);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      (
        fn as (r: object, o: object, cb: (e: ServiceError | null, v: Record<string, unknown>) => void) => void
      ).call(client, request, { deadline: Date.now() + 120_000 }, (error, value) => {
        if (error === null) resolve(value);
        else reject(error);
      });
    });
  };
  return {
    call,
    async codeOf(service, method, request) {
      try {
        await call(service, method, request);
        return 0;
      } catch (error) {
        return (error as ServiceError).code;
      }
    },
    close() {
      for (const client of Object.values(clients)) client.close();
    },
  };
}

export type { Call };
