import { join } from 'node:path';
import {
  Server,
  ServerCredentials,
  credentials,
  loadPackageDefinition,
  status,
  type Client,
  type ServiceDefinition,
  type ServiceError,
  type handleUnaryCall,
} from '@grpc/grpc-js';
import { load } from '@grpc/proto-loader';
import { PROTO_OPTIONS } from '../../src/csi/index.ts';

const PROTO_DIRS = [
  join(import.meta.dirname, '..', '..', 'src', 'csi', 'proto'),
  join(import.meta.dirname, 'proto'),
];
const NODE_METHODS = [
  'NodeStageVolume',
  'NodeUnstageVolume',
  'NodePublishVolume',
  'NodeUnpublishVolume',
  'NodeGetCapabilities',
  'NodeGetInfo',
];

export interface SanityProxy {
  socketPath: string;
  /** The volume ids CreateVolume made and DeleteVolume has not removed. */
  volumes: ReadonlySet<string>;
  close(): Promise<void>;
}

type Unary = handleUnaryCall<Record<string, unknown>, unknown>;
type ClientConstructor = new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => Client;

/**
 * Test only: a gRPC server in front of the node plugin that adds the controller service csi-sanity
 * needs to run its Stage → Publish → Unpublish → Unstage flow. CreateVolume answers with
 * `volumeContext` (which points at a real Tide FUSE mount); csi.v1.Node/* and the plugin's
 * GetPluginInfo and Probe are forwarded to the plugin unchanged.
 */
export async function startSanityProxy(options: {
  socketPath: string;
  pluginSocketPath: string;
  volumeContext: Record<string, string>;
}): Promise<SanityProxy> {
  const definition = await load(['csi.proto', 'csi-controller.proto'], {
    ...PROTO_OPTIONS,
    includeDirs: PROTO_DIRS,
  });
  const root = loadPackageDefinition(definition) as unknown as {
    csi: { v1: Record<string, ClientConstructor> };
  };
  const address = `unix:${options.pluginSocketPath}`;
  const NodeClient = root.csi.v1['Node'];
  const IdentityClient = root.csi.v1['Identity'];
  if (NodeClient === undefined || IdentityClient === undefined)
    throw new Error('csi.proto lacks Node or Identity');
  const node = new NodeClient(address, credentials.createInsecure());
  const identity = new IdentityClient(address, credentials.createInsecure());
  const forward =
    (client: Client, method: string): Unary =>
    (call, callback) => {
      const fn = (client as unknown as Record<string, unknown>)[method] as (
        request: unknown,
        callback: (error: ServiceError | null, value: unknown) => void,
      ) => void;
      fn.call(client, call.request, (error, value) => {
        if (error === null) callback(null, value);
        else callback({ code: error.code, details: error.details });
      });
    };
  const volumes = new Map<string, number>();
  const invalid = (details: string) => ({ code: status.INVALID_ARGUMENT, details });
  const controller: Record<string, Unary> = {
    ControllerGetCapabilities: (_call, callback) => {
      callback(null, { capabilities: [{ rpc: { type: 'CREATE_DELETE_VOLUME' } }] });
    },
    CreateVolume: (call, callback) => {
      const name = call.request['name'] as string;
      const capabilities = call.request['volumeCapabilities'] as unknown[];
      if (name === '') {
        callback(invalid('name is required'));
        return;
      }
      if (capabilities.length === 0) {
        callback(invalid('volume_capabilities are required'));
        return;
      }
      const requested = Number(
        (call.request['capacityRange'] as { requiredBytes?: string } | null)?.requiredBytes ?? 0,
      );
      const volumeId = `sanity-${name}`;
      const existing = volumes.get(volumeId);
      if (existing !== undefined && existing !== requested) {
        callback({ code: status.ALREADY_EXISTS, details: `${name} exists with another capacity` });
        return;
      }
      volumes.set(volumeId, requested);
      callback(null, {
        volume: { volumeId, capacityBytes: String(requested), volumeContext: options.volumeContext },
      });
    },
    DeleteVolume: (call, callback) => {
      const volumeId = call.request['volumeId'] as string;
      if (volumeId === '') {
        callback(invalid('volume_id is required'));
        return;
      }
      volumes.delete(volumeId);
      callback(null, {});
    },
  };
  const service = (name: string): ServiceDefinition => {
    const found = (definition as unknown as Record<string, ServiceDefinition | undefined>)[name];
    if (found === undefined) throw new Error(`proto service ${name} is missing`);
    return found;
  };
  const server = new Server();
  server.addService(service('csi.v1.Controller'), controller);
  server.addService(
    service('csi.v1.Node'),
    Object.fromEntries(NODE_METHODS.map((method) => [method, forward(node, method)])),
  );
  server.addService(service('csi.v1.Identity'), {
    GetPluginInfo: forward(identity, 'GetPluginInfo'),
    Probe: forward(identity, 'Probe'),
    GetPluginCapabilities: ((_call, callback) => {
      callback(null, { capabilities: [{ service: { type: 'CONTROLLER_SERVICE' } }] });
    }) as Unary,
  });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${options.socketPath}`, ServerCredentials.createInsecure(), (error) => {
      if (error === null) resolve();
      else reject(error);
    });
  });
  return {
    socketPath: options.socketPath,
    get volumes() {
      return new Set(volumes.keys());
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.tryShutdown(() => {
          resolve();
        });
      });
      node.close();
      identity.close();
    },
  };
}
