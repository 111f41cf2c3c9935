import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Server } from '@grpc/grpc-js';
import type { Logger } from '../lib/index.ts';
import type { ReadMounts } from './binds.ts';
import type { ClusterAccess } from './cluster.ts';
import { loadServices, serveOnSockets, socketPathOf, stopServer, unary } from './grpc-server.ts';
import { utilLinuxMounter, type Mounter } from './mounter.ts';
import { readMountInfo } from './mountinfo.ts';
import { NodeService } from './node-service.ts';
import { FuseRecovery } from './recovery.ts';
import { PluginState } from './state.ts';

/** The CSI driver name of Tide's PersistentVolumes and CSIDriver object. */
export const DRIVER_NAME = 'fuse.csi.tide.io';

export interface NodePluginOptions {
  /** The CSI socket: `unix:///path/csi.sock`. */
  endpoint: string;
  nodeId: string;
  /** Default DRIVER_NAME. */
  driverName?: string;
  /** `vendor_version` of GetPluginInfo. */
  vendorVersion: string;
  /** The kubelet's directory (default /var/lib/kubelet); targets outside it are refused. */
  kubeletDir: string;
  /** The FUSE pods' mount root (Fluid's runtime mountRoot); a fluid_path outside it is refused. */
  mountRoot: string;
  /**
   * Where the kubelet's plugin watcher looks for sockets (`<kubelet-dir>/plugins_registry`);
   * undefined: no registration (csi-sanity, local runs).
   */
  registrationDir?: string | undefined;
  /** Where the plugin keeps its state file. */
  stateDir: string;
  logger: Logger;
  cluster?: ClusterAccess | undefined;
  /** Default 3 000 ms. */
  recoveryIntervalMs?: number;
  /** Default 90 000 ms. */
  fuseWaitTimeoutMs?: number;
  mounter?: Mounter;
  readMounts?: ReadMounts;
}

export interface NodePlugin {
  socketPath: string;
  /** The socket the kubelet's plugin watcher dials, when registering. */
  registrationSocketPath: string | undefined;
  service: NodeService;
  recovery: FuseRecovery;
  close(): Promise<void>;
}

/**
 * Starts the node plugin: CSI Identity and Node on the endpoint and, when a registration directory
 * is given, the kubelet's Registration service on `<dir>/<driver>-reg.sock` as well (the same
 * server on both sockets). GetInfo names the CSI socket as the endpoint, so the kubelet talks CSI
 * there; Tide needs no node-driver-registrar sidecar.
 */
export async function startNodePlugin(options: NodePluginOptions): Promise<NodePlugin> {
  const { logger } = options;
  const driverName = options.driverName ?? DRIVER_NAME;
  const socketPath = socketPathOf(options.endpoint);
  const mounter = options.mounter ?? utilLinuxMounter();
  const readMounts = options.readMounts ?? readMountInfo;
  const state = await PluginState.open(options.stateDir);
  const service = new NodeService({
    nodeId: options.nodeId,
    kubeletDir: options.kubeletDir,
    mountRoot: options.mountRoot,
    state,
    mounter,
    readMounts,
    logger,
    cluster: options.cluster,
    ...(options.fuseWaitTimeoutMs === undefined ? {} : { fuseWaitTimeoutMs: options.fuseWaitTimeoutMs }),
  });
  const recovery = new FuseRecovery({
    state,
    locks: service.locks,
    mounter,
    readMounts,
    logger,
    cluster: options.cluster,
    ...(options.recoveryIntervalMs === undefined ? {} : { intervalMs: options.recoveryIntervalMs }),
  });

  let registrationSocketPath: string | undefined;
  if (options.registrationDir !== undefined) {
    const dir = await stat(options.registrationDir).catch(() => undefined);
    if (dir?.isDirectory() === true) {
      registrationSocketPath = join(options.registrationDir, `${driverName}-reg.sock`);
    } else {
      logger.warn(
        { registrationDir: options.registrationDir },
        'no kubelet plugin registration: the directory does not exist',
      );
    }
  }

  const services = await loadServices();
  const get = (name: string) => {
    const definition = services[name];
    if (definition === undefined) throw new Error(`proto service ${name} is missing`);
    return definition;
  };
  const ok = () => Promise.resolve({});
  const server: Server = await serveOnSockets(
    [
      {
        definition: get('csi.v1.Identity'),
        implementation: {
          GetPluginInfo: unary('GetPluginInfo', logger, () =>
            Promise.resolve({ name: driverName, vendorVersion: options.vendorVersion }),
          ),
          // Node only: the PersistentVolumes are static, made by the operator, so no controller service.
          GetPluginCapabilities: unary('GetPluginCapabilities', logger, () =>
            Promise.resolve({ capabilities: [] }),
          ),
          Probe: unary('Probe', logger, () => Promise.resolve({ ready: { value: true } })),
        },
      },
      {
        definition: get('csi.v1.Node'),
        implementation: {
          NodeStageVolume: unary('NodeStageVolume', logger, (request, signal) =>
            service.stage(request, signal).then(ok),
          ),
          NodeUnstageVolume: unary('NodeUnstageVolume', logger, (request, signal) =>
            service.unstage(request, signal).then(ok),
          ),
          NodePublishVolume: unary('NodePublishVolume', logger, (request, signal) =>
            service.publish(request, signal).then(ok),
          ),
          NodeUnpublishVolume: unary('NodeUnpublishVolume', logger, (request, signal) =>
            service.unpublish(request, signal).then(ok),
          ),
          NodeGetCapabilities: unary('NodeGetCapabilities', logger, () =>
            Promise.resolve({ capabilities: [{ rpc: { type: 'STAGE_UNSTAGE_VOLUME' } }] }),
          ),
          NodeGetInfo: unary('NodeGetInfo', logger, () => Promise.resolve({ nodeId: options.nodeId })),
        },
      },
      {
        definition: get('pluginregistration.Registration'),
        implementation: {
          GetInfo: unary('GetInfo', logger, () =>
            Promise.resolve({
              type: 'CSIPlugin',
              name: driverName,
              endpoint: socketPath,
              supportedVersions: ['1.0.0'],
            }),
          ),
          NotifyRegistrationStatus: unary(
            'NotifyRegistrationStatus',
            logger,
            (status: { pluginRegistered?: boolean; error?: string }) => {
              if (status.pluginRegistered === true)
                logger.info({ driverName }, 'registered with the kubelet');
              else logger.error({ driverName, error: status.error }, 'the kubelet refused the registration');
              return ok();
            },
          ),
        },
      },
    ],
    registrationSocketPath === undefined ? [socketPath] : [socketPath, registrationSocketPath],
  );
  recovery.start();
  logger.info(
    { socketPath, registrationSocketPath, nodeId: options.nodeId, kubeletDir: options.kubeletDir },
    'CSI node plugin serving',
  );
  const sockets = registrationSocketPath === undefined ? [socketPath] : [registrationSocketPath, socketPath];
  return {
    socketPath,
    registrationSocketPath,
    service,
    recovery,
    async close() {
      await recovery.stop();
      await stopServer(server, sockets);
    },
  };
}
